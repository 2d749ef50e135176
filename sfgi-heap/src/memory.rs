//! What a pass reads through: [`Memory`] (a trait, so the marking can be tested and fuzzed on
//! fake memory), implemented for the target by [`RemoteMemory`] over `sfgi-trace`'s one
//! `process_vm_readv` reader, with a read budget and a cap on the bytes of one proof.

use crate::HeapError;
use sfgi_trace::clock::monotonic_ns;
use sfgi_trace::inventory::mem::{Remote, MAX_RANGE};
use std::cell::Cell;

/// Memory of the target, read in batches.
pub trait Memory {
    /// Reads every `(addr, len)` range: `Some(bytes)` (exactly `len` of them) for a range read
    /// completely, `None` for one that was not. Fails only when reading is impossible as a
    /// whole (process gone, permission, cap reached).
    fn read_ranges(&self, ranges: &[(u64, usize)]) -> Result<Vec<Option<Vec<u8>>>, HeapError>;

    /// Bytes read so far.
    fn bytes_read(&self) -> u64;

    /// Like [`Memory::read_ranges`], handing each range's bytes to `f` in request order
    /// without copying them out (the heap scan reads millions of small objects).
    fn read_each(
        &self,
        ranges: &[(u64, usize)],
        f: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<(), HeapError> {
        for (i, b) in self.read_ranges(ranges)?.iter().enumerate() {
            f(i, b.as_deref());
        }
        Ok(())
    }

    /// Reads one range that must be readable.
    fn read_one(&self, addr: u64, len: usize, what: &'static str) -> Result<Vec<u8>, HeapError> {
        self.read_ranges(&[(addr, len)])?
            .pop()
            .flatten()
            .ok_or(HeapError::Unreadable { what, addr, len })
    }
}

/// The target's memory, read with `process_vm_readv` at no more than `rate` bytes per second
/// (sleeping between batches when ahead) and no more than `cap` bytes in all.
pub struct RemoteMemory {
    remote: Remote,
    rate: u64,
    cap: u64,
    read: Cell<u64>,
    started_ns: u64,
}

impl RemoteMemory {
    /// A reader of process `pid` limited to `rate_mb_s` MB/s (0 = unlimited) and `cap_mb` MB.
    pub fn new(pid: u32, rate_mb_s: u64, cap_mb: u64) -> RemoteMemory {
        RemoteMemory {
            remote: Remote { pid },
            rate: rate_mb_s.saturating_mul(1 << 20),
            cap: cap_mb.saturating_mul(1 << 20),
            read: Cell::new(0),
            started_ns: monotonic_ns(),
        }
    }

    /// Sleeps until the bytes read so far fit the rate.
    fn pace(&self) {
        if self.rate == 0 {
            return;
        }
        let due_ns = (u128::from(self.read.get()) * 1_000_000_000 / u128::from(self.rate)) as u64;
        let elapsed = monotonic_ns().saturating_sub(self.started_ns);
        if due_ns > elapsed {
            // At most a second per batch (a batch is at most a few MB).
            let wait = (due_ns - elapsed).min(1_000_000_000);
            std::thread::sleep(std::time::Duration::from_nanos(wait));
        }
    }
}

impl Memory for RemoteMemory {
    fn read_ranges(&self, ranges: &[(u64, usize)]) -> Result<Vec<Option<Vec<u8>>>, HeapError> {
        let total: u64 = ranges
            .iter()
            .map(|r| r.1.min(MAX_RANGE) as u64)
            .fold(0u64, u64::saturating_add);
        let after = self.read.get().saturating_add(total);
        if self.cap > 0 && after > self.cap {
            return Err(HeapError::Cap(format!(
                "{} MB read (cap {} MB)",
                after >> 20,
                self.cap >> 20
            )));
        }
        self.pace();
        let b = self.remote.read_many(ranges)?;
        self.read.set(after);
        Ok((0..ranges.len())
            .map(|i| b.get(i).map(<[u8]>::to_vec))
            .collect())
    }

    fn bytes_read(&self) -> u64 {
        self.read.get()
    }

    fn read_each(
        &self,
        ranges: &[(u64, usize)],
        f: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<(), HeapError> {
        let total: u64 = ranges
            .iter()
            .map(|r| r.1.min(MAX_RANGE) as u64)
            .fold(0u64, u64::saturating_add);
        let after = self.read.get().saturating_add(total);
        if self.cap > 0 && after > self.cap {
            return Err(HeapError::Cap(format!(
                "{} MB read (cap {} MB)",
                after >> 20,
                self.cap >> 20
            )));
        }
        self.pace();
        let b = self.remote.read_many(ranges)?;
        self.read.set(after);
        for i in 0..ranges.len() {
            f(i, b.get(i));
        }
        Ok(())
    }
}

pub(crate) mod fake {
    //! A fake address space for tests and fuzzing: a few byte regions at chosen addresses.
    use super::*;
    use std::collections::BTreeMap;

    /// A fake address space: byte regions by start address (for tests and fuzzing).
    #[derive(Default)]
    pub struct FakeMemory {
        /// Regions by start address (they must not overlap).
        pub regions: BTreeMap<u64, Vec<u8>>,
        read: Cell<u64>,
    }

    impl FakeMemory {
        /// Maps `bytes` at `addr`.
        pub fn put(&mut self, addr: u64, bytes: Vec<u8>) {
            self.regions.insert(addr, bytes);
        }

        /// Maps little-endian `words` at `addr`.
        pub fn put_words(&mut self, addr: u64, words: &[u64]) {
            self.put(addr, words.iter().flat_map(|w| w.to_le_bytes()).collect());
        }

        fn get(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            let (&start, bytes) = self.regions.range(..=addr).next_back()?;
            let off = usize::try_from(addr.checked_sub(start)?).ok()?;
            bytes.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
        }
    }

    impl Memory for FakeMemory {
        fn read_ranges(&self, ranges: &[(u64, usize)]) -> Result<Vec<Option<Vec<u8>>>, HeapError> {
            Ok(ranges
                .iter()
                .map(|&(a, l)| {
                    self.read.set(self.read.get().saturating_add(l as u64));
                    self.get(a, l)
                })
                .collect())
        }

        fn bytes_read(&self) -> u64 {
            self.read.get()
        }
    }
}

pub use fake::FakeMemory;
