//! SFGI, the SiliconFlow Goroutine Inspector: the front ends.
//!
//! Sources (`sfgi-trace`: eBPF probes and the memory inventory) → engine (`sfgi-engine`) →
//! front ends, here: `attach` (one session to a report), `watch` (a live table and, through
//! `serve` and `metrics`, HTTP and Prometheus), and the `inspect` command (rendering `sfgi_goexe::inspect`);
//! `report` and `snapshot` are what they print and publish; `analyze` (`sfgi analyze` and
//! `sfgi diff`) judges saved dumps read by `sfgi-dump` with the same engine and output, and
//! `remote` (`attach --pprof`) polls a live target's pprof endpoint into it.
//! See docs/ARCHITECTURE.md.
//!
//! On every OS: `analyze`, `remote`, `report`, `snapshot`, `signals`, `term`, `options` (the
//! flags every build parses). Linux only (eBPF, `/proc`, `process_vm_readv`): `session`,
//! `attach`, `watch`, `serve`, `metrics`, `agent` (so `watch --pprof --listen` is Linux only); elsewhere `sfgi` refuses those commands in one line.
#[cfg(target_os = "linux")]
pub mod agent;
pub mod analyze;
#[cfg(target_os = "linux")]
pub mod attach;
#[cfg(target_os = "linux")]
pub mod metrics;
pub mod options;
pub mod remote;
pub mod report;
#[cfg(target_os = "linux")]
pub mod serve;
#[cfg(target_os = "linux")]
pub mod session;
pub mod signals;
pub mod snapshot;
pub mod term;
#[cfg(target_os = "linux")]
pub mod watch;
