//! SFGI, the SiliconFlow Goroutine Inspector: finds goroutine leaks in a running Go program from
//! the outside, with eBPF uprobes on the Go runtime.
//!
//! Data flow, one module per step:
//! `goexe` (what the binary is: version, probe points, struct offsets, wait reasons)
//! → `probe` (load and attach the eBPF programs, drain the ring buffer)
//! → `event` (decoded runtime events) → `lifetime` (one state machine per goroutine)
//! → `group` (goroutines by wait reason, blocking site, creation site)
//! → `report` (table / JSON).
pub mod attach;
pub mod budget;
pub mod classify;
pub mod engine;
pub mod event;
pub mod goexe;
pub mod group;
pub mod inspect;
pub mod inventory;
pub mod judge;
pub mod lifetime;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod rules;
pub mod serve;
pub mod symbolize;
pub mod target;
pub mod watch;
