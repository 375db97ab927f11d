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
pub(crate) fn pollin(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
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
    while !bytes.is_empty() {
        // SAFETY: write from a live buffer of the length given.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// One read from `from` (which poll said is readable), written whole to `to`.
pub(crate) fn copy(from: std::os::fd::RawFd, to: std::os::fd::RawFd, buf: &mut [u8]) -> Copied {
    let n = loop {
        // SAFETY: read into a live buffer of its length.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        break n;
    };
    if n <= 0 {
        return Copied::ReadEnded;
    }
    match write_all(to, &buf[..n as usize]) {
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
