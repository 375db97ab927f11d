//! `runner test`: many scenarios, N side by side, each a run of its own (its own lab, helper,
//! id range and account), with a cargo-test-like summary, one JUnit suite per scenario and one
//! report directory per scenario under an index.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use nslab_lab::text::printable;
use nslab_report::account::{self, Journal, RunAccount};
use nslab_report::console::Console;
use nslab_runner::run::{self, Outcome, Outputs, RunConfig};

use super::policy_args::PolicyArgs;

/// Where `runner test` prints: stdout, or stderr when the JUnit document goes to stdout.
static TEXT_ON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `println!` to where `runner test` prints.
macro_rules! say {
    ($($arg:tt)*) => {
        if TEXT_ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*)
        } else {
            println!($($arg)*)
        }
    };
}

/// Run many scenarios and summarize: exit 0 if all passed, 1 if any failed, 2 if any could
/// not be run.
#[derive(Args)]
pub struct TestArgs {
    /// Scenario files, or directories whose .wasm files are all run.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,

    /// How many scenarios run side by side (default: the number of CPUs).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,

    /// Write one JUnit XML file: a test suite per scenario.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,

    /// Write a report directory: index.html with every scenario, and a report of each in a
    /// directory of its own.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,

    /// Compile the scenarios anew instead of using the runner's compile cache.
    #[arg(long)]
    no_cache: bool,

    /// Run only share K of N of the scenarios (1 <= K <= N), as one job of a CI matrix: the
    /// same share on every machine, whatever order the files are named in; every scenario is
    /// in exactly one share. Join the shards' reports with `runner report merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<nslab_runner::shard::Shard>,

    #[command(flatten)]
    policy: PolicyArgs,

    /// Arguments passed to every scenario's run(args), after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// One scenario to run: its file and the name it is shown (and its report directory) by.
struct Planned {
    file: PathBuf,
    name: String,
}

/// The name of each scenario's shard, for its JUnit suite and the report's index.
fn shard_name(a: &TestArgs) -> Option<String> {
    a.shard.map(|s| s.to_string())
}

pub fn main(a: TestArgs) -> ExitCode {
    let policy = match a.policy.build_or_exit() {
        Ok(p) => p,
        Err(code) => return code,
    };
    let planned = match plan(&a.paths) {
        Ok(p) => p,
        Err(why) => return super::fail(why),
    };
    let all = planned.len();
    let planned = match a.shard {
        Some(shard) => shard.pick(planned, |p| nslab_runner::shard::key(&p.file)),
        None => planned,
    };
    let helper = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return super::fail(format!("cannot find the runner's own program: {e}")),
    };
    let outputs = Outputs {
        junit: a.junit.clone(),
        report: a.report.clone(),
        graph: None,
        graph_format: None,
    };
    // Opened now, as a shell's `>` opens before the command: a reader of `>(...)` sees the
    // document once, when it is written.
    let opened = match outputs.open() {
        Ok(o) => o,
        Err(why) => return super::fail(why),
    };
    if opened.on_stdout().is_some() {
        TEXT_ON_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let cache = (!a.no_cache).then(nslab_host::cache::default_dir);
    match a.shard {
        Some(shard) => say!(
            "running {} of {all} scenarios (shard {shard}), {jobs} side by side",
            planned.len()
        ),
        None => say!("running {} scenarios, {jobs} side by side", planned.len()),
    }
    let started = Instant::now();
    let results = match super::block_on(async {
        let slots = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in planned.iter().enumerate() {
            let journal = Arc::new(Journal::new(false, true, false));
            let cfg = RunConfig {
                file: p.file.clone(),
                args: a.args.clone(),
                policy: policy.clone(),
                console: Console::captured(journal.clone()),
                keep: false,
                helper: helper.clone(),
                cache: cache.clone(),
                outputs: Outputs {
                    report: a.report.as_ref().map(|d| d.join(&p.name)),
                    ..Outputs::default()
                },
                hold: Default::default(),
                hold_timeout: None,
            };
            let slots = slots.clone();
            set.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let outcome = run::run(cfg).await;
                (i, outcome, journal.account())
            });
        }
        let mut results: Vec<Option<(Outcome, RunAccount)>> = vec![None; planned.len()];
        while let Some(done) = set.join_next().await {
            match done {
                Ok((i, outcome, account)) => {
                    say!("{}", status_line(&planned[i].name, outcome, &account));
                    results[i] = Some((outcome, account));
                }
                Err(e) => eprintln!("runner: error: a run stopped unexpectedly: {e}"),
            }
        }
        results
    }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let results: Vec<(String, Outcome, RunAccount)> = planned
        .into_iter()
        .zip(results)
        .map(|(p, r)| {
            let (outcome, account) = r.unwrap_or((Outcome::CouldNotRun, RunAccount::default()));
            (p.name, outcome, account)
        })
        .collect();
    let code = summary(&results, started);
    match write_outputs(&a, &opened, &results) {
        Ok(()) => code,
        Err(why) => super::fail(why),
    }
}

/// The scenarios named: files as given, directories by their .wasm files in name order. Names
/// are file stems, made unique.
fn plan(paths: &[PathBuf]) -> Result<Vec<Planned>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot list {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{} holds no .wasm file: name scenario files or a directory of them",
                    path.display()
                ));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut planned: Vec<Planned> = Vec::new();
    for file in files {
        let stem = file
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        let mut name = stem.clone();
        let mut n = 1;
        while planned.iter().any(|p| p.name == name) {
            n += 1;
            name = format!("{stem}-{n}");
        }
        planned.push(Planned { file, name });
    }
    Ok(planned)
}

fn status_line(name: &str, outcome: Outcome, a: &RunAccount) -> String {
    let word = match outcome {
        Outcome::Passed => "ok",
        Outcome::Failed => "FAILED",
        Outcome::CouldNotRun => "COULD NOT RUN",
        Outcome::Interrupted(_) => "STOPPED",
    };
    format!("test {} ... {word} ({:.1}s)", printable(name), a.seconds())
}

/// Print what failed and the totals, cargo-test style; the exit status.
fn summary(results: &[(String, Outcome, RunAccount)], started: Instant) -> ExitCode {
    let not_ok: Vec<&(String, Outcome, RunAccount)> = results
        .iter()
        .filter(|(_, o, _)| *o != Outcome::Passed)
        .collect();
    if !not_ok.is_empty() {
        say!("\nfailures:");
        for (name, _, a) in &not_ok {
            say!("\n---- {} ----", printable(name));
            for c in a.checks().filter(|c| !c.passed) {
                say!("   FAIL {}: {}", printable(&c.name), printable(&c.detail));
            }
            for r in &a.refusals {
                say!("   refused by the policy: {}", printable(r));
            }
            for e in &a.errors {
                say!("   error: {}", printable(e));
            }
            if let Some(end) = a
                .end
                .as_ref()
                .filter(|e| a.errors.last() != Some(&e.message))
            {
                say!("   {}", printable(&end.message));
            }
        }
        say!("\nfailures:");
        for (name, _, _) in &not_ok {
            say!("    {}", printable(name));
        }
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| results.iter().filter(|(_, o, _)| f(o)).count();
    let passed = count(&|o| *o == Outcome::Passed);
    let could_not = count(&|o| *o == Outcome::CouldNotRun);
    let interrupted = results.iter().find_map(|(_, o, _)| match o {
        Outcome::Interrupted(sig) => Some(*sig),
        _ => None,
    });
    let failed = results.len() - passed - could_not;
    let word = if not_ok.is_empty() { "ok" } else { "FAILED" };
    say!(
        "\ntest result: {word}. {passed} passed; {failed} failed; {could_not} could not run; finished in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let code = match (interrupted, could_not, failed) {
        (Some(sig), _, _) => Outcome::Interrupted(sig),
        (_, n, _) if n > 0 => Outcome::CouldNotRun,
        (_, _, n) if n > 0 => Outcome::Failed,
        _ => Outcome::Passed,
    };
    ExitCode::from(code.exit_code())
}

fn write_outputs(
    a: &TestArgs,
    opened: &run::Opened,
    results: &[(String, Outcome, RunAccount)],
) -> Result<(), String> {
    let shard = shard_name(a);
    if let Some(file) = opened.junit() {
        let suites: Vec<(&RunAccount, Option<&str>)> = results
            .iter()
            .map(|(_, _, acc)| (acc, shard.as_deref()))
            .collect();
        file.write(account::junit::xml(&suites).as_bytes())
            .map_err(|e| format!("cannot write the JUnit file {}: {e}", file.path().display()))?;
    }
    if let Some(dir) = &a.report {
        let runs: Vec<account::Listed> = results
            .iter()
            .map(|(name, _, acc)| account::Listed {
                dir: name.clone(),
                shard: shard.clone(),
                account: acc.clone(),
            })
            .collect();
        account::write_test_index(dir, &runs)
            .map_err(|e| format!("cannot write the report into {}: {e}", dir.display()))?;
        say!("report: {}", Path::new(dir).join("index.html").display());
    }
    Ok(())
}
