use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use nslab_host::policy::{parse_size, Policy, PolicyFlags};

/// The policy flags every command that loads a scenario takes (see docs/policy.md).
#[derive(Args, Debug, Clone)]
#[command(
    next_help_heading = "Policy (defaults, then --policy FILE, then these flags; see `runner policy`)"
)]
pub struct PolicyArgs {
    /// A policy file (TOML) with any of the keys in docs/policy.md.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Also allow these programs (bare names, found in the system PATH).
    #[arg(long, value_name = "PROG[,PROG...]", value_delimiter = ',')]
    allow_exec: Vec<String>,

    /// Never allow these programs, even if allowed elsewhere (deny wins).
    #[arg(long, value_name = "PROG[,PROG...]", value_delimiter = ',')]
    deny_exec: Vec<String>,

    /// How many namespaces a run may hold at once.
    #[arg(long, value_name = "N")]
    max_namespaces: Option<usize>,

    /// How many links a run may create.
    #[arg(long, value_name = "N")]
    max_links: Option<usize>,

    /// How many processes and threads a run's programs may have at once, all together.
    #[arg(long, value_name = "N")]
    max_processes: Option<usize>,

    /// Also let the scenario assign addresses in these ranges.
    #[arg(long, value_name = "CIDR[,CIDR...]", value_delimiter = ',')]
    allow_addresses: Vec<ipnet::IpNet>,

    /// Time limit of one program when the scenario gives none (e.g. 30s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    exec_timeout: Option<Duration>,

    /// Bytes kept of each of a program's stdout and stderr (e.g. 64KiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    exec_output: Option<usize>,

    /// Stop the scenario and remove its lab if the whole run takes longer (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,

    /// The most memory the scenario itself may use (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    guest_memory: Option<usize>,

    /// The most the scenario may write to its stdout and stderr together (e.g. 1MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    guest_output: Option<usize>,

    /// The most data one host call may carry (arguments, input, report text).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_call_data: Option<usize>,

    /// Also let the scenario set these environment variables for its programs.
    #[arg(long, value_name = "VAR[,VAR...]", value_delimiter = ',')]
    allow_env: Vec<String>,

    /// The most memory the run's programs may use together (e.g. 512MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    program_memory: Option<usize>,

    /// The most the programs of one lab namespace may write to /tmp, /run, /var/tmp, /dev/shm.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    scratch: Option<usize>,

    /// The most program output the run echoes to the terminal (e.g. 4MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    echo_output: Option<usize>,

    /// Time limit of the scenario's describe(), in `run` and `inspect` (e.g. 5s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    describe_timeout: Option<Duration>,
}

impl PolicyArgs {
    /// The effective policy, or (printed) why it cannot be built and the exit status for that.
    pub fn build_or_exit(&self) -> Result<Policy, std::process::ExitCode> {
        self.build().map_err(super::fail)
    }

    /// The effective policy, or the sentence saying why it cannot be built.
    pub fn build(&self) -> Result<Policy, String> {
        let trim = |v: &[String]| {
            v.iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        };
        let flags = PolicyFlags {
            allow_exec: trim(&self.allow_exec),
            deny_exec: trim(&self.deny_exec),
            max_namespaces: self.max_namespaces,
            max_links: self.max_links,
            max_processes: self.max_processes,
            allow_addresses: self.allow_addresses.clone(),
            exec_timeout: self.exec_timeout,
            exec_output_bytes: self.exec_output,
            timeout: self.timeout,
            guest_memory: self.guest_memory,
            guest_output_bytes: self.guest_output,
            call_bytes: self.max_call_data,
            allow_env: trim(&self.allow_env),
            program_memory: self.program_memory,
            scratch_bytes: self.scratch,
            echo_bytes: self.echo_output,
            describe_timeout: self.describe_timeout,
        };
        Policy::build(self.policy.as_deref(), &flags)
    }
}
