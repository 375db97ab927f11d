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
    println!();
    println!("How this machine enforces the limits on programs:");
    for e in nslab_host::enforcement::on_this_machine() {
        let mark = if e.complete { "" } else { "NOT FULLY: " };
        println!("{:<20} {mark}{}", e.key, e.how);
    }
    ExitCode::SUCCESS
}
