//! The fake's answers to the lab's requests, with the kernel's rules.

use std::sync::atomic::Ordering;

use nix::errno::Errno;

use super::state::{lock, on_subnet, FakeNs};
use super::Fake;
use crate::error::{LabError, LabResult};
use crate::input::Cidr;
use crate::kernel::{
    route, Detailed, Hop, KeeperHold, Kernel, LinkChange, LinkInfoView, Principal, Route, Shaping,
};

impl Kernel for Fake {
    type Ns = FakeNs;
    type Port = super::port::FakePort;

    fn port(&self) -> LabResult<&super::port::FakePort> {
        Ok(&self.port)
    }

    fn ns_fd(ns: &FakeNs) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        ns.fd.as_fd()
    }

    fn ns_box(ns: &FakeNs) -> &crate::kernel::NsBox {
        &ns.boxed
    }

    fn ns_box_mut(ns: &mut FakeNs) -> &mut crate::kernel::NsBox {
        &mut ns.boxed
    }

    fn link_handle(_ns: &FakeNs) -> LabResult<Option<rtnetlink::Handle>> {
        Ok(None)
    }

    fn cgroup_janitor(&self) -> Option<&std::path::Path> {
        None
    }

    fn start(&mut self) -> LabResult<Option<Principal>> {
        let mut s = lock(&self.state);
        if s.started {
            return Ok(None);
        }
        s.request("start".into(), "start the run's user namespace")?;
        s.started = true;
        Ok(Some(Principal {
            host_ids: vec![(1_879_048_192, 65536)],
            userns: 4_026_531_837,
        }))
    }

    async fn create_namespace(&mut self, name: &str) -> LabResult<(FakeNs, u64)> {
        let id = self.with(|s| {
            s.request(
                format!("netns add {name}"),
                &format!("create namespace {name}"),
            )?;
            Ok(s.add_namespace(name))
        })?;
        let fd = super::port::token(&mut lock(&self.state), "ns", name)?;
        let ns = FakeNs {
            id,
            state: self.state.clone(),
            fd,
            boxed: Default::default(),
        };
        Ok((ns, 4_026_532_000 + u64::from(id)))
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn links(&self, ns: &FakeNs, only: Option<(u32, &str)>) -> LabResult<Vec<LinkInfoView>> {
        self.with(|s| {
            let n = s.ns(ns.id)?;
            Ok(n.links
                .iter()
                .filter(|(i, _)| only.is_none_or(|(index, _)| **i == index))
                .filter(|(_, l)| !l.name.starts_with(super::super::RETIRED))
                .map(|(i, l)| LinkInfoView {
                    name: l.name.clone(),
                    index: *i,
                    kind: l.kind.to_string(),
                    up: l.up,
                    mtu: l.mtu,
                    mac: crate::input::format_mac(&l.mac),
                    addresses: l.addresses.iter().map(|a| a.to_string()).collect(),
                })
                .collect())
        })
    }

    async fn link_index(&self, ns: &FakeNs, name: &str) -> LabResult<Option<u32>> {
        self.with(|s| {
            Ok(s.ns(ns.id)?
                .links
                .iter()
                .find(|(_, l)| l.name == name)
                .map(|(i, _)| *i))
        })
    }

    async fn add_veth(
        &self,
        a: &str,
        a_ns: &FakeNs,
        b: &str,
        b_ns: &FakeNs,
    ) -> LabResult<(u32, u32)> {
        self.with(|s| {
            let (an, bn) = (s.name_of(a_ns.id), s.name_of(b_ns.id));
            let what = format!("create veth pair {a} ({an}) <-> {b} ({bn})");
            s.request(format!("veth {a} ({an}) {b} ({bn})"), &what)?;
            for (name, ns) in [(a, a_ns.id), (b, b_ns.id)] {
                if s.has_name(ns, name) {
                    return Err(s.exists(ns, name));
                }
            }
            if a_ns.id == b_ns.id && a == b {
                return Err(LabError::from_errno(Errno::EEXIST, &what));
            }
            let ai = s.new_link(a_ns.id, a, "veth")?;
            let bi = s.new_link(b_ns.id, b, "veth")?;
            s.link(a_ns.id, ai, &what)?.peer = Some((b_ns.id, bi));
            s.link(b_ns.id, bi, &what)?.peer = Some((a_ns.id, ai));
            Ok((ai, bi))
        })
    }

    async fn add_bridge(&self, ns: &FakeNs, name: &str) -> LabResult<u32> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(
                format!("bridge {name} ({nn})"),
                &format!("create bridge {name} in {nn}"),
            )?;
            if s.has_name(ns.id, name) {
                return Err(s.exists(ns.id, name));
            }
            s.new_link(ns.id, name, "bridge")
        })
    }

    async fn set_link(
        &self,
        ns: &FakeNs,
        index: u32,
        change: LinkChange,
        what: &str,
    ) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("set {index} ({nn}) {change:?}"), what)?;
            if let LinkChange::Master(bridge) = change {
                let is_bridge = s
                    .ns(ns.id)?
                    .links
                    .get(&bridge)
                    .is_some_and(|l| l.kind == "bridge");
                if !is_bridge {
                    return Err(LabError::from_errno(Errno::EOPNOTSUPP, what));
                }
            }
            let link = s.link(ns.id, index, what)?;
            match change {
                LinkChange::Up(up) => link.up = up,
                LinkChange::Mtu(mtu) if !(68..=65535).contains(&mtu) => {
                    return Err(LabError::from_errno(Errno::EINVAL, what))
                }
                LinkChange::Mtu(mtu) => link.mtu = mtu,
                LinkChange::Mac(mac) => link.mac = mac,
                LinkChange::Master(bridge) => link.master = Some(bridge),
            }
            Ok(())
        })
    }

    async fn move_link(
        &self,
        from: &FakeNs,
        index: u32,
        name: &str,
        to: &FakeNs,
        what: &str,
    ) -> LabResult<u32> {
        self.with(|s| {
            let (fname, tname) = (s.name_of(from.id), s.name_of(to.id));
            s.request(format!("move {name} ({fname}) to {tname}"), what)?;
            if s.has_name(to.id, name) {
                return Err(LabError::exists(format!(
                    "cannot move {name} into {tname}: that namespace already has a link with this name"
                )));
            }
            let mut link = s
                .ns(from.id)?
                .links
                .remove(&index)
                .ok_or_else(|| LabError::from_errno(Errno::ENODEV, what))?;
            s.ns(from.id)?
                .routes
                .retain(|r| !r.hops.iter().any(|h| h.oif == Some(index)));
            // A moved link comes down, without its addresses or master, as in the kernel.
            link.up = false;
            link.addresses.clear();
            link.master = None;
            let peer = link.peer;
            let t = s.ns(to.id)?;
            let new = t.next_index;
            t.next_index += 1;
            t.links.insert(new, link);
            if let Some((pns, pindex)) = peer {
                s.link(pns, pindex, what)?.peer = Some((to.id, new));
            }
            Ok(new)
        })
    }

    async fn add_address(&self, ns: &FakeNs, index: u32, cidr: Cidr, what: &str) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("address add {cidr} {index} ({nn})"), what)?;
            let link = s.link(ns.id, index, what)?;
            if link.addresses.contains(&cidr) {
                return Err(LabError::from_errno(Errno::EEXIST, what));
            }
            link.addresses.push(cidr);
            Ok(())
        })
    }

    async fn remove_address(
        &self,
        ns: &FakeNs,
        index: u32,
        cidr: Cidr,
        what: &str,
    ) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("address del {cidr} {index} ({nn})"), what)?;
            let link = s.link(ns.id, index, what)?;
            let before = link.addresses.len();
            link.addresses.retain(|a| *a != cidr);
            if link.addresses.len() == before {
                return Err(LabError::not_found(format!(
                    "{what}: the link has no such address"
                )));
            }
            Ok(())
        })
    }

    async fn set_shaping(
        &self,
        ns: &FakeNs,
        index: u32,
        shaping: &Shaping,
        what: &str,
    ) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            let text = shaping.describe();
            s.request(format!("qdisc {index} ({nn}) {text}"), what)?;
            s.link(ns.id, index, what)?.shaping = Some(text);
            Ok(())
        })
    }

    async fn clear_shaping(&self, ns: &FakeNs, index: u32, what: &str) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("qdisc del {index} ({nn})"), what)?;
            let link = s.link(ns.id, index, what)?;
            match link.shaping.take() {
                Some(_) => Ok(()),
                None => Err(LabError::from_errno(Errno::ENOENT, what)),
            }
        })
    }

    async fn set_forwarding(&self, ns: &FakeNs, on: bool, what: &str) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("forwarding {on} ({nn})"), what)?;
            s.ns(ns.id)?.forwarding = on;
            Ok(())
        })
    }

    async fn add_route(&self, ns: &FakeNs, r: &Route, what: &str) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("route add {} ({nn})", r.destination), what)?;
            if r.gateway.is_none() && r.device.is_none() {
                return Err(LabError::invalid(format!(
                    "{what}: a route needs a gateway, a device, or both"
                )));
            }
            let n = s.ns(ns.id)?;
            if let Some((_, index)) = &r.device {
                if !n.links.contains_key(index) {
                    return Err(LabError::from_errno(Errno::ENODEV, what));
                }
            }
            // Without a device, the gateway must be on a subnet of one of its links.
            let oif = match (&r.device, r.gateway) {
                (Some((_, index)), _) => Some(*index),
                (None, Some(gw)) => Some(
                    n.links
                        .iter()
                        .find(|(_, l)| l.addresses.iter().any(|a| on_subnet(a, gw)))
                        .map(|(i, _)| *i)
                        .ok_or_else(|| LabError::from_errno(Errno::ENETUNREACH, what))?,
                ),
                (None, None) => None,
            };
            if n.routes
                .iter()
                .any(|x| x.destination == r.destination && x.table == route::MAIN_TABLE)
            {
                return Err(LabError::from_errno(Errno::EEXIST, what));
            }
            n.routes.push(Detailed {
                destination: r.destination,
                protocol: 4, // RTPROT_STATIC, as `ip route add` makes them
                metric: None,
                table: route::MAIN_TABLE,
                hops: vec![Hop {
                    gateway: r.gateway,
                    oif,
                    weight: 1,
                }],
            });
            Ok(())
        })
    }

    async fn remove_route(&self, ns: &FakeNs, r: &Route, what: &str) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            s.request(format!("route del {} ({nn})", r.destination), what)?;
            let n = s.ns(ns.id)?;
            let before = n.routes.len();
            n.routes.retain(|x| x.destination != r.destination);
            if n.routes.len() == before {
                return Err(LabError::not_found(format!(
                    "{what}: No such process (ESRCH): no such route"
                )));
            }
            Ok(())
        })
    }

    async fn routes(&self, ns: &FakeNs) -> LabResult<Vec<Detailed>> {
        self.with(|s| Ok(s.ns(ns.id)?.routes.clone()))
    }

    async fn retire_link(&self, ns: &FakeNs, index: u32, name: &str) -> LabResult<()> {
        self.with(|s| {
            let nn = s.name_of(ns.id);
            let what = format!("retire link {index} of {nn}");
            s.request(format!("retire {index} ({nn}) as {name}"), &what)?;
            let link = s.link(ns.id, index, &what)?;
            link.up = false;
            link.name = name.to_string();
            Ok(())
        })
    }

    fn pin(&self, ns: &FakeNs, pinned: &str) -> LabResult<()> {
        let mut s = lock(&self.state);
        let what = format!("pin {} as /run/netns/{pinned}", s.name_of(ns.id));
        s.request(format!("pin {pinned}"), &what)?;
        if s.pins.contains_key(pinned) {
            return Err(LabError::from_errno(Errno::EEXIST, &what));
        }
        s.pins
            .insert(pinned.to_string(), 4_026_532_000 + u64::from(ns.id));
        Ok(())
    }

    fn pin_files(&self, ns: &FakeNs, pinned: &str) -> LabResult<Option<u64>> {
        let mut s = lock(&self.state);
        if !s.namespaces.get(&ns.id).is_some_and(|n| n.boxed) {
            return Ok(None);
        }
        let what = format!("pin the files of {}", s.name_of(ns.id));
        s.request(format!("pin files {pinned}"), &what)?;
        let key = format!("box/{pinned}");
        s.pins.insert(key, 7_000 + u64::from(ns.id));
        Ok(Some(7_000 + u64::from(ns.id)))
    }

    fn unpin(&self, pinned: &str, _inode: u64, files: Option<u64>) {
        let mut s = lock(&self.state);
        s.log.push(format!("unpin {pinned}"));
        s.pins.remove(pinned);
        if files.is_some() {
            s.pins.remove(&format!("box/{pinned}"));
        }
    }

    fn start_keeper(&self, namespaces: &[&FakeNs]) -> LabResult<KeeperHold> {
        let mut s = lock(&self.state);
        s.request("keeper".into(), "start the process that keeps the lab")?;
        s.next_keeper += 1;
        let pid = 90_000 + s.next_keeper;
        let places = namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let files = s
                    .namespaces
                    .get(&ns.id)
                    .is_some_and(|n| n.boxed)
                    .then(|| (format!("/proc/{pid}/fd/box{i}"), 7_000 + u64::from(ns.id)));
                (format!("/proc/{pid}/fd/{}", 4 + i), files)
            })
            .collect();
        Ok(KeeperHold {
            pid,
            start: 1,
            namespaces: places,
        })
    }

    fn stop_keeper(&self, pid: u32) {
        lock(&self.state).log.push(format!("stop keeper {pid}"));
    }
}
