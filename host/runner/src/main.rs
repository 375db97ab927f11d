use std::process::ExitCode;

use clap::Parser;

mod commands;

fn main() -> ExitCode {
    // The lab helper (host/src/lab/helper/) is this program re-executed, single-threaded.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(nslab_lab::helper::HELPER_ARG))
    {
        return nslab_lab::helper::serve();
    }
    // The process that holds an ordinary user's kept lab (host/src/lab/keep/keeper.rs).
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(nslab_lab::keep::keeper::KEEPER_ARG))
    {
        return nslab_lab::keep::keeper::serve();
    }
    // The janitor of a run's cgroup (host/src/lab/programs/cgroup/).
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref()
        == Some(std::ffi::OsStr::new(
            nslab_lab::programs::cgroup::JANITOR_ARG,
        ))
    {
        let dirs: Vec<std::path::PathBuf> = args.map(Into::into).collect();
        return nslab_lab::programs::cgroup::janitor(&dirs);
    }
    let cli = commands::Cli::parse();
    commands::dispatch(cli)
}
