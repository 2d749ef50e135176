//! SFGI, the SiliconFlow Goroutine Inspector: the front ends.
//!
//! Sources (`sfgi-trace`: eBPF probes and the memory inventory) → engine (`sfgi-engine`) →
//! front ends, here: `attach` (one session to a report), `watch` (a live table and, through
//! `serve` and `metrics`, HTTP and Prometheus), and the `inspect` command (rendering `sfgi_goexe::inspect`);
//! `report` and `snapshot` are what they print and publish; `analyze` (`sfgi analyze` and
//! `sfgi diff`) judges saved dumps read by `sfgi-dump` with the same engine and output, and
//! `remote` (`attach --pprof`) polls a live target's pprof endpoint into it.
//! See docs/ARCHITECTURE.md.
pub mod agent;
pub mod analyze;
pub mod attach;
pub mod metrics;
pub mod remote;
pub mod report;
pub mod serve;
pub mod session;
pub mod snapshot;
pub mod watch;
