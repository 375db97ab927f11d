//! nslab's runner: runs network labs written as WebAssembly components (world
//! `nslab:lab/scenario`), with the host doing every privileged step on the scenario's behalf.

pub mod account;
pub mod bindings;
pub mod cache;
pub mod cleanup;
pub mod console;
pub mod enforcement;
pub mod engine;
pub mod enter;
pub mod error;
pub mod guest_limits;
pub mod iface;
pub mod input;
pub mod inspect;
pub mod lab;
pub mod leftovers;
pub mod load;
pub mod narration;
pub mod output;
pub mod policy;
pub mod privilege;
pub mod project;
pub mod records;
pub mod report;
pub mod run;
pub mod shard;
pub mod text;
