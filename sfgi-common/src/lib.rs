//! Types shared by SFGI's eBPF programs (`sfgi-ebpf`) and its userspace (`sfgi-cli`).
//!
//! Everything here is `#[repr(C)]` and plain data: the kernel side writes these bytes into the
//! ring buffer and the user side reads them back. Keep both sides compiled from this one file.
#![no_std]

/// One record in the `EVENTS` ring buffer. Fixed size (64 bytes) so the eBPF side can reserve it
/// without a variable-length copy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` at the probe hit (CLOCK_MONOTONIC, nanoseconds).
    pub ts_ns: u64,
    /// The goroutine the event is about (new, parking, woken, running or exiting goroutine).
    pub goid: u64,
    /// Spawn and park: the creator's goid (`g.parentGoid`). Ready: the waker's goid (0 if unknown).
    pub other_goid: u64,
    /// Park: the return address into `gopark`'s caller.
    pub pc: u64,
    /// Spawn: the goroutine's start function pc (`g.startpc`). Park: the `lock` argument of
    /// `gopark` (for channel operations, the channel's own lock: the object parked on).
    pub addr: u64,
    /// Spawn and park: pc of the `go` statement that created the goroutine (`g.gopc`).
    pub gopc: u64,
    /// Park: the raw `waitReason` number of this binary's Go version.
    pub aux: u32,
    /// A `STACKS` id for the user stack at the probe, or a negative errno when none was taken.
    pub stack_id: i32,
    /// One of [`EventKind`] as `u32`.
    pub kind: u32,
    /// Kernel thread id the probe fired on.
    pub tid: u32,
}

impl Event {
    /// Size of one record in bytes.
    pub const SIZE: usize = core::mem::size_of::<Event>();
}

/// What an [`Event`] records.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A goroutine was created (`go` statement): in `runtime.newproc`'s system-stack closure, at the
    /// call that queues the new `g`.
    Spawn = 1,
    /// A goroutine parked in `runtime.gopark`.
    Park = 2,
    /// A parked goroutine was made runnable by `runtime.ready`.
    Ready = 3,
    /// A goroutine that SFGI saw park started running again without passing `ready`
    /// (netpoll, `injectglist`): from `runtime.execute`.
    Run = 4,
    /// A goroutine finished (`runtime.goexit1`).
    Exit = 5,
    /// A GC cycle started (`runtime.gcStart`; may be a no-op call that returns early).
    GcStart = 6,
    /// A GC cycle's mark termination ran (`runtime.gcMarkTermination`, once per cycle).
    GcEnd = 7,
}

impl EventKind {
    /// Decodes the `kind` field of an [`Event`].
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Spawn,
            2 => Self::Park,
            3 => Self::Ready,
            4 => Self::Run,
            5 => Self::Exit,
            6 => Self::GcStart,
            7 => Self::GcEnd,
            _ => return None,
        })
    }
}

/// The probes SFGI attaches; the index of each in the `COUNTERS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeId {
    /// Goroutine creation.
    Spawn = 0,
    /// `runtime.gopark`.
    Park = 1,
    /// `runtime.ready`.
    Ready = 2,
    /// `runtime.execute`.
    Run = 3,
    /// `runtime.goexit1`.
    Exit = 4,
    /// `runtime.gcStart`.
    GcStart = 5,
    /// `runtime.gcMarkTermination`.
    GcEnd = 6,
}

impl ProbeId {
    /// Short name (`park`, `gc_start`, …), as reports, metrics and the probes' diagnostics say.
    #[inline(always)]
    pub const fn name(self) -> &'static str {
        match self {
            ProbeId::Spawn => "spawn",
            ProbeId::Park => "park",
            ProbeId::Ready => "ready",
            ProbeId::Run => "run",
            ProbeId::Exit => "exit",
            ProbeId::GcStart => "gc_start",
            ProbeId::GcEnd => "gc_end",
        }
    }
}

/// Number of probes (rows of counters).
pub const PROBE_COUNT: u32 = 7;

/// Counter columns per probe in the `COUNTERS` array: index = `probe * COUNTER_KINDS + kind`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    /// Probe hits in the target process.
    Hits = 0,
    /// Events written to the ring buffer.
    Emitted = 1,
    /// Events lost because the ring buffer was full.
    Dropped = 2,
    /// Failed reads of target memory (`bpf_probe_read_user`).
    ReadErrors = 3,
    /// Failed user-stack captures (stack map full or collision).
    StackErrors = 4,
    /// Hits that emitted nothing on purpose: parks left out by 1-in-N sampling (and the wakes
    /// that pair with them), wakes of goroutines whose park was not reported.
    Filtered = 5,
    /// Parks that reused the goroutine's previous stack id instead of walking the stack (same
    /// goroutine, same stack pointer and same top frames as its last park).
    StackReused = 6,
}

/// Number of counter kinds per probe.
pub const COUNTER_KINDS: u32 = 7;

/// Length of the `COUNTERS` per-CPU array.
pub const COUNTER_SLOTS: u32 = PROBE_COUNT * COUNTER_KINDS;

/// Index of one counter in the `COUNTERS` array.
pub const fn counter_index(probe: ProbeId, kind: CounterKind) -> u32 {
    probe as u32 * COUNTER_KINDS + kind as u32
}

/// Kinds of eBPF-side diagnostics: aya-log records from the rare failure paths of the probes,
/// each kind rate-limited on its own (the first [`DIAG_LOG_LIMIT`] per CPU are logged, the rest
/// only counted). Index of each in the `DIAG` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagKind {
    /// A failed read of target memory (`bpf_probe_read_user`): probe, field, address, error.
    ReadError = 0,
    /// A failed insert into the per-goroutine state map (`GSTATE`).
    StateInsert = 1,
    /// A user stack the stack map did not store (full, or a hash collision).
    StackError = 2,
    /// A ring-buffer reservation that failed (the event is dropped).
    RingReserve = 3,
}

impl DiagKind {
    /// Every kind, in `DIAG` order.
    pub const ALL: [DiagKind; DIAG_KINDS as usize] = [
        DiagKind::ReadError,
        DiagKind::StateInsert,
        DiagKind::StackError,
        DiagKind::RingReserve,
    ];

    /// Short name (`read_error`, …), as the report's stats show it.
    pub const fn name(self) -> &'static str {
        match self {
            DiagKind::ReadError => "read_error",
            DiagKind::StateInsert => "state_insert",
            DiagKind::StackError => "stack_error",
            DiagKind::RingReserve => "ring_reserve",
        }
    }
}

/// Number of diagnostic kinds (length of the `DIAG` array).
pub const DIAG_KINDS: u32 = 4;

/// Records of one diagnostic kind logged per CPU; past it they are only counted.
pub const DIAG_LOG_LIMIT: u64 = 16;

/// The `log` target of the eBPF programs' records (aya-log forwards them to the `log` crate).
pub const EBPF_LOG_TARGET: &str = "sfgi::ebpf";

/// Maximum user-stack depth the `STACKS` map stores (the kernel's `PERF_MAX_STACK_DEPTH` is 127).
pub const MAX_STACK_DEPTH: usize = 127;

/// Names of the eBPF programs in the object, one per probe.
pub mod programs {
    /// Goroutine creation probe.
    pub const SPAWN: &str = "sfgi_spawn";
    /// `runtime.gopark` probe.
    pub const PARK: &str = "sfgi_park";
    /// `runtime.ready` probe.
    pub const READY: &str = "sfgi_ready";
    /// `runtime.execute` probe.
    pub const RUN: &str = "sfgi_run";
    /// `runtime.goexit1` probe.
    pub const EXIT: &str = "sfgi_exit";
    /// `runtime.gcStart` probe.
    pub const GC_START: &str = "sfgi_gc_start";
    /// `runtime.gcMarkTermination` probe.
    pub const GC_END: &str = "sfgi_gc_end";
}

/// Names of the eBPF maps in the object.
pub mod maps {
    /// Ring buffer of [`super::Event`] records.
    pub const EVENTS: &str = "EVENTS";
    /// Stack-trace map of user stacks (deduplicated by the kernel).
    pub const STACKS: &str = "STACKS";
    /// Per-CPU `u64` counters, see [`super::counter_index`].
    pub const COUNTERS: &str = "COUNTERS";
    /// goid → [`super::GState`]: per-goroutine probe state (reported park, stack cache).
    pub const GSTATE: &str = "GSTATE";
    /// `u32` array of runtime knobs userspace may change while attached, see [`super::config`].
    pub const CONFIG: &str = "CONFIG";
    /// Per-CPU `u64` count of diagnostics per [`super::DiagKind`] while eBPF logging is on.
    pub const DIAG: &str = "DIAG";
}

/// Slots of the `CONFIG` array (`u32` each), read by the probes on every hit, so userspace can
/// degrade tracing at run time without reloading anything.
pub mod config {
    /// Report 1 in N parks of a goroutine at the site of its previous park (0 or 1: all). A park
    /// at a new site is always reported; a park that is not reported is not paired with a wake.
    pub const SAMPLE_EVERY: u32 = 0;
    /// Number of slots.
    pub const SLOTS: u32 = 4;
}

/// Per-goroutine state the probes keep in `GSTATE` (LRU: under pressure the oldest entries go,
/// which only costs a stack walk and, for a parked goroutine, the wake event of `execute`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GState {
    /// Signature of the last park's site: caller pc, stack pointer and three frame-pointer
    /// return addresses.
    pub sig: u64,
    /// Stack id of the last park (negative: none).
    pub stack_id: i32,
    /// 1 while a reported park has not been paired with a wake.
    pub parked: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// Parks at the current site (for 1-in-N sampling).
    pub repeats: u32,
    /// Padding.
    pub _pad2: u32,
}

/// Most sudogs of one `select` folded into a park's object key (see [`fold_object`]).
pub const MAX_OBJECT_SUDOGS: usize = 8;

/// Folds one more channel into the key of what a goroutine parks on.
///
/// A channel operation parks on one channel: its key is that `*hchan` (`fold_object(0, c) == c`).
/// A `select` parks on all its cases' channels, which `g.waiting` lists in lock order (sorted by
/// address), so every goroutine in a select over the same channels gets the same key, and a
/// goroutine with one channel of its own among shared ones (a per-request reader next to a
/// shared `ctx.Done()`) gets a key of its own. Both the park probe and the inventory fold the
/// first [`MAX_OBJECT_SUDOGS`] sudogs this way, so live parks and inventoried ones agree.
pub const fn fold_object(acc: u64, c: u64) -> u64 {
    if acc == 0 {
        c
    } else {
        acc.rotate_left(23).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c
    }
}

/// Names of the read-only globals the loader sets before loading (`EbpfLoader::set_global`).
pub mod globals {
    /// `u32`: the target's thread-group id (the PID users pass).
    pub const TARGET_TGID: &str = "TARGET_TGID";
    /// `u64`: offset of `goid` in `runtime.g`.
    pub const G_GOID: &str = "G_GOID";
    /// `u64`: offset of `m` in `runtime.g`.
    pub const G_M: &str = "G_M";
    /// `u64`: offset of `curg` in `runtime.m`.
    pub const M_CURG: &str = "M_CURG";
    /// `u64`: offset of `parentGoid` in `runtime.g`.
    pub const G_PARENT_GOID: &str = "G_PARENT_GOID";
    /// `u64`: offset of `gopc` in `runtime.g`.
    pub const G_GOPC: &str = "G_GOPC";
    /// `u64`: offset of `startpc` in `runtime.g`.
    pub const G_STARTPC: &str = "G_STARTPC";
    /// `u64`: offset of `waiting` (the `*sudog` list) in `runtime.g`; 0 to not read it.
    pub const G_WAITING: &str = "G_WAITING";
    /// `u64`: offset of `c` (the `*hchan`) in `runtime.sudog`.
    pub const SUDOG_C: &str = "SUDOG_C";
    /// `u64`: offset of `isSelect` (a bool) in `runtime.sudog`.
    pub const SUDOG_IS_SELECT: &str = "SUDOG_IS_SELECT";
    /// `u64`: offset of `waitlink` (the next sudog of a `select`) in `runtime.sudog`.
    pub const SUDOG_WAITLINK: &str = "SUDOG_WAITLINK";
    /// `u32`: 1 to capture user stacks at park and spawn, 0 not to.
    pub const WANT_STACKS: &str = "WANT_STACKS";
    /// `u32`: register holding the new `g` at the spawn probe (see [`super::SpawnReg`]).
    pub const SPAWN_REG: &str = "SPAWN_REG";
}

/// Which register holds the new `*g` where the spawn probe fires.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnReg {
    /// `RAX` (first integer argument / return value), e.g. right after `CALL runtime.newproc1`.
    Rax = 0,
    /// `RBX` (second integer argument), e.g. at `CALL runtime.runqput(pp, newg, next)`.
    Rbx = 1,
}

#[cfg(feature = "user")]
// SAFETY: `Event` is `#[repr(C)]`, `Copy`, has no padding-dependent invariants and every bit
// pattern is a valid value.
unsafe impl aya::Pod for Event {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_object_keys_a_select_by_its_channel_set() {
        // One channel: the key is the channel.
        assert_eq!(fold_object(0, 0xc000_1000), 0xc000_1000);
        let key = |cs: &[u64]| cs.iter().fold(0, |k, &c| fold_object(k, c));
        // A pool's workers select over the same channels: one key, a fixed function of the
        // channels. The expected values are computed by hand from the definition
        // (`rotl(acc, 23) * 0x9E37_79B9_7F4A_7C15 ^ c`, wrapping): the probe and the inventory
        // must keep agreeing with each other, so the formula must not drift unnoticed.
        assert_eq!(key(&[0x10, 0x20]), 0xcbfa_53e0_a800_0020);
        assert_eq!(
            key(&[0xc000_1000, 0xc000_2000, 0xc000_3000]),
            0x0786_4e8f_dd47_50b0
        );
        // The fold is order sensitive: both sides must feed the channels in the same (lock)
        // order, as `g.waiting` lists them.
        assert_eq!(key(&[0x20, 0x10]), 0x97f4_a7c1_5000_0010);
        assert_ne!(key(&[0x10, 0x20]), key(&[0x20, 0x10]));
        // Consumers sharing only ctx.Done() (first in lock order): keys of their own.
        let a = key(&[0x10, 0x20, 0x30]);
        let b = key(&[0x10, 0x40, 0x50]);
        assert_ne!(a, b);
        assert_ne!(a, 0x10);
        assert_ne!(key(&[0x10, 0x20]), key(&[0x10]));
    }
}
