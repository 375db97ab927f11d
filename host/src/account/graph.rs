//! The picture of the lab: namespaces as boxes listing their interfaces and addresses, bridges
//! as switches, veth pairs and bridge ports as lines labeled with the interface at each end,
//! shaping on its line. The same graph is written as SVG (laid out here: layered from the
//! most connected node, wide layers wrapped into rows so a 100-host LAN stays readable), as
//! Graphviz dot, or as Mermaid.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use super::{escape as esc, LinkKind, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Dot,
    Mermaid,
}

impl Format {
    /// From a file's extension: .svg, .dot (or .gv), .mmd.
    pub fn for_path(path: &std::path::Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => Ok(Format::Svg),
            Some("dot" | "gv") => Ok(Format::Dot),
            Some("mmd" | "mermaid") => Ok(Format::Mermaid),
            _ => Err(format!(
                "--graph {}: the picture's format is chosen by the file's extension: \
                 .svg, .dot (Graphviz) or .mmd (Mermaid)",
                path.display()
            )),
        }
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
                .map(|l| interface_line(&l.name, &l.addresses))
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
            });
        }
        g
    }

    fn degree(&self, n: usize) -> usize {
        self.edges.iter().filter(|e| e.a == n || e.b == n).count()
    }
}

fn interface_line(name: &str, addresses: &[String]) -> String {
    match addresses.is_empty() {
        true => name.to_string(),
        false => format!("{name} {}", addresses.join(" ")),
    }
}

// ---- SVG ----

const FONT: f64 = 12.0;
const SMALL: f64 = 10.0;
/// Average glyph width of the sans-serif font, as a share of its size.
const GLYPH: f64 = 0.62;
const LINE: f64 = 15.0;
const PAD: f64 = 8.0;
const H_GAP: f64 = 44.0;
const V_GAP: f64 = 64.0;
const MARGIN: f64 = 20.0;
/// More nodes than this in a layer wrap into rows.
const ROW: usize = 10;
/// Endpoint labels are drawn at nodes with at most this many lines (more would pile up; the
/// node then names its interfaces itself, and each line's tooltip names both ends).
const LABELED_DEGREE: usize = 8;

pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * GLYPH
}

#[derive(Debug, Clone, Copy)]
struct Place {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Place {
    fn center(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Where the segment from the center toward (tx, ty) leaves the box.
    fn exit_toward(&self, tx: f64, ty: f64) -> (f64, f64, f64, f64) {
        let (cx, cy) = self.center();
        let (dx, dy) = (tx - cx, ty - cy);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let sx = if dx.abs() < 1e-9 {
            f64::INFINITY
        } else {
            self.w / 2.0 / dx.abs()
        };
        let sy = if dy.abs() < 1e-9 {
            f64::INFINITY
        } else {
            self.h / 2.0 / dy.abs()
        };
        let s = sx.min(sy);
        (cx + dx * s, cy + dy * s, dx / len, dy / len)
    }
}

fn size(n: &Node) -> (f64, f64) {
    let widest = n
        .lines
        .iter()
        .map(|l| text_width(l, SMALL))
        .fold(text_width(&n.title, FONT), f64::max);
    (
        (widest + 2.0 * PAD).max(64.0),
        LINE * (1 + n.lines.len()) as f64 + PAD,
    )
}

/// Layered layout: each connected part from its most connected node, breadth first; a layer
/// wider than [`ROW`] wraps into rows; parts side by side.
fn layout(g: &Graph) -> (Vec<Place>, f64, f64) {
    let n = g.nodes.len();
    let mut adj = vec![Vec::new(); n];
    for e in &g.edges {
        adj[e.a].push(e.b);
        adj[e.b].push(e.a);
    }
    let sizes: Vec<(f64, f64)> = g.nodes.iter().map(size).collect();
    let mut places = vec![
        Place {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0
        };
        n
    ];
    let mut seen = vec![false; n];
    let (mut left, mut height) = (MARGIN, MARGIN);
    for start in 0..n {
        if seen[start] {
            continue;
        }
        // The part's nodes, then its most connected one as the root.
        let mut part = vec![start];
        seen[start] = true;
        let mut i = 0;
        while i < part.len() {
            for &m in &adj[part[i]] {
                if !seen[m] {
                    seen[m] = true;
                    part.push(m);
                }
            }
            i += 1;
        }
        let root = *part
            .iter()
            .max_by_key(|&&m| (adj[m].len(), std::cmp::Reverse(m)))
            .expect("a part has a node");
        let mut layer_of = BTreeMap::new();
        layer_of.insert(root, 0usize);
        let mut layers: Vec<Vec<usize>> = vec![vec![root]];
        let mut queue = VecDeque::from([root]);
        while let Some(m) = queue.pop_front() {
            let next = layer_of[&m] + 1;
            for &k in &adj[m] {
                if let std::collections::btree_map::Entry::Vacant(v) = layer_of.entry(k) {
                    v.insert(next);
                    if layers.len() <= next {
                        layers.push(Vec::new());
                    }
                    layers[next].push(k);
                    queue.push_back(k);
                }
            }
        }
        // A wide layer wraps into rows with a lane down the middle, where a hub's cables run
        // (see `svg`): (row, whether it has the lane).
        let rows: Vec<(&[usize], bool)> = layers
            .iter()
            .flat_map(|l| l.chunks(ROW).map(move |r| (r, l.len() > ROW)))
            .collect();
        let row_width = |(r, lane): (&[usize], bool)| {
            r.iter().map(|&m| sizes[m].0).sum::<f64>()
                + H_GAP * (r.len() - 1) as f64
                + if lane { H_GAP } else { 0.0 }
        };
        let width = rows.iter().map(|&r| row_width(r)).fold(0.0, f64::max);
        let mut y = MARGIN;
        for (row, lane) in rows {
            let mut x = left + (width - row_width((row, lane))) / 2.0;
            let tallest = row.iter().map(|&m| sizes[m].1).fold(0.0, f64::max);
            for (k, &m) in row.iter().enumerate() {
                if lane && k == row.len().div_ceil(2) {
                    x += H_GAP;
                }
                let (w, h) = sizes[m];
                places[m] = Place { x, y, w, h };
                x += w + H_GAP;
            }
            y += tallest + V_GAP;
        }
        left += width + H_GAP * 2.0;
        height = f64::max(height, y - V_GAP + MARGIN);
    }
    (places, left - H_GAP * 2.0 + MARGIN, height)
}

/// A cable's path. A hub's cables to nodes rows below run as a bus: down the lane, along the
/// gap above the node's row, down into the node; every other cable is a straight line.
fn route(g: &Graph, e: &Edge, a: Place, b: Place) -> String {
    let ((ax, ay), (bx, by)) = (a.center(), b.center());
    let (upper, lower, hub) = if ay <= by { (a, b, e.a) } else { (b, a, e.b) };
    if g.degree(hub) > LABELED_DEGREE && lower.y > upper.y + upper.h {
        let (x1, y1) = (upper.x + upper.w / 2.0, upper.y + upper.h);
        let (x2, y2) = (lower.x + lower.w / 2.0, lower.y);
        let channel = y2 - V_GAP / 2.0;
        return format!("M{x1:.1} {y1:.1} V{channel:.1} H{x2:.1} V{y2:.1}");
    }
    format!("M{ax:.1} {ay:.1} L{bx:.1} {by:.1}")
}

fn svg(g: &Graph) -> String {
    let (places, width, height) = layout(g);
    let (width, height) = (width.max(200.0), height.max(60.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" class="nslab-topology">"#
    );
    let _ = writeln!(
        s,
        "<title>{}</title>",
        esc(&format!(
            "the lab: {} namespaces, {} bridges, {} veth pairs",
            g.nodes.iter().filter(|n| !n.bridge).count(),
            g.nodes.iter().filter(|n| n.bridge).count(),
            g.edges.iter().filter(|e| !e.dashed).count()
        ))
    );
    if g.nodes.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="20" y="34" font-size="{FONT}" fill="#666">(the scenario built nothing)</text>"##
        );
    }
    s.push_str("<g class=\"links\">\n");
    for e in &g.edges {
        let (a, b) = (places[e.a], places[e.b]);
        let dash = if e.dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let title = esc(&match e.dashed {
            true => format!("{} lives in {}", g.nodes[e.b].title, g.nodes[e.a].title),
            false => format!(
                "{} {} <-> {} {}",
                g.nodes[e.a].title, e.a_label, g.nodes[e.b].title, e.b_label
            ),
        });
        let _ = writeln!(
            s,
            r##"<path d="{}" fill="none" stroke="#8a94a6" stroke-width="1.5"{dash}><title>{title}</title></path>"##,
            route(g, e, a, b)
        );
    }
    s.push_str("</g>\n<g class=\"nodes\">\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let p = places[i];
        let (fill, stroke, rx) = match (n.bridge, n.router) {
            (true, _) => ("#fff4e0", "#d08a1a", 2.0),
            (_, true) => ("#e8f4ea", "#3c8a4e", 8.0),
            _ => ("#eaf1fb", "#3b6db3", 8.0),
        };
        let kind = match (n.bridge, n.router) {
            (true, _) => "bridge",
            (_, true) => "router",
            _ => "namespace",
        };
        let _ = writeln!(
            s,
            r#"<g class="node {kind}"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>"#,
            p.x, p.y, p.w, p.h
        );
        let cx = p.x + p.w / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{:.1}" font-size="{FONT}" font-weight="bold" text-anchor="middle">{}</text>"#,
            p.y + LINE,
            esc(&n.title)
        );
        for (k, line) in n.lines.iter().enumerate() {
            let _ = writeln!(
                s,
                r##"<text x="{cx:.1}" y="{:.1}" font-size="{SMALL}" fill="#333" text-anchor="middle">{}</text>"##,
                p.y + LINE * (k + 2) as f64,
                esc(line)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</g>\n<g class=\"labels\">\n");
    for e in g.edges.iter().filter(|e| !e.dashed) {
        let (a, b) = (places[e.a], places[e.b]);
        for (at, other, label, node) in [(a, b, &e.a_label, e.a), (b, a, &e.b_label, e.b)] {
            if label.is_empty() || g.degree(node) > LABELED_DEGREE {
                continue;
            }
            // Just outside the box, along its cable (which a bus brings in from above).
            let bus = route(g, e, a, b).contains('V');
            let (ox, oy) = if bus {
                let (cx, _) = at.center();
                (cx, other.y)
            } else {
                other.center()
            };
            let (x, y, ux, uy) = at.exit_toward(ox, oy);
            let (lx, ly) = (x + ux * 14.0, y + uy * 14.0 + SMALL * 0.35);
            let _ = writeln!(
                s,
                r##"<text class="end" x="{lx:.1}" y="{ly:.1}" font-size="{SMALL}" text-anchor="middle" fill="#1d2b45" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}</text>"##,
                esc(label)
            );
        }
        if let Some(m) = &e.middle {
            let ((ax, ay), (bx, by)) = (a.center(), b.center());
            let _ = writeln!(
                s,
                r##"<text class="shaping" x="{:.1}" y="{:.1}" font-size="{SMALL}" text-anchor="middle" fill="#a33" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}</text>"##,
                (ax + bx) / 2.0,
                (ay + by) / 2.0,
                esc(m)
            );
        }
    }
    s.push_str("</g>\n</svg>\n");
    s
}

// ---- dot and Mermaid ----

fn dot_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dot(g: &Graph) -> String {
    let mut s = String::from(
        "graph lab {\n  graph [fontname=\"sans-serif\"];\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eaf1fb\", fontname=\"sans-serif\"];\n  edge [fontname=\"sans-serif\", fontsize=10];\n",
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let label = std::iter::once(n.title.as_str())
            .chain(n.lines.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("\n");
        let style = match (n.bridge, n.router) {
            (true, _) => ", shape=hexagon, style=filled, fillcolor=\"#fff4e0\"",
            (_, true) => ", fillcolor=\"#e8f4ea\"",
            _ => "",
        };
        let _ = writeln!(s, "  n{i} [label={}{style}];", dot_quote(&label));
    }
    for e in &g.edges {
        let mut attrs = Vec::new();
        if e.dashed {
            attrs.push("style=dashed".to_string());
        }
        if !e.a_label.is_empty() {
            attrs.push(format!("taillabel={}", dot_quote(&e.a_label)));
        }
        if !e.b_label.is_empty() {
            attrs.push(format!("headlabel={}", dot_quote(&e.b_label)));
        }
        if let Some(m) = &e.middle {
            attrs.push(format!("label={}", dot_quote(m)));
        }
        let _ = writeln!(s, "  n{} -- n{} [{}];", e.a, e.b, attrs.join(", "));
    }
    s.push_str("}\n");
    s
}

/// Mermaid's label text: quotes and markup characters as its entity codes.
fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => "#quot;".to_string(),
            '<' => "#lt;".to_string(),
            '>' => "#gt;".to_string(),
            '#' => "#35;".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn mermaid(g: &Graph) -> String {
    let mut s = String::from("graph TD\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let label = std::iter::once(n.title.as_str())
            .chain(n.lines.iter().map(String::as_str))
            .map(mermaid_text)
            .collect::<Vec<_>>()
            .join("<br/>");
        let _ = match n.bridge {
            true => writeln!(s, "  n{i}{{{{\"{label}\"}}}}"),
            false => writeln!(s, "  n{i}[\"{label}\"]"),
        };
    }
    for e in &g.edges {
        let mut label = match (e.a_label.is_empty(), e.b_label.is_empty()) {
            (true, true) => String::new(),
            _ => format!("{} - {}", e.a_label, e.b_label),
        };
        if let Some(m) = &e.middle {
            label = format!("{label} ({m})");
        }
        let _ = match (e.dashed, label.is_empty()) {
            (true, _) => writeln!(s, "  n{} -.- n{}", e.a, e.b),
            (false, true) => writeln!(s, "  n{} --- n{}", e.a, e.b),
            (false, false) => writeln!(s, "  n{} ---|\"{}\"| n{}", e.a, mermaid_text(&label), e.b),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{LinkNode, NsNode};

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

    fn pair() -> Topology {
        let ns = |n: &str| NsNode {
            name: n.into(),
            forwarding: false,
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
            .contains(".svg, .dot (Graphviz) or .mmd"));
    }
}
