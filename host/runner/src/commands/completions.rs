//! For people at a terminal: shell completions and a man page, made from the command line's own
//! definition (clap_complete, clap_mangen), so they never drift from what `runner` accepts.

use std::process::ExitCode;

use clap::{Args, CommandFactory};

/// Print the completion script for a shell: runner completions bash > /etc/bash_completion.d/runner
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Print the man page (roff): runner man > /usr/local/share/man/man1/runner.1
#[derive(Args)]
pub struct ManArgs {}

pub fn completions(a: CompletionsArgs) -> ExitCode {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "runner", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub fn man(_: ManArgs) -> ExitCode {
    let page = clap_mangen::Man::new(super::Cli::command());
    match page.render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(format!("cannot write the man page: {e}")),
    }
}
