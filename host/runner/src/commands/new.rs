use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use nslab_runner::project::{write_project, write_wit, Lang};

/// Make a scenario project in a new folder NAME, anywhere: the seed, ready to build and run
#[derive(Args)]
#[command(
    long_about = "Make a scenario project in a new folder NAME, anywhere: the seed scenario in \
    Rust or Python, the WIT contract and the SDK this runner carries, a build.sh (one command, \
    no arguments) that writes NAME/NAME.wasm, and a README. Then: cd NAME && ./build.sh && \
    runner run NAME.wasm"
)]
pub struct NewArgs {
    /// The project's name: its folder, and its NAME.wasm.
    name: String,

    /// The language of the scenario.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
}

/// Write the WIT contract (nslab:lab@0.1.0) into DIR, for any component toolchain
#[derive(Args)]
pub struct WitArgs {
    /// Where to write the .wit files (made if missing).
    dir: PathBuf,
}

pub fn main(a: NewArgs) -> ExitCode {
    match write_project(std::path::Path::new("."), &a.name, a.lang) {
        Ok(dir) => {
            println!("made {}: build and run it with", dir.display());
            println!(
                "   cd {} && ./build.sh && runner run {}.wasm",
                a.name, a.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(e),
    }
}

pub fn wit(a: WitArgs) -> ExitCode {
    match write_wit(&a.dir) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(format!(
            "cannot write the contract into {}: {e}",
            a.dir.display()
        )),
    }
}
