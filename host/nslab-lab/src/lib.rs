//! The lab: everything one run has created in the kernel, and the only code that touches it.
//!
//! Namespaces and links are kept in tables keyed by ids the guest never sees; the guest holds
//! WIT resource handles that point at these ids, so it can only ever name what it created.
//! Teardown removes everything, newest first, and keeps going when one step fails.
//!
//! The lab knows only the kernel. Its logic (this file, `topology.rs`, `keeping.rs`) asks the
//! kernel through the [`Kernel`] trait, whose real implementation is netlink and the run's
//! helper (`kernel/`, `helper/`) and whose fake records requests for tests; what it did goes
//! to a [`Sink`] (events.rs), which the run turns into narration and account events. Its rooms:
//!
//! - `kernel/`   netlink: namespaces held by fd, links, addresses, routes, shaping; the fake
//! - `helper/`   the run's user namespace and the helper process in it: ids, the typed
//!   protocol, namespaces and boxes made inside it, file work in a box
//! - `programs/` the run's programs: boxing, starting them through the helper, exec, output, cgroups,
//!   Landlock and seccomp, the link watch
//! - `persist/`  the run's record on disk, pins under /run/netns, the keeper process
//!
//! # Using it on its own
//!
//! A Rust program builds a lab as the runner does: it is also the lab's helper, so `main`
//! first lets [`roles::dispatch`] take over a re-executed start. As root (or an ordinary
//! user whose kernel allows user namespaces):
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use nslab_lab::input::{Cidr, Name};
//! use nslab_lab::records::{new_run_id, RunRecord};
//! use nslab_lab::{ExecRequest, Lab, LabConfig, LabEvent, Mode, ProgramLimits, Sink};
//!
//! struct Quiet;
//! impl Sink for Quiet {
//!     fn event(&self, _: LabEvent<'_>) {}
//! }
//!
//! # async fn build() -> nslab_lab::error::LabResult<()> {
//! let id = new_run_id().expect("the kernel's random source");
//! let record = RunRecord::new(id, "my-lab".into(), std::env::temp_dir().join("my-lab-runs"));
//! let limits = ProgramLimits {
//!     max_processes: 64,
//!     max_links: 256,
//!     program_memory: 1 << 30,
//!     scratch_bytes: 64 << 20,
//!     tripped: Arc::default(),
//!     by_path: Vec::new(),
//! };
//! let config = LabConfig { mode: Mode::Root, limits, record, sink: Arc::new(Quiet) };
//! let mut lab = Lab::real(std::env::current_exe().unwrap(), config);
//! let name = |n: &str| Name::parse("namespace", n).unwrap();
//! let (a, b) = (lab.create_namespace(&name("a")).await?, lab.create_namespace(&name("b")).await?);
//! let (ea, eb) = lab.veth(&name("eth0"), a, &name("eth0"), b).await?;
//! for (end, cidr) in [(ea, "10.0.0.1/24"), (eb, "10.0.0.2/24")] {
//!     lab.add_address(end, cidr.parse::<Cidr>().unwrap()).await?;
//!     lab.set_up(end, true).await?;
//! }
//! lab.allow_executables(vec![nslab_lab::host::resolve("ping")?]);
//! let out = lab
//!     .exec(a, ExecRequest {
//!         program: "ping".into(),
//!         by_path: false,
//!         args: vec!["-c1".into(), "10.0.0.2".into()],
//!         env: Vec::new(),
//!         stdin: None,
//!         timeout: Duration::from_secs(5),
//!         output_limit: 1 << 16,
//!         quiet: true,
//!     })
//!     .await?;
//! assert_eq!(out.status, 0);
//! let ended = lab.teardown().await;
//! assert!(ended.problems.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! `examples/ping_pair.rs` is this as a program. Tests use the fake kernel instead (the
//! `test-util` feature's [`testing`] module), which needs no root.

// The rooms are private: what the lab offers is what this file exports, below and in the
// modules after the `Lab`, each for one kind of user.
mod doors;
pub mod error;
mod events;
mod files;
mod helper;
pub mod input;
mod keeping;
mod kernel;
mod model;
mod observe;
mod persist;
mod process;
mod programs;
mod spent;
pub mod text;
mod topology;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::input::Name;
use error::{ErrorKind, LabError, LabResult};
pub use events::{LabEvent, ProgramEnd, Sink, Tripped};
pub use helper::ids::Mode;
pub use helper::port::{NewBox, Port};
pub use keeping::{Holder, Kept};
pub use kernel::{Kernel, LinkInfoView, Netlink, NsBox, Route, Shaping};
pub use model::{LinkKind, LinkNode, NsNode, Topology};
use persist::record::{NsChange, RunRecord};
pub use programs::exec::{Boxing, ExecOutput, ExecRequest};
pub use programs::starts::StartLog;
pub use programs::ProgramLimits;
pub use spent::SpentOn;
use spent::Work;
pub use topology::{RouteDetailView, RouteView};

/// A namespace of this run. Ids grow, so their order is the order of creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NsId(u32);

/// A link of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(u32);

/// A background program of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcId(u32);

/// A namespace of the run: its name, its identity, and the kernel's handle that holds it.
struct NsEntry<N> {
    name: String,
    inode: u64,
    held: N,
}

/// Where a link lives now (it moves with `move-to`), and what the run made of it, for the
/// picture of the lab (model.rs).
#[derive(Debug, Clone)]
struct LinkEntry {
    ns: NsId,
    index: u32,
    name: String,
    kind: LinkKind,
    peer: Option<LinkId>,
    master: Option<LinkId>,
    addresses: Vec<String>,
    shaping: Option<String>,
    up: bool,
}

/// What a lab is made with, besides its kernel.
pub struct LabConfig {
    /// Who builds it: the host's root or an ordinary user (privilege.rs finds out).
    pub mode: Mode,
    pub limits: ProgramLimits,
    /// The record `runner ls` and `cleanup` go by, kept in step (keeping.rs).
    pub record: RunRecord,
    /// Where the lab says what it did.
    pub sink: Arc<dyn Sink>,
}

pub struct Lab<K: Kernel = Netlink> {
    kernel: K,
    namespaces: BTreeMap<NsId, NsEntry<K::Ns>>,
    links: BTreeMap<LinkId, LinkEntry>,
    programs: programs::Programs,
    next_id: u32,
    /// The scenario's links that exist now (veth ends, bridges; loopback aside), for the
    /// policy's count.
    links_live: usize,
    /// Veth peers retired so far (their names: `~1`, `~2`, ...).
    retired: u64,
    /// Files the scenario has given its namespaces (files.rs), for the policy's count.
    files_written: usize,
    /// Namespaces the scenario turned forwarding on in.
    forwarding: std::collections::BTreeSet<NsId>,
    sink: Arc<dyn Sink>,
    mode: Mode,
    /// The runner's record of this run, kept in step with `namespaces` (see keeping.rs).
    record: RunRecord,
    /// Whether the record is on disk (it is written at the first namespace): None before then.
    record_saved: Option<bool>,
    /// What the operator steps in by (doors.rs).
    doors: Arc<doors::Doors>,
    /// Where the lab's time went (spent.rs).
    spent: spent::Spent,
}

/// The bound on the processes and threads of everything in the run's user namespace together
/// (helper/mod.rs): the programs' `max-processes`, plus each running program's init (the policy
/// lets at most `max-processes` programs run at once) and the helper with a child.
/// The run's pids cgroup, where there is one, holds the programs to exactly `max-processes`.
pub fn userns_processes(max_processes: usize) -> u64 {
    2 * max_processes as u64 + 4
}

/// Each program's RLIMIT_NPROC: the kernel counts it against every process of the run's root
/// id (the programs, their inits, the helper), so it is the same bound.
pub fn program_processes(max_processes: usize) -> u64 {
    userns_processes(max_processes)
}

/// What teardown removed and what went wrong on the way.
#[derive(Debug, Default)]
pub struct Teardown {
    pub removed: Vec<String>,
    pub problems: Vec<TeardownProblem>,
}

/// Something teardown (or a namespace's deletion) could not do; the rest went on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TeardownProblem {
    /// A program, or a process of its PID namespace, was still there at the deadline.
    #[error("{0}")]
    ProgramLeft(#[source] LabError),
    /// The peer of a veth in a deleted namespace could not be set aside.
    #[error("{0}")]
    PeerLeft(#[source] LabError),
    /// What a namespace held could not be listed (with `-v`).
    #[error("listing the links of {ns}: {error}")]
    Listing {
        ns: String,
        #[source]
        error: LabError,
    },
    /// The run's record could not be removed.
    #[error("removing the run record: {0}")]
    Record(#[source] Arc<std::io::Error>),
}

impl Lab<Netlink> {
    /// The real lab: `exe` is the runner program, re-executed as the lab helper (helper/).
    pub fn real(exe: std::path::PathBuf, config: LabConfig) -> Lab<Netlink> {
        let processes = userns_processes(config.limits.max_processes);
        Lab::new(Netlink::new(exe, processes, config.mode.clone()), config)
    }
}

impl<K: Kernel> Lab<K> {
    pub fn new(kernel: K, config: LabConfig) -> Lab<K> {
        Lab {
            kernel,
            namespaces: BTreeMap::new(),
            links: BTreeMap::new(),
            programs: programs::Programs::new(config.sink.clone(), config.limits),
            next_id: 0,
            links_live: 0,
            retired: 0,
            files_written: 0,
            forwarding: Default::default(),
            sink: config.sink,
            mode: config.mode,
            record: config.record,
            record_saved: None,
            doors: Arc::default(),
            spent: Default::default(),
        }
    }

    /// Where the lab's time went so far, by kind of work (spent.rs): what the account's
    /// teardown event carries.
    pub fn spent(&self) -> Vec<SpentOn> {
        let (requests, took) = (self.kernel.requests(), self.kernel.netlink_time());
        self.spent.set(Work::Netlink, requests, took);
        self.spent.report()
    }

    /// Make the run's user namespace now rather than at the first namespace: for an ordinary
    /// user, whether the kernel allows it is known before the scenario starts.
    pub fn prepare(&mut self) -> LabResult<()> {
        self.start_principal()
    }

    /// Start the run's principal (its user namespace) if it is not yet, and say which host ids
    /// the run's programs will be: what `ps` shows for them, and what `runner ls` and `cleanup`
    /// go by.
    fn start_principal(&mut self) -> LabResult<()> {
        let since = Instant::now();
        let started = self.kernel.start()?;
        if started.is_some() {
            self.spent.add(Work::Principal, since);
        }
        if let Some(p) = started {
            self.sink.event(LabEvent::Principal {
                host_ids: &p.host_ids,
                userns: p.userns,
            });
            self.record.host_ids = p.host_ids;
            self.record.userns = Some(p.userns);
        }
        Ok(())
    }

    pub fn run_id(&self) -> &str {
        &self.record.id
    }

    /// Where the run's record is written (and its control socket beside it: host/src/enter/).
    pub fn record_dir(&self) -> &std::path::Path {
        &self.record.dir
    }

    fn next(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    pub fn namespace_count(&self) -> usize {
        self.namespaces.len()
    }

    /// The links the run holds now, loopback aside: the scenario's, and in the namespaces
    /// where programs have run, whatever is there (programs' links too; lab/programs/watch.rs).
    /// Deleted links no longer count: `max-links` bounds what a run holds, not how long it runs.
    pub fn links_held(&self) -> usize {
        match self.programs.watched_links() {
            None => self.links_live,
            Some(watched) => {
                let unwatched = self
                    .links
                    .values()
                    .filter(|l| l.kind != LinkKind::Loopback && !self.programs.watches(l.ns))
                    .count();
                unwatched + watched
            }
        }
    }

    /// Requests the lab has made of the kernel so far.
    pub fn kernel_requests(&self) -> u64 {
        self.kernel.requests()
    }

    fn ns(&self, id: NsId) -> LabResult<&NsEntry<K::Ns>> {
        self.namespaces.get(&id).ok_or_else(|| {
            LabError::not_found("that namespace was deleted: create a new one".to_string())
        })
    }

    /// A link and the namespace it is in now.
    fn link(&self, id: LinkId) -> LabResult<(&LinkEntry, &NsEntry<K::Ns>)> {
        let entry = self.links.get(&id).ok_or_else(|| {
            LabError::not_found("that link is gone: its namespace was deleted".to_string())
        })?;
        Ok((entry, self.ns(entry.ns)?))
    }

    fn did(&self, what: &str) {
        let since = Instant::now();
        self.sink.event(LabEvent::Did(what));
        self.spent.add(Work::Account, since);
    }

    fn tell_size(&self) {
        let since = Instant::now();
        self.sink.event(LabEvent::Size {
            namespaces: self.namespaces.len(),
            links: self.links_live,
        });
        self.spent.add(Work::Account, since);
    }

    // ---- namespaces ----

    pub async fn create_namespace(&mut self, name: &Name) -> LabResult<NsId> {
        let name = name.as_str();
        if self.namespaces.values().any(|n| n.name == name) {
            return Err(LabError::exists(format!(
                "namespace {name} already exists in this run: pick another name or delete it first"
            )));
        }
        self.start_principal()?;
        let since = Instant::now();
        let (held, inode) = self.kernel.create_namespace(name).await?;
        self.spent.add(Work::Namespaces, since);
        let id = NsId(self.next());
        self.namespaces.insert(
            id,
            NsEntry {
                name: name.to_string(),
                inode,
                held,
            },
        );
        self.doors.made(name);
        // On record before it is shown: whatever the user has seen, `runner ls` can find.
        self.log_namespace(NsChange::Made {
            name: name.to_string(),
            inode,
        });
        self.did(&format!("netns add {name:<15}  net:[{inode}]"));
        self.tell_size();
        Ok(id)
    }

    pub fn namespace_name(&self, id: NsId) -> LabResult<&str> {
        Ok(&self.ns(id)?.name)
    }

    pub fn namespace_inode(&self, id: NsId) -> LabResult<u64> {
        Ok(self.ns(id)?.inode)
    }

    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.values().map(|n| n.name.clone()).collect()
    }

    /// Delete a namespace: its programs first, then the veth peers of its links in other
    /// namespaces are retired (down, renamed out of the way: their names are free when this
    /// returns), then its handle is dropped and the kernel frees it, its links and those peers
    /// in its own time (a namespace's cleanup is batched; deleting its links one by one waits
    /// on an RCU barrier each, ~16 ms, which made deleting cost four times making).
    pub async fn delete_namespace(&mut self, id: NsId) -> LabResult<()> {
        let ns = self
            .namespaces
            .remove(&id)
            .ok_or_else(|| LabError::not_found("that namespace was already deleted".to_string()))?;
        self.doors.deleted(&ns.name);
        let since = Instant::now();
        let stopped = self.kill_processes(Some(id)).await;
        let stopping = since.elapsed();
        self.programs.unwatch(id);
        let mut problems = stopped.left;
        let peers: Vec<(NsId, u32)> = self
            .links
            .values()
            .filter(|l| l.ns == id)
            .filter_map(|l| l.peer.and_then(|p| self.links.get(&p)))
            .filter(|p| p.ns != id)
            .map(|p| (p.ns, p.index))
            .collect();
        for (peer_ns, index) in peers {
            let Some(other) = self.namespaces.get(&peer_ns) else {
                continue;
            };
            self.retired += 1;
            let name = format!("{}{:x}", kernel::RETIRED, self.retired);
            match self.kernel.retire_link(&other.held, index, &name).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => problems.push(TeardownProblem::PeerLeft(e)),
            }
        }
        // Its links, and the peers of its veths wherever they are, are gone with it.
        let gone: std::collections::BTreeSet<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.ns == id)
            .flat_map(|(lid, l)| [Some(*lid), l.peer].into_iter().flatten())
            .collect();
        let counted = gone
            .iter()
            .filter(|lid| {
                self.links
                    .get(lid)
                    .is_some_and(|l| l.kind != LinkKind::Loopback)
            })
            .count();
        self.links.retain(|lid, _| !gone.contains(lid));
        self.links_live -= counted;
        self.tell_size();
        self.forwarding.remove(&id);
        self.did(&format!("netns delete {}", ns.name));
        let name = ns.name.clone();
        let since = Instant::now();
        drop(ns);
        self.spent
            .add_time(Work::Deleting, stopping + since.elapsed());
        self.log_namespace(NsChange::Deleted { name: name.clone() });
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::os(format!(
                "namespace {name} is deleted, but setting its links' peers aside failed: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
    }

    fn add_link(&mut self, ns: NsId, index: u32, name: &str, kind: LinkKind) -> LinkId {
        let id = LinkId(self.next());
        self.links.insert(
            id,
            LinkEntry {
                ns,
                index,
                name: name.to_string(),
                kind,
                peer: None,
                master: None,
                addresses: Vec::new(),
                shaping: None,
                up: false,
            },
        );
        id
    }

    /// What the lab is now, as the run built it: for the picture and the report.
    pub fn topology(&self) -> Topology {
        let ns_name = |id: NsId| self.namespaces.get(&id).map(|n| n.name.clone());
        Topology {
            namespaces: self
                .namespaces
                .iter()
                .map(|(id, n)| NsNode {
                    name: n.name.clone(),
                    forwarding: self.forwarding.contains(id),
                    routes: Vec::new(),
                })
                .collect(),
            links: self
                .links
                .values()
                .filter_map(|l| {
                    Some(LinkNode {
                        ns: ns_name(l.ns)?,
                        name: l.name.clone(),
                        kind: l.kind,
                        peer: l
                            .peer
                            .and_then(|p| self.links.get(&p))
                            .and_then(|p| Some((ns_name(p.ns)?, p.name.clone()))),
                        master: l
                            .master
                            .and_then(|m| self.links.get(&m))
                            .map(|m| m.name.clone()),
                        addresses: l.addresses.clone(),
                        shaping: l.shaping.clone(),
                        up: l.up,
                    })
                })
                .collect(),
        }
    }

    /// Remove everything the run created, newest first: its programs, then its namespaces.
    /// Closing a namespace's fd and netlink socket makes it unreachable at once, and the kernel
    /// then removes it with every link in it (a veth pair goes when either end goes), in one
    /// batch. Deleting each link first, as `delete` does to keep its "now" promise, would cost
    /// an RCU grace period per link: five times the whole run's time for a chain of 100
    /// namespaces (bench/run.sh). A step that fails is recorded and the rest goes on.
    pub async fn teardown(&mut self) -> Teardown {
        let since = Instant::now();
        let report = self.tear_down().await;
        self.spent.add(Work::Teardown, since);
        report
    }

    async fn tear_down(&mut self) -> Teardown {
        let mut report = Teardown::default();
        self.doors.close();
        let stopped = self.kill_processes(None).await;
        report.removed.extend(stopped.killed);
        report.problems.extend(stopped.left);
        // The programs are gone, so their watches and cgroup can go.
        self.programs.release_all();
        self.links.clear();
        // Listing what each namespace held costs a request per namespace: only when the user
        // asked for detail; otherwise teardown is closing handles, however large the lab.
        let list_links = self.sink.detailed();
        while let Some((_, ns)) = self.namespaces.pop_last() {
            if !list_links {
                report
                    .removed
                    .push(format!("netns {} (net:[{}])", ns.name, ns.inode));
                continue;
            }
            let links = match self.kernel.links(&ns.held, None).await {
                Ok(l) => l.into_iter().map(|l| l.name).collect::<Vec<_>>().join(", "),
                Err(e) => {
                    report.problems.push(TeardownProblem::Listing {
                        ns: ns.name.clone(),
                        error: e,
                    });
                    "?".to_string()
                }
            };
            report.removed.push(format!(
                "netns {} (net:[{}]) with links: {links}",
                ns.name, ns.inode
            ));
            drop(ns);
        }
        if let Err(e) = self.record.remove() {
            report.problems.push(TeardownProblem::Record(Arc::new(e)));
        }
        report
    }
}

impl<K: Kernel> Drop for Lab<K> {
    fn drop(&mut self) {
        // Teardown is normally awaited and reported by the run; this is the backstop for early
        // returns, so that nothing outlives the Lab value.
        self.programs.release_all();
        self.links.clear();
        while self.namespaces.pop_last().is_some() {}
    }
}

/// A lab without root, for tests: the fake kernel, which keeps the kernel's rules in memory
/// and starts programs as plain processes, and a sink that keeps what the lab said as lines.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use nslab_lab::input::Name;
/// use nslab_lab::records::{new_run_id, RunRecord};
/// use nslab_lab::testing::{Fake, Recorded};
/// use nslab_lab::{Lab, LabConfig, Mode, ProgramLimits};
///
/// let dir = std::env::temp_dir().join(format!("doc-{}", std::process::id()));
/// let record = RunRecord::new(new_run_id().unwrap(), "doc".into(), dir.clone());
/// let limits = ProgramLimits {
///     max_processes: 8,
///     max_links: 16,
///     program_memory: 1 << 30,
///     scratch_bytes: 1 << 20,
///     tripped: Arc::default(),
///     by_path: Vec::new(),
/// };
/// let sink = Arc::new(Recorded::default());
/// let fake = Fake::new();
/// let config = LabConfig { mode: Mode::Root, limits, record, sink: sink.clone() };
/// let mut lab = Lab::new(fake.clone(), config);
/// let name = |n: &str| Name::parse("name", n).unwrap();
/// let (a, b) = (lab.create_namespace(&name("a")).await.unwrap(), lab.create_namespace(&name("b")).await.unwrap());
/// lab.veth(&name("x"), a, &name("y"), b).await.unwrap();
/// assert_eq!(fake.links_of("a"), ["lo", "x@b/y"]);
/// assert!(lab.teardown().await.problems.is_empty());
/// assert!(fake.namespaces().is_empty());
/// # let _ = std::fs::remove_dir_all(dir);
/// # }
/// ```
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    pub use crate::events::Recorded;
    pub use crate::kernel::fake::Fake;
}

/// The runner program re-executed as one of the lab's own processes: the first argument says
/// which, and `main` hands the process over to it before anything else.
pub mod roles {
    /// The run's helper, in the run's user namespace (helper/).
    pub use crate::helper::{serve as helper, HELPER_ARG};
    /// The holder of an ordinary user's kept lab (persist/keeper.rs).
    pub use crate::persist::keeper::{serve as keeper, KEEPER_ARG};
    /// The janitor of a run's cgroups (programs/cgroup/).
    pub use crate::programs::cgroup::{janitor, JANITOR_ARG};

    /// If this process was started as one of the lab's own (its first argument names the
    /// role), be it, and say with what status to exit; None for the program's own start.
    /// A program that builds labs calls this first thing in `main`: the lab re-executes it
    /// (`std::env::current_exe()`) as its helper, keeper and janitor.
    pub fn dispatch() -> Option<std::process::ExitCode> {
        let mut args = std::env::args_os().skip(1);
        let role = args.next()?;
        if role == HELPER_ARG {
            return Some(helper());
        }
        if role == KEEPER_ARG {
            return Some(keeper());
        }
        if role == JANITOR_ARG {
            let dirs: Vec<std::path::PathBuf> = args.map(Into::into).collect();
            return Some(janitor(&dirs));
        }
        None
    }
}

/// The run's record as `runner ls` and `runner cleanup` read it, and what a kept lab is held by.
pub mod records {
    pub use crate::persist::keeper::{is_keeper, FIRST_FD};
    pub use crate::persist::pin;
    pub use crate::persist::record::{
        is_run_id, new_run_id, now_unix, own_dir, temp_files, write_whole, NsChange, NsRecord,
        RunRecord, RunStatus,
    };
}

/// Stepping into a running lab (`runner exec`, `shell`, `capture`): the namespaces' doors, the
/// operator's programs, and the message transport of the helper's socket.
pub mod operator {
    pub use crate::doors::{Doors, Entry, Shut};
    pub use crate::helper::packet_socket;
    pub use crate::helper::protocol::{receive, send};
    pub use crate::helper::sandbox::executable_system_dirs;
    pub use crate::programs::operator::*;
}

/// What this machine allows and has, as the lab finds it: programs on the system PATH,
/// Landlock and seccomp, cgroups, subordinate ids, and processes by pidfd.
pub mod host {
    pub use crate::helper::ids::subordinate_ids;
    pub use crate::process::{pidfd_open, pidfd_signal, process_start, SYSTEM_PATH};
    pub use crate::programs::confine::{landlock_abi, seccomp_available, DENIED};
    pub use crate::programs::find::{elsewhere, in_system_path, resolve};

    /// The cgroup hierarchy runs' programs are bounded by here, and sweeping dead runs' ones.
    pub mod cgroup {
        pub use crate::programs::cgroup::{detect, sweep_all, Hierarchy};
    }
}
