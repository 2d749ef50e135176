//! The Go programs themselves behave as the attach tests and the README demo assume, with the
//! oldest and newest supported Go. No root needed.
use sfgi_tests::*;
use std::time::Duration;

/// `leaks`: ready line, heartbeat on SIGUSR1, "heartbeat=N ok" and exit 0 on SIGTERM.
#[test]
fn leaks_program_protocol() {
    for version in [OLDEST, NEWEST] {
        let bin = build_program("leaks", version, false);
        let mut t = Target::start(&bin, &["all", "-delay", "0s", "-count", "3"]);
        let a = t.heartbeat();
        std::thread::sleep(Duration::from_millis(100));
        let b = t.heartbeat();
        assert!(b > a, "Go {version}: heartbeat did not grow ({a} -> {b})");
        let out = t.stop();
        assert!(
            t.exit_status().is_some_and(|s| s.success()),
            "Go {version}: exit status {:?}",
            t.exit_status()
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("heartbeat=") && l.ends_with(" ok")),
            "Go {version}: stdout {out:?}"
        );
        assert!(t.stderr().is_empty(), "Go {version}: stderr {}", t.stderr());
    }
}

/// `examples/leaky-service` builds, serves its self-load, and exits 0 on SIGTERM.
#[test]
fn leaky_service_runs_and_stops() {
    let dir = workspace_root().join("examples").join("leaky-service");
    for version in [OLDEST, NEWEST] {
        let bin = build_dir(&dir, version, false);
        let mut t = Target::start_until(
            &bin,
            &["-addr", "127.0.0.1:0"],
            "leaky-service listening on",
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(t.alive(), "Go {version}: died; stderr {}", t.stderr());
        let out = t.stop();
        assert!(
            t.exit_status().is_some_and(|s| s.success()),
            "Go {version}: exit status {:?}; stderr {}",
            t.exit_status(),
            t.stderr()
        );
        let requests = out.split("requests=").nth(1).and_then(|r| {
            r.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .ok()
        });
        assert!(
            requests.is_some_and(|n| n >= 10),
            "Go {version}: self-load did not run; stdout {out:?}"
        );
    }
}
