//! Runtime events as userspace sees them, decoded from the ring buffer's raw records.
use sfgi_common::{Event, EventKind};

/// One decoded runtime event. Timestamps are `CLOCK_MONOTONIC` nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A goroutine was created.
    Spawn {
        /// When.
        ts_ns: u64,
        /// The new goroutine.
        goid: u64,
        /// The goroutine whose `go` statement created it.
        parent: u64,
        /// pc of the `go` statement (`g.gopc`).
        gopc: u64,
        /// The goroutine's start function (`g.startpc`).
        startpc: u64,
        /// Creation stack (`STACKS` id), negative when none.
        stack_id: i32,
    },
    /// A goroutine parked.
    Park {
        /// When.
        ts_ns: u64,
        /// Which goroutine.
        goid: u64,
        /// Raw `waitReason` of this Go version.
        reason: u32,
        /// Return address into `gopark`'s caller.
        caller_pc: u64,
        /// The object parked on (`gopark`'s lock argument; a channel's lock for chan ops).
        object: u64,
        /// Park stack (`STACKS` id), negative when none.
        stack_id: i32,
        /// pc of the `go` statement that created it.
        gopc: u64,
        /// The goroutine that created it.
        parent: u64,
    },
    /// A parked goroutine was made runnable.
    Ready {
        /// When.
        ts_ns: u64,
        /// The goroutine woken.
        goid: u64,
        /// The goroutine that woke it (0 when the runtime did).
        waker: u64,
    },
    /// A goroutine SFGI saw park started running without `ready` (netpoll and similar).
    Run {
        /// When.
        ts_ns: u64,
        /// Which goroutine.
        goid: u64,
    },
    /// A goroutine finished.
    Exit {
        /// When.
        ts_ns: u64,
        /// Which goroutine.
        goid: u64,
    },
    /// A GC cycle may have started (`gcStart` was called).
    GcStart {
        /// When.
        ts_ns: u64,
    },
    /// A GC cycle completed its mark phase.
    GcEnd {
        /// When.
        ts_ns: u64,
    },
}

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is shorter than an [`Event`].
    #[error("event record of {0} bytes, expected {expected}", expected = Event::SIZE)]
    Short(usize),
    /// The kind field is not one SFGI knows.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(a)
}

// Byte offsets of the fields of a ring-buffer record: the wire format the eBPF side writes
// (`sfgi_common::Event`, `#[repr(C)]`, native endian).
const OFF_TS_NS: usize = 0;
const OFF_GOID: usize = 8;
const OFF_OTHER_GOID: usize = 16;
const OFF_PC: usize = 24;
const OFF_ADDR: usize = 32;
const OFF_GOPC: usize = 40;
const OFF_AUX: usize = 48;
const OFF_STACK_ID: usize = 52;
const OFF_KIND: usize = 56;
const OFF_TID: usize = 60;
/// Size of a record the decoder reads: the last field's offset plus its 4 bytes.
const RECORD_SIZE: usize = OFF_TID + 4;

// The offsets above are the struct's real layout: a change to `sfgi_common::Event` that moves,
// resizes or pads a field breaks the build here instead of decoding garbage at run time.
const _: () = assert!(core::mem::offset_of!(Event, ts_ns) == OFF_TS_NS);
const _: () = assert!(core::mem::offset_of!(Event, goid) == OFF_GOID);
const _: () = assert!(core::mem::offset_of!(Event, other_goid) == OFF_OTHER_GOID);
const _: () = assert!(core::mem::offset_of!(Event, pc) == OFF_PC);
const _: () = assert!(core::mem::offset_of!(Event, addr) == OFF_ADDR);
const _: () = assert!(core::mem::offset_of!(Event, gopc) == OFF_GOPC);
const _: () = assert!(core::mem::offset_of!(Event, aux) == OFF_AUX);
const _: () = assert!(core::mem::offset_of!(Event, stack_id) == OFF_STACK_ID);
const _: () = assert!(core::mem::offset_of!(Event, kind) == OFF_KIND);
const _: () = assert!(core::mem::offset_of!(Event, tid) == OFF_TID);
// No trailing field or padding the decoder does not know of, and `Event::SIZE` (the length
// check below) is the struct's size.
const _: () = assert!(core::mem::size_of::<Event>() == RECORD_SIZE);
const _: () = assert!(Event::SIZE == RECORD_SIZE);

/// Reads the raw [`Event`] layout (see `sfgi_common::Event`) from a record.
pub fn raw_event(b: &[u8]) -> Result<Event, DecodeError> {
    if b.len() < Event::SIZE {
        return Err(DecodeError::Short(b.len()));
    }
    Ok(Event {
        ts_ns: u64_at(b, OFF_TS_NS),
        goid: u64_at(b, OFF_GOID),
        other_goid: u64_at(b, OFF_OTHER_GOID),
        pc: u64_at(b, OFF_PC),
        addr: u64_at(b, OFF_ADDR),
        gopc: u64_at(b, OFF_GOPC),
        aux: u32_at(b, OFF_AUX),
        stack_id: u32_at(b, OFF_STACK_ID) as i32,
        kind: u32_at(b, OFF_KIND),
        tid: u32_at(b, OFF_TID),
    })
}

impl TryFrom<&Event> for RuntimeEvent {
    type Error = DecodeError;

    fn try_from(e: &Event) -> Result<Self, DecodeError> {
        let kind = EventKind::from_u32(e.kind).ok_or(DecodeError::UnknownKind(e.kind))?;
        let (ts_ns, goid) = (e.ts_ns, e.goid);
        Ok(match kind {
            EventKind::Spawn => RuntimeEvent::Spawn {
                ts_ns,
                goid,
                parent: e.other_goid,
                gopc: e.gopc,
                startpc: e.addr,
                stack_id: e.stack_id,
            },
            EventKind::Park => RuntimeEvent::Park {
                ts_ns,
                goid,
                reason: e.aux,
                caller_pc: e.pc,
                object: e.addr,
                stack_id: e.stack_id,
                gopc: e.gopc,
                parent: e.other_goid,
            },
            EventKind::Ready => RuntimeEvent::Ready {
                ts_ns,
                goid,
                waker: e.other_goid,
            },
            EventKind::Run => RuntimeEvent::Run { ts_ns, goid },
            EventKind::Exit => RuntimeEvent::Exit { ts_ns, goid },
            EventKind::GcStart => RuntimeEvent::GcStart { ts_ns },
            EventKind::GcEnd => RuntimeEvent::GcEnd { ts_ns },
        })
    }
}

/// Decodes one ring-buffer record.
pub fn decode(b: &[u8]) -> Result<RuntimeEvent, DecodeError> {
    RuntimeEvent::try_from(&raw_event(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of `e` exactly as they sit in memory: what the eBPF side copies into the ring
    /// buffer (it writes this same `#[repr(C)]` struct).
    fn bytes(e: &Event) -> Vec<u8> {
        // SAFETY: `Event` is `#[repr(C)]` plain data of only integer fields with no padding (the
        // size asserts next to the decoder check this), so all `Event::SIZE` bytes behind a
        // valid reference are initialized and readable as `u8` for the reference's lifetime;
        // they are copied out before it ends.
        unsafe { std::slice::from_raw_parts((e as *const Event).cast::<u8>(), Event::SIZE) }
            .to_vec()
    }

    /// An event whose every field holds a distinct value, with bytes that differ within each
    /// field, so a swapped, shifted or truncated field cannot decode to the right value.
    fn distinct(kind: EventKind) -> Event {
        Event {
            ts_ns: 0x0102_0304_0506_0708,
            goid: 0x1112_1314_1516_1718,
            other_goid: 0x2122_2324_2526_2728,
            pc: 0x3132_3334_3536_3738,
            addr: 0x4142_4344_4546_4748,
            gopc: 0x5152_5354_5556_5758,
            aux: 0x6162_6364,
            stack_id: -0x7172_7374,
            kind: kind as u32,
            tid: 0x8182_8384,
        }
    }

    #[test]
    fn raw_event_reads_every_field_of_the_real_layout() {
        let e = distinct(EventKind::Park);
        let b = bytes(&e);
        assert_eq!(b.len(), Event::SIZE);
        assert_eq!(raw_event(&b), Ok(e));
        // A longer record (the ring buffer rounds up) decodes the same.
        let mut longer = b.clone();
        longer.extend_from_slice(&[0xee; 8]);
        assert_eq!(raw_event(&longer), Ok(e));
    }

    #[test]
    fn decode_maps_every_field_of_every_kind() {
        let (ts_ns, goid) = (0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        let d = |kind| decode(&bytes(&distinct(kind)));
        assert_eq!(
            d(EventKind::Spawn),
            Ok(RuntimeEvent::Spawn {
                ts_ns,
                goid,
                parent: 0x2122_2324_2526_2728,
                gopc: 0x5152_5354_5556_5758,
                startpc: 0x4142_4344_4546_4748,
                stack_id: -0x7172_7374,
            })
        );
        assert_eq!(
            d(EventKind::Park),
            Ok(RuntimeEvent::Park {
                ts_ns,
                goid,
                reason: 0x6162_6364,
                caller_pc: 0x3132_3334_3536_3738,
                object: 0x4142_4344_4546_4748,
                stack_id: -0x7172_7374,
                gopc: 0x5152_5354_5556_5758,
                parent: 0x2122_2324_2526_2728,
            })
        );
        assert_eq!(
            d(EventKind::Ready),
            Ok(RuntimeEvent::Ready {
                ts_ns,
                goid,
                waker: 0x2122_2324_2526_2728,
            })
        );
        assert_eq!(d(EventKind::Run), Ok(RuntimeEvent::Run { ts_ns, goid }));
        assert_eq!(d(EventKind::Exit), Ok(RuntimeEvent::Exit { ts_ns, goid }));
        assert_eq!(d(EventKind::GcStart), Ok(RuntimeEvent::GcStart { ts_ns }));
        assert_eq!(d(EventKind::GcEnd), Ok(RuntimeEvent::GcEnd { ts_ns }));
    }

    #[test]
    fn decodes_a_park_record_field_by_field() {
        let e = Event {
            ts_ns: 5,
            goid: 42,
            other_goid: 0,
            pc: 0x401000,
            addr: 0xc000010000,
            gopc: 0x402000,
            aux: 14,
            stack_id: -14,
            kind: EventKind::Park as u32,
            tid: 7,
        };
        let b = bytes(&e);
        assert_eq!(b.len(), Event::SIZE);
        assert_eq!(
            decode(&b),
            Ok(RuntimeEvent::Park {
                ts_ns: 5,
                goid: 42,
                reason: 14,
                caller_pc: 0x401000,
                object: 0xc000010000,
                stack_id: -14,
                gopc: 0x402000,
                parent: 0,
            })
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[0u8; 10]), Err(DecodeError::Short(10)));
        let full = bytes(&distinct(EventKind::Park));
        assert_eq!(
            decode(&full[..Event::SIZE - 1]),
            Err(DecodeError::Short(Event::SIZE - 1))
        );
        let e = Event {
            kind: 99,
            ..Event::default()
        };
        assert_eq!(decode(&bytes(&e)), Err(DecodeError::UnknownKind(99)));
        let e = Event {
            kind: 0,
            ..distinct(EventKind::Park)
        };
        assert_eq!(decode(&bytes(&e)), Err(DecodeError::UnknownKind(0)));
    }
}
