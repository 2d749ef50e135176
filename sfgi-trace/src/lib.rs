//! SFGI's Linux tracing source: everything that touches the target process and the kernel.
//!
//! `target` (open the process, check the host) → `probe` (load the eBPF object, attach the
//! uprobes, drain the ring buffer) and `inventory` (read the goroutines from memory, no stop)
//! → the engine (`sfgi-engine`), with `symbolize` naming addresses for it. `budget` keeps the
//! probes' cost in the target under a limit. `clock` and `procfs` are the one clock and the one
//! `/proc` reader of the whole program.
//!
//! Only `clock` and `stats` (the figures reports carry, as plain data) build on other OSes; the
//! rest is Linux-only (eBPF, `/proc`, `process_vm_readv`), and attaching is also amd64-only for
//! now ([`target::check_host`] refuses elsewhere). See docs/ARCHITECTURE.md "Other platforms".
pub mod clock;
pub mod stats;

#[cfg(target_os = "linux")]
pub mod budget;
#[cfg(target_os = "linux")]
pub mod discover;
#[cfg(target_os = "linux")]
pub mod inventory;
#[cfg(target_os = "linux")]
pub mod probe;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod symbolize;
#[cfg(target_os = "linux")]
pub mod target;
