//! The one clock: `CLOCK_MONOTONIC`, the clock `bpf_ktime_get_ns` and Go's `nanotime` use, and
//! its offset to wall-clock time. The engine never reads a clock; front ends pass it these.
use std::time::SystemTime;

/// `CLOCK_MONOTONIC` now, in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists (Linux, macOS).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time now, ns since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Wall-clock minus monotonic time now (ns): add it to a monotonic timestamp to get wall time.
pub fn wall_minus_mono_ns() -> i128 {
    wall_ns() as i128 - monotonic_ns() as i128
}
