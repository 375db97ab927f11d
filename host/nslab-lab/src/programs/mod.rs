//! The run's programs: starting them boxed, the limits they share (processes, memory, links),
//! background programs and their handles, and stopping them. Its rooms: `exec.rs` (a program
//! started and waited for), `launch.rs` (starting one, through the helper: helper/spawn.rs),
//! `starts.rs` (what became of a start, told in order), `capture.rs` (its output as it comes),
//! `find.rs` (where a program is), `confine.rs` (Landlock and seccomp), `cgroup/` (the run's
//! cgroups), `watch.rs` (links programs make).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod capture;
pub mod cgroup;
pub mod code;
pub mod confine;
pub mod exec;
pub mod find;
mod handles;
mod launch;
pub mod operator;
mod start_pipes;
pub mod starts;
mod watch;

use cgroup::RunCgroup;
use exec::{Boxing, ExecOutput, ExecRequest};

use super::helper::ids::GroupDrop;
use super::helper::port::Port;
use super::helper::protocol::Confinement;
use super::kernel::Kernel;
use super::{Lab, LabEvent, NsId, ProcId, Sink, Tripped};
use crate::error::{LabError, LabResult};

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
    /// What programs may write into their namespace's box (lab/helper/sandbox.rs).
    pub scratch_bytes: u64,
    /// Where a limit the runner watches trips, stopping the run.
    pub tripped: Arc<Tripped>,
    /// Programs the operator allowed by path, as (name, file): each box shows them.
    pub by_path: Vec<(String, std::path::PathBuf)>,
}

/// How the memory of the run's programs is bounded, decided at the first program.
enum MemoryBound {
    Undecided,
    Cgroup(RunCgroup),
    /// No memory cgroup here: each program gets RLIMIT_AS instead.
    PerProgram,
}

/// Everything about the run's programs that the lab keeps.
pub(super) struct Programs {
    processes: BTreeMap<ProcId, ProcEntry>,
    /// Programs of this run running now, for the policy's count.
    live: Arc<AtomicUsize>,
    limits: ProgramLimits,
    sink: Arc<dyn Sink>,
    memory: MemoryBound,
    link_limit: watch::LinkLimit,
    /// Namespaces whose links are watched, because a program has run in them.
    watchers: BTreeMap<NsId, tokio::task::JoinHandle<()>>,
    /// The files the run's programs may execute, as the run allowed them (before its first
    /// program), and what confines them to those, made at the first program (confine.rs).
    executables: Vec<std::path::PathBuf>,
    /// Those files as the kernel executes them (each program and its ELF loader), and what
    /// the boxes mount executable (code.rs): worked out once, at the first box.
    code: Option<Code>,
    confinement: Option<confine::Confinement>,
    /// The starts of background programs not told yet (starts.rs).
    starts: Arc<starts::StartLog>,
}

impl Programs {
    pub(super) fn new(sink: Arc<dyn Sink>, limits: ProgramLimits) -> Programs {
        Programs {
            processes: BTreeMap::new(),
            live: Arc::default(),
            sink,
            memory: MemoryBound::Undecided,
            link_limit: watch::LinkLimit::new(limits.max_links, limits.tripped.clone()),
            watchers: BTreeMap::new(),
            executables: Vec::new(),
            code: None,
            confinement: None,
            starts: Arc::default(),
            limits,
        }
    }

    pub(super) fn limits(&self) -> &ProgramLimits {
        &self.limits
    }

    /// Work out, once, what the run's programs execute and what its boxes mount executable.
    pub(super) fn work_out_code(&mut self) -> &Code {
        self.code.get_or_insert_with(|| {
            let executables = confine::executables(&self.executables);
            let mounted = code::closure(&executables).paths();
            Code {
                executables,
                mounted,
            }
        })
    }

    /// What the boxes mount executable (empty before [`Programs::work_out_code`]).
    pub(super) fn mounted(&self) -> &[std::path::PathBuf] {
        self.code.as_ref().map_or(&[], |c| &c.mounted)
    }

    /// Tell the starts of background programs not told yet: before anything else the run says.
    pub(super) async fn tell_starts(&self) {
        self.starts.flush().await;
    }

    /// Whether programs have run in `ns`, whose links are then watched.
    pub(super) fn watches(&self, ns: NsId) -> bool {
        self.watchers.contains_key(&ns)
    }

    /// Links in the watched namespaces now, whoever made them; None when none is watched.
    pub(super) fn watched_links(&self) -> Option<usize> {
        (!self.watchers.is_empty()).then(|| self.link_limit.total())
    }

    /// Stop watching a namespace (it is being deleted, or the run ends).
    pub(super) fn unwatch(&mut self, ns: NsId) {
        if let Some(w) = self.watchers.remove(&ns) {
            w.abort();
        }
    }

    /// After the programs are gone: stop every watch, and kill whatever of theirs the run's
    /// cgroup still holds. The cgroup itself goes with the lab, after the helper it also holds.
    pub(super) fn release_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.watchers) {
            w.abort();
        }
        self.processes.clear();
        if let MemoryBound::Cgroup(c) = &self.memory {
            c.kill_programs();
        }
    }
}

/// The run's programs as files: what they execute and what the boxes mount executable.
pub(super) struct Code {
    /// Each allowed program and its ELF loader, for the Landlock ruleset (confine.rs).
    pub executables: Vec<std::path::PathBuf>,
    /// What the boxes mount executable (code.rs).
    pub mounted: Vec<std::path::PathBuf>,
}

/// One running program, counted for `max-processes` for as long as this lives.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<K: Kernel> Lab<K> {
    /// The files the run's programs may execute (the programs the scenario declared and the
    /// policy allows, resolved): the kernel refuses any other (confine.rs).
    pub fn allow_executables(&mut self, files: Vec<std::path::PathBuf>) {
        self.programs.executables = files;
        self.programs.code = None;
        self.programs.confinement = None;
    }

    /// What the run's programs may execute, once their first one has started.
    pub fn executables(&self) -> Option<&[std::path::PathBuf]> {
        self.programs
            .confinement
            .as_ref()
            .map(|c| c.executables.as_slice())
    }

    /// The run's cgroups, made at the first use of a box (a program, or a file given to a
    /// namespace), with the lab helper moved in: what it writes and builds for the run is the
    /// run's memory (issue 19). A run that only builds namespaces makes none.
    pub(super) fn run_cgroup(&mut self) -> LabResult<()> {
        if !matches!(self.programs.memory, MemoryBound::Undecided) {
            return Ok(());
        }
        let since = std::time::Instant::now();
        let hierarchy = match self.kernel.cgroup_janitor() {
            Some(janitor) => cgroup::detect().map(|h| (h, janitor.to_path_buf())),
            None => Err(LabError::not_found("no cgroups on this kernel")),
        };
        self.programs.memory = match hierarchy {
            Ok((h, janitor)) => {
                let records = self.record.dir.clone();
                let alive = move |id: &str| {
                    let path = records.join(format!("{id}.json"));
                    super::persist::record::RunRecord::load_from(&path)
                        .is_ok_and(|r| r.status() == super::persist::record::RunStatus::Running)
                };
                let c = RunCgroup::create(
                    &h,
                    &self.record.id,
                    self.programs.limits.program_memory,
                    self.programs.limits.max_processes,
                    &janitor,
                    &alive,
                )?;
                if let Some(helper) = self.kernel.port()?.pid() {
                    c.adopt(helper).map_err(|e| {
                        LabError::os(format!(
                            "cannot move the lab helper into the run's cgroup: {e}"
                        ))
                    })?;
                }
                MemoryBound::Cgroup(c)
            }
            Err(_) => MemoryBound::PerProgram,
        };
        self.spent.add(crate::spent::Work::Cgroups, since);
        Ok(())
    }

    /// Everything a program in `ns_id` is boxed with, made on first use: the namespace's
    /// filesystem box, the watch on the namespace's links; and, at the run's first program,
    /// the run's cgroups and what confines every program, handed to the helper that starts
    /// them (helper/spawn.rs).
    pub(super) async fn boxing(&mut self, ns_id: NsId) -> LabResult<Boxing> {
        self.run_cgroup()?;
        let mntns = self.boxfs(ns_id).await?.as_raw_fd();
        // The namespace's first program: its links are watched, and its door opens, from now.
        let first = !self.programs.watchers.contains_key(&ns_id);
        if first {
            // The socket made with the box: a namespace's watch ends only when the namespace
            // is deleted, so it is taken once.
            let socket = self
                .namespaces
                .get_mut(&ns_id)
                .and_then(|ns| K::ns_box_mut(&mut ns.held).link_events.take())
                .ok_or_else(|| {
                    LabError::bug("a namespace's box came without its link-events socket")
                })?;
            let ns = self.ns(ns_id)?;
            let watcher =
                self.programs
                    .link_limit
                    .watch(&ns.name, K::link_handle(&ns.held)?, socket)?;
            self.programs.watchers.insert(ns_id, watcher);
        }
        if self.programs.confinement.is_none() {
            let since = std::time::Instant::now();
            let executables = self.programs.work_out_code().executables.clone();
            let confinement = confine::Confinement::new(executables)?;
            let cgroups = match &self.programs.memory {
                MemoryBound::Cgroup(c) => c.program_procs(),
                _ => Vec::new(),
            };
            let landlock = confinement.ruleset_fd();
            let helper = self.kernel.port()?;
            helper
                .confine(
                    Confinement {
                        max_processes: super::program_processes(self.programs.limits.max_processes),
                        address_space: matches!(self.programs.memory, MemoryBound::PerProgram)
                            .then_some(self.programs.limits.program_memory),
                        drop_groups: helper.groups() == GroupDrop::Inside,
                        landlock: landlock.is_some(),
                        cgroups: cgroups.len() as u8,
                        filters: confinement.filter_bytes(),
                    },
                    &landlock.into_iter().chain(cgroups).collect::<Vec<_>>(),
                )
                .await?;
            self.programs.confinement = Some(confinement);
            self.spent.add(crate::spent::Work::Confinement, since);
        }
        let ns = self.ns(ns_id)?;
        let utsns = K::ns_box(&ns.held)
            .uts
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .ok_or_else(|| LabError::not_found("that namespace was deleted".to_string()))?;
        let boxing = Boxing {
            netns: K::ns_fd(&ns.held).as_raw_fd(),
            mntns,
            utsns,
        };
        if first {
            self.door_opens(&ns.name, boxing)?;
        }
        Ok(boxing)
    }

    pub async fn exec(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ExecOutput> {
        let boxing = self.boxing(ns_id).await?;
        let name = self.ns(ns_id)?.name.clone();
        self.sink.event(LabEvent::Command {
            ns: &name,
            command: &req.command_line(),
            background: None,
            quiet: req.quiet,
        });
        // Counted while it runs, and uncounted however the call ends (even when dropped).
        let _live = Live::enter(&self.programs.live);
        let helper = self.kernel.port()?;
        let out = launch::run(
            &name,
            boxing,
            helper,
            req,
            self.programs.sink.clone(),
            &self.programs.starts,
        )
        .await?;
        if out.timed_out {
            self.did(&format!(
                "killed after its time limit ({:.1?})",
                out.duration
            ));
        }
        Ok(out)
    }

    /// Start a program in the background; the lab owns it until it ends or the run does. It
    /// returns once the program is handed to the helper: its start is told, and any failure
    /// to start said, as the next thing the run says (starts.rs).
    pub async fn spawn(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ProcId> {
        // Programs the scenario let go of and that have ended are released first.
        self.programs
            .processes
            .retain(|_, p| !(p.orphan && p.running.exited()));
        let boxing = self.boxing(ns_id).await?;
        let name = self.ns(ns_id)?.name.clone();
        let program = req.program.clone();
        let live = Live::enter(&self.programs.live);
        let since = std::time::Instant::now();
        let running = launch::start(
            &name,
            boxing,
            self.kernel.port()?,
            req,
            self.programs.sink.clone(),
            Some(program.clone()),
            &self.programs.starts,
        )
        .await?;
        self.spent.add(crate::spent::Work::Starts, since);
        let id = ProcId(self.next());
        self.programs.processes.insert(
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
}
