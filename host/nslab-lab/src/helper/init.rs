//! The init of a program's PID namespace (spawn.rs says why it is there): cloned by the helper
//! into the helper's own memory, so it makes only raw system calls, which touch neither errno
//! nor anything else the helper uses.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::program::{Exec, Rules, SpawnFds};

/// What the init reads before it forks the program: in a block of the helper's memory that
/// the helper frees once the init says it is done with it (`read`), or has been reaped
/// (spawn.rs).
pub(super) struct InitArgs {
    /// Set by the init once it has read all it needs of this block (the program is forked
    /// with its own copy): the helper may free it, and does before its next request.
    pub read: AtomicBool,
    pub rules: Arc<Rules>,
    pub exec: Exec,
    pub fds: SpawnFds,
    /// Why the program could not start, if it could not: P's exec errno, or the init's own,
    /// negated (close-on-exec: end of file once P has executed).
    pub errors: RawFd,
    /// P's pid as the runner sees it (4 bytes; 0 if not known) once P is forked (end of file
    /// without it: I failed first, and said why above).
    pub forked: RawFd,
    /// The helper's pidfd: readable once the helper has died.
    pub helper: RawFd,
}

use super::rawsys as sys;

/// In the init: tell the runner why the program could not start (`errno`, negative as a raw
/// system call returns it, and kept negative: the init's failure, not the exec's), and leave.
fn init_gives_up(errors: RawFd, errno: isize) -> ! {
    sys::write(errors, &(errno as i32).to_ne_bytes());
    sys::exit_group(127)
}

/// I, PID 1 of the new PID namespace, on its own stack in the helper's memory: enter the lab,
/// mount the namespace's own /proc, fork the program, and stay as its init.
pub(super) extern "C" fn init_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the helper's InitArgs (spawn.rs), alive until this init sets `read`
    // (its last use of it) or has been reaped.
    let a = unsafe { &*(arg as *const InitArgs) };
    let errors = a.errors;
    let check = |r: isize| {
        if r < 0 {
            init_gives_up(errors, r)
        }
    };
    check(sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
    ));
    // The helper may have died between the clone and the prctl: then nothing would kill us.
    // Its pidfd is readable once it has.
    if sys::readable_now(a.helper) != 0 {
        init_gives_up(errors, -(libc::ESRCH as isize))
    }
    // Before entering the box, where /proc is another: our own children as the runner's /proc
    // lists them, to tell the runner the program's pid there once it is forked (the runner
    // reading it later could find it already ended and reaped). -1 where the kernel has no
    // such file; the runner then looks for itself.
    let children = sys::open(
        c"/proc/thread-self/children",
        libc::O_RDONLY | libc::O_CLOEXEC,
    );
    check(sys::setns(a.fds.netns, libc::CLONE_NEWNET));
    check(sys::setns(a.fds.mntns, libc::CLONE_NEWNS));
    check(sys::setns(a.fds.utsns, libc::CLONE_NEWUTS));
    // A mount namespace of its own, for its /proc.
    check(sys::unshare(libc::CLONE_NEWNS));
    // The operator's program (`runner exec`) may execute what the host's system directories
    // hold: the box's `noexec` on them, which keeps the scenario's programs to their
    // allowlist (sandbox.rs), is lifted in this copy of the box alone.
    if !matches!(a.exec.by, super::protocol::StartedBy::Scenario) {
        super::sandbox::executable_system_dirs();
    }
    check(sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1));
    // Not dumpable (this is the memory it shares with the helper): a program, which can name
    // it as PID 1, can neither ptrace it nor read its /proc files.
    check(sys::prctl(libc::PR_SET_DUMPABLE, 0));
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    check(sys::set_limit(libc::RLIMIT_CORE, &no_core));
    // Blocked before the fork, so that I can miss neither the program's end nor a signal to
    // pass on (a kernel sigset: one bit per signal, from bit 0 for signal 1).
    let forwarded: u64 = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD]
        .iter()
        .fold(0, |set, sig| set | 1 << (sig - 1));
    check(sys::block(&forwarded));
    // As `ps` shows it inside the lab.
    sys::set_name(c"nslab-init");
    // Its own /proc: only the processes of its PID namespace. (/sys is the box's: the lab
    // namespace's own sysfs, sandbox.rs.)
    let hidden = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    check(sys::mount(c"proc", c"/proc", c"proc", hidden));
    // SAFETY: a fork (clone without CLONE_VM): the child gets its own copy of this memory,
    // and runs `become_program` only, which ends in an exec or an exit.
    let program = unsafe { sys::call(libc::SYS_clone, [libc::SIGCHLD as usize, 0, 0, 0, 0, 0]) };
    check(program);
    if program == 0 {
        // SAFETY: in the forked child, which is the program until its exec.
        unsafe { super::program::become_program(&a.rules, &a.exec, &a.fds, errors) }
    }
    let exit_status = a.fds.exit_status;
    // The program's pid as the runner sees it (0: not known), as 4 bytes. It is listed among
    // our children until we reap it, which is only later.
    let mut listed = [0u8; 24];
    let pid = if children >= 0 {
        let n = sys::read(children as RawFd, &mut listed);
        sys::close(children as RawFd);
        first_number(&listed[..n.max(0) as usize])
    } else {
        0
    };
    sys::write(a.forked, &pid.to_ne_bytes());
    // The last touch of `a`: from here on the helper may free it (the command's arguments and
    // environment, up to a call's worth of bytes, are not kept for the program's life).
    a.read.store(true, Ordering::Release);
    init(program as libc::pid_t, exit_status, forwarded)
}

/// I, once P is forked: hold nothing but the pipe its status goes to (not P's output pipes,
/// whose end is the runner's sign that everything in the namespace is gone), pass signals on to
/// P, reap every process that ends up its child, and when P ends write its status and exit: the
/// kernel then ends the rest of the namespace.
fn init(program: libc::pid_t, exit_status: RawFd, forwarded: u64) -> ! {
    // Only the status pipe stays, as fd 0.
    if sys::dup2(exit_status, 0) < 0 && exit_status != 0 {
        sys::exit_group(127);
    }
    sys::close_from(1);
    loop {
        let sig = sys::wait_signal(&forwarded);
        if sig == libc::SIGCHLD as isize {
            loop {
                let (ended, status) = sys::reap_any();
                if ended == program as isize {
                    let code = status_code(status);
                    sys::write(0, &code.to_ne_bytes());
                    sys::exit_group(code);
                } else if ended <= 0 {
                    break;
                }
            }
        } else if sig > 0 {
            sys::kill(program, sig as libc::c_int);
        } else if sig != -(libc::EINTR as isize) {
            sys::exit_group(127);
        }
    }
}

/// The number a `children` file starts with ("1234 5678 "), or 0 if it starts with none (or
/// one too large for a pid). Plain arithmetic: the init may call nothing else.
fn first_number(text: &[u8]) -> u32 {
    let mut n: u32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            break;
        }
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u32::from(b - b'0')))
        {
            Some(next) => n = next,
            None => return 0,
        }
    }
    n
}

/// A wait status as an exit code: the code, or 128 + the signal, as a shell gives it.
fn status_code(status: libc::c_int) -> libc::c_int {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

#[cfg(test)]
mod tests {
    use super::first_number;

    #[test]
    fn a_childrens_list_gives_its_first_pid() {
        assert_eq!(first_number(b"1234 5678 "), 1234);
        assert_eq!(first_number(b"7\n"), 7);
        assert_eq!(first_number(b""), 0);
        assert_eq!(first_number(b" 12"), 0);
        assert_eq!(first_number(b"99999999999 "), 0);
    }
}
