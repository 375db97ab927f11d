//! What the runner prints while a lab runs: the host's own narration of each kernel change, the
//! output of programs as they run, the scenario's steps and checks. Narration comes from the host,
//! not the guest, so it shows what really happened.

use std::io::Write;
use std::sync::Arc;

use crate::account::{Event, Journal, Stream};

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

/// Text from the guest or a program made safe to print as one line: control characters
/// (newlines, carriage returns, escape sequences, backspaces) and the Unicode controls that
/// reorder or hide text are shown escaped (`\n`, `\x1b`, `\u{202e}`), so what they print can
/// never move the cursor, erase a line or start a line that passes for the runner's own.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    if !text.chars().any(|c| hidden(c) && c != '\t') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 && hidden(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// Splits a byte stream into lines as it comes; a line longer than `max` is passed on in pieces
/// of `max`, so nothing is held without bound.
pub struct LineSplitter {
    pending: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            max,
        }
    }

    /// Add bytes; `emit` gets each whole line (with its newline).
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            emit(&self.pending[start..=start + pos]);
            start += pos + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() > self.max {
            let rest = self.pending.split_off(self.max);
            emit(&self.pending);
            self.pending = rest;
        }
    }

    /// The end of the stream: pass on what is left.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// How much program output the run echoes to the terminal, all programs together
/// (`echo-bytes`). Past it, one line says so and the rest is not shown (the scenario still
/// gets each program's output, up to exec-output-bytes).
#[derive(Debug)]
pub struct EchoBudget {
    console: Console,
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
    /// What quiet programs' lines cost the account: their own budget of the same size, so
    /// polls neither use up the echo nor grow the account without bound.
    quiet_used: std::sync::atomic::AtomicUsize,
}

impl EchoBudget {
    pub fn new(console: Console, limit: usize) -> EchoBudget {
        EchoBudget {
            console,
            limit,
            used: Default::default(),
            quiet_used: Default::default(),
        }
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// One line of a program's output as an event of the run's account.
    fn record(&self, program: u32, line: &str, is_stderr: bool) {
        self.console.event(|| Event::Output {
            program,
            stream: if is_stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            line: line.to_string(),
        });
    }

    /// Record one line of a quiet program's output in the account (the --json events), never
    /// on the terminal, within the quiet budget.
    pub fn quiet_output(&self, program: u32, line: &str, is_stderr: bool) {
        if self.console.journal().is_none() {
            return;
        }
        let line = printable(line);
        let cost = line.len() + 6;
        let before = self
            .quiet_used
            .fetch_add(cost, std::sync::atomic::Ordering::SeqCst);
        if before + cost <= self.limit {
            self.record(program, &line, is_stderr);
        }
    }

    /// Echo one line of program `program`'s output, and record it, if the budget has room
    /// for it. `tag` names a background program on the terminal.
    pub fn program_output(&self, program: u32, tag: Option<&str>, line: &str, is_stderr: bool) {
        let shown = self.console.verbosity >= Verbosity::Normal;
        if !shown && self.console.journal().is_none() {
            return;
        }
        let line = printable(line);
        // What reaches the terminal: the line, its "   | " and its newline.
        let cost = line.len() + 6;
        let before = self
            .used
            .fetch_add(cost, std::sync::atomic::Ordering::SeqCst);
        if before + cost <= self.limit {
            self.record(program, &line, is_stderr);
            match tag {
                Some(t) => self
                    .console
                    .program_output(&format!("{t}: {line}"), is_stderr),
                None => self.console.program_output(&line, is_stderr),
            }
        } else if before <= self.limit {
            let text = format!(
                "program output is no longer shown: the run's programs printed more than {} bytes \
                 (policy limit echo-bytes; raise it with --echo-output); the scenario still gets it",
                self.limit
            );
            self.console.event(|| Event::Warning { text: text.clone() });
            self.console
                .line(Verbosity::Normal, &format!("   [nslab: {text}]"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped_on_one_line() {
        assert_eq!(
            printable("plain text\twith a tab"),
            "plain text\twith a tab"
        );
        assert_eq!(
            printable("a\n   + netns delete x\r\x1b[2K\u{202e}"),
            r"a\n   + netns delete x\r\x1b[2K\u{202e}"
        );
        assert_eq!(printable("\u{85}\x7f\u{2066}"), r"\x85\x7f\u{2066}");
    }

    #[test]
    fn lines_are_split_as_they_come_and_long_ones_in_pieces() {
        let mut got: Vec<String> = Vec::new();
        let mut s = LineSplitter::new(4);
        let mut emit = |l: &[u8]| got.push(String::from_utf8_lossy(l).into_owned());
        s.push(b"ab\ncd", &mut emit);
        s.push(b"\nefghij", &mut emit);
        s.finish(&mut emit);
        assert_eq!(got, ["ab\n", "cd\n", "efgh", "ij"]);
    }

    #[test]
    fn the_echo_budget_counts_what_reaches_the_terminal() {
        let budget = EchoBudget::new(Console::new(Verbosity::Normal), 20);
        budget.program_output(1, None, "0123456789", false); // 16 bytes with "   | " and "\n"
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::SeqCst), 16);
        budget.program_output(1, None, "0123456789", false);
        budget.program_output(1, None, "0123456789", false);
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::SeqCst), 48);
    }
}
