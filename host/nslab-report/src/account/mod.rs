//! The runner's own account of a run, and what is made from it: the events (`--json`), the
//! JUnit file (`--junit`), the picture of the lab (`--graph`) and the HTML report (`--report`).
//! Everything here is made from the events alone, so `runner test` makes the same outputs from
//! the runs it collected as `runner run` does from its own.

mod directory;
mod events;
pub mod graph;
mod html;
mod journal;
pub mod junit;
#[cfg(test)]
mod wellformed;

use std::path::Path;

use nslab_lab::Topology;

pub use directory::{merge_reports, saved_name, write_report, write_test_index, MergeError};
pub use events::{Ending, Event, Line, Stream, Verdict, SCHEMA};
pub use journal::Journal;

/// Text made safe inside XML and HTML, as element text or a quoted attribute. XML 1.0 cannot
/// carry most control characters at all: they become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c.is_control() && !matches!(c, '\n' | '\t')) || xml_forbidden(c) => {
                out.push('\u{fffd}')
            }
            c => out.push(c),
        }
    }
    out
}

/// A character XML 1.0 cannot carry at all, escaped or not: C0 controls but tab, newline and
/// carriage return, and the noncharacters U+FFFE and U+FFFF (surrogates cannot be in a `str`).
pub fn xml_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Text for a writer that escapes markup itself (quick-junit): what XML cannot carry is shown
/// as the terminal shows it (`\x1b`), so one scenario's text can never make the file unreadable.
pub fn xml_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if xml_forbidden(c) && (c as u32) < 0x100 => format!("\\x{:02x}", c as u32),
            c if xml_forbidden(c) => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// A duration as the events write it: seconds, to the millisecond.
pub fn seconds(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A run of `runner test`, as its index lists it: its directory in the report, the shard that
/// ran it (`runner test --shard`), its account.
#[derive(Debug, Clone)]
pub struct Listed {
    pub dir: String,
    pub shard: Option<String>,
    pub account: RunAccount,
}

/// A run, folded from its events: what the report and the JUnit file show.
#[derive(Debug, Clone, Default)]
pub struct RunAccount {
    pub file: String,
    pub run: String,
    pub sha256: String,
    /// The scenario's name (its describe()), or the file's name when it never said.
    pub name: String,
    pub description: String,
    pub steps: Vec<StepAccount>,
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    pub programs: Vec<ProgramAccount>,
    /// Kernel changes: (seconds, text).
    pub changes: Vec<(f64, String)>,
    /// Files the scenario saved: (name, bytes).
    pub attachments: Vec<(String, u64)>,
    pub topology: Topology,
    pub teardown: Option<TeardownAccount>,
    pub end: Option<End>,
}

/// What became of the lab at the end.
#[derive(Debug, Clone, Default)]
pub struct TeardownAccount {
    pub kept: bool,
    pub removed: Vec<String>,
    pub problems: Vec<String>,
}

/// How a program ended.
#[derive(Debug, Clone, Copy)]
pub struct ProgramEnded {
    /// Exit code, or 128 + the signal that killed it.
    pub status: i32,
    pub seconds: f64,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub timed_out: bool,
}

/// The verdict line's facts.
#[derive(Debug, Clone)]
pub struct End {
    pub verdict: Verdict,
    pub ended: Ending,
    pub exit: u8,
    pub message: String,
    pub passed: usize,
    pub failed: usize,
    pub seconds: f64,
}

/// A step and the checks made in it. Checks before the first step are in a step named "".
#[derive(Debug, Clone, Default)]
pub struct StepAccount {
    pub name: String,
    pub t: f64,
    pub checks: Vec<CheckAccount>,
}

#[derive(Debug, Clone)]
pub struct CheckAccount {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    pub t: f64,
}

#[derive(Debug, Clone)]
pub struct ProgramAccount {
    pub number: u32,
    pub ns: String,
    pub command: String,
    pub background: bool,
    pub t: f64,
    /// How it ended, once it has.
    pub ended: Option<ProgramEnded>,
    pub output: Vec<(Stream, String)>,
}

impl RunAccount {
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a Line>) -> RunAccount {
        let mut a = RunAccount::default();
        for line in lines {
            a.add(line);
        }
        a
    }

    /// Fold one more event in.
    pub fn add(&mut self, line: &Line) {
        let t = line.t;
        match line.event.clone() {
            Event::RunStart {
                run,
                scenario,
                sha256,
                ..
            } => {
                self.name = Path::new(&scenario)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.file = scenario;
                self.run = run;
                self.sha256 = sha256;
            }
            Event::Scenario {
                name, description, ..
            } => {
                self.name = name;
                self.description = description;
            }
            Event::Step { name } => self.steps.push(StepAccount {
                name,
                t,
                checks: Vec::new(),
            }),
            Event::Change { text } => self.changes.push((t, text)),
            Event::ProgramStart {
                program,
                ns,
                command,
                background,
                ..
            } => self.programs.push(ProgramAccount {
                number: program,
                ns,
                command,
                background,
                t,
                ended: None,
                output: Vec::new(),
            }),
            Event::Output {
                program,
                stream,
                line,
            } => {
                if let Some(p) = self.program(program) {
                    p.output.push((stream, line));
                }
            }
            Event::ProgramEnd {
                program,
                status,
                seconds,
                stdout_bytes,
                stderr_bytes,
                timed_out,
                ..
            } => {
                if let Some(p) = self.program(program) {
                    p.ended = Some(ProgramEnded {
                        status,
                        seconds,
                        stdout_bytes,
                        stderr_bytes,
                        timed_out,
                    });
                }
            }
            Event::Check {
                name,
                passed,
                detail,
            } => {
                if self.steps.is_empty() {
                    self.steps.push(StepAccount::default());
                }
                let step = self.steps.last_mut().expect("pushed above");
                step.checks.push(CheckAccount {
                    name,
                    passed,
                    detail,
                    t,
                });
            }
            Event::Refusal { text } => self.refusals.push(text),
            Event::Warning { text } => self.warnings.push(text),
            Event::Error { text } => self.errors.push(text),
            Event::Attachment { name, bytes } => self.attachments.push((name, bytes)),
            Event::Topology(t) => self.topology = t,
            // The hold changes nothing the account shows: the verdict is the scenario's.
            Event::Held { .. } | Event::Released { .. } => {}
            Event::Teardown {
                kept,
                removed,
                problems,
                ..
            } => {
                self.teardown = Some(TeardownAccount {
                    kept,
                    removed,
                    problems,
                })
            }
            Event::Verdict {
                verdict,
                ended,
                exit,
                message,
                passed,
                failed,
                seconds,
                ..
            } => {
                self.end = Some(End {
                    verdict,
                    ended,
                    exit,
                    message,
                    passed,
                    failed,
                    seconds,
                })
            }
        }
    }

    fn program(&mut self, number: u32) -> Option<&mut ProgramAccount> {
        self.programs.iter_mut().rev().find(|p| p.number == number)
    }

    pub fn checks(&self) -> impl Iterator<Item = &CheckAccount> {
        self.steps.iter().flat_map(|s| &s.checks)
    }

    /// The steps the scenario named (checks before its first step are in an unnamed one).
    pub fn named_steps(&self) -> usize {
        self.steps.iter().filter(|s| !s.name.is_empty()).count()
    }

    pub fn failed(&self) -> usize {
        self.checks().filter(|c| !c.passed).count()
    }

    pub fn passed(&self) -> usize {
        self.checks().filter(|c| c.passed).count()
    }

    pub fn verdict(&self) -> Verdict {
        self.end
            .as_ref()
            .map_or(Verdict::CouldNotRun, |e| e.verdict)
    }

    pub fn seconds(&self) -> f64 {
        self.end.as_ref().map_or(0.0, |e| e.seconds)
    }
}
