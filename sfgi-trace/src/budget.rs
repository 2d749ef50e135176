//! The overhead budget: SFGI watches what its probes cost the target and degrades by itself,
//! loudly, when they would cost more than allowed.
//!
//! What a probe costs the target is a trap per hit (≈ 1.5 µs here, see docs/PERFORMANCE.md),
//! whatever the probe then does, so the budget is on **probe hits per second** in the target
//! (`--max-event-rate`; 0 = no limit). Every [`WINDOW`] the hit rate of the attached probes is
//! measured; while it is over the budget SFGI steps down one mode:
//!
//! 1. `full`: every probe attached, every park reported (stacks cached per goroutine).
//! 2. `parks-only`: the `run`, `spawn`, `exit` (and `ready`) probes are detached — about half of
//!    the traps of a park/wake cycle — and repeat parks of a goroutine at one site are sampled
//!    1 in [`SAMPLE_EVERY`]. Wakes, exits and creations are learned from inventory re-reads,
//!    which become periodic (every [`DEGRADED_RESCAN`] at least).
//! 3. `inventory-only`: the park probe goes too; SFGI works from inventory re-reads alone (no
//!    traps in the target's hot paths; only `gcStart`/`gcMarkTermination` stay).
//!
//! Independently, when the ring buffer drops events (userspace cannot keep up), repeat parks are
//! sampled ([`SAMPLE_EVERY`]) in any mode: mode `sampled`.
//!
//! A window is [`WINDOW`] long, but a rate far over the budget (≥ [`CLEAR_EXCESS`] times it)
//! steps down after [`MIN_WINDOW`] already: every window over budget costs the target.
//!
//! Stepping back up: `--budget-retry` after a step down (default [`DEFAULT_RETRY`]) SFGI
//! re-attaches the probes it detached for one window. If the target now stays within the budget
//! it traces fully again (said on stderr and in the steps); if not, it detaches them again at
//! once and waits twice as long before the next try (at most [`MAX_RETRY`]): a trial costs the
//! target one window of full tracing, under 1 % of the time at the default.
//!
//! Every step down or back up is printed on stderr, recorded in `stats.budget.steps`, turned
//! into a report warning while degraded and exported as the `sfgi_overhead_mode` metric: never
//! silent. (Failed trials are recorded in the steps only.)
use crate::probe::{Tracer, ALL_PROBES};
use crate::procfs::peak_rss;
pub use crate::stats::{BudgetStats, Mode, DEFAULT_MAX_EVENT_RATE, DEFAULT_RETRY};
use sfgi_common::ProbeId;
use std::time::{Duration, Instant};

/// How long hit rates are measured before deciding (short: while over budget, every window
/// costs the target).
pub const WINDOW: Duration = Duration::from_millis(500);
/// Shortest measurement before stepping down, for a rate far over the budget.
pub const MIN_WINDOW: Duration = Duration::from_millis(100);
/// How far over the budget a rate must be to step down after [`MIN_WINDOW`].
pub const CLEAR_EXCESS: f64 = 4.0;
/// Longest wait between two tries (the wait doubles after each failed one).
pub const MAX_RETRY: Duration = Duration::from_secs(600);
/// 1-in-N sampling of repeat parks when degraded.
pub const SAMPLE_EVERY: u32 = 16;
/// Interval between inventory re-reads once probes are detached (incremental re-reads make
/// them cheap: ≈ 30 ms at 100k goroutines), stretched so re-reads take at most
/// 1 / [`DEGRADED_RESCAN_SHARE`] of the time.
pub const DEGRADED_RESCAN: Duration = Duration::from_secs(1);
/// A degraded mode re-reads at most every this many times the last read's duration (5 %).
pub const DEGRADED_RESCAN_SHARE: f64 = 20.0;

/// How long a target's demand counts in a [`NodeBudget`] after it last reported one.
pub const SHARE_EXPIRY: Duration = Duration::from_secs(5);

/// Splits a node-wide budget of `total` probe hits per second among targets that want
/// `demands` (their measured rates; `f64::INFINITY` for a target the budget has stepped down,
/// whose real demand is unknown and above its share). Every target first gets a floor of a
/// quarter of an equal share (so a quiet target that bursts is not stepped down at once); the
/// rest is filled up by increasing demand (max-min fairness): a target wanting less than an equal
/// share of what is left gets what it wants plus a quarter, and what it leaves goes to the busier
/// ones. The busiest targets are therefore the ones capped first, and the shares never add up
/// to more than `total`. `total` 0 means unlimited: every share is 0 (no limit).
pub fn share(total: u64, demands: &[f64]) -> Vec<u64> {
    let n = demands.len();
    if n == 0 || total == 0 {
        return vec![0; n];
    }
    let floor = total as f64 / (4.0 * n as f64);
    let mut left = total as f64 - floor * n as f64;
    let mut out = vec![floor; n];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| demands[a].total_cmp(&demands[b]));
    for (k, &i) in order.iter().enumerate() {
        let remaining = (n - k) as f64;
        let equal = left / remaining;
        let want = (demands[i].max(0.0) * 1.25 - floor).max(0.0);
        let give = want.min(equal);
        out[i] += give;
        left -= give;
    }
    // Whatever nobody wanted goes to the busiest (headroom for the next window).
    if left > 0.0 {
        if let Some(&busiest) = order.last() {
            out[busiest] += left;
        }
    }
    out.into_iter().map(|x| (x.floor() as u64).max(1)).collect()
}

/// One overhead budget for a whole node (`sfgi agent`): the targets' sessions report their
/// demand and get their share (see [`share`]). Pure: time is passed in.
#[derive(Debug, Default)]
pub struct NodeBudget {
    total: u64,
    /// Key → (demand, when reported).
    demands: std::collections::BTreeMap<u64, (f64, Instant)>,
}

impl NodeBudget {
    /// A budget of `total` probe hits per second for the node (0: unlimited).
    pub fn new(total: u64) -> NodeBudget {
        NodeBudget {
            total,
            demands: Default::default(),
        }
    }

    /// The node's total.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Target `key` wants `demand` hits/s (`None`: not measured yet, which counts as wanting
    /// an equal share — a target just attached must not be stepped down for a demand of 0 it
    /// never measured; `degraded`: it was stepped down, so it wants more than it can measure);
    /// returns its share now. Targets silent for [`SHARE_EXPIRY`] are forgotten.
    pub fn report(&mut self, key: u64, demand: Option<f64>, degraded: bool, now: Instant) -> u64 {
        let d = match demand {
            _ if degraded => f64::INFINITY,
            Some(d) => d,
            None => f64::NAN,
        };
        self.demands.insert(key, (d, now));
        self.demands
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < SHARE_EXPIRY);
        self.share_of(key)
    }

    /// Forgets target `key` (it exited or was let go).
    pub fn remove(&mut self, key: u64) {
        self.demands.remove(&key);
    }

    /// Target `key`'s share now (the whole budget's equal share if it never reported).
    pub fn share_of(&self, key: u64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let keys: Vec<u64> = self.demands.keys().copied().collect();
        let equal = self.total as f64 / keys.len().max(1) as f64;
        // Not measured yet (NaN): an equal share (less the 25 % headroom `share` adds).
        let demands: Vec<f64> = self
            .demands
            .values()
            .map(|(d, _)| if d.is_nan() { equal / 1.25 } else { *d })
            .collect();
        match keys.iter().position(|&k| k == key) {
            Some(i) => share(self.total, &demands)[i],
            None => (self.total / (keys.len() as u64 + 1)).max(1),
        }
    }
}

/// A try at tracing fully again: what to go back to if it fails.
struct Trial {
    mode: Mode,
    reattached: Vec<ProbeId>,
}

/// The overhead budget of one session.
pub struct Budget {
    max_rate: u64,
    /// First wait before a try at stepping back up (zero: never).
    retry: Duration,
    /// The current wait (doubles after each failed try).
    backoff: Duration,
    /// When to try next.
    retry_at: Option<Instant>,
    trial: Option<Trial>,
    /// Record steps without printing them (a failed trial).
    quiet: bool,
    mode: Mode,
    sample_every: u32,
    detached: Vec<ProbeId>,
    rescan: Option<Duration>,
    /// How long the last inventory read took (ms).
    inventory_ms: f64,
    steps: Vec<String>,
    window_start: Instant,
    hits_at_start: u64,
    kept_at_start: u64,
    dropped_at_start: u64,
    last_rate: f64,
    /// Whether a window was measured yet (`last_rate` means something).
    measured: bool,
    /// Step from full tracing straight to inventory-only (see [`Budget::skip_parks_only`]).
    skip_parks_only: bool,
    started: Instant,
    cpu_at_start: f64,
}

/// Probe hits (all probes; park and GC probes only) and drops so far.
fn totals(tracer: &Tracer) -> (u64, u64, u64) {
    ALL_PROBES.iter().fold((0, 0, 0), |(h, k, d), &id| {
        let c = tracer.counters(id);
        let kept = matches!(id, ProbeId::Park | ProbeId::GcStart | ProbeId::GcEnd);
        (h + c.hits, k + if kept { c.hits } else { 0 }, d + c.dropped)
    })
}

impl Budget {
    /// A budget of `max_rate` probe hits per second (0: unlimited), starting now, that tries to
    /// step back up `retry` after stepping down (zero: never).
    pub fn new(max_rate: u64, retry: Duration, tracer: &Tracer) -> Budget {
        let (hits, kept, dropped) = totals(tracer);
        let now = Instant::now();
        Budget {
            max_rate,
            retry,
            backoff: retry,
            retry_at: None,
            trial: None,
            quiet: false,
            mode: Mode::Full,
            sample_every: 1,
            detached: Vec::new(),
            rescan: None,
            inventory_ms: 0.0,
            steps: Vec::new(),
            window_start: now,
            hits_at_start: hits,
            kept_at_start: kept,
            dropped_at_start: dropped,
            last_rate: 0.0,
            measured: false,
            skip_parks_only: false,
            started: now,
            cpu_at_start: crate::procfs::self_usage().0.unwrap_or(0.0),
        }
    }

    /// Changes the budget (a node-wide budget re-allocates its shares): the next window is
    /// judged against `max_rate`.
    pub fn set_max_rate(&mut self, max_rate: u64) {
        self.max_rate = max_rate;
    }

    /// Step from full tracing straight to inventory-only, never to parks-only: in `sfgi agent`,
    /// where many sessions put uprobes on the same executable, every trap of the park probe
    /// runs every session's filter, so the park probe alone costs a busy target far more than
    /// its hit rate says (measured in docs/PERFORMANCE.md).
    pub fn skip_parks_only(&mut self, on: bool) {
        self.skip_parks_only = on;
    }

    /// The budget now (probe hits per second; 0: unlimited).
    pub fn max_rate(&self) -> u64 {
        self.max_rate
    }

    /// Probe hits per second over the last window; `None` before the first window ends.
    pub fn last_rate(&self) -> Option<f64> {
        self.measured.then_some(self.last_rate)
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether events give a complete picture in this mode: with the wake and exit probes
    /// detached (parks-only, inventory-only) a parked state from events may be stale.
    pub fn events_complete(&self) -> bool {
        self.mode < Mode::ParksOnly
    }

    /// Events dropped (ring buffer full) as of the last measurement window.
    pub fn dropped_seen(&self) -> u64 {
        self.dropped_at_start
    }

    /// The inventory re-read interval the budget imposes (`None`: the session's own).
    pub fn rescan(&self) -> Option<Duration> {
        self.rescan.map(|_| degraded_rescan(self.inventory_ms))
    }

    /// Measures the last window and steps down if over budget. `inventory_ms` is how long the
    /// last inventory took (degraded modes re-read it at most 5 % of the time).
    pub fn check(&mut self, tracer: &mut Tracer, inventory_ms: f64) {
        self.inventory_ms = inventory_ms;
        if self.trial.is_none()
            && self.mode > Mode::Sampled
            && self.retry_at.is_some_and(|at| Instant::now() >= at)
        {
            self.begin_trial(tracer);
            return;
        }
        let secs = self.window_start.elapsed().as_secs_f64();
        if secs < MIN_WINDOW.as_secs_f64() {
            return;
        }
        let (hits, kept, dropped) = totals(tracer);
        let rate = hits.saturating_sub(self.hits_at_start) as f64 / secs;
        let clearly_over = self.max_rate > 0 && rate >= CLEAR_EXCESS * self.max_rate as f64;
        if secs < WINDOW.as_secs_f64() && !clearly_over {
            return;
        }
        // What the park and GC probes alone cost: the rate parks-only mode would leave.
        let kept_rate = kept.saturating_sub(self.kept_at_start) as f64 / secs;
        let new_drops = dropped.saturating_sub(self.dropped_at_start);
        self.last_rate = rate;
        self.measured = true;
        self.start_window((hits, kept, dropped));
        if new_drops > 0 && self.sample_every == 1 && self.mode < Mode::InventoryOnly {
            self.sample(tracer);
            if self.mode == Mode::Full {
                self.mode = Mode::Sampled;
            }
            self.step(format!(
                "{new_drops} events dropped in {secs:.1} s (ring buffer full): reporting 1 in {SAMPLE_EVERY} repeat parks per goroutine and site"
            ));
        }
        if self.max_rate == 0 || rate <= self.max_rate as f64 {
            if let Some(t) = self.trial.take() {
                let names: Vec<&str> = t.reattached.into_iter().map(ProbeId::name).collect();
                self.rescan = None;
                self.backoff = self.retry;
                self.retry_at = None;
                self.step(format!(
                    "{rate:.0} probe hits/s <= --max-event-rate {}: re-attached {}; tracing fully again",
                    self.max_rate,
                    names.join(", ")
                ));
            }
            return;
        }
        if let Some(t) = self.trial.take() {
            // Back where it was, quietly, and wait twice as long before the next try.
            self.quiet = true;
            self.step(format!(
                "tried tracing fully again: {rate:.0} probe hits/s > --max-event-rate {}; back to {}",
                self.max_rate,
                t.mode.as_str()
            ));
            self.backoff = (self.backoff * 2).min(MAX_RETRY);
        }
        let was = self.mode;
        let rescan = degraded_rescan(inventory_ms);
        match self.mode {
            // Parks alone would still be over budget: go straight to inventory-only.
            Mode::Full | Mode::Sampled
                if self.skip_parks_only || kept_rate > self.max_rate as f64 =>
            {
                for id in [
                    ProbeId::Run,
                    ProbeId::Ready,
                    ProbeId::Spawn,
                    ProbeId::Exit,
                    ProbeId::Park,
                ] {
                    self.detach(tracer, id);
                }
                self.mode = Mode::InventoryOnly;
                self.rescan = Some(rescan);
                self.step(format!(
                    "{rate:.0} probe hits/s ({kept_rate:.0}/s at park) > --max-event-rate {}: detached park, run, spawn, exit; working from inventory re-reads every {}",
                    self.max_rate,
                    sfgi_engine::format::go_duration(rescan.as_secs_f64())
                ));
            }
            Mode::Full | Mode::Sampled => {
                self.sample(tracer);
                for id in [ProbeId::Run, ProbeId::Ready, ProbeId::Spawn, ProbeId::Exit] {
                    self.detach(tracer, id);
                }
                self.mode = Mode::ParksOnly;
                self.rescan = Some(rescan);
                self.step(format!(
                    "{rate:.0} probe hits/s > --max-event-rate {}: detached run, spawn, exit (wakes and exits now come from inventory re-reads every {}), 1 in {SAMPLE_EVERY} repeat parks reported",
                    self.max_rate,
                    sfgi_engine::format::go_duration(rescan.as_secs_f64())
                ));
            }
            Mode::ParksOnly => {
                self.detach(tracer, ProbeId::Park);
                self.mode = Mode::InventoryOnly;
                self.rescan = Some(rescan);
                self.step(format!(
                    "{rate:.0} probe hits/s > --max-event-rate {} with parks only: detached park; working from inventory re-reads every {}",
                    self.max_rate,
                    sfgi_engine::format::go_duration(rescan.as_secs_f64())
                ));
            }
            Mode::InventoryOnly => {}
        }
        self.quiet = false;
        if self.mode != was && !self.retry.is_zero() {
            self.retry_at = Some(Instant::now() + self.backoff);
        }
    }

    /// Re-attaches every probe the budget detached, for one window.
    fn begin_trial(&mut self, tracer: &mut Tracer) {
        let mut back = Vec::new();
        for id in std::mem::take(&mut self.detached) {
            match tracer.reattach(id) {
                Ok(()) => back.push(id),
                Err(e) => {
                    self.detached.push(id);
                    self.step(format!("could not re-attach {}: {e}", id.name()));
                }
            }
        }
        if !self.detached.is_empty() {
            // Could not restore full tracing: take the rest off again and stay degraded.
            for id in back {
                self.detach(tracer, id);
            }
            self.retry_at = None;
            return;
        }
        self.trial = Some(Trial {
            mode: self.mode,
            reattached: back,
        });
        self.mode = if self.sample_every > 1 {
            Mode::Sampled
        } else {
            Mode::Full
        };
        self.start_window(totals(tracer));
    }

    /// Starts a measurement window at these (hits, park+GC hits, drops) totals.
    fn start_window(&mut self, (hits, kept, dropped): (u64, u64, u64)) {
        self.window_start = Instant::now();
        self.hits_at_start = hits;
        self.kept_at_start = kept;
        self.dropped_at_start = dropped;
    }

    fn sample(&mut self, tracer: &mut Tracer) {
        if self.sample_every == 1 {
            match tracer.set_sample_every(SAMPLE_EVERY) {
                Ok(()) => self.sample_every = SAMPLE_EVERY,
                Err(e) => self.step(format!("could not turn on park sampling: {e}")),
            }
        }
    }

    fn detach(&mut self, tracer: &mut Tracer, id: ProbeId) {
        if !tracer.is_attached(id) {
            return;
        }
        match tracer.detach(id) {
            Ok(()) => self.detached.push(id),
            Err(e) => self.step(format!("could not detach {}: {e}", id.name())),
        }
    }

    fn step(&mut self, what: String) {
        let at = self.started.elapsed().as_secs_f64();
        if !self.quiet {
            eprintln!("sfgi: overhead budget: {what}");
        }
        self.steps.push(format!("at {at:.1}s: {what}"));
    }

    /// The budget's state now, with SFGI's own usage; `events` is the session's event count.
    pub fn stats(&self, events: u64) -> BudgetStats {
        let (cpu, rss) = crate::procfs::self_usage();
        let cpu = cpu.unwrap_or(0.0);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        BudgetStats {
            mode: self.mode,
            max_event_rate: self.max_rate,
            probe_hits_per_second: self.last_rate.round(),
            events_per_second: (events as f64 / secs).round(),
            sample_every: self.sample_every,
            detached: self
                .detached
                .iter()
                .map(|&id| id.name().to_string())
                .collect(),
            rescan_seconds: self.rescan().map(|d| d.as_secs_f64()),
            steps: self.steps.clone(),
            self_cpu_seconds: (cpu * 100.0).round() / 100.0,
            self_cpu_percent: (((cpu - self.cpu_at_start) / secs) * 1000.0).round() / 10.0,
            self_rss_bytes: rss.unwrap_or(0),
            self_peak_rss_bytes: peak_rss().unwrap_or(0),
        }
    }

    /// The warning a report carries while degraded.
    pub fn warning(&self) -> Option<String> {
        match self.mode {
            Mode::Full => None,
            Mode::Sampled => Some(format!(
                "overhead budget: the ring buffer overflowed, so only 1 in {} repeat parks per goroutine and site were reported (see stats.budget)",
                self.sample_every
            )),
            Mode::ParksOnly | Mode::InventoryOnly => Some(format!(
                "overhead budget: tracing degraded to {} (more than {} probe hits/s in the target; --max-event-rate 0 to trace fully): wakes, exits{} come from inventory re-reads every {}, verdicts may lag by that much (see stats.budget)",
                self.mode.as_str(),
                self.max_rate,
                if self.mode == Mode::InventoryOnly {
                    " and parks"
                } else {
                    ""
                },
                sfgi_engine::format::go_duration(self.rescan().unwrap_or(DEGRADED_RESCAN).as_secs_f64())
            )),
        }
    }
}

/// How often a degraded mode re-reads the inventory, given the last read took `inventory_ms`.
fn degraded_rescan(inventory_ms: f64) -> Duration {
    DEGRADED_RESCAN.max(Duration::from_secs_f64(
        (inventory_ms.max(0.0) * DEGRADED_RESCAN_SHARE / 1e3).min(600.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_fair_and_bounded() {
        // Nobody busy: everyone gets its demand (+25 %), leftovers to the busiest.
        let s = share(20_000, &[100.0, 200.0, 300.0, 400.0]);
        assert!(s.iter().sum::<u64>() <= 20_000, "{s:?}");
        assert!(s[0] >= 125 && s[1] >= 250 && s[2] >= 375, "{s:?}");
        // One busy target cannot starve the others: the quiet ones keep what they need.
        let s = share(20_000, &[100.0, 100.0, 1_000_000.0]);
        assert!(s.iter().sum::<u64>() <= 20_000, "{s:?}");
        assert!(s[0] >= 125 && s[1] >= 125, "{s:?}");
        assert!(s[2] < 20_000, "{s:?}");
        // All busy: equal shares, never more than the total together.
        let s = share(20_000, &[f64::INFINITY; 4]);
        assert_eq!(s, vec![5_000; 4]);
        // Two busy: the busiest is capped first (the less busy gets what it wants).
        let s = share(20_000, &[9_000.0, 50_000.0]);
        assert!(s.iter().sum::<u64>() <= 20_000, "{s:?}");
        assert!(s[0] >= 9_000 && s[1] < 50_000, "{s:?}");
        // Unlimited and empty.
        assert_eq!(share(0, &[1.0, 2.0]), vec![0, 0]);
        assert!(share(100, &[]).is_empty());
        // Floors: a silent target still has a quarter of an equal share.
        let s = share(40_000, &[0.0, f64::INFINITY]);
        assert!(s[0] >= 5_000, "{s:?}");
    }

    #[test]
    fn node_budget_expires_silent_targets() {
        let t0 = Instant::now();
        let mut b = NodeBudget::new(10_000);
        let a = b.report(1, Some(100.0), false, t0);
        assert!(a >= 125);
        let busy = b.report(2, Some(0.0), true, t0);
        let a = b.share_of(1);
        assert!(a >= 125 && busy > 5_000 && busy + a <= 10_000, "{a} {busy}");
        // Target 1 goes silent: after SHARE_EXPIRY target 2 has the node.
        let later = t0 + SHARE_EXPIRY + Duration::from_secs(1);
        assert_eq!(b.report(2, Some(0.0), true, later), 10_000);
        // A target not measured yet gets an equal share, not a floor.
        let fresh = b.report(3, None, false, later);
        assert!(fresh >= 4_900, "{fresh}");
        b.remove(2);
        assert_eq!(b.share_of(3), 10_000);
        assert_eq!(NodeBudget::new(0).share_of(1), 0);
    }

    #[test]
    fn modes_are_ordered_and_named() {
        assert!(Mode::Full < Mode::Sampled);
        assert!(Mode::ParksOnly < Mode::InventoryOnly);
        assert_eq!(Mode::ParksOnly.as_str(), "parks-only");
        assert_eq!(Mode::InventoryOnly.level(), 3);
        assert_eq!(
            serde_json::to_string(&Mode::InventoryOnly).unwrap(),
            "\"inventory-only\""
        );
    }

    #[test]
    fn own_peak_rss_is_readable() {
        assert!(peak_rss().unwrap_or(0) > 0);
    }
}
