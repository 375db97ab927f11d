//! Where each node of the picture goes: layered from the most connected node, wide layers
//! wrapped into rows, each node sized by its text.

use std::collections::{BTreeMap, VecDeque};

use super::{Edge, Graph, Node};

pub(super) const FONT: f64 = 12.0;
pub(super) const SMALL: f64 = 10.0;
/// Average glyph width of the sans-serif font, as a share of its size.
pub(super) const GLYPH: f64 = 0.62;
pub(super) const LINE: f64 = 15.0;
pub(super) const PAD: f64 = 8.0;
pub(super) const H_GAP: f64 = 44.0;
pub(super) const V_GAP: f64 = 64.0;
pub(super) const MARGIN: f64 = 20.0;
/// More nodes than this in a layer wrap into rows.
pub(super) const ROW: usize = 10;
/// Endpoint labels are drawn at nodes with at most this many lines (more would pile up; the
/// node then names its interfaces itself, and each line's tooltip names both ends).
pub(super) const LABELED_DEGREE: usize = 8;

pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * GLYPH
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
}

impl Place {
    pub(super) fn center(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Where the segment from the center toward (tx, ty) leaves the box.
    pub(super) fn exit_toward(&self, tx: f64, ty: f64) -> (f64, f64, f64, f64) {
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

pub(super) fn size(n: &Node) -> (f64, f64) {
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
pub(super) fn layout(g: &Graph) -> (Vec<Place>, f64, f64) {
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
pub(super) fn route(g: &Graph, e: &Edge, a: Place, b: Place) -> String {
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
