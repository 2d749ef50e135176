//! `sfgi`: the command line.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sfgi::attach::{self, AttachOptions};
use sfgi::goexe::GoBinary;
use sfgi::judge::JudgeConfig;
use sfgi::probe::TracerOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// SFGI, the SiliconFlow Goroutine Inspector: finds goroutine leaks in a running Go program.
#[derive(Parser, Debug)]
#[command(name = "sfgi", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach to a running Go process with eBPF uprobes and report its parked goroutines.
    Attach {
        /// PID of the Go process.
        #[arg(long)]
        pid: u32,
        /// How long to trace (e.g. `10s`, `5m`); default: until Ctrl-C or the target exits.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// How long a group must keep growing, or members stay blocked, to be reported.
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        threshold: Duration,
        /// Members blocked longer than the threshold that make a group `suspect`.
        #[arg(long, default_value_t = 3)]
        min_repeat: usize,
        /// How often group populations are sampled (growth resolution).
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        interval: Duration,
        /// Re-read the goroutine inventory this often to reconcile missed events (0: only at the
        /// start and the end).
        #[arg(long, value_parser = parse_duration, default_value = "30s")]
        rescan: Duration,
        /// Extra classification rules (TOML; tried before the built-in rules). Repeatable.
        #[arg(long = "rules", value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// How often to drain the event ring buffer.
        #[arg(long, value_parser = parse_duration, default_value = "50ms")]
        poll: Duration,
        /// Do not capture stacks (cheaper; no blocking or creation sites).
        #[arg(long)]
        no_stacks: bool,
        /// How many groups to print full stacks for in the table format.
        #[arg(long, default_value_t = 5)]
        stacks_shown: usize,
    },
    /// Attach and keep watching: a live table of leak groups, refreshed every --interval, until
    /// Ctrl-C or the target exits (then the final report). With --listen, also serves
    /// /sfgi/leaks, /sfgi/groups, /sfgi/profile, /sfgi/trigger-scan and /metrics over HTTP.
    Watch {
        /// PID of the Go process.
        #[arg(long)]
        pid: u32,
        /// Refresh (and population sampling) interval.
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        interval: Duration,
        /// How long a group must keep growing, or members stay blocked, to be reported.
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        threshold: Duration,
        /// Members blocked longer than the threshold that make a group `suspect`.
        #[arg(long, default_value_t = 3)]
        min_repeat: usize,
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
        /// Re-read the goroutine inventory this often to reconcile missed events (0: only at the
        /// start and on trigger-scan).
        #[arg(long, value_parser = parse_duration, default_value = "30s")]
        rescan: Duration,
        /// How many groups to print full stacks for in the final report.
        #[arg(long, default_value_t = 5)]
        stacks_shown: usize,
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
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
        Command::Attach {
            pid,
            duration,
            format,
            threshold,
            min_repeat,
            interval,
            rescan,
            rules,
            poll,
            no_stacks,
            stacks_shown,
        } => {
            let opts = AttachOptions {
                pid,
                duration,
                poll_interval: poll.min(interval),
                interval,
                rescan: (!rescan.is_zero()).then_some(rescan),
                judge: JudgeConfig {
                    threshold,
                    min_repeat,
                    ..JudgeConfig::default()
                },
                rules,
                tracer: TracerOptions {
                    stacks: !no_stacks,
                    ..TracerOptions::default()
                },
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = rt.block_on(attach::run(&opts))?;
            match format {
                Format::Json => emit(&report.to_json()),
                Format::Table => emit(&report.to_table(stacks_shown)),
            }
        }
        Command::Watch {
            pid,
            interval,
            threshold,
            min_repeat,
            rules,
            listen,
            token,
            rescan,
            stacks_shown,
        } => {
            let opts = sfgi::watch::WatchOptions {
                attach: AttachOptions {
                    pid,
                    interval,
                    judge: JudgeConfig {
                        threshold,
                        min_repeat,
                        ..JudgeConfig::default()
                    },
                    rules,
                    ..AttachOptions::default()
                },
                rescan: (!rescan.is_zero()).then_some(rescan),
                listen,
                token,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let outcome = rt.block_on(sfgi::watch::run(&opts))?;
            emit(&outcome.message)?;
            emit(&outcome.report.to_table(stacks_shown))
        }
        Command::Inspect {
            binary,
            pid,
            format,
        } => {
            let path = match (binary, pid) {
                (Some(b), _) => b,
                (None, Some(pid)) => {
                    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
                    if !exe.exists() {
                        anyhow::bail!("no process with PID {pid}");
                    }
                    exe
                }
                (None, None) => anyhow::bail!("give a binary path or --pid"),
            };
            let bin =
                GoBinary::open(&path).with_context(|| format!("reading {}", path.display()))?;
            let report = sfgi::inspect::report(&bin);
            match format {
                Format::Json => {
                    emit(&serde_json::to_string_pretty(&report).context("encoding JSON")?)
                }
                Format::Table => emit(&sfgi::inspect::render_text(&report)),
            }
        }
    }
}
