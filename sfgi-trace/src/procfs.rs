//! The one `/proc` reader: everything SFGI reads of a process (the target's or its own) from
//! `/proc/PID/{stat,status,exe,cmdline,maps}` goes through here.
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// `/proc/PID` of `pid`, or of this process for `None`.
fn dir(pid: Option<u32>) -> PathBuf {
    match pid {
        Some(p) => PathBuf::from(format!("/proc/{p}")),
        None => PathBuf::from("/proc/self"),
    }
}

/// The fields of `/proc/PID/stat` after the parenthesised command name (which may contain
/// spaces): index 0 is field 3 (`state`).
pub fn stat_fields(pid: Option<u32>) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(dir(pid).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The value of `key:` in `/proc/PID/status` (the text after the colon, trimmed).
pub fn status_field(pid: Option<u32>, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(dir(pid).join("status")).ok()?;
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: Option<u32>, key: &str) -> Option<u64> {
    let v = status_field(pid, key)?;
    Some(v.split_whitespace().next()?.parse::<u64>().ok()? * 1024)
}

/// Resident set size of `pid` (`None`: this process), bytes.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    status_bytes(pid, "VmRSS")
}

/// Peak resident set size (`VmHWM`) of this process, bytes.
pub fn peak_rss() -> Option<u64> {
    status_bytes(None, "VmHWM")
}

/// This process's effective capabilities (`CapEff`), 0 if unreadable.
pub fn effective_caps() -> u64 {
    status_field(None, "CapEff")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0)
}

/// SFGI's own CPU time (user + system, seconds) and resident memory (bytes).
pub fn self_usage() -> (Option<f64>, Option<u64>) {
    let cpu = stat_fields(None).and_then(|f| {
        // Fields 14 (utime) and 15 (stime); index 0 is field 3.
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (hz > 0).then(|| ticks as f64 / hz as f64)
    });
    (cpu, rss_bytes(None))
}

/// Whether `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    let state = stat_fields(Some(pid)).and_then(|f| f.first().cloned());
    !matches!(state.as_deref(), Some("Z") | Some("X") | None)
}

/// Start time of `pid` (field 22 of `/proc/PID/stat`, clock ticks after boot).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(Some(pid))?.get(19)?.parse().ok()
}

/// `/proc/PID/maps` as text.
pub fn maps(pid: u32) -> Option<String> {
    std::fs::read_to_string(dir(Some(pid)).join("maps")).ok()
}

/// The kernel's release (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// What identifies a traced program: a process exec'ing another binary, or a reused PID, is a
/// different target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcIdent {
    /// Device of the executable.
    pub dev: u64,
    /// Inode of the executable.
    pub ino: u64,
    /// Start time (ticks after boot).
    pub start_time: Option<u64>,
}

impl ProcIdent {
    /// The identity of `pid` now, `None` if it is gone.
    pub fn read(pid: u32) -> Option<ProcIdent> {
        let md = std::fs::metadata(dir(Some(pid)).join("exe")).ok()?;
        Some(ProcIdent {
            dev: md.dev(),
            ino: md.ino(),
            start_time: start_time(pid),
        })
    }
}

/// Other `sfgi attach`/`sfgi watch` processes with `--pid PID` (not this one).
pub fn other_sfgi_attached(pid: u32) -> Vec<u32> {
    let me = std::process::id();
    let pid_s = pid.to_string();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if p == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{p}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).filter(|a| !a.is_empty()).collect();
        let Some(argv0) = args.first() else {
            continue;
        };
        let name = argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0);
        if name != b"sfgi" {
            continue;
        }
        let attaching = args.iter().any(|a| *a == b"attach" || *a == b"watch");
        let names_pid = args
            .windows(2)
            .any(|w| w[0] == b"--pid" && w[1] == pid_s.as_bytes())
            || args
                .iter()
                .any(|a| a.strip_prefix(b"--pid=") == Some(pid_s.as_bytes()));
        if attaching && names_pid {
            out.push(p);
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let (cpu, rss) = self_usage();
        assert!(cpu.is_some_and(|c| c >= 0.0), "{cpu:?}");
        assert!(rss.is_some_and(|r| r > 1 << 20), "{rss:?}");
        assert!(peak_rss() >= rss, "VmHWM below VmRSS");
        let me = std::process::id();
        assert!(process_alive(me));
        // Started after boot, and not after now (both in clock ticks since boot).
        let uptime_s: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .expect("/proc/uptime");
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let started = start_time(me);
        assert!(
            started.is_some_and(|t| t > 0 && t as f64 <= (uptime_s + 1.0) * hz),
            "{started:?} ticks, uptime {uptime_s} s"
        );
        // The same process seen by PID as through `/proc/self`: a test binary's RSS is MiBs.
        let rss_by_pid = rss_bytes(Some(me));
        assert!(rss_by_pid.is_some_and(|r| r > 1 << 20), "{rss_by_pid:?}");
        assert!(!process_alive(u32::MAX));
    }

    #[test]
    fn this_process_is_not_its_own_peer() {
        assert!(!other_sfgi_attached(std::process::id()).contains(&std::process::id()));
    }
}
