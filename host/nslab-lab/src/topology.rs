//! What a scenario builds between its namespaces: veth pairs, bridges, addresses, link settings,
//! shaping, routes and forwarding. Each change is made, then narrated ([`Lab::act`]), so the
//! terminal shows what the kernel really did.

use std::collections::BTreeMap;

use super::kernel::{route, Kernel, LinkChange, LinkInfoView, Route, Shaping};
use super::{Lab, LinkId, LinkKind, NsId};
use crate::error::ErrorKind;
use crate::error::{LabError, LabResult};
use crate::input::{destination_text, Cidr, Mac, Name, RouteSpec};

/// A route as `routes()` reports it: the device by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub destination: Cidr,
    pub gateway: Option<std::net::IpAddr>,
    pub device: Option<String>,
}

/// A route with what a check needs, its devices named (`route-details`).
pub struct RouteDetailView {
    pub destination: Cidr,
    pub protocol: String,
    pub metric: Option<u32>,
    pub table: u32,
    /// (gateway, device, weight)
    pub hops: Vec<(Option<std::net::IpAddr>, Option<String>, u16)>,
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

impl<K: Kernel> Lab<K> {
    /// Make a change to the kernel, then narrate it as `what` (which its errors also name).
    async fn act(
        &self,
        what: String,
        change: impl AsyncFnOnce(&str) -> LabResult<()>,
    ) -> LabResult<()> {
        change(&what).await?;
        self.did(&what);
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
            return Err(LabError::invalid(format!(
                "both ends of a veth pair are called {a} in the same namespace: give them different names"
            )));
        }
        let (ans, bns) = (self.ns(a_ns)?, self.ns(b_ns)?);
        let (ai, bi) = self
            .kernel
            .add_veth(a.as_str(), &ans.held, b.as_str(), &bns.held)
            .await?;
        self.did(&format!(
            "link add {a} ({}) type veth peer {b} ({})",
            ans.name, bns.name
        ));
        self.links_live += 2;
        self.tell_size();
        let a = self.add_link(a_ns, ai, a.as_str(), LinkKind::Veth);
        let b = self.add_link(b_ns, bi, b.as_str(), LinkKind::Veth);
        self.entry(a).peer = Some(b);
        self.entry(b).peer = Some(a);
        Ok((a, b))
    }

    pub async fn bridge(&mut self, name: &Name, ns_id: NsId) -> LabResult<LinkId> {
        let ns = self.ns(ns_id)?;
        let index = self.kernel.add_bridge(&ns.held, name.as_str()).await?;
        self.did(&format!("link add {name} ({}) type bridge", ns.name));
        self.links_live += 1;
        self.tell_size();
        Ok(self.add_link(ns_id, index, name.as_str(), LinkKind::Bridge))
    }

    pub async fn loopback(&mut self, ns_id: NsId) -> LabResult<LinkId> {
        let ns = self.ns(ns_id)?;
        let index = self
            .kernel
            .link_index(&ns.held, "lo")
            .await?
            .ok_or_else(|| LabError::not_found(format!("namespace {} has no loopback", ns.name)))?;
        if let Some((id, _)) = self
            .links
            .iter()
            .find(|(_, l)| l.ns == ns_id && l.index == index)
        {
            return Ok(*id);
        }
        Ok(self.add_link(ns_id, index, "lo", LinkKind::Loopback))
    }

    /// The run's own link named `name` in namespace `ns_id`, wherever it was made (a veth end
    /// moved there counts; a link a program made does not).
    pub fn link_named(&self, ns_id: NsId, name: &str) -> LabResult<LinkId> {
        let ns = self.ns(ns_id)?;
        self.links
            .iter()
            .find(|(_, l)| l.ns == ns_id && l.name == name)
            .map(|(id, _)| *id)
            .ok_or_else(|| {
                LabError::not_found(format!(
                    "namespace {} has no link {name} of this run (links a program made are not \
                     the run's)",
                    ns.name
                ))
            })
    }

    pub fn link_name(&self, id: LinkId) -> LabResult<&str> {
        Ok(&self.link(id)?.0.name)
    }

    pub async fn link_info(&self, id: LinkId) -> LabResult<LinkInfoView> {
        let (l, ns) = self.link(id)?;
        let mut found = self
            .kernel
            .links(&ns.held, Some((l.index, &l.name)))
            .await?;
        found
            .pop()
            .ok_or_else(|| LabError::not_found(format!("link {} in {} is gone", l.name, ns.name)))
    }

    pub async fn links_in(&self, ns: NsId) -> LabResult<Vec<LinkInfoView>> {
        self.kernel.links(&self.ns(ns)?.held, None).await
    }

    pub async fn set_up(&mut self, id: LinkId, up: bool) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let state = if up { "up" } else { "down" };
        let what = format!("link set {} {state} ({})", l.name, ns.name);
        self.act(what, async |w| {
            self.kernel
                .set_link(&ns.held, l.index, LinkChange::Up(up), w)
                .await
        })
        .await?;
        self.entry(id).up = up;
        Ok(())
    }

    pub async fn set_mtu(&self, id: LinkId, mtu: u32) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("link set {} mtu {mtu} ({})", l.name, ns.name);
        self.act(what, async |w| {
            self.kernel
                .set_link(&ns.held, l.index, LinkChange::Mtu(mtu), w)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::Invalid => e.reworded(ErrorKind::Invalid, |t| {
                        format!(
                            "{t}: the MTU is outside what this link accepts (68-65535 for a veth)"
                        )
                    }),
                    _ => e,
                })
        })
        .await
    }

    pub async fn set_mac(&self, id: LinkId, mac: Mac) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("link set {} address {mac} ({})", l.name, ns.name);
        self.act(what, async |w| {
            self.kernel
                .set_link(&ns.held, l.index, LinkChange::Mac(mac.0), w)
                .await
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
            return Err(LabError::invalid(format!(
                "the loopback of {} cannot move: every namespace keeps its own",
                from.name
            )));
        }
        let what = format!("link set {} netns {} (from {})", l.name, to.name, from.name);
        let index = self
            .kernel
            .move_link(&from.held, l.index, &l.name, &to.held, &what)
            .await?;
        self.did(&what);
        // The kernel brings a moved link down, without its addresses or bridge.
        let entry = self.entry(id);
        entry.ns = target;
        entry.index = index;
        entry.up = false;
        entry.addresses.clear();
        entry.master = None;
        Ok(())
    }

    pub async fn add_address(&mut self, id: LinkId, cidr: Cidr) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("address add {cidr} dev {} ({})", l.name, ns.name);
        self.act(what, async |w| {
            self.kernel.add_address(&ns.held, l.index, cidr, w).await
        })
        .await?;
        self.entry(id).addresses.push(cidr.to_string());
        Ok(())
    }

    pub async fn remove_address(&mut self, id: LinkId, cidr: Cidr) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("address del {cidr} dev {} ({})", l.name, ns.name);
        self.act(what, async |w| {
            self.kernel.remove_address(&ns.held, l.index, cidr, w).await
        })
        .await?;
        let text = cidr.to_string();
        self.entry(id).addresses.retain(|a| *a != text);
        Ok(())
    }

    /// The table entry of a link the caller has just looked up.
    fn entry(&mut self, id: LinkId) -> &mut super::LinkEntry {
        // Looked up just before, with &self: an id that is not there is a bug of the lab's.
        self.links.get_mut(&id).expect("looked up by the caller")
    }

    pub async fn set_master(&mut self, id: LinkId, bridge: LinkId) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let (b, bns) = self.link(bridge)?;
        if l.ns != b.ns {
            return Err(LabError::invalid(format!(
                "{} ({}) and {} ({}) are in different namespaces: a link joins a bridge of its own namespace",
                l.name, ns.name, b.name, bns.name
            )));
        }
        // What the kernel would refuse with an errno that says nothing (ELOOP, EINVAL).
        match l.kind {
            LinkKind::Bridge => {
                return Err(LabError::invalid(format!(
                    "{} is itself a bridge: a bridge cannot be a port of a bridge (nor of \
                     itself); join two bridges with a veth pair, one end a port of each",
                    l.name
                )))
            }
            LinkKind::Loopback => {
                return Err(LabError::invalid(format!(
                    "{} is the loopback: it cannot be a port of a bridge; use a veth end",
                    l.name
                )))
            }
            _ => {}
        }
        let kind = self
            .kernel
            .links(&bns.held, Some((b.index, &b.name)))
            .await?
            .pop()
            .map(|v| v.kind)
            .unwrap_or_default();
        if kind != "bridge" {
            return Err(LabError::invalid(format!(
                "{} is a {kind} link, not a bridge: create one with link.bridge",
                b.name
            )));
        }
        let what = format!("link set {} master {} ({})", l.name, b.name, ns.name);
        self.act(what, async |w| {
            self.kernel
                .set_link(&ns.held, l.index, LinkChange::Master(b.index), w)
                .await
        })
        .await?;
        self.entry(id).master = Some(bridge);
        Ok(())
    }

    pub async fn set_shaping(&mut self, id: LinkId, s: Shaping) -> LabResult<()> {
        s.validate()?;
        let (l, ns) = self.link(id)?;
        let what = format!(
            "qdisc replace dev {} root {} ({})",
            l.name,
            s.describe(),
            ns.name
        );
        self.act(what, async |w| {
            self.kernel.set_shaping(&ns.held, l.index, &s, w).await
        })
        .await?;
        self.entry(id).shaping = Some(s.describe());
        Ok(())
    }

    pub async fn clear_shaping(&mut self, id: LinkId) -> LabResult<()> {
        let (l, ns) = self.link(id)?;
        let what = format!("qdisc del dev {} root ({})", l.name, ns.name);
        self.act(what, async |w| {
            self.kernel.clear_shaping(&ns.held, l.index, w).await
        })
        .await?;
        self.entry(id).shaping = None;
        Ok(())
    }

    pub async fn set_forwarding(&mut self, id: NsId, on: bool) -> LabResult<()> {
        let ns = self.ns(id)?;
        let what = format!(
            "sysctl net.ipv4.ip_forward={} net.ipv6.conf.all.forwarding={} ({})",
            u8::from(on),
            u8::from(on),
            ns.name
        );
        let since = std::time::Instant::now();
        self.kernel.set_forwarding(&ns.held, on, &what).await?;
        self.spent.add(crate::spent::Work::Settings, since);
        self.did(&what);
        match on {
            true => self.forwarding.insert(id),
            false => self.forwarding.remove(&id),
        };
        Ok(())
    }

    /// A route with its device found in the namespace.
    async fn resolve_route(&self, ns_id: NsId, spec: &RouteSpec) -> LabResult<Route> {
        let ns = self.ns(ns_id)?;
        let device = match &spec.device {
            None => None,
            Some(name) => {
                let found = self.kernel.link_index(&ns.held, name.as_str()).await?;
                let index = found.ok_or_else(|| {
                    LabError::not_found(format!(
                        "route via device {name}: namespace {} has no such link",
                        ns.name
                    ))
                })?;
                Some((name.to_string(), index))
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
        self.act(what, async |w| self.kernel.add_route(&ns.held, &r, w).await)
            .await
    }

    pub async fn remove_route(&self, ns_id: NsId, spec: &RouteSpec) -> LabResult<()> {
        let r = self.resolve_route(ns_id, spec).await?;
        let ns = self.ns(ns_id)?;
        let what = format!("route del {} ({})", describe_route(&r), ns.name);
        self.act(what, async |w| {
            self.kernel.remove_route(&ns.held, &r, w).await
        })
        .await
    }

    /// Every unicast route of every table but local, with protocol, metric and next hops.
    pub async fn route_details(&self, ns_id: NsId) -> LabResult<Vec<RouteDetailView>> {
        let ns = self.ns(ns_id)?;
        let names: BTreeMap<u32, String> = self
            .kernel
            .links(&ns.held, None)
            .await?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        Ok(self
            .kernel
            .routes(&ns.held)
            .await?
            .into_iter()
            .map(|r| RouteDetailView {
                destination: r.destination,
                protocol: route::protocol_name(r.protocol),
                metric: r.metric,
                table: r.table,
                hops: r
                    .hops
                    .into_iter()
                    .map(|h| {
                        (
                            h.gateway,
                            h.oif.and_then(|i| names.get(&i).cloned()),
                            h.weight,
                        )
                    })
                    .collect(),
            })
            .collect())
    }

    /// The main table's routes, IPv4 then IPv6, as `ip route show` lists them: one gateway and
    /// device each, none for a multipath route (route_details has its hops).
    pub async fn routes(&self, ns_id: NsId) -> LabResult<Vec<RouteView>> {
        Ok(self
            .route_details(ns_id)
            .await?
            .into_iter()
            .filter(|r| r.table == route::MAIN_TABLE)
            .map(|r| {
                let (gateway, device) = match <[_; 1]>::try_from(r.hops) {
                    Ok([(gateway, device, _)]) => (gateway, device),
                    Err(_) => (None, None),
                };
                RouteView {
                    destination: r.destination,
                    gateway,
                    device,
                }
            })
            .collect())
    }
}
