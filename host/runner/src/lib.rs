//! nslab's runner: the command line's work. A run's phases (`run/`), stepping into a run
//! (`enter/`), the records `runner ls` and `cleanup` go by, privilege, narration of what the lab
//! did, shards of a test suite, and `runner new`'s projects. It puts together the three crates
//! below it: `nslab-host` (the WebAssembly host), `nslab-report` (the account and its outputs)
//! and `nslab-lab` (the lab in the kernel).

pub mod cleanup;
pub mod enforcement;
pub mod enter;
pub mod leftovers;
pub mod narration;
pub mod privilege;
pub mod project;
pub mod records;
pub mod run;
pub mod shard;
