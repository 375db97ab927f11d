//! Links (network interfaces) inside the run's namespaces, through each namespace's own netlink
//! socket: the same requests `ip link` and `ip address` send, without spawning `ip`.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
};
use rtnetlink::{LinkMessageBuilder, LinkUnspec};

use super::netns::Namespace;
use crate::error::{netlink_errno, ErrorKind, LabError, LabResult};
use crate::input::{format_mac, Cidr};

/// What `ip link show` and `ip address show` say of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfoView {
    pub name: String,
    pub index: u32,
    pub kind: String,
    pub up: bool,
    pub mtu: u32,
    pub mac: String,
    pub addresses: Vec<String>,
}

/// Create a veth pair: `a` inside `a_ns` (the request goes through its socket), `b` created by
/// the kernel directly inside `b_ns` (IFLA_NET_NS_FD on the peer), so neither end ever exists in
/// the runner's own namespace. Returns the two interface indexes.
pub async fn add_veth(
    a: &str,
    a_ns: &Namespace,
    b: &str,
    b_ns: &Namespace,
) -> LabResult<(u32, u32)> {
    let what = format!(
        "create veth pair {a} ({}) <-> {b} ({})",
        a_ns.name, b_ns.name
    );
    // One round trip where it can be: the lab picks both ends' indexes, so nothing is looked
    // up afterwards, and the names are looked into only on a collision (to say which end and
    // which namespace). An index a program took meanwhile (EEXIST with both names free, or
    // EBUSY) falls back to the kernel's choice and two lookups.
    let wanted = (a_ns.take_index(), b_ns.take_index());
    let veth = |indexes: Option<(u32, u32)>| {
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(b.to_string())
            .setns_by_fd(b_ns.raw_fd());
        let mut main = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(a.to_string());
        if let Some((ai, bi)) = indexes {
            main = main.index(ai);
            peer = peer.index(bi);
        }
        main.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build()
    };
    let mut indexes = Some(wanted);
    loop {
        let msg = veth(indexes);
        match a_ns
            .netlink(|h| async move { h.link().add(msg).execute().await })
            .await?
        {
            Ok(()) => break,
            // Some kernels say EBUSY for a taken index.
            Err(e) if indexes.is_some() && netlink_errno(&e) == Some(nix::errno::Errno::EBUSY) => {
                indexes = None
            }
            Err(e) => match LabError::from_netlink(e, &what) {
                e if e.kind() == ErrorKind::Exists => {
                    // A name taken says so, naming the end and its namespace.
                    for (name, ns) in [(a, a_ns), (b, b_ns)] {
                        ensure_free(ns, name).await?;
                    }
                    // Both names are free: it was an index a program took meanwhile.
                    if indexes.take().is_none() {
                        return Err(e);
                    }
                }
                e => return Err(e),
            },
        }
    }
    if let Some(chosen) = indexes {
        return Ok(chosen);
    }
    let lookup = |name: &'static str| {
        LabError::os(format!(
            "{what}: the kernel made it but {name} is not there"
        ))
    };
    let a_index = find(a_ns, a)
        .await?
        .ok_or_else(|| lookup("the first end"))?
        .header
        .index;
    let b_index = find(b_ns, b)
        .await?
        .ok_or_else(|| lookup("the peer"))?
        .header
        .index;
    a_ns.saw_index(a_index);
    b_ns.saw_index(b_index);
    Ok((a_index, b_index))
}

/// `exists` naming the namespace if `ns` already has a link called `name`; the kernel's bare
/// EEXIST would not say which end of a pair collided.
async fn ensure_free(ns: &Namespace, name: &str) -> LabResult<()> {
    match find(ns, name).await? {
        Some(_) => Err(LabError::exists(format!(
            "link {name} already exists in namespace {}: pick another name or remove it first",
            ns.name
        ))),
        None => Ok(()),
    }
}

/// The link called `name` in `ns`, if there is one.
pub async fn find(ns: &Namespace, name: &str) -> LabResult<Option<LinkMessage>> {
    let wanted = name.to_string();
    let found = ns
        .netlink(|h| async move { h.link().get().match_name(wanted).execute().try_next().await })
        .await?;
    match found {
        Ok(msg) => Ok(msg),
        Err(e) => match LabError::from_netlink(e, format!("look up link {name} in {}", ns.name)) {
            e if e.kind() == ErrorKind::NotFound => Ok(None),
            other => Err(other),
        },
    }
}

/// The link with `index` in `ns`.
pub async fn get(ns: &Namespace, index: u32, name: &str) -> LabResult<LinkMessage> {
    let what = format!("read link {name} in {}", ns.name);
    ns.netlink(|h| async move { h.link().get().match_index(index).execute().try_next().await })
        .await?
        .map_err(|e| LabError::from_netlink(e, &what))?
        .ok_or_else(|| LabError::not_found(format!("{what}: it is gone")))
}

/// Send a change to one link (flags, mtu, address, namespace) as `ip link set` does.
pub async fn set(ns: &Namespace, msg: LinkMessage, what: &str) -> LabResult<()> {
    ns.netlink(|h| async move { h.link().set(msg).execute().await })
        .await?
        .map_err(|e| LabError::from_netlink(e, what))
}

pub fn up_down(index: u32, up: bool) -> LinkMessage {
    let b = LinkUnspec::new_with_index(index);
    if up { b.up() } else { b.down() }.build()
}

/// Down, and renamed: what a veth peer of a deleted namespace's link becomes until the kernel
/// frees it (a rename costs a fraction of a millisecond, a delete an RCU barrier: ~16 ms).
pub fn retire(index: u32, name: &str) -> LinkMessage {
    LinkUnspec::new_with_index(index)
        .down()
        .name(name.to_string())
        .build()
}

pub fn mtu(index: u32, mtu: u32) -> LinkMessage {
    LinkUnspec::new_with_index(index).mtu(mtu).build()
}

pub fn mac(index: u32, mac: [u8; 6]) -> LinkMessage {
    LinkUnspec::new_with_index(index)
        .address(mac.to_vec())
        .build()
}

pub fn master(index: u32, bridge: u32) -> LinkMessage {
    LinkUnspec::new_with_index(index).controller(bridge).build()
}

/// Create a bridge in `ns` and return its index.
pub async fn add_bridge(ns: &Namespace, name: &str) -> LabResult<u32> {
    ensure_free(ns, name).await?;
    let what = format!("create bridge {name} in {}", ns.name);
    let msg = rtnetlink::LinkBridge::new(name).build();
    ns.netlink(|h| async move { h.link().add(msg).execute().await })
        .await?
        .map_err(|e| LabError::from_netlink(e, &what))?;
    Ok(find(ns, name)
        .await?
        .ok_or_else(|| LabError::os(format!("{what}: the kernel made it but it is not there")))?
        .header
        .index)
}

/// Move link `index` of `from` into `to`, asking for an index of the lab's choosing there, so
/// that the move is one request and nothing is looked up afterwards: its index in `to`. A name
/// `to` already has is an error saying so; an index a program took meanwhile (EBUSY) falls back
/// to the kernel's choice and one lookup.
pub async fn move_to(
    from: &Namespace,
    index: u32,
    name: &str,
    to: &Namespace,
    what: &str,
) -> LabResult<u32> {
    let wanted = to.take_index();
    let mut msg = LinkUnspec::new_with_index(index)
        .setns_by_fd(to.raw_fd())
        .build();
    msg.attributes
        .push(LinkAttribute::NewIfIndex(wanted as i32));
    match from
        .netlink(|h| async move { h.link().set(msg).execute().await })
        .await?
    {
        Ok(()) => return Ok(wanted),
        Err(e) if netlink_errno(&e) == Some(nix::errno::Errno::EBUSY) => {}
        Err(e) => {
            return Err(match LabError::from_netlink(e, what) {
                e if e.kind() == ErrorKind::Exists => e.reworded(ErrorKind::Exists, |_| {
                    format!(
                    "cannot move {name} into {}: that namespace already has a link with this name",
                    to.name
                )
                }),
                other => other,
            })
        }
    }
    let msg = LinkUnspec::new_with_index(index)
        .setns_by_fd(to.raw_fd())
        .build();
    set(from, msg, what).await?;
    let moved = find(to, name).await?.ok_or_else(|| {
        LabError::os(format!("{what}: the link is not in {} afterwards", to.name))
    })?;
    to.saw_index(moved.header.index);
    Ok(moved.header.index)
}

/// Add an address. IPv6 addresses skip duplicate address detection (IFA_F_NODAD) so they are
/// usable when the call returns: in a lab the scenario owns every address on the wire.
pub async fn add_address(ns: &Namespace, index: u32, cidr: Cidr, what: &str) -> LabResult<()> {
    ns.netlink(|h| async move {
        let mut req = h.address().add(index, cidr.addr, cidr.prefix);
        if cidr.addr.is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        req.execute().await
    })
    .await?
    .map_err(|e| LabError::from_netlink(e, what))
}

pub async fn remove_address(ns: &Namespace, index: u32, cidr: Cidr, what: &str) -> LabResult<()> {
    let found = addresses(ns, Some(index))
        .await?
        .into_iter()
        .find(|(i, m)| *i == index && address_of(m) == Some(cidr));
    let Some((_, msg)) = found else {
        return Err(LabError::not_found(format!(
            "{what}: the link has no such address"
        )));
    };
    ns.netlink(|h| async move { h.address().del(msg).execute().await })
        .await?
        .map_err(|e| LabError::from_netlink(e, what))
}

/// Every address in `ns` (of one link when `index` is given), with its link index.
async fn addresses(ns: &Namespace, index: Option<u32>) -> LabResult<Vec<(u32, AddressMessage)>> {
    let msgs: Vec<AddressMessage> = ns
        .netlink(|h| async move {
            let mut req = h.address().get();
            if let Some(i) = index {
                req = req.set_link_index_filter(i);
            }
            req.execute().try_collect().await
        })
        .await?
        .map_err(|e| LabError::from_netlink(e, format!("list addresses in {}", ns.name)))?;
    Ok(msgs.into_iter().map(|m| (m.header.index, m)).collect())
}

/// The interface address of a message: IFA_ADDRESS, which for IPv4 equals IFA_LOCAL on
/// broadcast links and is the only one IPv6 sends.
fn address_of(m: &AddressMessage) -> Option<Cidr> {
    let addr = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let addr: Option<IpAddr> = addr.or_else(|| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    });
    addr.map(|addr| Cidr {
        addr,
        prefix: m.header.prefix_len,
    })
}

/// Describe one link, or every link when `index` is None, as `ip address show` does.
pub async fn describe(
    ns: &Namespace,
    index: Option<u32>,
    name: &str,
) -> LabResult<Vec<LinkInfoView>> {
    let links = match index {
        Some(i) => vec![get(ns, i, name).await?],
        None => ns
            .netlink(|h| async move { h.link().get().execute().try_collect().await })
            .await?
            .map_err(|e| LabError::from_netlink(e, format!("list links in {}", ns.name)))?,
    };
    let addrs = addresses(ns, index).await?;
    Ok(links
        .into_iter()
        .map(|l| {
            let index = l.header.index;
            let mut view = view(&l);
            view.addresses = addrs
                .iter()
                .filter(|(i, _)| *i == index)
                .filter_map(|(_, m)| address_of(m))
                .map(|c| c.to_string())
                .collect();
            view
        })
        // A retired peer of a deleted namespace's link is gone as far as the lab is concerned.
        .filter(|v| !v.name.starts_with(super::RETIRED))
        .collect())
}

fn view(l: &LinkMessage) -> LinkInfoView {
    let mut v = LinkInfoView {
        name: String::new(),
        index: l.header.index,
        kind: String::new(),
        up: l.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        mac: String::new(),
        addresses: Vec::new(),
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(n) => v.name = n.clone(),
            LinkAttribute::Mtu(m) => v.mtu = *m,
            LinkAttribute::Address(a) => v.mac = format_mac(a),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        v.kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    if v.kind.is_empty() {
        v.kind = match l.header.link_layer_type {
            LinkLayerType::Loopback => "loopback".into(),
            other => format!("{other:?}").to_lowercase(),
        };
    }
    v
}
