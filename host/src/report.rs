//! The run's report: the scenario's steps and checks, and the verdict printed at the end.

use crate::console::{printable, Console, Verbosity};

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub steps: Vec<String>,
    pub checks: Vec<Check>,
    /// Every refusal of the policy, in order: listed in the run's summary.
    pub refusals: Vec<String>,
}

impl Report {
    pub fn step(&mut self, console: &Console, name: String) {
        console.line(Verbosity::Quiet, &format!("== {}", printable(&name)));
        self.steps.push(name);
    }

    pub fn check(&mut self, console: &Console, name: String, passed: bool, detail: String) {
        let mark = if passed { "ok  " } else { "FAIL" };
        let sep = if detail.is_empty() { "" } else { ": " };
        console.line(
            Verbosity::Quiet,
            &format!("   {mark} {}{sep}{}", printable(&name), printable(&detail)),
        );
        self.checks.push(Check {
            name,
            passed,
            detail,
        });
    }

    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }

    pub fn passed(&self) -> usize {
        self.checks.len() - self.failed()
    }
}
