//! The WebAssembly side of a run, shared by `run` and `inspect`: the engine, the linker, the
//! store's state, compiling a scenario file and matching it against the world, and calling its
//! `describe()` within its deadline.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Scenario, ScenarioPre};
use crate::cache::{Cache, Lookup};
use crate::guest_limits::{GuestOutput, MemoryLimit};
use crate::iface::{LabCtx, LabView};
use crate::load::{self, LoadError};
use crate::policy::{Declared, Policy};
use crate::scenario_report::Report;
use nslab_lab::Lab;
use nslab_lab::Tripped;
use nslab_report::console::{Console, Verbosity};

/// The store's data: WASI (with no ambient authority), the lab, and what the run reports.
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// None in `inspect`, which calls only `describe()`, where no host call is allowed.
    pub lab: Option<Lab>,
    pub policy: Policy,
    /// What the scenario declared in `describe()`; None until then (policy::Declared).
    pub declared: Declared,
    pub report: Report,
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
            lab: self.lab.as_mut(),
            declared: &self.declared,
            table: &mut self.table,
            policy: &self.policy,
            report: &mut self.report,
            console: self.console.clone(),
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
pub struct Loaded {
    pub engine: Engine,
    pub component: Component,
    pub pre: ScenarioPre<RunState>,
    pub bytes: Vec<u8>,
    /// Whether it came from the compile cache.
    pub lookup: Lookup,
}

/// Read, check, compile and link a scenario file; its error says what the file is and what to
/// do instead.
/// `cache`, if any, keeps what was compiled for the next run (cache.rs).
pub fn load_scenario(file: &Path, cache: Option<&Cache>) -> Result<Loaded, LoadError> {
    let bytes = load::read(file)?;
    let engine = engine().map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    let linker = linker(&engine).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
    let invalid = |e: wasmtime::Error| LoadError::Invalid {
        path: file.display().to_string(),
        reason: root_cause(&e),
    };
    let (component, lookup) = match cache {
        Some(cache) => cache.component(&engine, &bytes).map_err(invalid)?,
        None => (
            Component::from_binary(&engine, &bytes).map_err(invalid)?,
            Lookup::Miss,
        ),
    };
    let pre = prepare(&linker, file, &component)?;
    Ok(Loaded {
        engine,
        component,
        pre,
        bytes,
        lookup,
    })
}

/// The store for one instance of a scenario, with its limits and labeled output.
pub fn new_store(
    engine: &Engine,
    file: &Path,
    lab: Option<Lab>,
    policy: Policy,
    console: Console,
    tripped: Arc<Tripped>,
) -> (Store<RunState>, GuestOutput, GuestOutput) {
    let label = file
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    let quiet = console.verbosity == Verbosity::Silent || console.text_stream().is_none();
    // With --json the scenario's stdout joins the text on stderr: stdout is events alone.
    let text_on_stderr = console.text_stream() == Some(true);
    let (stdout, stderr) = GuestOutput::pair(
        &label,
        policy.guest_output_bytes,
        tripped.clone(),
        quiet,
        text_on_stderr,
        lab.as_ref().map(|l| l.start_log()),
    );
    let state = RunState {
        wasi: sandboxed_wasi(stdout.clone(), stderr.clone()),
        table: ResourceTable::new(),
        lab,
        declared: None,
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

/// Why `describe()` did not answer.
pub enum Described {
    Trapped(wasmtime::Error),
    /// It did not return within `describe-timeout`: the sentence to print.
    TooSlow(String),
}

/// Instantiate the scenario and call its `describe()`, both within `limit` (a scenario from a
/// stranger may spin there forever; epoch interruption lets the deadline in).
pub async fn describe(
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
pub fn epoch_ticker(engine: &Engine) -> tokio::task::JoinHandle<()> {
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EPOCH_TICK);
        loop {
            tick.tick().await;
            engine.increment_epoch();
        }
    })
}

/// Compile the component and match it against the scenario world.
pub fn prepare(
    linker: &Linker<RunState>,
    path: &Path,
    component: &Component,
) -> Result<ScenarioPre<RunState>, LoadError> {
    let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
        path: path.display().to_string(),
        reason: root_cause(&e),
    };
    let pre = linker.instantiate_pre(component).map_err(wrong_world)?;
    ScenarioPre::new(pre).map_err(wrong_world)
}

/// wasmtime's errors carry a chain whose innermost line says the actual problem.
fn root_cause(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    chain.join(": ")
}
