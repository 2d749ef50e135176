//! Reading another process's memory without stopping it: `process_vm_readv(2)`, many remote
//! ranges per call (up to `IOV_MAX`), with partial-read recovery so one unmapped range only
//! costs that range. The one memory reader of SFGI: the inventory and the reachability pass
//! (`sfgi-heap`) both read through [`Remote`].

use super::InventoryError;

/// Most iovecs one `process_vm_readv` call accepts (Linux `UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;
/// Largest single range (guards against a corrupt length).
pub const MAX_RANGE: usize = 512 << 20;
/// Ranges at most this far apart are read as one piece (the gap is read and discarded).
const MERGE_GAP: u64 = 256;
/// Largest merged piece.
const MAX_MERGED: u64 = 1 << 20;

/// A remote process whose memory we read.
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    /// The process.
    pub pid: u32,
}

/// The result of a batched read: the bytes of every requested range in `buf` ([`Batch::get`]
/// finds range `i`'s), with `ok[i]` telling whether range `i` was read completely.
pub struct Batch {
    /// The bytes read: the requested ranges concatenated in request order (bytes of a failed
    /// range are zero), or, when neighbouring ranges were read as one piece, those pieces (a
    /// range then lies inside its piece).
    pub buf: Vec<u8>,
    offsets: Vec<usize>,
    lens: Vec<usize>,
    /// Whether range `i` was read completely.
    pub ok: Vec<bool>,
}

impl Batch {
    /// An all-failed batch with room for `ranges` (invalid ones get length 0).
    fn zeroed(ranges: &[(u64, usize)]) -> Batch {
        let mut offsets = Vec::with_capacity(ranges.len());
        let mut lens = Vec::with_capacity(ranges.len());
        let mut total = 0usize;
        for &(addr, len) in ranges {
            // A range that is empty, too large or wraps around is failed without asking.
            let len = if len > MAX_RANGE || addr.checked_add(len as u64).is_none() {
                0
            } else {
                len
            };
            offsets.push(total);
            lens.push(len);
            // Cannot overflow: each len ≤ MAX_RANGE and callers pass ≤ a few million ranges.
            total = total.saturating_add(len);
        }
        Batch {
            buf: vec![0u8; total],
            offsets,
            lens,
            ok: vec![false; ranges.len()],
        }
    }

    /// The bytes of range `i`, `None` if it was not read.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if !*self.ok.get(i)? {
            return None;
        }
        let off = *self.offsets.get(i)?;
        self.buf.get(off..off.checked_add(*self.lens.get(i)?)?)
    }
}

impl Remote {
    /// One raw `process_vm_readv` of `remote` ranges into `local` (which is exactly as long as the
    /// ranges together). Returns the number of bytes read.
    fn readv(&self, local: &mut [u8], remote: &[libc::iovec]) -> Result<usize, std::io::Error> {
        let liov = libc::iovec {
            iov_base: local.as_mut_ptr().cast(),
            iov_len: local.len(),
        };
        let pid = libc::pid_t::try_from(self.pid)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: `liov` describes `local`, a live, exclusively borrowed buffer of exactly
        // `local.len()` bytes, so the kernel writes only inside it. The remote iovecs are only
        // addresses in the other process: the kernel validates them (EFAULT / short count) and
        // never touches our memory through them. `remote.len()` ≤ IOV_MAX (callers chunk), which
        // fits the c_ulong count; flags must be 0.
        let n = unsafe {
            libc::process_vm_readv(
                pid,
                &liov,
                1,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Reads `len` bytes at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, InventoryError> {
        let b = self.read_many(&[(addr, len)])?;
        match b.get(0) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(InventoryError::Unreadable { addr, len }),
        }
    }

    /// Reads every `(addr, len)` range. Ranges less than [`MERGE_GAP`] apart are read as one
    /// (Go allocates `g`s and sudogs from size-class spans, so most of them are neighbours),
    /// `IOV_MAX` pieces per system call. A range that is not (fully) mapped is marked failed in
    /// [`Batch::ok`]; the others are still read. Fails only if the process is gone or may not be
    /// read at all.
    pub fn read_many(&self, ranges: &[(u64, usize)]) -> Result<Batch, InventoryError> {
        self.read_many_merging(ranges, MERGE_GAP)
    }

    /// [`Self::read_many`], merging ranges at most `gap` bytes apart. Each iovec costs the
    /// kernel a page-table walk and a page pin whatever its length, so for many small ranges
    /// packed close together (the `g` headers of a million goroutines, one per 480-byte slot of
    /// their spans) reading the gaps too is several times faster than one iovec per range. The
    /// merged pieces are handed out in place, not copied.
    pub fn read_many_merging(
        &self,
        ranges: &[(u64, usize)],
        gap: u64,
    ) -> Result<Batch, InventoryError> {
        let valid = |&(addr, len): &(u64, usize)| {
            len > 0 && len <= MAX_RANGE && addr.checked_add(len as u64).is_some()
        };
        let mut order: Vec<usize> = (0..ranges.len()).filter(|&i| valid(&ranges[i])).collect();
        order.sort_unstable_by_key(|&i| ranges[i].0);
        // Merged pieces: (start, end, first index into `order`, one past the last).
        let mut pieces: Vec<(u64, u64, usize, usize)> = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            let (a, l) = ranges[i];
            let e = a + l as u64;
            match pieces.last_mut() {
                Some(p) if a <= p.1.saturating_add(gap) && e.max(p.1) - p.0 <= MAX_MERGED => {
                    p.1 = p.1.max(e);
                    p.3 = k + 1;
                }
                _ => pieces.push((a, e, k, k + 1)),
            }
        }
        if pieces.len() == order.len() {
            return self.read_exact_ranges(ranges);
        }
        let merged: Vec<(u64, usize)> =
            pieces.iter().map(|p| (p.0, (p.1 - p.0) as usize)).collect();
        // Every range points into the merged pieces' buffer (ranges may overlap there).
        let Batch {
            mut buf,
            offsets: piece_offsets,
            ok: piece_ok,
            ..
        } = self.read_exact_ranges(&merged)?;
        let mut offsets = vec![0usize; ranges.len()];
        let mut lens = vec![0usize; ranges.len()];
        let mut ok = vec![false; ranges.len()];
        let mut retry: Vec<usize> = Vec::new();
        for (pi, p) in pieces.iter().enumerate() {
            let members = &order[p.2..p.3];
            if piece_ok.get(pi).copied().unwrap_or(false) {
                for &i in members {
                    let (a, l) = ranges[i];
                    offsets[i] = piece_offsets[pi] + (a - p.0) as usize;
                    lens[i] = l;
                    ok[i] = true;
                }
            } else if members.len() > 1 {
                // A hole somewhere in the piece: read its ranges one by one.
                retry.extend_from_slice(members);
            }
        }
        if !retry.is_empty() {
            let again: Vec<(u64, usize)> = retry.iter().map(|&i| ranges[i]).collect();
            let rb = self.read_exact_ranges(&again)?;
            let base = buf.len();
            buf.extend_from_slice(&rb.buf);
            for (k, &i) in retry.iter().enumerate() {
                if rb.ok[k] {
                    offsets[i] = base + rb.offsets[k];
                    lens[i] = rb.lens[k];
                    ok[i] = true;
                }
            }
        }
        Ok(Batch {
            buf,
            offsets,
            lens,
            ok,
        })
    }

    /// [`Self::read_many`] without merging: one iovec per range.
    fn read_exact_ranges(&self, ranges: &[(u64, usize)]) -> Result<Batch, InventoryError> {
        let Batch {
            mut buf,
            offsets,
            lens,
            mut ok,
        } = Batch::zeroed(ranges);
        // Indices of ranges still to read, in order; skip empty ones.
        let todo: Vec<usize> = (0..ranges.len()).filter(|&i| lens[i] > 0).collect();
        let mut pos = 0usize;
        // Every iteration either finishes ≥ 1 range or marks ≥ 1 failed: bounded by todo.len().
        while pos < todo.len() {
            // A chunk of up to IOV_MAX ranges that are contiguous in `buf` (ranges are laid out in
            // request order and only empty ones are skipped, which take no space).
            let end = (pos + IOV_MAX).min(todo.len());
            let chunk = &todo[pos..end];
            let start_off = offsets[chunk[0]];
            let last = chunk[chunk.len() - 1];
            let end_off = offsets[last] + lens[last];
            let remote: Vec<libc::iovec> = chunk
                .iter()
                .map(|&i| libc::iovec {
                    iov_base: ranges[i].0 as usize as *mut libc::c_void,
                    iov_len: lens[i],
                })
                .collect();
            match self.readv(&mut buf[start_off..end_off], &remote) {
                Ok(n) => {
                    // Ranges wholly inside the first n bytes are done; the one n ends in (if any)
                    // failed; continue after it.
                    let mut done = 0usize;
                    let mut k = 0usize;
                    while k < chunk.len() {
                        let l = lens[chunk[k]];
                        if done + l > n {
                            break;
                        }
                        ok[chunk[k]] = true;
                        done += l;
                        k += 1;
                    }
                    if k < chunk.len() {
                        // chunk[k] is partial or unread: zero what was copied, mark it failed.
                        let i = chunk[k];
                        buf[offsets[i]..offsets[i] + lens[i]].fill(0);
                        k += 1;
                    }
                    pos += k;
                }
                Err(e) => match e.raw_os_error() {
                    // Nothing was read: the first range is bad. Skip it.
                    Some(libc::EFAULT) => pos += 1,
                    Some(libc::ESRCH) => return Err(InventoryError::ProcessGone(self.pid)),
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        return Err(InventoryError::Permission {
                            pid: self.pid,
                            source: e,
                        })
                    }
                    Some(libc::ENOSYS) => return Err(InventoryError::Unsupported(e.to_string())),
                    _ => return Err(InventoryError::Io(e)),
                },
            }
        }
        Ok(Batch {
            buf,
            offsets,
            lens,
            ok,
        })
    }
}

/// Little-endian u64 at `off` of `b`.
pub fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Little-endian u32 at `off` of `b`.
pub fn u32_at(b: &[u8], off: u64) -> Option<u32> {
    let off = usize::try_from(off).ok()?;
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Byte at `off` of `b`.
pub fn u8_at(b: &[u8], off: u64) -> Option<u8> {
    b.get(usize::try_from(off).ok()?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_survives_bad_ranges() {
        let data: Vec<u64> = (0..4096u64).collect();
        let base = data.as_ptr() as u64;
        let me = Remote {
            pid: std::process::id(),
        };
        let mut ranges = Vec::new();
        for i in 0..3000u64 {
            if i % 7 == 3 {
                ranges.push((8, 16)); // unmapped page zero
            } else {
                ranges.push((base + i * 8, 8));
            }
        }
        ranges.push((0, 0));
        ranges.push((u64::MAX - 3, 8));
        let b = me.read_many(&ranges).unwrap();
        for i in 0..3000usize {
            if i % 7 == 3 {
                assert!(b.get(i).is_none(), "{i}");
            } else {
                assert_eq!(u64_at(b.get(i).unwrap(), 0), Some(i as u64), "{i}");
            }
        }
        assert!(b.get(3000).is_none() && b.get(3001).is_none());
        assert!(me.read(8, 8).is_err());
        // Ranges far apart merged into pieces (gaps read and dropped), with holes in between:
        // each range still gets its own bytes, and only the unmapped ones fail.
        let spread: Vec<(u64, usize)> = (0..500u64)
            .map(|i| {
                if i % 9 == 4 {
                    (8, 8)
                } else {
                    (base + i * 64, 12)
                }
            })
            .collect();
        let m = me.read_many_merging(&spread, 1024).unwrap();
        for i in 0..500u64 {
            match m.get(i as usize) {
                Some(bytes) => {
                    assert_ne!(i % 9, 4, "{i}");
                    assert_eq!(bytes.len(), 12);
                    assert_eq!(u64_at(bytes, 0), Some(i * 8), "{i}");
                }
                None => assert_eq!(i % 9, 4, "{i}"),
            }
        }
        // A hole inside a merged piece: the piece fails, its ranges are read one by one.
        let page = 4096usize;
        // SAFETY: a fresh anonymous private mapping of three pages, nothing else refers to it;
        // its middle page is unmapped again, the rest is unmapped at the end of the test.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let at = map as u64;
        // SAFETY: the first and last pages are mapped, writable and ours; then the middle
        // page (inside the same mapping) is unmapped.
        unsafe {
            *(map as *mut u64) = 0x11;
            *((at + 2 * page as u64) as *mut u64) = 0x33;
            assert_eq!(libc::munmap((at + page as u64) as *mut _, page), 0);
        }
        let holey = [
            (at, 8),
            (at + page as u64 + 8, 8),
            (at + 2 * page as u64, 8),
        ];
        let h = me.read_many_merging(&holey, 2 * page as u64).unwrap();
        assert_eq!(h.get(0).and_then(|b| u64_at(b, 0)), Some(0x11));
        assert!(h.get(1).is_none());
        assert_eq!(h.get(2).and_then(|b| u64_at(b, 0)), Some(0x33));
        // SAFETY: the two pages still mapped, from the mmap above.
        unsafe {
            libc::munmap(map, page);
            libc::munmap((at + 2 * page as u64) as *mut _, page);
        }
    }
}
