//! pprof's protobuf goroutine profiles (`sfgi_dump::proto::parse_profile`, prost with
//! hand-written messages) on arbitrary bytes, and the whole input reader (`sfgi_dump::parse`:
//! gzip, HTML, binary and text detection) on the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfgi_dump::{FrameTable, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bytes: 1 << 20,
        max_goroutines: 4096,
        max_frames: 64,
        ..Limits::default()
    };
    let mut table = FrameTable::new();
    if let Ok(d) = sfgi_dump::proto::parse_profile(data, &mut table, &limits) {
        let _ = d.goroutine_infos().count();
    }
    let _ = sfgi_dump::parse(data, &mut table, &limits);
});
