//! `sfgi-eval`: SFGI's detection accuracy, measured. Run through `cargo xtask eval` (which builds
//! the release `sfgi` first and sets `SFGI_BIN`); needs root. See docs/ACCURACY.md.
use anyhow::{bail, Context, Result};
use clap::Parser;
use sfgi_tests::scenarios::{self, EvalConfig, RunResult, RunSpec, SuiteConfig, SuiteResult};
use sfgi_tests::{require_root, sfgi_bin, ALL, NEWEST, OLDEST};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "sfgi-eval",
    about = "Detection accuracy of SFGI on the scenario corpus and on Go's own goroutine-leak tests"
)]
struct Args {
    /// Newest Go normal + oldest Go stripped, threshold 2 s, and a sample of Go's own leak tests.
    #[arg(long)]
    quick: bool,
    /// Runs of every healthy scenario (leak scenarios run once per variant).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Go versions, comma-separated (default: every supported one; with --quick see above).
    #[arg(long, value_delimiter = ',')]
    go: Vec<String>,
    /// Which builds: both, no (normal only) or yes (stripped only).
    #[arg(long)]
    stripped: Option<String>,
    /// Write every run's result (and the totals) as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write the Markdown tables here too.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
    /// `sfgi watch --threshold`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    threshold: Duration,
    /// Runs at once (each is one Go target + one `sfgi watch`).
    #[arg(long, default_value_t = 3)]
    jobs: usize,
    /// Only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only Go's own goroutine-leak test programs (every case; a sample with --quick).
    #[arg(long)]
    runtime_suite: bool,
    /// Skip Go's own goroutine-leak test programs.
    #[arg(long)]
    no_runtime_suite: bool,
    /// Where `sfgi watch` reads each target from: `ebpf` (`--pid`, root) or `pprof` (every
    /// scenario built with the `sfgipprof` tag serves net/http/pprof; `sfgi watch --pprof`
    /// polls it at the default pause budget). Go's own leak tests run with `ebpf` only.
    #[arg(long, default_value = "ebpf", value_parser = scenarios::Source::parse)]
    source: scenarios::Source,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("no unit in {s:?}"))?;
    let n: f64 = num.parse().map_err(|_| format!("bad number in {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Cases of Go's suite run in quick mode: firm micro/pattern cases and firm GoKer kernels.
const SUITE_SAMPLE: &[&str] = &[
    "ChanRecv",
    "Mixed",
    "NoLeakGlobal",
    "NoCloseRange",
    "Cockroach7504",
    "Grpc1275",
];

fn main() {
    if let Err(e) = real_main() {
        eprintln!("sfgi-eval: error: {e:#}");
        std::process::exit(1);
    }
}

fn uname_r() -> String {
    std::process::Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let pprof = args.source == scenarios::Source::Pprof;
    if args.runtime_suite && pprof {
        bail!("Go's own leak tests run with --source ebpf only (their programs serve no pprof)");
    }
    if !pprof {
        require_root();
    }
    let started = Instant::now();
    let sfgi = sfgi_bin();
    let versions: Vec<String> = if args.go.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.go.clone()
    };
    let stripped: Vec<bool> = match args.stripped.as_deref() {
        None | Some("both") => vec![false, true],
        Some("no") => vec![false],
        Some("yes") => vec![true],
        Some(o) => bail!("--stripped must be both, no or yes, not {o:?}"),
    };
    let variants: Vec<(String, bool)> =
        if args.quick && args.go.is_empty() && args.stripped.is_none() {
            vec![(NEWEST.to_string(), false), (OLDEST.to_string(), true)]
        } else {
            versions
                .iter()
                .flat_map(|v| stripped.iter().map(move |&s| (v.clone(), s)))
                .collect()
        };
    let cfg = EvalConfig {
        threshold: args.threshold,
        source: args.source,
        ..EvalConfig::default()
    };
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `sfgi-eval {}`; source {}; sfgi: {}; kernel {}; {} CPUs; threshold {:?}, interval {:?}, poll {:?}, leak -delay {:?}; {} runs at once.\n\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        args.source.as_str(),
        sfgi.display(),
        uname_r(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cfg.threshold,
        cfg.interval,
        cfg.poll,
        cfg.delay,
        args.jobs,
    ));
    let mut json = serde_json::Map::new();
    json.insert("config".into(), serde_json::to_value(&cfg)?);
    json.insert("kernel".into(), uname_r().into());

    if !args.runtime_suite {
        let manifest = scenarios::manifest()?;
        let chosen: Vec<_> = manifest
            .scenarios
            .iter()
            .filter(|s| args.only.is_empty() || args.only.contains(&s.name))
            .cloned()
            .collect();
        if chosen.is_empty() {
            bail!("no scenario selected");
        }
        let mut specs = Vec::new();
        for (go, strip) in &variants {
            eprintln!(
                "sfgi-eval: building scenarios with Go {go}{}",
                if *strip { " (stripped)" } else { "" }
            );
            let bin = scenarios::build_scenarios_for(go, *strip, args.source)
                .with_context(|| format!("building scenarios with Go {go}"))?;
            for sc in &chosen {
                let runs = if sc.is_leak() { 1 } else { args.runs.max(1) };
                for run in 1..=runs {
                    specs.push(RunSpec {
                        scenario: sc.clone(),
                        go: go.clone(),
                        stripped: *strip,
                        run,
                        bin: bin.clone(),
                    });
                }
            }
        }
        // Longest first, so the tail of the queue is short runs.
        specs.sort_by_key(|s| std::cmp::Reverse(cfg.window_for(&s.scenario)));
        let n = specs.len();
        eprintln!(
            "sfgi-eval: {n} runs ({} variants), {} at once",
            variants.len(),
            args.jobs
        );
        let count = std::sync::atomic::AtomicUsize::new(0);
        let t0 = Instant::now();
        let results = scenarios::run_all(specs, &cfg, args.jobs, &|r: &RunResult| {
            let i = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            eprintln!(
                "[{i}/{n} {:>4.0}s] {:<26} {:<17} run {} {:<8} {} first={} growing+T={} other={} fp={} unharmed={}{}",
                t0.elapsed().as_secs_f64(),
                r.scenario,
                scenarios::variant(&r.go, r.stripped),
                r.run,
                r.kind,
                r.status.as_deref().unwrap_or(if r.kind == "leak" { "MISSED" } else { "-" }),
                r.first_report_s.map(|x| format!("{x:.2}s")).unwrap_or("-".into()),
                r.past_threshold_s.map(|x| format!("{x:.2}s")).unwrap_or("-".into()),
                r.groups.iter().filter(|g| !g.expected).count(),
                r.of_class("fp").count(),
                if r.target_ok && r.watch_ok { "yes" } else { "NO" },
                r.error.as_deref().map(|e| format!(" error: {}", e.lines().next().unwrap_or(""))).unwrap_or_default(),
            );
        });
        let mut results = results;
        results.sort_by(|a, b| {
            (&a.go, a.stripped, &a.kind, &a.scenario, a.run).cmp(&(
                &b.go,
                b.stripped,
                &b.kind,
                &b.scenario,
                b.run,
            ))
        });
        let mut cols = Vec::new();
        for (go, strip) in &variants {
            let t = scenarios::totals(
                results
                    .iter()
                    .filter(|r| &r.go == go && r.stripped == *strip),
            );
            cols.push((scenarios::variant(go, *strip), t));
        }
        if variants.len() > 1 {
            let normal = scenarios::totals(results.iter().filter(|r| !r.stripped));
            let strip = scenarios::totals(results.iter().filter(|r| r.stripped));
            if variants.iter().any(|v| !v.1) && variants.iter().any(|v| v.1) {
                cols.push(("all normal".into(), normal));
                cols.push(("all stripped".into(), strip));
            }
            cols.push(("all".into(), scenarios::totals(results.iter())));
        }
        md.push_str(&format!(
            "### Totals ({} runs in {:.0} s)\n\n",
            results.len(),
            t0.elapsed().as_secs_f64()
        ));
        md.push_str(&scenarios::totals_table(&cols));
        md.push_str("\n### Per run\n\n");
        md.push_str(&scenarios::runs_table(&results));
        md.push('\n');
        json.insert(
            "totals".into(),
            serde_json::to_value(
                cols.iter()
                    .map(|(l, t)| (l.clone(), t))
                    .collect::<HashMap<_, _>>(),
            )?,
        );
        json.insert("runs".into(), serde_json::to_value(&results)?);
    }

    let suite = args.runtime_suite || (!args.no_runtime_suite && args.only.is_empty() && !pprof);
    if suite {
        let go = NEWEST;
        eprintln!("sfgi-eval: building Go {go}'s testgoroutineleakprofile programs");
        let (root, goker) = scenarios::build_suite(go)?;
        let goroot = sfgi_gotool::go_binary(go)?
            .parent()
            .and_then(|p| p.parent())
            .context("GOROOT")?
            .to_path_buf();
        let mut cases = scenarios::suite_cases(&goroot)?;
        if args.quick {
            cases.retain(|c| SUITE_SAMPLE.contains(&c.name.as_str()));
        }
        let bins: HashMap<String, std::path::PathBuf> = [
            ("testgoroutineleakprofile".to_string(), root),
            ("testgoroutineleakprofile/goker".to_string(), goker),
        ]
        .into_iter()
        .collect();
        let scfg = SuiteConfig::default();
        let n = cases.len();
        let count = std::sync::atomic::AtomicUsize::new(0);
        let t0 = Instant::now();
        let results = scenarios::run_suite(
            cases,
            &bins,
            go,
            &scfg,
            args.jobs,
            &|r: &SuiteResult| {
                let i = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                eprintln!(
                "[suite {i}/{n} {:>4.0}s] {:<16} agreed {} missed {} flaky-seen {} extra {} exit-ok {}{}",
                t0.elapsed().as_secs_f64(),
                r.case.name,
                r.agreed.len(),
                r.missed.len(),
                r.flaky_seen.len(),
                r.groups.iter().filter(|g| g.class == "extra").count(),
                r.exit_ok,
                r.error.as_deref().map(|e| format!(" error: {}", e.lines().next().unwrap_or(""))).unwrap_or_default(),
            );
            },
        );
        let firm: Vec<&SuiteResult> = results.iter().filter(|r| !r.case.flaky).collect();
        let expected: usize = firm.iter().map(|r| r.case.leaks.len()).sum();
        let agreed: usize = firm.iter().map(|r| r.agreed.len()).sum();
        let missed_go_saw: usize = firm.iter().map(|r| r.missed_go_saw.len()).sum();
        let flaky_total: usize = results
            .iter()
            .filter(|r| r.case.flaky)
            .map(|r| r.case.leaks.len())
            .sum();
        let flaky_seen: usize = results.iter().map(|r| r.flaky_seen.len()).sum();
        let extras: usize = results
            .iter()
            .map(|r| r.groups.iter().filter(|g| g.class == "extra").count())
            .sum();
        md.push_str(&format!(
            "### Go {go}'s testgoroutineleakprofile ({} cases in {:.0} s; sfgi watch --threshold {:?} --min-repeat {} --rescan {:?}; case runs after {:?}, process stays {:?} after)\n\n\
             Firm expected leaks reported by SFGI: {agreed}/{expected} (missed although Go's own profile saw them in the same run: {missed_go_saw}); \
             flaky-case leaks seen: {flaky_seen}/{flaky_total}; extra SFGI leak groups: {extras}; programs exiting normally: {}/{}.\n\n",
            results.len(),
            t0.elapsed().as_secs_f64(),
            scfg.threshold,
            scfg.min_repeat,
            scfg.rescan,
            scfg.pre,
            scfg.hold,
            results.iter().filter(|r| r.exit_ok).count(),
            results.len(),
        ));
        md.push_str(&scenarios::suite_table(&results));
        md.push('\n');
        json.insert("runtime_suite".into(), serde_json::to_value(&results)?);
    }

    md.push_str(&format!(
        "Total wall time: {:.0} s.\n",
        started.elapsed().as_secs_f64()
    ));
    println!("{md}");
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("sfgi-eval: JSON written to {}", p.display());
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
