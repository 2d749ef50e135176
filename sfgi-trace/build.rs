//! Embeds the eBPF object built by `cargo xtask build-ebpf`.
//!
//! The object is looked for at `$SFGI_BPF_OBJECT`, else `target/bpf/sfgi.bpf.o`. A missing or
//! empty object is a build error that says how to make it: a `sfgi` that cannot attach is never
//! built silently.
//!
//! Only for Linux on x86_64, the one platform the probes are written for (they read amd64
//! registers). Other Linux targets (aarch64) embed no object, and `sfgi` there refuses to attach
//! in one line (`sfgi_trace::target::check_host`); other OSes build no tracing code at all.
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-env-changed=SFGI_BPF_OBJECT");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" {
        return;
    }
    if var("CARGO_CFG_TARGET_ARCH") != "x86_64" {
        // `probe` still includes the file: an empty one, never loaded.
        if let Some(out) = std::env::var_os("OUT_DIR").map(|d| PathBuf::from(d).join("sfgi.bpf.o"))
        {
            if let Err(e) = std::fs::write(&out, []) {
                println!("cargo::error=writing {}: {e}", out.display());
            }
        }
        return;
    }
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        println!("cargo::error=CARGO_MANIFEST_DIR is not set (build with cargo)");
        return;
    };
    let default = manifest
        .join("..")
        .join("target")
        .join("bpf")
        .join("sfgi.bpf.o");
    let src = std::env::var_os("SFGI_BPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo::rerun-if-changed={}", src.display());
    let Some(out) = std::env::var_os("OUT_DIR").map(|d| PathBuf::from(d).join("sfgi.bpf.o")) else {
        println!("cargo::error=OUT_DIR is not set (build with cargo)");
        return;
    };
    match std::fs::read(&src) {
        Ok(bytes) if !bytes.is_empty() => {
            if let Err(e) = std::fs::write(&out, bytes) {
                println!("cargo::error=writing {}: {e}", out.display());
            }
        }
        Ok(_) => println!(
            "cargo::error=the eBPF object {} is empty: run `cargo xtask build-ebpf` (or `cargo xtask build`)",
            src.display()
        ),
        Err(e) => println!(
            "cargo::error=the eBPF object {} is missing ({e}): run `cargo xtask build-ebpf` (or `cargo xtask build`) first",
            src.display()
        ),
    }
}
