//! Why a run's policy could not be made from its file and flags.

/// Why the run's policy could not be made from its file and flags.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy file {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML of the policy's keys (an unknown key is named).
    #[error("the policy file {} is not valid: {}", path.display(), source.message())]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A key's value in the file is not one of its kind.
    #[error("{0}")]
    Value(String),
    /// A program allowed by path (`--allow-exec ./sut`) cannot be.
    #[error("--allow-exec {given}: {why}")]
    Program {
        given: String,
        why: String,
        #[source]
        source: Option<std::io::Error>,
    },
    /// Values no policy may have together, or at all.
    #[error("{0}")]
    Conflict(String),
}

/// Where the policy's error is said among the command's own sentences.
impl From<PolicyError> for String {
    fn from(e: PolicyError) -> String {
        e.to_string()
    }
}
