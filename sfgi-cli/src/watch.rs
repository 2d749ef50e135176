//! `sfgi watch`: one attach session kept running, a live table of its leak groups, and (with
//! `--listen`) the HTTP endpoints of [`crate::serve`].
//!
//! Ownership: the [`Session`] borrows its [`Target`] and holds the eBPF maps, so it lives on one
//! task only — the loop in [`run`], on the caller's current-thread runtime. Every refresh the loop
//! publishes an immutable [`Snapshot`] (`Arc`, through a `tokio::sync::watch` channel) that the
//! HTTP handlers read without ever touching the session. `POST /sfgi/trigger-scan` sends a
//! oneshot reply channel to the loop over an mpsc; the loop answers every request that is queued
//! when it gets to them (and every one that arrived while the scan ran) with ONE scan, and
//! answers requests within a second of the last scan with that scan's result instead of scanning
//! again.
use crate::report::{short_site, LeakTable, Report};
use crate::serve;
use crate::session::{drive, FrontEnd, Pace, Session, Stop};
use crate::session::{open_target, AttachOptions};
use crate::signals::Signals;
use crate::snapshot::*;
use crate::term::{terminal_size, terminal_width};
use anyhow::Result;
use prometheus_client::metrics::histogram::Histogram;
use sfgi_engine::engine::Leak;
use sfgi_engine::format::go_duration;
use sfgi_engine::judge::Status;
use sfgi_trace::clock::monotonic_ns;
use sfgi_trace::target::Target;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};

/// Most leak groups drawn in the live table.
const TABLE_ROWS: usize = 25;
/// How often /proc is searched for other sfgi processes attached to the same PID.
const PEER_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Options of `sfgi watch`.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The session (its `interval` is also the refresh interval; `duration` and `rescan` are not
    /// used: watch runs until stopped and re-reads the inventory every `rescan` below).
    pub attach: AttachOptions,
    /// Periodic inventory re-read (`None`: only on start and on `trigger-scan`).
    pub rescan: crate::options::Rescan,
    /// `--listen` address as given (`:9090`, `127.0.0.1:9090`, `[::1]:9090`, ...).
    pub listen: Option<String>,
    /// Bearer token the HTTP endpoints require.
    pub token: Option<String>,
}

/// The end of a watch: why, the line that says so, and the final report.
pub struct WatchOutcome {
    /// Why it ended.
    pub ended: Stop,
    /// One line saying so (`sfgi: target PID 123 exited`).
    pub message: String,
    /// The final report.
    pub report: Report,
}

pub use sfgi_trace::procfs::other_sfgi_attached;
use sfgi_trace::procfs::ProcIdent;

/// The histogram of scan (or poll) durations `/metrics` serves, s.
pub(crate) fn scan_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

/// State kept across refreshes by the owner of the session.
pub(crate) struct Watcher<'a> {
    opts: &'a WatchOptions,
    /// Draw the live table on stdout (false in the agent: snapshots only).
    draw: bool,
    pid: u32,
    ident: Option<ProcIdent>,
    snapshots: SnapshotBuilder,
    scans: Histogram,
    /// When the inventory was last read (by any scan), and the last triggered or periodic
    /// scan's result (`None` until one ran: the initial scan's is not kept).
    last_scan_at: Instant,
    last_scan: Option<ScanResult>,
    peers: Vec<u32>,
    last_peer_check: Option<Instant>,
    tty: bool,
    frames: u64,
    listen_note: Option<String>,
    /// When the views were last refreshed.
    last_refresh: Instant,
    /// Where snapshots are published for the HTTP handlers.
    snap_tx: Option<watch::Sender<Arc<Snapshot>>>,
}

impl Watcher<'_> {
    /// Re-reads the inventory now and records how long it took.
    fn scan(&mut self, session: &mut Session<'_>) -> ScanResult {
        while session.poll() {}
        let r = session.scan();
        self.record_scan(&r);
        r
    }

    /// Notes a finished scan: its duration in the histogram, its result for trigger-scan.
    pub(crate) fn record_scan(&mut self, r: &ScanResult) {
        self.scans.observe(r.duration_ms / 1e3);
        self.last_scan_at = Instant::now();
        self.last_scan = Some(r.clone());
    }

    /// Answers `first` and every other queued trigger with one scan (or the last one, if it is
    /// less than [`SCAN_MIN_SPACING`] old). Returns whether a new scan ran.
    pub(crate) fn serve_triggers(
        &mut self,
        session: &mut Session<'_>,
        first: TriggerRequest,
        rx: &mut mpsc::Receiver<TriggerRequest>,
    ) -> bool {
        let mut waiting = vec![first];
        while let Ok(r) = rx.try_recv() {
            waiting.push(r);
        }
        let reply = match &self.last_scan {
            Some(r) if self.last_scan_at.elapsed() < SCAN_MIN_SPACING => ScanReply {
                result: r.clone(),
                fresh: false,
            },
            _ => {
                let result = self.scan(session);
                // Requests that came in while the scan ran share it.
                while let Ok(r) = rx.try_recv() {
                    waiting.push(r);
                }
                ScanReply {
                    result,
                    fresh: true,
                }
            }
        };
        let fresh = reply.fresh;
        for w in waiting {
            let _ = w.send(reply.clone());
        }
        fresh
    }

    /// Whether the target is gone: exited, or became another program.
    pub(crate) fn target_gone(&mut self, session: &mut Session<'_>) -> Option<Stop> {
        if !session.target_alive() {
            return Some(Stop::TargetExited);
        }
        match (&self.ident, ProcIdent::read(self.pid)) {
            (Some(a), Some(b)) if *a != b => Some(if a.start_time == b.start_time {
                Stop::TargetExeced
            } else {
                Stop::TargetExited
            }),
            (Some(_), None) => Some(Stop::TargetExited),
            _ => None,
        }
    }

    /// Takes a snapshot of the session now (and advances trends and the profile).
    pub(crate) fn snapshot(&mut self, session: &mut Session<'_>) -> Snapshot {
        let report = session.report();
        // (Not in the agent: a /proc scan per target every 2 s; the agent never attaches to
        // another sfgi's target twice itself.)
        if self.draw
            && self
                .last_peer_check
                .is_none_or(|t| t.elapsed() >= PEER_CHECK_EVERY)
        {
            self.last_peer_check = Some(Instant::now());
            self.peers = other_sfgi_attached(self.pid);
        }
        self.snapshots.build(
            report,
            &session.engine,
            monotonic_ns(),
            session.elapsed(),
            self.peers.clone(),
        )
    }

    fn trend(&self, id: &str) -> String {
        self.snapshots.trend(id)
    }

    /// Target and Go version.
    fn target_part(s: &Snapshot) -> String {
        let t = &s.report.target;
        format!("PID {} {} ({})", t.pid, t.binary, t.go_version)
    }

    /// Goroutines by state, events/s, drops, GC cycles, leak groups.
    fn counts_part(s: &Snapshot) -> String {
        let st = &s.states;
        let r = &s.report;
        // The runtime's own `_Gleaked` marks (Go 1.27 leak profile) only when there are any:
        // "leaked 0" next to leak groups read as a contradiction.
        let marked = if st.leaked > 0 {
            format!(", marked leaked by Go {}", st.leaked)
        } else {
            String::new()
        };
        format!(
            "goroutines {}: running {}, waiting {}, syscall {}{marked}  events/s {:.0}  drops {}  GC cycles {}  leak groups {} ({} goroutines)",
            st.total(),
            st.running,
            st.waiting,
            st.syscall,
            s.events_per_sec,
            r.stats.dropped,
            r.stats.gc_cycles,
            r.leaks.len(),
            r.leaks.iter().map(|l| l.count).sum::<usize>(),
        )
    }

    /// A note when other sfgi processes are attached to the same PID.
    fn peer_note(s: &Snapshot) -> String {
        if s.peers.is_empty() {
            return String::new();
        }
        let p: Vec<String> = s.peers.iter().map(u32::to_string).collect();
        format!(
            "  [note: another sfgi is attached to this PID: {}]",
            p.join(", ")
        )
    }

    /// The full-screen frame (TTY).
    fn frame(&self, s: &Snapshot) -> String {
        let mut out = format!(
            "sfgi watch  {}  attached {}, refresh {}{}{}\n{}\n",
            Self::target_part(s),
            go_duration(s.attached_secs.round()),
            go_duration(self.opts.attach.interval.as_secs_f64()),
            self.listen_note
                .as_deref()
                .map(|a| format!(", serving on {a}"))
                .unwrap_or_default(),
            Self::peer_note(s),
            Self::counts_part(s),
        );
        for w in &s.report.stats.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        let leaks = &s.report.leaks;
        if leaks.is_empty() {
            out.push_str("\nno leaks found (yet)\n");
        } else {
            // Keep the frame within the screen (header, borders, footer: about 10 lines).
            let rows = terminal_size().map_or(TABLE_ROWS, |(_, h)| {
                h.saturating_sub(10).clamp(3, TABLE_ROWS)
            });
            let trend = |id: &str| self.trend(id);
            let table = LeakTable {
                width: terminal_width().map_or(170, |w| w.min(u16::MAX as usize) as u16),
                trend: Some(&trend),
            }
            .render(&leaks[..rows.min(leaks.len())]);
            out.push('\n');
            out.push_str(&table);
            out.push('\n');
            if leaks.len() > rows {
                out.push_str(&format!("… {} more leak groups\n", leaks.len() - rows));
            }
        }
        let resident: Vec<&Leak> = s
            .report
            .groups
            .iter()
            .filter(|g| g.status == Status::Resident)
            .collect();
        if !resident.is_empty() {
            out.push_str(&format!(
                "{} resident goroutine(s) in {} healthy-looking group(s), not leaks\n",
                resident.iter().map(|g| g.count).sum::<usize>(),
                resident.len()
            ));
        }
        out.push_str("Ctrl-C to stop\n");
        out
    }

    /// The plain lines (not a TTY): one summary line, then one line per leak group.
    fn lines(&self, s: &Snapshot) -> String {
        let ts = humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + Duration::from_millis(s.ts_ms.max(0) as u64),
        );
        let mut out = format!(
            "{ts} {}  {}{}\n",
            Self::target_part(s),
            Self::counts_part(s),
            Self::peer_note(s)
        );
        for g in &s.report.leaks {
            out.push_str(&format!(
                "  {} {} {} {} count={} growth/min={:+.1} age={} trend={} blocked={} created={}\n",
                g.id,
                g.status.as_str(),
                g.severity.map(|s| s.as_str()).unwrap_or("-"),
                g.pattern,
                g.count,
                g.growth_per_minute,
                g.duration,
                self.trend(&g.id),
                short_site(&g.blocked_at),
                short_site(&g.created_by),
            ));
        }
        out
    }

    /// Draws one refresh; false if stdout is gone.
    fn draw(&mut self, s: &Snapshot) -> bool {
        if !self.draw {
            return true;
        }
        let text = if self.tty {
            // Home, overwrite each line (clearing its tail), clear below: no flicker.
            let mut t = String::new();
            if self.frames == 0 {
                t.push_str("\x1b[2J");
            }
            t.push_str("\x1b[H");
            let width = terminal_width().unwrap_or(usize::MAX);
            for line in self.frame(s).lines() {
                // Never wrap: a wrapped line would scroll the frame.
                match line.char_indices().nth(width) {
                    Some((i, _)) => t.push_str(&line[..i]),
                    None => t.push_str(line),
                }
                t.push_str("\x1b[K\n");
            }
            t.push_str("\x1b[J");
            t
        } else {
            self.lines(s)
        };
        self.frames += 1;
        let mut out = std::io::stdout().lock();
        !matches!(
            out.write_all(text.as_bytes()).and_then(|()| out.flush()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe
        )
    }
}

impl<'a> Watcher<'a> {
    /// A watcher that only takes snapshots (no table on stdout): one per agent target.
    pub(crate) fn headless(
        opts: &'a WatchOptions,
        session: &Session<'_>,
        scans: Histogram,
    ) -> Watcher<'a> {
        let pid = session.target.pid;
        Watcher {
            opts,
            draw: false,
            pid,
            ident: ProcIdent::read(pid),
            snapshots: SnapshotBuilder::new(Instant::now()),
            scans,
            last_scan_at: session.last_scan(),
            last_scan: None,
            peers: Vec::new(),
            last_peer_check: None,
            tty: false,
            frames: 0,
            listen_note: None,
            last_refresh: Instant::now(),
            snap_tx: None,
        }
    }

    /// Whether the refresh interval has passed since the last snapshot (and starts the next).
    pub(crate) fn refresh_due(&mut self, now: bool) -> bool {
        if !now && self.last_refresh.elapsed() < self.opts.attach.interval {
            return false;
        }
        self.last_refresh = Instant::now();
        true
    }
}

impl FrontEnd for Watcher<'_> {
    fn after_pass(&mut self, session: &mut Session<'_>, refresh_now: bool) -> Option<Stop> {
        if let Some(stop) = self.target_gone(session) {
            return Some(stop);
        }
        if !refresh_now && self.last_refresh.elapsed() < self.opts.attach.interval {
            return None;
        }
        self.last_refresh = Instant::now();
        let snap = Arc::new(self.snapshot(session));
        if let Some(tx) = &self.snap_tx {
            let _ = tx.send(Arc::clone(&snap));
        }
        (!self.draw(&snap)).then_some(Stop::OutputClosed)
    }

    fn scanned(&mut self, result: &ScanResult) {
        self.record_scan(result);
    }

    fn trigger(
        &mut self,
        session: &mut Session<'_>,
        first: TriggerRequest,
        rest: &mut mpsc::Receiver<TriggerRequest>,
    ) -> bool {
        self.serve_triggers(session, first, rest)
    }
}

/// Runs `sfgi watch` until Ctrl-C/SIGTERM or the target exits, and returns the final report.
/// Probes are detached before it returns (the session is dropped).
pub async fn run(opts: &WatchOptions) -> Result<WatchOutcome> {
    let mut signals = Signals::new()?;
    // Bound before anything is attached: a bad or busy address fails in milliseconds.
    let listener = opts.listen.as_deref().map(serve::bind).transpose()?;
    let target: Target = open_target(opts.attach.pid)?;
    let pid = target.pid;
    let ident = ProcIdent::read(pid);
    let started = Instant::now();
    let mut aopts = opts.attach.clone();
    aopts.duration = None;
    aopts.rescan = opts.rescan;
    aopts.poll_interval = aopts.poll_interval.min(aopts.interval);
    let mut session = Session::start(&target, &aopts)?;
    eprintln!(
        "sfgi: watching PID {} ({}, {}) with {} probes; Ctrl-C to stop",
        pid,
        target.exe_display.display(),
        target.binary.build_info().go_version,
        session.tracer().plan.sites.len(),
    );
    for m in &session.tracer().plan.missing {
        eprintln!(
            "sfgi: warning: no {} probe ({}): {}",
            m.probe, m.function, m.why
        );
    }
    let scans = scan_histogram();
    if session.engine.health.inventories > 0 {
        scans.observe(session.engine.health.inventory_ms / 1e3);
    }
    let mut w = Watcher {
        opts,
        draw: true,
        pid,
        ident,
        snapshots: SnapshotBuilder::new(started),
        scans: scans.clone(),
        last_scan_at: session.last_scan(),
        last_scan: None,
        peers: Vec::new(),
        last_peer_check: None,
        tty: std::io::stdout().is_terminal(),
        frames: 0,
        listen_note: None,
        last_refresh: Instant::now(),
        snap_tx: None,
    };
    let first = Arc::new(w.snapshot(&mut session));
    let (snap_tx, snap_rx) = watch::channel(Arc::clone(&first));
    let (trig_tx, mut trig_rx) = mpsc::channel::<TriggerRequest>(256);
    let server = match listener {
        Some(listener) => {
            let (server, url) = serve::serve_announced(
                listener,
                serve::ServeState {
                    snapshot: snap_rx,
                    trigger: trig_tx,
                    scans: scans.clone(),
                    token: opts.token.clone(),
                },
            )?;
            w.listen_note = Some(url);
            Some(server)
        }
        None => {
            drop((snap_rx, trig_tx));
            None
        }
    };
    w.snap_tx = Some(snap_tx);
    let ended = if w.draw(&first) {
        drop(first);
        let pace = Pace {
            poll: aopts.poll_interval,
            deadline: None,
        };
        let triggers = server.is_some().then_some(&mut trig_rx);
        drive(&mut session, &mut signals, pace, triggers, &mut w).await
    } else {
        Stop::OutputClosed
    };
    // Stop serving before detaching: handlers only ever see a live session's snapshots.
    drop(trig_rx);
    if let Some(s) = server {
        s.stop(Duration::from_secs(2));
    }
    session.finish(ended);
    let report = session.report();
    drop(session); // detaches the probes
    if w.tty && w.frames > 0 {
        println!();
    }
    let message = match ended {
        Stop::TargetExited => format!("sfgi: target PID {pid} exited"),
        Stop::TargetExeced => format!(
            "sfgi: target PID {pid} exited (it exec'd another program; a new program is a new target)"
        ),
        Stop::Signal | Stop::Deadline => format!("sfgi: stopped; detached from PID {pid}"),
        Stop::OutputClosed => format!("sfgi: output closed; detached from PID {pid}"),
    };
    Ok(WatchOutcome {
        ended,
        message,
        report,
    })
}
