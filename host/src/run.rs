//! One run of a scenario: load and validate the component, build the store, call `describe`
//! and `run`, then tear the lab down whatever happened, and say how it went.

use std::path::PathBuf;
use std::time::Instant;

use crate::account::{Ending, Event, Verdict};
use crate::console::{Console, Verbosity};
use crate::engine::{describe, epoch_ticker, load_scenario, new_store, Described, Loaded};
use crate::guest_limits::Tripped;
use crate::lab::{Lab, ProgramLimits};
use crate::policy::Policy;
use crate::privilege;
use crate::records::{self, RunRecord};
use crate::report::Report;
use std::sync::Arc;

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
}

/// The files a run writes when it ends. Each needs the console's journal to keep the events.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// `--junit FILE`.
    pub junit: Option<PathBuf>,
    /// `--report DIR`.
    pub report: Option<PathBuf>,
    /// `--graph FILE`: the picture alone, its format by extension.
    pub graph: Option<PathBuf>,
}

impl Outputs {
    pub fn any(&self) -> bool {
        self.junit.is_some() || self.report.is_some() || self.graph.is_some()
    }

    /// Say before the run what could not be written after it: a missing directory, a picture
    /// of an unknown format.
    pub fn check(&self) -> Result<(), String> {
        if let Some(g) = &self.graph {
            crate::account::graph::Format::for_path(g)?;
        }
        for (flag, file) in [("--junit", &self.junit), ("--graph", &self.graph)] {
            let Some(file) = file else { continue };
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if !dir.is_dir() {
                return Err(format!(
                    "{flag} {}: the directory {} does not exist; create it first",
                    file.display(),
                    dir.display()
                ));
            }
            crate::output::check(file).map_err(|e| format!("{flag}: {e}"))?;
        }
        if let Some(dir) = &self.report {
            crate::output::check(dir).map_err(|e| format!("--report: {e}"))?;
        }
        Ok(())
    }
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
pub async fn run(cfg: RunConfig) -> Outcome {
    let console = cfg.console.clone();
    let outputs = cfg.outputs.clone();
    if let Err(why) = outputs.check() {
        console.error(&why);
        return Outcome::CouldNotRun;
    }
    let (outcome, files) = run_scenario(cfg).await;
    match write_outputs(&outputs, &console, &files) {
        Ok(()) => outcome,
        Err(why) => {
            console.error(&why);
            Outcome::CouldNotRun
        }
    }
}

/// Write the JUnit file, the report directory and the picture from the run's account.
fn write_outputs(
    outputs: &Outputs,
    console: &Console,
    files: &[(String, Vec<u8>)],
) -> Result<(), String> {
    if !outputs.any() {
        return Ok(());
    }
    let lines = console.journal().map(|j| j.lines()).unwrap_or_default();
    let account = crate::account::RunAccount::from_lines(&lines);
    let failed = |what: &str, path: &std::path::Path, e: String| {
        format!("cannot write {what} {}: {e}", path.display())
    };
    if let Some(file) = &outputs.junit {
        crate::output::write_file(
            file,
            crate::account::junit::xml(std::slice::from_ref(&account)).as_bytes(),
        )
        .map_err(|e| failed("the JUnit file", file, e))?;
    }
    if let Some(file) = &outputs.graph {
        let format = crate::account::graph::Format::for_path(file)?;
        let picture = crate::account::graph::render(&account.topology, format);
        crate::output::write_file(file, picture.as_bytes())
            .map_err(|e| failed("the picture", file, e))?;
    }
    if let Some(dir) = &outputs.report {
        crate::account::write_report(dir, &lines, files)
            .map_err(|e| failed("the report into", dir, e))?;
        console.line(
            Verbosity::Quiet,
            &format!("report: {}", dir.join("index.html").display()),
        );
    }
    Ok(())
}

/// The run itself; also the files the scenario saved into its report.
async fn run_scenario(cfg: RunConfig) -> (Outcome, Vec<(String, Vec<u8>)>) {
    let started = Instant::now();
    let console = cfg.console.clone();
    let start_event = |run: &str, sha256: &str| {
        console.event(|| Event::RunStart {
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
    };
    let fail_load =
        |e: &dyn std::fmt::Display| (not_run(&console, &e.to_string(), started), vec![]);
    let cache = cfg.cache.as_deref().and_then(crate::cache::Cache::open);
    let Loaded {
        engine,
        pre,
        lookup,
        bytes,
        ..
    } = match load_scenario(&cfg.file, cache.as_ref()) {
        Ok(l) => l,
        Err(e) => {
            start_event("", "");
            return fail_load(&e);
        }
    };
    let sha256 = crate::cache::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    drop(bytes);
    console.line(
        Verbosity::Verbose,
        match lookup {
            crate::cache::Lookup::Hit => "       compiled code: from the compile cache",
            crate::cache::Lookup::Miss => "       compiled code: compiled now",
        },
    );
    if let Some(why) = privilege::missing() {
        start_event("", &sha256);
        return fail_load(&why);
    }
    // From here on the run owns kernel objects: SIGINT and SIGTERM must reach the teardown.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            start_event("", &sha256);
            return fail_load(&format!("cannot watch for signals: {e}"));
        }
    };
    let record = match records::new_run_id() {
        Ok(id) => {
            let scenario = std::fs::canonicalize(&cfg.file).unwrap_or_else(|_| cfg.file.clone());
            RunRecord::new(id, scenario.display().to_string())
        }
        Err(e) => {
            start_event("", &sha256);
            return fail_load(&format!("cannot make a run id: {e}"));
        }
    };
    start_event(&record.id, &sha256);
    let tripped = Arc::new(Tripped::default());
    let mut lab = Lab::new(
        console.clone(),
        record,
        cfg.helper.clone(),
        program_limits(&cfg.policy, tripped.clone()),
    );
    // An ordinary user learns now, not at the scenario's first namespace, that the kernel
    // refuses the user namespace a rootless run needs: the file could not be run at all.
    if privilege::mode() != privilege::Mode::Root {
        if let Err(e) = lab.prepare() {
            return fail_load(&e.to_string());
        }
    }
    let (mut store, stdout, stderr) = new_store(
        &engine,
        &cfg.file,
        Some(lab),
        cfg.policy,
        console.clone(),
        tripped.clone(),
    );
    store.data_mut().report.keep_files = cfg.outputs.report.is_some();
    store.epoch_deadline_async_yield_and_update(1);
    let ticker = epoch_ticker(&engine);

    let mut title = cfg.file.display().to_string();
    let run_id = lab_of(&mut store).run_id().to_string();
    let deadline = store.data().policy.run_timeout;
    let describe_limit = store.data().policy.describe_timeout;
    let guest = async {
        let (scenario, info) =
            describe(&pre, &mut store, describe_limit)
                .await
                .map_err(|e| match e {
                    Described::Trapped(t) => Ended::Trapped(t),
                    Described::TooSlow(why) => Ended::Refused(why),
                })?;
        let info = info.printable();
        title = info.name.clone();
        console.event(|| Event::Scenario {
            name: info.name.clone(),
            description: info.description.clone(),
            programs: info.programs.clone(),
        });
        // Refuse before anything is created a scenario that declares what the policy forbids;
        // from here on it may run only what it declared.
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
        // programs execute (lab/confine.rs).
        let files = crate::inspect::declared_files(&state.policy, &info.programs);
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
            &format!("       run {run_id}; programs it runs: {programs}"),
        );
        for line in crate::inspect::programs_by_path(&store.data().policy) {
            console.line(Verbosity::Normal, &format!("       program {line}"));
        }
        for gap in crate::enforcement::gaps() {
            console.warn(&format!("on this machine, {gap}"));
        }
        match scenario.call_run(&mut store, &cfg.args).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(Ended::Returned(msg)),
            Err(trap) => Err(Ended::Trapped(trap)),
        }
    };
    // A signal drops the guest's future: wasmtime stops the guest where it is, and a program
    // it was running is killed with its process group (lab/exec.rs).
    let ended = tokio::select! {
        ended = guest => ended,
        _ = tokio::time::sleep(deadline) => Err(Ended::Deadline(deadline)),
        reason = tripped.tripped() => Err(Ended::Limit(reason)),
        sig = signals.recv() => {
            console.warn(&format!("{}: stopping the scenario and removing its lab", signal_name(sig)));
            Err(Ended::Signal(sig))
        }
    };
    ticker.abort();
    stdout.flush_line();
    stderr.flush_line();
    // A limit makes the guest trap where it hits it; say which limit, not just "crashed".
    let ended = match (ended, tripped.reason()) {
        (Err(Ended::Trapped(_)), Some(reason)) => Err(Ended::Limit(reason)),
        (ended, _) => ended,
    };

    console.event(|| Event::Topology(lab_of(&mut store).topology()));
    if let Some(j) = console.journal() {
        j.end_progress();
    }
    let keep = cfg.keep && !matches!(ended, Err(Ended::Signal(_)));
    let kept = keep && keep_lab(lab_of(&mut store), &console);
    let kernel_requests = lab_of(&mut store).kernel_requests();
    if kept {
        console.event(|| Event::Teardown {
            kept: true,
            kernel_requests,
            removed: vec![],
            problems: vec![],
        });
    }
    if !kept {
        let teardown = lab_of(&mut store).teardown();
        tokio::pin!(teardown);
        // Teardown is never abandoned: a second Ctrl-C is answered, not obeyed.
        let report = loop {
            tokio::select! {
                report = &mut teardown => break report,
                sig = signals.recv() => console.warn(&format!(
                    "{} again: still removing the lab; the runner exits as soon as that is done",
                    signal_name(sig)
                )),
            }
        };
        for item in &report.removed {
            console.line(Verbosity::Verbose, &format!("teardown: removed {item}"));
        }
        for problem in &report.problems {
            console.warn(&format!("teardown: {problem}"));
        }
        console.event(|| Event::Teardown {
            kept: false,
            kernel_requests,
            removed: report.removed.clone(),
            problems: report.problems.clone(),
        });
    }
    let outcome = verdict(&title, &store.data().report, ended, started, &console);
    (outcome, std::mem::take(&mut store.data_mut().report.files))
}

/// The runner could not run the file: say why, and end the account with that verdict.
fn not_run(console: &Console, why: &str, started: Instant) -> Outcome {
    console.error(why);
    console.event(|| Event::Verdict {
        verdict: Verdict::CouldNotRun,
        ended: Ending::NotRun,
        exit: Outcome::CouldNotRun.exit_code(),
        message: why.to_string(),
        steps: 0,
        passed: 0,
        failed: 0,
        seconds: crate::account::seconds(started.elapsed()),
    });
    Outcome::CouldNotRun
}

/// The run's lab: always there in a run (only `inspect` has none).
fn lab_of(store: &mut wasmtime::Store<crate::engine::RunState>) -> &mut Lab {
    store.data_mut().lab.as_mut().expect("a run has a lab")
}

/// The limits the lab puts on the run's programs, from the policy.
pub(crate) fn program_limits(policy: &Policy, tripped: Arc<Tripped>) -> ProgramLimits {
    ProgramLimits {
        max_processes: policy.max_processes,
        max_links: policy.max_links,
        program_memory: policy.program_memory as u64,
        scratch_bytes: policy.scratch_bytes as u64,
        echo_bytes: policy.echo_bytes,
        tripped,
        by_path: policy
            .exec_paths
            .iter()
            .map(|(name, file)| (name.clone(), file.clone()))
            .collect(),
    }
}

/// Pin the lab and print how to use and remove it. False (and a warning) if it could not be
/// kept, so the caller removes it instead.
fn keep_lab(lab: &mut Lab, console: &Console) -> bool {
    let id = lab.run_id().to_string();
    let kept = lab.keep().map(|pins| (pins, lab.kept_by()));
    match kept {
        Ok((pins, Some(keeper))) => {
            // An ordinary user's lab is held by a keeper process (lab/keeper.rs).
            console.line(
                Verbosity::Quiet,
                &format!(
                    "kept: run {id}; process {keeper} holds its namespaces (rootless: nothing under /run/netns):"
                ),
            );
            for p in &pins {
                let pinned = p.pinned.as_deref().unwrap_or_default();
                console.line(
                    Verbosity::Quiet,
                    &format!("   {:<15}  {pinned:<30}  net:[{}]", p.name, p.inode),
                );
            }
            let user = format!("/proc/{keeper}/fd/{}", crate::lab::keeper::FIRST_FD);
            if let Some(first) = pins.first().and_then(|p| p.pinned.as_deref()) {
                console.line(
                    Verbosity::Quiet,
                    &format!(
                        "   enter one:  nsenter --preserve-credentials --user={user} --net={first} ip address"
                    ),
                );
            }
            if let Some((files, _)) = pins.iter().find_map(|p| p.files.as_ref()) {
                console.line(
                    Verbosity::Quiet,
                    &format!(
                        "   its files:  nsenter --preserve-credentials --user={user} --mount={files} ls /tmp /run"
                    ),
                );
            }
            console.line(
                Verbosity::Quiet,
                &format!("   remove it:  runner cleanup {id}"),
            );
            true
        }
        Ok((pins, None)) => {
            console.line(
                Verbosity::Quiet,
                &format!("kept: run {id}; its namespaces stay pinned under /run/netns:"),
            );
            for p in &pins {
                let pinned = p.pinned.as_deref().unwrap_or_default();
                console.line(
                    Verbosity::Quiet,
                    &format!("   {:<15}  {pinned:<30}  net:[{}]", p.name, p.inode),
                );
            }
            if let Some(first) = pins.first().and_then(|p| p.pinned.as_deref()) {
                console.line(
                    Verbosity::Quiet,
                    &format!("   enter one:  ip netns exec {first} ip address"),
                );
            }
            if let Some((files, _)) = pins.iter().find_map(|p| p.files.as_ref()) {
                console.line(
                    Verbosity::Quiet,
                    &format!(
                        "   its files:  nsenter --mount={}/{files} ls /tmp /run",
                        crate::lab::pin::BOX_DIR
                    ),
                );
            }
            console.line(
                Verbosity::Quiet,
                &format!("   remove it:  runner cleanup {id}"),
            );
            true
        }
        Err(e) => {
            console.warn(&format!("cannot keep the lab ({e}); removing it instead"));
            false
        }
    }
}

/// SIGINT and SIGTERM, as a stream.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Why `run` did not return Ok.
enum Ended {
    Returned(String),
    Trapped(wasmtime::Error),
    Signal(i32),
    Deadline(std::time::Duration),
    /// Stopped by one of its own limits (memory, output).
    Limit(String),
    /// Declared programs the policy does not allow: refused before anything was created.
    Refused(String),
}

fn verdict(
    title: &str,
    report: &Report,
    ended: Result<(), Ended>,
    started: Instant,
    console: &Console,
) -> Outcome {
    let secs = started.elapsed().as_secs_f64();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let counts = format!(
        "{}, {} passed, {} failed, {secs:.1}s",
        plural(report.steps.len(), "step", "steps"),
        plural(report.passed(), "check", "checks"),
        report.failed()
    );
    let (outcome, line, ending) = match ended {
        Err(Ended::Refused(why)) => {
            // Nothing was created and nothing ran: an error, not a verdict.
            console.error(&why);
            console.event(|| Event::Verdict {
                verdict: Verdict::CouldNotRun,
                ended: Ending::Refused,
                exit: Outcome::CouldNotRun.exit_code(),
                message: why.clone(),
                steps: 0,
                passed: 0,
                failed: 0,
                seconds: secs,
            });
            return Outcome::CouldNotRun;
        }
        Ok(()) if report.failed() == 0 => (
            Outcome::Passed,
            format!("PASS {title} ({counts})"),
            Ending::Returned,
        ),
        Ok(()) => (
            Outcome::Failed,
            format!("FAIL {title}: a check failed ({counts})"),
            Ending::Returned,
        ),
        Err(Ended::Returned(msg)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario returned an error: {msg} ({counts})"),
            Ending::ReturnedError,
        ),
        Err(Ended::Limit(reason)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario was stopped: {reason} ({counts})"),
            Ending::Limit,
        ),
        Err(Ended::Deadline(limit)) => (
            Outcome::Failed,
            format!(
                "FAIL {title}: the run passed its deadline of {} and was stopped; its lab was removed \
                 (policy limit run-timeout; give more with --timeout) ({counts})",
                humantime::format_duration(limit)
            ),
            Ending::Deadline,
        ),
        Err(Ended::Signal(sig)) => (
            Outcome::Interrupted(sig),
            format!(
                "STOPPED {title}: interrupted by {}; its lab was removed ({counts})",
                signal_name(sig)
            ),
            Ending::Signal,
        ),
        Err(Ended::Trapped(trap)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario crashed: {} ({counts})", describe_trap(&trap)),
            Ending::Crashed,
        ),
    };
    if !report.refusals.is_empty() {
        console.line(
            Verbosity::Quiet,
            &format!("refused by the policy ({}):", report.refusals.len()),
        );
        for r in &report.refusals {
            console.line(Verbosity::Quiet, &format!("   - {r}"));
        }
    }
    console.line(Verbosity::Quiet, &line);
    console.event(|| Event::Verdict {
        verdict: match outcome {
            Outcome::Passed => Verdict::Passed,
            Outcome::Failed => Verdict::Failed,
            Outcome::CouldNotRun => Verdict::CouldNotRun,
            Outcome::Interrupted(_) => Verdict::Interrupted,
        },
        ended: ending,
        exit: outcome.exit_code(),
        message: line.clone(),
        steps: report.steps.len(),
        passed: report.passed(),
        failed: report.failed(),
        seconds: crate::account::seconds(started.elapsed()),
    });
    outcome
}

/// One line for a trap: its code (e.g. "wasm trap: wasm `unreachable` instruction executed",
/// which a Rust panic becomes; the panic message is on the scenario's stderr above).
fn describe_trap(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "it panicked or reached unreachable code (its message, if any, is printed above)"
                .to_string()
        }
        Some(trap) => format!("wasm trap: {trap}"),
        None => format!("{e:#}"),
    }
}
