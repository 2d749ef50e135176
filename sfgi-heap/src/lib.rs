//! Proving goroutine leaks from outside: a conservative reachability pass over a live Go heap,
//! read with `process_vm_readv` (through `sfgi-trace`'s one memory reader) while the target
//! keeps running.
//!
//! Go's own leak detector (the `goroutineleak` profile) runs a GC cycle in which goroutines
//! blocked on channels and `sync` objects are not roots; a blocked goroutine whose channel or
//! lock stays unmarked can never be woken. This crate does the same from outside:
//!
//! - `memory`: what a pass reads through ([`Memory`], with a read budget in MB/s);
//! - `locate`: where `runtime.mheap_`, the modules, `runtime.semtable`, `runtime.allfin` and
//!   `runtime.gcCleanups` are in the target;
//! - `spans`: every in-use heap span (`mheap_.allspans`), to map an address to its object;
//! - `candidates`: which goroutines a proof may cover and what each waits on;
//! - `reach`: the marking itself — roots are the data/bss of every module, the stacks of every
//!   goroutine that is not a candidate, the objects with finalizers or cleanups, and the
//!   finalizers and cleanups queued and not yet run (`queues`: off-heap blocks); heap
//!   objects are scanned conservatively (every aligned word that points into an in-use span
//!   counts); a candidate whose object becomes reachable becomes a root in turn, to a fixed
//!   point;
//! - `proof`: two passes some time apart, and what both agree on.
//!
//! Everything is bounded (bytes, objects, specials, queue blocks, sudogs), and whenever something a pass
//! needs cannot be read, the pass proves nothing and says why.
mod candidates;
mod locate;
mod memory;
pub mod proof;
pub mod queues;
mod reach;
mod spans;

pub use candidates::{read_semtable, Candidate, Candidates, WaitKind};
pub use locate::{locate_mheap, Globals};
pub use memory::{FakeMemory, Memory, RemoteMemory};
pub use proof::{ProofConfig, Prover};
pub use queues::{queue_roots, MAX_QUEUE_BLOCKS};
pub use reach::{build_type_mask, reach, PassOutcome, Precise, Reach};
pub use spans::{decode_span, Span, Spans};

/// Why a pass proved nothing.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// The binary's Go version has no heap layout (and no usable DWARF).
    #[error("no heap layout for this Go version ({0})")]
    NoLayout(String),
    /// A global the pass needs could not be located.
    #[error("{what} not found: {why}")]
    NotFound {
        /// Which global.
        what: &'static str,
        /// What was tried.
        why: String,
    },
    /// Memory the pass needs could not be read.
    #[error("cannot read {len} bytes at {addr:#x} ({what})")]
    Unreadable {
        /// What it was.
        what: &'static str,
        /// Runtime address.
        addr: u64,
        /// Length.
        len: usize,
    },
    /// Target data failed a sanity check (torn or corrupt read).
    #[error("corrupt {what}: {why}")]
    Corrupt {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A cap was reached (bytes read, objects, specials…).
    #[error("cap reached: {0}")]
    Cap(String),
    /// The memory reader failed as a whole (process gone, no permission).
    #[error(transparent)]
    Read(#[from] sfgi_trace::inventory::InventoryError),
}

/// Little-endian u64 at `off` of `b`.
pub(crate) fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    sfgi_trace::inventory::mem::u64_at(b, off)
}

/// Little-endian u16 at `off` of `b`.
pub(crate) fn u16_at(b: &[u8], off: u64) -> Option<u16> {
    let off = usize::try_from(off).ok()?;
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Byte at `off` of `b`.
pub(crate) fn u8_at(b: &[u8], off: u64) -> Option<u8> {
    sfgi_trace::inventory::mem::u8_at(b, off)
}
