use crate::bindings::types::{Error, Host};
use crate::error::LabError;

use super::LabView;

impl Host for LabView<'_> {
    /// The one place a [`LabError`] becomes the guest's `error` (or a trap).
    fn convert_error(&mut self, err: LabError) -> wasmtime::Result<Error> {
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

impl From<wasmtime::component::ResourceTableError> for LabError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        LabError::Bug(format!("scenario used a stale or foreign handle: {e}"))
    }
}
