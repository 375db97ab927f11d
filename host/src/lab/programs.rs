//! The run's programs: starting them boxed (exec.rs, sandbox.rs), the limits they share
//! (processes, memory, links, echo), background programs and their handles, and stopping them.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::cgroup::{self, RunCgroup};
use super::exec::{self, Boxing, ExecOutput, ExecRequest};
use super::{watch, Lab, NsId, ProcId};
use crate::console::{printable, Console, EchoBudget, Verbosity};
use crate::error::{LabError, LabResult};
use crate::guest_limits::Tripped;

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
    echo: Arc<EchoBudget>,
    memory: MemoryBound,
    link_limit: watch::LinkLimit,
    /// Namespaces whose links are watched, because a program has run in them.
    watchers: BTreeMap<NsId, tokio::task::JoinHandle<()>>,
    /// The files the run's programs may execute, as the run allowed them (before its first
    /// program), and what confines them to those, made at the first program (confine.rs).
    executables: Vec<std::path::PathBuf>,
    confinement: Option<super::confine::Confinement>,
}

impl Programs {
    pub(super) fn new(console: Console, limits: ProgramLimits) -> Programs {
        Programs {
            processes: BTreeMap::new(),
            live: Arc::default(),
            echo: Arc::new(EchoBudget::new(console, limits.echo_bytes)),
            memory: MemoryBound::Undecided,
            link_limit: watch::LinkLimit::new(limits.max_links, limits.tripped.clone()),
            watchers: BTreeMap::new(),
            executables: Vec::new(),
            confinement: None,
            limits,
        }
    }

    pub(super) fn limits(&self) -> &ProgramLimits {
        &self.limits
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

impl Lab {
    /// The files the run's programs may execute (the programs the scenario declared and the
    /// policy allows, resolved): the kernel refuses any other (confine.rs).
    pub fn allow_executables(&mut self, files: Vec<std::path::PathBuf>) {
        self.programs.executables = files;
        self.programs.confinement = None;
    }

    /// What the run's programs may execute, once their first one has started.
    pub fn executables(&self) -> Option<&[std::path::PathBuf]> {
        self.programs
            .confinement
            .as_ref()
            .map(|c| c.executables.as_slice())
    }

    pub fn live_processes(&self) -> usize {
        self.programs.live.load(Ordering::SeqCst)
    }

    /// The run's user namespace, which every program joins. It exists once any namespace does.
    fn userns(&self) -> LabResult<std::os::fd::RawFd> {
        self.factory.userns_fd().ok_or_else(|| {
            LabError::Trap(wasmtime::format_err!(
                "a namespace exists but the run has no user namespace"
            ))
        })
    }

    /// The run's cgroups, made at the first use of a box (a program, or a file given to a
    /// namespace), with the lab helper moved in: what it writes and builds for the run is the
    /// run's memory (issue 19). A run that only builds namespaces makes none.
    pub(super) fn run_cgroup(&mut self) -> LabResult<()> {
        if !matches!(self.programs.memory, MemoryBound::Undecided) {
            return Ok(());
        }
        self.programs.memory = match cgroup::detect() {
            Ok(h) => {
                let c = RunCgroup::create(
                    &h,
                    &self.record.id,
                    self.programs.limits.program_memory,
                    self.programs.limits.max_processes,
                    self.factory.exe(),
                )
                .map_err(LabError::Os)?;
                let helper = self.factory.helper()?.pid();
                c.adopt(helper).map_err(|e| {
                    LabError::Os(format!(
                        "cannot move the lab helper into the run's cgroup: {e}"
                    ))
                })?;
                MemoryBound::Cgroup(c)
            }
            Err(_) => MemoryBound::PerProgram,
        };
        Ok(())
    }

    /// Everything a program in `ns_id` is boxed with, made on first use: the namespace's
    /// filesystem box, the run's cgroups, the watch on the namespace's links.
    fn boxing(&mut self, ns_id: NsId) -> LabResult<Boxing> {
        let userns = self.userns()?;
        self.run_cgroup()?;
        if !self.programs.watchers.contains_key(&ns_id) {
            let ns = self.ns(ns_id)?;
            let socket = self
                .factory
                .helper()?
                .link_watch_socket(ns.fd(), &ns.name)?;
            let watcher = self.programs.link_limit.watch(ns, socket)?;
            self.programs.watchers.insert(ns_id, watcher);
        }
        if self.programs.confinement.is_none() {
            self.programs.confinement = Some(
                super::confine::Confinement::new(&self.programs.executables)
                    .map_err(LabError::Os)?,
            );
        }
        let confinement = self.programs.confinement.as_ref().expect("made above");
        let (landlock, filters) = (confinement.ruleset_fd(), confinement.filter_refs());
        let mntns = self.boxfs(ns_id)?.as_raw_fd();
        let utsns = self
            .ns(ns_id)?
            .uts
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .ok_or_else(|| LabError::NotFound("that namespace was deleted".to_string()))?;
        Ok(Boxing {
            userns,
            netns: self.ns(ns_id)?.raw_fd(),
            mntns,
            utsns,
            cgroup_procs: match &self.programs.memory {
                MemoryBound::Cgroup(c) => c.program_procs(),
                _ => [None; 2],
            },
            max_processes: self.programs.limits.max_processes as u64,
            address_space: matches!(self.programs.memory, MemoryBound::PerProgram)
                .then_some(self.programs.limits.program_memory),
            groups: self.factory.helper()?.groups(),
            landlock,
            filters,
        })
    }

    pub async fn exec(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ExecOutput> {
        let boxing = self.boxing(ns_id)?;
        let name = self.ns(ns_id)?.name.clone();
        let shown = printable(&req.command_line()).into_owned();
        // A quiet exec (a poll) shows its command line with -v only.
        let level = match req.quiet {
            true => Verbosity::Verbose,
            false => Verbosity::Normal,
        };
        self.console.line(level, &format!("   $ {name}: {shown}"));
        // Counted while it runs, and uncounted however the call ends (even when dropped).
        let _live = Live::enter(&self.programs.live);
        let out = exec::run(&name, boxing, req, self.programs.echo.clone()).await?;
        if out.timed_out {
            self.console.action(&format!(
                "killed after its time limit ({:.1?})",
                out.duration
            ));
        }
        Ok(out)
    }

    /// Start a program in the background; the lab owns it until it ends or the run does.
    pub fn spawn(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ProcId> {
        // Programs the scenario let go of and that have ended are released first.
        self.programs
            .processes
            .retain(|_, p| !(p.orphan && p.running.exited()));
        let boxing = self.boxing(ns_id)?;
        let name = self.ns(ns_id)?.name.clone();
        let program = req.program.clone();
        let shown = printable(&req.command_line()).into_owned();
        let live = Live::enter(&self.programs.live);
        let running = exec::start(
            &name,
            boxing,
            req,
            self.programs.echo.clone(),
            Some(program.clone()),
        )?;
        self.console.line(
            Verbosity::Normal,
            &format!(
                "   $ {name}: {shown} &   (background, pid {})",
                running.id()
            ),
        );
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

    /// The scenario dropped its handle to a program. One that has ended is released now, with
    /// its output; one still running keeps running (the run's end stops it) but its output is
    /// no longer kept, and it is released once it has ended.
    pub fn process_release(&mut self, id: ProcId) {
        let Some(entry) = self.programs.processes.get_mut(&id) else {
            return;
        };
        if entry.running.exited() {
            self.programs.processes.remove(&id);
        } else {
            entry.orphan = true;
            entry.running.discard_output();
        }
    }

    fn process(&mut self, id: ProcId) -> LabResult<&mut ProcEntry> {
        self.programs.processes.get_mut(&id).ok_or_else(|| {
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
        let console = self.console.clone();
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

    /// What a background program has printed so far.
    pub fn process_output_so_far(&mut self, id: ProcId) -> LabResult<(Vec<u8>, Vec<u8>)> {
        Ok(self.process(id)?.running.output_so_far())
    }

    /// Wait up to `limit` for a line of a background program's output containing `text`.
    pub async fn process_wait_for_line(
        &mut self,
        id: ProcId,
        text: &str,
        limit: std::time::Duration,
    ) -> LabResult<String> {
        let entry = self.process(id)?;
        let shown = format!("{} (pid {})", entry.program, entry.running.id());
        entry
            .running
            .wait_for_line(text, limit)
            .await?
            .ok_or_else(|| {
                LabError::NotFound(format!(
                    "{shown} ended without printing a line containing {text:?}"
                ))
            })
    }

    /// Stop a background program: SIGTERM, then SIGKILL after a second.
    pub async fn process_kill(&mut self, id: ProcId) -> LabResult<()> {
        let console = self.console.clone();
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

    /// Kill the background programs still running (in one namespace, or all), for teardown:
    /// SIGKILL to every one first, then one wait for all of them together, bounded by
    /// [`exec::STOP_LIMIT`], so a program stuck in the kernel holds back neither the others
    /// nor the runner. What was stopped, and what was still there at the deadline.
    pub(super) async fn kill_processes(&mut self, only: Option<NsId>) -> Stopped {
        let ids: Vec<ProcId> = self
            .programs
            .processes
            .iter()
            .filter(|(_, p)| only.is_none_or(|n| p.ns == n))
            .map(|(id, _)| *id)
            .collect();
        let mut running: Vec<ProcEntry> = ids
            .into_iter()
            .rev()
            .filter_map(|id| self.programs.processes.remove(&id))
            .filter(|p| !p.running.has_ended())
            .collect();
        for p in &running {
            p.running.signal(libc::SIGKILL);
        }
        let deadline = tokio::time::Instant::now() + exec::STOP_LIMIT;
        let ends = futures::future::join_all(running.iter_mut().map(|p| async move {
            let shown = format!("program {} (pid {})", p.program, p.running.id());
            (shown, p.running.reap(deadline, false).await.err())
        }))
        .await;
        let mut stopped = Stopped::default();
        for (shown, problem) in ends {
            match problem {
                None => stopped.killed.push(shown),
                Some(e) => stopped.left.push(e.to_string()),
            }
        }
        stopped
    }
}

/// What stopping the run's programs did.
#[derive(Debug, Default)]
pub(super) struct Stopped {
    pub killed: Vec<String>,
    /// Programs still there at the deadline, each in a sentence.
    pub left: Vec<String>,
}
