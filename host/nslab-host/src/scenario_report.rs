//! The scenario's report calls: each step, check and refusal is said on the terminal and is an
//! event of the run's account (account/), which is what the verdict counts; saved files are
//! kept here until the report directory is written.

use nslab_lab::error::{LabError, LabResult};
use nslab_lab::text::printable;
use nslab_report::account::Event;
use nslab_report::console::{Console, Verbosity};

#[derive(Debug, Default)]
pub struct Report {
    /// Files the scenario saved (report.attach): their names and sizes, and their bytes when a
    /// report directory will be written (`keep_files`).
    pub attached: Vec<(String, usize)>,
    pub files: Vec<(String, Vec<u8>)>,
    pub keep_files: bool,
}

impl Report {
    pub fn step(&mut self, console: &Console, name: String) {
        console.line(Verbosity::Quiet, &format!("== {}", printable(&name)));
        console.event(|| Event::Step { name });
    }

    pub fn check(&mut self, console: &Console, name: String, passed: bool, detail: String) {
        let mark = if passed { "ok  " } else { "FAIL" };
        let sep = if detail.is_empty() { "" } else { ": " };
        console.line(
            Verbosity::Quiet,
            &format!("   {mark} {}{sep}{}", printable(&name), printable(&detail)),
        );
        console.event(|| Event::Check {
            name,
            passed,
            detail,
        });
    }

    /// The policy refused a request.
    pub fn refused(&mut self, console: &Console, why: &str) {
        console.event(|| Event::Refusal {
            text: why.to_string(),
        });
    }

    /// Bytes saved into the report so far.
    pub fn attached_bytes(&self) -> usize {
        self.attached.iter().map(|(_, n)| n).sum()
    }

    /// Save a file into the report. The policy has allowed its size; its name must be a plain
    /// file name, new in this run.
    pub fn attach(&mut self, console: &Console, name: String, data: Vec<u8>) -> LabResult<()> {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(plain) {
            return Err(LabError::invalid(format!(
                "report file name {:?} refused: use 1-64 of A-Z a-z 0-9 _ . - not starting with a dot",
                printable(&name)
            )));
        }
        if self.attached.iter().any(|(n, _)| *n == name) {
            return Err(LabError::exists(format!(
                "the report already has a file called {name}: give each file its own name"
            )));
        }
        console.line(
            Verbosity::Normal,
            &format!("   = saved {name} ({} bytes) into the report", data.len()),
        );
        console.event(|| Event::Attachment {
            name: name.clone(),
            bytes: data.len() as u64,
        });
        self.attached.push((name.clone(), data.len()));
        if self.keep_files {
            self.files.push((name, data));
        }
        Ok(())
    }
}
