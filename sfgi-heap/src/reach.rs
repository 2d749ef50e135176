//! The marking: conservative reachability from the roots through the heap, with candidates
//! promoted to roots when what they wait on becomes reachable, to a fixed point (Go's
//! `findMaybeRunnableGoroutines`, `runtime/mgc.go` 1.26+).

use crate::candidates::Candidates;
use crate::memory::Memory;
use crate::spans::Spans;
use crate::{u64_at, HeapError};
use sfgi_engine::goroutine::{GStatus, GoroutineInfo};
use std::collections::HashSet;

/// Largest goroutine stack scanned (Go's default maximum is 1 GB).
pub const MAX_STACK: u64 = 1 << 30;
/// Bytes per read piece.
const PIECE: u64 = 1 << 20;
/// Bytes per batch of reads.
const BATCH_BYTES: u64 = 4 << 20;
/// Ranges per batch of reads.
const BATCH_RANGES: usize = 16384;

/// What one pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// Indices (into the candidate list) of candidates whose objects stayed unreachable.
    pub unreachable: Vec<usize>,
    /// Heap objects found reachable.
    pub marked: u64,
    /// Candidates promoted to roots.
    pub promoted: usize,
}

/// The inputs of one pass.
pub struct Reach<'a> {
    /// The target's memory.
    pub mem: &'a dyn Memory,
    /// Its in-use heap spans.
    pub spans: &'a Spans,
    /// Root ranges `[start, end)` scanned conservatively (module data/bss, special records, the
    /// used part of the off-heap finalizer and cleanup queue blocks).
    pub root_ranges: Vec<(u64, u64)>,
    /// Objects that are roots themselves (objects with finalizers).
    pub root_objects: Vec<u64>,
    /// Every live goroutine.
    pub goroutines: &'a [GoroutineInfo],
    /// Which of them are candidates.
    pub candidates: &'a Candidates,
    /// How to scan typed objects.
    pub precise: Precise,
}

/// The part of `g`'s stack that holds live frames: from its saved SP up when it is parked
/// (below SP is dead), the whole stack otherwise (a running goroutine's SP is not in memory).
fn stack_range(g: &GoroutineInfo) -> Result<(u64, u64), HeapError> {
    if g.stack_hi <= g.stack_lo
        || g.stack_hi - g.stack_lo > MAX_STACK
        || !g.stack_lo.is_multiple_of(8)
    {
        return Err(HeapError::Corrupt {
            what: "goroutine stack",
            why: format!(
                "goroutine {}: stack [{:#x}, {:#x})",
                g.goid, g.stack_lo, g.stack_hi
            ),
        });
    }
    let lo = if g.status.sched_valid()
        && g.sched_sp >= g.stack_lo
        && g.sched_sp < g.stack_hi
        && g.sched_sp.is_multiple_of(8)
    {
        g.sched_sp
    } else {
        g.stack_lo
    };
    Ok((lo, g.stack_hi))
}

/// A type's pointer mask, as the heap scan uses it.
#[derive(Debug)]
struct TypeMask {
    /// `Size_`: the mask repeats every `size` bytes (arrays).
    size: u64,
    /// `PtrBytes / 8`: words of each element the mask covers (the rest are scalars).
    ptr_words: u64,
    /// 1 bit per word.
    bits: Vec<u8>,
}

/// Largest type mask read (bytes): a type with more than 8M pointer words is scanned
/// conservatively.
const MAX_MASK: u64 = 1 << 20;

/// How objects over 512 bytes are scanned when the layout has allocation headers (Go 1.22+):
/// precisely, with their type's pointer mask (`mbitmap.go` `typePointersOfUnchecked`), so
/// scalars that happen to look like pointers (hashes, counters, the write barrier's buffer of
/// stale pointers in each `p`) keep nothing alive. Anything not readable or not plausible falls
/// back to scanning every word.
#[derive(Clone, Copy, Debug, Default)]
pub struct Precise {
    /// Whether objects over 512 bytes carry a type (allocation headers).
    pub headers: bool,
    /// Whether `TFlagGCMaskOnDemand` exists.
    pub mask_on_demand: bool,
}

struct Marker<'a> {
    mem: &'a dyn Memory,
    precise: Precise,
    /// Type address → its mask (`None`: scan conservatively).
    types: std::collections::HashMap<u64, Option<std::rc::Rc<TypeMask>>>,
    spans: &'a Spans,
    opaque: HashSet<u64>,
    /// Per span, a bit per slot (allocated on first mark).
    bits: Vec<Vec<u64>>,
    lo: u64,
    hi: u64,
    work: Vec<(u64, u64)>,
    marked: u64,
    /// With debug logging: object → where the pointer to it was found (address of the word).
    why: Option<std::collections::HashMap<u64, u64>>,
}

impl Marker<'_> {
    fn is_marked(&self, span: usize, idx: u64) -> bool {
        self.bits
            .get(span)
            .and_then(|b| b.get((idx / 64) as usize))
            .is_some_and(|w| w >> (idx % 64) & 1 == 1)
    }

    /// Marks the object holding `addr` (if any and not yet), queueing its words for scanning;
    /// `from` is where `addr` was read (for the debug log).
    fn mark_from(&mut self, addr: u64, from: u64) {
        if let Some(why) = self.why.as_mut() {
            if let Some((_, _, base)) = self.spans.object(addr) {
                why.entry(base).or_insert(from);
            }
        }
        self.mark(addr)
    }

    /// Marks the object holding `addr` (if any and not yet), queueing its words for scanning.
    fn mark(&mut self, addr: u64) {
        if addr < self.lo || addr >= self.hi {
            return;
        }
        let Some((si, idx, base)) = self.spans.object(addr) else {
            return;
        };
        let Some(span) = self.spans.get(si) else {
            return;
        };
        let Some(bits) = self.bits.get_mut(si) else {
            return;
        };
        if bits.is_empty() {
            let slots = (span.limit - span.start) / span.elemsize;
            bits.resize(slots.div_ceil(64) as usize, 0);
        }
        let Some(w) = bits.get_mut((idx / 64) as usize) else {
            return;
        };
        if *w >> (idx % 64) & 1 == 1 {
            return;
        }
        *w |= 1 << (idx % 64);
        self.marked += 1;
        if !span.noscan && !self.opaque.contains(&base) {
            self.push(base, base + span.elemsize);
        }
    }

    /// The pointer mask of the type at `typ`, read once (None: scan conservatively).
    fn type_mask(&mut self, typ: u64) -> Option<std::rc::Rc<TypeMask>> {
        if typ == 0 || !typ.is_multiple_of(8) {
            return None;
        }
        if let Some(t) = self.types.get(&typ) {
            return t.clone();
        }
        let t = self.read_type(typ).map(std::rc::Rc::new);
        if self.types.len() < 1 << 16 {
            self.types.insert(typ, t.clone());
        }
        t
    }

    fn read_type(&self, typ: u64) -> Option<TypeMask> {
        let b = self.mem.read_ranges(&[(typ, 48)]).ok()?.pop()??;
        let size = u64_at(&b, 0)?;
        let ptr_bytes = u64_at(&b, 8)?;
        let tflag = *b.get(20)?;
        let mut gcdata = u64_at(&b, 32)?;
        if size == 0 || ptr_bytes == 0 || ptr_bytes > size || !ptr_bytes.is_multiple_of(8) {
            return None;
        }
        if self.precise.mask_on_demand && tflag & 16 != 0 {
            let p = self.mem.read_ranges(&[(gcdata, 8)]).ok()?.pop()??;
            gcdata = u64_at(&p, 0)?;
        }
        let ptr_words = ptr_bytes / 8;
        let n = ptr_words.div_ceil(8);
        if gcdata == 0 || n > MAX_MASK {
            return None;
        }
        let bits = self
            .mem
            .read_ranges(&[(gcdata, n as usize)])
            .ok()?
            .pop()??;
        Some(TypeMask {
            size,
            ptr_words,
            bits,
        })
    }

    /// Scans the object at `base` whose bytes `[start, start + bytes.len())` were read:
    /// precisely when its span says it has a type, else every word.
    fn scan_object(&mut self, start: u64, bytes: &[u8]) {
        let typed = if self.precise.headers {
            self.spans
                .object(start)
                .and_then(|(si, _, base)| self.spans.get(si).map(|s| (*s, base)))
                .filter(|(s, base)| s.elemsize > 512 && *base == start)
        } else {
            None
        };
        let Some((span, base)) = typed else {
            return self.scan(start, bytes);
        };
        // A piece of a large object (objects are read in pieces of PIECE bytes) is scanned
        // conservatively only if the mask says so: handle the first piece precisely and let
        // the rest be conservative unless the object fits one piece.
        if bytes.len() as u64 != span.elemsize {
            return self.scan(start, bytes);
        }
        let (typ, data_off) = if span.large {
            (span.large_type, 0)
        } else {
            (u64_at(bytes, 0).unwrap_or(0), 8)
        };
        let Some(t) = self.type_mask(typ) else {
            return self.scan(start, bytes);
        };
        let data = &bytes[data_off as usize..];
        let data_start = base + data_off;
        let mut elem = 0u64;
        while elem < data.len() as u64 {
            for i in 0..t.ptr_words {
                if t.bits
                    .get((i / 8) as usize)
                    .is_some_and(|b| b >> (i % 8) & 1 == 1)
                {
                    let off = elem + i * 8;
                    if let Some(v) = u64_at(data, off) {
                        if self.why.is_some() {
                            self.mark_from(v, data_start + off);
                        } else {
                            self.mark(v);
                        }
                    }
                }
            }
            elem += t.size;
        }
    }

    /// Queues `[start, end)` for scanning, in pieces.
    fn push(&mut self, start: u64, end: u64) {
        let mut a = start & !7;
        while a < end {
            let b = end.min(a.saturating_add(PIECE));
            self.work.push((a, b));
            a = b;
        }
    }

    fn scan(&mut self, at: u64, bytes: &[u8]) {
        for (k, w) in bytes.chunks_exact(8).enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            let v = u64::from_le_bytes(a);
            if self.why.is_some() {
                self.mark_from(v, at + 8 * k as u64);
            } else {
                self.mark(v);
            }
        }
    }

    /// The chain of words that made `addr`'s object reachable, innermost first (debug log).
    fn explain(&self, addr: u64) -> String {
        let Some(why) = &self.why else {
            return String::new();
        };
        let mut out = Vec::new();
        let mut at = addr;
        for _ in 0..16 {
            let Some((_, _, base)) = self.spans.object(at) else {
                out.push(format!("{at:#x} (a root)"));
                break;
            };
            match why.get(&base) {
                Some(&from) => {
                    out.push(format!("{base:#x} <- word at {from:#x}"));
                    at = from;
                }
                None => {
                    out.push(format!("{base:#x} (root object)"));
                    break;
                }
            }
        }
        out.join(" ; ")
    }

    /// Scans everything queued (and everything that queues) until nothing is left.
    fn drain(&mut self) -> Result<(), HeapError> {
        while !self.work.is_empty() {
            let mut batch: Vec<(u64, usize)> = Vec::new();
            let mut bytes = 0u64;
            while let Some((a, b)) = self.work.pop() {
                batch.push((a, (b - a) as usize));
                bytes += b - a;
                if bytes >= BATCH_BYTES || batch.len() >= BATCH_RANGES {
                    break;
                }
            }
            let mut failed = None;
            let mem = self.mem;
            mem.read_each(&batch, &mut |i, b| match b {
                Some(b) => {
                    if let Some(&(addr, _)) = batch.get(i) {
                        self.scan_object(addr, b);
                    }
                }
                None => {
                    if failed.is_none() {
                        failed = batch.get(i).copied();
                    }
                }
            })?;
            if let Some((addr, len)) = failed {
                return Err(HeapError::Unreadable {
                    what: "heap object, stack or root range",
                    addr,
                    len,
                });
            }
        }
        Ok(())
    }

    /// Whether the object at `addr` is reachable: marked, or not in the heap at all (a global,
    /// a stack: as Go's `isMarkedOrNotInHeap`).
    fn reachable(&self, addr: u64) -> bool {
        match self.spans.object(addr) {
            Some((si, idx, _)) => self.is_marked(si, idx),
            None => true,
        }
    }
}

/// Runs one pass: marks from the roots, promotes candidates whose objects are reachable, and
/// returns the candidates left unreachable. Any unreadable range fails the pass.
pub fn reach(r: &Reach<'_>) -> Result<PassOutcome, HeapError> {
    let (lo, hi) = r.spans.bounds();
    let mut m = Marker {
        mem: r.mem,
        precise: r.precise,
        types: std::collections::HashMap::new(),
        spans: r.spans,
        opaque: r.candidates.opaque(),
        bits: vec![Vec::new(); r.spans.spans().len()],
        lo,
        hi,
        work: Vec::new(),
        marked: 0,
        why: log::log_enabled!(log::Level::Trace).then(std::collections::HashMap::new),
    };
    let is_candidate: HashSet<usize> = r.candidates.list.iter().map(|c| c.index).collect();
    for (i, g) in r.goroutines.iter().enumerate() {
        if is_candidate.contains(&i) || g.status.is_dead() {
            continue;
        }
        if g.status == GStatus::Copystack {
            return Err(HeapError::Corrupt {
                what: "goroutine stack",
                why: format!("goroutine {} is moving its stack", g.goid),
            });
        }
        let (a, b) = stack_range(g)?;
        m.push(a, b);
    }
    for &(a, b) in &r.root_ranges {
        m.push(a, b);
    }
    for &o in &r.root_objects {
        m.mark(o);
        // A root object is scanned even if it is a sudog (never the case) or noscan (no-op).
    }
    m.drain()?;
    let mut promoted = vec![false; r.candidates.list.len()];
    let mut n_promoted = 0;
    loop {
        let mut more = false;
        for (k, c) in r.candidates.list.iter().enumerate() {
            if promoted[k] || !c.objects.iter().any(|&o| m.reachable(o)) {
                continue;
            }
            promoted[k] = true;
            n_promoted += 1;
            if m.why.is_some() {
                for &o in c.objects.iter().filter(|&&o| m.reachable(o)) {
                    log::trace!(
                        "goroutine {} ({}) is live: {o:#x} is reachable: {}",
                        c.goid,
                        c.object_type(),
                        m.explain(o)
                    );
                }
            }
            more = true;
            let g = r.goroutines.get(c.index).ok_or(HeapError::Corrupt {
                what: "candidate",
                why: "index outside the goroutine list".into(),
            })?;
            let (a, b) = stack_range(g)?;
            m.push(a, b);
        }
        if !more {
            break;
        }
        m.drain()?;
    }
    Ok(PassOutcome {
        unreachable: (0..promoted.len()).filter(|&k| !promoted[k]).collect(),
        marked: m.marked,
        promoted: n_promoted,
    })
}
