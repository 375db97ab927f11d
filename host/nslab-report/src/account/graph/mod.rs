//! The picture of the lab: namespaces as boxes listing their interfaces and addresses, bridges
//! as switches, veth pairs and bridge ports as lines labeled with the interface at each end,
//! shaping on its line. The same graph is written as SVG (laid out here: layered from the
//! most connected node, wide layers wrapped into rows so a 100-host LAN stays readable), as
//! Graphviz dot, or as Mermaid.

use std::collections::BTreeMap;

use nslab_lab::{LinkKind, Topology};

mod layout;
mod svg;
mod text;

pub use layout::text_width;
use svg::svg;
use text::{dot, mermaid};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Dot,
    Mermaid,
}

impl Format {
    /// By name, as `--graph-format` takes it or a file's extension gives it.
    pub fn by_name(name: &str) -> Option<Format> {
        match name {
            "svg" => Some(Format::Svg),
            "dot" | "gv" => Some(Format::Dot),
            "mmd" | "mermaid" => Some(Format::Mermaid),
            _ => None,
        }
    }

    /// From a file's extension: .svg, .dot (or .gv), .mmd.
    pub fn for_path(path: &std::path::Path) -> Result<Format, UnknownFormat> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Format::by_name)
            .ok_or_else(|| UnknownFormat(path.to_path_buf()))
    }
}

pub fn render(t: &Topology, format: Format) -> String {
    let g = Graph::of(t);
    match format {
        Format::Svg => svg(&g),
        Format::Dot => dot(&g),
        Format::Mermaid => mermaid(&g),
    }
}

#[derive(Debug)]
struct Node {
    title: String,
    /// Under the title: the namespace's interfaces with their addresses, or a bridge's role.
    lines: Vec<String>,
    bridge: bool,
    router: bool,
}

#[derive(Debug)]
struct Edge {
    a: usize,
    b: usize,
    /// The interface at each end.
    a_label: String,
    b_label: String,
    /// Shaping on either end.
    middle: Option<String>,
    /// A bridge and the namespace it lives in.
    dashed: bool,
    /// A veth pair with either end down: no traffic crosses it.
    down: bool,
}

#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Graph {
    fn of(t: &Topology) -> Graph {
        let mut g = Graph::default();
        let mut at: BTreeMap<(String, String), usize> = BTreeMap::new();
        for ns in &t.namespaces {
            let lines = t
                .links
                .iter()
                .filter(|l| l.ns == ns.name && l.master.is_none() && l.kind != LinkKind::Bridge)
                .filter(|l| l.kind != LinkKind::Loopback || !l.addresses.is_empty())
                .map(|l| interface_line(&l.name, &l.addresses, l.up))
                .collect();
            at.insert((ns.name.clone(), String::new()), g.nodes.len());
            g.nodes.push(Node {
                title: ns.name.clone(),
                lines,
                bridge: false,
                router: ns.forwarding,
            });
        }
        for l in t.links.iter().filter(|l| l.kind == LinkKind::Bridge) {
            let Some(&home) = at.get(&(l.ns.clone(), String::new())) else {
                continue;
            };
            let ports = t
                .links
                .iter()
                .filter(|p| p.ns == l.ns && p.master.as_deref() == Some(&l.name))
                .count();
            let mut lines = vec![format!("switch in {}, {ports} ports", l.ns)];
            lines.extend(l.addresses.iter().cloned());
            at.insert((l.ns.clone(), l.name.clone()), g.nodes.len());
            g.edges.push(Edge {
                a: home,
                b: g.nodes.len(),
                a_label: String::new(),
                b_label: String::new(),
                middle: None,
                dashed: true,
                down: false,
            });
            g.nodes.push(Node {
                title: l.name.clone(),
                lines,
                bridge: true,
                router: false,
            });
        }
        let node_of = |ns: &str, master: &Option<String>| {
            let key = (ns.to_string(), master.clone().unwrap_or_default());
            at.get(&key)
                .or_else(|| at.get(&(ns.to_string(), String::new())))
                .copied()
        };
        for l in t.links.iter().filter(|l| l.kind == LinkKind::Veth) {
            let Some((pns, pname)) = &l.peer else {
                continue;
            };
            // Each pair once; an end whose peer is gone (its namespace deleted) has no line.
            if (&l.ns, &l.name) > (pns, pname) {
                continue;
            }
            let Some(p) = t.links.iter().find(|p| &p.ns == pns && &p.name == pname) else {
                continue;
            };
            let (Some(a), Some(b)) = (node_of(&l.ns, &l.master), node_of(&p.ns, &p.master)) else {
                continue;
            };
            let shaped = [l, p]
                .iter()
                .filter_map(|e| e.shaping.as_ref().map(|s| format!("{}: {s}", e.name)))
                .collect::<Vec<_>>();
            g.edges.push(Edge {
                a,
                b,
                a_label: l.name.clone(),
                b_label: p.name.clone(),
                middle: (!shaped.is_empty()).then(|| shaped.join("; ")),
                dashed: false,
                down: !(l.up && p.up),
            });
        }
        g
    }

    fn degree(&self, n: usize) -> usize {
        self.edges.iter().filter(|e| e.a == n || e.b == n).count()
    }
}

/// A namespace's interface as its box lists it: its name, addresses, and "down" when it is.
fn interface_line(name: &str, addresses: &[String], up: bool) -> String {
    let mut line = name.to_string();
    for a in addresses {
        line.push(' ');
        line.push_str(a);
    }
    if !up {
        line.push_str(" (down)");
    }
    line
}

// ---- SVG ----

#[cfg(test)]
mod tests {
    use super::*;
    use nslab_lab::{LinkNode, NsNode};

    fn end(ns: &str, name: &str, peer: (&str, &str), addr: &str) -> LinkNode {
        LinkNode {
            ns: ns.into(),
            name: name.into(),
            kind: LinkKind::Veth,
            peer: Some((peer.0.into(), peer.1.into())),
            master: None,
            addresses: vec![addr.into()],
            shaping: None,
            up: true,
        }
    }

    /// containerlab's frr01 lab as a scenario brings it over: three routers in a ring
    /// (eth1-eth2), a PC on each (eth3), a daemon's addresses, the router1-router3 link cut.
    fn frr_ring() -> Topology {
        let ns = |n: &str, forwarding| NsNode {
            name: n.into(),
            forwarding,
            routes: Vec::new(),
        };
        let mut links = Vec::new();
        for (a, ai, b, bi, net) in [
            ("router1", "eth1", "router2", "eth1", "10.0.12"),
            ("router1", "eth2", "router3", "eth1", "10.0.13"),
            ("router2", "eth2", "router3", "eth2", "10.0.23"),
            ("router1", "eth3", "pc1", "eth1", "192.168.1"),
            ("router2", "eth3", "pc2", "eth1", "192.168.2"),
            ("router3", "eth3", "pc3", "eth1", "192.168.3"),
        ] {
            let mut x = end(a, ai, (b, bi), &format!("{net}.1/24"));
            let mut y = end(b, bi, (a, ai), &format!("{net}.2/24"));
            if (a, b) == ("router1", "router3") {
                x.up = false;
                y.up = false;
            }
            links.extend([x, y]);
        }
        Topology {
            namespaces: ["router1", "router2", "router3"]
                .map(|r| ns(r, true))
                .into_iter()
                .chain(["pc1", "pc2", "pc3"].map(|p| ns(p, false)))
                .collect(),
            links,
        }
    }

    /// The gallery's lan: hosts on one bridge in a namespace of its own.
    fn lan(hosts: usize) -> Topology {
        let mut t = Topology::default();
        t.namespaces.push(NsNode {
            name: "switch".into(),
            forwarding: false,
            routes: Vec::new(),
        });
        t.links.push(LinkNode {
            ns: "switch".into(),
            name: "br0".into(),
            kind: LinkKind::Bridge,
            peer: None,
            master: None,
            addresses: Vec::new(),
            shaping: None,
            up: true,
        });
        for h in 1..=hosts {
            let host = format!("h{h}");
            let port = format!("sw-h{h}");
            t.namespaces.push(NsNode {
                name: host.clone(),
                forwarding: false,
                routes: Vec::new(),
            });
            t.links.push(end(
                &host,
                "eth0",
                ("switch", &port),
                &format!("10.0.{}.{}/16", h / 250, h % 250 + 1),
            ));
            let mut p = end("switch", &port, (&host, "eth0"), "");
            p.addresses.clear();
            p.master = Some("br0".into());
            t.links.push(p);
        }
        t
    }

    /// Every label the picture draws must be readable: no two overlap, none overlaps a box.
    fn assert_no_overlaps(t: &Topology) {
        let g = Graph::of(t);
        let places = layout::layout(&g).0;
        let labels = svg::labels(&g, &places);
        assert!(!labels.is_empty());
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert!(!a.area.overlaps(&b.area), "{a:?} overlaps {b:?}");
            }
            for (n, p) in places.iter().enumerate() {
                let node = svg::Area::of_place(p);
                assert!(
                    !a.area.overlaps(&node),
                    "{a:?} overlaps the box of {}",
                    g.nodes[n].title
                );
            }
        }
        // And the picture draws exactly these.
        let drawn = render(t, Format::Svg);
        for l in &labels {
            assert!(
                drawn.contains(&format!("x=\"{:.1}\" y=\"{:.1}\"", l.x, l.y)),
                "{l:?}"
            );
        }
    }

    #[test]
    fn no_label_of_the_frr_ring_or_a_100_host_lan_overlaps_another_or_a_box() {
        assert_no_overlaps(&frr_ring());
        assert_no_overlaps(&lan(100));
        assert_no_overlaps(&lan(3));
        assert_no_overlaps(&pair());
    }

    #[test]
    fn a_cut_link_is_drawn_down_and_its_interfaces_say_so() {
        let svg = render(&frr_ring(), Format::Svg);
        assert!(svg.contains("eth2 10.0.13.1/24 (down)"), "{svg}");
        assert!(
            svg.contains("router1 eth2 &lt;-&gt; router3 eth1 (down)"),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"down\"").count(), 1, "{svg}");
        let g = Graph::of(&frr_ring());
        assert_eq!(g.edges.iter().filter(|e| e.down).count(), 1);
    }

    fn pair() -> Topology {
        let ns = |n: &str| NsNode {
            name: n.into(),
            forwarding: false,
            routes: Vec::new(),
        };
        let mut a = end("a", "a\"0", ("b", "b0"), "10.0.0.1/24");
        a.shaping = Some("rate 10Mbit".into());
        Topology {
            namespaces: vec![ns("a"), ns("b")],
            links: vec![a, end("b", "b0", ("a", "a\"0"), "10.0.0.2/24")],
        }
    }

    #[test]
    fn shaping_is_written_on_its_line_and_names_are_escaped_for_each_format() {
        let t = pair();
        let svg = render(&t, Format::Svg);
        assert!(svg.contains(">a&quot;0: rate 10Mbit</text>"), "{svg}");
        assert!(svg.contains(">a&quot;0 10.0.0.1/24</text>"), "{svg}");
        let dot = render(&t, Format::Dot);
        assert!(
            dot.contains(
                r#"n0 -- n1 [taillabel="a\"0", headlabel="b0", label="a\"0: rate 10Mbit"];"#
            ),
            "{dot}"
        );
        let mmd = render(&t, Format::Mermaid);
        assert!(
            mmd.contains(r#"n0 ---|"a#quot;0 - b0 (a#quot;0: rate 10Mbit)"| n1"#),
            "{mmd}"
        );
    }

    #[test]
    fn a_pair_whose_other_end_is_gone_has_no_line() {
        let mut t = pair();
        t.links.pop();
        t.namespaces.pop();
        let g = Graph::of(&t);
        assert_eq!((g.nodes.len(), g.edges.len()), (1, 0));
    }

    #[test]
    fn the_format_is_chosen_by_extension() {
        let f = |p: &str| Format::for_path(std::path::Path::new(p));
        assert_eq!(f("x.svg"), Ok(Format::Svg));
        assert_eq!(f("x.gv"), Ok(Format::Dot));
        assert_eq!(f("x.mmd"), Ok(Format::Mermaid));
        assert!(f("x.png")
            .unwrap_err()
            .to_string()
            .contains(".svg, .dot (Graphviz) or .mmd"));
    }
}
/// A path whose extension names no format of the picture.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--graph {}: the picture's format is chosen by the file's extension: .svg, .dot \
     (Graphviz) or .mmd (Mermaid); where the path has none, name it with --graph-format \
     (--graph /dev/stdout --graph-format dot)",
    .0.display()
)]
pub struct UnknownFormat(pub std::path::PathBuf);
