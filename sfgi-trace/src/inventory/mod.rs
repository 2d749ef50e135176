//! The goroutine inventory at attach: every goroutine that exists when SFGI attaches, read from
//! the target's memory while it keeps running (no ptrace stop, no stop-the-world).
//!
//! Goroutines parked before the probes went in never produce an event, so the engine starts
//! from this snapshot. It walks `runtime.allgs` (a `[]*g`), reads each `g` with batched
//! `process_vm_readv` calls, decodes its status, wait reason, wait start, creation site and
//! stack bounds, follows `g.waiting` (the sudogs of a goroutine blocked on channels or in
//! `select`) to the channels it waits on, and unwinds its stack by frame pointers from
//! `g.sched`.
//!
//! The target is not stopped, so reads can be torn: `allgs` is read once (pointer and length,
//! then the array), a `g` whose `goid` is 0 or whose status is not a Go status is counted in
//! [`Inventory::unreadable`], and every loop is bounded (slice length, sudog chain, stack
//! depth), so a corrupt pointer costs at most a bounded amount of reading.
//!
//! Finding `allgs`: the `.symtab` symbol when present, else the code of `runtime.allgadd` (or
//! `runtime.forEachG`) located through `.gopclntab` (see [`locate_allgs`]).

mod locate;
pub mod mem;

pub use sfgi_engine::goroutine::{ChanKind, GStatus, GoroutineInfo, SudogInfo, Unchanged};
pub use sfgi_goexe::{SudogOffsets, SudogSource};

use mem::{u32_at, u64_at, u8_at, Remote};
use serde::Serialize;
use sfgi_goexe::{
    Arch, ChanLayout, GoBinary, OffsetSource, RuntimeOffsets, TimerHeapLayout, WaitReasons,
};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};

/// Largest `len(allgs)` accepted (more means a corrupt or misread slice header).
pub const MAX_ALLGS: u64 = 50_000_000;
/// Deepest stack unwound (frames, counting `sched.pc`).
pub const MAX_DEPTH: usize = 64;
/// Most sudogs followed per goroutine (a `select` has one per case).
pub const MAX_SUDOGS: usize = 128;
/// Most Ps read from `runtime.allp` (`len(allp)` is GOMAXPROCS; far above any real machine).
pub const MAX_PROCS: u64 = 1 << 14;
/// Most timers read from the per-P timer heaps in one reading.
pub const MAX_TIMERS: u64 = 4_000_000;
/// `g`s read per group (bounds memory: the group's g structs and stack windows).
const GROUP: usize = 8192;
/// `g` headers at most this far apart are read as one piece ([`Remote::read_many_merging`]): a
/// `g` (400–460 bytes) sits in a 416–480-byte size-class slot, and a span ends with less than
/// one slot of slack, so the headers of a span's goroutines, and of neighbouring spans', are
/// read in one iovec rather than one each (at a million goroutines, ~0.2 s saved per read).
const G_MERGE_GAP: u64 = 1024;
/// Stack bytes read per goroutine per unwinding round.
const STACK_WINDOW: u64 = 512;
/// The `_Gscan` bit of `g.atomicstatus`.
const GSCAN: u32 = 0x1000;
/// Largest plausible goroutine stack (Go's default max is 1 GB on 64-bit).
const MAX_STACK: u64 = 1 << 31;
/// Longest runtime function whose code is decoded to find `allgs`.
const MAX_CODE: u64 = 64 << 10;

/// Errors from taking the inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Not an amd64 binary (the decoding and unwinding are amd64-only).
    #[error("unsupported architecture {0} (the inventory is amd64-only)")]
    UnsupportedArch(String),
    /// The `runtime.g` offsets are a guess (unknown Go version without DWARF).
    #[error("runtime.g offsets are unknown for this binary ({0}); work from events alone")]
    OffsetsUnknown(String),
    /// `runtime.allgs` could not be found (stripped binary whose code did not match).
    #[error("runtime.allgs not found ({}); work from events alone", .tried.join("; "))]
    AllgsNotFound {
        /// What was tried and why each failed.
        tried: Vec<String>,
    },
    /// The process no longer exists.
    #[error("process {0} is gone")]
    ProcessGone(u32),
    /// The process may not be read (needs root or CAP_SYS_PTRACE).
    #[error("no permission to read the memory of process {pid}: {source}")]
    Permission {
        /// The PID.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// `process_vm_readv` is not available (kernel without it, or blocked by seccomp).
    #[error("process_vm_readv unavailable: {0}")]
    Unsupported(String),
    /// A range that must be readable (e.g. the `allgs` slice header) was not.
    #[error("cannot read {len} bytes at {addr:#x} in the target")]
    Unreadable {
        /// Runtime address.
        addr: u64,
        /// Length.
        len: usize,
    },
    /// Target data failed a sanity check.
    #[error("corrupt {what}: {why}")]
    Corrupt {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Another I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// How `runtime.allgs` was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AllgsSource {
    /// The `.symtab` symbol `runtime.allgs`.
    Symbol,
    /// RIP-relative references in the code of `function`.
    Code {
        /// The runtime function decoded (e.g. `runtime.allgadd`).
        function: String,
    },
}

/// The goroutines of a process at one moment (approximately: the process kept running).
#[derive(Clone, Debug, Serialize)]
pub struct Inventory {
    /// Every live goroutine (not dead), in `allgs` order.
    pub goroutines: Vec<GoroutineInfo>,
    /// How many `g`s had each status (including `dead`; unreadable ones are not counted).
    pub by_status: BTreeMap<String, usize>,
    /// `g`s skipped because they could not be read or failed a sanity check (torn read).
    pub unreadable: usize,
    /// Goroutines an incremental re-read did not read whole ([`Unchanged`]; 0 for a whole read).
    pub unchanged: usize,
    /// Wall time spent reading the target (ns).
    pub read_ns: u64,
    /// How `runtime.allgs` was found.
    pub allgs_source: AllgsSource,
    /// `len(allgs)` as read.
    pub allgs_len: u64,
    /// `runtime.allglen` read just before `allgs` (`None` if not located or unreadable); the
    /// runtime keeps it equal to `len(allgs)`.
    pub allglen: Option<u64>,
    /// CLOCK_MONOTONIC (ns) when the reading started (compare with `waitsince_ns`).
    pub now_monotonic_ns: i64,
    /// Where the sudog offsets came from.
    pub sudog_source: SudogSource,
}

/// Where `runtime.allgs` is (link-time vaddr): the symbol if present, else from the code.
pub fn locate_allgs(bin: &GoBinary) -> Result<(u64, AllgsSource), InventoryError> {
    if let Some((addr, _)) = bin.data_symbol("runtime.allgs") {
        return Ok((addr, AllgsSource::Symbol));
    }
    locate_allgs_in_code(bin)
}

/// Where `runtime.allgs` is according to the code alone (ignores `.symtab`): decodes
/// `runtime.allgadd`, and `runtime.forEachG` as a fallback and cross-check.
pub fn locate_allgs_in_code(bin: &GoBinary) -> Result<(u64, AllgsSource), InventoryError> {
    if bin.arch() != Arch::Amd64 {
        return Err(InventoryError::UnsupportedArch(bin.arch().to_string()));
    }
    let mut tried = Vec::new();
    let primary = function_code(bin, "runtime.allgadd")
        .and_then(|(code, entry)| locate::allgs_from_allgadd(&code, entry));
    let secondary = function_code(bin, "runtime.forEachG")
        .and_then(|(code, entry)| locate::allgs_from_foreachg(&code, entry));
    match (primary, secondary) {
        (Ok(a), Ok(b)) if a != b => tried.push(format!(
            "runtime.allgadd says {a:#x} but runtime.forEachG says {b:#x}"
        )),
        (Ok(a), _) => {
            return Ok((
                a,
                AllgsSource::Code {
                    function: "runtime.allgadd".into(),
                },
            ))
        }
        (Err(e), Ok(b)) => {
            log::debug!("runtime.allgadd: {e}; using runtime.forEachG");
            return Ok((
                b,
                AllgsSource::Code {
                    function: "runtime.forEachG".into(),
                },
            ));
        }
        (Err(e1), Err(e2)) => {
            tried.push(format!("runtime.allgadd: {e1}"));
            tried.push(format!("runtime.forEachG: {e2}"));
        }
    }
    Err(InventoryError::AllgsNotFound { tried })
}

/// Where `runtime.allglen` is (link-time vaddr): the symbol if present, else from
/// `runtime.allgadd`'s atomic store of `len(allgs)`.
pub fn locate_allglen(bin: &GoBinary) -> Result<u64, InventoryError> {
    if let Some((addr, _)) = bin.data_symbol("runtime.allglen") {
        return Ok(addr);
    }
    locate_allglen_in_code(bin)
}

/// Where `runtime.allglen` is according to `runtime.allgadd`'s code alone.
pub fn locate_allglen_in_code(bin: &GoBinary) -> Result<u64, InventoryError> {
    let (allgs, _) = locate_allgs_in_code(bin)?;
    function_code(bin, "runtime.allgadd")
        .and_then(|(code, entry)| locate::allglen_from_allgadd(&code, entry, allgs))
        .map_err(|e| InventoryError::AllgsNotFound {
            tried: vec![format!("runtime.allglen from runtime.allgadd: {e}")],
        })
}

/// Where `runtime.allp` (the `[]*p` of every P) is (link-time vaddr): the symbol if present,
/// else from `runtime.timeSleepUntil`'s code, which ranges over it (`for _, pp := range allp`)
/// in every supported version. Needed only to find the timers of asynchronous timer channels.
pub fn locate_allp(bin: &GoBinary) -> Result<u64, InventoryError> {
    if let Some((addr, _)) = bin.data_symbol("runtime.allp") {
        return Ok(addr);
    }
    locate_allp_in_code(bin)
}

/// Where `runtime.allp` is according to the code alone (ignores `.symtab`).
pub fn locate_allp_in_code(bin: &GoBinary) -> Result<u64, InventoryError> {
    if bin.arch() != Arch::Amd64 {
        return Err(InventoryError::UnsupportedArch(bin.arch().to_string()));
    }
    function_code(bin, "runtime.timeSleepUntil")
        .and_then(|(code, entry)| locate::ranged_slice(&code, entry))
        .map_err(|why| InventoryError::Corrupt {
            what: "runtime.allp",
            why: format!("runtime.timeSleepUntil: {why}"),
        })
}

/// Where `runtime.semtable` is (link-time vaddr): the symbol if present, else from the code of
/// `runtime.semacquire1` and `runtime.semrelease1`, which both take the address of
/// `semtable[(addr>>3) % semTabSize]` with a RIP-relative `LEA` of the table: the one `LEA`
/// target inside `.bss` that both functions share.
pub fn locate_semtable(bin: &GoBinary) -> Result<u64, InventoryError> {
    if let Some((addr, _)) = bin.data_symbol("runtime.semtable") {
        return Ok(addr);
    }
    locate_semtable_in_code(bin)
}

/// Where `runtime.semtable` is according to the code alone (ignores `.symtab`).
pub fn locate_semtable_in_code(bin: &GoBinary) -> Result<u64, InventoryError> {
    let not_found = |why: String| InventoryError::Corrupt {
        what: "runtime.semtable",
        why,
    };
    if bin.arch() != Arch::Amd64 {
        return Err(InventoryError::UnsupportedArch(bin.arch().to_string()));
    }
    let bss = bin
        .section_range(".bss")
        .ok_or_else(|| not_found("no .bss section".into()))?;
    let mut common: Option<std::collections::BTreeSet<u64>> = None;
    for f in ["runtime.semacquire1", "runtime.semrelease1"] {
        let (code, entry) = function_code(bin, f).map_err(not_found)?;
        let t: std::collections::BTreeSet<u64> = locate::lea_targets(&code, entry)
            .into_iter()
            .filter(|a| (bss.0..bss.1).contains(a))
            .collect();
        common = Some(match common {
            None => t,
            Some(c) => c.intersection(&t).copied().collect(),
        });
    }
    let c: Vec<u64> = common.unwrap_or_default().into_iter().collect();
    match c.as_slice() {
        [a] => Ok(*a),
        _ => Err(not_found(format!(
            "{} shared .bss LEA targets in semacquire1/semrelease1: {c:x?}",
            c.len()
        ))),
    }
}

/// Where `runtime.allfin` (the list of every off-heap finalizer block) is (link-time vaddr):
/// the symbol if present, else from the code (see [`locate_allfin_in_code`]).
pub fn locate_allfin(bin: &GoBinary) -> Result<u64, InventoryError> {
    if let Some((addr, _)) = bin.data_symbol("runtime.allfin") {
        return Ok(addr);
    }
    locate_allfin_in_code(bin)
}

/// Where `runtime.allfin` is according to the code alone (ignores `.symtab`): the one global in
/// `.bss`/`.noptrbss` that both `runtime.queuefinalizer` (`finc.alllink = allfin; allfin =
/// finc`) and `runtime.markroot` (`for fb := allfin; …`) load or store. In Go 1.21–1.27 the
/// other globals they share (`finptrmask`) are only address-taken (`LEA`) by `markroot`.
pub fn locate_allfin_in_code(bin: &GoBinary) -> Result<u64, InventoryError> {
    let not_found = |why: String| InventoryError::Corrupt {
        what: "runtime.allfin",
        why,
    };
    let c =
        shared_accessed(bin, &["runtime.queuefinalizer", "runtime.markroot"]).map_err(not_found)?;
    match c.as_slice() {
        [a] => Ok(*a),
        _ => Err(not_found(format!(
            "{} globals both queuefinalizer and markroot access: {c:x?}",
            c.len()
        ))),
    }
}

/// Where `runtime.gcCleanups` (the cleanup queue, Go 1.25+) is (link-time vaddr): the symbol if
/// present, else from the code (see [`locate_cleanup_queue_in_code`]). `all` is the offset of
/// `cleanupQueue.all`.
pub fn locate_cleanup_queue(bin: &GoBinary, all: u64) -> Result<u64, InventoryError> {
    if let Some((addr, _)) = bin.data_symbol("runtime.gcCleanups") {
        return Ok(addr);
    }
    locate_cleanup_queue_in_code(bin, all)
}

/// Where `runtime.gcCleanups` is according to the code alone (ignores `.symtab`): the one
/// address Q in `.bss` that `runtime.runCleanups` takes (`LEA`, the receiver of
/// `gcCleanups.dequeue()`) and whose `all` field (Q + `all`) `runtime.markroot` loads
/// (`gcCleanups.all.Load()`).
pub fn locate_cleanup_queue_in_code(bin: &GoBinary, all: u64) -> Result<u64, InventoryError> {
    let not_found = |why: String| InventoryError::Corrupt {
        what: "runtime.gcCleanups",
        why,
    };
    if bin.arch() != Arch::Amd64 {
        return Err(InventoryError::UnsupportedArch(bin.arch().to_string()));
    }
    let bss = bin
        .section_range(".bss")
        .ok_or_else(|| not_found("no .bss section".into()))?;
    let (code, entry) = function_code(bin, "runtime.runCleanups").map_err(not_found)?;
    let taken = locate::lea_targets(&code, entry);
    let (code, entry) = function_code(bin, "runtime.markroot").map_err(not_found)?;
    let loaded = locate::accessed_targets(&code, entry);
    let c: Vec<u64> = taken
        .into_iter()
        .filter(|a| (bss.0..bss.1).contains(a))
        .filter(|a| a.checked_add(all).is_some_and(|f| loaded.contains(&f)))
        .collect();
    match c.as_slice() {
        [a] => Ok(*a),
        _ => Err(not_found(format!(
            "{} .bss addresses runCleanups takes whose +{all} markroot loads: {c:x?}",
            c.len()
        ))),
    }
}

/// The globals in `.bss` or `.noptrbss` that every function of `funcs` accesses (not only
/// `LEA`s), sorted.
fn shared_accessed(bin: &GoBinary, funcs: &[&str]) -> Result<Vec<u64>, String> {
    if bin.arch() != Arch::Amd64 {
        return Err(format!("unsupported architecture {}", bin.arch()));
    }
    let ranges: Vec<(u64, u64)> = [".bss", ".noptrbss"]
        .iter()
        .filter_map(|s| bin.section_range(s))
        .collect();
    if ranges.is_empty() {
        return Err("no .bss or .noptrbss section".into());
    }
    let mut common: Option<std::collections::BTreeSet<u64>> = None;
    for f in funcs {
        let (code, entry) = function_code(bin, f)?;
        let t: std::collections::BTreeSet<u64> = locate::accessed_targets(&code, entry)
            .into_iter()
            .filter(|a| ranges.iter().any(|r| (r.0..r.1).contains(a)))
            .collect();
        common = Some(match common {
            None => t,
            Some(c) => c.intersection(&t).copied().collect(),
        });
    }
    Ok(common.unwrap_or_default().into_iter().collect())
}

/// The code of function `name` (read from the binary's file) and its entry address.
fn function_code(bin: &GoBinary, name: &str) -> Result<(Vec<u8>, u64), String> {
    let f = bin
        .func_by_name(name)
        .ok_or_else(|| format!("{name} not found"))?;
    let len = f.end.saturating_sub(f.entry);
    if len == 0 || len > MAX_CODE {
        return Err(format!("{name}: implausible size {len}"));
    }
    let off = bin
        .file_offset(f.entry)
        .ok_or_else(|| format!("{name}: code not in the file"))?;
    // The end must map to the same place (same segment) for the bytes to be contiguous.
    if bin.file_offset(f.end - 1) != Some(off + len - 1) {
        return Err(format!("{name}: code crosses a segment boundary"));
    }
    let mut file = std::fs::File::open(bin.path()).map_err(|e| format!("{name}: {e}"))?;
    file.seek(SeekFrom::Start(off))
        .map_err(|e| format!("{name}: {e}"))?;
    let mut code = vec![0u8; len as usize];
    file.read_exact(&mut code)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok((code, f.entry))
}

/// Reads the inventory of process `pid`, whose executable is `bin`, loaded with `bias` (runtime
/// address minus link-time address; 0 unless PIE). The process keeps running.
///
/// To read the same binary repeatedly, build a [`Plan`] once (it locates `allgs` and reads the
/// sudog layout from DWARF) and call [`Plan::read`].
pub fn read(pid: u32, bin: &GoBinary, bias: u64) -> Result<Inventory, InventoryError> {
    Plan::new(bin)?.read(pid, bias)
}

/// What [`Plan::read_each`] and [`Plan::reread_each`] hand each batch of goroutines to: those
/// read whole, those not read again, and the read's CLOCK_MONOTONIC start.
type BatchVisitor<'a> = dyn FnMut(&[GoroutineInfo], &[Unchanged], i64) + 'a;

/// What incremental re-reads ([`Plan::reread_each`]) remember between reads: for each `allgs`
/// slot (the runtime only ever appends to `allgs`, so a slot keeps its `g`), a fingerprint of
/// the `g` header as it was when last read whole (0: nothing remembered), with bit 0 set when
/// it must be read whole next time anyway. 8 bytes a slot (8 MB for a million goroutines).
#[derive(Clone, Debug, Default)]
pub struct Remembered {
    fingerprints: Vec<u64>,
}

impl Remembered {
    /// Reads `slot` whole next time (the engine does not know it as it is).
    pub fn forget(&mut self, slot: u32) {
        if let Some(f) = self.fingerprints.get_mut(slot as usize) {
            *f |= 1;
        }
    }

    /// Reads everything whole next time.
    pub fn clear(&mut self) {
        self.fingerprints.clear();
    }

    /// Slots remembered now (for tests and stats).
    pub fn remembered(&self) -> usize {
        self.fingerprints
            .iter()
            .filter(|&&f| f != 0 && f & 1 == 0)
            .count()
    }
}

/// Everything about a binary the inventory needs, worked out once.
#[derive(Clone, Debug)]
pub struct Plan<'b> {
    /// The binary (its `.gopclntab` SP tables unwind goroutines in system calls).
    bin: Option<&'b GoBinary>,
    /// Unwind `_Gsyscall` goroutines by the SP tables: before Go 1.23 the runtime saves no
    /// frame pointer when entering a system call, so `g.sched.bp` is stale there.
    syscall_by_sp: bool,
    /// Link-time address of `runtime.allgs`.
    pub allgs_vaddr: u64,
    /// How it was found.
    pub allgs_source: AllgsSource,
    /// Link-time address of `runtime.allglen`, if found.
    pub allglen_vaddr: Option<u64>,
    /// `runtime.g` offsets.
    pub offsets: RuntimeOffsets,
    /// `runtime.sudog` offsets.
    pub sudog: SudogOffsets,
    /// `runtime.hchan`/`runtime.timer` layout (channels are not described without one).
    pub chan: Option<ChanLayout>,
    /// Link-time address of `runtime.allp`, if found, and the per-P timer heaps' layout: with
    /// both, the timer behind an asynchronous timer channel is looked up (running or stopped).
    pub timers: Option<(u64, TimerHeapLayout)>,
    /// Wait-reason names.
    pub wait_reasons: WaitReasons,
}

impl<'b> Plan<'b> {
    /// Works out where and how to read the goroutines of programs built as `bin`.
    pub fn new(bin: &'b GoBinary) -> Result<Plan<'b>, InventoryError> {
        if bin.arch() != Arch::Amd64 {
            return Err(InventoryError::UnsupportedArch(bin.arch().to_string()));
        }
        let offsets = bin.offsets().clone();
        if let OffsetSource::Guess { minor } = offsets.source {
            return Err(InventoryError::OffsetsUnknown(format!(
                "{} without DWARF; nearest table go1.{minor}",
                bin.build_info().go_version
            )));
        }
        check_offsets(&offsets)?;
        let (allgs_vaddr, allgs_source) = locate_allgs(bin)?;
        let allglen_vaddr = locate_allglen(bin).ok();
        let v = bin.build_info().version;
        Ok(Plan {
            bin: Some(bin),
            syscall_by_sp: v.major == 1 && v.minor < 23,
            allgs_vaddr,
            allgs_source,
            allglen_vaddr,
            offsets,
            sudog: bin.sudog_offsets(),
            chan: bin.chan_layout(),
            timers: bin
                .timer_heap_layout()
                .and_then(|t| locate_allp(bin).ok().map(|a| (a, t))),
            wait_reasons: bin.wait_reasons().clone(),
        })
    }

    /// `len(runtime.allgs)` of process `pid` now: how many `g`s the target has ever allocated
    /// (live or on free lists), an upper bound of its goroutines. One 24-byte read.
    pub fn allgs_len(&self, pid: u32, bias: u64) -> Result<u64, InventoryError> {
        let hdr = Remote { pid }.read(self.allgs_vaddr.wrapping_add(bias), 24)?;
        let len = u64_at(&hdr, 8).unwrap_or(0);
        Ok(len.min(MAX_ALLGS))
    }

    /// Reads the inventory of process `pid` (loaded with `bias`; see [`read`]).
    pub fn read(&self, pid: u32, bias: u64) -> Result<Inventory, InventoryError> {
        self.read_batches(pid, bias, None, None)
    }

    /// Reads the inventory of process `pid` in batches of a few thousand goroutines, handing
    /// each to `visit` (with the read's CLOCK_MONOTONIC start) instead of keeping them: a
    /// million goroutines never sit in memory at once. The returned [`Inventory`] has the
    /// counters and no goroutines.
    pub fn read_each(
        &self,
        pid: u32,
        bias: u64,
        mut visit: impl FnMut(&[GoroutineInfo], i64),
    ) -> Result<Inventory, InventoryError> {
        let mut whole = |gs: &[GoroutineInfo], _: &[Unchanged], now: i64| visit(gs, now);
        self.read_batches(pid, bias, Some(&mut whole), None)
    }

    /// An incremental re-read: like [`Plan::read_each`], but a goroutine is read whole (its
    /// sudogs followed, its stack unwound) only when it is parked and its `g` header differs
    /// from the one `mem` remembers for its slot; the others are handed over as [`Unchanged`].
    /// Reading the headers of every `g` stays (so exits, wakes and new goroutines are all
    /// seen); what is saved is the stack reads, one or more pages per goroutine, and the
    /// decoding. `mem` is updated; slots the consumer cannot use unchanged must be
    /// [`Remembered::forget`]-ed.
    pub fn reread_each(
        &self,
        pid: u32,
        bias: u64,
        mem: &mut Remembered,
        mut visit: impl FnMut(&[GoroutineInfo], &[Unchanged], i64),
    ) -> Result<Inventory, InventoryError> {
        self.read_batches(pid, bias, Some(&mut visit), Some(mem))
    }

    fn read_batches(
        &self,
        pid: u32,
        bias: u64,
        mut visit: Option<&mut BatchVisitor<'_>>,
        mut mem: Option<&mut Remembered>,
    ) -> Result<Inventory, InventoryError> {
        check_offsets(&self.offsets)?;
        let reader = Reader {
            remote: Remote { pid },
            off: &self.offsets,
            sudog: self.sudog,
            chan: self.chan,
            timers: self.timers,
            async_timers: std::cell::OnceCell::new(),
            wait_reasons: &self.wait_reasons,
            bin: self.bin,
            bias,
            syscall_by_sp: self.syscall_by_sp,
        };
        let start = std::time::Instant::now();
        // The one clock; Go's `nanotime()` is the same CLOCK_MONOTONIC.
        let now_monotonic_ns = i64::try_from(crate::clock::monotonic_ns()).unwrap_or(i64::MAX);
        let allgs = self.allgs_vaddr.wrapping_add(bias);
        // allglen before allgs, as the runtime's own lock-free readers do.
        let allglen = match self.allglen_vaddr {
            Some(a) => reader
                .remote
                .read(a.wrapping_add(bias), 8)
                .ok()
                .and_then(|b| u64_at(&b, 0)),
            None => None,
        };
        let hdr = reader.remote.read(allgs, 24)?;
        let (ptr, len, cap) = (
            u64_at(&hdr, 0).unwrap_or(0),
            u64_at(&hdr, 8).unwrap_or(0),
            u64_at(&hdr, 16).unwrap_or(0),
        );
        if len > cap || len > MAX_ALLGS || (len > 0 && (ptr == 0 || !ptr.is_multiple_of(8))) {
            return Err(InventoryError::Corrupt {
                what: "runtime.allgs",
                why: format!("ptr={ptr:#x} len={len} cap={cap}"),
            });
        }
        let array = if len == 0 {
            Vec::new()
        } else {
            reader.remote.read(ptr, (len * 8) as usize)?
        };
        let gptrs: Vec<u64> = array
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();

        let mut inv = Inventory {
            goroutines: Vec::new(),
            by_status: BTreeMap::new(),
            unreadable: 0,
            unchanged: 0,
            read_ns: 0,
            allgs_source: self.allgs_source.clone(),
            allgs_len: len,
            allglen,
            now_monotonic_ns,
            sudog_source: self.sudog.source,
        };
        if let Some(m) = mem.as_mut() {
            m.fingerprints.resize(gptrs.len(), 0);
        }
        let mut counts = [0usize; 16];
        let mut unchanged = Vec::new();
        for (k, group) in gptrs.chunks(GROUP).enumerate() {
            let fps = mem.as_mut().map(|m| {
                let first = k * GROUP;
                &mut m.fingerprints[first..first + group.len()]
            });
            let ctx = GroupCtx {
                first_slot: k * GROUP,
                fingerprints: fps,
                counts: &mut counts,
                unchanged: &mut unchanged,
            };
            reader.read_group(group, now_monotonic_ns, &mut inv, ctx)?;
            inv.unchanged += unchanged.len();
            if let Some(visit) = visit.as_mut() {
                visit(&inv.goroutines, &unchanged, now_monotonic_ns);
                inv.goroutines.clear();
            }
            unchanged.clear();
        }
        for (raw, &n) in counts.iter().enumerate() {
            if let Some(st) = GStatus::from_raw(raw as u32).filter(|_| n > 0) {
                *inv.by_status.entry(st.name().into()).or_default() += n;
            }
        }
        inv.read_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Ok(inv)
    }
}

/// Every field read must lie inside a plausibly sized `g`.
fn check_offsets(o: &RuntimeOffsets) -> Result<(), InventoryError> {
    let fields = [
        o.g_stack_lo,
        o.g_stack_hi,
        o.g_goid,
        o.g_waitsince,
        o.g_parent_goid,
        o.g_gopc,
        o.g_startpc,
        o.g_waiting,
        o.g_sched + o.gobuf_sp,
        o.g_sched + o.gobuf_pc,
        o.g_sched + o.gobuf_bp,
    ];
    let max = fields.iter().max().copied().unwrap_or(0);
    if o.g_size > 64 << 10 || max + 8 > o.g_size || o.g_atomicstatus + 4 > o.g_size {
        return Err(InventoryError::Corrupt {
            what: "runtime.g offsets",
            why: format!("a field lies outside sizeof(g)={}", o.g_size),
        });
    }
    Ok(())
}

/// The fields of a `g` an inventory reads (its header; a `g` is ~450 bytes).
#[derive(Clone, Copy, Debug, Default)]
struct Header {
    g_addr: u64,
    goid: u64,
    status: GStatus,
    status_raw: u32,
    wait_reason_raw: u8,
    waitsince_ns: i64,
    gopc: u64,
    startpc: u64,
    parent_goid: u64,
    stack_lo: u64,
    stack_hi: u64,
    sched_pc: u64,
    sched_sp: u64,
    sched_bp: u64,
    waiting: u64,
    /// `g.trackingSeq`: incremented every time the goroutine stops running.
    tracking_seq: u8,
}

impl Header {
    /// Whether `other` (the same `g` read earlier) shows the same park: same goroutine, still
    /// parked with the same status, resume point and park counter.
    fn same_park(&self, other: &Header) -> bool {
        self.goid == other.goid
            && self.status == other.status
            && self.sched_pc == other.sched_pc
            && self.sched_sp == other.sched_sp
            && self.sched_bp == other.sched_bp
            && self.tracking_seq == other.tracking_seq
            && (self.waiting == other.waiting || self.waiting == 0 || other.waiting == 0)
    }

    /// A 64-bit fingerprint of everything that changes when a goroutine runs, never 0. Equal
    /// fingerprints at one slot mean the goroutine is in the same park, as far as its `g` can
    /// tell. With the park counter read (`counted`: `g.trackingSeq`, incremented every time the
    /// goroutine stops running) that is goid, status, wait reason, resume pc and the counter:
    /// `g.waitsince` stamped by a GC, or the stack moved (shrunk) by a GC — resume sp/bp and
    /// stack bounds — are not a new park. Without the counter, every field is the evidence.
    fn fingerprint(&self, counted: bool) -> u64 {
        let unless_counted = |v: u64| if counted { 0 } else { v };
        let words = [
            self.g_addr,
            self.goid,
            u64::from(self.status_raw & !GSCAN) | (u64::from(self.wait_reason_raw) << 32),
            unless_counted(self.waitsince_ns as u64),
            self.sched_pc,
            unless_counted(self.sched_sp),
            unless_counted(self.sched_bp),
            unless_counted(self.waiting),
            unless_counted(self.stack_lo),
            unless_counted(self.stack_hi),
            u64::from(self.tracking_seq),
        ];
        // FNV-style multiply-xorshift mixing: not adversarial input, just a compact identity.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for w in words {
            h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
            h ^= h >> 29;
        }
        // Bit 0 is [`Remembered`]'s "read it whole anyway" flag.
        (h & !1) | 2
    }
}

/// What [`Reader::read_group`] needs besides the `g` pointers: where the group starts in
/// `allgs`, the remembered fingerprints of its slots (incremental re-reads only), the counts by
/// raw status, and where to put goroutines not read whole.
struct GroupCtx<'c> {
    first_slot: usize,
    fingerprints: Option<&'c mut [u64]>,
    counts: &'c mut [usize; 16],
    unchanged: &'c mut Vec<Unchanged>,
}

/// Offsets of the `g` fields that tell where a goroutine is: stack bounds, resume point,
/// status, goid, wait reason, `waitsince` and the park counter (`g.trackingSeq`, 0 if unknown).
fn park_fields(o: &RuntimeOffsets) -> [u64; 10] {
    [
        o.g_stack_lo,
        o.g_stack_hi,
        o.g_goid,
        o.g_waitsince,
        o.g_sched + o.gobuf_sp,
        o.g_sched + o.gobuf_pc,
        o.g_sched + o.gobuf_bp,
        o.g_atomicstatus,
        o.g_waitreason,
        o.g_tracking_seq,
    ]
}

/// Bytes of a `g` to read for `fields`: up to the end of the last one, within the `g`.
fn fields_end(o: &RuntimeOffsets, fields: impl IntoIterator<Item = u64>) -> u64 {
    fields
        .into_iter()
        .max()
        .unwrap_or(0)
        .saturating_add(8)
        .min(o.g_size)
}

/// Bytes of a `g` to read: up to the end of the last field used (~330 of its ~450 bytes).
fn header_len(o: &RuntimeOffsets) -> u64 {
    let creation = [o.g_parent_goid, o.g_gopc, o.g_startpc, o.g_waiting];
    fields_end(o, park_fields(o).into_iter().chain(creation))
}

/// Bytes of a `g` that tell whether it is where it was ([`park_fields`]), when the park
/// counter's offset is known: ~200 bytes. `None` without the park counter (then `g.waiting`
/// must be compared too).
fn short_header_len(o: &RuntimeOffsets) -> Option<u64> {
    (o.g_tracking_seq != 0).then(|| fields_end(o, park_fields(o)))
}

struct Reader<'a> {
    remote: Remote,
    off: &'a RuntimeOffsets,
    sudog: SudogOffsets,
    chan: Option<ChanLayout>,
    timers: Option<(u64, TimerHeapLayout)>,
    /// The channels of the timers in the per-P heaps, read at most once per inventory read
    /// (when the first asynchronous timer channel is met); `None` if they could not be read.
    async_timers: std::cell::OnceCell<Option<HashMap<u64, ChanKind>>>,
    wait_reasons: &'a WaitReasons,
    bin: Option<&'a GoBinary>,
    bias: u64,
    syscall_by_sp: bool,
}

/// A goroutine whose stack is being unwound.
struct Unwind {
    /// Index into `Inventory::goroutines`.
    idx: usize,
    bp: u64,
    /// The previous frame pointer (frames must move towards `hi`).
    floor: u64,
    lo: u64,
    hi: u64,
    win_base: u64,
    win: Vec<u8>,
}

impl Reader<'_> {
    fn read_group(
        &self,
        gptrs: &[u64],
        now: i64,
        inv: &mut Inventory,
        ctx: GroupCtx<'_>,
    ) -> Result<(), InventoryError> {
        let GroupCtx {
            first_slot,
            mut fingerprints,
            counts,
            unchanged,
        } = ctx;
        let o = self.off;
        // Read up to the last field used, not the whole `g`; re-reads, whose goroutines are
        // mostly where they were, only what tells that.
        let want = header_len(o) as usize;
        let first_len = match (&fingerprints, short_header_len(o)) {
            (Some(_), Some(short)) => short as usize,
            _ => want,
        };
        let ranges: Vec<(u64, usize)> = gptrs
            .iter()
            .map(|&p| {
                if p == 0 || !p.is_multiple_of(8) {
                    (p, 0)
                } else {
                    (p, first_len)
                }
            })
            .collect();
        let batch = self.remote.read_many_merging(&ranges, G_MERGE_GAP)?;
        let first = inv.goroutines.len();
        // (goroutine index, slot in this group, fingerprint) of those read whole to remember.
        let mut to_remember: Vec<(usize, usize, u64, Header)> = Vec::new();
        for (i, &gp) in gptrs.iter().enumerate() {
            let Some(h) = batch.get(i).and_then(|g| self.decode_header(g, gp)) else {
                inv.unreadable += 1;
                if let Some(f) = fingerprints.as_mut().and_then(|f| f.get_mut(i)) {
                    *f = 0;
                }
                continue;
            };
            if let Some(c) = counts.get_mut((h.status_raw & !GSCAN) as usize) {
                *c += 1;
            }
            if h.status.is_dead() {
                if let Some(f) = fingerprints.as_mut().and_then(|f| f.get_mut(i)) {
                    *f = 0;
                }
                continue;
            }
            let mut stayed = false;
            if let Some(fps) = fingerprints.as_mut() {
                let fp = h.fingerprint(o.g_tracking_seq != 0);
                let parked = matches!(
                    h.status,
                    GStatus::Waiting | GStatus::Leaked | GStatus::Syscall
                );
                let prev = fps.get(i).copied().unwrap_or(0);
                // The same park as at the last read: same header, park counter included.
                stayed = parked && prev & !1 == fp;
                if !parked || prev == fp {
                    if !parked {
                        if let Some(f) = fps.get_mut(i) {
                            *f = 0;
                        }
                    }
                    unchanged.push(Unchanged {
                        goid: h.goid,
                        status: h.status,
                        stack_bytes: h.stack_hi.saturating_sub(h.stack_lo),
                        // Without the park counter only a set waitsince shows it.
                        stayed_blocked: o.g_tracking_seq != 0 || h.waitsince_ns != 0,
                        slot: u32::try_from(first_slot + i).unwrap_or(u32::MAX),
                    });
                    continue;
                }
                to_remember.push((inv.goroutines.len(), i, fp, h));
            }
            let mut info = self.info(&h, now);
            info.stayed_blocked = stayed && (o.g_tracking_seq != 0 || h.waitsince_ns != 0);
            inv.goroutines.push(info);
        }
        let new = first..inv.goroutines.len();
        let mut torn = vec![false; new.len()];
        if first_len < want && !to_remember.is_empty() {
            // Those to read whole: the rest of their header (creation site, `g.waiting`).
            let ranges: Vec<(u64, usize)> = to_remember
                .iter()
                .map(|(_, _, _, h)| (h.g_addr, want))
                .collect();
            let full = self.remote.read_many_merging(&ranges, G_MERGE_GAP)?;
            for (k, (gi, _, _, h)) in to_remember.iter_mut().enumerate() {
                match full.get(k).and_then(|g| self.decode_header(g, h.g_addr)) {
                    Some(f) if f.same_park(h) => {
                        *h = f;
                        if let Some(g) = inv.goroutines.get_mut(*gi) {
                            g.gopc = f.gopc;
                            g.startpc = f.startpc;
                            g.parent_goid = f.parent_goid;
                            g.waiting_on = match f.waiting {
                                0 => Vec::new(),
                                w => vec![w],
                            };
                        }
                    }
                    // It moved in between: handled as a torn read below.
                    _ => {
                        if let Some(t) = torn.get_mut(*gi - first) {
                            *t = true;
                        }
                    }
                }
            }
        }
        self.follow_sudogs(&mut inv.goroutines, new.clone())?;
        self.describe_channels(&mut inv.goroutines, new.clone())?;
        self.unwind(&mut inv.goroutines, new)?;
        if let Some(fps) = fingerprints {
            // The target ran while its stacks were read: a goroutine that ran meanwhile may have
            // rewritten the frames just read. Its header again: if it changed (its park counter
            // moved, or it runs now), its stack is not trusted and it counts as active (it did
            // run); it is read whole again next time.
            let ranges: Vec<(u64, usize)> = to_remember
                .iter()
                .map(|(_, _, _, h)| (h.g_addr, want))
                .collect();
            let again = self.remote.read_many_merging(&ranges, G_MERGE_GAP)?;
            for (k, (gi, slot, _, h)) in to_remember.iter().enumerate() {
                let now_h = again.get(k).and_then(|g| self.decode_header(g, h.g_addr));
                let was_torn = torn.get(gi - first).copied().unwrap_or(false);
                if !was_torn && now_h.is_some_and(|n| n.same_park(h)) {
                    continue;
                }
                if let Some(t) = torn.get_mut(gi - first) {
                    *t = true;
                }
                unchanged.push(Unchanged {
                    goid: h.goid,
                    status: GStatus::Runnable,
                    stack_bytes: h.stack_hi.saturating_sub(h.stack_lo),
                    stayed_blocked: false,
                    slot: u32::try_from(first_slot + slot).unwrap_or(u32::MAX),
                });
            }
            for (gi, slot, fp, _) in &to_remember {
                let (gi, slot, fp) = (*gi, *slot, *fp);
                if torn.get(gi - first).copied().unwrap_or(false) {
                    if let Some(f) = fps.get_mut(slot) {
                        *f = 0;
                    }
                    continue;
                }
                // A stack that could not be unwound to its end is read again next time, and so
                // is a goroutine waiting on a running timer: its timer can be stopped while it
                // waits, which its own `g` does not show.
                let whole = inv.goroutines.get(gi).is_some_and(|g| {
                    !g.stack_truncated && !g.sudogs.iter().any(|s| s.kind.live_timer())
                });
                if let Some(f) = fps.get_mut(slot) {
                    *f = if whole { fp } else { fp | 1 };
                }
            }
            if torn.contains(&true) {
                let mut k = 0;
                inv.goroutines.retain(|_| {
                    let keep = k < first || !torn.get(k - first).copied().unwrap_or(false);
                    k += 1;
                    keep
                });
            }
        }
        Ok(())
    }

    /// Decodes the header of one `g`; `None` for a torn or garbage read. A read cut short
    /// after the park counter ([`short_header_len`]) leaves the creation fields and `g.waiting`
    /// 0: enough to tell whether the goroutine is where it was.
    fn decode_header(&self, g: &[u8], g_addr: u64) -> Option<Header> {
        let full = g.len() as u64 >= header_len(self.off);
        let o = self.off;
        let status_raw = u32_at(g, o.g_atomicstatus)?;
        let status = GStatus::from_raw(status_raw & !GSCAN)?;
        let goid = u64_at(g, o.g_goid)?;
        if status.is_dead() {
            // Dead gs keep stale fields; only the status matters.
            return Some(Header {
                g_addr,
                goid,
                status,
                status_raw,
                ..Header::default()
            });
        }
        if goid == 0 {
            return None;
        }
        let sched = |f: u64| u64_at(g, o.g_sched + f);
        Some(Header {
            g_addr,
            goid,
            status,
            status_raw,
            wait_reason_raw: u8_at(g, o.g_waitreason)?,
            waitsince_ns: u64_at(g, o.g_waitsince)? as i64,
            gopc: if full { u64_at(g, o.g_gopc)? } else { 0 },
            startpc: if full { u64_at(g, o.g_startpc)? } else { 0 },
            parent_goid: if full { u64_at(g, o.g_parent_goid)? } else { 0 },
            stack_lo: u64_at(g, o.g_stack_lo)?,
            stack_hi: u64_at(g, o.g_stack_hi)?,
            sched_pc: sched(o.gobuf_pc)?,
            sched_sp: sched(o.gobuf_sp)?,
            sched_bp: sched(o.gobuf_bp)?,
            waiting: if full { u64_at(g, o.g_waiting)? } else { 0 },
            tracking_seq: match o.g_tracking_seq {
                0 => 0,
                off => u8_at(g, off)?,
            },
        })
    }

    /// The goroutine record of a live `g`'s header (its sudogs and stack still to be read).
    fn info(&self, h: &Header, now: i64) -> GoroutineInfo {
        let wait_reason =
            if matches!(h.status, GStatus::Waiting | GStatus::Leaked) && h.wait_reason_raw != 0 {
                self.wait_reasons
                    .name(u32::from(h.wait_reason_raw))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            } else {
                None
            };
        let wait_age_ns =
            (h.waitsince_ns > 0 && h.waitsince_ns <= now).then(|| (now - h.waitsince_ns) as u64);
        GoroutineInfo {
            goid: h.goid,
            status: h.status,
            status_raw: h.status_raw,
            wait_reason,
            wait_reason_raw: h.wait_reason_raw,
            waitsince_ns: h.waitsince_ns,
            wait_age_ns,
            gopc: h.gopc,
            startpc: h.startpc,
            parent_goid: h.parent_goid,
            stack_lo: h.stack_lo,
            stack_hi: h.stack_hi,
            sched_pc: h.sched_pc,
            sched_sp: h.sched_sp,
            sched_bp: h.sched_bp,
            stack: Vec::new(),
            stack_truncated: false,
            // Stash g.waiting in waiting_on until follow_sudogs replaces it.
            waiting_on: match h.waiting {
                0 => Vec::new(),
                w => vec![w],
            },
            sudogs: Vec::new(),
            g_addr: h.g_addr,
            stayed_blocked: false,
        }
    }

    /// Follows `g.waiting` → `sudog.waitlink` for waiting goroutines (and those the runtime
    /// marked `_Gleaked`, which keep their sudogs: `elem`/`c` read through `vu`, which the leak
    /// detector leaves intact), one batched read per hop.
    fn follow_sudogs(
        &self,
        gs: &mut [GoroutineInfo],
        range: std::ops::Range<usize>,
    ) -> Result<(), InventoryError> {
        let s = self.sudog;
        // (goroutine index, next sudog address)
        let mut active: Vec<(usize, u64)> = Vec::new();
        for i in range {
            let head = std::mem::take(&mut gs[i].waiting_on);
            if matches!(gs[i].status, GStatus::Waiting | GStatus::Leaked) {
                if let Some(&h) = head.first() {
                    active.push((i, h));
                }
            }
        }
        for _hop in 0..MAX_SUDOGS {
            active.retain(|&(_, p)| p != 0 && p.is_multiple_of(8));
            if active.is_empty() {
                break;
            }
            let ranges: Vec<(u64, usize)> =
                active.iter().map(|&(_, p)| (p, s.size as usize)).collect();
            let batch = self.remote.read_many(&ranges)?;
            let mut next = Vec::with_capacity(active.len());
            for (k, &(i, p)) in active.iter().enumerate() {
                let Some(b) = batch.get(k) else { continue };
                let (Some(elem), Some(c), Some(link), Some(sel)) = (
                    u64_at(b, s.elem),
                    u64_at(b, s.c),
                    u64_at(b, s.waitlink),
                    u8_at(b, s.is_select),
                ) else {
                    continue;
                };
                let g = &mut gs[i];
                g.sudogs.push(SudogInfo {
                    addr: p,
                    elem,
                    c,
                    is_select: sel != 0,
                    kind: ChanKind::Unknown,
                });
                g.waiting_on.push(if c != 0 { c } else { elem });
                // Only a select's sudogs form the g.waiting list; a semaphore sudog's waitlink
                // (Go 1.26+ sets g.waiting for those too) links other goroutines' sudogs. A
                // torn read can make a cycle: stop at a sudog already seen.
                if sel != 0
                    && link != 0
                    && g.sudogs.len() < MAX_SUDOGS
                    && !g.sudogs.iter().any(|s| s.addr == link)
                {
                    next.push((i, link));
                }
            }
            active = next;
        }
        Ok(())
    }

    /// Reads the channel of every sudog of goroutines `range` (one batched read for the
    /// channels, one for their element types, one for the timers of timer channels) and sets
    /// each sudog's [`ChanKind`].
    fn describe_channels(
        &self,
        gs: &mut [GoroutineInfo],
        range: std::ops::Range<usize>,
    ) -> Result<(), InventoryError> {
        let Some(l) = self.chan else {
            return Ok(());
        };
        // (goroutine, sudog) of every channel wait, and the distinct channels.
        let mut waits: Vec<(usize, usize)> = Vec::new();
        let mut chans: Vec<u64> = Vec::new();
        for i in range {
            for (k, s) in gs[i].sudogs.iter().enumerate() {
                if s.c != 0 && s.c.is_multiple_of(8) {
                    waits.push((i, k));
                    chans.push(s.c);
                }
            }
        }
        if waits.is_empty() {
            return Ok(());
        }
        chans.sort_unstable();
        chans.dedup();
        let ranges: Vec<(u64, usize)> = chans.iter().map(|&c| (c, l.read_len as usize)).collect();
        let batch = self.remote.read_many(&ranges)?;
        // Per channel: (element size, capacity, timer, element type).
        let mut facts: Vec<Option<(u16, u64, u64, u64)>> = Vec::with_capacity(chans.len());
        for k in 0..chans.len() {
            facts.push(batch.get(k).and_then(|b| {
                let elemsize = b.get(l.elemsize as usize..l.elemsize as usize + 2)?;
                Some((
                    u16::from_le_bytes(elemsize.try_into().ok()?),
                    u64_at(b, l.dataqsiz)?,
                    match l.timer {
                        Some(t) => u64_at(b, t)?,
                        None => 0,
                    },
                    u64_at(b, l.elemtype)?,
                ))
            }));
        }
        // Timers of synchronous timer channels: `when` (0 once stopped) and `period`.
        let timer_ranges: Vec<(u64, usize)> = facts
            .iter()
            .map(|f| match f {
                Some((_, _, t, _)) if *t != 0 && t.is_multiple_of(8) => {
                    (t.wrapping_add(l.timer_when), 16)
                }
                _ => (0, 0),
            })
            .collect();
        let timers = self.remote.read_many(&timer_ranges)?;
        // Element types of capacity-1 channels of 24-byte elements: is it time.Time?
        let type_ranges: Vec<(u64, usize)> = facts
            .iter()
            .map(|f| match f {
                Some((24, 1, 0, ty)) if *ty != 0 && ty.is_multiple_of(8) => {
                    (*ty, sfgi_goexe::chan::ABI_TYPE_READ as usize)
                }
                _ => (0, 0),
            })
            .collect();
        let types = self.remote.read_many(&type_ranges)?;
        let kinds: Vec<ChanKind> = facts
            .iter()
            .enumerate()
            .map(|(k, f)| match f {
                None => ChanKind::Unknown,
                Some((_, _, t, _)) if *t != 0 => match timers.get(k) {
                    Some(b) => {
                        let when = u64_at(b, 0).unwrap_or(0) as i64;
                        let period = u64_at(b, l.timer_period - l.timer_when).unwrap_or(0) as i64;
                        match (when, period) {
                            (w, _) if w <= 0 => ChanKind::TimerStopped,
                            (_, p) if p > 0 => ChanKind::Ticker,
                            _ => ChanKind::Timer,
                        }
                    }
                    None => ChanKind::Unknown,
                },
                Some((0, _, _, _)) => ChanKind::Signal,
                Some(_) if types.get(k).is_some_and(|ty| l.is_time_time(ty)) => {
                    ChanKind::TimerAsync
                }
                Some(_) => ChanKind::Data,
            })
            .collect();
        let kinds = self.resolve_async_timers(&chans, kinds);
        for (i, k) in waits {
            let s = &mut gs[i].sudogs[k];
            if let Ok(c) = chans.binary_search(&s.c) {
                s.kind = kinds[c];
            }
        }
        Ok(())
    }

    /// Asynchronous timer channels, told apart by the timer found for them in the per-P heaps:
    /// running (a timer or a ticker), or stopped (not in any heap, or there but stopped). A
    /// channel whose timer is missing from one reading of the heaps — they are read without
    /// the runtime's locks, and a timer being moved between Ps or re-sorted is briefly out of
    /// every heap — is looked for in a second reading before it is called stopped. Without the
    /// heaps (no `allp`, an unknown layout, unreadable memory) the kind stays `TimerAsync`.
    fn resolve_async_timers(&self, chans: &[u64], mut kinds: Vec<ChanKind>) -> Vec<ChanKind> {
        if !kinds.contains(&ChanKind::TimerAsync) {
            return kinds;
        }
        let Some(first) = self
            .async_timers
            .get_or_init(|| self.read_timer_heaps().ok())
        else {
            return kinds;
        };
        let mut second: Option<Option<HashMap<u64, ChanKind>>> = None;
        for (k, kind) in kinds.iter_mut().enumerate() {
            if *kind != ChanKind::TimerAsync {
                continue;
            }
            let Some(c) = chans.get(k) else { continue };
            *kind = match first.get(c) {
                Some(&found) if found != ChanKind::TimerStopped => found,
                _ => {
                    let again = second.get_or_insert_with(|| self.read_timer_heaps().ok());
                    match again.as_ref().map(|m| m.get(c)) {
                        None => ChanKind::TimerAsync,
                        Some(Some(&found)) => found,
                        Some(None) => ChanKind::TimerStopped,
                    }
                }
            };
        }
        kinds
    }

    /// Reads every P's timer heap: channel (`timer.arg`'s data word) → `Timer`, `Ticker` or
    /// `TimerStopped`. Bounded: at most [`MAX_PROCS`] Ps and [`MAX_TIMERS`] timers.
    fn read_timer_heaps(&self) -> Result<HashMap<u64, ChanKind>, InventoryError> {
        let corrupt = |why: String| InventoryError::Corrupt {
            what: "runtime.allp",
            why,
        };
        let Some((allp, t)) = self.timers else {
            return Err(corrupt("not located".into()));
        };
        let hdr = self.remote.read(allp.wrapping_add(self.bias), 24)?;
        let (ptr, len) = (u64_at(&hdr, 0).unwrap_or(0), u64_at(&hdr, 8).unwrap_or(0));
        if len == 0 || len > MAX_PROCS || ptr == 0 || !ptr.is_multiple_of(8) {
            return Err(corrupt(format!("ptr={ptr:#x} len={len}")));
        }
        let ps = self.remote.read(ptr, (len * 8) as usize)?;
        let heap_hdrs: Vec<(u64, usize)> = ps
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .map(|p| {
                if p != 0 && p.is_multiple_of(8) {
                    (p.wrapping_add(t.p_heap), 16)
                } else {
                    (0, 0)
                }
            })
            .collect();
        let hdrs = self.remote.read_many(&heap_hdrs)?;
        let mut total = 0u64;
        let arrays: Vec<(u64, usize)> = (0..heap_hdrs.len())
            .map(|i| {
                let Some(h) = hdrs.get(i) else { return (0, 0) };
                let (hp, hl) = (u64_at(h, 0).unwrap_or(0), u64_at(h, 8).unwrap_or(0));
                if hp == 0 || hl == 0 || total + hl > MAX_TIMERS {
                    return (0, 0);
                }
                total += hl;
                (hp, (hl * t.entry) as usize)
            })
            .collect();
        let arrays = self.remote.read_many(&arrays)?;
        let mut timers: Vec<(u64, usize)> = Vec::new();
        for i in 0..heap_hdrs.len() {
            if let Some(a) = arrays.get(i) {
                for e in a.chunks_exact(t.entry as usize) {
                    let tp = u64_at(e, 0).unwrap_or(0);
                    if tp != 0 && tp.is_multiple_of(8) {
                        timers.push((tp, t.timer_read_len() as usize));
                    }
                }
            }
        }
        let read = self.remote.read_many(&timers)?;
        let mut out: HashMap<u64, ChanKind> = HashMap::with_capacity(timers.len());
        for i in 0..timers.len() {
            let Some(b) = read.get(i) else { continue };
            let arg = u64_at(b, t.arg_data).unwrap_or(0);
            if arg == 0 {
                continue;
            }
            let when = u64_at(b, t.when).unwrap_or(0) as i64;
            let period = u64_at(b, t.period).unwrap_or(0) as i64;
            let live = match t.status {
                Some(off) => {
                    u32_at(b, off).is_some_and(|s| TimerHeapLayout::LIVE_STATUSES.contains(&s))
                }
                None => when > 0,
            };
            let kind = match (live, period > 0) {
                (false, _) => ChanKind::TimerStopped,
                (true, true) => ChanKind::Ticker,
                (true, false) => ChanKind::Timer,
            };
            // A channel can have a stopped timer and a running one (a Reset re-added it):
            // running wins.
            let e = out.entry(arg).or_insert(kind);
            if *e == ChanKind::TimerStopped {
                *e = kind;
            }
        }
        Ok(out)
    }

    /// Unwinds the stacks of goroutines whose `sched` is valid, by frame pointers, reading
    /// `STACK_WINDOW` bytes per goroutine per round.
    fn unwind(
        &self,
        gs: &mut [GoroutineInfo],
        range: std::ops::Range<usize>,
    ) -> Result<(), InventoryError> {
        let mut active: Vec<Unwind> = Vec::new();
        let mut by_sp: Vec<usize> = Vec::new();
        for i in range {
            let g = &mut gs[i];
            if !g.status.sched_valid() || g.sched_pc == 0 {
                continue;
            }
            g.stack.push(g.sched_pc);
            if self.syscall_by_sp && self.bin.is_some() && g.status == GStatus::Syscall {
                by_sp.push(i);
                continue;
            }
            let (lo, hi) = (g.stack_lo, g.stack_hi);
            if lo == 0 || hi <= lo || hi - lo > MAX_STACK {
                g.stack_truncated = g.sched_bp != 0;
                continue;
            }
            active.push(Unwind {
                idx: i,
                bp: g.sched_bp,
                floor: g.sched_sp.saturating_sub(1).max(lo.saturating_sub(1)),
                lo,
                hi,
                win_base: 0,
                win: Vec::new(),
            });
        }
        // Every round adds ≥ 1 frame to each goroutine still active, so MAX_DEPTH rounds.
        for _round in 0..=MAX_DEPTH {
            let mut need: Vec<Unwind> = Vec::new();
            for mut u in active.drain(..) {
                let idx = u.idx;
                if step(&mut u, &mut gs[idx]) {
                    need.push(u);
                }
            }
            if need.is_empty() {
                break;
            }
            let ranges: Vec<(u64, usize)> = need
                .iter()
                .map(|u| {
                    let end = u.hi.min(u.bp.saturating_add(STACK_WINDOW));
                    (u.bp, end.saturating_sub(u.bp) as usize)
                })
                .collect();
            let batch = self.remote.read_many(&ranges)?;
            for (k, mut u) in need.into_iter().enumerate() {
                match batch.get(k) {
                    Some(b) if b.len() >= 16 => {
                        u.win_base = u.bp;
                        u.win = b.to_vec();
                        active.push(u);
                    }
                    _ => gs[u.idx].stack_truncated = true,
                }
            }
        }
        for u in active {
            gs[u.idx].stack_truncated = true;
        }
        self.unwind_by_sp(gs, &by_sp)
    }

    /// Unwinds goroutines `idx` (each with `sched.pc` already on its stack) by the binary's SP
    /// tables, as the runtime's own unwinder does: at `pc` the frame has pushed `delta` bytes,
    /// so the return address is at `sp + delta` and the caller's SP is 8 bytes above it. One
    /// 8-byte read per goroutine per frame, batched across goroutines.
    fn unwind_by_sp(&self, gs: &mut [GoroutineInfo], idx: &[usize]) -> Result<(), InventoryError> {
        let Some(bin) = self.bin else {
            return Ok(());
        };
        // (goroutine, pc as a link-time address to look up, sp)
        let mut active: Vec<(usize, u64, u64)> = idx
            .iter()
            .map(|&i| (i, gs[i].sched_pc.wrapping_sub(self.bias), gs[i].sched_sp))
            .collect();
        while !active.is_empty() {
            let mut need: Vec<(usize, u64)> = Vec::new();
            for (i, lookup, sp) in active.drain(..) {
                let g = &mut gs[i];
                let slot = bin.sp_delta(lookup).and_then(|d| sp.checked_add(d));
                match slot {
                    Some(slot)
                        if g.stack.len() < MAX_DEPTH
                            && slot >= g.stack_lo
                            && slot.saturating_add(8) <= g.stack_hi =>
                    {
                        need.push((i, slot));
                    }
                    // The outermost frame (`runtime.goexit`), or a pc outside every function.
                    None => {}
                    Some(_) => g.stack_truncated = true,
                }
            }
            let ranges: Vec<(u64, usize)> = need.iter().map(|&(_, slot)| (slot, 8)).collect();
            let batch = self.remote.read_many(&ranges)?;
            for (k, (i, slot)) in need.into_iter().enumerate() {
                let ret = batch.get(k).and_then(|b| u64_at(b, 0)).unwrap_or(0);
                let g = &mut gs[i];
                if ret == 0 {
                    g.stack_truncated = true;
                    continue;
                }
                let lookup = ret.wrapping_sub(self.bias).wrapping_sub(1);
                if bin.func_for_pc(lookup).is_none() {
                    // Past the goroutine's first function: the end of the stack.
                    continue;
                }
                g.stack.push(ret);
                active.push((i, lookup, slot + 8));
            }
        }
        Ok(())
    }
}

/// Walks frames of `u` that lie in its window. Returns true if it needs memory at `u.bp`.
fn step(u: &mut Unwind, g: &mut GoroutineInfo) -> bool {
    loop {
        if u.bp == 0 {
            return false; // end of the chain (the goroutine's first frame saved BP = 0)
        }
        if g.stack.len() >= MAX_DEPTH
            || u.bp <= u.floor
            || u.bp < u.lo
            || !u.bp.is_multiple_of(8)
            || u.bp.saturating_add(16) > u.hi
        {
            g.stack_truncated = true;
            return false;
        }
        let rel = u.bp.wrapping_sub(u.win_base);
        let in_window = u.bp >= u.win_base && rel.saturating_add(16) <= u.win.len() as u64;
        if !in_window {
            return true;
        }
        let (Some(next_bp), Some(ret)) = (u64_at(&u.win, rel), u64_at(&u.win, rel + 8)) else {
            return true;
        };
        if ret == 0 {
            return false;
        }
        g.stack.push(ret);
        u.floor = u.bp;
        u.bp = next_bp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfgi_goexe::{tables, WaitReasonSource};

    /// Fake runtime memory in this process, laid out like Go 1.27's.
    struct Fake {
        words: Vec<u64>,
    }

    impl Fake {
        fn addr(&self, word: usize) -> u64 {
            self.words.as_ptr() as u64 + 8 * word as u64
        }
        fn set(&mut self, word: usize, byte_off: u64, v: u64) {
            assert_eq!(byte_off % 8, 0);
            self.words[word + (byte_off / 8) as usize] = v;
        }
        fn set_u32(&mut self, word: usize, byte_off: u64, v: u32) {
            let w = &mut self.words[word + (byte_off / 8) as usize];
            let shift = 8 * (byte_off % 8);
            *w = (*w & !(0xffff_ffffu64 << shift)) | (u64::from(v) << shift);
        }
        fn set_u8(&mut self, word: usize, byte_off: u64, v: u8) {
            let w = &mut self.words[word + (byte_off / 8) as usize];
            let shift = 8 * (byte_off % 8);
            *w = (*w & !(0xffu64 << shift)) | (u64::from(v) << shift);
        }
    }

    fn plan(allgs: u64, allglen: u64) -> Plan<'static> {
        Plan {
            bin: None,
            syscall_by_sp: false,
            allgs_vaddr: allgs,
            allgs_source: AllgsSource::Symbol,
            allglen_vaddr: Some(allglen),
            offsets: tables::offsets_for_minor(27).unwrap(),
            sudog: SudogOffsets::for_minor(27).unwrap(),
            chan: ChanLayout::for_minor(27),
            timers: None,
            wait_reasons: WaitReasons {
                names: tables::wait_reasons_for_minor(27).unwrap(),
                source: WaitReasonSource::Table { minor: 27 },
            },
        }
    }

    #[test]
    fn torn_and_cyclic_memory_is_bounded() {
        let o = tables::offsets_for_minor(27).unwrap();
        let sg = SudogOffsets::for_minor(27).unwrap();
        let gw = (o.g_size / 8) as usize;
        // Words: [0..4) allgs header + allglen, [4..16) array, then 8 gs, 2 sudogs, a stack.
        let (hdr, arr, g0) = (0usize, 4usize, 16usize);
        let s0 = g0 + 8 * gw;
        let sw = (sg.size / 8) as usize;
        let stack = s0 + 2 * sw;
        let stack_words = 64usize;
        let mut f = Fake {
            words: vec![0; stack + stack_words],
        };
        let g = |i: usize| g0 + i * gw;
        let (lo, hi) = (f.addr(stack), f.addr(stack + stack_words));
        let mut gaddrs: Vec<u64> = (0..8).map(|i| f.addr(g(i))).collect();
        gaddrs[4] = 0x10; // unmapped

        // g0: waiting on a select (two sudogs linked in a cycle), two frames then bp = 0.
        f.set_u32(g(0), o.g_atomicstatus, 4 | GSCAN);
        f.set(g(0), o.g_goid, 10);
        f.set_u8(g(0), o.g_waitreason, 18); // "select" in 1.27
        f.set(g(0), o.g_waitsince, 5);
        f.set(g(0), o.g_stack_lo, lo);
        f.set(g(0), o.g_stack_hi, hi);
        f.set(g(0), o.g_sched + o.gobuf_pc, 0x1111);
        f.set(g(0), o.g_sched + o.gobuf_sp, f.addr(stack + 2));
        f.set(g(0), o.g_sched + o.gobuf_bp, f.addr(stack + 8));
        f.set(stack, 8 * 8, f.addr(stack + 16)); // [bp] = next bp
        f.set(stack, 9 * 8, 0x2222); // [bp+8] = return address
        f.set(stack, 16 * 8, 0);
        f.set(stack, 17 * 8, 0x3333);
        let (sa, sb) = (f.addr(s0), f.addr(s0 + sw));
        f.set(g(0), o.g_waiting, sa);
        for (w, c, link) in [(s0, 0xc1, sb), (s0 + sw, 0xc2, sa)] {
            f.set_u8(w, sg.is_select, 1);
            f.set(w, sg.c, c);
            f.set(w, sg.elem, 0xe1);
            f.set(w, sg.waitlink, link);
        }
        // g1: dead.
        f.set_u32(g(1), o.g_atomicstatus, 6);
        f.set(g(1), o.g_goid, 11);
        // g2: goid 0 (torn). g3: status 5 (not a Go status).
        f.set_u32(g(2), o.g_atomicstatus, 4);
        f.set_u32(g(3), o.g_atomicstatus, 5);
        f.set(g(3), o.g_goid, 13);
        // g5: waiting, frame pointer pointing at itself.
        f.set_u32(g(5), o.g_atomicstatus, 4);
        f.set(g(5), o.g_goid, 15);
        f.set(g(5), o.g_stack_lo, lo);
        f.set(g(5), o.g_stack_hi, hi);
        f.set(g(5), o.g_sched + o.gobuf_pc, 0x5555);
        f.set(g(5), o.g_sched + o.gobuf_sp, f.addr(stack + 30));
        f.set(g(5), o.g_sched + o.gobuf_bp, f.addr(stack + 32));
        f.set(stack, 32 * 8, f.addr(stack + 32));
        f.set(stack, 33 * 8, 0x6666);
        // g6: running (no unwinding). g7: waiting, bp outside its stack.
        f.set_u32(g(6), o.g_atomicstatus, 2);
        f.set(g(6), o.g_goid, 16);
        f.set(g(6), o.g_sched + o.gobuf_pc, 0x7777);
        f.set_u32(g(7), o.g_atomicstatus, 4);
        f.set(g(7), o.g_goid, 17);
        f.set(g(7), o.g_stack_lo, lo);
        f.set(g(7), o.g_stack_hi, hi);
        f.set(g(7), o.g_sched + o.gobuf_pc, 0x8888);
        f.set(g(7), o.g_sched + o.gobuf_bp, 0x10);

        for (i, &a) in gaddrs.iter().enumerate() {
            f.words[arr + i] = a;
        }
        let arr_addr = f.addr(arr);
        f.set(hdr, 0, arr_addr);
        f.set(hdr, 8, 8);
        f.set(hdr, 16, 12);
        f.set(hdr, 24, 8); // allglen
        let plan = plan(f.addr(hdr), f.addr(hdr + 3));
        let inv = plan.read(std::process::id(), 0).unwrap();

        assert_eq!(inv.allgs_len, 8);
        assert_eq!(inv.allglen, Some(8));
        assert_eq!(inv.unreadable, 3, "{:?}", inv.goroutines);
        let ids: Vec<u64> = inv.goroutines.iter().map(|g| g.goid).collect();
        assert_eq!(ids, vec![10, 15, 16, 17]);
        assert_eq!(inv.by_status["dead"], 1);
        assert_eq!(inv.by_status["waiting"], 3);
        assert_eq!(inv.by_status["running"], 1);

        let g0 = &inv.goroutines[0];
        assert_eq!(g0.status, GStatus::Waiting);
        assert_eq!(g0.status_raw, 4 | GSCAN);
        assert_eq!(g0.wait_reason.as_deref(), Some("select"));
        assert_eq!(g0.stack, vec![0x1111, 0x2222, 0x3333]);
        assert!(!g0.stack_truncated);
        assert_eq!(g0.waiting_on, vec![0xc1, 0xc2]);
        assert_eq!(g0.sudogs.len(), 2);
        assert_eq!(g0.wait_age_ns, Some((inv.now_monotonic_ns - 5) as u64));
        assert_eq!(g0.stack_bytes(), 64 * 8);

        let g5 = &inv.goroutines[1];
        assert_eq!(g5.stack, vec![0x5555, 0x6666]);
        assert!(g5.stack_truncated);
        let g6 = &inv.goroutines[2];
        assert!(g6.stack.is_empty() && g6.wait_reason.is_none());
        let g7 = &inv.goroutines[3];
        assert_eq!(g7.stack, vec![0x8888]);
        assert!(g7.stack_truncated);

        // A corrupt slice header is a typed error, not a huge allocation.
        f.set(hdr, 8, MAX_ALLGS + 1);
        f.set(hdr, 16, MAX_ALLGS + 1);
        assert!(matches!(
            plan.read(std::process::id(), 0),
            Err(InventoryError::Corrupt { .. })
        ));
        f.set(hdr, 8, 13); // len > cap
        f.set(hdr, 16, 12);
        assert!(matches!(
            plan.read(std::process::id(), 0),
            Err(InventoryError::Corrupt { .. })
        ));
        // An unreadable allgs is an error too.
        let bad = super::tests::plan(0x10, 0x10);
        assert!(matches!(
            bad.read(std::process::id(), 0),
            Err(InventoryError::Unreadable { .. })
        ));
        drop(f);
    }

    #[test]
    fn rereads_read_whole_only_what_changed() {
        let o = tables::offsets_for_minor(27).unwrap();
        let gw = (o.g_size / 8) as usize;
        // Words: [0..4) allgs header + allglen, [4..8) array, then 3 gs, then a stack.
        let (hdr, arr, g0) = (0usize, 4usize, 8usize);
        let stack = g0 + 3 * gw;
        let mut f = Fake {
            words: vec![0; stack + 64],
        };
        let g = |i: usize| g0 + i * gw;
        let (lo, hi) = (f.addr(stack), f.addr(stack + 64));
        for (i, (status, goid)) in [(4u32, 20u64), (4, 21), (2, 22)].into_iter().enumerate() {
            f.set_u32(g(i), o.g_atomicstatus, status);
            f.set(g(i), o.g_goid, goid);
            f.set(g(i), o.g_stack_lo, lo);
            f.set(g(i), o.g_stack_hi, hi);
            f.set(g(i), o.g_sched + o.gobuf_pc, 0x1000 + i as u64);
            f.set(g(i), o.g_sched + o.gobuf_sp, f.addr(stack + 2));
            f.set(g(i), o.g_sched + o.gobuf_bp, f.addr(stack + 8));
            f.words[arr + i] = f.addr(g(i));
        }
        f.set(stack, 8 * 8, 0); // the chain ends after one return address
        f.set(stack, 9 * 8, 0x2222);
        let arr_addr = f.addr(arr);
        f.set(hdr, 0, arr_addr);
        f.set(hdr, 8, 3);
        f.set(hdr, 16, 4);
        f.set(hdr, 24, 3);
        let plan = plan(f.addr(hdr), f.addr(hdr + 3));
        let mut mem = Remembered::default();
        let reread = |mem: &mut Remembered| {
            let (mut whole, mut same) = (Vec::new(), Vec::new());
            let inv = plan
                .reread_each(std::process::id(), 0, mem, |w, u, _| {
                    whole.extend(w.iter().map(|g| (g.goid, g.stack.clone())));
                    same.extend(u.iter().map(|u| (u.goid, u.slot, u.parked())));
                })
                .unwrap();
            (inv, whole, same)
        };
        // First read: both parked goroutines whole, the running one only as present.
        let (inv, whole, same) = reread(&mut mem);
        assert_eq!(
            whole,
            vec![(20, vec![0x1000, 0x2222]), (21, vec![0x1001, 0x2222])]
        );
        assert_eq!(same, vec![(22, 2, false)]);
        assert_eq!(inv.unchanged, 1);
        assert_eq!(inv.by_status["waiting"], 2);
        assert_eq!(mem.remembered(), 2);
        // Nothing changed: no stack is read again.
        let (inv, whole, same) = reread(&mut mem);
        assert!(whole.is_empty());
        assert_eq!(same, vec![(20, 0, true), (21, 1, true), (22, 2, false)]);
        assert_eq!(inv.unchanged, 3);
        // 21 ran and parked elsewhere; the consumer wants 20 whole (it did not know it).
        f.set(g(1), o.g_sched + o.gobuf_pc, 0x1111);
        mem.forget(0);
        let (_, whole, same) = reread(&mut mem);
        let ids: Vec<u64> = whole.iter().map(|w| w.0).collect();
        assert_eq!(ids, vec![20, 21]);
        assert_eq!(whole[1].1, vec![0x1111, 0x2222]);
        assert_eq!(same, vec![(22, 2, false)]);
        // 20 exited and its g now runs a new goroutine that parked at the same place.
        f.set(g(0), o.g_goid, 30);
        let (_, whole, _) = reread(&mut mem);
        assert_eq!(whole.iter().map(|w| w.0).collect::<Vec<_>>(), vec![30]);
        // A GC moved 21's stack (its resume sp changed, its park counter did not): the same
        // park, not read again.
        f.set(g(1), o.g_sched + o.gobuf_sp, f.addr(stack + 4));
        let (_, whole, same) = reread(&mut mem);
        assert!(whole.is_empty(), "{whole:?}");
        assert_eq!(same.len(), 3);
        // It ran and parked again (counter moved) where its stack cannot be unwound to its end:
        // read whole every time from then on.
        f.set_u8(g(1), o.g_tracking_seq, 1);
        f.set(g(1), o.g_sched + o.gobuf_bp, 0x10);
        for _ in 0..2 {
            let (_, whole, _) = reread(&mut mem);
            assert_eq!(whole.iter().map(|w| w.0).collect::<Vec<_>>(), vec![21]);
        }
        drop(f);
    }

    #[test]
    fn statuses() {
        for raw in 0..16u32 {
            match GStatus::from_raw(raw) {
                Some(s) => assert!(!s.name().is_empty()),
                None => assert!(matches!(raw, 5 | 7 | 12..=15)),
            }
        }
        assert_eq!(GStatus::from_raw(10), Some(GStatus::Leaked));
    }
}
