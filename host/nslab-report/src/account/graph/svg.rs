//! The picture as SVG, laid out by layout.rs; every text escaped.

use std::fmt::Write;

use super::layout::*;
use super::Graph;
use crate::account::escape as esc;

pub fn svg(g: &Graph) -> String {
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
        let (stroke, dash, class) = match (e.dashed, e.down) {
            (true, _) => ("#8a94a6", r#" stroke-dasharray="4 3""#, "bridge"),
            (_, true) => ("#c0392b", r#" stroke-dasharray="2 4""#, "down"),
            _ => ("#8a94a6", "", "up"),
        };
        let title = esc(&match e.dashed {
            true => format!("{} lives in {}", g.nodes[e.b].title, g.nodes[e.a].title),
            false => format!(
                "{} {} <-> {} {}{}",
                g.nodes[e.a].title,
                e.a_label,
                g.nodes[e.b].title,
                e.b_label,
                if e.down { " (down)" } else { "" }
            ),
        });
        let _ = writeln!(
            s,
            r##"<path class="{class}" d="{}" fill="none" stroke="{stroke}" stroke-width="1.5"{dash}><title>{title}</title></path>"##,
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
    for l in labels(g, &places) {
        let fill = match l.class {
            "end" => "#1d2b45",
            _ => "#a33",
        };
        let _ = writeln!(
            s,
            r##"<text class="{}" x="{:.1}" y="{:.1}" font-size="{SMALL}" text-anchor="middle" fill="{fill}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}</text>"##,
            l.class,
            l.x,
            l.y,
            esc(&l.text)
        );
    }
    s.push_str("</g>\n</svg>\n");
    s
}

// ---- dot and Mermaid ----

/// A rectangle of the picture: (x0, y0) top left, (x1, y1) bottom right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Area {
    pub fn of_place(p: &Place) -> Area {
        Area {
            x0: p.x,
            y0: p.y,
            x1: p.x + p.w,
            y1: p.y + p.h,
        }
    }

    /// The box of a line of small text centered at `x` on the baseline `y`.
    fn of_text(text: &str, x: f64, y: f64) -> Area {
        let half = text_width(text, SMALL) / 2.0 + 1.5;
        Area {
            x0: x - half,
            y0: y - SMALL,
            x1: x + half,
            y1: y + SMALL * 0.3,
        }
    }

    pub fn overlaps(&self, o: &Area) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// A label on a cable: an interface's name at its end, or what is on the cable in its middle
/// (shaping, "down").
#[derive(Debug, Clone)]
pub struct Label {
    pub x: f64,
    /// The baseline.
    pub y: f64,
    pub text: String,
    pub class: &'static str,
    pub area: Area,
}

/// Where each cable's labels go: the first of a few places along the cable (and beside it)
/// where the text covers no box and no label placed before it. A crowded spot tries farther
/// out; a label with no free place keeps the nearest.
pub fn labels(g: &Graph, places: &[Place]) -> Vec<Label> {
    let boxes: Vec<Area> = places.iter().map(Area::of_place).collect();
    let mut placed: Vec<Label> = Vec::new();
    let mut put = |text: &str, class: &'static str, candidates: Vec<(f64, f64)>| {
        let fits = |area: &Area, placed: &[Label]| {
            !boxes.iter().any(|b| b.overlaps(area)) && !placed.iter().any(|l| l.area.overlaps(area))
        };
        let choice = candidates
            .iter()
            .copied()
            .find(|&(x, y)| fits(&Area::of_text(text, x, y), &placed))
            .or_else(|| candidates.first().copied());
        if let Some((x, y)) = choice {
            placed.push(Label {
                x,
                y,
                text: text.to_string(),
                class,
                area: Area::of_text(text, x, y),
            });
        }
    };
    for e in g.edges.iter().filter(|e| !e.dashed) {
        let (a, b) = (places[e.a], places[e.b]);
        for (at, other, label, node) in [(a, b, &e.a_label, e.a), (b, a, &e.b_label, e.b)] {
            if label.is_empty() || g.degree(node) > LABELED_DEGREE {
                continue;
            }
            // Just outside the box, along its cable (which a bus brings in from above); then
            // farther along it, then beside it.
            let bus = route(g, e, a, b).contains('V');
            let (ox, oy) = if bus {
                let (cx, _) = at.center();
                (cx, other.y)
            } else {
                other.center()
            };
            let (x, y, ux, uy) = at.exit_toward(ox, oy);
            let mut candidates = Vec::new();
            for side in [0.0, 1.0, -1.0] {
                for out in [14.0, 26.0, 40.0, 56.0, 74.0] {
                    let (px, py) = (-uy * side * (SMALL + 4.0), ux * side * (SMALL + 4.0));
                    candidates.push((x + ux * out + px, y + uy * out + py + SMALL * 0.35));
                }
            }
            put(label, "end", candidates);
        }
        let middle = match (&e.middle, e.down) {
            (Some(m), true) => Some(format!("down; {m}")),
            (None, true) => Some("down".to_string()),
            (m, false) => m.clone(),
        };
        if let Some(m) = middle {
            let ((ax, ay), (bx, by)) = (a.center(), b.center());
            let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
            let candidates = [0.0, -14.0, 14.0, -28.0, 28.0]
                .into_iter()
                .map(|dy| (mx, my + dy))
                .collect();
            put(&m, if e.down { "state" } else { "shaping" }, candidates);
        }
    }
    placed
}
