//! Stepping into a run: `runner exec`, `runner shell`, `runner capture` and `runner release`.
//!
//! A run that is going on or held answers on a control socket of its own, beside its record
//! (`RUN.sock` in the run directory, which only the run's user may enter; the server also
//! checks each caller's credentials: the run's user or root). What the operator starts there
//! is started by the run's lab helper through a door of the lab (lab/doors.rs), in the
//! namespace's box, under the run's ids and cgroups and an init of the runner's, so it ends
//! with the run. A kept run has no runner: it is entered directly, through what keeps it
//! (kept.rs), and `runner cleanup` ends what was started there.
//!
//! Rooms: `wire.rs` (what the client and the server say), `server.rs` (the runner's side),
//! `client.rs` (the operator's side), `terminal.rs` (a terminal of its own for `shell`),
//! `relay.rs` (pipes in place of root's own stdin, stdout and stderr in another user's run),
//! `capture.rs` (packets to pcap), `kept.rs` (a kept run), `find.rs` (which run RUN names).

pub mod capture;
pub mod client;
pub mod find;
mod kept;
mod relay;
pub mod server;
mod signals;
mod terminal;
mod wire;

use std::path::{Path, PathBuf};

/// What poll(2) waits on for `fd`: something to read, or its end (a negative fd is passed
/// over).
/// Which of `fds` are readable (or at their end), waiting up to `timeout_ms` (-1: for good);
/// a negative fd is left out, as poll(2) does.
pub(crate) fn ready(
    fds: &[std::os::fd::RawFd],
    timeout_ms: i32,
) -> Result<Vec<bool>, rustix::io::Errno> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let open: Vec<usize> = (0..fds.len()).filter(|&i| fds[i] >= 0).collect();
    // SAFETY: the callers hold every non-negative fd they pass open for this call.
    let borrowed: Vec<_> = open
        .iter()
        .map(|&i| unsafe { std::os::fd::BorrowedFd::borrow_raw(fds[i]) })
        .collect();
    let mut polled: Vec<PollFd<'_>> = borrowed
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    let timeout = (timeout_ms >= 0).then(|| Timespec {
        tv_sec: i64::from(timeout_ms / 1000),
        tv_nsec: i64::from(timeout_ms % 1000) * 1_000_000,
    });
    rustix::event::poll(&mut polled, timeout.as_ref())?;
    let mut out = vec![false; fds.len()];
    for (p, &i) in polled.iter().zip(&open) {
        out[i] = !p.revents().is_empty();
    }
    Ok(out)
}

/// What [`copy`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Copied {
    /// Some bytes, read and written whole.
    Some,
    /// Nothing to read any more: the end of the stream (or its error).
    ReadEnded,
    /// The reader went away.
    WriteFailed,
}

/// Write all of `bytes` to `fd`: false if it could not take them (its reader went away).
pub(crate) fn write_all(fd: std::os::fd::RawFd, mut bytes: &[u8]) -> bool {
    // SAFETY: the caller holds `fd` open for this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// One read from `from` (which poll said is readable), written whole to `to`.
pub(crate) fn copy(from: std::os::fd::RawFd, to: std::os::fd::RawFd, buf: &mut [u8]) -> Copied {
    // SAFETY: the caller holds `from` open for this call.
    let from = unsafe { std::os::fd::BorrowedFd::borrow_raw(from) };
    let n = loop {
        match rustix::io::read(from, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(n) if n > 0 => break n,
            _ => return Copied::ReadEnded,
        }
    };
    match write_all(to, &buf[..n]) {
        true => Copied::Some,
        false => Copied::WriteFailed,
    }
}

/// Where run `id`'s control socket is, in the directory of its record.
pub fn socket_path(records: &Path, id: &str) -> PathBuf {
    records.join(format!("{id}.sock"))
}

/// How a command of the operator's ended: the status to exit with, and what to say if
/// anything (on stderr).
pub struct Outcome {
    pub status: u8,
    pub said: Option<String>,
}

pub(crate) fn failed(status: u8, why: String) -> Outcome {
    Outcome {
        status,
        said: Some(why),
    }
}

pub(crate) fn status(code: i32) -> u8 {
    code.clamp(0, 255) as u8
}

/// Whether the run is another user's (root stepping in): then nothing of the caller's own
/// (its terminal, its stdin, stdout and stderr) is handed to it, only pipes and terminals made
/// for the command (relay.rs).
pub(crate) fn foreign(rec: &nslab_lab::records::RunRecord) -> bool {
    rec.owner != nix::unistd::geteuid().as_raw()
}
