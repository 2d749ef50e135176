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
//!   timer still runs cannot be read from the channel: its `runtime.timer` (whose `arg` is the
//!   channel) is found in the per-P timer heaps instead ([`TimerHeapLayout`]).

use crate::dwarf;
use serde::Serialize;
use std::collections::HashMap;

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

/// Where the per-P timer heaps are and what the inventory reads of each timer in them, to tell
/// whether the timer behind an **asynchronous** timer channel still runs (amd64, Go 1.21–1.26;
/// Go 1.27 has no asynchronous timer channels). From the DWARF of builds with every supported
/// toolchain (`/work/shared/go-runtime/heap_by_version.txt`), checked against the DWARF of real
/// builds in `sfgi-trace/tests/inventory.rs`.
///
/// - Go 1.21/1.22: `p.timers` is a `[]*timer` heap; a timer stays in it after `Stop` with
///   `status` = `timerDeleted` (3) until cleaned, and leaves it when a one-shot timer fires.
/// - Go 1.23+: `p.timers.heap` is a `[]timerWhen{timer *timer; when int64}`; a stopped or fired
///   one-shot timer may stay in it as a zombie, with `timer.when` = 0.
///
/// In both, a timer's `arg` is an `any` holding the channel (`time.NewTimer`/`NewTicker` pass
/// the channel as `arg` to `sendTime`): its data word is the channel's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TimerHeapLayout {
    /// Offset in `runtime.p` of the heap slice (`p.timers`, or `p.timers.heap` in 1.23+).
    pub p_heap: u64,
    /// Bytes per heap entry (8: `*timer`; 16: `timerWhen`); the timer pointer is the first word.
    pub entry: u64,
    /// `timer.when` (i64).
    pub when: u64,
    /// `timer.period` (i64; > 0 for a ticker).
    pub period: u64,
    /// The data word of `timer.arg` (the channel, for a timer channel's timer).
    pub arg_data: u64,
    /// `timer.status` (u32), Go 1.21/1.22; `None` where `when` = 0 says stopped (1.23+).
    pub status: Option<u64>,
}

impl TimerHeapLayout {
    /// `timer.status` values of a timer that will still fire (Go 1.21/1.22: waiting, running,
    /// modifying, modified earlier/later, moving).
    pub const LIVE_STATUSES: [u32; 6] = [1, 2, 6, 7, 8, 9];

    /// The layout for Go 1.`minor`; `None` outside 1.21–1.26.
    pub fn for_minor(minor: u32) -> Option<TimerHeapLayout> {
        let old = |p_heap| TimerHeapLayout {
            p_heap,
            entry: 8,
            when: 8,
            period: 16,
            arg_data: 40,
            status: Some(64),
        };
        let new = |p_timers: u64, when: u64| TimerHeapLayout {
            p_heap: p_timers + 8,
            entry: 16,
            when,
            period: when + 8,
            arg_data: when + 32,
            status: None,
        };
        Some(match minor {
            21 => old(8840),
            22 => old(8872),
            23 | 24 => new(8840, 16),
            25 => new(9392, 24),
            26 => new(13672, 24),
            _ => return None,
        })
    }

    /// The layout for a binary of Go 1.`minor` with the (decompressed) DWARF `sections`: from
    /// DWARF when it has the structures, else the table; `None` outside 1.21–1.26.
    pub(crate) fn resolve(
        sections: &HashMap<&'static str, Vec<u8>>,
        minor: Option<u32>,
    ) -> Option<TimerHeapLayout> {
        let table = Self::for_minor(minor?)?;
        if !sections.contains_key(".debug_info") {
            return Some(table);
        }
        // A DWARF without the structures (or with a shape this code does not know) leaves the
        // table, which tests check against the DWARF of every supported version.
        Some(from_dwarf(sections, table.status.is_some()).unwrap_or(table))
    }

    /// Bytes of a `runtime.timer` to read (up to the end of the last field used).
    pub fn timer_read_len(&self) -> u64 {
        let end = (self.arg_data + 8).max(self.period + 8);
        match self.status {
            Some(s) => end.max(s + 4),
            None => end,
        }
    }
}

/// The timer heap layout from DWARF (`old`: Go 1.21/1.22's `[]*timer` heap with `status`).
fn from_dwarf(
    sections: &HashMap<&'static str, Vec<u8>>,
    old: bool,
) -> Result<TimerHeapLayout, String> {
    let layouts = dwarf::struct_layouts(
        sections,
        &[
            "runtime.p",
            "runtime.timer",
            "runtime.timers",
            "runtime.timerWhen",
        ],
    )?;
    let get = |ty: &str, member: &str| layouts.member(ty, member);
    let p_timers = get("runtime.p", "timers")?;
    let (p_heap, entry, status) = if old {
        (p_timers, 8, Some(get("runtime.timer", "status")?))
    } else {
        let entry = layouts.size("runtime.timerWhen")?;
        if get("runtime.timerWhen", "timer")? != 0 {
            return Err("runtime.timerWhen.timer is not its first field".into());
        }
        (p_timers + get("runtime.timers", "heap")?, entry, None)
    };
    Ok(TimerHeapLayout {
        p_heap,
        entry,
        when: get("runtime.timer", "when")?,
        period: get("runtime.timer", "period")?,
        arg_data: get("runtime.timer", "arg")? + 8,
        status,
    })
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

    #[test]
    fn timer_heaps_cover_the_versions_with_asynchronous_timer_channels() {
        for minor in 21..=26 {
            let t = TimerHeapLayout::for_minor(minor).unwrap();
            assert_eq!(t.status.is_some(), minor < 23);
            assert_eq!(t.entry, if minor < 23 { 8 } else { 16 });
            // `when` agrees with the synchronous channels' timer layout where both exist.
            if let Some(t0) = ChanLayout::for_minor(minor).and_then(|c| c.timer.map(|_| c)) {
                assert_eq!(t0.timer_when, t.when, "go1.{minor}");
                assert_eq!(t0.timer_period, t.period, "go1.{minor}");
            }
        }
        assert_eq!(TimerHeapLayout::for_minor(21).unwrap().timer_read_len(), 68);
        assert_eq!(TimerHeapLayout::for_minor(25).unwrap().timer_read_len(), 64);
        assert!(TimerHeapLayout::for_minor(27).is_none());
    }
}
