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
            LabError::Trap(e) => return Err(e),
        })
    }
}
