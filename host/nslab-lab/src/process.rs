//! Process facts shared by everything the lab starts (the helper, its children, the programs'
//! inits): a leaf, so that neither the helper nor the programs depend on each other
//! for them.

use std::os::fd::{AsFd, OwnedFd, RawFd};

/// Where programs are looked up, whatever the scenario or the runner's own environment says.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Be killed (SIGKILL) when the parent dies: false if the kernel refused. Async-signal-safe
/// (a raw system call, errno untouched). A credential change clears it, so it is set again
/// after each.
pub fn set_pdeathsig() -> bool {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).is_ok()
}

/// A pidfd for `pid`, which must be a child not yet reaped (or known to be alive).
pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Send `sig` through `pidfd`: it reaches that process or nothing, never one that reused its
/// pid. Why it could not be sent, if it could not (ESRCH: it has ended).
pub fn pidfd_signal(pidfd: impl AsFd, sig: libc::c_int) -> std::io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(sig)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, sig)?)
}

/// Whether `fd` is readable now, without waiting (a pidfd is once its process has ended).
pub fn readable_now(fd: impl AsFd) -> bool {
    readable_within(fd, std::time::Duration::ZERO)
}

/// Whether `fd` is readable, waiting up to `wait` for it.
pub fn readable_within(fd: impl AsFd, wait: std::time::Duration) -> bool {
    let mut polled = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let wait = rustix::event::Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: wait.subsec_nanos().into(),
    };
    rustix::event::poll(&mut polled, Some(&wait)).is_ok_and(|n| n == 1)
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
    use std::os::fd::AsRawFd;

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
