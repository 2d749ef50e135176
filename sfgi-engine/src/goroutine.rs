//! Goroutine records as a source reads them from a live process or a dump: the engine's input
//! besides runtime events.
use serde::Serialize;

/// A goroutine status (`g.atomicstatus` without the `_Gscan` bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum GStatus {
    /// `_Gidle` (0): just allocated.
    #[default]
    Idle,
    /// `_Grunnable` (1): on a run queue.
    Runnable,
    /// `_Grunning` (2): on a CPU (its `sched` is stale).
    Running,
    /// `_Gsyscall` (3): in a system call.
    Syscall,
    /// `_Gwaiting` (4): parked (see the wait reason).
    Waiting,
    /// `_Gdead` (6): unused, on a free list.
    Dead,
    /// `_Gcopystack` (8): its stack is being moved.
    Copystack,
    /// `_Gpreempted` (9): stopped for a suspendG preemption.
    Preempted,
    /// `_Gleaked` (10, Go 1.26+): found leaked by the GC's leak detector.
    Leaked,
    /// `_Gdeadextra` (11, Go 1.26+): dead, reserved for an extra M (cgo callbacks).
    DeadExtra,
}

impl GStatus {
    /// The status for `raw` (scan bit already removed), `None` if it is not a Go status.
    pub fn from_raw(raw: u32) -> Option<GStatus> {
        Some(match raw {
            0 => GStatus::Idle,
            1 => GStatus::Runnable,
            2 => GStatus::Running,
            3 => GStatus::Syscall,
            4 => GStatus::Waiting,
            6 => GStatus::Dead,
            8 => GStatus::Copystack,
            9 => GStatus::Preempted,
            10 => GStatus::Leaked,
            11 => GStatus::DeadExtra,
            _ => return None,
        })
    }

    /// Lower-case name, as used in an inventory's counts by status.
    pub fn name(self) -> &'static str {
        match self {
            GStatus::Idle => "idle",
            GStatus::Runnable => "runnable",
            GStatus::Running => "running",
            GStatus::Syscall => "syscall",
            GStatus::Waiting => "waiting",
            GStatus::Dead => "dead",
            GStatus::Copystack => "copystack",
            GStatus::Preempted => "preempted",
            GStatus::Leaked => "leaked",
            GStatus::DeadExtra => "deadextra",
        }
    }

    /// Whether `g.sched` holds where the goroutine will resume (it is not on a CPU and its
    /// stack is not moving), so its stack can be unwound from there.
    pub fn sched_valid(self) -> bool {
        matches!(
            self,
            GStatus::Runnable
                | GStatus::Syscall
                | GStatus::Waiting
                | GStatus::Preempted
                | GStatus::Leaked
        )
    }

    /// Whether the `g` is unused (dead, or reserved for an extra M).
    pub fn is_dead(self) -> bool {
        matches!(self, GStatus::Dead | GStatus::DeadExtra)
    }
}

/// What a channel a goroutine waits on is, as read from its `hchan` (and its timer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChanKind {
    /// Not read: not a channel wait, or the channel could not be read.
    #[default]
    Unknown,
    /// A channel that carries values.
    Data,
    /// A channel of zero-size elements (`chan struct{}`): a done, stop or ack signal, such as
    /// the channel `ctx.Done()` returns; only closing it (or a send) wakes the waiter.
    Signal,
    /// A timer channel whose one-shot timer is armed.
    Timer,
    /// A ticker channel (a timer with a period), running.
    Ticker,
    /// A timer or ticker channel whose timer was stopped: it will never fire.
    TimerStopped,
    /// A timer channel in the asynchronous mode (Go < 1.23, or a module whose `go.mod` says
    /// an older Go): a `chan time.Time` of capacity 1 fed by a runtime timer, whose state the
    /// inventory could not find (the per-P timer heaps were not readable); when it can, such a
    /// channel is `Timer`, `Ticker` or `TimerStopped` like a synchronous one.
    TimerAsync,
}

impl ChanKind {
    /// Whether a timer may still fire on it (running, or not known to be stopped).
    pub fn live_timer(self) -> bool {
        matches!(
            self,
            ChanKind::Timer | ChanKind::Ticker | ChanKind::TimerAsync
        )
    }

    /// How it reads in an explanation, for one and for `n` > 1 of them.
    pub fn describe(self, n: usize) -> String {
        let (one, many) = match self {
            ChanKind::Unknown => ("a channel (not read)", "channels (not read)"),
            ChanKind::Data => ("a data channel", "data channels"),
            ChanKind::Signal => (
                "a done/stop channel (chan struct{})",
                "done/stop channels (chan struct{})",
            ),
            ChanKind::Timer => ("a timer", "timers"),
            ChanKind::Ticker => ("a ticker", "tickers"),
            ChanKind::TimerStopped => ("a stopped timer", "stopped timers"),
            ChanKind::TimerAsync => ("a timer/ticker channel", "timer/ticker channels"),
        };
        if n == 1 {
            one.to_string()
        } else {
            format!("{n} {many}")
        }
    }
}

/// One sudog of a goroutine's `g.waiting` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SudogInfo {
    /// Runtime address of the sudog.
    pub addr: u64,
    /// `sudog.elem`: the data element (often on the goroutine's stack).
    pub elem: u64,
    /// `sudog.c`: the `*hchan` (0 when not a channel wait).
    pub c: u64,
    /// `sudog.isSelect`.
    pub is_select: bool,
    /// What the channel `c` is (`Unknown` when `c` is 0 or unreadable).
    pub kind: ChanKind,
}

/// A goroutine an incremental inventory re-read did not read whole: it is not parked (running
/// or runnable: only its presence and stack size matter), or its `g` header (goid, status, wait
/// reason, `waitsince`, saved pc/sp/bp, `g.waiting`) is exactly as when it was last read whole,
/// so it has not run since as far as memory can tell, and its stack was not read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unchanged {
    /// `g.goid`.
    pub goid: u64,
    /// Status (scan bit removed).
    pub status: GStatus,
    /// Stack size in bytes.
    pub stack_bytes: u64,
    /// Whether the reader can tell it stayed blocked since the read before: its `g` header
    /// includes `g.trackingSeq`, which the runtime increments every time the goroutine stops
    /// running (a park counter modulo 256), or its `g.waitsince` is set (cleared whenever the
    /// goroutine runs). Without either, a goroutine that woke and parked again at the same
    /// place looks exactly the same.
    pub stayed_blocked: bool,
    /// The reader's slot for it (its index in `allgs`), handed back by
    /// `Engine::ingest_unchanged` when it must be read whole.
    pub slot: u32,
}

impl Unchanged {
    /// Whether it is parked (waiting, leaked or in a system call).
    pub fn parked(&self) -> bool {
        matches!(
            self.status,
            GStatus::Waiting | GStatus::Leaked | GStatus::Syscall
        )
    }
}

/// One live goroutine.
#[derive(Clone, Debug, Serialize)]
pub struct GoroutineInfo {
    /// `g.goid`.
    pub goid: u64,
    /// Status (scan bit removed).
    pub status: GStatus,
    /// `g.atomicstatus` as read (may include the `_Gscan` bit 0x1000).
    pub status_raw: u32,
    /// The wait reason's name (for waiting or leaked goroutines with a non-zero reason).
    pub wait_reason: Option<String>,
    /// `g.waitreason` as read.
    pub wait_reason_raw: u8,
    /// `g.waitsince`, Go `nanotime()` (CLOCK_MONOTONIC ns), approximate: the runtime sets it
    /// lazily, when a GC's stack scan finds the goroutine blocked (waiting or in a syscall)
    /// with `waitsince == 0`, to the previous GC's mark-termination time (`work.tstart`, 0
    /// before the first GC has finished). So 0 means "no GC has seen it blocked yet", and a
    /// non-zero value may predate the actual block by up to one GC interval. Cleared when it
    /// runs again.
    pub waitsince_ns: i64,
    /// `now_monotonic - waitsince` when `waitsince` is set (an over-estimate by up to one GC
    /// interval; assumes SFGI and the target share one time namespace's CLOCK_MONOTONIC).
    pub wait_age_ns: Option<u64>,
    /// `g.gopc`: pc of the `go` statement that created it (runtime address).
    pub gopc: u64,
    /// `g.startpc`: entry of its function (runtime address).
    pub startpc: u64,
    /// `g.parentGoid`.
    pub parent_goid: u64,
    /// `g.stack.lo`.
    pub stack_lo: u64,
    /// `g.stack.hi` (stack bytes = `stack_hi - stack_lo`).
    pub stack_hi: u64,
    /// `g.sched.pc`.
    pub sched_pc: u64,
    /// `g.sched.sp`.
    pub sched_sp: u64,
    /// `g.sched.bp`.
    pub sched_bp: u64,
    /// Frame-pointer unwound stack, innermost first, runtime addresses: `sched.pc`, then return
    /// addresses (symbolize those at `pc - 1`). Empty when `sched` is not valid (running,
    /// copystack, idle).
    pub stack: Vec<u64>,
    /// The unwinding stopped at the unwinder's depth cap or at an unreadable/out-of-bounds frame rather
    /// than at the end of the frame-pointer chain.
    pub stack_truncated: bool,
    /// What it waits on, from `g.waiting`: each sudog's `c` (the `*hchan`), else its `elem`.
    pub waiting_on: Vec<u64>,
    /// The sudogs themselves.
    pub sudogs: Vec<SudogInfo>,
    /// Runtime address of the `g`.
    pub g_addr: u64,
    /// The source knows it stayed blocked since its previous read of it (same park, same
    /// `g.trackingSeq` park counter and `g.waitsince`): it did not wake and park again at the
    /// same place in between. False when unknown (a first read, a dump).
    #[serde(skip)]
    pub stayed_blocked: bool,
}

impl GoroutineInfo {
    /// Stack size in bytes (`stack_hi - stack_lo`, 0 if they are inconsistent).
    pub fn stack_bytes(&self) -> u64 {
        self.stack_hi.saturating_sub(self.stack_lo)
    }
}
