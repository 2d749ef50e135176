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

/// Reads the raw [`Event`] layout (see `sfgi_common::Event`) from a record.
pub fn raw_event(b: &[u8]) -> Result<Event, DecodeError> {
    if b.len() < Event::SIZE {
        return Err(DecodeError::Short(b.len()));
    }
    Ok(Event {
        ts_ns: u64_at(b, 0),
        goid: u64_at(b, 8),
        other_goid: u64_at(b, 16),
        pc: u64_at(b, 24),
        addr: u64_at(b, 32),
        gopc: u64_at(b, 40),
        aux: u32_at(b, 48),
        stack_id: u32_at(b, 52) as i32,
        kind: u32_at(b, 56),
        tid: u32_at(b, 60),
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

    fn bytes(e: &Event) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [e.ts_ns, e.goid, e.other_goid, e.pc, e.addr, e.gopc] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        for x in [e.aux, e.stack_id as u32, e.kind, e.tid] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v
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
        let e = Event {
            kind: 99,
            ..Event::default()
        };
        assert_eq!(decode(&bytes(&e)), Err(DecodeError::UnknownKind(99)));
    }
}
