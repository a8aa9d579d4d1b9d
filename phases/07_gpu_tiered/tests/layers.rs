//! The library's module graph: no module uses one in a layer after its own,
//! and no modules use each other, directly or around a loop (the layers are
//! listed in `src/lib.rs`).
//!
//! The graph is read from the sources: every `crate::a::b` and `super::a`
//! path in code (comments and `#[cfg(test)]` modules left out, since tests
//! may use anything) is an edge from the file's module to the longest module
//! the path names. A method call does not show up as a path, so an `impl`
//! block in one module for a type of another (the read layer's
//! `impl Engine`) counts as what it is: a use of the type's module. A
//! folder's `mod.rs` naming its own children (`mod warm; pub use
//! warm::GpuWarm`) is not an edge: a folder is one unit, whose children
//! may use their parent (`super::Gpu`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, first to last, as `src/lib.rs` lists them.
const LAYERS: [&[&str]; 7] = [
    &["error", "schema", "config", "filter", "gen", "output"],
    &["agg"],
    &["store"],
    &["engine"],
    &["read"],
    &["ingest"],
    &["api"],
];

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS and lib.rs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/store/gpu/mod.rs` -> `store::gpu`; `src/lib.rs` -> ``.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file: comments and its test module (from a
/// `#[cfg(test)]` followed by `mod`, which the style puts last) removed.
fn code(text: &str) -> String {
    let test_module = text
        .match_indices("#[cfg(test)]")
        .find(|(i, m)| text[i + m.len()..].trim_start().starts_with("mod "));
    let text = match test_module {
        Some((i, _)) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths after `prefix` in `code`: `crate::store::cold::{self, X}` gives
/// `store::cold::`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
}

/// What `src/lib.rs` re-exports at the root, and the modules they are from.
const ROOT_EXPORTS: [(&str, &str); 5] = [
    ("Config", "config"),
    ("Engine", "engine"),
    ("Error", "error"),
    ("Result", "error"),
    ("Mode", "schema"),
];

/// The longest module in `modules` that `path` starts with (a root
/// re-export stands for its module).
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    if let Some((_, m)) = ROOT_EXPORTS.iter().find(|(e, _)| parts.first() == Some(e)) {
        parts[0] = m;
    }
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let me = module_of(&src, f);
        let text = code(&std::fs::read_to_string(f).unwrap());
        let mut to = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            if let Some(m) = resolve(p, &modules) {
                to.insert(m);
            }
        }
        // `super::` from a file module is its parent module.
        let parent = me.rsplit_once("::").map_or("", |(p, _)| p);
        for p in paths_after(&text, "super::") {
            let full = if parent.is_empty() {
                p.to_string()
            } else {
                format!("{parent}::{p}")
            };
            to.insert(resolve(&full, &modules).unwrap_or_else(|| parent.to_string()));
        }
        to.remove(&me);
        to.remove("");
        edges.insert(me, to);
    }
    edges.remove("");
    edges
}

#[test]
fn no_module_uses_one_in_a_later_layer() {
    let g = graph();
    assert!(
        g.len() > 20,
        "found only {} modules: {:?}",
        g.len(),
        g.keys()
    );
    let upward: Vec<String> = g
        .iter()
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| layer(t) > layer(from))
                .map(move |t| format!("{from} -> {t}"))
        })
        .collect();
    assert!(upward.is_empty(), "uses of a later layer: {upward:#?}");
}

#[test]
fn the_module_graph_has_no_cycles() {
    let g = graph();
    // Depth-first search; a module met again while on the stack closes a loop.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        stack.push(m.to_string());
        for t in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(t, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(cycle) = visit(m, &g, &mut Vec::new(), &mut done) {
            panic!("a loop of uses: {}", cycle.join(" -> "));
        }
    }
}

/// The reader of the graph must see what it checks: a known edge of each
/// kind is found (else the tests above would pass on an empty graph).
#[test]
fn the_graph_sees_crate_and_super_paths() {
    let g = graph();
    let has = |a: &str, b: &str| g.get(a).is_some_and(|t| t.contains(b));
    assert!(has("read::query", "engine"), "{g:#?}");
    assert!(has("engine::open", "engine::recovery"), "{g:#?}");
    assert!(has("store::gpu::warm", "store::gpu"), "{g:#?}");
    assert!(has("store::cold", "config"), "{g:#?}");
    // `crate::Result`, a root re-export, is a use of `error`.
    assert!(has("api::server", "error"), "{g:#?}");
}
