//! Process facts shared by everything the lab starts (the helper, its children, the programs'
//! inits): a leaf, so that neither the helper nor the programs depend on each other
//! for them.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Where programs are looked up, whatever the scenario or the runner's own environment says.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Be killed (SIGKILL) when the parent dies. Async-signal-safe; false with errno set on failure.
/// A credential change clears it, so it is set again after each.
pub fn set_pdeathsig() -> bool {
    // SAFETY: plain prctl on the calling process.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) == 0
    }
}

/// A pidfd for `pid`, which must be a child not yet reaped (or known to be alive).
pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned at once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Send `sig` through `pidfd`: it reaches that process or nothing, never one that reused its
/// pid. Why it could not be sent, if it could not (ESRCH: it has ended).
pub fn pidfd_signal(pidfd: &impl AsRawFd, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain syscall on a pidfd the caller holds.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The pid of the process `pidfd` refers to, as this process sees it (its fdinfo's `Pid:`);
/// None once it has been reaped (-1 there) or where the kernel does not say.
pub fn pidfd_pid(pidfd: RawFd) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{pidfd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|&p| p > 0)
        .map(|p| p as u32)
}

/// When process `pid` started, in clock ticks since boot; None if there is no such process.
/// With the pid, it names a process for good: a pid reused later has another start.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_names_its_process_until_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let pidfd = pidfd_open(child.id()).unwrap();
        assert_eq!(pidfd_pid(pidfd.as_raw_fd()), Some(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(pidfd_pid(pidfd.as_raw_fd()), None);
    }
}
