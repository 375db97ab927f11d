use crate::bindings::nslab::lab::types::Error;

impl Error {
    /// The kind of failure, as the WIT variant names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::Invalid(_) => "invalid",
            Error::Exists(_) => "exists",
            Error::NotFound(_) => "not-found",
            Error::Limit(_) => "limit",
            Error::Os(_) => "os",
            Error::Timeout(_) => "timeout",
        }
    }

    /// The host's sentence about what went wrong.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(s)
            | Error::Invalid(s)
            | Error::Exists(s)
            | Error::NotFound(s)
            | Error::Limit(s)
            | Error::Os(s)
            | Error::Timeout(s) => s,
        }
    }

    /// "invalid: link name ... is 16 characters long: the limit is 15 ...". (wit-bindgen's own
    /// `Display` prints the Rust debug form; this is the one meant for people.)
    pub fn describe(&self) -> String {
        format!("{}: {}", self.kind(), self.message())
    }
}

/// So that `?` on a host call works in `run`, which returns `Result<(), String>`.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.describe()
    }
}
