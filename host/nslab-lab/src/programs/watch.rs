//! Links that programs make count against the run's `max-links`, like the scenario's own. The
//! kernel has no per-namespace limit on links, so the runner watches: every lab namespace in
//! which a program has run gets a netlink socket subscribed to link events (made inside it, as
//! sockets stay bound to the namespace they were born in). When those namespaces hold more
//! links than the limit allows (loopback not counted), the run is stopped with the limit's name,
//! and its teardown kills the programs and removes everything.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use crate::error::{LabError, LabResult};
use crate::Tripped;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
/// Every namespace's loopback has index 1; it is not one of the run's links.
const LOOPBACK: u32 = 1;

/// The run's count of links in watched namespaces, and what to do when it is too many.
#[derive(Clone)]
pub struct LinkLimit {
    pub max: usize,
    pub tripped: Arc<Tripped>,
    total: Arc<AtomicUsize>,
}

impl LinkLimit {
    pub fn new(max: usize, tripped: Arc<Tripped>) -> LinkLimit {
        LinkLimit {
            max,
            tripped,
            total: Arc::default(),
        }
    }

    /// Links in the watched namespaces now, whoever made them.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Change the count by `added - removed`, and stop the run if it is over the limit.
    fn adjust(&self, added: usize, removed: usize) {
        let total = if added >= removed {
            self.total.fetch_add(added - removed, Ordering::SeqCst) + added - removed
        } else {
            self.total.fetch_sub(removed - added, Ordering::SeqCst) - (removed - added)
        };
        if total > self.max {
            self.tripped.trip(format!(
                "link limit reached: the namespaces where its programs run hold {total} links, \
                 some made by its programs (policy limit max-links = {}; raise it with --max-links)",
                self.max
            ));
        }
    }

    /// Start watching `ns` through `socket`, a netlink socket inside it subscribed to link
    /// events (the lab helper makes it with the namespace's box: Helper::new_box); the task ends when aborted
    /// (the namespace is deleted, or the run ends).
    /// Without a netlink `handle` (the fake kernel's namespaces) there is nothing to watch: the
    /// task only waits to be aborted.
    pub fn watch(
        &self,
        ns: &str,
        handle: Option<rtnetlink::Handle>,
        socket: OwnedFd,
    ) -> LabResult<JoinHandle<()>> {
        let Some(handle) = handle else {
            return Ok(tokio::spawn(std::future::pending()));
        };
        let what = format!("watch the links of namespace {ns}");
        // SAFETY: the socket is owned by the AsyncFd, which deregisters it before closing it.
        let socket = unsafe { AsyncFd::register(socket) }
            .map_err(|e| LabError::from_io(&e.into_parts().1, &what))?;
        let limit = self.clone();
        Ok(tokio::spawn(async move {
            // What this watch counted leaves the total when the watch ends (its namespace is
            // deleted): the count is of links that exist.
            let mut watched = Watched {
                known: HashSet::new(),
                limit: limit.clone(),
            };
            let known = &mut watched.known;
            limit.resync(&handle, known).await;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let Ok(mut ready) = socket.readable().await else {
                    return;
                };
                let got = ready.try_io(|s| {
                    rustix::net::recv(s.get_ref(), &mut buf[..], rustix::net::RecvFlags::DONTWAIT)
                        .map(|(got, _)| got)
                        .map_err(std::io::Error::from)
                });
                match got {
                    Ok(Ok(n)) => limit.apply(&buf[..n], known),
                    // Events were lost (a burst overflowed the socket): count afresh.
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        limit.resync(&handle, known).await
                    }
                    Ok(Err(_)) => return,
                    Err(_would_block) => continue,
                }
            }
        }))
    }

    /// Count the namespace's links from a fresh dump.
    async fn resync(&self, handle: &rtnetlink::Handle, known: &mut HashSet<u32>) {
        let Ok(links) = handle.link().get().execute().try_collect::<Vec<_>>().await else {
            return;
        };
        let now: HashSet<u32> = links
            .iter()
            .map(|l| l.header.index)
            .filter(|&i| i != LOOPBACK)
            .collect();
        let added = now.difference(known).count();
        let removed = known.difference(&now).count();
        *known = now;
        self.adjust(added, removed);
    }

    /// Apply the link events in one datagram.
    fn apply(&self, mut data: &[u8], known: &mut HashSet<u32>) {
        let (mut added, mut removed) = (0, 0);
        // Each message: nlmsghdr (16 bytes: len, type, ...), then ifinfomsg (index at 4..8).
        while data.len() >= 24 {
            let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
            let index = i32::from_ne_bytes(data[20..24].try_into().expect("4 bytes")) as u32;
            if index != LOOPBACK {
                match kind {
                    RTM_NEWLINK if known.insert(index) => added += 1,
                    RTM_DELLINK if known.remove(&index) => removed += 1,
                    _ => {}
                }
            }
            let step = (len + 3) & !3;
            if len < 16 || step > data.len() {
                break;
            }
            data = &data[step..];
        }
        if added + removed > 0 {
            self.adjust(added, removed);
        }
    }
}

/// The links one watch has counted; they leave the run's total when the watch is dropped.
struct Watched {
    known: HashSet<u32>,
    limit: LinkLimit,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.limit.adjust(0, self.known.len());
    }
}
