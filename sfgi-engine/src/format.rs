//! The one place times and durations are formatted: Go-style durations and RFC 3339 times.
use std::time::{Duration, SystemTime};

/// Formats a duration the way Go's `time.Duration.String` does, to millisecond precision.
pub fn go_duration(secs: f64) -> String {
    let ms = (secs * 1000.0).round().max(0.0) as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms % 60_000) as f64 / 1000.0;
    let s = format!("{s}s");
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// The monotonic timestamp `mono_ns` as RFC 3339 wall-clock time (milliseconds), given the
/// session's `wall_minus_mono_ns` offset.
pub fn rfc3339(mono_ns: u64, wall_minus_mono_ns: i128) -> String {
    rfc3339_wall((mono_ns as i128 + wall_minus_mono_ns).max(0) as u64)
}

/// The wall-clock time `wall_ns` (ns since the Unix epoch) as RFC 3339 (milliseconds).
pub fn rfc3339_wall(wall_ns: u64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(wall_ns);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0.0), "0s");
        assert_eq!(go_duration(0.25), "250ms");
        assert_eq!(go_duration(2.5), "2.5s");
        assert_eq!(go_duration(90.5), "1m30.5s");
        assert_eq!(go_duration(3723.0), "1h2m3s");
    }

    #[test]
    fn rfc3339_adds_the_offset() {
        assert_eq!(rfc3339(1_000_000_000, 0), "1970-01-01T00:00:01.000Z");
        assert_eq!(
            rfc3339(500_000_000, 1_700_000_000_000_000_000),
            "2023-11-14T22:13:20.500Z"
        );
        assert_eq!(rfc3339(5, -100), "1970-01-01T00:00:00.000Z");
    }
}
