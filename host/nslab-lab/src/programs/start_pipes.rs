//! A program's start as its pipes say it (launch.rs made them, the init writes them): the
//! program's pid once it is forked, or why it could not start; and, once it is, whether its
//! exec failed. Waited for on the runtime without blocking ([`outcome_of`]), or on a thread
//! that may block ([`outcome_blocking`], the operator's programs).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::error::{LabError, LabResult};
use crate::helper::channel::{Init, START_PATIENCE_SECS};
use crate::helper::protocol::StartError;

/// What became of a start, waited for without blocking: the program's pid once its init has
/// forked it (0 if neither the init nor the runner could tell it), with the pipe of exec
/// errors still to read; or why it could not start. An init that did not fork it in time is
/// stopped.
pub async fn outcome_of(
    forked: OwnedFd,
    mut errors: pipe::Receiver,
    init: Arc<Init>,
    what: &str,
) -> (LabResult<u32>, Option<pipe::Receiver>) {
    let forked = await_fork(forked, &mut errors, what).await;
    // The init's pidfd may still be in the helper's answers, unread: reading them is a round
    // trip to the helper, done off the runtime's workers. Only a failed start (to stop its
    // init) or an old kernel (to find its child) needs it.
    match forked {
        Ok(Some(pid)) => (Ok(pid), Some(errors)),
        Ok(None) => {
            let pid = tokio::task::spawn_blocking(move || first_child(&init))
                .await
                .unwrap_or(0);
            (Ok(pid), Some(errors))
        }
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || stop(&init)).await;
            (Err(e), None)
        }
    }
}

/// The same, for a thread that may block (the operator's programs, started on the control
/// socket's threads): the pid, or why not.
pub fn outcome_blocking(
    forked: &OwnedFd,
    errors: &OwnedFd,
    init: &Init,
    what: &str,
) -> LabResult<u32> {
    match await_fork_blocking(forked, errors, what) {
        Ok(Some(pid)) => Ok(pid),
        Ok(None) => Ok(first_child(init)),
        Err(e) => {
            stop(init);
            Err(e)
        }
    }
}

/// Where the init could not read its program's pid (a kernel without
/// /proc/PID/task/TID/children), it is the init's first child, unless it has already ended.
fn first_child(init: &Init) -> u32 {
    init.pidfd()
        .and_then(|fd| crate::process::pidfd_pid(fd.as_raw_fd()))
        .and_then(|init| {
            std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse().ok())
                .or(Some(init))
        })
        .unwrap_or(0)
}

/// An init that did not start its program: stop it (it may be stuck, or already gone).
fn stop(init: &Init) {
    if let Some(pidfd) = init.pidfd() {
        let _ = crate::process::pidfd_signal(pidfd, libc::SIGKILL);
    }
}

fn patience() -> Duration {
    Duration::from_secs(START_PATIENCE_SECS as u64)
}

fn too_slow(what: &str) -> LabError {
    LabError::os(format!(
        "{what}: its init did not get it started within {} s (the machine may be \
         overloaded); it was stopped",
        patience().as_secs()
    ))
}

/// Wait until the init has forked the program (its pid on `forked`, 4 bytes, 0 where it could
/// not tell), or say why it could not: it ended first, having said why on `errors` (it could
/// not enter the lab, or the helper could not clone it), or it did not get that far within
/// [`START_PATIENCE_SECS`].
async fn await_fork(
    forked: OwnedFd,
    errors: &mut pipe::Receiver,
    what: &str,
) -> LabResult<Option<u32>> {
    let mut forked =
        pipe::Receiver::from_owned_fd(forked).map_err(|e| LabError::from_io(&e, what))?;
    let pid = match tokio::time::timeout(patience(), read_word(&mut forked)).await {
        Err(_) => return Err(too_slow(what)),
        Ok(Err(e)) => return Err(LabError::from_io(&e, what)),
        Ok(Ok(pid)) => pid,
    };
    if let Some(pid) = pid {
        return Ok(Some(u32::from_ne_bytes(pid)).filter(|&p| p != 0));
    }
    // The init ended before it forked, or was never cloned: it (or the helper) said why.
    let code = read_word(errors).await.ok().flatten();
    Err(never_forked(code.map(i32::from_ne_bytes), what))
}

/// [`await_fork`] on a thread that may block.
fn await_fork_blocking(forked: &OwnedFd, errors: &OwnedFd, what: &str) -> LabResult<Option<u32>> {
    let deadline = Instant::now() + patience();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos().into(),
        };
        let mut polled = [rustix::event::PollFd::new(
            forked,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut polled, Some(&left)) {
            Ok(0) => return Err(too_slow(what)),
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(LabError::from_io(&e.into(), what)),
        }
    }
    // One write of 4 bytes to a pipe arrives whole; end of file reads as none.
    let mut pid = [0u8; 4];
    loop {
        match nix::unistd::read(forked, &mut pid) {
            Ok(4) => return Ok(Some(u32::from_ne_bytes(pid)).filter(|&p| p != 0)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(LabError::from_errno(e, what)),
            Ok(_) => break,
        }
    }
    Err(never_forked(start_error(errors), what))
}

/// Why an init ended before it forked its program, from what it (or the helper) said.
fn never_forked(code: Option<i32>, what: &str) -> LabError {
    match code.map(StartError::decode) {
        Some(StartError::Init(errno)) => {
            LabError::from_errno(errno, format!("{what}: its init could not enter the lab"))
        }
        Some(StartError::Clone(errno)) => spawn_error(errno, what),
        _ => LabError::os(format!(
            "{what}: its init ended before it started the program"
        )),
    }
}

/// What the pipe of start errors says (blocking until it says it): a [`StartError`]'s code;
/// None once the program has executed (the pipe's end: it is close-on-exec).
fn start_error(errors: &OwnedFd) -> Option<i32> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match nix::unistd::read(errors, &mut bytes[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Some(e as i32),
        }
    }
    (got == 4).then(|| i32::from_ne_bytes(bytes))
}

/// The errno a program could not be executed with, or None once it has been. Blocks until one
/// or the other.
pub fn exec_errno(errors: &OwnedFd) -> Option<Errno> {
    start_error(errors).map(exec_errno_of)
}

/// [`exec_errno`], waited for without blocking.
pub async fn exec_errno_async(errors: &mut pipe::Receiver) -> Option<Errno> {
    let code = read_word(errors).await.ok().flatten()?;
    Some(exec_errno_of(i32::from_ne_bytes(code)))
}

/// One word of 4 bytes from `pipe`, as an init and the helper say things there (a pid, a
/// start error, an exit status: one write each, so it arrives whole), or None if the pipe
/// ends first.
pub async fn read_word(pipe: &mut pipe::Receiver) -> std::io::Result<Option<[u8; 4]>> {
    let mut bytes = Vec::with_capacity(4);
    pipe.take(4).read_to_end(&mut bytes).await?;
    Ok(<[u8; 4]>::try_from(bytes.as_slice()).ok())
}

fn exec_errno_of(code: i32) -> Errno {
    match StartError::decode(code) {
        StartError::Exec(e) | StartError::Init(e) | StartError::Clone(e) => e,
    }
}

/// Why a program could not start, said for the scenario. The kernel's EAGAIN at fork is the
/// run's process limit (RLIMIT_NPROC), not a passing fault.
pub fn spawn_error(e: Errno, what: &str) -> LabError {
    if e == Errno::EAGAIN {
        return LabError::limit(format!(
            "{what}: the run's programs already have as many processes and threads as allowed \
             (policy limit max-processes; raise it with --max-processes)"
        ));
    }
    LabError::from_errno(e, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    fn write_code(fd: &OwnedFd, e: StartError) {
        nix::unistd::write(fd, &e.encode().to_ne_bytes()).unwrap();
    }

    /// What the init said on fresh pipes (its pid, or a start error, then the pipes' ends), as
    /// both waits read it: the runtime's and the blocking one's, which must agree.
    async fn fork_said(pid: Option<u32>, error: Option<StartError>) -> LabResult<Option<u32>> {
        let said = || {
            let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
            if let Some(pid) = pid {
                nix::unistd::write(&forked_w, &pid.to_ne_bytes()).unwrap();
            }
            if let Some(e) = error {
                write_code(&errors_w, e);
            }
            drop((forked_w, errors_w));
            (forked, errors)
        };
        let (forked, errors) = said();
        let blocking = await_fork_blocking(&forked, &errors, "run x in a");
        let (forked, errors) = said();
        let mut errors = pipe::Receiver::from_owned_fd(errors).unwrap();
        let waited = await_fork(forked, &mut errors, "run x in a").await;
        assert_eq!(
            format!("{blocking:?}"),
            format!("{waited:?}"),
            "both waits read the same"
        );
        waited
    }

    #[tokio::test]
    async fn a_fork_is_awaited_until_the_init_gives_the_programs_pid() {
        assert_eq!(fork_said(Some(4321), None).await.unwrap(), Some(4321));
        // 0: the init could not read it; the runner looks for itself.
        assert_eq!(fork_said(Some(0), None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_init_that_could_not_enter_the_lab_says_why() {
        let e = fork_said(None, Some(StartError::Init(Errno::EPERM)))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run x in a: its init could not enter the lab")
                && e.contains("not permitted"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_init_the_helper_could_not_clone_for_want_of_processes_is_the_runs_limit() {
        let e = fork_said(None, Some(StartError::Clone(Errno::EAGAIN)))
            .await
            .unwrap_err();
        assert!(
            (e.kind() == ErrorKind::Limit && e.message().contains("--max-processes")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_init_that_ended_without_a_word_is_said_to_have() {
        let e = fork_said(None, None).await.unwrap_err().to_string();
        assert!(
            e.contains("its init ended before it started the program"),
            "{e}"
        );
    }

    #[test]
    fn an_exec_errno_is_read_whole_and_the_pipes_end_means_executed() {
        let (errors, errors_w) = pipe();
        write_code(&errors_w, StartError::Exec(Errno::ENOEXEC));
        drop(errors_w);
        assert_eq!(exec_errno(&errors), Some(Errno::ENOEXEC));
        let (errors, errors_w) = pipe();
        drop(errors_w);
        assert_eq!(exec_errno(&errors), None);
    }
}
