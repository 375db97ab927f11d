//! What a dead run may still have on the host: processes that survived its runner. Nothing
//! should (every program ends with its PID namespace's init, lab/helper/spawn.rs, and with the run's
//! cgroup, lab/programs/cgroup/), but a process stuck in the kernel can outlast both for a while, and
//! `runner ls` and `runner cleanup` must say so rather than claim the lab is gone.
//!
//! A process is the run's if it is in the run's user namespace (recorded by its inode) and runs
//! as one of the run's host ids. A process that only holds one of the run's network namespaces
//! (someone entered it) is shown but never ended. An inode is only an identity while the
//! namespace lives: one that a run still going or kept also has is passed over, since the
//! kernel may have given the number to that run's namespace after this one's was freed.

use nslab_lab::records::{RunRecord, RunStatus};

/// A process that holds on to a dead run's lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub pid: u32,
    /// Its name, made printable (it is the program's to choose).
    pub name: String,
    /// Its real uid on the host.
    pub uid: u32,
    /// In the run's user namespace with one of its host ids: the run's own, for `cleanup` to end.
    pub ours: bool,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} ({}, uid {})", self.pid, self.name, self.uid)
    }
}

/// The namespace a `/proc/PID/ns/KIND` link names, as its inode ("net:[4026532175]").
fn ns_inode(pid: &str, kind: &str) -> Option<u64> {
    let target = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    let target = target.to_str()?;
    target
        .strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The real uid and name of process `pid`, and whether it is a zombie (gone but for its
/// parent's wait, holding nothing).
fn status_of(pid: &str) -> Option<(u32, String, bool)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let name = status.lines().next()?.strip_prefix("Name:\t")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let zombie = status.lines().any(|l| l.starts_with("State:\tZ"));
    Some((uid, nslab_lab::text::printable(name).into_owned(), zombie))
}

/// Whether host uid `uid` is one of the run's: one of its blocks of host ids. Never the host's
/// root, even for a run root started: everything of a run (its lab helper, the inits of its
/// programs, the programs) runs as the run's own ids (lab/helper/ids.rs), so a process running
/// as the host's root in a dead run's user namespace entered it from outside, and is someone
/// else's to end.
fn runs_as(rec: &RunRecord, uid: u32) -> bool {
    rec.host_ids
        .iter()
        .any(|&(first, count)| uid >= first && uid - first < count)
}

/// The processes that still hold dead or kept run `rec`'s lab; `all` are every record (for the
/// namespaces runs still going or kept have now). Empty for a run still going.
pub fn of(rec: &RunRecord, all: &[RunRecord]) -> Vec<Leftover> {
    let Some(lab) = Trusted::of(rec, all) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = procs
        .flatten()
        .filter_map(|p| lab.holder(rec, p.file_name().to_str()?))
        .collect();
    found.sort_by_key(|l| l.pid);
    found
}

/// The namespaces of a dead run that still identify it: its user namespace and network
/// namespaces, less any inode a run going on or kept has now.
struct Trusted {
    userns: Option<u64>,
    nets: Vec<u64>,
}

impl Trusted {
    fn of(rec: &RunRecord, all: &[RunRecord]) -> Option<Trusted> {
        // A kept run's processes are what the operator started in it (`runner exec`), which
        // `cleanup` ends with the lab; a run going on ends its own.
        if rec.status() == RunStatus::Running {
            return None;
        }
        let live: Vec<&RunRecord> = all
            .iter()
            .filter(|r| r.id != rec.id && r.status() != RunStatus::Dead)
            .collect();
        let userns = rec
            .userns
            .filter(|u| !live.iter().any(|r| r.userns == Some(*u)));
        let nets = rec
            .namespaces
            .iter()
            .map(|n| n.inode)
            .filter(|i| {
                !live
                    .iter()
                    .any(|r| r.namespaces.iter().any(|n| n.inode == *i))
            })
            .collect();
        Some(Trusted { userns, nets })
    }

    /// Process `pid`, if it holds the lab (and is no zombie).
    fn holder(&self, rec: &RunRecord, pid: &str) -> Option<Leftover> {
        let number: u32 = pid.parse().ok()?;
        let in_userns = self.userns.is_some() && ns_inode(pid, "user") == self.userns;
        let in_lab = ns_inode(pid, "net").is_some_and(|n| self.nets.contains(&n));
        if !in_userns && !in_lab {
            return None;
        }
        let (uid, name, zombie) = status_of(pid)?;
        (!zombie).then(|| Leftover {
            pid: number,
            name,
            uid,
            ours: in_userns && runs_as(rec, uid),
        })
    }
}

/// End the run's own leftovers (SIGKILL through a pidfd, after checking again that the pid is
/// still one of them) and wait up to 2 s for them to go. What was ended, and what could not be.
pub fn end(rec: &RunRecord, all: &[RunRecord]) -> (Vec<Leftover>, Vec<String>) {
    let mut ended = Vec::new();
    let mut problems = Vec::new();
    for left in of(rec, all) {
        if !left.ours {
            continue;
        }
        let Ok(pidfd) = nslab_lab::host::pidfd_open(left.pid) else {
            continue; // gone meanwhile
        };
        // The pidfd holds this very process now: check that it is still the one found.
        let again = Trusted::of(rec, all).and_then(|lab| lab.holder(rec, &left.pid.to_string()));
        if again.as_ref() != Some(&left) {
            continue;
        }
        if let Err(e) = nslab_lab::host::pidfd_signal(&pidfd, libc::SIGKILL) {
            problems.push(format!(
                "cannot end {left}, which holds the lab of run {}: {e}{}",
                rec.id,
                match e.raw_os_error() {
                    Some(libc::EPERM) => " (it runs as an id of yours only inside the run; as root: sudo runner cleanup)",
                    _ => "",
                }
            ));
            continue;
        }
        ended.push(left);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !ended.is_empty()
        && of(rec, all).iter().any(|l| l.ours)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for still in of(rec, all).into_iter().filter(|l| l.ours) {
        problems.push(format!(
            "{still} did not end within 2 s of SIGKILL: it is stuck in the kernel; try `runner cleanup {}` again later",
            rec.id
        ));
    }
    (ended, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner: u32, host_ids: Vec<(u32, u32)>) -> RunRecord {
        let mut r = RunRecord::new("0000abcd".into(), "x.wasm".into(), std::env::temp_dir());
        r.owner = owner;
        r.host_ids = host_ids;
        r
    }

    #[test]
    fn only_the_runs_own_ids_are_its_to_end() {
        let root_run = record(0, vec![(0x7000_0000, 65536)]);
        assert!(runs_as(&root_run, 0x7000_0000));
        assert!(runs_as(&root_run, 0x7000_0000 + 65535));
        assert!(!runs_as(&root_run, 0x7000_0000 + 65536));
        assert!(!runs_as(&root_run, 0x6FFF_FFFF));
        // Nothing of a run runs as the host's root: one that does entered from outside.
        assert!(!runs_as(&root_run, 0));
        let user_run = record(1000, vec![(1000, 1), (100_000, 65536)]);
        assert!(runs_as(&user_run, 1000));
        assert!(runs_as(&user_run, 100_100));
        assert!(!runs_as(&user_run, 0));
        assert!(!runs_as(&user_run, 1001));
    }

    #[test]
    fn a_run_that_is_not_dead_has_no_leftovers() {
        // This process is "running": whatever holds its namespaces is its own business.
        let r = record(0, vec![(0, u32::MAX)]);
        assert!(of(&r, &[]).is_empty());
    }
}
