//! Routes in a namespace's main table, through its netlink socket (as `ip route` does).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use super::netns::Namespace;
use crate::addr::Cidr;
use crate::error::{LabError, LabResult};

/// A route as a scenario writes it, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination network (0.0.0.0/0 or ::/0 for a default route).
    pub destination: Cidr,
    pub gateway: Option<IpAddr>,
    /// The device, by name and its index in the namespace.
    pub device: Option<(String, u32)>,
}

/// Parse a destination as the WIT contract writes it: "10.0.2.0/24", "default", "::/0".
/// "default" is IPv4 unless the gateway is IPv6. Host bits must be zero, as `ip route` requires.
pub fn parse_destination(dest: &str, gateway: Option<IpAddr>) -> LabResult<Cidr> {
    if dest == "default" {
        let v6 = matches!(gateway, Some(IpAddr::V6(_)));
        let addr = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        return Ok(Cidr { addr, prefix: 0 });
    }
    if !dest.contains('/') {
        return Err(LabError::Invalid(format!(
            "route destination {dest:?} needs a prefix length (10.0.2.0/24) or is \"default\""
        )));
    }
    let Cidr { addr, prefix } = Cidr::parse_prefixed(dest, "route destination", "10.0.2.0/24")?;
    let net = ipnet::IpNet::new(addr, prefix)
        .map_err(|e| LabError::Invalid(format!("route destination {dest:?}: {e}")))?;
    if net.trunc().addr() != addr {
        return Err(LabError::Invalid(format!(
            "route destination {dest:?} has host bits set: did you mean {}?",
            net.trunc()
        )));
    }
    Ok(Cidr { addr, prefix })
}

fn message(r: &Route) -> LabResult<RouteMessage> {
    let family_clash = |gw: IpAddr| {
        LabError::Invalid(format!(
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
        return Err(LabError::Invalid(format!(
            "{what}: a route needs a gateway, a device, or both"
        )));
    }
    let msg = message(r)?;
    ns.netlink
        .route()
        .add(msg)
        .execute()
        .await
        .map_err(|e| LabError::from_netlink(e, what))
}

pub async fn remove(ns: &Namespace, r: &Route, what: &str) -> LabResult<()> {
    let mut msg = message(r)?;
    // Deleting matches on what is given; leave scope to the kernel.
    msg.header.scope = RouteScope::NoWhere;
    ns.netlink
        .route()
        .del(msg)
        .execute()
        .await
        .map_err(|e| match LabError::from_netlink(e, what) {
            LabError::NotFound(t) => LabError::NotFound(format!("{t}: no such route")),
            other => other,
        })
}

/// The unicast routes of the main table, IPv4 then IPv6, with device indexes.
pub async fn list(ns: &Namespace) -> LabResult<Vec<(Cidr, Option<IpAddr>, Option<u32>)>> {
    let mut out = Vec::new();
    for dump in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let msgs: Vec<RouteMessage> = ns
            .netlink
            .route()
            .get(dump)
            .execute()
            .try_collect()
            .await
            .map_err(|e| LabError::from_netlink(e, format!("list routes in {}", ns.name)))?;
        for m in msgs {
            let table = m
                .attributes
                .iter()
                .find_map(|a| {
                    if let RouteAttribute::Table(t) = a {
                        Some(*t)
                    } else {
                        None
                    }
                })
                .unwrap_or(m.header.table as u32);
            if table != RouteHeader::RT_TABLE_MAIN as u32 || m.header.kind != RouteType::Unicast {
                continue;
            }
            let addr_of = |a: &RouteAddress| match a {
                RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
                RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
                _ => None,
            };
            let v6 = m.header.address_family == netlink_packet_route::AddressFamily::Inet6;
            let unspecified = if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            let dest = m
                .attributes
                .iter()
                .find_map(|a| {
                    if let RouteAttribute::Destination(d) = a {
                        addr_of(d)
                    } else {
                        None
                    }
                })
                .unwrap_or(unspecified);
            let gateway = m.attributes.iter().find_map(|a| {
                if let RouteAttribute::Gateway(g) = a {
                    addr_of(g)
                } else {
                    None
                }
            });
            let oif = m.attributes.iter().find_map(|a| {
                if let RouteAttribute::Oif(i) = a {
                    Some(*i)
                } else {
                    None
                }
            });
            out.push((
                Cidr {
                    addr: dest,
                    prefix: m.header.destination_prefix_length,
                },
                gateway,
                oif,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(
            parse_destination("default", None).unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            parse_destination("default", Some("fd00::1".parse().unwrap()))
                .unwrap()
                .to_string(),
            "::/0"
        );
        assert_eq!(parse_destination("10.0.2.0/24", None).unwrap().prefix, 24);
        assert_eq!(parse_destination("::/0", None).unwrap().to_string(), "::/0");
        let err = parse_destination("10.0.2.1/24", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host bits set: did you mean 10.0.2.0/24?"),
            "{err}"
        );
        assert!(parse_destination("10.0.2.0", None)
            .unwrap_err()
            .to_string()
            .contains("needs a prefix length"));
        assert!(parse_destination("10.0.2.0/33", None).is_err());
        assert!(parse_destination("nowhere/8", None).is_err());
    }
}
