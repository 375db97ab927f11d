//! nslab's WebAssembly host: the `nslab:lab/scenario` world's bindings and their implementation
//! over a [`nslab_lab::Lab`] (`iface/`), the engine and the guest's limits, the capability
//! policy, loading a component and caching its compiled code, and `inspect`.

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod error;
pub mod guest_limits;
pub mod iface;
pub mod inspect;
pub mod load;
pub mod policy;
pub mod scenario_report;
