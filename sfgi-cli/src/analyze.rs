//! `sfgi analyze` and `sfgi diff`: saved goroutine dumps (no root, no target) through the same
//! engine, rules, judge and output as a live session. The dumps of one process, in the order
//! they were taken, are a time series: one engine ingests them one at a time (only one dump is
//! in memory), as a live session ingests its inventory reads, so growth and members that never
//! leave are judged the same way; each dump's own wait times ("[chan send, 7 minutes]") date
//! the parks it shows first.
use crate::report::{render_group, render_verdicts, LeakTable};
use anyhow::{bail, Context, Result};
use sfgi_dump::{Dump, DumpKind, Limits, NoStackMap, SharedTable};
use sfgi_engine::classify::Classifier;
use sfgi_engine::engine::{Engine, EngineConfig, InventoryPass, Leak};
use sfgi_engine::format::{go_duration, rfc3339_wall};
use sfgi_engine::judge::JudgeConfig;
use sfgi_trace::clock::wall_ns;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Goroutines handed to the engine at a time.
const BATCH: usize = 65_536;

/// What `sfgi analyze` and `sfgi diff` take.
#[derive(Clone, Debug, Default)]
pub struct AnalyzeOptions {
    /// The dumps, oldest first (`-`: stdin).
    pub inputs: Vec<PathBuf>,
    /// Judge thresholds.
    pub judge: JudgeConfig,
    /// User rules files (tried before the built-in rules).
    pub rules: Vec<PathBuf>,
    /// Time between two dumps; `None`: each dump's own time (a profile's timestamp, else the
    /// file's modification time, else when it was read).
    pub interval: Option<Duration>,
    /// Bounds on each input.
    pub limits: Limits,
}

/// Where a dump's time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// The profile's own timestamp (protobuf profiles).
    Profile,
    /// The file's modification time.
    FileTime,
    /// When SFGI read it (stdin).
    ReadTime,
    /// The first dump's time plus `--interval` per dump.
    Interval,
}

/// One dump read.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DumpInfo {
    /// The file (`-` for stdin).
    pub file: String,
    /// What kind of dump it is.
    pub kind: DumpKind,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// Where that time came from.
    pub time_from: TimeSource,
    /// Goroutines in it.
    pub goroutines: usize,
    /// Of those, parked (waiting, leaked or in a system call).
    pub parked: usize,
    /// The process died of `all goroutines are asleep - deadlock!`.
    pub deadlock: bool,
    /// What makes it incomplete.
    pub warnings: Vec<String>,
}

/// What `sfgi analyze` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AnalyzeReport {
    /// The dumps, oldest first.
    pub dumps: Vec<DumpInfo>,
    /// Groups judged `growing`, `suspect` or `proven` at the last dump, most severe first
    /// (the same fields as `sfgi attach`).
    pub leaks: Vec<Leak>,
    /// Every group of parked goroutines at the last dump.
    pub groups: Vec<Leak>,
    /// What dumps cannot tell, for these dumps.
    pub notes: Vec<String>,
}

/// A series judged: its dumps and the verdicts after each.
struct Series {
    dumps: Vec<DumpInfo>,
    verdicts: Vec<Vec<Leak>>,
    kinds: Vec<DumpKind>,
}

fn name_of(p: &Path) -> String {
    p.display().to_string()
}

/// A file time as ns since the Unix epoch.
fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads one input and parses it into `table`; returns the dump and its own time.
fn load(path: &Path, table: &SharedTable, limits: &Limits) -> Result<(Dump, u64, TimeSource)> {
    let name = name_of(path);
    let data = sfgi_dump::read_input(path, limits).with_context(|| name.clone())?;
    let dump = table
        .with(|t| sfgi_dump::parse(&data, t, limits))
        .with_context(|| name.clone())?;
    let (t, from) = match dump.time_ns {
        Some(t) => (t, TimeSource::Profile),
        None if path == Path::new("-") => (wall_ns(), TimeSource::ReadTime),
        None => match std::fs::metadata(path).and_then(|m| m.modified()) {
            Ok(m) => (unix_ns(m), TimeSource::FileTime),
            Err(_) => (wall_ns(), TimeSource::ReadTime),
        },
    };
    Ok((dump, t, from))
}

/// Reads the inputs one at a time into one engine, judging after each.
fn judge_series(opts: &AnalyzeOptions) -> Result<Series> {
    if opts.inputs.is_empty() {
        bail!("no dump given");
    }
    if opts.inputs.iter().filter(|p| *p == Path::new("-")).count() > 1 {
        bail!("stdin (-) can be read only once");
    }
    let classifier = if opts.rules.is_empty() {
        Classifier::builtin()
    } else {
        Classifier::with_user_rules(&opts.rules)?
    };
    let table = SharedTable::new();
    let mut engine = Engine::new(
        Box::new(table.clone()),
        classifier,
        EngineConfig {
            judge: opts.judge.clone(),
            // The engine's clock is wall-clock time here: dumps are dated in it.
            wall_minus_mono_ns: 0,
            from_dumps: true,
            ..EngineConfig::default()
        },
    );
    let mut series = Series {
        dumps: Vec::new(),
        verdicts: Vec::new(),
        kinds: Vec::new(),
    };
    let mut first_t = 0u64;
    let mut prev: Option<(u64, String)> = None;
    for (i, path) in opts.inputs.iter().enumerate() {
        let (dump, own_t, own_from) = load(path, &table, &opts.limits)?;
        let (t, from) = match opts.interval {
            Some(d) if i > 0 => (
                first_t.saturating_add(
                    u64::try_from(d.as_nanos().saturating_mul(i as u128)).unwrap_or(u64::MAX),
                ),
                TimeSource::Interval,
            ),
            _ => (own_t, own_from),
        };
        if i == 0 {
            first_t = t;
        }
        if let Some((pt, pname)) = &prev {
            if t <= *pt {
                bail!(
                    "{} is not newer than {pname} ({} vs {}): give the dumps oldest first, or their spacing with --interval",
                    name_of(path),
                    rfc3339_wall(t),
                    rfc3339_wall(*pt)
                );
            }
        }
        prev = Some((t, name_of(path)));
        engine.begin_inventory();
        let mut batch = Vec::with_capacity(BATCH.min(dump.goroutines.len()));
        for g in dump.goroutine_infos() {
            batch.push(g);
            if batch.len() == BATCH {
                engine.ingest_goroutines(&batch, t as i64);
                batch.clear();
            }
        }
        engine.ingest_goroutines(&batch, t as i64);
        engine.end_inventory(InventoryPass::default());
        engine.tick(t);
        let incomplete = !dump.warnings.is_empty();
        series
            .verdicts
            .push(engine.verdicts(t, &NoStackMap, incomplete));
        series.kinds.push(dump.kind);
        series.dumps.push(DumpInfo {
            file: name_of(path),
            kind: dump.kind,
            taken_at: rfc3339_wall(t),
            time_from: from,
            goroutines: dump.goroutines.len(),
            parked: dump.parked(),
            deadlock: dump.deadlock,
            warnings: dump.warnings.clone(),
        });
    }
    Ok(series)
}

/// What these dumps cannot tell, in words.
fn notes(kinds: &[DumpKind], dumps: &[DumpInfo]) -> Vec<String> {
    let mut out = Vec::new();
    if kinds.contains(&DumpKind::Text) {
        out.push("ages come from each dump's own wait time: whole minutes, rounded down, counted from when a GC first saw the goroutine blocked (so up to one GC interval early); a goroutine blocked under a minute is aged from the dump it first appears in".to_string());
    }
    if kinds
        .iter()
        .any(|k| matches!(k, DumpKind::GoroutineProfile | DumpKind::LeakProfile))
    {
        out.push("protobuf profiles carry no goroutine ids, states, wait times or creators: wait reasons are read off the stacks, members are numbered per stack (a group whose count does not fall is taken to keep its members) and aged from the first profile they appear in".to_string());
    }
    if dumps.iter().any(|d| d.deadlock) {
        out.push("the process died of a deadlock (all goroutines are asleep): Go proved every waiting goroutine blocked for good, so they are `proven`".to_string());
    }
    out.push("dumps name no objects waited on and no creation stacks: worker pools on one channel are told from leaks by the rules and by growth only".to_string());
    out
}

/// `sfgi analyze`: the verdicts after the last dump.
pub fn analyze(opts: &AnalyzeOptions) -> Result<AnalyzeReport> {
    let mut s = judge_series(opts)?;
    let groups = s.verdicts.pop().unwrap_or_default();
    Ok(AnalyzeReport {
        notes: notes(&s.kinds, &s.dumps),
        dumps: s.dumps,
        leaks: crate::report::leaks_of(&groups),
        groups,
    })
}

fn header(dumps: &[DumpInfo]) -> String {
    let mut out = String::new();
    for d in dumps {
        out.push_str(&format!(
            "{}: {} taken {} ({}), {} goroutines, {} parked{}\n",
            d.file,
            d.kind.describe(),
            d.taken_at,
            match d.time_from {
                TimeSource::Profile => "its own time",
                TimeSource::FileTime => "file time",
                TimeSource::ReadTime => "read time",
                TimeSource::Interval => "--interval",
            },
            d.goroutines,
            d.parked,
            if d.deadlock {
                ", died of a deadlock"
            } else {
                ""
            }
        ));
        for w in &d.warnings {
            out.push_str(&format!("warning: {}: {w}\n", d.file));
        }
    }
    out
}

impl AnalyzeReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable report: the dumps, then the same verdicts as `sfgi attach`.
    pub fn to_table(&self, max_stacks: usize) -> String {
        let mut out = format!("sfgi: analyzed {} dump(s)\n", self.dumps.len());
        out.push_str(&header(&self.dumps));
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&render_verdicts(&self.leaks, &self.groups, max_stacks));
        out
    }
}

/// How a group changed between two dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second dump.
    Appeared,
    /// More members in the second.
    Grew,
    /// Fewer members in the second.
    Shrank,
    /// Only in the first.
    Vanished,
    /// As many members in both.
    Same,
}

impl Change {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Appeared => "appeared",
            Change::Grew => "grew",
            Change::Shrank => "shrank",
            Change::Vanished => "vanished",
            Change::Same => "same",
        }
    }
}

/// One group's change.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupChange {
    /// What happened to it.
    pub change: Change,
    /// Members in the first dump.
    pub before: usize,
    /// Members in the second.
    pub after: usize,
    /// `after - before`.
    pub delta: i64,
    /// The group as judged at the second dump (at the first, for a vanished group; its count
    /// is then 0), the same fields as `sfgi attach`.
    pub group: Leak,
}

/// What `sfgi diff` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DiffReport {
    /// The two dumps.
    pub dumps: Vec<DumpInfo>,
    /// Every group of either, the biggest changes first.
    pub changes: Vec<GroupChange>,
    /// What dumps cannot tell, for these dumps.
    pub notes: Vec<String>,
}

/// `sfgi diff A B`: which groups grew, appeared, shrank or vanished from `A` to `B`.
pub fn diff(opts: &AnalyzeOptions) -> Result<DiffReport> {
    if opts.inputs.len() != 2 {
        bail!("sfgi diff takes two dumps, the older first");
    }
    let s = judge_series(opts)?;
    let (before, after) = match s.verdicts.as_slice() {
        [b, a] => (b, a),
        _ => bail!("sfgi diff takes two dumps, the older first"),
    };
    let mut changes: Vec<GroupChange> = Vec::new();
    for g in after {
        let was = before.iter().find(|b| b.id == g.id).map_or(0, |b| b.count);
        let change = match (was, g.count) {
            (0, _) => Change::Appeared,
            (b, a) if a > b => Change::Grew,
            (b, a) if a < b => Change::Shrank,
            _ => Change::Same,
        };
        changes.push(GroupChange {
            change,
            before: was,
            after: g.count,
            delta: g.count as i64 - was as i64,
            group: g.clone(),
        });
    }
    for b in before {
        if after.iter().any(|a| a.id == b.id) {
            continue;
        }
        let mut group = b.clone();
        group.count = 0;
        changes.push(GroupChange {
            change: Change::Vanished,
            before: b.count,
            after: 0,
            delta: -(b.count as i64),
            group,
        });
    }
    changes.sort_by(|x, y| {
        (
            x.change == Change::Same,
            std::cmp::Reverse(x.delta.abs()),
            x.change,
        )
            .cmp(&(
                y.change == Change::Same,
                std::cmp::Reverse(y.delta.abs()),
                y.change,
            ))
    });
    Ok(DiffReport {
        notes: notes(&s.kinds, &s.dumps),
        dumps: s.dumps,
        changes,
    })
}

impl DiffReport {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable diff: the changed groups in the one leak table (its trend column
    /// says how each changed), then the stacks of the first `max_stacks` that grew or appeared.
    pub fn to_table(&self, max_stacks: usize) -> String {
        let mut out = String::from("sfgi: diff\n");
        out.push_str(&header(&self.dumps));
        let count = |c: Change| self.changes.iter().filter(|g| g.change == c).count();
        out.push_str(&format!(
            "groups: {} grew, {} appeared, {} shrank, {} vanished, {} unchanged\n",
            count(Change::Grew),
            count(Change::Appeared),
            count(Change::Shrank),
            count(Change::Vanished),
            count(Change::Same)
        ));
        let changed: Vec<&GroupChange> = self
            .changes
            .iter()
            .filter(|g| g.change != Change::Same)
            .collect();
        if changed.is_empty() {
            out.push_str("\nno group changed\n");
            return out;
        }
        let leaks: Vec<Leak> = changed.iter().map(|g| g.group.clone()).collect();
        let trend = |id: &str| {
            changed
                .iter()
                .find(|g| g.group.id == id)
                .map(|g| {
                    format!(
                        "{} → {} ({:+}) {}",
                        g.before,
                        g.after,
                        g.delta,
                        g.change.as_str()
                    )
                })
                .unwrap_or_default()
        };
        let table = LeakTable {
            width: LeakTable::REPORT.width,
            trend: Some(&trend),
        };
        out.push('\n');
        out.push_str(&table.render(&leaks));
        out.push('\n');
        for g in changed
            .iter()
            .filter(|g| matches!(g.change, Change::Grew | Change::Appeared))
            .take(max_stacks)
        {
            out.push_str(&format!(
                "\n{} {}: {} → {}",
                g.group.id,
                g.change.as_str(),
                g.before,
                g.after
            ));
            out.push_str(&render_group(&g.group));
        }
        if self.dumps.len() == 2 {
            out.push_str(&format!("\n(the second dump is {} after the first; run `sfgi analyze` on both for the judge's verdicts)\n", spacing(&self.dumps)));
        }
        out
    }
}

/// The time between the two dumps, in words.
fn spacing(dumps: &[DumpInfo]) -> String {
    let parse = |s: &str| humantime::parse_rfc3339(s).ok();
    match (parse(&dumps[0].taken_at), parse(&dumps[1].taken_at)) {
        (Some(a), Some(b)) => {
            go_duration(b.duration_since(a).map(|d| d.as_secs_f64()).unwrap_or(0.0))
        }
        _ => "?".to_string(),
    }
}
