//! Where the globals a pass starts from are in the target (runtime addresses): `runtime.mheap_`,
//! `runtime.firstmoduledata`, `runtime.semtable`, `runtime.allfin` and `runtime.gcCleanups`.
//!
//! With a symbol table each is its symbol. Stripped: `firstmoduledata` is found in the file by
//! `sfgi-goexe` (the writable word holding the `.gopclntab` address, then the module's tables),
//! `semtable` from the code of `runtime.semacquire1`/`semrelease1`, `allfin` from the code of
//! `runtime.queuefinalizer`/`markroot` and `gcCleanups` from that of `runtime.runCleanups`/
//! `markroot` (`sfgi-trace`'s locators), and
//! `mheap_` by its contents in the live `.bss`: the one place where `allspans`, `arenas` and
//! `allArenas` are all plausible at the layout's offsets and the spans `allspans` lists read as
//! real spans.

use crate::memory::Memory;
use crate::spans::decode_span;
use crate::{u64_at, HeapError};
use sfgi_goexe::{GoBinary, HeapLayout};

/// Largest `.bss` read to find `mheap_`.
const MAX_BSS: u64 = 256 << 20;
/// Spans checked per `mheap_` candidate.
const CHECK_SPANS: u64 = 64;

/// The globals of one target (runtime addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globals {
    /// `runtime.mheap_`.
    pub mheap: u64,
    /// `runtime.firstmoduledata`.
    pub firstmoduledata: u64,
    /// `runtime.semtable`, when found (needed for sync waits before Go 1.26).
    pub semtable: Option<u64>,
    /// `runtime.allfin`: the head of the list of every off-heap finalizer block.
    pub allfin: u64,
    /// `runtime.gcCleanups` (the off-heap cleanup queue) in Go 1.25+; `None` before.
    pub cleanup_queue: Option<u64>,
}

impl Globals {
    /// Locates every global of `bin` loaded with `bias` in the target read through `mem`.
    pub fn locate(
        mem: &dyn Memory,
        bin: &GoBinary,
        layout: &HeapLayout,
        bias: u64,
    ) -> Result<Globals, HeapError> {
        let firstmoduledata = bin
            .firstmoduledata()
            .ok_or(HeapError::NotFound {
                what: "runtime.firstmoduledata",
                why: "neither a symbol nor a word holding the .gopclntab address".into(),
            })?
            .wrapping_add(bias);
        let mheap = match bin.data_symbol("runtime.mheap_") {
            Some((a, _)) => a.wrapping_add(bias),
            None => locate_mheap(mem, bin, layout, bias)?,
        };
        let semtable = match sfgi_trace::inventory::locate_semtable(bin) {
            Ok(a) => Some(a.wrapping_add(bias)),
            Err(e) => {
                log::debug!(
                    "runtime.semtable not found ({e}): sync waits before Go 1.26 are roots"
                );
                None
            }
        };
        // Queued finalizers and cleanups are roots: without them no pass may run.
        let allfin = sfgi_trace::inventory::locate_allfin(bin)
            .map_err(|e| HeapError::NotFound {
                what: "runtime.allfin",
                why: e.to_string(),
            })?
            .wrapping_add(bias);
        let cleanup_queue = if layout.cleanupq_all == 0 {
            None
        } else {
            let q = sfgi_trace::inventory::locate_cleanup_queue(bin, layout.cleanupq_all).map_err(
                |e| HeapError::NotFound {
                    what: "runtime.gcCleanups",
                    why: e.to_string(),
                },
            )?;
            Some(q.wrapping_add(bias))
        };
        Ok(Globals {
            mheap,
            firstmoduledata,
            semtable,
            allfin,
            cleanup_queue,
        })
    }
}

/// Finds `runtime.mheap_` in the live `.bss` of the target by its contents (ignores symbols).
pub fn locate_mheap(
    mem: &dyn Memory,
    bin: &GoBinary,
    layout: &HeapLayout,
    bias: u64,
) -> Result<u64, HeapError> {
    let nf = |why: String| HeapError::NotFound {
        what: "runtime.mheap_",
        why,
    };
    let (start, end) = bin
        .section_range(".bss")
        .ok_or_else(|| nf("no .bss section".into()))?;
    let len = end.saturating_sub(start);
    if len < layout.mheap_size || len > MAX_BSS {
        return Err(nf(format!(".bss is {len} bytes")));
    }
    let start = start.wrapping_add(bias);
    let bss = mem.read_one(start, len as usize, ".bss")?;
    let mut found = Vec::new();
    let mut off = 0u64;
    while off + layout.mheap_size <= len {
        if plausible(&bss, off, layout) {
            found.push(start + off);
            if found.len() > 16 {
                break;
            }
        }
        off += 8;
    }
    let valid: Vec<u64> = found
        .into_iter()
        .filter(|&a| spans_check(mem, layout, a).unwrap_or(false))
        .collect();
    match valid.as_slice() {
        [a] => Ok(*a),
        [] => Err(nf("no place in .bss holds a plausible heap".into())),
        v => Err(nf(format!(
            "{} places in .bss look like the heap: {v:x?}",
            v.len()
        ))),
    }
}

/// Whether the bytes at `off` of `bss` look like an `mheap`: slice headers and pointers sane.
fn plausible(bss: &[u8], off: u64, l: &HeapLayout) -> bool {
    let w = |o: u64| u64_at(bss, off + o);
    let slice = |o: u64, max: u64| -> Option<bool> {
        let (p, n, c) = (w(o)?, w(o + 8)?, w(o + 16)?);
        Some(p != 0 && p.is_multiple_of(8) && n > 0 && n <= c && c <= max)
    };
    let sweepgen = match w(l.mheap_sweepgen) {
        Some(v) => v as u32,
        None => return false,
    };
    slice(l.mheap_allspans, crate::spans::MAX_SPANS) == Some(true)
        && slice(l.mheap_all_arenas, 1 << 22) == Some(true)
        && w(l.mheap_arenas).is_some_and(|p| p != 0 && p.is_multiple_of(8))
        && sweepgen.is_multiple_of(2)
}

/// Whether the first spans `allspans` of the `mheap` at `mheap` lists read as spans, at least
/// one in use.
fn spans_check(mem: &dyn Memory, l: &HeapLayout, mheap: u64) -> Result<bool, HeapError> {
    let hdr = mem.read_one(mheap + l.mheap_allspans, 16, "allspans")?;
    let (ptr, len) = (u64_at(&hdr, 0).unwrap_or(0), u64_at(&hdr, 8).unwrap_or(0));
    let n = len.min(CHECK_SPANS);
    let arr = mem.read_one(ptr, (n * 8) as usize, "allspans array")?;
    let ranges: Vec<(u64, usize)> = (0..n)
        .filter_map(|k| u64_at(&arr, k * 8))
        .map(|p| (p, l.span_size as usize))
        .collect();
    let mut in_use = 0;
    for (&(p, _), b) in ranges.iter().zip(mem.read_ranges(&ranges)?) {
        let Some(b) = b else { return Ok(false) };
        match decode_span(&b, l, p) {
            Ok(Some(_)) => in_use += 1,
            Ok(None) => {}
            Err(_) => return Ok(false),
        }
    }
    Ok(in_use > 0)
}
