//! Pipes in place of the operator's own stdin, stdout and stderr, copied to and from them by
//! the runner: for root stepping into another user's run. That run's runner and box are the
//! user's, who could keep a descriptor passed to them; a copy of root's terminal would let
//! them read what root types long after the command has ended. Through pipes, nothing of
//! root's is ever theirs, and the copy stops when the command ends.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{copy, Copied};

/// The runner's ends: what it writes the command's input to, and reads its output from.
pub struct Piped {
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

/// Three pipes: the runner's ends, and the command's (stdin, stdout, stderr).
pub fn pipes() -> std::io::Result<(Piped, [OwnedFd; 3])> {
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (in_read, in_write) = nix::unistd::pipe2(flags)?;
    let (out_read, out_write) = nix::unistd::pipe2(flags)?;
    let (err_read, err_write) = nix::unistd::pipe2(flags)?;
    Ok((
        Piped {
            stdin: Some(in_write),
            stdout: out_read,
            stderr: err_read,
        },
        [in_read, out_write, err_write],
    ))
}

/// Copy until the command's stdout and stderr have both closed, or `done` is readable (the
/// command's end, or the run's) and they are drained. What arrives on `signals` (one byte a
/// signal) is handed to `forward`.
pub fn relay(mut piped: Piped, done: RawFd, signals: RawFd, forward: &mut dyn FnMut(i32)) {
    let mut buf = vec![0u8; 64 << 10];
    let (mut out_open, mut err_open, mut ended) = (true, true, false);
    while out_open || err_open {
        let fd = |open: bool, fd: RawFd| if open { fd } else { -1 };
        let fds = [
            fd(out_open, piped.stdout.as_raw_fd()),
            fd(err_open, piped.stderr.as_raw_fd()),
            fd(piped.stdin.is_some(), 0),
            fd(!ended, done),
            signals,
        ];
        // Once ended, what is left in the pipes is read, then no more is waited for.
        let timeout = if ended { 100 } else { -1 };
        let polls = super::ready(&fds, timeout).unwrap_or_else(|_| vec![false; fds.len()]);
        if ended && !polls.contains(&true) {
            return;
        }
        if polls[0] {
            out_open = copy(piped.stdout.as_raw_fd(), 1, &mut buf) == Copied::Some;
        }
        if polls[1] {
            err_open = copy(piped.stderr.as_raw_fd(), 2, &mut buf) == Copied::Some;
        }
        if polls[2] {
            if let Some(stdin) = &piped.stdin {
                if copy(0, stdin.as_raw_fd(), &mut buf) != Copied::Some {
                    // The operator's input ended, or the command stopped reading it.
                    piped.stdin = None;
                }
            }
        }
        if polls[3] {
            ended = true;
        }
        if polls[4] {
            let mut sig = [0u8; 1];
            // SAFETY: read one byte into a live buffer.
            if unsafe { libc::read(signals, sig.as_mut_ptr().cast(), 1) } == 1 {
                forward(i32::from(sig[0]));
            }
        }
    }
}
