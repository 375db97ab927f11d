//! Per-namespace kernel settings under /proc/sys/net, which resolve to the network namespace of
//! the thread that opens them. A short-lived thread enters the namespace, writes, and ends, so
//! no runtime thread ever changes namespace.

use std::os::fd::BorrowedFd;

use crate::error::{LabError, LabResult};

/// Turn IPv4 and IPv6 forwarding on or off in the namespace held by `ns`.
pub fn set_forwarding(ns: BorrowedFd<'_>, on: bool, what: &str) -> LabResult<()> {
    let value = if on { "1" } else { "0" };
    super::netns::in_thread(ns, move || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", value)?;
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", value)
    })
    .map_err(|e| LabError::from_io(&e, what))
}
