//! `sfgi attach --pprof URL` and `sfgi watch --pprof URL`: the same engine, judge and report
//! fed by a live target's `net/http/pprof` endpoint instead of eBPF — no root, no Linux, only
//! HTTP to the target. `watch` redraws the one leak table at every poll and, with `--listen`,
//! serves `watch --listen`'s endpoints from the same snapshots.
//!
//! Each poll fetches `goroutine?debug=2` (see [`sfgi_dump::pprof`] for why that form), parses
//! it with the dump source and folds it into the engine as an inventory read at the time the
//! request was sent; goroutine ids carry identity across polls. Go stops the world while it
//! writes that dump, so the polls pace themselves: the next one waits at least `--interval`, and
//! at least the last request's duration divided by `--pause-budget` (the longest fraction of
//! time the target may spend stopped for SFGI). `--leak-profile D` polls
//! `goroutineleak?debug=2` instead at most every D: the same dump after a GC that marks leaked
//! goroutines, which the judge then calls `proven`.
use crate::report::{LeakTable, PprofStats, Report, Stats, TargetInfo};
use crate::signals::Signals;
use crate::snapshot::{
    next_trigger, ScanReply, ScanResult, Snapshot, SnapshotBuilder, TriggerRequest,
    SCAN_MIN_SPACING,
};
use crate::term::terminal_width;
use anyhow::{Context, Result};
use sfgi_dump::pprof::{Endpoint, EndpointOptions, PprofError, Profile};
use sfgi_dump::{NoStackMap, SharedTable};
use sfgi_engine::classify::Classifier;
use sfgi_engine::engine::{Engine, EngineConfig, InventoryPass, Leak};
use sfgi_engine::format::go_duration;
use sfgi_engine::judge::JudgeConfig;
use sfgi_trace::clock::wall_ns;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Polls that may fail in a row (after the first succeeded) before the session ends.
const MAX_FAILURES_IN_A_ROW: u32 = 3;

/// What `sfgi attach --pprof` takes.
#[derive(Clone, Debug)]
pub struct PprofOptions {
    /// The endpoint (`http://HOST:PORT`, `…/debug/pprof/`).
    pub url: String,
    /// Timeouts, headers, limits.
    pub endpoint: EndpointOptions,
    /// How long to poll; `None`: until Ctrl-C/SIGTERM.
    pub duration: Option<Duration>,
    /// Shortest time between two polls.
    pub interval: Duration,
    /// Longest fraction of time the polls may stop the target (0.01 = 1 %).
    pub pause_budget: f64,
    /// Poll the goroutineleak profile instead at most this often; `None`: never.
    pub leak_every: Option<Duration>,
    /// Judge thresholds.
    pub judge: JudgeConfig,
    /// User rules files.
    pub rules: Vec<PathBuf>,
}

/// Polls whose durations estimate the target's pause (see [`pause_estimate`]).
pub const PAUSE_WINDOW: usize = 3;

/// The pause a poll is taken to cost the target: the shortest of the last [`PAUSE_WINDOW`]
/// polls' durations. Each duration is an upper bound of its poll's stop-the-world pause (the
/// request also waits for the network and, on a loaded machine, for a CPU), so one slow request
/// does not push the next poll a hundred times its pause away, while a target whose dumps really
/// take long makes every poll long.
pub fn pause_estimate(recent: &[Duration]) -> Duration {
    recent.iter().copied().min().unwrap_or(Duration::ZERO)
}

/// The wait before the next poll: `interval`, or longer when a poll stops the target (`took`,
/// see [`pause_estimate`]) longer than the budget allows.
pub fn next_wait(interval: Duration, took: Duration, pause_budget: f64) -> Duration {
    if pause_budget <= 0.0 || !pause_budget.is_finite() {
        return interval;
    }
    let paced = Duration::try_from_secs_f64(took.as_secs_f64() / pause_budget.min(1.0))
        .unwrap_or(Duration::from_secs(3600));
    interval.max(paced.min(Duration::from_secs(3600)))
}

/// One poll, as a front end sees it.
pub struct Refresh<'a> {
    /// The report as of this poll (every group judged, the polls so far in `stats.pprof`).
    pub report: Report,
    /// The engine the polls feed (its goroutines, for the snapshot's members).
    pub engine: &'a Engine<'static>,
    /// When the poll was sent: the engine's clock (wall-clock ns).
    pub now_ns: u64,
    /// How long the poll took.
    pub took: Duration,
    /// Since the first poll.
    pub elapsed: Duration,
}

/// Runs `sfgi attach --pprof` and returns the report.
pub async fn run(opts: &PprofOptions) -> Result<Report> {
    poll_loop(opts, None, &mut |_: Refresh<'_>| true).await
}

/// Runs `sfgi watch --pprof`: a live table of the leak groups redrawn at every poll (in place
/// on a terminal), until Ctrl-C/SIGTERM, the deadline or stdout closing; returns the final
/// report. With `listen`, serves the endpoints of `watch --listen` ([`crate::serve`]) from the
/// same snapshots, built by the same [`SnapshotBuilder`]; `POST /sfgi/trigger-scan` polls at
/// once when the pause budget allows it (else it answers with the last poll).
pub async fn watch(
    opts: &PprofOptions,
    listen: Option<&str>,
    token: Option<String>,
) -> Result<Report> {
    // Bound before the first poll: a bad or busy address fails at once.
    let (trig_tx, trig_rx) = mpsc::channel::<TriggerRequest>(256);
    let mut http = Http::bind(listen, token, trig_tx)?;
    let mut trig_rx = http.serving().then_some(trig_rx);
    let mut listen_note = String::new();
    let mut snapshots = SnapshotBuilder::new(Instant::now());
    let tty = std::io::stdout().is_terminal();
    let mut frames = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    let report = poll_loop(opts, trig_rx.as_mut(), &mut |r: Refresh<'_>| {
        http.observe(r.took);
        let snap = Arc::new(snapshots.build(r.report, r.engine, r.now_ns, r.elapsed, Vec::new()));
        let leaks = &snap.report.leaks;
        let stats = snap.report.stats.pprof.clone().unwrap_or_default();
        let trend = |id: &str| snapshots.trend(id);
        let table = LeakTable {
            width: terminal_width()
                .and_then(|w| u16::try_from(w).ok())
                .unwrap_or(LeakTable::REPORT.width),
            trend: Some(&trend),
        };
        let mut text = String::new();
        if tty {
            text.push_str(if frames == 0 { "\x1b[2J\x1b[H" } else { "\x1b[H\x1b[J" });
        }
        // The server starts with the first snapshot: until then requests wait in the backlog.
        match http.publish(&snap) {
            Ok(Some(url)) => listen_note = format!(", serving on {url}"),
            Ok(None) => {}
            Err(e) => {
                failed = Some(e);
                return false;
            }
        }
        text.push_str(&format!(
            "sfgi watch  {}  {} polls over {}, every {:.1}s, last {:.1} ms ({} failed){}  goroutines {} ({} parked)  leak groups {}\n",
            stats.endpoint,
            stats.polls,
            go_duration(r.elapsed.as_secs_f64().round()),
            stats.interval_seconds,
            stats.last_poll_ms,
            stats.failed,
            listen_note,
            snap.report.stats.goroutines,
            snap.report.stats.parked,
            leaks.len()
        ));
        if !leaks.is_empty() {
            text.push_str(&table.render(leaks));
            text.push('\n');
        }
        text.push_str(if tty { "Ctrl-C to stop\n" } else { "\n" });
        frames += 1;
        let mut out = std::io::stdout().lock();
        !matches!(
            out.write_all(text.as_bytes()).and_then(|()| out.flush()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe
        )
    })
    .await;
    drop(trig_rx);
    http.stop();
    if let Some(e) = failed {
        return Err(e);
    }
    report
}

/// The HTTP side of `watch --pprof --listen`: `watch --listen`'s server ([`crate::serve`]) fed
/// the polls' snapshots. Linux only, like the server and the metrics encoder.
#[cfg(target_os = "linux")]
struct Http {
    listener: Option<std::net::TcpListener>,
    trigger: Option<mpsc::Sender<TriggerRequest>>,
    token: Option<String>,
    scans: prometheus_client::metrics::histogram::Histogram,
    snap_tx: Option<tokio::sync::watch::Sender<Arc<Snapshot>>>,
    server: Option<crate::serve::Server>,
}

#[cfg(target_os = "linux")]
impl Http {
    /// Binds `listen` now, if given.
    fn bind(
        listen: Option<&str>,
        token: Option<String>,
        trigger: mpsc::Sender<TriggerRequest>,
    ) -> Result<Http> {
        Ok(Http {
            listener: listen.map(crate::serve::bind).transpose()?,
            trigger: Some(trigger),
            token,
            scans: crate::watch::scan_histogram(),
            snap_tx: None,
            server: None,
        })
    }

    fn serving(&self) -> bool {
        self.listener.is_some()
    }

    /// Counts a poll's duration in `sfgi_inventory_scan_seconds`.
    fn observe(&self, took: Duration) {
        if self.serving() || self.server.is_some() {
            self.scans.observe(took.as_secs_f64());
        }
    }

    /// Publishes `snap`; on the first one, starts the server and returns its URL.
    fn publish(&mut self, snap: &Arc<Snapshot>) -> Result<Option<String>> {
        if let Some(tx) = &self.snap_tx {
            let _ = tx.send(Arc::clone(snap));
            return Ok(None);
        }
        let (Some(l), Some(trigger)) = (self.listener.take(), self.trigger.take()) else {
            return Ok(None);
        };
        let (tx, rx) = tokio::sync::watch::channel(Arc::clone(snap));
        let state = crate::serve::ServeState {
            snapshot: rx,
            trigger,
            scans: self.scans.clone(),
            token: self.token.clone(),
        };
        let (server, url) = crate::serve::serve_announced(l, state)?;
        self.server = Some(server);
        self.snap_tx = Some(tx);
        Ok(Some(url))
    }

    fn stop(self) {
        if let Some(s) = self.server {
            s.stop(Duration::from_secs(2));
        }
    }
}

/// Off Linux there is no server (`serve` and `metrics` are Linux only): `--listen` is refused.
#[cfg(not(target_os = "linux"))]
struct Http;

#[cfg(not(target_os = "linux"))]
impl Http {
    fn bind(
        listen: Option<&str>,
        _token: Option<String>,
        _trigger: mpsc::Sender<TriggerRequest>,
    ) -> Result<Http> {
        if listen.is_some() {
            anyhow::bail!("watch --pprof --listen needs Linux for now: watch without --listen");
        }
        Ok(Http)
    }

    fn serving(&self) -> bool {
        false
    }

    fn observe(&self, _took: Duration) {}

    fn publish(&mut self, _snap: &Arc<Snapshot>) -> Result<Option<String>> {
        Ok(None)
    }

    fn stop(self) {}
}

/// The report as of now: the groups judged, the polls' stats, the warnings (and the note on
/// ages every pprof report carries).
fn make_report(
    base: &str,
    groups: Vec<Leak>,
    engine: &Engine<'_>,
    pprof: &PprofStats,
    counts: (usize, usize),
    elapsed: Duration,
    warnings: &[String],
) -> Report {
    let mut warnings = warnings.to_vec();
    if pprof.failed > 0 {
        warnings.push(format!("{} polls failed", pprof.failed));
    }
    warnings.push(
        "ages come from the polls and the dumps' own wait times (whole minutes): see docs/ACCURACY.md"
            .to_string(),
    );
    Report {
        target: TargetInfo {
            pid: 0,
            binary: base.to_string(),
            go_version: "unknown (pprof)".to_string(),
            stripped: false,
            pie: false,
            rss_bytes: None,
        },
        leaks: crate::report::leaks_of(&groups),
        groups,
        stats: Stats {
            goroutines: counts.0,
            parked: counts.1,
            duration_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            inventory: Some(engine.health.clone()),
            warnings,
            pprof: Some(pprof.clone()),
            ..Stats::default()
        },
    }
}

/// Answers every trigger request in `pending` with `result` (`fresh`: a poll made for them).
fn answer(pending: &mut Vec<TriggerRequest>, result: &ScanResult, fresh: bool) {
    for tx in pending.drain(..) {
        let _ = tx.send(ScanReply {
            result: result.clone(),
            fresh,
        });
    }
}

/// Polls until a stop, folding each answer into one engine and handing every poll to
/// `front`, which returns false to stop (stdout gone); returns the final report. A request on
/// `triggers` polls at once if the last poll is at least [`SCAN_MIN_SPACING`] old and the
/// pause budget allows one now; otherwise it gets the last poll's result.
async fn poll_loop(
    opts: &PprofOptions,
    mut triggers: Option<&mut mpsc::Receiver<TriggerRequest>>,
    front: &mut dyn FnMut(Refresh<'_>) -> bool,
) -> Result<Report> {
    let mut signals = Signals::new()?;
    let endpoint = Arc::new(Endpoint::new(&opts.url, opts.endpoint.clone())?);
    let classifier = if opts.rules.is_empty() {
        Classifier::builtin()
    } else {
        Classifier::with_user_rules(&opts.rules)?
    };
    let table = SharedTable::new();
    let mut engine = Engine::new(
        Box::new(table.clone()),
        classifier,
        EngineConfig {
            judge: opts.judge.clone(),
            // Times are wall-clock here, as the dumps of `sfgi analyze`.
            wall_minus_mono_ns: 0,
            from_dumps: true,
            ..EngineConfig::default()
        },
    );
    let started = Instant::now();
    let deadline = opts.duration.map(|d| started + d);
    let mut stats = PprofStats {
        endpoint: endpoint.base().to_string(),
        ..PprofStats::default()
    };
    let mut warnings: Vec<String> = Vec::new();
    let mut last_leak: Option<Instant> = None;
    let mut in_a_row = 0u32;
    let mut recent_polls: std::collections::VecDeque<Duration> =
        std::collections::VecDeque::with_capacity(PAUSE_WINDOW);
    let mut goroutines = 0usize;
    let mut parked = 0usize;
    let mut incomplete = false;
    // Trigger requests waiting for the next poll, the last poll's result, and the earliest
    // instant the pause budget allows another poll.
    let mut pending: Vec<TriggerRequest> = Vec::new();
    let mut last_result = ScanResult {
        scanned: 0,
        leaked: 0,
        duration_ms: 0.0,
    };
    let mut budget_free = Instant::now();
    'polls: loop {
        let leak_due = opts.leak_every.is_some_and(|every| {
            stats.leak_profile != Some(false) && last_leak.is_none_or(|t| t.elapsed() >= every)
        });
        let profile = if leak_due {
            Profile::GoroutineLeak
        } else {
            Profile::Goroutine
        };
        let sent_wall = wall_ns();
        let ep = Arc::clone(&endpoint);
        let polled = tokio::select! {
            biased;
            _ = signals.recv() => break,
            r = tokio::task::spawn_blocking(move || ep.fetch(profile)) => r.context("the poll thread")?,
        };
        let last_poll = Instant::now();
        let mut wait = opts.interval;
        let mut fresh = false;
        match polled {
            Err(PprofError::NotFound { .. }) if profile == Profile::GoroutineLeak => {
                stats.leak_profile = Some(false);
                eprintln!(
                    "sfgi: warning: {} serves no goroutineleak profile (Go 1.27, or 1.26 with GOEXPERIMENT=goroutineleakprofile): polling the goroutine profile only",
                    endpoint.base()
                );
                continue;
            }
            Err(e) if stats.polls == 0 => return Err(e.into()),
            Err(e) => {
                stats.failed += 1;
                in_a_row += 1;
                eprintln!("sfgi: warning: poll failed: {e}");
                if in_a_row >= MAX_FAILURES_IN_A_ROW {
                    warnings.push(format!(
                        "the endpoint stopped answering ({in_a_row} polls in a row failed, the last: {e}): the verdicts are from the last answer"
                    ));
                    break;
                }
            }
            Ok(poll) => {
                stats.last_poll_ms = (poll.took.as_secs_f64() * 1e4).round() / 10.0;
                stats.max_poll_ms = stats.max_poll_ms.max(stats.last_poll_ms);
                if recent_polls.len() == PAUSE_WINDOW {
                    recent_polls.pop_front();
                }
                recent_polls.push_back(poll.took);
                let took = pause_estimate(recent_polls.make_contiguous());
                wait = next_wait(opts.interval, took, opts.pause_budget);
                budget_free = last_poll + next_wait(Duration::ZERO, took, opts.pause_budget);
                stats.interval_seconds = (wait.as_secs_f64() * 100.0).round() / 100.0;
                let parsed = table.with(|t| sfgi_dump::parse(&poll.body, t, &opts.endpoint.limits));
                match parsed {
                    Err(e) if stats.polls == 0 => {
                        return Err(anyhow::Error::new(e).context(endpoint.url(profile)));
                    }
                    Err(e) => {
                        stats.failed += 1;
                        in_a_row += 1;
                        eprintln!("sfgi: warning: {}: {e}", endpoint.url(profile));
                    }
                    Ok(dump) => {
                        in_a_row = 0;
                        stats.polls += 1;
                        if profile == Profile::GoroutineLeak {
                            stats.leak_polls += 1;
                            stats.leak_profile = Some(true);
                            last_leak = Some(poll.sent);
                        }
                        for w in &dump.warnings {
                            incomplete = true;
                            if !warnings.contains(w) {
                                warnings.push(w.clone());
                            }
                        }
                        let now = sent_wall;
                        goroutines = dump.goroutines.len();
                        parked = dump.parked();
                        let gs: Vec<_> = dump.goroutine_infos().collect();
                        drop(dump);
                        engine.begin_inventory();
                        engine.ingest_goroutines(&gs, now as i64);
                        engine.end_inventory(InventoryPass {
                            read_ns: u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
                            ..InventoryPass::default()
                        });
                        engine.tick(now);
                        // Judged at every poll: the judge's hysteresis needs its history.
                        let groups = engine.verdicts(now, &NoStackMap, incomplete);
                        last_result = ScanResult {
                            scanned: goroutines,
                            leaked: groups
                                .iter()
                                .filter(|g| g.status.is_leak())
                                .map(|g| g.count)
                                .sum(),
                            duration_ms: stats.last_poll_ms,
                        };
                        fresh = true;
                        let report = make_report(
                            endpoint.base(),
                            groups,
                            &engine,
                            &stats,
                            (goroutines, parked),
                            started.elapsed(),
                            &warnings,
                        );
                        let more = front(Refresh {
                            report,
                            engine: &engine,
                            now_ns: now,
                            took,
                            elapsed: started.elapsed(),
                        });
                        if !more {
                            answer(&mut pending, &last_result, true);
                            break;
                        }
                    }
                }
            }
        }
        answer(&mut pending, &last_result, fresh);
        // Wait for the next poll (or the deadline), polling early for a trigger the pause
        // budget allows.
        let next = last_poll + wait;
        let until = deadline.map_or(next, |d| next.min(d));
        loop {
            tokio::select! {
                biased;
                _ = signals.recv() => break 'polls,
                Some(req) = next_trigger(&mut triggers) => {
                    let now = Instant::now();
                    if now >= budget_free && now.duration_since(last_poll) >= SCAN_MIN_SPACING {
                        pending.push(req);
                        if let Some(rx) = triggers.as_deref_mut() {
                            while let Ok(r) = rx.try_recv() {
                                pending.push(r);
                            }
                        }
                        break;
                    }
                    answer(&mut vec![req], &last_result, false);
                }
                _ = tokio::time::sleep_until(until.into()) => break,
            }
        }
        // No poll past the deadline.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let now = wall_ns();
    let groups = engine.verdicts(now, &NoStackMap, incomplete);
    // Requests still waiting get the last poll.
    answer(&mut pending, &last_result, false);
    Ok(make_report(
        endpoint.base(),
        groups,
        &engine,
        &stats,
        (goroutines, parked),
        started.elapsed(),
        &warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_respect_the_pause_budget() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // 40 ms at 10k goroutines, 1 % budget: every 4 s; 400 ms at 100k: every 40 s.
        assert_eq!(next_wait(s(1), ms(40), 0.01), s(4));
        assert_eq!(next_wait(s(1), ms(400), 0.01), s(40));
        // A cheap poll waits the interval; no budget: the interval.
        assert_eq!(next_wait(s(2), ms(1), 0.01), s(2));
        assert_eq!(next_wait(s(2), s(10), 0.0), s(2));
        // Bounded: an hour at most.
        assert_eq!(next_wait(s(1), s(100), 0.0001), s(3600));
    }

    #[test]
    fn one_slow_request_does_not_stretch_the_polls() {
        let ms = Duration::from_millis;
        // A 283 ms request among 2 ms ones (the machine, not the target): paced on 2 ms.
        assert_eq!(pause_estimate(&[ms(2), ms(283), ms(3)]), ms(2));
        assert_eq!(
            next_wait(
                Duration::from_secs(1),
                pause_estimate(&[ms(2), ms(283)]),
                0.01
            ),
            Duration::from_secs(1)
        );
        // A target whose dumps take 400 ms makes every poll that long: paced on it.
        assert_eq!(pause_estimate(&[ms(420), ms(400), ms(450)]), ms(400));
        assert_eq!(pause_estimate(&[]), Duration::ZERO);
    }
}
