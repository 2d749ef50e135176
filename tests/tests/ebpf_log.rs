//! The eBPF probes' diagnostics (aya-log): a read of target memory made to fail on purpose shows
//! as a debug record naming the probe and the field with `-v`, and as nothing without it; both
//! runs' reports count the failures. Needs root and the `test-hooks` build of `sfgi`
//! (`SFGI_TEST_HOOKS_BIN`, made by `cargo xtask test`), whose `SFGI_TEST_BAD_OFFSET=<field>`
//! points the probes at a wrong offset for that field.
use serde_json::Value;
use sfgi_tests::*;
use std::time::Duration;

/// The field made unreadable: read by the park probe on every park (the creation site), and by
/// nothing the test's checks depend on.
const BAD_FIELD: &str = "g.gopc";

/// The `log` target of the probes' records (`sfgi_common::EBPF_LOG_TARGET`, spelled out: the
/// tests crate does not depend on sfgi-common).
const EBPF_LOG_TARGET: &str = "sfgi::ebpf";

/// The probes' short names, as the records and the report's stats name them.
const PROBES: [&str; 7] = [
    "spawn", "park", "ready", "run", "exit", "gc_start", "gc_end",
];

/// `sfgi attach` of the test-hooks build with `BAD_FIELD` broken: (JSON report, stderr).
fn attach_broken(pid: u32, verbose: bool) -> (Value, String) {
    let pid_s = pid.to_string();
    let mut args = vec![
        "attach",
        "--pid",
        &pid_s,
        "--duration",
        "3s",
        "--format",
        "json",
    ];
    if verbose {
        args.push("-v");
    }
    let SfgiRun {
        status,
        stdout,
        stderr,
        ..
    } = run_sfgi_bin(
        &sfgi_test_hooks_bin(),
        &args,
        &[("SFGI_TEST_BAD_OFFSET", BAD_FIELD)],
        Duration::from_secs(120),
    );
    assert!(
        status.success(),
        "sfgi {} failed with {status}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        args.join(" ")
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    (v, stderr)
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in\n{}", pretty(v)))
}

/// The park probe's read errors in the report's per-probe stats.
fn park_read_errors(v: &Value) -> u64 {
    v["stats"]["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["probe"] == "park"))
        .and_then(|p| p["read_errors"].as_u64())
        .unwrap_or_else(|| panic!("no park probe stats in\n{}", pretty(v)))
}

/// The stats of one diagnostic kind: (logged, suppressed).
fn diag_kind(v: &Value, kind: &str) -> (u64, u64) {
    let k = v["stats"]["ebpf_log"]["kinds"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kind"] == kind))
        .unwrap_or_else(|| panic!("no ebpf_log kind {kind} in\n{}", pretty(v)));
    (u64_at(k, &["logged"]), u64_at(k, &["suppressed"]))
}

#[test]
fn a_failed_read_is_logged_with_its_probe_and_field_only_with_v() {
    require_root();
    let _slot = attach_slot();
    let bin = build_program("leaks", sfgi_gotool::NEWEST, false);
    let target = Target::start(&bin, &["chan-send"]);
    let pid = target.pid();

    // With -v: the records, each prefixed with its probe.
    let (v, stderr) = attach_broken(pid, true);
    let records: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(EBPF_LOG_TARGET))
        .collect();
    let wanted = format!("probe park: cannot read {BAD_FIELD} at 0x");
    assert!(
        records.iter().any(|l| l.contains(&wanted)),
        "no eBPF record {wanted:?} with -v\nstderr:\n{stderr}"
    );
    let names_its_probe = |l: &str| {
        l.split_once("sfgi::ebpf] ")
            .and_then(|(_, msg)| msg.strip_prefix("probe "))
            .and_then(|m| m.split_once(':'))
            .is_some_and(|(p, _)| PROBES.contains(&p))
    };
    assert!(
        records.iter().all(|l| names_its_probe(l)),
        "an eBPF record without its probe\nstderr:\n{stderr}"
    );
    assert!(
        records.iter().any(|l| l.contains("(error -14)")),
        "no EFAULT in the records\nstderr:\n{stderr}"
    );
    // The report still counts every failure; while logging is on the diagnostics count them
    // too (logged, then left out past the rate limit), one for one. The two maps are read one
    // after the other while the probes still run (diagnostics first): a failure in between is
    // in the counter only, hence the small slack.
    let read_errors = u64_at(&v, &["stats", "read_errors"]);
    assert!(read_errors > 0, "no read errors with -v\n{}", pretty(&v));
    assert!(park_read_errors(&v) > 0, "{}", pretty(&v));
    assert_eq!(v["stats"]["ebpf_log"]["enabled"], true, "{}", pretty(&v));
    let (logged, suppressed) = diag_kind(&v, "read_error");
    assert!(logged > 0, "{}", pretty(&v));
    assert!(
        logged + suppressed <= read_errors && logged + suppressed + 100 >= read_errors,
        "read errors logged ({logged}) + suppressed ({suppressed}) != counted ({read_errors})\n{}",
        pretty(&v)
    );
    let limit = u64_at(&v, &["stats", "ebpf_log", "limit_per_cpu"]);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    assert!(
        logged <= limit * cpus,
        "rate limit exceeded\n{}",
        pretty(&v)
    );
    let read_records = records
        .iter()
        .filter(|l| l.contains(": cannot read "))
        .count() as u64;
    assert!(
        read_records <= logged,
        "{read_records} read records, {logged} logged\nstderr:\n{stderr}"
    );

    // Without -v: no record, the same counters.
    let (v, stderr) = attach_broken(pid, false);
    assert!(
        !stderr.contains(EBPF_LOG_TARGET) && !stderr.contains("cannot read"),
        "eBPF records without -v\nstderr:\n{stderr}"
    );
    assert!(
        u64_at(&v, &["stats", "read_errors"]) > 0,
        "no read errors without -v\n{}",
        pretty(&v)
    );
    assert!(park_read_errors(&v) > 0, "{}", pretty(&v));
    assert_eq!(v["stats"]["ebpf_log"]["enabled"], false, "{}", pretty(&v));
    assert_eq!(u64_at(&v, &["stats", "ebpf_log", "logged"]), 0);
    assert_eq!(u64_at(&v, &["stats", "ebpf_log", "suppressed"]), 0);
    drop(target);
}
