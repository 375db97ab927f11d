//! What the process the runner spawns for a program does between fork and exec: it boxes
//! itself and the program (exec.rs says why each step is there, sandbox.rs what the box is).
//! Everything here runs in a forked copy of a multi-threaded process, so it makes only
//! async-signal-safe calls: raw syscalls, no allocation, no locks.

use std::os::fd::RawFd;

/// What a program is boxed with: the run's namespaces and limits, as raw fds the child uses
/// between fork and exec. The lab keeps every fd open for as long as programs may start.
#[derive(Debug, Clone, Copy)]
pub struct Boxing {
    /// The run's user namespace: the program is its root (the first of the run's host ids).
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
    /// How the program loses the groups of the user who started the runner.
    pub groups: super::helper::GroupDrop,
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
pub(super) unsafe fn enter_lab(b: Boxing, runner: libc::pid_t) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // While still the host's root: the cgroup, and dropping the host root's groups.
    if let Some(fd) = b.cgroup_procs {
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return fail();
        }
    }
    use super::helper::GroupDrop;
    if b.groups == GroupDrop::Outside && libc::setgroups(0, std::ptr::null()) != 0 {
        return fail();
    }
    if libc::setns(b.userns, libc::CLONE_NEWUSER) != 0 {
        return fail();
    }
    // An ordinary user's groups go once inside, where setgroups is the run's to allow.
    if b.groups == GroupDrop::Inside && libc::setgroups(0, std::ptr::null()) != 0 {
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
    // Root of the run's user namespace: the run's first host id, capabilities over the lab only.
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
