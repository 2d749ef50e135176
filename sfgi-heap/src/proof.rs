//! A proof: two reachability passes some time apart, and what both agree on.
//!
//! A pass reads the target while it runs, so a pointer moved from a part not yet read to a
//! part already read can escape it. A goroutine is proven leaked only when both passes find
//! what it waits on unreachable and its park is exactly the same in both (same `g`, goid, wait
//! reason, `waitsince`, saved pc and sp, same objects): it did not run in between, as far as
//! memory can tell. Anything a pass cannot read makes the whole proof prove nothing.

use crate::candidates::{read_semtable, Candidates, WaitKind};
use crate::locate::Globals;
use crate::memory::Memory;
use crate::queues::queue_roots;
use crate::reach::{reach, Reach};
use crate::spans::Spans;
use crate::{u64_at, u8_at, HeapError};
use sfgi_engine::goroutine::GoroutineInfo;
use sfgi_engine::proof::{ProofReport, ProvenGoroutine, WaitedObject};
use sfgi_goexe::HeapLayout;
use sfgi_trace::clock::monotonic_ns;
use std::collections::HashMap;
use std::time::Duration;

/// Most modules followed from `firstmoduledata` (plugins add modules; a cycle is corrupt).
pub const MAX_MODULES: usize = 64;
/// Largest data or bss section scanned per module.
pub const MAX_SECTION: u64 = 1 << 30;
/// Most specials (finalizers, cleanups, profile records…) read per pass.
pub const MAX_SPECIALS: usize = 1 << 22;

/// How proofs run.
#[derive(Clone, Copy, Debug)]
pub struct ProofConfig {
    /// Time between the two passes.
    pub gap: Duration,
    /// Offset of `g.stack` (`{lo, hi}`) in `runtime.g`: after marking, every scanned stack's
    /// bounds are read again and the pass is refused if one moved (it was read from a stack
    /// the goroutine had left). 0 in Go 1.21–1.27.
    pub g_stack: u64,
}

impl Default for ProofConfig {
    fn default() -> Self {
        ProofConfig {
            gap: Duration::from_millis(200),
            g_stack: 0,
        }
    }
}

/// Everything about a target a proof needs, worked out once.
#[derive(Clone, Debug)]
pub struct Prover {
    /// The layouts.
    pub layout: HeapLayout,
    /// Where the globals are.
    pub globals: Globals,
    /// The configuration.
    pub config: ProofConfig,
}

/// One pass's findings: per unreachable candidate (by goid), its park and what it waits on.
pub type Found = HashMap<u64, (Park, WaitedObject)>;

/// What must not change between the passes for a goroutine to be proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Park {
    /// Address of its `g`.
    pub g_addr: u64,
    /// Its wait reason.
    pub wait_reason: Option<String>,
    /// `g.waitsince`.
    pub waitsince_ns: i64,
    /// `g.sched.pc`.
    pub sched_pc: u64,
    /// `g.sched.sp`.
    pub sched_sp: u64,
    /// What it waits on.
    pub objects: Vec<u64>,
}

impl Prover {
    /// One pass over a whole inventory read just before. Refused when the inventory could not
    /// read every `g` (a goroutine left out would be a root not scanned).
    pub fn pass_inventory(
        &self,
        mem: &dyn Memory,
        inv: &sfgi_trace::inventory::Inventory,
    ) -> Result<(Found, usize), HeapError> {
        if inv.unreadable > 0 || inv.unchanged > 0 {
            return Err(HeapError::Corrupt {
                what: "inventory",
                why: format!(
                    "{} goroutines not read ({} unreadable, {} not read whole)",
                    inv.unreadable + inv.unchanged,
                    inv.unreadable,
                    inv.unchanged
                ),
            });
        }
        self.pass(mem, &inv.goroutines)
    }

    /// One pass over `goroutines` (every live goroutine, read just before).
    pub fn pass(
        &self,
        mem: &dyn Memory,
        goroutines: &[GoroutineInfo],
    ) -> Result<(Found, usize), HeapError> {
        let l = &self.layout;
        let sema = match self.globals.semtable {
            Some(s) => read_semtable(mem, l, s)?,
            None => HashMap::new(),
        };
        let candidates = Candidates::find(goroutines, &sema);
        if candidates.list.is_empty() {
            return Ok((HashMap::new(), 0));
        }
        let spans = Spans::read(mem, l, self.globals.mheap)?;
        let mut root_ranges = modules(mem, l, self.globals.firstmoduledata)?;
        let (special_ranges, root_objects) = specials(mem, l, &spans)?;
        root_ranges.extend(special_ranges);
        // After the specials: the sweeper moves a finalizer or cleanup from its special to a
        // queue, never back, so one that moves while the pass reads is seen in one or the other.
        root_ranges.extend(queue_roots(
            mem,
            l,
            self.globals.allfin,
            self.globals.cleanup_queue,
        )?);
        let outcome = reach(&Reach {
            mem,
            spans: &spans,
            root_ranges,
            root_objects,
            goroutines,
            candidates: &candidates,
            precise: crate::reach::Precise {
                headers: l.malloc_headers,
                mask_on_demand: l.gcmask_on_demand,
                g_stack: self.config.g_stack,
            },
        })?;
        self.stacks_unmoved(mem, goroutines, &candidates, &outcome.unreachable)?;
        let mut found = HashMap::new();
        for k in outcome.unreachable {
            let Some(c) = candidates.list.get(k) else {
                continue;
            };
            // The main goroutine in `select {}` (an idiom at the end of `main`) is by design:
            // like Go's detector, it is not a root (what only it references can leak) but it
            // is never reported.
            if c.goid == 1 && c.kind == WaitKind::Nothing("select {}") {
                continue;
            }
            let Some(g) = goroutines.get(c.index) else {
                continue;
            };
            let park = Park {
                g_addr: g.g_addr,
                wait_reason: g.wait_reason.clone(),
                waitsince_ns: g.waitsince_ns,
                sched_pc: g.sched_pc,
                sched_sp: g.sched_sp,
                objects: c.objects.clone(),
            };
            let address = match c.kind {
                WaitKind::Nothing(_) => 0,
                _ => c.objects.first().copied().unwrap_or(0),
            };
            let object = WaitedObject {
                kind: c.object_type().to_string(),
                address: format!("{address:#x}"),
            };
            found.insert(g.goid, (park, object));
        }
        Ok((found, candidates.list.len()))
    }

    /// A whole proof: `read_goroutines` (a whole inventory read), a pass, `config.gap`, the
    /// same again, and the goroutines both passes found unreachable with an unchanged park.
    pub fn prove<E: std::fmt::Display>(
        &self,
        mem: &dyn Memory,
        mut read_goroutines: impl FnMut() -> Result<Vec<GoroutineInfo>, E>,
    ) -> ProofReport {
        let t0 = monotonic_ns();
        let mut report = ProofReport::default();
        let mut run = |report: &mut ProofReport| -> Result<Option<Found>, String> {
            let g = read_goroutines().map_err(|e| format!("inventory: {e}"))?;
            let (found, n) = self.pass(mem, &g).map_err(|e| e.to_string())?;
            report.candidates = n;
            Ok((n > 0).then_some(found))
        };
        let first = run(&mut report);
        let outcome = match first {
            Ok(Some(first)) if !first.is_empty() => {
                std::thread::sleep(self.config.gap);
                match run(&mut report) {
                    Ok(Some(second)) => Ok(agree(first, second)),
                    Ok(None) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            }
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(p) => report.proven = p,
            Err(e) => report.refused = Some(e),
        }
        report.bytes_read = mem.bytes_read();
        report.pass_ns = monotonic_ns().saturating_sub(t0);
        report
    }
}

impl Prover {
    /// Fails if a goroutine whose stack the pass scanned (every one but the unreachable
    /// candidates) now has other stack bounds: its stack moved while the pass ran.
    fn stacks_unmoved(
        &self,
        mem: &dyn Memory,
        goroutines: &[GoroutineInfo],
        candidates: &Candidates,
        unreachable: &[usize],
    ) -> Result<(), HeapError> {
        let skip: std::collections::HashSet<usize> = unreachable
            .iter()
            .filter_map(|&k| candidates.list.get(k).map(|c| c.index))
            .collect();
        let scanned: Vec<&GoroutineInfo> = goroutines
            .iter()
            .enumerate()
            .filter(|(i, g)| !skip.contains(i) && !g.status.is_dead() && g.g_addr != 0)
            .map(|(_, g)| g)
            .collect();
        let ranges: Vec<(u64, usize)> = scanned
            .iter()
            .map(|g| (g.g_addr.wrapping_add(self.config.g_stack), 16))
            .collect();
        let mut moved = None;
        mem.read_each(&ranges, &mut |i, b| {
            let Some(g) = scanned.get(i) else { return };
            let now = b.and_then(|b| Some((u64_at(b, 0)?, u64_at(b, 8)?)));
            if moved.is_none() && now != Some((g.stack_lo, g.stack_hi)) {
                moved = Some(g.goid);
            }
        })?;
        match moved {
            Some(goid) => Err(HeapError::Corrupt {
                what: "goroutine stack",
                why: format!("goroutine {goid}'s stack moved during the pass"),
            }),
            None => Ok(()),
        }
    }

    /// The goroutines both passes found unreachable with the same park, by goid.
    pub fn agree(first: Found, second: Found) -> Vec<ProvenGoroutine> {
        agree(first, second)
    }
}

/// The goroutines both passes found unreachable with the same park, by goid.
fn agree(first: Found, mut second: Found) -> Vec<ProvenGoroutine> {
    let mut out: Vec<ProvenGoroutine> = first
        .into_iter()
        .filter_map(|(goid, (park, object))| {
            let (park2, object2) = second.remove(&goid)?;
            (park == park2 && object == object2).then_some(ProvenGoroutine { goid, object })
        })
        .collect();
    out.sort_by_key(|p| p.goid);
    out
}

/// The pointer words of the data and bss of every module, from `firstmoduledata` through
/// `next`, as ranges: the runs of set bits of the module's `gcdatamask`/`gcbssmask` (the
/// runtime's own pointer bitmaps, which its GC scans these sections with), so a scalar global
/// that happens to hold a heap address — a `g.stack.hi`, a hash — keeps nothing alive. A
/// section whose mask is missing or does not match its size is scanned whole (conservative:
/// that can only keep more alive).
fn modules(mem: &dyn Memory, l: &HeapLayout, first: u64) -> Result<Vec<(u64, u64)>, HeapError> {
    let mut out = Vec::new();
    let mut md = first;
    let mut n = 0;
    let len = l.md_next.max(l.md_gcdatamask).max(l.md_gcbssmask) + 16;
    while md != 0 {
        n += 1;
        if n > MAX_MODULES {
            return Err(HeapError::Corrupt {
                what: "moduledata",
                why: format!("more than {MAX_MODULES} modules (a cycle?)"),
            });
        }
        let b = mem.read_one(md, len as usize, "moduledata")?;
        let w = |o| u64_at(&b, o).unwrap_or(0);
        let sections = [
            (w(l.md_data), w(l.md_edata), l.md_gcdatamask),
            (w(l.md_bss), w(l.md_ebss), l.md_gcbssmask),
        ];
        for (s, e, mask_at) in sections {
            if s > e || e - s > MAX_SECTION || !s.is_multiple_of(8) || (s == 0 && e != 0) {
                return Err(HeapError::Corrupt {
                    what: "moduledata",
                    why: format!("section [{s:#x}, {e:#x})"),
                });
            }
            if e == s {
                continue;
            }
            let bits = u64_at(&b, mask_at).map(|n| n & 0xffff_ffff);
            match pointer_mask(mem, bits, w(mask_at + 8), (e - s) / 8) {
                Some(mask) => out.extend(pointer_runs(s, &mask, (e - s) / 8)),
                None => {
                    log::debug!("no pointer mask for [{s:#x}, {e:#x}): scanned whole");
                    out.push((s, e));
                }
            }
        }
        md = w(l.md_next);
    }
    if out.is_empty() {
        return Err(HeapError::Corrupt {
            what: "moduledata",
            why: "no data or bss".into(),
        });
    }
    Ok(out)
}

/// A section's pointer bitmap (`bitvector{n, bytedata}`), when it is there and covers exactly
/// `words` words.
fn pointer_mask(mem: &dyn Memory, n: Option<u64>, bytedata: u64, words: u64) -> Option<Vec<u8>> {
    if n? != words || bytedata == 0 {
        return None;
    }
    mem.read_one(bytedata, words.div_ceil(8) as usize, "gc pointer mask")
        .ok()
}

/// The runs of set bits of `mask` (bit `i`: word `i` of the section at `start`, least
/// significant bit first, as the runtime's `scanblock` reads it) as `[from, to)` ranges.
fn pointer_runs(start: u64, mask: &[u8], words: u64) -> Vec<(u64, u64)> {
    let bit = |i: u64| {
        mask.get((i / 8) as usize)
            .is_some_and(|b| b >> (i % 8) & 1 == 1)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < words {
        if !bit(i) {
            i += 1;
            continue;
        }
        let from = i;
        while i < words && bit(i) {
            i += 1;
        }
        out.push((start + from * 8, start + i * 8));
    }
    out
}

/// Root ranges and root objects.
type Roots = (Vec<(u64, u64)>, Vec<u64>);

/// Roots from span specials: the words of every special record after its header (a
/// finalizer's function, a cleanup's function and argument, …: scanned conservatively), and
/// every object with a finalizer (it is finalized, not freed: what it references stays live).
fn specials(mem: &dyn Memory, l: &HeapLayout, spans: &Spans) -> Result<Roots, HeapError> {
    // The largest record (`specialfinalizer`, `specialCleanup`): header + 4 words.
    let rec = l.special_size + 32;
    let mut ranges = Vec::new();
    let mut objects = Vec::new();
    let mut todo: Vec<(u64, usize)> = spans
        .spans()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.specials != 0)
        .map(|(i, s)| (s.specials, i))
        .collect();
    let mut seen = 0usize;
    while !todo.is_empty() {
        seen += todo.len();
        if seen > MAX_SPECIALS {
            return Err(HeapError::Cap(format!("more than {MAX_SPECIALS} specials")));
        }
        let req: Vec<(u64, usize)> = todo.iter().map(|&(p, _)| (p, rec as usize)).collect();
        let read = mem.read_ranges(&req)?;
        let mut next = Vec::new();
        for (&(p, si), b) in todo.iter().zip(read) {
            let b = b.ok_or(HeapError::Unreadable {
                what: "special",
                addr: p,
                len: rec as usize,
            })?;
            let offset = if l.special_offset_width == 2 {
                u64::from(crate::u16_at(&b, l.special_offset).unwrap_or(0))
            } else {
                u64_at(&b, l.special_offset).unwrap_or(0)
            };
            let kind = u8_at(&b, l.special_kind).unwrap_or(0);
            if kind == l.kind_finalizer {
                let span = spans.get(si).ok_or(HeapError::Corrupt {
                    what: "special",
                    why: "span index".into(),
                })?;
                objects.push(span.start.saturating_add(offset));
            }
            ranges.push((p + l.special_size, p + rec));
            let n = u64_at(&b, l.special_next).unwrap_or(0);
            if n != 0 {
                next.push((n, si));
            }
        }
        todo = next;
    }
    Ok((ranges, objects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::FakeMemory;
    use sfgi_engine::goroutine::{GStatus, SudogInfo};

    const HEAP: u64 = 0xc000_000000;
    const SPANS: u64 = 0x7000_0000;
    const MHEAP: u64 = 0x60_0000;
    const MD: u64 = 0x50_0000;
    const DATA: u64 = 0x51_0000;
    const ALLFIN: u64 = 0x52_0000;
    const FINBLOCKS: u64 = 0x53_0000;
    const CLEANUPQ: u64 = 0x58_0000;
    const CLEANUPBLOCKS: u64 = 0x59_0000;
    const MASK: u64 = 0x5a_0000;

    /// A heap of one span of 32 objects of 64 bytes at HEAP; objects are 8 words.
    struct World {
        mem: FakeMemory,
        heap: Vec<u64>,
        data: Vec<u64>,
        /// `gcdatamask` as (n, bytes); `None`: no mask (scanned whole).
        data_mask: Option<(u64, Vec<u8>)>,
        layout: HeapLayout,
        goroutines: Vec<GoroutineInfo>,
        /// Finalizer blocks on `allfin`'s list, in order: (cnt, words of `fin`).
        fin_blocks: Vec<(u32, Vec<u64>)>,
        /// Cleanup blocks on `gcCleanups.all`, in order: (n, words of `cleanups`).
        cleanup_blocks: Vec<(u32, Vec<u64>)>,
    }

    impl World {
        fn new(minor: u32) -> World {
            World {
                mem: FakeMemory::default(),
                heap: vec![0; 32 * 8],
                data: vec![0; 16],
                data_mask: None,
                layout: HeapLayout::for_minor(minor).unwrap(),
                goroutines: Vec::new(),
                fin_blocks: Vec::new(),
                cleanup_blocks: Vec::new(),
            }
        }

        /// Maps a list of off-heap blocks at `base` (one per 0x1000 bytes), linked through the
        /// word at `link`, its head pointer at `head`.
        #[allow(clippy::too_many_arguments)]
        fn put_blocks(
            &mut self,
            head: u64,
            base: u64,
            blocks: &[(u32, Vec<u64>)],
            size: u64,
            link: u64,
            count: u64,
            entries: u64,
        ) {
            let addr = |i: usize| base + 0x1000 * i as u64;
            for (i, (n, words)) in blocks.iter().enumerate() {
                let mut b = vec![0u8; size as usize];
                let next = if i + 1 < blocks.len() { addr(i + 1) } else { 0 };
                b[link as usize..link as usize + 8].copy_from_slice(&next.to_le_bytes());
                b[count as usize..count as usize + 4].copy_from_slice(&n.to_le_bytes());
                for (k, w) in words.iter().enumerate() {
                    let o = entries as usize + 8 * k;
                    b[o..o + 8].copy_from_slice(&w.to_le_bytes());
                }
                self.mem.put(addr(i), b);
            }
            let first = if blocks.is_empty() { 0 } else { addr(0) };
            self.mem.put_words(head, &[first]);
        }

        fn obj(i: u64) -> u64 {
            HEAP + i * 64
        }

        /// Word `w` of object `i` := `v`.
        fn set(&mut self, i: u64, w: u64, v: u64) {
            self.heap[(i * 8 + w) as usize] = v;
        }

        fn goroutine(
            &mut self,
            goid: u64,
            status: GStatus,
            reason: &str,
            chans: &[u64],
            stack: &[u64],
        ) {
            let lo = 0x9000_0000 + goid * 0x1_0000;
            let hi = lo + 0x1000;
            let sp = hi - 8 * stack.len() as u64 - 8;
            let mut words = vec![0u64; 0x200];
            let n = words.len();
            words[n - stack.len()..].copy_from_slice(stack);
            // Dead frames below sp must not count.
            words[n - stack.len() - 2] = World::obj(0);
            self.mem.put_words(lo, &words);
            // The g's first field: stack {lo, hi}, read again after marking.
            self.mem.put_words(0x8000_0000 + goid * 0x1000, &[lo, hi]);
            self.goroutines.push(GoroutineInfo {
                goid,
                status,
                status_raw: 4,
                wait_reason: Some(reason.into()),
                wait_reason_raw: 0,
                waitsince_ns: 0,
                wait_age_ns: None,
                gopc: 0,
                startpc: 0,
                parent_goid: 1,
                stack_lo: lo,
                stack_hi: hi,
                sched_pc: 0x401000,
                sched_sp: sp,
                sched_bp: 0,
                stack: Vec::new(),
                stack_truncated: false,
                waiting_on: chans.to_vec(),
                sudogs: chans
                    .iter()
                    .enumerate()
                    .map(|(k, &c)| SudogInfo {
                        addr: World::obj(30 - k as u64 - goid % 4),
                        elem: 0,
                        c,
                        is_select: chans.len() > 1,
                        kind: Default::default(),
                    })
                    .collect(),
                g_addr: 0x8000_0000 + goid * 0x1000,
                stayed_blocked: false,
            });
        }

        fn prover(&mut self) -> Prover {
            let l = &self.layout;
            self.mem.put_words(HEAP, &self.heap);
            self.mem.put_words(DATA, &self.data);
            let mut md = vec![0u64; (l.md_next.max(l.md_gcbssmask) / 8 + 2) as usize];
            md[(l.md_data / 8) as usize] = DATA;
            md[(l.md_edata / 8) as usize] = DATA + 8 * self.data.len() as u64;
            if let Some((n, bytes)) = &self.data_mask {
                md[(l.md_gcdatamask / 8) as usize] = *n;
                md[(l.md_gcdatamask / 8 + 1) as usize] = MASK;
                self.mem.put(MASK, bytes.clone());
            }
            self.mem.put_words(MD, &md);
            let mut span = vec![0u8; l.span_size as usize];
            let put = |b: &mut Vec<u8>, off: u64, v: u64| {
                b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
            };
            put(&mut span, l.span_start, HEAP);
            put(&mut span, l.span_npages, 1);
            put(&mut span, l.span_elemsize, 64);
            put(&mut span, l.span_limit, HEAP + 64 * 32);
            if l.span_index_width == 2 {
                span[l.span_nelems as usize..l.span_nelems as usize + 2]
                    .copy_from_slice(&32u16.to_le_bytes());
            } else {
                put(&mut span, l.span_nelems, 32);
            }
            span[l.span_state as usize] = 1;
            self.mem.put(SPANS, span);
            self.mem.put_words(SPANS + 0x1000, &[SPANS]);
            let mut mheap = vec![0u64; (l.mheap_allspans / 8 + 3) as usize];
            let a = (l.mheap_allspans / 8) as usize;
            mheap[a] = SPANS + 0x1000;
            mheap[a + 1] = 1;
            mheap[a + 2] = 1;
            self.mem.put_words(MHEAP, &mheap);
            let l = self.layout.clone();
            let fin = std::mem::take(&mut self.fin_blocks);
            self.put_blocks(
                ALLFIN,
                FINBLOCKS,
                &fin,
                l.finblock_size,
                l.finblock_alllink,
                l.finblock_cnt,
                l.finblock_fin,
            );
            self.fin_blocks = fin;
            let cleanups = std::mem::take(&mut self.cleanup_blocks);
            if l.cleanupq_all != 0 {
                self.put_blocks(
                    CLEANUPQ + l.cleanupq_all,
                    CLEANUPBLOCKS,
                    &cleanups,
                    l.cleanupblock_size,
                    l.cleanupblock_alllink,
                    l.cleanupblock_n,
                    l.cleanupblock_cleanups,
                );
            }
            self.cleanup_blocks = cleanups;
            Prover {
                layout: self.layout.clone(),
                globals: Globals {
                    mheap: MHEAP,
                    firstmoduledata: MD,
                    semtable: None,
                    allfin: ALLFIN,
                    cleanup_queue: (l.cleanupq_all != 0).then_some(CLEANUPQ),
                },
                config: ProofConfig {
                    gap: Duration::from_millis(1),
                    g_stack: 0,
                },
            }
        }
    }

    fn proven(w: &mut World) -> Vec<u64> {
        let p = w.prover();
        let gs = w.goroutines.clone();
        let r = p.prove(&w.mem, || Ok::<_, String>(gs.clone()));
        assert_eq!(r.refused, None);
        r.proven.iter().map(|p| p.goid).collect()
    }

    #[test]
    fn chains_and_promotion() {
        for minor in [21, 27] {
            let mut w = World::new(minor);
            let (c0, c1, c2, c3) = (World::obj(0), World::obj(1), World::obj(2), World::obj(3));
            // A global points at object 5, which points at channel 1 (reachable: 11 not proven).
            w.data[3] = World::obj(5) + 16; // an interior pointer
            w.set(5, 2, c1);
            // Channel 0: referenced only by the stack of its own waiter (12: proven).
            // Channel 2: referenced by the stack of a sleeping goroutine (13: not proven).
            // Channel 3: referenced by the stack of goroutine 14 which waits on channel 1 (reachable),
            // so 14 is promoted and 15, waiting on channel 3, is not proven.
            w.goroutine(2, GStatus::Waiting, "sleep", &[], &[0, c2, 7]);
            w.goroutine(11, GStatus::Waiting, "chan receive", &[c1], &[c1]);
            w.goroutine(12, GStatus::Waiting, "chan send", &[c0], &[c0, c0]);
            w.goroutine(13, GStatus::Waiting, "chan receive", &[c2], &[]);
            w.goroutine(14, GStatus::Waiting, "select", &[c1, World::obj(9)], &[c3]);
            w.goroutine(15, GStatus::Waiting, "chan send", &[c3], &[]);
            w.goroutine(16, GStatus::Waiting, "select (no cases)", &[], &[c2]);
            // The sudogs of 12 (objects 28, 27) point at channel 0 but are not scanned; the g of
            // every goroutine is a heap object too in Go — here object 20 points at a sudog.
            w.set(28, 3, c0);
            w.data[4] = World::obj(20);
            w.set(20, 0, World::obj(28));
            assert_eq!(proven(&mut w), vec![12, 16], "go1.{minor}");
            // A finalizer-free root added: channel 0 referenced from a global: nothing left but 16.
            w.data[5] = c0;
            assert_eq!(proven(&mut w), vec![16], "go1.{minor}");
        }
    }

    /// Globals are scanned with the runtime's pointer bitmap: a scalar word holding a heap
    /// address keeps nothing alive; a pointer word does; no mask (or one of the wrong size)
    /// means every word counts.
    #[test]
    fn globals_are_scanned_with_the_runtimes_pointer_mask() {
        for minor in [21, 26, 27] {
            let mut w = World::new(minor);
            let c0 = World::obj(0);
            w.data[3] = c0;
            w.goroutine(12, GStatus::Waiting, "chan send", &[c0], &[]);
            // No mask: conservative.
            assert_eq!(proven(&mut w), Vec::<u64>::new(), "go1.{minor}");
            // Word 3 a scalar (words 0, 1 and 9 pointers): proven.
            w.data_mask = Some((16, vec![0b0000_0011, 0b0000_0010]));
            assert_eq!(proven(&mut w), vec![12], "go1.{minor}");
            // Word 3 a pointer: reachable.
            w.data_mask = Some((16, vec![0b0000_1000, 0]));
            assert_eq!(proven(&mut w), Vec::<u64>::new(), "go1.{minor}");
            // A mask that does not cover the section: conservative again.
            w.data_mask = Some((8, vec![0]));
            assert_eq!(proven(&mut w), Vec::<u64>::new(), "go1.{minor}");
        }
        assert_eq!(
            pointer_runs(0x1000, &[0b1100_1101, 0b1], 10),
            vec![(0x1000, 0x1008), (0x1010, 0x1020), (0x1030, 0x1048)]
        );
    }

    /// A goroutine's `g` is a small heap object scanned word by word but for `g.stack`: its
    /// `stack.hi`, one past the end of the stack, may equal the start of an unrelated object.
    #[test]
    fn a_gs_stack_bounds_keep_nothing_alive() {
        for minor in [21, 27] {
            let mut w = World::new(minor);
            let c0 = World::obj(0);
            // Object 11 (adjacent to a stack, say) references channel 0; goroutine 12 waits on it.
            w.set(11, 0, c0);
            w.goroutine(12, GStatus::Waiting, "chan send", &[c0], &[]);
            // A dead goroutine's g is object 10 (reachable from a global, as allgs is), its
            // stack.hi = object 11, its sched.sp word too (not skipped: a real word).
            w.goroutine(3, GStatus::Dead, "", &[], &[]);
            let g = World::obj(10);
            if let Some(d) = w.goroutines.last_mut() {
                d.g_addr = g;
            }
            w.set(10, 0, 0x1000);
            w.set(10, 1, World::obj(11));
            w.data[2] = g;
            assert_eq!(proven(&mut w), vec![12], "go1.{minor}");
            // A pointer elsewhere in the g does keep it alive.
            w.set(10, 5, World::obj(11));
            assert_eq!(proven(&mut w), Vec::<u64>::new(), "go1.{minor}");
        }
    }

    /// A `finalizer` record (5 words) whose argument is `arg`.
    fn finalizer(arg: u64) -> [u64; 5] {
        [0x4a_0000, arg, 0, 0x4b_0000, 0x4c_0000]
    }

    #[test]
    fn queued_finalizers_are_roots() {
        for minor in [21, 24, 25, 27] {
            let mut w = World::new(minor);
            let c0 = World::obj(0);
            // Object 6 (its finalizer queued, not yet run) references channel 0; goroutine 12
            // waits on it: the finalizer may close it, so 12 is not proven.
            w.set(6, 1, c0);
            w.goroutine(12, GStatus::Waiting, "chan receive", &[c0], &[]);
            // Two blocks: the first one's only entry is spent (cnt 0), the second holds the
            // finalizer of object 7, then that of object 6.
            let spent: Vec<u64> = finalizer(World::obj(6)).to_vec();
            let queued: Vec<u64> = [finalizer(World::obj(7)), finalizer(World::obj(6))].concat();
            w.fin_blocks = vec![(0, spent.clone()), (2, queued.clone())];
            assert_eq!(proven(&mut w), Vec::<u64>::new(), "go1.{minor}");
            // Once it has run (cnt excludes its slot; the words are still there), 12 is proven.
            w.fin_blocks = vec![(0, spent), (1, queued)];
            assert_eq!(proven(&mut w), vec![12], "go1.{minor}");
        }
    }

    #[test]
    fn queued_cleanups_are_roots() {
        for minor in [25, 26, 27] {
            let mut w = World::new(minor);
            let c0 = World::obj(0);
            // Object 6 (a cleanup's closure or argument) references channel 0.
            w.set(6, 2, c0);
            w.goroutine(12, GStatus::Waiting, "chan receive", &[c0], &[]);
            let per = w.layout.cleanup_fn_size / 8;
            let mut words = vec![0x4a_0000; (2 * per) as usize];
            words[(2 * per - 1) as usize] = World::obj(6);
            w.cleanup_blocks = vec![(2, words.clone())];
            assert_eq!(proven(&mut w), Vec::<u64>::new(), "go1.{minor}");
            w.cleanup_blocks = vec![(1, words)];
            assert_eq!(proven(&mut w), vec![12], "go1.{minor}");
        }
    }

    /// The reason a proof of `w` (goroutine 12 waiting on channel 0) was refused, with `f`
    /// applied to its memory after it is laid out.
    fn refusal(w: &mut World, f: impl FnOnce(&mut FakeMemory)) -> String {
        w.goroutine(12, GStatus::Waiting, "chan send", &[World::obj(0)], &[]);
        let p = w.prover();
        f(&mut w.mem);
        let gs = w.goroutines.clone();
        let r = p.prove(&w.mem, || Ok::<_, String>(gs.clone()));
        assert!(r.proven.is_empty(), "{r:?}");
        r.refused.unwrap_or_default()
    }

    #[test]
    fn unreadable_or_corrupt_queues_refuse_the_pass() {
        let block = || (1, finalizer(World::obj(6)).to_vec());
        // The head pointer cannot be read.
        let mut w = World::new(27);
        let why = refusal(&mut w, |m| {
            m.regions.remove(&ALLFIN);
        });
        assert!(why.contains("finalizer block"), "{why}");
        // A block cannot be read.
        let mut w = World::new(21);
        w.fin_blocks = vec![block(), block()];
        let why = refusal(&mut w, |m| {
            m.regions.remove(&(FINBLOCKS + 0x1000));
        });
        assert!(why.contains("finalizer block"), "{why}");
        // A cycle.
        let mut w = World::new(24);
        w.fin_blocks = vec![block()];
        let why = refusal(&mut w, |m| {
            if let Some(b) = m.regions.get_mut(&FINBLOCKS) {
                b[..8].copy_from_slice(&FINBLOCKS.to_le_bytes());
            }
        });
        assert!(why.contains("loops"), "{why}");
        // A count above the block's capacity (101 finalizers).
        let mut w = World::new(27);
        w.fin_blocks = vec![(102, Vec::new())];
        assert!(refusal(&mut w, |_| {}).contains("at most 101"));
        // A cleanup block that cannot be read; a cleanup queue not located.
        let mut w = World::new(26);
        w.cleanup_blocks = vec![(1, vec![World::obj(6); 3])];
        let why = refusal(&mut w, |m| {
            m.regions.remove(&CLEANUPBLOCKS);
        });
        assert!(why.contains("cleanup block"), "{why}");
        let mut w = World::new(25);
        w.goroutine(12, GStatus::Waiting, "chan send", &[World::obj(0)], &[]);
        let mut p = w.prover();
        p.globals.cleanup_queue = None;
        let gs = w.goroutines.clone();
        let r = p.prove(&w.mem, || Ok::<_, String>(gs.clone()));
        assert!(r.proven.is_empty());
        assert!(
            r.refused.as_deref().unwrap_or("").contains("gcCleanups"),
            "{r:?}"
        );
    }

    #[test]
    fn refuses_when_memory_is_missing() {
        let mut w = World::new(27);
        w.goroutine(12, GStatus::Waiting, "chan send", &[World::obj(0)], &[]);
        let p = w.prover();
        w.mem.regions.remove(&MD);
        let gs = w.goroutines.clone();
        let r = p.prove(&w.mem, || Ok::<_, String>(gs.clone()));
        assert!(r.proven.is_empty());
        assert!(
            r.refused.as_deref().unwrap_or("").contains("moduledata"),
            "{r:?}"
        );
    }

    #[test]
    fn a_stack_that_moved_refuses_the_pass() {
        let mut w = World::new(27);
        w.goroutine(2, GStatus::Running, "", &[], &[]);
        w.goroutine(12, GStatus::Waiting, "chan send", &[World::obj(0)], &[]);
        let p = w.prover();
        // Goroutine 2's g now says its stack is elsewhere.
        w.mem
            .put_words(0x8000_0000 + 2 * 0x1000, &[0x9999_0000, 0x9999_1000]);
        let gs = w.goroutines.clone();
        let r = p.prove(&w.mem, || Ok::<_, String>(gs.clone()));
        assert!(r.proven.is_empty());
        assert!(
            r.refused.as_deref().unwrap_or("").contains("moved"),
            "{r:?}"
        );
    }

    #[test]
    fn passes_must_agree() {
        let mut w = World::new(27);
        let c0 = World::obj(0);
        w.goroutine(12, GStatus::Waiting, "chan send", &[c0], &[]);
        let p = w.prover();
        let mut gs = w.goroutines.clone();
        let mut n = 0;
        let r = p.prove(&w.mem, || {
            n += 1;
            // It ran between the passes: another park.
            gs[0].sched_sp -= 8 * (n - 1);
            Ok::<_, String>(gs.clone())
        });
        assert!(r.proven.is_empty() && r.refused.is_none(), "{r:?}");
    }
}
