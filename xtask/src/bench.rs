//! `cargo xtask bench [--quick]`: SFGI's overhead and scale, measured against real Go programs in
//! one run, with and without SFGI attached, as ratios (this VM is noisy: compare A and B of the
//! same run, never absolute times across runs).
//!
//! 1. Channel ping-pong (`bench/gotarget`, `pingpong N`): ns/op native vs attached, A/B/A/B in
//!    one process; added µs per park/wake pair (each op parks and wakes two goroutines).
//! 2. HTTP service (`bench/gotarget -http`, handler hands work to a fresh goroutine) with 10k and
//!    100k background parked goroutines, driven by `bench/loadgen` (16 keep-alive connections,
//!    fixed duration), alternating native/attached phases: throughput, p50/p99/p999, target CPU
//!    (utime+stime from /proc/PID/stat), SFGI's CPU and peak RSS, events/s, drops, budget state.
//! 3. Scale: attach and inventory time for 10k/100k(/1M) parked goroutines, the target's worst
//!    1 ms-ticker lateness while SFGI attaches and reads the inventory (vs a window without SFGI),
//!    SFGI's peak RSS.
//! 4. Avalanche: time from the start of a goroutine leak (200/s) to the first leak group on
//!    `sfgi watch`'s `/sfgi/leaks` (with `--threshold 10s`).
//! 5. Reachability proofs (`--prove`): `bench/gotarget -heap MB` keeps MB of objects live while a
//!    mutator replaces them, with 100 goroutines leaked on their own channels; per heap size,
//!    the time and bytes of each proof (two passes), how many leaks were proven, SFGI's CPU, and
//!    the target's mutator throughput and worst 1 ms-ticker lateness without and with SFGI.
//!
//! 6. `sfgi agent` on 20 Go processes (4 busy HTTP services under load, 16 idle ones with 1000
//!    parked goroutines each), AB/BA pairs without and with the agent: each busy target's
//!    throughput loss, the agent's CPU and RSS.
//!
//! Prints Markdown tables (pasted into docs/PERFORMANCE.md) and writes them to
//! `target/bench/results.md`.
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Knobs of one bench run.
pub struct Opts {
    /// Fewer rounds, shorter phases, no 1M target.
    pub quick: bool,
    /// The `sfgi` binary to measure.
    pub sfgi: PathBuf,
    /// Extra arguments for every `sfgi attach` (e.g. `--no-stacks`).
    pub sfgi_args: Vec<String>,
    /// Only these sections (`pingpong`, `http`, `scale`, `avalanche`, `proof`, `agent`); empty:
    /// all.
    pub only: Vec<String>,
    /// Another sfgi binary (e.g. before a change) measured in the same ping-pong rounds.
    pub baseline: Option<PathBuf>,
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime+stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / clk_tck()
}

/// A `/proc/PID/status` field in kB, as bytes.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with(field))?;
    Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A running `bench/gotarget`, driven line by line over stdin/stdout.
struct GoTarget {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pid: u32,
    addr: Option<String>,
}

impl GoTarget {
    fn start(bin: &Path, args: &[&str]) -> Result<GoTarget> {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(180))
            .context("gotarget did not start")?;
        let pid = child.id();
        let addr = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .map(str::to_string);
        Ok(GoTarget {
            child,
            stdin,
            lines: rx,
            pid,
            addr,
        })
    }

    fn cmd(&mut self, line: &str) -> Result<String> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        self.lines
            .recv_timeout(Duration::from_secs(600))
            .with_context(|| format!("no answer to {line:?}"))
    }

    fn value(&mut self, line: &str, key: &str) -> Result<f64> {
        let a = self.cmd(line)?;
        a.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected answer {a:?}"))
    }
}

impl Drop for GoTarget {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `sfgi attach` (or `watch`).
struct Sfgi {
    child: Child,
    pid: u32,
    stdout: std::thread::JoinHandle<String>,
    stderr: mpsc::Receiver<String>,
    /// Seconds from start to its "attached"/"watching" line (probes in + first inventory).
    pub ready_s: f64,
    /// Lines on stderr so far.
    pub log: Vec<String>,
}

impl Sfgi {
    fn start(sfgi: &Path, args: &[String]) -> Result<Sfgi> {
        let t0 = Instant::now();
        let mut child = Command::new(sfgi)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", sfgi.display()))?;
        let mut out = child.stdout.take().context("stdout")?;
        let err = child.stderr.take().context("stderr")?;
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let mut s = Sfgi {
            child,
            pid,
            stdout,
            stderr: rx,
            ready_s: 0.0,
            log: Vec::new(),
        };
        loop {
            let l = s
                .stderr
                .recv_timeout(Duration::from_secs(300))
                .context("sfgi did not attach")?;
            s.log.push(l.clone());
            if l.contains("sfgi: error") {
                bail!("sfgi failed: {l}");
            }
            if l.contains("attached") || l.contains("watching") {
                break;
            }
        }
        s.ready_s = t0.elapsed().as_secs_f64();
        Ok(s)
    }

    /// Waits for a stderr line containing `what` and returns it.
    fn wait_line(&mut self, what: &str) -> Result<String> {
        loop {
            let l = self
                .stderr
                .recv_timeout(Duration::from_secs(60))
                .with_context(|| format!("sfgi never printed {what:?}"))?;
            self.log.push(l.clone());
            if l.contains(what) {
                return Ok(l);
            }
        }
    }

    /// SIGTERM, wait, and the JSON report it printed (attach) or its stdout (watch).
    fn stop(mut self) -> Result<String> {
        kill(self.pid, "-TERM");
        let _ = self.child.wait();
        while let Ok(l) = self.stderr.try_recv() {
            self.log.push(l);
        }
        self.stdout.join().map_err(|_| anyhow::anyhow!("stdout"))
    }
}

fn attach_args(pid: u32, extra: &[String]) -> Vec<String> {
    let mut a = vec![
        "attach".to_string(),
        "--pid".into(),
        pid.to_string(),
        "--format".into(),
        "json".into(),
    ];
    a.extend(extra.iter().cloned());
    a
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// What one attached phase cost SFGI itself.
#[derive(Default, Clone)]
struct SfgiCost {
    cpu_s: f64,
    wall_s: f64,
    peak_rss: u64,
    events: f64,
    hits: f64,
    dropped: f64,
    budget: String,
}

fn report_cost(report: &str, cpu_s: f64, wall_s: f64, peak_rss: u64) -> SfgiCost {
    let v: Value = serde_json::from_str(report).unwrap_or(Value::Null);
    let st = &v["stats"];
    let hits: f64 = st["probes"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["hits"].as_f64()).sum())
        .unwrap_or(0.0);
    let budget = match &st["budget"] {
        Value::Null => "-".to_string(),
        b => b["mode"].as_str().unwrap_or("-").to_string(),
    };
    SfgiCost {
        cpu_s,
        wall_s,
        peak_rss: st["budget"]["self_peak_rss_bytes"]
            .as_u64()
            .unwrap_or(peak_rss)
            .max(peak_rss),
        events: st["events"].as_f64().unwrap_or(0.0),
        hits,
        dropped: st["dropped"].as_f64().unwrap_or(0.0),
        budget,
    }
}

/// Runs `phase` with SFGI attached to `pid` and returns its result and SFGI's cost.
fn attached<T>(o: &Opts, pid: u32, phase: impl FnOnce() -> Result<T>) -> Result<(T, SfgiCost)> {
    attached_with(&o.sfgi, &o.sfgi_args, pid, phase)
}

fn attached_with<T>(
    sfgi: &Path,
    extra: &[String],
    pid: u32,
    phase: impl FnOnce() -> Result<T>,
) -> Result<(T, SfgiCost)> {
    let s = Sfgi::start(sfgi, &attach_args(pid, extra))?;
    let (c0, t0) = (cpu_seconds(s.pid), Instant::now());
    let r = phase()?;
    let (c1, wall) = (cpu_seconds(s.pid), t0.elapsed().as_secs_f64());
    let hwm = status_kb(s.pid, "VmHWM").unwrap_or(0);
    let report = s.stop()?;
    Ok((r, report_cost(&report, c1 - c0, wall, hwm)))
}

struct Out {
    md: String,
}

impl Out {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.md.push_str(s.as_ref());
        self.md.push('\n');
    }
}

fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / (1 << 20) as f64)
}

/// Runs the benchmarks and prints Markdown.
pub fn run(o: &Opts, gotarget: &Path, loadgen: &Path) -> Result<()> {
    let started = Instant::now();
    let mut out = Out { md: String::new() };
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    out.line(format!(
        "_Run: `cargo xtask bench{}` — kernel {kernel}, {cpus} CPUs, Go {}, sfgi {} {}_\n",
        if o.quick { " --quick" } else { "" },
        sfgi_gotool::NEWEST,
        o.sfgi.display(),
        o.sfgi_args.join(" ")
    ));
    let want = |s: &str| o.only.is_empty() || o.only.iter().any(|x| x == s);
    if want("pingpong") {
        pingpong(o, gotarget, &mut out)?;
    }
    if want("http") {
        for bg in [10_000u32, 100_000] {
            http(o, gotarget, loadgen, bg, &mut out)?;
        }
    }
    if want("scale") {
        scale(o, gotarget, &mut out)?;
    }
    if want("avalanche") {
        avalanche(o, gotarget, &mut out)?;
    }
    if want("proof") {
        proof(o, gotarget, &mut out)?;
    }
    if want("agent") {
        agent(o, gotarget, loadgen, &mut out)?;
    }
    out.line(format!(
        "\n_Bench duration: {:.0} s_",
        started.elapsed().as_secs_f64()
    ));
    let dir = sfgi_gotool::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &out.md)?;
    eprintln!("\nwritten to {}", dir.join("results.md").display());
    Ok(())
}

fn pingpong(o: &Opts, gotarget: &Path, out: &mut Out) -> Result<()> {
    let (rounds, n) = if o.quick {
        (3, 300_000)
    } else {
        (5, 1_000_000)
    };
    let mut t = GoTarget::start(gotarget, &[])?;
    // Warm up (first GOMAXPROCS switch, page faults).
    t.value(&format!("pingpong {}", n / 10), "ns_per_op=")?;
    let (mut a, mut b, mut c, mut costs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(t.value(&format!("pingpong {n}"), "ns_per_op=")?);
        let tgt = &mut t;
        let (v, cost) = attached(o, tgt.pid, || {
            tgt.value(&format!("pingpong {n}"), "ns_per_op=")
        })?;
        b.push(v);
        costs.push(cost);
        if let Some(base) = &o.baseline {
            let tgt = &mut t;
            let (v, _) = attached_with(base, &[], tgt.pid, || {
                tgt.value(&format!("pingpong {n}"), "ns_per_op=")
            })?;
            c.push(v);
        }
    }
    let (na, nb) = (median(&a), median(&b));
    let ev_s: Vec<f64> = costs.iter().map(|c| c.events / c.wall_s).collect();
    let hits_per_op: Vec<f64> = costs.iter().map(|c| c.hits / n as f64).collect();
    let ev_per_op: Vec<f64> = costs.iter().map(|c| c.events / n as f64).collect();
    out.line(format!(
        "\n### Channel ping-pong ({rounds} A/B rounds × {n} ops, GOMAXPROCS=1)\n"
    ));
    out.line("| | native ns/op | attached ns/op | ratio | added µs per park/wake pair | probe hits/op | events/op | SFGI CPU | drops | budget |");
    out.line("|---|---|---|---|---|---|---|---|---|---|");
    let cpu: f64 = costs.iter().map(|c| c.cpu_s / c.wall_s).sum::<f64>() / costs.len() as f64;
    out.line(format!(
        "| median | {na:.0} | {nb:.0} | {:.2}× | {:.2} | {:.1} | {:.1} | {:.0}% of a core | {:.0} | {} |",
        nb / na,
        (nb - na) / 2.0 / 1000.0,
        mean(&hits_per_op),
        mean(&ev_per_op),
        cpu * 100.0,
        costs.iter().map(|c| c.dropped).sum::<f64>(),
        costs.last().map(|c| c.budget.as_str()).unwrap_or("-"),
    ));
    if let Some(base) = &o.baseline {
        let nc = median(&c);
        out.line(format!(
            "| baseline {} (same rounds) | {na:.0} | {nc:.0} | {:.2}× | {:.2} | | | | | |",
            base.display(),
            nc / na,
            (nc - na) / 2.0 / 1000.0
        ));
    }
    out.line(format!(
        "\nper round (native/attached ns/op): {}; events/s handled: {:.0}",
        a.iter()
            .zip(&b)
            .map(|(x, y)| format!("{x:.0}/{y:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        mean(&ev_s)
    ));
    Ok(())
}

struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu: f64,
}

fn load(loadgen: &Path, addr: &str, secs: u32, pid: u32) -> Result<Load> {
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let o = Command::new(loadgen)
        .args([
            "-url",
            &format!("http://{addr}/work"),
            "-c",
            "16",
            "-d",
            &format!("{secs}s"),
        ])
        .output()
        .context("running loadgen")?;
    let cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    let v: Value = serde_json::from_slice(&o.stdout).context("loadgen output")?;
    if v["errors"].as_u64().unwrap_or(0) > 0 {
        eprintln!("loadgen: {} errors", v["errors"]);
    }
    Ok(Load {
        rps: v["rps"].as_f64().unwrap_or(0.0),
        p50: v["p50_us"].as_f64().unwrap_or(0.0),
        p99: v["p99_us"].as_f64().unwrap_or(0.0),
        p999: v["p999_us"].as_f64().unwrap_or(0.0),
        cpu,
    })
}

fn http(o: &Opts, gotarget: &Path, loadgen: &Path, bg: u32, out: &mut Out) -> Result<()> {
    let (pairs, secs) = if o.quick { (2, 6) } else { (6, 10) };
    // Every measured phase follows 2 s of the same load, unmeasured: in B phases SFGI attaches
    // just before it, so B measures SFGI settled (its budget decided, its first inventory read)
    // — what a service attached for a while sees. Pairs alternate AB, BA, ... so a drift of
    // the machine's speed hits both sides alike, and the loss is the median of per-pair ratios.
    const SETTLE: u32 = 2;
    let t = GoTarget::start(gotarget, &["-bg", &bg.to_string(), "-http", "127.0.0.1:0"])?;
    let addr = t.addr.clone().context("no HTTP address")?;
    // Warm up.
    load(loadgen, &addr, 1, t.pid)?;
    let (mut a, mut b, mut costs) = (Vec::new(), Vec::new(), Vec::new());
    let phase = || -> Result<Load> {
        load(loadgen, &addr, SETTLE, t.pid)?;
        load(loadgen, &addr, secs, t.pid)
    };
    for i in 0..pairs {
        if i % 2 == 0 {
            a.push(phase()?);
        }
        let (l, cost) = attached(o, t.pid, phase)?;
        b.push(l);
        costs.push(cost);
        if i % 2 == 1 {
            a.push(phase()?);
        }
    }
    let m = |v: &[Load], f: fn(&Load) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    out.line(format!(
        "\n### HTTP service, {bg} background parked goroutines ({pairs} pairs AB/BA, {secs} s phases after {SETTLE} s of settling, 16 conns)\n"
    ));
    out.line("| | req/s | p50 µs | p99 µs | p999 µs | target CPU (cores) |");
    out.line("|---|---|---|---|---|---|");
    for (name, v) in [("native (A)", &a), ("attached (B)", &b)] {
        out.line(format!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |",
            m(v, |l| l.rps),
            m(v, |l| l.p50),
            m(v, |l| l.p99),
            m(v, |l| l.p999),
            m(v, |l| l.cpu)
        ));
    }
    let mut pair_loss: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 1.0 - y.rps / x.rps).collect();
    let loss = median(&pair_loss);
    pair_loss.sort_by(|x, y| x.total_cmp(y));
    let noise = {
        let r: Vec<f64> = a.iter().map(|l| l.rps).collect();
        let (lo, hi) = (
            r.iter().cloned().fold(f64::MAX, f64::min),
            r.iter().cloned().fold(0.0, f64::max),
        );
        (hi - lo) / m(&a, |l| l.rps)
    };
    let p99n: Vec<f64> = a.iter().map(|l| l.p99).collect();
    out.line(format!(
        "\nthroughput loss {:.1}% (median of per-pair losses {}; A-to-A spread {:.1}%); p99 ratio {:.2} (A p99 range {:.0}–{:.0} µs); per pair A/B req/s: {}",
        loss * 100.0,
        pair_loss
            .iter()
            .map(|l| format!("{:.1}%", l * 100.0))
            .collect::<Vec<_>>()
            .join(" "),
        noise * 100.0,
        m(&b, |l| l.p99) / m(&a, |l| l.p99),
        p99n.iter().cloned().fold(f64::MAX, f64::min),
        p99n.iter().cloned().fold(0.0, f64::max),
        a.iter()
            .zip(&b)
            .map(|(x, y)| format!("{:.0}/{:.0}", x.rps, y.rps))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.line(format!(
        "\nSFGI: CPU {:.0}% of a core, peak RSS {}, events/s {:.0}, probe hits/s {:.0}, drops {:.0}, budget mode: {}",
        mean(&costs.iter().map(|c| c.cpu_s / c.wall_s).collect::<Vec<_>>()) * 100.0,
        mb(costs.iter().map(|c| c.peak_rss).max().unwrap_or(0)),
        mean(&costs.iter().map(|c| c.events / c.wall_s).collect::<Vec<_>>()),
        mean(&costs.iter().map(|c| c.hits / c.wall_s).collect::<Vec<_>>()),
        costs.iter().map(|c| c.dropped).sum::<f64>(),
        costs
            .iter()
            .map(|c| c.budget.clone())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

fn scale(o: &Opts, gotarget: &Path, out: &mut Out) -> Result<()> {
    let sizes: &[u32] = if o.quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    out.line("\n### Attach and inventory at scale\n");
    out.line("| parked goroutines | start of target | sfgi attached (probes + first inventory) | first inventory | goroutines reported | target's 1 ms ticker, worst lateness: 0.5 s without SFGI / from launch to attached | SFGI peak RSS |");
    out.line("|---|---|---|---|---|---|---|");
    let mut rereads = Vec::new();
    for &n in sizes {
        let t0 = Instant::now();
        let mut t = GoTarget::start(gotarget, &["-bg", &n.to_string()])?;
        let start_s = t0.elapsed().as_secs_f64();
        // A baseline window without SFGI, then one from before attaching to attached.
        t.value("late", "max_us=")?;
        std::thread::sleep(Duration::from_millis(500));
        let late_base = t.value("late", "max_us=")?;
        let mut args = attach_args(t.pid, &o.sfgi_args);
        args.extend(["--rescan".into(), "0".into()]);
        let s = Sfgi::start(&o.sfgi, &args)?;
        let ready = s.ready_s;
        let late_attached = t.value("late", "max_us=")?;
        let mut hwm = status_kb(s.pid, "VmHWM").unwrap_or(0);
        std::thread::sleep(Duration::from_millis(500));
        let report = s.stop()?;
        let v: Value = serde_json::from_str(&report).unwrap_or(Value::Null);
        let st = &v["stats"];
        if let Some(p) = st["budget"]["self_peak_rss_bytes"].as_u64() {
            hwm = hwm.max(p);
        }
        out.line(format!(
            "| {n} | {start_s:.1} s | {:.2} s | {:.0} ms | {} | {late_base:.0} µs / {late_attached:.0} µs | {} |",
            ready,
            st["inventory"]["inventory_first_ms"].as_f64().unwrap_or(-1.0),
            st["goroutines"].as_u64().unwrap_or(0),
            mb(hwm)
        ));
        rereads.push(reread(o, &mut t, n)?);
    }
    out.line(format!(
        "\n### Incremental inventory re-reads every second (`--rescan 1s`, {} s measured after 3 s of settling)\n",
        reread_window(o).as_secs()
    ));
    out.line("| parked goroutines | first read (whole) | re-read (incremental, median) | goroutines not read whole | SFGI CPU, % of one core | target's 1 ms ticker, worst lateness: same window without SFGI / with |");
    out.line("|---|---|---|---|---|---|");
    for r in rereads {
        out.line(r);
    }
    Ok(())
}

fn reread_window(o: &Opts) -> Duration {
    Duration::from_secs(if o.quick { 6 } else { 15 })
}

/// SFGI attached to `t` (`n` parked goroutines) with an inventory re-read every second: the
/// cost of working from re-reads alone, as in the overhead budget's degraded modes.
fn reread(o: &Opts, t: &mut GoTarget, n: u32) -> Result<String> {
    // The same window without SFGI first: this VM's own scheduling noise.
    t.value("late", "max_us=")?;
    std::thread::sleep(reread_window(o));
    let late_base = t.value("late", "max_us=")?;
    let mut args = attach_args(t.pid, &o.sfgi_args);
    args.extend(["--rescan".into(), "1s".into(), "-v".into()]);
    let mut s = Sfgi::start(&o.sfgi, &args)?;
    std::thread::sleep(Duration::from_secs(3));
    t.value("late", "max_us=")?;
    let (c0, t0) = (cpu_seconds(s.pid), Instant::now());
    std::thread::sleep(reread_window(o));
    let cpu = (cpu_seconds(s.pid) - c0) / t0.elapsed().as_secs_f64();
    let late = t.value("late", "max_us=")?;
    while let Ok(l) = s.stderr.try_recv() {
        s.log.push(l);
    }
    // `-v` logs each re-read: "inventory re-read: N goroutines in X ms (M not read whole)".
    let times: Vec<f64> = s
        .log
        .iter()
        .filter_map(|l| l.split("inventory re-read: ").nth(1))
        .filter_map(|l| l.split(" in ").nth(1))
        .filter_map(|l| l.split(" ms").next())
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let report = s.stop()?;
    let v: Value = serde_json::from_str(&report).unwrap_or(Value::Null);
    let inv = &v["stats"]["inventory"];
    Ok(format!(
        "| {n} | {:.0} ms | {:.0} ms ({} re-reads) | {} | {:.1} % | {late_base:.0} µs / {late:.0} µs |",
        inv["inventory_first_ms"].as_f64().unwrap_or(-1.0),
        median(&times),
        times.len(),
        inv["inventory_unchanged"].as_u64().unwrap_or(0),
        cpu * 100.0
    ))
}

/// Minimal HTTP GET over loopback (xtask has no HTTP client).
fn http_get(addr: &str, path: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = String::new();
    s.read_to_string(&mut r)?;
    Ok(r)
}

fn avalanche(o: &Opts, gotarget: &Path, out: &mut Out) -> Result<()> {
    out.line("\n### Avalanche: start of a 200 goroutines/s leak → first signal\n");
    out.line(
        "| sfgi watch flags | first leak group on /sfgi/leaks after | its status and severity |",
    );
    out.line("|---|---|---|");
    // The default threshold (5 min) shows the avalanche rule (30 s of runaway growth); a
    // 10 s threshold shows the ordinary growing rule (threshold + one interval).
    for extra in [
        &["--interval", "1s"][..],
        &["--threshold", "10s", "--interval", "1s"][..],
    ] {
        let mut t = GoTarget::start(gotarget, &["-bg", "1000"])?;
        let mut args: Vec<String> = [
            "watch",
            "--pid",
            &t.pid.to_string(),
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(o.sfgi_args.iter().cloned());
        let mut s = Sfgi::start(&o.sfgi, &args)?;
        let line = s.wait_line("serving on http://")?;
        let addr = line
            .rsplit("http://")
            .next()
            .context("no address")?
            .trim()
            .to_string();
        t.cmd("avalanche 200")?;
        let t0 = Instant::now();
        let mut first = None;
        while t0.elapsed() < Duration::from_secs(90) {
            let r = http_get(&addr, "/sfgi/leaks").unwrap_or_default();
            if r.contains("leakOne") {
                let body = r.split("\r\n\r\n").nth(1).unwrap_or("");
                let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                let g = v
                    .as_array()
                    .and_then(|a| a.iter().find(|g| g.to_string().contains("leakOne")))
                    .cloned()
                    .unwrap_or(Value::Null);
                first = Some((
                    t0.elapsed().as_secs_f64(),
                    format!(
                        "{} {}",
                        g["status"].as_str().unwrap_or("?"),
                        g["severity"].as_str().unwrap_or("")
                    ),
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = s.stop();
        let (after, what) = first
            .map(|(f, w)| (format!("{f:.1} s"), w))
            .unwrap_or_else(|| ("(none within 90 s)".to_string(), "-".to_string()));
        out.line(format!("| `{}` | {after} | {what} |", extra.join(" ")));
    }
    Ok(())
}

/// Reachability proofs on a live heap of 100 MB (and 1 GB unless quick) being mutated.
fn proof(o: &Opts, gotarget: &Path, out: &mut Out) -> Result<()> {
    let sizes: &[u32] = if o.quick { &[100] } else { &[100, 1000] };
    out.line(
        "\n### Reachability proofs (`--prove --proof-interval 1s`, default read budget 256 MB/s, 100 leaked goroutines, live heap mutated continuously)\n",
    );
    out.line("| live heap | target RSS | attached | proofs | per proof (2 passes): time, median / max | bytes read per proof | leaks proven | SFGI CPU, % of one core | target mutator ops/s: without / with SFGI | target's 1 ms ticker, worst lateness: without / with |");
    out.line("|---|---|---|---|---|---|---|---|---|---|");
    for &heap in sizes {
        // Long enough for the first proof (two passes at the read budget) to finish.
        let window = Duration::from_secs(if heap >= 1000 { 90 } else { 12 });
        let mut t = GoTarget::start(gotarget, &["-heap", &heap.to_string()])?;
        t.cmd("leak 100")?;
        std::thread::sleep(Duration::from_secs(2));
        t.value("ops", "per_s=")?;
        t.value("late", "max_us=")?;
        std::thread::sleep(window);
        let ops_native = t.value("ops", "per_s=")?;
        let late_native = t.value("late", "max_us=")?;
        let rss = status_kb(t.pid, "VmRSS").unwrap_or(0);
        let mut args = attach_args(t.pid, &o.sfgi_args);
        args.extend(
            [
                "--prove",
                "--proof-interval",
                "1s",
                "--threshold",
                "1h",
                "--rescan",
                "0",
                "-v",
            ]
            .map(String::from),
        );
        let mut s = Sfgi::start(&o.sfgi, &args)?;
        t.value("ops", "per_s=")?;
        t.value("late", "max_us=")?;
        let (c0, t0) = (cpu_seconds(s.pid), Instant::now());
        std::thread::sleep(window);
        let cpu = (cpu_seconds(s.pid) - c0) / t0.elapsed().as_secs_f64();
        let ops_attached = t.value("ops", "per_s=")?;
        let late_attached = t.value("late", "max_us=")?;
        while let Ok(l) = s.stderr.try_recv() {
            s.log.push(l);
        }
        // `-v`: "proof: P proven (T taken) of C candidates, B bytes in X ms".
        let proofs: Vec<(f64, f64)> = s
            .log
            .iter()
            .filter_map(|l| l.split("proof: ").nth(1))
            .filter_map(|l| {
                let b = l.split(" candidates, ").nth(1)?;
                let bytes: f64 = b.split(" bytes").next()?.trim().parse().ok()?;
                let ms: f64 = b
                    .split(" in ")
                    .nth(1)?
                    .split(" ms")
                    .next()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((ms, bytes))
            })
            .collect();
        let report = s.stop()?;
        let v: Value = serde_json::from_str(&report).unwrap_or(Value::Null);
        let proven: u64 = v["leaks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|g| g["proof"] == "unreachable")
                    .filter_map(|g| g["proven"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        let ms: Vec<f64> = proofs.iter().map(|p| p.0).collect();
        let bytes: Vec<f64> = proofs.iter().map(|p| p.1).collect();
        let refused = v["stats"]["inventory"]["last_proof"]["refused"]
            .as_str()
            .map(|r| format!(" (last refused: {r})"))
            .unwrap_or_default();
        out.line(format!(
            "| {heap} MB | {} | {} s | {}{refused} | {:.0} ms / {:.0} ms | {} | {proven} / 100 | {:.0} % | {ops_native:.0} / {ops_attached:.0} ({:+.1} %) | {late_native:.0} µs / {late_attached:.0} µs |",
            mb(rss),
            window.as_secs(),
            proofs.len(),
            median(&ms),
            ms.iter().copied().fold(0.0, f64::max),
            mb(median(&bytes) as u64),
            cpu * 100.0,
            (ops_attached / ops_native - 1.0) * 100.0,
        ));
    }
    Ok(())
}

/// Requests per second of `loadgen` against `addr` with `conns` connections for `secs`.
fn load_rps(loadgen: &Path, addr: &str, conns: u32, secs: u32) -> Result<f64> {
    let o = Command::new(loadgen)
        .args([
            "-url",
            &format!("http://{addr}/work"),
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{secs}s"),
        ])
        .output()
        .context("running loadgen")?;
    let v: Value = serde_json::from_slice(&o.stdout).context("loadgen output")?;
    Ok(v["rps"].as_f64().unwrap_or(0.0))
}

/// Loads every busy target at once for `secs`; req/s of each.
fn load_all(loadgen: &Path, addrs: &[String], secs: u32) -> Result<Vec<f64>> {
    let hs: Vec<_> = addrs
        .iter()
        .map(|a| {
            let (l, a) = (loadgen.to_path_buf(), a.clone());
            std::thread::spawn(move || load_rps(&l, &a, 4, secs))
        })
        .collect();
    hs.into_iter()
        .map(|h| h.join().map_err(|_| anyhow::anyhow!("loadgen thread"))?)
        .collect()
}

/// A running `sfgi agent` tracing every `gotarget`; ready when `/sfgi/targets` lists `n`
/// attached targets.
struct Agent {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Agent {
    fn start(sfgi: &Path, n: usize) -> Result<(Agent, f64)> {
        let dir = std::env::temp_dir().join(format!("sfgi-bench-agent-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("agent.toml"), "[[include]]\nexe = \"gotarget*\"\n")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        let child = Command::new(sfgi)
            .args(["agent", "--listen", &addr, "--config"])
            .arg(dir.join("agent.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sfgi agent")?;
        let a = Agent { child, addr, dir };
        loop {
            if t0.elapsed() > Duration::from_secs(120) {
                bail!("the agent did not attach to {n} targets in 120 s");
            }
            std::thread::sleep(Duration::from_millis(200));
            let Ok(r) = http_get(&a.addr, "/sfgi/targets") else {
                continue;
            };
            let body = r.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let attached = v
                .as_array()
                .map(|a| a.iter().filter(|t| !t["attached_since"].is_null()).count())
                .unwrap_or(0);
            if attached >= n {
                return Ok((a, t0.elapsed().as_secs_f64()));
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill(self.child.id(), "-INT");
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn agent(o: &Opts, gotarget: &Path, loadgen: &Path, out: &mut Out) -> Result<()> {
    const BUSY: usize = 4;
    const IDLE: usize = 16;
    const SETTLE: u32 = 2;
    let (pairs, secs) = if o.quick { (2, 5) } else { (4, 10) };
    let mut targets = Vec::new();
    for _ in 0..BUSY {
        targets.push(GoTarget::start(
            gotarget,
            &["-bg", "1000", "-http", "127.0.0.1:0"],
        )?);
    }
    for _ in 0..IDLE {
        targets.push(GoTarget::start(gotarget, &["-bg", "1000"])?);
    }
    let addrs: Vec<String> = targets.iter().filter_map(|t| t.addr.clone()).collect();
    let busy_pids: Vec<u32> = targets.iter().take(BUSY).map(|t| t.pid).collect();
    let mut step_down = Vec::new();
    load_all(loadgen, &addrs, 1)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut cpu, mut rss, mut hwm, mut ready) = (Vec::new(), 0u64, 0u64, Vec::new());
    let phase = || -> Result<Vec<f64>> {
        load_all(loadgen, &addrs, SETTLE)?;
        load_all(loadgen, &addrs, secs)
    };
    for i in 0..pairs {
        if i % 2 == 0 {
            a.push(phase()?);
        }
        let (ag, r) = Agent::start(&o.sfgi, BUSY + IDLE)?;
        ready.push(r);
        // Under load, until every busy target's budget has stepped its probes down (the
        // agent's steady state; until then the busy targets pay full tracing), at most 30 s.
        let t_down = Instant::now();
        loop {
            load_all(loadgen, &addrs, 1)?;
            let m = http_get(&ag.addr, "/metrics").unwrap_or_default();
            let down = busy_pids
                .iter()
                .filter(|pid| {
                    m.lines().any(|l| {
                        l.starts_with("sfgi_overhead_mode{")
                            && l.contains(&format!("pid=\"{pid}\""))
                            && l.rsplit(' ').next().and_then(|v| v.parse::<u32>().ok()) >= Some(3)
                    })
                })
                .count();
            if down == busy_pids.len() || t_down.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        step_down.push(t_down.elapsed().as_secs_f64());
        let c0 = cpu_seconds(ag.pid());
        let t0 = Instant::now();
        b.push(phase()?);
        cpu.push((cpu_seconds(ag.pid()) - c0) / t0.elapsed().as_secs_f64());
        rss = rss.max(status_kb(ag.pid(), "VmRSS").unwrap_or(0));
        hwm = hwm.max(status_kb(ag.pid(), "VmHWM").unwrap_or(0));
        drop(ag);
        if i % 2 == 1 {
            a.push(phase()?);
        }
    }
    out.line(format!(
        "\n### `sfgi agent` on {} Go processes ({BUSY} busy HTTP services under load, 4 connections each, {IDLE} idle; 1000 parked goroutines each; {pairs} pairs AB/BA, {secs} s phases after {SETTLE} s of settling)\n",
        BUSY + IDLE
    ));
    out.line("| busy target | req/s without agent (A, median) | req/s with agent (B, median) | throughput loss (median of per-pair losses) |");
    out.line("|---|---|---|---|");
    for t in 0..addrs.len() {
        let ra: Vec<f64> = a.iter().map(|v| v[t]).collect();
        let rb: Vec<f64> = b.iter().map(|v| v[t]).collect();
        let loss: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| 1.0 - y / x).collect();
        out.line(format!(
            "| {} | {:.0} | {:.0} | {:.1}% ({}) |",
            t + 1,
            median(&ra),
            median(&rb),
            median(&loss) * 100.0,
            loss.iter()
                .map(|l| format!("{:.1}%", l * 100.0))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    out.line(format!(
        "\nagent: CPU {:.0}% of a core (mean over B phases), RSS {} (peak {}), all {} targets attached {:.1} s after start (median); every busy target's probes stepped down to inventory-only {} s after that, under load (B phases measure from then on)",
        mean(&cpu) * 100.0,
        mb(rss),
        mb(hwm),
        BUSY + IDLE,
        median(&ready),
        step_down
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    ));
    Ok(())
}
