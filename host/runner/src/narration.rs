//! The lab's events as the user and the run's account see them: each change narrated on the
//! terminal (`+ link add ...`), each program's command and output echoed within the run's echo
//! budget, and each fact recorded as an event of the journal (`--json`). The lab itself knows
//! none of this: it tells a [`Sink`], and this is the run's.

use std::sync::Arc;

use nslab_lab::text::printable;
use nslab_lab::{LabEvent, Sink};
use nslab_report::account::{Event, Stream};
use nslab_report::console::{Console, Verbosity};

/// The run's sink: its console, and the budget for echoing programs' output.
pub struct Narration {
    console: Console,
    echo: EchoBudget,
}

impl Narration {
    /// `echo_bytes` is the policy's echo-bytes: program output echoed, all programs together.
    pub fn new(console: Console, echo_bytes: usize) -> Arc<Narration> {
        Arc::new(Narration {
            echo: EchoBudget::new(console.clone(), echo_bytes),
            console,
        })
    }
}

impl Sink for Narration {
    fn event(&self, event: LabEvent<'_>) {
        let console = &self.console;
        match event {
            LabEvent::Did(what) => console.action(what),
            LabEvent::Size { namespaces, links } => console.lab_size(namespaces, links),
            LabEvent::Warning(text) => console.warn(text),
            LabEvent::Principal { host_ids, userns } => {
                let shown: Vec<String> = host_ids
                    .iter()
                    .map(|&(first, count)| match count {
                        1 => first.to_string(),
                        _ => format!("{first}-{}", first + (count - 1)),
                    })
                    .collect();
                console.line(
                    Verbosity::Verbose,
                    &format!(
                        "       host ids {} (the run's programs; user namespace user:[{userns}])",
                        shown.join(", ")
                    ),
                );
            }
            LabEvent::Command {
                ns,
                command,
                background,
                quiet,
            } => {
                let shown = printable(command);
                // A quiet exec (a poll) shows its command line with -v only.
                let level = match quiet {
                    true => Verbosity::Verbose,
                    false => Verbosity::Normal,
                };
                let text = match background {
                    Some(pid) => format!("   $ {ns}: {shown} &   (background, pid {pid})"),
                    None => format!("   $ {ns}: {shown}"),
                };
                console.line(level, &text);
            }
            LabEvent::ProgramStart {
                program,
                ns,
                command,
                background,
                pid,
            } => console.event(|| Event::ProgramStart {
                program,
                ns: ns.to_string(),
                command: printable(command).into_owned(),
                background,
                pid,
            }),
            LabEvent::ProgramLine {
                program,
                tag,
                text,
                stderr,
                quiet,
            } => match quiet {
                true => self.echo.quiet_output(program, text, stderr),
                false => self.echo.program_output(program, tag, text, stderr),
            },
            LabEvent::ProgramEnd(end) => console.event(|| Event::ProgramEnd {
                program: end.program,
                ns: end.ns.clone(),
                command: printable(&end.command).into_owned(),
                status: end.status,
                seconds: nslab_report::account::seconds(end.duration),
                stdout_bytes: end.stdout_bytes,
                stderr_bytes: end.stderr_bytes,
                timed_out: end.timed_out,
            }),
        }
    }

    fn detailed(&self) -> bool {
        self.console.verbosity >= Verbosity::Verbose
    }

    fn next_program(&self) -> u32 {
        self.console.journal().map_or(0, |j| j.next_program())
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
    fn the_echo_budget_counts_what_reaches_the_terminal() {
        let budget = EchoBudget::new(Console::new(Verbosity::Normal), 20);
        budget.program_output(1, None, "0123456789", false); // 16 bytes with "   | " and "\n"
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::SeqCst), 16);
        budget.program_output(1, None, "0123456789", false);
        budget.program_output(1, None, "0123456789", false);
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::SeqCst), 48);
    }

    #[test]
    fn a_program_line_of_a_poll_is_never_echoed() {
        let sink = Narration::new(Console::new(Verbosity::Normal), 100);
        sink.event(LabEvent::ProgramLine {
            program: 1,
            tag: None,
            text: "polled",
            stderr: false,
            quiet: true,
        });
        assert_eq!(sink.echo.used.load(std::sync::atomic::Ordering::SeqCst), 0);
        sink.event(LabEvent::ProgramLine {
            program: 1,
            tag: None,
            text: "shown",
            stderr: false,
            quiet: false,
        });
        assert_eq!(sink.echo.used.load(std::sync::atomic::Ordering::SeqCst), 11);
    }
}
