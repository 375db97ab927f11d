//! What the runner prints while a lab runs: the host's own narration of each kernel change, the
//! output of programs as they run, the scenario's steps and checks. Narration comes from the host,
//! not the guest, so it shows what really happened.

use std::io::Write;
use std::sync::Arc;

use crate::account::{Event, Journal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Nothing at all (the library used in-process, e.g. by tests).
    Silent,
    /// Steps, checks and the verdict only.
    Quiet,
    /// Also every kernel change and every program's output, as they happen.
    Normal,
    /// Also each object removed at teardown.
    Verbose,
}

/// Where the terminal text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextTo {
    Stdout,
    /// `--json`: stdout carries the events.
    Stderr,
    /// `runner test`: each run's account is kept, its text is not printed.
    Nowhere,
}

/// The run's narration: terminal text at a verbosity, and the same facts as events in the
/// run's journal (account/), whatever the verbosity.
#[derive(Clone)]
pub struct Console {
    pub verbosity: Verbosity,
    text: TextTo,
    journal: Option<Arc<Journal>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Console({:?}, {:?})", self.verbosity, self.text)
    }
}

impl Console {
    pub fn new(verbosity: Verbosity) -> Self {
        Console {
            verbosity,
            text: TextTo::Stdout,
            journal: None,
        }
    }

    /// Record events in `journal`; when it prints them on stdout, the text goes to stderr.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        if journal.prints_json() {
            self.text = TextTo::Stderr;
        }
        self.journal = Some(journal);
        self
    }

    /// Print the terminal text on stderr: stdout carries a document (`--junit /dev/stdout`).
    pub fn text_on_stderr(mut self) -> Self {
        if self.text == TextTo::Stdout {
            self.text = TextTo::Stderr;
        }
        self
    }

    /// Keep the account in `journal` and print nothing (a run of `runner test`).
    pub fn captured(journal: Arc<Journal>) -> Self {
        Console {
            verbosity: Verbosity::Verbose,
            text: TextTo::Nowhere,
            journal: Some(journal),
        }
    }

    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// Record an event (built only if there is a journal to take it).
    pub fn event(&self, event: impl FnOnce() -> Event) {
        if let Some(j) = &self.journal {
            j.record(event());
        }
    }

    fn print(&self, to_stderr: bool, text: &str) {
        let write = || {
            if to_stderr || self.text == TextTo::Stderr {
                let _ = std::io::stdout().flush();
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{text}");
            }
        };
        match &self.journal {
            Some(j) => j.around_progress(write),
            None => write(),
        }
    }

    /// Where text goes besides the events: None (nowhere, the runner is capturing), or
    /// whether to stderr (with `--json`, stdout carries the events alone).
    pub fn text_stream(&self) -> Option<bool> {
        match self.text {
            TextTo::Nowhere => None,
            TextTo::Stderr => Some(true),
            TextTo::Stdout => Some(false),
        }
    }

    /// Print a line at `level` or above. Lines are written whole, so that output of concurrent
    /// streams does not interleave mid-line.
    pub fn line(&self, level: Verbosity, text: &str) {
        if self.verbosity >= level && self.text != TextTo::Nowhere {
            self.print(false, text);
        }
    }

    /// The host did something to the kernel.
    pub fn action(&self, text: &str) {
        self.event(|| Event::Change {
            text: text.to_string(),
        });
        self.line(Verbosity::Normal, &format!("   + {text}"));
    }

    /// A line of a program's output: `|` for stdout, `!` for stderr.
    pub fn program_output(&self, line: &str, is_stderr: bool) {
        let bar = if is_stderr { '!' } else { '|' };
        self.line(Verbosity::Normal, &format!("   {bar} {line}"));
    }

    /// Why the runner could not run the file: one sentence on stderr, whatever the verbosity
    /// but silent.
    pub fn error(&self, text: &str) {
        self.event(|| Event::Error {
            text: text.to_string(),
        });
        if self.verbosity > Verbosity::Silent && self.text != TextTo::Nowhere {
            self.print(true, &format!("runner: error: {text}"));
        }
    }

    /// Something the user should see whatever the verbosity: a teardown problem, a warning.
    pub fn warn(&self, text: &str) {
        self.event(|| Event::Warning {
            text: text.to_string(),
        });
        if self.verbosity > Verbosity::Silent && self.text != TextTo::Nowhere {
            self.print(true, &format!("runner: warning: {text}"));
        }
    }

    /// The lab's size changed: the progress line shows it.
    pub fn lab_size(&self, namespaces: usize, links: usize) {
        if let Some(j) = &self.journal {
            j.lab_size(namespaces, links);
        }
    }
}
