use std::process::ExitCode;

use clap::Parser;

mod commands;

fn main() -> ExitCode {
    // The lab helper (host/src/lab/helper.rs) is this program re-executed, single-threaded.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(nslab_host::lab::helper::HELPER_ARG))
    {
        return nslab_host::lab::helper::serve();
    }
    let cli = commands::Cli::parse();
    commands::dispatch(cli)
}
