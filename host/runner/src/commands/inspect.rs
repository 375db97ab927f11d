use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use nslab_host::inspect::inspect;

use super::policy_args::PolicyArgs;

/// Show what a scenario is and what it will ask for, without running it or touching the kernel
#[derive(Args)]
#[command(
    long_about = "Show what a scenario is and what it will ask for, without running it or \
    touching the kernel: its describe(), the interfaces it imports, its sha256, and whether the \
    policy allows the programs it declares. Needs no privilege.\n\n\
    Exit status: 0 the policy allows what it declares, 1 it does not, 2 the file cannot be run."
)]
pub struct InspectArgs {
    /// The scenario: a WebAssembly component of the world nslab:lab/scenario.
    file: PathBuf,

    /// Compile the scenario anew instead of using the runner's compile cache.
    #[arg(long)]
    no_cache: bool,

    #[command(flatten)]
    policy: PolicyArgs,
}

pub fn main(a: InspectArgs) -> ExitCode {
    let policy = match a.policy.build_or_exit() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cache = (!a.no_cache).then(nslab_host::cache::default_dir);
    let found = match super::block_on(inspect(&a.file, policy.clone(), cache.as_deref())) {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return super::fail(e),
        Err(code) => return code,
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
    for line in nslab_host::inspect::programs_by_path(&policy) {
        println!("             {line}");
    }
    println!("imports      {}", found.imports.join("\n             "));
    for gap in nslab_runner::enforcement::gaps() {
        println!("note         on this machine, {gap}");
    }
    match found.refused {
        None => {
            println!("policy       allows everything it declares");
            println!(
                "             {}",
                nslab_runner::enforcement::allowlist_statement()
            );
            for route in
                nslab_runner::enforcement::open_routes(found.programs.iter().map(String::as_str))
            {
                println!("note         {route}");
            }
            ExitCode::SUCCESS
        }
        Some(why) => {
            println!("policy       would refuse it: {why}");
            ExitCode::from(1)
        }
    }
}
