//! An attach session: probes in, inventory read, events folded into the engine, verdicts out.
//! `sfgi attach` runs one for a while and reports; `sfgi watch` keeps one running.
use crate::budget::Budget;
use crate::classify::Classifier;
use crate::engine::{Engine, EngineConfig};
use crate::event::decode;
use crate::group::StackSource;
use crate::inventory;
use crate::judge::JudgeConfig;
use crate::probe::{Tracer, TracerOptions, ALL_PROBES};
use crate::report::{ProbeStats, Report, Stats, TargetInfo};
use crate::target::Target;
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// Options of one attach session.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// Target PID.
    pub pid: u32,
    /// Stop after this long (`None`: until Ctrl-C/SIGTERM or the target exits).
    pub duration: Option<Duration>,
    /// How often the ring buffer is drained.
    pub poll_interval: Duration,
    /// How often group populations are sampled (growth resolution).
    pub interval: Duration,
    /// How often the inventory is re-read (goroutines in system calls, missed events).
    pub rescan: Rescan,
    /// Leak thresholds.
    pub judge: JudgeConfig,
    /// User rules files (tried before the built-in rules).
    pub rules: Vec<PathBuf>,
    /// Kernel-side tuning.
    pub tracer: TracerOptions,
    /// Overhead budget: probe hits per second in the target (0: unlimited), see
    /// [`crate::budget`].
    pub max_event_rate: u64,
    /// How long after degrading the budget tries full tracing again (zero: never).
    pub budget_retry: Duration,
}

impl Default for AttachOptions {
    fn default() -> Self {
        Self {
            pid: 0,
            duration: None,
            poll_interval: Duration::from_millis(50),
            interval: Duration::from_secs(1),
            rescan: Rescan::Auto,
            judge: JudgeConfig::default(),
            rules: Vec::new(),
            tracer: TracerOptions::default(),
            max_event_rate: crate::budget::DEFAULT_MAX_EVENT_RATE,
            budget_retry: crate::budget::DEFAULT_RETRY,
        }
    }
}

impl StackSource for Tracer {
    fn stack(&self, id: i32) -> Option<Vec<u64>> {
        Tracer::stack(self, id)
    }
}

/// `CLOCK_MONOTONIC` now, in ns: the clock `bpf_ktime_get_ns` and Go's `nanotime` use.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Opens the target, checking SFGI can trace it.
pub fn open_target(pid: u32) -> Result<Target> {
    let target = Target::open(pid)?;
    let support = target.binary.support();
    if !support.probes_supported {
        bail!(
            "cannot trace PID {} ({}): {}",
            target.pid,
            target.exe_display.display(),
            support.problems.join("; ")
        );
    }
    Ok(target)
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

/// A live attach session.
pub struct Session<'t> {
    /// The target.
    pub target: &'t Target,
    tracer: Tracer,
    /// The engine.
    pub engine: Engine<'t>,
    started: Instant,
    decode_errors: u64,
    last_tick: Instant,
    last_scan: Instant,
    opts: AttachOptions,
    target_exited: bool,
    budget: Budget,
    /// How to read the target's goroutines (worked out once), or why they cannot be.
    plan: Result<inventory::Plan, String>,
}

impl<'t> Session<'t> {
    /// Attaches the probes, then reads the inventory of goroutines parked before they went in.
    pub fn start(target: &'t Target, opts: &AttachOptions) -> Result<Session<'t>> {
        let classifier = if opts.rules.is_empty() {
            Classifier::builtin()
        } else {
            Classifier::with_user_rules(&opts.rules)?
        };
        let tracer = Tracer::attach(target.pid, &target.exe_path, &target.binary, &opts.tracer)?;
        let engine = Engine::new(
            &target.binary,
            target.load_bias,
            classifier,
            EngineConfig {
                judge: opts.judge.clone(),
            },
        );
        let now = Instant::now();
        let budget = Budget::new(opts.max_event_rate, opts.budget_retry, &tracer);
        let plan = inventory::Plan::new(&target.binary).map_err(|e| e.to_string());
        let mut s = Session {
            plan,
            budget,
            target,
            tracer,
            engine,
            started: now,
            decode_errors: 0,
            last_tick: now,
            last_scan: now,
            opts: opts.clone(),
            target_exited: false,
        };
        s.poll();
        s.scan();
        s.engine.tick(monotonic_ns());
        Ok(s)
    }

    /// The probes that were placed and the ones that could not be.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Drains the ring buffer into the engine; samples populations and re-scans when due.
    pub fn poll(&mut self) {
        let Self {
            tracer,
            engine,
            decode_errors,
            ..
        } = self;
        let mut batch = Vec::new();
        tracer.drain(|rec| match decode(rec) {
            Ok(ev) => batch.push(ev),
            Err(_) => *decode_errors += 1,
        });
        for ev in &batch {
            engine.apply(ev, &*tracer);
        }
        if self.last_tick.elapsed() >= self.opts.interval {
            self.last_tick = Instant::now();
            self.engine.tick(monotonic_ns());
        }
        self.budget
            .check(&mut self.tracer, self.engine.health.inventory_ms);
        if self
            .rescan_interval(self.opts.rescan)
            .is_some_and(|d| self.last_scan.elapsed() >= d)
        {
            self.scan();
        }
    }

    /// How often the inventory must be re-read: as `wanted`, or more often when the overhead
    /// budget detached probes (their events then come from the inventory).
    pub fn rescan_interval(&self, wanted: Rescan) -> Option<Duration> {
        let wanted = wanted.period(self.engine.health.inventory_ms);
        match (wanted, self.budget.rescan()) {
            (Some(w), Some(b)) => Some(w.min(b)),
            (w, b) => w.or(b),
        }
    }

    /// Re-reads the inventory now (drains events first so the snapshot is the newer one).
    pub fn scan(&mut self) -> ScanResult {
        self.last_scan = Instant::now();
        let t0 = Instant::now();
        let engine = &mut self.engine;
        let read = match &self.plan {
            Ok(plan) => {
                let mut n = 0;
                engine.begin_inventory();
                plan.read_each(self.target.pid, self.target.load_bias, |batch, now| {
                    n += batch.len();
                    engine.ingest_goroutines(batch, now);
                })
                .map(|inv| (inv, n))
                .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.clone()),
        };
        let scanned = match read {
            Ok((inv, n)) => {
                engine.end_inventory(&inv);
                n
            }
            // A failed read keeps what it read and drops nothing as gone.
            Err(e) => {
                engine.inventory_failed(e);
                0
            }
        };
        let duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        let now = monotonic_ns();
        let leaked = self
            .engine
            .verdicts(now, &self.tracer, false)
            .iter()
            .filter(|l| l.status.is_leak())
            .map(|l| l.count)
            .sum();
        ScanResult {
            scanned,
            leaked,
            duration_ms: (duration_ms * 10.0).round() / 10.0,
        }
    }

    /// Whether the target is still running (remembers when it is not).
    pub fn target_alive(&mut self) -> bool {
        if !self.target_exited && !self.target.alive() {
            self.target_exited = true;
        }
        !self.target_exited
    }

    /// Seconds attached.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counters and warnings of the session so far.
    pub fn stats(&self) -> Stats {
        let life = &self.engine.life;
        let mut stats = Stats {
            events: life.events,
            decode_errors: self.decode_errors,
            gc_cycles: life.gc_cycles,
            spawned: life.spawned,
            exited: life.exited,
            goroutines: life.len(),
            parked: life.parked().count(),
            duration_seconds: (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            target_exited: self.target_exited,
            missing_probes: self.tracer.plan.missing.clone(),
            inventory: Some(self.engine.health.clone()),
            budget: Some(self.budget.stats(life.events)),
            ..Stats::default()
        };
        for id in ALL_PROBES {
            let c = self.tracer.counters(id);
            stats.dropped += c.dropped;
            stats.read_errors += c.read_errors;
            stats.stack_errors += c.stack_errors;
            if let Some(site) = self.tracer.plan.sites.iter().find(|s| s.id == id) {
                stats.probes.push(ProbeStats {
                    probe: site.probe.to_string(),
                    function: site.function.clone(),
                    address: format!("{:#x}", site.address),
                    past_prologue: site.past_prologue,
                    counters: c,
                });
            }
        }
        if stats.dropped > 0 {
            stats.warnings.push(format!(
                "{} events were dropped (ring buffer full): states were reconciled from inventory re-reads, verdicts are marked incomplete",
                stats.dropped
            ));
        }
        if let Some(w) = self.budget.warning() {
            stats.warnings.push(w);
        }
        if self.decode_errors > 0 {
            stats.warnings.push(format!(
                "{} event records could not be decoded",
                self.decode_errors
            ));
        }
        if !self.tracer.plan.missing.is_empty() {
            let names: Vec<&str> = self.tracer.plan.missing.iter().map(|m| m.probe).collect();
            stats.warnings.push(format!(
                "probes missing: {} (see stats.missing_probes)",
                names.join(", ")
            ));
        }
        if let Some(e) = &self.engine.health.inventory_error {
            stats.warnings.push(format!(
                "the inventory could not be read ({e}): goroutines parked before SFGI attached are not listed"
            ));
        }
        if self.engine.health.inventory_unreadable > 0 {
            stats.warnings.push(format!(
                "{} goroutines could not be read consistently by the last inventory",
                self.engine.health.inventory_unreadable
            ));
        }
        stats
    }

    /// The report now.
    pub fn report(&mut self) -> Report {
        let stats = self.stats();
        let incomplete = stats.dropped > 0
            || stats.decode_errors > 0
            || self.engine.health.inventory_error.is_some();
        let groups = self
            .engine
            .verdicts(monotonic_ns(), &self.tracer, incomplete);
        let bi = self.target.binary.build_info();
        Report {
            target: TargetInfo {
                pid: self.target.pid,
                binary: self.target.exe_display.display().to_string(),
                go_version: bi.go_version.clone(),
                stripped: self.target.binary.is_stripped(),
                pie: self.target.binary.is_pie(),
                rss_bytes: rss_bytes(self.target.pid),
            },
            leaks: groups
                .iter()
                .filter(|g| g.status.is_leak())
                .cloned()
                .collect(),
            groups,
            stats,
        }
    }
}

/// The target's resident set size, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs one attach session and returns its report. Probes are detached before it returns, on
/// every path (the tracer is dropped with the session).
pub async fn run(opts: &AttachOptions) -> Result<Report> {
    let target = open_target(opts.pid)?;
    let mut session = Session::start(&target, opts)?;
    eprintln!(
        "sfgi: attached {} probes to PID {} ({}, {}){}",
        session.tracer().plan.sites.len(),
        target.pid,
        target.exe_display.display(),
        target.binary.build_info().go_version,
        match opts.duration {
            Some(d) => format!(" for {}", crate::group::go_duration(d.as_secs_f64())),
            None => "; Ctrl-C to stop".to_string(),
        }
    );
    for m in &session.tracer().plan.missing {
        eprintln!(
            "sfgi: warning: no {} probe ({}): {}",
            m.probe, m.function, m.why
        );
    }
    let mut tick = tokio::time::interval(opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let deadline = opts.duration.map(|d| Instant::now() + d);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
        session.poll();
        if !session.target_alive() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    session.poll();
    if session.target_alive() {
        session.scan();
    }
    session.engine.tick(monotonic_ns());
    Ok(session.report())
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
