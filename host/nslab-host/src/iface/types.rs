use nslab_lab::error::ErrorKind;

use super::{CallError, LabView};
use crate::bindings::types::{Error, Host};

impl Host for LabView<'_> {
    /// The one place a host call's error becomes the guest's `error` (or a trap).
    fn convert_error(&mut self, err: CallError) -> wasmtime::Result<Error> {
        let err = match err {
            CallError::Lab(err) => err,
            CallError::Handle(_) => return Err(wasmtime::format_err!("host bug: {err}")),
        };
        let s = err.to_string();
        Ok(match err.kind() {
            ErrorKind::Denied => Error::Denied(s),
            ErrorKind::Invalid => Error::Invalid(s),
            ErrorKind::Exists => Error::Exists(s),
            ErrorKind::NotFound => Error::NotFound(s),
            ErrorKind::Limit => Error::Limit(s),
            ErrorKind::Os => Error::Os(s),
            ErrorKind::Timeout => Error::Timeout(s),
            ErrorKind::Bug => return Err(wasmtime::format_err!("host bug: {s}")),
        })
    }
}
