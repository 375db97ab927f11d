//! One run of a scenario: load and validate the component, build the store, call `describe`
//! and `run`, then tear the lab down whatever happened, and say how it went.

use std::path::PathBuf;
use std::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Scenario, ScenarioPre};
use crate::console::{Console, Verbosity};
use crate::guest_limits::{GuestOutput, MemoryLimit, Tripped};
use crate::iface::{LabCtx, LabView};
use crate::lab::{Lab, ProgramLimits};
use crate::load;
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

/// The store's data: WASI (with no ambient authority), the lab, and what the run reports.
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    lab: Lab,
    policy: Policy,
    report: Report,
    console: Console,
    memory: MemoryLimit,
    /// The guest's stdout, whose budget its report text shares.
    output: GuestOutput,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RunState {
    fn view(&mut self) -> LabView<'_> {
        LabView {
            lab: &mut self.lab,
            table: &mut self.table,
            policy: &self.policy,
            report: &mut self.report,
            console: self.console,
            output: &self.output,
        }
    }
}

/// WASI for a scenario: stdout and stderr reach the terminal, labeled and counted; no files
/// (no preopens), no sockets, no name lookups, no environment, no arguments.
fn sandboxed_wasi(stdout: GuestOutput, stderr: GuestOutput) -> WasiCtx {
    WasiCtx::builder()
        .stdout(stdout)
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

fn engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    // Epoch interruption makes a guest yield to the runtime regularly even when it never calls
    // the host, so Ctrl-C is handled at once whatever the guest is doing.
    config.wasm_component_model(true).epoch_interruption(true);
    Engine::new(&config)
}

/// How often a running guest yields to the runtime.
const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<RunState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Scenario::add_to_linker::<RunState, LabCtx>(&mut linker, RunState::view)?;
    Ok(linker)
}

/// A scenario compiled and matched against the world, ready to instantiate.
pub(crate) struct Loaded {
    pub engine: Engine,
    pub component: wasmtime::component::Component,
    pub pre: ScenarioPre<RunState>,
    pub bytes: Vec<u8>,
}

/// Read, check, compile and link a scenario file; the error is the sentence to print.
pub(crate) fn load_scenario(file: &std::path::Path) -> Result<Loaded, String> {
    let bytes = load::read(file).map_err(|e| e.to_string())?;
    let engine = engine().map_err(|e| format!("cannot set up WebAssembly: {e:#}"))?;
    let linker = linker(&engine).map_err(|e| format!("cannot set up WebAssembly: {e:#}"))?;
    let (component, pre) =
        load::prepare(&engine, &linker, file, &bytes).map_err(|e| e.to_string())?;
    Ok(Loaded {
        engine,
        component,
        pre,
        bytes,
    })
}

/// The store for one instance of a scenario, with its limits and labeled output.
pub(crate) fn new_store(
    engine: &Engine,
    file: &std::path::Path,
    lab: Lab,
    policy: Policy,
    console: Console,
    tripped: Arc<Tripped>,
) -> (Store<RunState>, GuestOutput, GuestOutput) {
    let label = file
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    let quiet = console.verbosity == Verbosity::Silent;
    let (stdout, stderr) =
        GuestOutput::pair(&label, policy.guest_output_bytes, tripped.clone(), quiet);
    let state = RunState {
        wasi: sandboxed_wasi(stdout.clone(), stderr.clone()),
        table: ResourceTable::new(),
        lab,
        memory: MemoryLimit::new(policy.guest_memory, tripped),
        output: stdout.clone(),
        policy,
        report: Report::default(),
        console,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    (store, stdout, stderr)
}

/// Run a scenario file to the end and report. Errors the runner cannot put in a report (a bad
/// file, no privilege) are printed here too: the caller only turns the outcome into a status.
pub async fn run(cfg: RunConfig) -> Outcome {
    let started = Instant::now();
    let console = cfg.console;
    let fail_load = |e: &dyn std::fmt::Display| {
        if console.verbosity > Verbosity::Silent {
            eprintln!("runner: error: {e}");
        }
        Outcome::CouldNotRun
    };
    let Loaded { engine, pre, .. } = match load_scenario(&cfg.file) {
        Ok(l) => l,
        Err(e) => return fail_load(&e),
    };
    if let Some(why) = privilege::missing() {
        return fail_load(&why);
    }
    // From here on the run owns kernel objects: SIGINT and SIGTERM must reach the teardown.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => return fail_load(&format!("cannot watch for signals: {e}")),
    };
    let record = match records::new_run_id() {
        Ok(id) => {
            let scenario = std::fs::canonicalize(&cfg.file).unwrap_or_else(|_| cfg.file.clone());
            RunRecord::new(id, scenario.display().to_string())
        }
        Err(e) => return fail_load(&format!("cannot make a run id: {e}")),
    };
    let tripped = Arc::new(Tripped::default());
    let lab = Lab::new(
        console,
        record,
        cfg.helper.clone(),
        program_limits(&cfg.policy, tripped.clone()),
    );
    let (mut store, stdout, stderr) = new_store(
        &engine,
        &cfg.file,
        lab,
        cfg.policy,
        console,
        tripped.clone(),
    );
    store.epoch_deadline_async_yield_and_update(1);
    let ticker = epoch_ticker(&engine);

    let mut title = cfg.file.display().to_string();
    let run_id = store.data().lab.run_id().to_string();
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
        // Refuse before anything is created a scenario that declares what the policy forbids;
        // from here on it may run only what it declared.
        let policy = &mut store.data_mut().policy;
        if let Some(why) = policy.undeclarable(&info.programs) {
            return Err(Ended::Refused(format!(
                "scenario {} declares programs the policy does not allow: {why}",
                info.name
            )));
        }
        policy.declared = Some(info.programs.iter().cloned().collect());
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

    let state = store.data_mut();
    let keep = cfg.keep && !matches!(ended, Err(Ended::Signal(_)));
    let kept = if keep {
        keep_lab(&mut state.lab, console)
    } else {
        false
    };
    if !kept {
        let teardown = state.lab.teardown();
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
    }
    verdict(&title, &state.report, ended, started, console)
}

/// Why `describe()` did not answer.
pub(crate) enum Described {
    Trapped(wasmtime::Error),
    /// It did not return within `describe-timeout`: the sentence to print.
    TooSlow(String),
}

/// Instantiate the scenario and call its `describe()`, both within `limit` (a scenario from a
/// stranger may spin there forever; epoch interruption lets the deadline in).
pub(crate) async fn describe(
    pre: &ScenarioPre<RunState>,
    store: &mut Store<RunState>,
    limit: std::time::Duration,
) -> Result<(Scenario, crate::bindings::Info), Described> {
    let call = async {
        let scenario = pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Described::Trapped)?;
        let info = scenario
            .call_describe(&mut *store)
            .await
            .map_err(Described::Trapped)?;
        Ok((scenario, info))
    };
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(Described::TooSlow(format!(
            "the scenario's describe() did not return within {} (policy limit describe-timeout; raise it with --describe-timeout)",
            humantime::format_duration(limit)
        )))
    })
}

/// Advance the engine's epoch every tick, so a running guest yields regularly; the caller aborts
/// the task when the guest is done.
pub(crate) fn epoch_ticker(engine: &Engine) -> tokio::task::JoinHandle<()> {
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EPOCH_TICK);
        loop {
            tick.tick().await;
            engine.increment_epoch();
        }
    })
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
    }
}

/// Pin the lab and print how to use and remove it. False (and a warning) if it could not be
/// kept, so the caller removes it instead.
fn keep_lab(lab: &mut Lab, console: Console) -> bool {
    let id = lab.run_id().to_string();
    match lab.keep() {
        Ok(pins) => {
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
    console: Console,
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
    let (outcome, line) = match ended {
        Err(Ended::Refused(why)) => {
            // Nothing was created and nothing ran: an error, not a verdict.
            if console.verbosity > Verbosity::Silent {
                eprintln!("runner: error: {why}");
            }
            return Outcome::CouldNotRun;
        }
        Ok(()) if report.failed() == 0 => (Outcome::Passed, format!("PASS {title} ({counts})")),
        Ok(()) => (Outcome::Failed, format!("FAIL {title}: a check failed ({counts})")),
        Err(Ended::Returned(msg)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario returned an error: {msg} ({counts})"),
        ),
        Err(Ended::Limit(reason)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario was stopped: {reason} ({counts})"),
        ),
        Err(Ended::Deadline(limit)) => (
            Outcome::Failed,
            format!(
                "FAIL {title}: the run passed its deadline of {} and was stopped; its lab was removed \
                 (policy limit run-timeout; give more with --timeout) ({counts})",
                humantime::format_duration(limit)
            ),
        ),
        Err(Ended::Signal(sig)) => (
            Outcome::Interrupted(sig),
            format!(
                "STOPPED {title}: interrupted by {}; its lab was removed ({counts})",
                signal_name(sig)
            ),
        ),
        Err(Ended::Trapped(trap)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario crashed: {} ({counts})", describe_trap(&trap)),
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
