//! Raw system calls, for the code that shares the helper's memory (a program's init) or runs
//! between a fork and an exec: no errno, no libc state. A negative result is the errno,
//! negated.

#[cfg(target_arch = "x86_64")]
pub unsafe fn call(n: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    std::arch::asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    ret
}

#[cfg(target_arch = "aarch64")]
pub unsafe fn call(n: libc::c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    std::arch::asm!(
        "svc 0",
        in("x8") n as usize,
        inlateout("x0") a[0] => ret,
        in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
        options(nostack),
    );
    ret
}

/// Elsewhere, libc's wrapper: correct, but it writes the errno the helper shares.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub unsafe fn call(n: libc::c_long, a: [usize; 6]) -> isize {
    let r = libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) as isize;
    if r < 0 {
        -(*libc::__errno_location() as isize)
    } else {
        r
    }
}

/// A system call whose arguments are plain numbers (descriptors, flags, ids), which the kernel
/// reads no memory of ours for.
fn numbers(n: libc::c_long, a: [usize; 6]) -> isize {
    // SAFETY: every caller below passes numbers only, never an address; the calls change the
    // process's own state (its namespaces, descriptors, attributes), as libc's wrappers do.
    unsafe { call(n, a) }
}

/// `setns(fd, nstype)`.
pub fn setns(fd: i32, nstype: libc::c_int) -> isize {
    numbers(libc::SYS_setns, [fd as usize, nstype as usize, 0, 0, 0, 0])
}

/// `unshare(flags)`.
pub fn unshare(flags: libc::c_int) -> isize {
    numbers(libc::SYS_unshare, [flags as usize, 0, 0, 0, 0, 0])
}

/// `prctl(option, arg)` with a number for its argument.
pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> isize {
    numbers(libc::SYS_prctl, [option as usize, arg as usize, 0, 0, 0, 0])
}

/// `close(fd)`.
pub fn close(fd: i32) -> isize {
    numbers(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0])
}

/// `dup3(old, new, 0)`.
pub fn dup2(old: i32, new: i32) -> isize {
    numbers(libc::SYS_dup3, [old as usize, new as usize, 0, 0, 0, 0])
}

/// `close_range(first, u32::MAX, 0)`: every descriptor from `first` on.
pub fn close_from(first: u32) -> isize {
    numbers(
        libc::SYS_close_range,
        [first as usize, u32::MAX as usize, 0, 0, 0, 0],
    )
}

/// `kill(pid, sig)`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> isize {
    numbers(libc::SYS_kill, [pid as usize, sig as usize, 0, 0, 0, 0])
}

/// `exit_group(code)`: the end of this process.
pub fn exit_group(code: libc::c_int) -> ! {
    numbers(libc::SYS_exit_group, [code as usize, 0, 0, 0, 0, 0]);
    // exit_group does not return.
    loop {
        std::hint::spin_loop();
    }
}

/// `write(fd, bytes)`.
pub fn write(fd: i32, bytes: &[u8]) -> isize {
    // SAFETY: the kernel reads `bytes.len()` bytes at a live slice's address.
    unsafe {
        call(
            libc::SYS_write,
            [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0],
        )
    }
}

/// `read(fd, buf)`.
pub fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: the kernel writes at most `buf.len()` bytes into a live, exclusive slice.
    unsafe {
        call(
            libc::SYS_read,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

/// `openat(AT_FDCWD, path, flags)`.
pub fn open(path: &std::ffi::CStr, flags: libc::c_int) -> isize {
    // SAFETY: `path` is a live, NUL-terminated string.
    unsafe {
        call(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// `mount(source, target, fstype, flags, NULL)`.
pub fn mount(
    source: &std::ffi::CStr,
    target: &std::ffi::CStr,
    fstype: &std::ffi::CStr,
    flags: libc::c_ulong,
) -> isize {
    // SAFETY: three live, NUL-terminated strings, and no data.
    unsafe {
        call(
            libc::SYS_mount,
            [
                source.as_ptr() as usize,
                target.as_ptr() as usize,
                fstype.as_ptr() as usize,
                flags as usize,
                0,
                0,
            ],
        )
    }
}

/// `PR_SET_NAME`: the process's name as `ps` shows it.
pub fn set_name(name: &std::ffi::CStr) -> isize {
    // SAFETY: a live, NUL-terminated string, which the kernel copies (at most 16 bytes).
    unsafe {
        call(
            libc::SYS_prctl,
            [
                libc::PR_SET_NAME as usize,
                name.as_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    }
}

/// Whether `fd` is readable now (`ppoll` with a zero timeout): 1 if so, 0 if not.
pub fn readable_now(fd: i32) -> isize {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: one live pollfd, and a live timespec; no signal mask.
    unsafe {
        call(
            libc::SYS_ppoll,
            [
                &mut poll as *mut libc::pollfd as usize,
                1,
                &now as *const libc::timespec as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// `prlimit(0, resource, new, NULL)`: this process's limit.
pub fn set_limit(resource: libc::__rlimit_resource_t, new: &libc::rlimit) -> isize {
    // SAFETY: a live rlimit for the kernel to read, none to write.
    unsafe {
        call(
            libc::SYS_prlimit64,
            [
                0,
                resource as usize,
                new as *const libc::rlimit as usize,
                0,
                0,
                0,
            ],
        )
    }
}

/// Block the signals of a kernel sigset (one bit per signal, from bit 0 for signal 1).
pub fn block(set: &u64) -> isize {
    // SAFETY: a live 8-byte sigset for the kernel to read, no old set to write.
    unsafe {
        call(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_BLOCK as usize,
                set as *const u64 as usize,
                0,
                8,
                0,
                0,
            ],
        )
    }
}

/// Wait for one of the (blocked) signals of `set`: its number, or the errno negated.
pub fn wait_signal(set: &u64) -> isize {
    let mut info = [0u64; 16];
    // SAFETY: a live sigset to read and a live siginfo (128 bytes) to write; no timeout.
    unsafe {
        call(
            libc::SYS_rt_sigtimedwait,
            [
                set as *const u64 as usize,
                info.as_mut_ptr() as usize,
                0,
                8,
                0,
                0,
            ],
        )
    }
}

/// `wait4(-1, &status, WNOHANG, NULL)`: a child that has ended, and its status.
pub fn reap_any() -> (isize, libc::c_int) {
    let mut status: libc::c_int = 0;
    // SAFETY: a live int for the kernel to write; no rusage.
    let ended = unsafe {
        call(
            libc::SYS_wait4,
            [
                -1isize as usize,
                &mut status as *mut libc::c_int as usize,
                libc::WNOHANG as usize,
                0,
                0,
                0,
            ],
        )
    };
    (ended, status)
}
