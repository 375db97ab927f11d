//! A terminal of its own for `runner shell`: a new pseudo-terminal whose other side the shell
//! takes as its controlling terminal, relayed to and from the operator's. The shell never holds
//! the operator's own terminal (nothing it runs can push input into it), yet Ctrl-C, Ctrl-Z and
//! the window's size reach it as they would at a local shell.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{self, SetArg, Termios};

use super::{copy, write_all, Copied};

/// A new pseudo-terminal: (the side the runner relays, the side the shell gets).
pub fn open() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let size = window_size(std::io::stdin().as_raw_fd());
    let pty = openpty(size.as_ref(), None)?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    Ok((pty.master, pty.slave))
}

fn window_size(fd: RawFd) -> Option<Winsize> {
    let mut size: Winsize = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize; it fails harmlessly on a non-terminal.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    (r == 0 && size.ws_row > 0).then_some(size)
}

/// The operator's terminal in raw mode for as long as this lives (keys go to the shell's
/// terminal as typed), restored as it was when dropped; nothing when stdin is not a terminal.
pub struct Raw(Option<Termios>);

impl Raw {
    pub fn new() -> Raw {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return Raw(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        Raw(Some(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, saved);
        }
    }
}

/// Relay between the operator's terminal and `master` until `done` is readable (the shell has
/// ended, or the run has); then what the shell printed last, for a moment. The window's size
/// follows the operator's.
pub fn relay(master: &OwnedFd, done: RawFd) {
    let (stdin, stdout, pty) = (0, 1, master.as_raw_fd());
    let mut size = window_size(stdin);
    let mut stdin_open = true;
    let mut buf = [0u8; 16 << 10];
    let mut ended: Option<Instant> = None;
    loop {
        let fds = [
            pty,
            if stdin_open { stdin } else { -1 },
            if ended.is_none() { done } else { -1 },
        ];
        // A quarter of a second at most, to follow the window's size without a signal handler.
        let polls = match super::ready(&fds, 250) {
            Ok(polls) => polls,
            Err(rustix::io::Errno::INTR) => vec![false; fds.len()],
            Err(_) => return,
        };
        // EIO on the pty: every holder of the shell's side has closed it.
        if polls[0] && copy(pty, stdout, &mut buf) != Copied::Some {
            return;
        }
        if polls[1] {
            match copy(stdin, pty, &mut buf) {
                Copied::Some => {}
                // The operator's input ended (a pipe): the shell's does too.
                Copied::ReadEnded => {
                    stdin_open = false;
                    write_all(pty, &[4]);
                }
                Copied::WriteFailed => return,
            }
        }
        if polls[2] {
            ended = Some(Instant::now());
        }
        if ended.is_some_and(|t| t.elapsed() > Duration::from_millis(300)) {
            return;
        }
        let now = window_size(stdin);
        if now.is_some() && now.map(|s| (s.ws_row, s.ws_col)) != size.map(|s| (s.ws_row, s.ws_col))
        {
            size = now;
            if let Some(s) = &size {
                // SAFETY: TIOCSWINSZ with a valid winsize; the shell gets SIGWINCH.
                unsafe { libc::ioctl(pty, libc::TIOCSWINSZ, s as *const Winsize) };
            }
        }
    }
}
