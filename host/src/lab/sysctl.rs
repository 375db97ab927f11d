//! Per-namespace kernel settings under /proc/sys/net, which resolve to the network namespace of
//! the process that opens them. The lab helper writes them (helper.rs): it is in the run's user
//! namespace, so it may enter the lab's namespaces whether the runner is root or not, and no
//! thread of the runner ever changes namespace.

use std::os::fd::BorrowedFd;

use super::helper::Helper;
use crate::error::LabResult;

/// Turn IPv4 and IPv6 forwarding on or off in the namespace held by `ns`.
pub fn set_forwarding(helper: &Helper, ns: BorrowedFd<'_>, on: bool, what: &str) -> LabResult<()> {
    helper.set_forwarding(ns, on, what)
}
