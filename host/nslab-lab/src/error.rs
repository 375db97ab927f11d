//! The error a host function hands back to a guest.
//!
//! Three layers (see docs/architecture.md): kernel and parse errors inside the lab become a
//! [`LabError`]; [`LabError`] becomes the WIT `error` variant in exactly one place
//! (`iface::types`); the CLI prints load and privilege failures as one sentence each (`load`).

use std::fmt::Display;

use nix::errno::Errno;

/// Why a host call failed, as the guest will see it. Each string is a sentence a person can act
/// on. `Bug` is a host bug or a misuse of the resource table: it is no guest error, and the
/// interface turns it into a trap that stops the guest (iface/types.rs).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Os(String),
    #[error("{0}")]
    Timeout(String),
    /// Not a guest error: the guest is stopped with a trap saying this.
    #[error("{0}")]
    Bug(String),
}

pub type LabResult<T> = Result<T, LabError>;

impl LabError {
    /// The same error, its sentence followed by where it happened.
    pub fn context(self, place: &str) -> LabError {
        let add = |s: String| format!("{s} ({place})");
        match self {
            LabError::Denied(s) => LabError::Denied(add(s)),
            LabError::Invalid(s) => LabError::Invalid(add(s)),
            LabError::Exists(s) => LabError::Exists(add(s)),
            LabError::NotFound(s) => LabError::NotFound(add(s)),
            LabError::Limit(s) => LabError::Limit(add(s)),
            LabError::Os(s) => LabError::Os(add(s)),
            LabError::Timeout(s) => LabError::Timeout(add(s)),
            LabError::Bug(s) => LabError::Bug(add(s)),
        }
    }

    /// The one place an errno becomes a guest error. `what` says what was being done, so the
    /// message reads "add address 10.0.0.1/24 to eth0 in ns01: File exists (EEXIST)".
    pub fn from_errno(errno: Errno, what: impl Display) -> Self {
        let text = format!("{what}: {} ({errno:?})", errno.desc());
        match errno {
            Errno::EEXIST | Errno::EADDRINUSE => LabError::Exists(text),
            Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL => {
                LabError::NotFound(text)
            }
            Errno::EINVAL | Errno::ERANGE | Errno::E2BIG | Errno::EOPNOTSUPP => {
                LabError::Invalid(text)
            }
            Errno::ETIMEDOUT => LabError::Timeout(text),
            Errno::EMFILE | Errno::ENFILE | Errno::ENOSPC | Errno::ENOMEM => LabError::Limit(text),
            _ => LabError::Os(text),
        }
    }

    /// An I/O error from the kernel (a syscall, a spawn) mapped through its errno.
    pub fn from_io(err: &std::io::Error, what: impl Display) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::from_errno(Errno::from_raw(code), what),
            None => LabError::Os(format!("{what}: {err}")),
        }
    }

    /// A netlink failure: the kernel's errno when it sent one, otherwise the transport's error.
    pub fn from_netlink(err: rtnetlink::Error, what: impl Display) -> Self {
        match netlink_errno(&err) {
            Some(errno) => Self::from_errno(errno, what),
            None => LabError::Os(format!("{what}: {err}")),
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
        assert!(
            matches!(&e, LabError::Exists(t) if t == "create link eth0 in ns01: File exists (EEXIST)")
        );
        assert!(matches!(
            LabError::from_errno(Errno::ENODEV, "x"),
            LabError::NotFound(_)
        ));
        assert!(matches!(
            LabError::from_errno(Errno::EADDRNOTAVAIL, "x"),
            LabError::NotFound(_)
        ));
        assert!(matches!(
            LabError::from_errno(Errno::EINVAL, "x"),
            LabError::Invalid(_)
        ));
        assert!(matches!(
            LabError::from_errno(Errno::ETIMEDOUT, "x"),
            LabError::Timeout(_)
        ));
        assert!(matches!(
            LabError::from_errno(Errno::EMFILE, "x"),
            LabError::Limit(_)
        ));
        assert!(
            matches!(LabError::from_errno(Errno::EPERM, "x"), LabError::Os(t) if t == "x: Operation not permitted (EPERM)")
        );
    }

    #[test]
    fn io_errors_without_errno_stay_readable() {
        let io = std::io::Error::other("pipe closed");
        assert!(
            matches!(LabError::from_io(&io, "read"), LabError::Os(t) if t == "read: pipe closed")
        );
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert!(matches!(
            LabError::from_io(&io, "spawn"),
            LabError::NotFound(_)
        ));
    }
}
