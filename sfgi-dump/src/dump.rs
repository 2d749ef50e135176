//! One dump: its goroutines (stacks as the [`FrameTable`](crate::table::FrameTable)'s
//! synthetic addresses) and what the dump itself says about them, and those goroutines as the
//! engine's [`GoroutineInfo`] records.
use sfgi_engine::goroutine::{GStatus, GoroutineInfo};

/// Bounds on what one input may hold: past them it is refused, never read unbounded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest input, bytes (after gzip decompression too).
    pub max_bytes: u64,
    /// Most goroutines in one dump.
    pub max_goroutines: usize,
    /// Most frames kept per goroutine (the rest are counted as truncated; Go itself prints at
    /// most 100).
    pub max_frames: usize,
    /// Longest line inside a goroutine's stack, bytes.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 << 20,
            max_goroutines: 2_000_000,
            max_frames: 256,
            max_line: 64 << 10,
        }
    }
}

/// What kind of dump it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpKind {
    /// Go's traceback text: `debug=2`, SIGQUIT, a panic or a fatal error.
    Text,
    /// A protobuf `goroutine` profile: stacks and counts, no ids, states or wait times.
    GoroutineProfile,
    /// A protobuf `goroutineleak` profile: the stacks of goroutines Go's GC proved leaked.
    LeakProfile,
}

impl DumpKind {
    /// How it is named in reports.
    pub fn describe(self) -> &'static str {
        match self {
            DumpKind::Text => "goroutine dump (text)",
            DumpKind::GoroutineProfile => "pprof goroutine profile (protobuf)",
            DumpKind::LeakProfile => "pprof goroutineleak profile (protobuf)",
        }
    }
}

/// One goroutine of a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpGoroutine {
    /// Its goid (synthetic for protobuf profiles, which have none: see
    /// [`crate::table::FrameTable::stack_number`]).
    pub goid: u64,
    /// Its status.
    pub status: GStatus,
    /// Its wait reason, as the table's raw number (0: none).
    pub reason: u8,
    /// How long it has waited, as the dump says: whole minutes, present only from one minute
    /// on (Go counts from when a GC first saw it blocked).
    pub wait_minutes: Option<u64>,
    /// Whether it is locked to its OS thread.
    pub locked_to_thread: bool,
    /// Its stack, innermost first, as synthetic addresses.
    pub stack: Vec<u64>,
    /// Frames were left out (by Go: `...additional frames elided...`, or past SFGI's limit).
    pub stack_truncated: bool,
    /// Synthetic address of the `go` statement that created it (0: unknown, or the main
    /// goroutine).
    pub created_by: u64,
    /// Goid of the goroutine that created it (0: unknown).
    pub creator: u64,
}

/// One dump.
#[derive(Clone, Debug)]
pub struct Dump {
    /// What kind.
    pub kind: DumpKind,
    /// Its goroutines.
    pub goroutines: Vec<DumpGoroutine>,
    /// The process died of `fatal error: all goroutines are asleep - deadlock!`: Go proved
    /// that no goroutine could ever run again.
    pub deadlock: bool,
    /// When it was taken (ns since the Unix epoch), if the dump says (protobuf profiles do).
    pub time_ns: Option<u64>,
    /// Lines outside goroutine stacks that were skipped (a crash's message, registers, `exit
    /// status 2`): informational.
    pub skipped_lines: usize,
    /// Things that make the dump incomplete, in words.
    pub warnings: Vec<String>,
}

impl Dump {
    /// Parked goroutines (waiting, leaked or in a system call).
    pub fn parked(&self) -> usize {
        self.goroutines
            .iter()
            .filter(|g| {
                matches!(
                    g.status,
                    GStatus::Waiting | GStatus::Leaked | GStatus::Syscall
                )
            })
            .count()
    }

    /// The goroutines as the engine takes them, one at a time (a dump of a million goroutines
    /// is ingested in batches, never copied whole). `wait_age_ns` is the dump's own wait time
    /// (whole minutes). A deadlock crash marks every waiting goroutine leaked: the runtime
    /// proved none can run again.
    pub fn goroutine_infos(&self) -> impl Iterator<Item = GoroutineInfo> + '_ {
        self.goroutines.iter().map(|g| {
            let status = if self.deadlock && g.status == GStatus::Waiting {
                GStatus::Leaked
            } else {
                g.status
            };
            GoroutineInfo {
                goid: g.goid,
                status,
                status_raw: status_raw(status),
                wait_reason: None,
                wait_reason_raw: g.reason,
                waitsince_ns: 0,
                wait_age_ns: g.wait_minutes.map(|m| m.saturating_mul(60_000_000_000)),
                gopc: g.created_by,
                startpc: 0,
                parent_goid: g.creator,
                stack_lo: 0,
                stack_hi: 0,
                sched_pc: g.stack.first().copied().unwrap_or(0),
                sched_sp: 0,
                sched_bp: 0,
                stack: g.stack.clone(),
                stack_truncated: g.stack_truncated,
                waiting_on: Vec::new(),
                sudogs: Vec::new(),
                g_addr: 0,
                // Unknown between dumps (the engine judges re-parks in dumps by their wait
                // times: `EngineConfig::from_dumps`).
                stayed_blocked: false,
            }
        })
    }
}

/// Go's number for a status.
fn status_raw(s: GStatus) -> u32 {
    match s {
        GStatus::Idle => 0,
        GStatus::Runnable => 1,
        GStatus::Running => 2,
        GStatus::Syscall => 3,
        GStatus::Waiting => 4,
        GStatus::Dead => 6,
        GStatus::Copystack => 8,
        GStatus::Preempted => 9,
        GStatus::Leaked => 10,
        GStatus::DeadExtra => 11,
    }
}
