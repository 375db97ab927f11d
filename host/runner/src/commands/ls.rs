use std::process::ExitCode;

use clap::Args;
use nslab_lab::records::{now_unix, RunStatus};
use nslab_lab::text::printable;

/// List runs in progress and kept labs, with their namespaces.
#[derive(Args)]
pub struct LsArgs {}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn main(_: LsArgs) -> ExitCode {
    let (runs, skipped) = match nslab_runner::records::load_all_reporting() {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "runner: error: cannot read the run records in {}: {e}",
                nslab_runner::records::run_dir().display()
            );
            return ExitCode::from(1);
        }
    };
    for line in &skipped {
        eprintln!("runner: warning: {line}");
    }
    if runs.is_empty() {
        println!("no runs in progress and no kept labs");
        return ExitCode::SUCCESS;
    }
    println!("{:<9} {:<8} {:<7} SCENARIO", "RUN", "STATE", "AGE");
    for r in &runs {
        let status = r.status();
        let state = match status {
            RunStatus::Running if r.held => "held",
            s => s.as_str(),
        };
        println!(
            "{:<9} {:<8} {:<7} {}",
            r.id,
            state,
            age(now_unix().saturating_sub(r.started_unix)),
            printable(&r.scenario)
        );
        for ns in &r.namespaces {
            let pinned =
                ns.pinned
                    .as_deref()
                    .map_or("-".to_string(), |p| match p.starts_with('/') {
                        // An ordinary user's kept lab: the keeper's fd (lab/keep/keeper.rs).
                        true => p.to_string(),
                        false => format!("/run/netns/{p}"),
                    });
            println!(
                "          {:<15}  {:<40}  net:[{}]",
                printable(&ns.name),
                printable(&pinned),
                ns.inode
            );
        }
        if status == RunStatus::Running && r.held {
            let first = r.namespaces.first().map_or("NS", |n| n.name.as_str());
            println!(
                "          (held: runner shell {} {first}; runner release {} ends it)",
                r.id, r.id
            );
        }
        if status != RunStatus::Dead {
            continue;
        }
        let left = nslab_runner::leftovers::of(r, &runs);
        for l in &left {
            let whose = if l.ours {
                "the run's"
            } else {
                "not the run's: entered from outside"
            };
            println!("          held by {l}: {whose}");
        }
        if left.is_empty() {
            println!("          (the runner was killed; the kernel freed its lab: `runner cleanup {}` forgets it)", r.id);
        } else if left.iter().any(|l| l.ours) {
            println!("          (the runner was killed, but the processes above still hold its lab: `runner cleanup {}` ends the run's)", r.id);
        } else {
            println!("          (the runner was killed; only processes from outside the run hold its namespaces: `runner cleanup {}` forgets it)", r.id);
        }
    }
    ExitCode::SUCCESS
}
