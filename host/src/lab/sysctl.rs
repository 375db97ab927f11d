//! Per-namespace kernel settings under /proc/sys/net, which resolve to the network namespace of
//! the thread that opens them. A short-lived thread enters the namespace, writes, and ends, so
//! no runtime thread ever changes namespace.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::error::{LabError, LabResult};

/// Turn IPv4 and IPv6 forwarding on or off in the namespace held by `ns`.
pub fn set_forwarding(ns: BorrowedFd<'_>, on: bool, what: &str) -> LabResult<()> {
    let fd = ns.as_raw_fd();
    let value = if on { "1" } else { "0" };
    let writer = std::thread::Builder::new()
        .name("nslab-sysctl".into())
        .spawn(move || -> std::io::Result<()> {
            // SAFETY: plain syscall on a namespace fd the lab keeps open until this thread is joined.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::fs::write("/proc/sys/net/ipv4/ip_forward", value)?;
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", value)
        });
    writer
        .map_err(|e| LabError::from_io(&e, what))?
        .join()
        .map_err(|_| LabError::Os(format!("{what}: the sysctl thread panicked")))?
        .map_err(|e| LabError::from_io(&e, what))
}
