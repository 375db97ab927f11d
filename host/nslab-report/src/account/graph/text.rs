//! The picture as text for other tools: Graphviz dot and Mermaid, every label quoted.

use std::fmt::Write;

use super::Graph;

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

pub fn dot(g: &Graph) -> String {
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

pub fn mermaid(g: &Graph) -> String {
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
