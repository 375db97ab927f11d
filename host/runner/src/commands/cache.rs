use std::process::ExitCode;

use clap::{Args, Subcommand};
use nslab_host::cache::{default_dir, Cache};

/// The compile cache: compiled scenarios kept so the next run of the same file compiles nothing
#[derive(Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Subcommand)]
enum CacheAction {
    /// Remove every compiled scenario from the cache
    Clean,
    /// Print where the cache is
    Dir,
}

pub fn main(a: CacheArgs) -> ExitCode {
    let dir = default_dir();
    match a.action {
        CacheAction::Dir => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        CacheAction::Clean => {
            let Some(cache) = Cache::open(&dir) else {
                return super::fail(format!(
                    "{} is not a cache of this user's (a symlink, or writable by others): remove it by hand",
                    dir.display()
                ));
            };
            match cache.clean() {
                Ok((n, bytes)) => {
                    println!(
                        "removed {n} compiled scenarios ({} MiB) from {}",
                        bytes >> 20,
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => super::fail(format!("cannot clean {}: {e}", dir.display())),
            }
        }
    }
}
