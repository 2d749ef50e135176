//! Every in-use heap span of the target, from `mheap_.allspans` (a `[]*mspan` of every span
//! ever made; `state == mSpanInUse` are the ones holding heap objects), sorted by address so an
//! address maps to its object in `O(log spans)`.
//!
//! Every slot of an in-use span is treated as an allocated object: `allocBits` are not read.
//! Free slots hold stale data, so this only ever adds reachability (a proof can be missed,
//! never made false), and it avoids racing the sweeper, which swaps `allocBits` under a pass.

use crate::memory::Memory;
use crate::{u16_at, u64_at, u8_at, HeapError};
use sfgi_goexe::HeapLayout;

/// Most spans accepted (`len(allspans)`): ~8 TB of heap in 8 KB spans is far beyond any target.
pub const MAX_SPANS: u64 = 1 << 30;
/// `mSpanInUse`.
const SPAN_IN_USE: u8 = 1;
/// Heap page size.
const PAGE: u64 = 8192;
/// Spans read per batch.
const BATCH: usize = 4096;

/// One in-use span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Runtime address of the `mspan`.
    pub addr: u64,
    /// `startAddr`: the first object.
    pub start: u64,
    /// End of the last slot: `startAddr + nelems * elemsize` (`mspan.limit` is the end of the
    /// object for a large span, of the last slot for the others).
    pub limit: u64,
    /// `elemsize`.
    pub elemsize: u64,
    /// No pointers in its objects (`spanclass & 1`).
    pub noscan: bool,
    /// `specials` (finalizers, cleanups, …): 0 if none.
    pub specials: u64,
    /// Size class 0: one large object.
    pub large: bool,
    /// `largeType` of a one-object span (Go 1.22+; 0 if none or unknown).
    pub large_type: u64,
}

/// The in-use spans, sorted by `start`, non-overlapping.
#[derive(Clone, Debug, Default)]
pub struct Spans {
    spans: Vec<Span>,
    /// Heap page (8 KB, from the lowest span) → index of the span holding it (`u32::MAX`:
    /// none), when the heap's address range is at most [`MAX_PAGE_INDEX`] pages; else lookups
    /// search `spans`.
    pages: Vec<u32>,
}

/// Largest page index built (4 M pages = a 32 GB address range, 16 MB of index).
const MAX_PAGE_INDEX: u64 = 1 << 22;

impl Spans {
    /// The spans (sorted by address).
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Builds the index from spans in any order. Fails on an implausible span (zero size,
    /// unaligned) or two overlapping ones: live spans never overlap, so one was read torn, and
    /// dropping either could hide objects (a false proof).
    pub fn from_spans(mut v: Vec<Span>) -> Result<Spans, HeapError> {
        if let Some(s) = v
            .iter()
            .find(|s| s.elemsize == 0 || s.start >= s.limit || !s.start.is_multiple_of(8))
        {
            return Err(HeapError::Corrupt {
                what: "mspan",
                why: format!("implausible span {s:x?}"),
            });
        }
        v.sort_unstable_by_key(|s| (s.start, s.limit));
        v.dedup();
        if let Some(w) = v.windows(2).find(|w| w[1].start < w[0].limit) {
            return Err(HeapError::Corrupt {
                what: "mspan",
                why: format!("overlapping spans {:x?} and {:x?}", w[0], w[1]),
            });
        }
        let mut out = Spans {
            spans: v,
            pages: Vec::new(),
        };
        let (lo, hi) = out.bounds();
        let npages = (hi - lo).div_ceil(PAGE);
        if !out.spans.is_empty() && npages <= MAX_PAGE_INDEX && out.spans.len() < u32::MAX as usize
        {
            let mut pages = vec![u32::MAX; npages as usize];
            let mut shared = false;
            'spans: for (i, s) in out.spans.iter().enumerate() {
                let (a, b) = ((s.start - lo) / PAGE, (s.limit - 1 - lo) / PAGE);
                for p in a..=b {
                    if let Some(slot) = pages.get_mut(p as usize) {
                        // Live spans start on page boundaries: a page shared by two spans
                        // means the index cannot be used (lookups then search).
                        if *slot != u32::MAX {
                            shared = true;
                            break 'spans;
                        }
                        *slot = i as u32;
                    }
                }
            }
            if !shared {
                out.pages = pages;
            }
        }
        Ok(out)
    }

    /// The span holding `addr` (by index), if `addr` is inside one's objects.
    pub fn find(&self, addr: u64) -> Option<usize> {
        if !self.pages.is_empty() {
            let lo = self.spans.first()?.start;
            let page = addr.checked_sub(lo)? / PAGE;
            let i = *self.pages.get(usize::try_from(page).ok()?)?;
            let s = self.spans.get(i as usize)?;
            return (s.start <= addr && addr < s.limit).then_some(i as usize);
        }
        let i = self.spans.partition_point(|s| s.start <= addr);
        let i = i.checked_sub(1)?;
        let s = self.spans.get(i)?;
        (addr < s.limit).then_some(i)
    }

    /// The span at index `i`.
    pub fn get(&self, i: usize) -> Option<&Span> {
        self.spans.get(i)
    }

    /// The object holding `addr`: (span index, slot index, object base).
    pub fn object(&self, addr: u64) -> Option<(usize, u64, u64)> {
        let i = self.find(addr)?;
        let s = &self.spans[i];
        let idx = (addr - s.start) / s.elemsize;
        Some((i, idx, s.start + idx * s.elemsize))
    }

    /// Lowest and highest heap address covered (for a quick filter).
    pub fn bounds(&self) -> (u64, u64) {
        match (self.spans.first(), self.spans.last()) {
            (Some(a), Some(b)) => (a.start, b.limit),
            _ => (0, 0),
        }
    }

    /// Reads the in-use spans of the target from `mheap_` (runtime address) with `layout`.
    pub fn read(mem: &dyn Memory, layout: &HeapLayout, mheap: u64) -> Result<Spans, HeapError> {
        let hdr_addr = mheap
            .checked_add(layout.mheap_allspans)
            .ok_or(HeapError::Corrupt {
                what: "mheap_",
                why: "address overflows".into(),
            })?;
        let hdr = mem.read_one(hdr_addr, 24, "mheap_.allspans")?;
        let (ptr, len, cap) = (
            u64_at(&hdr, 0).unwrap_or(0),
            u64_at(&hdr, 8).unwrap_or(0),
            u64_at(&hdr, 16).unwrap_or(0),
        );
        if ptr == 0 || len == 0 || len > cap || len > MAX_SPANS {
            return Err(HeapError::Corrupt {
                what: "mheap_.allspans",
                why: format!("slice {ptr:#x} len {len} cap {cap}"),
            });
        }
        let mut ptrs: Vec<u64> = Vec::with_capacity(len as usize);
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(1 << 16);
            let bytes = mem.read_one(ptr + off * 8, (n * 8) as usize, "allspans array")?;
            ptrs.extend((0..n).filter_map(|k| u64_at(&bytes, k * 8)));
            off += n;
        }
        let size = layout.span_size as usize;
        let mut spans = Vec::new();
        for chunk in ptrs.chunks(BATCH) {
            let ranges: Vec<(u64, usize)> = chunk
                .iter()
                .filter(|&&p| p != 0)
                .map(|&p| (p, size))
                .collect();
            let read = mem.read_ranges(&ranges)?;
            for (&(p, _), b) in ranges.iter().zip(read) {
                // An unreadable span is one the heap no longer uses (never unmapped in Go):
                // refuse rather than guess.
                let b = b.ok_or(HeapError::Unreadable {
                    what: "mspan",
                    addr: p,
                    len: size,
                })?;
                match decode_span(&b, layout, p) {
                    Ok(Some(s)) => spans.push(s),
                    Ok(None) => {}
                    Err(why) => {
                        return Err(HeapError::Corrupt {
                            what: "mspan",
                            why: format!("span at {p:#x}: {why}"),
                        })
                    }
                }
            }
        }
        if spans.is_empty() {
            return Err(HeapError::Corrupt {
                what: "mheap_.allspans",
                why: "no span in use".into(),
            });
        }
        Spans::from_spans(spans)
    }
}

/// One `mspan` (its bytes `b`): `None` if it is not in use, an error if it is in use but not
/// self-consistent (a torn or misread span).
pub fn decode_span(b: &[u8], l: &HeapLayout, addr: u64) -> Result<Option<Span>, &'static str> {
    let short = "short read";
    if u8_at(b, l.span_state).ok_or(short)? != SPAN_IN_USE {
        return Ok(None);
    }
    let start = u64_at(b, l.span_start).ok_or(short)?;
    let npages = u64_at(b, l.span_npages).ok_or(short)?;
    let elemsize = u64_at(b, l.span_elemsize).ok_or(short)?;
    let limit = u64_at(b, l.span_limit).ok_or(short)?;
    let nelems = if l.span_index_width == 2 {
        u64::from(u16_at(b, l.span_nelems).ok_or(short)?)
    } else {
        u64_at(b, l.span_nelems).ok_or(short)?
    };
    let overflow = "sizes overflow";
    let end = npages
        .checked_mul(PAGE)
        .and_then(|n| start.checked_add(n))
        .ok_or(overflow)?;
    let slots_end = nelems
        .checked_mul(elemsize)
        .and_then(|n| start.checked_add(n))
        .ok_or(overflow)?;
    // Every slot inside the span's pages, `limit` too (Go 1.22–1.23 set `limit` from the
    // slot count before taking the span-end heap bits out of `nelems`: it can pass the last
    // slot).
    if npages == 0 || elemsize == 0 || nelems == 0 || !start.is_multiple_of(8) {
        return Err("empty or unaligned");
    }
    if slots_end > end || limit <= start || limit > end {
        return Err("slots outside the span");
    }
    Ok(Some(Span {
        addr,
        start,
        limit: slots_end,
        elemsize,
        noscan: u8_at(b, l.span_spanclass).ok_or(short)? & 1 == 1,
        specials: u64_at(b, l.span_specials).ok_or(short)?,
        large: u8_at(b, l.span_spanclass).ok_or(short)? >> 1 == 0,
        large_type: if l.span_large_type != 0 {
            u64_at(b, l.span_large_type).ok_or(short)?
        } else {
            0
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, elemsize: u64, n: u64) -> Span {
        Span {
            addr: 0,
            start,
            limit: start + elemsize * n,
            elemsize,
            noscan: false,
            specials: 0,
            large: false,
            large_type: 0,
        }
    }

    #[test]
    fn lookup() {
        let s = Spans::from_spans(vec![span(0x2000, 48, 10), span(0x1000, 16, 256)]).unwrap();
        assert_eq!(s.object(0x1000 + 17), Some((0, 1, 0x1010)));
        assert_eq!(
            s.object(0x2000 + 48 * 9 + 47),
            Some((1, 9, 0x2000 + 48 * 9))
        );
        assert_eq!(s.object(0x2000 + 480), None);
        assert_eq!(s.object(0xfff), None);
        assert_eq!(s.bounds(), (0x1000, 0x2000 + 480));
        assert!(s.pages.is_empty(), "two spans in one page: no page index");
        // Page-aligned spans (as in a real heap) use the page index.
        let s = Spans::from_spans(vec![span(0x4000, 48, 170), span(0x8000, 8192, 2)]).unwrap();
        assert!(!s.pages.is_empty());
        assert_eq!(s.object(0x4000 + 49), Some((0, 1, 0x4030)));
        assert_eq!(s.object(0x4000 + 48 * 170), None);
        assert_eq!(s.object(0x8000 + 8192 + 5), Some((1, 1, 0xa000)));
        assert_eq!(s.object(0x8000 + 16384), None);
        assert_eq!(s.object(0x3fff), None);
        // Overlapping (torn) spans: refused.
        assert!(Spans::from_spans(vec![span(0x1000, 16, 256), span(0x1800, 16, 4)]).is_err());
        assert!(Spans::from_spans(vec![span(0x1000, 0, 0)]).is_err());
    }

    #[test]
    fn decodes_a_span_and_rejects_junk() {
        let l = HeapLayout::for_minor(27).unwrap();
        let mut b = vec![0u8; l.span_size as usize];
        let put = |b: &mut Vec<u8>, off: u64, v: u64| {
            b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
        };
        put(&mut b, l.span_start, 0xc000_0000);
        put(&mut b, l.span_npages, 1);
        put(&mut b, l.span_elemsize, 64);
        put(&mut b, l.span_limit, 0xc000_0000 + 64 * 128);
        b[l.span_nelems as usize..l.span_nelems as usize + 2]
            .copy_from_slice(&128u16.to_le_bytes());
        b[l.span_state as usize] = 1;
        b[l.span_spanclass as usize] = 11;
        let s = decode_span(&b, &l, 0x1234).unwrap().unwrap();
        assert!(s.noscan && s.limit == 0xc000_2000);
        b[l.span_state as usize] = 2;
        assert_eq!(decode_span(&b, &l, 0), Ok(None));
        b[l.span_state as usize] = 1;
        put(&mut b, l.span_limit, 0xc000_4000);
        assert!(decode_span(&b, &l, 0).is_err());
        // limit past the last slot but inside the span (Go 1.22): the slots end the span.
        put(&mut b, l.span_limit, 0xc000_2000);
        b[l.span_nelems as usize..l.span_nelems as usize + 2]
            .copy_from_slice(&120u16.to_le_bytes());
        assert_eq!(
            decode_span(&b, &l, 0).unwrap().map(|s| s.limit),
            Some(0xc000_0000 + 120 * 64)
        );
        b[l.span_nelems as usize..l.span_nelems as usize + 2]
            .copy_from_slice(&128u16.to_le_bytes());
        // A large object: limit is the end of the object, the slot is the whole span.
        put(&mut b, l.span_limit, 0xc000_0000 + 100);
        put(&mut b, l.span_elemsize, 8192);
        b[l.span_nelems as usize..l.span_nelems as usize + 2].copy_from_slice(&1u16.to_le_bytes());
        assert_eq!(
            decode_span(&b, &l, 0).unwrap().map(|s| s.limit),
            Some(0xc000_2000)
        );
        assert!(decode_span(&b[..10], &l, 0).is_err());
    }
}
