//! `cargo xtask eval`: detection accuracy. Builds the release `sfgi` (eBPF object included) and
//! runs the `sfgi-eval` binary of the `sfgi-tests` crate against it: every scenario of
//! tests/scenarios.toml per Go version (normal and stripped) and Go's own goroutine-leak test
//! programs, each with `sfgi watch` attached from outside. See docs/ACCURACY.md.
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Options of `cargo xtask eval` (passed through to `sfgi-eval`).
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Newest Go normal + oldest Go stripped and a sample of Go's own leak tests (~10 min).
    #[arg(long)]
    quick: bool,
    /// Runs of every healthy scenario.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Go versions, comma-separated (default: all seven; with --quick: newest + oldest stripped).
    #[arg(long)]
    go: Option<String>,
    /// Builds to evaluate: both, no (normal only), yes (stripped only).
    #[arg(long)]
    stripped: Option<String>,
    /// Write every run's result and the totals as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown tables here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// `sfgi watch --threshold` (2s keeps runs short; the timing goals are relative to it).
    #[arg(long)]
    threshold: Option<String>,
    /// Runs at once.
    #[arg(long)]
    jobs: Option<usize>,
    /// Only these scenarios (comma-separated).
    #[arg(long)]
    only: Option<String>,
    /// Only Go's own testgoroutineleakprofile programs (all cases; a sample with --quick).
    #[arg(long)]
    runtime_suite: bool,
    /// Skip Go's own testgoroutineleakprofile programs.
    #[arg(long)]
    no_runtime_suite: bool,
    /// Where `sfgi watch` reads the targets from: `ebpf` (probes, root) or `pprof` (each
    /// scenario serves net/http/pprof and is polled by `sfgi watch --pprof`; no root, and no
    /// Go leak-test suite).
    #[arg(long)]
    source: Option<String>,
}

/// Runs the evaluation.
impl EvalArgs {
    /// The quick mode `cargo xtask test` runs.
    pub fn quick() -> Self {
        EvalArgs {
            quick: true,
            runs: 3,
            go: None,
            stripped: None,
            json: Some(
                sfgi_gotool::target_dir()
                    .join("eval")
                    .join("eval-quick.json"),
            ),
            markdown: None,
            threshold: None,
            jobs: None,
            only: None,
            runtime_suite: false,
            no_runtime_suite: false,
            source: None,
        }
    }
}

pub fn eval(a: &EvalArgs) -> Result<()> {
    if !crate::is_root() && a.source.as_deref() != Some("pprof") {
        bail!("the evaluation attaches eBPF probes: run `cargo xtask eval` as root (sudo -E)");
    }
    crate::external_tools()?;
    let sfgi = crate::build()?;
    crate::step("sfgi-eval (tests/src/bin/sfgi-eval.rs)");
    let mut c = crate::cargo();
    c.args(["run", "-q", "-p", "sfgi-tests", "--bin", "sfgi-eval", "--"])
        .args(["--runs", &a.runs.to_string()])
        .env("SFGI_BIN", &sfgi);
    if a.quick {
        c.arg("--quick");
    }
    for (flag, v) in [
        ("--go", &a.go),
        ("--stripped", &a.stripped),
        ("--threshold", &a.threshold),
        ("--only", &a.only),
        ("--source", &a.source),
    ] {
        if let Some(v) = v {
            c.args([flag, v]);
        }
    }
    if let Some(j) = a.jobs {
        c.args(["--jobs", &j.to_string()]);
    }
    for (flag, p) in [("--json", &a.json), ("--markdown", &a.markdown)] {
        if let Some(p) = p {
            c.arg(flag).arg(std::path::absolute(p)?);
        }
    }
    if a.runtime_suite {
        c.arg("--runtime-suite");
    }
    if a.no_runtime_suite {
        c.arg("--no-runtime-suite");
    }
    crate::run(&mut c)
}
