//! What runs around SFGI on a fleet (`deploy/`): the Prometheus alert rules (`promtool check
//! rules` / `promtool test rules`) and example configurations, a real Prometheus scraping a real
//! `sfgi agent` (run with the DaemonSet's args and ConfigMap) and `sfgi watch --listen` on a leaking
//! Go program until a leak alert fires (and Alertmanager receives it), every PromQL expression of
//! the Grafana dashboard run against that Prometheus, and the Kubernetes manifests and Dockerfile
//! checked offline. The live test needs root (it attaches probes); docs/FLEET.md says what each
//! check shows.
use serde_json::Value;
use sfgi_gotool::tools::require;
use sfgi_tests::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn deploy(rel: &str) -> PathBuf {
    workspace_root().join("deploy").join(rel)
}

fn run_ok(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {desc}: {e}"));
    assert!(
        out.status.success(),
        "{desc} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh temporary directory under `target/`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = target_dir()
            .join("fleet-tests")
            .join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("creating a temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) on drop, whatever way the test ends.
struct Killed {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Killed {
    fn spawn(what: &'static str, cmd: &mut Command, log: PathBuf) -> Killed {
        let f = std::fs::File::create(&log).expect("creating a log file");
        let f2 = f.try_clone().expect("cloning a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Killed { child, what, log }
    }

    /// The end of its output (the last 4000 bytes).
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("{} exited ({st}):\n{}", self.what, self.log());
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (Prometheus and Alertmanager cannot report a port 0 bind).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    l.local_addr().expect("local addr").port()
}

fn percent_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// One HTTP/1.0 GET (so the Go servers answer without chunking and close): (status, body).
fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (st, body) = http_get(addr, path, None).unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: bad JSON ({e}): {body}"))
}

/// Waits until `path` on `addr` answers 200.
fn wait_ready(addr: SocketAddr, path: &str, p: &mut Killed) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        p.assert_alive();
        if matches!(http_get(addr, path, None), Some((200, _))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready within 20 s:\n{}",
            p.what,
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// Rules.

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let promtool = require("promtool");
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(deploy("prometheus/sfgi-alerts.yml")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS: 11 rules found"), "{text}");
    let out = run_ok(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(deploy("prometheus/sfgi-alerts.test.yml")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The unit tests can fail: with the L2 duration condition removed, `promtool test rules` fails.
#[test]
fn alert_unit_tests_catch_a_broken_rule() {
    let promtool = require("promtool");
    let dir = TempDir::new("rules-mutant");
    let rules = std::fs::read_to_string(deploy("prometheus/sfgi-alerts.yml")).expect("rules");
    let mutant = rules.replace(
        "sfgi_leak_status_seconds > 300",
        "sfgi_leak_status_seconds > 0",
    );
    assert_ne!(rules, mutant, "the L2 rule no longer says `> 300`");
    std::fs::write(dir.0.join("sfgi-alerts.yml"), mutant).expect("writing");
    std::fs::copy(
        deploy("prometheus/sfgi-alerts.test.yml"),
        dir.0.join("sfgi-alerts.test.yml"),
    )
    .expect("copying");
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(dir.0.join("sfgi-alerts.test.yml"))
        .output()
        .expect("running promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("FAILED") && text.contains("SFGIGoroutineLeak,"),
        "promtool accepted an L2 rule without its duration:\n{text}"
    );
}

/// The example Prometheus configuration (deploy/prometheus/prometheus.yml) passes `promtool check
/// config` (its rule file included), and the Alertmanager one `amtool check-config`, routing each
/// level where its comments say.
#[test]
fn prometheus_and_alertmanager_examples_pass_their_checkers() {
    let promtool = require("promtool");
    let amtool = require("amtool");
    let dir = TempDir::new("examples");
    let token = dir.0.join("sfgi-token");
    std::fs::write(&token, "t").expect("write");
    let cfg = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).expect("config");
    assert!(cfg.contains("/etc/prometheus/sfgi-token"));
    std::fs::write(
        dir.0.join("prometheus.yml"),
        cfg.replace("/etc/prometheus/sfgi-token", &token.display().to_string()),
    )
    .expect("write");
    std::fs::copy(
        deploy("prometheus/sfgi-alerts.yml"),
        dir.0.join("sfgi-alerts.yml"),
    )
    .expect("copy");
    let out = run_ok(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.0.join("prometheus.yml")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    assert!(text.contains("SUCCESS: 11 rules found"), "{text}");

    let am = deploy("alertmanager/alertmanager.yml");
    run_ok(Command::new(&amtool).arg("check-config").arg(&am));
    for (labels, receiver) in [
        (&["severity=critical", "sfgi_level=L4"][..], "pager"),
        (&["severity=critical", "sfgi_level=L3"][..], "pager"),
        (&["severity=warning", "sfgi_level=L2"][..], "team"),
        (&["severity=info", "sfgi_level=L1"][..], "tickets"),
        (&["severity=warning", "alertname=SFGIDown"][..], "tickets"),
    ] {
        let out = run_ok(
            Command::new(&amtool)
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", am.display()))
                .args(labels),
        );
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got.trim(), receiver, "{labels:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The dashboard.

/// Every PromQL expression of the dashboard: (panel title, expr), plus the metrics its template
/// variables read (`label_values(METRIC, label)`).
fn dashboard_queries() -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(deploy("grafana/sfgi-dashboard.json")).expect("dashboard");
    let d: Value = serde_json::from_str(&text).expect("the dashboard is not JSON");
    let mut exprs = Vec::new();
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(e) = m.get("expr").and_then(Value::as_str) {
                    out.push((title.to_string(), e.to_string()));
                }
                for (k, c) in m {
                    if k != "templating" {
                        walk(c, title, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, title, out)),
            _ => {}
        }
    }
    walk(&d["panels"], "", &mut exprs);
    let mut var_metrics = Vec::new();
    for v in d["templating"]["list"].as_array().expect("templating.list") {
        if let Some(def) = v["definition"].as_str() {
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.split_once(','))
                .map(|(m, _)| m.trim().to_string())
                .unwrap_or_else(|| panic!("unexpected variable query {def}"));
            var_metrics.push(inner);
        }
    }
    (exprs, var_metrics)
}

/// Grafana's variables, replaced by what "All" means.
fn grafana_to_promql(e: &str) -> String {
    e.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
        .replace("$namespace", ".*")
}

/// Dashboard expressions allowed to return nothing against `sfgi agent` on one well-probed
/// target, and why. Every other one must return data.
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    ("sfgi_agent_targets", "sfgi agent only"),
    (
        "sfgi_probe_missing",
        "present only when a probe could not be placed",
    ),
];

#[test]
fn dashboard_is_valid_grafana_json_with_promql_targets() {
    let (exprs, vars) = dashboard_queries();
    assert!(exprs.len() >= 15, "only {} expressions", exprs.len());
    assert_eq!(vars, ["sfgi_goroutines", "sfgi_goroutines"]);
    let text = std::fs::read_to_string(deploy("grafana/sfgi-dashboard.json")).expect("dashboard");
    let d: Value = serde_json::from_str(&text).expect("JSON");
    let mut ids = std::collections::HashSet::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap_or(99) + g["w"].as_u64().unwrap_or(99) <= 24,
            "panel {} wider than the grid",
            p["title"]
        );
    }
    // The table names the sites.
    assert!(exprs.iter().any(|(_, e)| e.contains("blocking_site")
        && e.contains("creation_site")
        && e.contains("sfgi_leak_group_goroutines")));
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus (and Alertmanager) on a real SFGI.

const TOKEN: &str = "fleet-test-token";

/// The shipped rules with durations a test can wait for: the judge's held-status conditions
/// (`sfgi_leak_status_seconds > N`) become `> 4`, every `for:` becomes 3 s. The expressions and
/// annotations are the shipped ones.
fn fast_rules() -> String {
    let rules = std::fs::read_to_string(deploy("prometheus/sfgi-alerts.yml")).expect("rules");
    let re_held = regex::Regex::new(r"sfgi_leak_status_seconds > \d+").expect("regex");
    let re_for = regex::Regex::new(r"(?m)^(\s+for: )\S+$").expect("regex");
    assert_eq!(
        re_held.find_iter(&rules).count(),
        4,
        "one held-status condition per level"
    );
    assert!(re_for.find_iter(&rules).count() >= 4);
    let r = re_held.replace_all(&rules, "sfgi_leak_status_seconds > 4");
    re_for.replace_all(&r, "${1}3s").into_owned()
}

/// The items of the `args:` list of the DaemonSet's container (deploy/kubernetes/daemonset.yaml).
fn daemonset_args() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("kubernetes/daemonset.yaml")).expect("daemonset");
    let mut lines = text.lines().skip_while(|l| l.trim() != "args:");
    let head = lines.next().expect("no args: in daemonset.yaml");
    let indent = head.len() - head.trim_start().len();
    lines
        .take_while(|l| l.len() - l.trim_start().len() > indent && l.trim_start().starts_with("- "))
        .map(|l| l.trim_start()[2..].trim().to_string())
        .collect()
}

/// The `config.toml` of the ConfigMap (deploy/kubernetes/configmap.yaml).
fn configmap_config() -> String {
    let text = std::fs::read_to_string(deploy("kubernetes/configmap.yaml")).expect("configmap");
    let mut lines = text.lines().skip_while(|l| l.trim() != "config.toml: |");
    let head = lines.next().expect("no config.toml in configmap.yaml");
    let indent = head.len() - head.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .collect();
    let strip = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(strip..).unwrap_or("").to_string() + "\n")
        .collect()
}

#[test]
fn daemonset_runs_the_agent_with_the_configmap() {
    let args = daemonset_args();
    assert_eq!(args.first().map(String::as_str), Some("agent"), "{args:?}");
    assert!(
        args.contains(&"--listen=0.0.0.0:6061".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--config=/etc/sfgi/config.toml".to_string()));
    let config = configmap_config();
    assert!(config.contains("[[exclude]]"), "{config}");
}

/// The leaking target of the live tests: 10 chan-send leaks a second (>= 60/min: L3 once
/// growing), as `<prefix>-leaks-<test pid>` in `dir` — a name of its own, so an agent (which
/// sees every process of the machine) can be told to trace only it. Returns it and its name.
fn leaking_target(dir: &TempDir, prefix: &str) -> (Target, String) {
    let bin = build_program("leaks", NEWEST, false);
    let exe_name = format!("{prefix}-leaks-{}", std::process::id());
    let exe = dir.0.join(&exe_name);
    std::fs::copy(&bin, &exe).expect("copying the leaks binary");
    let args = [
        "chan-send",
        "-delay",
        "100ms",
        "-count",
        "100000",
        "-interval",
        "100ms",
    ];
    (Target::start(&exe, &args), exe_name)
}

#[test]
fn prometheus_scrapes_the_agent_and_a_leak_alert_fires() {
    require_root();
    let prometheus = require("prometheus");
    let alertmanager = require("prometheus-alertmanager");
    let _slot = attach_slot();
    let dir = TempDir::new("prom");
    let t0 = Instant::now();

    let (target, exe_name) = leaking_target(&dir, "fleet");
    let pid = target.pid().to_string();

    // `sfgi agent` as the DaemonSet runs it (its args, its ConfigMap), but on loopback, with
    // temp dirs, short thresholds, and an include of this test's target only.
    let sfgi_port = free_port();
    let sfgi_addr: SocketAddr = format!("127.0.0.1:{sfgi_port}").parse().expect("addr");
    let config = dir.0.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[include]]\nexe = \"{exe_name}\"\n",
            configmap_config()
        ),
    )
    .expect("writing config.toml");
    std::fs::create_dir_all(dir.0.join("pods")).expect("mkdir");
    let mut agent_args = Vec::new();
    for a in daemonset_args() {
        let (flag, _) = a.split_once('=').unwrap_or((a.as_str(), ""));
        let mapped = match flag {
            "agent" => a.clone(),
            "--listen" => format!("--listen={sfgi_addr}"),
            "--token-file" => {
                let f = dir.0.join("agent-token");
                std::fs::write(&f, format!("{TOKEN}\n")).expect("writing the token file");
                format!("--token-file={}", f.display())
            }
            "--config" => format!("--config={}", config.display()),
            "--pods-dir" => format!("--pods-dir={}", dir.0.join("pods").display()),
            "--containers-dir" => {
                format!("--containers-dir={}", dir.0.join("containers").display())
            }
            "--evidence-dir" => format!("--evidence-dir={}", dir.0.join("evidence").display()),
            other => panic!("daemonset.yaml passes {other}: teach this test what it means here"),
        };
        agent_args.push(mapped);
    }
    let mut sfgi = Killed::spawn(
        "sfgi agent",
        Command::new(sfgi_bin())
            .args(&agent_args)
            .args(["--threshold", "2s", "--interval", "250ms"])
            .env_remove("RUST_LOG"),
        dir.0.join("sfgi.log"),
    );
    {
        // Discovery and attach take well under 5 s on an idle machine; a debug build on a
        // machine loaded by parallel builds has been seen to need more than 20.
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            sfgi.assert_alive();
            if let Some((st, body)) = http_get(sfgi_addr, "/metrics", Some(TOKEN)) {
                if st == 200 && body.contains(&format!("pid=\"{pid}\"")) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sfgi agent's /metrics has no series of pid {pid} after 45 s; /sfgi/targets: {:?}\n{}",
                http_get(sfgi_addr, "/sfgi/targets", Some(TOKEN)),
                sfgi.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Without the token: 401 (Prometheus must send it).
        let st = http_get(sfgi_addr, "/metrics", None).map(|r| r.0);
        assert_eq!(st, Some(401));
    }

    // `sfgi watch --listen` on the same target: the rules work on its series too (no target
    // labels). Its token from a file as well (`--token-file`, its first line).
    let watch_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let watch_token = dir.0.join("watch-token");
    std::fs::write(&watch_token, format!("{TOKEN}\nignored second line\n"))
        .expect("writing the token file");
    let mut watch = Killed::spawn(
        "sfgi watch",
        Command::new(sfgi_bin())
            .args(["watch", "--pid", &pid, "--threshold", "2s", "--interval"])
            .args(["250ms", "--listen", &watch_addr.to_string(), "--token-file"])
            .arg(&watch_token)
            .env_remove("RUST_LOG"),
        dir.0.join("watch.log"),
    );
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(
            http_get(watch_addr, "/metrics", Some(TOKEN)),
            Some((200, _))
        ) {
            watch.assert_alive();
            assert!(
                Instant::now() < deadline,
                "sfgi watch /metrics not up:\n{}",
                watch.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Alertmanager: a receiver with no integrations; we read its API.
    let am_port = free_port();
    let am_addr: SocketAddr = format!("127.0.0.1:{am_port}").parse().expect("addr");
    std::fs::write(
        dir.0.join("alertmanager.yml"),
        "route:\n  receiver: test\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: test\n",
    )
    .expect("writing alertmanager.yml");
    std::fs::create_dir_all(dir.0.join("am-data")).expect("mkdir");
    let mut am = Killed::spawn(
        "prometheus-alertmanager",
        Command::new(&alertmanager)
            .arg(format!(
                "--config.file={}",
                dir.0.join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.0.join("am-data").display()
            ))
            .arg(format!("--web.listen-address={am_addr}"))
            .arg("--cluster.listen-address="),
        dir.0.join("alertmanager.log"),
    );

    // Prometheus: 1 s scrapes and evaluations, the shipped rules with short durations.
    std::fs::write(dir.0.join("sfgi-alerts.yml"), fast_rules()).expect("writing rules");
    std::fs::write(dir.0.join("token"), TOKEN).expect("writing token");
    let prom_port = free_port();
    let prom_addr: SocketAddr = format!("127.0.0.1:{prom_port}").parse().expect("addr");
    std::fs::write(
        dir.0.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - sfgi-alerts.yml\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n\
             scrape_configs:\n  - job_name: sfgi\n    authorization:\n      credentials_file: token\n    \
             static_configs:\n      - targets: ['{sfgi_addr}', '{watch_addr}']\n"
        ),
    )
    .expect("writing prometheus.yml");
    let mut prom = Killed::spawn(
        "prometheus",
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .current_dir(&dir.0),
        dir.0.join("prometheus.log"),
    );
    wait_ready(am_addr, "/-/ready", &mut am);
    wait_ready(prom_addr, "/-/ready", &mut prom);

    // The scrape works (token accepted) ...
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(prom_addr, "/api/v1/targets");
        let active = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if active.len() == 2 && active.iter().all(|t| t["health"] == "up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped sfgi: {}",
            pretty(&v)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // ... and a leak alert (L2 or higher) fires for the target, naming the sites.
    let leak_alerts = [
        "SFGIGoroutineLeak",
        "SFGIGoroutineLeakCritical",
        "SFGIGoroutineLeakAvalanche",
    ];
    // About 15 s on an idle machine (docs/FLEET.md); the margin is for a loaded CI machine.
    let deadline = Instant::now() + Duration::from_secs(75);
    let (alert, watch_alert) = loop {
        prom.assert_alive();
        sfgi.assert_alive();
        watch.assert_alive();
        let v = get_json(prom_addr, "/api/v1/alerts");
        let alerts = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        let firing = |f: &dyn Fn(&Value) -> bool| {
            alerts
                .iter()
                .find(|a| {
                    a["state"] == "firing"
                        && a["labels"]["alertname"]
                            .as_str()
                            .is_some_and(|n| leak_alerts.contains(&n))
                        && f(&a["labels"])
                })
                .cloned()
        };
        let from_agent = firing(&|l| l["pid"] == pid.as_str());
        let from_watch =
            firing(&|l| l["instance"] == watch_addr.to_string().as_str() && l["pid"].is_null());
        if let (Some(a), Some(w)) = (from_agent, from_watch) {
            break (a, w);
        }
        if Instant::now() >= deadline {
            let q = get_json(
                prom_addr,
                &format!(
                    "/api/v1/query?query={}",
                    percent_encode("{__name__=~\"sfgi_leak.*\"}")
                ),
            );
            panic!(
                "no L2+ leak alert firing from both the agent and watch within 75 s; alerts: {}\n\
                 sfgi_leak* series: {}\nagent log:\n{}\nwatch log:\n{}",
                pretty(&v),
                pretty(&q),
                sfgi.log(),
                watch.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "fleet: {} firing after {:.1}s: {}",
        alert["labels"]["alertname"],
        t0.elapsed().as_secs_f64(),
        pretty(&alert)
    );
    let labels = &alert["labels"];
    assert_eq!(labels["job"], "sfgi");
    assert_eq!(labels["pattern"], "chan-send-blocked", "{}", pretty(&alert));
    assert!(
        ["L2", "L3", "L4"].contains(&labels["sfgi_level"].as_str().unwrap_or("")),
        "{}",
        pretty(&alert)
    );
    let blocking = labels["blocking_site"].as_str().unwrap_or("");
    let creation = labels["creation_site"].as_str().unwrap_or("");
    assert!(contains_func(blocking, "main.leakChanSend"), "{blocking}");
    assert!(contains_func(creation, "main.spawnChanSend"), "{creation}");
    let desc = alert["annotations"]["description"].as_str().unwrap_or("");
    assert!(desc.contains(blocking) && desc.contains(creation), "{desc}");
    assert!(desc.contains("goroutines in leak group"), "{desc}");
    // The agent's target labels name this target (container, pod and namespace are empty for a
    // process outside Kubernetes, and Prometheus drops empty labels).
    assert_eq!(labels["exe"], exe_name.as_str(), "{}", pretty(&alert));
    assert!(desc.contains(&format!("pid {pid} ({exe_name})")), "{desc}");
    assert!(!desc.contains("growing ?/min"), "no growth rate: {desc}");
    // The same rules on watch's series: the same sites, no target labels.
    let wl = &watch_alert["labels"];
    let wdesc = watch_alert["annotations"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(
        contains_func(
            wl["blocking_site"].as_str().unwrap_or(""),
            "main.leakChanSend"
        ) && contains_func(
            wl["creation_site"].as_str().unwrap_or(""),
            "main.spawnChanSend"
        ),
        "{}",
        pretty(&watch_alert)
    );
    assert!(wdesc.contains("Target: the watched process;"), "{wdesc}");

    // Alertmanager received it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        am.assert_alive();
        let v = get_json(am_addr, "/api/v2/alerts");
        if v.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == labels["alertname"])
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never received {}: {}",
            labels["alertname"],
            pretty(&v)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every dashboard expression is valid PromQL, and all but the few documented ones return
    // data from this Prometheus.
    let (exprs, vars) = dashboard_queries();
    let mut empty = Vec::new();
    for (title, e) in &exprs {
        let q = grafana_to_promql(e);
        let (st, body) = http_get(
            prom_addr,
            &format!("/api/v1/query?query={}", percent_encode(&q)),
            None,
        )
        .unwrap_or_else(|| panic!("no answer to {q}"));
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
        assert!(
            st == 200 && v["status"] == "success",
            "panel {title:?}: {q} is not valid PromQL: {body}"
        );
        let n = v["data"]["result"].as_array().map_or(0, Vec::len);
        if n == 0 && !MAY_BE_EMPTY.iter().any(|(m, _)| q.contains(m)) {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard expressions with no data:\n{}",
        empty.join("\n")
    );
    for m in &vars {
        let v = get_json(
            prom_addr,
            &format!("/api/v1/series?match[]={}", percent_encode(m)),
        );
        assert!(
            v["data"].as_array().is_some_and(|a| !a.is_empty()),
            "variable metric {m}: {}",
            pretty(&v)
        );
    }
    eprintln!(
        "fleet: {} dashboard expressions checked; total {:.1}s",
        exprs.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(prom);
    drop(am);
    drop(watch);
    drop(sfgi);
    drop(target);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests and the image build, offline.

/// The files of deploy/kubernetes that are Kubernetes objects (all but kustomization.yaml).
fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy("kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    v.sort();
    v
}

/// A YAML file's documents as JSON, through the PyYAML that kubernetes-validate brings.
fn yaml_docs(path: &std::path::Path) -> Vec<Value> {
    require("kubernetes-validate");
    let site = sfgi_gotool::tools::tools_dir().join("kubernetes-validate");
    assert!(site.is_dir(), "{} is missing", site.display());
    let out = run_ok(
        Command::new(require("python3"))
            .env("PYTHONPATH", &site)
            .args([
                "-c",
                "import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            ])
            .arg(path),
    );
    serde_json::from_slice(&out.stdout).expect("yaml as JSON")
}

#[test]
fn kubernetes_manifests_pass_their_schemas() {
    let kv = require("kubernetes-validate");
    let files = manifests();
    assert_eq!(files.len(), 9, "{files:?}");
    // Kubernetes' own schemas, strict (unknown fields rejected).
    let out = Command::new(&kv)
        .arg("--strict")
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let line = text
            .lines()
            .find(|l| l.contains(&format!("/{name} ")))
            .unwrap_or_else(|| panic!("kubernetes-validate said nothing about {name}:\n{text}"));
        if let Some(kind) = [
            ("servicemonitor.yaml", "ServiceMonitor"),
            ("prometheusrule.yaml", "PrometheusRule"),
        ]
        .iter()
        .find_map(|(f, k)| (*f == name).then_some(*k))
        {
            // CRDs: not in Kubernetes' schemas; checked below against their own.
            assert!(
                line.contains(&format!("Couldn't find schema for kind {kind}")),
                "{line}"
            );
        } else {
            assert!(
                line.starts_with("INFO") && line.contains("passed"),
                "{line}"
            );
        }
    }
    // The ServiceMonitor and the PrometheusRule against prometheus-operator's CRD schemas (npm).
    let sm = require("validate-monitoring-crds");
    let out = run_ok(
        Command::new(&sm)
            .arg(deploy("kubernetes/servicemonitor.yaml"))
            .arg(deploy("kubernetes/prometheusrule.yaml")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in ["ServiceMonitor/sfgi", "PrometheusRule/sfgi"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("valid ") && l.ends_with(kind)),
            "{text}"
        );
    }

    // Both checkers can fail.
    let dir = TempDir::new("k8s-mutants");
    let ds = std::fs::read_to_string(deploy("kubernetes/daemonset.yaml")).expect("daemonset");
    let bad = dir.0.join("daemonset.yaml");
    std::fs::write(
        &bad,
        ds.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .expect("write");
    let st = Command::new(&kv)
        .arg("--strict")
        .arg(&bad)
        .output()
        .expect("run");
    assert!(
        !st.status.success(),
        "kubernetes-validate accepted a misspelt field"
    );
    let smt = std::fs::read_to_string(deploy("kubernetes/servicemonitor.yaml")).expect("sm");
    let bad = dir.0.join("servicemonitor.yaml");
    std::fs::write(&bad, smt.replace("interval: 30s", "interval: 30")).expect("write");
    let st = Command::new(&sm).arg(&bad).output().expect("run");
    assert!(
        !st.status.success(),
        "the ServiceMonitor schema accepted a number interval"
    );

    // The PrometheusRule is the rules file, regenerated.
    let site = sfgi_gotool::tools::tools_dir().join("kubernetes-validate");
    let out = run_ok(
        Command::new(require("python3"))
            .env("PYTHONPATH", &site)
            .arg(deploy("prometheus/to-prometheusrule.py")),
    );
    let committed =
        std::fs::read_to_string(deploy("kubernetes/prometheusrule.yaml")).expect("rule");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "deploy/kubernetes/prometheusrule.yaml is stale: regenerate it with \
         deploy/prometheus/to-prometheusrule.py"
    );
    let pr = &yaml_docs(&deploy("kubernetes/prometheusrule.yaml"))[0];
    let rules = &yaml_docs(&deploy("prometheus/sfgi-alerts.yml"))[0];
    assert_eq!(pr["spec"]["groups"], rules["groups"]);

    // kustomization.yaml lists every manifest.
    let k = std::fs::read_to_string(deploy("kubernetes/kustomization.yaml")).expect("kustomize");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            k.contains(&format!("- {name}")),
            "kustomization.yaml misses {name}"
        );
    }
}

#[test]
fn daemonset_is_least_privilege() {
    let docs = yaml_docs(&deploy("kubernetes/daemonset.yaml"));
    let ds = &docs[0];
    assert_eq!(ds["kind"], "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert!(pod["hostNetwork"].is_null() || pod["hostNetwork"] == false);
    assert!(pod["hostIPC"].is_null() || pod["hostIPC"] == false);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mut add: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    add.sort_unstable();
    // SYS_ADMIN for the uprobes (kernels since 2025), SYS_PTRACE for /proc/PID/{mem,exe,root};
    // the_image_runs_the_agent_with_the_daemonsets_security_context shows they suffice.
    assert_eq!(add, ["SYS_ADMIN", "SYS_PTRACE"]);
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].is_string(), "no resources.{k}.{r}");
        }
    }
    // hostPath volumes are mounted read-only; the only writable mount is an emptyDir.
    let volumes = pod["volumes"].as_array().expect("volumes");
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("no volume {}", m["name"]));
        if m["readOnly"] != true {
            assert!(v["emptyDir"].is_object(), "writable mount {}", m["name"]);
        }
    }
    // Two host paths, both the kubelet's log directories (only their entries' names are read).
    let host_paths: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    assert_eq!(host_paths, ["/var/log/pods", "/var/log/containers"]);
    // The token comes from the Secret the ServiceMonitor also reads, as a file (never an
    // argument or a variable: /proc/PID/cmdline and environ are readable on the node); the
    // config from the ConfigMap.
    assert!(c["env"].is_null(), "no environment: {}", c["env"]);
    let args = daemonset_args();
    assert!(
        !args.iter().any(|a| a.starts_with("--token=")),
        "the token is passed in the command line: {args:?}"
    );
    let token_arg = args
        .iter()
        .find_map(|a| a.strip_prefix("--token-file="))
        .expect("--token-file");
    let token_vol = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == "sfgi-token")
        .expect("a volume of the sfgi-token Secret");
    assert_eq!(token_vol["secret"]["defaultMode"], 0o400);
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == token_vol["name"]))
        .expect("the token volume is mounted");
    assert_eq!(mount["readOnly"], true);
    let mount_path = mount["mountPath"].as_str().unwrap_or("");
    let sm = &yaml_docs(&deploy("kubernetes/servicemonitor.yaml"))[0];
    let auth = &sm["spec"]["endpoints"][0]["authorization"]["credentials"];
    assert_eq!(auth["name"], "sfgi-token");
    assert_eq!(
        token_arg,
        format!("{mount_path}/{}", auth["key"].as_str().unwrap_or("?")),
        "--token-file names the Secret's key the ServiceMonitor reads"
    );
    let cm = &yaml_docs(&deploy("kubernetes/configmap.yaml"))[0];
    assert!(cm["data"]["config.toml"].is_string());
    assert!(volumes
        .iter()
        .any(|v| v["configMap"]["name"] == cm["metadata"]["name"]));
    // The Service's port is the container's.
    let svc = &yaml_docs(&deploy("kubernetes/service.yaml"))[0];
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
}

/// The Dockerfile's instructions (continuations joined, comments dropped).
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("docker/Dockerfile")).expect("Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        cur.push_str(t.trim_end_matches('\\'));
        cur.push(' ');
        if !t.ends_with('\\') {
            let (op, rest) = cur.trim().split_once(' ').unwrap_or((cur.trim(), ""));
            out.push((op.to_uppercase(), rest.trim().to_string()));
            cur.clear();
        }
    }
    out
}

#[test]
fn dockerfile_builds_what_xtask_builds_into_a_slim_image() {
    let ins = dockerfile();
    let known = [
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
    ];
    let mut stages: Vec<String> = Vec::new();
    let mut froms = Vec::new();
    let mut copied_to = None;
    for (op, rest) in &ins {
        assert!(
            known.contains(&op.as_str()),
            "unexpected instruction {op} {rest}"
        );
        match op.as_str() {
            "FROM" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                froms.push(parts[0].to_string());
                if parts.len() == 3 && parts[1].eq_ignore_ascii_case("as") {
                    stages.push(parts[2].to_string());
                }
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                if let Some(from) = parts[0].strip_prefix("--from=") {
                    assert!(
                        stages[..stages.len() - 1].iter().any(|s| s == from),
                        "{rest}"
                    );
                    copied_to = Some(parts[2].to_string());
                } else {
                    for src in &parts[..parts.len() - 1] {
                        assert!(
                            workspace_root().join(src).exists(),
                            "COPY {src}: no such path"
                        );
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(froms.len(), 2, "multi-stage: build, then runtime");
    // The builder is at least the workspace's rust-version.
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo");
    let rv = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rust-version");
    assert!(
        froms[0].starts_with(&format!("rust:{rv}")),
        "{} vs {rv}",
        froms[0]
    );
    assert!(froms[1].contains("slim"), "runtime image {}", froms[1]);
    // The build runs `cargo xtask build`, whose output is target/release/sfgi.
    let run = ins
        .iter()
        .find(|(op, _)| op == "RUN")
        .map(|(_, r)| r.clone())
        .expect("RUN");
    assert!(
        run.contains("-p xtask -- build") && run.contains("target/release/sfgi"),
        "{run}"
    );
    let xtask = std::fs::read_to_string(workspace_root().join("xtask/src/main.rs")).expect("xt");
    assert!(xtask.contains("Ok(target_dir().join(\"release\").join(\"sfgi\"))"));
    // The entrypoint is the binary copied from the build stage; the default command serves on
    // localhost (no --listen 0.0.0.0 without the DaemonSet's token).
    let copied_to = copied_to.expect("COPY --from=build");
    let entry = ins
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(&entry.1).expect("ENTRYPOINT JSON form");
    assert_eq!(entry, [copied_to]);
    let cmd = ins.iter().find(|(op, _)| op == "CMD").expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(&cmd.1).expect("CMD JSON form");
    assert_eq!(cmd, ["agent"]);
    // The context leaves target/ out.
    let ignore =
        std::fs::read_to_string(deploy("docker/Dockerfile.dockerignore")).expect("dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"), "{ignore}");
    // The DaemonSet runs this image's entrypoint with `agent`.
    assert_eq!(daemonset_args()[0], "agent");
}

/// `podman run` flags for the DaemonSet's pod and container (deploy/kubernetes/daemonset.yaml),
/// field by field; a field this does not know fails the test rather than being dropped. Volumes
/// come from `dir`: the ConfigMap's `config.toml`, the Secret's key file, a temporary directory
/// for the `/var/log/pods` hostPath, a tmpfs for the emptyDir.
fn daemonset_podman_flags(dir: &std::path::Path, config: &str, http_port: u16) -> Vec<String> {
    let docs = yaml_docs(&deploy("kubernetes/daemonset.yaml"));
    let pod = &docs[0]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    let mut f: Vec<String> = vec![
        // crun refuses this machine's hybrid cgroup v1 + v2 layout; runc runs it.
        "--runtime=runc".into(),
        // podman's default RLIMIT_NOFILE/NPROC may exceed this machine's hard limits, and
        // without CAP_SYS_RESOURCE the runtime may not raise them: keep this process's own, as
        // Kubernetes leaves the runtime's as they are.
        format!("--ulimit=nofile={}", rlimit(libc::RLIMIT_NOFILE, 65536)),
        format!("--ulimit=nproc={}", rlimit(libc::RLIMIT_NPROC, 4096)),
    ];
    assert_eq!(pod["hostPID"], true);
    f.push("--pid=host".into());
    // Not hostNetwork: the pod's own network namespace, its port published on loopback.
    assert!(pod["hostNetwork"].is_null() || pod["hostNetwork"] == false);
    let port = c["ports"][0]["containerPort"]
        .as_u64()
        .expect("containerPort");
    f.push(format!("--publish=127.0.0.1:{http_port}:{port}"));
    // The pod's seccomp profile: the runtime's default is podman's own default (no flag).
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    f.push("--security-opt=no-new-privileges".into());
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    f.push("--read-only".into());
    f.push(format!(
        "--user={}:{}",
        sc["runAsUser"].as_u64().expect("runAsUser"),
        sc["runAsGroup"].as_u64().expect("runAsGroup")
    ));
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    f.push("--cap-drop=all".into());
    for cap in sc["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
    {
        f.push(format!("--cap-add={}", cap.as_str().expect("capability")));
    }
    let mem = c["resources"]["limits"]["memory"]
        .as_str()
        .expect("memory limit");
    f.push(format!(
        "--memory={}",
        mem.strip_suffix("Mi")
            .map(|n| format!("{n}m"))
            .expect("memory in Mi")
    ));
    let volumes = pod["volumes"].as_array().expect("volumes");
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .expect("the mount's volume");
        let target = m["mountPath"].as_str().expect("mountPath");
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        let name = m["name"].as_str().expect("name");
        let host = dir.join(name);
        if v["configMap"].is_object() {
            std::fs::create_dir_all(&host).expect("mkdir");
            std::fs::write(host.join("config.toml"), config).expect("config.toml");
        } else if v["secret"].is_object() {
            std::fs::create_dir_all(&host).expect("mkdir");
            let key = host.join("token");
            std::fs::write(&key, format!("{TOKEN}\n")).expect("token");
            let mode = v["secret"]["defaultMode"].as_u64().expect("defaultMode") as u32;
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .expect("chmod");
        } else if v["hostPath"].is_object() {
            std::fs::create_dir_all(&host).expect("mkdir");
        } else if v["emptyDir"].is_object() {
            f.push(format!("--tmpfs={target}:rw,size=256m"));
            continue;
        } else {
            panic!("volume {v}: teach this test what it is");
        }
        f.push(format!("--volume={}:{target}{ro}", host.display()));
    }
    f
}

/// `N:N` for podman's `--ulimit`: this process's hard limit of `resource`, at most `cap` (the
/// runtime sets the limit from a process of its own, whose hard limit may be lower than ours).
fn rlimit(resource: libc::__rlimit_resource_t, cap: u64) -> String {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid, exclusively borrowed `r`.
    let rc = unsafe { libc::getrlimit(resource, &mut r) };
    assert_eq!(rc, 0, "getrlimit");
    let n = r.rlim_max.min(cap);
    format!("{n}:{n}")
}

/// The image `cargo xtask test` built (`cargo xtask image`), as `SFGI_IMAGE`.
fn sfgi_image() -> String {
    std::env::var("SFGI_IMAGE").unwrap_or_else(|_| {
        panic!("SFGI_IMAGE is not set: run the tests through `cargo xtask test`, or `cargo xtask image` and set SFGI_IMAGE=localhost/sfgi:VERSION")
    })
}

/// Removes the named container on every path.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

#[test]
fn the_image_runs_the_agent_with_the_daemonsets_security_context() {
    require_root();
    let podman = require("podman");
    require("runc");
    let image = sfgi_image();
    let _slot = attach_slot();
    let dir = TempDir::new("image");

    // The agent in the container sees every process of the machine (hostPID) and is told to
    // trace only this one.
    let (target, exe_name) = leaking_target(&dir, "image");
    let pid = u64::from(target.pid());

    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = format!(
        "{}\n[[include]]\nexe = \"{exe_name}\"\n",
        configmap_config()
    );
    let flags = daemonset_podman_flags(&dir.0, &config, port);
    let name = format!("sfgi-image-test-{}", std::process::id());
    let container = Container(name.clone());
    run_ok(
        Command::new(&podman)
            .args(["run", "--detach", "--name", &name])
            .args(&flags)
            .arg(&image)
            .args(daemonset_args())
            .args(["--threshold=2s", "--interval=250ms"]),
    );
    let logs = || {
        let o = Command::new("podman").args(["logs", &name]).output();
        o.map(|o| {
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
        })
        .unwrap_or_default()
    };

    // Traced (its probes attached with only the DaemonSet's capabilities), then its leak.
    let deadline = Instant::now() + Duration::from_secs(60);
    let target_json = loop {
        if let Some((200, body)) = http_get(addr, "/sfgi/targets", Some(TOKEN)) {
            let v: Value = serde_json::from_str(&body).expect("targets JSON");
            if let Some(t) = v
                .as_array()
                .and_then(|a| a.iter().find(|t| t["pid"].as_u64() == Some(pid)))
            {
                if t["state"] != "attaching" {
                    break t.clone();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agent in the container does not list PID {pid} after 60 s:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(target_json["state"], "tracing", "{target_json}\n{}", logs());
    assert_eq!(target_json["exe"], exe_name.as_str());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leaks = http_get(addr, "/sfgi/leaks", Some(TOKEN))
            .filter(|r| r.0 == 200)
            .and_then(|r| serde_json::from_str::<Value>(&r.1).ok());
        let found = leaks.as_ref().and_then(Value::as_array).is_some_and(|a| {
            a.iter().any(|g| {
                g["pid"].as_u64() == Some(pid)
                    && g["blocked_at"]
                        .as_str()
                        .is_some_and(|s| s.contains("leakChanSend"))
            })
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no chan-send leak of PID {pid} from the agent in the container after 60 s: {leaks:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Without the token: 401, from inside the pod's network namespace too.
    assert_eq!(http_get(addr, "/metrics", None).map(|r| r.0), Some(401));

    // The programs it holds, then a stop (the image's stop signal, SIGINT): exit 0, and none of
    // them left in the kernel.
    let host_pid: u32 = String::from_utf8_lossy(
        &run_ok(Command::new(&podman).args(["inspect", "--format", "{{.State.Pid}}", &name]))
            .stdout,
    )
    .trim()
    .parse()
    .expect("the container's host PID");
    let progs = bpf_prog_ids_held(host_pid);
    assert!(!progs.is_empty(), "the agent holds no BPF program");
    run_ok(Command::new(&podman).args(["stop", "--time", "20", &name]));
    let code =
        run_ok(Command::new(&podman).args(["inspect", "--format", "{{.State.ExitCode}}", &name]));
    assert_eq!(
        String::from_utf8_lossy(&code.stdout).trim(),
        "0",
        "{}",
        logs()
    );
    let bpftool = require("bpftool");
    for id in progs {
        let out = Command::new(&bpftool)
            .args(["prog", "show", "id", &id.to_string()])
            .output()
            .expect("bpftool");
        assert!(
            !out.status.success(),
            "BPF program {id} outlived the agent's container"
        );
    }
    drop(container);

    // Fewer privileges: one clear line, not a silent failure. With BPF + PERFMON in place of
    // SYS_ADMIN, the runtime's default seccomp profile refuses bpf(2) (podman's allows it only
    // with SYS_ADMIN); were it allowed, the kernel would refuse the uprobes (EACCES).
    let mut flags = daemonset_podman_flags(&dir.0, &config, free_port());
    flags.retain(|f| !f.starts_with("--cap-add="));
    flags.extend(["--cap-add=BPF", "--cap-add=PERFMON", "--cap-add=SYS_PTRACE"].map(String::from));
    let name = format!("sfgi-image-test-caps-{}", std::process::id());
    let _container = Container(name.clone());
    let out = Command::new(&podman)
        .args(["run", "--name", &name])
        .args(&flags)
        .arg(&image)
        .args(["attach", "--pid", &pid.to_string(), "--duration", "1s"])
        .stdin(Stdio::null())
        .output()
        .expect("podman run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("sfgi: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("seccomp") || lines[0].contains("CAP_SYS_ADMIN"),
        "{err}"
    );
    drop(target);
}
