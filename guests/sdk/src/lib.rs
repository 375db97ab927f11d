//! Write an nslab scenario the way you would type the lab into a shell:
//!
//! ```ignore
//! use nslab_sdk::prelude::*;
//!
//! struct Seed;
//! impl Guest for Seed {
//!     fn describe() -> Info { info("seed", "two namespaces and a ping", &["ping"]) }
//!     fn run(_args: Vec<String>) -> Result<(), String> {
//!         let ns01 = Netns::create("ns01")?;
//!         let ns02 = Netns::create("ns02")?;
//!         let (a, b) = Link::veth("ns01-veth0", &ns01, "ns02-veth0", &ns02)?;
//!         a.add_address("192.168.0.1/24")?;
//!         b.add_address("192.168.0.2/24")?;
//!         a.set_up()?;
//!         b.set_up()?;
//!         let out = ns01.exec("ping", ["-c", "3", "192.168.0.2"])?;
//!         ensure!(out.success(), "ping failed: {}", out.stderr_text());
//!         Ok(())
//!     }
//! }
//! export!(Seed);
//! ```

pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "nslab:lab/scenario",
        // Scenarios call `nslab_sdk::export!(Type)`; the macro finds these bindings here.
        pub_export_macro: true,
        default_bindings_module: "nslab_sdk::bindings",
    });
}

mod args;
mod error;
mod exec;
mod wait;

pub use args::Args;
pub use bindings::export;
pub use bindings::nslab::lab::exec::{Output, Process};
pub use bindings::nslab::lab::link::{links, Link, LinkInfo, Shaping};
pub use bindings::nslab::lab::netns::{delete, names, Namespace};
pub use bindings::nslab::lab::report::{attach, check, step};
pub use bindings::nslab::lab::route::{NextHop, RouteDetail, RouteInfo};
pub use bindings::nslab::lab::types::Error;
pub use bindings::{Guest, Info};
pub use exec::{Cmd, NetnsExt, OutputExt};
pub use wait::wait_until;

/// A network namespace, as `ip netns add` makes it.
pub type Netns = Namespace;

/// The `describe()` answer: name, one-line description, and the programs the scenario runs.
pub fn info(name: &str, description: &str, programs: &[&str]) -> Info {
    Info {
        name: name.to_string(),
        description: description.to_string(),
        programs: programs.iter().map(|p| p.to_string()).collect(),
    }
}

/// Return early with an error message when a condition does not hold.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+).into());
        }
    };
}

pub mod prelude {
    pub use crate::{
        attach, check, delete, ensure, export, info, links, names, step, wait_until, Args, Cmd,
        Error, Guest, Info, Link, LinkInfo, Netns, NetnsExt, Output, OutputExt, Process, RouteInfo,
        Shaping,
    };
}
