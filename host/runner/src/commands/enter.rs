//! `runner shell`, `runner exec`, `runner capture` and `runner release`: stepping into a run
//! that goes on, holds (`runner run --hold`) or was kept (`--keep`); host/src/enter/.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use nslab_runner::enter::{client, Outcome};

const RUN_HELP: &str = "The run: its id as `runner ls` shows it, a prefix only it has, or `last` (your newest live, held or kept run)";

/// An interactive shell inside a namespace of a run, where its programs run: its network, its
/// box (the files the scenario gave, `vtysh`, `birdc`), its host name, as root of the run.
#[derive(Args)]
pub struct ShellArgs {
    #[arg(value_name = "RUN", help = RUN_HELP)]
    run: String,
    /// The namespace, by the scenario's name for it.
    #[arg(value_name = "NS")]
    ns: String,
    /// A command to run on the terminal instead of the shell, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Run one command inside a namespace of a run, without a terminal: stdin, stdout and stderr
/// pass through, and its exit status is the command's (126/127 when it cannot run).
#[derive(Args)]
pub struct ExecArgs {
    #[arg(value_name = "RUN", help = RUN_HELP)]
    run: String,
    /// The namespace, by the scenario's name for it.
    #[arg(value_name = "NS")]
    ns: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Capture the packets of an interface of a run as a pcap stream, for
/// `| wireshark -k -i -` or `| tcpdump -r -`. Needs no tcpdump and no allowlist entry.
#[derive(Args)]
pub struct CaptureArgs {
    #[arg(value_name = "RUN", help = RUN_HELP)]
    run: String,
    /// The namespace, by the scenario's name for it.
    #[arg(value_name = "NS")]
    ns: String,
    /// The interface, by its name in that namespace.
    #[arg(value_name = "IFACE")]
    iface: String,
    /// Write the pcap to FILE instead of standard output.
    #[arg(short = 'w', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Stop after COUNT packets.
    #[arg(short = 'c', value_name = "COUNT")]
    count: Option<u64>,
}

/// End a run's hold (`runner run --hold`) from another terminal: its lab is removed.
#[derive(Args)]
pub struct ReleaseArgs {
    #[arg(value_name = "RUN", help = RUN_HELP)]
    run: String,
}

fn finish(outcome: Outcome) -> ExitCode {
    if let Some(said) = outcome.said {
        match outcome.status {
            0 => eprintln!("runner: {said}"),
            _ => eprintln!("runner: error: {said}"),
        }
    }
    ExitCode::from(outcome.status)
}

pub fn shell(a: ShellArgs) -> ExitCode {
    finish(client::shell(&a.run, &a.ns, a.command))
}

pub fn exec(a: ExecArgs) -> ExitCode {
    finish(client::exec(&a.run, &a.ns, a.command))
}

pub fn capture(a: CaptureArgs) -> ExitCode {
    finish(client::capture(&a.run, &a.ns, &a.iface, a.file, a.count))
}

pub fn release(a: ReleaseArgs) -> ExitCode {
    finish(client::release(&a.run))
}
