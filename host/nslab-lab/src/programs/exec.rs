//! A program run inside a namespace of the run, as `ip netns exec NS PROGRAM` does, boxed by
//! the kernel (lab/helper/spawn.rs: the helper starts it under an init whose PID 2 it is), with
//! an empty environment but a fixed PATH and what the scenario passed; waited for through the
//! pipe its init writes its status to, and signalled only through a pidfd of that init.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;

use super::capture::{line_with, Printed};
use super::starts::{Failure, Start};
use crate::error::{LabError, LabResult};
use crate::helper::channel::Init;
use crate::{LabEvent, ProgramEnd, Sink};

/// How long stopping a program may take, from SIGKILL until every process of its PID namespace
/// is gone: past it, the runner reports what is left instead of waiting (issue 18).
pub const STOP_LIMIT: Duration = Duration::from_secs(5);

/// How long the output of a program that ended by itself may stay open after it: the rest of
/// its PID namespace is being killed by the kernel meanwhile.
const OUTPUT_AFTER_END: Duration = Duration::from_secs(2);

/// Where a program runs: the lab namespace, its filesystem box and its UTS namespace, as raw
/// fds the lab keeps open for as long as programs may start there. What confines every program
/// of the run the helper already has (programs/mod.rs).
#[derive(Debug, Clone, Copy)]
pub struct Boxing {
    pub netns: RawFd,
    pub mntns: RawFd,
    pub utsns: RawFd,
}

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
    /// Its init (helper/spawn.rs), signalled through its pidfd: a signal reaches that process
    /// or nothing, never one that reused its pid.
    pub(super) init: Arc<Init>,
    /// Where its init writes the program's status as it exits: the end of this pipe is the
    /// init's end.
    pub(super) exit_status: pipe::Receiver,
    /// What became of its start: the program's pid (PID 2 of its namespace, under its init),
    /// or why it did not run (starts.rs).
    pub(super) start: Arc<Start>,
    pub(super) feeder: Option<tokio::task::JoinHandle<()>>,
    /// The tasks that capture its stdout and stderr into `printed`.
    pub(super) capturing: Vec<tokio::task::JoinHandle<()>>,
    pub(super) printed: Arc<Printed>,
    /// Set when nobody will read the output any more: the capture stops keeping it.
    pub(super) discard: Arc<AtomicBool>,
    pub(super) started: Instant,
    pub(super) what: String,
    /// Its output, once it has ended.
    pub(super) done: Option<ExecOutput>,
    /// How the run's account knows it (its program-start event).
    pub(super) known: Known,
}

/// A program as the run's account names it: its number, namespace and command line.
pub(super) struct Known {
    pub(super) number: u32,
    pub(super) ns: String,
    pub(super) command: String,
    pub(super) sink: Arc<dyn Sink>,
}

impl Running {
    /// The program's pid, once its start has been told (starts.rs).
    pub fn id(&self) -> u32 {
        self.start.pid()
    }

    pub fn has_ended(&self) -> bool {
        self.done.is_some()
    }

    /// Whether it has ended, without waiting (and without collecting its output, or reading
    /// the helper's answers): its init's pidfd is readable once the init has exited; one the
    /// helper never cloned has none; one whose answer is still unread is taken to run.
    pub fn exited(&mut self) -> bool {
        if self.done.is_some() {
            return true;
        }
        match self.init.answered() {
            None => false,
            Some(None) => true,
            Some(Some(pidfd)) => crate::process::readable_now(pidfd),
        }
    }

    /// The program's status, once its init has ended: what the init wrote, or, if it wrote
    /// nothing, 127 if it never started, else 128 + SIGKILL (it was killed, taking the program
    /// with it).
    async fn status(&mut self) -> i32 {
        let word = super::start_pipes::read_word(&mut self.exit_status)
            .await
            .ok()
            .flatten();
        self.decode_status(word.as_ref().map_or(&[], |w| &w[..]))
    }

    fn decode_status(&self, bytes: &[u8]) -> i32 {
        match <[u8; 4]>::try_from(bytes) {
            Ok(code) => i32::from_ne_bytes(code),
            Err(_) if self.start.never_started() => 127,
            Err(_) => 128 + libc::SIGKILL,
        }
    }

    /// Nobody will read its output: stop keeping it (what it prints is still echoed).
    pub fn discard_output(&self) {
        self.discard.store(true, Ordering::SeqCst);
    }

    /// Send `sig` to its init, through its pidfd (the init passes SIGTERM, SIGINT and SIGHUP on
    /// to the program; SIGKILL ends the init, and with it its whole PID namespace).
    pub fn signal(&self, sig: libc::c_int) {
        // ESRCH (it has already ended) is expected; one never cloned has nothing to signal.
        if let Some(pidfd) = self.init.pidfd() {
            let _ = crate::process::pidfd_signal(pidfd, sig);
        }
    }

    /// [`Running::signal`], the helper's answer to its start read first without holding a
    /// worker.
    pub async fn signal_async(&self, sig: libc::c_int) {
        self.init.read_answer().await;
        self.signal(sig);
    }

    /// Wait up to `limit` for it to end: its output, or None if it is still running.
    pub async fn wait(&mut self, limit: Duration) -> LabResult<Option<&ExecOutput>> {
        if self.done.is_none() {
            match tokio::time::timeout(limit, self.status()).await {
                Ok(status) => {
                    let output_by = tokio::time::Instant::now() + OUTPUT_AFTER_END;
                    self.finish(status, false, output_by).await?;
                }
                Err(_) => return Ok(None),
            }
        }
        Ok(self.done.as_ref())
    }

    /// Stop it now: SIGKILL to the init of its PID namespace, whose death makes the kernel
    /// kill everything in that namespace, whatever user or session each process has
    /// (helper/spawn.rs). `timed_out` marks its output. Waits at most [`STOP_LIMIT`].
    pub async fn kill_now(&mut self, timed_out: bool) -> LabResult<&ExecOutput> {
        self.signal_async(libc::SIGKILL).await;
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
            let status = match tokio::time::timeout_at(deadline, self.status()).await {
                Ok(status) => status,
                Err(_) => {
                    return Err(LabError::timeout(format!(
                        "{} (pid {}) did not end within {} s of SIGKILL: it is stuck in the kernel",
                        self.what,
                        self.id(),
                        STOP_LIMIT.as_secs()
                    )))
                }
            };
            self.finish(status, timed_out, deadline).await?;
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    /// Stop it cleanly: SIGTERM to the program (its init passes it on), and if it has
    /// not ended within `grace`, SIGKILL to everything it started.
    pub async fn terminate(&mut self, grace: Duration) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            self.signal_async(libc::SIGTERM).await;
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
                return Err(LabError::timeout(format!(
                    "{}: no line containing {text:?} within {} ms; it is still running",
                    self.what,
                    limit.as_millis()
                )));
            }
        }
    }

    /// The init has ended: collect the output. The pipes close once every process of the
    /// program's PID namespace is gone, which the kernel sees to once its init has ended; a
    /// process stuck in the kernel may hold them a while, so the capture is awaited until
    /// `deadline` only, and cut there.
    async fn finish(
        &mut self,
        status: i32,
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
                    joined.map_err(|e| LabError::bug(format!("capturing output: {e}")))?
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
        let why = match self.start.failure() {
            Some(Failure::Exec(errno)) => Some(format!(
                "{} could not be executed: {} ({errno:?})",
                self.what,
                errno.desc()
            )),
            Some(Failure::Start(e)) => Some(e.to_string()),
            None => None,
        };
        if let Some(why) = why {
            self.printed.lock()[1].extend_from_slice(format!("[nslab: {why}]\n").as_bytes());
        }
        let [stdout, stderr] = std::mem::take(&mut *self.printed.lock());
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

    /// Record its end in the run's account (which has no start of one that never started).
    fn account_end(&self, status: i32, timed_out: bool) {
        if self.start.never_started() {
            return;
        }
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
    /// account, with the status its init wrote. One still running is killed: the lab lets go
    /// of no program it cannot stop.
    fn drop(&mut self) {
        if self.done.is_some() {
            return;
        }
        if self.exited() {
            let mut bytes = [0u8; 4];
            let n = self.exit_status.try_read(&mut bytes).unwrap_or(0);
            self.account_end(self.decode_status(&bytes[..n]), false);
        } else {
            self.signal(libc::SIGKILL);
        }
    }
}
