//! `cargo xtask layers`: the layering rules, checked.
//!
//! 1. Crates: with `cargo tree`, the pure crates depend (normal dependencies, transitively)
//!    on none of the crates they must not: `sfgi-engine` on no tracing, async, HTTP, system-call
//!    or symbolization crate; `sfgi-goexe` on none of those nor on the engine; `sfgi-dump` (the
//!    dump source, for every platform) on no eBPF, Linux-only or async crate; and `sfgi-cli`
//!    resolved for macOS (`--target aarch64-apple-darwin`) on none of the Linux-only crates
//!    (the traced commands are compiled out there; `cargo xtask cross` type-checks the rest).
//! 2. Modules: in every crate of the workspace, the graph of its top-level modules (an edge
//!    `a → b` when a file of module `a` names `crate::b`, or a sibling `b` through `super::b` /
//!    `use super::{b…}` from a top-level module) has no cycle.
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Crates each pure crate must not depend on, directly or not.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "sfgi-engine",
        &[
            "aya",
            "tokio",
            "axum",
            "hyper",
            "libc",
            "nix",
            "blazesym",
            "sfgi-trace",
            "sfgi-cli",
            "sfgi-goexe",
        ],
    ),
    (
        "sfgi-goexe",
        &[
            "aya",
            "tokio",
            "axum",
            "hyper",
            "blazesym",
            "sfgi-engine",
            "sfgi-trace",
            "sfgi-cli",
        ],
    ),
    (
        "sfgi-trace",
        &["tokio", "axum", "hyper", "sfgi-cli", "sfgi-heap"],
    ),
    // The dump source builds anywhere (macOS too): no eBPF, no Linux-only crate, no async
    // runtime (its HTTP client is blocking; libc comes in portably through its sockets).
    (
        "sfgi-dump",
        &[
            "aya",
            "tokio",
            "axum",
            "hyper",
            "blazesym",
            "sfgi-goexe",
            "sfgi-trace",
            "sfgi-cli",
        ],
    ),
    // The reachability pass is a source like `sfgi-trace` (it reads the target through
    // `sfgi-trace`'s one memory reader): no async runtime, no HTTP, no front end.
    ("sfgi-heap", &["tokio", "axum", "hyper", "sfgi-cli"]),
];

/// Crates `sfgi` must not be made of off Linux (resolved for [`crate::cross::DARWIN`]): the
/// eBPF loader, the symbolizer, the reachability prover and the HTTP server of `watch
/// --listen` and `agent` are Linux-only.
const FORBIDDEN_OFF_LINUX: &[(&str, &[&str])] = &[(
    "sfgi-cli",
    &[
        "aya",
        "aya-log",
        "blazesym",
        "sfgi-heap",
        "axum",
        "hyper",
        "prometheus-client",
    ],
)];

/// Runs both checks; prints what it checked.
pub fn check() -> Result<()> {
    let meta = metadata()?;
    let host = FORBIDDEN.iter().map(|&(k, b)| (k, b, None));
    let off_linux = FORBIDDEN_OFF_LINUX
        .iter()
        .map(|&(k, b)| (k, b, Some(crate::cross::DARWIN)));
    for (krate, banned, target) in host.chain(off_linux) {
        let deps = transitive_normal_deps(krate, target)?;
        let bad: Vec<&str> = banned
            .iter()
            .copied()
            .filter(|b| deps.contains(*b))
            .collect();
        let on = target.map(|t| format!(" for {t}")).unwrap_or_default();
        if !bad.is_empty() {
            bail!("{krate}{on} depends on {} (not allowed)", bad.join(", "));
        }
        eprintln!(
            "layers: {krate}{on}: {} dependencies, none of {}",
            deps.len(),
            banned.join(", ")
        );
    }
    let mut problems = Vec::new();
    for (name, src) in workspace_sources(&meta) {
        let graph = module_graph(&src)?;
        let cycles = cycles(&graph);
        eprintln!(
            "layers: {name}: {} modules, {} import cycles",
            graph.len(),
            cycles.len()
        );
        for c in cycles {
            problems.push(format!("{name}: {}", c.join(" → ")));
        }
    }
    if !problems.is_empty() {
        bail!("module import cycles:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// Prints the module graph of one `src/` directory and its import cycles; fails if it has any.
pub fn report_dir(src: &Path) -> Result<()> {
    let graph = module_graph(src)?;
    for (m, to) in &graph {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        eprintln!("{m} → {}", to.join(", "));
    }
    let cycles = cycles(&graph);
    for c in &cycles {
        eprintln!("cycle: {}", c.join(" → "));
    }
    if !cycles.is_empty() {
        bail!("{}: {} import cycles", src.display(), cycles.len());
    }
    Ok(())
}

fn metadata() -> Result<serde_json::Value> {
    let out = crate::cargo()
        .args(["metadata", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed");
    }
    serde_json::from_slice(&out.stdout).context("parsing cargo metadata")
}

/// Names of every package `krate` needs to build on its own (normal dependencies,
/// transitively): `cargo tree -p KRATE -e normal`, which resolves features for that crate alone
/// (the workspace-wide resolve of `cargo metadata` unifies `sfgi-common`'s `user` feature, which
/// only the tracing crate asks for). For the host, or for `target` (`--target`; no standard
/// library for it is needed).
fn transitive_normal_deps(krate: &str, target: Option<&str>) -> Result<BTreeSet<String>> {
    let mut cmd = crate::cargo();
    cmd.args([
        "tree", "-p", krate, "-e", "normal", "--prefix", "none", "-f", "{p}",
    ]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output().context("running cargo tree")?;
    if !out.status.success() {
        bail!("cargo tree -p {krate} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// (package name, `src/` directory) of every workspace member.
fn workspace_sources(meta: &serde_json::Value) -> Vec<(String, PathBuf)> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    let mut out = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let (Some(id), Some(name), Some(manifest)) = (
            p["id"].as_str(),
            p["name"].as_str(),
            p["manifest_path"].as_str(),
        ) else {
            continue;
        };
        if members.contains(id) {
            if let Some(dir) = Path::new(manifest).parent() {
                out.push((name.to_string(), dir.join("src")));
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file under `src` belongs to (`engine.rs` → `engine`,
/// `inventory/mem.rs` → `inventory`); `None` for the crate root and binaries.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if rel.components().count() == 1 {
        let stem = first.strip_suffix(".rs")?;
        return (!matches!(stem, "lib" | "main")).then(|| stem.to_string());
    }
    (first != "bin").then(|| first.to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// The module graph of the crate whose sources are in `src`.
pub fn module_graph(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut texts = Vec::new();
    for f in &files {
        if let Some(m) = top_module(src, f) {
            graph.entry(m.clone()).or_default();
            let nested = f.strip_prefix(src).map(|r| r.components().count() > 1);
            texts.push((m, nested.unwrap_or(false), std::fs::read_to_string(f)?));
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (m, nested, text) in texts {
        for to in referenced_modules(&text, &modules, nested) {
            if to != m {
                graph.entry(m.clone()).or_default().insert(to);
            }
        }
    }
    Ok(graph)
}

/// Top-level modules that `text` names: `crate::x`, `crate::{x, …}`, and (in a top-level
/// module's own file, where `super` is the crate root) `super::x`. Test modules count too:
/// a cycle through a test is still a cycle.
fn referenced_modules(text: &str, modules: &BTreeSet<String>, nested: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if !nested {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(list) = rest.strip_prefix('{') {
                let end = list.find('}').unwrap_or(list.len());
                for item in list[..end].split(',') {
                    let name = ident(item.trim());
                    if modules.contains(name) {
                        out.insert(name.to_string());
                    }
                }
            } else {
                let name = ident(rest);
                if modules.contains(name) {
                    out.insert(name.to_string());
                }
            }
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every strongly connected component of more than one module, each as a path that closes
/// (`a → b → a`).
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iterative over a small graph.
    struct St<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        on: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        let g = s.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                let first = comp[0].clone();
                comp.push(first);
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        g: graph,
        index: HashMap::new(),
        low: HashMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn finds_cycles_and_only_cycles() {
        assert!(cycles(&g(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
        let c = cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
        assert_eq!(c, vec![vec!["a", "b", "c", "a"]]);
        let c = cycles(&g(&[("watch", "serve"), ("serve", "watch"), ("x", "y")]));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn reads_crate_and_super_paths() {
        let modules: BTreeSet<String> = ["engine", "judge", "group", "lifetime"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = "use crate::judge::Judge;\nuse crate::{group::x, lifetime};\nuse super::engine::E;\nmy_crate::group; // not ours";
        let got = referenced_modules(text, &modules, false);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            ["engine", "group", "judge", "lifetime"]
        );
        // In a nested file `super::` is the parent module, not the crate root.
        let got = referenced_modules("use super::engine;", &modules, true);
        assert!(got.is_empty());
    }

    #[test]
    fn the_workspace_has_no_module_cycle() {
        let root = sfgi_gotool::workspace_root();
        for krate in [
            "sfgi-goexe",
            "sfgi-engine",
            "sfgi-trace",
            "sfgi-dump",
            "sfgi-cli",
        ] {
            let graph = module_graph(&root.join(krate).join("src")).unwrap();
            assert!(graph.len() > 1, "{krate}: no modules found");
            assert_eq!(cycles(&graph), Vec::<Vec<String>>::new(), "{krate}");
        }
    }
}
