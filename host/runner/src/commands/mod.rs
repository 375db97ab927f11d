//! The command line: one module per subcommand.

mod cache;
mod cleanup;
mod completions;
mod enter;
mod inspect;
mod ls;
mod new;
mod policy;
mod policy_args;
mod report;
mod run;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "runner",
    version,
    about = "Run network labs written as WebAssembly components",
    long_about = "Run network labs written as WebAssembly components.\n\n\
        A scenario creates network namespaces, veth pairs, bridges, addresses, routes and link \
        shaping, and runs programs such as ping and iperf3 inside them, only through the \
        nslab:lab interface; the runner does the privileged work, lets the scenario touch only \
        what it created, and removes everything when the run ends.\n\n\
        Exit status of run: 0 every check passed; 1 a check failed, the scenario returned an \
        error, crashed, or was stopped by a limit or its deadline; 2 the runner could not run \
        the file (unreadable, not a component, not a scenario, refused by the policy, no \
        privilege); 130 / 143 stopped by SIGINT / SIGTERM (the lab is removed)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Test(test::TestArgs),
    Inspect(inspect::InspectArgs),
    Policy(policy::PolicyCmd),
    Ls(ls::LsArgs),
    Shell(enter::ShellArgs),
    Exec(enter::ExecArgs),
    Capture(enter::CaptureArgs),
    Release(enter::ReleaseArgs),
    Cleanup(cleanup::CleanupArgs),
    Cache(cache::CacheArgs),
    Report(report::ReportCmd),
    New(new::NewArgs),
    Wit(new::WitArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

/// Print a failure to run at all, and the exit status for it (2).
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("runner: error: {message}");
    ExitCode::from(2)
}

/// Run a future on a multi-threaded tokio runtime, or say why there is none.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))
}

pub fn dispatch(cli: Cli) -> ExitCode {
    // Commands that only print may be piped into `head`: let a closed pipe end them quietly, as
    // it does any Unix tool, instead of a panic. Not `run` (or `cleanup`), which must always
    // finish removing what they are removing.
    if matches!(
        cli.command,
        Command::Inspect(_)
            | Command::Policy(_)
            | Command::Ls(_)
            | Command::Completions(_)
            | Command::Man(_)
    ) {
        // SAFETY: setting a signal's disposition to its default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Test(args) => test::main(args),
        Command::Inspect(args) => inspect::main(args),
        Command::Policy(args) => policy::main(args),
        Command::Ls(args) => ls::main(args),
        Command::Shell(args) => enter::shell(args),
        Command::Exec(args) => enter::exec(args),
        Command::Capture(args) => enter::capture(args),
        Command::Release(args) => enter::release(args),
        Command::Cleanup(args) => cleanup::main(args),
        Command::Cache(args) => cache::main(args),
        Command::Report(args) => report::main(args),
        Command::New(args) => new::main(args),
        Command::Wit(args) => new::wit(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}
