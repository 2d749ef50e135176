//! The tracing source's figures as plain data — what reports carry (probe counters, the eBPF
//! programs' diagnostics, the overhead budget's state) — and the budget's defaults that the
//! command line shows. Built on every OS (the rest of this crate is Linux-only), so a report has
//! one shape everywhere: `sfgi analyze` and `attach --pprof` on macOS print the same JSON as on
//! Linux. `probe` and `budget` re-export these.
use std::time::Duration;

/// Default `--max-event-rate`: probe hits per second in the target. At the ≈ 1.5 µs per hit
/// measured on the reference VM that is ≈ 3 % of one core.
pub const DEFAULT_MAX_EVENT_RATE: u64 = 20_000;
/// Default `--budget-retry`: how long after stepping down SFGI first tries tracing fully again.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// How much SFGI traces now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Everything.
    Full,
    /// Every probe, repeat parks sampled (the ring buffer overflowed).
    Sampled,
    /// Park and GC probes only; wakes and exits from inventory re-reads.
    ParksOnly,
    /// GC probes only; everything else from inventory re-reads.
    InventoryOnly,
}

impl Mode {
    /// Its name in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Sampled => "sampled",
            Mode::ParksOnly => "parks-only",
            Mode::InventoryOnly => "inventory-only",
        }
    }

    /// Its number in the `sfgi_overhead_mode` metric.
    pub fn level(self) -> i64 {
        self as i64
    }
}

/// The budget's state, as reports show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BudgetStats {
    /// Current mode.
    pub mode: Mode,
    /// The budget: probe hits per second in the target (0: none).
    pub max_event_rate: u64,
    /// Probe hits per second over the last window.
    pub probe_hits_per_second: f64,
    /// Events per second SFGI handled over the whole session.
    pub events_per_second: f64,
    /// Parks reported 1 in N at a repeated site (1: all).
    pub sample_every: u32,
    /// Probes detached by the budget.
    pub detached: Vec<String>,
    /// Inventory re-read interval the budget imposes, seconds.
    pub rescan_seconds: Option<f64>,
    /// What the budget did and why, in order.
    pub steps: Vec<String>,
    /// SFGI's own CPU time, seconds (user + system).
    pub self_cpu_seconds: f64,
    /// SFGI's own CPU over the session, percent of one core.
    pub self_cpu_percent: f64,
    /// SFGI's resident memory now, bytes.
    pub self_rss_bytes: u64,
    /// SFGI's peak resident memory, bytes.
    pub self_peak_rss_bytes: u64,
}

/// A probe SFGI wanted and could not place.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MissingProbe {
    /// Short name of the probe.
    pub probe: &'static str,
    /// The Go runtime function.
    pub function: String,
    /// Why it is missing.
    pub why: String,
}

/// Per-probe counters summed over CPUs.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ProbeCounters {
    /// Probe hits in the target.
    pub hits: u64,
    /// Events written.
    pub emitted: u64,
    /// Events lost to a full ring buffer.
    pub dropped: u64,
    /// Failed reads of target memory.
    pub read_errors: u64,
    /// Failed stack captures.
    pub stack_errors: u64,
    /// Hits that emitted nothing on purpose (parks sampled out, wakes of unreported parks).
    pub filtered: u64,
    /// Parks that reused the goroutine's previous stack instead of walking it again.
    pub stack_reused: u64,
}

/// The eBPF programs' diagnostics of one kind (see `probe::Tracer::diag_stats`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DiagKindStats {
    /// `read_error`, `state_insert`, `stack_error` or `ring_reserve`.
    pub kind: &'static str,
    /// Records written to the log (at most the limit per CPU).
    pub logged: u64,
    /// Records left out by the rate limit (counted only).
    pub suppressed: u64,
}

/// The eBPF programs' diagnostics: whether they are on, and how many were logged or left out.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DiagStats {
    /// Whether the probes write debug records (`-v` or `RUST_LOG=sfgi=debug` at attach).
    pub enabled: bool,
    /// Records logged per kind and CPU before the rest are only counted.
    pub limit_per_cpu: u64,
    /// Records logged, all kinds.
    pub logged: u64,
    /// Records left out by the rate limit, all kinds.
    pub suppressed: u64,
    /// Per kind.
    pub kinds: Vec<DiagKindStats>,
}
