//! Starting a program: its command, environment and pipes, handed to the lab helper, which
//! forks it under an init of its own in the namespace's box (lab/helper/spawn.rs); and what
//! becomes of an exec that fails. exec.rs holds the program once started.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use super::exec::{Boxing, ExecOutput, ExecRequest, Known, Running};
use super::find::resolve;
use super::output::{capture, Capture, Printed};
use crate::error::{LabError, LabResult};
use crate::lab::helper::{protocol::Command, Helper};
use crate::lab::process::SYSTEM_PATH;
use crate::lab::{LabEvent, Sink};

/// A pipe whose read end the runner keeps (made non-blocking, for tokio) and whose write end
/// goes to the program.
fn output_pipe(what: &str) -> LabResult<(pipe::Receiver, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| LabError::from_errno(e, what))?;
    let read = pipe::Receiver::from_owned_fd(read).map_err(|e| LabError::from_io(&e, what))?;
    Ok((read, write))
}

/// Start a program inside a namespace, through the lab helper. Its output is told to the sink
/// line by line (tagged with `tag`, for background programs), and captured as it comes.
pub fn start(
    ns_name: &str,
    boxing: Boxing,
    helper: &Helper,
    req: ExecRequest,
    sink: Arc<dyn Sink>,
    tag: Option<String>,
) -> LabResult<Running> {
    let path = if req.by_path {
        PathBuf::from(crate::lab::helper::sandbox::PROGRAM_DIR).join(&req.program)
    } else {
        resolve(&req.program)?
    };
    let what = format!("run {} in {ns_name}", req.program);
    let command = req.command_line();
    let number = sink.next_program();
    // Arguments and environment were checked for what no program can take (input.rs).
    let exec = Command {
        program: path,
        args: req.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: environment(&req.env),
    };
    let (stdin_read, stdin_write) = match req.stdin {
        Some(_) => {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| LabError::from_errno(e, &what))?;
            (read, Some(write))
        }
        None => (
            std::fs::File::open("/dev/null")
                .map_err(|e| LabError::from_io(&e, &what))?
                .into(),
            None,
        ),
    };
    let (stdout, stdout_write) = output_pipe(&what)?;
    let (stderr, stderr_write) = output_pipe(&what)?;
    let (exit_status, exit_write) = output_pipe(&what)?;
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let (exec_errors, errors_write) =
        nix::unistd::pipe2(cloexec).map_err(|e| LabError::from_errno(e, &what))?;
    let (forked, forked_write) =
        nix::unistd::pipe2(cloexec).map_err(|e| LabError::from_errno(e, &what))?;
    let started = Instant::now();
    let (pidfd, init_pid) = helper
        .spawn(
            &exec,
            [
                boxing.netns,
                boxing.mntns,
                boxing.utsns,
                stdin_read.as_raw_fd(),
                stdout_write.as_raw_fd(),
                stderr_write.as_raw_fd(),
                exit_write.as_raw_fd(),
                errors_write.as_raw_fd(),
                forked_write.as_raw_fd(),
            ],
        )?
        .map_err(|e| spawn_error(e, &what))?;
    // Only the init holds them now: their ends are its end (or its program's).
    drop((
        stdin_read,
        stdout_write,
        stderr_write,
        exit_write,
        errors_write,
        forked_write,
    ));
    // The helper answered once the init was cloned; the init forks the program once it has
    // entered the lab, and says so on `forked`, with the program's pid.
    let forked_pid = match await_fork(&forked, &exec_errors, &what) {
        Ok(pid) => pid,
        Err(e) => {
            // It did not start its program: stop it (it may be stuck, or already gone).
            let _ = crate::lab::process::pidfd_signal(&pidfd, libc::SIGKILL);
            return Err(e);
        }
    };
    // Whether the program could be executed comes on `exec_errors` (an errno, or the end of the
    // pipe once it has been). A program run to completion waits for that here, and fails as
    // the exec did; a background one does not, as a shell's `PROGRAM &` does not: it is said
    // when it comes (`exec_failure`).
    let failed = Arc::new(std::sync::Mutex::new(None));
    if tag.is_none() {
        if let Some(errno) = exec_errno(&exec_errors) {
            return Err(spawn_error(errno, &what));
        }
    } else {
        let exec_errors =
            pipe::Receiver::from_owned_fd(exec_errors).map_err(|e| LabError::from_io(&e, &what))?;
        tokio::spawn(exec_failure(
            exec_errors,
            what.clone(),
            sink.clone(),
            failed.clone(),
        ));
    }
    // Where the init could not read it (a kernel without /proc/PID/task/TID/children), it is
    // the init's first child, unless it has already ended.
    let program_pid = forked_pid.unwrap_or_else(|| {
        std::fs::read_to_string(format!("/proc/{init_pid}/task/{init_pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse().ok())
            .unwrap_or(init_pid)
    });
    let feeder = match (stdin_write, req.stdin) {
        (Some(write), Some(data)) => {
            let mut pipe =
                pipe::Sender::from_owned_fd(write).map_err(|e| LabError::from_io(&e, &what))?;
            Some(tokio::spawn(async move {
                // A program that exits without reading its input closes the pipe: not an error.
                let _ = pipe.write_all(&data).await;
            }))
        }
        _ => None,
    };
    sink.event(LabEvent::ProgramStart {
        program: number,
        ns: ns_name,
        command: &command,
        background: tag.is_some(),
        pid: program_pid,
    });
    let discard = Arc::new(AtomicBool::new(false));
    let printed = Arc::new(Printed::default());
    let capture_of = |stream, is_stderr| {
        tokio::spawn(capture(
            Some(stream),
            Capture {
                limit: req.output_limit,
                quiet: req.quiet,
                sink: sink.clone(),
                program: number,
                is_stderr,
                tag: tag.clone(),
                discard: discard.clone(),
                printed: printed.clone(),
            },
        ))
    };
    let capturing = vec![capture_of(stdout, false), capture_of(stderr, true)];
    Ok(Running {
        pidfd,
        exit_status,
        program_pid,
        feeder,
        capturing,
        printed,
        discard,
        started,
        what,
        done: None,
        exec_failed: failed,
        known: Known {
            number,
            ns: ns_name.to_string(),
            command,
            sink,
        },
    })
}

/// Wait until the init has forked the program (its pid on `forked`, 4 bytes, 0 where it could
/// not tell), or say why it could not: it ended first, having written its own errno, negated,
/// to `errors` (it could not enter the lab), or it did not get that far within the time the
/// helper has to answer.
fn await_fork(forked: &OwnedFd, errors: &OwnedFd, what: &str) -> LabResult<Option<u32>> {
    let limit = std::time::Duration::from_secs(crate::lab::helper::HELPER_ANSWER_SECS as u64);
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: forked.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one fd we own.
        match unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) } {
            0 => {
                return Err(LabError::Os(format!(
                    "{what}: its init did not get it started within {} s (the machine may be \
                     overloaded); it was stopped",
                    limit.as_secs()
                )))
            }
            n if n > 0 => break,
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Err(LabError::from_errno(Errno::last(), what)),
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
    // The init ended before it forked: it said why, as a negated errno.
    match start_error(errors) {
        Some(code) if code < 0 => Err(LabError::from_errno(
            Errno::from_raw(-code),
            format!("{what}: its init could not enter the lab"),
        )),
        _ => Err(LabError::Os(format!(
            "{what}: its init ended before it started the program"
        ))),
    }
}

/// What the pipe of start errors says (blocking until it says it): a program's exec errno, or
/// an init's own, negated; None once the program has executed (the pipe's end: it is
/// close-on-exec).
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
fn exec_errno(errors: &OwnedFd) -> Option<Errno> {
    start_error(errors).map(Errno::from_raw)
}

/// For a background program: wait for its exec's outcome, and if it failed, say so at once
/// (the program ends with status 127, and its output says why when it is collected).
async fn exec_failure(
    mut errors: pipe::Receiver,
    what: String,
    sink: Arc<dyn Sink>,
    failed: Arc<std::sync::Mutex<Option<Errno>>>,
) {
    let mut bytes = Vec::with_capacity(4);
    let _ = (&mut errors).take(4).read_to_end(&mut bytes).await;
    if let Ok(code) = <[u8; 4]>::try_from(bytes.as_slice()) {
        let errno = Errno::from_raw(i32::from_ne_bytes(code));
        *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(errno);
        sink.event(LabEvent::Warning(&format!(
            "{what}: it could not be executed: {} ({errno:?}); it ended with status 127",
            errno.desc()
        )));
    }
}

/// A program's environment: PATH, then what the scenario passed (a key passed twice has its
/// last value; a PATH passed replaces the system's).
fn environment(passed: &[(String, String)]) -> Vec<Vec<u8>> {
    let mut env: Vec<(&str, &str)> = vec![("PATH", SYSTEM_PATH)];
    for (key, value) in passed {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => env.push((key, value)),
        }
    }
    env.into_iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect()
}

/// Why a program could not start, said for the scenario. The kernel's EAGAIN at fork is the
/// run's process limit (RLIMIT_NPROC), not a passing fault.
fn spawn_error(e: Errno, what: &str) -> LabError {
    if e == Errno::EAGAIN {
        return LabError::Limit(format!(
            "{what}: the run's programs already have as many processes and threads as allowed \
             (policy limit max-processes; raise it with --max-processes)"
        ));
    }
    LabError::from_errno(e, what)
}

/// Run a program to completion (or its time limit) inside a namespace.
pub async fn run(
    ns_name: &str,
    boxing: Boxing,
    helper: &Helper,
    req: ExecRequest,
    sink: Arc<dyn Sink>,
) -> LabResult<ExecOutput> {
    let limit = req.timeout;
    let mut running = start(ns_name, boxing, helper, req, sink, None)?;
    if let Some(out) = running.wait(limit).await? {
        return Ok(out.clone());
    }
    Ok(running.kill_now(true).await?.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    #[test]
    fn a_fork_is_awaited_until_the_init_gives_the_programs_pid() {
        let ((forked, forked_w), (errors, _errors_w)) = (pipe(), pipe());
        nix::unistd::write(&forked_w, &4321u32.to_ne_bytes()).unwrap();
        assert_eq!(
            await_fork(&forked, &errors, "run x in a").unwrap(),
            Some(4321)
        );
        // 0: the init could not read it; the runner looks for itself.
        nix::unistd::write(&forked_w, &0u32.to_ne_bytes()).unwrap();
        assert_eq!(await_fork(&forked, &errors, "run x in a").unwrap(), None);
    }

    #[test]
    fn an_init_that_could_not_enter_the_lab_says_why() {
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        nix::unistd::write(&errors_w, &(-libc::EPERM).to_ne_bytes()).unwrap();
        drop((forked_w, errors_w));
        let e = await_fork(&forked, &errors, "run x in a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run x in a: its init could not enter the lab")
                && e.contains("not permitted"),
            "{e}"
        );
    }

    #[test]
    fn an_init_that_ended_without_a_word_is_said_to_have() {
        let ((forked, forked_w), (errors, errors_w)) = (pipe(), pipe());
        drop((forked_w, errors_w));
        let e = await_fork(&forked, &errors, "run x in a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("its init ended before it started the program"),
            "{e}"
        );
    }

    #[test]
    fn an_exec_errno_is_read_whole_and_the_pipes_end_means_executed() {
        let (errors, errors_w) = pipe();
        nix::unistd::write(&errors_w, &libc::ENOEXEC.to_ne_bytes()).unwrap();
        drop(errors_w);
        assert_eq!(exec_errno(&errors), Some(Errno::ENOEXEC));
        let (errors, errors_w) = pipe();
        drop(errors_w);
        assert_eq!(exec_errno(&errors), None);
    }
}
