//! `--keep` for an ordinary user, who cannot bind-mount a namespace under /run/netns: a keeper
//! process holds the kept lab instead. It is the runner re-executed (`runner __keeper`), in a
//! session of its own, holding exactly the run's user namespace, each lab namespace and each
//! filesystem box as its fds 3, 4, ... and nothing else, and it waits until `runner cleanup`
//! stops it; its fds close, and the kernel frees the lab. Anyone who may enter the user's own
//! namespaces enters them through /proc/PID/fd/N, without root:
//! `nsenter --preserve-credentials --user=/proc/PID/fd/3 --net=/proc/PID/fd/N` (the user is
//! root there already; without the flag nsenter would try setgroups, which the kernel denies).

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::error::{LabError, LabResult};

/// The hidden subcommand that runs [`serve`].
pub const KEEPER_ARG: &str = "__keeper";
/// Where the keeper's fds begin: the run's user namespace is the first.
pub const FIRST_FD: RawFd = 3;

/// Start a keeper holding `fds` (as its FIRST_FD, FIRST_FD + 1, ...): its pid.
pub fn start(exe: &std::path::Path, fds: &[RawFd]) -> LabResult<u32> {
    let fds = fds.to_vec();
    let mut cmd = Command::new(exe);
    cmd.arg(KEEPER_ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Out of the runner's session and process group: Ctrl-C at the terminal, or the
            // terminal closing, does not reach it.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Copied above where they go first, so placing one cannot overwrite another still
            // to be placed (and below an ordinary user's fd limit).
            let mut high = [0 as RawFd; 256];
            if fds.len() > high.len() {
                return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
            }
            let above = FIRST_FD + fds.len() as RawFd;
            for (i, &fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &fd) in high[..fds.len()].iter().enumerate() {
                // dup2 clears close-on-exec on the copy: these are kept across exec.
                if libc::dup2(fd, FIRST_FD + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Nothing else of the runner's crosses exec.
            let first_free = FIRST_FD as libc::c_uint + fds.len() as libc::c_uint;
            libc::syscall(
                libc::SYS_close_range,
                first_free,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| LabError::from_io(&e, "start the process that keeps the lab"))?;
    // Not waited for: it outlives the runner (init reaps it when cleanup stops it).
    Ok(child.id())
}

/// The keeper: hold the fds it was given until a signal ends it.
pub fn serve() -> std::process::ExitCode {
    loop {
        // SAFETY: pause only waits for a signal; SIGTERM's default action ends the process.
        unsafe {
            libc::pause();
        }
    }
}

/// Whether `pid` is a keeper of user `uid` started at `start` (clock ticks since boot): what
/// `cleanup` checks before it signals a pid it read from a record, which the user could have
/// edited to name someone else's process.
pub fn is_keeper(pid: u32, start: u64, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let keeper = cmdline
        .split(|&b| b == 0)
        .nth(1)
        .is_some_and(|arg| arg == KEEPER_ARG.as_bytes());
    ours && keeper && crate::process::process_start(pid) == Some(start)
}
