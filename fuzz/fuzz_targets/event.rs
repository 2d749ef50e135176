//! The ring-buffer event decoder (`sfgi_engine::event::decode`) on arbitrary records, and the decoded
//! events folded into the goroutine lifetime table (`sfgi_engine::lifetime::Lifetimes`), the first
//! consumer of what the kernel side wrote: events about goroutines an inventory seeded (the
//! compact tier) and ones it did not, then a second inventory that sees only some of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfgi_common::Event;
use sfgi_engine::event::{decode, raw_event};
use sfgi_engine::lifetime::{Creation, Lifetimes, Parked};

fuzz_target!(|data: &[u8]| {
    // The whole input as one record (any length), then as a stream of fixed-size records.
    let _ = raw_event(data);
    let _ = decode(data);
    let mut life = Lifetimes::new();
    life.begin_inventory();
    for (i, c) in data.chunks(8).take(64).enumerate() {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        // Small goids, so events in the same input hit them.
        let goid = u64::from_le_bytes(b) % 4096;
        let park = Parked {
            reason: u32::from(b[0]),
            caller_pc: u64::from(b[1]),
            object: u64::from(b[2]),
            stack_id: -1,
            since_ns: i as u64,
            gc_at_park: 0,
            group: u32::from(b[3]),
        };
        let creation = Creation {
            parent: u64::from(b[4]),
            gopc: 0,
            startpc: 0,
            stack_id: -1,
            at_ns: 0,
        };
        life.seed_parked(goid, park, creation, b[5] & 1 == 1, u64::from(b[6]) << 10);
    }
    let _ = life.end_inventory();
    for rec in data.chunks(Event::SIZE) {
        if let Ok(ev) = decode(rec) {
            life.apply(&ev);
        }
    }
    let _ = life.len();
    let mut seen = Vec::new();
    for g in life.parked() {
        let _ = life.gc_cycles_blocked(&g.park);
        seen.push(g.goid);
    }
    // A second inventory sees every other parked goroutine: the rest are gone.
    life.begin_inventory();
    for goid in seen.iter().step_by(2) {
        assert_eq!(life.observe(*goid, 8192, Some(false)), Some(true));
    }
    let _ = life.end_inventory();
    assert_eq!(life.parked().count(), seen.len().div_ceil(2));
});
