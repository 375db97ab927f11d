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

    /// Why the runner could not run the file: one sentence on stderr, whatever the verbosity
    /// but silent.
    pub fn error(&self, text: &str) {
        if self.verbosity > Verbosity::Silent {
            let _ = std::io::stdout().flush();
            eprintln!("runner: error: {text}");
        }
    }

    /// Something the user should see whatever the verbosity: a teardown problem, a warning.
    pub fn warn(&self, text: &str) {
        if self.verbosity > Verbosity::Silent {
            let _ = std::io::stdout().flush();
            eprintln!("runner: warning: {text}");
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
}

impl EchoBudget {
    pub fn new(console: Console, limit: usize) -> EchoBudget {
        EchoBudget {
            console,
            limit,
            used: Default::default(),
        }
    }

    /// Echo one line of a program's output, if the budget has room for it.
    pub fn program_output(&self, line: &str, is_stderr: bool) {
        if self.console.verbosity < Verbosity::Normal {
            return;
        }
        let line = printable(line);
        // What reaches the terminal: the line, its "   | " and its newline.
        let cost = line.len() + 6;
        let before = self
            .used
            .fetch_add(cost, std::sync::atomic::Ordering::SeqCst);
        if before + cost <= self.limit {
            self.console.program_output(&line, is_stderr);
        } else if before <= self.limit {
            self.console.line(
                Verbosity::Normal,
                &format!(
                    "   [nslab: program output is no longer shown: the run's programs printed more than {} bytes \
                     (policy limit echo-bytes; raise it with --echo-output); the scenario still gets it]",
                    self.limit
                ),
            );
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
        budget.program_output("0123456789", false); // 16 bytes with "   | " and "\n"
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::SeqCst), 16);
        budget.program_output("0123456789", false);
        budget.program_output("0123456789", false);
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::SeqCst), 48);
    }
}
