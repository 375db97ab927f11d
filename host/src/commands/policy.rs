use std::process::ExitCode;

use clap::Args;

use super::policy_args::PolicyArgs;

/// Print the effective policy: each key, its value, and where the value came from.
#[derive(Args)]
pub struct PolicyCmd {
    #[command(flatten)]
    policy: PolicyArgs,
}

pub fn main(a: PolicyCmd) -> ExitCode {
    let policy = match a.policy.build_or_exit() {
        Ok(p) => p,
        Err(code) => return code,
    };
    println!("{:<20} {:<50} FROM", "KEY", "VALUE");
    for (key, value, from) in policy.describe() {
        println!("{key:<20} {value:<50} {from}");
    }
    ExitCode::SUCCESS
}
