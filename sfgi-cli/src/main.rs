//! `sfgi`: the command line.
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use sfgi::attach::{self, AttachOptions};
use sfgi::goexe::GoBinary;
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Attach {
            pid,
            duration,
            format,
            poll,
            no_stacks,
            stacks_shown,
        } => {
            let opts = AttachOptions {
                pid,
                duration,
                poll_interval: poll,
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
                Format::Json => println!("{}", report.to_json()),
                Format::Table => print!("{}", report.to_table(stacks_shown)),
            }
            Ok(())
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
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("encoding JSON")?
                ),
                Format::Table => print!("{}", sfgi::inspect::render_text(&report)),
            }
            Ok(())
        }
    }
}
