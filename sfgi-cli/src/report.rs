//! What `sfgi attach` prints: a table for people, JSON for tools.
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use sfgi_engine::engine::{EngineHealth, Leak};
use sfgi_engine::judge::Status;
use sfgi_trace::stats::{BudgetStats, DiagStats, MissingProbe, ProbeCounters};

/// The traced process.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetInfo {
    /// Its PID.
    pub pid: u32,
    /// Its executable.
    pub binary: String,
    /// Go version it was built with (`go1.27.3`).
    pub go_version: String,
    /// Whether its symbol table was stripped.
    pub stripped: bool,
    /// Whether it is position-independent.
    pub pie: bool,
    /// Its resident set size at the end, bytes.
    pub rss_bytes: Option<u64>,
}

/// One probe's placement and counters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeStats {
    /// Short name.
    pub probe: String,
    /// Instrumented runtime function.
    pub function: String,
    /// Probed address (link-time), hex.
    pub address: String,
    /// Whether the probe sits past the stack-check prologue.
    pub past_prologue: bool,
    /// Counters.
    #[serde(flatten)]
    pub counters: ProbeCounters,
}

/// Session statistics.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Events received.
    pub events: u64,
    /// Events lost (ring buffer full), all probes.
    pub dropped: u64,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Failed reads of target memory in probes.
    pub read_errors: u64,
    /// Failed stack captures.
    pub stack_errors: u64,
    /// Completed GC cycles seen.
    pub gc_cycles: u64,
    /// Goroutines seen created.
    pub spawned: u64,
    /// Goroutines seen exit.
    pub exited: u64,
    /// Live goroutines SFGI knows of at the end.
    pub goroutines: usize,
    /// Of those, parked.
    pub parked: usize,
    /// Seconds attached.
    pub duration_seconds: f64,
    /// Whether the target exited while attached.
    pub target_exited: bool,
    /// Per-probe placement and counters.
    pub probes: Vec<ProbeStats>,
    /// Probes that could not be placed.
    pub missing_probes: Vec<MissingProbe>,
    /// Inventory reads and reconciliations.
    pub inventory: Option<EngineHealth>,
    /// Things that make this report incomplete, in words.
    pub warnings: Vec<String>,
    /// The overhead budget: mode, probe hit rate, SFGI's own CPU and memory (see
    /// `sfgi_trace::budget`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStats>,
    /// The eBPF programs' own diagnostics (`-v`): records logged and records the rate limit left
    /// out, per kind. The failures themselves are counted in `read_errors`, `stack_errors`,
    /// `dropped` and per probe, with or without `-v`.
    pub ebpf_log: DiagStats,
    /// `attach --pprof`: the polls of the target's pprof endpoint (absent with eBPF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pprof: Option<PprofStats>,
}

/// What the polls of `attach --pprof` cost and gave, for the report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PprofStats {
    /// The `/debug/pprof/` base polled.
    pub endpoint: String,
    /// Polls answered.
    pub polls: u64,
    /// Polls that failed.
    pub failed: u64,
    /// Of the answered polls, goroutineleak ones.
    pub leak_polls: u64,
    /// Whether the endpoint serves the goroutineleak profile (`None`: not asked).
    pub leak_profile: Option<bool>,
    /// The last request's duration, ms: an upper bound of the target's pause for it.
    pub last_poll_ms: f64,
    /// The longest request, ms.
    pub max_poll_ms: f64,
    /// The time between polls the pause budget chose last, s.
    pub interval_seconds: f64,
}

/// The groups of `groups` that are leaks (`growing`, `suspect`, `proven`), in their order: a
/// report's `leaks`.
pub fn leaks_of(groups: &[Leak]) -> Vec<Leak> {
    groups
        .iter()
        .filter(|g| g.status.is_leak())
        .cloned()
        .collect()
}

/// The whole report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The traced process.
    pub target: TargetInfo,
    /// Groups judged `growing`, `suspect` or `proven`, most severe first.
    pub leaks: Vec<Leak>,
    /// Every group of parked goroutines (including `resident` and `normal`), same fields.
    pub groups: Vec<Leak>,
    /// Session statistics.
    pub stats: Stats,
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable report.
    pub fn to_table(&self, max_stacks: usize) -> String {
        let t = &self.target;
        let s = &self.stats;
        if let Some(p) = &s.pprof {
            let mut out = format!(
                "sfgi: {} polled {} times over {:.1}s ({} failed); last poll {:.1} ms, longest {:.1} ms (upper bounds of the target's pause), polls every {:.1}s\n",
                p.endpoint, p.polls, s.duration_seconds, p.failed, p.last_poll_ms, p.max_poll_ms, p.interval_seconds
            );
            out.push_str(&format!(
                "goroutines {} ({} parked) at the last poll{}\n",
                s.goroutines,
                s.parked,
                match p.leak_profile {
                    Some(true) => format!(", {} goroutineleak polls", p.leak_polls),
                    Some(false) => ", no goroutineleak profile served".to_string(),
                    None => String::new(),
                }
            ));
            for w in &s.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&render_verdicts(&self.leaks, &self.groups, max_stacks));
            return out;
        }
        let mut out = format!(
            "sfgi: PID {} {} ({}{}{}) traced for {:.1}s\n",
            t.pid,
            t.binary,
            t.go_version,
            if t.stripped { ", stripped" } else { "" },
            if t.pie { ", PIE" } else { "" },
            s.duration_seconds
        );
        out.push_str(&format!(
            "events {}  dropped {}  spawned {}  exited {}  GC cycles {}  goroutines known {} ({} parked)\n",
            s.events, s.dropped, s.spawned, s.exited, s.gc_cycles, s.goroutines, s.parked
        ));
        for w in &s.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        if s.target_exited {
            out.push_str("the target exited while SFGI was attached\n");
        }
        if s.ebpf_log.enabled {
            out.push_str(&format!(
                "eBPF diagnostics: {} logged, {} left out by the rate limit ({} per kind and CPU)\n",
                s.ebpf_log.logged, s.ebpf_log.suppressed, s.ebpf_log.limit_per_cpu
            ));
        }
        if let Some(h) = &s.inventory {
            if h.inventories > 0 {
                out.push_str(&format!(
                    "inventory: {} reads, last {:.1} ms, {} unreadable\n",
                    h.inventories, h.inventory_ms, h.inventory_unreadable
                ));
            }
        }
        out.push_str(&render_verdicts(&self.leaks, &self.groups, max_stacks));
        out
    }
}

/// The verdicts part of every report (attach, watch's final report, analyze): the leak table,
/// the resident groups in one line, and the stacks of the first `max_stacks` leak groups.
pub fn render_verdicts(leaks: &[Leak], groups: &[Leak], max_stacks: usize) -> String {
    let mut out = String::new();
    if leaks.is_empty() {
        out.push_str("\nno leaks found");
    } else {
        out.push_str(&format!("\n{} leak group(s):\n", leaks.len()));
        out.push_str(&LeakTable::REPORT.render(leaks));
        out.push('\n');
    }
    let resident: Vec<&Leak> = groups
        .iter()
        .filter(|g| g.status == Status::Resident)
        .collect();
    if !resident.is_empty() {
        let n: usize = resident.iter().map(|g| g.count).sum();
        out.push_str(&format!(
            "{}{} resident goroutine(s) in {} healthy-looking group(s) (pools, keep-alive connections, tickers) not reported as leaks\n",
            if leaks.is_empty() { ": " } else { "" },
            n,
            resident.len()
        ));
    } else if leaks.is_empty() {
        out.push('\n');
    }
    for g in leaks.iter().take(max_stacks) {
        out.push_str(&render_group(g));
    }
    if leaks.len() > max_stacks {
        out.push_str(&format!(
            "\n({} more leak groups: use --format json for every stack)\n",
            leaks.len() - max_stacks
        ));
    }
    out
}

/// One group in words, with one member's stack and where it was created.
pub fn render_group(g: &Leak) -> String {
    format!(
        "\n{} {} {} [{}] — {} goroutine(s), oldest blocked {}, {:+.1}/min\n  {}\n  fix: {}\n  e.g. goroutine {} [{}]:\n{}  created by {}\n",
        g.id,
        g.status.as_str(),
        g.severity.map(|s| s.as_str()).unwrap_or("-"),
        g.pattern,
        g.count,
        g.duration,
        g.growth_per_minute,
        g.explanation,
        g.fix_hint,
        g.goroutine_ids.first().copied().unwrap_or(0),
        g.wait_reason,
        indent(&g.stack_trace),
        g.created_by,
    )
}

/// The one leak table, in the report's layout (wait reason, oldest) or the live view's
/// (a trend sparkline per group, age, signed growth).
pub struct LeakTable<'a> {
    /// Total width in columns.
    pub width: u16,
    /// The live view's trend sparkline of a group (by id); `None`: the report's layout.
    pub trend: Option<&'a dyn Fn(&str) -> String>,
}

impl LeakTable<'_> {
    /// The report's layout, 170 columns wide.
    pub const REPORT: LeakTable<'static> = LeakTable {
        width: 170,
        trend: None,
    };

    /// `leaks` as a table.
    pub fn render(&self, leaks: &[Leak]) -> String {
        let (age, sixth) = match self.trend {
            Some(_) => ("AGE", "TREND"),
            None => ("OLDEST", "WAIT REASON"),
        };
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(self.width)
            .set_header(vec![
                "GROUP",
                "STATUS",
                "SEV",
                "PATTERN",
                "COUNT",
                "GROWTH/MIN",
                age,
                sixth,
                "BLOCKED AT",
                "CREATED BY",
            ]);
        for g in leaks {
            let (growth, sixth) = match self.trend {
                Some(trend) => (format!("{:+.1}", g.growth_per_minute), trend(&g.id)),
                None => (format!("{:.1}", g.growth_per_minute), g.wait_reason.clone()),
            };
            table.add_row(vec![
                Cell::new(&g.id),
                Cell::new(g.status.as_str()),
                Cell::new(g.severity.map(|s| s.as_str()).unwrap_or("-")),
                Cell::new(&g.pattern),
                Cell::new(g.count),
                Cell::new(growth),
                Cell::new(&g.duration),
                Cell::new(sixth),
                Cell::new(short_site(&g.blocked_at)),
                Cell::new(short_site(&g.created_by)),
            ]);
        }
        table.to_string()
    }
}

/// `function at /long/path/file.go:12` → `function at file.go:12` (the JSON keeps full paths).
pub fn short_site(site: &str) -> String {
    match site.split_once(" at ") {
        Some((func, loc)) => {
            let file = loc.rsplit('/').next().unwrap_or(loc);
            format!("{func} at {file}")
        }
        None => site.to_string(),
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
