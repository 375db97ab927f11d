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
    let by_path = nslab_host::inspect::programs_by_path(&policy);
    if !by_path.is_empty() {
        println!();
        println!("Programs allowed by path (a scenario runs them by name):");
        for line in by_path {
            println!("{line}");
        }
    }
    println!();
    println!("How this machine enforces the limits on programs:");
    for e in nslab_runner::enforcement::on_this_machine() {
        let mark = if e.complete { "" } else { "NOT FULLY: " };
        println!("{:<20} {mark}{}", e.key, e.how);
    }
    let open = nslab_runner::enforcement::open_routes(
        policy
            .exec_allow
            .iter()
            .filter(|p| !policy.exec_deny.contains(*p))
            .map(String::as_str),
    );
    if !open.is_empty() {
        println!();
        println!("Routes past the allowlist that no kernel rule closes (the programs allowed open them):");
        for route in open {
            println!("{:<20} {route}", "exec-allowlist");
        }
    }
    ExitCode::SUCCESS
}
