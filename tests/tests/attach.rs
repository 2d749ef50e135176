//! `sfgi attach` against `tests/programs/leaks`: every leak pattern, with the oldest and newest
//! supported Go, normal and stripped binaries. Needs root.
//!
//! Each pattern's target is started right before the attach (`-delay 300ms` leaves SFGI time to
//! load its probes), so SFGI sees the 40 goroutines park during its 2 s window. Patterns of one
//! (version, strip) combination run in parallel threads; `attach_slot` caps concurrent attaches
//! process-wide (`SFGI_TEST_MAX_ATTACH`, default 4).
use serde_json::Value;
use sfgi_tests::*;
use std::process::Command;
use std::time::Duration;

/// Leaked goroutines per pattern (the program's `-count` default).
const LEAKED: u64 = 40;

#[test]
fn leaks_oldest_go() {
    check_all_patterns(OLDEST, false);
}

#[test]
fn leaks_oldest_go_stripped() {
    check_all_patterns(OLDEST, true);
}

#[test]
fn leaks_newest_go() {
    check_all_patterns(NEWEST, false);
}

#[test]
fn leaks_newest_go_stripped() {
    check_all_patterns(NEWEST, true);
}

fn check_all_patterns(version: &str, stripped: bool) {
    require_root();
    let bin = build_program("leaks", version, stripped);
    let _ = sfgi_bin(); // resolve (or build) once, before the threads race for it
    let failed: Vec<&str> = std::thread::scope(|s| {
        let handles: Vec<_> = PATTERNS
            .iter()
            .map(|p| {
                let bin = &bin;
                (
                    p.name,
                    s.spawn(move || check_pattern(bin, version, stripped, p)),
                )
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| h.join().is_err().then_some(name))
            .collect()
    });
    assert!(
        failed.is_empty(),
        "Go {version}{}: patterns {failed:?} failed (their panic messages, with the full JSON, are above)",
        if stripped { " stripped" } else { "" }
    );
}

fn check_pattern(bin: &std::path::Path, version: &str, stripped: bool, p: &Pattern) {
    let _slot = attach_slot();
    let mut target = Target::start(bin, &[p.name, "-delay", "300ms"]);
    let pid = target.pid();
    let report = attach_json(pid, "2s", &[]);
    let what = format!(
        "pattern {} with Go {version}{} (pid {pid})",
        p.name,
        if stripped { " stripped" } else { "" }
    );
    macro_rules! fail {
        ($($arg:tt)*) => {
            panic!(
                "{what}: {}\nfull report:\n{}\ntarget stderr:\n{}",
                format!($($arg)*),
                pretty(&report),
                target.stderr()
            )
        };
    }

    // The target description.
    let t = &report["target"];
    if t["pid"].as_u64() != Some(pid.into()) {
        fail!("target.pid is {}, want {pid}", t["pid"]);
    }
    if t["go_version"].as_str() != Some(&format!("go{version}")) {
        fail!(
            "target.go_version is {}, want \"go{version}\"",
            t["go_version"]
        );
    }
    if t["stripped"].as_bool() != Some(stripped) {
        fail!("target.stripped is {}, want {stripped}", t["stripped"]);
    }
    if report["stats"]["events"].as_u64().unwrap_or(0) == 0 {
        fail!("stats.events is missing or 0");
    }
    if let Some(d) = report["stats"]["dropped"].as_u64().filter(|&d| d > 0) {
        eprintln!("note: {what}: {d} events dropped");
    }

    // The leak group.
    let reason = p.wait_reason_for(version);
    let Some(g) = find_group(&report, reason, p.blocks_in, p.spawned_by) else {
        let seen: Vec<String> = groups(&report)
            .iter()
            .map(|g| {
                format!(
                    "  [{}] x{} blocked_at={} created_by={}",
                    g["wait_reason"], g["count"], g["blocked_at"], g["created_by"]
                )
            })
            .collect();
        fail!(
            "no group with wait_reason {reason:?}, blocked_at {} and created_by {}; groups:\n{}",
            p.blocks_in,
            p.spawned_by,
            seen.join("\n")
        );
    };
    let count = g["count"].as_u64().unwrap_or(0);
    if !(5..=LEAKED).contains(&count) {
        fail!("group count is {}, want 5..={LEAKED}", g["count"]);
    }
    let ids: Vec<u64> = g["goroutine_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() as u64 > count {
        fail!("goroutine_ids has {} ids for count {count}", ids.len());
    }
    let mut uniq = ids.clone();
    uniq.sort_unstable();
    uniq.dedup();
    if uniq.len() != ids.len() {
        fail!("goroutine_ids has duplicates");
    }

    // file:line of both sites, also for stripped binaries (they come from .gopclntab).
    let (block_line, spawn_line) = p.source_lines();
    let blocked_at = g["blocked_at"].as_str().unwrap_or("");
    let created_by = g["created_by"].as_str().unwrap_or("");
    if !names_line(blocked_at, "leaks/main.go", block_line) {
        fail!("blocked_at {blocked_at:?} does not end at leaks/main.go:{block_line}");
    }
    if !names_line(created_by, "leaks/main.go", spawn_line) {
        fail!("created_by {created_by:?} does not end at leaks/main.go:{spawn_line}");
    }
    for (field, func) in [
        ("stack_trace", p.blocks_in),
        ("creation_stack", p.spawned_by),
    ] {
        if !g[field].as_str().is_some_and(|s| s.contains(func)) {
            fail!("{field} does not mention {func}");
        }
    }
    match g["duration_seconds"].as_f64() {
        Some(d) if d > 0.0 && d < 60.0 => {}
        _ => fail!(
            "duration_seconds is {}, want > 0 (and < 60)",
            g["duration_seconds"]
        ),
    }

    // The target is unharmed after SFGI detached.
    if !target.alive() {
        fail!(
            "target died during or after the attach: {:?}",
            target.exit_status()
        );
    }
    let before = target.heartbeat();
    std::thread::sleep(Duration::from_millis(300));
    let after = target.heartbeat();
    if after <= before {
        fail!("heartbeat stalled after detach ({before} -> {after})");
    }
    let out = target.stop();
    let status = target.exit_status();
    let last = out
        .lines()
        .filter_map(|l| l.strip_prefix("heartbeat=")?.strip_suffix(" ok"))
        .next_back()
        .and_then(|n| n.parse::<u64>().ok());
    let clean_exit = status.is_some_and(|s| s.success()) && last.is_some_and(|n| n >= after);
    if !clean_exit {
        fail!(
            "SIGTERM after detach: status {status:?}, stdout {out:?} (want \"heartbeat=N ok\", N >= {after}, exit 0)"
        );
    }
    if !target.stderr().is_empty() {
        fail!("target wrote to stderr");
    }
}

/// Whether `site` ("main.f at /abs/tests/programs/leaks/main.go:42") names `file:line` exactly.
fn names_line(site: &str, file: &str, line: u32) -> bool {
    let needle = format!("{file}:{line}");
    site.match_indices(&needle).any(|(i, _)| {
        !site[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// A failed attach must be a clean user error: exit code 1 (no signal), a single
/// `sfgi: error: ` line on stderr saying `says` (SFGI's own words), no Rust panic, no partial
/// report on stdout.
fn assert_clean_failure(run: &SfgiRun, what: &str, says: &str) {
    let msg = format!(
        "sfgi {} ({what}): status {}\nstderr:\n{}\nstdout:\n{}",
        run.args.join(" "),
        run.status,
        run.stderr,
        run.stdout
    );
    assert!(!run.status.success(), "expected a failure: {msg}");
    assert!(run.status.code().is_some(), "killed by a signal: {msg}");
    assert_eq!(run.status.code(), Some(1), "want exit code 1: {msg}");
    assert!(!run.stderr.contains("panicked"), "panicked: {msg}");
    assert_eq!(
        run.stderr.trim().lines().count(),
        1,
        "want a one-line error: {msg}"
    );
    let line = run.stderr.trim();
    assert!(
        line.starts_with("sfgi: error: ") && line.contains(says),
        "want `sfgi: error: ...{says}...`: {msg}"
    );
    assert!(run.stdout.trim().is_empty(), "printed a report: {msg}");
}

#[test]
fn attach_to_missing_pid_fails_cleanly() {
    require_root();
    let pid = unused_pid().to_string();
    let run = run_sfgi(
        &[
            "attach",
            "--pid",
            &pid,
            "--duration",
            "1s",
            "--format",
            "json",
        ],
        Duration::from_secs(60),
    );
    assert_clean_failure(
        &run,
        "no such process",
        &format!("no process with PID {pid}"),
    );
}

#[test]
fn attach_to_non_go_process_fails_cleanly() {
    require_root();
    let mut sleep = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("starting sleep 30");
    let pid = sleep.id().to_string();
    let run = run_sfgi(
        &[
            "attach",
            "--pid",
            &pid,
            "--duration",
            "1s",
            "--format",
            "json",
        ],
        Duration::from_secs(60),
    );
    let still_running = matches!(sleep.try_wait(), Ok(None));
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert_clean_failure(&run, "sleep 30 is not a Go program", "is not a Go program");
    assert!(
        run.stderr.contains(&format!("PID {pid} ")),
        "the error does not name PID {pid}: {}",
        run.stderr
    );
    assert!(still_running, "sfgi killed or disturbed `sleep 30`");
}

/// Waits judged from what the inventory reads of their channels (`tests/programs/parked`, its
/// goroutines parked before SFGI attaches): a janitor (select on a running 1 h ticker and a
/// stop channel) is a resident periodic loop whose explanation names its real cases; a wait on
/// a ticker stopped before it, alone or in a janitor's select next to a stop channel never
/// closed, is a `timer-stopped` leak — with synchronous timer channels (Go 1.27: the timer is
/// read from `hchan.timer`) and asynchronous ones (Go 1.21: the timer is looked for in the per-P
/// timer heaps, through `runtime.allp` found in the stripped binary's code); `<-ctx.Done()` is
/// `context-never-done`.
#[test]
fn channel_waits_are_judged_from_memory() {
    require_root();
    for version in [NEWEST, OLDEST] {
        let bin = build_program("parked", version, true);
        let mut target = Target::start(&bin, &["-n", "3"]);
        let v = attach_json(target.pid(), "4s", &["--threshold", "2s"]);
        let what = format!("Go {version} stripped");
        let group = |blocked: &str, spawned: &str, reason: &str| -> &Value {
            find_group(&v, reason, blocked, spawned)
                .unwrap_or_else(|| panic!("{what}: no {blocked} group in\n{}", pretty(&v)))
        };
        let ticker = group("main.parkTicker", "main.spawnTicker", "select");
        assert_eq!(ticker["status"], "resident", "{what}: {}", pretty(ticker));
        assert_eq!(
            ticker["pattern"],
            "timer-loop",
            "{what}: {}",
            pretty(ticker)
        );
        let text = ticker["explanation"].as_str().unwrap_or_default();
        assert!(
            text.contains("on a ticker and a done/stop channel (chan struct{})"),
            "{what}: {text}"
        );

        let stopped = group("main.parkStopped", "main.spawnStopped", "chan receive");
        assert_eq!(stopped["status"], "suspect", "{what}: {}", pretty(stopped));
        assert_eq!(
            stopped["pattern"],
            "timer-stopped",
            "{what}: {}",
            pretty(stopped)
        );
        let janitor = group("main.parkJanitor", "main.spawnJanitor", "select");
        assert_eq!(janitor["status"], "suspect", "{what}: {}", pretty(janitor));
        assert_eq!(
            janitor["pattern"],
            "timer-stopped",
            "{what}: {}",
            pretty(janitor)
        );
        let text = janitor["explanation"].as_str().unwrap_or_default();
        assert!(
            text.contains("on a stopped timer and a done/stop channel (chan struct{})"),
            "{what}: {text}"
        );

        let done = group("main.parkDone", "main.spawnDone", "chan receive");
        assert_eq!(
            done["pattern"],
            "context-never-done",
            "{what}: {}",
            pretty(done)
        );
        let select = group("main.parkSelect", "main.spawnSelect", "select");
        let text = select["explanation"].as_str().unwrap_or_default();
        assert!(
            text.contains("on 2 data channels, none of which became ready"),
            "{what}: {text}"
        );
        target.stop();
    }
}
