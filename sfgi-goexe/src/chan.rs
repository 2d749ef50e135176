//! What the inventory reads of a channel a goroutine waits on (`runtime.hchan`, amd64) and of
//! the timer behind a timer channel, per Go version. Measured from the DWARF of builds with every
//! supported toolchain (`/work/shared/go-runtime/heap_by_version.txt`; checked against the DWARF
//! of real builds in `tests/tests/programs.rs`).
//!
//! Two kinds of timer channel exist:
//! - **synchronous** (Go 1.23+, in modules whose `go.mod` says 1.23 or later): `hchan.timer`
//!   points at the `runtime.timer`, whose `when` is 0 once stopped;
//! - **asynchronous** (older Go, or `asynctimerchan=1`, e.g. `go 1.21` in `go.mod`): an ordinary
//!   `chan time.Time` of capacity 1 that a runtime timer sends to. It is recognised by its element
//!   type's hash (the compiler's hash of the type's name, fixed per Go version); whether its
//!   timer still runs cannot be read from the channel.

use serde::Serialize;

/// Byte offsets of the `runtime.hchan` and `runtime.timer` fields the inventory reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ChanLayout {
    /// `hchan.dataqsiz` (u64: the buffer's capacity).
    pub dataqsiz: u64,
    /// `hchan.elemsize` (u16).
    pub elemsize: u64,
    /// `hchan.closed` (u32).
    pub closed: u64,
    /// `hchan.timer` (`*timer`, Go 1.23+).
    pub timer: Option<u64>,
    /// `hchan.elemtype` (`*abi.Type`).
    pub elemtype: u64,
    /// Bytes of an `hchan` to read (up to the end of `elemtype`).
    pub read_len: u64,
    /// `timer.when` (i64; 0 when stopped), Go 1.23+.
    pub timer_when: u64,
    /// `timer.period` (i64; > 0 for a ticker), Go 1.23+.
    pub timer_period: u64,
    /// The `abi.Type.Hash` of `time.Time` in this version (the element type of every timer
    /// channel).
    pub time_hash: u32,
}

/// `abi.Type` offsets (the same in every supported version): `Size_`, `PtrBytes`, `Hash`,
/// `Kind_`.
pub const ABI_TYPE_SIZE: u64 = 0;
/// `abi.Type.PtrBytes`.
pub const ABI_TYPE_PTRBYTES: u64 = 8;
/// `abi.Type.Hash` (u32).
pub const ABI_TYPE_HASH: u64 = 16;
/// Bytes of an `abi.Type` to read for [`ChanLayout::is_time_time`].
pub const ABI_TYPE_READ: u64 = 24;

impl ChanLayout {
    /// The layout for Go 1.`minor`, `None` outside 1.21–1.27.
    pub fn for_minor(minor: u32) -> Option<ChanLayout> {
        let time_hash = match minor {
            21..=23 => 0x8cac_3de9,
            24 => 0x7293_4877,
            25..=27 => 0x7353_c2e9,
            _ => return None,
        };
        let (timer, elemtype, timer_when, timer_period) = match minor {
            21 | 22 => (None, 32, 0, 0),
            23 | 24 => (Some(32), 40, 16, 24),
            _ => (Some(32), 40, 24, 32),
        };
        Some(ChanLayout {
            dataqsiz: 8,
            elemsize: 24,
            closed: 28,
            timer,
            elemtype,
            read_len: elemtype + 8,
            timer_when,
            timer_period,
            time_hash,
        })
    }

    /// Whether the first [`ABI_TYPE_READ`] bytes of an `abi.Type` describe `time.Time` (24
    /// bytes, pointers in all of them, this version's hash of its name).
    pub fn is_time_time(&self, ty: &[u8]) -> bool {
        let word = |o: u64| {
            ty.get(o as usize..o as usize + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let hash = ty
            .get(ABI_TYPE_HASH as usize..ABI_TYPE_HASH as usize + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        word(ABI_TYPE_SIZE) == Some(24)
            && word(ABI_TYPE_PTRBYTES) == Some(24)
            && hash == Some(self.time_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cover_every_supported_version() {
        for minor in 21..=27 {
            let l = ChanLayout::for_minor(minor).unwrap();
            assert_eq!(l.timer.is_some(), minor >= 23);
            assert!(l.read_len >= l.elemtype + 8);
        }
        assert!(ChanLayout::for_minor(20).is_none());
        assert!(ChanLayout::for_minor(28).is_none());
        let l = ChanLayout::for_minor(27).unwrap();
        let mut ty = [0u8; 24];
        ty[0] = 24;
        ty[8] = 24;
        ty[16..20].copy_from_slice(&0x7353_c2e9u32.to_le_bytes());
        assert!(l.is_time_time(&ty));
        ty[8] = 8;
        assert!(!l.is_time_time(&ty));
        assert!(!l.is_time_time(&ty[..10]));
    }
}
