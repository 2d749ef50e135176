//! What `sfgi attach` prints: a table for people, JSON for tools.
use crate::group::Group;
use crate::probe::{MissingProbe, ProbeCounters};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};

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
    /// Things that make this report incomplete, in words.
    pub warnings: Vec<String>,
}

/// The whole report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The traced process.
    pub target: TargetInfo,
    /// Leak verdicts (filled by the leak engine).
    pub leaks: Vec<serde_json::Value>,
    /// Parked goroutines by wait reason, blocking site and creation site.
    pub groups: Vec<Group>,
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
        if self.groups.is_empty() {
            out.push_str("\nno parked goroutines seen\n");
            return out;
        }
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(160)
            .set_header(vec![
                "GROUP",
                "COUNT",
                "WAIT REASON",
                "OLDEST",
                "GC",
                "BLOCKED AT",
                "CREATED BY",
            ]);
        for g in &self.groups {
            table.add_row(vec![
                Cell::new(&g.id),
                Cell::new(g.count),
                Cell::new(&g.wait_reason),
                Cell::new(&g.duration),
                Cell::new(g.gc_cycles_blocked),
                Cell::new(&g.blocked_at),
                Cell::new(&g.created_by),
            ]);
        }
        out.push_str("\nparked goroutines, by wait reason, blocking site and creation site:\n");
        out.push_str(&table.to_string());
        out.push('\n');
        for g in self.groups.iter().take(max_stacks) {
            out.push_str(&format!(
                "\n{} — {} goroutine(s) [{}, {}]: e.g. goroutine {}\n{}",
                g.id,
                g.count,
                g.wait_reason,
                g.duration,
                g.goroutine_ids.first().copied().unwrap_or(0),
                indent(&g.stack_trace)
            ));
            out.push_str(&format!("  created by {}\n", g.created_by));
        }
        if self.groups.len() > max_stacks {
            out.push_str(&format!(
                "\n({} more groups: use --format json for every stack)\n",
                self.groups.len() - max_stacks
            ));
        }
        out
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
