//! Routes in a namespace's main table, through its netlink socket (as `ip route` does).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use super::netns::Namespace;
use crate::error::{ErrorKind, LabError, LabResult};
use crate::input::Cidr;

/// A route with its device resolved in the namespace, ready for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination network (0.0.0.0/0 or ::/0 for a default route).
    pub destination: Cidr,
    pub gateway: Option<IpAddr>,
    /// The device, by name and its index in the namespace.
    pub device: Option<(String, u32)>,
}

fn message(r: &Route) -> LabResult<RouteMessage> {
    let family_clash = |gw: IpAddr| {
        LabError::invalid(format!(
            "route to {} via {gw}: the gateway is not of the destination's address family",
            r.destination
        ))
    };
    let mut msg = match r.destination.addr {
        IpAddr::V4(dst) => {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dst, r.destination.prefix);
            match r.gateway {
                Some(IpAddr::V4(gw)) => b = b.gateway(gw),
                Some(gw) => return Err(family_clash(gw)),
                None => {}
            }
            b.build()
        }
        IpAddr::V6(dst) => {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(dst, r.destination.prefix);
            match r.gateway {
                Some(IpAddr::V6(gw)) => b = b.gateway(gw),
                Some(gw) => return Err(family_clash(gw)),
                None => {}
            }
            b.build()
        }
    };
    if let Some((_, index)) = &r.device {
        msg.attributes.push(RouteAttribute::Oif(*index));
    }
    if r.gateway.is_none() {
        // A route straight out of a device, as `ip route add NET dev DEV` makes it.
        msg.header.scope = RouteScope::Link;
    }
    Ok(msg)
}

pub async fn add(ns: &Namespace, r: &Route, what: &str) -> LabResult<()> {
    if r.gateway.is_none() && r.device.is_none() {
        return Err(LabError::invalid(format!(
            "{what}: a route needs a gateway, a device, or both"
        )));
    }
    let msg = message(r)?;
    ns.netlink(|h| async move { h.route().add(msg).execute().await })
        .await?
        .map_err(|e| LabError::from_netlink(e, what))
}

pub async fn remove(ns: &Namespace, r: &Route, what: &str) -> LabResult<()> {
    let mut msg = message(r)?;
    // Deleting matches on what is given; leave scope to the kernel.
    msg.header.scope = RouteScope::NoWhere;
    let deleted = ns
        .netlink(|h| async move { h.route().del(msg).execute().await })
        .await?;
    deleted.map_err(|e| match LabError::from_netlink(e, what) {
        e if e.kind() == ErrorKind::NotFound => {
            e.reworded(ErrorKind::NotFound, |t| format!("{t}: no such route"))
        }
        other => other,
    })
}

/// The kernel's main routing table, the one `ip route show` lists.
pub const MAIN_TABLE: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// The table of the namespace's own addresses (RT_TABLE_LOCAL, which netlink-packet-route does
/// not name): not routes to anywhere.
const LOCAL_TABLE: u32 = 255;

/// One hop of a route, as the kernel keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// Its share of the traffic, 1-256.
    pub weight: u16,
}

/// A route with what a check needs: who made it, its metric and table, every next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detailed {
    pub destination: Cidr,
    /// The kernel's protocol number (RTPROT_*).
    pub protocol: u8,
    pub metric: Option<u32>,
    pub table: u32,
    pub hops: Vec<Hop>,
}

/// The name `ip route` gives a protocol number (iproute2's rt_protos), or the number.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        17 => "mrouted",
        18 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        other => return other.to_string(),
    }
    .to_string()
}

fn address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn gateway_in(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => address(g),
        _ => None,
    })
}

/// The unicast routes of every table but `local` (`ip route show table all`), IPv4 then IPv6.
pub async fn details(ns: &Namespace) -> LabResult<Vec<Detailed>> {
    let mut out = Vec::new();
    for dump in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let msgs: Vec<RouteMessage> = ns
            .netlink(|h| async move { h.route().get(dump).execute().try_collect().await })
            .await?
            .map_err(|e| LabError::from_netlink(e, format!("list routes in {}", ns.name)))?;
        for m in msgs {
            let table = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(m.header.table as u32);
            if table == LOCAL_TABLE || m.header.kind != RouteType::Unicast {
                continue;
            }
            let v6 = m.header.address_family == netlink_packet_route::AddressFamily::Inet6;
            let unspecified = match v6 {
                true => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                false => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            let destination = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Destination(d) => address(d),
                    _ => None,
                })
                .unwrap_or(unspecified);
            let metric = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Priority(p) => Some(*p),
                _ => None,
            });
            let multipath = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::MultiPath(hops) => Some(hops),
                _ => None,
            });
            let hops = match multipath {
                Some(hops) => hops
                    .iter()
                    .map(|h| Hop {
                        gateway: gateway_in(&h.attributes),
                        oif: (h.interface_index != 0).then_some(h.interface_index),
                        weight: u16::from(h.hops) + 1,
                    })
                    .collect(),
                None => vec![Hop {
                    gateway: gateway_in(&m.attributes),
                    oif: m.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Oif(i) => Some(*i),
                        _ => None,
                    }),
                    weight: 1,
                }],
            };
            out.push(Detailed {
                destination: Cidr {
                    addr: destination,
                    prefix: m.header.destination_prefix_length,
                },
                protocol: u8::from(m.header.protocol),
                metric,
                table,
                hops,
            });
        }
    }
    Ok(out)
}
