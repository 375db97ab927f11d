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

/// A raw system call with up to six arguments.
macro_rules! sys {
    ($n:expr $(, $a:expr)*) => {{
        let mut args = [0usize; 6];
        let given = [$($a as usize),*];
        let mut i = 0;
        while i < given.len() {
            args[i] = given[i];
            i += 1;
        }
        sys::call($n, args)
    }};
}

/// In the init: tell the runner why the program could not start (`errno`, negative as a raw
/// system call returns it, and kept negative: the init's failure, not the exec's), and leave.
///
/// # Safety
/// In the init only.
unsafe fn init_gives_up(errors: RawFd, errno: isize) -> ! {
    let code = (errno as i32).to_ne_bytes();
    sys!(libc::SYS_write, errors, code.as_ptr(), 4);
    sys!(libc::SYS_exit_group, 127);
    unreachable_exit()
}

/// After exit_group, which does not return.
fn unreachable_exit() -> ! {
    loop {
        std::hint::spin_loop();
    }
}

/// I, PID 1 of the new PID namespace, on its own stack in the helper's memory: enter the lab,
/// mount the namespace's own /proc, fork the program, and stay as its init.
pub(super) extern "C" fn init_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the helper's InitArgs, alive until this init sets `read` (its last use
    // of it) or has been reaped.
    unsafe {
        let a = &*(arg as *const InitArgs);
        let errors = a.errors;
        let check = |r: isize| {
            if r < 0 {
                init_gives_up(errors, r)
            }
        };
        check(sys!(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL));
        // The helper may have died between the clone and the prctl: then nothing would kill
        // us. Its pidfd is readable once it has.
        let mut gone = libc::pollfd {
            fd: a.helper,
            events: libc::POLLIN,
            revents: 0,
        };
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if sys!(
            libc::SYS_ppoll,
            &mut gone as *mut libc::pollfd,
            1,
            &now as *const libc::timespec,
            0,
            0
        ) != 0
        {
            init_gives_up(errors, -(libc::ESRCH as isize))
        }
        // Before entering the box, where /proc is another: our own children as the runner's
        // /proc lists them, to tell the runner the program's pid there once it is forked (the
        // runner reading it later could find it already ended and reaped). -1 where the kernel
        // has no such file; the runner then looks for itself.
        let children = sys!(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC
        );
        check(sys!(libc::SYS_setns, a.fds.netns, libc::CLONE_NEWNET));
        check(sys!(libc::SYS_setns, a.fds.mntns, libc::CLONE_NEWNS));
        check(sys!(libc::SYS_setns, a.fds.utsns, libc::CLONE_NEWUTS));
        // A mount namespace of its own, for its /proc.
        check(sys!(libc::SYS_unshare, libc::CLONE_NEWNS));
        // The operator's program (`runner exec`) may execute what the host's system
        // directories hold: the box's `noexec` on them, which keeps the scenario's programs to
        // their allowlist (sandbox.rs), is lifted in this copy of the box alone.
        if !matches!(a.exec.by, super::protocol::StartedBy::Scenario) {
            super::sandbox::executable_system_dirs();
        }
        check(sys!(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1));
        // Not dumpable (this is the memory it shares with the helper): a program, which can
        // name it as PID 1, can neither ptrace it nor read its /proc files.
        check(sys!(libc::SYS_prctl, libc::PR_SET_DUMPABLE, 0));
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        check(sys!(
            libc::SYS_prlimit64,
            0,
            libc::RLIMIT_CORE,
            &no_core as *const libc::rlimit,
            0
        ));
        // Blocked before the fork, so that I can miss neither the program's end nor a signal
        // to pass on (a kernel sigset: one bit per signal, from bit 0 for signal 1).
        let forwarded: u64 = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD]
            .iter()
            .fold(0, |set, sig| set | 1 << (sig - 1));
        check(sys!(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &forwarded as *const u64,
            0,
            8
        ));
        // As `ps` shows it inside the lab.
        sys!(libc::SYS_prctl, libc::PR_SET_NAME, c"nslab-init".as_ptr());
        // Its own /proc: only the processes of its PID namespace. (/sys is the box's: the lab
        // namespace's own sysfs, sandbox.rs.)
        let hidden = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        check(sys!(
            libc::SYS_mount,
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            hidden,
            0
        ));
        // A fork, not sharing memory: the program gets its own copy, and libc with it.
        let program = sys!(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
        check(program);
        if program == 0 {
            super::program::become_program(&a.rules, &a.exec, &a.fds, errors)
        }
        let exit_status = a.fds.exit_status;
        // The program's pid as the runner sees it (0: not known), as 4 bytes. It is listed
        // among our children until we reap it, which is only later.
        let mut listed = [0u8; 24];
        let pid = if children >= 0 {
            let n = sys!(libc::SYS_read, children, listed.as_mut_ptr(), listed.len());
            sys!(libc::SYS_close, children);
            first_number(&listed[..n.max(0) as usize])
        } else {
            0
        };
        let said = pid.to_ne_bytes();
        sys!(libc::SYS_write, a.forked, said.as_ptr(), 4);
        // The last touch of `a`: from here on the helper may free it (the command's arguments
        // and environment, up to a call's worth of bytes, are not kept for the program's life).
        a.read.store(true, Ordering::Release);
        init(program as libc::pid_t, exit_status, forwarded)
    }
}

/// I, once P is forked: hold nothing but the pipe its status goes to (not P's output pipes,
/// whose end is the runner's sign that everything in the namespace is gone), pass signals on to
/// P, reap every process that ends up its child, and when P ends write its status and exit: the
/// kernel then ends the rest of the namespace.
///
/// # Safety
/// In the init only.
unsafe fn init(program: libc::pid_t, exit_status: RawFd, forwarded: u64) -> ! {
    // Only the status pipe stays, as fd 0.
    if sys!(libc::SYS_dup3, exit_status, 0, 0) < 0 && exit_status != 0 {
        sys!(libc::SYS_exit_group, 127);
    }
    sys!(libc::SYS_close_range, 1, u32::MAX, 0);
    loop {
        let mut info = [0u64; 16];
        let sig = sys!(
            libc::SYS_rt_sigtimedwait,
            &forwarded as *const u64,
            info.as_mut_ptr(),
            0,
            8
        );
        if sig == libc::SIGCHLD as isize {
            loop {
                let mut status: libc::c_int = 0;
                let ended = sys!(
                    libc::SYS_wait4,
                    -1isize,
                    &mut status as *mut libc::c_int,
                    libc::WNOHANG,
                    0
                );
                if ended == program as isize {
                    let code = status_code(status);
                    let bytes = code.to_ne_bytes();
                    sys!(libc::SYS_write, 0, bytes.as_ptr(), 4);
                    sys!(libc::SYS_exit_group, code);
                } else if ended <= 0 {
                    break;
                }
            }
        } else if sig > 0 {
            sys!(libc::SYS_kill, program, sig);
        } else if sig != -(libc::EINTR as isize) {
            sys!(libc::SYS_exit_group, 127);
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
