//! `sfgi`: the command line.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sfgi::options::Rescan;
use sfgi_engine::judge::JudgeConfig;
use sfgi_goexe::GoBinary;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// SFGI, the SiliconFlow Goroutine Inspector: finds goroutine leaks in a running Go program.
#[derive(Parser, Debug)]
#[command(name = "sfgi", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more (to stderr): `-v` shows SFGI's debug records, among them the eBPF probes'
    /// diagnostics (which probe could not read which field, at which address, with which
    /// error); `-vv` also trace records. Without it the probes write none. `RUST_LOG` works too
    /// (`RUST_LOG=sfgi=debug` is `-v`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach to a running Go process with eBPF uprobes and report its parked goroutines; or,
    /// with --pprof, poll its net/http/pprof endpoint instead (no root, any OS).
    Attach(AttachArgs),
    /// Attach and keep watching: a live table of leak groups, refreshed every --interval, until
    /// Ctrl-C or the target exits (then the final report). With --listen, also serves
    /// /sfgi/leaks, /sfgi/groups, /sfgi/profile, /sfgi/trigger-scan and /metrics over HTTP.
    Watch(WatchArgs),
    /// Every Go 1.21+ process of the node, each traced by its own session under one node-wide
    /// overhead budget, served over HTTP (/sfgi/targets, /sfgi/leaks, /sfgi/groups,
    /// /sfgi/trigger-scan, /sfgi/evidence/GROUP, /metrics) until SIGINT/SIGTERM. See
    /// docs/AGENT.md.
    Agent(AgentArgs),
    /// Judge saved goroutine dumps, no root and no target needed: Go's debug=2 text (from
    /// /debug/pprof/goroutine?debug=2 or goroutineleak?debug=2, SIGQUIT with GOTRACEBACK=all,
    /// a panic, a deadlock crash) or pprof's gzip'd protobuf goroutine and goroutineleak
    /// profiles. Several dumps of one process, oldest first, are a time series (growth,
    /// members that never leave). Same table, JSON, rules and judge as `attach`.
    Analyze {
        /// Dumps of one process, oldest first (`-`: stdin).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        dumps: DumpArgs,
    },
    /// Compare two goroutine dumps of one process: which groups grew, appeared, shrank or
    /// vanished.
    Diff {
        /// The older dump (`-`: stdin).
        #[arg(value_name = "BEFORE")]
        before: PathBuf,
        /// The newer dump.
        #[arg(value_name = "AFTER")]
        after: PathBuf,
        #[command(flatten)]
        dumps: DumpArgs,
    },
    /// Show what SFGI reads from a Go binary: version, probe points, struct offsets, wait reasons.
    Inspect {
        /// Path to a Go binary.
        #[arg(required_unless_present = "pid", conflicts_with = "pid")]
        binary: Option<PathBuf>,
        /// Inspect the executable of a running process instead.
        #[arg(long)]
        pid: Option<u32>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// `sfgi attach` (off Linux, parsed like anywhere else, then refused without --pprof).
#[derive(clap::Args, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct AttachArgs {
    /// PID of the Go process.
    #[arg(long, required_unless_present = "pprof", conflicts_with = "pprof")]
    pid: Option<u32>,
    #[command(flatten)]
    pprof: PprofArgs,
    /// How long to trace (e.g. `10s`, `5m`); default: until Ctrl-C or the target exits.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    judge: JudgeArgs,
    /// How often group populations are sampled (growth resolution).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    interval: Duration,
    /// Re-read the goroutine inventory (finds goroutines stuck in system calls, reconciles
    /// dropped events): `auto` (2–30 s, by the target's size), `off`, or a period.
    #[arg(long, value_parser = Rescan::parse, default_value = "auto", conflicts_with = "pprof")]
    rescan: Rescan,
    /// Extra classification rules (TOML; tried before the built-in rules). Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// How often to drain the event ring buffer.
    #[arg(long, value_parser = parse_duration, default_value = "50ms", conflicts_with = "pprof")]
    poll: Duration,
    /// Do not capture stacks (cheaper; no blocking or creation sites).
    #[arg(long, conflicts_with = "pprof")]
    no_stacks: bool,
    /// How many groups to print full stacks for in the table format.
    #[arg(long, default_value_t = 5)]
    stacks_shown: usize,
    /// Event ring-buffer size in bytes (a power of two, at least 4096; default: 4–16 MiB by
    /// the target's goroutine count). Smaller loses events sooner (they are counted and
    /// reported); for tests and tuning.
    #[arg(long, value_parser = parse_ring_size, hide = true, conflicts_with = "pprof")]
    ring_size: Option<u32>,
    #[command(flatten)]
    budget: BudgetArgs,
}

/// `sfgi watch` (off Linux, parsed like anywhere else, then refused without --pprof).
#[derive(clap::Args, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct WatchArgs {
    /// PID of the Go process.
    #[arg(long, required_unless_present = "pprof", conflicts_with = "pprof")]
    pid: Option<u32>,
    /// With --pprof: a live table redrawn at every poll of the endpoint (no root), then the
    /// final report; --listen serves the same endpoints from the polls (Linux).
    #[command(flatten)]
    pprof: PprofArgs,
    /// Stop after this long (with --pprof; default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration, requires = "pprof")]
    duration: Option<Duration>,
    /// Refresh (and population sampling) interval.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    interval: Duration,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Extra classification rules (TOML; tried before the built-in rules). Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Serve the HTTP endpoints on this address (`:9090` = 127.0.0.1:9090; `[::1]:9090`,
    /// `0.0.0.0:9090` as given; port 0 picks one, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on every HTTP request (stacks are sensitive).
    #[arg(long, value_name = "TOKEN", requires = "listen")]
    token: Option<String>,
    /// Like `--token`, read from FILE (its first line), so the token is not in the command
    /// line that other users of the host can read.
    #[arg(
        long,
        value_name = "FILE",
        requires = "listen",
        conflicts_with = "token"
    )]
    token_file: Option<PathBuf>,
    /// Re-read the goroutine inventory (finds goroutines stuck in system calls, reconciles
    /// dropped events): `auto` (2–30 s, by the target's size), `off`, or a period.
    #[arg(long, value_parser = Rescan::parse, default_value = "auto", conflicts_with = "pprof")]
    rescan: Rescan,
    /// How many groups to print full stacks for in the final report.
    #[arg(long, default_value_t = 5)]
    stacks_shown: usize,
    /// Event ring-buffer size in bytes (see `attach --ring-size`).
    #[arg(long, value_parser = parse_ring_size, hide = true, conflicts_with = "pprof")]
    ring_size: Option<u32>,
    #[command(flatten)]
    budget: BudgetArgs,
}

/// `sfgi agent` (off Linux, parsed like anywhere else, then refused).
#[derive(clap::Args, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct AgentArgs {
    /// Serve on this address (`:6061` = 127.0.0.1:6061).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6061")]
    listen: String,
    /// Require `Authorization: Bearer TOKEN` on every HTTP request.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Like `--token`, read from FILE (its first line): a mounted Secret, kept out of the
    /// command line that anyone on the node can read.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Config file (TOML: include/exclude selectors, per-selector judge settings), reloaded
    /// when it changes.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Most targets traced at once (more are listed as refused).
    #[arg(long, default_value_t = sfgi::options::DEFAULT_MAX_TARGETS)]
    max_targets: usize,
    /// Refresh (and population sampling) interval.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    interval: Duration,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Extra classification rules (TOML; tried before the built-in rules). Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Re-read each target's goroutine inventory: `auto`, `off`, or a period.
    #[arg(long, value_parser = Rescan::parse, default_value = "auto")]
    rescan: Rescan,
    /// Node-wide overhead budget: probe hits per second in all targets together, shared
    /// fairly (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = sfgi::options::DEFAULT_NODE_EVENT_RATE)]
    max_event_rate: u64,
    /// After degrading, try full tracing again this long later (0: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    budget_retry: Duration,
    /// Event ring-buffer size per target in bytes (a power of two, at least 4096).
    #[arg(long, value_parser = parse_ring_size, default_value = "1048576")]
    ring_size: u32,
    /// The kubelet's pod log directory (`<namespace>_<pod>_<uid>` entries name the pods).
    #[arg(long, value_name = "DIR", default_value = "/var/log/pods")]
    pods_dir: PathBuf,
    /// The kubelet's container log links (`<pod>_<namespace>_<container>-<id>.log` entries name
    /// the containers).
    #[arg(long, value_name = "DIR", default_value = "/var/log/containers")]
    containers_dir: PathBuf,
    /// Write an evidence bundle here when a group first reaches L3 or L4.
    #[arg(long, value_name = "DIR")]
    evidence_dir: Option<PathBuf>,
    /// Most evidence bundles kept (the oldest are evicted).
    #[arg(long, default_value_t = 100, requires = "evidence_dir")]
    evidence_max_bundles: usize,
    /// Most bytes of evidence kept (`k`, `M`, `G` suffixes).
    #[arg(long, value_parser = parse_size, default_value = "256M", requires = "evidence_dir")]
    evidence_max_size: u64,
    /// Run `sh -c CMD` with the group's JSON on stdin when a group reaches L3 or L4.
    #[arg(long, value_name = "CMD", requires = "evidence_dir")]
    on_alert: Option<String>,
    /// Kill an --on-alert command after this long.
    #[arg(long, value_parser = parse_duration, default_value = "10s", requires = "on_alert")]
    on_alert_timeout: Duration,
}

/// Leak-judgement flags, shared by `attach` and `watch`.
#[derive(clap::Args, Debug)]
struct JudgeArgs {
    /// How long a group must keep growing, or members stay blocked, to be reported.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    threshold: Duration,
    /// Members blocked longer than the threshold that make a group `suspect`.
    #[arg(long, default_value_t = 3)]
    min_repeat: usize,
    /// Growth per minute from which a growing group is severity L3 (else L2).
    #[arg(long, default_value_t = 60.0)]
    fast_growth: f64,
    /// Growth of the process's total goroutine count per minute from which a growing group is
    /// severity L4 (an avalanche). A group that itself gains members this fast for 30 s without
    /// losing any is reported then, before a longer threshold.
    #[arg(long, default_value_t = 1000.0)]
    avalanche: f64,
}

/// `attach --pprof`: the target's pprof endpoint instead of eBPF.
#[derive(clap::Args, Debug)]
struct PprofArgs {
    /// Poll this net/http/pprof endpoint instead of attaching eBPF probes (no root needed):
    /// `http://HOST:PORT`, `https://…`, or `…/debug/pprof/`. Polls `goroutine?debug=2`.
    #[arg(long, value_name = "URL")]
    pprof: Option<String>,
    /// Longest fraction of time the polls may stop the target (Go stops the world to write a
    /// debug=2 dump, ≈ 35–40 ms at 10k goroutines): after a poll that took T, the next waits
    /// at least T / budget (and at least --interval). `0`: --interval only.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "1%", requires = "pprof")]
    pause_budget: f64,
    /// Also poll the goroutineleak profile (Go 1.27; 1.26 with the experiment), at most this
    /// often: the same dump after a GC that marks the leaked goroutines, reported `proven`. It
    /// costs the target a GC cycle each time. Off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "pprof")]
    leak_profile: Option<Duration>,
    /// Longest a poll may take (connect, dump, transfer).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", requires = "pprof")]
    pprof_timeout: Duration,
    /// Send `Authorization: Bearer TOKEN` with every poll.
    #[arg(long, value_name = "TOKEN", requires = "pprof")]
    pprof_token: Option<String>,
    /// An extra request header (`Name: value`). Repeatable.
    #[arg(long, value_name = "HEADER", requires = "pprof")]
    pprof_header: Vec<String>,
    /// Trust the PEM certificates in this file (a private CA or a self-signed endpoint)
    /// instead of the web PKI roots.
    #[arg(long, value_name = "FILE", requires = "pprof")]
    pprof_ca: Option<PathBuf>,
    /// Largest dump accepted per poll, bytes (`k`, `M`, `G` suffixes).
    #[arg(long = "pprof-max-size", value_name = "SIZE", value_parser = parse_size, default_value = "256M", requires = "pprof")]
    max_size: u64,
}

impl PprofArgs {
    /// The options of a pprof session, when `--pprof` was given.
    fn options(
        &self,
        duration: Option<Duration>,
        interval: Duration,
        judge: &JudgeArgs,
        rules: &[PathBuf],
    ) -> Result<Option<sfgi::remote::PprofOptions>> {
        let Some(url) = &self.pprof else {
            return Ok(None);
        };
        let mut headers = Vec::new();
        if let Some(t) = &self.pprof_token {
            headers.push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        for h in &self.pprof_header {
            headers.push(sfgi_dump::pprof::parse_header(h)?);
        }
        let ca_pem = match &self.pprof_ca {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        Ok(Some(sfgi::remote::PprofOptions {
            url: url.clone(),
            endpoint: sfgi_dump::pprof::EndpointOptions {
                timeout: self.pprof_timeout,
                headers,
                limits: sfgi_dump::Limits {
                    max_bytes: self.max_size,
                    ..sfgi_dump::Limits::default()
                },
                ca_pem,
            },
            duration,
            interval,
            pause_budget: self.pause_budget,
            leak_every: self.leak_profile,
            judge: judge.config(),
            rules: rules.to_vec(),
        }))
    }
}

/// Flags of `analyze` and `diff`.
#[derive(clap::Args, Debug)]
struct DumpArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Extra classification rules (TOML; tried before the built-in rules). Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Time between two dumps (default: each dump's own time: a protobuf profile's
    /// timestamp, else the file's modification time).
    #[arg(long, value_parser = parse_duration)]
    interval: Option<Duration>,
    /// How many groups to print full stacks for in the table format.
    #[arg(long, default_value_t = 5)]
    stacks_shown: usize,
    /// Largest dump accepted, bytes (`k`, `M`, `G` suffixes; gzip'd profiles: decompressed).
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    max_size: u64,
}

impl DumpArgs {
    fn options(&self, inputs: Vec<PathBuf>) -> sfgi::analyze::AnalyzeOptions {
        sfgi::analyze::AnalyzeOptions {
            inputs,
            judge: self.judge.config(),
            rules: self.rules.clone(),
            interval: self.interval,
            limits: sfgi_dump::Limits {
                max_bytes: self.max_size,
                ..sfgi_dump::Limits::default()
            },
        }
    }
}

/// The overhead budget's flags, shared by `attach` and `watch`.
#[derive(clap::Args, Clone, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct BudgetArgs {
    /// Overhead budget: probe hits per second in the target above which SFGI degrades by
    /// itself (samples parks, detaches the wake/exit probes, then works from inventory
    /// re-reads), and says so. 0: never degrade. See docs/PERFORMANCE.md.
    #[arg(long, value_name = "N", default_value_t = sfgi_trace::stats::DEFAULT_MAX_EVENT_RATE, conflicts_with = "pprof")]
    max_event_rate: u64,
    /// After degrading, try full tracing again this long later, for 0.5 s; if the target is
    /// still over budget, wait twice as long next time (up to 10m). 0: never.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s", conflicts_with = "pprof")]
    budget_retry: Duration,
    /// Prove leaks by reachability: goroutines blocked on channels or sync objects whose
    /// channel or lock is unreachable from every root (two passes over the target's heap, read
    /// without stopping it) make their group `proven` at once. See docs/ACCURACY.md.
    #[arg(long)]
    prove: bool,
    /// With --prove: prove goroutines once they have been blocked this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    proof_settle: Duration,
    /// Least time between two proofs.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    proof_interval: Duration,
    /// Read budget of a proof, MB/s of the target's memory (0: unlimited); a quarter of it while
    /// the overhead budget has stepped the probes down.
    #[arg(long, value_name = "MB_S", default_value_t = 256)]
    proof_read_rate: u64,
}

impl JudgeArgs {
    fn config(&self) -> JudgeConfig {
        JudgeConfig {
            threshold: self.threshold,
            min_repeat: self.min_repeat,
            fast_growth_per_min: self.fast_growth,
            avalanche_per_min: self.avalanche,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable text and tables.
    Table,
    /// JSON.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 5m)"))
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a share of time, e.g. 1%, 0.5% or 0.01 (0: no budget)".to_string()),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| "a size in bytes, e.g. 1048576, 512k, 256M, 2G".to_string())
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 4096 && n.is_power_of_two() => Ok(n),
        _ => Err("must be a power of two of at least 4096 (bytes)".into()),
    }
}

/// Logs to stderr: `RUST_LOG` (default `warn`), with SFGI's own level raised by `-v`.
fn init_logging(verbose: u8) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    match verbose {
        0 => {}
        1 => {
            b.filter_module("sfgi", log::LevelFilter::Debug);
        }
        _ => {
            b.filter_module("sfgi", log::LevelFilter::Trace);
        }
    }
    b.init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("sfgi: error: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// Writes the output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let res = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    match res {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the output"),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Attach(a) => {
            if let Some(opts) = a
                .pprof
                .options(a.duration, a.interval, &a.judge, &a.rules)?
            {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                let report = rt.block_on(sfgi::remote::run(&opts))?;
                return match a.format {
                    Format::Json => emit(&report.to_json()),
                    Format::Table => emit(&report.to_table(a.stacks_shown)),
                };
            }
            traced::attach(a)
        }
        Command::Agent(a) => traced::agent(a),
        Command::Watch(w) => {
            if let Some(opts) = w
                .pprof
                .options(w.duration, w.interval, &w.judge, &w.rules)?
            {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                let token = token_or_file(w.token.clone(), w.token_file.clone())?;
                let report = rt.block_on(sfgi::remote::watch(&opts, w.listen.as_deref(), token))?;
                return emit(&report.to_table(w.stacks_shown));
            }
            traced::watch(w)
        }
        Command::Analyze { files, dumps } => {
            let report = sfgi::analyze::analyze(&dumps.options(files))?;
            match dumps.format {
                Format::Json => emit(&report.to_json()),
                Format::Table => emit(&report.to_table(dumps.stacks_shown)),
            }
        }
        Command::Diff {
            before,
            after,
            dumps,
        } => {
            let report = sfgi::analyze::diff(&dumps.options(vec![before, after]))?;
            match dumps.format {
                Format::Json => emit(&report.to_json()),
                Format::Table => emit(&report.to_table(dumps.stacks_shown)),
            }
        }
        Command::Inspect {
            binary,
            pid,
            format,
        } => {
            let path = match (binary, pid) {
                (Some(b), _) => b,
                (None, Some(pid)) => traced::exe_of(pid)?,
                (None, None) => anyhow::bail!("give a binary path or --pid"),
            };
            let bin =
                GoBinary::open(&path).with_context(|| format!("reading {}", path.display()))?;
            let report = sfgi_goexe::inspect::report(&bin);
            match format {
                Format::Json => {
                    emit(&serde_json::to_string_pretty(&report).context("encoding JSON")?)
                }
                Format::Table => emit(&sfgi_goexe::inspect::render_text(&report)),
            }
        }
    }
}

/// `--token`, or the first line of `--token-file` (one clear line if it cannot be read or is
/// empty).
fn token_or_file(token: Option<String>, file: Option<PathBuf>) -> Result<Option<String>> {
    let Some(path) = file else {
        return Ok(token);
    };
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("reading --token-file {}", path.display()))?;
    if meta.len() > 4096 {
        anyhow::bail!("--token-file {}: longer than 4096 bytes", path.display());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading --token-file {}", path.display()))?;
    let t = text.lines().next().unwrap_or("").trim();
    if t.is_empty() {
        anyhow::bail!("--token-file {}: empty", path.display());
    }
    Ok(Some(t.to_string()))
}

/// The commands that trace a process (`attach|watch --pid`, `agent`) and `inspect --pid`:
/// Linux only (eBPF, `/proc`, `process_vm_readv`). On a Linux that is not amd64 they are
/// built but refuse to attach in one line (`sfgi_trace::target::check_host`).
#[cfg(target_os = "linux")]
mod traced {
    use super::*;
    use sfgi::attach;
    use sfgi::session::{AttachOptions, ProofOptions};
    use sfgi_trace::probe::TracerOptions;

    /// `attach --pid`.
    pub(super) fn attach(a: AttachArgs) -> Result<()> {
        let AttachArgs {
            pid,
            duration,
            format,
            judge,
            interval,
            rescan,
            rules,
            poll,
            no_stacks,
            stacks_shown,
            ring_size,
            budget,
            ..
        } = a;
        // clap requires --pid when --pprof is absent.
        let pid = pid.context("give --pid or --pprof")?;
        let opts = AttachOptions {
            pid,
            duration,
            poll_interval: poll.min(interval),
            interval,
            rescan,
            judge: judge.config(),
            rules,
            tracer: TracerOptions {
                stacks: !no_stacks,
                ring_bytes: ring_size.unwrap_or(0),
                ..TracerOptions::default()
            },
            max_event_rate: budget.max_event_rate,
            budget_retry: budget.budget_retry,
            proof: budget.proof(),
            go_symbols_only: false,
        };
        preflight()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let report = rt
            .block_on(with_test_panic(attach::run(&opts)))
            .map_err(|e| exited_meanwhile(e, pid))?;
        match format {
            Format::Json => emit(&report.to_json()),
            Format::Table => emit(&report.to_table(stacks_shown)),
        }
    }

    /// `watch --pid`.
    pub(super) fn watch(w: WatchArgs) -> Result<()> {
        let WatchArgs {
            pid,
            interval,
            judge,
            rules,
            listen,
            token,
            token_file,
            rescan,
            stacks_shown,
            ring_size,
            budget,
            ..
        } = w;
        let token = token_or_file(token, token_file)?;
        // clap requires --pid when --pprof is absent.
        let pid = pid.context("give --pid or --pprof")?;
        let opts = sfgi::watch::WatchOptions {
            attach: AttachOptions {
                pid,
                interval,
                judge: judge.config(),
                rules,
                tracer: TracerOptions {
                    ring_bytes: ring_size.unwrap_or(0),
                    ..TracerOptions::default()
                },
                max_event_rate: budget.max_event_rate,
                budget_retry: budget.budget_retry,
                proof: budget.proof(),
                ..AttachOptions::default()
            },
            rescan,
            listen,
            token,
        };
        preflight()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let outcome = rt
            .block_on(with_test_panic(sfgi::watch::run(&opts)))
            .map_err(|e| exited_meanwhile(e, pid))?;
        emit(&outcome.message)?;
        emit(&outcome.report.to_table(stacks_shown))
    }

    /// `agent`.
    pub(super) fn agent(a: AgentArgs) -> Result<()> {
        let AgentArgs {
            listen,
            token,
            token_file,
            config,
            max_targets,
            interval,
            judge,
            rules,
            rescan,
            max_event_rate,
            budget_retry,
            ring_size,
            pods_dir,
            containers_dir,
            evidence_dir,
            evidence_max_bundles,
            evidence_max_size,
            on_alert,
            on_alert_timeout,
        } = a;
        let token = token_or_file(token, token_file)?;
        let opts = sfgi::agent::AgentOptions {
            watch: sfgi::watch::WatchOptions {
                attach: AttachOptions {
                    interval,
                    judge: judge.config(),
                    rules,
                    rescan,
                    tracer: TracerOptions {
                        ring_bytes: ring_size,
                        ..TracerOptions::default()
                    },
                    max_event_rate,
                    budget_retry,
                    ..AttachOptions::default()
                },
                rescan,
                listen: None,
                token: None,
            },
            listen,
            token,
            config,
            max_targets,
            pods_dir,
            containers_dir,
            evidence: evidence_dir.map(|dir| sfgi::agent::evidence::EvidenceOptions {
                dir,
                max_bundles: evidence_max_bundles.max(1),
                max_bytes: evidence_max_size,
                on_alert,
                on_alert_timeout,
            }),
        };
        preflight()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        rt.block_on(sfgi::agent::run(opts))
    }

    /// `inspect --pid`: the executable of a running process.
    pub(super) fn exe_of(pid: u32) -> Result<PathBuf> {
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        if pid == 0 || !PathBuf::from(format!("/proc/{pid}")).exists() {
            anyhow::bail!("no process with PID {pid}");
        }
        // The process exists; its executable may still be unreadable (another
        // user's process): say so rather than "no process".
        if let Err(e) = std::fs::read_link(&exe) {
            anyhow::bail!(
                "cannot read the executable of PID {pid}: {}",
                sfgi_trace::target::exe_error(&e)
            );
        }
        Ok(exe)
    }

    impl BudgetArgs {
        pub(super) fn proof(&self) -> ProofOptions {
            ProofOptions {
                settle: self.prove.then_some(self.proof_settle),
                interval: self.proof_interval,
                read_mb_s: self.proof_read_rate,
                ..ProofOptions::default()
            }
        }
    }

    /// Refuses early, in one line, on a host or process that cannot attach (no CAP_BPF/CAP_PERFMON,
    /// no BPF ring buffers), before anything else fails with a less helpful message.
    fn preflight() -> Result<()> {
        sfgi_trace::target::check_host(&sfgi_trace::target::HostSupport::probe())
            .map_err(anyhow::Error::msg)
    }

    /// Test hook, read once per run: `SFGI_TEST_PANIC=2s` makes `attach` and `watch` panic on
    /// purpose 2 s after they start (that is, while attached), so the hardening tests can check that
    /// a panic detaches every probe too. Only in builds with the `test-hooks` feature (which
    /// `cargo xtask test` makes for that test); a normal build never reads the variable.
    #[cfg(feature = "test-hooks")]
    fn test_panic_after() -> Option<Duration> {
        std::env::var("SFGI_TEST_PANIC")
            .ok()
            .and_then(|s| humantime::parse_duration(&s).ok())
    }

    /// Runs `f`, or panics if it is still running after the time `SFGI_TEST_PANIC` gives (see
    /// [`test_panic_after`]).
    #[cfg(feature = "test-hooks")]
    async fn with_test_panic<T>(f: impl std::future::Future<Output = T>) -> T {
        match test_panic_after() {
            None => f.await,
            Some(d) => tokio::select! {
                r = f => r,
                _ = tokio::time::sleep(d) => panic!("SFGI_TEST_PANIC: panicking on purpose while attached"),
            },
        }
    }

    /// Runs `f`. (Built with the `test-hooks` feature, this is where the `SFGI_TEST_PANIC` hook
    /// panics on purpose; without it there is no hook.)
    #[cfg(not(feature = "test-hooks"))]
    async fn with_test_panic<T>(f: impl std::future::Future<Output = T>) -> T {
        f.await
    }

    /// An attach that failed because the target died meanwhile (e.g. `perf_event_open` on a gone
    /// process) says so first.
    fn exited_meanwhile(e: anyhow::Error, pid: u32) -> anyhow::Error {
        let gone = matches!(
            e.downcast_ref::<sfgi_trace::target::TargetError>(),
            Some(sfgi_trace::target::TargetError::NoProcess(_))
        );
        if gone || sfgi_trace::target::process_alive(pid) {
            e
        } else {
            e.context(format!("PID {pid} exited while sfgi was attaching"))
        }
    }
}

/// Off Linux the traced commands are parsed like anywhere else (one `--help` for every build)
/// and refused in one line; `analyze`, `diff`, `attach|watch --pprof` and `inspect FILE` work.
#[cfg(not(target_os = "linux"))]
mod traced {
    use super::{AgentArgs, AttachArgs, WatchArgs};
    use anyhow::{bail, Result};
    use std::path::PathBuf;

    /// What `attach --pid` and `watch --pid` say off Linux.
    const PID_NEEDS_LINUX: &str = "--pid needs Linux (eBPF); use --pprof URL or `sfgi analyze`";

    /// `attach --pid`: refused.
    pub(super) fn attach(_: AttachArgs) -> Result<()> {
        bail!(PID_NEEDS_LINUX)
    }

    /// `watch --pid`: refused.
    pub(super) fn watch(_: WatchArgs) -> Result<()> {
        bail!(PID_NEEDS_LINUX)
    }

    /// `agent`: refused.
    pub(super) fn agent(_: AgentArgs) -> Result<()> {
        bail!("`sfgi agent` needs Linux (eBPF); use `sfgi watch --pprof URL` or `sfgi analyze`")
    }

    /// `inspect --pid`: refused.
    pub(super) fn exe_of(_: u32) -> Result<PathBuf> {
        bail!("inspect --pid needs Linux (/proc); give the path of the binary instead")
    }
}
