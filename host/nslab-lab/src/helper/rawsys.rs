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
