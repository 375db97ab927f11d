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

    /// After the programs are gone: stop every watch, and remove the run's cgroup.
    pub(super) fn release_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.watchers) {
            w.abort();
        }
        self.processes.clear();
        self.memory = MemoryBound::Undecided;
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

    /// Everything a program in `ns_id` is boxed with, made on first use: the namespace's
    /// filesystem box, the run's memory cgroup, the watch on the namespace's links.
    fn boxing(&mut self, ns_id: NsId) -> LabResult<Boxing> {
        let userns = self.userns()?;
        if matches!(self.programs.memory, MemoryBound::Undecided) {
            self.programs.memory = match cgroup::detect() {
                Ok(h) => MemoryBound::Cgroup(
                    RunCgroup::create(
                        &h,
                        &self.record.id,
                        self.programs.limits.program_memory,
                        self.factory.exe(),
                    )
                    .map_err(LabError::Os)?,
                ),
                Err(_) => MemoryBound::PerProgram,
            };
        }
        if !self.programs.watchers.contains_key(&ns_id) {
            let ns = self.ns(ns_id)?;
            let socket = self
                .factory
                .helper()?
                .link_watch_socket(ns.fd(), &ns.name)?;
            let watcher = self.programs.link_limit.watch(ns, socket)?;
            self.programs.watchers.insert(ns_id, watcher);
        }
        let mntns = self.boxfs(ns_id)?.as_raw_fd();
        Ok(Boxing {
            userns,
            netns: self.ns(ns_id)?.raw_fd(),
            mntns,
            cgroup_procs: match &self.programs.memory {
                MemoryBound::Cgroup(c) => Some(c.procs_fd()),
                _ => None,
            },
            max_processes: self.programs.limits.max_processes as u64,
            address_space: matches!(self.programs.memory, MemoryBound::PerProgram)
                .then_some(self.programs.limits.program_memory),
            groups: self.factory.helper()?.groups(),
        })
    }

    pub async fn exec(&mut self, ns_id: NsId, req: ExecRequest) -> LabResult<ExecOutput> {
        let boxing = self.boxing(ns_id)?;
        let name = self.ns(ns_id)?.name.clone();
        let shown = printable(&req.command_line()).into_owned();
        self.console
            .line(Verbosity::Normal, &format!("   $ {name}: {shown}"));
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

    /// Kill the background programs still running (in one namespace, or all), for teardown.
    pub(super) async fn kill_processes(&mut self, only: Option<NsId>) -> Vec<String> {
        let ids: Vec<ProcId> = self
            .programs
            .processes
            .iter()
            .filter(|(_, p)| only.is_none_or(|n| p.ns == n))
            .map(|(id, _)| *id)
            .collect();
        let mut killed = Vec::new();
        for id in ids.into_iter().rev() {
            if let Some(mut p) = self.programs.processes.remove(&id) {
                if !p.running.has_ended() {
                    let _ = p.running.kill_now(false).await;
                    killed.push(format!("program {} (pid {})", p.program, p.running.id()));
                }
            }
        }
        killed
    }
}
