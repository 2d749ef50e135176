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
    /// Offset of `g.stack` (`{lo, hi uintptr}`) in `runtime.g`: in the `g` of every goroutine
    /// (a heap object of under 512 bytes, otherwise scanned word by word) these two words are
    /// skipped, as Go's GC does (they are `uintptr`s): `stack.hi`, one past the stack's end,
    /// can equal the start of an unrelated heap object.
    pub g_stack: u64,
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
    /// The `g` of every goroutine (see [`Precise::g_stack`]).
    g_objects: HashSet<u64>,
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
        let ptr_words = ptr_bytes / 8;
        let n = ptr_words.div_ceil(8);
        if n > MAX_MASK {
            return None;
        }
        if self.precise.mask_on_demand && tflag & 16 != 0 {
            let p = self.mem.read_ranges(&[(gcdata, 8)]).ok()?.pop()??;
            gcdata = u64_at(&p, 0)?;
            if gcdata == 0 {
                // Not built yet (the runtime builds it at the first GC that scans such an
                // object): build it the way the runtime would, from the type's structure.
                let bits = build_type_mask(self.mem, typ)?;
                return Some(TypeMask {
                    size,
                    ptr_words,
                    bits,
                });
            }
        }
        if gcdata == 0 {
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
            if self.g_objects.contains(&start) {
                let mut b = bytes.to_vec();
                let at = self.precise.g_stack as usize;
                if let Some(stack) = b.get_mut(at..at + 16) {
                    stack.fill(0);
                }
                return self.scan(start, &b);
            }
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

/// The pointer mask (1 bit per word of its `PtrBytes`) of the type at `typ` as the runtime's
/// `buildGCMask` would build it, whether or not the runtime has; `None` if it cannot be read.
pub fn build_type_mask(mem: &dyn Memory, typ: u64) -> Option<Vec<u8>> {
    let b = mem.read_ranges(&[(typ, 16)]).ok()?.pop()??;
    let words = u64_at(&b, 8)? / 8;
    if words.div_ceil(8) > MAX_MASK {
        return None;
    }
    let mut bits = vec![0u8; words.div_ceil(8) as usize];
    let mut budget = MAX_MASK_STEPS;
    build_mask(mem, typ, 0, &mut bits, 0, &mut budget)?;
    Some(bits)
}

/// Type reads and copied mask words a [`build_mask`] may spend (a bound on hostile input).
const MAX_MASK_STEPS: u64 = 1 << 20;

/// `abi.Kind` of arrays and structs (`Kind_ & 31`).
const KIND_ARRAY: u8 = 17;
const KIND_STRUCT: u8 = 25;

/// Writes the pointer mask of the type at `typ` into `bits` from word `at` on, as the runtime's
/// `buildGCMask` (Go 1.24+) does for a type whose mask is built on demand: a type with its own
/// mask (`TFlagGCMaskOnDemand` clear) copies it, an array repeats its element's, a struct places
/// each pointerful field's at the field's offset. `None` when anything is unreadable,
/// implausible, too deep or over budget: the caller then scans conservatively.
fn build_mask(
    mem: &dyn Memory,
    typ: u64,
    at: u64,
    bits: &mut [u8],
    depth: u32,
    budget: &mut u64,
) -> Option<()> {
    if depth > 64 || *budget == 0 || typ == 0 || !typ.is_multiple_of(8) {
        return None;
    }
    *budget -= 1;
    let b = mem.read_ranges(&[(typ, 72)]).ok()?.pop()??;
    let size = u64_at(&b, 0)?;
    let ptr_bytes = u64_at(&b, 8)?;
    let tflag = *b.get(20)?;
    let kind = *b.get(23)? & 31;
    let gcdata = u64_at(&b, 32)?;
    if ptr_bytes == 0 {
        return Some(());
    }
    let words = ptr_bytes / 8;
    if ptr_bytes > size || !ptr_bytes.is_multiple_of(8) || at + words > 8 * bits.len() as u64 {
        return None;
    }
    let mut set = |i: u64| {
        if let Some(byte) = bits.get_mut((i / 8) as usize) {
            *byte |= 1 << (i % 8);
        }
    };
    if tflag & 16 == 0 {
        *budget = budget.checked_sub(words)?;
        let mask = mem
            .read_ranges(&[(gcdata, words.div_ceil(8) as usize)])
            .ok()?
            .pop()??;
        for i in 0..words {
            if mask.get((i / 8) as usize)? >> (i % 8) & 1 == 1 {
                set(at + i);
            }
        }
        return Some(());
    }
    match kind {
        KIND_ARRAY => {
            let elem = u64_at(&b, 48)?;
            let len = u64_at(&b, 64)?;
            let elem_size = mem.read_ranges(&[(elem, 8)]).ok()?.pop()??;
            let elem_size = u64_at(&elem_size, 0)?;
            if elem_size == 0 || !elem_size.is_multiple_of(8) || len.checked_mul(elem_size)? > size
            {
                return None;
            }
            for i in 0..len {
                build_mask(mem, elem, at + i * elem_size / 8, bits, depth + 1, budget)?;
            }
            Some(())
        }
        KIND_STRUCT => {
            let fields = u64_at(&b, 56)?;
            let n = u64_at(&b, 64)?;
            if n > 1 << 16 {
                return None;
            }
            let f = mem
                .read_ranges(&[(fields, (n * 24) as usize)])
                .ok()?
                .pop()??;
            for k in 0..n {
                let ft = u64_at(&f, k * 24 + 8)?;
                let off = u64_at(&f, k * 24 + 16)?;
                let t = mem.read_ranges(&[(ft, 16)]).ok()?.pop()??;
                let field_ptr_bytes = u64_at(&t, 8)?;
                if field_ptr_bytes == 0 {
                    continue;
                }
                if !off.is_multiple_of(8) || off.checked_add(field_ptr_bytes)? > size {
                    return None;
                }
                build_mask(mem, ft, at + off / 8, bits, depth + 1, budget)?;
            }
            Some(())
        }
        _ => None,
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
        g_objects: r.goroutines.iter().map(|g| g.g_addr).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::FakeMemory;

    /// An `abi.Type` (72 bytes: the header, then an array's elem/len or a struct's fields).
    fn ty(size: u64, ptr_bytes: u64, tflag: u8, kind: u8, gcdata: u64, extra: [u64; 3]) -> Vec<u8> {
        let mut b = vec![0u8; 72];
        b[0..8].copy_from_slice(&size.to_le_bytes());
        b[8..16].copy_from_slice(&ptr_bytes.to_le_bytes());
        b[20] = tflag;
        b[23] = kind;
        b[32..40].copy_from_slice(&gcdata.to_le_bytes());
        for (k, w) in extra.iter().enumerate() {
            b[48 + 8 * k..56 + 8 * k].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// A struct built on demand of a pointerless field and an array (built on demand) of 3
    /// elements whose own mask is in the binary: the mask is the runtime's `buildGCMask`'s.
    #[test]
    fn builds_masks_built_on_demand() {
        let mut m = FakeMemory::default();
        const LEAF: u64 = 0x1000;
        const LEAF_MASK: u64 = 0x1100;
        const ARR: u64 = 0x2000;
        const TOP: u64 = 0x3000;
        const FIELDS: u64 = 0x4000;
        const NOPTR: u64 = 0x5000;
        // leaf: struct { p *int; n int }.
        m.put(LEAF, ty(16, 8, 0, KIND_STRUCT, LEAF_MASK, [0; 3]));
        m.put(LEAF_MASK, vec![0b01]);
        // [3]leaf: pointers at words 0, 2, 4.
        m.put(ARR, ty(48, 40, 16, KIND_ARRAY, 0x9999, [LEAF, 0, 3]));
        m.put(NOPTR, ty(24, 0, 0, 25, 0, [0; 3]));
        // struct { x [3]int; a [3]leaf; y int }: pointers at words 3, 5, 7.
        m.put(TOP, ty(80, 64, 16, KIND_STRUCT, 0x9999, [0, FIELDS, 2]));
        let mut f = vec![0u8; 48];
        f[8..16].copy_from_slice(&NOPTR.to_le_bytes());
        f[32..40].copy_from_slice(&ARR.to_le_bytes());
        f[40..48].copy_from_slice(&24u64.to_le_bytes());
        m.put(FIELDS, f);
        assert_eq!(build_type_mask(&m, TOP), Some(vec![0b1010_1000]));
        assert_eq!(build_type_mask(&m, ARR), Some(vec![0b1_0101]));
        // An on-demand type of another kind, a field past the end, a missing element type:
        // nothing built (the object is then scanned word by word).
        m.put(0x6000, ty(80, 64, 16, 20, 0, [0; 3]));
        assert_eq!(build_type_mask(&m, 0x6000), None);
        m.put(ARR, ty(48, 40, 16, KIND_ARRAY, 0x9999, [0x7000, 0, 3]));
        assert_eq!(build_type_mask(&m, TOP), None);
        m.put(ARR, ty(48, 40, 16, KIND_ARRAY, 0x9999, [LEAF, 0, 3]));
        let mut f = vec![0u8; 48];
        f[32..40].copy_from_slice(&ARR.to_le_bytes());
        f[40..48].copy_from_slice(&48u64.to_le_bytes());
        f[8..16].copy_from_slice(&NOPTR.to_le_bytes());
        m.put(FIELDS, f);
        assert_eq!(build_type_mask(&m, TOP), None);
    }
}
