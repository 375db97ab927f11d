//! Programs run inside a namespace of the run, as `ip netns exec NS PROGRAM` does, boxed by the
//! kernel: as root of the run's user namespace (the host's `nobody`), in the lab's network
//! namespace, as PID 1 of a PID namespace of its own with its own /proc, with no new privileges.
//!
//! The child does all of this itself, between fork and exec (`setns` on a tokio worker would
//! move every task on it). It runs with an empty environment but for a fixed PATH and what the
//! scenario passed (the policy has vetted the keys), in its own process group so a timeout kills
//! everything it started, and with a parent-death signal so it dies with the runner.

use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::netns::Namespace;
use crate::console::Console;
use crate::error::{LabError, LabResult};

/// Where programs are looked up, whatever the scenario or the runner's own environment says.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct ExecRequest {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub output_limit: usize,
}

impl ExecRequest {
    /// The program and its arguments as one line, for the narration.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Exit code, or 128 + signal number when it was killed.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    pub duration: Duration,
}

/// Find a bare program name in [`SYSTEM_PATH`]. The policy has already checked the name is bare
/// and allowed.
pub fn resolve(program: &str) -> LabResult<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .ok_or_else(|| {
            LabError::NotFound(format!(
                "program {program:?} is allowed but not installed: it is in none of {SYSTEM_PATH}; \
                 install it on this machine (for example with apt-get)"
            ))
        })
}

/// A program started inside a namespace, until it has been waited for.
pub struct Running {
    child: tokio::process::Child,
    /// The program's process group (its own, so a kill reaches all it started).
    pgid: Option<libc::pid_t>,
    /// The program itself: PID 1 of its namespace, a child of the process we spawned.
    program_pid: u32,
    feeder: Option<tokio::task::JoinHandle<()>>,
    out: Option<tokio::task::JoinHandle<Vec<u8>>>,
    err: Option<tokio::task::JoinHandle<Vec<u8>>>,
    started: Instant,
    what: String,
    /// Its output, once it has ended.
    done: Option<ExecOutput>,
}

/// Start a program inside `ns`. Its output is echoed (tagged with `tag`, for background
/// programs) and captured as it comes.
pub fn start(
    ns: &Namespace,
    userns: RawFd,
    req: ExecRequest,
    console: Console,
    tag: Option<String>,
) -> LabResult<Running> {
    let path = resolve(&req.program)?;
    let what = format!("run {} in {}", req.program, ns.name);
    for arg in &req.args {
        if arg.contains('\0') {
            return Err(LabError::Invalid(format!(
                "{what}: argument {arg:?} contains a NUL byte"
            )));
        }
    }
    let mut cmd = Command::new(&path);
    cmd.args(&req.args)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let ns_fd = ns.raw_fd();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || enter_lab(userns, ns_fd, parent));
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| LabError::from_io(&e, &what))?;
    let pgid = child.id().map(|p| p as libc::pid_t);
    // The spawned process forked the program before it let go of the exec-error pipe, so by
    // now the program is its child.
    let program_pid = pgid
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).ok())
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| pgid.unwrap_or(0) as u32);
    let feeder = match (child.stdin.take(), req.stdin) {
        (Some(mut pipe), Some(data)) => Some(tokio::spawn(async move {
            // A program that exits without reading its input closes the pipe: not an error.
            let _ = pipe.write_all(&data).await;
        })),
        _ => None,
    };
    let out = tokio::spawn(capture(
        child.stdout.take(),
        req.output_limit,
        console,
        false,
        tag.clone(),
    ));
    let err = tokio::spawn(capture(
        child.stderr.take(),
        req.output_limit,
        console,
        true,
        tag,
    ));
    Ok(Running {
        child,
        pgid,
        program_pid,
        feeder,
        out: Some(out),
        err: Some(err),
        started,
        what,
        done: None,
    })
}

impl Running {
    pub fn id(&self) -> u32 {
        self.program_pid
    }

    pub fn has_ended(&self) -> bool {
        self.done.is_some()
    }

    /// Wait up to `limit` for it to end: its output, or None if it is still running.
    pub async fn wait(&mut self, limit: Duration) -> LabResult<Option<&ExecOutput>> {
        if self.done.is_none() {
            match tokio::time::timeout(limit, self.child.wait()).await {
                Ok(status) => {
                    let status = status.map_err(|e| LabError::from_io(&e, &self.what))?;
                    self.finish(status, false).await?;
                }
                Err(_) => return Ok(None),
            }
        }
        Ok(self.done.as_ref())
    }

    /// Stop it now: SIGKILL to everything it started. `timed_out` marks its output.
    pub async fn kill_now(&mut self, timed_out: bool) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            kill_group(self.pgid);
            let status = self
                .child
                .wait()
                .await
                .map_err(|e| LabError::from_io(&e, &self.what))?;
            self.finish(status, timed_out).await?;
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    /// Stop it cleanly: SIGTERM to the program, and if it has not ended within `grace`, SIGKILL
    /// to everything it started.
    pub async fn terminate(&mut self, grace: Duration) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            // SAFETY: plain syscall; the pid is our grandchild, alive until its parent reaps it.
            unsafe {
                libc::kill(self.program_pid as libc::pid_t, libc::SIGTERM);
            }
            if self.wait(grace).await?.is_none() {
                return self.kill_now(false).await;
            }
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    async fn finish(&mut self, status: std::process::ExitStatus, timed_out: bool) -> LabResult<()> {
        // Whatever the program left running in its group would hold the pipes open: end it.
        kill_group(self.pgid);
        if let Some(f) = self.feeder.take() {
            f.abort();
        }
        let collect = |h: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
            match h {
                Some(h) => h.await.map_err(|e| LabError::Trap(wasmtime::Error::new(e))),
                None => Ok(Vec::new()),
            }
        };
        let stdout = collect(self.out.take()).await?;
        let stderr = collect(self.err.take()).await?;
        use std::os::unix::process::ExitStatusExt;
        let status = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        self.done = Some(ExecOutput {
            status,
            stdout,
            stderr,
            timed_out,
            duration: self.started.elapsed(),
        });
        Ok(())
    }
}

/// Run a program to completion (or its time limit) inside `ns`.
pub async fn run(
    ns: &Namespace,
    userns: RawFd,
    req: ExecRequest,
    console: Console,
) -> LabResult<ExecOutput> {
    let limit = req.timeout;
    let mut running = start(ns, userns, req, console, None)?;
    if let Some(out) = running.wait(limit).await? {
        return Ok(out.clone());
    }
    Ok(running.kill_now(true).await?.clone())
}

/// Between fork and exec, in the child: enter the run's user namespace as its root, enter the
/// lab's network namespace, and start the program as PID 1 of a PID namespace (and mount
/// namespace, for its own /proc) of its own, so that whatever it starts dies with it.
///
/// The forked child (C) cannot itself join a new PID namespace, only its children can. So C
/// forks once more: the grandchild (G) returns from here and execs the program as that
/// namespace's init; C waits for G and exits with its status. C closes every fd it holds first,
/// or the parent's `spawn()` would wait on the exec-error pipe until C exits. Both have a
/// parent-death signal: the runner's death kills C, C's death kills G, and G's death makes the
/// kernel kill everything left in its PID namespace.
///
/// # Safety
/// Only async-signal-safe calls: this runs in a forked copy of a multi-threaded process.
unsafe fn enter_lab(userns: RawFd, ns_fd: RawFd, runner: libc::pid_t) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // Drop the host root's supplementary groups while we still may, then become root of the run's
    // user namespace: host uid and gid `nobody`, with capabilities over the lab only.
    if libc::setgroups(0, std::ptr::null()) != 0
        || libc::setns(userns, libc::CLONE_NEWUSER) != 0
        || libc::setresgid(0, 0, 0) != 0
        || libc::setresuid(0, 0, 0) != 0
    {
        return fail();
    }
    // After the uid change: a credential change clears the parent-death signal.
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        return fail();
    }
    // The runner may have died between fork and prctl: then nothing would kill us.
    if libc::getppid() != runner {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0
        || libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) != 0
        || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0
    {
        return fail();
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    // G learns whether C died before G's own prctl: C holds the write end until it dies.
    let mut alive = [0 as libc::c_int; 2];
    if libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        return fail();
    }
    match libc::fork() {
        -1 => fail(),
        0 => {
            libc::close(alive[1]);
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return fail();
            }
            libc::fcntl(alive[0], libc::F_SETFL, libc::O_NONBLOCK);
            let mut byte = 0u8;
            if libc::read(alive[0], (&mut byte as *mut u8).cast(), 1) == 0 {
                libc::_exit(128 + libc::SIGKILL);
            }
            // Its own /proc: only the processes of its PID namespace are there. Mounts stay in
            // its mount namespace (private, so nothing propagates back to the host).
            let proc_ = c"/proc".as_ptr();
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
                || libc::mount(
                    c"proc".as_ptr(),
                    proc_,
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ) != 0
            {
                return fail();
            }
            Ok(())
        }
        program => {
            // Keep only the write end G watches.
            let keep = alive[1] as u32;
            if keep > 0 {
                libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
            let mut status = 0;
            loop {
                let r = libc::waitpid(program, &mut status, 0);
                if r == program {
                    break;
                }
                if r == -1 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(127);
                }
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            libc::_exit(code)
        }
    }
}

fn kill_group(pgid: Option<libc::pid_t>) {
    if let Some(pgid) = pgid {
        // SAFETY: plain syscall; ESRCH (already gone) is the expected common case.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Read a stream to its end: echo each line to the console as it comes, keep at most `limit`
/// bytes, and mark the cut. The program is not stopped for writing more.
async fn capture(
    stream: Option<impl AsyncRead + Unpin>,
    limit: usize,
    console: Console,
    is_stderr: bool,
    tag: Option<String>,
) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut pending = Vec::new();
    let mut buf = [0u8; 8192];
    let echo = |line: &[u8]| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        match &tag {
            Some(t) => console.program_output(&format!("{t}: {text}"), is_stderr),
            None => console.program_output(text, is_stderr),
        }
    };
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..room.min(n)]);
        dropped += n.saturating_sub(room);
        pending.extend_from_slice(chunk);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            echo(&pending[..=pos]);
            pending.drain(..=pos);
        }
        if pending.len() > 4096 {
            echo(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        echo(&pending);
    }
    if dropped > 0 {
        kept.extend_from_slice(
            format!("\n[nslab: output cut here: {dropped} more bytes beyond the policy limit exec-output-bytes = {limit}]\n")
                .as_bytes(),
        );
    }
    kept
}
