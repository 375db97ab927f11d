use std::path::PathBuf;
use std::process::ExitCode;

use super::policy_args::PolicyArgs;
use clap::Args;
use nslab_report::account::graph::Format;
use nslab_report::account::Journal;
use nslab_report::console::{Console, Verbosity};
use nslab_runner::run::{self, Outputs, RunConfig};
use std::sync::Arc;

/// What a run writes besides its terminal text (docs/report.md).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Reports")]
pub struct OutputArgs {
    /// Print the run's events as JSON lines on stdout (the terminal text moves to stderr).
    #[arg(long)]
    pub json: bool,

    /// Write a JUnit XML file: each check a test case, the run a test suite.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write a report directory: index.html (self-contained), topology.svg, events.jsonl,
    /// junit.xml and the files the scenario saved.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Write the picture of the lab: .svg, .dot (Graphviz) or .mmd (Mermaid), by extension.
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,

    /// The picture's format where --graph's file has no telling extension (/dev/stdout).
    #[arg(long, value_name = "FORMAT", value_parser = ["svg", "dot", "mmd"], requires = "graph")]
    pub graph_format: Option<String>,
}

impl OutputArgs {
    pub fn outputs(&self) -> Outputs {
        Outputs {
            junit: self.junit.clone(),
            report: self.report.clone(),
            graph: self.graph.clone(),
            graph_format: self.graph_format.as_deref().and_then(Format::by_name),
        }
    }
}

/// Run a scenario: build its lab, run its checks, remove everything.
#[derive(Args)]
pub struct RunArgs {
    /// The scenario: a WebAssembly component of the world nslab:lab/scenario.
    file: PathBuf,

    /// Keep the lab when the scenario ends: pin its namespaces under /run/netns (for `ip netns
    /// exec`) until `runner cleanup RUN-ID`.
    #[arg(long)]
    keep: bool,

    /// When the scenario has returned and every output is written, keep the lab up and wait
    /// (Ctrl-C, SIGTERM or `runner release RUN` ends it): step in with `runner shell`,
    /// `runner exec` and `runner capture`. The exit status is the scenario's.
    #[arg(long, conflicts_with = "hold_on_fail")]
    hold: bool,

    /// As --hold, only when a check failed or the scenario returned an error, crashed or
    /// was stopped by a limit or its deadline.
    #[arg(long)]
    hold_on_fail: bool,

    /// End a hold by itself after this long (for example 10m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    hold_timeout: Option<std::time::Duration>,

    /// Compile the scenario anew instead of using the runner's compile cache.
    #[arg(long)]
    no_cache: bool,

    /// Print only the scenario's steps, checks and the verdict.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,

    /// Also print each object removed when the lab is torn down.
    #[arg(short, long)]
    verbose: bool,

    #[command(flatten)]
    outputs: OutputArgs,

    #[command(flatten)]
    policy: PolicyArgs,

    /// Arguments passed to the scenario's run(args), after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub fn main(a: RunArgs) -> ExitCode {
    let verbosity = match (a.quiet, a.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let policy = match a.policy.build_or_exit() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let helper = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return super::fail(format!("cannot find the runner's own program: {e}")),
    };
    let outputs = a.outputs.outputs();
    let journal = Journal::new(a.outputs.json, outputs.any(), verbosity > Verbosity::Quiet);
    let cfg = RunConfig {
        file: a.file,
        args: a.args,
        policy,
        console: Console::new(verbosity).with_journal(Arc::new(journal)),
        outputs,
        keep: a.keep,
        hold: match (a.hold, a.hold_on_fail) {
            (true, _) => run::HoldWhen::Always,
            (_, true) => run::HoldWhen::OnFail,
            _ => run::HoldWhen::Never,
        },
        hold_timeout: a.hold_timeout,
        helper,
        cache: (!a.no_cache).then(nslab_host::cache::default_dir),
    };
    match super::block_on(run::run(cfg)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(code) => code,
    }
}
