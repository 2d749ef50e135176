//! `cargo xtask`: SFGI's build, set-up, test and demo chores. Each installs what it needs.
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sfgi_gotool::{target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod eval;

mod bench;

mod fuzz;

mod layers;

mod image;

mod cross;

/// Nightly that builds the eBPF object: its LLVM (22) must match bpf-linker's.
const NIGHTLY: &str = "nightly-2026-05-20";
/// bpf-linker release built from crates.io against LLVM 22.
const BPF_LINKER: &str = "0.13.0";
/// Debian packages bpf-linker needs to build against LLVM 22.
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "libxml2-dev",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

#[derive(Parser)]
#[command(name = "xtask", about = "SFGI's build, set-up, test and demo chores")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building needs (pinned nightly + rust-src, bpf-linker on LLVM 22).
    Setup,
    /// Build the eBPF object into target/bpf/sfgi.bpf.o (installs the toolchain if missing).
    BuildEbpf,
    /// Install the external programs the tests call (Debian packages; PyPI and npm tools into
    /// target/tools) and print their versions: what `test`, `demo` and `bench` do first.
    Tools,
    /// Build the eBPF object and the release `sfgi` binary.
    Build,
    /// Everything CI checks: fmt, clippy, unit and integration tests (as root) with every Go
    /// version, a short fuzz run of every parser, and the quick accuracy evaluation.
    Test {
        /// Developer loop: oldest and newest Go only, no fuzz run, no evaluation.
        #[arg(long)]
        quick: bool,
        /// Also the long runs CI leaves out (the `#[ignore]`d proof corpus and Go runtime suite on Go 1.27 and 1.21, ~22 min more).
        #[arg(long, conflicts_with = "quick")]
        full: bool,
    },
    /// Measure SFGI's overhead and scale against the Go programs in bench/ (as root); prints
    /// Markdown tables for docs/PERFORMANCE.md. Not run by CI.
    Bench {
        /// Fewer rounds and shorter phases, no 1M-goroutine target (a few minutes).
        #[arg(long)]
        quick: bool,
        /// Measure this sfgi binary instead of building one.
        #[arg(long)]
        sfgi: Option<PathBuf>,
        /// Only these sections: pingpong, http, scale, avalanche, proof, agent (comma-separated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Also measure this sfgi binary (e.g. a build from before a change) in the same
        /// ping-pong rounds.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Extra arguments for every `sfgi attach` (e.g. `--no-stacks`).
        #[arg(last = true)]
        sfgi_args: Vec<String>,
    },
    /// The agent's container image (`localhost/sfgi:VERSION`), assembled with buildah from the
    /// release build: what deploy/docker/Dockerfile describes, without a Docker daemon.
    Image(image::ImageArgs),
    /// Start the bundled leaky Go service, attach SFGI to it and print what it finds.
    Demo {
        /// How long SFGI stays attached.
        #[arg(long, default_value = "15s")]
        duration: String,
        /// Leak threshold (production default is 5m; the demo wants an answer in seconds).
        #[arg(long, default_value = "5s")]
        threshold: String,
        /// Go version to build the demo service with.
        #[arg(long, default_value = sfgi_gotool::NEWEST)]
        go: String,
    },
    /// Detection accuracy: every scenario and Go's own leak tests under `sfgi watch`.
    Eval(eval::EvalArgs),
    /// A short run of every fuzz target in fuzz/ (cargo-fuzz, pinned nightly).
    Fuzz(fuzz::FuzzArgs),
    /// Other platforms: type-check `sfgi` for macOS (aarch64-apple-darwin) and build the release
    /// `sfgi` for Linux arm64, run under qemu on a real dump (installs the rustup targets and
    /// Debian's clang, cross gcc and qemu-user). docs/ARCHITECTURE.md "Other platforms".
    Cross(cross::CrossArgs),
    /// Check the layering: the pure crates' dependencies (cargo metadata) and no import cycle
    /// between the modules of any crate.
    Layers {
        /// Only print the module import cycles of this `src/` directory (any Rust crate).
        #[arg(long)]
        src: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::BuildEbpf => build_ebpf().map(|_| ()),
        Cmd::Tools => external_tools(),
        Cmd::Build => build().map(|_| ()),
        Cmd::Image(a) => external_tools()
            .and_then(|()| build())
            .and_then(|sfgi| image::build(&sfgi, &a))
            .map(|_| ()),
        Cmd::Test { quick, full } => test(quick, full),
        Cmd::Demo {
            duration,
            threshold,
            go,
        } => demo(&duration, &threshold, &go),
        Cmd::Bench {
            quick,
            sfgi,
            only,
            baseline,
            sfgi_args,
        } => bench_cmd(quick, sfgi, only, baseline, sfgi_args),
        Cmd::Eval(a) => eval::eval(&a),
        Cmd::Fuzz(a) => fuzz::fuzz(&a),
        Cmd::Cross(a) => cross::cross(&a),
        Cmd::Layers { src: None } => layers::check(),
        Cmd::Layers { src: Some(dir) } => layers::report_dir(&dir),
    };
    if let Err(e) = res {
        let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("xtask: error: {}", msg.join(": "));
        std::process::exit(1);
    }
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// A `Command` with the variables cargo sets for xtask itself removed, so nested cargo/rustup
/// calls pick their own toolchain.
fn clean(program: &str) -> Command {
    let mut c = Command::new(program);
    for v in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let o = cmd.stderr(Stdio::null()).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn setup() -> Result<()> {
    step(&format!(
        "Rust {NIGHTLY} with rust-src (builds the eBPF object)"
    ));
    let have_nightly = output(clean("rustup").args(["toolchain", "list"]))
        .is_some_and(|l| l.lines().any(|t| t.starts_with(NIGHTLY)));
    if !have_nightly {
        run(clean("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .context("installing the pinned nightly with rustup")?;
    } else {
        run(clean("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))?;
    }

    step(&format!("bpf-linker {BPF_LINKER} on LLVM 22"));
    let linker_ok =
        output(Command::new("bpf-linker").arg("--version")).is_some_and(|v| v.contains(BPF_LINKER));
    if linker_ok {
        eprintln!("bpf-linker {BPF_LINKER} already installed");
        return Ok(());
    }
    if !Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() {
        if !is_root() {
            bail!(
                "LLVM 22 development files are missing; as root run: apt-get install -y {}",
                LLVM_PACKAGES.join(" ")
            );
        }
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(LLVM_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .context("installing LLVM 22 with apt-get")?;
    }
    let path = format!(
        "{LLVM_PREFIX}/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    run(clean("cargo")
        .args([
            "install",
            "--locked",
            &format!("bpf-linker@{BPF_LINKER}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("PATH", path))
    .context("building bpf-linker from crates.io")?;
    Ok(())
}

/// Installs the external programs the tests and steps call (bpftool, …; the list and the reason
/// for each is `sfgi_gotool::tools::TOOLS`) and prints their versions. Once per xtask run.
fn external_tools() -> Result<()> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    step("external programs the tests and steps call (sfgi-gotool/src/tools.rs)");
    sfgi_gotool::tools::ensure()
}

fn bpf_object() -> PathBuf {
    target_dir().join("bpf").join("sfgi.bpf.o")
}

fn build_ebpf() -> Result<PathBuf> {
    setup()?;
    step("eBPF object (sfgi-ebpf, bpfel-unknown-none)");
    let dir = workspace_root().join("sfgi-ebpf");
    run(clean("rustup")
        .args(["run", NIGHTLY, "cargo", "build", "--release"])
        .current_dir(&dir))?;
    let built = dir.join("target/bpfel-unknown-none/release/sfgi");
    let out = bpf_object();
    std::fs::create_dir_all(out.parent().context("no parent")?)?;
    std::fs::copy(&built, &out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    eprintln!("eBPF object: {}", out.display());
    Ok(out)
}

fn cargo() -> Command {
    let mut c = clean("cargo");
    c.current_dir(workspace_root());
    c
}

fn build() -> Result<PathBuf> {
    let obj = build_ebpf()?;
    step("sfgi (release)");
    run(cargo()
        .args(["build", "--release", "-p", "sfgi-cli"])
        .env("SFGI_BPF_OBJECT", &obj))?;
    Ok(target_dir().join("release").join("sfgi"))
}

/// Test files whose `#[ignore]`d tests are the long runs: left out of the default `cargo xtask
/// test` (CI's 40-minute budget), run by `cargo xtask test --full` (docs/RELIABILITY.md "Test
/// durations" has their wall times).
const FULL_ONLY: &[(&str, &str)] = &[("sfgi-tests", "proof"), ("sfgi-heap", "runtime_suite")];

fn test(quick: bool, full: bool) -> Result<()> {
    if !is_root() {
        bail!("the integration tests attach eBPF probes: run `cargo xtask test` as root (sudo -E)");
    }
    external_tools()?;
    let sfgi = build()?;
    let obj = bpf_object();

    step("rustfmt");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    // The eBPF crate is outside the workspace; the minimal nightly has no rustfmt: use stable's.
    run(clean("rustfmt")
        .args(["--check", "--edition", "2021"])
        .arg(workspace_root().join("sfgi-ebpf/src/main.rs")))?;
    // So is the fuzz crate (cargo-fuzz's own layout).
    let mut fmt_fuzz = clean("rustfmt");
    fmt_fuzz.args(["--check", "--edition", "2021"]);
    for entry in std::fs::read_dir(workspace_root().join("fuzz/fuzz_targets"))? {
        fmt_fuzz.arg(entry?.path());
    }
    run(&mut fmt_fuzz)?;

    step("layers: crate dependencies and module import cycles (cargo xtask layers)");
    layers::check()?;

    step("clippy -D warnings");
    run(cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .env("SFGI_BPF_OBJECT", &obj))?;
    // The `test-hooks` code of sfgi-cli (and sfgi-trace's, which it enables) is compiled out
    // above: lint it too.
    run(cargo()
        .args([
            "clippy",
            "-p",
            "sfgi-cli",
            "-p",
            "sfgi-trace",
            "--all-targets",
            "--features",
            "test-hooks",
            "--",
            "-D",
            "warnings",
        ])
        .env("SFGI_BPF_OBJECT", &obj))?;

    if !quick {
        // Other platforms: `sfgi` must keep type-checking for macOS (≈ 2 min cold; the arm64
        // release build and its qemu run are a --full step below).
        cross::darwin_check()?;
    }

    step("Go toolchains for the test targets");
    let versions: &[&str] = if quick {
        &[sfgi_gotool::OLDEST, sfgi_gotool::NEWEST]
    } else {
        sfgi_gotool::ALL
    };
    for v in versions {
        let go = sfgi_gotool::go_binary(v)?;
        eprintln!("Go {v}: {}", go.display());
    }

    if !quick {
        // Before the long tests: the fuzz crate is outside the workspace, so this is also
        // where it is first compiled against the library's current API.
        step("fuzz: a short run of every target (docs/RELIABILITY.md has the long run)");
        fuzz::fuzz(&fuzz::FuzzArgs {
            seconds: 10,
            target: None,
        })?;
    }

    let hooks = build_test_hooks(&obj)?;
    // tests/tests/fleet.rs runs it with the DaemonSet's security context.
    let image = image::build(&sfgi, &image::ImageArgs::default())?;

    step("unit and integration tests");
    let mut t = cargo();
    t.args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
        .env("SFGI_BPF_OBJECT", &obj)
        .env("SFGI_BIN", &sfgi)
        .env("SFGI_TEST_HOOKS_BIN", &hooks)
        .env("SFGI_IMAGE", &image);
    let (mut passed, mut failed) = run_counting_tests(&mut t)?;
    if full {
        step("the long runs (cargo xtask test --full)");
        for (package, test_file) in FULL_ONLY {
            let mut t = cargo();
            t.args([
                "test",
                "-p",
                package,
                "--test",
                test_file,
                "--",
                "--ignored",
            ])
            .env("SFGI_BPF_OBJECT", &obj)
            .env("SFGI_BIN", &sfgi)
            .env("SFGI_TEST_HOOKS_BIN", &hooks);
            let (p, f) = run_counting_tests(&mut t)?;
            passed += p;
            failed += f;
        }
    }
    if full {
        cross::arm64_release()?;
    }
    if !quick {
        step("accuracy evaluation, quick mode (docs/ACCURACY.md)");
        eval::eval(&eval::EvalArgs::quick())?;
    }
    eprintln!("\nxtask test: all checks passed");
    println!("{passed} passed, {failed} failed");
    Ok(())
}

/// Builds `sfgi` with the `test-hooks` feature (the `SFGI_TEST_PANIC` hook) for the hardening
/// test of the panic exit path; returns its path, which the tests get as `SFGI_TEST_HOOKS_BIN`.
///
/// Built in the debug profile into `target/debug/sfgi`, then copied to `target/test-hooks/sfgi`:
/// the `cargo test --workspace` that follows rebuilds `target/debug/sfgi` without the feature
/// (for sfgi-cli's own integration tests) and would overwrite it in place. The copy is a file of
/// its own (not cargo's hard link into `deps/`), so that rebuild cannot change it. This shares
/// the dependencies' debug artifacts with that `cargo test`, where a separate `--target-dir`
/// would compile every dependency a second time.
fn build_test_hooks(obj: &Path) -> Result<PathBuf> {
    step("sfgi with the test hooks (debug, --features test-hooks)");
    run(cargo()
        .args(["build", "-p", "sfgi-cli", "--features", "test-hooks"])
        .env("SFGI_BPF_OBJECT", obj))?;
    let built = target_dir().join("debug").join("sfgi");
    let dir = target_dir().join("test-hooks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join("sfgi");
    // Remove first: a copy from an earlier run that is still running cannot be overwritten
    // (ETXTBSY), but it can be unlinked.
    match std::fs::remove_file(&out) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", out.display()));
        }
        _ => {}
    }
    std::fs::copy(&built, &out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    eprintln!("sfgi with test hooks: {}", out.display());
    Ok(out)
}

/// Runs `cargo test`, echoing its output, and sums its `test result:` lines.
fn run_counting_tests(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader, Write};
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let _ = writeln!(out, "{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |label: &str| {
                rest.split(';')
                    .find_map(|p| {
                        p.trim()
                            .strip_suffix(label)?
                            .split_whitespace()
                            .last()?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            passed += num(" passed");
            failed += num(" failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("{passed} passed, {failed} failed");
        bail!("{shown} failed ({status})");
    }
    Ok((passed, failed))
}

fn demo(duration: &str, threshold: &str, go: &str) -> Result<()> {
    if !is_root() {
        bail!("attaching eBPF probes needs root: run `sudo -E cargo xtask demo`");
    }
    external_tools()?;
    let sfgi = build()?;
    step(&format!(
        "leaky-service (examples/leaky-service) built with Go {go}"
    ));
    let svc = sfgi_gotool::build(
        &workspace_root().join("examples").join("leaky-service"),
        &sfgi_gotool::Build {
            version: go,
            ..Default::default()
        },
    )?;
    let mut child = Command::new(&svc)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", svc.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    match lines.next() {
        Some(Ok(l)) => eprintln!("{l}"),
        _ => {
            let _ = child.kill();
            bail!("leaky-service did not start");
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    // Let its self-load start before attaching.
    std::thread::sleep(Duration::from_secs(1));
    step(&format!(
        "sudo sfgi attach --pid {pid} --duration {duration} --threshold {threshold} --interval 250ms"
    ));
    let res = run(Command::new(&sfgi).args([
        "attach",
        "--pid",
        &pid.to_string(),
        "--duration",
        duration,
        "--threshold",
        threshold,
        "--interval",
        "250ms",
    ]));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    res
}

fn bench_cmd(
    quick: bool,
    sfgi: Option<PathBuf>,
    only: Vec<String>,
    baseline: Option<PathBuf>,
    sfgi_args: Vec<String>,
) -> Result<()> {
    if !is_root() {
        bail!("the benchmarks attach eBPF probes: run `cargo xtask bench` as root (sudo -E)");
    }
    external_tools()?;
    let sfgi = match sfgi {
        Some(p) => p,
        None => build()?,
    };
    step("bench programs (bench/gotarget, bench/loadgen)");
    let b = sfgi_gotool::Build {
        version: sfgi_gotool::NEWEST,
        ..Default::default()
    };
    let dir = workspace_root().join("bench");
    let gotarget = sfgi_gotool::build(&dir.join("gotarget"), &b)?;
    let loadgen = sfgi_gotool::build(&dir.join("loadgen"), &b)?;
    step("benchmarks");
    bench::run(
        &bench::Opts {
            quick,
            sfgi,
            sfgi_args,
            only,
            baseline,
        },
        &gotarget,
        &loadgen,
    )
}
