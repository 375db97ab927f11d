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
    unread: Mutex<VecDeque<Awaited>>,
}

/// What waits for one of the helper's answers, which come in the order asked.
enum Awaited {
    /// A program's start: its init's pidfd.
    Start(Arc<InitSlot>),
    /// A request whose caller waits without holding the channel ([`Channel::request_async`]).
    Answer(Arc<AnswerSlot>),
}

/// The helper's answer to a request: its reply and the fds that came with it.
type Answer = LabResult<(Reply, Vec<OwnedFd>)>;

/// The answer to a request made by [`Channel::request_async`], once read.
#[derive(Default)]
struct AnswerSlot(Mutex<Option<Answer>>);

impl AnswerSlot {
    fn fill(&self, answer: Answer) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
    }

    fn take(&self) -> Option<Answer> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn filled(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// How long a request on the runtime waits for its answer on the worker, a few microseconds
/// at a time and letting other tasks run in between, before the rest of the wait moves to
/// tokio's blocking pool: most answers come well within it, and a hop to another thread costs
/// more than they take (bench/versus.sh).
const ON_THE_WORKER: std::time::Duration = std::time::Duration::from_millis(2);

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

    /// Read the helper's answer to this start if it is not read yet, on tokio's blocking pool
    /// (the answers before it are read first, and may be a while): after it, [`Init::pidfd`]
    /// waits for nothing.
    pub async fn read_answer(self: &Arc<Self>) {
        if self.answered().is_some() {
            return;
        }
        let init = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = init.pidfd();
        })
        .await;
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
    unread: MutexGuard<'a, VecDeque<Awaited>>,
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

    /// Send a request and wait for its answer without holding a tokio worker: the request is
    /// sent at once (its fds go with it), and its answer is read in order, by whoever reads
    /// the helper's answers first; this waits on the worker for [`ON_THE_WORKER`] at most, in
    /// slices of 50 µs between which other tasks run, then on tokio's blocking pool.
    pub async fn request_async(
        self: &Arc<Self>,
        request: &Request,
        fds: &[RawFd],
    ) -> LabResult<(Reply, Vec<OwnedFd>)> {
        let slot = Arc::new(AnswerSlot::default());
        {
            let mut held = self.lock();
            send(&self.socket, request, fds)?;
            held.unread.push_back(Awaited::Answer(slot.clone()));
        }
        let until = std::time::Instant::now() + ON_THE_WORKER;
        loop {
            if let Some(answer) = slot.take() {
                return answer;
            }
            if std::time::Instant::now() >= until {
                break;
            }
            if crate::process::readable_within(&self.socket, std::time::Duration::from_micros(50)) {
                // An answer is there: read what has come, in order, up to ours.
                let mut held = self.lock();
                while !slot.filled() && crate::process::readable_now(&self.socket) {
                    if held.read_one().is_err() {
                        break;
                    }
                }
                continue;
            }
            tokio::task::yield_now().await;
        }
        let (channel, waiting) = (self.clone(), slot.clone());
        tokio::task::spawn_blocking(move || {
            let mut held = channel.lock();
            while !waiting.filled() && !held.unread.is_empty() {
                if held.read_one().is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|e| LabError::bug(format!("waiting for the lab helper: {e}")))?;
        slot.take()
            .unwrap_or_else(|| Err(LabError::bug("the lab helper's answer was lost")))
    }

    /// Make room for one more start's answer ([`IN_FLIGHT`] at most wait unread), reading the
    /// oldest on tokio's blocking pool if there is none: a start then never reads one on the
    /// caller's thread.
    pub async fn make_room(self: &Arc<Self>) {
        if self.lock().unread.len() < IN_FLIGHT {
            return;
        }
        let channel = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut held = channel.lock();
            while held.unread.len() >= IN_FLIGHT {
                if held.read_one().is_err() {
                    return;
                }
            }
        })
        .await;
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
        held.unread.push_back(Awaited::Start(slot.clone()));
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
        let slot = match self.unread.pop_front() {
            None => return Ok(()),
            Some(Awaited::Start(slot)) => slot,
            Some(Awaited::Answer(answer)) => {
                let got = self.receive(1);
                if let Err(e) = &got {
                    self.abandon(None);
                    answer.fill(Err(e.clone()));
                    return Err(e.clone());
                }
                answer.fill(got);
                return Ok(());
            }
        };
        let answer = self.receive(START_PATIENCE_SECS / HELPER_ANSWER_SECS);
        let pidfd = match answer {
            Ok((Reply::Spawned, fds)) if fds.len() == 1 => fds.into_iter().next(),
            Ok((Reply::Failed(_), _)) => None,
            Ok((other, fds)) => {
                self.abandon(Some(&slot));
                return Err(LabError::os(format!(
                    "start a program: the lab helper said {other:?} with {} descriptors",
                    fds.len()
                )));
            }
            Err(e) => {
                self.abandon(Some(&slot));
                return Err(e);
            }
        };
        let _ = slot.0.set(pidfd);
        Ok(())
    }

    /// The helper will not answer: no init waiting for its answer will have a pidfd, and no
    /// request its answer.
    fn abandon(&mut self, slot: Option<&InitSlot>) {
        if let Some(slot) = slot {
            let _ = slot.0.set(None);
        }
        for waiting in self.unread.drain(..) {
            match waiting {
                Awaited::Start(s) => {
                    let _ = s.0.set(None);
                }
                Awaited::Answer(a) => a.fill(Err(LabError::os(
                    "the lab helper went away before it answered",
                ))),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    /// A helper that answers each request in order with Failed(n) for the n-th (from 1),
    /// after `delays[n - 1]`: the answer says which request it was for.
    fn helper(delays: Vec<std::time::Duration>) -> (Arc<Channel>, std::thread::JoinHandle<()>) {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let answering = std::thread::spawn(move || {
            let mut buf = vec![0u8; protocol::MAX_MESSAGE];
            for (n, delay) in delays.into_iter().enumerate() {
                let Ok((len, _)) = protocol::receive(theirs.as_raw_fd(), &mut buf) else {
                    return;
                };
                assert!(len > 0);
                std::thread::sleep(delay);
                let reply = Reply::Failed(Errno::from_raw(n as i32 + 1)).encode();
                protocol::send(theirs.as_raw_fd(), &reply, &[]).unwrap();
            }
        });
        (Channel::new(ours, 0), answering)
    }

    fn errno_of(answer: LabResult<(Reply, Vec<OwnedFd>)>) -> i32 {
        match answer.unwrap().0 {
            Reply::Failed(e) => e as i32,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_request_gets_its_own_answer_fast_or_slow_and_starts_are_read_first() {
        let ms = std::time::Duration::from_millis;
        let (channel, answering) = helper(vec![ms(0), ms(0), ms(30), ms(0)]);
        // A start's answer (the 1st) is still unread when the next request is made.
        let null: Vec<std::fs::File> = (0..protocol::SPAWN_FDS)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<RawFd> = null.iter().map(AsRawFd::as_raw_fd).collect();
        let init = channel.request_start(&fds).unwrap();
        assert_eq!(
            errno_of(channel.request_async(&Request::NewNetns, &[]).await),
            2
        );
        assert!(
            matches!(init.answered(), Some(None)),
            "the start's answer was read first, and said it failed"
        );
        // Slower than the worker waits: the rest of the wait is on the blocking pool, and a
        // task of the same one-thread runtime runs meanwhile.
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticking = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(ms(1)).await;
                }
            }
        });
        assert_eq!(
            errno_of(channel.request_async(&Request::NewNetns, &[]).await),
            3
        );
        assert!(
            ticks.load(std::sync::atomic::Ordering::SeqCst) >= 5,
            "another task ran while the answer was awaited"
        );
        ticking.abort();
        // A blocking request after them gets the next answer.
        assert_eq!(errno_of(channel.request(&Request::NewNetns, &[])), 4);
        answering.join().unwrap();
    }
}
