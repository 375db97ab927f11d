//! What the process the runner spawns for a program does between fork and exec: it boxes
//! itself and the program (exec.rs says why each step is there, sandbox.rs what the box is).
//! Everything here runs in a forked copy of a multi-threaded process, so it makes only
//! async-signal-safe calls: raw syscalls, no allocation, no locks.

use crate::lab::process::set_pdeathsig;
use std::os::fd::RawFd;

/// What a program is boxed with: the run's namespaces and limits, as raw fds the child uses
/// between fork and exec. The lab keeps every fd open for as long as programs may start.
#[derive(Debug, Clone, Copy)]
pub struct Boxing {
    /// The run's user namespace: the program is its root (the first of the run's host ids).
    pub userns: RawFd,
    /// The lab namespace the program runs in.
    pub netns: RawFd,
    /// That namespace's filesystem box (lab/helper/sandbox.rs).
    pub mntns: RawFd,
    /// That namespace's UTS namespace: its host name.
    pub utsns: RawFd,
    /// The run's cgroups (`cgroup.procs` of its memory and pids cgroups, open for writing by
    /// the runner), where there are some: the program joins them.
    pub cgroup_procs: [Option<RawFd>; 2],
    /// RLIMIT_NPROC. Every program of the run is root of the run's user namespace, and since
    /// Linux 5.14 the kernel counts that user's processes and threads per user namespace: so
    /// this bounds all of the run's programs together, whatever they fork.
    pub max_processes: u64,
    /// RLIMIT_AS of each program, where no memory cgroup bounds them together.
    pub address_space: Option<u64>,
    /// How the program loses the groups of the user who started the runner.
    pub groups: crate::lab::helper::ids::GroupDrop,
    /// The Landlock ruleset that limits what it may execute (confine.rs), where there is one.
    pub landlock: Option<RawFd>,
    /// The seccomp filters it runs under (confine.rs), installed in order.
    pub filters: [Option<super::confine::FilterRef>; 2],
}

/// Between fork and exec, in the child: enter the run's user namespace, the lab's network namespace and its filesystem box, and start the program in a
/// PID namespace (and mount and IPC namespace) of its own, under an init of the runner's, in a
/// session of its own, with only stdin, stdout and stderr open.
///
/// Three processes, each with one job:
/// - S, the shim (the process the runner spawned and holds a pidfd of): it cannot itself join a
///   new PID namespace, only its children can. It passes SIGTERM, SIGINT and SIGHUP on to I and
///   exits as I does, so the runner sees the program's status.
/// - I, the init: PID 1 of the program's PID namespace, a fork of the runner that never runs
///   foreign code and never changes credentials, so its parent-death signal holds. It passes
///   signals on to P, reaps every orphan, and exits as P does.
/// - P, the program (PID 2 there), which returns from here and execs.
///
/// When I dies, for whatever reason, the kernel kills everything left in its PID namespace,
/// whatever user, session or process group those processes have switched to; a program cannot
/// leave a PID namespace. I dies when S dies (parent-death signal), and S when the runner dies
/// or the runner kills it. This is what a daemon cannot shed: a parent-death signal on the
/// program itself would not do, since the kernel clears it at every credential change, which
/// is what a daemon dropping to its service user makes (issue 18).
///
/// S and I stay the host's root inside the user namespace (so only programs count toward the
/// run's RLIMIT_NPROC there); I is not dumpable, so a program, which can name it as PID 1,
/// cannot ptrace it or read its /proc files.
///
/// # Safety
/// Only async-signal-safe calls: this runs in a forked copy of a multi-threaded process.
pub(super) unsafe fn enter_lab(b: Boxing, runner: libc::pid_t) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // While still the host's root: dropping the host root's groups.
    use crate::lab::helper::ids::GroupDrop;
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
        || libc::setns(b.utsns, libc::CLONE_NEWUTS) != 0
        || libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC) != 0
        || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0
        || libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) != 0
    {
        return fail();
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    // Blocked before the forks, so neither S nor I can miss a child's end or a signal to pass on.
    let mut forwarded: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut forwarded);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
        libc::sigaddset(&mut forwarded, sig);
    }
    if libc::sigprocmask(libc::SIG_BLOCK, &forwarded, std::ptr::null_mut()) != 0 {
        return fail();
    }
    // I learns whether S died before I's own prctl: S holds the write end until it dies.
    let mut alive = [0 as libc::c_int; 2];
    if libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        return fail();
    }
    match libc::fork() {
        -1 => fail(),
        0 => {
            libc::close(alive[1]);
            become_init(b, alive[0], &forwarded)
        }
        init => shim(init, alive[1], &forwarded),
    }
}

/// I, PID 1 of the new PID namespace: make sure S is still there, mount the namespace's own
/// /proc, fork the program, and stay as its init. Returns only in the program.
///
/// # Safety
/// As [`enter_lab`].
unsafe fn become_init(b: Boxing, alive: RawFd, forwarded: &libc::sigset_t) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    if !set_pdeathsig() {
        return fail();
    }
    libc::fcntl(alive, libc::F_SETFL, libc::O_NONBLOCK);
    let mut byte = 0u8;
    if libc::read(alive, (&mut byte as *mut u8).cast(), 1) == 0 {
        // S is gone already, and with it whatever would have killed us.
        libc::_exit(128 + libc::SIGKILL);
    }
    libc::close(alive);
    // As `ps` shows it inside the lab.
    libc::prctl(
        libc::PR_SET_NAME,
        c"nslab-init".as_ptr() as libc::c_ulong,
        0,
        0,
        0,
    );
    // Its own /proc: only the processes of its PID namespace. (/sys is the box's: the lab
    // namespace's own sysfs, sandbox.rs.)
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
    match libc::fork() {
        -1 => fail(),
        0 => become_program(b),
        program => init(program, forwarded),
    }
}

/// P, the program-to-be: the limits, the user, the session, a keyring of its own, and what
/// it may execute and call (confine.rs).
///
/// # Safety
/// As [`enter_lab`].
unsafe fn become_program(b: Boxing) -> std::io::Result<()> {
    let fail = || Err(std::io::Error::last_os_error());
    // The run's cgroups, the program alone (not its shim and init, so `pids.max` is the
    // programs' own count): the runner opened them, and the kernel checks the opener's rights.
    for fd in b.cgroup_procs.into_iter().flatten() {
        if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return fail();
        }
    }
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
    // Not what ends it (I's death does), but it ends sooner with I than by the kernel's sweep.
    if !set_pdeathsig() {
        return fail();
    }
    // No controlling terminal: nothing it does can reach the operator's terminal.
    if libc::setsid() < 0 {
        return fail();
    }
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
    // A new, empty session keyring of its own, charged to the run's id: never the operator's
    // (login sessions keep credentials there). A kernel without keyrings has none to leak.
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if libc::syscall(
        libc::SYS_keyctl,
        KEYCTL_JOIN_SESSION_KEYRING,
        std::ptr::null::<libc::c_char>(),
    ) < 0
        && *libc::__errno_location() != libc::ENOSYS
    {
        return fail();
    }
    confine(&b)
}

/// The program's last step: the allowlist as a kernel rule (Landlock), then the syscall filter,
/// last of all so that nothing before needs what it denies.
///
/// # Safety
/// As [`enter_lab`].
unsafe fn confine(b: &Boxing) -> std::io::Result<()> {
    if let Some(ruleset) = b.landlock {
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for filter in b.filters.iter().flatten() {
        let program = libc::sock_fprog {
            len: filter.len,
            filter: filter.addr as *mut libc::sock_filter,
        };
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &program as *const libc::sock_fprog as libc::c_ulong,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// I, once P is forked: hold nothing (not even P's output pipes, whose end is the runner's sign
/// that everything in the namespace is gone), pass signals on to P, reap every process that
/// ends up its child, and exit as P does: the kernel then ends the rest of the namespace.
///
/// # Safety
/// As [`enter_lab`].
unsafe fn init(program: libc::pid_t, forwarded: &libc::sigset_t) -> ! {
    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    loop {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigwaitinfo(forwarded, &mut info);
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                match libc::waitpid(-1, &mut status, libc::WNOHANG) {
                    ended if ended == program => libc::_exit(status_code(status)),
                    ended if ended > 0 => continue,
                    _ => break,
                }
            }
        } else if sig > 0 {
            libc::kill(program, sig);
        } else if *libc::__errno_location() != libc::EINTR {
            libc::_exit(127)
        }
    }
}

/// A wait status as an exit code: the code, or 128 + the signal, as a shell gives it.
fn status_code(status: libc::c_int) -> libc::c_int {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// S, once I is forked: hold only the pipe I watches, pass signals on, and exit as I does.
///
/// # Safety
/// As [`enter_lab`].
unsafe fn shim(init: libc::pid_t, alive: RawFd, forwarded: &libc::sigset_t) -> ! {
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
            if libc::waitpid(init, &mut status, libc::WNOHANG) == init {
                libc::_exit(status_code(status))
            }
        } else if sig > 0 {
            libc::kill(init, sig);
        } else if *libc::__errno_location() != libc::EINTR {
            libc::_exit(127)
        }
    }
}
