//! The marking: conservative reachability from the roots through the heap, with candidates
//! promoted to roots when what they wait on becomes reachable, to a fixed point (Go's
//! `findMaybeRunnableGoroutines`, `runtime/mgc.go` 1.26+).

use crate::candidates::Candidates;
use crate::memory::Memory;
use crate::spans::Spans;
use crate::HeapError;
use sfgi_engine::goroutine::{GStatus, GoroutineInfo};
use std::collections::HashSet;

/// Largest goroutine stack scanned (Go's default maximum is 1 GB).
pub const MAX_STACK: u64 = 1 << 30;
/// Bytes per read piece.
const PIECE: u64 = 1 << 20;
/// Bytes per batch of reads.
const BATCH_BYTES: u64 = 4 << 20;
/// Ranges per batch of reads.
const BATCH_RANGES: usize = 1024;

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
    /// Root ranges `[start, end)` scanned conservatively (module data/bss, special records).
    pub root_ranges: Vec<(u64, u64)>,
    /// Objects that are roots themselves (objects with finalizers).
    pub root_objects: Vec<u64>,
    /// Every live goroutine.
    pub goroutines: &'a [GoroutineInfo],
    /// Which of them are candidates.
    pub candidates: &'a Candidates,
}

/// The part of `g`'s stack that holds live frames: from its saved SP up when it is parked
/// (below SP is dead), the whole stack otherwise (a running goroutine's SP is not in memory).
fn stack_range(g: &GoroutineInfo) -> Result<(u64, u64), HeapError> {
    if g.stack_hi <= g.stack_lo || g.stack_hi - g.stack_lo > MAX_STACK || g.stack_lo % 8 != 0 {
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
        && g.sched_sp % 8 == 0
    {
        g.sched_sp
    } else {
        g.stack_lo
    };
    Ok((lo, g.stack_hi))
}

struct Marker<'a> {
    mem: &'a dyn Memory,
    spans: &'a Spans,
    opaque: HashSet<u64>,
    /// Per span, a bit per slot (allocated on first mark).
    bits: Vec<Vec<u64>>,
    lo: u64,
    hi: u64,
    work: Vec<(u64, u64)>,
    marked: u64,
}

impl Marker<'_> {
    fn is_marked(&self, span: usize, idx: u64) -> bool {
        self.bits
            .get(span)
            .and_then(|b| b.get((idx / 64) as usize))
            .is_some_and(|w| w >> (idx % 64) & 1 == 1)
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

    /// Queues `[start, end)` for scanning, in pieces.
    fn push(&mut self, start: u64, end: u64) {
        let mut a = start & !7;
        while a < end {
            let b = end.min(a.saturating_add(PIECE));
            self.work.push((a, b));
            a = b;
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for w in bytes.chunks_exact(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.mark(u64::from_le_bytes(a));
        }
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
            let read = self.mem.read_ranges(&batch)?;
            for (&(addr, len), b) in batch.iter().zip(read) {
                let b = b.ok_or(HeapError::Unreadable {
                    what: "heap object, stack or root range",
                    addr,
                    len,
                })?;
                self.scan(&b);
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
        spans: r.spans,
        opaque: r.candidates.opaque(),
        bits: vec![Vec::new(); r.spans.spans().len()],
        lo,
        hi,
        work: Vec::new(),
        marked: 0,
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
