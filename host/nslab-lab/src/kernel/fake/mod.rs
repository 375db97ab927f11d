//! A recording fake of the kernel, for tests of the lab's logic without root and in parallel.
//!
//! It keeps the rules the lab relies on: names are unique per namespace, indexes are chosen
//! per namespace from 2 (loopback is 1), a veth pair goes as a whole when either end goes (with
//! its namespace, or deleted), a move renumbers the link and fails on a name the target has,
//! an address or route is there once, a gateway must be on a connected subnet, a pin name is
//! taken once. Every request is logged as a line (`log`), closing a namespace too, so that a
//! test can assert what was asked and in what order; `fail_next` makes the next request whose
//! line starts with a prefix fail with an errno, as the kernel would.

mod kernel;
mod port;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use super::Detailed;
use crate::error::LabResult;
use state::{lock, State};

/// The fake kernel. Clones share one state.
#[derive(Clone)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    port: port::FakePort,
}

impl Default for Fake {
    fn default() -> Fake {
        let state = Arc::<Mutex<State>>::default();
        Fake {
            port: port::FakePort {
                state: state.clone(),
            },
            state,
            requests: Arc::default(),
        }
    }
}

impl Fake {
    pub fn new() -> Fake {
        Fake::default()
    }

    /// Every request so far, one line each.
    pub fn log(&self) -> Vec<String> {
        lock(&self.state).log.clone()
    }

    /// The requests whose line starts with `prefix`.
    pub fn logged(&self, prefix: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Make the next request whose line starts with `prefix` fail with `errno`.
    pub fn fail_next(&self, prefix: &str, errno: Errno) {
        lock(&self.state).failures.push((prefix.to_string(), errno));
    }

    /// From now on, free a closed namespace only at [`Fake::free_closed`], as the kernel
    /// frees one in its own time.
    pub fn free_lazily(&self) {
        lock(&self.state).lazy_free = true;
    }

    /// Free the namespaces closed so far (with their links and those links' veth peers).
    pub fn free_closed(&self) {
        let mut s = lock(&self.state);
        for id in std::mem::take(&mut s.closed) {
            s.free(id);
        }
    }

    /// The names of the namespaces the kernel still has.
    pub fn namespaces(&self) -> Vec<String> {
        lock(&self.state)
            .namespaces
            .values()
            .map(|n| n.name.clone())
            .collect()
    }

    /// The links of namespace `ns` (by name), as "name" or "name@peer-ns/peer-name".
    pub fn links_of(&self, ns: &str) -> Vec<String> {
        let s = lock(&self.state);
        let Some(n) = s.namespaces.values().find(|n| n.name == ns) else {
            return Vec::new();
        };
        n.links
            .values()
            .map(|l| match l.peer {
                Some((pns, pindex)) => {
                    let peer = s
                        .namespaces
                        .get(&pns)
                        .and_then(|p| p.links.get(&pindex))
                        .map_or("?".to_string(), |p| p.name.clone());
                    format!("{}@{}/{peer}", l.name, s.name_of(pns))
                }
                None => l.name.clone(),
            })
            .collect()
    }

    /// Whether forwarding is on in namespace `ns` (by name).
    pub fn forwarding(&self, ns: &str) -> bool {
        lock(&self.state)
            .namespaces
            .values()
            .any(|n| n.name == ns && n.forwarding)
    }

    /// Give namespace `ns`'s programs a files' box, as their first program would.
    pub fn give_box(&self, ns: &str) {
        if let Some(n) = lock(&self.state)
            .namespaces
            .values_mut()
            .find(|n| n.name == ns)
        {
            n.boxed = true;
        }
    }

    /// The pins made and not undone: (name, inode).
    pub fn pins(&self) -> Vec<(String, u64)> {
        lock(&self.state)
            .pins
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Add a route as a program (a routing daemon) would, behind the lab's back.
    pub fn program_adds_route(&self, ns: &str, route: Detailed) {
        if let Some(n) = lock(&self.state)
            .namespaces
            .values_mut()
            .find(|n| n.name == ns)
        {
            n.routes.push(route);
        }
    }

    /// Count a request, and make it on the state.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> LabResult<T>) -> LabResult<T> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        f(&mut lock(&self.state))
    }
}
