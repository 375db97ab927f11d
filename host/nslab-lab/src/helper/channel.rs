//! The runner's socket to the helper, and the helper's answers to program starts that the
//! runner has not read yet.
//!
//! A background program starts as a shell's `PROGRAM &` does: the runner hands it to the
//! helper and goes on, without waiting for the helper to clone its init. The helper answers
//! requests in order, so its answers to those starts (a pidfd of each init) queue on the
//! socket, and are read before anything else is asked, or as soon as one of those inits is to
//! be signalled, or once [`IN_FLIGHT`] are waiting: at most that many replies, and their
//! pidfds, are ever in flight. What the runner needs of the start itself (the program's pid,
//! or why it could not start) comes on pipes of its own (programs/starts.rs), not here.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use nix::errno::Errno;

use super::protocol::{self, Reply, Request};
use super::HELPER_ANSWER_SECS;
use crate::error::ErrorKind;
use crate::error::{LabError, LabResult};

/// How many answers to program starts may wait on the socket, unread. Each holds a pidfd in
/// flight, and the kernel bounds a user's descriptors in flight by its RLIMIT_NOFILE; the
/// socket's buffer holds a few hundred.
pub const IN_FLIGHT: usize = 32;

/// How long a start may take, in the helper (its clone of the init) or in the init (its fork
/// of the program), before it is taken for hung: longer than any other answer. Both fork, and
/// a fork waits for the kernel's cgroup lock, which every process joining a cgroup takes for
/// writing: with a thousand daemons starting and forking on two CPUs, the helper's answer to
/// a start was measured taking up to 5.7 s, and one run's starts stalled 9.4 s (issue 23). Nothing a program does can hold a start there
/// for good, as it can hold a file request (a FIFO where a file was asked for).
pub const START_PATIENCE_SECS: i64 = 3 * HELPER_ANSWER_SECS;

/// The socket, and the starts whose answers have not been read, oldest first.
pub struct Channel {
    socket: OwnedFd,
    /// The helper's pid, to stop it when it does not answer.
    helper: u32,
    unread: Mutex<VecDeque<Arc<InitSlot>>>,
}

/// A program's init as the helper will answer for it: a pidfd once its answer is read, or
/// None if the helper could not clone it (or went away first).
#[derive(Default)]
pub struct InitSlot(OnceLock<Option<OwnedFd>>);

/// The init of a started program: its pidfd, read from the helper when first needed.
pub struct Init {
    slot: Arc<InitSlot>,
    channel: Weak<Channel>,
}

impl Init {
    /// An init whose answer is already known, without a helper (for tests of what reads it).
    #[cfg(any(test, feature = "test-util"))]
    pub fn known(pidfd: Option<OwnedFd>) -> Init {
        let slot = InitSlot::default();
        let _ = slot.0.set(pidfd);
        Init {
            slot: Arc::new(slot),
            channel: Weak::new(),
        }
    }

    /// Its pidfd: None if it was never cloned, or if the helper is gone without saying.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        if self.slot.0.get().is_none() {
            if let Some(channel) = self.channel.upgrade() {
                // On failure every slot is filled with None: it is said by the request that
                // meets the same failure.
                let _ = channel.lock().read_unread();
            }
        }
        self.slot.0.get()?.as_ref().map(AsFd::as_fd)
    }

    /// Its pidfd if the helper's answer has been read, without reading it: Some(None) if it
    /// was never cloned, None if the answer is still unread.
    pub fn answered(&self) -> Option<Option<BorrowedFd<'_>>> {
        self.slot.0.get().map(|p| p.as_ref().map(AsFd::as_fd))
    }
}

/// The channel while one caller holds it: a request and its answer are never split.
pub struct Held<'a> {
    channel: &'a Channel,
    unread: MutexGuard<'a, VecDeque<Arc<InitSlot>>>,
}

impl Channel {
    pub fn new(socket: OwnedFd, helper: u32) -> Arc<Channel> {
        Arc::new(Channel {
            socket,
            helper,
            unread: Mutex::default(),
        })
    }

    pub fn socket(&self) -> &OwnedFd {
        &self.socket
    }

    pub fn lock(&self) -> Held<'_> {
        Held {
            channel: self,
            unread: self.unread.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Send a request and wait for its answer, after reading what is unread.
    pub fn request(&self, request: &Request, fds: &[RawFd]) -> LabResult<(Reply, Vec<OwnedFd>)> {
        let mut held = self.lock();
        held.read_unread()?;
        send(&self.socket, request, fds)?;
        held.receive(1)
    }

    /// Hand a program's start to the helper without waiting for its answer: the init, whose
    /// pidfd is read later.
    pub fn request_start(self: &Arc<Self>, fds: &[RawFd]) -> LabResult<Init> {
        let mut held = self.lock();
        if held.unread.len() >= IN_FLIGHT {
            held.read_one()?;
        }
        send(&self.socket, &Request::Spawn, fds)?;
        let slot = Arc::new(InitSlot::default());
        held.unread.push_back(slot.clone());
        Ok(Init {
            slot,
            channel: Arc::downgrade(self),
        })
    }
}

impl Held<'_> {
    /// Read every answer to a start not read yet. If the helper fails to answer, every slot
    /// waiting is filled with None, and the error is the run's.
    pub fn read_unread(&mut self) -> LabResult<()> {
        while !self.unread.is_empty() {
            self.read_one()?;
        }
        Ok(())
    }

    fn read_one(&mut self) -> LabResult<()> {
        let Some(slot) = self.unread.pop_front() else {
            return Ok(());
        };
        let answer = self.receive(START_PATIENCE_SECS / HELPER_ANSWER_SECS);
        let pidfd = match answer {
            Ok((Reply::Spawned, fds)) if fds.len() == 1 => fds.into_iter().next(),
            Ok((Reply::Failed(_), _)) => None,
            Ok((other, fds)) => {
                self.abandon(&slot);
                return Err(LabError::os(format!(
                    "start a program: the lab helper said {other:?} with {} descriptors",
                    fds.len()
                )));
            }
            Err(e) => {
                self.abandon(&slot);
                return Err(e);
            }
        };
        let _ = slot.0.set(pidfd);
        Ok(())
    }

    /// The helper will not answer: no init waiting for its answer will have a pidfd.
    fn abandon(&mut self, slot: &InitSlot) {
        let _ = slot.0.set(None);
        for s in self.unread.drain(..) {
            let _ = s.0.set(None);
        }
    }

    /// The helper's next message. If it does not come within `rounds` times HELPER_ANSWER_SECS,
    /// the helper is stopped (and, by their parent-death signal, its children): a late answer
    /// must never be taken for the next request's, and the run then ends as any failed run
    /// does.
    fn receive(&mut self, rounds: i64) -> LabResult<(Reply, Vec<OwnedFd>)> {
        let mut answer = recv(&self.channel.socket);
        for _ in 1..rounds {
            match answer {
                Err(ref e) if e.kind() == ErrorKind::Timeout => answer = recv(&self.channel.socket),
                _ => break,
            }
        }
        let waited = rounds * HELPER_ANSWER_SECS;
        answer.map_err(|e| {
            if e.kind() == ErrorKind::Timeout {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.channel.helper as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return LabError::os(format!(
                    "the lab helper did not answer within {waited} s (a program may have put something that blocks where a file was asked for, or the machine is overloaded); it was stopped, and the run cannot go on"
                ));
            }
            e
        })
    }
}

/// Send one request, with the descriptors it passes.
pub fn send(socket: &OwnedFd, request: &Request, fds: &[RawFd]) -> LabResult<()> {
    debug_assert_eq!(request.fds(), fds.len(), "{request:?}");
    protocol::send(socket.as_raw_fd(), &request.encode(), fds)
        .map_err(|e| LabError::from_errno(e, "talk to the lab helper"))
}

/// Receive one reply, and the descriptors that came with it.
pub fn recv(socket: &OwnedFd) -> LabResult<(Reply, Vec<OwnedFd>)> {
    let mut buf = [0u8; 5];
    let (n, fds) = protocol::receive(socket.as_raw_fd(), &mut buf).map_err(|e| match e {
        // The socket's receive timeout (Helper::start).
        Errno::EAGAIN => LabError::timeout(format!(
            "the lab helper did not answer within {HELPER_ANSWER_SECS} s"
        )),
        e => LabError::from_errno(e, "hear from the lab helper"),
    })?;
    if n == 0 {
        return Err(LabError::os("the lab helper exited unexpectedly"));
    }
    let reply = Reply::decode(&buf[..n])
        .ok_or_else(|| LabError::os(format!("the lab helper said {:?}", &buf[..n])))?;
    Ok((reply, fds))
}
