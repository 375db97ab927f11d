//! The error of a host call, as the generated bindings know it (bindings.rs): what the lab
//! said, which `iface::types` turns into the guest's `error` variant, or a handle the scenario
//! does not hold, which stops the guest.

use nslab_lab::error::LabError;

/// Why a host call failed: what the lab said, or a handle the scenario does not hold in its
/// table (stale, or of another type), which is no guest error but a trap (types.rs).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("scenario used a stale or foreign handle: {0}")]
    Handle(#[from] wasmtime::component::ResourceTableError),
}
