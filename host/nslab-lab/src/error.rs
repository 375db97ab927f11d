//! The error a host function hands back to a guest.
//!
//! Three layers (see docs/architecture.md): kernel and parse errors inside the lab become a
//! [`LabError`]; [`LabError`] becomes the WIT `error` variant in exactly one place
//! (`iface::types`); the CLI prints load and privilege failures as one sentence each (`load`).

use std::fmt::Display;
use std::sync::Arc;

use nix::errno::Errno;

/// What kind of failure a [`LabError`] is: the guest's `error` variants (wit/types.wit) are
/// made from these in one place (nslab-host's iface/types.rs), and callers decide on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The policy refused it.
    Denied,
    /// What was asked makes no sense (a bad name, an address that is not one).
    Invalid,
    Exists,
    NotFound,
    /// A limit of the policy or the machine.
    Limit,
    /// The kernel or the machine failed it.
    Os,
    Timeout,
    /// A host bug or a misuse of the resource table: no guest error, the interface turns it
    /// into a trap that stops the guest.
    Bug,
}

/// Why something the lab was asked failed: its kind, a sentence a person can act on, and the
/// error underneath (an errno, an I/O or netlink error), if there was one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LabError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

pub type LabResult<T> = Result<T, LabError>;

impl LabError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> LabError {
        LabError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn denied(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Denied, message)
    }

    pub fn invalid(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn exists(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Exists, message)
    }

    pub fn not_found(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn limit(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Limit, message)
    }

    pub fn os(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Os, message)
    }

    pub fn timeout(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Timeout, message)
    }

    pub fn bug(message: impl Into<String>) -> LabError {
        Self::new(ErrorKind::Bug, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its sentence (what `Display` shows).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error, as another kind, with another sentence (made from the first): the
    /// error underneath stays.
    pub fn reworded(self, kind: ErrorKind, message: impl FnOnce(&str) -> String) -> LabError {
        LabError {
            kind,
            message: message(&self.message),
            source: self.source,
        }
    }

    /// The same error, its sentence followed by where it happened.
    pub fn context(self, place: &str) -> Self {
        let kind = self.kind;
        self.reworded(kind, |s| format!("{s} ({place})"))
    }

    /// An error of `kind`, said as `message`, caused by `source`.
    pub fn caused(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> LabError {
        Self::new(kind, message).with_source(source)
    }

    fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The one place an errno becomes a lab error. `what` says what was being done, so the
    /// message reads "add address 10.0.0.1/24 to eth0 in ns01: File exists (EEXIST)".
    pub fn from_errno(errno: Errno, what: impl Display) -> Self {
        let text = format!("{what}: {} ({errno:?})", errno.desc());
        let kind = match errno {
            Errno::EEXIST | Errno::EADDRINUSE => ErrorKind::Exists,
            Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL => {
                ErrorKind::NotFound
            }
            Errno::EINVAL | Errno::ERANGE | Errno::E2BIG | Errno::EOPNOTSUPP => ErrorKind::Invalid,
            Errno::ETIMEDOUT => ErrorKind::Timeout,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOSPC | Errno::ENOMEM => ErrorKind::Limit,
            _ => ErrorKind::Os,
        };
        Self::new(kind, text).with_source(errno)
    }

    /// An I/O error from the kernel (a syscall, a spawn) mapped through its errno.
    pub fn from_io(err: &std::io::Error, what: impl Display) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::from_errno(Errno::from_raw(code), what),
            None => Self::os(format!("{what}: {err}"))
                .with_source(std::io::Error::new(err.kind(), err.to_string())),
        }
    }

    /// A netlink failure: the kernel's errno when it sent one, otherwise the transport's error.
    pub fn from_netlink(err: rtnetlink::Error, what: impl Display) -> Self {
        match netlink_errno(&err) {
            Some(errno) => Self::from_errno(errno, what),
            None => Self::os(format!("{what}: {err}")).with_source(err),
        }
    }
}

/// The errno a netlink request was refused with, if the kernel gave one.
pub fn netlink_errno(err: &rtnetlink::Error) -> Option<Errno> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| Errno::from_raw(-code.get())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_the_matching_variant_with_context() {
        let e = LabError::from_errno(Errno::EEXIST, "create link eth0 in ns01");
        assert_eq!(e.kind(), ErrorKind::Exists);
        assert_eq!(
            e.to_string(),
            "create link eth0 in ns01: File exists (EEXIST)"
        );
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(
            source.as_deref(),
            Some("EEXIST: File exists"),
            "the errno stays beneath"
        );
        assert!(LabError::from_errno(Errno::ENODEV, "x").kind() == ErrorKind::NotFound);
        assert!(LabError::from_errno(Errno::EADDRNOTAVAIL, "x").kind() == ErrorKind::NotFound);
        assert!(LabError::from_errno(Errno::EINVAL, "x").kind() == ErrorKind::Invalid);
        assert!(LabError::from_errno(Errno::ETIMEDOUT, "x").kind() == ErrorKind::Timeout);
        assert!(LabError::from_errno(Errno::EMFILE, "x").kind() == ErrorKind::Limit);
        let e = LabError::from_errno(Errno::EPERM, "x");
        assert_eq!(e.kind(), ErrorKind::Os);
        assert_eq!(e.to_string(), "x: Operation not permitted (EPERM)");
    }

    #[test]
    fn io_errors_without_errno_stay_readable() {
        let io = std::io::Error::other("pipe closed");
        let e = LabError::from_io(&io, "read");
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (ErrorKind::Os, "read: pipe closed")
        );
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert!(LabError::from_io(&io, "spawn").kind() == ErrorKind::NotFound);
    }
}
