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
use crate::report::Report;

/// Everything one run needs, validated before the kernel is touched.
pub struct RunConfig {
    pub file: PathBuf,
    pub args: Vec<String>,
    pub policy: Policy,
    pub console: Console,
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
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::CouldNotRun => 2,
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
    config.wasm_component_model(true);
    Engine::new(&config)
}

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
        eprintln!("runner: error: {e}");
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
    let lab = match Lab::new(console) {
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

    let mut title = cfg.file.display().to_string();
    let ended = async {
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
        if !info.programs.is_empty() {
            console.line(
                Verbosity::Normal,
                &format!("       programs it runs: {}", info.programs.join(", ")),
            );
        }
        match scenario.call_run(&mut store, &cfg.args).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(Ended::Returned(msg)),
            Err(trap) => Err(Ended::Trapped(trap)),
        }
    }
    .await;

    let state = store.data_mut();
    let teardown = state.lab.teardown().await;
    for item in &teardown.removed {
        console.line(Verbosity::Verbose, &format!("teardown: removed {item}"));
    }
    for problem in &teardown.problems {
        console.warn(&format!("teardown: {problem}"));
    }
    verdict(&title, &state.report, ended, started, console)
}

/// Why `run` did not return Ok.
enum Ended {
    Returned(String),
    Trapped(wasmtime::Error),
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
