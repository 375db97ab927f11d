//! A program's start as the runner learns it, and the log that tells the starts of background
//! programs in order.
//!
//! A background program starts as a shell's `PROGRAM &` does: the scenario gets its handle as
//! soon as the program is handed to the helper (helper/channel.rs), and the next start goes to
//! the helper while this one's init enters the lab and forks it. Each init says what became of
//! its program on pipes the runner made: the program's pid once it is forked, or why it could
//! not start ([`StartError`]). The [`StartLog`] reads those in the order the programs were
//! started, and tells each start (its command line, with its pid) when it is read: before
//! anything else the run says (the lab's next change, the scenario's own output, a program's
//! first line of output), so that the account and the terminal keep the order in which the
//! scenario did things; and at the latest once [`IN_FLIGHT`] starts are waiting. A start that
//! failed after the scenario got its handle is said as a warning, and the program then ends
//! with status 127, as one whose exec failed does.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use nix::errno::Errno;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::error::{LabError, LabResult};
use crate::helper::channel::Init;
use crate::helper::channel::START_PATIENCE_SECS;
use crate::helper::protocol::StartError;
use crate::{LabEvent, Sink};

/// How many starts of background programs may wait to be told: the oldest is read (waiting
/// for its init to fork it, if it has not yet) when one more comes.
pub const IN_FLIGHT: usize = 64;

/// What is known of a program's start, shared by the program (exec.rs) and the log.
#[derive(Default)]
pub struct Start {
    /// The program's pid on the host, once its init has forked it (0: it could not tell).
    pid: OnceLock<u32>,
    failed: Mutex<Option<Failure>>,
}

/// Why a program did not run.
#[derive(Debug, Clone)]
pub enum Failure {
    /// It could not be executed (its status is 127, as its init saw it).
    Exec(Errno),
    /// It never started: its init could not be cloned or could not enter the lab.
    Start(LabError),
}

impl Start {
    /// Its pid, once its start has been read (0 before, or if its init could not tell).
    pub fn pid(&self) -> u32 {
        self.pid.get().copied().unwrap_or(0)
    }

    pub fn failure(&self) -> Option<Failure> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether it never started at all.
    pub fn never_started(&self) -> bool {
        matches!(self.failure(), Some(Failure::Start(_)))
    }

    pub fn set_pid(&self, pid: u32) {
        let _ = self.pid.set(pid);
    }

    fn fail(&self, failure: Failure) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
    }
}

/// The pipes a program's init tells its start on (the runner's ends).
pub struct StartPipes {
    /// The program's pid once it is forked (4 bytes), or the end of the pipe if it was not.
    pub forked: OwnedFd,
    /// A [`StartError`], or the end of the pipe once the program has executed.
    pub errors: OwnedFd,
}

/// A background program whose start has not been told yet.
pub struct Pending {
    pub start: Arc<Start>,
    pub init: Arc<Init>,
    pub pipes: StartPipes,
    /// `run PROGRAM in NS`, for messages.
    pub what: String,
    pub number: u32,
    pub ns: String,
    pub command: String,
    pub sink: Arc<dyn Sink>,
}

/// The starts of background programs not told yet, oldest first.
#[derive(Default)]
pub struct StartLog {
    pending: Mutex<VecDeque<Pending>>,
}

impl StartLog {
    /// One more background program started.
    pub fn push(&self, p: Pending) {
        let mut pending = self.lock();
        if pending.len() >= IN_FLIGHT {
            if let Some(oldest) = pending.pop_front() {
                tell(oldest);
            }
        }
        pending.push_back(p);
    }

    /// Tell every start not told yet: before the run says anything else.
    pub fn flush(&self) {
        self.flush_through(u32::MAX);
    }

    /// Tell the starts up to program `number` (before that program's first line of output).
    pub fn flush_through(&self, number: u32) {
        let mut pending = self.lock();
        while pending.front().is_some_and(|p| p.number <= number) {
            if let Some(p) = pending.pop_front() {
                tell(p);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read a background program's start and tell it: its start and command line with its pid,
/// then its exec's outcome as it comes; or why it never started, as a warning.
fn tell(p: Pending) {
    match outcome(&p.pipes.forked, &p.pipes.errors, &p.init, &p.what) {
        Ok(pid) => {
            p.start.set_pid(pid);
            p.sink.event(LabEvent::ProgramStart {
                program: p.number,
                ns: &p.ns,
                command: &p.command,
                background: true,
                pid,
            });
            p.sink.event(LabEvent::Command {
                ns: &p.ns,
                command: &p.command,
                background: Some(pid),
                quiet: false,
            });
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let _guard = runtime.enter();
            if let Ok(errors) = pipe::Receiver::from_owned_fd(p.pipes.errors) {
                runtime.spawn(exec_failure(errors, p.what, p.sink, p.start));
            }
        }
        Err(e) => {
            p.sink
                .event(LabEvent::Warning(&format!("{e}; it ended with status 127")));
            p.start.fail(Failure::Start(e));
        }
    }
}

/// What became of a start: the program's pid once its init has forked it (0 if neither the
/// init nor the runner could tell it), or why it could not start; an init that did not fork it
/// in time is stopped.
pub fn outcome(forked: &OwnedFd, errors: &OwnedFd, init: &Init, what: &str) -> LabResult<u32> {
    match await_fork(forked, errors, what) {
        Ok(Some(pid)) => Ok(pid),
        // Where the init could not read it (a kernel without /proc/PID/task/TID/children),
        // it is the init's first child, unless it has already ended.
        Ok(None) => Ok(init
            .pidfd()
            .and_then(|fd| crate::process::pidfd_pid(fd.as_raw_fd()))
            .and_then(|init| {
                std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
                    .ok()
                    .and_then(|c| c.split_whitespace().next()?.parse().ok())
                    .or(Some(init))
            })
            .unwrap_or(0)),
        Err(e) => {
            // It did not start its program: stop it (it may be stuck, or already gone).
            if let Some(pidfd) = init.pidfd() {
                let _ = crate::process::pidfd_signal(&pidfd, libc::SIGKILL);
            }
            Err(e)
        }
    }
}

/// Wait until the init has forked the program (its pid on `forked`, 4 bytes, 0 where it could
/// not tell), or say why it could not: it ended first, having said why on `errors` (it could
/// not enter the lab, or the helper could not clone it), or it did not get that far within
/// [`START_PATIENCE_SECS`].
fn await_fork(forked: &OwnedFd, errors: &OwnedFd, what: &str) -> LabResult<Option<u32>> {
    let limit = std::time::Duration::from_secs(START_PATIENCE_SECS as u64);
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: forked.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one fd we own.
        match unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) } {
            0 => {
                return Err(LabError::Os(format!(
                    "{what}: its init did not get it started within {} s (the machine may be \
                     overloaded); it was stopped",
                    limit.as_secs()
                )))
            }
            n if n > 0 => break,
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Err(LabError::from_errno(Errno::last(), what)),
        }
    }
    // One write of 4 bytes to a pipe arrives whole; end of file reads as none.
    let mut pid = [0u8; 4];
    loop {
        match nix::unistd::read(forked, &mut pid) {
            Ok(4) => return Ok(Some(u32::from_ne_bytes(pid)).filter(|&p| p != 0)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(LabError::from_errno(e, what)),
            Ok(_) => break,
        }
    }
    // The init ended before it forked, or was never cloned: it (or the helper) said why.
    match start_error(errors).map(StartError::decode) {
        Some(StartError::Init(errno)) => Err(LabError::from_errno(
            errno,
            format!("{what}: its init could not enter the lab"),
        )),
        Some(StartError::Clone(errno)) => Err(spawn_error(errno, what)),
        _ => Err(LabError::Os(format!(
            "{what}: its init ended before it started the program"
        ))),
    }
}

/// What the pipe of start errors says (blocking until it says it): a [`StartError`]'s code;
/// None once the program has executed (the pipe's end: it is close-on-exec).
fn start_error(errors: &OwnedFd) -> Option<i32> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match nix::unistd::read(errors, &mut bytes[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Some(e as i32),
        }
    }
    (got == 4).then(|| i32::from_ne_bytes(bytes))
}

/// The errno a program could not be executed with, or None once it has been. Blocks until one
/// or the other.
pub fn exec_errno(errors: &OwnedFd) -> Option<Errno> {
    start_error(errors).map(|code| match StartError::decode(code) {
        StartError::Exec(e) | StartError::Init(e) | StartError::Clone(e) => e,
    })
}

/// For a background program: wait for its exec's outcome, and if it failed, say so at once
/// (the program ends with status 127, and its output says why when it is collected).
async fn exec_failure(
    mut errors: pipe::Receiver,
    what: String,
    sink: Arc<dyn Sink>,
    start: Arc<Start>,
) {
    let mut bytes = Vec::with_capacity(4);
    let _ = (&mut errors).take(4).read_to_end(&mut bytes).await;
    if let Ok(code) = <[u8; 4]>::try_from(bytes.as_slice()) {
        let errno = Errno::from_raw(i32::from_ne_bytes(code));
        start.fail(Failure::Exec(errno));
        sink.event(LabEvent::Warning(&format!(
            "{what}: it could not be executed: {} ({errno:?}); it ended with status 127",
            errno.desc()
        )));
    }
}

/// Why a program could not start, said for the scenario. The kernel's EAGAIN at fork is the
/// run's process limit (RLIMIT_NPROC), not a passing fault.
pub fn spawn_error(e: Errno, what: &str) -> LabError {
    if e == Errno::EAGAIN {
        return LabError::Limit(format!(
            "{what}: the run's programs already have as many processes and threads as allowed \
             (policy limit max-processes; raise it with --max-processes)"
        ));
    }
    LabError::from_errno(e, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    fn write_code(fd: &OwnedFd, e: StartError) {
        nix::unistd::write(fd, &e.encode().to_ne_bytes()).unwrap();
    }

    /// A start as the helper and its init would leave it: the pid written (or why not), the
    /// write ends closed.
    fn pending(
        number: u32,
        said: Result<u32, StartError>,
        sink: &Arc<crate::events::Recorded>,
    ) -> (Pending, Arc<Start>) {
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        match said {
            Ok(pid) => drop(nix::unistd::write(&forked_w, &pid.to_ne_bytes())),
            Err(e) => write_code(&errors_w, e),
        }
        drop((forked_w, errors_w));
        let start = Arc::new(Start::default());
        let p = Pending {
            start: start.clone(),
            init: Arc::new(Init::known(None)),
            pipes: StartPipes { forked, errors },
            what: format!("run p{number} in a"),
            number,
            ns: "a".into(),
            command: format!("p{number}"),
            sink: sink.clone(),
        };
        (p, start)
    }

    #[tokio::test]
    async fn starts_are_told_in_the_order_they_were_made_and_only_when_asked() {
        let sink = Arc::new(crate::events::Recorded::default());
        let log = StartLog::default();
        let mut starts = Vec::new();
        for n in 1..=3 {
            let (p, start) = pending(n, Ok(100 + n), &sink);
            log.push(p);
            starts.push(start);
        }
        assert!(sink.lines().is_empty(), "told before anything asked");
        assert_eq!(starts[0].pid(), 0);
        // Before program 2's first line: 1 and 2, not 3.
        log.flush_through(2);
        log.flush();
        let lines = sink.lines();
        let shown: Vec<&String> = lines.iter().filter(|l| l.starts_with("Command")).collect();
        assert_eq!(shown.len(), 3, "{lines:#?}");
        for (i, line) in shown.iter().enumerate() {
            assert!(
                line.contains(&format!("command: \"p{}\"", i + 1))
                    && line.contains(&format!("Some({})", 101 + i)),
                "{lines:#?}"
            );
        }
        assert_eq!(
            starts.iter().map(|s| s.pid()).collect::<Vec<_>>(),
            [101, 102, 103]
        );
    }

    #[tokio::test]
    async fn a_start_that_failed_after_its_handle_is_a_warning_and_status_127() {
        let sink = Arc::new(crate::events::Recorded::default());
        let log = StartLog::default();
        let (p, start) = pending(1, Err(StartError::Clone(Errno::EAGAIN)), &sink);
        log.push(p);
        log.flush();
        let lines = sink.lines();
        assert!(start.never_started(), "{lines:#?}");
        assert!(
            lines.len() == 1
                && lines[0].starts_with("warning: run p1 in a:")
                && lines[0].contains("--max-processes")
                && lines[0].ends_with("it ended with status 127"),
            "{lines:#?}"
        );
    }

    #[tokio::test]
    async fn at_most_so_many_starts_wait_to_be_told() {
        let sink = Arc::new(crate::events::Recorded::default());
        let log = StartLog::default();
        for n in 1..=IN_FLIGHT as u32 + 1 {
            log.push(pending(n, Ok(n), &sink).0);
        }
        // The oldest was told to make room for the last.
        let told = sink
            .lines()
            .iter()
            .filter(|l| l.starts_with("Command"))
            .count();
        assert_eq!(told, 1);
    }

    #[test]
    fn a_fork_is_awaited_until_the_init_gives_the_programs_pid() {
        let ((forked, forked_w), (errors, _errors_w)) = (pipe(), pipe());
        nix::unistd::write(&forked_w, &4321u32.to_ne_bytes()).unwrap();
        assert_eq!(
            await_fork(&forked, &errors, "run x in a").unwrap(),
            Some(4321)
        );
        // 0: the init could not read it; the runner looks for itself.
        nix::unistd::write(&forked_w, &0u32.to_ne_bytes()).unwrap();
        assert_eq!(await_fork(&forked, &errors, "run x in a").unwrap(), None);
    }

    #[test]
    fn an_init_that_could_not_enter_the_lab_says_why() {
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        write_code(&errors_w, StartError::Init(Errno::EPERM));
        drop((forked_w, errors_w));
        let e = await_fork(&forked, &errors, "run x in a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run x in a: its init could not enter the lab")
                && e.contains("not permitted"),
            "{e}"
        );
    }

    #[test]
    fn an_init_the_helper_could_not_clone_for_want_of_processes_is_the_runs_limit() {
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        write_code(&errors_w, StartError::Clone(Errno::EAGAIN));
        drop((forked_w, errors_w));
        let e = await_fork(&forked, &errors, "run x in a").unwrap_err();
        assert!(
            matches!(&e, LabError::Limit(m) if m.contains("--max-processes")),
            "{e}"
        );
    }

    #[test]
    fn an_init_that_ended_without_a_word_is_said_to_have() {
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        drop((forked_w, errors_w));
        let e = await_fork(&forked, &errors, "run x in a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("its init ended before it started the program"),
            "{e}"
        );
    }

    #[test]
    fn an_exec_errno_is_read_whole_and_the_pipes_end_means_executed() {
        let (errors, errors_w) = pipe();
        write_code(&errors_w, StartError::Exec(Errno::ENOEXEC));
        drop(errors_w);
        assert_eq!(exec_errno(&errors), Some(Errno::ENOEXEC));
        let (errors, errors_w) = pipe();
        drop(errors_w);
        assert_eq!(exec_errno(&errors), None);
    }
}
