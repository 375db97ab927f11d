//! A lab from Rust, without a scenario: two namespaces joined by a veth pair, an address on
//! each end, and a ping from one to the other, boxed as a scenario's would be; then the lab is
//! torn down, leaving nothing. As root:
//!
//! ```text
//! cargo run --release -p nslab-lab --example ping_pair
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nslab_lab::error::LabResult;
use nslab_lab::input::{Cidr, Name};
use nslab_lab::records::{new_run_id, RunRecord};
use nslab_lab::{ExecRequest, Lab, LabConfig, LabEvent, Mode, ProgramLimits, Sink};

/// What the lab did, one line each.
struct Say;

impl Sink for Say {
    fn event(&self, event: LabEvent<'_>) {
        match event {
            LabEvent::Did(text) => println!("  {text}"),
            LabEvent::Warning(text) => eprintln!("warning: {text}"),
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    // The lab re-executes this program as its helper: be it, if that is why it started.
    if let Some(code) = nslab_lab::roles::dispatch() {
        return code;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("ping_pair: run it as root (it builds real namespaces)");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(ping_pair()) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) => {
            eprintln!("ping_pair: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn ping_pair() -> LabResult<i32> {
    let id = new_run_id().map_err(|e| nslab_lab::error::LabError::from_io(&e, "make a run id"))?;
    let record = RunRecord::new(id, "ping_pair".into(), "/run/nslab/runs".into());
    let config = LabConfig {
        mode: Mode::Root,
        limits: ProgramLimits {
            max_processes: 64,
            max_links: 16,
            program_memory: 256 << 20,
            scratch_bytes: 16 << 20,
            tripped: Arc::default(),
            by_path: Vec::new(),
        },
        record,
        sink: Arc::new(Say),
    };
    let exe = std::env::current_exe()
        .map_err(|e| nslab_lab::error::LabError::from_io(&e, "find this program"))?;
    let mut lab = Lab::real(exe, config);
    let result = build_and_ping(&mut lab).await;
    let ended = lab.teardown().await;
    for problem in &ended.problems {
        eprintln!("teardown: {problem}");
    }
    result
}

async fn build_and_ping(lab: &mut Lab) -> LabResult<i32> {
    let name = |n: &str| Name::parse("name", n);
    let a = lab.create_namespace(&name("left")?).await?;
    let b = lab.create_namespace(&name("right")?).await?;
    let (left, right) = lab.veth(&name("eth0")?, a, &name("eth0")?, b).await?;
    for (end, cidr) in [(left, "10.77.0.1/24"), (right, "10.77.0.2/24")] {
        lab.add_address(end, cidr.parse::<Cidr>()?).await?;
        lab.set_up(end, true).await?;
    }
    lab.allow_executables(vec![nslab_lab::host::resolve("ping")?]);
    let out = lab
        .exec(
            a,
            ExecRequest {
                program: "ping".into(),
                by_path: false,
                args: ["-c", "1", "-W", "2", "10.77.0.2"]
                    .map(String::from)
                    .to_vec(),
                env: Vec::new(),
                stdin: None,
                timeout: Duration::from_secs(5),
                output_limit: 1 << 16,
                quiet: false,
            },
        )
        .await?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(out.status)
}
