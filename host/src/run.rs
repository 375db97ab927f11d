//! One run of a scenario: load and validate the component, build the store, call `describe`
//! and `run`, then tear the lab down whatever happened, and say how it went.

use std::path::PathBuf;
use std::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::Scenario;
use crate::console::{Console, Verbosity};
use crate::iface::{LabCtx, LabView};
use crate::lab::Lab;
use crate::load;
use crate::policy::Policy;
use crate::privilege;
use crate::records::{self, RunRecord};
use crate::report::Report;

/// Everything one run needs, validated before the kernel is touched.
pub struct RunConfig {
    pub file: PathBuf,
    pub args: Vec<String>,
    pub policy: Policy,
    pub console: Console,
    /// Pin the lab under /run/netns instead of removing it (`--keep`).
    pub keep: bool,
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
        }
    }
}

/// WASI for a scenario: stdout and stderr reach the terminal; no files (no preopens), no
/// sockets, no name lookups, no environment, no arguments.
fn sandboxed_wasi() -> WasiCtx {
    WasiCtx::builder()
        .inherit_stdout()
        .inherit_stderr()
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
    let bytes = match load::read(&cfg.file) {
        Ok(b) => b,
        Err(e) => return fail_load(&e),
    };
    let (engine, linker) = match engine().and_then(|e| Ok((linker(&e)?, e))) {
        Ok((l, e)) => (e, l),
        Err(e) => return fail_load(&format!("cannot set up WebAssembly: {e:#}")),
    };
    let pre = match load::prepare(&engine, &linker, &cfg.file, &bytes) {
        Ok(p) => p,
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
    let lab = match Lab::new(console, record) {
        Ok(l) => l,
        Err(e) => return fail_load(&format!("cannot start the lab: {e}")),
    };
    let state = RunState {
        wasi: sandboxed_wasi(),
        table: ResourceTable::new(),
        lab,
        policy: cfg.policy,
        report: Report::default(),
        console,
    };
    let mut store = Store::new(&engine, state);
    store.epoch_deadline_async_yield_and_update(1);
    let ticker = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EPOCH_TICK);
            loop {
                tick.tick().await;
                engine.increment_epoch();
            }
        })
    };

    let mut title = cfg.file.display().to_string();
    let run_id = store.data().lab.run_id().to_string();
    let deadline = store.data().policy.run_timeout;
    let guest = async {
        let scenario = pre
            .instantiate_async(&mut store)
            .await
            .map_err(Ended::Trapped)?;
        let info = scenario
            .call_describe(&mut store)
            .await
            .map_err(Ended::Trapped)?;
        title = info.name.clone();
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
        sig = signals.recv() => {
            console.warn(&format!("{}: stopping the scenario and removing its lab", signal_name(sig)));
            Err(Ended::Signal(sig))
        }
    };
    ticker.abort();

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
        Ok(()) if report.failed() == 0 => (Outcome::Passed, format!("PASS {title} ({counts})")),
        Ok(()) => (
            Outcome::Failed,
            format!("FAIL {title}: a check failed ({counts})"),
        ),
        Err(Ended::Returned(msg)) => (
            Outcome::Failed,
            format!("FAIL {title}: the scenario returned an error: {msg} ({counts})"),
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
            format!("STOPPED {title}: interrupted by {}; its lab was removed ({counts})", signal_name(sig)),
        ),
        Err(Ended::Trapped(trap)) => (
            Outcome::Failed,
            format!(
                "FAIL {title}: the scenario crashed: {} ({counts})",
                describe_trap(&trap)
            ),
        ),
    };
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
