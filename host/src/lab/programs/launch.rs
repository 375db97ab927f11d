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
    let started = Instant::now();
    let (pidfd, init_pid, exec_errors) = helper
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
            ],
        )?
        .map_err(|e| spawn_error(e, &what))?;
    // Only the program holds them now: their ends are its end.
    drop((stdin_read, stdout_write, stderr_write, exit_write));
    // The helper answered once the program was forked: whether it could be executed comes on
    // `exec_errors` (an errno, or the end of the pipe once it has been). A program run to
    // completion waits for that here, and fails as the exec did; a background one does not,
    // as a shell's `PROGRAM &` does not: it is said when it comes (`exec_failure`).
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
    // The init forked the program before it executed, so it is the init's first child (unless
    // it has already ended).
    let program_pid = std::fs::read_to_string(format!("/proc/{init_pid}/task/{init_pid}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(init_pid);
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

/// The errno a program could not be executed with, or None once it has been (the pipe's end:
/// it is close-on-exec). Blocks until one or the other.
fn exec_errno(errors: &OwnedFd) -> Option<Errno> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match nix::unistd::read(errors, &mut bytes[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Some(e),
        }
    }
    (got == 4).then(|| Errno::from_raw(i32::from_ne_bytes(bytes)))
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
