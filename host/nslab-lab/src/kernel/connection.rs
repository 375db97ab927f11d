//! The netlink connections of the run's namespaces, open only while they are used.
//!
//! A netlink socket talks to the namespace it was made in, so each namespace has one of its own
//! (made by the helper inside it). The socket is kernel memory and stays open for the
//! namespace's life. The rtnetlink connection over it is a task with 72 KiB of buffers, of which
//! the requests touch about 10 KiB: at a thousand namespaces that was 10 MiB of the runner's
//! memory for namespaces the scenario no longer talks to. So a connection is opened on the
//! namespace's first request and closed again once [`LIVE`] others were used since
//! ([`Connections::trim`], when a namespace is made); the next request opens it again, for a few
//! microseconds. A connection someone else holds a handle to (a namespace's link watcher) is
//! pinned and stays open.

use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rtnetlink::sys::TokioSocket;
use tokio::task::JoinHandle;

use crate::error::{LabError, LabResult};

/// How many namespaces keep their connection open when they are not in use: the lab's
/// requests go to one or two namespaces at a time (a veth pair's two ends, a namespace and the
/// one its link moves to), so a few dozen cost nothing in reopening and little in memory.
pub const LIVE: usize = 32;

/// One namespace's socket, and the connection over it when one is open.
pub struct Slot {
    socket: OwnedFd,
    live: Mutex<Option<Live>>,
    /// When it was last asked for (the run's clock: a count of requests), to close the least
    /// recently used first.
    last_used: AtomicU64,
    /// Someone holds a handle of its own (a watcher): never closed.
    pinned: AtomicBool,
}

struct Live {
    handle: rtnetlink::Handle,
    task: JoinHandle<()>,
}

impl Slot {
    /// Close the connection and wait until its task has dropped the socket's duplicate (so no
    /// two connections ever read one socket), then discard any answer no one waits for (to a
    /// request whose caller went away), which a new connection could take for one of its own.
    async fn close(&self) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(live) = live {
            live.task.abort();
            let _ = live.task.await;
        }
        let mut scrap = [0u8; 64];
        while rustix::net::recv(
            self.socket.as_fd(),
            &mut scrap[..],
            rustix::net::RecvFlags::DONTWAIT | rustix::net::RecvFlags::TRUNC,
        )
        .is_ok()
        {}
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The task owns a duplicate of the socket, and a socket keeps its namespace alive:
        // stop it so that the namespace is freed.
        if let Some(live) = self
            .live
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            live.task.abort();
        }
    }
}

/// The run's namespaces' connections, to open on demand and close the least recently used.
#[derive(Default)]
pub struct Connections {
    clock: AtomicU64,
    open: Mutex<Vec<Weak<Slot>>>,
}

impl Connections {
    /// A slot for a namespace's socket (already bound and connected to the kernel); no
    /// connection is open yet.
    pub fn slot(&self, socket: OwnedFd) -> Arc<Slot> {
        Arc::new(Slot {
            socket,
            live: Mutex::new(None),
            last_used: AtomicU64::new(0),
            pinned: AtomicBool::new(false),
        })
    }

    /// The slot's connection, opened now if it is closed. Runs inside the tokio runtime
    /// (every lab request does).
    pub fn handle(&self, slot: &Arc<Slot>, what: &str) -> LabResult<rtnetlink::Handle> {
        slot.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let mut live = slot.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = &*live {
            return Ok(live.handle.clone());
        }
        let fd = slot.socket.try_clone().map_err(|e| {
            LabError::from_io(
                &e,
                format!("{what}: open a netlink connection to the namespace"),
            )
        })?;
        // SAFETY: `fd` is a duplicate of the namespace's netlink socket that nothing else owns;
        // the tokio socket takes it over (and closes it when the connection ends).
        let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        *live = Some(Live {
            handle: handle.clone(),
            task: tokio::spawn(connection),
        });
        drop(live);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(slot));
        Ok(handle)
    }

    /// The slot's connection, kept open from now on: its handle is held elsewhere.
    pub fn pinned_handle(&self, slot: &Arc<Slot>, what: &str) -> LabResult<rtnetlink::Handle> {
        slot.pinned.store(true, Ordering::Relaxed);
        self.handle(slot, what)
    }

    /// Close the least recently used connections past [`LIVE`]. Called between requests (when
    /// a namespace is made: the lab makes no other request meanwhile), so none of them is in
    /// the middle of one.
    pub async fn trim(&self) {
        let closing: Vec<Arc<Slot>> = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            // Deleted namespaces leave their entries behind; a pinned one is never closed.
            let mut slots: Vec<Arc<Slot>> = open
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|s| !s.pinned.load(Ordering::Relaxed))
                .collect();
            if slots.len() <= LIVE {
                open.retain(|w| w.strong_count() > 0);
                return;
            }
            slots.sort_by_key(|s| std::cmp::Reverse(s.last_used.load(Ordering::Relaxed)));
            let closing = slots.split_off(LIVE);
            open.retain(|w| {
                w.upgrade().is_some_and(|s| {
                    s.pinned.load(Ordering::Relaxed) || slots.iter().any(|k| Arc::ptr_eq(k, &s))
                })
            });
            closing
        };
        for slot in closing {
            slot.close().await;
        }
    }

    /// How many connections are open now.
    #[cfg(test)]
    pub fn open_now(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| s.live.lock().is_ok_and(|l| l.is_some()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

    /// A netlink socket of this process's own namespace, bound as the helper's are.
    fn socket() -> OwnedFd {
        let mut s = Socket::new(NETLINK_ROUTE).unwrap();
        s.bind_auto().unwrap();
        s.connect(&SocketAddr::new(0, 0)).unwrap();
        // SAFETY: into_raw_fd gives up the socket's ownership, which OwnedFd takes.
        unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) }
    }

    /// A read-only request (loopback's link), answered through the slot's connection.
    async fn ask(c: &Connections, slot: &Arc<Slot>) -> u32 {
        let handle = c.handle(slot, "test").unwrap();
        let link = handle
            .link()
            .get()
            .match_index(1)
            .execute()
            .try_next()
            .await;
        link.unwrap().unwrap().header.index
    }

    fn is_open(slot: &Slot) -> bool {
        slot.live.lock().unwrap().is_some()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_most_recently_used_stay_open_and_a_closed_one_opens_again() {
        let c = Connections::default();
        let slots: Vec<_> = (0..LIVE + 8).map(|_| c.slot(socket())).collect();
        assert_eq!(
            c.open_now(),
            0,
            "a slot opens no connection until it is asked"
        );
        for s in &slots {
            assert_eq!(ask(&c, s).await, 1);
        }
        // The first is used again: it is recent now, and the next eight are the oldest.
        assert_eq!(ask(&c, &slots[0]).await, 1);
        c.trim().await;
        assert_eq!(c.open_now(), LIVE);
        assert!(is_open(&slots[0]));
        assert!(slots[1..9].iter().all(|s| !is_open(s)));
        assert!(slots[9..].iter().all(|s| is_open(s)));
        // A closed one answers again, on a new connection.
        assert_eq!(ask(&c, &slots[1]).await, 1);
        assert!(is_open(&slots[1]));
        c.trim().await;
        assert_eq!(c.open_now(), LIVE);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pinned_connection_and_a_dropped_slot_are_never_counted_against_the_others() {
        let c = Connections::default();
        let pinned = c.slot(socket());
        let kept = c.pinned_handle(&pinned, "test").unwrap();
        let mut slots: Vec<_> = (0..LIVE).map(|_| c.slot(socket())).collect();
        for s in &slots {
            ask(&c, s).await;
        }
        // Deleted namespaces: their slots go, and free their places.
        let gone: Vec<_> = slots.drain(..4).collect();
        drop(gone);
        for _ in 0..4 {
            let s = c.slot(socket());
            ask(&c, &s).await;
            slots.push(s);
        }
        c.trim().await;
        assert!(
            slots.iter().all(|s| is_open(s)),
            "{LIVE} unpinned slots stay open"
        );
        assert!(is_open(&pinned));
        // The pinned handle still works, as a watcher's resync needs.
        let link = kept.link().get().match_index(1).execute().try_next().await;
        assert_eq!(link.unwrap().unwrap().header.index, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_no_one_read_is_discarded_when_the_connection_closes() {
        let c = Connections::default();
        let slot = c.slot(socket());
        ask(&c, &slot).await;
        // A request whose answer its connection never read (its caller went away, and the
        // connection was stopped first): the answer waits in the socket.
        let request: [u8; 32] = {
            let mut m = [0u8; 32];
            m[0..4].copy_from_slice(&32u32.to_ne_bytes()); // length
            m[4..6].copy_from_slice(&18u16.to_ne_bytes()); // RTM_GETLINK
            m[6..8].copy_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
            m[8..12].copy_from_slice(&7u32.to_ne_bytes()); // sequence
            m[20..24].copy_from_slice(&1i32.to_ne_bytes()); // ifi_index: loopback
            m
        };
        {
            let mut live = slot.live.lock().unwrap();
            let l = live.take().unwrap();
            l.task.abort();
            drop(live);
            let _ = l.task.await;
        }
        rustix::net::send(
            slot.socket.as_fd(),
            &request,
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
        slot.close().await;
        let mut buf = [0u8; 16];
        let queued = rustix::net::recv(
            slot.socket.as_fd(),
            &mut buf[..],
            rustix::net::RecvFlags::DONTWAIT,
        );
        assert_eq!(queued.err(), Some(rustix::io::Errno::AGAIN));
        assert_eq!(ask(&c, &slot).await, 1);
    }
}
