//! What a scenario builds between its namespaces: veth pairs, bridges, addresses, link settings,
//! shaping, routes and forwarding. Each change is made, then narrated ([`Lab::act`]), so the
//! terminal shows what the kernel really did.

use std::collections::BTreeMap;

use super::route::Route;
use super::shaping::{self, Shaping};
use super::{link, route, sysctl, Lab, LinkId, LinkInfoView, NsId};
use crate::error::{LabError, LabResult};
use crate::input::{destination_text, Cidr, Mac, Name, RouteSpec};

/// A route as `routes()` reports it: the device by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub destination: Cidr,
    pub gateway: Option<std::net::IpAddr>,
    pub device: Option<String>,
}

impl RouteView {
    /// The destination as the runner writes it (input::destination_text).
    pub fn destination_text(&self) -> String {
        destination_text(&self.destination)
    }
}

fn describe_route(r: &Route) -> String {
    let mut text = destination_text(&r.destination);
    if let Some(g) = r.gateway {
        text.push_str(&format!(" via {g}"));
    }
    if let Some((d, _)) = &r.device {
        text.push_str(&format!(" dev {d}"));
    }
    text
}

impl Lab {
    /// Make a change to the kernel, then narrate it as `what` (which its errors also name).
    async fn act(
        &self,
        what: String,
        change: impl AsyncFnOnce(&str) -> LabResult<()>,
    ) -> LabResult<()> {
        change(&what).await?;
        self.console.action(&what);
        Ok(())
    }

    pub async fn veth(
        &mut self,
        a: &Name,
        a_ns: NsId,
        b: &Name,
        b_ns: NsId,
    ) -> LabResult<(LinkId, LinkId)> {
        if a == b && a_ns == b_ns {
            return Err(LabError::Invalid(format!(
                "both ends of a veth pair are called {a} in the same namespace: give them different names"
            )));
        }
        let (ans, bns) = (self.ns(a_ns)?, self.ns(b_ns)?);
        let (ai, bi) = link::add_veth(a.as_str(), ans, b.as_str(), bns).await?;
        self.console.action(&format!(
            "link add {a} ({}) type veth peer {b} ({})",
            ans.name, bns.name
        ));
        self.links_created += 2;
        Ok((
            self.add_link(a_ns, ai, a.as_str()),
            self.add_link(b_ns, bi, b.as_str()),
        ))
    }

    pub async fn bridge(&mut self, name: &Name, ns_id: NsId) -> LabResult<LinkId> {
        let ns = self.ns(ns_id)?;
        let index = link::add_bridge(ns, name.as_str()).await?;
        self.console
            .action(&format!("link add {name} ({}) type bridge", ns.name));
        self.links_created += 1;
        Ok(self.add_link(ns_id, index, name.as_str()))
    }

    pub async fn loopback(&mut self, ns_id: NsId) -> LabResult<LinkId> {
        let ns = self.ns(ns_id)?;
        let lo = link::find(ns, "lo")
            .await?
            .ok_or_else(|| LabError::NotFound(format!("namespace {} has no loopback", ns.name)))?;
        let index = lo.header.index;
        if let Some((id, _)) = self
            .links
            .iter()
            .find(|(_, l)| l.ns == ns_id && l.index == index)
        {
            return Ok(*id);
        }
        Ok(self.add_link(ns_id, index, "lo"))
    }

    pub fn link_name(&self, id: LinkId) -> LabResult<&str> {
        Ok(&self.link(id)?.0.name)
    }

    pub async fn link_info(&self, id: LinkId) -> LabResult<LinkInfoView> {
        let (l, ns) = self.link(id)?;
        let mut found = link::describe(ns, Some(l.index), &l.name).await?;
        found
            .pop()
            .ok_or_else(|| LabError::NotFound(format!("link {} in {} is gone", l.name, ns.name)))
    }

    pub async fn links_in(&self, ns: NsId) -> LabResult<Vec<LinkInfoView>> {
        link::describe(self.ns(ns)?, None, "").await
    }

    pub async fn set_up(&self, id: LinkId, up: bool) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let state = if up { "up" } else { "down" };
        let what = format!("link set {} {state} ({})", l.name, ns.name);
        self.act(what, async |w| {
            link::set(ns, link::up_down(l.index, up), w).await
        })
        .await
    }

    pub async fn set_mtu(&self, id: LinkId, mtu: u32) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("link set {} mtu {mtu} ({})", l.name, ns.name);
        self.act(what, async |w| {
            link::set(ns, link::mtu(l.index, mtu), w)
                .await
                .map_err(|e| match e {
                    LabError::Invalid(t) => LabError::Invalid(format!(
                        "{t}: the MTU is outside what this link accepts (68-65535 for a veth)"
                    )),
                    other => other,
                })
        })
        .await
    }

    pub async fn set_mac(&self, id: LinkId, mac: Mac) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("link set {} address {mac} ({})", l.name, ns.name);
        self.act(what, async |w| {
            link::set(ns, link::mac(l.index, mac.0), w).await
        })
        .await
    }

    pub async fn move_to(&mut self, id: LinkId, target: NsId) -> LabResult<()> {
        let (l, from) = self.link(id)?;
        let to = self.ns(target)?;
        if l.ns == target {
            return Ok(());
        }
        if l.name == "lo" {
            return Err(LabError::Invalid(format!(
                "the loopback of {} cannot move: every namespace keeps its own",
                from.name
            )));
        }
        if link::find(to, &l.name).await?.is_some() {
            return Err(LabError::Exists(format!(
                "cannot move {} into {}: that namespace already has a link with this name",
                l.name, to.name
            )));
        }
        let what = format!("link set {} netns {} (from {})", l.name, to.name, from.name);
        link::set(from, link::move_to(l.index, to), &what).await?;
        // The kernel keeps the index when it is free in the new namespace, else picks another.
        let moved = link::find(to, &l.name).await?.ok_or_else(|| {
            LabError::Os(format!("{what}: the link is not in {} afterwards", to.name))
        })?;
        self.console.action(&what);
        let index = moved.header.index;
        to.saw_index(index);
        let entry = self.links.get_mut(&id).expect("looked up above");
        entry.ns = target;
        entry.index = index;
        Ok(())
    }

    pub async fn add_address(&self, id: LinkId, cidr: Cidr) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("address add {cidr} dev {} ({})", l.name, ns.name);
        self.act(what, async |w| {
            link::add_address(ns, l.index, cidr, w).await
        })
        .await
    }

    pub async fn remove_address(&self, id: LinkId, cidr: Cidr) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("address del {cidr} dev {} ({})", l.name, ns.name);
        self.act(what, async |w| {
            link::remove_address(ns, l.index, cidr, w).await
        })
        .await
    }

    pub async fn set_master(&self, id: LinkId, bridge: LinkId) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let (b, bns) = self.link(bridge)?;
        if l.ns != b.ns {
            return Err(LabError::Invalid(format!(
                "{} ({}) and {} ({}) are in different namespaces: a link joins a bridge of its own namespace",
                l.name, ns.name, b.name, bns.name
            )));
        }
        let kind = link::describe(bns, Some(b.index), &b.name)
            .await?
            .pop()
            .map(|v| v.kind)
            .unwrap_or_default();
        if kind != "bridge" {
            return Err(LabError::Invalid(format!(
                "{} is a {kind} link, not a bridge: create one with link.bridge",
                b.name
            )));
        }
        let what = format!("link set {} master {} ({})", l.name, b.name, ns.name);
        self.act(what, async |w| {
            link::set(ns, link::master(l.index, b.index), w).await
        })
        .await
    }

    pub async fn set_shaping(&self, id: LinkId, s: Shaping) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!(
            "qdisc replace dev {} root {} ({})",
            l.name,
            s.describe(),
            ns.name
        );
        self.act(what, async |w| shaping::set(ns, l.index, &s, w).await)
            .await
    }

    pub async fn clear_shaping(&self, id: LinkId) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("qdisc del dev {} root ({})", l.name, ns.name);
        self.act(what, async |w| shaping::clear(ns, l.index, w).await)
            .await
    }

    pub fn set_forwarding(&self, id: NsId, on: bool) -> LabResult<()> {
        let ns = self.ns(id)?;
        let what = format!(
            "sysctl net.ipv4.ip_forward={} net.ipv6.conf.all.forwarding={} ({})",
            u8::from(on),
            u8::from(on),
            ns.name
        );
        sysctl::set_forwarding(ns.fd(), on, &what)?;
        self.console.action(&what);
        Ok(())
    }

    /// A route with its device found in the namespace.
    async fn resolve_route(&self, ns_id: NsId, spec: &RouteSpec) -> LabResult<Route> {
        let ns = self.ns(ns_id)?;
        let device = match &spec.device {
            None => None,
            Some(name) => {
                let found = link::find(ns, name.as_str()).await?.ok_or_else(|| {
                    LabError::NotFound(format!(
                        "route via device {name}: namespace {} has no such link",
                        ns.name
                    ))
                })?;
                Some((name.to_string(), found.header.index))
            }
        };
        Ok(Route {
            destination: spec.destination,
            gateway: spec.gateway,
            device,
        })
    }

    pub async fn add_route(&self, ns_id: NsId, spec: &RouteSpec) -> LabResult<()> {
        let r = self.resolve_route(ns_id, spec).await?;
        let ns = self.ns(ns_id)?;
        let what = format!("route add {} ({})", describe_route(&r), ns.name);
        self.act(what, async |w| route::add(ns, &r, w).await).await
    }

    pub async fn remove_route(&self, ns_id: NsId, spec: &RouteSpec) -> LabResult<()> {
        let r = self.resolve_route(ns_id, spec).await?;
        let ns = self.ns(ns_id)?;
        let what = format!("route del {} ({})", describe_route(&r), ns.name);
        self.act(what, async |w| route::remove(ns, &r, w).await)
            .await
    }

    /// The namespace's routes, IPv4 then IPv6.
    pub async fn routes(&self, ns_id: NsId) -> LabResult<Vec<RouteView>> {
        let ns = self.ns(ns_id)?;
        let names: BTreeMap<u32, String> = link::describe(ns, None, "")
            .await?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        Ok(route::list(ns)
            .await?
            .into_iter()
            .map(|(destination, gateway, oif)| RouteView {
                destination,
                gateway,
                device: oif.and_then(|i| names.get(&i).cloned()),
            })
            .collect())
    }
}
