//! A real gRPC server (`tests/programs/grpc`: gRPC-Go 1.33 from Debian's `golang-google-grpc-dev`
//! sources, built offline in GOPATH mode, stripped, newest Go) with its clients in the same
//! process: 5 client connections with keepalive, 10 idle `Health.Watch` streams, a periodic purge
//! loop and a unary load. With `sfgi watch --threshold 2s` for 60 s: no leak group at any poll —
//! the server's stream handlers and per-connection loops are the connections' goroutines
//! (`connection-scoped`), the client side is open client streams (`grpc-client-stream`), the
//! keepalive and purge loops select on timers. Then a leak: one `Watch` handler per request that
//! ignores its stream's context and outlives its client — reported `growing`, with an
//! explanation that names the select's real cases. Needs root.
use serde_json::Value;
use sfgi_tests::scenarios::{brief, WatchProc};
use sfgi_tests::*;
use std::time::{Duration, Instant};

const THRESHOLD_S: u64 = 2;
const HEALTHY_FOR: Duration = Duration::from_secs(60);

#[test]
fn grpc_server_is_healthy_then_a_leaked_stream_handler_is_reported() {
    require_root();
    let sources = sfgi_gotool::tools::require(sfgi_gotool::tools::GRPC_SOURCES);
    assert!(sources.is_file());
    let bin = {
        let gocode = std::path::Path::new(sfgi_gotool::tools::GOCODE);
        sfgi_gotool::build(
            &program_dir("grpc"),
            &sfgi_gotool::Build {
                version: NEWEST,
                stripped: true,
                gopath: Some(gocode),
                ..sfgi_gotool::Build::default()
            },
        )
        .unwrap_or_else(|e| panic!("building tests/programs/grpc: {e:#}"))
    };
    let mut target = Target::start_until(&bin, &["-rps", "1000"], "ready addr=");
    let w = WatchProc::start(
        target.pid(),
        &["--threshold".into(), format!("{THRESHOLD_S}s")],
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    let t0 = Instant::now();
    let mut seen: Vec<(f64, Vec<String>)> = Vec::new();
    let mut polls = 0;
    while t0.elapsed() < HEALTHY_FOR {
        let l = w.leaks();
        polls += 1;
        if !l.is_empty() {
            seen.push((t0.elapsed().as_secs_f64(), l.iter().map(brief).collect()));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let groups = w.get_json("/sfgi/groups").unwrap_or(Value::Null);
    let patterns: Vec<String> = groups
        .as_array()
        .map(|a| a.iter().map(brief).collect())
        .unwrap_or_default();
    eprintln!("after {polls} polls, groups:\n{}", patterns.join("\n"));
    assert!(
        seen.is_empty(),
        "leak groups on a healthy gRPC server (threshold {THRESHOLD_S}s):\n{seen:#?}\nall groups:\n{}",
        patterns.join("\n")
    );
    for want in ["per-connection", "grpc-client-stream"] {
        assert!(
            patterns.iter().any(|p| p.contains(want)),
            "no {want} group:\n{}",
            patterns.join("\n")
        );
    }

    // The leak: one blocked Watch handler per 100 ms.
    assert!(signal(target.pid(), libc::SIGUSR1));
    let started = Instant::now();
    let leak = loop {
        let l = w.leaks();
        if let Some(g) = l.iter().find(|g| {
            g["blocked_at"]
                .as_str()
                .is_some_and(|s| s.contains("main.(*leakyHealth).Watch"))
                && g["status"] == "growing"
        }) {
            break g.clone();
        }
        let last: Vec<String> = l.iter().map(brief).collect();
        assert!(
            started.elapsed() < Duration::from_secs(THRESHOLD_S + 15),
            "the leaked Watch handlers were not reported growing within {} s: {last:#?}",
            THRESHOLD_S + 15
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "leak reported {:.1} s after it started: {}\n{}",
        started.elapsed().as_secs_f64(),
        brief(&leak),
        leak["explanation"]
    );
    let text = leak["explanation"].as_str().unwrap_or_default();
    assert!(
        text.contains("in a select at main.(*leakyHealth).Watch on a data channel and a done/stop channel (chan struct{})"),
        "{text}"
    );
    assert!(text.contains("keeps growing"), "{text}");
    target.stop();
}
