//! What can be wrong with a dump: one variant per thing the user can act on.
use thiserror::Error;

/// Why a dump could not be read.
#[derive(Debug, Error)]
pub enum DumpError {
    /// The file (or stdin) could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// The input is larger than the size limit.
    #[error("larger than the {limit_mib} MiB limit (raise it with --max-size)")]
    TooLarge {
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// Nothing to read.
    #[error("empty: no goroutine dump in it")]
    Empty,
    /// A binary file (NUL bytes or not text).
    #[error("a binary file, not a goroutine dump or a gzip'd pprof profile")]
    Binary,
    /// An HTML page (a pprof index, an error page, a login page).
    #[error("an HTML page, not a goroutine dump (from net/http/pprof, save /debug/pprof/goroutine?debug=2 or /debug/pprof/goroutine)")]
    Html,
    /// A `debug=1` goroutine profile: counts per stack with addresses, no goroutine states.
    #[error("a debug=1 goroutine profile (stack counts without goroutine states): save /debug/pprof/goroutine?debug=2 or the protobuf /debug/pprof/goroutine instead")]
    Debug1,
    /// Text without a single goroutine header.
    #[error("no goroutine in it: not a Go goroutine dump (expected lines like `goroutine 1 [running]:`)")]
    NoGoroutines,
    /// The dump ends inside a goroutine's stack.
    #[error("truncated: goroutine {goid} (line {line}) ends before its stack does")]
    Truncated {
        /// The goroutine cut off.
        goid: u64,
        /// Its header's line number (1-based).
        line: usize,
    },
    /// A line that cannot be part of a goroutine dump where it stands.
    #[error("garbled at line {line}: {what}")]
    Garbled {
        /// Line number (1-based).
        line: usize,
        /// What was expected.
        what: String,
    },
    /// More goroutines, frames or distinct names than the limits allow.
    #[error("over the limit of {limit} {what}")]
    OverLimit {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A gzip stream that does not decompress.
    #[error("gzip data that does not decompress: {0}")]
    Gzip(std::io::Error),
    /// Decompressed data that is not a pprof profile.
    #[error("not a pprof profile: {0}")]
    Proto(String),
    /// A pprof profile of something other than goroutines.
    #[error("a pprof {0:?} profile, not a goroutine or goroutineleak profile")]
    OtherProfile(String),
}
