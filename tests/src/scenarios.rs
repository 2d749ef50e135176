//! Detection-accuracy evaluation: the scenario corpus (`tests/scenarios.toml`) and Go's own
//! goroutine-leak test programs run with `sfgi watch` attached from outside, every verdict
//! polled from `GET /sfgi/leaks`, and the verdicts scored against what each program is known to
//! leak. Used by the `sfgi-eval` binary (`cargo xtask eval`) and by `tests/eval_smoke.rs`.
//!
//! One run = one target process + one `sfgi watch --listen 127.0.0.1:0 --interval 100ms
//! --threshold T` on it. The target is started with `-delay D` so the probes are in place before
//! its first leak; the leak starts at `ready + D` (the "leak start" every time is measured from).
//! `/sfgi/leaks` is polled every 100 ms for a fixed window; then the target gets SIGTERM and must
//! print `ok` and exit 0 (unharmed), and `sfgi watch` must then end on its own with status 0.
//! With [`Source::Pprof`] the target is the `sfgipprof` build (it also serves net/http/pprof)
//! and the watch is `sfgi watch --pprof http://ADDR --listen 127.0.0.1:0 ...` instead: the same
//! window, the same scoring, plus the polls' cost from its `/metrics`.
//!
//! Scoring, per run, of every group that ever appeared in `/sfgi/leaks`:
//! - `tp`: it is one of the scenario's `role = "leak"` groups (blocking function found in
//!   `blocked_at` or as a frame of `stack_trace`, and `created_by` names the manifest's creator);
//!   the one whose function is the scenario's `blocking_function` is the *expected* group, whose
//!   report times and pattern are measured;
//! - `helper`: one of the scenario's documented `role = "stable"` groups (leak scenarios only:
//!   e.g. the two RW-deadlock setup goroutines of `rwmutex-rlock`, which do block forever);
//! - `fp`: anything else, and every leak group of a healthy scenario.
use crate::{contains_func, sfgi_bin, signal, Captured, Target};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The manifest.

/// `tests/scenarios.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// Every scenario, in file order.
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

/// One scenario of the manifest (only the fields the evaluation uses).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Scenario {
    /// Command-line name.
    pub name: String,
    /// `leak` or `healthy`.
    pub kind: String,
    /// Pattern ID the classifier should give the expected leak group.
    #[serde(default)]
    pub expected_pattern: Option<String>,
    /// Function the expected group blocks in.
    pub blocking_function: String,
    /// Function whose `go` statement creates it.
    pub creating_function: String,
    /// Every documented group.
    #[serde(default, rename = "group")]
    pub groups: Vec<ManifestGroup>,
}

/// One documented group of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ManifestGroup {
    /// `leak` or `stable`.
    pub role: String,
    /// Function it blocks in.
    pub function: String,
    /// Creating function.
    pub created_by: String,
}

impl Scenario {
    /// Whether it is a leak scenario.
    pub fn is_leak(&self) -> bool {
        self.kind == "leak"
    }
}

/// Reads `tests/scenarios.toml`.
pub fn manifest() -> Result<Manifest> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Builds `tests/programs/scenarios` with Go `version`.
pub fn build_scenarios(version: &str, stripped: bool) -> Result<PathBuf> {
    build_scenarios_for(version, stripped, Source::Ebpf)
}

/// Builds `tests/programs/scenarios` with Go `version` for `source`: with [`Source::Pprof`],
/// with the `sfgipprof` tag (`pprof.go`: every scenario also serves net/http/pprof and prints
/// `pprof http://ADDR` before its ready line), as `scenarios[-stripped]-pprof`.
pub fn build_scenarios_for(version: &str, stripped: bool, source: Source) -> Result<PathBuf> {
    let (extra_flags, tag): (&[&str], &str) = match source {
        Source::Ebpf => (&[], ""),
        Source::Pprof => (&["-tags", "sfgipprof"], "pprof"),
    };
    sfgi_gotool::build(
        &crate::program_dir("scenarios"),
        &sfgi_gotool::Build {
            version,
            stripped,
            extra_flags,
            tag,
            ..Default::default()
        },
    )
}

/// Where `sfgi watch` gets the goroutines of a run's target from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// eBPF probes and memory reads (`sfgi watch --pid`, root).
    #[default]
    Ebpf,
    /// The target's net/http/pprof endpoint, polled (`sfgi watch --pprof`, default pause
    /// budget).
    Pprof,
}

impl Source {
    /// `ebpf` or `pprof`.
    pub fn parse(s: &str) -> Result<Source, String> {
        match s {
            "ebpf" => Ok(Source::Ebpf),
            "pprof" => Ok(Source::Pprof),
            o => Err(format!("--source is ebpf or pprof, not {o:?}")),
        }
    }

    /// `ebpf` or `pprof`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ebpf => "ebpf",
            Source::Pprof => "pprof",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and results.

/// How runs are made and how long they are watched.
#[derive(Clone, Debug, Serialize)]
pub struct EvalConfig {
    /// `sfgi watch --threshold`.
    #[serde(with = "secs")]
    pub threshold: Duration,
    /// `sfgi watch --interval`.
    #[serde(with = "secs")]
    pub interval: Duration,
    /// How often `/sfgi/leaks` is polled.
    #[serde(with = "secs")]
    pub poll: Duration,
    /// `-delay` given to leak scenarios (SFGI attaches meanwhile).
    #[serde(with = "secs")]
    pub delay: Duration,
    /// How long after the leak start a leak scenario is watched (slow-leak gets more, see
    /// [`EvalConfig::window_for`]).
    #[serde(with = "secs")]
    pub leak_window: Duration,
    /// How long after attach a healthy scenario is watched.
    #[serde(with = "secs")]
    pub healthy_window: Duration,
    /// Where `sfgi watch` reads the target from.
    pub source: Source,
    /// With [`Source::Pprof`]: `sfgi watch --pause-budget` (`None`: sfgi's default, 1 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_budget: Option<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            threshold: Duration::from_secs(2),
            interval: Duration::from_millis(100),
            poll: Duration::from_millis(100),
            delay: Duration::from_millis(1500),
            leak_window: Duration::from_secs(7),
            healthy_window: Duration::from_secs(12),
            source: Source::Ebpf,
            pause_budget: None,
        }
    }
}

impl EvalConfig {
    /// Watch window of `sc` after the leak start (leak) or after attach (healthy).
    pub fn window_for(&self, sc: &Scenario) -> Duration {
        if !sc.is_leak() {
            return self.healthy_window;
        }
        match sc.name.as_str() {
            // One leak every 3 s: three members older than T need 6 s + T.
            "slow-leak" => self
                .leak_window
                .max(self.threshold + Duration::from_secs(10)),
            _ => self
                .leak_window
                .max(self.threshold + Duration::from_secs(3)),
        }
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// One run to make.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The scenario.
    pub scenario: Scenario,
    /// Go version the target was built with.
    pub go: String,
    /// Whether the target is stripped.
    pub stripped: bool,
    /// Run number (healthy scenarios run several times).
    pub run: usize,
    /// The target binary.
    pub bin: PathBuf,
}

/// One group seen in `/sfgi/leaks` during a run.
#[derive(Clone, Debug, Serialize)]
pub struct SeenGroup {
    /// Group id.
    pub id: String,
    /// `tp`, `helper` or `fp`.
    pub class: String,
    /// Whether it is the scenario's expected group.
    pub expected: bool,
    /// Wait reason.
    pub wait_reason: String,
    /// Blocking site.
    pub blocked_at: String,
    /// Creation site.
    pub created_by: String,
    /// Pattern at its last report.
    pub pattern: String,
    /// Every pattern it was given.
    pub patterns: Vec<String>,
    /// Worst status it reached (`proven` < `growing` < `suspect` in severity order).
    pub worst_status: String,
    /// Highest severity it reached.
    pub max_severity: Option<String>,
    /// Most members.
    pub max_count: u64,
    /// First report, seconds after the leak start.
    pub first_report_s: f64,
    /// First `growing`/`proven`, seconds after the leak start.
    pub first_growing_s: Option<f64>,
    /// Judge's reason at its last report.
    pub reason: String,
    /// Its last leak object (kept for `fp` groups and the expected group, as evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<Value>,
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// `leak` or `healthy`.
    pub kind: String,
    /// Go version.
    pub go: String,
    /// Stripped target.
    pub stripped: bool,
    /// Run number.
    pub run: usize,
    /// Expected pattern (leak scenarios).
    pub expected_pattern: Option<String>,
    /// Expected blocking function.
    pub expected_function: String,
    /// Whether the expected group was reported.
    pub detected: bool,
    /// Worst status of the expected group.
    pub status: Option<String>,
    /// Highest severity of the expected group.
    pub severity: Option<String>,
    /// Pattern of the expected group (last report).
    pub pattern: Option<String>,
    /// Whether `pattern == expected_pattern`.
    pub pattern_ok: Option<bool>,
    /// First report of the expected group, s after the leak start.
    pub first_report_s: Option<f64>,
    /// First `growing` of the expected group, s after the leak start.
    pub first_growing_s: Option<f64>,
    /// `first_growing_s - T`: how long after the threshold was crossed growth was reported.
    pub past_threshold_s: Option<f64>,
    /// When `sfgi watch` was serving, s after the leak start (negative: before).
    pub attached_s: f64,
    /// Polls of `/sfgi/leaks` made / failed.
    pub polls: u64,
    /// Failed polls.
    pub poll_errors: u64,
    /// Every leak group seen.
    pub groups: Vec<SeenGroup>,
    /// Target printed `ok` and exited 0 after SIGTERM.
    pub target_ok: bool,
    /// Target exit status as text.
    pub target_exit: String,
    /// `sfgi watch` ended by itself with status 0 after the target exited.
    pub watch_ok: bool,
    /// `sfgi watch` exit status as text.
    pub watch_exit: String,
    /// Warnings `sfgi watch` printed (missing probes, drops...).
    pub watch_warnings: Vec<String>,
    /// Seconds the run took.
    pub wall_s: f64,
    /// What went wrong, if the run itself failed.
    pub error: Option<String>,
    /// For a miss: `/sfgi/groups` at the end (every group, with its status), as evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_at_end: Option<Value>,
    /// With `--source pprof`: what the polls of the target's endpoint cost, from the watch's
    /// `/metrics` at the end of the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pprof: Option<PprofPolls>,
}

/// The polls of one `sfgi watch --pprof` run (its `sfgi_pprof_*` and poll-duration metrics).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PprofPolls {
    /// Polls answered.
    pub polls: u64,
    /// Polls that failed.
    pub failed: u64,
    /// Mean poll duration, ms (an upper bound of the target's pause per poll).
    pub mean_ms: f64,
    /// Longest poll, ms.
    pub longest_ms: f64,
    /// Time between polls the pause budget chose last, s.
    pub interval_s: f64,
}

impl PprofPolls {
    /// Reads them from a `/metrics` text.
    pub fn from_metrics(text: &str) -> Option<PprofPolls> {
        let value = |name: &str| crate::metric_sum(text, name, &[]);
        let count = value("sfgi_inventory_scan_seconds_count")?;
        let sum = value("sfgi_inventory_scan_seconds_sum")?;
        Some(PprofPolls {
            polls: value("sfgi_pprof_polls_total")? as u64,
            failed: value("sfgi_pprof_poll_failures_total")? as u64,
            mean_ms: if count > 0.0 {
                round3(sum / count * 1e3)
            } else {
                0.0
            },
            longest_ms: round3(value("sfgi_pprof_longest_poll_seconds")? * 1e3),
            interval_s: value("sfgi_pprof_poll_interval_seconds")?,
        })
    }
}

impl RunResult {
    /// Groups of class `class`.
    pub fn of_class<'a>(&'a self, class: &'a str) -> impl Iterator<Item = &'a SeenGroup> + 'a {
        self.groups.iter().filter(move |g| g.class == class)
    }
}

// ---------------------------------------------------------------------------------------------
// A running `sfgi watch`.

/// `sfgi watch --pid P --listen 127.0.0.1:0 ...`.
pub struct WatchProc {
    child: Child,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Where it serves.
    pub addr: SocketAddr,
}

impl WatchProc {
    /// Starts it and waits (15 s) for `sfgi: serving on http://ADDR`.
    pub fn start(pid: u32, extra: &[String]) -> Result<WatchProc> {
        Self::start_source(&["--pid".to_string(), pid.to_string()], extra)
    }

    /// `sfgi watch SOURCE... --listen 127.0.0.1:0 EXTRA...` (`--pid P` or `--pprof URL`);
    /// waits (15 s) for `sfgi: serving on http://ADDR`.
    pub fn start_source(source: &[String], extra: &[String]) -> Result<WatchProc> {
        let mut child = Command::new(sfgi_bin())
            .arg("watch")
            .args(source)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sfgi watch")?;
        let (stdout, h1) = Captured::spawn_reader(child.stdout.take().context("stdout")?);
        let (stderr, h2) = Captured::spawn_reader(child.stderr.take().context("stderr")?);
        let addr = stderr.wait_for(Duration::from_secs(15), |s| {
            s.lines()
                .find_map(|l| l.strip_prefix("sfgi: serving on http://"))
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "sfgi watch did not print `sfgi: serving on` within 15 s; stderr:\n{}",
                stderr.get()
            );
        };
        Ok(WatchProc {
            child,
            stdout,
            stderr,
            readers: vec![h1, h2],
            addr,
        })
    }

    /// `GET path` as JSON.
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let body = http_get(self.addr, path)?;
        serde_json::from_str(&body).with_context(|| format!("GET {path}: bad JSON"))
    }

    /// `GET path` as text (`/metrics`).
    pub fn get_text(&self, path: &str) -> Result<String> {
        http_get(self.addr, path)
    }

    /// `GET /sfgi/leaks`: the leak groups now (none when the request fails).
    pub fn leaks(&self) -> Vec<Value> {
        self.get_json("/sfgi/leaks")
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Lines of stderr that start with `sfgi: warning`.
    pub fn warnings(&self) -> Vec<String> {
        self.stderr
            .get()
            .lines()
            .filter(|l| l.starts_with("sfgi: warning"))
            .map(str::to_string)
            .collect()
    }

    /// Waits up to `timeout` for it to end by itself; then SIGTERMs (and at last kills) it.
    /// Returns (ended by itself with status 0, status text).
    pub fn wait_end(&mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                for h in self.readers.drain(..) {
                    let _ = h.join();
                }
                return (st.success(), st.to_string());
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return (false, format!("{st} (needed SIGTERM)"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (false, "killed (did not end)".to_string())
    }

    /// Everything it printed on stdout.
    pub fn stdout(&self) -> String {
        self.stdout.get()
    }

    /// Everything it printed on stderr.
    pub fn stderr(&self) -> String {
        self.stderr.get()
    }
}

impl Drop for WatchProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET` (HTTP/1.1, `Connection: close`); the body (chunked or not) if the status is 200.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {path}: no header end"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("GET {path}: status {status}: {body}");
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        return Ok(out);
    }
    Ok(body.to_string())
}

// ---------------------------------------------------------------------------------------------
// Matching reported groups to the manifest.

/// Function names of the frames of a Go-dump-style stack (`func(...)` lines).
pub fn stack_functions(stack: &str) -> Vec<&str> {
    stack
        .lines()
        .filter(|l| !l.starts_with('\t') && !l.trim().is_empty())
        .map(|l| l.trim().strip_suffix("(...)").unwrap_or(l.trim()))
        .collect()
}

/// Whether leak object `g` is manifest group `m` (blocking function + creator).
pub fn matches_group(g: &Value, function: &str, created_by: &str) -> bool {
    let blocked = g["blocked_at"].as_str().unwrap_or("");
    let creator = g["created_by"].as_str().unwrap_or("");
    let stack = g["stack_trace"].as_str().unwrap_or("");
    let in_stack = contains_func(blocked, function) || stack_functions(stack).contains(&function);
    in_stack && contains_func(creator, created_by)
}

/// Classifies leak object `g` in scenario `sc`: (`tp`/`helper`/`fp`, is the expected group).
pub fn classify(sc: &Scenario, g: &Value) -> (&'static str, bool) {
    if !sc.is_leak() {
        return ("fp", false);
    }
    if matches_group(g, &sc.blocking_function, &sc.creating_function) {
        return ("tp", true);
    }
    for m in &sc.groups {
        if matches_group(g, &m.function, &m.created_by) {
            return (if m.role == "leak" { "tp" } else { "helper" }, false);
        }
    }
    ("fp", false)
}

/// Rank of a status: lower is worse (`proven` 0, `growing` 1, `suspect` 2, other 3).
pub fn status_rank(s: &str) -> u8 {
    match s {
        "proven" => 0,
        "growing" => 1,
        "suspect" => 2,
        _ => 3,
    }
}

// ---------------------------------------------------------------------------------------------
// One run.

/// Makes one run (never panics: failures land in `error`).
pub fn run_one(spec: &RunSpec, cfg: &EvalConfig) -> RunResult {
    let started = Instant::now();
    let sc = &spec.scenario;
    let mut res = RunResult {
        scenario: sc.name.clone(),
        kind: sc.kind.clone(),
        go: spec.go.clone(),
        stripped: spec.stripped,
        run: spec.run,
        expected_pattern: sc.expected_pattern.clone(),
        expected_function: sc.blocking_function.clone(),
        detected: false,
        status: None,
        severity: None,
        pattern: None,
        pattern_ok: None,
        first_report_s: None,
        first_growing_s: None,
        past_threshold_s: None,
        attached_s: 0.0,
        polls: 0,
        poll_errors: 0,
        groups: Vec::new(),
        target_ok: false,
        target_exit: String::new(),
        watch_ok: false,
        watch_exit: String::new(),
        watch_warnings: Vec::new(),
        wall_s: 0.0,
        error: None,
        groups_at_end: None,
        pprof: None,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_inner(spec, cfg, &mut res)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => res.error = Some(format!("{e:#}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            res.error = Some(msg);
        }
    }
    res.wall_s = round3(started.elapsed().as_secs_f64());
    res
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn run_inner(spec: &RunSpec, cfg: &EvalConfig, res: &mut RunResult) -> Result<()> {
    let sc = &spec.scenario;
    let delay = if sc.is_leak() {
        cfg.delay
    } else {
        Duration::ZERO
    };
    let delay_s = format!("{}ms", delay.as_millis());
    let mut target = Target::start(&spec.bin, &[&sc.name, "-delay", &delay_s]);
    // Target::start returns once `ready` was printed: the leak starts `delay` later.
    let leak_start = Instant::now() + delay;
    let since = |t: Instant| -> f64 {
        if t >= leak_start {
            (t - leak_start).as_secs_f64()
        } else {
            -(leak_start - t).as_secs_f64()
        }
    };
    let extra = [
        "--interval".to_string(),
        format!("{}ms", cfg.interval.as_millis()),
        "--threshold".to_string(),
        format!("{}ms", cfg.threshold.as_millis()),
    ];
    let source = match cfg.source {
        Source::Ebpf => vec!["--pid".to_string(), target.pid().to_string()],
        Source::Pprof => vec![
            "--pprof".to_string(),
            crate::pprof_base(&target)
                .context("the sfgipprof build printed no `pprof http://ADDR` line")?,
        ],
    };
    let mut extra = extra.to_vec();
    if let (Source::Pprof, Some(b)) = (cfg.source, &cfg.pause_budget) {
        extra.extend(["--pause-budget".to_string(), b.clone()]);
    }
    let mut watch = WatchProc::start_source(&source, &extra)?;
    let attached = Instant::now();
    res.attached_s = round3(since(attached));
    let end = if sc.is_leak() {
        leak_start.max(attached) + cfg.window_for(sc)
    } else {
        attached + cfg.window_for(sc)
    };
    let mut seen: HashMap<String, SeenGroup> = HashMap::new();
    let mut next = Instant::now();
    while Instant::now() < end {
        let now = Instant::now();
        res.polls += 1;
        match watch.get_json("/sfgi/leaks") {
            Ok(Value::Array(leaks)) => {
                let t = round3(since(now));
                for g in &leaks {
                    note_group(sc, g, t, &mut seen);
                }
            }
            Ok(other) => {
                res.poll_errors += 1;
                res.error = Some(format!("/sfgi/leaks is not an array: {other}"));
            }
            Err(_) => res.poll_errors += 1,
        }
        next += cfg.poll;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let mut groups: Vec<SeenGroup> = seen.into_values().collect();
    groups.sort_by(|a, b| a.first_report_s.total_cmp(&b.first_report_s));
    if let Some(e) = groups.iter().find(|g| g.expected) {
        res.detected = true;
        res.status = Some(e.worst_status.clone());
        res.severity = e.max_severity.clone();
        res.pattern = Some(e.pattern.clone());
        res.pattern_ok = sc.expected_pattern.as_ref().map(|p| *p == e.pattern);
        res.first_report_s = Some(e.first_report_s);
        res.first_growing_s = e.first_growing_s;
        res.past_threshold_s = e
            .first_growing_s
            .map(|t| round3(t - cfg.threshold.as_secs_f64()));
    }
    if sc.is_leak() && !res.detected {
        res.groups_at_end = watch.get_json("/sfgi/groups").ok();
    }
    for g in &mut groups {
        if g.class == "helper" || (g.class == "tp" && !g.expected) {
            g.last = None;
        }
    }
    res.groups = groups;
    res.watch_warnings = watch.warnings();
    if cfg.source == Source::Pprof {
        res.pprof = http_get(watch.addr, "/metrics")
            .ok()
            .and_then(|m| PprofPolls::from_metrics(&m));
    }

    let out = target.stop();
    let st = target.exit_status();
    res.target_ok = st.is_some_and(|s| s.success()) && out.lines().any(|l| l.trim() == "ok");
    res.target_exit = st.map(|s| s.to_string()).unwrap_or_default();
    if !res.target_ok {
        res.target_exit
            .push_str(&format!("; stderr: {}", tail(&target.stderr(), 400)));
    }
    let (ok, txt) = watch.wait_end(Duration::from_secs(10));
    res.watch_ok = ok;
    res.watch_exit = txt;
    let _ = watch.stdout();
    Ok(())
}

fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

fn note_group(sc: &Scenario, g: &Value, t: f64, seen: &mut HashMap<String, SeenGroup>) {
    let id = g["id"].as_str().unwrap_or("").to_string();
    let status = g["status"].as_str().unwrap_or("").to_string();
    let severity = g["severity"].as_str().map(str::to_string);
    let pattern = g["pattern"].as_str().unwrap_or("").to_string();
    let count = g["count"].as_u64().unwrap_or(0);
    let entry = seen.entry(id.clone()).or_insert_with(|| {
        let (class, expected) = classify(sc, g);
        SeenGroup {
            id,
            class: class.to_string(),
            expected,
            wait_reason: g["wait_reason"].as_str().unwrap_or("").to_string(),
            blocked_at: g["blocked_at"].as_str().unwrap_or("").to_string(),
            created_by: g["created_by"].as_str().unwrap_or("").to_string(),
            pattern: pattern.clone(),
            patterns: Vec::new(),
            worst_status: status.clone(),
            max_severity: None,
            max_count: 0,
            first_report_s: t,
            first_growing_s: None,
            reason: String::new(),
            last: None,
        }
    });
    if status_rank(&status) < status_rank(&entry.worst_status) {
        entry.worst_status = status.clone();
    }
    if severity > entry.max_severity {
        entry.max_severity = severity;
    }
    if !entry.patterns.contains(&pattern) {
        entry.patterns.push(pattern.clone());
    }
    entry.pattern = pattern;
    entry.max_count = entry.max_count.max(count);
    if entry.first_growing_s.is_none() && status_rank(&status) <= 1 {
        entry.first_growing_s = Some(t);
    }
    entry.reason = g["reason"].as_str().unwrap_or("").to_string();
    entry.last = Some(g.clone());
}

/// Runs `specs` with at most `jobs` at once, calling `done` after each (in completion order).
pub fn run_all(
    specs: Vec<RunSpec>,
    cfg: &EvalConfig,
    jobs: usize,
    done: &(dyn Fn(&RunResult) + Sync),
) -> Vec<RunResult> {
    let queue = Mutex::new(specs.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let next = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    if q.is_empty() {
                        None
                    } else {
                        Some(q.remove(0))
                    }
                };
                let Some((i, spec)) = next else { break };
                let r = run_one(&spec, cfg);
                done(&r);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, r));
            });
        }
    });
    let mut r = results.into_inner().unwrap_or_else(|e| e.into_inner());
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, r)| r).collect()
}

// ---------------------------------------------------------------------------------------------
// Totals.

/// Counts by status and severity.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlarmCounts {
    /// By worst status.
    pub by_status: BTreeMap<String, u64>,
    /// By highest severity.
    pub by_severity: BTreeMap<String, u64>,
}

impl AlarmCounts {
    fn add(&mut self, g: &SeenGroup) {
        *self.by_status.entry(g.worst_status.clone()).or_default() += 1;
        *self
            .by_severity
            .entry(g.max_severity.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
}

/// Totals over a set of runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Leak-scenario runs.
    pub leak_runs: u64,
    /// Leak runs whose expected group was reported (any leak status).
    pub detected: u64,
    /// Leak runs whose expected group reached `growing` (or `proven`).
    pub detected_growing: u64,
    /// `detected / leak_runs`.
    pub recall: f64,
    /// Reported groups that are leak groups of their scenario.
    pub tp_groups: u64,
    /// Reported groups that are not (incl. every group of a healthy run).
    pub fp_groups: u64,
    /// Documented stable helper groups reported in leak runs (not counted either way).
    pub helper_groups: u64,
    /// `tp / (tp + fp)`.
    pub precision: f64,
    /// Expected groups with an expected pattern.
    pub pattern_checked: u64,
    /// ... whose pattern matched.
    pub pattern_ok: u64,
    /// `pattern_ok / pattern_checked`.
    pub pattern_accuracy: f64,
    /// Median time from leak start to first report, s.
    pub median_detect_s: Option<f64>,
    /// Max time from leak start to first report, s.
    pub max_detect_s: Option<f64>,
    /// Median (first growing − threshold), s.
    pub median_past_threshold_s: Option<f64>,
    /// Max (first growing − threshold), s.
    pub max_past_threshold_s: Option<f64>,
    /// Healthy runs.
    pub healthy_runs: u64,
    /// Healthy runs with any leak group.
    pub healthy_runs_flagged: u64,
    /// Healthy runs with a `growing`/`proven` group or severity ≥ L2 (the goal: 0).
    pub healthy_runs_flagged_l2: u64,
    /// False alarms (fp groups), by status and severity.
    pub false_alarms: AlarmCounts,
    /// Runs whose target did not exit 0 with `ok`.
    pub targets_harmed: u64,
    /// Runs whose watch did not end by itself with 0.
    pub watch_bad_exit: u64,
    /// Runs that failed outright.
    pub run_errors: u64,
    /// `--source pprof`: runs with poll figures.
    pub pprof_runs: u64,
    /// Median over runs of the mean poll duration, ms.
    pub median_poll_ms: Option<f64>,
    /// Longest poll of any run, ms.
    pub max_poll_ms: Option<f64>,
    /// Median time between polls the pause budget chose (last of each run), s.
    pub median_poll_interval_s: Option<f64>,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        round3((v[n / 2 - 1] + v[n / 2]) / 2.0)
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        (a as f64 / b as f64 * 10_000.0).round() / 10_000.0
    }
}

/// Totals over `runs`.
pub fn totals<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Totals {
    let mut t = Totals::default();
    let mut detect = Vec::new();
    let mut past = Vec::new();
    let (mut poll_mean, mut poll_interval) = (Vec::new(), Vec::new());
    for r in runs {
        if let Some(p) = &r.pprof {
            t.pprof_runs += 1;
            poll_mean.push(p.mean_ms);
            poll_interval.push(p.interval_s);
            t.max_poll_ms = Some(t.max_poll_ms.unwrap_or(0.0).max(p.longest_ms));
        }
        if r.error.is_some() {
            t.run_errors += 1;
        }
        if !r.target_ok {
            t.targets_harmed += 1;
        }
        if !r.watch_ok {
            t.watch_bad_exit += 1;
        }
        for g in &r.groups {
            match g.class.as_str() {
                "tp" => t.tp_groups += 1,
                "helper" => t.helper_groups += 1,
                _ => {
                    t.fp_groups += 1;
                    t.false_alarms.add(g);
                }
            }
        }
        if r.kind == "leak" {
            t.leak_runs += 1;
            if r.detected {
                t.detected += 1;
                if let Some(x) = r.first_report_s {
                    detect.push(x);
                }
            }
            if r.first_growing_s.is_some() {
                t.detected_growing += 1;
            }
            if let Some(p) = r.past_threshold_s {
                past.push(p);
            }
            if let Some(ok) = r.pattern_ok {
                t.pattern_checked += 1;
                if ok {
                    t.pattern_ok += 1;
                }
            }
        } else {
            t.healthy_runs += 1;
            if !r.groups.is_empty() {
                t.healthy_runs_flagged += 1;
            }
            if r.groups.iter().any(|g| {
                status_rank(&g.worst_status) <= 1
                    || g.max_severity.as_deref().is_some_and(|s| s >= "L2")
            }) {
                t.healthy_runs_flagged_l2 += 1;
            }
        }
    }
    t.recall = ratio(t.detected, t.leak_runs);
    t.precision = ratio(t.tp_groups, t.tp_groups + t.fp_groups);
    t.pattern_accuracy = ratio(t.pattern_ok, t.pattern_checked);
    t.max_detect_s = detect.iter().copied().reduce(f64::max);
    t.median_detect_s = median(&mut detect);
    t.max_past_threshold_s = past.iter().copied().reduce(f64::max);
    t.median_past_threshold_s = median(&mut past);
    t.median_poll_ms = median(&mut poll_mean);
    t.median_poll_interval_s = median(&mut poll_interval);
    t
}

/// The variant label of a run: `1.27.3` or `1.21.13 stripped`.
pub fn variant(go: &str, stripped: bool) -> String {
    if stripped {
        format!("{go} stripped")
    } else {
        go.to_string()
    }
}

fn opt_s(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}s")).unwrap_or_else(|| "-".into())
}

/// One table row per run (Markdown).
pub fn runs_table(runs: &[RunResult]) -> String {
    let mut s = String::from(
        "| scenario | go | run | expected | reported status | pattern (expected → reported) | first report | growing past T | other leak groups | target unharmed |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let expected = if r.kind == "leak" { "leak" } else { "healthy" };
        let status = match (&r.status, &r.severity) {
            (Some(st), Some(sev)) => format!("{st} {sev}"),
            (Some(st), None) => st.clone(),
            _ if r.kind == "leak" => "**missed**".into(),
            _ => "-".into(),
        };
        let pattern = match (&r.expected_pattern, &r.pattern) {
            (Some(e), Some(p)) if e == p => format!("{e} ✓"),
            (Some(e), Some(p)) => format!("{e} → **{p}**"),
            (Some(e), None) => format!("{e} → -"),
            _ => "-".into(),
        };
        let others: Vec<String> = r
            .groups
            .iter()
            .filter(|g| !g.expected)
            .map(|g| {
                let f = g.blocked_at.split(" at ").next().unwrap_or(&g.blocked_at);
                let tag = match g.class.as_str() {
                    "fp" => "**FP**",
                    "helper" => "helper",
                    _ => "tp",
                };
                format!(
                    "{tag} {f} [{}] {}{}",
                    g.wait_reason,
                    g.worst_status,
                    g.max_severity
                        .as_deref()
                        .map(|s| format!(" {s}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let unharmed = if r.target_ok && r.watch_ok {
            "yes".to_string()
        } else if r.target_ok {
            format!("yes (watch: {})", r.watch_exit)
        } else {
            format!("**no** ({})", r.target_exit.replace('\n', " "))
        };
        let err = r
            .error
            .as_deref()
            .map(|e| format!(" — error: {}", tail(e, 160).replace(['\n', '|'], " ")))
            .unwrap_or_default();
        s.push_str(&format!(
            "| {} | {} | {} | {expected} | {status} | {pattern} | {} | {} | {} | {unharmed}{err} |\n",
            r.scenario,
            variant(&r.go, r.stripped),
            r.run,
            opt_s(r.first_report_s),
            opt_s(r.past_threshold_s),
            if others.is_empty() {
                "-".into()
            } else {
                others.join("<br>").replace('|', "\\|")
            },
        ));
    }
    s
}

/// Totals as a Markdown table (one column per label).
pub fn totals_table(cols: &[(String, Totals)]) -> String {
    let mut s = String::from("| metric |");
    for (l, _) in cols {
        s.push_str(&format!(" {l} |"));
    }
    s.push_str("\n|---|");
    for _ in cols {
        s.push_str("---|");
    }
    s.push('\n');
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    type Row = (&'static str, fn(&Totals, &dyn Fn(f64) -> String) -> String);
    let mut rows: Vec<Row> = vec![
        ("recall (expected leak group reported)", |t, p| {
            format!("{} ({}/{})", p(t.recall), t.detected, t.leak_runs)
        }),
        ("expected group reached growing/proven", |t, _| {
            format!("{}/{}", t.detected_growing, t.leak_runs)
        }),
        ("precision (leak groups)", |t, p| {
            format!(
                "{} ({} TP, {} FP, {} helper)",
                p(t.precision),
                t.tp_groups,
                t.fp_groups,
                t.helper_groups
            )
        }),
        ("pattern accuracy", |t, p| {
            format!(
                "{} ({}/{})",
                p(t.pattern_accuracy),
                t.pattern_ok,
                t.pattern_checked
            )
        }),
        ("time to first report: median / max", |t, _| {
            format!("{} / {}", opt_s(t.median_detect_s), opt_s(t.max_detect_s))
        }),
        ("growing reported past threshold: median / max", |t, _| {
            format!(
                "{} / {}",
                opt_s(t.median_past_threshold_s),
                opt_s(t.max_past_threshold_s)
            )
        }),
        ("healthy runs with any leak group", |t, _| {
            format!("{}/{}", t.healthy_runs_flagged, t.healthy_runs)
        }),
        ("healthy runs with growing/proven or ≥ L2", |t, _| {
            format!("{}/{}", t.healthy_runs_flagged_l2, t.healthy_runs)
        }),
        ("false alarms by status", |t, _| {
            fmt_counts(&t.false_alarms.by_status)
        }),
        ("false alarms by severity", |t, _| {
            fmt_counts(&t.false_alarms.by_severity)
        }),
        ("targets harmed", |t, _| t.targets_harmed.to_string()),
        ("watch not ending cleanly", |t, _| {
            t.watch_bad_exit.to_string()
        }),
        ("runs failed", |t, _| t.run_errors.to_string()),
    ];
    if cols.iter().any(|(_, t)| t.pprof_runs > 0) {
        rows.push((
            "pprof poll (upper bound of the target's pause): median of run means / longest",
            |t, _| {
                let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1} ms"));
                format!("{} / {}", ms(t.median_poll_ms), ms(t.max_poll_ms))
            },
        ));
        rows.push(("time between polls (pause budget): median", |t, _| {
            opt_s(t.median_poll_interval_s)
        }));
    }
    for (name, f) in rows {
        s.push_str(&format!("| {name} |"));
        for (_, t) in cols {
            s.push_str(&format!(" {} |", f(t, &pct)));
        }
        s.push('\n');
    }
    s
}

fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Go's own goroutine-leak test programs ($GOROOT/src/runtime/testdata/testgoroutineleakprofile).

/// One test case of Go's `TestGoroutineLeakProfile`.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteCase {
    /// `testgoroutineleakprofile` or `testgoroutineleakprofile/goker`.
    pub program: String,
    /// Command-line name (`NilRecv`, `Cockroach584`, ...).
    pub name: String,
    /// Declared with `makeFlakyTest`: its leaks may or may not happen in a given run.
    pub flaky: bool,
    /// Declared with `makeTest` (run with GOMAXPROCS=1).
    pub simple: bool,
    /// Go's expected-leak regexps over `Func(...) [wait reason]` (bottom frame, `main.` cut).
    pub leaks: Vec<String>,
}

/// Reads the cases and their expected leaks from `$GOROOT/src/runtime/goroutineleakprofile_test.go`.
pub fn suite_cases(goroot: &Path) -> Result<Vec<SuiteCase>> {
    let path = goroot.join("src/runtime/goroutineleakprofile_test.go");
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out: Vec<SuiteCase> = Vec::new();
    let mut program: Option<&str> = None;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with("microTests :=")
            || t.starts_with("stressTestCases :=")
            || t.starts_with("patternTestCases :=")
        {
            program = Some("testgoroutineleakprofile");
            continue;
        }
        if t.starts_with("gokerTestCases :=") {
            program = Some("testgoroutineleakprofile/goker");
            continue;
        }
        let Some(prog) = program else { continue };
        if line == "\t}" {
            program = None;
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        for (call, flaky) in [("makeTest(\"", false), ("makeFlakyTest(\"", true)] {
            if let Some(rest) = t.strip_prefix(call) {
                let name = rest.split('"').next().unwrap_or("").to_string();
                out.push(SuiteCase {
                    program: prog.to_string(),
                    name,
                    flaky,
                    simple: !flaky,
                    leaks: Vec::new(),
                });
            }
        }
        // Backquoted regexps on this line belong to the last case opened.
        let mut parts = t.split('`');
        parts.next();
        while let (Some(re), Some(_)) = (parts.next(), parts.next()) {
            if let Some(c) = out.last_mut() {
                c.leaks.push(re.to_string());
            }
        }
        // A regexp can also close the line as `...`),
        if t.matches('`').count() % 2 == 1 {
            bail!("unbalanced backquote in {}: {t}", path.display());
        }
    }
    if out.is_empty() {
        bail!("no test cases found in {}", path.display());
    }
    Ok(out)
}

const HOLD_GO: &str = r#"package main

// Added by SFGI's eval (not part of Go's test program): print the ready line, give sfgi time to
// attach, run the case as Go's test does, keep the process alive so its leaked goroutines can be
// observed from outside, then exit normally.

import (
	"fmt"
	"os"
	"time"
)

func main() {
	fmt.Printf("ready pid=%d\n", os.Getpid())
	pre, _ := time.ParseDuration(os.Getenv("SFGI_EVAL_PRE"))
	hold, _ := time.ParseDuration(os.Getenv("SFGI_EVAL_HOLD"))
	time.Sleep(pre)
	origMain()
	fmt.Println("sfgi-eval: case returned")
	time.Sleep(hold)
	fmt.Println("ok")
}
"#;

/// Copies Go `version`'s `testgoroutineleakprofile` into `target/eval/runtime-suite/<version>`
/// with its own go.mod, renames each `main` to `origMain` and adds the ready/hold wrapper
/// ([`HOLD_GO`]); builds both programs. Returns (root binary, goker binary).
pub fn build_suite(version: &str) -> Result<(PathBuf, PathBuf)> {
    let go = sfgi_gotool::go_binary(version)?;
    let goroot = go
        .parent()
        .and_then(Path::parent)
        .context("GOROOT of go binary")?;
    let src = goroot.join("src/runtime/testdata/testgoroutineleakprofile");
    if !src.is_dir() {
        bail!("Go {version} has no {} (Go 1.26+ only)", src.display());
    }
    let dir = sfgi_gotool::target_dir()
        .join("eval/runtime-suite")
        .join(version);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir.join("src"))?;
    let root = dir.join("src");
    std::fs::write(
        root.join("go.mod"),
        "module testgoroutineleakprofile\n\ngo 1.26\n",
    )?;
    let mut bins = Vec::new();
    for (sub, name) in [(".", "testgoroutineleakprofile"), ("goker", "goker")] {
        let pkg = root.join(sub);
        let main_go = pkg.join("main.go");
        let text = std::fs::read_to_string(&main_go)?;
        if !text.contains("\nfunc main() {") {
            bail!("{}: no `func main() {{`", main_go.display());
        }
        std::fs::write(
            &main_go,
            text.replace("\nfunc main() {", "\nfunc origMain() {"),
        )?;
        std::fs::write(pkg.join("zz_sfgi_eval_hold.go"), HOLD_GO)?;
        let out = dir.join(name);
        let mut cmd = Command::new(&go);
        cmd.args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&pkg);
        sfgi_gotool::go_env(&mut cmd, version);
        let o = cmd.output().context("running go build")?;
        if !o.status.success() {
            bail!(
                "go build of {} failed:\n{}",
                pkg.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        bins.push(out);
    }
    Ok((bins[0].clone(), bins[1].clone()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            copy_dir(&p, &to.join(e.file_name()))?;
        } else {
            std::fs::copy(&p, to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// How a suite case is run.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteConfig {
    /// Sleep before the case runs (sfgi attaches meanwhile).
    #[serde(with = "secs")]
    pub pre: Duration,
    /// Sleep after the case returned, before the program exits.
    #[serde(with = "secs")]
    pub hold: Duration,
    /// `sfgi watch --threshold`.
    #[serde(with = "secs")]
    pub threshold: Duration,
    /// `sfgi watch --min-repeat` (the cases leak 1-3 goroutines per site, once).
    pub min_repeat: usize,
    /// `sfgi watch --rescan` (the runtime's `_Gleaked` marks are seen by inventory reads).
    #[serde(with = "secs")]
    pub rescan: Duration,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            pre: Duration::from_millis(2500),
            hold: Duration::from_secs(4),
            threshold: Duration::from_secs(1),
            min_repeat: 1,
            rescan: Duration::from_millis(500),
        }
    }
}

/// An SFGI leak group of a suite run.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteGroup {
    /// `Func(...) [wait reason]`, the string Go's test matches its regexps against.
    pub key: String,
    /// Status (worst seen).
    pub status: String,
    /// Pattern.
    pub pattern: String,
    /// Members (most seen).
    pub count: u64,
    /// `blocked_at`.
    pub blocked_at: String,
    /// `expected`, `flaky` (a documented flaky leak) or `extra`.
    pub class: String,
}

/// The outcome of one suite case.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteResult {
    /// The case.
    pub case: SuiteCase,
    /// Go version.
    pub go: String,
    /// Expected (non-flaky) leak regexps SFGI reported.
    pub agreed: Vec<String>,
    /// Expected (non-flaky) leak regexps SFGI did not report.
    pub missed: Vec<String>,
    /// Of `missed`, those Go's own profile in the same run did report.
    pub missed_go_saw: Vec<String>,
    /// Flaky leak regexps SFGI reported.
    pub flaky_seen: Vec<String>,
    /// Every SFGI leak group.
    pub groups: Vec<SuiteGroup>,
    /// Leaks Go's own goroutineleak profile printed (`Func(...) [reason]`).
    pub go_profile: Vec<String>,
    /// The program exited 0 after its hold.
    pub exit_ok: bool,
    /// What went wrong.
    pub error: Option<String>,
}

/// `Func(...) [wait reason]` of a leak object: its bottom frame (above `runtime.goexit`), `main.`
/// cut, as Go's `extractLeaks` builds it.
pub fn suite_key(g: &Value) -> String {
    let stack = g["stack_trace"].as_str().unwrap_or("");
    let funcs = stack_functions(stack);
    let bottom = funcs
        .iter()
        .rev()
        .find(|f| **f != "runtime.goexit" && !is_gowrap(f))
        .copied()
        .unwrap_or("?");
    format!(
        "{}(...) [{}]",
        bottom.strip_prefix("main.").unwrap_or(bottom),
        g["wait_reason"].as_str().unwrap_or("")
    )
}

/// A compiler `go` wrapper (`f.gowrap1`), which Go's tracebacks leave out.
fn is_gowrap(f: &str) -> bool {
    f.rsplit_once(".gowrap")
        .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Leaks in a goroutineleak profile (debug=2 text): `Func(...) [reason]` per `(leaked)` goroutine.
pub fn go_profile_leaks(out: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    for block in out.split("\n\n") {
        let lines: Vec<&str> = block.lines().collect();
        let Some(head) = lines.iter().find(|l| l.starts_with("goroutine ")) else {
            continue;
        };
        if !head.contains("(leaked)") {
            continue;
        }
        let reason = head
            .rsplit_once('[')
            .map(|(_, r)| r.trim_end_matches(':').trim_end_matches(']'))
            .unwrap_or("")
            .replace(" (leaked)", "");
        let Some(i) = lines.iter().position(|l| l.starts_with("created by")) else {
            continue;
        };
        if i >= 2 {
            let f = lines[i - 2].trim();
            let f = f.strip_prefix("main.").unwrap_or(f);
            let f = f.split('(').next().unwrap_or(f);
            leaks.push(format!("{f}(...) [{reason}]"));
        }
    }
    leaks
}

/// Runs one suite case with `sfgi watch` attached.
pub fn run_suite_case(bin: &Path, case: &SuiteCase, go: &str, cfg: &SuiteConfig) -> SuiteResult {
    let mut r = SuiteResult {
        case: case.clone(),
        go: go.to_string(),
        agreed: Vec::new(),
        missed: Vec::new(),
        missed_go_saw: Vec::new(),
        flaky_seen: Vec::new(),
        groups: Vec::new(),
        go_profile: Vec::new(),
        exit_ok: false,
        error: None,
    };
    if let Err(e) = suite_inner(bin, case, cfg, &mut r) {
        r.error = Some(format!("{e:#}"));
    }
    r
}

fn suite_inner(bin: &Path, case: &SuiteCase, cfg: &SuiteConfig, r: &mut SuiteResult) -> Result<()> {
    let regexps: Vec<regex::Regex> = case
        .leaks
        .iter()
        .map(|s| regex::Regex::new(s))
        .collect::<Result<_, _>>()?;
    let mut cmd = Command::new(bin);
    cmd.arg(&case.name)
        .env("GODEBUG", "asyncpreemptoff=1")
        .env("SFGI_EVAL_PRE", format!("{}ms", cfg.pre.as_millis()))
        .env("SFGI_EVAL_HOLD", format!("{}ms", cfg.hold.as_millis()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if case.simple {
        cmd.env("GOMAXPROCS", "1");
    }
    let mut child = cmd.spawn().context("starting the suite program")?;
    let (stdout, h1) = Captured::spawn_reader(child.stdout.take().context("stdout")?);
    let (stderr, h2) = Captured::spawn_reader(child.stderr.take().context("stderr")?);
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    if stdout
        .wait_for(Duration::from_secs(15), |s| {
            s.contains("ready pid=").then_some(())
        })
        .is_none()
    {
        bail!("no ready line; stderr: {}", tail(&stderr.get(), 400));
    }
    let extra: Vec<String> = [
        "--interval",
        "100ms",
        "--threshold",
        &format!("{}ms", cfg.threshold.as_millis()),
        "--min-repeat",
        &cfg.min_repeat.to_string(),
        "--rescan",
        &format!("{}ms", cfg.rescan.as_millis()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut watch = WatchProc::start(child.0.id(), &extra)?;
    let mut seen: BTreeMap<String, SuiteGroup> = BTreeMap::new();
    let deadline = Instant::now() + cfg.pre + cfg.hold + Duration::from_secs(30);
    let status = loop {
        if let Ok(Value::Array(leaks)) = watch.get_json("/sfgi/leaks") {
            for g in &leaks {
                let key = suite_key(g);
                let status = g["status"].as_str().unwrap_or("").to_string();
                let e = seen.entry(key.clone()).or_insert_with(|| SuiteGroup {
                    key: key.clone(),
                    status: status.clone(),
                    pattern: String::new(),
                    count: 0,
                    blocked_at: g["blocked_at"].as_str().unwrap_or("").to_string(),
                    class: String::new(),
                });
                if status_rank(&status) < status_rank(&e.status) {
                    e.status = status;
                }
                e.pattern = g["pattern"].as_str().unwrap_or("").to_string();
                e.count = e.count.max(g["count"].as_u64().unwrap_or(0));
            }
        }
        if let Ok(Some(st)) = child.0.try_wait() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = watch.wait_end(Duration::from_secs(10));
    let _ = (h1.join(), h2.join());
    let out = stdout.get();
    r.exit_ok = status.is_some_and(|s| s.success()) && out.lines().any(|l| l.trim() == "ok");
    if status.is_none() {
        r.error = Some("did not exit after its hold".into());
    }
    r.go_profile = go_profile_leaks(&out);
    let expected: Vec<&regex::Regex> = if case.flaky {
        Vec::new()
    } else {
        regexps.iter().collect()
    };
    for g in seen.values_mut() {
        g.class = if expected.iter().any(|re| re.is_match(&g.key)) {
            "expected"
        } else if regexps.iter().any(|re| re.is_match(&g.key)) {
            "flaky"
        } else {
            "extra"
        }
        .to_string();
    }
    for re in &regexps {
        let sfgi = seen.keys().any(|k| re.is_match(k));
        let go_saw = r.go_profile.iter().any(|k| re.is_match(k));
        if case.flaky {
            if sfgi {
                r.flaky_seen.push(re.as_str().to_string());
            }
        } else if sfgi {
            r.agreed.push(re.as_str().to_string());
        } else {
            r.missed.push(re.as_str().to_string());
            if go_saw {
                r.missed_go_saw.push(re.as_str().to_string());
            }
        }
    }
    r.groups = seen.into_values().collect();
    Ok(())
}

/// Runs `cases` (program name → binary in `bins`) with at most `jobs` at once.
pub fn run_suite(
    cases: Vec<SuiteCase>,
    bins: &HashMap<String, PathBuf>,
    go: &str,
    cfg: &SuiteConfig,
    jobs: usize,
    done: &(dyn Fn(&SuiteResult) + Sync),
) -> Vec<SuiteResult> {
    let queue = Mutex::new(cases.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let next = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    if q.is_empty() {
                        None
                    } else {
                        Some(q.remove(0))
                    }
                };
                let Some((i, case)) = next else { break };
                let r = match bins.get(&case.program) {
                    Some(bin) => run_suite_case(bin, &case, go, cfg),
                    None => {
                        let mut r = run_suite_case(Path::new("/nonexistent"), &case, go, cfg);
                        r.error = Some(format!("no binary for {}", case.program));
                        r
                    }
                };
                done(&r);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, r));
            });
        }
    });
    let mut r = results.into_inner().unwrap_or_else(|e| e.into_inner());
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, r)| r).collect()
}

/// The suite results as a Markdown table.
pub fn suite_table(results: &[SuiteResult]) -> String {
    let mut s = String::from(
        "| case | kind | expected leaks | SFGI agreed | missed (Go's own profile saw it this run?) | flaky leaks seen | extra SFGI groups | exit ok |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let missed: Vec<String> = r
            .missed
            .iter()
            .map(|m| {
                let saw = if r.missed_go_saw.contains(m) {
                    "yes"
                } else {
                    "no"
                };
                format!("`{m}` ({saw})")
            })
            .collect();
        let extras: Vec<String> = r
            .groups
            .iter()
            .filter(|g| g.class == "extra")
            .map(|g| format!("`{}` {}", g.key, g.status))
            .collect();
        let kind = if r.case.flaky { "flaky" } else { "firm" };
        let n_expected = if r.case.flaky { 0 } else { r.case.leaks.len() };
        let err = r
            .error
            .as_deref()
            .map(|e| format!(" error: {}", tail(e, 120).replace(['\n', '|'], " ")))
            .unwrap_or_default();
        s.push_str(&format!(
            "| {} | {kind} | {n_expected} | {} | {} | {}/{} | {} | {}{err} |\n",
            r.case.name,
            r.agreed.len(),
            if missed.is_empty() {
                "-".into()
            } else {
                missed.join("<br>").replace('|', "\\|")
            },
            r.flaky_seen.len(),
            if r.case.flaky { r.case.leaks.len() } else { 0 },
            if extras.is_empty() {
                "-".into()
            } else {
                extras.join("<br>").replace('|', "\\|")
            },
            if r.exit_ok { "yes" } else { "**no**" },
        ));
    }
    s
}

/// One leak group in a line, for messages: status, severity, pattern, count and where.
pub fn brief(g: &Value) -> String {
    format!(
        "{} {} {} x{} at {}",
        g["status"].as_str().unwrap_or("?"),
        g["severity"].as_str().unwrap_or("-"),
        g["pattern"].as_str().unwrap_or("?"),
        g["count"],
        g["blocked_at"].as_str().unwrap_or("?")
    )
}
