//! The ring-buffer event decoder (`sfgi::event::decode`) on arbitrary records, and the decoded
//! events folded into the goroutine lifetime table (`sfgi::lifetime::Lifetimes`), the first
//! consumer of what the kernel side wrote.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfgi::event::{decode, raw_event};
use sfgi::lifetime::Lifetimes;
use sfgi_common::Event;

fuzz_target!(|data: &[u8]| {
    // The whole input as one record (any length), then as a stream of fixed-size records.
    let _ = raw_event(data);
    let _ = decode(data);
    let mut life = Lifetimes::new();
    for rec in data.chunks(Event::SIZE) {
        if let Ok(ev) = decode(rec) {
            life.apply(&ev);
        }
    }
    let _ = life.len();
    for (g, p) in life.parked() {
        let _ = (g.goid, life.gc_cycles_blocked(p));
    }
});
