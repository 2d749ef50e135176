//! What a running session publishes: an immutable [`Snapshot`] per refresh (read by the live
//! table, the HTTP handlers and the metrics encoder without touching the session), and the
//! request/reply types of a triggered scan; [`SnapshotBuilder`] makes them, whatever feeds the
//! engine (on every OS: `watch --pprof` builds them too).
use crate::report::Report;
use crate::term::sparkline;
use sfgi_engine::engine::{Engine, Leak, SYSCALL_REASON};
use sfgi_engine::format::{go_duration, rfc3339};
use sfgi_engine::judge::Status;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Triggered scans closer together than this share the earlier result.
pub const SCAN_MIN_SPACING: Duration = Duration::from_secs(1);
/// Samples of a group's population kept for its trend sparkline.
pub const TREND_SAMPLES: usize = 20;
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

/// Builds the [`Snapshot`]s a session publishes, whatever feeds its engine (the eBPF session of
/// `watch` and of each agent target, or the polls of `watch --pprof`), and keeps what spans
/// refreshes: each group's recent populations (its trend), the profile samples, the event count
/// of the last snapshot.
pub struct SnapshotBuilder {
    trends: HashMap<String, VecDeque<usize>>,
    profile: Arc<Vec<ProfileSample>>,
    last_profile: Option<Instant>,
    last_events: (u64, Instant),
}

impl SnapshotBuilder {
    /// A builder whose event rate counts from `started`.
    pub fn new(started: Instant) -> SnapshotBuilder {
        SnapshotBuilder {
            trends: HashMap::new(),
            profile: Arc::new(Vec::new()),
            last_profile: None,
            last_events: (0, started),
        }
    }

    /// The snapshot of `report`, judged by `engine` at `now_ns` (the engine's clock: monotonic
    /// for eBPF, wall-clock for dumps), `attached` after the session began; advances the trends
    /// and the profile.
    pub fn build(
        &mut self,
        report: Report,
        engine: &Engine<'_>,
        now_ns: u64,
        attached: Duration,
        peers: Vec<u32>,
    ) -> Snapshot {
        let now = Instant::now();
        let ts_ms = (sfgi_trace::clock::wall_ns() / 1_000_000) as i64;

        // Engine group index → report group index, through the member goids each group lists.
        let mut group_of_goid: HashMap<u64, u32> = HashMap::new();
        for (i, g) in report.groups.iter().enumerate() {
            for &goid in &g.goroutine_ids {
                group_of_goid.insert(goid, i as u32);
            }
        }
        let life = &engine.life;
        let mut group_of_site: HashMap<u32, u32> = HashMap::new();
        for g in life.parked() {
            if let Some(&i) = group_of_goid.get(&g.goid) {
                group_of_site.insert(g.park.group, i);
            }
        }
        let mut states = StateCounts::default();
        let mut members = Vec::new();
        let mut parked = 0;
        for g in life.parked() {
            let p = &g.park;
            parked += 1;
            let group = group_of_site.get(&p.group).copied();
            if g.leaked {
                states.leaked += 1;
            } else if group.is_some_and(|i| report.groups[i as usize].wait_reason == SYSCALL_REASON)
            {
                states.syscall += 1;
            } else {
                states.waiting += 1;
            }
            if let Some(group) = group {
                members.push(Member {
                    goid: g.goid,
                    group,
                    since_ns: p.since_ns,
                });
            }
        }
        states.running = life.len().saturating_sub(parked);
        members.sort_unstable_by_key(|m| (m.group, m.since_ns, m.goid));

        let (ev0, t0) = self.last_events;
        let dt = now.duration_since(t0).as_secs_f64();
        let events_per_sec = if dt > 0.0 {
            report.stats.events.saturating_sub(ev0) as f64 / dt
        } else {
            0.0
        };
        self.last_events = (report.stats.events, now);

        let mut seen = HashMap::with_capacity(report.groups.len());
        for g in &report.groups {
            let t = self.trends.entry(g.id.clone()).or_default();
            if t.len() == TREND_SAMPLES {
                t.pop_front();
            }
            t.push_back(g.count);
            seen.insert(g.id.as_str(), ());
        }
        self.trends.retain(|id, _| seen.contains_key(id.as_str()));

        let snap = Snapshot {
            ts_ms,
            now_ns,
            wall_minus_mono_ns: engine.wall_minus_mono_ns(),
            attached_secs: attached.as_secs_f64(),
            report,
            states,
            members,
            events_per_sec,
            profile: Arc::clone(&self.profile),
            peers,
        };
        if self
            .last_profile
            .is_none_or(|t| t.elapsed() >= PROFILE_EVERY)
        {
            self.last_profile = Some(now);
            let mut p: Vec<ProfileSample> = self.profile.as_ref().clone();
            p.push(snap.profile_sample());
            if p.len() > PROFILE_KEEP {
                p.drain(..p.len() - PROFILE_KEEP);
            }
            self.profile = Arc::new(p);
        }
        snap
    }

    /// A group's trend sparkline (empty for a group not seen yet).
    pub fn trend(&self, id: &str) -> String {
        self.trends
            .get(id)
            .map(|t| sparkline(t.iter().copied()))
            .unwrap_or_default()
    }
}

/// The next trigger request, or never when there is no channel (or it closed).
pub(crate) async fn next_trigger(
    rx: &mut Option<&mut tokio::sync::mpsc::Receiver<TriggerRequest>>,
) -> Option<TriggerRequest> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
