//! Verdicts an alert can trust on a busy service (`tests/programs/busy`, a reverse proxy), with
//! the default overhead budget so the probes step down and SFGI works from inventory re-reads:
//! no leak group at any status while it serves thousands of requests/s (≥ 3k, with the budget
//! stepped down) and after, then a pile-up behind
//! a hung upstream that is `growing` within the threshold plus 10 s and never leaves `growing`
//! while it rises. Needs root.
use serde_json::Value;
use sfgi_tests::scenarios::{brief, WatchProc};
use sfgi_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

const THRESHOLD_S: u64 = 2;

#[test]
fn busy_service_then_a_pile_up() {
    require_root();
    let bin = build_program("busy", NEWEST, true);
    let loadgen = build_dir(&workspace_root().join("bench/loadgen"), NEWEST, false);
    let mut target = Target::start_until(&bin, &[], "ready addr=");
    let addr = target
        .stdout()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr=").map(str::to_string))
        .expect("busy printed its address");
    let w = WatchProc::start(
        target.pid(),
        &["--threshold".into(), format!("{THRESHOLD_S}s")],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    // 20 s of load (16 keep-alive connections, closed loop), then 10 s of quiet.
    let load = std::thread::spawn(move || {
        Command::new(&loadgen)
            .args([
                "-url",
                &format!("http://{addr}/work"),
                "-c",
                "16",
                "-d",
                "20s",
            ])
            .output()
            .expect("running loadgen")
    });
    let t0 = Instant::now();
    let mut seen: Vec<(f64, Vec<String>)> = Vec::new();
    while t0.elapsed() < Duration::from_secs(30) {
        let l = w.leaks();
        if !l.is_empty() {
            seen.push((t0.elapsed().as_secs_f64(), l.iter().map(brief).collect()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = load.join().expect("loadgen thread");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let rps = report["rps"].as_f64().unwrap_or(0.0);
    eprintln!("load: {report}");
    // Busy enough: the closed-loop load reaches 6.7–9.1k requests/s on an idle 2-vCPU VM and
    // 5k when the VM is also building (a fresh-clone CI run measured 4 996); what the test needs
    // is the budget stepping down, checked next.
    assert!(
        rps >= 3000.0,
        "the service must be busy for this test: {rps:.0} requests/s ({report})"
    );
    let stderr = w.stderr();
    assert!(
        stderr.contains("detached park"),
        "the default budget should have stepped down under this load; stderr:\n{stderr}"
    );
    assert!(
        seen.is_empty(),
        "leak groups on a healthy busy service (threshold {THRESHOLD_S}s):\n{seen:#?}"
    );

    // The pile-up: 10 requests/s to /hang, each blocked for good.
    assert!(signal(target.pid(), libc::SIGUSR1));
    let started = Instant::now();
    while !target.stdout().contains("pileup started") {
        assert!(started.elapsed() < Duration::from_secs(5), "no pile-up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    // Per poll: (s since the pile-up started, status of the handler group, of the client group).
    let mut polls: Vec<(f64, String, String)> = Vec::new();
    let status_of = |l: &[Value], pick: &dyn Fn(&Value) -> bool| -> String {
        l.iter()
            .find(|g| pick(g))
            .map(|g| format!("{}:{}", g["status"].as_str().unwrap_or("?"), g["count"]))
            .unwrap_or_else(|| "absent".into())
    };
    while started.elapsed() < Duration::from_secs(THRESHOLD_S + 20) {
        let l = w.leaks();
        let handler = status_of(&l, &|g| {
            g["stack_trace"]
                .as_str()
                .is_some_and(|s| s.contains("httputil.(*ReverseProxy).ServeHTTP"))
                && g["wait_reason"] == "select"
        });
        let client = status_of(&l, &|g| {
            g["blocked_at"]
                .as_str()
                .is_some_and(|s| contains_func(s, "main.pileup.func1"))
        });
        polls.push((started.elapsed().as_secs_f64(), handler, client));
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = (THRESHOLD_S + 10) as f64;
    for (which, col) in [("handler", 1usize), ("client", 2)] {
        let status = |p: &(f64, String, String)| if col == 1 { p.1.clone() } else { p.2.clone() };
        let first = polls
            .iter()
            .position(|p| status(p).starts_with("growing"))
            .unwrap_or_else(|| {
                panic!("the pile-up's {which} group never became growing: {polls:#?}")
            });
        assert!(
            polls[first].0 <= deadline,
            "the pile-up's {which} group became growing only {:.1} s after it started (threshold {THRESHOLD_S} s + 10 s): {polls:#?}",
            polls[first].0
        );
        let left: Vec<_> = polls[first..]
            .iter()
            .filter(|p| !status(p).starts_with("growing"))
            .collect();
        assert!(
            left.is_empty(),
            "the pile-up's {which} group left `growing` while it rose: {left:?}\nall polls: {polls:#?}"
        );
    }
    eprintln!("pile-up status sequence (s, handler, client): {polls:?}");
    target.stop();
}
