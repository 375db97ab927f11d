//! `runner inspect`: what a scenario is and what it will ask for, without touching the kernel.
//! Its `describe()` runs in the same sandbox as a real run, with every host call refused, so
//! inspecting a file from a stranger needs no privilege and creates nothing.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::engine::{describe, epoch_ticker, load_scenario, new_store, Described};
use crate::policy::Policy;
use nslab_lab::Tripped;
use nslab_report::console::{Console, Verbosity};

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

/// The hex sha256 of some bytes.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The programs the operator allowed by path, as "NAME -> PATH (sha256 HEX)": what exactly a
/// scenario will run under each name, shown before it runs.
pub fn programs_by_path(policy: &Policy) -> Vec<String> {
    policy
        .exec_paths
        .iter()
        .map(|(name, path)| {
            let digest = std::fs::read(path)
                .map(|b| sha256_hex(&b))
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            format!("{name} -> {} (sha256 {digest})", path.display())
        })
        .collect()
}

/// The files the programs a scenario declared are, for those the policy allows: a program
/// allowed by path is that file; a bare name is looked up in the system PATH as exec does. A
/// program not installed is left out (running it fails with its own error).
pub fn declared_files(policy: &Policy, declared: &[String]) -> Vec<std::path::PathBuf> {
    declared
        .iter()
        .filter(|name| policy.permits_program(name))
        .filter_map(|name| match policy.exec_paths.get(name.as_str()) {
            Some(path) => Some(path.clone()),
            None => nslab_lab::host::resolve(name).ok(),
        })
        .collect()
}

/// Why a scenario could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file is no scenario (or could not be read, or compiled).
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    /// Its describe() took longer than the policy's describe-timeout.
    #[error("{0}")]
    TooSlow(String),
    /// Its describe() trapped (or called the host, which nothing may then).
    #[error("{0}")]
    Trapped(String),
}

/// `cache`: the compile cache's directory, if one is used (cache.rs).
pub async fn inspect(
    file: &Path,
    policy: Policy,
    cache: Option<&Path>,
) -> Result<Inspection, InspectError> {
    let cache = cache.and_then(crate::cache::Cache::open);
    let loaded = load_scenario(file, cache.as_ref())?;
    let sha256 = sha256_hex(&loaded.bytes);
    let imports = loaded
        .component
        .component_type()
        .imports(&loaded.engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let refusal_check = policy.clone();
    let describe_limit = policy.describe_timeout;
    // No lab at all: `describe()` may not call the host, and nothing may be created.
    let console = Console::new(Verbosity::Silent);
    let tripped = Arc::new(Tripped::default());
    let (mut store, ..) = new_store(&loaded.engine, file, None, policy, console, tripped);
    store.epoch_deadline_async_yield_and_update(1);
    let ticker = epoch_ticker(&loaded.engine);
    let described = describe(&loaded.pre, &mut store, describe_limit).await;
    ticker.abort();
    let info = match described {
        Ok((_, info)) => info.printable(),
        Err(Described::TooSlow(why)) => {
            return Err(InspectError::TooSlow(format!("{}: {why}", file.display())))
        }
        Err(Described::Trapped(e)) => {
            return Err(InspectError::Trapped(format!(
                "{} could not be described: {e:#}",
                file.display()
            )))
        }
    };
    Ok(Inspection {
        refused: refusal_check
            .undeclarable(&info.programs)
            .or_else(|| refusal_check.unrunnable(&info.programs)),
        name: info.name,
        description: info.description,
        programs: info.programs,
        imports,
        sha256,
    })
}
