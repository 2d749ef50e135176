//! The goroutine-dump text parser (`sfgi_dump::text::parse_text`) on arbitrary text, and what it
//! read fed through the engine as `sfgi analyze` does (ingest, tick, verdicts): a dump that
//! parses must also be judged without a panic. The input is split in two at a `\x00` (if any)
//! to make a series of two dumps sharing one frame table.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfgi_dump::{Limits, NoStackMap, SharedTable};
use sfgi_engine::classify::Classifier;
use sfgi_engine::engine::{Engine, EngineConfig, InventoryPass};
use std::sync::OnceLock;

/// The built-in rules, compiled once (compiling them is most of a run's cost otherwise).
fn classifier() -> Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(Classifier::builtin).clone()
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        // Few: judging thousands of one-member groups is slow, not interesting.
        max_goroutines: 256,
        max_frames: 64,
        ..Limits::default()
    };
    let table = SharedTable::new();
    let mut engine = Engine::new(
        Box::new(table.clone()),
        classifier(),
        EngineConfig {
            from_dumps: true,
            ..EngineConfig::default()
        },
    );
    for (i, part) in data.split(|&b| b == 0).take(2).enumerate() {
        let text = String::from_utf8_lossy(part);
        let Ok(dump) = table.with(|t| sfgi_dump::text::parse_text(&text, t, &limits)) else {
            continue;
        };
        let now = (i as u64 + 1) * 600_000_000_000;
        let gs: Vec<_> = dump.goroutine_infos().collect();
        engine.begin_inventory();
        engine.ingest_goroutines(&gs, now as i64);
        engine.end_inventory(InventoryPass::default());
        engine.tick(now);
        for l in engine.verdicts(now, &NoStackMap, false) {
            let _ = (l.stack_trace.len(), l.blocked_at.len(), l.created_by.len());
        }
    }
});
