//! `runner inspect`: what a scenario is and what it will ask for, without touching the kernel.
//! Its `describe()` runs in the same sandbox as a real run, with every host call refused, so
//! inspecting a file from a stranger needs no privilege and creates nothing.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::console::{Console, Verbosity};
use crate::guest_limits::Tripped;
use crate::lab::Lab;
use crate::policy::Policy;
use crate::records::RunRecord;
use crate::run::{load_scenario, new_store};

pub struct Inspection {
    pub name: String,
    pub description: String,
    pub programs: Vec<String>,
    /// The interfaces it imports, as the component names them.
    pub imports: Vec<String>,
    pub sha256: String,
    /// None when the policy allows everything it declares, else why not.
    pub refused: Option<String>,
}

pub async fn inspect(file: &Path, policy: Policy) -> Result<Inspection, String> {
    let loaded = load_scenario(file)?;
    let sha256 = Sha256::digest(&loaded.bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let imports = loaded
        .component
        .component_type()
        .imports(&loaded.engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let refusal_check = policy.clone();
    // A lab that is never used: with `declared` unset, the policy refuses every host call.
    let console = Console::new(Verbosity::Silent);
    let lab = Lab::new(
        console,
        RunRecord::new("inspect0".into(), file.display().to_string()),
        // Never started: with no host call allowed, nothing can be created.
        "/nonexistent".into(),
    );
    let (mut store, ..) = new_store(
        &loaded.engine,
        file,
        lab,
        policy,
        console,
        Arc::new(Tripped::default()),
    );
    store.epoch_deadline_async_yield_and_update(1);
    let scenario = loaded
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| format!("{} could not be started: {e:#}", file.display()))?;
    let info = scenario
        .call_describe(&mut store)
        .await
        .map_err(|e| format!("{}'s describe() failed: {e:#}", file.display()))?;
    Ok(Inspection {
        refused: refusal_check.undeclarable(&info.programs),
        name: info.name,
        description: info.description,
        programs: info.programs,
        imports,
        sha256,
    })
}
