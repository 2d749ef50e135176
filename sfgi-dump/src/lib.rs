//! SFGI's dump source: what a Go process printed or served about its goroutines, read into the
//! engine's [`GoroutineInfo`](sfgi_engine::goroutine::GoroutineInfo) records so saved dumps go
//! through the same grouping, classification, rules and judge as the live eBPF source.
//!
//! - [`text`]: goroutine dumps in Go's traceback text (`/debug/pprof/goroutine?debug=2`,
//!   `goroutineleak?debug=2`, SIGQUIT with `GOTRACEBACK=all`, a panic, `fatal error: all
//!   goroutines are asleep - deadlock!`).
//! - [`proto`]: pprof's gzip'd protobuf goroutine and goroutineleak profiles.
//! - [`table`]: the frames and wait reasons of a series of dumps, interned to synthetic
//!   addresses; it is the engine's [`Symbols`](sfgi_engine::frame::Symbols) for them.
//! - [`read`]: bounded reading of a file or stdin and the choice of parser.
//! - [`dump`]: what one dump holds, and its goroutines as the engine takes them.
//! - `pprof` (feature `http`, on by default): a live target's `net/http/pprof` endpoint, polled.
//!
//! No eBPF, no root, nothing Linux-only: this crate builds on any platform.
pub mod dump;
pub mod error;
#[cfg(feature = "http")]
pub mod pprof;
pub mod proto;
pub mod read;
pub mod table;
#[cfg(test)]
mod testdata;
pub mod text;

pub use dump::{Dump, DumpGoroutine, DumpKind, Limits};
pub use error::DumpError;
pub use read::{parse, read_input};
pub use table::{FrameTable, NoStackMap, SharedTable};
