//! The netlink connections of the run's namespaces, open only while they are used, and driven
//! by whoever asks.
//!
//! A netlink socket talks to the namespace it was made in, so each namespace has one of its own
//! (made by the helper inside it). The socket is kernel memory and stays open for the
//! namespace's life. The rtnetlink connection over it holds 72 KiB of buffers, of which the
//! requests touch about 10 KiB: at a thousand namespaces that was 10 MiB of the runner's memory
//! for namespaces the scenario no longer talks to. So a connection is opened at the
//! namespace's first request and closed again once [`LIVE`] others were used since
//! ([`Connections::trim`], when a namespace is made); the next request opens it again, for a few
//! microseconds.
//!
//! The connection is not a task of its own: a request polls it alongside itself
//! ([`Connections::request`]), on the caller's thread. The lab's requests run one at a time, on
//! the thread that runs the scenario; as a task, each request's message and answer went to a
//! tokio worker and back, two thread switches a request, a third of the chain's switches. A
//! connection someone else holds a handle to (a namespace's link watcher) becomes a task
//! ([`Connections::kept_handle`]) and stays open.

use std::future::Future;
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures::future::Either;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::TokioSocket;
use tokio::task::JoinHandle;

use crate::error::{LabError, LabResult};

/// How many namespaces keep their connection open when they are not in use: the lab's
/// requests go to one or two namespaces at a time (a veth pair's two ends, a namespace and the
/// one its link moves to), so a few dozen cost nothing in reopening and little in memory.
pub const LIVE: usize = 32;

type Connection = rtnetlink::proto::Connection<RouteNetlinkMessage>;

/// One namespace's socket, and the connection over it when one is open.
pub struct Slot {
    socket: OwnedFd,
    /// Held for the length of a request: requests to one namespace take turns.
    state: tokio::sync::Mutex<State>,
    /// When it was last asked for (the run's clock: a count of requests), to close the least
    /// recently used first.
    last_used: AtomicU64,
}

#[derive(Default)]
enum State {
    #[default]
    Closed,
    /// Open, polled by each request.
    Open {
        handle: rtnetlink::Handle,
        connection: Pin<Box<Connection>>,
    },
    /// A task of its own, for a handle held elsewhere: never closed.
    Kept {
        handle: rtnetlink::Handle,
        task: JoinHandle<()>,
    },
}

impl Slot {
    /// Close the connection (if no request holds it and it is not kept) and discard any answer
    /// no one waits for (to a request whose caller went away), which a new connection could
    /// take for one of its own.
    fn close(&self) -> Closing {
        let Ok(mut state) = self.state.try_lock() else {
            return Closing::Busy;
        };
        if matches!(*state, State::Kept { .. }) {
            return Closing::Kept;
        }
        *state = State::Closed;
        drain(self.socket.as_fd());
        Closing::Closed
    }
}

#[derive(PartialEq)]
enum Closing {
    Closed,
    Kept,
    Busy,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A kept connection's task owns a duplicate of the socket, and a socket keeps its
        // namespace alive: stop it so that the namespace is freed.
        if let State::Kept { task, .. } = self.state.get_mut() {
            task.abort();
        }
    }
}

/// Read and drop whatever waits in a socket.
fn drain(socket: std::os::fd::BorrowedFd<'_>) {
    let mut scrap = [0u8; 64];
    while rustix::net::recv(
        socket,
        &mut scrap[..],
        rustix::net::RecvFlags::DONTWAIT | rustix::net::RecvFlags::TRUNC,
    )
    .is_ok()
    {}
}

/// A new connection over a duplicate of the slot's socket.
fn open(slot: &Slot, what: &str) -> LabResult<(rtnetlink::Handle, Pin<Box<Connection>>)> {
    let fd = slot.socket.try_clone().map_err(|e| {
        LabError::from_io(
            &e,
            format!("{what}: open a netlink connection to the namespace"),
        )
    })?;
    // SAFETY: `fd` is a duplicate of the namespace's netlink socket that nothing else owns;
    // the tokio socket takes it over (and closes it when the connection is dropped).
    let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
    let (connection, handle, _) = rtnetlink::from_socket(socket);
    Ok((handle, Box::pin(connection)))
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
            state: Default::default(),
            last_used: AtomicU64::new(0),
        })
    }

    fn used(&self, slot: &Arc<Slot>) {
        slot.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    fn opened(&self, slot: &Arc<Slot>) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(slot));
    }

    /// Make one request (or dump) with the slot's handle, `ask`, and drive the connection
    /// while it runs (opened now if it is closed). Runs inside the tokio runtime.
    pub async fn request<T, F>(
        &self,
        slot: &Arc<Slot>,
        what: &str,
        ask: impl FnOnce(rtnetlink::Handle) -> F,
    ) -> LabResult<T>
    where
        F: Future<Output = T>,
    {
        self.used(slot);
        let mut state = slot.state.lock().await;
        if matches!(*state, State::Closed) {
            let (handle, connection) = open(slot, what)?;
            *state = State::Open { handle, connection };
            self.opened(slot);
        }
        match &mut *state {
            State::Closed => unreachable!("opened above"),
            State::Kept { handle, .. } => Ok(ask(handle.clone()).await),
            State::Open { handle, connection } => {
                let asked = std::pin::pin!(ask(handle.clone()));
                match futures::future::select(asked, connection.as_mut()).await {
                    Either::Left((answer, _)) => Ok(answer),
                    // The connection ended (its socket failed): drop it, which fails the
                    // request instead of leaving it waiting, and open anew next time.
                    Either::Right(((), asked)) => {
                        *state = State::Closed;
                        Ok(asked.await)
                    }
                }
            }
        }
    }

    /// The slot's handle, for someone to keep (a watcher): its connection becomes a task and
    /// stays open while the namespace lives. Not while a request to it is running (the lab's
    /// requests and this are made one after another).
    pub fn kept_handle(&self, slot: &Arc<Slot>, what: &str) -> LabResult<rtnetlink::Handle> {
        self.used(slot);
        let mut state = slot.state.try_lock().map_err(|_| {
            LabError::bug(format!(
                "{what}: a netlink handle was asked for during a request to the namespace"
            ))
        })?;
        match std::mem::take(&mut *state) {
            State::Kept { handle, task } => {
                *state = State::Kept {
                    handle: handle.clone(),
                    task,
                };
                Ok(handle)
            }
            State::Open { handle, connection } => {
                *state = State::Kept {
                    handle: handle.clone(),
                    task: tokio::spawn(connection),
                };
                Ok(handle)
            }
            State::Closed => {
                let (handle, connection) = open(slot, what)?;
                *state = State::Kept {
                    handle: handle.clone(),
                    task: tokio::spawn(connection),
                };
                Ok(handle)
            }
        }
    }

    /// Close the least recently used connections past [`LIVE`]. Called between requests (when
    /// a namespace is made: the lab makes no other request meanwhile); one in use is left open,
    /// and one kept leaves the count (it is never closed).
    pub fn trim(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|w| w.strong_count() > 0);
        if open.len() <= LIVE {
            return;
        }
        let mut slots: Vec<Arc<Slot>> = open.iter().filter_map(Weak::upgrade).collect();
        slots.sort_by_key(|s| std::cmp::Reverse(s.last_used.load(Ordering::Relaxed)));
        let old = slots.split_off(LIVE.min(slots.len()));
        let busy: Vec<Arc<Slot>> = old
            .into_iter()
            .filter(|s| s.close() == Closing::Busy)
            .collect();
        *open = slots.iter().chain(&busy).map(Arc::downgrade).collect();
    }

    /// How many connections are open now.
    #[cfg(test)]
    pub fn open_now(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| {
                s.state
                    .try_lock()
                    .is_ok_and(|st| !matches!(*st, State::Closed))
            })
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

    /// Loopback's index, read with a handle (a read-only request).
    async fn loopback(handle: rtnetlink::Handle) -> u32 {
        let link = handle
            .link()
            .get()
            .match_index(1)
            .execute()
            .try_next()
            .await;
        link.unwrap().unwrap().header.index
    }

    async fn ask(c: &Connections, slot: &Arc<Slot>) -> u32 {
        c.request(slot, "test", loopback).await.unwrap()
    }

    fn is_open(slot: &Slot) -> bool {
        !matches!(*slot.state.try_lock().unwrap(), State::Closed)
    }

    // One thread: a request must drive its own connection, with no task to do it.
    #[tokio::test(flavor = "current_thread")]
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
        c.trim();
        assert_eq!(c.open_now(), LIVE);
        assert!(is_open(&slots[0]));
        assert!(slots[1..9].iter().all(|s| !is_open(s)));
        assert!(slots[9..].iter().all(|s| is_open(s)));
        // A closed one answers again, on a new connection.
        assert_eq!(ask(&c, &slots[1]).await, 1);
        assert!(is_open(&slots[1]));
        c.trim();
        assert_eq!(c.open_now(), LIVE);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_kept_connection_and_a_dropped_slot_are_never_counted_against_the_others() {
        let c = Connections::default();
        let kept_slot = c.slot(socket());
        ask(&c, &kept_slot).await;
        let kept = c.kept_handle(&kept_slot, "test").unwrap();
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
        c.trim();
        assert!(
            slots.iter().all(|s| is_open(s)),
            "{LIVE} other slots stay open"
        );
        assert!(is_open(&kept_slot));
        // The kept handle works on its own (its task drives it), as a watcher's resync needs,
        // and so do the lab's requests to that namespace.
        assert_eq!(loopback(kept).await, 1);
        assert_eq!(ask(&c, &kept_slot).await, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_no_one_read_is_discarded_when_the_connection_closes() {
        let c = Connections::default();
        let slots: Vec<_> = (0..=LIVE).map(|_| c.slot(socket())).collect();
        for s in &slots {
            ask(&c, s).await;
        }
        // A request whose answer its connection never read (its caller went away before it
        // came): the answer waits in the socket.
        let request: [u8; 32] = {
            let mut m = [0u8; 32];
            m[0..4].copy_from_slice(&32u32.to_ne_bytes()); // length
            m[4..6].copy_from_slice(&18u16.to_ne_bytes()); // RTM_GETLINK
            m[6..8].copy_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
            m[8..12].copy_from_slice(&7u32.to_ne_bytes()); // sequence
            m[20..24].copy_from_slice(&1i32.to_ne_bytes()); // ifi_index: loopback
            m
        };
        let oldest = &slots[0];
        rustix::net::send(
            oldest.socket.as_fd(),
            &request,
            rustix::net::SendFlags::empty(),
        )
        .unwrap();
        c.trim();
        assert!(!is_open(oldest));
        let mut buf = [0u8; 16];
        let queued = rustix::net::recv(
            oldest.socket.as_fd(),
            &mut buf[..],
            rustix::net::RecvFlags::DONTWAIT,
        );
        assert_eq!(queued.err(), Some(rustix::io::Errno::AGAIN));
        assert_eq!(ask(&c, oldest).await, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_to_one_namespace_take_turns() {
        let c = Connections::default();
        let slot = c.slot(socket());
        let (a, b) = futures::join!(ask(&c, &slot), ask(&c, &slot));
        assert_eq!((a, b), (1, 1));
    }
}
