//! Programs run inside a namespace of the run, as `ip netns exec NS PROGRAM` does, boxed by the
//! kernel: as root of the run's user namespace (the host's `nobody`), in the lab's network
//! namespace and its filesystem box (sandbox.rs), as PID 1 of a PID namespace of its own with its
//! own /proc and IPC, in a session of its own (no terminal), with only stdin, stdout and stderr,
//! under the run's process and memory limits, with no new privileges.
//!
//! The child does all of this itself, between fork and exec (`setns` on a tokio worker would
//! move every task on it). It runs with an empty environment but for a fixed PATH and what the
//! scenario passed (the policy has vetted the keys), and with a parent-death signal so it dies
//! with the runner. Signals reach it only through a pidfd of the process the runner spawned.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::console::{EchoBudget, LineSplitter};
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

/// What a program is boxed with: the run's namespaces and limits, as raw fds the child uses
/// between fork and exec. The lab keeps every fd open for as long as programs may start.
#[derive(Debug, Clone, Copy)]
pub struct Boxing {
    /// The run's user namespace: the program is its root (the host's `nobody`).
    pub userns: RawFd,
    /// The lab namespace the program runs in.
    pub netns: RawFd,
    /// That namespace's filesystem box (sandbox.rs).
    pub mntns: RawFd,
    /// The run's memory cgroup (`cgroup.procs`, open for writing), where there is one.
    pub cgroup_procs: Option<RawFd>,
    /// RLIMIT_NPROC. Every program of the run is root of the run's user namespace, and since
    /// Linux 5.14 the kernel counts that user's processes and threads per user namespace: so
    /// this bounds all of the run's programs together, whatever they fork.
    pub max_processes: u64,
    /// RLIMIT_AS of each program, where no memory cgroup bounds them together.
    pub address_space: Option<u64>,
}

/// A program started inside a namespace, until it has been waited for.
pub struct Running {
    child: tokio::process::Child,
    /// The process we spawned (the shim that waits for the program, see [`enter_lab`]), as a
    /// pidfd: a signal through it reaches that process or nothing, never one that reused its pid.
    pidfd: OwnedFd,
    /// The program itself: PID 1 of its namespace, a child of the process we spawned.
    program_pid: u32,
    feeder: Option<tokio::task::JoinHandle<()>>,
    out: Option<tokio::task::JoinHandle<Vec<u8>>>,
    err: Option<tokio::task::JoinHandle<Vec<u8>>>,
    /// Set when nobody will read the output any more: the capture stops keeping it.
    discard: Arc<AtomicBool>,
    started: Instant,
    what: String,
    /// Its output, once it has ended.
    done: Option<ExecOutput>,
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned at once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Start a program inside a namespace. Its output is echoed (tagged with `tag`, for background
/// programs) within the run's echo budget, and captured as it comes.
pub fn start(
    ns_name: &str,
    boxing: Boxing,
    req: ExecRequest,
    echo: Arc<EchoBudget>,
    tag: Option<String>,
) -> LabResult<Running> {
    let path = resolve(&req.program)?;
    let what = format!("run {} in {ns_name}", req.program);
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
        // Out of the terminal's foreground group: Ctrl-C reaches the runner, which tears down.
        .process_group(0)
        .kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || enter_lab(boxing, parent));
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| spawn_error(e, &what))?;
    let pid = child.id().expect("not yet waited for");
    // Not yet reaped, so the pid is still this child's.
    let pidfd = pidfd_open(pid).map_err(|e| LabError::from_io(&e, &what))?;
    // The spawned process forked the program before it let go of the exec-error pipe, so by
    // now the program is its child.
    let program_pid = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(pid);
    let feeder = match (child.stdin.take(), req.stdin) {
        (Some(mut pipe), Some(data)) => Some(tokio::spawn(async move {
            // A program that exits without reading its input closes the pipe: not an error.
            let _ = pipe.write_all(&data).await;
        })),
        _ => None,
    };
    let discard = Arc::new(AtomicBool::new(false));
    let capture_of = |stream, is_stderr| {
        tokio::spawn(capture(
            stream,
            Capture {
                limit: req.output_limit,
                echo: echo.clone(),
                is_stderr,
                tag: tag.clone(),
                discard: discard.clone(),
            },
        ))
    };
    let out = capture_of(child.stdout.take().map(Either::Out), false);
    let err = capture_of(child.stderr.take().map(Either::Err), true);
    Ok(Running {
        child,
        pidfd,
        program_pid,
        feeder,
        out: Some(out),
        err: Some(err),
        discard,
        started,
        what,
        done: None,
    })
}

/// The kernel's EAGAIN at exec is the run's process limit (RLIMIT_NPROC), not a passing fault.
fn spawn_error(e: std::io::Error, what: &str) -> LabError {
    if e.raw_os_error() == Some(libc::EAGAIN) {
        return LabError::Limit(format!(
            "{what}: the run's programs already have as many processes and threads as allowed \
             (policy limit max-processes; raise it with --max-processes)"
        ));
    }
    LabError::from_io(&e, what)
}

impl Running {
    pub fn id(&self) -> u32 {
        self.program_pid
    }

    pub fn has_ended(&self) -> bool {
        self.done.is_some()
    }

    /// Whether it has ended, without waiting (and without collecting its output).
    pub fn exited(&mut self) -> bool {
        self.done.is_some() || matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Nobody will read its output: stop keeping it (what it prints is still echoed).
    pub fn discard_output(&self) {
        self.discard.store(true, Ordering::SeqCst);
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain syscall on a pidfd we own; ESRCH (already ended) is expected.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
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

    /// Stop it now: SIGKILL to the shim, whose death kills the program (parent-death signal),
    /// whose death makes the kernel kill everything in its PID namespace. `timed_out` marks its
    /// output.
    pub async fn kill_now(&mut self, timed_out: bool) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            self.signal(libc::SIGKILL);
            let status = self
                .child
                .wait()
                .await
                .map_err(|e| LabError::from_io(&e, &self.what))?;
            self.finish(status, timed_out).await?;
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    /// Stop it cleanly: SIGTERM to the program (the shim passes it on), and if it has not ended
    /// within `grace`, SIGKILL to everything it started.
    pub async fn terminate(&mut self, grace: Duration) -> LabResult<&ExecOutput> {
        if self.done.is_none() {
            self.signal(libc::SIGTERM);
            if self.wait(grace).await?.is_none() {
                return self.kill_now(false).await;
            }
        }
        Ok(self.done.as_ref().expect("finished above"))
    }

    async fn finish(&mut self, status: std::process::ExitStatus, timed_out: bool) -> LabResult<()> {
        // The shim exits only once the program has: its PID namespace, and so every process
        // that held the pipes, is gone.
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

/// Run a program to completion (or its time limit) inside a namespace.
pub async fn run(
    ns_name: &str,
    boxing: Boxing,
    req: ExecRequest,
    echo: Arc<EchoBudget>,
) -> LabResult<ExecOutput> {
    let limit = req.timeout;
    let mut running = start(ns_name, boxing, req, echo, None)?;
    if let Some(out) = running.wait(limit).await? {
        return Ok(out.clone());
    }
    Ok(running.kill_now(true).await?.clone())
}

/// Between fork and exec, in the child: join the run's memory cgroup, enter the run's user
/// namespace, the lab's network namespace and its filesystem box, and start the program as
/// PID 1 of a PID namespace (and mount and IPC namespace) of its own, in a session of its own,
/// with only stdin, stdout and stderr open.
///
/// The forked child (C, the shim) cannot itself join a new PID namespace, only its children
/// can. So C forks once more: the grandchild (G) returns from here and execs the program as that
/// namespace's init; C waits for G and exits with its status, passing on SIGTERM, SIGINT and
/// SIGHUP (G is C's child and reaped only by C, so its pid cannot be reused meanwhile). C closes
/// every fd it holds first, or the parent's `spawn()` would wait on the exec-error pipe until C
/// exits. Both have a parent-death signal: the runner's death kills C, C's death kills G, and
/// G's death makes the kernel kill everything left in its PID namespace.
///
/// C stays the host's root inside the user namespace (never running foreign code), so that only
/// the programs count as the run's processes for RLIMIT_NPROC.
///
/// # Safety
/// Only async-signal-safe calls: this runs in a forked copy of a multi-threaded process.
unsafe fn enter_lab(b: Boxing, runner: libc::pid_t) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // While still the host's root: the cgroup, and dropping the host root's groups.
    if let Some(fd) = b.cgroup_procs {
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return fail();
        }
    }
    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setns(b.userns, libc::CLONE_NEWUSER) != 0
    {
        return fail();
    }
    // After the credential change, which clears the parent-death signal.
    if !set_pdeathsig() {
        return fail();
    }
    // The runner may have died between fork and prctl: then nothing would kill us.
    if libc::getppid() != runner {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    if libc::setns(b.netns, libc::CLONE_NEWNET) != 0
        || libc::setns(b.mntns, libc::CLONE_NEWNS) != 0
        || libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC) != 0
        || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0
    {
        return fail();
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    // Blocked before the fork, so C cannot miss G's end or a signal meant for G.
    let mut forwarded: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut forwarded);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
        libc::sigaddset(&mut forwarded, sig);
    }
    if libc::sigprocmask(libc::SIG_BLOCK, &forwarded, std::ptr::null_mut()) != 0 {
        return fail();
    }
    // G learns whether C died before G's own prctl: C holds the write end until it dies.
    let mut alive = [0 as libc::c_int; 2];
    if libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        return fail();
    }
    match libc::fork() {
        -1 => fail(),
        0 => {
            libc::close(alive[1]);
            become_program(b, alive[0])
        }
        program => shim(program, alive[1], &forwarded),
    }
}

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

/// G, the program-to-be: the limits, the user, the session, its own /proc and /sys.
///
/// # Safety
/// As [`enter_lab`].
unsafe fn become_program(b: Boxing, alive: RawFd) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    // Limits before the user change, so the change itself is counted against them.
    let nproc = libc::rlimit {
        rlim_cur: b.max_processes,
        rlim_max: b.max_processes,
    };
    if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0
        || libc::setrlimit(libc::RLIMIT_NPROC, &nproc) != 0
    {
        return fail();
    }
    if let Some(bytes) = b.address_space {
        let r = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
            return fail();
        }
    }
    // Root of the run's user namespace: host uid and gid `nobody`, capabilities over the lab only.
    if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
        return fail();
    }
    if !set_pdeathsig() {
        return fail();
    }
    libc::fcntl(alive, libc::F_SETFL, libc::O_NONBLOCK);
    let mut byte = 0u8;
    if libc::read(alive, (&mut byte as *mut u8).cast(), 1) == 0 {
        libc::_exit(128 + libc::SIGKILL);
    }
    // No controlling terminal: nothing it does can reach the operator's terminal.
    if libc::setsid() < 0 {
        return fail();
    }
    // Its own /proc: only the processes of its PID namespace. Its own /sys, showing the lab
    // namespace's devices; where that cannot be had, the box's read-only host /sys stays.
    let hidden = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if libc::mount(
        c"proc".as_ptr(),
        c"/proc".as_ptr(),
        c"proc".as_ptr(),
        hidden,
        std::ptr::null(),
    ) != 0
    {
        return fail();
    }
    libc::mount(
        c"sysfs".as_ptr(),
        c"/sys".as_ptr(),
        c"sysfs".as_ptr(),
        hidden | libc::MS_RDONLY,
        std::ptr::null(),
    );
    if libc::chdir(c"/".as_ptr()) != 0 {
        return fail();
    }
    // Exactly stdin, stdout and stderr survive the exec: nothing the runner inherited.
    if libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    ) != 0
    {
        return fail();
    }
    Ok(())
}

/// C, once G is forked: hold only the pipe G watches, pass signals on, and exit as G does.
///
/// # Safety
/// As [`enter_lab`].
unsafe fn shim(program: libc::pid_t, alive: RawFd, forwarded: &libc::sigset_t) -> ! {
    let keep = alive as u32;
    if keep > 0 {
        libc::syscall(libc::SYS_close_range, 0u32, keep - 1, 0u32);
    }
    libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
    loop {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigwaitinfo(forwarded, &mut info);
        if sig == libc::SIGCHLD {
            let mut status = 0;
            if libc::waitpid(program, &mut status, libc::WNOHANG) == program {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                libc::_exit(code)
            }
        } else if sig > 0 {
            libc::kill(program, sig);
        } else if *libc::__errno_location() != libc::EINTR {
            libc::_exit(127)
        }
    }
}

/// Either of a child's output pipes, as one type.
enum Either {
    Out(tokio::process::ChildStdout),
    Err(tokio::process::ChildStderr),
}

impl AsyncRead for Either {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Either::Out(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Either::Err(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// How one output stream is captured.
struct Capture {
    /// Bytes kept for the scenario (exec-output-bytes).
    limit: usize,
    /// The run's budget for echoing program output to the terminal (echo-bytes).
    echo: Arc<EchoBudget>,
    is_stderr: bool,
    tag: Option<String>,
    discard: Arc<AtomicBool>,
}

/// Read a stream to its end: echo each line to the console as it comes, within the run's echo
/// budget, keep at most `limit` bytes, and mark the cut. The program is not stopped for writing
/// more.
async fn capture(stream: Option<Either>, c: Capture) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut lines = LineSplitter::new(4096);
    let mut buf = [0u8; 8192];
    let echo = |line: &[u8]| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        match &c.tag {
            Some(t) => c.echo.program_output(&format!("{t}: {text}"), c.is_stderr),
            None => c.echo.program_output(text, c.is_stderr),
        }
    };
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if c.discard.load(Ordering::Relaxed) {
            kept = Vec::new();
        } else {
            let room = c.limit.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..room.min(n)]);
            dropped += n.saturating_sub(room);
        }
        lines.push(chunk, echo);
    }
    lines.finish(echo);
    if dropped > 0 {
        kept.extend_from_slice(
            format!("\n[nslab: output cut here: {dropped} more bytes beyond the policy limit exec-output-bytes = {}]\n", c.limit)
                .as_bytes(),
        );
    }
    kept
}
