//! The lab: everything one run has created in the kernel, and the only code that touches it.
//!
//! Namespaces and links are kept in tables keyed by ids the guest never sees; the guest holds
//! WIT resource handles that point at these ids, so it can only ever name what it created.
//! Teardown removes everything, newest first, and keeps going when one step fails.
//!
//! This file holds the tables and the namespaces; `topology.rs` what is built between them,
//! `programs.rs` the programs run in them, `keep.rs` the run's record and `--keep`.

pub mod cgroup;
mod child;
pub mod confine;
pub mod exec;
mod files;
pub mod helper;
mod keep;
pub mod keeper;
pub mod link;
pub mod netns;
pub mod pin;
mod programs;
pub mod route;
mod sandbox;
pub mod shaping;
mod sysctl;
mod topology;
mod watch;

use std::collections::BTreeMap;

use crate::console::Console;
use crate::error::{LabError, LabResult};
use crate::input::Name;
use crate::records::RunRecord;
pub use exec::{Boxing, ExecOutput, ExecRequest};
pub use link::LinkInfoView;
use netns::{Namespace, NsFactory};
pub use programs::ProgramLimits;
pub use route::Route;
pub use shaping::Shaping;
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

/// Where a link lives now (it moves with `move-to`), and what the run made of it, for the
/// picture of the lab (account/graph.rs).
#[derive(Debug, Clone)]
struct LinkEntry {
    ns: NsId,
    index: u32,
    name: String,
    kind: crate::account::LinkKind,
    peer: Option<LinkId>,
    master: Option<LinkId>,
    addresses: Vec<String>,
    shaping: Option<String>,
    up: bool,
}

pub struct Lab {
    factory: NsFactory,
    namespaces: BTreeMap<NsId, Namespace>,
    links: BTreeMap<LinkId, LinkEntry>,
    programs: programs::Programs,
    next_id: u32,
    /// Links created by this run (veth ends, bridges), for the policy's count.
    links_created: usize,
    /// Files the scenario has given its namespaces (files.rs), for the policy's count.
    files_written: usize,
    /// Namespaces the scenario turned forwarding on in.
    forwarding: std::collections::BTreeSet<NsId>,
    console: Console,
    /// The runner's record of this run, kept in step with `namespaces` (see keep.rs).
    record: RunRecord,
    /// Whether the record is on disk (it is written at the first namespace): None before then.
    record_saved: Option<bool>,
}

/// The bound on the processes and threads of everything in the run's user namespace together
/// (helper.rs): the programs' `max-processes`, plus each running program's shim and init (the
/// policy lets at most `max-processes` programs run at once) and the helper with a child. The
/// run's pids cgroup, where there is one, holds the programs to exactly `max-processes`.
pub fn userns_processes(max_processes: usize) -> u64 {
    3 * max_processes as u64 + 4
}

/// What teardown removed and what went wrong on the way.
#[derive(Debug, Default)]
pub struct Teardown {
    pub removed: Vec<String>,
    pub problems: Vec<String>,
}

impl Lab {
    /// `exe` is the runner program, re-executed as the lab helper (see helper.rs).
    pub fn new(
        console: Console,
        record: RunRecord,
        exe: std::path::PathBuf,
        limits: ProgramLimits,
    ) -> Lab {
        Lab {
            factory: NsFactory::new(exe, userns_processes(limits.max_processes)),
            namespaces: BTreeMap::new(),
            links: BTreeMap::new(),
            programs: programs::Programs::new(console.clone(), limits),
            next_id: 0,
            links_created: 0,
            files_written: 0,
            forwarding: Default::default(),
            console,
            record,
            record_saved: None,
        }
    }

    /// Make the run's user namespace now rather than at the first namespace: for an ordinary
    /// user, whether the kernel allows it is known before the scenario starts.
    pub fn prepare(&mut self) -> LabResult<()> {
        self.start_helper()
    }

    /// Start the run's helper and user namespace if they are not yet, and say which host ids
    /// the run's programs will be: what `ps` shows for them, and what `runner ls` and
    /// `cleanup` go by.
    fn start_helper(&mut self) -> LabResult<()> {
        if !self.factory.start_helper()? {
            return Ok(());
        }
        let helper = self.factory.helper()?;
        let blocks = helper.host_blocks();
        let userns = helper.userns_inode();
        let shown: Vec<String> = blocks
            .iter()
            .map(|&(first, count)| match count {
                1 => first.to_string(),
                _ => format!("{first}-{}", first + (count - 1)),
            })
            .collect();
        self.console.line(
            crate::console::Verbosity::Verbose,
            &format!(
                "       host ids {} (the run's programs; user namespace user:[{userns}])",
                shown.join(", ")
            ),
        );
        self.record.host_ids = blocks;
        self.record.userns = Some(userns);
        Ok(())
    }

    pub fn run_id(&self) -> &str {
        &self.record.id
    }

    fn next(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    pub fn namespace_count(&self) -> usize {
        self.namespaces.len()
    }

    pub fn links_created(&self) -> usize {
        self.links_created
    }

    /// Netlink requests the lab has made so far (netns.rs counts them).
    pub fn kernel_requests(&self) -> u64 {
        self.factory.requests()
    }

    fn ns(&self, id: NsId) -> LabResult<&Namespace> {
        self.namespaces.get(&id).ok_or_else(|| {
            LabError::NotFound("that namespace was deleted: create a new one".to_string())
        })
    }

    /// A link and the namespace it is in now.
    fn link(&self, id: LinkId) -> LabResult<(&LinkEntry, &Namespace)> {
        let entry = self.links.get(&id).ok_or_else(|| {
            LabError::NotFound("that link is gone: its namespace was deleted".to_string())
        })?;
        Ok((entry, self.ns(entry.ns)?))
    }

    // ---- namespaces ----

    pub fn create_namespace(&mut self, name: &Name) -> LabResult<NsId> {
        let name = name.as_str();
        if self.namespaces.values().any(|n| n.name == name) {
            return Err(LabError::Exists(format!(
                "namespace {name} already exists in this run: pick another name or delete it first"
            )));
        }
        self.start_helper()?;
        let ns = self.factory.create(name)?;
        let inode = ns.inode;
        let id = NsId(self.next());
        self.namespaces.insert(id, ns);
        // On record before it is shown: whatever the user has seen, `runner ls` can find.
        self.log_namespace(crate::records::NsChange::Made {
            name: name.to_string(),
            inode,
        });
        self.console
            .action(&format!("netns add {name:<15}  net:[{inode}]"));
        self.console
            .lab_size(self.namespaces.len(), self.links_created);
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

    /// Delete a namespace now: its links first (so they and their veth peers are gone when
    /// this returns), then its fd and netlink socket.
    pub async fn delete_namespace(&mut self, id: NsId) -> LabResult<()> {
        let ns = self
            .namespaces
            .remove(&id)
            .ok_or_else(|| LabError::NotFound("that namespace was already deleted".to_string()))?;
        let stopped = self.kill_processes(Some(id)).await;
        self.programs.unwatch(id);
        let (_, mut problems) = link::delete_all(&ns).await;
        problems.extend(stopped.left);
        self.links.retain(|_, l| l.ns != id);
        self.console.action(&format!("netns delete {}", ns.name));
        let name = ns.name.clone();
        drop(ns);
        self.log_namespace(crate::records::NsChange::Deleted { name: name.clone() });
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Os(format!(
                "namespace {name} is deleted, but removing its links first failed: {}",
                problems.join("; ")
            )))
        }
    }

    fn add_link(
        &mut self,
        ns: NsId,
        index: u32,
        name: &str,
        kind: crate::account::LinkKind,
    ) -> LinkId {
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
    pub fn topology(&self) -> crate::account::Topology {
        use crate::account::{LinkNode, NsNode, Topology};
        let ns_name = |id: NsId| self.namespaces.get(&id).map(|n| n.name.clone());
        Topology {
            namespaces: self
                .namespaces
                .iter()
                .map(|(id, n)| NsNode {
                    name: n.name.clone(),
                    forwarding: self.forwarding.contains(id),
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
        let mut report = Teardown::default();
        let stopped = self.kill_processes(None).await;
        report.removed.extend(stopped.killed);
        report.problems.extend(stopped.left);
        // The programs are gone, so their watches and cgroup can go.
        self.programs.release_all();
        self.links.clear();
        // Listing what each namespace held costs a request per namespace: only for `-v`, which
        // prints it; otherwise teardown is closing fds, however large the lab.
        let list_links = self.console.verbosity >= crate::console::Verbosity::Verbose;
        while let Some((_, ns)) = self.namespaces.pop_last() {
            if !list_links {
                report
                    .removed
                    .push(format!("netns {} (net:[{}])", ns.name, ns.inode));
                continue;
            }
            let links = match link::describe(&ns, None, "").await {
                Ok(l) => l.into_iter().map(|l| l.name).collect::<Vec<_>>().join(", "),
                Err(e) => {
                    report
                        .problems
                        .push(format!("listing the links of {}: {e}", ns.name));
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
            report
                .problems
                .push(format!("removing the run record: {e}"));
        }
        report
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Teardown is normally awaited and reported by the run; this is the backstop for early
        // returns, so that nothing outlives the Lab value.
        self.programs.release_all();
        self.links.clear();
        while self.namespaces.pop_last().is_some() {}
    }
}
