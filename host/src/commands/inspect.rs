use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use nslab_host::inspect::inspect;

use super::policy_args::PolicyArgs;

/// Show what a scenario is and what it will ask for, without running it or touching the kernel.
/// Exit status: 0 the policy allows what it declares, 1 it does not, 2 the file cannot be run.
#[derive(Args)]
pub struct InspectArgs {
    /// The scenario: a WebAssembly component of the world nslab:lab/scenario.
    file: PathBuf,

    #[command(flatten)]
    policy: PolicyArgs,
}

pub fn main(a: InspectArgs) -> ExitCode {
    let policy = match a.policy.build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("runner: error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runner: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let found = match runtime.block_on(inspect(&a.file, policy)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("runner: error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("scenario     {}", found.name);
    println!("description  {}", found.description);
    println!("sha256       {}", found.sha256);
    let programs = if found.programs.is_empty() {
        "(none)".to_string()
    } else {
        found.programs.join(", ")
    };
    println!("programs     {programs}");
    println!("imports      {}", found.imports.join("\n             "));
    match found.refused {
        None => {
            println!("policy       allows everything it declares");
            ExitCode::SUCCESS
        }
        Some(why) => {
            println!("policy       would refuse it: {why}");
            ExitCode::from(1)
        }
    }
}
