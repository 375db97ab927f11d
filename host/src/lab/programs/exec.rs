//! A program run inside a namespace of the run, as `ip netns exec NS PROGRAM` does, boxed by
//! the kernel (child.rs: the shim, and the init whose PID 2 it is), with an empty environment
//! but a fixed PATH and what the scenario passed; started, waited for, and signalled only
//! through a pidfd of the process the runner spawned.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub use super::child::Boxing;
use super::find::resolve;
use super::output::{capture, line_with, Capture, Either, Printed};
use crate::error::{LabError, LabResult};
use crate::lab::process::{pidfd_open, SYSTEM_PATH};
use crate::lab::{LabEvent, ProgramEnd, Sink};

/// How long stopping a program may take, from SIGKILL until every process of its PID namespace
/// is gone: past it, the runner reports what is left instead of waiting (issue 18).
pub const STOP_LIMIT: Duration = Duration::from_secs(5);

/// How long the output of a program that ended by itself may stay open after it: the rest of
/// its PID namespace is being killed by the kernel meanwhile.
const OUTPUT_AFTER_END: Duration = Duration::from_secs(2);

pub struct ExecRequest {
    pub program: String,
    /// The operator allowed it by path: it is the box's /nslab/bin/NAME (lab/helper/sandbox.rs), not a
    /// program of the system PATH.
    pub by_path: bool,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub output_limit: usize,
    /// Not echoed to the terminal (a poll): its output is still kept and recorded as events.
    pub quiet: bool,
}

impl ExecRequest {
    /// The program and its arguments as one line, for the narration.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Exit code, or 128 + signal number when it was killed.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    pub duration: Duration,
}

/// A program started inside a namespace, until it has been waited for.
pub struct Running {
    child: tokio::process::Child,
    /// The process we spawned (the shim that waits for the program, see [`enter_lab`]), as a
    /// pidfd: a signal through it reaches that process or nothing, never one that reused its pid.
    pidfd: OwnedFd,
    /// The program itself: PID 2 of its namespace, under the init the process we spawned forked.
    program_pid: u32,
    feeder: Option<tokio::task::JoinHandle<()>>,
    /// The tasks that capture its stdout and stderr into `printed`.
    capturing: Vec<tokio::task::JoinHandle<()>>,
    printed: Arc<Printed>,
    /// Set when nobody will read the output any more: the capture stops keeping it.
    discard: Arc<AtomicBool>,
    started: Instant,
    what: String,
    /// Its output, once it has ended.
    done: Option<ExecOutput>,
    /// How the run's account knows it (its program-start event).
    known: Known,
}

/// A program as the run's account names it: its number, namespace and command line.
struct Known {
    number: u32,
    ns: String,
    command: String,
    sink: Arc<dyn Sink>,
}

/// Start a program inside a namespace. Its output is told to the sink line by line (tagged with
/// `tag`, for background programs), and captured as it comes.
pub fn start(
    ns_name: &str,
    boxing: Boxing,
    req: ExecRequest,
    sink: Arc<dyn Sink>,
    tag: Option<String>,
) -> LabResult<Running> {
    let path = if req.by_path {
        PathBuf::from(crate::lab::helper::sandbox::PROGRAM_DIR).join(&req.program)
    } else {
        resolve(&req.program)?
    };
    let what = format!("run {} in {ns_name}", req.program);
    let command = req.command_line();
    let number = sink.next_program();
    // Arguments and environment were checked for what no program can take (input.rs).
    let mut cmd = Command::new(&path);
    cmd.args(&req.args)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Out of the terminal's foreground group: Ctrl-C reaches the runner, which tears down.
        .process_group(0)
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || super::child::enter_lab(boxing, parent));
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| spawn_error(e, &what))?;
    let pid = child.id().expect("not yet waited for");
    // Not yet reaped, so the pid is still this child's.
    let pidfd = pidfd_open(pid).map_err(|e| LabError::from_io(&e, &what))?;
    // The spawned process (S) forked the init (I), which forked the program, before either let
    // go of the exec-error pipe: by now the program is S's grandchild (child.rs).
    let first_child = |of: u32| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/{of}/task/{of}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let program_pid = first_child(pid).and_then(first_child).unwrap_or(pid);
    let feeder = match (child.stdin.take(), req.stdin) {
        (Some(mut pipe), Some(data)) => Some(tokio::spawn(async move {
            // A program that exits without reading its input closes the pipe: not an error.
            let _ = pipe.write_all(&data).await;
        })),
        _ => None,
    };
    sink.event(LabEvent::ProgramStart {
        program: number,
        ns: ns_name,
        command: &command,
        background: tag.is_some(),
        pid: program_pid,
    });
    let discard = Arc::new(AtomicBool::new(false));
    let printed = Arc::new(Printed::default());
    let capture_of = |stream, is_stderr| {
        tokio::spawn(capture(
            stream,
            Capture {
                limit: req.output_limit,
                quiet: req.quiet,
                sink: sink.clone(),
                program: number,
                is_stderr,
                tag: tag.clone(),
                discard: discard.clone(),
                printed: printed.clone(),
            },
        ))
    };
    let capturing = vec![
        capture_of(child.stdout.take().map(Either::Out), false),
        capture_of(child.stderr.take().map(Either::Err), true),
    ];
    Ok(Running {
        child,
        pidfd,
        program_pid,
        feeder,
        capturing,
        printed,
        discard,
        started,
        what,
        done: None,
        known: Known {
            number,
            ns: ns_name.to_string(),
            command,
            sink,
        },
    })
}

/// The kernel's EAGAIN at exec is the run's process limit (RLIMIT_NPROC), not a passing fault.
fn spawn_error(e: std::io::Error, what: &str) -> LabError {
    if e.raw_os_error() == Some(libc::EAGAIN) {
        return LabError::Limit(format!(
            "{what}: the run's programs already have as many processes and threads as allowed \
             (policy limit max-processes; raise it with --max-processes)"
        ));
    }
    LabError::from_io(&e, what)
}

impl Running {
    pub fn id(&self) -> u32 {
        self.program_pid
    }

    pub fn has_ended(&self) -> bool {
        self.done.is_some()
    }

    /// Whether it has ended, without waiting (and without collecting its output).
    pub fn exited(&mut self) -> bool {
        self.done.is_some() || matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Nobody will read its output: stop keeping it (what it prints is still echoed).
    pub fn discard_output(&self) {
        self.discard.store(true, Ordering::SeqCst);
    }

    /// Send `sig` to the process we spawned (the shim), through its pidfd.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain syscall on a pidfd we own; ESRCH (already ended) is expected.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// Wait up to `limit` for it to end: its output, or None if it is still running.
    pub async fn wait(&mut self, limit: Duration) -> LabResult<Option<&ExecOutput>> {
        if self.done.is_none() {
            match tokio::time::timeout(limit, self.child.wait()).await {
                Ok(status) => {
                    let status = status.map_err(|e| LabError::from_io(&e, &self.what))?;
                    let output_by = tokio::time::Instant::now() + OUTPUT_AFTER_END;
                    self.finish(status, false, output_by).await?;
                }
                Err(_) => return Ok(None),
            }
        }
        Ok(self.done.as_ref())
    }

    /// Stop it now: SIGKILL to the shim, whose death kills the init of the program's PID
    /// namespace (parent-death signal), whose death makes the kernel kill everything in that
    /// namespace, whatever user or session each process has (child.rs). `timed_out` marks its
    /// output. Waits at most [`STOP_LIMIT`].
    pub async fn kill_now(&mut self, timed_out: bool) -> LabResult<&ExecOutput> {
        self.signal(libc::SIGKILL);
        self.reap(tokio::time::Instant::now() + STOP_LIMIT, timed_out)
            .await
    }

    /// Once it has been sent SIGKILL: wait until `deadline` for it to end and for its output to
    /// close (every process of its PID namespace gone). An error says what is still there then.
    pub async fn reap(
        &mut self,
        deadline: tokio::time::Instant,
        timed_out: bool,
    ) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
                Ok(status) => status.map_err(|e| LabError::from_io(&e, &self.what))?,
                Err(_) => {
                    return Err(LabError::Timeout(format!(
                        "{} (pid {}) did not end within {} s of SIGKILL: it is stuck in the kernel",
                        self.what,
                        self.program_pid,
                        STOP_LIMIT.as_secs()
                    )))
                }
            };
            self.finish(status, timed_out, deadline).await?;
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    /// Stop it cleanly: SIGTERM to the program (the shim and the init pass it on), and if it has
    /// not ended within `grace`, SIGKILL to everything it started.
    pub async fn terminate(&mut self, grace: Duration) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            self.signal(libc::SIGTERM);
            if self.wait(grace).await?.is_none() {
                return self.kill_now(false).await;
            }
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    /// What it has printed so far: (stdout, stderr).
    pub fn output_so_far(&self) -> (Vec<u8>, Vec<u8>) {
        match &self.done {
            Some(out) => (out.stdout.clone(), out.stderr.clone()),
            None => {
                let [out, err] = self.printed.lock().clone();
                (out, err)
            }
        }
    }

    /// Wait up to `limit` for a line of its output that contains `text`: that line, or None if
    /// it ended without printing one; error.timeout if it is still running without one.
    pub async fn wait_for_line(&self, text: &str, limit: Duration) -> LabResult<Option<String>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before looking, so output that comes meanwhile is not missed.
            let news = self.printed.news.notified();
            tokio::pin!(news);
            news.as_mut().enable();
            let ended = self.done.is_some() || self.printed.closed.load(Ordering::SeqCst) == 2;
            let found = match &self.done {
                Some(out) => line_with([&out.stdout, &out.stderr], text, true),
                None => {
                    let streams = self.printed.lock();
                    line_with([&streams[0], &streams[1]], text, ended)
                }
            };
            if found.is_some() || ended {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, news).await.is_err() {
                return Err(LabError::Timeout(format!(
                    "{}: no line containing {text:?} within {} ms; it is still running",
                    self.what,
                    limit.as_millis()
                )));
            }
        }
    }

    /// The shim has ended: collect the output. The pipes close once every process of the
    /// program's PID namespace is gone, which the kernel sees to once its init has ended; a
    /// process stuck in the kernel may hold them a while, so the capture is awaited until
    /// `deadline` only, and cut there.
    async fn finish(
        &mut self,
        status: std::process::ExitStatus,
        timed_out: bool,
        deadline: tokio::time::Instant,
    ) -> LabResult<()> {
        if let Some(f) = self.feeder.take() {
            f.abort();
        }
        let mut held_open = false;
        for mut task in std::mem::take(&mut self.capturing) {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(joined) => {
                    joined.map_err(|e| LabError::Bug(format!("capturing output: {e}")))?
                }
                Err(_) => {
                    task.abort();
                    held_open = true;
                }
            }
        }
        if held_open {
            self.printed.lock()[1].extend_from_slice(
                b"\n[nslab: output cut here: a process of its PID namespace still held it open after the program ended]\n",
            );
        }
        let [stdout, stderr] = std::mem::take(&mut *self.printed.lock());
        let status = exit_code(status);
        self.done = Some(ExecOutput {
            status,
            stdout,
            stderr,
            timed_out,
            duration: self.started.elapsed(),
        });
        self.account_end(status, timed_out);
        Ok(())
    }

    /// Record its end in the run's account.
    fn account_end(&self, status: i32, timed_out: bool) {
        let k = &self.known;
        let [stdout_bytes, stderr_bytes] = self.printed.total();
        k.sink.event(LabEvent::ProgramEnd(&ProgramEnd {
            program: k.number,
            ns: k.ns.clone(),
            command: k.command.clone(),
            status,
            duration: self.started.elapsed(),
            stdout_bytes,
            stderr_bytes,
            timed_out,
        }));
    }
}

impl Drop for Running {
    /// A program released after it ended without being waited for still has its end in the
    /// account, with the status the kernel kept.
    fn drop(&mut self) {
        if self.done.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.account_end(exit_code(status), false);
            }
        }
    }
}

/// A status as the scenario and the account give it: the exit code, or 128 + the signal that
/// killed it, as a shell shows it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Run a program to completion (or its time limit) inside a namespace.
pub async fn run(
    ns_name: &str,
    boxing: Boxing,
    req: ExecRequest,
    sink: Arc<dyn Sink>,
) -> LabResult<ExecOutput> {
    let limit = req.timeout;
    let mut running = start(ns_name, boxing, req, sink, None)?;
    if let Some(out) = running.wait(limit).await? {
        return Ok(out.clone());
    }
    Ok(running.kill_now(true).await?.clone())
}
