//! `sfgi agent`: every Go process of the node, each traced by its own session, one HTTP server,
//! one node-wide overhead budget.
//!
//! Structure (see docs/AGENT.md and docs/ARCHITECTURE.md):
//!
//! - The **supervisor** (this module's [`run`], on the main thread) does not trace: every
//!   [`DISCOVER_EVERY`] it reloads the config if it changed, lists the Go processes
//!   ([`sfgi_trace::discover::Scanner`]), reads each one's container, pod and `NSpid`, and starts
//!   or stops targets.
//! - Each **target** runs on a thread of its own: `open_target` → `Session::start` → the one
//!   session loop, [`crate::session::drive`], with [`AgentFront`] as its front end (a headless
//!   watch [`Watcher`] that publishes snapshots into the shared [`Shared`] table, takes its share
//!   of the node budget at every pass and writes evidence bundles). The supervisor stops it through
//!   [`Signals::from_stop`]; dropping the session detaches its probes, on every path.
//! - The **HTTP server** ([`http`]) reads only the published snapshots.
pub mod config;
pub mod evidence;
mod http;

use crate::metrics::Labels;
use crate::session::{drive, open_target_with, FrontEnd, Pace, Session, Stop};
use crate::signals::Signals;
use crate::snapshot::{ScanResult, Snapshot, TriggerRequest};
use crate::watch::{WatchOptions, Watcher};
use anyhow::{Context, Result};
use config::{Facts, Watched};
use evidence::{Evidence, EvidenceOptions, TargetFacts};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use sfgi_engine::judge::Severity;
use sfgi_trace::budget::{Mode, NodeBudget};
use sfgi_trace::discover::{self, PodDirectory, Scanner};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How often `/proc` is scanned for new and exited Go processes (and the config re-checked).
pub const DISCOVER_EVERY: Duration = Duration::from_secs(1);
/// Default ring buffer per agent target (the CLI's 16 MiB is for one target).
pub const DEFAULT_RING_BYTES: u32 = 1 << 20;

/// Options of `sfgi agent`.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Per-target session options (judge, rules, interval, rescan, tracer; `max_event_rate` is
    /// the node-wide budget).
    pub watch: WatchOptions,
    /// Listen address.
    pub listen: String,
    /// Bearer token.
    pub token: Option<String>,
    /// Config file.
    pub config: Option<PathBuf>,
    /// Most targets traced at once.
    pub max_targets: usize,
    /// The kubelet's pod log directory (pod namespace and name).
    pub pods_dir: PathBuf,
    /// The kubelet's container log links (container names).
    pub containers_dir: PathBuf,
    /// Evidence bundles (`None`: none written).
    pub evidence: Option<EvidenceOptions>,
}

/// A target as `/sfgi/targets` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetView {
    /// Who it is: pids, executable, Go version, container and pod (also written into its
    /// evidence bundles).
    #[serde(flatten)]
    pub target: TargetFacts,
    /// `tracing`, `inventory-only` or `failed`.
    pub state: &'static str,
    /// Why it failed (or was refused).
    pub reason: Option<String>,
    /// When the session started (RFC 3339).
    pub attached_since: Option<String>,
    /// The cgroup path the labels come from.
    pub cgroup: String,
}

impl TargetView {
    /// The target labels of its metric series: pid, exe, container, pod, namespace.
    pub fn labels(&self) -> Labels {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            ("pid".into(), self.target.pid.to_string()),
            ("exe".into(), self.target.exe.clone()),
            ("container".into(), s(&self.target.container)),
            ("pod".into(), s(&self.target.pod)),
            ("namespace".into(), s(&self.target.namespace)),
        ]
    }

    fn facts(&self) -> Facts {
        Facts {
            exe: self.target.exe.clone(),
            container: self.target.container.clone(),
            container_name: self.target.container_name.clone(),
            namespace: self.target.namespace.clone(),
            pod: self.target.pod.clone(),
            pod_uid: self.target.pod_uid.clone(),
        }
    }
}

/// One target in the shared table.
pub(crate) struct Entry {
    pub(crate) view: TargetView,
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    pub(crate) trigger: Option<mpsc::Sender<TriggerRequest>>,
}

/// What the supervisor, the targets' threads and the HTTP handlers share.
pub(crate) struct Shared {
    pub(crate) targets: Mutex<BTreeMap<u32, Entry>>,
    pub(crate) scans: Family<Labels, Histogram, fn() -> Histogram>,
    budget: Mutex<NodeBudget>,
    pub(crate) evidence: Option<Evidence>,
    pub(crate) token: Option<String>,
    /// One analysed binary per executable, shared by its targets.
    binaries: sfgi_trace::target::BinaryCache,
}

/// Locks `m`, whatever a panicking thread left (the table stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn update(&self, pid: u32, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = lock(&self.targets).get_mut(&pid) {
            f(e);
        }
    }
}

/// The front end of one agent target: a headless watcher plus the node budget and evidence.
struct AgentFront<'a> {
    watcher: Watcher<'a>,
    shared: Arc<Shared>,
    pid: u32,
    facts: TargetFacts,
    written: HashSet<String>,
}

impl AgentFront<'_> {
    fn publish(&mut self, session: &mut Session<'_>) {
        let snap = Arc::new(self.watcher.snapshot(session));
        if let Some(ev) = &self.shared.evidence {
            for g in &snap.report.leaks {
                if g.severity.is_some_and(|s| s >= Severity::L3)
                    && self.written.insert(g.id.clone())
                {
                    match ev.write(&snap, g, &self.facts) {
                        Ok(dir) => eprintln!(
                            "sfgi: PID {} group {} reached {}: evidence in {}",
                            self.pid,
                            g.id,
                            g.severity.map(|s| s.as_str()).unwrap_or("?"),
                            dir.display()
                        ),
                        Err(e) => eprintln!("sfgi: PID {}: evidence for {}: {e:#}", self.pid, g.id),
                    }
                }
            }
        }
        let state = match snap.report.stats.budget.as_ref().map(|b| b.mode) {
            Some(Mode::InventoryOnly) => "inventory-only",
            _ => "tracing",
        };
        self.shared.update(self.pid, |e| {
            e.view.state = state;
            e.snapshot = Some(snap);
        });
    }
}

impl FrontEnd for AgentFront<'_> {
    fn after_pass(&mut self, session: &mut Session<'_>, refresh_now: bool) -> Option<Stop> {
        if let Some(stop) = self.watcher.target_gone(session) {
            return Some(stop);
        }
        // The node-wide budget: report this target's demand, take its share. Only when the
        // share moves by more than 10 %: every change is a new limit for the next window, and
        // small jitter must not make targets flap between modes.
        let b = session.budget_mut();
        let degraded = b.mode() >= Mode::ParksOnly;
        let share = lock(&self.shared.budget).report(
            u64::from(self.pid),
            b.last_rate(),
            degraded,
            Instant::now(),
        );
        let old = b.max_rate();
        if old == 0 || share.abs_diff(old) * 10 > old {
            b.set_max_rate(share);
        }
        if self.watcher.refresh_due(refresh_now) {
            self.publish(session);
        }
        None
    }

    fn scanned(&mut self, result: &ScanResult) {
        self.watcher.record_scan(result);
    }

    fn trigger(
        &mut self,
        session: &mut Session<'_>,
        first: TriggerRequest,
        rest: &mut mpsc::Receiver<TriggerRequest>,
    ) -> bool {
        self.watcher.serve_triggers(session, first, rest)
    }
}

/// A target's thread, as the supervisor holds it.
struct Running {
    start_time: u64,
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
    settings: config::Effective,
}

/// Traces one target until stopped or it exits (its own thread, its own runtime).
fn target_thread(
    shared: Arc<Shared>,
    opts: WatchOptions,
    view: TargetView,
    stop: watch::Receiver<bool>,
) {
    let pid = view.target.pid;
    let fail = |why: String| {
        eprintln!("sfgi: PID {pid} ({}): {why}", view.target.exe);
        shared.update(pid, |e| {
            e.view.state = "failed";
            e.view.reason = Some(why);
        });
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("starting a runtime: {e}")),
    };
    rt.block_on(async {
        let target = match open_target_with(pid, Some(&shared.binaries)) {
            Ok(t) => t,
            Err(e) => return fail(format!("{e:#}")),
        };
        let mut session = match Session::start(&target, &opts.attach) {
            Ok(s) => s,
            Err(e) => return fail(format!("{e:#}")),
        };
        eprintln!(
            "sfgi: attached to PID {pid} ({}, {}{})",
            view.target.exe,
            view.target.go_version,
            view.target
                .container
                .as_deref()
                .map(|c| format!(", container {}", &c[..c.len().min(12)]))
                .unwrap_or_default()
        );
        session.budget_mut().skip_parks_only(true);
        // Reading the binary and the first inventory leave large freed buffers behind; give
        // them back (20 targets' leftovers would otherwise stay resident).
        release_free_memory();
        let labels = view.labels();
        let scans = shared.scans.get_or_create(&labels).clone();
        if session.engine.health.inventories > 0 {
            scans.observe(session.engine.health.inventory_ms / 1e3);
        }
        let (trig_tx, mut trig_rx) = mpsc::channel::<TriggerRequest>(64);
        let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        shared.update(pid, |e| {
            e.trigger = Some(trig_tx);
            e.view.attached_since = Some(since);
        });
        let facts = view.target.clone();
        let mut front = AgentFront {
            watcher: Watcher::headless(&opts, &session, scans),
            shared: Arc::clone(&shared),
            pid,
            facts,
            written: HashSet::new(),
        };
        front.publish(&mut session);
        let mut signals = Signals::from_stop(stop);
        let pace = Pace {
            poll: opts.attach.poll_interval,
            deadline: None,
        };
        let ended = drive(
            &mut session,
            &mut signals,
            pace,
            Some(&mut trig_rx),
            &mut front,
        )
        .await;
        drop(trig_rx);
        drop(front);
        drop(session); // detaches the probes
        lock(&shared.budget).remove(u64::from(pid));
        shared.scans.remove(&labels);
        match ended {
            Stop::Signal => eprintln!("sfgi: detached from PID {pid}"),
            _ => eprintln!("sfgi: PID {pid} exited; detached"),
        }
    });
}

/// Returns freed heap memory to the system (glibc keeps it otherwise).
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The supervisor's view of the node.
struct Supervisor {
    opts: AgentOptions,
    shared: Arc<Shared>,
    scanner: Scanner,
    config: Option<Watched>,
    running: HashMap<u32, Running>,
    /// Threads told to stop, not yet finished.
    stopping: Vec<std::thread::JoinHandle<()>>,
    /// (pid, start time) that failed: not retried while the process lives.
    failed: HashSet<(u32, u64)>,
}

impl Supervisor {
    fn config(&self) -> config::Config {
        self.config
            .as_ref()
            .map(|w| w.config.clone())
            .unwrap_or_default()
    }

    fn stop(&mut self, pid: u32) {
        if let Some(r) = self.running.remove(&pid) {
            let _ = r.stop.send(true);
            self.stopping.push(r.thread);
        }
    }

    /// One discovery pass.
    fn tick(&mut self) {
        if let Some(w) = &mut self.config {
            match w.reload() {
                Ok(true) => eprintln!("sfgi: config reloaded"),
                Ok(false) => {}
                Err(e) => eprintln!("sfgi: config not reloaded, keeping the old one: {e:#}"),
            }
        }
        let cfg = self.config();
        let pods = PodDirectory::read(&self.opts.pods_dir, &self.opts.containers_dir);
        let procs = self.scanner.scan();
        let live: HashMap<u32, &discover::GoProcess> = procs.iter().map(|p| (p.pid, p)).collect();
        self.stopping.retain(|t| !t.is_finished());
        self.failed
            .retain(|(pid, st)| live.get(pid).is_some_and(|p| p.start_time == *st));
        // Finished threads (exited targets, failures).
        let done: Vec<u32> = self
            .running
            .iter()
            .filter(|(_, r)| r.thread.is_finished())
            .map(|(&p, _)| p)
            .collect();
        for pid in done {
            if let Some(r) = self.running.remove(&pid) {
                let _ = r.thread.join();
                let failed = lock(&self.shared.targets)
                    .get(&pid)
                    .is_some_and(|e| e.view.state == "failed");
                // A session that ended while its process still runs (a panic in it, say) is
                // not restarted in a loop: it is listed as failed until the process goes.
                let still_there = live.get(&pid).is_some_and(|p| p.start_time == r.start_time);
                if still_there && !failed {
                    self.shared.update(pid, |e| {
                        e.view.state = "failed";
                        e.view.reason = Some("the session ended unexpectedly".into());
                    });
                }
                if failed || still_there {
                    self.failed.insert((pid, r.start_time));
                } else {
                    lock(&self.shared.targets).remove(&pid);
                }
            }
        }
        let mut table: Vec<TargetView> = Vec::new();
        let mut refused = Vec::new();
        for p in &procs {
            let placement = discover::placement(p.pid);
            let (namespace, pod) = placement
                .pod_uid
                .as_deref()
                .and_then(|u| pods.lookup(u))
                .map(|(n, p)| (Some(n.to_string()), Some(p.to_string())))
                .unwrap_or((None, None));
            let view = TargetView {
                target: TargetFacts {
                    pid: p.pid,
                    ns_pid: discover::ns_pid(p.pid),
                    exe: p.exe.clone(),
                    go_version: p.go_version.clone(),
                    container_name: placement
                        .container
                        .as_deref()
                        .and_then(|c| pods.container_name(c))
                        .map(str::to_string),
                    container: placement.container,
                    pod_uid: placement.pod_uid,
                    pod,
                    namespace,
                },
                state: "tracing",
                reason: None,
                attached_since: None,
                cgroup: placement.cgroup,
            };
            let facts = view.facts();
            if !cfg.selects(&facts) {
                continue;
            }
            table.push(view);
        }
        // Let go of targets that exited, were exec'd over, or are no longer selected, and of
        // those whose settings changed (they are attached again with the new ones below).
        let wanted: HashMap<u32, &TargetView> = table.iter().map(|v| (v.target.pid, v)).collect();
        let stale: Vec<u32> = self
            .running
            .iter()
            .filter(|(pid, r)| {
                let Some(v) = wanted.get(pid) else {
                    return true;
                };
                live.get(pid).is_none_or(|p| p.start_time != r.start_time)
                    || cfg.effective(
                        &v.facts(),
                        &self.opts.watch.attach.judge,
                        &self.opts.watch.attach.rules,
                    ) != r.settings
            })
            .map(|(&p, _)| p)
            .collect();
        for pid in stale {
            self.stop(pid);
            lock(&self.shared.targets).remove(&pid);
        }
        {
            let mut t = lock(&self.shared.targets);
            t.retain(|pid, e| {
                self.running.contains_key(pid)
                    || (e.view.state == "failed"
                        && wanted.contains_key(pid)
                        && e.view
                            .reason
                            .as_deref()
                            .is_none_or(|r| !r.starts_with("refused")))
            });
        }
        for view in table {
            let pid = view.target.pid;
            let Some(p) = live.get(&pid) else { continue };
            if self.running.contains_key(&pid) {
                // Pod names may appear after the target (the kubelet makes the directory).
                self.shared.update(pid, |e| {
                    e.view.target.pod.clone_from(&view.target.pod);
                    e.view.target.namespace.clone_from(&view.target.namespace);
                });
                continue;
            }
            if self.failed.contains(&(pid, p.start_time)) {
                continue;
            }
            if self.running.len() >= self.opts.max_targets {
                let mut v = view;
                v.state = "failed";
                v.reason = Some(format!(
                    "refused: --max-targets {} reached",
                    self.opts.max_targets
                ));
                refused.push(v);
                continue;
            }
            self.start(view, p.start_time, &cfg);
        }
        let mut t = lock(&self.shared.targets);
        for v in refused {
            t.insert(
                v.target.pid,
                Entry {
                    view: v,
                    snapshot: None,
                    trigger: None,
                },
            );
        }
    }

    fn start(&mut self, view: TargetView, start_time: u64, cfg: &config::Config) {
        let pid = view.target.pid;
        let settings = cfg.effective(
            &view.facts(),
            &self.opts.watch.attach.judge,
            &self.opts.watch.attach.rules,
        );
        let mut opts = self.opts.watch.clone();
        opts.attach.pid = pid;
        opts.attach.judge = settings.judge.clone();
        opts.attach.rules = settings.rules.clone();
        opts.attach.rescan = opts.rescan;
        opts.attach.go_symbols_only = true;
        opts.attach.duration = None;
        opts.attach.poll_interval = opts.attach.poll_interval.min(opts.attach.interval);
        // The node budget sets the real share at the first pass.
        opts.attach.max_event_rate = lock(&self.shared.budget).share_of(u64::from(pid));
        let (stop_tx, stop_rx) = watch::channel(false);
        lock(&self.shared.targets).insert(
            pid,
            Entry {
                view: view.clone(),
                snapshot: None,
                trigger: None,
            },
        );
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name(format!("sfgi-target-{pid}"))
            .spawn(move || target_thread(shared, opts, view, stop_rx));
        match spawned {
            Ok(thread) => {
                self.running.insert(
                    pid,
                    Running {
                        start_time,
                        stop: stop_tx,
                        thread,
                        settings,
                    },
                );
            }
            Err(e) => {
                self.shared.update(pid, |en| {
                    en.view.state = "failed";
                    en.view.reason = Some(format!("starting a thread: {e}"));
                });
                self.failed.insert((pid, start_time));
            }
        }
    }
}

/// Runs the agent until SIGINT/SIGTERM; every probe is detached before it returns.
pub async fn run(opts: AgentOptions) -> Result<()> {
    let mut signals = Signals::new()?;
    let addr = crate::serve::parse_listen(&opts.listen)?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    let config = match &opts.config {
        Some(p) => Some(Watched::open(p)?),
        None => None,
    };
    let evidence = match &opts.evidence {
        Some(e) => Some(Evidence::new(e.clone())?),
        None => None,
    };
    let shared = Arc::new(Shared {
        targets: Mutex::new(BTreeMap::new()),
        scans: Family::new_with_constructor(crate::watch::scan_histogram as fn() -> Histogram),
        budget: Mutex::new(NodeBudget::new(opts.watch.attach.max_event_rate)),
        evidence,
        token: opts.token.clone(),
        binaries: Default::default(),
    });
    let bound = listener.local_addr().context("reading the bound address")?;
    if !bound.ip().is_loopback() && opts.token.is_none() {
        eprintln!(
            "sfgi: warning: serving goroutine stacks on {bound} (not loopback) without --token"
        );
    }
    let server = crate::serve::start_router(listener, http::router(Arc::clone(&shared)))?;
    eprintln!("sfgi: agent serving on http://{bound}; Ctrl-C to stop");
    let mut sup = Supervisor {
        opts,
        shared,
        scanner: Scanner::new(),
        config,
        running: HashMap::new(),
        stopping: Vec::new(),
        failed: HashSet::new(),
    };
    let mut tick = tokio::time::interval(DISCOVER_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = signals.recv() => break,
            _ = tick.tick() => {}
        }
        sup.tick();
    }
    eprintln!(
        "sfgi: stopping; detaching from {} targets",
        sup.running.len()
    );
    server.stop(Duration::from_secs(2));
    let pids: Vec<u32> = sup.running.keys().copied().collect();
    for pid in pids {
        sup.stop(pid);
    }
    for t in sup.stopping.drain(..) {
        let _ = t.join();
    }
    eprintln!("sfgi: agent stopped");
    Ok(())
}
