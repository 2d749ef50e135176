//! The evaluation harness behind `cargo xtask eval` (tests/src/scenarios.rs), exercised on a
//! small sample so CI runs it: one leak scenario, one healthy look-alike and one stripped leak
//! scenario under `sfgi watch`, two leaks and a healthy look-alike through `sfgi watch --pprof`
//! (`--source pprof`), plus its scoring on synthetic `/sfgi/leaks` objects. Needs root (the
//! pprof one does not).
use serde_json::json;
use sfgi_tests::scenarios::{self, EvalConfig, RunSpec};
use sfgi_tests::*;
use std::time::Duration;

fn scenario(name: &str) -> scenarios::Scenario {
    scenarios::manifest()
        .expect("reading tests/scenarios.toml")
        .scenarios
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

#[test]
fn scoring_of_reported_groups() {
    let m = scenarios::manifest().expect("manifest");
    assert_eq!(m.scenarios.iter().filter(|s| s.is_leak()).count(), 26);
    assert_eq!(m.scenarios.iter().filter(|s| !s.is_leak()).count(), 13);

    let rw = scenario("rwmutex-rlock");
    let leak = json!({
        "blocked_at": "main.leakRWMutexRLock at /x/leaks_sync.go:80",
        "created_by": "main.spawnRWMutexRLock at /x/leaks_sync.go:90",
        "stack_trace": "runtime.gopark(...)\n\tproc.go:1\nmain.leakRWMutexRLock(...)\n\tx.go:80\n",
    });
    assert_eq!(scenarios::classify(&rw, &leak), ("tp", true));
    let helper = json!({
        "blocked_at": "main.(*rwCache).lookup at /x/leaks_sync.go:50",
        "created_by": "main.spawnRWMutexRLock at /x/leaks_sync.go:88",
        "stack_trace": "main.(*rwCache).lookup(...)\n\tx.go:50\nmain.rwRecursiveReader(...)\n\tx.go:60\n",
    });
    assert_eq!(scenarios::classify(&rw, &helper), ("helper", false));
    let other = json!({
        "blocked_at": "main.leakLoop at /x/main.go:89",
        "created_by": "main.startLeaking at /x/main.go:99",
        "stack_trace": "main.leakLoop(...)\n\tx.go:89\n",
    });
    assert_eq!(scenarios::classify(&rw, &other), ("fp", false));
    // Any leak group of a healthy scenario is a false alarm.
    assert_eq!(
        scenarios::classify(&scenario("pool-idle"), &leak),
        ("fp", false)
    );
    // The blocking function may sit below a library frame (errgroup's Go).
    let eg = json!({
        "blocked_at": "scenarios/x/sync/errgroup.(*Group).Go at /x/errgroup.go:70",
        "created_by": "main.spawnSemaphoreErrgroup at /x/leaks_sync.go:200",
        "stack_trace": "runtime.gopark(...)\n\tp.go:1\nscenarios/x/sync/errgroup.(*Group).Go(...)\n\te.go:70\nmain.leakSemaphoreErrgroup(...)\n\tl.go:190\n",
    });
    assert_eq!(
        scenarios::classify(&scenario("semaphore-errgroup"), &eg),
        ("tp", true)
    );
    // Go's own leak-test keys: bottom frame without `main.` and without the go wrapper.
    let k = scenarios::suite_key(&json!({
        "wait_reason": "chan send",
        "stack_trace": "runtime.gopark(...)\n\tp.go:1\nmain.noCloseRange(...)\n\tc.go:9\nmain.NoCloseRange.gowrap1(...)\n\tc.go:20\nruntime.goexit(...)\n\ta.s:1\n",
    }));
    assert_eq!(k, "noCloseRange(...) [chan send]");
}

#[test]
fn eval_harness_on_three_scenarios() {
    require_root();
    let cfg = EvalConfig {
        leak_window: Duration::from_secs(5),
        healthy_window: Duration::from_secs(6),
        ..EvalConfig::default()
    };
    let spec = |name: &str, stripped: bool| RunSpec {
        scenario: scenario(name),
        go: NEWEST.to_string(),
        stripped,
        run: 1,
        bin: scenarios::build_scenarios(NEWEST, stripped).expect("building scenarios"),
    };
    let specs = vec![
        spec("chan-receive-orphan", false),
        spec("pool-idle", false),
        spec("select-abandoned", true),
    ];
    let results = scenarios::run_all(specs, &cfg, 3, &|_| {});
    let dump = serde_json::to_string_pretty(&results).unwrap();
    for r in &results {
        assert!(
            r.error.is_none(),
            "{} failed: {:?}\n{dump}",
            r.scenario,
            r.error
        );
        assert!(r.target_ok, "{}: target harmed\n{dump}", r.scenario);
        assert!(
            r.watch_ok,
            "{}: watch did not end cleanly\n{dump}",
            r.scenario
        );
        assert!(r.polls > 20, "{}: too few polls\n{dump}", r.scenario);
    }
    for r in results.iter().filter(|r| r.kind == "leak") {
        assert!(
            r.detected,
            "{}: expected leak group missed\n{dump}",
            r.scenario
        );
        assert!(r.of_class("tp").any(|g| g.expected), "{dump}");
        assert!(r.first_report_s.is_some_and(|t| t > 0.0), "{dump}");
    }
    let t = scenarios::totals(&results);
    assert_eq!(
        (t.leak_runs, t.detected, t.healthy_runs),
        (2, 2, 1),
        "{dump}"
    );
    assert_eq!(t.healthy_runs_flagged_l2, 0, "healthy pool flagged\n{dump}");
    assert_eq!(t.targets_harmed, 0, "{dump}");
    assert!(t.recall == 1.0 && t.tp_groups >= 2, "{dump}");
    let table = scenarios::totals_table(&[("smoke".into(), t)]);
    assert!(table.contains("| recall"), "{table}");
}

/// `--source pprof`: the scenarios' sfgipprof build, judged by `sfgi watch --pprof` from its
/// net/http/pprof alone (no root). No pause budget here: on a loaded machine one slow poll
/// would otherwise space the next ones past the short window (docs/ACCURACY.md).
#[test]
fn eval_harness_through_pprof() {
    let cfg = EvalConfig {
        leak_window: Duration::from_secs(5),
        healthy_window: Duration::from_secs(6),
        source: scenarios::Source::Pprof,
        pause_budget: Some("0".to_string()),
        ..EvalConfig::default()
    };
    let bin = scenarios::build_scenarios_for(NEWEST, false, scenarios::Source::Pprof)
        .expect("building scenarios");
    let spec = |name: &str| RunSpec {
        scenario: scenario(name),
        go: NEWEST.to_string(),
        stripped: false,
        run: 1,
        bin: bin.clone(),
    };
    let specs = vec![
        spec("chan-send-timeout"),
        spec("tcp-no-deadline"),
        spec("http-keepalive"),
    ];
    let results = scenarios::run_all(specs, &cfg, 3, &|_| {});
    let dump = serde_json::to_string_pretty(&results).unwrap();
    for r in &results {
        assert!(r.error.is_none(), "{}: {:?}\n{dump}", r.scenario, r.error);
        assert!(
            r.target_ok && r.watch_ok,
            "{}: not clean\n{dump}",
            r.scenario
        );
        let p = r
            .pprof
            .as_ref()
            .unwrap_or_else(|| panic!("no poll figures\n{dump}"));
        assert!(
            p.polls >= 5 && p.failed == 0,
            "{}: polls\n{dump}",
            r.scenario
        );
        assert!(p.longest_ms > 0.0, "{dump}");
    }
    for r in results.iter().filter(|r| r.kind == "leak") {
        assert!(r.detected, "{}: missed\n{dump}", r.scenario);
        assert_eq!(r.pattern_ok, Some(true), "{}: pattern\n{dump}", r.scenario);
    }
    let t = scenarios::totals(&results);
    assert_eq!(
        (t.leak_runs, t.detected, t.healthy_runs),
        (2, 2, 1),
        "{dump}"
    );
    assert_eq!(
        t.healthy_runs_flagged, 0,
        "healthy keep-alive flagged\n{dump}"
    );
    assert_eq!(t.pprof_runs, 3, "{dump}");
}
