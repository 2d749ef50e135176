//! `.gopclntab`, Go's own function/line table (Go 1.18+ layout, magic `0xfffffff0` /
//! `0xfffffff1`). It survives `-ldflags=-s -w`, so it is the source of function names,
//! addresses and source lines for stripped binaries.
//!
//! Header (all offsets relative to the table start):
//! `magic u32, pad u8, pad u8, minLC u8, ptrSize u8, nfunc, nfiles, textStart, funcnameOffset,
//! cuOffset, filetabOffset, pctabOffset, pclnOffset` (the last eight are `ptrSize` words).
//! At `pclnOffset` is the functab: `nfunc + 1` pairs `(entryoff u32, funcoff u32)` with
//! `entryoff` relative to `textStart` and `funcoff` relative to `pclnOffset`, where the `_func`
//! structs live.
//!
//! Each `_func` (44 fixed bytes, layout unchanged in Go 1.21–1.27) is followed by `npcdata`
//! `u32` offsets into the pctab (0 = no table) and then `nfuncdata` `u32` offsets relative to
//! `moduledata.gofunc` (the `go:func.*` symbol; `u32::MAX` = none). The inline tree of a function
//! is its `FUNCDATA_InlTree` (index 3): an array of 16-byte `inlinedCall`s, indexed by the value
//! of `PCDATA_InlTreeIndex` (index 2) at a pc (-1 = not inside an inlined call).

use super::GoExeError;

/// Go 1.18/1.19 magic.
pub(crate) const MAGIC_118: u32 = 0xffff_fff0;
/// Go 1.20+ magic (all of 1.21–1.27).
pub(crate) const MAGIC_120: u32 = 0xffff_fff1;
/// Longest function or file name we read.
const MAX_NAME: usize = 1 << 16;
/// Size of the fixed part of `_func`.
const FUNC_SIZE: usize = 44;
/// `_PCDATA_InlTreeIndex`: pc → index into the function's inline tree (-1 = not inlined).
pub(crate) const PCDATA_INL_TREE_INDEX: u32 = 2;
/// `_FUNCDATA_InlTree`: the function's array of `inlinedCall`.
pub(crate) const FUNCDATA_INL_TREE: u32 = 3;
/// Size of `runtime.inlinedCall` (`funcID u8, _ [3]u8, nameOff i32, parentPc i32,
/// startLine i32`; Go 1.21–1.27).
pub(crate) const INLINED_CALL_SIZE: u64 = 16;

/// A parsed `.gopclntab` header; the table bytes themselves stay in the binary's buffer.
#[derive(Clone, Debug)]
pub(crate) struct Pclntab {
    /// File offset of the table.
    pub file_off: usize,
    /// Length of the table in bytes.
    pub len: usize,
    /// Virtual address of the table (0 if unknown).
    pub vaddr: u64,
    /// Instruction size quantum (1 on x86, 4 on arm64).
    pub min_lc: u32,
    /// Pointer size (4 or 8).
    pub ptr_size: u8,
    /// Number of functions.
    pub nfunc: usize,
    /// Header `textStart`, 0 from Go 1.26 on (resolved by the caller into `text_start`).
    pub header_text_start: u64,
    /// Resolved start of the text the `entryoff`s are relative to.
    pub text_start: u64,
    pub funcname_off: usize,
    pub cu_off: usize,
    pub filetab_off: usize,
    pub pctab_off: usize,
    pub pcln_off: usize,
}

/// One function's fixed `_func` fields that `goexe` uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FuncData {
    /// Offset of the `_func` inside the table.
    pub off: usize,
    pub name_off: u32,
    pub pcsp: u32,
    pub pcfile: u32,
    pub pcln: u32,
    pub npcdata: u32,
    pub cu_offset: u32,
    pub nfuncdata: u8,
}

fn corrupt(why: impl Into<String>) -> GoExeError {
    GoExeError::Corrupt {
        what: ".gopclntab",
        why: why.into(),
    }
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn rd_word(b: &[u8], off: usize, ptr_size: u8) -> Option<u64> {
    match ptr_size {
        8 => {
            let s = b.get(off..off.checked_add(8)?)?;
            Some(u64::from_le_bytes(s.try_into().ok()?))
        }
        4 => rd_u32(b, off).map(u64::from),
        _ => None,
    }
}

/// Reads a Go runtime varint (`readvarint`): little-endian base-128, at most 5 bytes for a u32.
pub(crate) fn read_varint(p: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = *p.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes the pcvalue table `p` for a function starting at `entry` and returns the value in
/// effect at `target` (as the runtime's `pcvalue`). Values start at -1; each step is a zig-zag
/// value delta then a pc delta scaled by `min_lc`; a zero value delta after the first step ends
/// the table.
pub(crate) fn pcvalue(p: &[u8], entry: u64, target: u64, min_lc: u32) -> Option<i32> {
    let mut pos = 0usize;
    let mut pc = entry;
    let mut val: i32 = -1;
    loop {
        let first = pc == entry;
        let uvdelta = read_varint(p, &mut pos)?;
        if uvdelta == 0 && !first {
            return None;
        }
        let delta = ((uvdelta >> 1) as i32) ^ -((uvdelta & 1) as i32);
        val = val.wrapping_add(delta);
        let pcdelta = read_varint(p, &mut pos)?;
        pc = pc.checked_add(u64::from(pcdelta).checked_mul(u64::from(min_lc))?)?;
        if target < pc {
            return Some(val);
        }
    }
}

impl Pclntab {
    /// Parses and validates the header of the table at `tab` (file offset `file_off`).
    pub fn parse(tab: &[u8], file_off: usize, vaddr: u64) -> Result<Pclntab, GoExeError> {
        if tab.len() < 8 {
            return Err(corrupt("table shorter than its header"));
        }
        let magic = rd_u32(tab, 0).ok_or_else(|| corrupt("short"))?;
        if magic != MAGIC_120 && magic != MAGIC_118 {
            return Err(corrupt(format!(
                "magic {magic:#x} is not a Go 1.18+ table (older Go is unsupported)"
            )));
        }
        let (pad1, pad2, min_lc, ptr_size) = (tab[4], tab[5], tab[6], tab[7]);
        if pad1 != 0 || pad2 != 0 {
            return Err(corrupt("non-zero header padding"));
        }
        if !matches!(min_lc, 1 | 2 | 4) {
            return Err(corrupt(format!("bad instruction quantum {min_lc}")));
        }
        if !matches!(ptr_size, 4 | 8) {
            return Err(corrupt(format!("bad pointer size {ptr_size}")));
        }
        let ps = usize::from(ptr_size);
        let word = |i: usize| {
            rd_word(tab, 8 + i * ps, ptr_size).ok_or_else(|| corrupt("truncated header"))
        };
        let to_off = |v: u64, what: &str| -> Result<usize, GoExeError> {
            usize::try_from(v)
                .ok()
                .filter(|&o| o <= tab.len())
                .ok_or_else(|| corrupt(format!("{what} offset {v:#x} outside the table")))
        };
        let nfunc = word(0)?;
        let _nfiles = word(1)?;
        let header_text_start = word(2)?;
        let funcname_off = to_off(word(3)?, "funcname")?;
        let cu_off = to_off(word(4)?, "cu")?;
        let filetab_off = to_off(word(5)?, "filetab")?;
        let pctab_off = to_off(word(6)?, "pctab")?;
        let pcln_off = to_off(word(7)?, "pcln")?;
        let nfunc = usize::try_from(nfunc)
            .ok()
            .filter(|&n| {
                n.checked_add(1)
                    .and_then(|n| n.checked_mul(8))
                    .and_then(|b| b.checked_add(pcln_off))
                    .is_some_and(|end| end <= tab.len())
            })
            .ok_or_else(|| corrupt(format!("function count {nfunc} does not fit the table")))?;
        if nfunc == 0 {
            return Err(corrupt("no functions"));
        }
        let t = Pclntab {
            file_off,
            len: tab.len(),
            vaddr,
            min_lc: u32::from(min_lc),
            ptr_size,
            nfunc,
            header_text_start,
            text_start: header_text_start,
            funcname_off,
            cu_off,
            filetab_off,
            pctab_off,
            pcln_off,
        };
        // The functab must be sorted; check the ends (full check would cost O(n) on every open).
        let (first, last) = (t.entryoff(tab, 0), t.entryoff(tab, nfunc));
        match (first, last) {
            (Some(a), Some(b)) if a <= b => Ok(t),
            _ => Err(corrupt("functab is not sorted")),
        }
    }

    /// The table bytes inside the whole-file buffer.
    pub fn bytes<'d>(&self, data: &'d [u8]) -> &'d [u8] {
        data.get(self.file_off..self.file_off.saturating_add(self.len))
            .unwrap_or(&[])
    }

    /// `entryoff` of functab row `i` (`i == nfunc` is the end-of-text sentinel).
    pub fn entryoff(&self, tab: &[u8], i: usize) -> Option<u32> {
        rd_u32(tab, self.pcln_off.checked_add(i.checked_mul(8)?)?)
    }

    fn funcoff(&self, tab: &[u8], i: usize) -> Option<usize> {
        let o = rd_u32(
            tab,
            self.pcln_off
                .checked_add(i.checked_mul(8)?.checked_add(4)?)?,
        )?;
        self.pcln_off.checked_add(usize::try_from(o).ok()?)
    }

    /// Entry address of function `i`.
    pub fn entry(&self, tab: &[u8], i: usize) -> Option<u64> {
        self.text_start
            .checked_add(u64::from(self.entryoff(tab, i)?))
    }

    /// End address (next function's entry) of function `i`.
    pub fn end(&self, tab: &[u8], i: usize) -> Option<u64> {
        self.entry(tab, i.checked_add(1)?)
    }

    /// The `_func` record of function `i`.
    pub fn func_data(&self, tab: &[u8], i: usize) -> Option<FuncData> {
        if i >= self.nfunc {
            return None;
        }
        let off = self.funcoff(tab, i)?;
        let f = tab.get(off..off.checked_add(FUNC_SIZE)?)?;
        Some(FuncData {
            off,
            name_off: rd_u32(f, 4)?,
            pcsp: rd_u32(f, 16)?,
            pcfile: rd_u32(f, 20)?,
            pcln: rd_u32(f, 24)?,
            npcdata: rd_u32(f, 28)?,
            cu_offset: rd_u32(f, 32)?,
            nfuncdata: f[43],
        })
    }

    /// Name of function `i`.
    pub fn name<'t>(&self, tab: &'t [u8], i: usize) -> Option<&'t str> {
        let fd = self.func_data(tab, i)?;
        self.funcname(tab, fd.name_off)
    }

    /// The function name at `name_off` in the funcname table (`_func.nameOff`,
    /// `inlinedCall.nameOff`).
    pub fn funcname<'t>(&self, tab: &'t [u8], name_off: u32) -> Option<&'t str> {
        let start = self
            .funcname_off
            .checked_add(usize::try_from(name_off).ok()?)?;
        cstr(tab, start)
    }

    /// Value of PCDATA table `table` of function `i` at `pc` (as the runtime's `pcdatavalue1`,
    /// non-strict): -1 when the function has no such table or `pc` is past its end.
    pub fn pcdata_value(&self, tab: &[u8], i: usize, table: u32, pc: u64) -> i32 {
        let value = || -> Option<i32> {
            let fd = self.func_data(tab, i)?;
            if table >= fd.npcdata {
                return None;
            }
            let at = fd
                .off
                .checked_add(FUNC_SIZE)?
                .checked_add(usize::try_from(table).ok()?.checked_mul(4)?)?;
            let off = rd_u32(tab, at)?;
            if off == 0 {
                return None;
            }
            let p = tab
                .get(self.pctab_off..)?
                .get(usize::try_from(off).ok()?..)?;
            pcvalue(p, self.entry(tab, i)?, pc, self.min_lc)
        };
        value().unwrap_or(-1)
    }

    /// FUNCDATA `index` of function `i`: its offset from `moduledata.gofunc`, or `None` when the
    /// function has none.
    pub fn funcdata_off(&self, tab: &[u8], i: usize, index: u32) -> Option<u32> {
        let fd = self.func_data(tab, i)?;
        if index >= u32::from(fd.nfuncdata) {
            return None;
        }
        let slot = u64::from(fd.npcdata) + u64::from(index);
        let at = fd
            .off
            .checked_add(FUNC_SIZE)?
            .checked_add(usize::try_from(slot.checked_mul(4)?).ok()?)?;
        rd_u32(tab, at).filter(|&o| o != u32::MAX)
    }

    /// Index of the function containing `pc` (binary search of the functab).
    pub fn find(&self, tab: &[u8], pc: u64) -> Option<usize> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        if off >= self.entryoff(tab, self.nfunc)? {
            return None;
        }
        // Last i with entryoff(i) <= off.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entryoff(tab, mid)? <= off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let i = lo.checked_sub(1)?;
        Some(i)
    }

    /// Index of the function named `name` (linear scan).
    pub fn find_name(&self, tab: &[u8], name: &str) -> Option<usize> {
        (0..self.nfunc).find(|&i| self.name(tab, i) == Some(name))
    }

    /// The stack-pointer delta of function `i` at `pc`: how many bytes its frame has pushed
    /// below the entry SP there (`_func.pcsp`, the table the runtime's own unwinder uses).
    pub fn sp_delta(&self, tab: &[u8], i: usize, pc: u64) -> Option<i32> {
        let fd = self.func_data(tab, i)?;
        let entry = self.entry(tab, i)?;
        let p = tab
            .get(self.pctab_off..)?
            .get(usize::try_from(fd.pcsp).ok()?..)?;
        pcvalue(p, entry, pc, self.min_lc)
    }

    /// Source file and line of `pc` inside function `i`.
    pub fn line(&self, tab: &[u8], i: usize, pc: u64) -> Option<(String, u32)> {
        let fd = self.func_data(tab, i)?;
        let entry = self.entry(tab, i)?;
        let pctab = tab.get(self.pctab_off..)?;
        let table = |off: u32| pctab.get(usize::try_from(off).ok()?..);
        let fileno = pcvalue(table(fd.pcfile)?, entry, pc, self.min_lc)?;
        let line = pcvalue(table(fd.pcln)?, entry, pc, self.min_lc)?;
        let fileno = u32::try_from(fileno).ok()?;
        let line = u32::try_from(line).ok()?;
        let cu_idx = usize::try_from(fd.cu_offset.checked_add(fileno)?).ok()?;
        let file_off = rd_u32(tab, self.cu_off.checked_add(cu_idx.checked_mul(4)?)?)?;
        if file_off == u32::MAX {
            return None;
        }
        let name = cstr(
            tab,
            self.filetab_off
                .checked_add(usize::try_from(file_off).ok()?)?,
        )?;
        Some((name.to_string(), line))
    }
}

/// NUL-terminated UTF-8 string at `start` (at most `MAX_NAME` bytes).
fn cstr(tab: &[u8], start: usize) -> Option<&str> {
    let rest = tab.get(start..)?;
    let rest = &rest[..rest.len().min(MAX_NAME)];
    let n = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..n]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint() {
        let mut p = 0;
        assert_eq!(read_varint(&[0x05], &mut p), Some(5));
        let mut p = 0;
        assert_eq!(read_varint(&[0xac, 0x02], &mut p), Some(300));
        assert_eq!(p, 2);
        let mut p = 0;
        assert_eq!(read_varint(&[0x80, 0x80], &mut p), None);
        let mut p = 0;
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut p),
            None
        );
    }

    #[test]
    fn pcvalue_steps() {
        // value -1 → +11 (zigzag 22) = 10 for pc [0x1000, 0x1004);
        // +2 (zigzag 4) = 12 for [0x1004, 0x100c); end.
        let t = [22u8, 4, 4, 8, 0];
        assert_eq!(pcvalue(&t, 0x1000, 0x1000, 1), Some(10));
        assert_eq!(pcvalue(&t, 0x1000, 0x1003, 1), Some(10));
        assert_eq!(pcvalue(&t, 0x1000, 0x1004, 1), Some(12));
        assert_eq!(pcvalue(&t, 0x1000, 0x100b, 1), Some(12));
        assert_eq!(pcvalue(&t, 0x1000, 0x100c, 1), None);
        // Quantum 4 (arm64): pc deltas are in instructions.
        assert_eq!(pcvalue(&t, 0x1000, 0x100f, 4), Some(10));
        // Negative delta: zigzag 3 = -2.
        let t = [3u8, 2, 0];
        assert_eq!(pcvalue(&t, 0, 1, 1), Some(-3));
        // Truncated tables and empty input.
        assert_eq!(pcvalue(&[22], 0x1000, 0x1000, 1), None);
        assert_eq!(pcvalue(&[], 0, 0, 1), None);
        // Zero pc deltas end when the bytes do (the loop is bounded by the table length).
        assert_eq!(pcvalue(&[2, 1, 2, 0, 2, 0, 2, 0], 0, 100, 1), None);
    }

    #[test]
    fn header_rejects_garbage() {
        assert!(Pclntab::parse(&[], 0, 0).is_err());
        assert!(Pclntab::parse(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8], 0, 0).is_err());
        let mut h = vec![0u8; 72];
        h[..4].copy_from_slice(&MAGIC_120.to_le_bytes());
        h[6] = 1;
        h[7] = 8;
        h[8] = 0xff; // nfunc = 255: does not fit
        assert!(Pclntab::parse(&h, 0, 0).is_err());
        h[7] = 3;
        assert!(Pclntab::parse(&h, 0, 0).is_err());
    }
}
