use clap::Args;
use nslab_host::policy::{Policy, PolicyFlags};

/// The policy flags every command that loads a scenario takes: generated with the keys
/// themselves (policy/config.rs), so a new key brings its flag along.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    #[command(flatten)]
    flags: PolicyFlags,
}

impl PolicyArgs {
    /// The effective policy, or (printed) why it cannot be built and the exit status for that.
    pub fn build_or_exit(&self) -> Result<Policy, std::process::ExitCode> {
        self.build().map_err(super::fail)
    }

    /// The effective policy, or the sentence saying why it cannot be built.
    pub fn build(&self) -> Result<Policy, String> {
        Ok(Policy::build(&self.flags)?)
    }
}
