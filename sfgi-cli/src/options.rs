//! Values the command line parses on every OS. The traced commands (`attach|watch --pid`,
//! `agent`) run on Linux only and are refused in one line elsewhere, but their flags are the
//! same everywhere, so `sfgi --help` does not depend on the OS it was built for.
use std::time::Duration;

/// Default `agent --max-targets`: most targets traced at once.
pub const DEFAULT_MAX_TARGETS: usize = 64;
/// Default `agent --max-event-rate`: probe hits per second in all targets together.
pub const DEFAULT_NODE_EVENT_RATE: u64 = 50_000;

/// How often the inventory is re-read. Goroutines stuck in a system call never park, so only
/// a re-read finds them; re-reads also reconcile events the ring buffer dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rescan {
    /// 100 times the last read's duration, within 2–30 s: a small target is re-read every 2 s,
    /// a million-goroutine one (≈ 1.5 s a read) every 30 s — under 1% of a core either way.
    Auto,
    /// A fixed period.
    Every(Duration),
    /// Only at the start and the end (and on trigger-scan).
    Off,
}

impl Rescan {
    /// Parses `auto`, `0`/`off`, or a duration (`500ms`, `30s`).
    pub fn parse(s: &str) -> Result<Rescan, String> {
        match s.trim() {
            "auto" => Ok(Rescan::Auto),
            "0" | "off" => Ok(Rescan::Off),
            d => humantime::parse_duration(d)
                .map(|d| {
                    if d.is_zero() {
                        Rescan::Off
                    } else {
                        Rescan::Every(d)
                    }
                })
                .map_err(|e| format!("{e} (auto, off, or a duration such as 10s)")),
        }
    }

    /// The period now, given how long the last read took.
    pub fn period(self, last_read_ms: f64) -> Option<Duration> {
        match self {
            Rescan::Auto => Some(Duration::from_secs_f64(
                (last_read_ms * 100.0 / 1e3).clamp(2.0, 30.0),
            )),
            Rescan::Every(d) => Some(d),
            Rescan::Off => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescan_parses_and_scales_with_the_target() {
        assert_eq!(Rescan::parse("auto"), Ok(Rescan::Auto));
        assert_eq!(Rescan::parse("0"), Ok(Rescan::Off));
        assert_eq!(Rescan::parse("off"), Ok(Rescan::Off));
        assert_eq!(
            Rescan::parse("500ms"),
            Ok(Rescan::Every(Duration::from_millis(500)))
        );
        assert!(Rescan::parse("soon").is_err());
        // A tiny target is re-read every 2 s, a 100k one (~170 ms a read) every 17 s, a 1M
        // one (~1.5 s) every 30 s.
        assert_eq!(Rescan::Auto.period(0.3), Some(Duration::from_secs(2)));
        assert_eq!(Rescan::Auto.period(170.0), Some(Duration::from_secs(17)));
        assert_eq!(Rescan::Auto.period(1500.0), Some(Duration::from_secs(30)));
        assert_eq!(Rescan::Off.period(1.0), None);
    }
}
