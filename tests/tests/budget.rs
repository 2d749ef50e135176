//! The overhead budget end to end (`sfgi-trace/src/budget.rs`): a target far over
//! `--max-event-rate` makes SFGI detach its probes and say so; once the target goes quiet, SFGI
//! re-attaches them (`--budget-retry`) and traces fully again. Needs root.
use serde_json::Value;
use sfgi_tests::*;
use std::time::Duration;

fn budget_round_trip(version: &str) {
    let bin = build_program("phases", version, false);
    let _slot = attach_slot();
    // 4 s of ping-pong (hundreds of thousands of probe hits/s under full tracing), then quiet.
    let mut t = Target::start(&bin, &["-busy", "4s", "-idle", "10"]);
    let pid = t.pid().to_string();
    let run = run_sfgi(
        &[
            "attach",
            "--pid",
            &pid,
            "--duration",
            "11s",
            "--budget-retry",
            "2s",
            "--threshold",
            "1s",
            "--format",
            "json",
        ],
        Duration::from_secs(90),
    );
    let what = format!("Go {version}");
    assert!(
        run.status.success(),
        "{what}: sfgi failed: {}\n{}",
        run.status,
        run.stderr
    );
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{what}: invalid JSON ({e}):\n{}", run.stdout));
    let b = &v["stats"]["budget"];
    let steps: Vec<&str> = b["steps"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ctx = format!("{what}\nstderr:\n{}\nsteps: {steps:#?}", run.stderr);
    // Stepped down during the busy phase, and said so on stderr.
    let down = run
        .stderr
        .find("sfgi: overhead budget:")
        .filter(|_| run.stderr.contains("> --max-event-rate 20000: detached"));
    assert!(down.is_some(), "{ctx}\nno step down on stderr");
    assert!(
        steps.iter().any(|s| s.contains("detached")),
        "{ctx}\nno step down in stats.budget.steps"
    );
    // Back up once the target went quiet, said after the step down.
    let up = run.stderr.find("tracing fully again");
    assert!(
        up.is_some() && up > down,
        "{ctx}\nno step back up on stderr after the step down"
    );
    assert_eq!(b["mode"], "full", "{ctx}");
    assert_eq!(b["detached"].as_array().map(Vec::len), Some(0), "{ctx}");
    // Failed tries are in the steps only, never on stderr.
    for s in steps
        .iter()
        .filter(|s| s.contains("tried tracing fully again"))
    {
        let text = s.split_once(": ").map(|(_, t)| t).unwrap_or(s);
        assert!(
            !run.stderr.contains(text),
            "{ctx}\nfailed try on stderr: {s}"
        );
    }
    // Verdicts still work: the quiet phase's parked goroutines are there.
    let idle = groups(&v)
        .into_iter()
        .find(|g| contains_func(g["blocked_at"].as_str().unwrap_or(""), "main.idle"));
    assert_eq!(
        idle.and_then(|g| g["count"].as_u64()),
        Some(10),
        "{ctx}\nno group of the 10 idle goroutines:\n{}",
        pretty(&v)
    );
    // And the target was not harmed: it finished the busy phase and exits cleanly.
    let out = t.stop();
    assert!(
        out.contains("quiet ops=") && out.contains("ok"),
        "{what}: target output: {out}"
    );
}

#[test]
fn budget_steps_down_under_load_and_back_up_oldest_go() {
    require_root();
    budget_round_trip(OLDEST);
}

#[test]
fn budget_steps_down_under_load_and_back_up_newest_go() {
    require_root();
    budget_round_trip(NEWEST);
}
