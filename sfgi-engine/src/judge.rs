//! Leak judgement: one status and severity per group, from its members' ages, its population
//! over time and what the classifier says it is.
//!
//! - `growing`: the population kept rising for longer than the threshold and the members that
//!   were there at the start of that window are all still there (leaked goroutines never leave).
//!   Whatever the shape (a loop, a shape the rules call healthy), except an active worker pool
//!   ramping up; a looping member counts as arrived at its first park in a row at the site. When
//!   arrivals are only seen at inventory re-reads (probes stepped down), a shape the rules call
//!   healthy must be seen rising across [`HEALTHY_RISE_READS`] reads: a keep-alive pool grows to a
//!   new working size in a step or two whenever load rises, a leak of that shape keeps rising.
//! - `proven`: the target's own Go 1.27 runtime marked members `_Gleaked`, or a reachability
//!   proof found what members wait on unreachable (severity L3).
//! - `suspect`: not growing, but at least `min_repeat` members blocked longer than the threshold,
//!   and no member that old left the group within the last threshold window (a long-poll or a
//!   slow backend call churns; a leak never lets go).
//! - `resident`: long-lived and stable, and shaped like a healthy goroutine: a worker pool (many
//!   members waiting on one shared queue), a loop that keeps waking (a ticker, a poller), or a
//!   shape the rules call healthy (idle keep-alive connections, signal waiters, the runtime's own).
//! - `normal`: none of these (recently parked; not enough members blocked long enough).
//!
//! Severity: `L1` suspect; `L2` growing; `L3` growing fast (≥ `fast_growth_per_min`) or proven;
//! `L4` avalanche: a growing group while the process's total goroutine count runs away
//! (≥ `avalanche_per_min`). An avalanche is reported without waiting for a longer threshold: a
//! group that gains members at `avalanche_per_min` for [`AVALANCHE_WINDOW`] (30 s), never
//! shrinking or losing a member, while the total rises as fast, is `growing L4`.
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Tunables of the judge (all documented in the CLI's `--help`).
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeConfig {
    /// How long a group must keep rising (growing) or members stay blocked (suspect).
    pub threshold: Duration,
    /// Members blocked longer than the threshold that make a group suspect.
    pub min_repeat: usize,
    /// Growth per minute from which a growing group is `L3`.
    pub fast_growth_per_min: f64,
    /// Growth of the total goroutine count per minute from which a growing group is `L4`.
    pub avalanche_per_min: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            threshold: Duration::from_secs(300),
            min_repeat: 3,
            fast_growth_per_min: 60.0,
            avalanche_per_min: 1000.0,
        }
    }
}

/// A group's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Proven leaked: marked by the Go runtime itself, or what members wait on was found
    /// unreachable by a reachability proof.
    Proven,
    /// Population rising, old members never leave.
    Growing,
    /// Many members blocked for long, not growing.
    Suspect,
    /// Long-lived, stable and healthy-shaped.
    Resident,
    /// Nothing to report.
    Normal,
}

impl Status {
    /// Lower-case name as printed and served.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proven => "proven",
            Status::Growing => "growing",
            Status::Suspect => "suspect",
            Status::Resident => "resident",
            Status::Normal => "normal",
        }
    }

    /// Whether the status is a leak verdict (listed under `leaks`).
    pub fn is_leak(self) -> bool {
        matches!(self, Status::Proven | Status::Growing | Status::Suspect)
    }
}

/// Severity of a leak verdict, `L1` (least) to `L4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Severity {
    /// Suspect.
    L1,
    /// Growing.
    L2,
    /// Growing fast, or proven.
    L3,
    /// Avalanche: the whole process's goroutine count runs away.
    L4,
}

impl Severity {
    /// `L1`…`L4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::L1 => "L1",
            Severity::L2 => "L2",
            Severity::L3 => "L3",
            Severity::L4 => "L4",
        }
    }

    /// Parses `L1`…`L4` (case-insensitive) or `1`…`4`.
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().trim_start_matches(['L', 'l']) {
            "1" => Some(Severity::L1),
            "2" => Some(Severity::L2),
            "3" => Some(Severity::L3),
            "4" => Some(Severity::L4),
            _ => None,
        }
    }
}

/// What the judge needs of one member.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemberView {
    /// Its goid.
    pub goid: u64,
    /// When it parked at this site (monotonic ns): the start of its current block.
    pub since_ns: u64,
    /// Since when it has been in the group (monotonic ns): the first of its parks in a row at
    /// this site. Equals `since_ns` unless it loops here (a ticker, a poller, a pool worker).
    pub arrived_ns: u64,
    /// Times it parked at this same site in a row (≥ 2: a loop, a pool worker).
    pub repeat_parks: u32,
    /// The object it parks on (0 if none or unknown; [`UNKNOWN_OBJECT`] when it surely parks on
    /// one SFGI could not read).
    pub object: u64,
    /// Whether the Go runtime marked it `_Gleaked`.
    pub leaked: bool,
    /// Whether a reachability proof found what it waits on unreachable (in this park).
    pub proven: bool,
}

/// [`MemberView::object`] of a member that parks on an object SFGI could not read (the inventory
/// does not follow a `_Gleaked` goroutine's sudogs): neither a known object nor a known nil one.
pub const UNKNOWN_OBJECT: u64 = u64::MAX;

/// What the judge needs of one group.
#[derive(Clone, Copy, Debug)]
pub struct GroupView<'a> {
    /// Stable group id.
    pub id: &'a str,
    /// Go wait reason.
    pub wait_reason: &'a str,
    /// Members.
    pub members: &'a [MemberView],
    /// Whether the classifier called the shape healthy.
    pub healthy: bool,
}

/// The judge's verdict on one group.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Status.
    pub status: Status,
    /// Severity, for leak statuses.
    pub severity: Option<Severity>,
    /// Members gained per minute over the threshold window (0 when not rising).
    pub growth_per_minute: f64,
    /// Why, in words.
    pub reason: String,
    /// Since when the group has had this status without a break (monotonic ns): what an
    /// alert's `for:` can rest on.
    pub status_since_ns: u64,
}

/// What was last reported for a group: the memory behind the judge's hysteresis.
#[derive(Clone, Copy, Debug)]
struct Reported {
    status: Status,
    severity: Option<Severity>,
    /// When `status` was first reported in this run of it.
    since_ns: u64,
    /// The last time the group's own evidence said `growing`, and its members then.
    raw_growing_ns: u64,
    /// The first time it said so in this run of growth (runs are a threshold apart).
    first_growing_ns: u64,
    growing_count: usize,
    /// The last time the evidence supported `severity` (or more).
    severity_held_ns: u64,
    /// Since when the evidence has said more than `severity`, without a break (0: it does
    /// not).
    higher_since_ns: u64,
}

/// Population samples of groups and of the whole process, and the verdicts drawn from them.
#[derive(Debug)]
pub struct Judge {
    cfg: JudgeConfig,
    history: HashMap<String, VecDeque<Sample>>,
    total: VecDeque<Sample>,
    /// When observation started (monotonic ns).
    started_ns: Option<u64>,
    /// What was last reported per group.
    reported: HashMap<String, Reported>,
    /// How finely arrivals are timed (ns; 0: exactly, from events). Working from inventory
    /// re-reads alone, a member is only seen to arrive at a read.
    resolution_ns: u64,
}

/// One population sample: when, how many members, and how many members blocked longer than the
/// threshold had left the group by then (a running total).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    t: u64,
    count: usize,
    old_departed: u64,
}

/// With arrivals seen only at re-reads, how many re-read intervals a group of a shape the
/// rules call healthy (idle keep-alive connections, periodic loops) must be seen rising across
/// to be `growing`, when the threshold is shorter: connection pools grow to a new working size
/// in a step or two whenever load rises.
pub const HEALTHY_RISE_READS: u32 = 3;

/// How long a group must run away before it is reported as an avalanche ahead of a longer
/// threshold (with a threshold this short or shorter, the threshold's own rules apply).
pub const AVALANCHE_WINDOW: Duration = Duration::from_secs(30);

/// How long growth must have been seen (from the first to the latest judgment that saw it)
/// before the judge holds `growing` through gaps in the evidence: half the threshold. A ramp of
/// healthy long waits a little longer than the threshold reads as rising for under a third of
/// the threshold (its last arrivals leave the window's last third empty), so it is never held.
fn establish_ns(threshold_ns: u64) -> u64 {
    threshold_ns / 2
}

/// Most samples kept per group; older ones are thinned out.
const MAX_SAMPLES: usize = 512;
/// Most groups with history; the least recently seen are forgotten first.
const MAX_GROUPS: usize = 20_000;

impl Judge {
    /// A judge with `cfg`.
    pub fn new(cfg: JudgeConfig) -> Self {
        Self {
            cfg,
            history: HashMap::new(),
            total: VecDeque::new(),
            started_ns: None,
            reported: HashMap::new(),
            resolution_ns: 0,
        }
    }

    /// Arrivals are seen only every `ns` (the interval between inventory re-reads when events
    /// are untrusted; 0 when events time them exactly): "new members arrived all along the
    /// window" is then judged at that resolution, not finer.
    pub fn set_resolution(&mut self, ns: u64) {
        self.resolution_ns = ns;
    }

    /// The configuration.
    pub fn config(&self) -> &JudgeConfig {
        &self.cfg
    }

    /// Records one sample at `now_ns`: every group's member count with the running total of its
    /// members that left after being blocked longer than the threshold, and the process's total
    /// goroutine count.
    pub fn observe<'a>(
        &mut self,
        now_ns: u64,
        groups: impl IntoIterator<Item = (&'a str, usize, u64)>,
        total: usize,
    ) {
        self.started_ns.get_or_insert(now_ns);
        let keep_ns = 2
            * (self.cfg.threshold.as_nanos() as u64).max(
                self.resolution_ns
                    .saturating_mul(u64::from(HEALTHY_RISE_READS)),
            );
        let sample = |count, old_departed| Sample {
            t: now_ns,
            count,
            old_departed,
        };
        push_sample(&mut self.total, sample(total, 0), keep_ns);
        let mut seen = 0usize;
        for (id, count, old_departed) in groups {
            seen += 1;
            if !self.history.contains_key(id) && self.history.len() >= MAX_GROUPS {
                continue;
            }
            let h = self.history.entry(id.to_string()).or_default();
            push_sample(h, sample(count, old_departed), keep_ns);
        }
        // Groups that vanished get a zero so a drained burst shows as drained.
        if seen < self.history.len() {
            for h in self.history.values_mut() {
                if let Some(&last) = h.back() {
                    if last.t < now_ns && last.count > 0 {
                        push_sample(h, sample(0, last.old_departed), keep_ns);
                    }
                }
            }
            self.history
                .retain(|_, h| h.back().is_some_and(|s| s.count > 0) || h.len() > 1);
            let history = &self.history;
            self.reported.retain(|id, _| history.contains_key(id));
        }
    }

    /// How many members blocked longer than the threshold left the group within the window.
    fn old_departures(&self, id: &str, window_start: u64) -> u64 {
        let Some(h) = self.history.get(id) else {
            return 0;
        };
        let (Some(last), Some(first)) = (
            h.back(),
            h.iter()
                .rev()
                .find(|s| s.t <= window_start)
                .or_else(|| h.front()),
        ) else {
            return 0;
        };
        last.old_departed.saturating_sub(first.old_departed)
    }

    /// Growth of the whole process's goroutine count per minute over the threshold window.
    pub fn total_growth_per_minute(&self, now_ns: u64) -> f64 {
        rate_per_minute(&self.total, now_ns, self.cfg.threshold)
    }

    /// Judges one group at `now_ns`, with hysteresis: a group whose growth is established (seen
    /// at judgments [`establish_ns`] apart) stays `growing` while none of its old members left
    /// and its population has not fallen below what it was when growth was last seen, until a
    /// whole threshold window passes without growth — so a
    /// population that only moves at inventory re-reads (probes detached) does not flap between
    /// `growing` and `suspect`. A lower severity is likewise reported only after a whole window
    /// at the lower level; a higher one (for the same status) once the evidence has held it for
    /// half a threshold. Call in time order.
    pub fn judge(&mut self, now_ns: u64, g: &GroupView<'_>) -> Verdict {
        let raw = self.evidence(now_ns, g);
        let threshold_ns = self.cfg.threshold.as_nanos() as u64;
        let count = g.members.len();
        let prev = self.reported.get(g.id).copied();
        let mut v = raw.clone();
        let mut higher_since = 0;
        if let Some(p) = prev {
            // Held only for established growth, seen at two judgments some time apart: the
            // ramp-up of healthy long waits can look like growth for an instant, and an instant
            // is not held.
            let established =
                p.raw_growing_ns.saturating_sub(p.first_growing_ns) >= establish_ns(threshold_ns);
            let held_growing = p.status == Status::Growing
                && !matches!(raw.status, Status::Growing | Status::Proven)
                && established
                && count >= p.growing_count
                && now_ns.saturating_sub(p.raw_growing_ns) < threshold_ns
                && self.old_departures(g.id, now_ns.saturating_sub(threshold_ns)) == 0;
            if held_growing {
                v = Verdict {
                    status: Status::Growing,
                    severity: p.severity,
                    growth_per_minute: raw.growth_per_minute,
                    reason: format!(
                        "{count} members; growth last seen {} ago and none has left since (held until a whole threshold passes without growth)",
                        crate::format::go_duration(
                            now_ns.saturating_sub(p.raw_growing_ns) as f64 / 1e9
                        )
                    ),
                    status_since_ns: 0,
                };
            }
            if v.status == p.status
                && v.severity.is_some()
                && v.severity < p.severity
                && now_ns.saturating_sub(p.severity_held_ns) < threshold_ns
            {
                v.severity = p.severity;
            }
            // A higher severity for the same status only once the evidence has said so for
            // half a threshold without a break: a total goroutine count that wobbles around the
            // avalanche rate must not flip an alert's severity back and forth.
            if v.status == p.status
                && p.severity.is_some()
                && v.severity > p.severity
                && (p.higher_since_ns == 0
                    || now_ns.saturating_sub(p.higher_since_ns) < establish_ns(threshold_ns))
            {
                higher_since = if p.higher_since_ns == 0 {
                    now_ns
                } else {
                    p.higher_since_ns
                };
                v.severity = p.severity;
            }
        }
        let raw_growing = raw.status == Status::Growing;
        let r = Reported {
            status: v.status,
            severity: v.severity,
            since_ns: match prev {
                Some(p) if p.status == v.status => p.since_ns,
                _ => now_ns,
            },
            raw_growing_ns: if raw_growing {
                now_ns
            } else {
                prev.map_or(0, |p| p.raw_growing_ns)
            },
            first_growing_ns: match prev {
                Some(p)
                    if p.first_growing_ns != 0
                        && now_ns.saturating_sub(p.raw_growing_ns) < threshold_ns =>
                {
                    p.first_growing_ns
                }
                _ if raw_growing => now_ns,
                _ => 0,
            },
            growing_count: if raw_growing {
                count
            } else {
                prev.map_or(0, |p| p.growing_count)
            },
            severity_held_ns: match prev {
                Some(p) if raw.severity < v.severity => p.severity_held_ns,
                _ => now_ns,
            },
            higher_since_ns: higher_since,
        };
        v.status_since_ns = r.since_ns;
        if self.reported.contains_key(g.id) || self.reported.len() < MAX_GROUPS {
            self.reported.insert(g.id.to_string(), r);
        }
        v
    }

    /// What the group's evidence alone says at `now_ns` (no memory of earlier verdicts): a
    /// proof (the runtime's `_Gleaked` marks, or SFGI's reachability proof) makes it `proven`,
    /// `L3`, whatever its growth.
    fn evidence(&self, now_ns: u64, g: &GroupView<'_>) -> Verdict {
        let count = g.members.len();
        let proven = g.members.iter().filter(|m| m.proven).count();
        let reason = if g.members.iter().any(|m| m.leaked) {
            "the Go runtime's own leak detector marked members _Gleaked".to_string()
        } else if proven > 0 {
            format!(
                "{proven} of {count} members proven leaked: what they wait on is unreachable from every root (two passes over the heap)"
            )
        } else {
            return self.evidence_unproven(now_ns, g);
        };
        Verdict {
            status_since_ns: 0,
            status: Status::Proven,
            severity: Some(Severity::L3),
            growth_per_minute: self.growth(now_ns, g),
            reason,
        }
    }

    /// [`Self::evidence`] without proofs.
    fn evidence_unproven(&self, now_ns: u64, g: &GroupView<'_>) -> Verdict {
        let cfg = &self.cfg;
        let threshold_ns = cfg.threshold.as_nanos() as u64;
        let window_start = now_ns.saturating_sub(threshold_ns);
        let count = g.members.len();

        let looping = g.members.iter().filter(|m| m.repeat_parks >= 2).count();
        let objects: foldhash::HashSet<u64> = g
            .members
            .iter()
            .map(|m| m.object)
            .filter(|&o| o != 0 && o != UNKNOWN_OBJECT)
            .collect();
        let pool =
            count >= 2 && objects.len() == 1 && matches!(g.wait_reason, "chan receive" | "select");
        let healthy_shape = g.healthy || pool || looping * 2 > count;
        // Growth is judged before the shape: a loop (a ticker per request never stopped), a
        // shape the rules call healthy (a client per request never closed) or goroutines on one
        // shared channel can all leak. Only an active worker pool (a shared queue its members
        // keep coming back to for work) may ramp up.
        let active_pool = pool && looping * 2 > count;

        let old = g
            .members
            .iter()
            .filter(|m| m.since_ns <= window_start)
            .count();
        // A shape the rules call healthy (keep-alive connections, periodic loops) grows to its
        // working size when load rises: it must keep rising for longer to be growing.
        let rise_window = if g.healthy && self.resolution_ns > 0 {
            cfg.threshold
                .max(Duration::from_nanos(self.resolution_ns) * HEALTHY_RISE_READS)
        } else {
            cfg.threshold
        };
        let rise_start = now_ns.saturating_sub(rise_window.as_nanos() as u64);
        let settled = g
            .members
            .iter()
            .filter(|m| m.arrived_ns <= rise_start)
            .count();
        let growth = self.growth(now_ns, g);
        let old_left = self.old_departures(g.id, rise_start);
        if !active_pool && old_left == 0 && self.rising(now_ns, g, rise_start) {
            // Over at least the avalanche window: a short threshold would read the in-flight
            // requests' coming and going as a runaway.
            let total_rate =
                rate_per_minute(&self.total, now_ns, cfg.threshold.max(AVALANCHE_WINDOW));
            let severity = if total_rate >= cfg.avalanche_per_min {
                Severity::L4
            } else if growth >= cfg.fast_growth_per_min {
                Severity::L3
            } else {
                Severity::L2
            };
            return Verdict {
                status_since_ns: 0,
                status: Status::Growing,
                severity: Some(severity),
                growth_per_minute: growth,
                reason: format!(
                    "{count} members, rising for over {} while the {settled} older ones never left",
                    crate::format::go_duration(rise_window.as_secs_f64())
                ),
            };
        }
        if !active_pool {
            if let Some((gained, rate, total_rate)) = self.avalanche(now_ns, g) {
                return Verdict {
                    status_since_ns: 0,
                    status: Status::Growing,
                    severity: Some(Severity::L4),
                    growth_per_minute: rate,
                    reason: format!(
                        "avalanche: +{gained} members in {} ({rate:.0}/min) while the process's goroutines rose {total_rate:.0}/min, and none left",
                        crate::format::go_duration(AVALANCHE_WINDOW.as_secs_f64())
                    ),
                };
            }
        }
        if healthy_shape {
            let why = if g.healthy {
                "a healthy shape per the rules"
            } else if pool {
                "members share one queue (a worker pool)"
            } else {
                "members keep waking and parking here (a loop)"
            };
            return Verdict {
                status_since_ns: 0,
                status: if old > 0 || looping > 0 {
                    Status::Resident
                } else {
                    Status::Normal
                },
                severity: None,
                growth_per_minute: growth,
                reason: why.into(),
            };
        }
        if old >= cfg.min_repeat && old_left > 0 {
            return Verdict {
                status_since_ns: 0,
                status: Status::Normal,
                severity: None,
                growth_per_minute: growth,
                reason: format!(
                    "{old} members blocked longer than the threshold, but {old_left} as old left within it (members churn)"
                ),
            };
        }
        if old >= cfg.min_repeat {
            return Verdict {
                status_since_ns: 0,
                status: Status::Suspect,
                severity: Some(Severity::L1),
                growth_per_minute: growth,
                reason: format!(
                    "{old} members blocked longer than {}",
                    crate::format::go_duration(cfg.threshold.as_secs_f64())
                ),
            };
        }
        Verdict {
            status_since_ns: 0,
            status: Status::Normal,
            severity: None,
            growth_per_minute: growth,
            reason: format!("{old} of {count} members blocked longer than the threshold"),
        }
    }

    /// The avalanche window, when it is shorter than the threshold.
    fn avalanche_window(&self) -> Option<Duration> {
        (self.cfg.threshold > AVALANCHE_WINDOW).then_some(AVALANCHE_WINDOW)
    }

    /// An avalanche, reported without waiting for the threshold: over the last
    /// [`AVALANCHE_WINDOW`] the group gained members at `avalanche_per_min` or more, its sampled
    /// population never fell, every member it had at the window's start is still there, and the
    /// process's total goroutine count rose as fast. Only with a threshold longer than the
    /// window. Returns (gained, group rate, total rate).
    fn avalanche(&self, now_ns: u64, g: &GroupView<'_>) -> Option<(usize, f64, f64)> {
        let window = self.avalanche_window()?;
        let start = now_ns.checked_sub(window.as_nanos() as u64)?;
        let h = self.history.get(g.id)?;
        let first = h.iter().rev().find(|s| s.t <= start)?;
        let inside: Vec<usize> = h
            .iter()
            .filter(|s| s.t >= first.t)
            .map(|s| s.count)
            .collect();
        if inside.len() < 3 || inside.windows(2).any(|w| w[1] < w[0]) {
            return None;
        }
        let stayed = g.members.iter().filter(|m| m.arrived_ns <= start).count();
        if stayed < first.count {
            return None;
        }
        let gained = g.members.len().checked_sub(first.count)?;
        let minutes = now_ns.saturating_sub(first.t) as f64 / 60e9;
        let rate = gained as f64 / minutes.max(1e-9);
        let total_rate = rate_per_minute(&self.total, now_ns, window);
        let limit = self.cfg.avalanche_per_min;
        (limit > 0.0 && rate >= limit && total_rate >= limit).then_some((gained, rate, total_rate))
    }

    /// Members gained per minute over the window: from the sampled history when it covers the
    /// window, else from members' park times (survivors only: a lower bound).
    fn growth(&self, now_ns: u64, g: &GroupView<'_>) -> f64 {
        let history = self.history.get(g.id);
        let from_history = history
            .map(|h| rate_per_minute(h, now_ns, self.cfg.threshold))
            .unwrap_or(0.0);
        let threshold_ns = self.cfg.threshold.as_nanos() as u64;
        let window_start = now_ns.saturating_sub(threshold_ns);
        // Park times count members that merely re-parked (a loop, a pool worker) as gained: only
        // a fallback for when the samples do not reach back to the window's start.
        if history
            .and_then(|h| h.front())
            .is_some_and(|s| s.t <= window_start)
        {
            return from_history.max(0.0);
        }
        let newer = g
            .members
            .iter()
            .filter(|m| m.arrived_ns > window_start)
            .count() as f64;
        let from_ages = newer / (threshold_ns.max(1) as f64 / 60e9);
        from_history.max(from_ages).max(0.0)
    }

    /// Whether the group kept rising across the whole window while its old members stayed:
    /// members older than the window exist, new ones arrived in each third of it, and the sampled
    /// population (when the samples reach back that far) rose and never fell below those
    /// survivors. A member's age in the group counts from its first park in a row there.
    fn rising(&self, now_ns: u64, g: &GroupView<'_>, window_start: u64) -> bool {
        let span = now_ns.saturating_sub(window_start);
        if span == 0 {
            return false;
        }
        let old = g
            .members
            .iter()
            .filter(|m| m.arrived_ns <= window_start)
            .count();
        if old == 0 {
            return false;
        }
        // New members arrived in each third of the window, or in each part of it as long as
        // the arrivals can be timed (re-reads one second apart cannot tell thirds of two).
        let parts = match self.resolution_ns {
            0 => 3,
            r => (span / r).clamp(1, 3),
        };
        let part = span / parts;
        let mut arrivals = [0usize; 3];
        for m in g.members.iter().filter(|m| m.arrived_ns > window_start) {
            let i = ((m.arrived_ns - window_start) / part.max(1)).min(parts - 1) as usize;
            arrivals[i] += 1;
        }
        if arrivals[..parts as usize].contains(&0) {
            return false;
        }
        // Old members never leave: the population seen at the window's start is all still here.
        if let Some(h) = self.history.get(g.id) {
            if let Some(then) = h.iter().rev().find(|s| s.t <= window_start) {
                // Arrivals seen only at re-reads are timed to within a resolution: a member
                // counted in that sample may carry an arrival a little after it.
                let slack_end = window_start.saturating_add(self.resolution_ns);
                let old = g
                    .members
                    .iter()
                    .filter(|m| m.arrived_ns <= slack_end)
                    .count();
                // (and the population rose: members of a stable loop that merely broke their
                // streak of parks look like arrivals too).
                if old < then.count || g.members.len() <= then.count {
                    return false;
                }
            }
            // And the population never shrank by more than a tenth inside the window.
            let peak = h
                .iter()
                .filter(|s| s.t > window_start)
                .map(|s| s.count)
                .max()
                .unwrap_or(0);
            if peak > g.members.len() + g.members.len() / 10 + 1 {
                return false;
            }
        }
        true
    }
}

fn push_sample(h: &mut VecDeque<Sample>, s: Sample, keep_ns: u64) {
    if let Some(last) = h.back_mut() {
        if last.t >= s.t {
            *last = Sample { t: last.t, ..s };
            return;
        }
    }
    let now_ns = s.t;
    h.push_back(s);
    while h
        .front()
        .is_some_and(|f| now_ns.saturating_sub(f.t) > keep_ns)
        && h.len() > 2
    {
        h.pop_front();
    }
    if h.len() > MAX_SAMPLES {
        // Thin out: drop every other sample of the older half.
        let half = h.len() / 2;
        let kept: VecDeque<Sample> = h
            .iter()
            .enumerate()
            .filter(|(i, _)| *i >= half || i % 2 == 0)
            .map(|(_, s)| *s)
            .collect();
        *h = kept;
    }
}

/// Change per minute between the sample at (or just before) `now - window` and the latest one.
fn rate_per_minute(h: &VecDeque<Sample>, now_ns: u64, window: Duration) -> f64 {
    let start = now_ns.saturating_sub(window.as_nanos() as u64);
    let (Some(last), Some(first)) = (
        h.back(),
        h.iter().rev().find(|s| s.t <= start).or_else(|| h.front()),
    ) else {
        return 0.0;
    };
    let (t1, c1, t0, c0) = (last.t, last.count, first.t, first.count);
    if t1 <= t0 {
        return 0.0;
    }
    (c1 as f64 - c0 as f64) / ((t1 - t0) as f64 / 60e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn cfg(threshold_s: u64) -> JudgeConfig {
        JudgeConfig {
            threshold: Duration::from_secs(threshold_s),
            ..JudgeConfig::default()
        }
    }

    fn member(since_s: u64, object: u64) -> MemberView {
        MemberView {
            goid: 0,
            since_ns: since_s * S,
            arrived_ns: since_s * S,
            repeat_parks: 1,
            object,
            leaked: false,
            proven: false,
        }
    }

    fn view<'a>(members: &'a [MemberView], reason: &'a str) -> GroupView<'a> {
        GroupView {
            id: "g",
            wait_reason: reason,
            members,
            healthy: false,
        }
    }

    /// A leak adding one goroutine per second, each on its own channel, observed every second.
    fn steady_leak(judge: &mut Judge, until_s: u64) -> Vec<MemberView> {
        let mut members = Vec::new();
        for t in 1..=until_s {
            members.push(member(t, 0x1000 + t));
            judge.observe(t * S, [("g", members.len(), 0)], 100 + members.len());
        }
        members
    }

    #[test]
    fn a_steady_leak_is_growing_once_it_rose_for_the_threshold() {
        let mut j = Judge::new(cfg(10));
        let m = steady_leak(&mut j, 8);
        assert_eq!(
            j.judge(8 * S, &view(&m, "chan send")).status,
            Status::Normal
        );
        let mut j = Judge::new(cfg(10));
        let m = steady_leak(&mut j, 12);
        let v = j.judge(12 * S, &view(&m, "chan send"));
        assert_eq!(v.status, Status::Growing, "{v:?}");
        assert_eq!(v.severity, Some(Severity::L3), "60/min is fast: {v:?}");
        assert!((v.growth_per_minute - 60.0).abs() < 7.0, "{v:?}");
    }

    /// A leak of `per_s` goroutines per second on their own channels, sampled every second
    /// for `secs` seconds; the process gains only these.
    fn runaway(judge: &mut Judge, per_s: u64, secs: u64) -> Vec<MemberView> {
        let mut members = Vec::new();
        for t in 1..=secs {
            for k in 0..per_s {
                members.push(member(t, 0x10_0000 + t * per_s + k));
            }
            judge.observe(t * S, [("g", members.len(), 0)], 100 + members.len());
        }
        members
    }

    #[test]
    fn an_avalanche_is_growing_l4_within_the_avalanche_window() {
        // 20 goroutines/s = 1200/min, default threshold (5 min): reported after 30 s, not 5 min.
        let mut j = Judge::new(JudgeConfig::default());
        let m = runaway(&mut j, 20, 25);
        let v = j.judge(25 * S, &view(&m, "chan send"));
        assert_eq!(v.status, Status::Normal, "not yet a whole window: {v:?}");
        let mut j = Judge::new(JudgeConfig::default());
        let m = runaway(&mut j, 20, 32);
        let v = j.judge(32 * S, &view(&m, "chan send"));
        assert_eq!(
            (v.status, v.severity),
            (Status::Growing, Some(Severity::L4)),
            "{v:?}"
        );
        assert!(v.reason.starts_with("avalanche: +"), "{v:?}");
        assert!((v.growth_per_minute - 1200.0).abs() < 100.0, "{v:?}");
    }

    #[test]
    fn a_slower_rise_or_a_burst_that_drains_is_no_avalanche() {
        // 10/s = 600/min: below --avalanche (1000/min), so it waits for the threshold.
        let mut j = Judge::new(JudgeConfig::default());
        let m = runaway(&mut j, 10, 40);
        assert_eq!(
            j.judge(40 * S, &view(&m, "chan send")).status,
            Status::Normal
        );
        // 40/s for 35 s, but the population dipped once (requests finishing): not a runaway.
        let mut j = Judge::new(JudgeConfig::default());
        let mut m = Vec::new();
        for t in 1..=35u64 {
            for k in 0..40 {
                m.push(member(t, 0x20_0000 + t * 40 + k));
            }
            if t == 20 {
                m.drain(..100);
            }
            j.observe(t * S, [("g", m.len(), 0)], 100 + m.len());
        }
        assert_eq!(
            j.judge(35 * S, &view(&m, "chan send")).status,
            Status::Normal
        );
        // A pool's workers ramping up as fast are still a pool.
        let mut j = Judge::new(JudgeConfig::default());
        let mut m = Vec::new();
        for t in 1..=35u64 {
            for _ in 0..40 {
                let mut w = member(t, 0xfeed);
                w.repeat_parks = 5;
                m.push(w);
            }
            j.observe(t * S, [("g", m.len(), 0)], 100 + m.len());
        }
        assert_eq!(
            j.judge(35 * S, &view(&m, "chan receive")).status,
            Status::Resident
        );
    }

    #[test]
    fn a_burst_that_stays_is_suspect_not_growing() {
        let mut j = Judge::new(cfg(5));
        let m: Vec<MemberView> = (0..20).map(|i| member(1, 0x1000 + i)).collect();
        for t in 1..=10 {
            j.observe(t * S, [("g", 20, 0)], 120);
        }
        let v = j.judge(10 * S, &view(&m, "chan receive"));
        assert_eq!(v.status, Status::Suspect, "{v:?}");
        assert_eq!(v.severity, Some(Severity::L1));
    }

    #[test]
    fn old_members_that_keep_leaving_are_not_suspect() {
        // Long polls: 20 in flight, each held ~8 s and replaced, threshold 3 s.
        let mut j = Judge::new(cfg(3));
        let mut departed = 0u64;
        for t in 1..=12 {
            departed += 2;
            j.observe(t * S, [("g", 20, departed)], 40);
        }
        let m: Vec<MemberView> = (0..20).map(|i| member(1 + i % 10, 0x100 + i)).collect();
        let v = j.judge(12 * S, &view(&m, "IO wait"));
        assert_eq!(v.status, Status::Normal, "{v:?}");
    }

    #[test]
    fn a_burst_that_drains_is_not_a_leak() {
        let mut j = Judge::new(cfg(5));
        for t in 1..=4 {
            j.observe(t * S, [("g", 50 * t as usize, 0)], 200);
        }
        j.observe(5 * S, std::iter::empty(), 100);
        j.observe(10 * S, std::iter::empty(), 100);
        let m = [member(9, 7)];
        assert_eq!(
            j.judge(10 * S, &view(&m, "chan receive")).status,
            Status::Normal
        );
    }

    #[test]
    fn a_pool_ramping_up_is_resident() {
        // 32 workers added one every 0.5 s over 16 s, all waiting on one job queue.
        let mut j = Judge::new(cfg(5));
        let mut m = Vec::new();
        for i in 0..32u64 {
            m.push(member(i / 2, 0xfeed));
            j.observe((i / 2 + 1) * S, [("g", m.len(), 0)], 40 + m.len());
        }
        let v = j.judge(20 * S, &view(&m, "chan receive"));
        assert_eq!(v.status, Status::Resident, "{v:?}");
        assert_eq!(v.severity, None);
    }

    #[test]
    fn periodic_workers_are_resident() {
        let mut j = Judge::new(cfg(5));
        let m: Vec<MemberView> = (0..8)
            .map(|i| MemberView {
                goid: 0,
                since_ns: 19 * S,
                arrived_ns: S,
                repeat_parks: 40,
                object: 0x100 + i,
                leaked: false,
                proven: false,
            })
            .collect();
        j.observe(20 * S, [("g", 8, 0)], 20);
        // Parked recently (tickers re-park every period): not old, so no verdict yet beyond resident.
        let v = j.judge(20 * S, &view(&m, "chan receive"));
        assert_eq!(v.status, Status::Resident, "{v:?}");
    }

    #[test]
    fn a_stable_loop_that_re_parks_has_no_growth() {
        // One ticker goroutine, sampled for 10 s, last parked 0.1 s ago: nothing was gained.
        let mut j = Judge::new(cfg(2));
        for t in 1..=10 {
            j.observe(t * S, [("g", 1, 0)], 10);
        }
        let m = [MemberView {
            goid: 0,
            since_ns: 10 * S - S / 10,
            arrived_ns: S,
            repeat_parks: 50,
            object: 0x100,
            leaked: false,
            proven: false,
        }];
        let v = j.judge(10 * S, &view(&m, "chan receive"));
        assert_eq!(v.growth_per_minute, 0.0, "{v:?}");
    }

    #[test]
    fn loops_that_pile_up_are_growing_but_an_active_pool_ramping_up_is_not() {
        // One ticker loop per request, never stopped: a new one every second, each waking every
        // 100 ms on its own channel. Then the same arrivals on one shared job queue (a pool).
        for (shared, want) in [(false, Status::Growing), (true, Status::Resident)] {
            let mut j = Judge::new(cfg(5));
            let mut m = Vec::new();
            for t in 1..=12u64 {
                m.push(MemberView {
                    goid: 0,
                    since_ns: 0,
                    arrived_ns: t * S,
                    repeat_parks: 1,
                    object: if shared { 0xfeed } else { 0x1000 + t },
                    leaked: false,
                    proven: false,
                });
                for x in m.iter_mut() {
                    x.since_ns = t * S;
                    x.repeat_parks += 10;
                }
                j.observe(t * S, [("g", m.len(), 0)], 100 + m.len());
            }
            let v = j.judge(12 * S, &view(&m, "chan receive"));
            assert_eq!(v.status, want, "shared {shared}: {v:?}");
        }
    }

    #[test]
    fn a_stable_loop_is_not_growing_when_members_break_their_streak() {
        // 8 tickers, constant; now and then one re-parks elsewhere first (a new streak).
        let mut j = Judge::new(cfg(3));
        for t in 1..=10u64 {
            j.observe(t * S, [("g", 8, 0)], 20);
        }
        let m: Vec<MemberView> = (0..8u64)
            .map(|i| MemberView {
                goid: 0,
                since_ns: 10 * S - S / 20,
                arrived_ns: if i < 3 { (7 + i) * S } else { S },
                repeat_parks: 5,
                object: 0x100 + i,
                leaked: false,
                proven: false,
            })
            .collect();
        let v = j.judge(10 * S, &view(&m, "chan receive"));
        assert_eq!(v.status, Status::Resident, "{v:?}");
    }

    #[test]
    fn unknown_objects_do_not_make_a_pool() {
        let mut j = Judge::new(cfg(2));
        let mut m: Vec<MemberView> = (0..5).map(|_| member(1, UNKNOWN_OBJECT)).collect();
        for t in 1..=10 {
            j.observe(t * S, [("g", 5, 0)], 10);
        }
        assert_eq!(
            j.judge(10 * S, &view(&m, "chan receive")).status,
            Status::Suspect
        );
        m[0].leaked = true;
        assert_eq!(
            j.judge(10 * S, &view(&m, "chan receive")).status,
            Status::Proven
        );
    }

    #[test]
    fn healthy_rules_make_old_stable_groups_resident() {
        let mut j = Judge::new(cfg(5));
        let m: Vec<MemberView> = (0..50).map(|i| member(1, 0x100 + i)).collect();
        let g = GroupView {
            healthy: true,
            ..view(&m, "IO wait")
        };
        assert_eq!(j.judge(60 * S, &g).status, Status::Resident);
    }

    #[test]
    fn leaked_members_are_proven() {
        let mut j = Judge::new(cfg(5));
        let mut m = vec![member(1, 1)];
        m[0].leaked = true;
        let v = j.judge(2 * S, &view(&m, "chan send"));
        assert_eq!((v.status, v.severity), (Status::Proven, Some(Severity::L3)));
    }

    /// A member proven unreachable makes the group proven at once (long before the threshold),
    /// at L3; one that is not proven leaves a young group normal.
    #[test]
    fn unreachable_members_are_proven() {
        let mut j = Judge::new(cfg(300));
        let mut m = vec![member(1, 1), member(1, 2)];
        let v = j.judge(2 * S, &view(&m, "chan send"));
        assert_eq!(v.status, Status::Normal);
        m[1].proven = true;
        let v = j.judge(3 * S, &view(&m, "chan send"));
        assert_eq!((v.status, v.severity), (Status::Proven, Some(Severity::L3)));
        assert!(
            v.reason.starts_with("1 of 2 members proven"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn an_avalanche_is_l4() {
        let mut j = Judge::new(JudgeConfig {
            avalanche_per_min: 600.0,
            ..cfg(10)
        });
        let mut m = Vec::new();
        for t in 1..=12u64 {
            m.push(member(t, 0x1000 + t));
            j.observe(t * S, [("g", m.len(), 0)], (t * 100) as usize);
        }
        let v = j.judge(12 * S, &view(&m, "chan send"));
        assert_eq!(v.severity, Some(Severity::L4), "{v:?}");
    }

    /// Arrivals timed to 1.5 s (re-reads a second apart; threshold 2 s): a healthy-shaped group (keep-alive
    /// connections) that grew in one step and stays is not `growing`; one seen rising at every
    /// read is; with exact arrivals (events) the shape does not matter.
    #[test]
    fn healthy_shapes_must_be_seen_rising_across_reads() {
        let judge = |healthy: bool, resolution_s: f64, step: bool| {
            let mut j = Judge::new(JudgeConfig {
                avalanche_per_min: 0.0,
                ..cfg(2)
            });
            j.set_resolution((resolution_s * 1e9) as u64);
            let mut m = Vec::new();
            let mut statuses = Vec::new();
            for k in 1..=12u64 {
                // A second at a time: 5 new members at the first two (a pool's step), or in
                // every one (a leak).
                let t = k * S;
                if !step || k <= 2 {
                    for i in 0..5 {
                        let at = t - i * S / 5;
                        m.push(MemberView {
                            since_ns: at,
                            arrived_ns: at,
                            ..member(0, 0x1000 + k * 8 + i)
                        });
                    }
                }
                j.observe(t, [("g", m.len(), 0)], 100 + m.len());
                let v = j.judge(
                    t,
                    &GroupView {
                        healthy,
                        ..view(&m, "IO wait")
                    },
                );
                statuses.push(v.status);
            }
            statuses
        };
        let step = judge(true, 1.5, true);
        assert!(!step.contains(&Status::Growing), "{step:?}");
        for (healthy, resolution) in [(true, 1.5), (true, 0.0), (false, 1.5)] {
            let leak = judge(healthy, resolution, false);
            assert_eq!(leak.last(), Some(&Status::Growing), "{leak:?}");
        }
        // A leak shape that grew in one step is growing at once (as it should be).
        assert!(judge(false, 1.5, true).contains(&Status::Growing));
    }

    /// A leak growing at a steady 600/min (L3) in a process whose total goroutine count wobbles
    /// by ±10 a second with in-flight requests, around the avalanche rate at a 2 s window: the
    /// reported severity must not flip back and forth (an alert on it would fire and clear).
    #[test]
    fn severity_does_not_flap_on_a_wobbling_total() {
        let mut j = Judge::new(JudgeConfig {
            avalanche_per_min: 1000.0,
            ..cfg(2)
        });
        let mut m: Vec<MemberView> = Vec::new();
        let mut severities = Vec::new();
        for k in 1..=240u64 {
            // A tick every 250 ms; 2.5 new members per tick (600/min).
            let t = k * S / 4;
            for i in 0..(if k % 2 == 0 { 3 } else { 2 }) {
                m.push(MemberView {
                    since_ns: t,
                    arrived_ns: t,
                    ..member(0, 0x10_0000 + k * 4 + i)
                });
            }
            let wobble = if (k / 3) % 2 == 0 { 0 } else { 20 };
            j.observe(t, [("g", m.len(), 0)], 1000 + m.len() + wobble);
            let v = j.judge(t, &view(&m, "chan send"));
            if v.status == Status::Growing {
                severities.push(v.severity);
            }
        }
        let changes = severities.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(
            changes <= 1,
            "severity flapped {changes} times: {severities:?}"
        );
        assert_eq!(
            severities.last(),
            Some(&Some(Severity::L3)),
            "{severities:?}"
        );
    }

    #[test]
    fn severities_parse() {
        assert_eq!(Severity::parse("L2"), Some(Severity::L2));
        assert_eq!(Severity::parse("l4"), Some(Severity::L4));
        assert_eq!(Severity::parse("3"), Some(Severity::L3));
        assert_eq!(Severity::parse("L5"), None);
    }

    /// A leak whose population only moves at inventory re-reads (every 10 s, probes detached),
    /// sampled every second: between re-reads it looks flat. Once `growing`, it must stay
    /// `growing` through every flat stretch, from one status-since, never dropping to `suspect`.
    #[test]
    fn a_step_wise_rise_seen_only_at_re_reads_does_not_flap() {
        let threshold = 20;
        let mut j = Judge::new(cfg(threshold));
        let mut members: Vec<MemberView> = Vec::new();
        let mut verdicts = Vec::new();
        for t in 1..=120u64 {
            if t % 10 == 0 {
                // A re-read finds 10 more blocked members (they parked over the last 10 s).
                for k in 0..10 {
                    members.push(member(t - 10 + k, 0x1_0000 + t * 10 + k));
                }
            }
            j.observe(t * S, [("g", members.len(), 0)], 100 + members.len());
            verdicts.push((t, j.judge(t * S, &view(&members, "chan send"))));
        }
        // Once growth has been seen at re-reads half a threshold apart (by t = 50 here), the
        // verdict never leaves `growing`, from one status_since.
        let tail: Vec<&(u64, Verdict)> = verdicts.iter().filter(|(t, _)| *t >= 50).collect();
        let since = tail[0].1.status_since_ns;
        for (t, v) in &tail {
            assert_eq!(v.status, Status::Growing, "t={t}: left growing: {v:?}");
            assert_eq!(v.status_since_ns, since, "t={t}: status_since moved");
        }
        // Without the hysteresis the evidence alone does flap here (this test can fail).
        let mut raw = Judge::new(cfg(threshold));
        let mut members: Vec<MemberView> = Vec::new();
        let mut flips = 0;
        let mut last = None;
        for t in 1..=120u64 {
            if t % 10 == 0 {
                for k in 0..10 {
                    members.push(member(t - 10 + k, 0x1_0000 + t * 10 + k));
                }
            }
            raw.observe(t * S, [("g", members.len(), 0)], 100 + members.len());
            let s = raw.evidence(t * S, &view(&members, "chan send")).status;
            if t > 50 && last.is_some_and(|l| l != s) {
                flips += 1;
            }
            last = Some(s);
        }
        assert!(
            flips >= 2,
            "the evidence did not flap ({flips} changes): no regression shown"
        );
    }

    /// Growth that stops for good steps down after one whole threshold window, and a member
    /// leaving ends `growing` at once.
    #[test]
    fn growing_steps_down_after_a_quiet_window_or_when_a_member_leaves() {
        // A leak of one a second, judged every second while it grows (growth established).
        let mut j = Judge::new(cfg(10));
        let mut m = Vec::new();
        for t in 1..=18u64 {
            m.push(member(t, 0x1000 + t));
            j.observe(t * S, [("g", m.len(), 0)], 100 + m.len());
            let v = j.judge(t * S, &view(&m, "chan send"));
            if t >= 12 {
                assert_eq!(v.status, Status::Growing, "t={t}: {v:?}");
            }
        }
        // Flat from now on: held for under a threshold after growth was last seen, then
        // suspect.
        for t in 19..=27u64 {
            j.observe(t * S, [("g", m.len(), 0)], 100 + m.len());
            let v = j.judge(t * S, &view(&m, "chan send"));
            assert_eq!(v.status, Status::Growing, "t={t}: {v:?}");
        }
        let mut last = Status::Growing;
        for t in 29..=45u64 {
            j.observe(t * S, [("g", m.len(), 0)], 100 + m.len());
            last = j.judge(t * S, &view(&m, "chan send")).status;
        }
        assert_eq!(last, Status::Suspect);
        // A member that leaves after being blocked past the threshold: not held.
        m.remove(0);
        let mut j2 = Judge::new(cfg(10));
        let mut m2 = Vec::new();
        for t in 1..=18u64 {
            m2.push(member(t, 0x1000 + t));
            j2.observe(t * S, [("g", m2.len(), 0)], 100 + m2.len());
            let _ = j2.judge(t * S, &view(&m2, "chan send"));
        }
        m2.remove(0);
        j2.observe(19 * S, [("g", m2.len(), 1)], 100 + m2.len());
        let v = j2.judge(19 * S, &view(&m2, "chan send"));
        assert_ne!(v.status, Status::Growing, "{v:?}");
    }

    /// The ramp-up of healthy long waits (20 long polls of 6 s starting over 2 s, threshold
    /// 2 s) looks like growth for an instant, before any member is older than the threshold:
    /// that instant is not held as `growing`.
    #[test]
    fn a_ramp_of_long_waits_is_not_held_as_growing() {
        let mut j = Judge::new(cfg(2));
        let ms = 1_000_000u64;
        let mut members = Vec::new();
        let mut statuses = Vec::new();
        for step in 1..=40u64 {
            let t = step * 100 * ms;
            if step <= 20 {
                members.push(MemberView {
                    since_ns: t,
                    arrived_ns: t,
                    ..member(0, 0x1000 + step)
                });
            }
            j.observe(t, [("g", members.len(), 0)], 100 + members.len());
            statuses.push((step, j.judge(t, &view(&members, "select")).status));
        }
        let growing: Vec<u64> = statuses
            .iter()
            .filter(|(_, s)| *s == Status::Growing)
            .map(|(t, _)| *t)
            .collect();
        // The evidence alone reads it as rising for a few steps at the end of the ramp; the
        // judge must not hold that past it.
        assert!(
            growing.iter().all(|&t| t <= 27),
            "growing held past the ramp's end, at steps {growing:?}"
        );
    }
}
