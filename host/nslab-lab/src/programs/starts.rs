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
//!
//! Nothing here blocks a tokio worker: each start's pipes are read by a task of its own, which
//! fills the start's [`Outcome`]; the log tells a start once its outcome is in, and whoever
//! asks for the log to be told (a host call, a program's output, the scenario's own) waits for
//! that asynchronously, holding no lock while it waits. The operator's programs, started on
//! threads of their own (`runner exec`), wait on the pipes directly ([`outcome_blocking`]).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use nix::errno::Errno;
use tokio::net::unix::pipe;

pub use super::start_pipes::{
    exec_errno, exec_errno_async, outcome_blocking, outcome_of, spawn_error,
};
use crate::error::{LabError, LabResult};
use crate::helper::channel::Init;
use crate::{LabEvent, Sink};

/// How many starts of background programs may wait to be told: the oldest is told (waiting
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

/// A start's outcome, filled by the task that reads its pipes: the program's pid, or why it
/// did not start; with the pipe of exec errors, still to be read, when it did.
#[derive(Default)]
pub struct Outcome {
    state: Mutex<OutcomeState>,
}

#[derive(Default)]
struct OutcomeState {
    result: Option<LabResult<u32>>,
    errors: Option<pipe::Receiver>,
    /// Who waits for it.
    wakers: Vec<Waker>,
}

impl Outcome {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutcomeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, result: LabResult<u32>, errors: Option<pipe::Receiver>) {
        let wakers = {
            let mut state = self.lock();
            state.result = Some(result);
            state.errors = errors;
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether it is in; if not, `cx` is woken when it is.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.result.is_some() {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn take(&self) -> (LabResult<u32>, Option<pipe::Receiver>) {
        let mut state = self.lock();
        let result = state
            .result
            .take()
            .unwrap_or_else(|| Err(LabError::bug("a start was told before it was read")));
        (result, state.errors.take())
    }
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

/// A start in the log: what to tell, and its outcome as its reader fills it.
struct Waiting {
    start: Arc<Start>,
    outcome: Arc<Outcome>,
    what: String,
    number: u32,
    ns: String,
    command: String,
    sink: Arc<dyn Sink>,
}

/// The starts of background programs not told yet, oldest first.
#[derive(Default)]
pub struct StartLog {
    pending: Mutex<VecDeque<Waiting>>,
}

impl StartLog {
    /// One more background program started: its pipes are read from now on, by a task of its
    /// own. When [`IN_FLIGHT`] wait already, the oldest is told first.
    pub async fn push(&self, p: Pending) {
        let oldest = {
            let pending = self.lock();
            pending
                .front()
                .filter(|_| pending.len() >= IN_FLIGHT)
                .map(|w| w.number)
        };
        if let Some(oldest) = oldest {
            self.flush_through(oldest).await;
        }
        let outcome = Arc::new(Outcome::default());
        tokio::spawn(read_start(p.pipes, p.init, p.what.clone(), outcome.clone()));
        self.lock().push_back(Waiting {
            start: p.start,
            outcome,
            what: p.what,
            number: p.number,
            ns: p.ns,
            command: p.command,
            sink: p.sink,
        });
    }

    /// Tell every start not told yet: before the run says anything else.
    pub async fn flush(&self) {
        self.flush_through(u32::MAX).await;
    }

    /// Tell the starts up to program `number` (before that program's first line of output).
    pub async fn flush_through(&self, number: u32) {
        poll_fn(|cx| self.poll_flush_through(number, cx)).await;
    }

    /// Tell every start whose outcome is in, oldest first, up to program `number`: Ready once
    /// none up to it is left, Pending (and `cx` woken later) while the oldest is still out.
    /// Only the oldest is ever told, under the log's lock, so starts are told in order
    /// whoever asks; the lock is never held while an outcome is waited for.
    pub fn poll_flush_through(&self, number: u32, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = self.lock();
        loop {
            let Some(front) = pending.front() else {
                return Poll::Ready(());
            };
            if front.number > number {
                return Poll::Ready(());
            }
            if front.outcome.poll_ready(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(w) = pending.pop_front() {
                tell(w);
            }
        }
    }

    /// Whether every start has been told.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Read a background program's start (in a task of its own) into its outcome.
async fn read_start(pipes: StartPipes, init: Arc<Init>, what: String, outcome: Arc<Outcome>) {
    let errors = match pipe::Receiver::from_owned_fd(pipes.errors) {
        Ok(errors) => errors,
        Err(e) => return outcome.set(Err(LabError::from_io(&e, &what)), None),
    };
    let (result, errors) = outcome_of(pipes.forked, errors, init, &what).await;
    outcome.set(result, errors);
}

/// Tell a background program's start: its start and command line with its pid, then its
/// exec's outcome as it comes; or why it never started, as a warning.
fn tell(w: Waiting) {
    let (result, errors) = w.outcome.take();
    match result {
        Ok(pid) => {
            w.start.set_pid(pid);
            w.sink.event(LabEvent::ProgramStart {
                program: w.number,
                ns: &w.ns,
                command: &w.command,
                background: true,
                pid,
            });
            w.sink.event(LabEvent::Command {
                ns: &w.ns,
                command: &w.command,
                background: Some(pid),
                quiet: false,
            });
            if let (Some(errors), Ok(runtime)) = (errors, tokio::runtime::Handle::try_current()) {
                runtime.spawn(exec_failure(errors, w.what, w.sink, w.start));
            }
        }
        Err(e) => {
            w.sink
                .event(LabEvent::Warning(&format!("{e}; it ended with status 127")));
            w.start.fail(Failure::Start(e));
        }
    }
}

/// For a background program: wait for its exec's outcome, and if it failed, say so at once
/// (the program ends with status 127, and its output says why when it is collected).
async fn exec_failure(
    mut errors: pipe::Receiver,
    what: String,
    sink: Arc<dyn Sink>,
    start: Arc<Start>,
) {
    if let Some(errno) = exec_errno_async(&mut errors).await {
        start.fail(Failure::Exec(errno));
        sink.event(LabEvent::Warning(&format!(
            "{what}: it could not be executed: {} ({errno:?}); it ended with status 127",
            errno.desc()
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::protocol::StartError;
    use std::time::Duration;

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
            log.push(p).await;
            starts.push(start);
        }
        assert!(sink.lines().is_empty(), "told before anything asked");
        assert_eq!(starts[0].pid(), 0);
        // Before program 2's first line: 1 and 2, not 3.
        log.flush_through(2).await;
        log.flush().await;
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
        log.push(p).await;
        log.flush().await;
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
            log.push(pending(n, Ok(n), &sink).0).await;
        }
        // The oldest was told to make room for the last.
        let told = sink
            .lines()
            .iter()
            .filter(|l| l.starts_with("Command"))
            .count();
        assert_eq!(told, 1);
    }

    /// A start the kernel holds (its init has not forked yet) keeps whoever must tell it
    /// waiting, and nothing else: on a runtime of one thread, where a wait that blocked would
    /// stop every task, a program already running still has its output read, and the start
    /// is told, in order, once its init forks.
    #[tokio::test(flavor = "current_thread")]
    async fn a_start_held_by_the_kernel_delays_no_other_task() {
        let sink = Arc::new(crate::events::Recorded::default());
        let log = Arc::new(StartLog::default());
        let (told, _) = pending(1, Ok(101), &sink);
        log.push(told).await;
        // Program 2's init has not forked: its pid comes later, on this pipe.
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        let held = Arc::new(Start::default());
        log.push(Pending {
            start: held.clone(),
            init: Arc::new(Init::known(None)),
            pipes: StartPipes { forked, errors },
            what: "run p2 in a".into(),
            number: 2,
            ns: "a".into(),
            command: "p2".into(),
            sink: sink.clone(),
        })
        .await;
        // A host call asks for every start to be told: it waits for program 2.
        let flushing = tokio::spawn({
            let log = log.clone();
            async move { log.flush().await }
        });
        // Meanwhile program 1, already running, prints: its output is read and told.
        let (out, out_w) = pipe();
        let printed = Arc::new(super::super::capture::Printed::default());
        let capture = tokio::spawn(super::super::capture::capture(
            Some(pipe::Receiver::from_owned_fd(out).unwrap()),
            super::super::capture::Capture {
                limit: 1 << 10,
                quiet: false,
                sink: sink.clone(),
                program: 1,
                is_stderr: false,
                tag: Some("p1".into()),
                discard: Default::default(),
                printed: printed.clone(),
                starts: Some(log.clone()),
            },
        ));
        nix::unistd::write(&out_w, b"still here\n").unwrap();
        drop(out_w);
        tokio::time::timeout(Duration::from_secs(5), capture)
            .await
            .expect("the running program's output was read while a start was held")
            .unwrap();
        assert!(!flushing.is_finished(), "told before its init forked");
        assert_eq!(held.pid(), 0);
        let lines = sink.lines();
        let said = |what: &str| lines.iter().position(|l| l.contains(what));
        assert!(
            said("still here").is_some() && said("command: \"p2\"").is_none(),
            "{lines:#?}"
        );
        // The init forks: the start is told, and the host call goes on.
        nix::unistd::write(&forked_w, &202u32.to_ne_bytes()).unwrap();
        drop((forked_w, errors_w));
        tokio::time::timeout(Duration::from_secs(5), flushing)
            .await
            .expect("told once its init forked")
            .unwrap();
        assert_eq!(held.pid(), 202);
        let lines = sink.lines();
        let said = |what: &str| lines.iter().position(|l| l.contains(what));
        assert!(
            said("command: \"p1\"") < said("still here")
                && said("still here") < said("command: \"p2\""),
            "in the order things happened: {lines:#?}"
        );
    }
}
