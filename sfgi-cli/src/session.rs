//! The one session loop, shared by `attach` and `watch` (and any front end to come).
//!
//! A [`Session`] is one target traced: its probes, the engine they feed, the overhead budget and
//! the inventory reader. [`drive`] runs it: it drains the ring buffer in bounded passes, re-reads
//! the inventory when due, hands each pass to the front end, and stops on Ctrl-C/SIGTERM (the
//! listeners are made once, in [`Signals::new`], before the probes go in, so a signal that comes
//! during an inventory read is kept, not lost), a deadline, the target's exit, or the front end's
//! word. A flood of events cannot starve it: no pass folds more than
//! [`MAX_RECORDS_PER_PASS`] records before signals, HTTP requests and the clock get a turn.
use crate::options::Rescan;
use crate::report::{ProbeStats, Report, Stats, TargetInfo};
use crate::signals::Signals;
use crate::snapshot::{ScanResult, TriggerRequest};
use anyhow::{bail, Result};
use sfgi_engine::classify::Classifier;
use sfgi_engine::engine::{Engine, EngineConfig, InventoryPass};
use sfgi_engine::event::{decode, RuntimeEvent};
use sfgi_engine::judge::JudgeConfig;
use sfgi_trace::budget::Budget;
use sfgi_trace::clock::monotonic_ns;
use sfgi_trace::inventory;
use sfgi_trace::probe::{gstate_entries_for, ring_bytes_for, Tracer, TracerOptions, ALL_PROBES};
use sfgi_trace::symbolize::Symbolizer;
use sfgi_trace::target::Target;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most ring-buffer records folded into the engine per pass (≈ 1 MiB of decoded events).
pub const MAX_RECORDS_PER_PASS: usize = 16_384;

/// Why a session loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// `--duration` elapsed.
    Deadline,
    /// The target exited.
    TargetExited,
    /// The target exec'd another program (same PID, a new target).
    TargetExeced,
    /// Standard output went away (`| head`).
    OutputClosed,
}

/// What a front end does with a running session.
pub trait FrontEnd {
    /// After every pass (events folded, re-read done if due): refresh views (at once when
    /// `refresh_now`, after a triggered scan), check the target; `Some` ends the loop.
    fn after_pass(&mut self, _session: &mut Session<'_>, _refresh_now: bool) -> Option<Stop> {
        None
    }

    /// An inventory re-read the loop ran because it was due.
    fn scanned(&mut self, _result: &ScanResult) {}

    /// A `trigger-scan` request (and any others queued behind it); returns whether views
    /// should refresh now.
    fn trigger(
        &mut self,
        _session: &mut Session<'_>,
        _first: TriggerRequest,
        _rest: &mut mpsc::Receiver<TriggerRequest>,
    ) -> bool {
        false
    }
}

/// How the loop paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// How often the ring buffer is drained when there is no backlog.
    pub poll: Duration,
    /// Stop at this instant (`--duration`).
    pub deadline: Option<Instant>,
}

/// Runs `session` for `front` until a [`Stop`]. Probes stay attached; the caller reports and
/// drops the session (which detaches them).
pub async fn drive(
    session: &mut Session<'_>,
    signals: &mut Signals,
    pace: Pace,
    mut triggers: Option<&mut mpsc::Receiver<TriggerRequest>>,
    front: &mut dyn FrontEnd,
) -> Stop {
    let mut tick = tokio::time::interval(pace.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backlog = false;
    loop {
        let mut refresh = false;
        tokio::select! {
            biased;
            _ = signals.recv() => return Stop::Signal,
            Some(req) = crate::snapshot::next_trigger(&mut triggers) => {
                if let Some(rx) = triggers.as_deref_mut() {
                    refresh = front.trigger(session, req, rx);
                }
            }
            // With records left over from the last pass, only yield (HTTP and signals run),
            // then go on draining.
            _ = tokio::task::yield_now(), if backlog => {}
            _ = tick.tick(), if !backlog => {}
        }
        backlog = session.poll();
        if !session.target_alive() {
            return Stop::TargetExited;
        }
        if pace.deadline.is_some_and(|d| Instant::now() >= d) {
            return Stop::Deadline;
        }
        if session.rescan_due() {
            let r = session.scan();
            front.scanned(&r);
        }
        session.prove_step();
        if let Some(stop) = front.after_pass(session, refresh) {
            return stop;
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
    /// [`sfgi_trace::budget`].
    pub max_event_rate: u64,
    /// How long after degrading the budget tries full tracing again (zero: never).
    pub budget_retry: Duration,
    /// Reachability proofs.
    pub proof: ProofOptions,
    /// Symbolize from Go's own tables only, not DWARF (`sfgi agent`: less memory per target).
    pub go_symbols_only: bool,
}

/// When and how reachability proofs run (see `sfgi_heap`).
#[derive(Clone, Copy, Debug)]
pub struct ProofOptions {
    /// Prove goroutines parked at least this long (`None`: no proofs, the default: `--prove`).
    pub settle: Option<Duration>,
    /// Least time from one proof to the next.
    pub interval: Duration,
    /// A proof is re-run at least this often even when no new goroutine parked (what an old
    /// park waits on may have become unreachable since).
    pub refresh: Duration,
    /// Time between the two passes of a proof.
    pub gap: Duration,
    /// Read budget, MB/s (0: unlimited).
    pub read_mb_s: u64,
    /// Most MB one pass reads (0: unlimited).
    pub cap_mb: u64,
}

impl Default for ProofOptions {
    fn default() -> Self {
        ProofOptions {
            settle: None,
            interval: Duration::from_secs(5),
            refresh: Duration::from_secs(60),
            gap: Duration::from_millis(200),
            read_mb_s: 256,
            cap_mb: 16 << 10,
        }
    }
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
            max_event_rate: sfgi_trace::budget::DEFAULT_MAX_EVENT_RATE,
            budget_retry: sfgi_trace::budget::DEFAULT_RETRY,
            proof: ProofOptions::default(),
            go_symbols_only: false,
        }
    }
}

/// Opens the target, checking SFGI can trace it.
pub fn open_target(pid: u32) -> Result<Target> {
    open_target_with(pid, None)
}

/// [`open_target`], sharing binaries through `cache` (the agent).
pub fn open_target_with(
    pid: u32,
    cache: Option<&sfgi_trace::target::BinaryCache>,
) -> Result<Target> {
    let target = Target::open_with(pid, cache)?;
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
    /// Records of the current pass, reused (at most [`MAX_RECORDS_PER_PASS`]).
    batch: Vec<RuntimeEvent>,
    /// An inventory re-read is wanted now (events just became untrusted).
    force_rescan: bool,
    /// Drops seen when events were last trusted.
    drops_trusted: u64,
    target_exited: bool,
    budget: Budget,
    /// How to read the target's goroutines (worked out once), or why they cannot be.
    plan: Result<inventory::Plan<'t>, String>,
    /// What incremental re-reads remember of each goroutine between reads.
    remembered: inventory::Remembered,
    /// How to prove leaks (worked out on first use), or why proofs cannot run.
    prover: Option<Result<sfgi_heap::Prover, String>>,
    /// Where the current proof is.
    proof: ProofState,
    /// When the last proof started (monotonic ns), or the session did before the first.
    last_proof_ns: u64,
    /// Whether a proof ran yet.
    proved_once: bool,
}

/// A proof's first pass: when the proof started (monotonic ns), what the pass found, bytes it
/// read, time it took (ns).
type FirstPass = (u64, sfgi_heap::proof::Found, u64, u64);

/// What a pass thread returns: what it found (and the candidates), bytes read, time (ns).
type PassResult = (Result<(sfgi_heap::proof::Found, usize), String>, u64, u64);

/// Where a reachability proof is.
#[derive(Default)]
enum ProofState {
    /// None running.
    #[default]
    Idle,
    /// A pass is running on its thread (the second when `first` is set).
    Running {
        handle: std::thread::JoinHandle<PassResult>,
        first: Option<FirstPass>,
    },
    /// The first pass found candidates unreachable; the second starts `gap` after `at`.
    Between { first: FirstPass, at: Instant },
}

impl ProofState {
    fn take(&mut self) -> ProofState {
        std::mem::take(self)
    }
}

impl<'t> Session<'t> {
    /// Attaches the probes, then reads the inventory of goroutines parked before they went in.
    pub fn start(target: &'t Target, opts: &AttachOptions) -> Result<Session<'t>> {
        let classifier = if opts.rules.is_empty() {
            Classifier::builtin()
        } else {
            Classifier::with_user_rules(&opts.rules)?
        };
        let plan = inventory::Plan::new(&target.binary).map_err(|e| e.to_string());
        // Room in the probes' per-goroutine state for every goroutine the target has now.
        let mut tracer_opts = opts.tracer.clone();
        let allgs = plan
            .as_ref()
            .map_err(|_| ())
            .and_then(|p| p.allgs_len(target.pid, target.load_bias).map_err(|_| ()));
        if let Ok(n) = allgs {
            tracer_opts.gstate_entries = gstate_entries_for(n);
        }
        if tracer_opts.ring_bytes == 0 {
            // Unknown size: the largest ring.
            tracer_opts.ring_bytes = ring_bytes_for(allgs.unwrap_or(u64::MAX));
        }
        let tracer = Tracer::attach(target.pid, &target.exe_path, &target.binary, &tracer_opts)?;
        let engine = Engine::new(
            Box::new(if opts.go_symbols_only {
                Symbolizer::go_tables_only(&target.binary, target.load_bias)
            } else {
                Symbolizer::new(&target.binary, target.load_bias)
            }),
            classifier,
            EngineConfig {
                judge: opts.judge.clone(),
                wall_minus_mono_ns: sfgi_trace::clock::wall_minus_mono_ns(),
                ..EngineConfig::default()
            },
        );
        let now = Instant::now();
        let budget = Budget::new(opts.max_event_rate, opts.budget_retry, &tracer);
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
            batch: Vec::new(),
            force_rescan: false,
            remembered: inventory::Remembered::default(),
            prover: None,
            proof: ProofState::Idle,
            last_proof_ns: monotonic_ns(),
            proved_once: false,
            drops_trusted: 0,
            target_exited: false,
        };
        while s.poll() {}
        eprintln!(
            "sfgi: reading the goroutine inventory of PID {} (no stop)",
            target.pid
        );
        s.scan();
        s.engine.tick(monotonic_ns());
        Ok(s)
    }

    /// The overhead budget (the agent sets its share of the node-wide budget through it).
    pub fn budget_mut(&mut self) -> &mut Budget {
        &mut self.budget
    }

    /// The probes that were placed and the ones that could not be.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Folds up to [`MAX_RECORDS_PER_PASS`] ring-buffer records into the engine, samples
    /// populations when due and lets the overhead budget act. Returns whether more records
    /// were left waiting (call again after giving other work its turn).
    pub fn poll(&mut self) -> bool {
        let Self {
            tracer,
            engine,
            decode_errors,
            batch,
            ..
        } = self;
        batch.clear();
        let n = tracer.drain(MAX_RECORDS_PER_PASS, |rec| match decode(rec) {
            Ok(ev) => batch.push(ev),
            Err(_) => *decode_errors += 1,
        });
        for ev in batch.iter() {
            engine.apply(ev, &*tracer);
        }
        // The probes' diagnostics (only with `-v`/RUST_LOG=sfgi=debug; otherwise nothing).
        tracer.flush_log();
        if self.last_tick.elapsed() >= self.opts.interval {
            self.last_tick = Instant::now();
            self.engine.tick(monotonic_ns());
        }
        self.budget
            .check(&mut self.tracer, self.engine.health.inventory_ms);
        // Probes stepped down or events lost: states from events may be stale; re-read now.
        if (!self.budget.events_complete() || self.budget.dropped_seen() > self.drops_trusted)
            && self.engine.distrust_events(monotonic_ns())
        {
            self.force_rescan = true;
        }
        n == MAX_RECORDS_PER_PASS
    }

    /// Whether an inventory re-read is due (see [`Session::rescan_interval`]).
    pub fn rescan_due(&self) -> bool {
        self.force_rescan
            || self
                .rescan_interval(self.opts.rescan)
                .is_some_and(|d| self.last_scan.elapsed() >= d)
    }

    /// When the inventory was last read.
    pub fn last_scan(&self) -> Instant {
        self.last_scan
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

    /// Runs the next step of a reachability proof when one is due: a first pass once a park
    /// has settled since the last proof (and at most every `proof.interval`; at least every
    /// `proof.refresh`), the second pass `proof.gap` after the first ended, then hands what both
    /// agree on to the engine. Each pass reads a whole inventory here, then walks the target's
    /// heap at the read budget on a thread of its own, so the loop keeps draining events; the
    /// target is never stopped.
    pub fn prove_step(&mut self) {
        let opts = self.opts.proof;
        let Some(settle) = opts.settle else { return };
        let settle_ns = settle.as_nanos() as u64;
        let now = monotonic_ns();
        match self.proof.take() {
            ProofState::Idle => {
                let since_last = now.saturating_sub(self.last_proof_ns);
                if self.proved_once && since_last < opts.interval.as_nanos() as u64 {
                    return;
                }
                // Due when a park has settled since the last proof (or the session's start),
                // or the last proof is old.
                let settled_by = now.saturating_sub(settle_ns);
                let last_settled = self.last_proof_ns.saturating_sub(settle_ns);
                let fresh = self
                    .engine
                    .life
                    .parked()
                    .any(|g| g.park.since_ns <= settled_by && g.park.since_ns > last_settled);
                if !fresh && since_last < opts.refresh.as_nanos() as u64 {
                    return;
                }
                self.proved_once = true;
                self.last_proof_ns = now;
                match self.start_pass(None) {
                    Ok(job) => self.proof = job,
                    Err(why) => self.refuse_proof(why, now),
                }
            }
            ProofState::Running { handle, first } if handle.is_finished() => {
                let (outcome, bytes, ns) = match handle.join() {
                    Ok(r) => r,
                    Err(_) => (Err("the proof thread panicked".to_string()), 0, 0),
                };
                match (first, outcome) {
                    (None, Ok((found, _))) if !found.is_empty() => {
                        self.proof = ProofState::Between {
                            first: (self.last_proof_ns, found, bytes, ns),
                            at: Instant::now(),
                        };
                    }
                    (None, Ok((_, n))) => {
                        let report = sfgi_engine::proof::ProofReport {
                            candidates: n,
                            bytes_read: bytes,
                            pass_ns: ns,
                            ..Default::default()
                        };
                        self.engine
                            .ingest_proofs(&report, self.last_proof_ns, settle_ns);
                    }
                    (Some((started, first, b1, ns1)), Ok((second, n))) => {
                        let report = sfgi_engine::proof::ProofReport {
                            proven: sfgi_heap::Prover::agree(first, second),
                            candidates: n,
                            bytes_read: b1 + bytes,
                            pass_ns: ns1 + ns,
                            refused: None,
                        };
                        let taken = self.engine.ingest_proofs(&report, started, settle_ns);
                        log::debug!(
                            "proof: {} proven ({taken} taken) of {} candidates, {} bytes in {:.1} ms",
                            report.proven.len(),
                            report.candidates,
                            report.bytes_read,
                            report.pass_ns as f64 / 1e6
                        );
                    }
                    (_, Err(why)) => self.refuse_proof(why, now),
                }
            }
            ProofState::Between { first, at } if at.elapsed() >= opts.gap => {
                match self.start_pass(Some(first)) {
                    Ok(job) => self.proof = job,
                    Err(why) => self.refuse_proof(why, now),
                }
            }
            other => self.proof = other,
        }
    }

    /// Reads a whole inventory and starts a pass over it on its own thread.
    fn start_pass(&mut self, first: Option<FirstPass>) -> Result<ProofState, String> {
        let opts = self.opts.proof;
        let plan = self.plan.as_ref().map_err(Clone::clone)?;
        let (pid, bias) = (self.target.pid, self.target.load_bias);
        let prover = self
            .prover
            .get_or_insert_with(|| {
                let mem = sfgi_heap::RemoteMemory::new(pid, opts.read_mb_s, opts.cap_mb);
                let bin = &self.target.binary;
                let layout = bin
                    .heap_layout()
                    .cloned()
                    .ok_or_else(|| "no heap layout for this Go version".to_string())?;
                let globals = sfgi_heap::Globals::locate(&mem, bin, &layout, bias)
                    .map_err(|e| e.to_string())?;
                log::debug!("proofs: {globals:x?}");
                Ok(sfgi_heap::Prover {
                    layout,
                    globals,
                    config: sfgi_heap::ProofConfig {
                        gap: opts.gap,
                        g_stack: bin.offsets().g_stack_lo,
                    },
                })
            })
            .clone()?;
        // The overhead budget governs the read budget: while it has stepped the probes down (the
        // target is busy), a proof reads at a quarter of the rate.
        let read_mb_s = if self.budget.events_complete() || opts.read_mb_s == 0 {
            opts.read_mb_s
        } else {
            (opts.read_mb_s / 4).max(1)
        };
        let t0 = monotonic_ns();
        let inv = plan
            .read(pid, bias)
            .map_err(|e| format!("inventory: {e}"))?;
        let read_ns = monotonic_ns().saturating_sub(t0);
        let handle = std::thread::Builder::new()
            .name("sfgi-proof".into())
            .spawn(move || {
                use sfgi_heap::Memory as _;
                let t1 = monotonic_ns();
                let mem = sfgi_heap::RemoteMemory::new(pid, read_mb_s, opts.cap_mb);
                let r = prover.pass_inventory(&mem, &inv).map_err(|e| e.to_string());
                (
                    r,
                    mem.bytes_read(),
                    read_ns + monotonic_ns().saturating_sub(t1),
                )
            })
            .map_err(|e| format!("starting the proof thread: {e}"))?;
        Ok(ProofState::Running { handle, first })
    }

    /// Records a proof that proved nothing, and why.
    fn refuse_proof(&mut self, why: String, now: u64) {
        log::debug!("proof refused: {why}");
        self.proof = ProofState::Idle;
        self.engine.ingest_proofs(
            &sfgi_engine::proof::ProofReport {
                refused: Some(why),
                ..Default::default()
            },
            now,
            self.opts.proof.settle.map_or(0, |d| d.as_nanos() as u64),
        );
    }

    /// Re-reads the inventory now (drains events first so the snapshot is the newer one).
    pub fn scan(&mut self) -> ScanResult {
        self.last_scan = Instant::now();
        self.force_rescan = false;
        let drops_before = self.budget.dropped_seen();
        let t0 = Instant::now();
        let engine = &mut self.engine;
        let read = match &self.plan {
            Ok(plan) => {
                let mut n = 0;
                let mut whole_next = Vec::new();
                engine.begin_inventory();
                let read = plan
                    .reread_each(
                        self.target.pid,
                        self.target.load_bias,
                        &mut self.remembered,
                        |batch, unchanged, now| {
                            n += batch.len() + unchanged.len();
                            engine.ingest_goroutines(batch, now);
                            whole_next.extend(engine.ingest_unchanged(unchanged, now));
                        },
                    )
                    .map(|inv| (inv, n))
                    .map_err(|e| e.to_string());
                for slot in whole_next {
                    self.remembered.forget(slot);
                }
                read
            }
            Err(e) => Err(e.clone()),
        };
        let scanned = match read {
            Ok((inv, n)) => {
                engine.end_inventory(InventoryPass {
                    unreadable: inv.unreadable,
                    unchanged: inv.unchanged,
                    read_ns: inv.read_ns,
                });
                // Every probe attached and nothing lost across a whole read: events are
                // complete again from here.
                if self.budget.events_complete() && self.budget.dropped_seen() == drops_before {
                    engine.trust_events();
                    self.drops_trusted = drops_before;
                }
                n
            }
            // A failed read keeps what it read and drops nothing as gone.
            Err(e) => {
                engine.inventory_failed(e);
                0
            }
        };
        let duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        log::debug!(
            "inventory re-read: {scanned} goroutines in {duration_ms:.1} ms ({} not read whole)",
            self.engine.health.inventory_unchanged
        );
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

    /// Brings the session up to date after its loop stopped for `why`: the last events, and a
    /// last inventory read when the target is still there, then a final population sample.
    pub fn finish(&mut self, why: Stop) {
        while self.poll() {}
        if matches!(why, Stop::Signal | Stop::Deadline | Stop::OutputClosed) && self.target_alive()
        {
            self.scan();
        }
        self.engine.tick(monotonic_ns());
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
            // Read before the counters below (a probe counts a failure there first): the
            // diagnostics never exceed the failures they log.
            ebpf_log: self.tracer.diag_stats(),
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
        let health = &self.engine.health;
        if health.unconfirmed > 0 {
            stats.warnings.push(format!(
                "{} parked goroutines known only from events since the probes stepped down or events were lost do not age into a verdict until an inventory read confirms them",
                health.unconfirmed
            ));
        }
        let known = life.len() as u64;
        let gstate = u64::from(self.tracer.gstate_entries());
        if known > gstate {
            stats.warnings.push(format!(
                "the target has {known} goroutines, more than the {gstate} the probes keep state for: wakes of the least recently seen are reported again (more events, none lost)"
            ));
        }
        if stats.stack_errors > 0 {
            stats.warnings.push(format!(
                "{} stacks could not be stored (the {}-entry stack map is full or two stacks hashed alike): those parks are grouped by their caller only",
                stats.stack_errors,
                self.tracer.stack_entries()
            ));
        }
        if health.overflow_parks > 0 {
            stats.warnings.push(format!(
                "{} parks at new sites went to group {} (more than {} groups): its verdict is marked incomplete",
                health.overflow_parks,
                sfgi_engine::engine::OVERFLOW_GROUP_ID,
                sfgi_engine::engine::MAX_GROUPS
            ));
        }
        if health.id_collisions > 0 {
            stats.warnings.push(format!(
                "{} group ids collided and were given a -N suffix",
                health.id_collisions
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
                rss_bytes: sfgi_trace::procfs::rss_bytes(Some(self.target.pid)),
            },
            leaks: crate::report::leaks_of(&groups),
            groups,
            stats,
        }
    }
}
