//! Where the lab's time went: wall time inside each kind of work, summed over the run, and how
//! many times it was done. The account carries it (the teardown event's `spent`, and `-v`
//! prints it), so "why is my lab slow to build" is answered by the run itself, and
//! docs/architecture.md's accounting can be measured again by anyone.
//!
//! The kinds do not overlap: each is timed around one call that does only that work. The lab's
//! calls run one at a time, so the sum is time the scenario waited for the lab; what is left of
//! a run's time is the runner's start, the scenario's own code and the WebAssembly calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A kind of work the lab does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// The run's user namespace and helper (once; rootless, before the scenario starts).
    Principal,
    /// Making namespaces: the helper's answer (it makes the next one ahead), and the netlink
    /// socket's binding.
    Namespaces,
    /// Netlink requests (links, addresses, routes, shaping), from sending to the answer.
    Netlink,
    /// The helper's requests that are not namespaces, boxes or files: forwarding, host names.
    Settings,
    /// Boxes: a namespace's filesystem box and UTS namespace, made at its first program or
    /// file.
    Boxes,
    /// The run's cgroups, made at the first box.
    Cgroups,
    /// The programs' confinement (Landlock, seccomp), given to the helper once.
    Confinement,
    /// Files given to namespaces, written by the helper.
    Files,
    /// Program starts, until the helper has the program (not its exec: starts.rs).
    Starts,
    /// The run record: written at the first namespace, a line per namespace made or deleted.
    Records,
    /// What the lab says as it goes (the narration, the account's events).
    Account,
    /// Deleting namespaces (their programs stopped, their links' peers retired).
    Deleting,
    /// Teardown: every program stopped, every namespace let go.
    Teardown,
}

const KINDS: [Work; 13] = [
    Work::Principal,
    Work::Namespaces,
    Work::Netlink,
    Work::Settings,
    Work::Boxes,
    Work::Cgroups,
    Work::Confinement,
    Work::Files,
    Work::Starts,
    Work::Records,
    Work::Account,
    Work::Deleting,
    Work::Teardown,
];

impl Work {
    pub fn name(self) -> &'static str {
        match self {
            Work::Principal => "principal",
            Work::Namespaces => "namespaces",
            Work::Netlink => "netlink",
            Work::Settings => "settings",
            Work::Boxes => "boxes",
            Work::Cgroups => "cgroups",
            Work::Confinement => "confinement",
            Work::Files => "files",
            Work::Starts => "starts",
            Work::Records => "records",
            Work::Account => "account",
            Work::Deleting => "deleting",
            Work::Teardown => "teardown",
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// One kind of work, as the account shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpentOn {
    pub work: String,
    pub calls: u64,
    pub ms: f64,
}

/// The run's sums, one per kind of work.
#[derive(Default)]
pub struct Spent {
    nanos: [AtomicU64; KINDS.len()],
    calls: [AtomicU64; KINDS.len()],
}

impl Spent {
    /// Count one piece of `work`, begun at `since`.
    pub fn add(&self, work: Work, since: Instant) {
        self.add_time(work, since.elapsed());
    }

    pub fn add_time(&self, work: Work, took: Duration) {
        let i = work.index();
        self.nanos[i].fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.calls[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Set one kind's sums from elsewhere (netlink's, which the kernel keeps).
    pub fn set(&self, work: Work, calls: u64, took: Duration) {
        let i = work.index();
        self.nanos[i].store(took.as_nanos() as u64, Ordering::Relaxed);
        self.calls[i].store(calls, Ordering::Relaxed);
    }

    /// The kinds of work done, in the order above (those never done are left out).
    pub fn report(&self) -> Vec<SpentOn> {
        KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.calls[*i].load(Ordering::Relaxed) > 0)
            .map(|(i, k)| SpentOn {
                work: k.name().to_string(),
                calls: self.calls[i].load(Ordering::Relaxed),
                ms: self.nanos[i].load(Ordering::Relaxed) as f64 / 1e6,
            })
            .collect()
    }
}

impl SpentOn {
    /// Whether this is teardown's (which the runner adds to what it took before teardown).
    pub fn is_teardown(&self) -> bool {
        self.work == Work::Teardown.name()
    }

    /// A report in one line: `netlink 612.3 ms (4999), namespaces 95.0 ms (1000), ...`, the
    /// largest first.
    pub fn summary(spent: &[SpentOn]) -> String {
        let mut by_time: Vec<&SpentOn> = spent.iter().collect();
        by_time.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        by_time
            .iter()
            .map(|s| format!("{} {:.1} ms ({})", s.work, s.ms, s.calls))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_by_kind_and_leaves_out_what_was_never_done() {
        let s = Spent::default();
        s.add_time(Work::Netlink, Duration::from_micros(1500));
        s.add_time(Work::Netlink, Duration::from_micros(500));
        s.add_time(Work::Namespaces, Duration::from_millis(3));
        let r = s.report();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].work.as_str(), r[0].calls), ("namespaces", 1));
        assert_eq!((r[1].work.as_str(), r[1].calls), ("netlink", 2));
        assert!((r[1].ms - 2.0).abs() < 1e-9);
        assert_eq!(
            SpentOn::summary(&r),
            "namespaces 3.0 ms (1), netlink 2.0 ms (2)"
        );
    }
}
