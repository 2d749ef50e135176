//! SFGI's Linux tracing source: everything that touches the target process and the kernel.
//!
//! `target` (open the process, check the host) → `probe` (load the eBPF object, attach the
//! uprobes, drain the ring buffer) and `inventory` (read the goroutines from memory, no stop)
//! → the engine (`sfgi-engine`), with `symbolize` naming addresses for it. `budget` keeps the
//! probes' cost in the target under a limit. `clock` and `procfs` are the one clock and the one
//! `/proc` reader of the whole program.
pub mod budget;
pub mod clock;
pub mod discover;
pub mod inventory;
pub mod probe;
pub mod procfs;
pub mod symbolize;
pub mod target;
