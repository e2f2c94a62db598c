//! Tidy checks on the source itself (in the spirit of rust-analyzer's `tidy`): the top-level
//! modules of the collector and the agent form no cycle, and every import follows the
//! layering ARCHITECTURE.md documents. A new top-level module must be given a layer here,
//! which is the moment to decide where it belongs.
//!
//! "A depends on B" when any file of module A (`a.rs` or `a/**.rs`) names `crate::b`,
//! directly or inside a `use crate::{…}` group. Tests inside a module count too: a test that
//! needs a higher layer is a sign the code under test is in the wrong place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The collector, lowest layer first. A module may use modules of its own layer or below.
const SERVER_LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "attest", "catalog", "clock", "config", "domain", "listen", "metrics", "oidc", "pki", "remote",
            "shutdown", "signins",
        ],
    ),
    ("storage", &["store"]),
    (
        "domain logic",
        &[
            "approvals",
            "directives",
            "evidence",
            "findings",
            "offboarding",
            "policy",
            "query",
            "register",
            "responses",
            "review",
            "revoke",
            "tokens",
            "views",
            "writer",
        ],
    ),
    ("application state", &["state"]),
    ("edges", &["export", "health", "http", "ingest"]),
    ("wiring", &["cli", "server"]),
];

/// The agent, lowest layer first.
const AGENT_LAYERS: &[(&str, &[&str])] = &[
    (
        "platform and primitives",
        &[
            "fsview",
            "govern",
            "macos",
            "platform",
            "plist_bounded",
            "secret",
            "shutdown",
            "transport",
            "windows",
        ],
    ),
    ("local state", &["acl", "backoff", "catalog", "damage", "keys", "spool", "state"]),
    ("detection", &["config", "detect", "report", "scan", "watch"]),
    ("evidence", &["convert", "enforce", "inventory", "outbox", "recorder"]),
    ("delivery", &["deliver", "enroll"]),
    ("daemon", &["observe", "run", "winservice"]),
];

fn src(crate_dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("src")
}

/// The `mod` items of `lib.rs`.
fn top_level_modules(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod "))?;
            let rest = rest.strip_prefix("pub(crate) mod ").unwrap_or(rest);
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules `text` names through `crate::`, among `modules`.
fn named_modules(text: &str, modules: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b, c::{d, e}}`: the first segment of each top-level item.
            let (mut depth, mut item_start, mut end) = (0usize, true, group.len());
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = j;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String =
                            group[j..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if modules.contains(&name) {
                            found.insert(name);
                        }
                        item_start = false;
                    }
                    _ => {}
                }
            }
            rest = &group[end..];
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if modules.contains(&name) {
                found.insert(name);
            }
        }
    }
    found
}

/// Module → the modules it depends on, with one file that shows each edge.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let modules = top_level_modules(src);
    assert!(modules.len() > 5, "no modules found in {}", src.display());
    let mut graph = BTreeMap::new();
    for m in &modules {
        let mut files = Vec::new();
        let single = src.join(format!("{m}.rs"));
        if single.exists() {
            files.push(single);
        }
        rust_files(&src.join(m), &mut files);
        assert!(!files.is_empty(), "module {m} has no source file under {}", src.display());
        let mut edges = BTreeMap::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for dep in named_modules(&text, &modules) {
                if &dep != m {
                    edges.entry(dep).or_insert(f.clone());
                }
            }
        }
        graph.insert(m.clone(), edges);
    }
    graph
}

/// Every cycle's members (strongly connected components of more than one module).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for d in graph.get(&m).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in graph.keys() {
        let comp: Vec<String> =
            graph.keys().filter(|o| reaches[m].contains(*o) && reaches[*o].contains(m)).cloned().collect();
        if comp.len() > 1 && !out.contains(&comp) {
            out.push(comp);
        }
    }
    out
}

fn check(crate_dir: &str, layers: &[(&str, &[&str])]) -> Vec<String> {
    let src = src(crate_dir);
    let graph = dependencies(&src);
    let mut problems = Vec::new();
    for comp in cycles(&graph) {
        let mut detail = Vec::new();
        for a in &comp {
            for (b, file) in &graph[a] {
                if comp.contains(b) {
                    detail.push(format!("{a} → {b} ({})", file.strip_prefix(&src).unwrap_or(file).display()));
                }
            }
        }
        problems.push(format!("{crate_dir}: module cycle {comp:?}: {}", detail.join(", ")));
    }
    let layer_of = |m: &str| layers.iter().position(|(_, ms)| ms.contains(&m));
    for (m, deps) in &graph {
        let Some(lm) = layer_of(m) else {
            problems.push(format!("{crate_dir}: module {m} has no layer in tests/tests/tidy.rs"));
            continue;
        };
        for (d, file) in deps {
            if let Some(ld) = layer_of(d)
                && ld > lm
            {
                problems.push(format!(
                    "{crate_dir}: {m} ({}) uses {d} ({}), a higher layer, in {}",
                    layers[lm].0,
                    layers[ld].0,
                    file.strip_prefix(&src).unwrap_or(file).display()
                ));
            }
        }
    }
    for (_, ms) in layers {
        for m in *ms {
            if !graph.contains_key(*m) {
                problems.push(format!("{crate_dir}: tidy.rs lists {m}, which is not a module of lib.rs"));
            }
        }
    }
    problems
}

#[test]
fn the_collector_has_no_module_cycle_and_keeps_its_layers() {
    let problems = check("server", SERVER_LAYERS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_agent_has_no_module_cycle_and_keeps_its_layers() {
    let problems = check("agent", AGENT_LAYERS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_cycles_group_imports_and_layer_breaks() {
    let modules: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    assert_eq!(
        named_modules("use crate::{a::X, b, c::{d, e}};\nlet x = crate::d::f();", &modules),
        ["a", "b", "c", "d"].map(String::from).into_iter().collect()
    );
    assert!(named_modules("use super::a; // crate_like::b", &modules).is_empty());
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeMap<String, PathBuf>> =
            modules.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
        for (a, b) in edges {
            g.get_mut(*a).unwrap().insert((*b).to_owned(), PathBuf::from("x.rs"));
        }
        g
    };
    assert_eq!(cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])), vec![vec!["a", "b", "c"]]);
    assert!(cycles(&g(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}
