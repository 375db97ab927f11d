use std::process::ExitCode;

use clap::Args;
use nslab_lab::records::{RunRecord, RunStatus};
use nslab_lab::text::printable;
use nslab_runner::cleanup::cleanup;

/// Remove kept labs: exactly what the runner pinned, found by its own record of the run.
#[derive(Args)]
pub struct CleanupArgs {
    /// The run to remove, as `runner run --keep` and `runner ls` show it.
    #[arg(
        value_name = "RUN-ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    run_id: Option<String>,

    /// Remove every kept lab and the records of runs that were killed.
    #[arg(long)]
    all: bool,
}

/// Every record, after removing half-written ones whose writer was killed.
fn sweep_then_load_all() -> std::io::Result<Vec<RunRecord>> {
    nslab_runner::records::sweep_temp_files();
    nslab_runner::records::load_all()
}

pub fn main(a: CleanupArgs) -> ExitCode {
    let runs = match &a.run_id {
        Some(id) => {
            let valid = id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit());
            match valid.then(|| nslab_runner::records::load(id)) {
                Some(Ok(r)) => vec![r],
                _ => {
                    eprintln!("runner: error: there is no run {id:?}: `runner ls` lists the runs and kept labs");
                    return ExitCode::from(2);
                }
            }
        }
        None => match sweep_then_load_all() {
            Ok(all) => all
                .into_iter()
                .filter(|r| r.status() != RunStatus::Running)
                .collect(),
            Err(e) => {
                eprintln!("runner: error: cannot read the run records: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if runs.is_empty() {
        println!("nothing to clean up");
    }
    let mut failed = false;
    for r in &runs {
        match cleanup(r) {
            Ok(done) => {
                // Names and pins come from a record: shown inert, whoever wrote it.
                for item in &done.removed {
                    println!("removed {}", printable(item));
                }
                for note in &done.notes {
                    println!("note: {}", printable(note));
                }
                for p in &done.problems {
                    eprintln!("runner: error: {}", printable(p));
                }
                failed |= !done.problems.is_empty();
                if done.problems.is_empty() {
                    println!("run {} cleaned up", r.id);
                }
            }
            Err(e) => {
                eprintln!("runner: error: {}", printable(&e));
                failed = true;
            }
        }
    }
    ExitCode::from(u8::from(failed))
}
