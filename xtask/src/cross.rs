//! `cargo xtask cross`: SFGI on other platforms (docs/ARCHITECTURE.md "Other platforms").
//!
//! 1. **macOS type-check**: `cargo clippy --target aarch64-apple-darwin -p sfgi-cli -- -D
//!    warnings`, i.e. `sfgi` and every crate it is made of, type-checked (and linted) for
//!    Apple silicon with the Linux-only parts compiled out. No macOS SDK or linker is needed, but
//!    build scripts run even under check, and ring's (rustls' crypto) compiles its C: clang
//!    does that for `arm64-apple-macosx`, without the SDK's headers the way ring builds for
//!    targets without a sysroot (`-nostdlibinc -DRING_CORE_NOSTDLIBINC`), plus a three-line
//!    stand-in for the SDK's `TargetConditionals.h`; `llvm-ar` archives the Mach-O objects.
//! 2. **Linux arm64 release**: `cargo build --release --target aarch64-unknown-linux-gnu -p
//!    sfgi-cli`, linked by Debian's `aarch64-linux-gnu-gcc`, checked to be an aarch64 ELF, then
//!    run under `qemu-aarch64`: `--version`, `analyze` of a checked-in dump (the leak it must
//!    find), and `attach --pid`, which must refuse in one line (the eBPF probes are amd64-only;
//!    the arm64 build embeds no eBPF object, see sfgi-trace/build.rs).
use crate::{cargo, run, step};
use anyhow::{bail, Context, Result};
use sfgi_gotool::{target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The macOS target type-checked.
pub const DARWIN: &str = "aarch64-apple-darwin";
/// The Linux arm64 target built.
pub const ARM64_LINUX: &str = "aarch64-unknown-linux-gnu";
/// Where Debian's arm64 cross libc lives (qemu's `-L`).
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// `cargo xtask cross` flags.
#[derive(clap::Args, Debug, Default)]
pub struct CrossArgs {
    /// Only the macOS type-check (what `cargo xtask test` runs).
    #[arg(long, conflicts_with = "arm64_only")]
    pub darwin_only: bool,
    /// Only the Linux arm64 release build and its qemu run.
    #[arg(long)]
    pub arm64_only: bool,
}

/// Runs what `args` asks for; prints each part's wall time.
pub fn cross(args: &CrossArgs) -> Result<()> {
    let mut times = Vec::new();
    if !args.arm64_only {
        let t = Instant::now();
        darwin_check()?;
        times.push(format!(
            "macOS type-check {:.0} s",
            t.elapsed().as_secs_f64()
        ));
    }
    if !args.darwin_only {
        let t = Instant::now();
        arm64_release()?;
        times.push(format!(
            "arm64 release + qemu {:.0} s",
            t.elapsed().as_secs_f64()
        ));
    }
    eprintln!("\nxtask cross: passed ({})", times.join(", "));
    Ok(())
}

/// Installs what both steps call (Debian packages), once per xtask run.
fn tools() -> Result<()> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    step("tools for other platforms (sfgi-gotool/src/tools.rs CROSS_TOOLS)");
    sfgi_gotool::tools::ensure_tools(sfgi_gotool::tools::CROSS_TOOLS)
}

fn rustup_target(target: &str) -> Result<()> {
    run(crate::clean("rustup").args(["target", "add", target]))
        .with_context(|| format!("installing the {target} standard library with rustup"))
}

/// `cargo clippy --target aarch64-apple-darwin -p sfgi-cli -- -D warnings`.
pub fn darwin_check() -> Result<()> {
    tools()?;
    step(&format!(
        "macOS type-check: clippy --target {DARWIN} -p sfgi-cli"
    ));
    rustup_target(DARWIN)?;
    let shim = target_dir().join("cross").join("darwin-include");
    std::fs::create_dir_all(&shim).with_context(|| format!("creating {}", shim.display()))?;
    // What ring's base.h reads from the SDK header: which Apple OS this is.
    std::fs::write(
        shim.join("TargetConditionals.h"),
        "/* Stand-in for the macOS SDK header (cargo xtask cross). */\n\
         #define TARGET_OS_MAC 1\n#define TARGET_OS_OSX 1\n#define TARGET_OS_IPHONE 0\n",
    )?;
    let cflags = format!(
        "-nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -I{}",
        shim.display()
    );
    run(cargo()
        .args([
            "clippy", "--target", DARWIN, "-p", "sfgi-cli", "--", "-D", "warnings",
        ])
        .env("CC_aarch64_apple_darwin", "clang")
        .env("AR_aarch64_apple_darwin", sfgi_gotool::tools::LLVM_AR)
        .env("CFLAGS_aarch64_apple_darwin", cflags))
}

/// The release `sfgi` for Linux arm64, checked and run under qemu; returns its path.
pub fn arm64_release() -> Result<PathBuf> {
    tools()?;
    step(&format!(
        "Linux arm64 release: build --release --target {ARM64_LINUX} -p sfgi-cli"
    ));
    rustup_target(ARM64_LINUX)?;
    run(cargo()
        .args([
            "build",
            "--release",
            "--target",
            ARM64_LINUX,
            "-p",
            "sfgi-cli",
        ])
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        ))?;
    let bin = target_dir().join(ARM64_LINUX).join("release").join("sfgi");
    check_aarch64_elf(&bin)?;
    eprintln!("{}: an aarch64 ELF executable", bin.display());

    step("the arm64 sfgi under qemu-aarch64");
    let version = qemu(&bin, &["--version"])?;
    if !version.status.success() || !version.stdout.starts_with("sfgi ") {
        bail!("sfgi --version under qemu: {version:?}");
    }
    eprint!("{}", version.stdout);

    let dump = workspace_root().join("tests/data/dumps/pprof-debug2.txt");
    let dump_arg = dump.to_string_lossy();
    let analyzed = qemu(&bin, &["analyze", "--format", "json", &dump_arg])?;
    if !analyzed.status.success() {
        bail!("sfgi analyze under qemu failed: {}", analyzed.stderr);
    }
    let report: serde_json::Value =
        serde_json::from_str(&analyzed.stdout).context("sfgi analyze's JSON under qemu")?;
    // tests/data/dumps/README.md: 76 goroutines leaked in main.leakySend.
    let leaky = report["groups"].as_array().into_iter().flatten().find(|g| {
        g["blocked_at"]
            .as_str()
            .is_some_and(|s| s.starts_with("main.leakySend "))
    });
    match leaky {
        Some(g) if g["count"] == 76 => eprintln!(
            "sfgi analyze {}: {} goroutines in main.leakySend ({})",
            dump.display(),
            g["count"],
            g["status"]
        ),
        other => bail!(
            "sfgi analyze under qemu did not report the 76 goroutines of main.leakySend: {other:?}"
        ),
    }

    let attach = qemu(&bin, &["attach", "--pid", "1"])?;
    let line = attach.stderr.trim_end();
    if attach.status.success() || line.lines().count() != 1 || !line.contains("amd64-only") {
        bail!("sfgi attach --pid under qemu must refuse in one line (amd64-only): {attach:?}");
    }
    eprintln!("sfgi attach --pid 1: {line}");
    Ok(bin)
}

/// What a run under qemu gave.
#[derive(Debug)]
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

fn qemu(bin: &Path, args: &[&str]) -> Result<Ran> {
    let o = Command::new("qemu-aarch64")
        .arg("-L")
        .arg(ARM64_SYSROOT)
        .arg(bin)
        .args(args)
        .output()
        .context("running qemu-aarch64")?;
    Ok(Ran {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

/// Fails unless `path` is a 64-bit little-endian ELF executable for aarch64 (`e_machine` 183).
fn check_aarch64_elf(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .with_context(|| format!("reading {}", path.display()))?;
    const EM_AARCH64: u16 = 183;
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 || machine != EM_AARCH64 {
        bail!(
            "{} is not a 64-bit little-endian aarch64 ELF (header {:02x?})",
            path.display(),
            head
        );
    }
    Ok(())
}
