use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use nslab_host::console::{Console, Verbosity};
use nslab_host::policy::Policy;
use nslab_host::run::{self, RunConfig};

/// Run a scenario: build its lab, run its checks, remove everything.
#[derive(Args)]
pub struct RunArgs {
    /// The scenario: a WebAssembly component of the world nslab:lab/scenario.
    file: PathBuf,

    /// Also allow the scenario to run these programs (bare names, found in the system PATH).
    /// Allowed by default: ping.
    #[arg(long, value_name = "PROG[,PROG...]", value_delimiter = ',')]
    allow_exec: Vec<String>,

    /// Stop the scenario and remove its lab if the whole run takes longer than this
    /// (e.g. 30s, 5m; default 10m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<std::time::Duration>,

    /// Keep the lab when the scenario ends: pin its namespaces under /run/netns (for `ip netns
    /// exec`) until `runner cleanup RUN-ID`.
    #[arg(long)]
    keep: bool,

    /// Print only the scenario's steps, checks and the verdict.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,

    /// Also print each object removed when the lab is torn down.
    #[arg(short, long)]
    verbose: bool,

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
    let mut policy = Policy::default();
    policy.allow_exec(
        a.allow_exec
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty()),
    );
    if let Some(t) = a.timeout {
        policy.run_timeout = t;
    }
    let cfg = RunConfig {
        file: a.file,
        args: a.args,
        policy,
        console: Console::new(verbosity),
        keep: a.keep,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runner: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run::run(cfg));
    ExitCode::from(outcome.exit_code())
}
