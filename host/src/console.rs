//! What the runner prints while a lab runs: the host's own narration of each kernel change, the
//! output of programs as they run, the scenario's steps and checks. Narration comes from the host,
//! not the guest, so it shows what really happened.

use std::io::Write;

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

#[derive(Debug, Clone, Copy)]
pub struct Console {
    pub verbosity: Verbosity,
}

impl Console {
    pub fn new(verbosity: Verbosity) -> Self {
        Console { verbosity }
    }

    /// Print a line at `level` or above. Lines go to stdout, whole, so that output of concurrent
    /// streams does not interleave mid-line.
    pub fn line(&self, level: Verbosity, text: &str) {
        if self.verbosity >= level {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }

    /// The host did something to the kernel.
    pub fn action(&self, text: &str) {
        self.line(Verbosity::Normal, &format!("   + {text}"));
    }

    /// A line of a program's output: `|` for stdout, `!` for stderr.
    pub fn program_output(&self, line: &str, is_stderr: bool) {
        let bar = if is_stderr { '!' } else { '|' };
        self.line(Verbosity::Normal, &format!("   {bar} {line}"));
    }

    /// Something the user should see whatever the verbosity: a teardown problem, a warning.
    pub fn warn(&self, text: &str) {
        if self.verbosity > Verbosity::Silent {
            let _ = std::io::stdout().flush();
            eprintln!("runner: warning: {text}");
        }
    }
}
