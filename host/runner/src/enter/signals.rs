//! SIGINT, SIGTERM and SIGHUP for the operator's commands: a byte each on a pipe, which their
//! loops poll beside everything else (and pass on to the program in the run).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe the signal handler writes to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; the pipe lives as long as the process.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// SIGINT, SIGTERM and SIGHUP as bytes on a pipe: its read end.
pub fn signals() -> std::io::Result<OwnedFd> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
    SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(write);
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only writes to a pipe.
        unsafe { sigaction(sig, &action)? };
    }
    Ok(read)
}

pub fn take_signal(pipe: &OwnedFd) -> Option<i32> {
    let mut b = [0u8; 1];
    matches!(nix::unistd::read(pipe, &mut b), Ok(1)).then_some(i32::from(b[0]))
}
