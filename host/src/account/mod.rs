//! The runner's own account of a run, and what is made from it: the events (`--json`), the
//! JUnit file (`--junit`), the picture of the lab (`--graph`) and the HTML report (`--report`).
//! Everything here is made from the events alone, so `runner test` makes the same outputs from
//! the runs it collected as `runner run` does from its own.

mod events;
pub mod graph;
mod html;
mod journal;
pub mod junit;
#[cfg(test)]
mod wellformed;

use std::path::Path;

pub use events::{
    Ending, Event, Line, LinkKind, LinkNode, NsNode, Stream, Topology, Verdict, SCHEMA,
};
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
    pub teardown: Option<(bool, Vec<String>, Vec<String>)>,
    pub end: Option<End>,
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
    /// (status, seconds, stdout bytes, stderr bytes, timed out), once it ended.
    pub ended: Option<(i32, f64, u64, u64, bool)>,
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

    fn add(&mut self, line: &Line) {
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
                    p.ended = Some((status, seconds, stdout_bytes, stderr_bytes, timed_out));
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
            Event::Teardown {
                kept,
                removed,
                problems,
                ..
            } => self.teardown = Some((kept, removed, problems)),
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

    pub fn verdict(&self) -> Verdict {
        self.end
            .as_ref()
            .map_or(Verdict::CouldNotRun, |e| e.verdict)
    }

    pub fn seconds(&self) -> f64 {
        self.end.as_ref().map_or(0.0, |e| e.seconds)
    }
}

/// Write the events, one JSON object per line.
fn events_text(lines: &[Line]) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut text, line).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    Ok(text)
}

/// Extensions a web server would serve as a page, a script or a picture that runs script: an
/// attachment named so is saved as `NAME.txt`, so that a report served over HTTP never makes
/// the scenario's bytes active content.
const ACTIVE: &[&str] = &[
    "html", "htm", "xhtml", "xht", "shtml", "svg", "svgz", "xml", "xsl", "xslt", "js", "mjs",
    "css", "php", "pdf", "swf",
];

/// The name an attachment is saved under in `files/`.
pub fn saved_name(name: &str) -> String {
    let active = name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| ACTIVE.iter().any(|a| a.eq_ignore_ascii_case(ext)));
    match active {
        true => format!("{name}.txt"),
        false => name.to_string(),
    }
}

/// Write a run's report directory: index.html, topology.svg, events.jsonl, junit.xml, and the
/// files the scenario saved under files/, all through one directory fd (output.rs).
pub fn write_report(
    dir: &Path,
    lines: &[Line],
    attachments: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let account = RunAccount::from_lines(lines);
    let out = crate::output::OutputDir::create(dir)?;
    let fail = |e: std::io::Error| e.to_string();
    let svg = graph::render(&account.topology, graph::Format::Svg);
    out.write("topology.svg", svg.as_bytes()).map_err(fail)?;
    out.write("events.jsonl", &events_text(lines).map_err(fail)?)
        .map_err(fail)?;
    out.write(
        "junit.xml",
        junit::xml(std::slice::from_ref(&account)).as_bytes(),
    )
    .map_err(fail)?;
    if !attachments.is_empty() {
        let files = out.subdir("files").map_err(fail)?;
        for (name, bytes) in attachments {
            // Names were checked when the scenario attached them (no path, no dot first).
            files.write(&saved_name(name), bytes).map_err(fail)?;
        }
    }
    out.write("index.html", html::run_page(&account, &svg).as_bytes())
        .map_err(fail)
}

/// Write the index of `runner test --report DIR`: one line per run, linking to its report.
pub fn write_test_index(dir: &Path, runs: &[(String, RunAccount)]) -> Result<(), String> {
    crate::output::OutputDir::create(dir)?
        .write("index.html", html::test_page(runs).as_bytes())
        .map_err(|e| e.to_string())
}
