//! `cargo xtask fuzz --seconds N`: a short run of every cargo-fuzz target in `fuzz/` (SFGI's
//! parsers of untrusted bytes), for CI. Builds the base Go binaries the `goexe_patch` target
//! mutates, seeds each corpus from `fuzz/seeds/`, runs each target for N seconds and fails on
//! the first crash (its input is left in `fuzz/artifacts/<target>/`). Long runs: see
//! docs/RELIABILITY.md.
use crate::{clean, step, NIGHTLY};
use anyhow::{bail, Context, Result};
use sfgi_gotool::{workspace_root, Build};
use std::path::Path;
use std::time::Instant;

/// The fuzz targets, in run order.
pub const TARGETS: &[&str] = &[
    "event",
    "rules",
    "dump_text",
    "dump_profile",
    "goexe_bytes",
    "goexe_patch",
    "heap",
];

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Only this target (default: all).
    #[arg(long)]
    pub target: Option<String>,
}

/// Small Go binaries for `goexe_patch` to mutate: stripped (Go 1.21), with uncompressed DWARF
/// (newest Go; compressed sections would only exercise zlib), stripped PIE (newest Go).
fn prepare_bases(fuzz: &Path) -> Result<()> {
    let bases = fuzz.join("bases");
    std::fs::create_dir_all(&bases)?;
    let src = workspace_root().join("sfgi-goexe/tests/fixtures/hello");
    let builds: [(&str, &str, bool, &[&str]); 3] = [
        ("hello-1.21-stripped", sfgi_gotool::OLDEST, true, &[]),
        (
            "hello-1.27-dwarf",
            sfgi_gotool::NEWEST,
            false,
            &["-ldflags=-compressdwarf=false"],
        ),
        (
            "hello-1.27-stripped-pie",
            sfgi_gotool::NEWEST,
            true,
            &["-buildmode=pie"],
        ),
    ];
    for (name, version, stripped, flags) in builds {
        let out = bases.join(name);
        if out.is_file() {
            continue;
        }
        let built = sfgi_gotool::build(
            &src,
            &Build {
                version,
                stripped,
                extra_flags: flags,
                tag: &format!("fuzz-{name}"),
                gopath: None,
            },
        )?;
        std::fs::copy(&built, &out).with_context(|| format!("copying {}", built.display()))?;
    }
    Ok(())
}

/// Seeds `corpus/<target>` from `seeds/<target>` (checked in) without touching what earlier
/// runs found.
fn prepare_corpus(fuzz: &Path, target: &str) -> Result<std::path::PathBuf> {
    let corpus = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    if let Ok(seeds) = std::fs::read_dir(fuzz.join("seeds").join(target)) {
        for s in seeds.flatten() {
            let dst = corpus.join(s.file_name());
            if !dst.exists() {
                std::fs::copy(s.path(), dst)?;
            }
        }
    }
    Ok(corpus)
}

pub fn fuzz(args: &FuzzArgs) -> Result<()> {
    let fuzz = workspace_root().join("fuzz");
    let have = crate::output(clean("cargo").args(["fuzz", "--version"])).is_some();
    if !have {
        step("cargo-fuzz (from crates.io)");
        crate::run(clean("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    prepare_bases(&fuzz)?;
    let targets: Vec<&str> = match &args.target {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!("no fuzz target {t:?} (one of {})", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    step("building the fuzz targets");
    crate::run(
        clean("cargo")
            .args([&format!("+{NIGHTLY}"), "fuzz", "build", "-O"])
            .current_dir(&fuzz),
    )?;
    let mut summary = Vec::new();
    let all = Instant::now();
    for t in targets {
        step(&format!("fuzz {t} for {} s", args.seconds));
        let corpus = prepare_corpus(&fuzz, t)?;
        let t0 = Instant::now();
        let out = clean("cargo")
            .args([&format!("+{NIGHTLY}"), "fuzz", "run", "-O", t])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={}", args.seconds),
                "-timeout=10",
                "-rss_limit_mb=4096",
                "-print_final_stats=1",
            ])
            .current_dir(&fuzz)
            .output()
            .with_context(|| format!("running cargo fuzz run {t}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "?".into());
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fuzz target {t} failed after {runs} runs (crash input in fuzz/artifacts/{t}/):\n{}",
                tail.join("\n")
            );
        }
        let line = format!(
            "{t}: {runs} runs in {:.0} s, no crash",
            t0.elapsed().as_secs_f64()
        );
        eprintln!("{line}");
        summary.push(line);
    }
    eprintln!(
        "\nxtask fuzz: {} ({:.0} s)",
        summary.join("; "),
        all.elapsed().as_secs_f64()
    );
    Ok(())
}
