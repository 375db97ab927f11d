//! The shape of the host's code, read from its sources, in what its crates cannot say by
//! themselves: inside each crate, no module depends on one that depends on it back, at any
//! level; no file is longer than 450 lines before its tests. Which layer may use which is the
//! crates' own dependencies (host/*/Cargo.toml), which cargo keeps acyclic. (No root, no lab:
//! a reading of `host/*/src`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root (`["lab", "kernel", "netns"]`).
type Module = Vec<String>;

/// The workspace's host crates, each a directory under host/.
const CRATES: [&str; 4] = ["nslab-lab", "nslab-report", "nslab-host", "runner"];

/// A crate's modules and their files.
fn sources(krate: &str) -> BTreeMap<Module, PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            found.insert(module, path);
        }
    }
    found
}

/// A file's code before its tests, without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree names, with its braces expanded: `a::{b, c::d}` is `a::b`, `a::c::d`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::");
        let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let joined = join(prefix, head);
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&joined, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&joined, &inner[start..], out);
    } else if !tree.is_empty() {
        out.push(join(prefix, tree.split(" as ").next().unwrap_or(tree)));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// The paths a file names that start at `crate`, `super` or `self`.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // A `use` item starts a line (after any visibility) and ends at its semicolon.
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let item = line.trim_start();
        let item = match item.strip_prefix("pub") {
            Some(rest) if rest.starts_with('(') => rest.split_once(')').map_or("", |(_, r)| r),
            Some(rest) => rest,
            None => item,
        };
        let Some(tree) = item.trim_start().strip_prefix("use ") else {
            continue;
        };
        let from = start + (line.len() - tree.len());
        if let Some(end) = code[from..].find(';') {
            let tree: String = code[from..from + end].split_whitespace().collect();
            expand("", &tree, &mut out);
        }
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_string());
        }
    }
    out.retain(|p| p.starts_with("crate") || p.starts_with("super") || p.starts_with("self"));
    out
}

/// The module a path names, in `modules`: its longest prefix that is one.
fn resolve(from: &Module, path: &str, modules: &BTreeMap<Module, PathBuf>) -> Module {
    let mut parts = path.split("::").peekable();
    let mut at: Module = match parts.peek().copied() {
        Some("crate") => {
            parts.next();
            Vec::new()
        }
        _ => from.clone(),
    };
    while let Some(&p) = parts.peek() {
        match p {
            "super" => {
                at.pop();
            }
            "self" => {}
            _ => break,
        }
        parts.next();
    }
    for p in parts {
        let mut next = at.clone();
        next.push(p.to_string());
        if !modules.contains_key(&next) {
            break;
        }
        at = next;
    }
    at
}

/// Each module's dependencies in a crate, as edges between siblings under their common parent.
fn edges(krate: &str) -> BTreeMap<Module, BTreeSet<(String, String)>> {
    let modules = sources(krate);
    let mut edges: BTreeMap<Module, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, path) in &modules {
        for p in paths(&code(path)) {
            let target = resolve(module, &p, &modules);
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // within one module, or between a module and its own parent
            }
            edges
                .entry(module[..common].to_vec())
                .or_default()
                .insert((module[common].clone(), target[common].clone()));
        }
    }
    edges
}

/// A cycle in the graph of `edges`, if there is one.
fn cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| *p == n) {
            return Some(path[at..].iter().map(|s| s.to_string()).collect());
        }
        if !done.insert(n) {
            return None;
        }
        path.push(n);
        for m in next.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    next.keys()
        .find_map(|n| visit(n, &next, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_depends_on_one_that_depends_on_it_back() {
    let mut circles = Vec::new();
    for krate in CRATES {
        let edges = edges(krate);
        assert!(
            !edges.is_empty(),
            "the reading found the modules of {krate}"
        );
        circles.extend(edges.iter().filter_map(|(parent, e)| {
            cycle(e).map(|c| format!("in {krate}::{}: {}", parent.join("::"), c.join(" -> ")))
        }));
    }
    assert!(
        edges("nslab-lab").contains_key(&vec!["programs".to_string()]),
        "the reading found the lab's rooms"
    );
    assert!(circles.is_empty(), "module circles: {circles:#?}");
}

#[test]
fn no_file_is_longer_than_450_lines_before_its_tests() {
    let long: Vec<String> = CRATES
        .iter()
        .flat_map(|krate| sources(krate).into_values())
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let before = text
                .lines()
                .position(|l| l.starts_with("#[cfg(test)]"))
                .unwrap_or(text.lines().count());
            (before > 450).then(|| format!("{}: {before}", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn the_reading_sees_a_circle_when_there_is_one() {
    // The check itself can fail: a circle of three, and a clean chain.
    let set = |pairs: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert!(cycle(&set(&[("a", "b"), ("b", "c"), ("c", "a")])).is_some());
    assert!(cycle(&set(&[("a", "b"), ("b", "c"), ("a", "c")])).is_none());
    let mut out = Vec::new();
    expand(
        "",
        "crate::programs::{kernel::{Kernel,Netlink},Lab}",
        &mut out,
    );
    assert_eq!(
        out,
        [
            "crate::programs::kernel::Kernel",
            "crate::programs::kernel::Netlink",
            "crate::programs::Lab"
        ]
    );
}
