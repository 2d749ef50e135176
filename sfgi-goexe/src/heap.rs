//! Layouts of the runtime structures a reachability pass over a live Go heap reads (amd64):
//! `runtime.mheap` (`allspans`), `runtime.mspan`, `runtime.moduledata`, `runtime.sudog`,
//! `runtime.semaRoot`/`semtable`, `runtime.special`, the off-heap finalizer queue's
//! `runtime.finblock` (`finBlock` from Go 1.25) and the cleanup queue's `runtime.cleanupQueue` and
//! `runtime.cleanupBlock` (Go 1.25+), plus the version's constants (special kinds). From the binary's DWARF when it has any, else a built-in table per Go version
//! measured from the DWARF of real builds (`/work/shared/go-runtime/heap_by_version.txt`) and
//! checked against the DWARF of every supported toolchain by `tests/goexe_versions.rs`.

use crate::dwarf;
use crate::{SudogOffsets, SudogSource};
use serde::Serialize;
use std::collections::HashMap;

/// Where a [`HeapLayout`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HeapLayoutSource {
    /// The binary's DWARF (constants from the table of its Go version).
    Dwarf,
    /// SFGI's built-in table for Go 1.`minor`.
    Table {
        /// Minor version of the table.
        minor: u32,
    },
}

/// Byte offsets (and a few widths and constants) of the runtime heap structures, amd64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeapLayout {
    /// `mheap.allspans` (a `[]*mspan`).
    pub mheap_allspans: u64,
    /// `mheap.sweepgen` (a `uint32`).
    pub mheap_sweepgen: u64,
    /// `mheap.arenas` (`[1]*[1<<22]*heapArena` on linux/amd64).
    pub mheap_arenas: u64,
    /// `mheap.allArenas` (`heapArenas` from Go 1.25), a `[]arenaIdx`.
    pub mheap_all_arenas: u64,
    /// `sizeof(runtime.mheap)`.
    pub mheap_size: u64,
    /// `heapArena.spans` (`[8192]*mspan`).
    pub arena_spans: u64,
    /// `mspan.startAddr`.
    pub span_start: u64,
    /// `mspan.npages`.
    pub span_npages: u64,
    /// `mspan.freeindex`.
    pub span_freeindex: u64,
    /// `mspan.nelems`.
    pub span_nelems: u64,
    /// Width in bytes of `freeindex` and `nelems` (8 in Go 1.21, 2 from 1.22).
    pub span_index_width: u64,
    /// `mspan.allocBits`.
    pub span_alloc_bits: u64,
    /// `mspan.spanclass` (a byte; bit 0 = no pointers).
    pub span_spanclass: u64,
    /// `mspan.state` (a byte; 1 = `mSpanInUse`).
    pub span_state: u64,
    /// `mspan.elemsize`.
    pub span_elemsize: u64,
    /// `mspan.limit`.
    pub span_limit: u64,
    /// `mspan.specials`.
    pub span_specials: u64,
    /// `sizeof(runtime.mspan)`.
    pub span_size: u64,
    /// `mspan.largeType` (the type of a one-object span's object, Go 1.22+; 0 when absent).
    pub span_large_type: u64,
    /// Allocation headers (Go 1.22+): objects over 512 bytes in small size classes start with
    /// an 8-byte `*abi.Type`, one-object spans name theirs in `largeType`.
    pub malloc_headers: bool,
    /// `abi.TFlagGCMaskOnDemand` (Go 1.24+): with `TFlag & 16`, `GCData` points at the mask
    /// pointer, nil until the runtime builds it.
    pub gcmask_on_demand: bool,
    /// `moduledata.data`.
    pub md_data: u64,
    /// `moduledata.edata`.
    pub md_edata: u64,
    /// `moduledata.bss`.
    pub md_bss: u64,
    /// `moduledata.ebss`.
    pub md_ebss: u64,
    /// `moduledata.next`.
    pub md_next: u64,
    /// `moduledata.gcdatamask`: the runtime's pointer bitmap of `[data, edata)`, a
    /// `bitvector{n int32, bytedata *uint8}` (one bit per word, built at start-up).
    pub md_gcdatamask: u64,
    /// `moduledata.gcbssmask`: the same for `[bss, ebss)`.
    pub md_gcbssmask: u64,
    /// `sudog.g`.
    pub sudog_g: u64,
    /// `sudog.next` (right child in a sema treap).
    pub sudog_next: u64,
    /// `sudog.prev` (left child in a sema treap).
    pub sudog_prev: u64,
    /// `sudog.waitlink` (next waiter on the same address in a sema treap).
    pub sudog_waitlink: u64,
    /// `sudog.elem`'s address word (`elem.vu` from Go 1.26).
    pub sudog_elem: u64,
    /// `semaRoot.treap`.
    pub semaroot_treap: u64,
    /// Bytes per `semtable` entry (a `semaRoot` padded to a cache line).
    pub semtable_entry: u64,
    /// Entries of `semtable` (`semTabSize`).
    pub semtable_len: u64,
    /// `special.next`.
    pub special_next: u64,
    /// `special.offset`.
    pub special_offset: u64,
    /// Width of `special.offset` (2 up to Go 1.23, 8 from 1.24).
    pub special_offset_width: u64,
    /// `special.kind` (a byte).
    pub special_kind: u64,
    /// `sizeof(runtime.special)`: the kind-specific fields start here.
    pub special_size: u64,
    /// `_KindSpecialFinalizer` of this version.
    pub kind_finalizer: u8,
    /// `finblock.alllink` (`finBlock` from Go 1.25): the next block of `runtime.allfin`'s list.
    pub finblock_alllink: u64,
    /// `finblock.cnt` (a `uint32`): finalizers queued in `fin[0..cnt]`.
    pub finblock_cnt: u64,
    /// `finblock.fin` (`[N]finalizer`).
    pub finblock_fin: u64,
    /// `sizeof(runtime.finblock)`: `fin` runs to its end.
    pub finblock_size: u64,
    /// `sizeof(runtime.finalizer)`.
    pub finalizer_size: u64,
    /// `cleanupQueue.all` (the list of every cleanup block, Go 1.25+); 0: no cleanup queue (Go
    /// 1.24 queues cleanups with the finalizers, earlier versions have none).
    pub cleanupq_all: u64,
    /// `cleanupBlockHeader.alllink` (embedded at 0 of `cleanupBlock`).
    pub cleanupblock_alllink: u64,
    /// `cleanupBlockHeader.n` (a `uint32`): cleanups queued in `cleanups[0..n]`.
    pub cleanupblock_n: u64,
    /// `cleanupBlock.cleanups`.
    pub cleanupblock_cleanups: u64,
    /// `sizeof(runtime.cleanupBlock)`: `cleanups` runs to its end.
    pub cleanupblock_size: u64,
    /// Bytes per entry of `cleanups`: a `*funcval` in Go 1.25, a `cleanupFn` from 1.26.
    pub cleanup_fn_size: u64,
    /// Where these came from.
    pub source: HeapLayoutSource,
}

/// The struct types read from DWARF.
const WANTED: &[&str] = &[
    "runtime.mheap",
    "runtime.heapArena",
    "runtime.mspan",
    "runtime.moduledata",
    "runtime.sudog",
    "runtime.semaRoot",
    "runtime.special",
    "runtime.finblock",
    "runtime.finBlock",
    "runtime.finalizer",
    "runtime.cleanupQueue",
    "runtime.cleanupBlock",
    "runtime.cleanupBlockHeader",
    "runtime.cleanupFn",
];

impl HeapLayout {
    /// The layout with `source` ignored (for comparisons).
    pub fn values(&self) -> Vec<u64> {
        vec![
            self.mheap_allspans,
            self.mheap_sweepgen,
            self.mheap_arenas,
            self.mheap_all_arenas,
            self.mheap_size,
            self.arena_spans,
            self.span_start,
            self.span_npages,
            self.span_freeindex,
            self.span_nelems,
            self.span_index_width,
            self.span_alloc_bits,
            self.span_spanclass,
            self.span_state,
            self.span_elemsize,
            self.span_limit,
            self.span_specials,
            self.span_size,
            self.span_large_type,
            u64::from(self.malloc_headers),
            u64::from(self.gcmask_on_demand),
            self.md_data,
            self.md_edata,
            self.md_bss,
            self.md_ebss,
            self.md_next,
            self.md_gcdatamask,
            self.md_gcbssmask,
            self.sudog_g,
            self.sudog_next,
            self.sudog_prev,
            self.sudog_waitlink,
            self.sudog_elem,
            self.semaroot_treap,
            self.semtable_entry,
            self.semtable_len,
            self.special_next,
            self.special_offset,
            self.special_offset_width,
            self.special_kind,
            self.special_size,
            u64::from(self.kind_finalizer),
            self.finblock_alllink,
            self.finblock_cnt,
            self.finblock_fin,
            self.finblock_size,
            self.finalizer_size,
            self.cleanupq_all,
            self.cleanupblock_alllink,
            self.cleanupblock_n,
            self.cleanupblock_cleanups,
            self.cleanupblock_size,
            self.cleanup_fn_size,
        ]
    }

    /// The built-in layout for Go 1.`minor` (amd64), `None` outside 1.21–1.27.
    pub fn for_minor(minor: u32) -> Option<HeapLayout> {
        if !(21..=27).contains(&minor) {
            return None;
        }
        let old_span = minor == 21;
        let wide_special = minor >= 24;
        let wide_sudog = minor >= 26;
        let cleanup_queue = minor >= 25;
        Some(HeapLayout {
            mheap_allspans: 65864,
            mheap_sweepgen: 65856,
            mheap_arenas: if old_span { 65944 } else { 66008 },
            mheap_all_arenas: if old_span { 66032 } else { 66096 },
            mheap_size: match minor {
                21 => 92792,
                22 => 92856,
                23 => 92928,
                24 => 93008,
                25 => 93320,
                _ => 93464,
            },
            arena_spans: if old_span { 1064960 } else { 0 },
            span_start: 24,
            span_npages: 32,
            span_freeindex: 48,
            span_nelems: if old_span { 56 } else { 50 },
            span_index_width: if old_span { 8 } else { 2 },
            span_alloc_bits: if old_span { 72 } else { 64 },
            span_spanclass: if old_span { 106 } else { 98 },
            span_state: if old_span { 107 } else { 99 },
            span_elemsize: if old_span { 112 } else { 104 },
            span_limit: if old_span { 120 } else { 112 },
            span_specials: if old_span { 136 } else { 128 },
            span_size: if old_span { 168 } else { 160 },
            span_large_type: if old_span { 0 } else { 152 },
            malloc_headers: !old_span,
            gcmask_on_demand: minor >= 24,
            md_data: 208,
            md_edata: 216,
            md_bss: 224,
            md_ebss: 232,
            md_next: match minor {
                21 | 22 | 26 => 584,
                27 => 560,
                _ => 576,
            },
            md_gcdatamask: match minor {
                26 => 544,
                27 => 520,
                _ => 536,
            },
            md_gcbssmask: match minor {
                26 => 560,
                27 => 536,
                _ => 552,
            },
            sudog_g: 0,
            sudog_next: 8,
            sudog_prev: 16,
            sudog_waitlink: if wide_sudog { 72 } else { 64 },
            sudog_elem: if wide_sudog { 32 } else { 24 },
            semaroot_treap: 8,
            semtable_entry: 64,
            semtable_len: 251,
            special_next: 0,
            special_offset: 8,
            special_offset_width: if wide_special { 8 } else { 2 },
            special_kind: if wide_special { 16 } else { 10 },
            special_size: if wide_special { 24 } else { 16 },
            kind_finalizer: kind_finalizer(minor),
            finblock_alllink: 0,
            finblock_cnt: 16,
            finblock_fin: 24,
            finblock_size: 4064,
            finalizer_size: 40,
            cleanupq_all: if cleanup_queue { 128 } else { 0 },
            cleanupblock_alllink: if cleanup_queue { 16 } else { 0 },
            cleanupblock_n: if cleanup_queue { 24 } else { 0 },
            cleanupblock_cleanups: if cleanup_queue { 32 } else { 0 },
            cleanupblock_size: if cleanup_queue { 512 } else { 0 },
            cleanup_fn_size: match minor {
                ..=24 => 0,
                25 => 8,
                _ => 24,
            },
            source: HeapLayoutSource::Table { minor },
        })
    }

    /// The layout for a binary of Go 1.`minor` with the (decompressed) DWARF `sections`: DWARF
    /// if it has every structure, else the table; `None` for an unknown version (a heap layout
    /// is never guessed: a wrong one could prove a reachable goroutine leaked).
    pub(crate) fn resolve(
        sections: &HashMap<&'static str, Vec<u8>>,
        minor: Option<u32>,
        semtable_size: Option<u64>,
        sudog: &SudogOffsets,
    ) -> Option<HeapLayout> {
        let minor = minor?;
        let table = Self::for_minor(minor)?;
        if sections.contains_key(".debug_info") && sudog.source == SudogSource::Dwarf {
            if let Ok(mut l) = from_dwarf(sections, &table, sudog) {
                if let Some(size) = semtable_size.filter(|s| *s > 0 && s % l.semtable_len == 0) {
                    l.semtable_entry = size / l.semtable_len;
                }
                return Some(l);
            }
        }
        Some(table)
    }
}

/// `_KindSpecialFinalizer`: 1 up to Go 1.24, 2 from 1.25 (`_KindSpecialTinyBlock` took 1).
fn kind_finalizer(minor: u32) -> u8 {
    if minor >= 25 {
        2
    } else {
        1
    }
}

/// Every offset from DWARF; the constants (special kinds, semtable geometry) from `table`.
fn from_dwarf(
    sections: &HashMap<&'static str, Vec<u8>>,
    table: &HeapLayout,
    sudog: &SudogOffsets,
) -> Result<HeapLayout, String> {
    let layouts = dwarf::struct_layouts(sections, WANTED)?;
    let get = |ty: &str, member: &str| layouts.member(ty, member);
    let size = |ty: &str| layouts.size(ty);
    let all_arenas =
        get("runtime.mheap", "heapArenas").or_else(|_| get("runtime.mheap", "allArenas"))?;
    let freeindex = get("runtime.mspan", "freeindex")?;
    let nelems = get("runtime.mspan", "nelems")?;
    let offset = get("runtime.special", "offset")?;
    let kind = get("runtime.special", "kind")?;
    // `finblock` became `finBlock` in Go 1.25.
    let finblock = if size("runtime.finBlock").is_ok() {
        "runtime.finBlock"
    } else {
        "runtime.finblock"
    };
    // The cleanup queue (Go 1.25+): all or nothing.
    let cleanups = if size("runtime.cleanupQueue").is_ok() {
        let header = "runtime.cleanupBlockHeader";
        [
            get("runtime.cleanupQueue", "all")?,
            get("runtime.cleanupBlock", "cleanupBlockHeader")? + get(header, "alllink")?,
            get("runtime.cleanupBlock", "cleanupBlockHeader")? + get(header, "n")?,
            get("runtime.cleanupBlock", "cleanups")?,
            size("runtime.cleanupBlock")?,
            // `[N]*funcval` in Go 1.25, `[N]cleanupFn` from 1.26.
            size("runtime.cleanupFn").unwrap_or(8),
        ]
    } else {
        [0; 6]
    };
    Ok(HeapLayout {
        mheap_allspans: get("runtime.mheap", "allspans")?,
        mheap_sweepgen: get("runtime.mheap", "sweepgen")?,
        mheap_arenas: get("runtime.mheap", "arenas")?,
        mheap_all_arenas: all_arenas,
        mheap_size: size("runtime.mheap")?,
        arena_spans: get("runtime.heapArena", "spans")?,
        span_start: get("runtime.mspan", "startAddr")?,
        span_npages: get("runtime.mspan", "npages")?,
        span_freeindex: freeindex,
        span_nelems: nelems,
        span_index_width: if nelems.checked_sub(freeindex) == Some(2) {
            2
        } else {
            8
        },
        span_alloc_bits: get("runtime.mspan", "allocBits")?,
        span_spanclass: get("runtime.mspan", "spanclass")?,
        span_state: get("runtime.mspan", "state")?,
        span_elemsize: get("runtime.mspan", "elemsize")?,
        span_limit: get("runtime.mspan", "limit")?,
        span_specials: get("runtime.mspan", "specials")?,
        span_size: size("runtime.mspan")?,
        span_large_type: get("runtime.mspan", "largeType").unwrap_or(0),
        malloc_headers: table.malloc_headers,
        gcmask_on_demand: table.gcmask_on_demand,
        md_data: get("runtime.moduledata", "data")?,
        md_edata: get("runtime.moduledata", "edata")?,
        md_bss: get("runtime.moduledata", "bss")?,
        md_ebss: get("runtime.moduledata", "ebss")?,
        md_next: get("runtime.moduledata", "next")?,
        md_gcdatamask: get("runtime.moduledata", "gcdatamask")?,
        md_gcbssmask: get("runtime.moduledata", "gcbssmask")?,
        sudog_g: get("runtime.sudog", "g")?,
        sudog_next: get("runtime.sudog", "next")?,
        sudog_prev: get("runtime.sudog", "prev")?,
        sudog_waitlink: sudog.waitlink,
        // `elem` is a `maybeTraceablePtr{vp, vu}` from Go 1.26: `sudog.rs` resolved its
        // address word (`vu`) from the same DWARF.
        sudog_elem: sudog.elem,
        semaroot_treap: get("runtime.semaRoot", "treap")?,
        semtable_entry: table.semtable_entry,
        semtable_len: table.semtable_len,
        special_next: get("runtime.special", "next")?,
        special_offset: offset,
        special_offset_width: if kind.checked_sub(offset) == Some(2) {
            2
        } else {
            8
        },
        special_kind: kind,
        special_size: size("runtime.special")?,
        kind_finalizer: table.kind_finalizer,
        finblock_alllink: get(finblock, "alllink")?,
        finblock_cnt: get(finblock, "cnt")?,
        finblock_fin: get(finblock, "fin")?,
        finblock_size: size(finblock)?,
        finalizer_size: size("runtime.finalizer")?,
        cleanupq_all: cleanups[0],
        cleanupblock_alllink: cleanups[1],
        cleanupblock_n: cleanups[2],
        cleanupblock_cleanups: cleanups[3],
        cleanupblock_size: cleanups[4],
        cleanup_fn_size: cleanups[5],
        source: HeapLayoutSource::Dwarf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_minor_has_a_layout() {
        for minor in 21..=27 {
            let l = HeapLayout::for_minor(minor).expect("layout");
            assert!(l.span_specials < l.span_size && l.mheap_all_arenas < l.mheap_size);
            assert_eq!(l.values().len(), 53, "{minor}");
            assert!(l.finblock_fin + l.finalizer_size <= l.finblock_size);
            assert_eq!(l.cleanupq_all != 0, minor >= 25, "{minor}");
            assert!(l.cleanupblock_cleanups + l.cleanup_fn_size <= l.cleanupblock_size);
            let s = SudogOffsets::for_minor(minor).expect("sudog");
            assert_eq!((l.sudog_elem, l.sudog_waitlink), (s.elem, s.waitlink));
        }
        assert!(HeapLayout::for_minor(20).is_none() && HeapLayout::for_minor(28).is_none());
        let s = SudogOffsets::for_minor(23).expect("sudog");
        assert!(HeapLayout::resolve(&HashMap::new(), None, None, &s).is_none());
        assert_eq!(
            HeapLayout::resolve(&HashMap::new(), Some(23), None, &s).map(|l| l.source),
            Some(HeapLayoutSource::Table { minor: 23 })
        );
    }
}
