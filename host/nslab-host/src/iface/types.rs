use nslab_lab::error::LabError;

use super::{CallError, LabView};
use crate::bindings::types::{Error, Host};

impl Host for LabView<'_> {
    /// The one place a host call's error becomes the guest's `error` (or a trap).
    fn convert_error(&mut self, err: CallError) -> wasmtime::Result<Error> {
        let err = match err {
            CallError::Lab(err) => err,
            CallError::Handle(_) => return Err(wasmtime::format_err!("host bug: {err}")),
        };
        Ok(match err {
            LabError::Denied(s) => Error::Denied(s),
            LabError::Invalid(s) => Error::Invalid(s),
            LabError::Exists(s) => Error::Exists(s),
            LabError::NotFound(s) => Error::NotFound(s),
            LabError::Limit(s) => Error::Limit(s),
            LabError::Os(s) => Error::Os(s),
            LabError::Timeout(s) => Error::Timeout(s),
            LabError::Bug(s) => return Err(wasmtime::format_err!("host bug: {s}")),
        })
    }
}
