//! What a running session publishes: an immutable [`Snapshot`] per refresh (read by the live
//! table, the HTTP handlers and the metrics encoder without touching the session), and the
//! request/reply types of a triggered scan.
use crate::report::Report;
use sfgi_engine::engine::Leak;
use sfgi_engine::format::{go_duration, rfc3339};
use sfgi_engine::judge::Status;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Spacing of the samples `GET /sfgi/profile` serves.
pub const PROFILE_EVERY: Duration = Duration::from_secs(300);
/// How many profile samples are kept (one hour at [`PROFILE_EVERY`]).
pub const PROFILE_KEEP: usize = 12;
/// Most leak groups recorded per profile sample.
pub const PROFILE_GROUPS: usize = 100;

/// Goroutines of the target by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateCounts {
    /// Running or runnable (not parked as far as SFGI knows).
    pub running: usize,
    /// Parked (channel, lock, select, sleep, I/O...).
    pub waiting: usize,
    /// In a system call (found so by an inventory).
    pub syscall: usize,
    /// Marked `_Gleaked` by the Go runtime itself.
    pub leaked: usize,
}

impl StateCounts {
    /// `(state name, count)` pairs, in a fixed order.
    pub fn by_name(&self) -> [(&'static str, usize); 4] {
        [
            ("running", self.running),
            ("waiting", self.waiting),
            ("syscall", self.syscall),
            ("leaked", self.leaked),
        ]
    }

    /// All of them.
    pub fn total(&self) -> usize {
        self.running + self.waiting + self.syscall + self.leaked
    }
}

/// One parked goroutine in a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    /// Its goid.
    pub goid: u64,
    /// Index of its group in the snapshot's `report.groups`.
    pub group: u32,
    /// When it blocked (monotonic ns).
    pub since_ns: u64,
}

/// One leak group in a profile sample.
#[derive(Clone, Debug)]
pub struct ProfileGroup {
    /// Group id.
    pub id: String,
    /// Status then.
    pub status: Status,
    /// Pattern.
    pub pattern: String,
    /// Members then.
    pub count: usize,
}

/// One goroutine-count sample of the profile.
#[derive(Clone, Debug)]
pub struct ProfileSample {
    /// Wall-clock time, ms since the Unix epoch.
    pub ts_ms: i64,
    /// Goroutines by state.
    pub states: StateCounts,
    /// Leak groups (`growing`, `suspect`, `proven`), largest first, at most [`PROFILE_GROUPS`].
    pub groups: Vec<ProfileGroup>,
}

/// Everything the HTTP endpoints serve, as of one refresh. Immutable once published.
pub struct Snapshot {
    /// Wall-clock time of the snapshot, ms since the Unix epoch.
    pub ts_ms: i64,
    /// Monotonic time of the snapshot, ns.
    pub now_ns: u64,
    /// Wall-clock minus monotonic time, ns (to print member times).
    pub wall_minus_mono_ns: i128,
    /// The report now (target, leaks, every group, stats).
    pub report: Report,
    /// Goroutines by state.
    pub states: StateCounts,
    /// Every parked goroutine: most severe group first, then oldest first.
    pub members: Vec<Member>,
    /// Events per second since the previous refresh.
    pub events_per_sec: f64,
    /// Older profile samples (one per [`PROFILE_EVERY`], oldest first; the current value is this
    /// snapshot itself).
    pub profile: Arc<Vec<ProfileSample>>,
    /// Other sfgi processes attached to the same PID.
    pub peers: Vec<u32>,
    /// Seconds attached.
    pub attached_secs: f64,
}

impl Snapshot {
    /// The profile sample this snapshot is.
    pub fn profile_sample(&self) -> ProfileSample {
        ProfileSample {
            ts_ms: self.ts_ms,
            states: self.states,
            groups: profile_groups(&self.report.groups),
        }
    }

    /// A member's blocking time as Go prints durations.
    pub fn member_duration(&self, m: &Member) -> String {
        go_duration(self.now_ns.saturating_sub(m.since_ns) as f64 / 1e9)
    }

    /// When a member blocked, RFC 3339 (ms).
    pub fn member_first_seen(&self, m: &Member) -> String {
        rfc3339(m.since_ns, self.wall_minus_mono_ns)
    }
}

fn profile_groups(groups: &[Leak]) -> Vec<ProfileGroup> {
    let mut v: Vec<ProfileGroup> = groups
        .iter()
        .filter(|g| g.status.is_leak())
        .map(|g| ProfileGroup {
            id: g.id.clone(),
            status: g.status,
            pattern: g.pattern.clone(),
            count: g.count,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
    v.truncate(PROFILE_GROUPS);
    v
}

/// Result of one inventory scan.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScanResult {
    /// Goroutines read.
    pub scanned: usize,
    /// Goroutines in groups judged leaking afterwards.
    pub leaked: usize,
    /// How long the scan took, ms.
    pub duration_ms: f64,
}

/// A scan result as handed to a `trigger-scan` request.
#[derive(Clone, Debug)]
pub struct ScanReply {
    /// The scan.
    pub result: ScanResult,
    /// Whether the scan ran for this batch of requests (false: an earlier scan, less than a second
    /// old, was reused).
    pub fresh: bool,
}

/// A `trigger-scan` request: where to send the result.
pub type TriggerRequest = oneshot::Sender<ScanReply>;
