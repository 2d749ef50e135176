//! `cargo xtask image`: the `sfgi agent` container image, assembled with buildah from the release
//! build — the same image `deploy/docker/Dockerfile` describes, made without a Docker daemon or a
//! base image from a registry (neither is reachable here): a scratch image holding the stripped
//! `sfgi` and exactly the shared libraries `ldd` says it loads (glibc's loader, libc, libgcc_s),
//! taken from the machine that built it.
use crate::{output, run, step};
use anyhow::{bail, Context, Result};
use sfgi_gotool::target_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The image's name without the tag.
pub const NAME: &str = "localhost/sfgi";

/// Options of `cargo xtask image`.
#[derive(clap::Args, Debug, Default)]
pub struct ImageArgs {
    /// Tag (default: the workspace version).
    #[arg(long)]
    pub tag: Option<String>,
    /// Also write the image as an OCI archive here (for `ctr images import`, `kind load
    /// image-archive`, `podman load`).
    #[arg(long)]
    pub archive: Option<PathBuf>,
}

/// Builds the image from the release `sfgi` at `sfgi`; returns its reference (`NAME:TAG`).
pub fn build(sfgi: &Path, args: &ImageArgs) -> Result<String> {
    step("the agent's container image (buildah, from scratch)");
    let buildah = sfgi_gotool::tools::require("buildah");
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let reference = format!("{NAME}:{tag}");

    let stage = target_dir().join("image");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let stripped = stage.join("sfgi");
    run(Command::new("strip").arg("-o").arg(&stripped).arg(sfgi))
        .context("stripping sfgi (binutils' strip)")?;
    let libs = shared_libraries(&stripped)?;

    let ctr = output(Command::new(&buildah).args(["from", "scratch"]))
        .context("buildah from scratch failed")?
        .trim()
        .to_string();
    // Whatever happens next, the working container goes.
    let res = (|| -> Result<()> {
        let root = PathBuf::from(
            output(Command::new(&buildah).args(["mount", &ctr]))
                .context("buildah mount failed")?
                .trim(),
        );
        install(&stripped, &root.join("usr/local/bin/sfgi"), 0o755)?;
        for lib in &libs {
            let rel = lib.strip_prefix("/").unwrap_or(lib);
            install(lib, &root.join(rel), 0o755)?;
        }
        // The agent's writable places are volumes (the DaemonSet's emptyDir); /tmp for tools
        // that want one.
        std::fs::create_dir_all(root.join("tmp"))?;
        run(Command::new(&buildah).args(["umount", &ctr]))?;
        run(Command::new(&buildah).args([
            "config",
            "--entrypoint",
            r#"["/usr/local/bin/sfgi"]"#,
            "--cmd",
            "agent",
            "--port",
            "6061",
            // `sfgi agent` finishes (detaches every probe, exits 0) on SIGINT and SIGTERM alike;
            // SIGINT is what its tests send.
            "--stop-signal",
            "SIGINT",
            "--label",
            "org.opencontainers.image.title=sfgi",
            "--label",
            &format!("org.opencontainers.image.version={tag}"),
            "--label",
            "org.opencontainers.image.description=SFGI agent: goroutine leaks of every Go process on a node",
            &ctr,
        ]))?;
        output(Command::new(&buildah).args(["commit", "--quiet", &ctr, &reference]))
            .with_context(|| format!("buildah commit {ctr} {reference} failed"))?;
        Ok(())
    })();
    let _ = Command::new(&buildah).args(["rm", &ctr]).output();
    res?;
    if let Some(archive) = &args.archive {
        let _ = std::fs::remove_file(archive);
        run(Command::new(&buildah)
            .arg("push")
            .arg(&reference)
            .arg(format!("oci-archive:{}:{reference}", archive.display())))?;
        eprintln!("OCI archive: {}", archive.display());
    }
    let size = std::fs::metadata(&stripped).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "image {reference}: sfgi ({:.1} MB stripped) + {}",
        size as f64 / 1e6,
        libs.iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(reference)
}

/// Copies `from` to `to` (parents created) with `mode`.
fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The shared libraries `bin` loads, at the paths it loads them from (`ldd`; the vDSO has none).
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(bin)).context("ldd failed")?;
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        } else if line.contains("not found") {
            bail!("{}: {line}", bin.display());
        }
    }
    if libs.is_empty() {
        bail!("ldd listed no library for {}", bin.display());
    }
    Ok(libs)
}
