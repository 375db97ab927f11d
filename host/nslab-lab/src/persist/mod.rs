//! What outlasts a run on purpose: its record on disk (record.rs), the pins of a kept lab under
//! /run/netns (pin.rs), and the keeper process that holds an ordinary user's kept lab
//! (keeper.rs). The lab keeps them in step with itself in `keeping.rs`.

pub mod keeper;
pub mod pin;
pub mod record;
