//! What the lab tells the run: a narrow sink of events. The lab knows only the kernel; the run
//! turns these into narration on the terminal and events of its account (narration.rs).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Something the lab did or saw, as it happens.
#[derive(Debug, Clone, Copy)]
pub enum LabEvent<'a> {
    /// A change made to the kernel, written as `ip` would (`link add a (ns1) type veth ...`).
    Did(&'a str),
    /// The lab's size after a change.
    Size { namespaces: usize, links: usize },
    /// The run's principal, once its user namespace exists: the host ids its programs are
    /// (first, count blocks) and the user namespace's inode.
    Principal {
        host_ids: &'a [(u32, u32)],
        userns: u64,
    },
    /// A program about to run: its namespace and command line; `background` holds the pid of
    /// one started in the background; `quiet` is a poll.
    Command {
        ns: &'a str,
        command: &'a str,
        background: Option<u32>,
        quiet: bool,
    },
    /// A program started (the number is the one [`Sink::next_program`] gave it).
    ProgramStart {
        program: u32,
        ns: &'a str,
        command: &'a str,
        background: bool,
        pid: u32,
    },
    /// One line of a program's output; `tag` names a background program.
    ProgramLine {
        program: u32,
        tag: Option<&'a str>,
        text: &'a str,
        stderr: bool,
        quiet: bool,
    },
    /// A program ended.
    ProgramEnd(&'a ProgramEnd),
    /// Something the user should know that did not stop the lab.
    Warning(&'a str),
}

/// How a program ended, for the run's account.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramEnd {
    pub program: u32,
    pub ns: String,
    pub command: String,
    /// Exit code, or 128 + the signal that killed it.
    pub status: i32,
    pub duration: Duration,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub timed_out: bool,
}

/// Where the lab's events go. Implementations must not block: they are called from inside lab
/// operations and from the tasks that capture program output.
pub trait Sink: Send + Sync {
    fn event(&self, event: LabEvent<'_>);
    /// Whether the user asked for detail (`-v`): teardown then lists what each namespace held,
    /// at the cost of a request per namespace.
    fn detailed(&self) -> bool {
        false
    }
    /// The number of the next program, as the run's account counts them.
    fn next_program(&self) -> u32 {
        0
    }
}

/// A sink that keeps every event as a line of text, for tests of the lab's logic.
#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct Recorded {
    pub lines: Mutex<Vec<String>>,
    /// The last program's number, as a run's account counts them (from 1).
    programs: std::sync::atomic::AtomicU32,
}

#[cfg(any(test, feature = "test-util"))]
impl Recorded {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Sink for Recorded {
    fn event(&self, event: LabEvent<'_>) {
        let line = match event {
            LabEvent::Did(text) => text.to_string(),
            LabEvent::Warning(text) => format!("warning: {text}"),
            LabEvent::Size { namespaces, links } => format!("size {namespaces} {links}"),
            other => format!("{other:?}"),
        };
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }

    fn next_program(&self) -> u32 {
        self.programs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }
}

/// Why the guest was stopped by one of its own limits, if it was.
#[derive(Debug, Default)]
pub struct Tripped {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

impl Tripped {
    pub fn trip(&self, reason: String) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        self.notify.notify_one();
    }

    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves when a limit trips.
    pub async fn tripped(&self) -> String {
        loop {
            if let Some(r) = self.reason() {
                return r;
            }
            self.notify.notified().await;
        }
    }
}
