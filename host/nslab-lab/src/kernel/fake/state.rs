//! The fake kernel's state: namespaces with their links and routes, and the rules the kernel
//! keeps for them (names, indexes, veth pairs that go together, routes through a link).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

use crate::error::{LabError, LabResult};
use crate::input::Cidr;
use crate::kernel::Detailed;

#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub kind: &'static str,
    pub up: bool,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub master: Option<u32>,
    pub addresses: Vec<Cidr>,
    /// The other end of a veth pair: (namespace, index).
    pub peer: Option<(u32, u32)>,
    pub shaping: Option<String>,
}

#[derive(Debug, Default)]
pub struct Netns {
    pub name: String,
    pub links: BTreeMap<u32, Link>,
    pub next_index: u32,
    pub routes: Vec<Detailed>,
    pub forwarding: bool,
    /// Its programs have a files' box (pinned with `--keep`).
    pub boxed: bool,
}

#[derive(Debug, Default)]
pub struct State {
    pub started: bool,
    pub next_ns: u32,
    pub namespaces: BTreeMap<u32, Netns>,
    pub log: Vec<String>,
    /// (prefix of a request's line, errno): the next such request fails.
    pub failures: Vec<(String, Errno)>,
    pub pins: BTreeMap<String, u64>,
    pub next_keeper: u32,
    /// Free closed namespaces only when asked (`Fake::free_closed`), as the kernel frees them
    /// in its own time; until then they and their links are still there.
    pub lazy_free: bool,
    pub closed: Vec<u32>,
    /// What each fake descriptor stands for, by its inode (port.rs).
    pub tokens: BTreeMap<u64, String>,
    /// Files given to boxes (port.rs), by (box, path).
    pub files: BTreeMap<(String, String), Vec<u8>>,
}

pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// Log a request, or fail it if a failure was asked for.
    pub fn request(&mut self, line: String, what: &str) -> LabResult<()> {
        if let Some(at) = self.failures.iter().position(|(p, _)| line.starts_with(p)) {
            let (_, errno) = self.failures.remove(at);
            self.log.push(format!("{line} -> {errno:?}"));
            return Err(LabError::from_errno(errno, what));
        }
        self.log.push(line);
        Ok(())
    }

    pub fn ns(&mut self, id: u32) -> LabResult<&mut Netns> {
        self.namespaces
            .get_mut(&id)
            .ok_or_else(|| LabError::not_found("the fake kernel has no such namespace"))
    }

    pub fn link(&mut self, ns: u32, index: u32, what: &str) -> LabResult<&mut Link> {
        self.ns(ns)?
            .links
            .get_mut(&index)
            .ok_or_else(|| LabError::from_errno(Errno::ENODEV, what))
    }

    pub fn name_of(&self, ns: u32) -> String {
        self.namespaces
            .get(&ns)
            .map_or_else(|| "?".into(), |n| n.name.clone())
    }

    pub fn has_name(&self, ns: u32, name: &str) -> bool {
        self.namespaces
            .get(&ns)
            .is_some_and(|n| n.links.values().any(|l| l.name == name))
    }

    /// Remove a link and, for a veth, its peer; routes through them go too.
    pub fn remove_link(&mut self, ns: u32, index: u32) {
        let Some(n) = self.namespaces.get_mut(&ns) else {
            return;
        };
        let Some(link) = n.links.remove(&index) else {
            return;
        };
        n.routes
            .retain(|r| !r.hops.iter().any(|h| h.oif == Some(index)));
        for l in n.links.values_mut() {
            if l.master == Some(index) {
                l.master = None;
            }
        }
        if let Some((pns, pindex)) = link.peer {
            self.remove_link(pns, pindex);
        }
    }

    pub fn new_link(&mut self, ns: u32, name: &str, kind: &'static str) -> LabResult<u32> {
        let n = self.ns(ns)?;
        let index = n.next_index;
        n.next_index += 1;
        let mac = [0x02, 0, 0, 0, (ns & 0xff) as u8, (index & 0xff) as u8];
        n.links.insert(
            index,
            Link {
                name: name.to_string(),
                kind,
                up: false,
                mtu: 1500,
                mac,
                master: None,
                addresses: Vec::new(),
                peer: None,
                shaping: None,
            },
        );
        Ok(index)
    }

    pub fn exists(&self, ns: u32, name: &str) -> LabError {
        LabError::exists(format!(
            "link {name} already exists in namespace {}: pick another name or remove it first",
            self.name_of(ns)
        ))
    }
}

/// Whether `ip` is on the subnet of `cidr`.
pub fn on_subnet(cidr: &Cidr, ip: std::net::IpAddr) -> bool {
    let bits = |ip: std::net::IpAddr| -> u128 {
        match ip {
            std::net::IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
            std::net::IpAddr::V6(v) => u128::from(v),
        }
    };
    if cidr.addr.is_ipv4() != ip.is_ipv4() {
        return false;
    }
    let prefix = u32::from(cidr.prefix);
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    bits(cidr.addr) & mask == bits(ip) & mask
}

/// A namespace held open by the lab: dropping it frees it, as closing its fd does.
pub struct FakeNs {
    pub id: u32,
    pub state: Arc<Mutex<State>>,
    /// What holds it, as a descriptor (a memfd standing for it, port.rs).
    pub fd: std::os::fd::OwnedFd,
    pub boxed: crate::kernel::NsBox,
}

impl Drop for FakeNs {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if s.lazy_free {
            let name = s.name_of(self.id);
            s.log.push(format!("close {name}"));
            s.closed.push(self.id);
            return;
        }
        s.free(self.id);
    }
}

impl State {
    /// A new namespace with its loopback (down, index 1): its id.
    pub fn add_namespace(&mut self, name: &str) -> u32 {
        self.next_ns += 1;
        let id = self.next_ns;
        let lo = Link {
            name: "lo".into(),
            kind: "loopback",
            up: false,
            mtu: 65536,
            mac: [0; 6],
            master: None,
            addresses: Vec::new(),
            peer: None,
            shaping: None,
        };
        let ns = Netns {
            name: name.to_string(),
            links: BTreeMap::from([(1, lo)]),
            next_index: 2,
            ..Default::default()
        };
        self.namespaces.insert(id, ns);
        id
    }

    /// Free namespace `id` with its links and their veth peers, wherever they are.
    pub fn free(&mut self, id: u32) {
        if let Some(ns) = self.namespaces.remove(&id) {
            if !self.lazy_free {
                self.log.push(format!("close {}", ns.name));
            }
            let peers: Vec<(u32, u32)> = ns.links.values().filter_map(|l| l.peer).collect();
            for (pns, pindex) in peers {
                self.remove_link(pns, pindex);
            }
        }
    }
}
