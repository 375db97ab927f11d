//! The lab: everything one run has created in the kernel, and the only code that touches it.
//!
//! Namespaces and links are kept in tables keyed by ids the guest never sees; the guest holds
//! WIT resource handles that point at these ids, so it can only ever name what it created.
//! Teardown removes everything, newest first, and keeps going when one step fails.

pub mod cgroup;
pub mod exec;
pub mod helper;
pub mod link;
pub mod netns;
pub mod pin;
pub mod route;
mod sandbox;
pub mod shaping;
mod sysctl;
mod watch;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::addr::{parse_mac, Cidr};
use crate::console::{Console, EchoBudget, Verbosity};
use crate::error::{LabError, LabResult};
use crate::guest_limits::Tripped;
use crate::names;
use crate::records::{NsRecord, RunRecord};
use cgroup::RunCgroup;
pub use exec::{Boxing, ExecOutput, ExecRequest};
pub use link::LinkInfoView;
use netns::{Namespace, NsFactory};
pub use route::Route;
pub use shaping::Shaping;

/// A namespace of this run. Ids grow, so their order is the order of creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NsId(u32);

/// A link of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(u32);

/// A background program of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcId(u32);

struct ProcEntry {
    ns: NsId,
    program: String,
    running: exec::Running,
    /// Counted for `max-processes` until it has ended.
    live: Option<Live>,
    /// The scenario dropped its handle: the entry goes as soon as the program has ended.
    orphan: bool,
}

/// What bounds the programs of a run, and how the lab enforces it.
pub struct ProgramLimits {
    /// Processes and threads of all the run's programs together (RLIMIT_NPROC, see exec.rs).
    pub max_processes: usize,
    /// Links in the namespaces where programs run (watch.rs).
    pub max_links: usize,
    /// Memory of all the run's programs together (a memory cgroup, see cgroup.rs).
    pub program_memory: u64,
    /// What programs may write into their namespace's box (sandbox.rs).
    pub scratch_bytes: u64,
    /// Program output echoed to the terminal, all programs together.
    pub echo_bytes: usize,
    /// Where a limit the runner watches trips, stopping the run.
    pub tripped: Arc<Tripped>,
}

impl Default for ProgramLimits {
    fn default() -> Self {
        ProgramLimits {
            max_processes: 64,
            max_links: 256,
            program_memory: 1 << 30,
            scratch_bytes: 64 << 20,
            echo_bytes: 1 << 20,
            tripped: Arc::default(),
        }
    }
}

/// How the memory of the run's programs is bounded, decided at the first program.
enum MemoryBound {
    Undecided,
    Cgroup(RunCgroup),
    /// No memory cgroup here: each program gets RLIMIT_AS instead.
    PerProgram,
}

/// Where a link lives now (it moves with `move-to`).
#[derive(Debug, Clone)]
struct LinkEntry {
    ns: NsId,
    index: u32,
    name: String,
}

pub struct Lab {
    factory: NsFactory,
    namespaces: BTreeMap<NsId, Namespace>,
    links: BTreeMap<LinkId, LinkEntry>,
    processes: BTreeMap<ProcId, ProcEntry>,
    next_id: u32,
    /// Links created by this run (veth ends), for the policy's count.
    links_created: usize,
    /// Programs of this run running now, for the policy's count.
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    console: Console,
    /// The runner's record of this run, kept in step with `namespaces` (see records.rs).
    record: RunRecord,
    limits: ProgramLimits,
    echo: Arc<EchoBudget>,
    memory: MemoryBound,
    link_limit: watch::LinkLimit,
    /// Namespaces whose links are watched, because a program has run in them.
    watchers: BTreeMap<NsId, tokio::task::JoinHandle<()>>,
}

/// One running program, counted for `max-processes` for as long as this lives.
struct Live(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Live {
    fn enter(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Live {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
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
            echo: Arc::new(EchoBudget::new(console, limits.echo_bytes)),
            memory: MemoryBound::Undecided,
            link_limit: watch::LinkLimit::new(limits.max_links, limits.tripped.clone()),
            watchers: BTreeMap::new(),
            limits,
            factory: NsFactory::new(exe),
            namespaces: BTreeMap::new(),
            links: BTreeMap::new(),
            processes: BTreeMap::new(),
            next_id: 0,
            links_created: 0,
            live: Default::default(),
            console,
            record,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.record.id
    }

    /// The record is what `runner ls` and `runner cleanup` go by; failing to write it does not
    /// stop the lab, but the user should know those commands will not see this run.
    fn save_record(&self) {
        if let Err(e) = self.record.save() {
            self.console.warn(&format!(
                "cannot write the run record under {}: {e}; `runner ls` will not show run {}",
                crate::records::RUN_DIR,
                self.record.id
            ));
        }
    }

    fn sync_record(&mut self) {
        self.record.namespaces = self
            .namespaces
            .values()
            .map(|n| NsRecord {
                name: n.name.clone(),
                inode: n.inode,
                pinned: None,
                files: None,
            })
            .collect();
        self.save_record();
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

    pub fn live_processes(&self) -> usize {
        self.live.load(std::sync::atomic::Ordering::SeqCst)
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

    pub fn create_namespace(&mut self, name: &str) -> LabResult<NsId> {
        names::validate("namespace", name)?;
        if self.namespaces.values().any(|n| n.name == name) {
            return Err(LabError::Exists(format!(
                "namespace {name} already exists in this run: pick another name or delete it first"
            )));
        }
        let ns = self.factory.create(name)?;
        let inode = ns.inode;
        let id = NsId(self.next());
        self.namespaces.insert(id, ns);
        // On record before it is shown: whatever the user has seen, `runner ls` can find.
        self.sync_record();
        self.console
            .action(&format!("netns add {name:<15}  net:[{inode}]"));
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
        self.kill_processes(Some(id)).await;
        if let Some(w) = self.watchers.remove(&id) {
            w.abort();
        }
        let (_, problems) = link::delete_all(&ns).await;
        self.links.retain(|_, l| l.ns != id);
        self.console.action(&format!("netns delete {}", ns.name));
        let name = ns.name.clone();
        drop(ns);
        self.sync_record();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Os(format!(
                "namespace {name} is deleted, but removing its links first failed: {}",
                problems.join("; ")
            )))
        }
    }

    // ---- links ----

    fn add_link(&mut self, ns: NsId, index: u32, name: &str) -> LinkId {
        let id = LinkId(self.next());
        self.links.insert(
            id,
            LinkEntry {
                ns,
                index,
                name: name.to_string(),
            },
        );
        id
    }

    pub async fn veth(
        &mut self,
        a: &str,
        a_ns: NsId,
        b: &str,
        b_ns: NsId,
    ) -> LabResult<(LinkId, LinkId)> {
        names::validate("link", a)?;
        names::validate("link", b)?;
        if a == b && a_ns == b_ns {
            return Err(LabError::Invalid(format!(
                "both ends of a veth pair are called {a} in the same namespace: give them different names"
            )));
        }
        let (ans, bns) = (self.ns(a_ns)?, self.ns(b_ns)?);
        let (ai, bi) = link::add_veth(a, ans, b, bns).await?;
        self.console.action(&format!(
            "link add {a} ({}) type veth peer {b} ({})",
            ans.name, bns.name
        ));
        self.links_created += 2;
        Ok((self.add_link(a_ns, ai, a), self.add_link(b_ns, bi, b)))
    }

    pub async fn loopback(&mut self, ns_id: NsId) -> LabResult<LinkId> {
        let ns = self.ns(ns_id)?;
        let lo = link::find(ns, "lo")
            .await?
            .ok_or_else(|| LabError::NotFound(format!("namespace {} has no loopback", ns.name)))?;
        let index = lo.header.index;
        if let Some((id, _)) = self
            .links
            .iter()
            .find(|(_, l)| l.ns == ns_id && l.index == index)
        {
            return Ok(*id);
        }
        Ok(self.add_link(ns_id, index, "lo"))
    }

    pub fn link_name(&self, id: LinkId) -> LabResult<&str> {
        Ok(&self.link(id)?.0.name)
    }

    pub async fn link_info(&self, id: LinkId) -> LabResult<LinkInfoView> {
        let (l, ns) = self.link(id)?;
        let mut found = link::describe(ns, Some(l.index), &l.name).await?;
        found
            .pop()
            .ok_or_else(|| LabError::NotFound(format!("link {} in {} is gone", l.name, ns.name)))
    }

    pub async fn links_in(&self, ns: NsId) -> LabResult<Vec<LinkInfoView>> {
        let ns = self.ns(ns)?;
        link::describe(ns, None, "").await
    }

    pub async fn set_up(&self, id: LinkId, up: bool) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let state = if up { "up" } else { "down" };
        let what = format!("link set {} {state} ({})", l.name, ns.name);
        link::set(ns, link::up_down(l.index, up), &what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn set_mtu(&self, id: LinkId, mtu: u32) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("link set {} mtu {mtu} ({})", l.name, ns.name);
        link::set(ns, link::mtu(l.index, mtu), &what)
            .await
            .map_err(|e| match e {
                LabError::Invalid(t) => LabError::Invalid(format!(
                    "{t}: the MTU is outside what this link accepts (68-65535 for a veth)"
                )),
                other => other,
            })?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn set_mac(&self, id: LinkId, mac: &str) -> LabResult<()> {
        let bytes = parse_mac(mac)?;
        let (l, ns) = self.link(id)?;
        let what = format!("link set {} address {mac} ({})", l.name, ns.name);
        link::set(ns, link::mac(l.index, bytes), &what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn move_to(&mut self, id: LinkId, target: NsId) -> LabResult<()> {
        let (l, from) = self.link(id)?;
        let to = self.ns(target)?;
        if l.ns == target {
            return Ok(());
        }
        if l.name == "lo" {
            return Err(LabError::Invalid(format!(
                "the loopback of {} cannot move: every namespace keeps its own",
                from.name
            )));
        }
        if link::find(to, &l.name).await?.is_some() {
            return Err(LabError::Exists(format!(
                "cannot move {} into {}: that namespace already has a link with this name",
                l.name, to.name
            )));
        }
        let what = format!("link set {} netns {} (from {})", l.name, to.name, from.name);
        link::set(from, link::move_to(l.index, to), &what).await?;
        // The kernel keeps the index when it is free in the new namespace, else picks another.
        let moved = link::find(to, &l.name).await?.ok_or_else(|| {
            LabError::Os(format!("{what}: the link is not in {} afterwards", to.name))
        })?;
        self.console.action(&what);
        let index = moved.header.index;
        let entry = self.links.get_mut(&id).expect("looked up above");
        entry.ns = target;
        entry.index = index;
        Ok(())
    }

    pub async fn add_address(&self, id: LinkId, cidr: Cidr) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("address add {cidr} dev {} ({})", l.name, ns.name);
        link::add_address(ns, l.index, cidr, &what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn remove_address(&self, id: LinkId, cidr: &str) -> LabResult<()> {
        let cidr: Cidr = cidr.parse()?;
        let (l, ns) = self.link(id)?;
        let what = format!("address del {cidr} dev {} ({})", l.name, ns.name);
        link::remove_address(ns, l.index, cidr, &what).await?;
        self.console.action(&what);
        Ok(())
    }

    // ---- programs ----

    /// The run's user namespace, which every program joins. It exists once any namespace does.
    fn userns(&self) -> LabResult<std::os::fd::RawFd> {
        self.factory.userns_fd().ok_or_else(|| {
            LabError::Trap(wasmtime::format_err!(
                "a namespace exists but the run has no user namespace"
            ))
        })
    }

    /// Everything a program in `ns_id` is boxed with, made on first use: the namespace's
    /// filesystem box, the run's memory cgroup, the watch on the namespace's links.
    fn boxing(&mut self, ns_id: NsId) -> LabResult<Boxing> {
        let userns = self.userns()?;
        if matches!(self.memory, MemoryBound::Undecided) {
            self.memory = match cgroup::detect() {
                Ok(h) => MemoryBound::Cgroup(
                    RunCgroup::create(
                        &h,
                        &self.record.id,
                        self.limits.program_memory,
                        self.factory.exe(),
                    )
                    .map_err(LabError::Os)?,
                ),
                Err(_) => MemoryBound::PerProgram,
            };
        }
        if !self.watchers.contains_key(&ns_id) {
            let watcher = self.link_limit.watch(self.ns(ns_id)?)?;
            self.watchers.insert(ns_id, watcher);
        }
        let ns = self.namespaces.get_mut(&ns_id).ok_or_else(|| {
            LabError::NotFound("that namespace was deleted: create a new one".to_string())
        })?;
        if ns.boxfs.is_none() {
            ns.boxfs = Some(self.factory.new_box(&ns.name, self.limits.scratch_bytes)?);
        }
        Ok(Boxing {
            userns,
            netns: ns.raw_fd(),
            mntns: ns.boxfs.as_ref().expect("made above").as_raw_fd(),
            cgroup_procs: match &self.memory {
                MemoryBound::Cgroup(c) => Some(c.procs_fd()),
                _ => None,
            },
            max_processes: self.limits.max_processes as u64,
            address_space: matches!(self.memory, MemoryBound::PerProgram)
                .then_some(self.limits.program_memory),
        })
    }

    pub async fn exec(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ExecOutput> {
        let boxing = self.boxing(ns_id)?;
        let name = self.ns(ns_id)?.name.clone();
        let shown = crate::console::printable(&req.command_line()).into_owned();
        self.console
            .line(Verbosity::Normal, &format!("   $ {name}: {shown}"));
        // Counted while it runs, and uncounted however the call ends (even when dropped).
        let _live = Live::enter(&self.live);
        let out = exec::run(&name, boxing, req, self.echo.clone()).await?;
        if out.timed_out {
            self.console.action(&format!(
                "killed after its time limit ({:.1?})",
                out.duration
            ));
        }
        Ok(out)
    }

    pub fn set_forwarding(&self, id: NsId, on: bool) -> LabResult<()> {
        let ns = self.ns(id)?;
        let what = format!(
            "sysctl net.ipv4.ip_forward={} net.ipv6.conf.all.forwarding={} ({})",
            u8::from(on),
            u8::from(on),
            ns.name
        );
        sysctl::set_forwarding(ns.fd(), on, &what)?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn bridge(&mut self, name: &str, ns_id: NsId) -> LabResult<LinkId> {
        names::validate("link", name)?;
        let ns = self.ns(ns_id)?;
        let index = link::add_bridge(ns, name).await?;
        self.console
            .action(&format!("link add {name} ({}) type bridge", ns.name));
        self.links_created += 1;
        Ok(self.add_link(ns_id, index, name))
    }

    pub async fn set_master(&self, id: LinkId, bridge: LinkId) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let (b, bns) = self.link(bridge)?;
        if l.ns != b.ns {
            return Err(LabError::Invalid(format!(
                "{} ({}) and {} ({}) are in different namespaces: a link joins a bridge of its own namespace",
                l.name, ns.name, b.name, bns.name
            )));
        }
        let kind = link::describe(bns, Some(b.index), &b.name)
            .await?
            .pop()
            .map(|v| v.kind)
            .unwrap_or_default();
        if kind != "bridge" {
            return Err(LabError::Invalid(format!(
                "{} is a {kind} link, not a bridge: create one with link.bridge",
                b.name
            )));
        }
        let what = format!("link set {} master {} ({})", l.name, b.name, ns.name);
        link::set(ns, link::master(l.index, b.index), &what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn set_shaping(&self, id: LinkId, s: Shaping) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!(
            "qdisc replace dev {} root {} ({})",
            l.name,
            s.describe(),
            ns.name
        );
        shaping::set(ns, l.index, &s, &what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn clear_shaping(&self, id: LinkId) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("qdisc del dev {} root ({})", l.name, ns.name);
        shaping::clear(ns, l.index, &what).await?;
        self.console.action(&what);
        Ok(())
    }

    /// Parse a route as the scenario wrote it, resolving the device name in the namespace.
    pub async fn parse_route(
        &self,
        ns_id: NsId,
        dest: &str,
        gateway: Option<&str>,
        device: Option<&str>,
    ) -> LabResult<Route> {
        let ns = self.ns(ns_id)?;
        let gateway = gateway
            .map(|g| {
                g.parse().map_err(|_| {
                    LabError::Invalid(format!("route gateway {g:?} is not an IP address"))
                })
            })
            .transpose()?;
        let destination = route::parse_destination(dest, gateway)?;
        let device = match device {
            None => None,
            Some(name) => {
                let found = link::find(ns, name).await?.ok_or_else(|| {
                    LabError::NotFound(format!(
                        "route via device {name}: namespace {} has no such link",
                        ns.name
                    ))
                })?;
                Some((name.to_string(), found.header.index))
            }
        };
        Ok(Route {
            destination,
            gateway,
            device,
        })
    }

    fn describe_route(r: &Route) -> String {
        let mut text = if r.destination.prefix == 0 {
            "default".to_string()
        } else {
            r.destination.to_string()
        };
        if let Some(g) = r.gateway {
            text.push_str(&format!(" via {g}"));
        }
        if let Some((d, _)) = &r.device {
            text.push_str(&format!(" dev {d}"));
        }
        text
    }

    pub async fn add_route(&self, ns_id: NsId, r: &Route) -> LabResult<()> {
        let ns = self.ns(ns_id)?;
        let what = format!("route add {} ({})", Self::describe_route(r), ns.name);
        route::add(ns, r, &what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn remove_route(&self, ns_id: NsId, r: &Route) -> LabResult<()> {
        let ns = self.ns(ns_id)?;
        let what = format!("route del {} ({})", Self::describe_route(r), ns.name);
        route::remove(ns, r, &what).await?;
        self.console.action(&what);
        Ok(())
    }

    /// The namespace's routes as (destination, gateway, device name).
    pub async fn routes(
        &self,
        ns_id: NsId,
    ) -> LabResult<Vec<(String, Option<String>, Option<String>)>> {
        let ns = self.ns(ns_id)?;
        let names: BTreeMap<u32, String> = link::describe(ns, None, "")
            .await?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        Ok(route::list(ns)
            .await?
            .into_iter()
            .map(|(dst, gw, oif)| {
                let dest = if dst.prefix == 0 && dst.addr.is_ipv4() {
                    "default".to_string()
                } else {
                    dst.to_string()
                };
                (
                    dest,
                    gw.map(|g| g.to_string()),
                    oif.and_then(|i| names.get(&i).cloned()),
                )
            })
            .collect())
    }

    /// Start a program in the background; the lab owns it until it ends or the run does.
    pub fn spawn(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ProcId> {
        // Programs the scenario let go of and that have ended are released first.
        self.processes
            .retain(|_, p| !(p.orphan && p.running.exited()));
        let boxing = self.boxing(ns_id)?;
        let name = self.ns(ns_id)?.name.clone();
        let program = req.program.clone();
        let shown = crate::console::printable(&req.command_line()).into_owned();
        let live = Live::enter(&self.live);
        let running = exec::start(&name, boxing, req, self.echo.clone(), Some(program.clone()))?;
        self.console.line(
            Verbosity::Normal,
            &format!(
                "   $ {name}: {shown} &   (background, pid {})",
                running.id()
            ),
        );
        let id = ProcId(self.next());
        self.processes.insert(
            id,
            ProcEntry {
                ns: ns_id,
                program,
                running,
                live: Some(live),
                orphan: false,
            },
        );
        Ok(id)
    }

    /// The scenario dropped its handle to a program. One that has ended is released now, with
    /// its output; one still running keeps running (the run's end stops it) but its output is
    /// no longer kept, and it is released once it has ended.
    pub fn process_release(&mut self, id: ProcId) {
        let Some(entry) = self.processes.get_mut(&id) else {
            return;
        };
        if entry.running.exited() {
            self.processes.remove(&id);
        } else {
            entry.orphan = true;
            entry.running.discard_output();
        }
    }

    fn process(&mut self, id: ProcId) -> LabResult<&mut ProcEntry> {
        self.processes.get_mut(&id).ok_or_else(|| {
            LabError::NotFound("that program is gone: its namespace was deleted".into())
        })
    }

    pub fn process_id(&mut self, id: ProcId) -> LabResult<u32> {
        Ok(self.process(id)?.running.id())
    }

    /// Wait up to `limit` for a background program; error.timeout if it is still running.
    pub async fn process_wait(
        &mut self,
        id: ProcId,
        limit: std::time::Duration,
    ) -> LabResult<ExecOutput> {
        let console = self.console;
        let entry = self.process(id)?;
        let ended_before = entry.running.has_ended();
        match entry.running.wait(limit).await? {
            Some(out) => {
                let out = out.clone();
                entry.live = None;
                if !ended_before {
                    console.action(&format!(
                        "{} (pid {}) ended with status {}",
                        entry.program,
                        entry.running.id(),
                        out.status
                    ));
                }
                Ok(out)
            }
            None => Err(LabError::Timeout(format!(
                "{} (pid {}) is still running after {} ms: wait again, or kill it",
                entry.program,
                entry.running.id(),
                limit.as_millis()
            ))),
        }
    }

    /// Stop a background program: SIGTERM, then SIGKILL after a second.
    pub async fn process_kill(&mut self, id: ProcId) -> LabResult<()> {
        let console = self.console;
        let entry = self.process(id)?;
        if entry.running.has_ended() {
            return Ok(());
        }
        let out = entry
            .running
            .terminate(std::time::Duration::from_secs(1))
            .await?;
        let status = out.status;
        entry.live = None;
        console.action(&format!(
            "kill {} (pid {}): ended with status {status}",
            entry.program,
            entry.running.id()
        ));
        Ok(())
    }

    /// Kill the background programs still running (in one namespace, or all), for teardown.
    async fn kill_processes(&mut self, only: Option<NsId>) -> Vec<String> {
        let ids: Vec<ProcId> = self
            .processes
            .iter()
            .filter(|(_, p)| only.is_none_or(|n| p.ns == n))
            .map(|(id, _)| *id)
            .collect();
        let mut killed = Vec::new();
        for id in ids.into_iter().rev() {
            if let Some(mut p) = self.processes.remove(&id) {
                if !p.running.has_ended() {
                    let _ = p.running.kill_now(false).await;
                    killed.push(format!("program {} (pid {})", p.program, p.running.id()));
                }
            }
        }
        killed
    }

    // ---- the end ----

    /// Remove everything the run created, newest first: its programs, then its namespaces.
    /// Closing a namespace's fd and netlink socket makes it unreachable at once, and the kernel
    /// then removes it with every link in it (a veth pair goes when either end goes), in one
    /// batch. Deleting each link first, as `delete` does to keep its "now" promise, would cost
    /// an RCU grace period per link: five times the whole run's time for a chain of 100
    /// namespaces (bench/chain.sh). A step that fails is recorded and the rest goes on.
    pub async fn teardown(&mut self) -> Teardown {
        let mut report = Teardown::default();
        report.removed.extend(self.kill_processes(None).await);
        for (_, w) in std::mem::take(&mut self.watchers) {
            w.abort();
        }
        // The programs are gone, so their cgroup can go.
        self.memory = MemoryBound::Undecided;
        self.links.clear();
        while let Some((_, ns)) = self.namespaces.pop_last() {
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

    /// Keep the lab after the run: pin every namespace as /run/netns/nslab-RUNID-NAME, record
    /// the pins, and let go of the fds. If any pin fails, undo the others and report; the caller
    /// then tears the lab down as usual.
    pub fn keep(&mut self) -> LabResult<Vec<NsRecord>> {
        let mut kept: Vec<NsRecord> = Vec::new();
        let mut failed = None;
        for ns in self.namespaces.values() {
            let pinned = format!("nslab-{}-{}", self.record.id, ns.name);
            if let Err(e) = pin::pin(ns.fd(), &pinned) {
                failed = Some(LabError::from_io(
                    &e,
                    format!("pin {} as /run/netns/{pinned}", ns.name),
                ));
                break;
            }
            let mut record = NsRecord {
                name: ns.name.clone(),
                inode: ns.inode,
                pinned: Some(pinned.clone()),
                files: None,
            };
            // What its programs wrote stays too, until `runner cleanup`.
            if let Some(boxfs) = &ns.boxfs {
                let inode = nix::sys::stat::fstat(boxfs).map(|s| s.st_ino).unwrap_or(0);
                match pin::pin_box(std::os::fd::AsFd::as_fd(boxfs), &pinned) {
                    Ok(_) => record.files = Some((pinned.clone(), inode)),
                    Err(e) => {
                        failed = Some(LabError::from_io(
                            &e,
                            format!("pin the files of {} as {}/{pinned}", ns.name, pin::BOX_DIR),
                        ))
                    }
                }
            }
            kept.push(record);
            // Recorded as each pin is made, so `cleanup` finds them whatever happens next.
            self.record.namespaces = kept.clone();
            self.save_record();
            if failed.is_some() {
                break;
            }
        }
        if let Some(e) = failed {
            for k in &kept {
                let _ = pin::unpin(k.pinned.as_deref().unwrap_or_default(), k.inode);
                if let Some((name, inode)) = &k.files {
                    let _ = pin::unpin_box(name, *inode);
                }
            }
            self.sync_record();
            return Err(e);
        }
        self.record.kept = true;
        self.save_record();
        self.processes.clear();
        self.links.clear();
        self.namespaces.clear();
        Ok(kept)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Teardown is normally awaited and reported by the run; this is the backstop for early
        // returns, so that nothing outlives the Lab value.
        for w in self.watchers.values() {
            w.abort();
        }
        self.processes.clear();
        self.links.clear();
        while self.namespaces.pop_last().is_some() {}
    }
}
