//! How a run's cgroups end: every process still in them killed ([`kill_all`]), the cgroups
//! removed; by the run itself, by its janitor when the runner was killed outright, and by the
//! sweep of dead runs' cgroups.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{detect, write, JANITOR_ARG, PREFIX};

/// Kill every process in the cgroup `dir` and wait (until `deadline`) until none is left: what
/// no program can shed, whatever user, session or process group it switched to. cgroup v2 has
/// `cgroup.kill`, which the kernel applies to every task at once, new forks included. cgroup
/// v1 has no such file: its processes are killed one by one, each through a pidfd taken and
/// then checked to be still in this cgroup (so a pid reused meanwhile is never signalled), until
/// none is left; a fork racing the sweep is caught by the next round. True if it is empty.
pub fn kill_all(dir: &Path, deadline: std::time::Instant) -> bool {
    let kill_file = dir.join("cgroup.kill");
    let v2 = kill_file.exists() && write(&kill_file, "1").is_ok();
    let name = dir
        .file_name()
        .map(|n| format!("/{}", n.to_string_lossy()))
        .unwrap_or_default();
    loop {
        let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
            // Gone already.
            return true;
        };
        let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        if !v2 {
            for pid in pids {
                kill_if_member(pid, &name);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// SIGKILL process `pid` if, once a pidfd holds it, it is still in a cgroup named `name`.
fn kill_if_member(pid: u32, name: &str) {
    let Ok(pidfd) = crate::process::pidfd_open(pid) else {
        return; // gone meanwhile
    };
    let member = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|c| c.lines().any(|l| l.ends_with(name)));
    if member {
        let _ = crate::process::pidfd_signal(&pidfd, libc::SIGKILL);
    }
}

/// Remove an empty cgroup, waiting up to `tries` × 5 ms for its last processes to leave.
pub fn remove_when_empty(dir: &Path, tries: u32) {
    for _ in 0..tries {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            _ => return,
        }
    }
}

/// Start `exe __cgroup-janitor DIR...` with the read end of a pipe as its stdin; the write end,
/// close-on-exec, stays with the runner alone (its programs' processes close every inherited fd).
pub fn start_janitor(exe: &Path, dirs: &[PathBuf]) -> std::io::Result<(Child, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new(exe);
    cmd.arg(JANITOR_ARG)
        .args(dirs)
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe. Its own session: Ctrl-C at the terminal is the
    // runner's to handle, and the janitor must outlive a killed runner.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok((cmd.spawn()?, write))
}

/// The janitor's main: wait for the runner's end of the pipe on stdin to close (the runner ended,
/// or was killed), then kill whatever of the run is still in its cgroup and remove the cgroup
/// (within 10 s; a cgroup still busy then is left for the sweep).
pub fn janitor(dirs: &[PathBuf]) -> std::process::ExitCode {
    // Only a run's cgroups, or the leaves below one (v2).
    let ours = |dir: &PathBuf| {
        dir.ancestors().take(2).any(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX))
        })
    };
    if dirs.is_empty() || !dirs.iter().all(ours) {
        return std::process::ExitCode::FAILURE;
    }
    let mut byte = [0u8; 1];
    // SAFETY: fd 0 is the pipe the runner set up.
    let pipe = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    while let Err(nix::errno::Errno::EINTR) | Ok(1..) = nix::unistd::read(pipe, &mut byte) {}
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for dir in dirs.iter().rev() {
        kill_all(dir, deadline);
        remove_when_empty(dir, 200);
    }
    std::process::ExitCode::SUCCESS
}

/// Remove the cgroups of runs that are no longer alive (a runner killed by SIGKILL cannot
/// remove its own): `alive` says whether a run id's run goes on. Only empty ones go: rmdir
/// refuses a cgroup with processes.
pub fn sweep(parent: &Path, alive: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !alive(id) {
            // v2's leaves first; rmdir refuses a cgroup that still has processes.
            for leaf in ["helper", "programs"] {
                let _ = std::fs::remove_dir(e.path().join(leaf));
            }
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Sweep wherever this machine puts run cgroups (for `runner cleanup`).
pub fn sweep_all(alive: &dyn Fn(&str) -> bool) {
    if let Ok(h) = detect() {
        for parent in h.parents() {
            sweep(&parent, alive);
        }
    }
}
