//! Starting a program: its command, environment and pipes, handed to the lab helper, which
//! forks it under an init of its own in the namespace's box (lab/helper/spawn.rs). What became
//! of the start is read in starts.rs; exec.rs holds the program once started.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use super::capture::{capture, Capture, Printed};
use super::exec::{Boxing, ExecOutput, ExecRequest, Known, Running};
use super::find::resolve;
use super::starts::{self, Pending, Start, StartLog, StartPipes};
use crate::error::{LabError, LabResult};
use crate::helper::port::Port;
use crate::helper::protocol::Command;
use crate::helper::protocol::StartFds;
use crate::process::SYSTEM_PATH;
use crate::{LabEvent, Sink};

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
pub async fn start<P: Port>(
    ns_name: &str,
    boxing: Boxing,
    helper: &P,
    req: ExecRequest,
    sink: Arc<dyn Sink>,
    tag: Option<String>,
    starts: &Arc<StartLog>,
) -> LabResult<Running> {
    let path = if req.by_path {
        PathBuf::from(crate::helper::sandbox::PROGRAM_DIR).join(&req.program)
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
        by: crate::helper::protocol::StartedBy::Scenario,
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
    let init = Arc::new(
        helper
            .start_program(
                &exec,
                StartFds {
                    netns: boxing.netns,
                    mntns: boxing.mntns,
                    utsns: boxing.utsns,
                    stdin: stdin_read.as_raw_fd(),
                    stdout: stdout_write.as_raw_fd(),
                    stderr: stderr_write.as_raw_fd(),
                    exit_status: exit_write.as_raw_fd(),
                    errors: errors_write.as_raw_fd(),
                    forked: forked_write.as_raw_fd(),
                },
            )
            .await?,
    );
    // Only the init holds them now (or, until it has cloned one, the helper): their ends are
    // its end (or its program's).
    drop((
        stdin_read,
        stdout_write,
        stderr_write,
        exit_write,
        errors_write,
        forked_write,
    ));
    let start = Arc::new(Start::default());
    let pipes = StartPipes {
        forked,
        errors: exec_errors,
    };
    if tag.is_none() {
        // Run to completion: everything started before it is told first, then its own start,
        // waited for here, as is whether it could be executed: if not, it fails as the exec
        // did. A background program does not wait for either (starts.rs).
        starts.flush().await;
        let errors = pipe::Receiver::from_owned_fd(pipes.errors)
            .map_err(|e| LabError::from_io(&e, &what))?;
        let (pid, errors) = starts::outcome_of(pipes.forked, errors, init.clone(), &what).await;
        let pid = pid?;
        if let Some(mut errors) = errors {
            if let Some(errno) = starts::exec_errno_async(&mut errors).await {
                return Err(starts::spawn_error(errno, &what));
            }
        }
        start.set_pid(pid);
        sink.event(LabEvent::ProgramStart {
            program: number,
            ns: ns_name,
            command: &command,
            background: false,
            pid,
        });
    } else {
        starts
            .push(Pending {
                start: start.clone(),
                init: init.clone(),
                pipes,
                what: what.clone(),
                number,
                ns: ns_name.to_string(),
                command: command.clone(),
                sink: sink.clone(),
            })
            .await;
    }
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
                starts: tag.is_some().then(|| starts.clone()),
            },
        ))
    };
    let capturing = vec![capture_of(stdout, false), capture_of(stderr, true)];
    Ok(Running {
        init,
        exit_status,
        start,
        feeder,
        capturing,
        printed,
        discard,
        started,
        what,
        done: None,
        known: Known {
            number,
            ns: ns_name.to_string(),
            command,
            sink,
        },
    })
}

/// A program's environment: PATH, then what the scenario passed (a key passed twice has its
/// last value; a PATH passed replaces the system's).
pub(super) fn environment(passed: &[(String, String)]) -> Vec<Vec<u8>> {
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

/// Run a program to completion (or its time limit) inside a namespace.
pub async fn run<P: Port>(
    ns_name: &str,
    boxing: Boxing,
    helper: &P,
    req: ExecRequest,
    sink: Arc<dyn Sink>,
    starts: &Arc<StartLog>,
) -> LabResult<ExecOutput> {
    let limit = req.timeout;
    let mut running = start(ns_name, boxing, helper, req, sink, None, starts).await?;
    if let Some(out) = running.wait(limit).await? {
        return Ok(out.clone());
    }
    Ok(running.kill_now(true).await?.clone())
}
