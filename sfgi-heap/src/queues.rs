//! Roots off the heap: the runtime's queues of finalizers and cleanups that are queued and not
//! yet run.
//!
//! When the GC finds an object with a finalizer (or a cleanup) unreachable, the sweeper moves
//! the finalizer from the object's span special into a queue, so until it runs, the object (the
//! finalizer's argument) and everything it references are reachable only from that queue. The
//! queues live in `persistentalloc`'d blocks, outside the heap spans, and Go's GC scans them as
//! roots (`runtime/mgcmark.go` `markroot`, `fixedRootFinalizers` and, from Go 1.25,
//! `fixedRootCleanups`). So does a pass:
//!
//! - every block of `runtime.allfin` (a `finblock`, `finBlock` from Go 1.25; linked by
//!   `alllink`): the words of `fin[0..cnt]` (5-word `finalizer` records);
//! - from Go 1.25, every block of `runtime.gcCleanups.all` (a `cleanupBlock`, linked by
//!   `alllink`; the blocks owned by each P are on that list too): the words of
//!   `cleanups[0..n]` (a `*funcval` each in Go 1.25, a 3-word `cleanupFn` from 1.26). Go 1.24
//!   queues cleanups with the finalizers.
//!
//! Both are scanned conservatively. A block that cannot be read, a count above a block's
//! capacity, a cycle or more than [`MAX_QUEUE_BLOCKS`] blocks refuse the pass.

use crate::memory::Memory;
use crate::{u64_at, HeapError};
use sfgi_goexe::HeapLayout;
use std::collections::HashSet;

/// Most blocks followed per list (finalizer blocks, cleanup blocks): 4 GB of finalizer blocks.
pub const MAX_QUEUE_BLOCKS: usize = 1 << 20;

/// One list of blocks: where its head pointer is and how its blocks are laid out.
struct List {
    /// What it is (for errors).
    what: &'static str,
    /// Address of the head pointer.
    head: u64,
    /// Offset of the next-block pointer in a block.
    link: u64,
    /// Offset of the `uint32` count.
    count: u64,
    /// Offset of the first entry.
    entries: u64,
    /// Bytes per entry.
    entry: u64,
    /// Most entries a block holds.
    capacity: u64,
}

/// The root ranges of the finalizer queue (`runtime.allfin`, at `allfin`) and, when the
/// layout has one, of the cleanup queue (`runtime.gcCleanups`, at `cleanup_queue`): the part
/// of every block that holds queued entries.
pub fn queue_roots(
    mem: &dyn Memory,
    l: &HeapLayout,
    allfin: u64,
    cleanup_queue: Option<u64>,
) -> Result<Vec<(u64, u64)>, HeapError> {
    let mut lists = vec![List {
        what: "finalizer block",
        head: allfin,
        link: l.finblock_alllink,
        count: l.finblock_cnt,
        entries: l.finblock_fin,
        entry: l.finalizer_size,
        capacity: capacity(l.finblock_size, l.finblock_fin, l.finalizer_size),
    }];
    if l.cleanupq_all != 0 {
        let q = cleanup_queue.ok_or(HeapError::NotFound {
            what: "runtime.gcCleanups",
            why: "this Go version queues cleanups off the heap, and the queue was not located"
                .into(),
        })?;
        lists.push(List {
            what: "cleanup block",
            head: q.wrapping_add(l.cleanupq_all),
            link: l.cleanupblock_alllink,
            count: l.cleanupblock_n,
            entries: l.cleanupblock_cleanups,
            entry: l.cleanup_fn_size,
            capacity: capacity(
                l.cleanupblock_size,
                l.cleanupblock_cleanups,
                l.cleanup_fn_size,
            ),
        });
    }
    let mut out = Vec::new();
    for list in &lists {
        walk(mem, list, &mut out)?;
    }
    Ok(out)
}

/// Entries of `entry` bytes from `entries` to the end of a block of `size` bytes.
fn capacity(size: u64, entries: u64, entry: u64) -> u64 {
    size.saturating_sub(entries).checked_div(entry).unwrap_or(0)
}

/// Follows one list from its head, adding the used part of every block to `out`.
fn walk(mem: &dyn Memory, list: &List, out: &mut Vec<(u64, u64)>) -> Result<(), HeapError> {
    let corrupt = |why: String| HeapError::Corrupt {
        what: list.what,
        why,
    };
    if list.entry == 0
        || list.capacity == 0
        || list.count + 4 > list.entries
        || list.link + 8 > list.entries
    {
        return Err(corrupt("no layout for its blocks".into()));
    }
    let head = mem.read_one(list.head, 8, list.what)?;
    let mut block = u64_at(&head, 0).unwrap_or(0);
    let mut seen = HashSet::new();
    while block != 0 {
        if !block.is_multiple_of(8) {
            return Err(corrupt(format!("misaligned block {block:#x}")));
        }
        if !seen.insert(block) {
            return Err(corrupt(format!("the list loops at {block:#x}")));
        }
        if seen.len() > MAX_QUEUE_BLOCKS {
            return Err(HeapError::Cap(format!(
                "more than {MAX_QUEUE_BLOCKS} {}s",
                list.what
            )));
        }
        let header = mem.read_one(block, list.entries as usize, list.what)?;
        let count = header
            .get(list.count as usize..list.count as usize + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("short header".into()))?;
        let count = u64::from(count);
        if count > list.capacity {
            return Err(corrupt(format!(
                "{count} entries in block {block:#x} (at most {})",
                list.capacity
            )));
        }
        if count > 0 {
            let start = block
                .checked_add(list.entries)
                .ok_or_else(|| corrupt(format!("block {block:#x}")))?;
            let end = start
                .checked_add(count * list.entry)
                .ok_or_else(|| corrupt(format!("block {block:#x}")))?;
            out.push((start, end));
        }
        block = u64_at(&header, list.link).unwrap_or(0);
    }
    Ok(())
}
