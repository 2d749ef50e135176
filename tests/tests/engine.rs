//! The leak engine end to end, on real Go programs under real probes (run as root): every status
//! (`growing`, `suspect`, `resident`, `proven`) reached by a real program, every leak scenario of
//! `tests/scenarios.toml` reported with its pattern, blocking site and creator, every healthy
//! scenario kept out of `growing`/`proven`, the rules-file example (`--rules
//! sfgi-engine/rules/examples/kafka.toml`) on a consumer with kafka-go's real frame names, and the
//! inventory of goroutines parked before SFGI attached (exact goids, wait reasons and stacks).
//!
//! Targets are started inside an [`attach_slot`] (at most 4 attaches at once, process-wide) and
//! the sweeps run one thread per target. Every failure message carries the whole JSON report.
use serde_json::Value;
use sfgi_tests::*;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Panics with `msg` and the whole report.
macro_rules! ensure {
    ($v:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            panic!("{}\nfull JSON:\n{}", format!($($fmt)+), pretty($v));
        }
    };
}

// ---- helpers ----------------------------------------------------------------------------------

/// Ids of the groups listed under `leaks`.
fn leak_ids(v: &Value) -> HashSet<String> {
    v["leaks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn s<'a>(g: &'a Value, field: &str) -> &'a str {
    g[field].as_str().unwrap_or("")
}

/// The groups blocked in `blocked_in` and created by `created_in` (exact function names).
fn groups_at<'a>(v: &'a Value, blocked_in: &str, created_in: &str) -> Vec<&'a Value> {
    groups(v)
        .into_iter()
        .filter(|g| {
            contains_func(s(g, "blocked_at"), blocked_in)
                && contains_func(s(g, "created_by"), created_in)
        })
        .collect()
}

/// The one group `[wait_reason]` blocked in `blocked_in` and created by `created_in`.
fn group_at<'a>(v: &'a Value, reason: &str, blocked_in: &str, created_in: &str) -> &'a Value {
    let found: Vec<&Value> = groups_at(v, blocked_in, created_in)
        .into_iter()
        .filter(|g| s(g, "wait_reason") == reason)
        .collect();
    ensure!(
        v,
        found.len() == 1,
        "expected exactly one group [{reason}] blocked in {blocked_in} created by {created_in}, found {}",
        found.len()
    );
    found[0]
}

/// `severity` as a number (`L3` → 3; 0 when absent).
fn severity(g: &Value) -> u8 {
    g["severity"]
        .as_str()
        .and_then(|s| s.strip_prefix('L'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `goroutine_ids` of a group.
fn goids(g: &Value) -> Vec<u64> {
    g["goroutine_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// The `leaked goid=N func=F` lines of `leaks -goids`: goids per leaking function.
fn printed_goids(stdout: &str, func: &str) -> BTreeSet<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("leaked goid="))
        .filter_map(|rest| {
            let (id, f) = rest.split_once(" func=")?;
            (f.trim() == func).then(|| id.parse().ok())?
        })
        .collect()
}

/// Waits (up to `timeout`) until the target printed a line containing `needle`.
fn wait_for_line(t: &Target, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !t.stdout().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "{} did not print {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
            t.describe(),
            t.stdout(),
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as SFGI prints it
/// (`2026-11-27T12:03:54.461Z`, fraction optional).
fn rfc3339_ms(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || h.len() != 3 || frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h[0] > 23 || h[1] > 59 || h[2] > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h[0]) * 60 + h[1]) * 60_000 + h[2] * 1000 + ms)
}

/// Seconds of a Go duration string (`1h2m3.5s`, `250ms`, `0s`); `None` if it is not one.
fn go_duration_secs(d: &str) -> Option<f64> {
    if d == "0s" || d == "0" {
        return Some(0.0);
    }
    let mut rest = d;
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `file:line` suffix check: `site` is `func at /…/<file>:<line>`.
fn at_line(site: &str, file: &str, line: u32) -> bool {
    site.ends_with(&format!("/{file}:{line}"))
}

/// Checks the fields every leak object must have right, whatever its status.
fn check_leak_fields(v: &Value, g: &Value, started_ms: i64, ended_ms: i64) {
    let count = g["count"].as_u64().unwrap_or(0);
    ensure!(v, count > 0, "group {} has no members", s(g, "id"));
    let ids = goids(g);
    ensure!(
        v,
        ids.len() as u64 == count.min(20),
        "goroutine_ids lists {} goids for {count} members (up to 20 expected)",
        ids.len()
    );
    ensure!(
        v,
        ids.iter().collect::<HashSet<_>>().len() == ids.len(),
        "goroutine_ids has duplicates: {ids:?}"
    );
    ensure!(
        v,
        g["stack_bytes"].as_u64().is_some_and(|b| b > 0),
        "stack_bytes must be > 0"
    );
    ensure!(
        v,
        g["gc_cycles_blocked"].as_u64().is_some(),
        "gc_cycles_blocked must be a non-negative integer"
    );
    let (first, last) = (
        rfc3339_ms(s(g, "first_seen")),
        rfc3339_ms(s(g, "last_seen")),
    );
    ensure!(
        v,
        first.is_some() && last.is_some(),
        "first_seen/last_seen are not RFC 3339"
    );
    let (first, last) = (first.unwrap_or(0), last.unwrap_or(0));
    ensure!(
        v,
        started_ms - 2000 <= first && first <= last && last <= ended_ms + 1000,
        "want target start ({started_ms}) <= first_seen ({first}) <= last_seen ({last}) <= now ({ended_ms})"
    );
    let secs = g["duration_seconds"].as_f64().unwrap_or(-1.0);
    let parsed = go_duration_secs(s(g, "duration"));
    ensure!(
        v,
        parsed.is_some_and(|p| (p - secs).abs() <= 0.002 + secs * 0.01),
        "duration {:?} is not a Go duration equal to duration_seconds {secs}",
        s(g, "duration")
    );
    // The report was made at first_seen + duration: after the newest member parked, before
    // sfgi exited.
    let report_ms = first + (secs * 1000.0).round() as i64;
    ensure!(
        v,
        last - 2 <= report_ms && report_ms <= ended_ms + 2,
        "first_seen + duration_seconds ({report_ms}) must lie between last_seen ({last}) and the end of sfgi ({ended_ms})"
    );
    let func = s(g, "blocked_at").split(" at ").next().unwrap_or("");
    ensure!(
        v,
        !func.is_empty() && s(g, "stack_trace").contains(&format!("{func}(")),
        "stack_trace must hold the blocking frame {func}"
    );
}

/// Starts `bin args` inside an attach slot, waits `settle`, attaches for `duration` with `extra`
/// and returns the report, the target (still running) and when it was started (epoch ms).
fn run_attached(
    bin: &Path,
    args: &[&str],
    settle: Duration,
    duration: &str,
    extra: &[&str],
) -> (Value, Target, i64) {
    let _slot = attach_slot();
    let started = now_ms();
    let t = Target::start(bin, args);
    std::thread::sleep(settle);
    let v = attach_json(t.pid(), duration, extra);
    (v, t, started)
}

/// Runs `f` for every item in its own thread and panics naming the items that failed.
fn for_each_parallel<T: Sync>(
    what: &str,
    items: &[T],
    name: impl Fn(&T) -> String,
    f: impl Fn(&T) + Sync,
) {
    let _ = sfgi_bin(); // resolve once, before the threads race for it
    let failed: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = items
            .iter()
            .map(|it| (name(it), sc.spawn(|| f(it))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(n, h)| h.join().is_err().then_some(n))
            .collect()
    });
    assert!(
        failed.is_empty(),
        "{what}: {failed:?} failed (their panic messages, with the full JSON, are above)"
    );
}

fn variant(version: &str, stripped: bool) -> String {
    format!("Go {version}{}", if stripped { " stripped" } else { "" })
}

// ---- growing ----------------------------------------------------------------------------------

#[test]
fn growing_on_a_continuous_leak_newest_go() {
    growing(NEWEST, false);
}

#[test]
fn growing_on_a_continuous_leak_oldest_go_stripped() {
    growing(OLDEST, true);
}

/// The severity thresholds are the user's: the same 600/min leak is L3 by default (fast
/// growth ≥ 60/min) and L2 when `--fast-growth` and `--avalanche` are set above its rate.
#[test]
fn severity_thresholds_are_configurable() {
    require_root();
    let bin = build_program("leaks", NEWEST, false);
    let p = pattern("chan-send");
    let (v, mut t, _) = run_attached(
        &bin,
        &[p.name, "-count", "1000", "-interval", "100ms"],
        Duration::from_millis(200),
        "4s",
        &[
            "--threshold",
            "2s",
            "--interval",
            "100ms",
            "--fast-growth",
            "100000",
            "--avalanche",
            "1000000",
        ],
    );
    let g = group_at(&v, p.wait_reason_for(NEWEST), p.blocks_in, p.spawned_by);
    ensure!(&v, s(g, "status") == "growing", "status must be growing");
    ensure!(
        &v,
        severity(g) == 2,
        "with --fast-growth 100000 a 600/min leak is L2"
    );
    t.stop();
}

/// `leaks chan-send` leaks one goroutine every 100 ms (600/min) for the whole window.
fn growing(version: &str, stripped: bool) {
    require_root();
    let bin = build_program("leaks", version, stripped);
    let p = pattern("chan-send");
    let (blocks, spawns) = p.source_lines();
    let (v, mut t, started) = run_attached(
        &bin,
        &[p.name, "-count", "1000", "-interval", "100ms", "-goids"],
        Duration::from_millis(200),
        "5s",
        &[
            "--threshold",
            "2s",
            "--interval",
            "100ms",
            "--min-repeat",
            "3",
        ],
    );
    let ended = now_ms();
    let out = t.stdout();
    let g = group_at(&v, p.wait_reason_for(version), p.blocks_in, p.spawned_by);
    let what = variant(version, stripped);
    ensure!(
        &v,
        s(g, "status") == "growing",
        "{what}: status must be growing"
    );
    ensure!(&v, severity(g) >= 2, "{what}: severity must be >= L2");
    ensure!(
        &v,
        leak_ids(&v).contains(s(g, "id")),
        "{what}: a growing group must be listed under leaks"
    );
    let gpm = g["growth_per_minute"].as_f64().unwrap_or(0.0);
    ensure!(
        &v,
        (420.0..=780.0).contains(&gpm),
        "{what}: growth_per_minute {gpm} is not near the program's 600/min"
    );
    ensure!(
        &v,
        s(g, "pattern") == "chan-send-blocked",
        "{what}: pattern must be chan-send-blocked"
    );
    ensure!(
        &v,
        s(g, "wait_reason") == p.wait_reason_for(version),
        "{what}: wait reason"
    );
    ensure!(
        &v,
        s(g, "blocked_at").starts_with("main.leakChanSend at ")
            && at_line(s(g, "blocked_at"), "leaks/main.go", blocks),
        "{what}: blocked_at must be main.leakChanSend at …/leaks/main.go:{blocks}"
    );
    ensure!(
        &v,
        s(g, "created_by").starts_with("main.spawnChanSend at ")
            && at_line(s(g, "created_by"), "leaks/main.go", spawns),
        "{what}: created_by must be main.spawnChanSend at …/leaks/main.go:{spawns}"
    );
    ensure!(
        &v,
        s(g, "creation_stack").contains("main.spawnChanSend"),
        "{what}: members created while attached have a creation stack"
    );
    let real = printed_goids(&out, p.blocks_in);
    let count = g["count"].as_u64().unwrap_or(0);
    ensure!(
        &v,
        count >= 30 && count as usize <= real.len(),
        "{what}: {count} members, but the program leaked {} goroutines",
        real.len()
    );
    let ids = goids(g);
    ensure!(
        &v,
        ids.iter().all(|id| real.contains(id)),
        "{what}: goroutine_ids {ids:?} are not goids the program leaked: {real:?}"
    );
    check_leak_fields(&v, g, started, ended);
    t.stop();
    assert_eq!(
        t.exit_status().and_then(|s| s.code()),
        Some(0),
        "{what}: target harmed:\n{}",
        t.stderr()
    );
}

// ---- suspect ----------------------------------------------------------------------------------

#[test]
fn suspect_on_a_burst_that_stays() {
    require_root();
    let sc = [(NEWEST, false), (OLDEST, true)];
    for_each_parallel(
        "burst-leak",
        &sc,
        |(v, st)| variant(v, *st),
        |&(version, stripped)| {
            let bin = build_program("scenarios", version, stripped);
            let (v, _t, started) = run_attached(
                &bin,
                &["burst-leak", "-delay", "500ms", "-burst", "60"],
                Duration::ZERO,
                "4s",
                &[
                    "--threshold",
                    "1s",
                    "--interval",
                    "100ms",
                    "--min-repeat",
                    "3",
                ],
            );
            let ended = now_ms();
            let what = variant(version, stripped);
            let g = group_at(
                &v,
                "chan receive",
                "main.leakBurstLeak",
                "main.spawnBurstLeak",
            );
            ensure!(
                &v,
                s(g, "status") == "suspect",
                "{what}: a burst that stays is suspect"
            );
            ensure!(&v, s(g, "severity") == "L1", "{what}: suspect is L1");
            ensure!(
                &v,
                g["count"].as_u64() == Some(60),
                "{what}: all 60 members"
            );
            ensure!(
                &v,
                s(g, "pattern") == "context-never-done",
                "{what}: pattern must be context-never-done (the last inventory read found `ack`, a chan struct{{}})"
            );
            ensure!(
                &v,
                leak_ids(&v).contains(s(g, "id")),
                "{what}: suspect groups are listed under leaks"
            );
            ensure!(
                &v,
                !groups(&v).iter().any(|g| s(g, "status") == "growing"),
                "{what}: nothing is growing after a one-off burst"
            );
            check_leak_fields(&v, g, started, ended);
        },
    );
}

// ---- proven -----------------------------------------------------------------------------------

/// Go 1.27 marks goroutines blocked on unreachable channels `_Gleaked` when the target runs its
/// goroutine leak profile (`leaks -leakprofile`); SFGI reads that status from the inventory.
#[test]
fn proven_when_the_go_runtime_marks_goroutines_leaked() {
    require_root();
    // (version, stripped, leak before attaching?)
    let runs = [
        (NEWEST, false, true),
        (NEWEST, false, false),
        (OLDEST, true, true),
    ];
    for_each_parallel(
        "proven",
        &runs,
        |(v, st, before)| {
            format!(
                "{} leaked {}",
                variant(v, *st),
                if *before {
                    "before attach"
                } else {
                    "while attached"
                }
            )
        },
        |&(version, stripped, before)| {
            let bin = build_program("leaks", version, stripped);
            let p = pattern("chan-send");
            let what = variant(version, stripped);
            let _slot = attach_slot();
            let started = now_ms();
            let (v, mut t) = if before {
                let t = Target::start(
                    &bin,
                    &[
                        p.name,
                        "-count",
                        "20",
                        "-interval",
                        "10ms",
                        "-goids",
                        "-leakprofile",
                        "300ms",
                    ],
                );
                wait_for_line(&t, "spawned n=20", Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(700)); // two leak profiles since
                let v = attach_json(
                    t.pid(),
                    "3s",
                    &["--threshold", "2s", "--interval", "100ms", "--rescan", "1s"],
                );
                (v, t)
            } else {
                let t = Target::start(
                    &bin,
                    &[
                        p.name,
                        "-count",
                        "1000",
                        "-interval",
                        "50ms",
                        "-goids",
                        "-leakprofile",
                        "500ms",
                    ],
                );
                let v = attach_json(
                    t.pid(),
                    "4s",
                    &["--threshold", "2s", "--interval", "100ms", "--rescan", "1s"],
                );
                (v, t)
            };
            let ended = now_ms();
            let out = t.stdout();
            let g = group_at(&v, p.wait_reason_for(version), p.blocks_in, p.spawned_by);
            let real = printed_goids(&out, p.blocks_in);
            ensure!(
                &v,
                goids(g).iter().all(|id| real.contains(id)),
                "{what}: goroutine_ids are not goids the program leaked: {real:?}"
            );
            ensure!(
                &v,
                s(g, "pattern") == "chan-send-blocked",
                "{what}: pattern must be chan-send-blocked (a leaked send is no nil channel)"
            );
            check_leak_fields(&v, g, started, ended);
            if go_minor(version) < 26 {
                ensure!(
                    &v,
                    out.contains("leakprofile unavailable"),
                    "{what}: Go < 1.26 has no goroutineleak profile; stdout:\n{out}"
                );
                ensure!(
                    &v,
                    matches!(s(g, "status"), "suspect" | "growing"),
                    "{what}: without Go's leak detector the group is suspect or growing, never proven"
                );
                return;
            }
            ensure!(
                &v,
                s(g, "status") == "proven",
                "{what}: status must be proven"
            );
            ensure!(&v, s(g, "severity") == "L3", "{what}: proven is L3");
            ensure!(
                &v,
                s(g, "reason").contains("_Gleaked"),
                "{what}: reason names _Gleaked"
            );
            ensure!(
                &v,
                leak_ids(&v).contains(s(g, "id")),
                "{what}: proven groups are listed under leaks"
            );
            t.stop();
        },
    );
}

// ---- inventory at attach ------------------------------------------------------------------------

#[test]
fn inventory_lists_goroutines_parked_before_attach() {
    require_root();
    let runs = [(NEWEST, false), (OLDEST, true)];
    for_each_parallel(
        "inventory",
        &runs,
        |(v, st)| variant(v, *st),
        |&(version, stripped)| {
            let bin = build_program("leaks", version, stripped);
            let what = variant(version, stripped);
            let _slot = attach_slot();
            let started = now_ms();
            let t = Target::start(&bin, &["all", "-count", "5", "-interval", "2ms", "-goids"]);
            wait_for_line(&t, "spawned n=5", Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(300)); // the last ones park
            let v = attach_json(t.pid(), "2s", &["--threshold", "1s", "--interval", "100ms"]);
            let ended = now_ms();
            let out = t.stdout();
            ensure!(
                &v,
                v["stats"]["inventory"]["inventories"].as_u64().unwrap_or(0) >= 1,
                "{what}: stats.inventory.inventories must be >= 1"
            );
            for p in PATTERNS {
                let (blocks, spawns) = p.source_lines();
                let reason = p.wait_reason_for(version);
                let g = find_group(&v, reason, p.blocks_in, p.spawned_by);
                ensure!(
                    &v,
                    g.is_some(),
                    "{what}: no group [{reason}] in {} created by {}",
                    p.blocks_in,
                    p.spawned_by
                );
                let g = g.unwrap_or(&Value::Null);
                ensure!(
                    &v,
                    at_line(s(g, "blocked_at"), "leaks/main.go", blocks)
                        && at_line(s(g, "created_by"), "leaks/main.go", spawns),
                    "{what} {}: blocked_at/created_by must name lines {blocks}/{spawns}",
                    p.name
                );
                ensure!(
                    &v,
                    s(g, "stack_trace").contains(&format!("{}(", p.blocks_in)),
                    "{what} {}: stack_trace must hold {}",
                    p.name,
                    p.blocks_in
                );
                let real = printed_goids(&out, p.blocks_in);
                let listed: BTreeSet<u64> = goids(g).into_iter().collect();
                if p.name == "chan-send" {
                    // Its spawner may still take the value when slow: leaked ⊆ printed.
                    ensure!(
                        &v,
                        !listed.is_empty() && listed.is_subset(&real),
                        "{what} chan-send: goids {listed:?} not among the leaked {real:?}"
                    );
                } else {
                    ensure!(
                        &v,
                        real.len() == 5 && listed == real,
                        "{what} {}: goids {listed:?} must be exactly the program's {real:?}",
                        p.name
                    );
                }
                check_leak_fields(&v, g, started, ended);
            }
        },
    );
}

// ---- the scenario manifest ----------------------------------------------------------------------

/// A `[[scenario.group]]` of the manifest.
struct ManifestGroup {
    leak: bool,
    function: String,
    created_by: String,
    /// `stack_go<version>` per version key (`"1_21_13"`), innermost first.
    stacks: toml::Table,
}

impl ManifestGroup {
    /// Whether report group `g` is this one: blocked in its function, or (when Go's stack has
    /// frames SFGI cannot see past) in one of the non-runtime frames Go listed for `version`;
    /// created by its creator.
    fn matches(&self, g: &Value, version: &str) -> bool {
        let listed = self
            .stacks
            .get(&format!("stack_go{}", version.replace('.', "_")))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|f| f.as_str()).collect::<Vec<_>>())
            .unwrap_or_default();
        let blocked = s(g, "blocked_at");
        // A frame Go lists inside (above) the function, e.g. `syscall.Syscall` when SFGI's
        // stack of a goroutine in a system call ends there.
        let pos = |f: &str| listed.iter().position(|&l| l == f);
        let in_listed = blocked.split(" at ").next().is_some_and(|f| {
            !f.starts_with("runtime.")
                && matches!((pos(f), pos(&self.function)), (Some(a), Some(b)) if a < b)
        });
        (contains_func(blocked, &self.function) || in_listed)
            && contains_func(s(g, "created_by"), &self.created_by)
    }
}

struct Scenario {
    name: String,
    groups: Vec<ManifestGroup>,
    leak: bool,
    expected_pattern: String,
    blocking: String,
    creating: String,
    file: String,
    blocks_lines: Vec<u32>,
    spawns_lines: Vec<u32>,
    wait_reason: toml::Table,
}

fn scenarios_dir() -> PathBuf {
    workspace_root().join("tests/programs/scenarios")
}

/// Lines of `sfgi:<what> <marker>` in the scenario source `file` (one or more).
fn marker_lines(file: &str, what: &str, marker: &str) -> Vec<u32> {
    let src = std::fs::read_to_string(scenarios_dir().join(file))
        .unwrap_or_else(|e| panic!("reading scenarios/{file}: {e}"));
    let tag = format!("sfgi:{what} {marker}");
    let lines: Vec<u32> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.find(&tag).is_some_and(|i| {
                l[i + tag.len()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
            })
        })
        .map(|(i, _)| i as u32 + 1)
        .collect();
    assert!(!lines.is_empty(), "no `{tag}` in scenarios/{file}");
    lines
}

fn manifest() -> Vec<Scenario> {
    let text = std::fs::read_to_string(workspace_root().join("tests/scenarios.toml"))
        .expect("reading tests/scenarios.toml");
    let doc: toml::Table = text.parse().expect("tests/scenarios.toml is not TOML");
    let list = doc["scenario"].as_array().expect("[[scenario]] tables");
    list.iter()
        .map(|t| {
            let str_of = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let flag = |k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            let (file, marker) = (str_of("file"), str_of("marker"));
            Scenario {
                name: str_of("name"),
                groups: t
                    .get("group")
                    .and_then(|g| g.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| g.as_table())
                            .map(|g| {
                                let f = |k: &str| {
                                    g.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
                                };
                                ManifestGroup {
                                    leak: f("role") == "leak",
                                    function: f("function"),
                                    created_by: f("created_by"),
                                    stacks: g.clone(),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                leak: str_of("kind") == "leak",
                expected_pattern: str_of("expected_pattern"),
                blocking: str_of("blocking_function"),
                creating: str_of("creating_function"),
                blocks_lines: if flag("blocks_marker") {
                    marker_lines(&file, "blocks", &marker)
                } else {
                    Vec::new()
                },
                spawns_lines: if flag("spawns_marker") {
                    marker_lines(&file, "spawns", &marker)
                } else {
                    Vec::new()
                },
                file,
                wait_reason: t
                    .get("expected_wait_reason")
                    .and_then(|v| v.as_table())
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Extra flags per scenario to make it fit a 4.5 s window.
fn scenario_args(name: &str) -> Vec<&'static str> {
    match name {
        "slow-leak" => vec!["-rate", "300ms"], // 3 s by default
        _ => vec![],
    }
}

/// How long SFGI watches a leak scenario: 4.5 s, longer where the budget first steps down and
/// verdicts then come from re-reads a second apart (on a machine running the other scenarios
/// in parallel).
fn scenario_window(name: &str) -> &'static str {
    match name {
        "upstream-pileup" => "8s",
        _ => "4500ms",
    }
}

const SWEEP_ATTACH: [&str; 6] = [
    "--threshold",
    "2s",
    "--interval",
    "100ms",
    "--min-repeat",
    "3",
];

fn check_leak_scenario(bin: &Path, version: &str, stripped: bool, sc: &Scenario) {
    let mut args = vec![sc.name.as_str()];
    args.extend(scenario_args(&sc.name));
    let (v, mut t, started) = run_attached(
        bin,
        &args,
        Duration::from_millis(200),
        scenario_window(&sc.name),
        &SWEEP_ATTACH,
    );
    let ended = now_ms();
    let what = format!("{} {}", variant(version, stripped), sc.name);
    let leaks = leak_ids(&v);
    let is_leak =
        |g: &&Value| matches!(s(g, "status"), "growing" | "suspect") && leaks.contains(s(g, "id"));
    // 1. The scenario's own group (blocked in its blocking function) is a leak.
    let main = sc
        .groups
        .iter()
        .find(|m| m.leak && m.function == sc.blocking && m.created_by == sc.creating)
        .unwrap_or_else(|| {
            panic!(
                "{what}: the manifest lists no leak group for {}",
                sc.blocking
            )
        });
    let found: Vec<&Value> = groups(&v)
        .into_iter()
        .filter(|g| is_leak(g) && main.matches(g, version))
        .collect();
    ensure!(
        &v,
        !found.is_empty(),
        "{what}: no growing/suspect leak blocked in {} created by {}",
        sc.blocking,
        sc.creating
    );
    let g = found[0];
    if let Some(want) = sc
        .wait_reason
        .get(&format!("go{version}"))
        .and_then(|w| w.as_str())
    {
        ensure!(
            &v,
            s(g, "wait_reason") == want,
            "{what}: wait reason must be {want:?}"
        );
    }
    if !contains_func(s(g, "blocked_at"), &sc.blocking) {
        eprintln!(
            "note: {what}: blocked_at is {:?}, a frame Go lists above {} (SFGI cannot see further)",
            s(g, "blocked_at"),
            sc.blocking
        );
    } else if !sc.blocks_lines.is_empty() {
        ensure!(
            &v,
            sc.blocks_lines
                .iter()
                .any(|&l| at_line(s(g, "blocked_at"), &sc.file, l)),
            "{what}: blocked_at must be {}:{:?}",
            sc.file,
            sc.blocks_lines
        );
    }
    if !sc.spawns_lines.is_empty() {
        ensure!(
            &v,
            sc.spawns_lines
                .iter()
                .any(|&l| at_line(s(g, "created_by"), &sc.file, l)),
            "{what}: created_by must be {}:{:?}",
            sc.file,
            sc.spawns_lines
        );
    }
    // 2. The expected pattern names one of the scenario's leak groups.
    let patterned = groups(&v)
        .into_iter()
        .filter(|g| is_leak(g) && s(g, "pattern") == sc.expected_pattern)
        .any(|g| sc.groups.iter().any(|m| m.leak && m.matches(g, version)));
    ensure!(
        &v,
        patterned,
        "{what}: no leak of the scenario's groups has pattern {}",
        sc.expected_pattern
    );
    if s(g, "pattern") != sc.expected_pattern {
        eprintln!(
            "note: {what}: {} is {}; {} is on another of its leak groups",
            sc.blocking,
            s(g, "pattern"),
            sc.expected_pattern
        );
    }
    check_leak_fields(&v, g, started, ended);
    t.stop();
}

#[test]
fn every_leak_scenario_is_reported_newest_go() {
    require_root();
    let bin = build_program("scenarios", NEWEST, false);
    let all: Vec<Scenario> = manifest().into_iter().filter(|s| s.leak).collect();
    assert_eq!(
        all.len(),
        26,
        "tests/scenarios.toml should hold 26 leak scenarios"
    );
    for_each_parallel(
        &format!("leak scenarios, {}", variant(NEWEST, false)),
        &all,
        |s| s.name.clone(),
        |sc| check_leak_scenario(&bin, NEWEST, false, sc),
    );
}

#[test]
fn leak_scenarios_are_reported_oldest_go_stripped() {
    require_root();
    let bin = build_program("scenarios", OLDEST, true);
    const SUBSET: [&str; 5] = [
        "chan-send-timeout",
        "mutex-error-path",
        "waitgroup-mismatch",
        "select-abandoned",
        "syscall-pipe",
    ];
    let subset: Vec<Scenario> = manifest()
        .into_iter()
        .filter(|s| SUBSET.contains(&s.name.as_str()))
        .collect();
    assert_eq!(subset.len(), SUBSET.len());
    for_each_parallel(
        &format!("leak scenarios, {}", variant(OLDEST, true)),
        &subset,
        |s| s.name.clone(),
        |sc| check_leak_scenario(&bin, OLDEST, true, sc),
    );
}

/// Every healthy scenario: no group growing or proven, no severity above L1; the idle ones
/// (`pool-idle`, `tickers`, `http-keepalive`) show their goroutines as `resident`, never leaks.
#[test]
fn healthy_scenarios_stay_out_of_growing_and_proven() {
    require_root();
    let bin = build_program("scenarios", NEWEST, false);
    let all: Vec<Scenario> = manifest().into_iter().filter(|s| !s.leak).collect();
    assert_eq!(
        all.len(),
        13,
        "tests/scenarios.toml should hold 13 healthy scenarios"
    );
    let suspects = std::sync::Mutex::new(Vec::new());
    for_each_parallel(
        "healthy scenarios",
        &all,
        |s| s.name.clone(),
        |sc| {
            let (v, mut t, _) = run_attached(
                &bin,
                &[sc.name.as_str()],
                Duration::ZERO,
                "4500ms",
                &SWEEP_ATTACH,
            );
            let name = &sc.name;
            for g in groups(&v) {
                ensure!(
                    &v,
                    !matches!(s(g, "status"), "growing" | "proven") && severity(g) <= 1,
                    "healthy {name}: group {} ({} in {}) is {} {}",
                    s(g, "id"),
                    s(g, "wait_reason"),
                    s(g, "blocked_at"),
                    s(g, "status"),
                    s(g, "severity")
                );
                if s(g, "status") == "suspect" {
                    suspects
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!(
                            "{name}: {} [{}] {}",
                            s(g, "pattern"),
                            s(g, "wait_reason"),
                            s(g, "blocked_at")
                        ));
                }
            }
            if matches!(name.as_str(), "pool-idle" | "tickers" | "http-keepalive") {
                let leaks = leak_ids(&v);
                let found = groups_at(&v, &sc.blocking, &sc.creating);
                ensure!(&v, !found.is_empty(), "{name}: no group of {}", sc.blocking);
                for g in found {
                    ensure!(
                        &v,
                        s(g, "status") == "resident" && !leaks.contains(s(g, "id")),
                        "{name}: {} must be resident and not a leak",
                        sc.blocking
                    );
                }
            }
            t.stop();
        },
    );
    let suspects = suspects.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!("healthy scenarios with suspect groups: {suspects:?}");
}

// ---- the rules-file example ---------------------------------------------------------------------

const KAFKA_FETCH: &str = "github.com/segmentio/kafka-go.(*Reader).FetchMessage";

/// `sfgi-engine/rules/examples/kafka.toml` on a consumer whose goroutines block in kafka-go's real
/// `(*Reader).FetchMessage` (a local stand-in module under the real module path): idle consumers
/// are `kafka-consumer-idle` residents with the rules, a long-blocked `select` without them, and
/// a Reader leaked per request still grows with them.
#[test]
fn kafka_rules_example() {
    require_root();
    let bin = build_program("kafka-consumer", NEWEST, false);
    let rules = workspace_root().join("sfgi-engine/rules/examples/kafka.toml");
    let rules = rules.to_str().expect("utf-8 path").to_string();
    // (with rules?, leak per request?)
    let runs = [(true, false), (false, false), (true, true)];
    for_each_parallel(
        "kafka",
        &runs,
        |(r, l)| format!("rules={r} leak={l}"),
        |&(with_rules, leak)| {
            let mut extra = vec![
                "--threshold",
                if leak { "2s" } else { "1s" },
                "--interval",
                "100ms",
            ];
            if with_rules {
                extra.extend(["--rules", rules.as_str()]);
            }
            let args: &[&str] = if leak { &["-leak-every", "100ms"] } else { &[] };
            let (v, mut t, _) = run_attached(
                &bin,
                args,
                Duration::ZERO,
                if leak { "4500ms" } else { "3s" },
                &extra,
            );
            let leaks = leak_ids(&v);
            let idle = group_at(&v, "select", KAFKA_FETCH, "main.startConsumers");
            ensure!(&v, idle["count"].as_u64() == Some(6), "6 idle consumers");
            ensure!(
                &v,
                s(idle, "wait_reason") == "select",
                "consumers wait in a select"
            );
            ensure!(
                &v,
                s(idle, "blocked_at").starts_with(&format!("{KAFKA_FETCH} at ")),
                "blocked_at must be kafka-go's FetchMessage"
            );
            if with_rules {
                ensure!(
                    &v,
                    s(idle, "pattern") == "kafka-consumer-idle"
                        && s(idle, "explanation").contains("kafka-go consumer"),
                    "with the example rules the consumers are kafka-consumer-idle"
                );
                ensure!(
                    &v,
                    s(idle, "status") == "resident" && !leaks.contains(s(idle, "id")),
                    "the example marks idle consumers healthy: resident, not a leak"
                );
            } else {
                ensure!(
                    &v,
                    s(idle, "pattern") == "select-blocked" && s(idle, "status") == "suspect",
                    "without rules the built-ins see long-blocked selects (select-blocked, suspect)"
                );
            }
            if leak {
                let g = group_at(&v, "select", KAFKA_FETCH, "main.handleRequest");
                ensure!(
                    &v,
                    s(g, "pattern") == "kafka-consumer-idle"
                        && s(g, "status") == "growing"
                        && severity(g) >= 2
                        && leaks.contains(s(g, "id")),
                    "a Reader leaked per request is still reported growing (healthy is a shape, not a verdict)"
                );
            }
            t.stop();
        },
    );
}

/// Issue #7's scale goal: a target with a million goroutines parked before SFGI attached is
/// inventoried and reported whole, with SFGI's own peak RSS within 256 MiB (the inventory is
/// streamed into the engine, and goroutines known only from it are kept in a 64-byte table).
#[test]
fn a_million_parked_goroutines_within_256_mib() {
    require_root();
    let bin = build_program("parked", NEWEST, false);
    let _slot = attach_slot();
    let t = Target::start(&bin, &["-n", "1", "-scale", "1000000"]);
    let v = attach_json(t.pid(), "1s", &["--rescan", "0"]);
    let st = &v["stats"];
    let total = st["goroutines"].as_u64().unwrap_or(0);
    ensure!(
        &v,
        total >= 1_000_000,
        "stats.goroutines {total}: every goroutine must be known"
    );
    let scale = groups(&v)
        .into_iter()
        .find(|g| {
            contains_func(s(g, "blocked_at"), "main.parkRecv")
                && g["count"].as_u64() >= Some(1_000_000)
        })
        .map(|g| g["count"].as_u64().unwrap_or(0));
    ensure!(
        &v,
        scale.is_some(),
        "no group of >= 1000000 goroutines blocked in main.parkRecv"
    );
    let peak = st["budget"]["self_peak_rss_bytes"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(
        peak <= 256 << 20,
        "SFGI's peak RSS with {total} goroutines: {} MiB (goal <= 256 MiB)",
        peak >> 20
    );
    eprintln!(
        "1M parked: {total} goroutines, inventory {} ms, SFGI peak RSS {} MiB",
        st["inventory"]["inventory_ms"],
        peak >> 20
    );
}
