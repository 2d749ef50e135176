//! Embeds the eBPF object built by `cargo xtask build-ebpf`.
//!
//! The object is looked for at `$SFGI_BPF_OBJECT`, else `target/bpf/sfgi.bpf.o`. When it is missing
//! the CLI still builds (so `cargo check`/`clippy` work without the eBPF toolchain) and `attach`
//! explains how to build it.
use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sfgi_bpf_object)");
    println!("cargo::rerun-if-env-changed=SFGI_BPF_OBJECT");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let default = manifest
        .join("..")
        .join("target")
        .join("bpf")
        .join("sfgi.bpf.o");
    let src = std::env::var_os("SFGI_BPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo::rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("sfgi.bpf.o");
    match std::fs::read(&src) {
        Ok(bytes) if !bytes.is_empty() => {
            std::fs::write(&out, bytes).expect("write OUT_DIR/sfgi.bpf.o");
            println!("cargo::rustc-cfg=sfgi_bpf_object");
        }
        _ => {
            std::fs::write(&out, b"").expect("write OUT_DIR/sfgi.bpf.o");
            println!(
                "cargo::warning=eBPF object {} not found: `sfgi attach` will not work; run `cargo xtask build-ebpf`",
                src.display()
            );
        }
    }
}
