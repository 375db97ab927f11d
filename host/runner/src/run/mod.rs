//! One run of a scenario, in phases that read top to bottom: prepare (load the component, check
//! privilege, make the lab and the store), admit (its `describe()` against the policy), drive
//! (`run` to its end, its deadline, a limit or a signal), finish (keep or tear down the lab:
//! finish.rs), verdict (verdict.rs); then the outputs (outputs.rs).

mod finish;
mod hold;
mod outputs;
mod signals;
mod verdict;

use std::path::PathBuf;
use std::time::Instant;

use std::sync::Arc;

use crate::privilege;
use crate::records;
pub use finish::print_kept;
pub use hold::HoldWhen;
use nslab_host::bindings::Scenario;
use nslab_host::engine::RunState;
use nslab_host::engine::{describe, epoch_ticker, load_scenario, new_store, Described, Loaded};
use nslab_host::policy::Policy;
use nslab_lab::records::{new_run_id, RunRecord};
use nslab_lab::{Lab, LabConfig, ProgramLimits, Tripped};
use nslab_report::account::Event;
use nslab_report::console::{Console, Verbosity};
use outputs::write_outputs;
pub use outputs::{Opened, Outputs};
use signals::{signal_name, Signals};
use verdict::{not_run, verdict, Ended};

/// Everything one run needs, validated before the kernel is touched.
pub struct RunConfig {
    pub file: PathBuf,
    pub args: Vec<String>,
    pub policy: Policy,
    pub console: Console,
    /// Pin the lab under /run/netns instead of removing it (`--keep`).
    pub keep: bool,
    /// The `runner` program, which the lab re-executes as its helper (`runner __lab-helper`).
    /// The CLI passes itself; an embedder passes the path of an installed runner.
    pub helper: PathBuf,
    /// The compile cache's directory (cache.rs); None compiles every time (`--no-cache`).
    pub cache: Option<PathBuf>,
    /// What is written when the run ends, from its account (account/).
    pub outputs: Outputs,
    /// Whether the lab stays up for the operator once the scenario has returned (hold.rs).
    pub hold: HoldWhen,
    /// How long a hold lasts at most (`--hold-timeout`).
    pub hold_timeout: Option<std::time::Duration>,
}

/// How a run ended, and so the runner's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `run` returned Ok and every check passed: 0.
    Passed,
    /// A check failed, `run` returned an error, or the guest trapped: 1.
    Failed,
    /// The runner could not run the file at all: 2.
    CouldNotRun,
    /// Stopped by SIGINT or SIGTERM: 128 + the signal (130, 143).
    Interrupted(i32),
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::CouldNotRun => 2,
            Outcome::Interrupted(sig) => (128 + sig) as u8,
        }
    }
}

/// Run a scenario file to the end and report, then write what `outputs` asks for. Errors the
/// runner cannot put in a verdict (a bad file, no privilege) are printed here too: the caller
/// only turns the outcome into a status.
pub async fn run(mut cfg: RunConfig) -> Outcome {
    // The account is kept by the journal: a console without one gets one that keeps nothing
    // else, so the verdict always has its model.
    if cfg.console.journal().is_none() {
        let journal = nslab_report::account::Journal::new(false, false, false);
        cfg.console = cfg.console.clone().with_journal(Arc::new(journal));
    }
    let outputs = cfg.outputs.clone();
    let opened = match outputs.open() {
        Ok(o) => o,
        Err(why) => {
            cfg.console.error(&why);
            return Outcome::CouldNotRun;
        }
    };
    // A document written to the runner's stdout stands there alone: the terminal text moves
    // to stderr, as it does for --json, whose events it would run into.
    if let Some((flag, file)) = opened.on_stdout() {
        if cfg.console.journal().is_some_and(|j| j.prints_json()) {
            cfg.console.error(&format!(
                "{flag} {} goes to standard output, which --json gives to its events; write \
                 it to a file, or drop --json",
                file.path().display()
            ));
            return Outcome::CouldNotRun;
        }
        cfg.console = cfg.console.clone().text_on_stderr();
    }
    let console = cfg.console.clone();
    let (outcome, files) = run_scenario(cfg, &opened).await;
    // A run that held wrote them before it held.
    let Some(files) = files else {
        return outcome;
    };
    match write_outputs(&outputs, &opened, &console, &files) {
        Ok(()) => outcome,
        Err(why) => {
            console.error(&why);
            Outcome::CouldNotRun
        }
    }
}

/// The run itself; also the files the scenario saved into its report, unless the outputs are
/// written already (a run that held).
async fn run_scenario(
    cfg: RunConfig,
    opened: &Opened,
) -> (Outcome, Option<Vec<(String, Vec<u8>)>>) {
    let started = Instant::now();
    let console = cfg.console.clone();
    let mut run = match prepare(&cfg).await {
        Ok(run) => run,
        Err((id, sha256, why)) => {
            start_event(&cfg, &id, &sha256);
            return (not_run(&console, &why, started), Some(vec![]));
        }
    };
    let ticker = epoch_ticker(&run.engine);
    let ended = drive(&cfg, &mut run).await;
    ticker.abort();
    let failed_checks = console.journal().map_or(0, |j| j.account().failed());
    if hold::holds(cfg.hold, &ended, failed_checks) {
        return (
            hold::hold(&cfg, &mut run, ended, started, opened).await,
            None,
        );
    }
    run.control.stop();
    let keep = cfg.keep && !matches!(ended, Err(Ended::Signal(_)));
    finish::finish(lab_of(&mut run.store), keep, &console, &mut run.signals).await;
    // The verdict counts from the run's account, the model every output reads.
    let account = console.journal().map(|j| j.account()).unwrap_or_default();
    let outcome = verdict(&run.title, &account, ended, started, &console);
    (
        outcome,
        Some(std::mem::take(&mut run.store.data_mut().report.files)),
    )
}

/// The run's first event: what it runs, with what, under which policy.
fn start_event(cfg: &RunConfig, run: &str, sha256: &str) {
    cfg.console.event(|| Event::RunStart {
        run: run.to_string(),
        scenario: cfg.file.display().to_string(),
        sha256: sha256.to_string(),
        args: cfg.args.clone(),
        policy: cfg
            .policy
            .describe()
            .into_iter()
            .map(|(k, v, _)| (k.to_string(), v))
            .collect(),
    })
}

/// A run prepared: its component, its store with the lab in it, its signals.
struct Prepared {
    engine: wasmtime::Engine,
    pre: nslab_host::bindings::ScenarioPre<RunState>,
    store: wasmtime::Store<RunState>,
    signals: Signals,
    tripped: Arc<Tripped>,
    stdout: nslab_host::guest_limits::GuestOutput,
    stderr: nslab_host::guest_limits::GuestOutput,
    /// The scenario's name once it has said it, its file's until then.
    title: String,
    /// The run's control socket, for the operator to step in (hold.rs, host/src/enter/).
    control: hold::Control,
}

/// Load the component, check privilege, watch for signals, and make the lab and the store:
/// or why the file could not be run (with the run id and digest known by then).
async fn prepare(cfg: &RunConfig) -> Result<Prepared, (String, String, String)> {
    let console = &cfg.console;
    let cache = cfg
        .cache
        .as_deref()
        .and_then(nslab_host::cache::Cache::open);
    let Loaded {
        engine,
        pre,
        lookup,
        bytes,
        ..
    } = load_scenario(&cfg.file, cache.as_ref())
        .map_err(|e| (String::new(), String::new(), e.to_string()))?;
    let sha256 = nslab_host::cache::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    drop(bytes);
    console.line(
        Verbosity::Verbose,
        match lookup {
            nslab_host::cache::Lookup::Hit => "       compiled code: from the compile cache",
            nslab_host::cache::Lookup::Miss => "       compiled code: compiled now",
        },
    );
    let refuse = |why: String| (String::new(), sha256.clone(), why);
    if let Some(why) = privilege::missing() {
        return Err(refuse(why));
    }
    // From here on the run owns kernel objects: SIGINT and SIGTERM must reach the teardown.
    let signals = Signals::new().map_err(|e| refuse(format!("cannot watch for signals: {e}")))?;
    let id = new_run_id().map_err(|e| refuse(format!("cannot make a run id: {e}")))?;
    let scenario = std::fs::canonicalize(&cfg.file).unwrap_or_else(|_| cfg.file.clone());
    let record = RunRecord::new(
        id.clone(),
        scenario.display().to_string(),
        records::run_dir(),
    );
    start_event(cfg, &id, &sha256);
    let tripped = Arc::new(Tripped::default());
    let mode = privilege::mode();
    let mut lab = Lab::real(
        cfg.helper.clone(),
        LabConfig {
            mode: mode.clone(),
            limits: program_limits(&cfg.policy, tripped.clone()),
            record,
            sink: crate::narration::Narration::new(console.clone(), cfg.policy.echo_bytes),
        },
    );
    // An ordinary user learns now, not at the scenario's first namespace, that the kernel
    // refuses the user namespace a rootless run needs: the file could not be run at all.
    if mode != nslab_lab::Mode::Root {
        lab.prepare()
            .map_err(|e| (id.clone(), sha256.clone(), e.to_string()))?;
    }
    let control = hold::Control::start(&lab, console);
    let (mut store, stdout, stderr) = new_store(
        &engine,
        &cfg.file,
        Some(lab),
        cfg.policy.clone(),
        console.clone(),
        tripped.clone(),
    );
    store.data_mut().report.keep_files = cfg.outputs.report.is_some();
    store.epoch_deadline_async_yield_and_update(1);
    Ok(Prepared {
        engine,
        pre,
        store,
        signals,
        tripped,
        stdout,
        stderr,
        title: cfg.file.display().to_string(),
        control,
    })
}

/// Ask the scenario what it is, and refuse it before anything is created if it declares
/// programs the policy does not allow or this machine cannot start; from here on it may run
/// only what it declared. Says what will run, and what this machine cannot enforce.
async fn admit(
    cfg: &RunConfig,
    pre: &nslab_host::bindings::ScenarioPre<RunState>,
    store: &mut wasmtime::Store<RunState>,
    title: &mut String,
) -> Result<Scenario, Ended> {
    let console = &cfg.console;
    let describe_limit = store.data().policy.describe_timeout;
    let (scenario, info) = describe(pre, store, describe_limit)
        .await
        .map_err(|e| match e {
            Described::Trapped(t) => Ended::Trapped(t),
            Described::TooSlow(why) => Ended::Refused(why),
        })?;
    let info = info.printable();
    *title = info.name.clone();
    console.event(|| Event::Scenario {
        name: info.name.clone(),
        description: info.description.clone(),
        programs: info.programs.clone(),
    });
    let state = store.data_mut();
    if let Some(why) = state.policy.undeclarable(&info.programs) {
        return Err(Ended::Refused(format!(
            "scenario {} declares programs the policy does not allow: {why}",
            info.name
        )));
    }
    if let Some(why) = state.policy.unrunnable(&info.programs) {
        return Err(Ended::Refused(format!(
            "scenario {} declares programs this machine cannot start: {why}",
            info.name
        )));
    }
    state.declared = Some(info.programs.iter().cloned().collect());
    // What the declared programs are as files: the only ones the kernel will let the run's
    // programs execute (lab/programs/confine.rs).
    let files = nslab_host::inspect::declared_files(&state.policy, &info.programs);
    let run_id = state.lab.as_ref().map(|l| l.run_id().to_string());
    if let Some(lab) = state.lab.as_mut() {
        lab.allow_executables(files);
    }
    console.line(
        Verbosity::Quiet,
        &format!("nslab: {}: {}", info.name, info.description),
    );
    let programs = match info.programs.is_empty() {
        true => "none".to_string(),
        false => info.programs.join(", "),
    };
    console.line(
        Verbosity::Normal,
        &format!(
            "       run {}; programs it runs: {programs}",
            run_id.unwrap_or_default()
        ),
    );
    for line in nslab_host::inspect::programs_by_path(&store.data().policy) {
        console.line(Verbosity::Normal, &format!("       program {line}"));
    }
    for gap in crate::enforcement::gaps() {
        console.warn(&format!("on this machine, {gap}"));
    }
    Ok(scenario)
}

/// Admit the scenario and call its `run` to the end, or until the run's deadline, one of its
/// limits or a signal stops it. A stop drops the guest's future: wasmtime stops the guest where
/// it is, and its programs are killed with the lab.
async fn drive(cfg: &RunConfig, run: &mut Prepared) -> Result<(), Ended> {
    let Prepared {
        pre,
        store,
        signals,
        tripped,
        stdout,
        stderr,
        title,
        ..
    } = run;
    let deadline = store.data().policy.run_timeout;
    let guest = async {
        let scenario = admit(cfg, pre, store, title).await?;
        match scenario.call_run(&mut *store, &cfg.args).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(Ended::Returned(msg)),
            Err(trap) => Err(Ended::Trapped(trap)),
        }
    };
    let ended = tokio::select! {
        ended = guest => ended,
        _ = tokio::time::sleep(deadline) => Err(Ended::Deadline(deadline)),
        reason = tripped.tripped() => Err(Ended::Limit(reason)),
        sig = signals.recv() => {
            cfg.console.warn(&format!("{}: stopping the scenario and removing its lab", signal_name(sig)));
            Err(Ended::Signal(sig))
        }
    };
    stdout.flush_line();
    stderr.flush_line();
    // A limit makes the guest trap where it hits it; say which limit, not just "crashed".
    match (ended, tripped.reason()) {
        (Err(Ended::Trapped(_)), Some(reason)) => Err(Ended::Limit(reason)),
        (ended, _) => ended,
    }
}

/// The run's lab: always there in a run (only `inspect` has none).
fn lab_of(store: &mut wasmtime::Store<RunState>) -> &mut Lab {
    store.data_mut().lab.as_mut().expect("a run has a lab")
}

/// The limits the lab puts on the run's programs, from the policy.
pub(crate) fn program_limits(policy: &Policy, tripped: Arc<Tripped>) -> ProgramLimits {
    ProgramLimits {
        max_processes: policy.max_processes,
        max_links: policy.max_links,
        program_memory: policy.program_memory as u64,
        scratch_bytes: policy.scratch_bytes as u64,
        tripped,
        by_path: policy
            .exec_paths
            .iter()
            .map(|(name, file)| (name.clone(), file.clone()))
            .collect(),
    }
}
