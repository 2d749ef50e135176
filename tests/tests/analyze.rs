//! `sfgi analyze`, `sfgi diff` and `sfgi attach --pprof` on real dumps of a real leaking Go
//! program (`tests/programs/dumps`), run as an unprivileged user (nobody): debug=2 dumps from
//! net/http/pprof as a time series, a SIGQUIT dump, a deadlock crash and a panic, Go 1.27's
//! goroutineleak profile (text and protobuf), protobuf goroutine profiles, stdin, user rules,
//! the live endpoint polled, and bad input and bad endpoints (each refused in one line, quickly,
//! without a panic). The assertions leave room for a loaded machine: rates are lower bounds.
use serde_json::Value;
use sfgi_tests::{build_program, groups, pretty, serve_dumps, sfgi_bin, signal, Target, NEWEST};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A directory nobody can read, holding a copy of `sfgi` and the dumps (the build tree may not
/// be readable by nobody).
struct Nobody {
    dir: PathBuf,
    sfgi: PathBuf,
}

/// What one `sfgi` run as nobody gave.
struct Run {
    args: Vec<String>,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Nobody {
    fn new(tag: &str) -> Nobody {
        // setpriv needs root to change users.
        sfgi_tests::require_root();
        let dir = std::env::temp_dir().join(format!("sfgi-analyze-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sfgi = dir.join("sfgi");
        std::fs::copy(sfgi_bin(), &sfgi).unwrap();
        std::fs::set_permissions(&sfgi, std::fs::Permissions::from_mode(0o755)).unwrap();
        Nobody { dir, sfgi }
    }

    /// Writes `data` to `name` in the directory, readable by all; returns its path.
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    /// Runs `sfgi args...` as nobody (uid and gid 65534, no groups), stdin from `stdin`.
    fn run(&self, args: &[&str], stdin: Option<&Path>) -> Run {
        let t0 = Instant::now();
        let out = Command::new(sfgi_gotool::tools::require("setpriv"))
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&self.sfgi)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .current_dir(&self.dir)
            .stdin(match stdin {
                Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
                None => Stdio::null(),
            })
            .output()
            .expect("setpriv");
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: t0.elapsed(),
        }
    }

    /// Runs it with `--format json` and returns the report (exit status 0 asserted).
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let r = self.run(&a, None);
        assert!(
            r.status.success(),
            "sfgi {:?} failed:\n{}",
            r.args,
            r.stderr
        );
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
    }
}

impl Drop for Nobody {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET `url` (plain HTTP/1.0, as net/http/pprof serves it); returns the body.
fn get(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("{url}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{url}: no HTTP header end"));
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{url}: {head}"
    );
    resp[split + 4..].to_vec()
}

/// The group blocked in `func`, from a report's `groups` (or a diff's `changes`).
fn group_in<'a>(list: &'a [Value], func: &str) -> &'a Value {
    list.iter()
        .find(|g| {
            let g = g.get("group").unwrap_or(g);
            g["blocked_at"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{func} at ")))
        })
        .unwrap_or_else(|| {
            panic!(
                "no group blocked in {func}:\n{}",
                serde_json::to_string_pretty(list).unwrap()
            )
        })
}

fn assert_leaky_send(g: &Value) {
    assert_eq!(g["wait_reason"], "chan send", "{}", pretty(g));
    assert_eq!(g["pattern"], "chan-send-blocked", "{}", pretty(g));
    assert!(
        g["blocked_at"]
            .as_str()
            .unwrap()
            .contains("tests/programs/dumps/main.go:"),
        "{}",
        pretty(g)
    );
}

#[test]
fn a_growing_leak_from_pprof_dumps_as_nobody() {
    // Ten a second: fast growth (L3), not an avalanche (L4 needs the whole process
    // to gain 1000 goroutines a minute).
    let (mut target, base) = serve_dumps("100ms");
    let nobody = Nobody::new("series");
    let mut files = Vec::new();
    // Ten debug=2 dumps half a second apart: the files' modification times are when they
    // were taken.
    for i in 0..10 {
        let body = get(&format!("{base}/debug/pprof/goroutine?debug=2"));
        files.push(nobody.file(&format!("dump{i}.txt"), &body));
        std::thread::sleep(Duration::from_millis(500));
    }
    target.stop();
    let mut args: Vec<&str> = vec!["analyze", "--threshold", "3s"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let r = nobody.json(&args);
    assert_eq!(r["dumps"].as_array().unwrap().len(), 10);
    let leaks = r["leaks"].as_array().unwrap();
    let g = group_in(leaks, "main.leakySend");
    assert_leaky_send(g);
    assert_eq!(g["status"], "growing", "{}", pretty(&r));
    assert_eq!(
        g["severity"],
        "L3",
        "10 a second is fast growth: {}",
        pretty(g)
    );
    assert!(
        g["created_by"]
            .as_str()
            .unwrap()
            .starts_with("main.spawnLeaks at "),
        "{}",
        pretty(g)
    );
    assert!(g["count"].as_u64().unwrap() >= 20, "{}", pretty(g));
    assert!(
        g["growth_per_minute"].as_f64().unwrap() > 300.0,
        "{}",
        pretty(g)
    );
    // The worker pool does not grow.
    let all = r["groups"].as_array().unwrap();
    let pool = group_in(all, "main.worker");
    assert_eq!(pool["count"], 4, "{}", pretty(pool));
    assert_ne!(pool["status"], "growing", "{}", pretty(pool));
    // The same as a table, with the notes on what dumps cannot tell.
    let mut args: Vec<&str> = vec!["analyze", "--threshold", "3s"];
    args.extend(names.iter().map(String::as_str));
    let t = nobody.run(&args, None);
    assert!(t.status.success(), "{}", t.stderr);
    assert!(
        t.stdout.contains("growing") && t.stdout.contains("main.leakySend at main.go:"),
        "{}",
        t.stdout
    );
    assert!(
        t.stdout
            .contains("note: ages come from each dump's own wait time"),
        "{}",
        t.stdout
    );
    eprintln!("{}", t.stdout);
}

#[test]
fn diff_of_two_dumps_of_a_growing_leak() {
    let (mut target, base) = serve_dumps("50ms");
    let nobody = Nobody::new("diff");
    let a = nobody.file(
        "a.txt",
        &get(&format!("{base}/debug/pprof/goroutine?debug=2")),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let b = nobody.file(
        "b.txt",
        &get(&format!("{base}/debug/pprof/goroutine?debug=2")),
    );
    target.stop();
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let r = nobody.json(&["diff", &a, &b]);
    let changes = r["changes"].as_array().unwrap();
    let g = group_in(changes, "main.leakySend");
    assert_eq!(g["change"], "grew", "{}", pretty(&r));
    let (before, after) = (g["before"].as_i64().unwrap(), g["after"].as_i64().unwrap());
    assert!(before > 0 && after > before, "{}", pretty(g));
    assert_eq!(g["delta"].as_i64().unwrap(), after - before);
    assert_leaky_send(&g["group"]);
    assert_eq!(group_in(changes, "main.worker")["change"], "same");
    // The biggest change first.
    assert_eq!(changes[0]["group"]["id"], g["group"]["id"]);
    let t = nobody.run(&["diff", &a, &b], None);
    assert!(t.status.success(), "{}", t.stderr);
    assert!(
        t.stdout
            .contains(&format!("{before} → {after} (+{}) grew", after - before)),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains("1 grew"), "{}", t.stdout);
    eprintln!("{}", t.stdout);
    // The other way round, the leak vanished? No: B is older only by name; the times say so.
    let rev = nobody.run(&["diff", &b, &a], None);
    assert!(!rev.status.success());
    assert!(rev.stderr.contains("is not newer than"), "{}", rev.stderr);
}

#[test]
fn sigquit_deadlock_and_panic_dumps() {
    let nobody = Nobody::new("crash");
    // SIGQUIT with GOTRACEBACK=all: every goroutine on stderr, then exit 2.
    let (mut target, _) = serve_dumps("20ms");
    std::thread::sleep(Duration::from_millis(1000));
    assert!(signal(target.pid(), libc::SIGQUIT));
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    target.stop();
    let dump = target.stderr();
    assert!(dump.starts_with("SIGQUIT: quit"), "{dump}");
    let f = nobody.file("sigquit.txt", dump.as_bytes());
    let r = nobody.json(&["analyze", f.to_str().unwrap()]);
    let g = group_in(r["groups"].as_array().unwrap(), "main.leakySend");
    assert_leaky_send(g);
    assert!(g["count"].as_u64().unwrap() >= 20, "{}", pretty(g));
    assert!(g["created_by"]
        .as_str()
        .unwrap()
        .starts_with("main.spawnLeaks at "));
    assert_eq!(
        g["status"],
        "normal",
        "one dump, every member under a minute old: {}",
        pretty(g)
    );

    // A deadlock: Go proved every goroutine blocked for good.
    let bin = build_program("dumps", NEWEST, false);
    let out = Command::new(&bin).arg("deadlock").output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        log.starts_with("fatal error: all goroutines are asleep - deadlock!"),
        "{log}"
    );
    let f = nobody.file("deadlock.txt", log.as_bytes());
    let r = nobody.json(&["analyze", f.to_str().unwrap()]);
    assert_eq!(r["dumps"][0]["deadlock"], true);
    let leaks = r["leaks"].as_array().unwrap();
    let g = group_in(leaks, "main.stuckReceive");
    assert_eq!(
        (
            g["status"].as_str(),
            g["severity"].as_str(),
            g["count"].as_u64()
        ),
        (Some("proven"), Some("L3"), Some(3)),
        "{}",
        pretty(g)
    );
    assert_eq!(g["pattern"], "chan-receive-blocked");
    assert_eq!(g["wait_reason"], "chan receive");
    assert!(g["created_by"]
        .as_str()
        .unwrap()
        .starts_with("main.main at "));
    assert_eq!(
        group_in(leaks, "main.main")["wait_reason"],
        "sync.WaitGroup.Wait"
    );

    // A panic with every goroutine: the blocked ones are listed, none judged from one look.
    let out = Command::new(&bin)
        .args(["panic", "-traceback", "all"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(log.starts_with("panic: dumps: giving up"), "{log}");
    let f = nobody.file("panic.txt", log.as_bytes());
    let r = nobody.json(&["analyze", f.to_str().unwrap()]);
    let g = group_in(r["groups"].as_array().unwrap(), "main.stuckReceive");
    assert_eq!(
        (g["count"].as_u64(), g["status"].as_str()),
        (Some(3), Some("normal"))
    );
    // Through stdin too.
    let s = nobody.run(&["analyze", "--format", "json", "-"], Some(&f));
    assert!(s.status.success(), "{}", s.stderr);
    let r: Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(r["dumps"][0]["file"], "-");
    assert_eq!(r["dumps"][0]["time_from"], "read-time");
}

#[test]
fn goroutineleak_and_protobuf_profiles() {
    let (mut target, base) = serve_dumps("50ms");
    let nobody = Nobody::new("profiles");
    std::thread::sleep(Duration::from_millis(500));
    let p1 = nobody.file(
        "goroutine1.pb.gz",
        &get(&format!("{base}/debug/pprof/goroutine")),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let p2 = nobody.file(
        "goroutine2.pb.gz",
        &get(&format!("{base}/debug/pprof/goroutine")),
    );
    // Go 1.27's leak profile: a GC proves the senders leaked (nothing can reach their channels).
    let leak_text = nobody.file(
        "leak.txt",
        &get(&format!("{base}/debug/pprof/goroutineleak?debug=2")),
    );
    let leak_pb = nobody.file(
        "leak.pb.gz",
        &get(&format!("{base}/debug/pprof/goroutineleak")),
    );
    target.stop();
    for f in [&leak_text, &leak_pb] {
        let r = nobody.json(&["analyze", f.to_str().unwrap()]);
        let g = group_in(r["leaks"].as_array().unwrap(), "main.leakySend");
        assert_eq!(
            (g["status"].as_str(), g["severity"].as_str()),
            (Some("proven"), Some("L3")),
            "{}: {}",
            f.display(),
            pretty(g)
        );
        assert_leaky_send(g);
        assert!(g["count"].as_u64().unwrap() >= 5, "{}", pretty(g));
    }
    // Protobuf goroutine profiles carry their own time: a series and a diff need no file times.
    let (p1, p2) = (p1.display().to_string(), p2.display().to_string());
    let r = nobody.json(&["analyze", &p1, &p2]);
    assert_eq!(r["dumps"][0]["kind"], "goroutine-profile");
    assert_eq!(r["dumps"][1]["time_from"], "profile");
    let g = group_in(r["groups"].as_array().unwrap(), "main.leakySend");
    assert_leaky_send(g);
    assert!(r["notes"].as_array().unwrap().iter().any(|n| n
        .as_str()
        .unwrap()
        .contains("protobuf profiles carry no goroutine ids")));
    let d = nobody.json(&["diff", &p1, &p2]);
    let c = group_in(d["changes"].as_array().unwrap(), "main.leakySend");
    assert_eq!(c["change"], "grew", "{}", pretty(&d));
    assert!(c["delta"].as_i64().unwrap() > 0, "{}", pretty(c));
}

/// One stderr line starting `sfgi: error: ` and naming `needle`; non-zero exit; no panic; fast.
fn assert_refused(r: &Run, needle: &str) {
    assert!(
        !r.status.success(),
        "sfgi {:?} succeeded:\n{}",
        r.args,
        r.stdout
    );
    assert!(
        !r.stderr.contains("panicked"),
        "sfgi {:?} panicked:\n{}",
        r.args,
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "sfgi {:?}: not one line:\n{}",
        r.args,
        r.stderr
    );
    assert!(lines[0].starts_with("sfgi: error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(needle),
        "sfgi {:?}: {:?} lacks {needle:?}",
        r.args,
        lines[0]
    );
    assert!(
        r.took < Duration::from_secs(10),
        "sfgi {:?} took {:?}",
        r.args,
        r.took
    );
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let nobody = Nobody::new("bad");
    let data = |name: &str| {
        std::fs::read(
            sfgi_tests::workspace_root()
                .join("tests/data/dumps")
                .join(name),
        )
        .unwrap()
    };
    let good = data("pprof-debug2.txt");
    let text = String::from_utf8(good.clone()).unwrap();
    // Cut inside a frame's location line.
    let cut = text.find(".go:").unwrap() + 2;
    let f = nobody.file("cut.txt", &good[..cut]);
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "cut.txt: truncated: goroutine",
    );
    // Garbled: a frame's location line lost.
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with('\t')).unwrap();
    lines.remove(at);
    let f = nobody.file("garbled.txt", lines.join("\n").as_bytes());
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "garbled.txt: garbled at line",
    );
    // A binary (sfgi itself), an HTML page, an empty file, a debug=1 profile, a heap profile.
    let f = nobody.file("binary", &std::fs::read(sfgi_bin()).unwrap()[..1 << 20]);
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "a binary file",
    );
    let f = nobody.file("index.html", &data("index.html"));
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "an HTML page",
    );
    let f = nobody.file("empty.txt", b"");
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "empty",
    );
    let f = nobody.file("debug1.txt", &data("debug1.txt"));
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "debug=1",
    );
    let f = nobody.file("words.txt", b"hello\nthis is not a dump\n");
    assert_refused(
        &nobody.run(&["analyze", f.to_str().unwrap()], None),
        "no goroutine in it",
    );
    // Huge: a sparse 8 GiB file is refused from its size; 2 MiB on stdin past --max-size 1M
    // is refused after reading 1 MiB.
    let huge = nobody.file("huge.txt", b"");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    assert_refused(
        &nobody.run(&["analyze", huge.to_str().unwrap()], None),
        "larger than the 256 MiB limit",
    );
    let big = nobody.file("big.txt", &good.repeat((2 << 20) / good.len() + 1));
    assert_refused(
        &nobody.run(&["analyze", "--max-size", "1M", "-"], Some(&big)),
        "-: larger than the 1 MiB limit",
    );
    // Missing, stdin twice, and a series whose times do not increase.
    assert_refused(
        &nobody.run(&["analyze", "/nonexistent/dump.txt"], None),
        "/nonexistent/dump.txt: cannot read it",
    );
    assert_refused(&nobody.run(&["analyze", "-", "-"], None), "stdin");
    let a = nobody.file("a.txt", &good);
    let b = nobody.file("b.txt", &good);
    let t = std::time::SystemTime::now();
    for (f, at) in [(&a, t), (&b, t - Duration::from_secs(60))] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }
    assert_refused(
        &nobody.run(&["diff", a.to_str().unwrap(), b.to_str().unwrap()], None),
        "is not newer than",
    );
    // Given their spacing, the same two are a series.
    let ok = nobody.run(
        &[
            "diff",
            "--interval",
            "1m",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok.status.success(), "{}", ok.stderr);
    assert!(ok.stdout.contains("no group changed"), "{}", ok.stdout);
}

/// Keeps the `groups` helper of the shared test library in use here too (the JSON shape is
/// the attach report's).
#[test]
fn analyze_json_has_the_attach_report_fields() {
    let nobody = Nobody::new("shape");
    let f = nobody.file(
        "d.txt",
        &std::fs::read(sfgi_tests::workspace_root().join("tests/data/dumps/pprof-debug2.txt"))
            .unwrap(),
    );
    let r = nobody.json(&["analyze", "--threshold", "1m", f.to_str().unwrap()]);
    for g in groups(&r) {
        for field in [
            "id",
            "status",
            "severity",
            "status_since",
            "pattern",
            "explanation",
            "fix_hint",
            "count",
            "duration",
            "duration_seconds",
            "first_seen",
            "last_seen",
            "wait_reason",
            "blocked_at",
            "created_by",
            "growth_per_minute",
            "stack_trace",
            "goroutine_ids",
            "reason",
            "incomplete",
        ] {
            assert!(g.get(field).is_some(), "{field} missing: {}", pretty(g));
        }
    }
    // The checked-in dump's oldest senders waited 2 minutes: suspect past a 1-minute threshold.
    let g = group_in(r["leaks"].as_array().unwrap(), "main.leakySend");
    assert_eq!(g["pattern"], "chan-send-blocked");
    // A user rule (tried before the built-ins) names the pool workers' shape healthy (they
    // are `normal`, not `resident`, in this dump: it shows them waiting under a minute).
    let rules = nobody.file(
        "pool.toml",
        br#"[[rule]]
id = "dumps-pool"
pattern = "dumps-worker-pool"
healthy = true
explanation = "{goroutines} pool workers waiting for jobs in {site}."
fix_hint = "Nothing to fix."
wait_reason = ["chan receive"]
frames_any = ['^main\.worker$']
"#,
    );
    let with_rules = nobody.json(&[
        "analyze",
        "--threshold",
        "1m",
        "--rules",
        rules.to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    let pool = group_in(with_rules["groups"].as_array().unwrap(), "main.worker");
    assert_eq!(
        (pool["pattern"].as_str(), pool["status"].as_str()),
        (Some("dumps-worker-pool"), Some("normal")),
        "{}",
        pretty(pool)
    );
    let g = group_in(with_rules["leaks"].as_array().unwrap(), "main.leakySend");
    assert_eq!(
        (g["status"].as_str(), g["count"].as_u64()),
        (Some("suspect"), Some(76))
    );
    assert_eq!(g["duration"], "2m0s");
}

/// `sfgi attach --pprof`: a live target polled over HTTP by nobody, judged as a live session.
#[test]
fn attach_pprof_polls_a_live_target_as_nobody() {
    let (mut target, base) = serve_dumps("100ms");
    let nobody = Nobody::new("pprof");
    // No pause budget here: on a loaded machine a slow poll would stretch the spacing past
    // what a 4 s threshold can judge (the budget has its own check below).
    let r = nobody.json(&[
        "attach",
        "--pprof",
        &base,
        "--duration",
        "8s",
        "--threshold",
        "4s",
        "--interval",
        "250ms",
        "--pause-budget",
        "0",
    ]);
    let p = &r["stats"]["pprof"];
    assert!(p["polls"].as_u64().unwrap() >= 8, "{}", pretty(p));
    assert_eq!(p["failed"], 0);
    assert!(p["max_poll_ms"].as_f64().unwrap() > 0.0, "{}", pretty(p));
    assert_eq!(p["endpoint"], format!("{base}/debug/pprof/"));
    let g = group_in(r["leaks"].as_array().unwrap(), "main.leakySend");
    assert_leaky_send(g);
    assert_eq!(
        (g["status"].as_str(), g["severity"].as_str()),
        (Some("growing"), Some("L3")),
        "{}",
        pretty(g)
    );
    assert!(g["created_by"]
        .as_str()
        .unwrap()
        .starts_with("main.spawnLeaks at "));
    // With Go 1.27's leak profile polled too, the leak is proven.
    let r = nobody.json(&[
        "attach",
        "--pprof",
        &base,
        "--duration",
        "3s",
        "--threshold",
        "2s",
        "--interval",
        "250ms",
        "--leak-profile",
        "1s",
        "--pause-budget",
        "0",
    ]);
    assert_eq!(
        r["stats"]["pprof"]["leak_profile"],
        true,
        "{}",
        pretty(&r["stats"])
    );
    assert!(r["stats"]["pprof"]["leak_polls"].as_u64().unwrap() >= 2);
    let g = group_in(r["leaks"].as_array().unwrap(), "main.leakySend");
    assert_eq!(
        (g["status"].as_str(), g["severity"].as_str()),
        (Some("proven"), Some("L3")),
        "{}",
        pretty(g)
    );
    // The pause budget stretches the polls: a 0.001 % budget makes every poll wait far longer
    // than the 3 s run, so one poll is all there is.
    let r = nobody.json(&[
        "attach",
        "--pprof",
        &base,
        "--duration",
        "3s",
        "--interval",
        "100ms",
        "--pause-budget",
        "0.001%",
    ]);
    assert_eq!(r["stats"]["pprof"]["polls"], 1, "{}", pretty(&r["stats"]));
    assert!(r["stats"]["pprof"]["interval_seconds"].as_f64().unwrap() > 3.0);
    target.stop();
}

/// `sfgi watch --pprof`: the live table at every poll (plain frames when piped), then the
/// final report.
#[test]
fn watch_pprof_redraws_at_every_poll_as_nobody() {
    let (mut target, base) = serve_dumps("100ms");
    let nobody = Nobody::new("watch-pprof");
    let r = nobody.run(
        &[
            "watch",
            "--pprof",
            &base,
            "--duration",
            "4s",
            "--threshold",
            "1s",
            "--interval",
            "500ms",
            "--pause-budget",
            "0",
        ],
        None,
    );
    target.stop();
    assert!(r.status.success(), "{}", r.stderr);
    let frames = r
        .stdout
        .lines()
        .filter(|l| l.starts_with(&format!("sfgi watch  {base}/debug/pprof/")))
        .count();
    assert!(frames >= 3, "{frames} frames:\n{}", r.stdout);
    assert!(r.stdout.contains("TREND"), "{}", r.stdout);
    // The final report, after the frames.
    let report = r
        .stdout
        .split("\nsfgi: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        report.contains("main.leakySend at main.go:"),
        "{}",
        r.stdout
    );
    // --listen with --pprof: a bad address is refused before the first poll, in one line.
    let l = nobody.run(&["watch", "--pprof", &base, "--listen", "nonsense"], None);
    assert!(!l.status.success());
    assert!(
        l.stderr.trim_end().lines().count() == 1 && l.stderr.contains("bad --listen address"),
        "{}",
        l.stderr
    );
}

/// `sfgi attach --pprof https://…`: TLS with a private CA given by `--pprof-ca`, and refused
/// in one line without it.
#[test]
fn attach_pprof_over_https() {
    let nobody = Nobody::new("pprof-tls");
    // A private CA, and the endpoint's certificate for 127.0.0.1 signed by it.
    let d = |n: &str| nobody.dir.join(n);
    let openssl = |args: &[&str]| {
        let out = Command::new(sfgi_gotool::tools::require("openssl"))
            .args(args)
            .current_dir(&nobody.dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=sfgi test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca);
    let mut req = vec!["req", "-subj", "/CN=127.0.0.1"];
    req.extend(ec);
    req.extend(["-keyout", "key.pem", "-out", "req.csr"]);
    openssl(&req);
    std::fs::write(d("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let (cert, key, ca_pem) = (d("cert.pem"), d("key.pem"), d("ca.pem"));
    std::fs::set_permissions(&ca_pem, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = build_program("dumps", NEWEST, false);
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut target = Target::start_until(
        &bin,
        &["serve", "-interval", "100ms", "-tls-cert", c, "-tls-key", k],
        "pprof https://",
    );
    let base = target
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("pprof "))
        .and_then(|l| l.split_whitespace().next())
        .expect("pprof address")
        .to_string();
    let ca_arg = ca_pem.to_str().unwrap();
    let r = nobody.json(&[
        "attach",
        "--pprof",
        &base,
        "--duration",
        "2s",
        "--pprof-ca",
        ca_arg,
    ]);
    assert!(
        r["stats"]["pprof"]["polls"].as_u64().unwrap() >= 1,
        "{}",
        pretty(&r["stats"])
    );
    let g = group_in(r["groups"].as_array().unwrap(), "main.leakySend");
    assert_leaky_send(g);
    let untrusted = nobody.run(&["attach", "--pprof", &base, "--duration", "2s"], None);
    assert_refused(&untrusted, "certificate");
    target.stop();
}

/// A fake endpoint answering every connection with `answer` (or holding it open, or streaming
/// forever); returns its base URL.
fn fake_endpoint(answer: &'static [u8], mode: &'static str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                match mode {
                    "hang" => std::thread::sleep(Duration::from_secs(30)),
                    "flood" => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
                        let chunk = vec![b'x'; 1 << 16];
                        // Up to 1 GiB, until the client hangs up.
                        for _ in 0..(1 << 14) {
                            if s.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    }
                    _ => {
                        let _ = s.write_all(answer);
                    }
                }
            });
        }
    });
    url
}

#[test]
fn attach_pprof_refuses_bad_endpoints_in_one_line() {
    let nobody = Nobody::new("pprof-bad");
    let attach = |url: &str, extra: &[&str]| {
        let mut a = vec!["attach", "--pprof", url, "--duration", "5s"];
        a.extend_from_slice(extra);
        nobody.run(&a, None)
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_refused(
        &attach(&format!("http://127.0.0.1:{port}"), &[]),
        "Connection refused",
    );
    assert_refused(
        &attach("localhost:6060", &[]),
        "is not an http:// or https:// URL",
    );
    let url = fake_endpoint(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "");
    assert_refused(&attach(&url, &[]), "404 Not Found: not a pprof endpoint");
    let url = fake_endpoint(
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
        "",
    );
    assert_refused(
        &attach(&url, &["--pprof-token", "wrong"]),
        "the endpoint wants credentials",
    );
    let url = fake_endpoint(
        b"HTTP/1.1 200 OK\r\nContent-Length: 46\r\n\r\n<!DOCTYPE html><html><body>login</body></html>",
        "",
    );
    assert_refused(&attach(&url, &[]), "an HTML page");
    let url = fake_endpoint(b"", "hang");
    let r = attach(&url, &["--pprof-timeout", "1s"]);
    assert_refused(&r, "no complete answer within 1s");
    assert!(r.took < Duration::from_secs(8), "{:?}", r.took);
    let url = fake_endpoint(b"", "flood");
    let r = attach(&url, &["--pprof-max-size", "1M"]);
    assert_refused(&r, "larger than the 1 MiB limit");
    assert!(r.took < Duration::from_secs(8), "{:?}", r.took);
    assert_refused(
        &attach(&url, &["--pprof-header", "no colon"]),
        "is not a header",
    );
}
