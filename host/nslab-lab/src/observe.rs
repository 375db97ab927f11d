//! The lab as the kernel has it at the end, for the picture and the report: each link's state
//! and addresses whoever set them (a routing daemon's addresses, a link a program brought
//! down), links programs made, and every namespace's routes. Read once, at the end, and only
//! when something will show it: two requests a namespace.

use std::time::Duration;

use super::kernel::{route, Kernel};
use super::{Lab, LinkKind, LinkNode, Topology};
use crate::input::destination_text;

/// How long reading the kernel may take: past it, the run's own view is shown (a kernel busy
/// with hundreds of daemons' routes can hold its lock for seconds).
const OBSERVE_LIMIT: Duration = Duration::from_secs(5);

/// Addresses every link has without anyone asking: IPv6 link-local, and the loopback's own.
fn automatic(address: &str) -> bool {
    address.starts_with("fe80:") || address.starts_with("127.") || address == "::1/128"
}

impl<K: Kernel> Lab<K> {
    /// The lab as the kernel has it now, on top of what the run built (peers, bridges, shaping
    /// come from the run: the kernel's dump does not say them). The run's own view if the
    /// kernel does not answer within [`OBSERVE_LIMIT`].
    pub async fn observed_topology(&self) -> Topology {
        let built = self.topology();
        match tokio::time::timeout(OBSERVE_LIMIT, self.observe(built.clone())).await {
            Ok(seen) => seen,
            Err(_) => built,
        }
    }

    async fn observe(&self, mut t: Topology) -> Topology {
        for (ns, node) in self.namespaces.values().zip(t.namespaces.iter_mut()) {
            let Ok(links) = self.kernel.links(&ns.held, None).await else {
                continue;
            };
            // Devices by name, as `ip route` shows them.
            let name_of = |index: Option<u32>| {
                let index = index?;
                links
                    .iter()
                    .find(|l| l.index == index)
                    .map(|l| l.name.clone())
            };
            if let Ok(routes) = self.kernel.routes(&ns.held).await {
                node.routes = routes
                    .iter()
                    // The kernel's connected routes are the addresses again.
                    .filter(|r| r.protocol != 2)
                    .map(|r| route_text(r, name_of))
                    .collect();
            }
            for l in &links {
                let addresses: Vec<String> = l
                    .addresses
                    .iter()
                    .filter(|a| !automatic(a))
                    .cloned()
                    .collect();
                match t
                    .links
                    .iter_mut()
                    .find(|n| n.ns == ns.name && n.name == l.name)
                {
                    Some(known) => {
                        known.up = l.up;
                        known.addresses = addresses;
                    }
                    None if l.kind == "loopback" && addresses.is_empty() => {}
                    None => t.links.push(LinkNode {
                        ns: ns.name.clone(),
                        name: l.name.clone(),
                        kind: match l.kind.as_str() {
                            "loopback" => LinkKind::Loopback,
                            "bridge" => LinkKind::Bridge,
                            _ => LinkKind::Other,
                        },
                        peer: None,
                        master: None,
                        addresses,
                        shaping: None,
                        up: l.up,
                    }),
                }
            }
        }
        t
    }
}

/// A route as `ip route` writes it; devices as `names` gives them.
fn route_text(r: &route::Detailed, names: impl Fn(Option<u32>) -> Option<String>) -> String {
    let mut text = destination_text(&r.destination);
    let hop = |h: &route::Hop| {
        let mut s = String::new();
        if let Some(g) = h.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if let Some(d) = names(h.oif) {
            s.push_str(&format!(" dev {d}"));
        }
        s
    };
    match r.hops.as_slice() {
        [one] => text.push_str(&hop(one)),
        many => {
            for h in many {
                text.push_str(&format!(" nexthop{}", hop(h)));
            }
        }
    }
    text.push_str(&format!(" proto {}", route::protocol_name(r.protocol)));
    if let Some(m) = r.metric.filter(|m| *m != 0) {
        text.push_str(&format!(" metric {m}"));
    }
    if r.table != route::MAIN_TABLE {
        text.push_str(&format!(" table {}", r.table));
    }
    text
}
