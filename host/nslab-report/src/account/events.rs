//! The events of a run: the runner's own account of what happened, in order. `--json` prints
//! each as one JSON object per line; the report, the JUnit file and the picture are made from
//! them. docs/report.md documents the schema: a field is only ever added, and a change that
//! would break a reader raises [`SCHEMA`].

use serde::{Deserialize, Serialize};

use nslab_lab::Topology;

/// The version of the event schema, in every line as `"v"`.
pub const SCHEMA: u32 = 1;

/// One line of the event stream: the schema version, the seconds since the run started, and
/// the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub v: u32,
    /// Seconds since the run started.
    pub t: f64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// `run` returned and every check passed (exit 0).
    Passed,
    /// A check failed, or the scenario returned an error, crashed or was stopped (exit 1).
    Failed,
    /// The runner could not run the file at all (exit 2).
    CouldNotRun,
    /// Stopped by SIGINT or SIGTERM (exit 130, 143).
    Interrupted,
}

/// How the scenario ended, which the verdict follows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// run() returned Ok: the checks decide.
    Returned,
    /// run() returned an error.
    ReturnedError,
    /// The scenario trapped (a panic, for a Rust scenario).
    Crashed,
    /// One of the run's limits stopped it (memory, output, links).
    Limit,
    /// The run's deadline (run-timeout) stopped it.
    Deadline,
    /// SIGINT or SIGTERM stopped it.
    Signal,
    /// The policy refused what the scenario declares, before anything was created.
    Refused,
    /// The file could not be run (unreadable, not a scenario, no privilege).
    NotRun,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The runner starts: before the file is read.
    RunStart {
        /// The run id (`runner ls`), or "" when the run failed before it had one.
        run: String,
        /// The scenario file as given.
        scenario: String,
        /// The file's SHA-256, hex; "" when it could not be read.
        sha256: String,
        /// The arguments passed to the scenario's run().
        args: Vec<String>,
        /// Every policy key and its effective value, as `runner policy` shows it.
        policy: std::collections::BTreeMap<String, String>,
    },
    /// What the scenario says about itself (its describe()).
    Scenario {
        name: String,
        description: String,
        programs: Vec<String>,
    },
    /// The scenario began a step.
    Step { name: String },
    /// A change the runner made to the kernel, as `ip` would write it, with the namespace in
    /// parentheses.
    Change { text: String },
    /// A program started in a namespace.
    ProgramStart {
        /// Numbers the run's programs from 1, to match output and end to their start.
        program: u32,
        ns: String,
        command: String,
        background: bool,
        pid: u32,
    },
    /// A line a program printed (within the run's echo budget, echo-bytes).
    Output {
        program: u32,
        stream: Stream,
        line: String,
    },
    /// A program ended and the runner collected its status.
    ProgramEnd {
        program: u32,
        ns: String,
        command: String,
        /// Exit code, or 128 + the signal that killed it.
        status: i32,
        seconds: f64,
        /// Everything it printed, counted whether or not it was kept.
        stdout_bytes: u64,
        stderr_bytes: u64,
        /// Killed at its time limit.
        timed_out: bool,
    },
    /// A check the scenario made.
    Check {
        name: String,
        passed: bool,
        detail: String,
    },
    /// The policy refused a request of the scenario.
    Refusal { text: String },
    /// Something the user should know: an enforcement gap on this machine, a teardown problem.
    Warning { text: String },
    /// Why the runner could not run the file.
    Error { text: String },
    /// The scenario saved a file into the report (report.attach).
    Attachment { name: String, bytes: u64 },
    /// What the lab was when the scenario ended, before teardown.
    Topology(Topology),
    /// The scenario has ended and the lab stays up for the operator (`runner run --hold`,
    /// `--hold-on-fail`): the outputs are written, and the run waits to be released.
    Held {
        run: String,
        /// The namespaces one may step into (`runner shell RUN NS`).
        namespaces: Vec<String>,
        /// `--hold-timeout`, if any.
        timeout_seconds: Option<f64>,
    },
    /// The hold ended: by `SIGINT`, `SIGTERM`, `release` (`runner release`) or `timeout`.
    Released { by: String },
    /// The lab was removed (or kept).
    Teardown {
        kept: bool,
        /// Netlink requests the lab made in the whole run (what building it cost the kernel).
        kernel_requests: u64,
        /// Where the lab's time went, by kind of work (nslab-lab's spent.rs).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        spent: Vec<nslab_lab::SpentOn>,
        /// What was removed: programs, then namespaces with their links.
        removed: Vec<String>,
        problems: Vec<String>,
    },
    /// The end: always the last line.
    Verdict {
        verdict: Verdict,
        /// How the scenario ended.
        ended: Ending,
        /// The runner's exit status.
        exit: u8,
        /// The verdict as the terminal shows it.
        message: String,
        steps: usize,
        passed: usize,
        failed: usize,
        seconds: f64,
    },
}
