//! Ages are never too old: `tests/programs/ages` parks a goroutine every 200 ms and prints when,
//! by its own clock, while it churns through short-lived goroutines (their `g`s reused from the
//! free list) under GC pressure (GOGC=10), so `g.waitsince` is stamped by GCs all the time —
//! with an earlier GC's time. In each mode of the overhead budget, every age SFGI reports
//! (`first_seen` in `/sfgi/leaks?view=goroutines`) is within a second (the re-read interval)
//! after the park, never before it. Needs root.
use sfgi_tests::scenarios::WatchProc;
use sfgi_tests::*;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much later than the park SFGI may first see it: the re-read interval (1 s) plus one
/// read and one turn of the session loop on a loaded CI machine.
const LATE_MAX: Duration = Duration::from_millis(1600);
/// How much earlier: the program prints its time just before it blocks (clock reads only).
const EARLY_MAX: Duration = Duration::from_millis(50);

fn unix_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn check_mode(mode: &str, flags: &[&str], want_stderr: &str) {
    let bin = build_program("ages", NEWEST, true);
    let mut target = Target::start(&bin, &[]);
    let mut args: Vec<String> = vec!["--threshold".into(), "2s".into()];
    args.extend(flags.iter().map(|s| s.to_string()));
    let w = WatchProc::start(target.pid(), &args).unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(Duration::from_secs(8));
    let v = w
        .get_json("/sfgi/leaks?view=goroutines&limit=1000")
        .unwrap_or_else(|e| panic!("{mode}: {e:#}"));
    let parked: HashMap<u64, i128> = target
        .stdout()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("parked goid=")?;
            let (g, at) = rest.split_once(" at=")?;
            Some((g.parse().ok()?, at.parse().ok()?))
        })
        .collect();
    let stderr = w.stderr();
    assert!(
        stderr.contains(want_stderr),
        "{mode}: the budget did not reach this mode ({want_stderr:?} not in stderr):\n{stderr}"
    );
    let members = v["goroutines"].as_array().cloned().unwrap_or_default();
    let mut checked = 0;
    let mut bad = Vec::new();
    for m in &members {
        let Some(&at) = m["id"].as_u64().and_then(|id| parked.get(&id)) else {
            continue;
        };
        let first_seen = m["first_seen"].as_str().unwrap_or_default();
        let seen = humantime::parse_rfc3339_weak(first_seen)
            .map(unix_ns)
            .unwrap_or_else(|e| panic!("{mode}: first_seen {first_seen:?}: {e}"));
        checked += 1;
        let late = seen - at;
        if late < -(EARLY_MAX.as_nanos() as i128) || late > LATE_MAX.as_nanos() as i128 {
            bad.push(format!(
                "goid {}: parked at {at}, first seen {first_seen} ({:+.3} s)",
                m["id"],
                late as f64 / 1e9
            ));
        }
    }
    eprintln!(
        "{mode}: {checked} parked goroutines checked of {} in leak groups",
        members.len()
    );
    assert!(
        checked >= 10,
        "{mode}: only {checked} of the program's parked goroutines were in leak groups: {v}"
    );
    assert!(
        bad.is_empty(),
        "{mode}: ages older than the park or later than {LATE_MAX:?}:\n{}",
        bad.join("\n")
    );
    target.stop();
}

#[test]
fn ages_are_never_older_than_the_park_in_every_mode() {
    require_root();
    check_mode("tracing", &["--max-event-rate", "0"], "watching");
    // The target makes ~19k probe hits/s, ~2k of them parks: at 4000 only the park (and GC)
    // probes stay.
    check_mode(
        "parks-only",
        &["--max-event-rate", "4000"],
        "detached run, spawn, exit",
    );
    check_mode(
        "inventory-only",
        &["--max-event-rate", "1"],
        "detached park, run, spawn, exit",
    );
}
