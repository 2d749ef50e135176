//! `sfgi watch` against `tests/programs/leaks`: the live output, every HTTP endpoint of
//! `--listen`, trigger coalescing, a second sfgi on the same target, and the end when the target
//! exits. Needs root.
//!
//! The HTTP client is a hand-written HTTP/1.1 request over a `TcpStream` and the Prometheus text
//! parser a small strict one below, so the tests need no extra crates.
use serde_json::Value;
use sfgi_tests::*;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fields every leak object has (the engine's `Leak` JSON contract).
const LEAK_FIELDS: &[&str] = &[
    "id",
    "status",
    "severity",
    "status_since",
    "status_seconds",
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
    "gc_cycles_blocked",
    "stack_trace",
    "creation_stack",
    "goroutine_ids",
    "stack_bytes",
    "reason",
    "distinct_objects",
    "incomplete",
];

// ---------------------------------------------------------------------------------------------
// A running `sfgi watch`.

/// Text a child wrote to a pipe, collected by a reader thread.
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<String>>);

impl Pipe {
    fn collect(r: impl Read + Send + 'static) -> (Pipe, std::thread::JoinHandle<()>) {
        let p = Pipe::default();
        let q = p.clone();
        let h = std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                q.0.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        (p, h)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Watch {
    child: Child,
    stdout: Pipe,
    stderr: Pipe,
    readers: Vec<std::thread::JoinHandle<()>>,
    addr: Option<SocketAddr>,
}

impl Watch {
    fn start(args: &[&str]) -> Watch {
        let mut child = Command::new(sfgi_bin())
            .arg("watch")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sfgi watch");
        let (stdout, h1) = Pipe::collect(child.stdout.take().expect("stdout"));
        let (stderr, h2) = Pipe::collect(child.stderr.take().expect("stderr"));
        let mut w = Watch {
            child,
            stdout,
            stderr,
            readers: vec![h1, h2],
            addr: None,
        };
        if args.contains(&"--listen") {
            let addr = w.wait_for(Duration::from_secs(15), |_, err| {
                err.lines()
                    .find_map(|l| l.strip_prefix("sfgi: serving on http://"))
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            });
            w.addr = Some(addr.unwrap_or_else(|| w.fail("no `sfgi: serving on http://ADDR` line")));
        }
        w
    }

    /// Waits until `f(stdout, stderr)` is Some, or panics after `timeout`.
    fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&str, &str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(&self.stdout.text(), &self.stderr.text()) {
                return Some(v);
            }
            if Instant::now() >= deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return f(&self.stdout.text(), &self.stderr.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to `timeout`) for the exit; returns its status and the whole output.
    fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        let st = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("sfgi watch did not exit within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        (st, self.stdout.text(), self.stderr.text())
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- sfgi watch stdout:\n{}\n--- stderr:\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    fn get(&self, path: &str) -> Resp {
        http(self.addr.expect("listening"), "GET", path, &[])
    }

    fn post(&self, path: &str) -> Resp {
        http(self.addr.expect("listening"), "POST", path, &[])
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        if r.status != 200 {
            self.fail(&format!("GET {path}: {} {}", r.status, r.body));
        }
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "GET {path}"
        );
        serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("GET {path}: bad JSON ({e}): {}", r.body))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`), the whole response read.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let r = Resp {
        status,
        headers,
        body: body.to_string(),
    };
    assert_ne!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "{method} {path}: chunked"
    );
    if let Some(n) = r.header("content-length") {
        assert_eq!(
            n.parse::<usize>().ok(),
            Some(r.body.len()),
            "{method} {path}: length"
        );
    }
    r
}

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text format (0.0.4).

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    ts: Option<i64>,
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parses a whole exposition: HELP/TYPE before a family's samples, samples of one family
/// together, names and labels well formed, no series twice at one timestamp. Returns the samples
/// and each family's type.
fn parse_prometheus(text: &str) -> Result<(Vec<Sample>, BTreeMap<String, String>), String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut done_families: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut seen: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut w = rest.trim_start().splitn(3, ' ');
            match (w.next(), w.next(), w.next()) {
                (Some("TYPE"), Some(name), Some(ty)) => {
                    if !is_metric_name(name) {
                        return Err(err("bad family name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        return Err(err(format!("bad type {ty:?}")));
                    }
                    if types.insert(name.to_string(), ty.to_string()).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                    if let Some(c) = current.replace(name.to_string()) {
                        done_families.insert(c);
                    }
                }
                (Some("HELP"), Some(name), _) if !is_metric_name(name) => {
                    return Err(err("bad family name".into()));
                }
                _ => {}
            }
            continue;
        }
        // name{labels} value [timestamp]
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => return Err(err("no value".into())),
        };
        if !is_metric_name(name) {
            return Err(err("bad metric name".into()));
        }
        let mut labels = BTreeMap::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                // label name
                let start = match chars.peek() {
                    Some(&(i, '}')) => {
                        end = i;
                        break;
                    }
                    Some(&(i, _)) => i,
                    None => return Err(err("unterminated labels".into())),
                };
                let eq = body[start..]
                    .find('=')
                    .ok_or_else(|| err("label without =".into()))?
                    + start;
                let lname = &body[start..eq];
                if !is_label_name(lname) {
                    return Err(err(format!("bad label name {lname:?}")));
                }
                while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("label value not quoted".into()));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(err("bad escape".into())),
                        },
                        Some((_, '"')) => break,
                        Some((_, '\n')) | None => {
                            return Err(err("unterminated label value".into()))
                        }
                        Some((_, c)) => value.push(c),
                    }
                }
                if labels.insert(lname.to_string(), value).is_some() {
                    return Err(err(format!("label {lname:?} twice")));
                }
                match chars.next() {
                    Some((_, ',')) => {}
                    Some((i, '}')) => {
                        end = i;
                        break;
                    }
                    _ => return Err(err("expected , or }".into())),
                }
            }
            &body[end + 1..]
        } else {
            rest
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?;
        let mut parts = rest.split(' ');
        let value = parse_value(parts.next().unwrap_or("")).map_err(err)?;
        let ts = match parts.next() {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| err("bad timestamp".into()))?),
        };
        if parts.next().is_some() {
            return Err(err("trailing fields".into()));
        }
        // Which family: the current TYPE'd one, by exact name or histogram/summary suffix.
        let fam = current
            .clone()
            .ok_or_else(|| err("sample before any TYPE".into()))?;
        let ty = types[&fam].as_str();
        let belongs = name == fam
            || (matches!(ty, "histogram" | "summary")
                && [("_bucket"), ("_sum"), ("_count")]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(fam.as_str())));
        if !belongs {
            return Err(err(format!(
                "sample outside its family (current family {fam})"
            )));
        }
        if done_families.contains(name) {
            return Err(err("family split".into()));
        }
        if ty == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(err("bucket without le".into()));
        }
        let key = format!("{name}{labels:?}@{ts:?}");
        if !seen.insert(key) {
            return Err(err("series repeated at one timestamp".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
            ts,
        });
    }
    Ok((samples, types))
}

fn parse_ok(what: &str, text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    parse_prometheus(text)
        .unwrap_or_else(|e| panic!("{what} is not valid Prometheus text: {e}\n{text}"))
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .next_back()
}

#[test]
fn prometheus_parser_is_strict() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{p=\"x\\\"y\"} 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n# TYPE g gauge\ng 1 100\ng 2 200\n";
    let (s, t) = parse_prometheus(ok).expect("valid");
    assert_eq!(s.len(), 6);
    assert_eq!(t["h"], "histogram");
    assert_eq!(s[0].labels["p"], "x\"y");
    assert_eq!(s[5].ts, Some(200));
    for bad in [
        "a 1\n",                                 // no TYPE
        "# TYPE a gauge\na 1",                   // no final newline
        "# TYPE a gauge\na{b=c} 1\n",            // unquoted
        "# TYPE a gauge\na 1\na 2\n",            // repeated series
        "# TYPE a gauge\nb 1\n",                 // outside family
        "# TYPE a gauge\na{1b=\"x\"} 1\n",       // bad label name
        "# TYPE a gauge\na one\n",               // bad value
        "# TYPE a gauge\n# TYPE a gauge\na 1\n", // two TYPEs
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

fn leaking_target() -> Target {
    let bin = build_program("leaks", NEWEST, false);
    Target::start(
        &bin,
        &[
            "chan-send",
            "-delay",
            "100ms",
            "-count",
            "1000",
            "-interval",
            "100ms",
        ],
    )
}

/// Waits until `/sfgi/leaks` lists the chan-send leak as growing; returns the array.
fn wait_growing(w: &mut Watch) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let v = w.json("/sfgi/leaks");
        let arr = v.as_array().cloned().unwrap_or_default();
        if arr.iter().any(|g| {
            g["status"] == "growing"
                && g["pattern"] == "chan-send-blocked"
                && g["blocked_at"]
                    .as_str()
                    .is_some_and(|s| contains_func(s, "main.leakChanSend"))
        }) {
            return arr;
        }
        if Instant::now() >= deadline {
            w.fail(&format!(
                "no growing chan-send group in /sfgi/leaks: {}",
                pretty(&v)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn scan_count(w: &Watch) -> f64 {
    let r = w.get("/metrics");
    let (s, _) = parse_ok("/metrics", &r.body);
    value_of(&s, "sfgi_inventory_scan_seconds_count", &[]).expect("scan count")
}

#[test]
fn watch_serves_every_endpoint_and_ends_with_the_target() {
    require_root();
    let _slot = attach_slot();
    let mut target = leaking_target();
    let pid = target.pid();
    let pid_s = pid.to_string();
    let mut w = Watch::start(&[
        "--pid",
        &pid_s,
        "--threshold",
        "2s",
        "--interval",
        "200ms",
        "--listen",
        "127.0.0.1:0",
    ]);
    let t0 = Instant::now();

    // /sfgi/leaks: the leak, with the Leak fields, most severe first.
    let leaks = wait_growing(&mut w);
    for g in &leaks {
        let obj = g.as_object().expect("leak object");
        for f in LEAK_FIELDS {
            assert!(obj.contains_key(*f), "leak without {f}: {}", pretty(g));
        }
        assert!(
            ["growing", "suspect", "proven"].contains(&g["status"].as_str().unwrap_or("")),
            "non-leak status in /sfgi/leaks: {}",
            pretty(g)
        );
    }

    // The live output (stdout is a pipe: plain lines) shows it too.
    let shown = w.wait_for(Duration::from_secs(5), |out, _| {
        out.lines()
            .any(|l| {
                l.contains("growing")
                    && l.contains("chan-send-blocked")
                    && l.contains("main.leakChanSend")
            })
            .then_some(())
    });
    if shown.is_none() {
        w.fail("the live output does not show the growing chan-send leak");
    }
    let out = w.stdout.text();
    assert!(!out.contains('\x1b'), "escape sequences on a pipe:\n{out}");
    assert!(
        out.lines().any(|l| l.contains(&format!("PID {pid}"))
            && l.contains("goroutines")
            && l.contains("events/s")),
        "no summary line:\n{out}"
    );

    // Filters.
    let growing = w.json("/sfgi/leaks?status=growing");
    let growing = growing.as_array().expect("array");
    assert!(!growing.is_empty() && growing.iter().all(|g| g["status"] == "growing"));
    let others = w.json("/sfgi/leaks?status=suspect,proven");
    assert!(others
        .as_array()
        .expect("array")
        .iter()
        .all(|g| g["status"] != "growing"));
    let sev = w.json("/sfgi/leaks?min_severity=L2");
    let sev = sev.as_array().expect("array");
    assert!(!sev.is_empty(), "the growing leak is at least L2");
    assert!(sev
        .iter()
        .all(|g| g["severity"].as_str().is_some_and(|s| s >= "L2")));
    let l4 = w.json("/sfgi/leaks?min_severity=l4");
    assert!(l4
        .as_array()
        .expect("array")
        .iter()
        .all(|g| g["severity"] == "L4"));
    for bad in [
        "/sfgi/leaks?status=bogus",
        "/sfgi/leaks?min_severity=L9",
        "/sfgi/leaks?view=x",
        "/sfgi/leaks?limt=3",
    ] {
        let r = w.get(bad);
        assert_eq!(r.status, 400, "GET {bad}: {}", r.body);
        assert!(serde_json::from_str::<Value>(&r.body).is_ok_and(|v| v["error"].is_string()));
    }

    // Goroutines view, paginated.
    let page = w.json("/sfgi/leaks?view=goroutines&limit=5&offset=0");
    let total = page["total"].as_u64().expect("total");
    assert!(total >= 5, "{}", pretty(&page));
    assert_eq!(page["offset"], 0);
    assert_eq!(page["limit"], 5);
    let gs = page["goroutines"].as_array().expect("goroutines");
    assert_eq!(gs.len(), 5);
    let leak_ids: HashSet<&str> = leaks.iter().filter_map(|g| g["id"].as_str()).collect();
    for g in gs {
        let keys: HashSet<&str> = g
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["id", "group", "duration", "first_seen", "stack_trace"]),
            "{}",
            pretty(g)
        );
        // A goroutine id: Go numbers goroutines from 1 (the main goroutine).
        assert!(g["id"].as_u64().is_some_and(|id| id >= 1), "{}", pretty(g));
        assert!(g["first_seen"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z') && s.contains('T')));
        assert!(g["duration"].as_str().is_some_and(|s| s.ends_with('s')));
        assert!(g["stack_trace"]
            .as_str()
            .is_some_and(|s| s.contains("main.leakChanSend")));
        let group = g["group"].as_str().expect("group");
        assert!(
            leak_ids.contains(group) || w.json("/sfgi/leaks").to_string().contains(group),
            "goroutine of a group that is no leak: {}",
            pretty(g)
        );
    }
    let next = w.json("/sfgi/leaks?view=goroutines&limit=5&offset=5");
    let first_ids: HashSet<u64> = gs.iter().filter_map(|g| g["id"].as_u64()).collect();
    assert!(next["goroutines"]
        .as_array()
        .expect("goroutines")
        .iter()
        .all(|g| !first_ids.contains(&g["id"].as_u64().unwrap_or(0))));
    assert_eq!(
        w.json("/sfgi/leaks?view=goroutines&limit=5000")["limit"],
        1000
    );
    assert_eq!(w.json("/sfgi/leaks?view=goroutines")["limit"], 100);

    // /sfgi/groups: every group, resident ones included, same fields.
    let groups = w.json("/sfgi/groups");
    let groups = groups.as_array().expect("array");
    assert!(
        groups.iter().any(|g| g["status"] == "resident"),
        "no resident group: {}",
        pretty(&Value::Array(groups.clone()))
    );
    assert!(groups.iter().any(|g| g["pattern"] == "chan-send-blocked"));
    let leak_keys: HashSet<&String> = leaks[0].as_object().expect("object").keys().collect();
    for g in groups {
        let keys: HashSet<&String> = g.as_object().expect("object").keys().collect();
        assert_eq!(keys, leak_keys, "groups and leaks have other fields");
    }
    let resident = w.json("/sfgi/groups?status=resident");
    assert!(resident
        .as_array()
        .expect("array")
        .iter()
        .all(|g| g["status"] == "resident"));

    // /sfgi/profile: Prometheus text with timestamps.
    let r = w.get("/sfgi/profile");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    let (samples, types) = parse_ok("/sfgi/profile", &r.body);
    assert_eq!(
        types.get("sfgi_profile_goroutines").map(String::as_str),
        Some("gauge")
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for s in &samples {
        let ts =
            s.ts.unwrap_or_else(|| panic!("profile sample without timestamp: {s:?}"));
        assert!((now_ms - 3_700_000..=now_ms + 5_000).contains(&ts), "{s:?}");
    }
    for state in ["running", "waiting", "syscall", "leaked"] {
        assert!(
            value_of(&samples, "sfgi_profile_goroutines", &[("state", state)]).is_some(),
            "no {state} state in the profile:\n{}",
            r.body
        );
    }
    assert!(value_of(&samples, "sfgi_profile_goroutines", &[("state", "waiting")]).unwrap() >= 5.0);
    let grp = samples
        .iter()
        .find(|s| {
            s.name == "sfgi_profile_group_goroutines"
                && s.labels.get("pattern").map(String::as_str) == Some("chan-send-blocked")
        })
        .unwrap_or_else(|| panic!("no chan-send group in the profile:\n{}", r.body));
    assert!(grp.labels["group"].starts_with("g-") && grp.labels.contains_key("status"));

    // /metrics.
    let r = w.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let (m, types) = parse_ok("/metrics", &r.body);
    for (fam, ty) in [
        ("sfgi_goroutines", "gauge"),
        ("sfgi_leak_groups", "gauge"),
        ("sfgi_leaked_goroutines", "gauge"),
        ("sfgi_leak_status_seconds", "gauge"),
        ("sfgi_events_total", "counter"),
        ("sfgi_events_dropped_total", "counter"),
        ("sfgi_probe_read_errors_total", "counter"),
        ("sfgi_probe_stack_errors_total", "counter"),
        ("sfgi_event_decode_errors_total", "counter"),
        ("sfgi_ebpf_log_records_total", "counter"),
        ("sfgi_inventory_unreadable_goroutines", "gauge"),
        ("sfgi_inventory_failed", "gauge"),
        ("sfgi_gc_cycles_total", "counter"),
        ("sfgi_inventory_scan_seconds", "histogram"),
        ("sfgi_process_cpu_seconds_total", "counter"),
        ("sfgi_process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(
            types.get(fam).map(String::as_str),
            Some(ty),
            "{fam} in\n{}",
            r.body
        );
    }
    assert!(value_of(&m, "sfgi_goroutines", &[("state", "waiting")]).is_some_and(|v| v >= 5.0));
    assert!(value_of(
        &m,
        "sfgi_leak_groups",
        &[("status", "growing"), ("pattern", "chan-send-blocked")]
    )
    .is_some_and(|v| v >= 1.0));
    assert!(value_of(
        &m,
        "sfgi_leaked_goroutines",
        &[("status", "growing"), ("pattern", "chan-send-blocked")]
    )
    .is_some_and(|v| v >= 5.0));
    // The growing group has been growing for a while, and never longer than SFGI watched.
    let held = value_of(
        &m,
        "sfgi_leak_status_seconds",
        &[("status", "growing"), ("pattern", "chan-send-blocked")],
    );
    assert!(
        held.is_some_and(|v| (0.0..600.0).contains(&v)),
        "sfgi_leak_status_seconds of the growing group: {held:?}\n{}",
        r.body
    );
    assert!(value_of(&m, "sfgi_events_total", &[("probe", "park")]).is_some_and(|v| v > 0.0));
    // A target leaking 10 goroutines a second cannot fill the default 16 MiB ring buffer.
    assert_eq!(
        value_of(&m, "sfgi_events_dropped_total", &[("probe", "park")]),
        Some(0.0),
        "events dropped in a quiet run:\n{}",
        r.body
    );
    assert_eq!(value_of(&m, "sfgi_inventory_failed", &[]), Some(0.0));
    assert!(value_of(&m, "sfgi_probe_read_errors_total", &[("probe", "park")]).is_some());
    assert!(value_of(&m, "sfgi_process_resident_memory_bytes", &[]).is_some_and(|v| v > 1e6));
    assert!(value_of(&m, "sfgi_process_cpu_seconds_total", &[]).is_some_and(|v| v > 0.0));
    // One series per leak group (at most 20, largest first), naming its sites: the only
    // family with group-level labels.
    let per_group: Vec<&Sample> = m
        .iter()
        .filter(|s| s.name == "sfgi_leak_group_goroutines")
        .collect();
    assert!(
        !per_group.is_empty() && per_group.len() <= 20,
        "sfgi_leak_group_goroutines: {per_group:?}"
    );
    assert!(per_group.iter().any(|s| s.value >= 5.0
        && s.labels.get("pattern").map(String::as_str) == Some("chan-send-blocked")
        && s.labels
            .get("blocking_site")
            .is_some_and(|b| b.starts_with("main.leakChanSend at main.go:"))
        && s.labels
            .get("creation_site")
            .is_some_and(|c| c.starts_with("main.spawnChanSend at main.go:"))));
    for s in &m {
        for k in s.labels.keys() {
            let group_label = s.name == "sfgi_leak_group_goroutines"
                && ["group", "blocking_site", "creation_site"].contains(&k.as_str());
            assert!(
                group_label
                    || ["state", "status", "severity", "pattern", "probe", "le", "kind", "outcome"]
                        .contains(&k.as_str()),
                "unbounded label {k} in /metrics: {s:?}"
            );
        }
    }

    // Trigger a scan once the growth is established (seen for half the 2 s threshold: the
    // judge holds it from then on). Right at its onset the evidence can still flicker for a
    // judgment under load, and the scan's own verdict is one more judgment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w
        .json("/sfgi/leaks")
        .as_array()
        .into_iter()
        .flatten()
        .any(|g| g["status"] == "growing" && g["status_seconds"].as_f64() >= Some(1.5))
    {
        if Instant::now() >= deadline {
            w.fail("the growing group never stayed growing for 1.5 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = w.post("/sfgi/trigger-scan");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("JSON");
    let keys: HashSet<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["scanned", "leaked", "duration_ms"]),
        "{v}"
    );
    assert!(v["scanned"].as_u64().is_some_and(|n| n >= 5), "{v}");
    assert!(v["leaked"].as_u64().is_some_and(|n| n >= 5), "{v}");
    assert!(v["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{v}");
    let r = w.get("/sfgi/trigger-scan");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(w.post("/sfgi/leaks").status, 405);
    assert_eq!(w.get("/nope").status, 404);
    assert_eq!(w.get("/sfgi").status, 404);

    // Ten concurrent triggers share scans.
    std::thread::sleep(Duration::from_millis(1100));
    let before = scan_count(&w);
    let addr = w.addr.expect("addr");
    let replies: Vec<Resp> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|_| s.spawn(move || http(addr, "POST", "/sfgi/trigger-scan", &[])))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).expect("JSON");
        assert!(
            v["scanned"].as_u64().is_some()
                && v["leaked"].as_u64().is_some()
                && v["duration_ms"].is_number()
        );
    }
    let after = scan_count(&w);
    assert!(
        after - before >= 1.0 && after - before <= 3.0,
        "10 concurrent triggers ran {} scans",
        after - before
    );

    // The target exits: watch says so, prints the final report, exits 0.
    assert!(signal(pid, libc::SIGKILL));
    let _ = target.exit_status();
    let (st, out, err) = w.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "exit {st}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("target PID {pid} exited")),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    let tail = &out[out.find(&format!("target PID {pid} exited")).unwrap_or(0)..];
    assert!(
        tail.contains("leak group(s):")
            && tail.contains("chan-send-blocked")
            && tail.contains("the target exited"),
        "no final report after the exit line:\n{out}"
    );
    // A generous deadline for the whole tour, not a latency figure: once the leak is growing
    // (2 s threshold) every request answers in milliseconds, and each wait above has its own
    // deadline; requests that each hung for seconds would add up to this.
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "the endpoint tour and the exit took {:?}: expected within 60 s (each request answers in \
         milliseconds; a slower run means requests hang)",
        t0.elapsed()
    );
}

/// The target exec's another program (same PID): watch says the target is gone, prints the final
/// report and exits 0 rather than tracing a program that is no longer there.
#[test]
fn watch_ends_when_the_target_execs_another_program() {
    require_root();
    let _slot = attach_slot();
    let bin = build_program("leaks", NEWEST, false);
    let mut target = Target::start(&bin, &["chan-send", "-delay", "100ms", "-exec-after", "3s"]);
    let pid = target.pid();
    let pid_s = pid.to_string();
    let mut w = Watch::start(&["--pid", &pid_s, "--interval", "200ms", "--threshold", "1s"]);
    let (st, out, err) = w.wait_exit(Duration::from_secs(20));
    assert!(st.success(), "exit {st}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "target PID {pid} exited (it exec'd another program"
        )),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    // The process is still there, running sleep: SFGI let go of it unharmed.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert!(
        exe.to_string_lossy().ends_with("sleep"),
        "PID {pid} runs {exe:?}"
    );
    assert!(signal(pid, libc::SIGTERM));
    let _ = target.exit_status();
}

#[test]
fn watch_with_token_and_a_second_sfgi_on_the_same_target() {
    require_root();
    let _slot = attach_slot();
    let target = leaking_target();
    let pid = target.pid();
    let pid_s = pid.to_string();
    let mut w = Watch::start(&[
        "--pid",
        &pid_s,
        "--threshold",
        "2s",
        "--interval",
        "250ms",
        "--listen",
        ":0",
        "--token",
        "s3cret",
    ]);
    let addr = w.addr.expect("addr");
    assert!(addr.ip().is_loopback(), ":0 must bind loopback, got {addr}");

    // Auth.
    let r = w.get("/sfgi/leaks");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer")));
    assert_eq!(
        http(addr, "GET", "/metrics", &[("Authorization", "Bearer nope")]).status,
        401
    );
    let ok = http(
        addr,
        "GET",
        "/sfgi/leaks",
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);

    // A second sfgi on the same target: both see events.
    let attach = std::thread::spawn(move || attach_json(pid, "4s", &["--threshold", "2s"]));
    let note = w.wait_for(Duration::from_secs(8), |out, _| {
        out.contains("another sfgi is attached to this PID")
            .then_some(())
    });
    let report = attach.join().expect("sfgi attach");
    if note.is_none() {
        w.fail("no note about the other sfgi attached to the same PID");
    }
    let g = find_group(
        &report,
        "chan send",
        "main.leakChanSend",
        "main.spawnChanSend",
    )
    .unwrap_or_else(|| panic!("the second sfgi saw no leak: {}", pretty(&report)));
    assert!(
        g["count"].as_u64().is_some_and(|n| n >= 10),
        "{}",
        pretty(g)
    );
    assert!(report["stats"]["events"].as_u64().is_some_and(|n| n > 0));
    let m = http(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret")],
    );
    let (s, _) = parse_ok("/metrics", &m.body);
    let before = value_of(&s, "sfgi_events_total", &[("probe", "park")]).expect("park events");
    std::thread::sleep(Duration::from_millis(600));
    let m = http(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret")],
    );
    let (s, _) = parse_ok("/metrics", &m.body);
    let after = value_of(&s, "sfgi_events_total", &[("probe", "park")]).expect("park events");
    assert!(
        after > before,
        "watch stopped seeing events after the second sfgi detached"
    );

    // SIGTERM: detaches, prints the final report, exits 0.
    assert!(signal(w.child.id(), libc::SIGTERM));
    let (st, out, err) = w.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "exit {st}\nstderr:\n{err}");
    assert!(out.contains(&format!("detached from PID {pid}")), "{out}");
    assert!(out.contains("chan-send-blocked"), "{out}");
    drop(target);
}

/// `sfgi watch --pprof URL --listen`: the same endpoints, JSON and metrics from the polls of a
/// real Go program's net/http/pprof (no probes: the eBPF-only families are absent, the polls'
/// own are there), behind the same bearer token (from `--token-file` here).
#[test]
fn watch_pprof_serves_the_same_endpoints() {
    let (mut target, base) = serve_dumps("100ms");
    let dir = std::env::temp_dir().join(format!("sfgi-watch-pprof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let token_path = token_file.to_string_lossy().into_owned();
    let mut w = Watch::start(&[
        "--pprof",
        &base,
        "--listen",
        ":0",
        "--token-file",
        &token_path,
        "--threshold",
        "2s",
        "--interval",
        "250ms",
        "--pause-budget",
        "0",
    ]);
    let addr = w.addr.expect("addr");
    assert!(addr.ip().is_loopback(), ":0 must bind loopback, got {addr}");
    let auth = [("Authorization", "Bearer s3cret")];

    // Without the token, or with a wrong one: 401 on every endpoint.
    for path in ["/sfgi/leaks", "/sfgi/groups", "/metrics", "/sfgi/profile"] {
        let r = http(addr, "GET", path, &[]);
        assert_eq!(r.status, 401, "GET {path} without a token: {}", r.body);
        assert!(r
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
    }
    assert_eq!(
        http(addr, "GET", "/metrics", &[("Authorization", "Bearer nope")]).status,
        401
    );
    assert_eq!(http(addr, "POST", "/sfgi/trigger-scan", &[]).status, 401);

    // The leak group appears, growing, with its pattern and sites, in the engine's Leak JSON.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leak = loop {
        let r = http(addr, "GET", "/sfgi/leaks", &auth);
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).expect("JSON");
        let found = v.as_array().and_then(|a| {
            a.iter()
                .find(|g| {
                    g["status"] == "growing"
                        && g["blocked_at"]
                            .as_str()
                            .is_some_and(|s| s.starts_with("main.leakySend at "))
                })
                .cloned()
        });
        if let Some(g) = found {
            break g;
        }
        if Instant::now() >= deadline {
            w.fail(&format!("no growing main.leakySend group: {}", pretty(&v)));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    for f in LEAK_FIELDS {
        assert!(
            leak.get(*f).is_some(),
            "leak JSON lacks {f}: {}",
            pretty(&leak)
        );
    }
    assert_eq!(leak["pattern"], "chan-send-blocked", "{}", pretty(&leak));
    assert_eq!(leak["wait_reason"], "chan send");
    assert!(leak["created_by"]
        .as_str()
        .is_some_and(|s| s.starts_with("main.spawnLeaks at ")));
    let id = leak["id"].as_str().expect("id").to_string();

    // Its members, and every group (the pool workers and the rest too).
    let r = http(addr, "GET", "/sfgi/leaks?view=goroutines&limit=5", &auth);
    let page: Value = serde_json::from_str(&r.body).expect("JSON");
    assert!(
        page["total"].as_u64().is_some_and(|n| n >= 5),
        "{}",
        pretty(&page)
    );
    assert_eq!(page["goroutines"].as_array().map(Vec::len), Some(5));
    assert!(page["goroutines"][0]["stack_trace"]
        .as_str()
        .is_some_and(|s| s.contains("main.leakySend")));
    let r = http(addr, "GET", "/sfgi/groups", &auth);
    let groups: Value = serde_json::from_str(&r.body).expect("JSON");
    assert!(
        groups.as_array().is_some_and(|a| a.len() >= 2),
        "{}",
        pretty(&groups)
    );

    // /metrics: the same series as the eBPF watch for the verdicts, the polls' in place of the
    // probes'.
    let r = http(addr, "GET", "/metrics", &auth);
    assert_eq!(r.status, 200);
    let (m, types) = parse_ok("/metrics", &r.body);
    for (fam, ty) in [
        ("sfgi_goroutines", "gauge"),
        ("sfgi_leak_groups", "gauge"),
        ("sfgi_leaked_goroutines", "gauge"),
        ("sfgi_leak_status_seconds", "gauge"),
        ("sfgi_leak_group_goroutines", "gauge"),
        ("sfgi_inventory_scan_seconds", "histogram"),
        ("sfgi_pprof_polls_total", "counter"),
        ("sfgi_pprof_poll_failures_total", "counter"),
        ("sfgi_pprof_last_poll_seconds", "gauge"),
        ("sfgi_pprof_longest_poll_seconds", "gauge"),
        ("sfgi_pprof_poll_interval_seconds", "gauge"),
        ("sfgi_process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(
            types.get(fam).map(String::as_str),
            Some(ty),
            "{fam} in\n{}",
            r.body
        );
    }
    for absent in [
        "sfgi_events_total",
        "sfgi_events_dropped_total",
        "sfgi_probe_missing",
        "sfgi_gc_cycles_total",
        "sfgi_overhead_mode",
    ] {
        assert!(
            !types.contains_key(absent),
            "{absent} with --pprof:\n{}",
            r.body
        );
    }
    let series = m
        .iter()
        .find(|s| s.name == "sfgi_leak_group_goroutines" && s.labels.get("group") == Some(&id))
        .unwrap_or_else(|| panic!("no series of group {id}:\n{}", r.body));
    assert_eq!(series.labels["pattern"], "chan-send-blocked");
    assert!(series.labels["blocking_site"].starts_with("main.leakySend at main.go:"));
    assert!(series.value >= 5.0, "{series:?}");
    assert!(value_of(
        &m,
        "sfgi_leak_groups",
        &[("status", "growing"), ("pattern", "chan-send-blocked")]
    )
    .is_some_and(|v| v >= 1.0));
    assert!(value_of(&m, "sfgi_goroutines", &[("state", "waiting")]).is_some_and(|v| v >= 5.0));
    let polls = value_of(&m, "sfgi_pprof_polls_total", &[]).expect("polls");
    assert!(polls >= 2.0, "{polls}");
    assert_eq!(
        value_of(&m, "sfgi_pprof_poll_failures_total", &[]),
        Some(0.0)
    );
    assert!(value_of(&m, "sfgi_inventory_scan_seconds_count", &[]).is_some_and(|n| n >= 2.0));
    let r = http(addr, "GET", "/sfgi/profile", &auth);
    assert_eq!(r.status, 200);
    parse_ok("/sfgi/profile", &r.body);

    // trigger-scan answers with a poll (the last one when it is under a second old).
    let r = http(addr, "POST", "/sfgi/trigger-scan", &auth);
    assert_eq!(r.status, 200, "{}", r.body);
    let scan: Value = serde_json::from_str(&r.body).expect("JSON");
    assert!(
        scan["scanned"].as_u64().is_some_and(|n| n >= 5),
        "{}",
        pretty(&scan)
    );
    assert!(matches!(r.header("x-sfgi-scan"), Some("new" | "reused")));

    // SIGTERM: the final report, exit 0.
    assert!(signal(w.child.id(), libc::SIGTERM));
    let (st, out, err) = w.wait_exit(Duration::from_secs(15));
    assert!(st.success(), "{st}\n{err}");
    assert!(out.contains("main.leakySend at main.go:"), "{out}");
    target.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regenerates `docs/watch-capture.txt`: `sfgi watch` on the demo service in tmux, the screen
/// after ~15 s. Run by hand: `cargo test -p sfgi-tests --test watch -- --ignored capture`.
#[test]
#[ignore = "writes docs/watch-capture.txt; needs tmux"]
fn capture_live_table_for_the_readme() {
    require_root();
    let dir = workspace_root().join("examples/leaky-service");
    let bin = build_dir(&dir, NEWEST, false);
    let target = Target::start_until(&bin, &["-addr", "127.0.0.1:0"], "listening on");
    let session = format!("sfgi-capture-{}", std::process::id());
    let cmd = format!(
        "{} watch --pid {} --threshold 5s --listen 127.0.0.1:0",
        sfgi_bin().display(),
        target.pid()
    );
    let tmux = |args: &[&str]| {
        let o = Command::new(sfgi_gotool::tools::require("tmux"))
            .args(args)
            .output()
            .expect("running tmux");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "190",
        "-y",
        "30",
        &cmd,
    ]);
    std::thread::sleep(Duration::from_secs(15));
    let screen = tmux(&["capture-pane", "-p", "-t", &session]);
    let _ = Command::new("tmux")
        .args(["send-keys", "-t", &session, "C-c"])
        .status();
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let text: String = screen
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string();
    assert!(
        text.contains("growing"),
        "no growing leak on screen:\n{text}"
    );
    std::fs::write(workspace_root().join("docs/watch-capture.txt"), text + "\n")
        .expect("writing the capture");
    drop(target);
}
