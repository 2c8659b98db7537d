//! The map stays true: every source file `docs/ARCHITECTURE.md` names exists, every source file
//! of the workspace is named there, and no module of any crate imports a sibling (or a
//! sibling's descendant) that imports it back. A child using its parent's items is not a cycle;
//! the crates' own layering is held by Cargo.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The source directories of the workspace's crates.
const CRATES: &[&str] = &[
    "crates/core/src",
    "crates/config/src",
    "crates/render/src",
    "crates/daemon/src",
    "src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `a/b.rs` → `["a", "b"]`; `lib.rs`, `main.rs`, `mod.rs` name their directory's module.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "lib" || l == "main" || l == "mod")
    {
        parts.pop();
    }
    parts
}

/// Unit tests (`mod tests` at the end of a file, `*_tests.rs`, `tests.rs`) are left out: they
/// may reach anywhere in their crate.
fn is_test_file(m: &[String]) -> bool {
    m.last()
        .is_some_and(|l| l == "tests" || l.ends_with("_tests") || l == "testutil")
}

/// The code of a file without its comments and its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module a path names: its longest prefix that is a module.
fn resolve(mods: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| mods.contains(p))
}

/// Edges between the modules of one crate, each with the file and text that makes it.
fn edges(src: &Path) -> BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mods: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(src).unwrap()))
        .collect();
    let path_re = Regex::new(r"\b(crate|super)((?:::super)*)((?:::\w+)+)").unwrap();
    let group_re = Regex::new(r"use (crate|super)((?:::super)*)::\{([^;]*)\};").unwrap();
    let mut out: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f.strip_prefix(src).unwrap());
        if is_test_file(&m) {
            continue;
        }
        let text = code(&std::fs::read_to_string(f).unwrap());
        let base_of = |kind: &str, supers: &str| -> Option<Vec<String>> {
            if kind == "crate" {
                return Some(Vec::new());
            }
            let n = 1 + supers.matches("super").count();
            (n <= m.len()).then(|| m[..m.len() - n].to_vec())
        };
        let mut add = |target: Vec<String>, why: &str| {
            // Itself, or an ancestor (a child using its parent's items).
            if target == m || m.starts_with(&target) {
                return;
            }
            out.entry(m.clone())
                .or_default()
                .entry(target)
                .or_insert_with(|| format!("{}: {why}", f.strip_prefix(root()).unwrap().display()));
        };
        for c in path_re.captures_iter(&text) {
            let Some(base) = base_of(&c[1], &c[2]) else {
                continue;
            };
            let mut path = base;
            path.extend(c[3].split("::").filter(|s| !s.is_empty()).map(String::from));
            if let Some(t) = resolve(&mods, &path) {
                add(t, &c[0]);
            }
        }
        for c in group_re.captures_iter(&text) {
            let Some(base) = base_of(&c[1], &c[2]) else {
                continue;
            };
            for item in c[3].split(',') {
                let item = item.trim().split(" as ").next().unwrap_or("");
                if item.is_empty() || item.contains('{') {
                    continue;
                }
                let mut path = base.clone();
                path.extend(item.split("::").map(String::from));
                if let Some(t) = resolve(&mods, &path) {
                    add(t, &c[0]);
                }
            }
        }
    }
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>) -> Vec<Vec<Vec<String>>> {
    struct T<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        next: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flat_map(|e| e.keys()) {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The edges between sibling subtrees: `a::x::y → b::z` (siblings `a` and `b` under their
/// nearest common parent) is an edge `a → b`, so a group of modules that uses another group
/// which uses it back is a cycle too, not only two files that import each other.
fn sibling_edges(
    g: &BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>>,
) -> BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> {
    let mut out: BTreeMap<Vec<String>, BTreeMap<Vec<String>, String>> = BTreeMap::new();
    for (a, targets) in g {
        for (b, why) in targets {
            let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
            // An ancestor or a descendant: a module and its own children.
            if common == a.len() || common == b.len() {
                continue;
            }
            out.entry(a[..=common].to_vec())
                .or_default()
                .entry(b[..=common].to_vec())
                .or_insert_with(|| format!("{} → {}: {why}", a.join("::"), b.join("::")));
        }
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut report = String::new();
    for c in CRATES {
        let g = sibling_edges(&edges(&root().join(c)));
        for comp in cycles(&g) {
            report += &format!(
                "{c}: cycle between {}\n",
                comp.iter()
                    .map(|m| m.join("::"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for a in &comp {
                for (b, why) in g.get(a).into_iter().flatten() {
                    if comp.contains(b) {
                        report += &format!("    {why}\n");
                    }
                }
            }
        }
    }
    assert!(report.is_empty(), "module cycles:\n{report}");
}

/// The source files (`crates/…/src/….rs`, `src/….rs`) ARCHITECTURE names.
fn named_in_architecture() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let re = Regex::new(r"`((?:crates/[a-z_-]+/)?src/[A-Za-z0-9_/.-]+\.rs)`").unwrap();
    re.captures_iter(&doc).map(|c| c[1].to_string()).collect()
}

#[test]
fn architecture_names_every_source_file_and_only_those() {
    let named = named_in_architecture();
    let mut files = Vec::new();
    for c in CRATES {
        rust_files(&root().join(c), &mut files);
    }
    let files: BTreeSet<String> = files
        .iter()
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    let missing: Vec<&String> = named.difference(&files).collect();
    let unnamed: Vec<&String> = files.difference(&named).collect();
    assert!(
        missing.is_empty() && unnamed.is_empty(),
        "docs/ARCHITECTURE.md names files that do not exist: {missing:#?}\n\
         and does not name these source files: {unnamed:#?}"
    );
}
