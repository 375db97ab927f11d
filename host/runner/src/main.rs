use std::process::ExitCode;

use clap::Parser;

mod commands;

fn main() -> ExitCode {
    // The lab's own processes (its helper, the keeper of an ordinary user's kept lab, the
    // janitor of a run's cgroups) are this program re-executed (nslab-lab's roles).
    if let Some(code) = nslab_lab::roles::dispatch() {
        return code;
    }
    let cli = commands::Cli::parse();
    commands::dispatch(cli)
}
