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

/// The code of a file: comments, string and character literals blanked
/// (so that neither `//` in a string nor a path in a comment counts), and
/// every `#[cfg(test)]` module (`mod name { ... }`, matched by its braces)
/// removed, wherever it stands.
fn code(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && !b[..i]
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') =>
            {
                // r"..." or r#"..."#
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                // A character literal ('x', '\n', '\''), not a lifetime.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("' '");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    // Test modules, by brace matching.
    while let Some(at) = out.find("#[cfg(test)]") {
        let rest = &out[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        let start = out.len() - item.len();
        let end = if item.starts_with("mod ") {
            match (item.find('{'), item.find(';')) {
                (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                    let mut depth = 0;
                    let mut end = item.len();
                    for (k, c) in item[open..].char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = open + k + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    start + end
                }
                // `#[cfg(test)] mod name;`: its file is a test file too.
                _ => start + item.find(';').map_or(item.len(), |s| s + 1),
            }
        } else {
            // Another item under #[cfg(test)] (a `use`, a function): only
            // the attribute goes; the item still counts.
            at + "#[cfg(test)]".len()
        };
        out.replace_range(at..end, "");
    }
    out
}

/// The paths in `code` that start with `prefix` (`crate::`, `super::`),
/// with `use` groups expanded: `crate::{engine::Engine, store::{wal, cold}}`
/// gives `engine::Engine`, `store::wal` and `store::cold`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    fn expand(tree: &str, base: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim().trim_end_matches("::");
            let base = join(base, head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut from = 0;
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[from..k], &base, out);
                        from = k + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[from..], &base, out);
        } else {
            let leaf = tree.split(" as ").next().unwrap_or(tree).trim();
            if leaf != "self" && !leaf.is_empty() {
                out.push(join(base, leaf));
            } else {
                out.push(base.to_string());
            }
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + prefix.len()..];
        // The path runs to the end of its use-tree: balanced braces, then a
        // character that cannot continue a path.
        let mut depth = 0;
        let mut end = after.len();
        for (k, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => {
                    end = k;
                    break;
                }
                _ => {}
            }
        }
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            expand(&after[..end], "", &mut out);
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
        let text = code(&std::fs::read_to_string(f).unwrap()).replace("self::super::", "super::");
        let mut to = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            if let Some(m) = resolve(&p, &modules) {
                to.insert(m);
            }
        }
        // `super::` from a file module is its parent module; each further
        // `super::` one more up.
        for p in paths_after(&text, "super::") {
            let mut parent = me.rsplit_once("::").map_or("", |(p, _)| p).to_string();
            let mut p = p.as_str();
            while let Some(rest) = p.strip_prefix("super::").or((p == "super").then_some("")) {
                parent = parent.rsplit_once("::").map_or("", |(p, _)| p).to_string();
                p = rest;
            }
            let full = match (parent.is_empty(), p.is_empty()) {
                (true, _) => p.to_string(),
                (_, true) => parent.clone(),
                _ => format!("{parent}::{p}"),
            };
            to.insert(resolve(&full, &modules).unwrap_or(parent));
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
