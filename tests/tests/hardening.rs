//! Hardening: SFGI never harms the target, never lies, never crashes on bad input. Needs root.
//! See docs/RELIABILITY.md for the threat list these tests back.
//!
//! - target safety: the probes are gone after every way `sfgi attach`/`sfgi watch` can end
//!   (normal end, SIGINT, SIGTERM, an error after attaching, a panic, `kill -9`), checked with
//!   `bpftool -j prog show` / `bpftool -j link show` against the program and link IDs the sfgi
//!   process held (read from its `/proc/PID/fdinfo`); a self-checking stress target stays
//!   correct across 10 attach/detach cycles (Go 1.21) and across as many as it takes to churn 1M
//!   goroutines (the newest Go);
//! - bad input: one `sfgi: error: ...` line, a non-zero exit and no panic for a missing PID, a
//!   PID that exits mid-attach, a non-Go binary, Go versions older or newer than known (made by
//!   rewriting the version string of a real binary), no privileges, a kernel without ring
//!   buffers (simulated: `SFGI_TEST_HOST`), and mutated binaries under `sfgi inspect`; PIE, cgo,
//!   `-race` and static external-link builds attach and find the leak;
//! - HTTP: slowloris clients and a connection flood do not stop normal requests, and SFGI's
//!   memory stays bounded;
//! - honesty: lost events (a 4 KiB ring buffer) show in the JSON stats, the table warning, the
//!   verdicts' `incomplete` flag and `/metrics`; a missing probe point shows in every output.
use serde_json::Value;
use sfgi_tests::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A running sfgi with its output collected by reader threads.
struct Sfgi {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(r: impl Read + Send + 'static) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let t = Arc::clone(&text);
    let h = std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            t.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    (text, h)
}

impl Sfgi {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Sfgi {
        Sfgi::spawn_bin(&sfgi_bin(), args, env)
    }

    /// [`Sfgi::spawn`] of another `sfgi` binary (the `test-hooks` build).
    fn spawn_bin(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Sfgi {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting sfgi");
        let (stdout, h1) = collect(child.stdout.take().unwrap());
        let (stderr, h2) = collect(child.stderr.take().unwrap());
        Sfgi {
            child,
            stdout,
            stderr,
            readers: vec![h1, h2],
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (15 s) until stderr contains `what`.
    fn wait_stderr(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.stderr().contains(what) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "sfgi exited ({st}) before printing {what:?}\nstderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sfgi did not print {what:?} within 15 s\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (20 s) for the exit; returns (exit code or signal, stdout, stderr).
    fn wait(mut self) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sfgi did not exit within 20 s\nstderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        (st, self.stdout(), self.stderr())
    }
}

impl Drop for Sfgi {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// IDs of the BPF programs and links process `pid` holds fds to (from `/proc/PID/fdinfo`).
fn held_bpf_ids(pid: u32) -> (HashSet<u64>, HashSet<u64>) {
    let (mut progs, mut links) = (HashSet::new(), HashSet::new());
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (progs, links);
    };
    for e in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in info.lines() {
            let mut it = line.splitn(2, ':');
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            let Ok(v) = v.trim().parse::<u64>() else {
                continue;
            };
            match k.trim() {
                "prog_id" => {
                    progs.insert(v);
                }
                "link_id" => {
                    links.insert(v);
                }
                _ => {}
            }
        }
    }
    (progs, links)
}

fn bpftool(what: &[&str]) -> Vec<Value> {
    let out = Command::new(sfgi_gotool::tools::require("bpftool"))
        .arg("-j")
        .args(what)
        .output()
        .expect("running bpftool");
    assert!(out.status.success(), "bpftool {what:?} failed");
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// (loaded `sfgi_*` program IDs, all link IDs with their program IDs) as bpftool sees them.
fn bpftool_state() -> (HashSet<u64>, Vec<(u64, u64)>) {
    let progs = bpftool(&["prog", "show"])
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("sfgi_")))
        .filter_map(|p| p["id"].as_u64())
        .collect();
    let links = bpftool(&["link", "show"])
        .iter()
        .filter_map(|l| Some((l["id"].as_u64()?, l["prog_id"].as_u64().unwrap_or(0))))
        .collect();
    (progs, links)
}

/// What of `progs`/`links` bpftool still lists.
fn remaining(progs: &HashSet<u64>, links: &HashSet<u64>) -> (Vec<u64>, Vec<u64>) {
    let (now_progs, now_links) = bpftool_state();
    let p = progs.intersection(&now_progs).copied().collect();
    let l = now_links
        .iter()
        .filter(|(id, prog)| links.contains(id) || progs.contains(prog))
        .map(|(id, _)| *id)
        .collect();
    (p, l)
}

/// Polls (up to 3 s: the kernel frees programs asynchronously) until none of `progs`/`links`
/// remain; panics with what is left otherwise.
fn assert_all_gone(what: &str, progs: &HashSet<u64>, links: &HashSet<u64>) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (p, l) = remaining(progs, links);
        if p.is_empty() && l.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still loaded after sfgi exited: programs {p:?}, links {l:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Exactly one stderr line, `sfgi: error: ...`, containing every `needles` (case-insensitive);
/// non-zero exit; no panic.
fn assert_one_error_line(run: &SfgiRun, needles: &[&str]) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        !run.status.success(),
        "sfgi {:?} succeeded; expected an error\nstderr:\n{}",
        run.args,
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked"),
        "sfgi {:?} panicked:\n{}",
        run.args,
        run.stderr
    );
    assert_eq!(
        lines.len(),
        1,
        "sfgi {:?}: expected exactly one stderr line, got:\n{}",
        run.args,
        run.stderr
    );
    assert!(
        lines[0].starts_with("sfgi: error: "),
        "sfgi {:?}: not an error line: {}",
        run.args,
        lines[0]
    );
    let low = lines[0].to_lowercase();
    for n in needles {
        assert!(
            low.contains(&n.to_lowercase()),
            "sfgi {:?}: error line lacks {n:?}: {}",
            run.args,
            lines[0]
        );
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Target safety: probes detached on every exit path.

#[derive(Clone, Copy, Debug)]
enum Exit {
    Normal,
    Sigint,
    Sigterm,
    ErrorAfterAttach,
    Panic,
    Kill9,
}

#[test]
fn probes_are_detached_on_every_exit_path() {
    require_root();
    // The panic path needs the `SFGI_TEST_PANIC` hook, which only a `--features test-hooks`
    // build has (looked up first, so a missing binary fails the test at once).
    let hooks_bin = sfgi_test_hooks_bin();
    let t0 = Instant::now();
    let bin = build_program("leaks", NEWEST, false);
    let mut target = Target::start(
        &bin,
        &["chan-send", "-count", "1000000", "-interval", "5ms"],
    );
    let pid = target.pid().to_string();
    // A port that is taken, for `watch --listen` to fail on after attaching.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    for exit in [
        Exit::Normal,
        Exit::Sigint,
        Exit::Sigterm,
        Exit::ErrorAfterAttach,
        Exit::Panic,
        Exit::Kill9,
    ] {
        let _slot = attach_slot();
        let (args, env, marker): (Vec<&str>, Vec<(&str, &str)>, &str) = match exit {
            Exit::Normal => (
                vec!["attach", "--pid", &pid, "--duration", "2s"],
                vec![],
                "attached",
            ),
            Exit::Sigint | Exit::Sigterm | Exit::Kill9 => {
                (vec!["attach", "--pid", &pid], vec![], "attached")
            }
            Exit::ErrorAfterAttach => (
                vec!["watch", "--pid", &pid, "--listen", &taken_addr],
                vec![],
                "watching",
            ),
            Exit::Panic => (
                vec!["attach", "--pid", &pid],
                vec![("SFGI_TEST_PANIC", "2s")],
                "attached",
            ),
        };
        let mut before_progs = bpftool_state().0;
        let mut s = match exit {
            Exit::Panic => Sfgi::spawn_bin(&hooks_bin, &args, &env),
            _ => Sfgi::spawn(&args, &env),
        };
        let spid = s.pid();
        // What the sfgi process holds while attached (the error path ends too fast to look:
        // for it, every sfgi program that appeared meanwhile is checked instead).
        let (progs, links) = if matches!(exit, Exit::ErrorAfterAttach) {
            (HashSet::new(), HashSet::new())
        } else {
            s.wait_stderr(marker);
            let (p, l) = held_bpf_ids(spid);
            // One program and one perf-event link per attached probe.
            assert!(!p.is_empty(), "{exit:?}: sfgi holds no BPF programs");
            assert_eq!(l.len(), p.len(), "{exit:?}: programs {p:?}, links {l:?}");
            let (rp, rl) = remaining(&p, &l);
            assert_eq!(
                rp.len(),
                p.len(),
                "{exit:?}: bpftool does not list sfgi's programs"
            );
            assert_eq!(
                rl.len(),
                l.len(),
                "{exit:?}: bpftool does not list sfgi's links"
            );
            (p, l)
        };
        match exit {
            Exit::Normal | Exit::Panic | Exit::ErrorAfterAttach => {}
            Exit::Sigint => assert!(signal(spid, libc::SIGINT)),
            Exit::Sigterm => assert!(signal(spid, libc::SIGTERM)),
            Exit::Kill9 => {
                std::thread::sleep(Duration::from_millis(500));
                assert!(signal(spid, libc::SIGKILL));
                // Right after the kill, before reaping: the kernel has closed the fds (exit
                // closes files before the zombie stage), programs are freed asynchronously.
                std::thread::sleep(Duration::from_millis(100));
                let (p, l) = remaining(&progs, &links);
                eprintln!(
                    "kill -9: 100 ms after SIGKILL, before reaping: {} of {} programs and {} of {} links still listed",
                    p.len(),
                    progs.len(),
                    l.len(),
                    links.len()
                );
            }
        }
        let (st, stdout, stderr) = s.wait();
        match exit {
            Exit::Normal | Exit::Sigint | Exit::Sigterm => {
                assert!(st.success(), "{exit:?}: sfgi failed ({st}):\n{stderr}");
                assert!(
                    stdout.contains("traced for"),
                    "{exit:?}: no report:\n{stdout}"
                );
                assert!(!stderr.contains("panicked"), "{exit:?}: {stderr}");
            }
            Exit::ErrorAfterAttach => {
                assert_eq!(st.code(), Some(1), "{exit:?}: {stderr}");
                assert!(
                    stderr.contains("sfgi: error: listening on"),
                    "{exit:?}: {stderr}"
                );
            }
            Exit::Panic => {
                assert_eq!(st.code(), Some(101), "{exit:?}: {stderr}");
                assert!(
                    stderr.contains("SFGI_TEST_PANIC: panicking on purpose while attached"),
                    "{exit:?}: not the test hook's panic: {stderr}"
                );
            }
            Exit::Kill9 => {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(st.signal(), Some(libc::SIGKILL));
            }
        }
        if matches!(exit, Exit::ErrorAfterAttach) {
            // Programs that appeared while it ran and are still loaded must belong to another
            // live process (a concurrent test), never be orphans.
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let now: Vec<u64> = bpftool_state()
                    .0
                    .difference(&before_progs)
                    .copied()
                    .collect();
                let held: HashSet<u64> = std::fs::read_dir("/proc")
                    .unwrap()
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .flat_map(|p| held_bpf_ids(p).0)
                    .collect();
                let orphans: Vec<u64> = now.into_iter().filter(|p| !held.contains(p)).collect();
                if orphans.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{exit:?}: sfgi programs {orphans:?} loaded with no process holding them"
                );
                before_progs = bpftool_state().0;
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            assert_all_gone(&format!("{exit:?}"), &progs, &links);
        }
        target.heartbeat();
        eprintln!("exit path {exit:?}: all probes gone");
    }
    drop(taken);
    let out = target.stop();
    assert!(out.contains(" ok"), "target after all exits:\n{out}");
    assert_eq!(target.exit_status().and_then(|s| s.code()), Some(0));
    eprintln!(
        "probes_are_detached_on_every_exit_path: {}",
        secs(t0.elapsed())
    );
}

// ---------------------------------------------------------------------------------------------
// Stress: attach/detach cycles on a self-checking target.

/// Attach/detach cycles of 1 s on the self-checking stress target: at least 10, and with
/// `churn` more until the target has created and finished that many goroutines (bounded).
fn stress_cycles(version: &str, churn: Option<u64>) {
    require_root();
    let t0 = Instant::now();
    let bin = build_program("stress", version, false);
    let total = churn.unwrap_or(1_000_000).to_string();
    let mut target = Target::start(&bin, &["-total", &total, "-live", "1000"]);
    let pid = target.pid();
    let mut events = 0u64;
    let mut cycles = 0;
    for i in 0.. {
        if i >= 10 {
            match churn {
                None => break,
                Some(n) if target.heartbeat() >= n => break,
                // A deadline that bounds the test, not a throughput figure.
                Some(n) => assert!(
                    t0.elapsed() < Duration::from_secs(300),
                    "Go {version}: only {} of {n} goroutines churned after {}: expected all \
                     within 300 s (the target churns without pause; probes that slowed it \
                     this much, or a stalled target, would show here)",
                    target.heartbeat(),
                    secs(t0.elapsed())
                ),
            }
        }
        cycles += 1;
        let _slot = attach_slot();
        let r = attach_json(pid, "1s", &[]);
        let ev = r["stats"]["events"].as_u64().unwrap_or(0);
        assert!(ev > 0, "cycle {i}: no events\n{}", pretty(&r["stats"]));
        events += ev;
        assert!(
            target.alive(),
            "Go {version}: target died in cycle {i}:\n{}",
            target.stderr()
        );
    }
    let finished_while_attached = target.heartbeat();
    let out = target.stop();
    let code = target.exit_status().and_then(|s| s.code());
    assert!(
        code == Some(0) && out.lines().any(|l| l.contains(" ok created=")),
        "Go {version}: the stress target found an inconsistency (exit {code:?}):\n{out}\nstderr:\n{}",
        target.stderr()
    );
    eprintln!(
        "stress Go {version}: {cycles} attach/detach cycles, {events} events seen, {finished_while_attached} goroutines finished by the last heartbeat; target says: {}; {}",
        out.lines().last().unwrap_or(""),
        secs(t0.elapsed())
    );
}

#[test]
fn stress_attach_detach_oldest_go() {
    stress_cycles(OLDEST, None);
}

/// The newest Go goes on until a million goroutines have been created and finished under
/// repeated attach/detach.
#[test]
fn stress_attach_detach_newest_go_million_goroutines() {
    stress_cycles(NEWEST, Some(1_000_000));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn missing_pid_and_non_go_process() {
    require_root();
    let none = unused_pid().to_string();
    let r = run_sfgi(
        &["attach", "--pid", &none, "--duration", "1s"],
        Duration::from_secs(20),
    );
    assert_one_error_line(&r, &["no process with pid"]);
    let r = run_sfgi(&["inspect", "--pid", &none], Duration::from_secs(20));
    assert_one_error_line(&r, &["no process with pid"]);
    let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
    let spid = sleep.id().to_string();
    let r = run_sfgi(
        &["attach", "--pid", &spid, "--duration", "1s"],
        Duration::from_secs(20),
    );
    assert_one_error_line(&r, &["not a go program", "not a go binary"]);
    assert_eq!(
        r.stderr.matches("not a Go binary").count(),
        1,
        "the cause is printed twice: {}",
        r.stderr
    );
    let r = run_sfgi(&["inspect", "/bin/sleep"], Duration::from_secs(20));
    assert_one_error_line(&r, &["not a go binary"]);
    let _ = sleep.kill();
    let _ = sleep.wait();
}

#[test]
fn target_exiting_mid_attach() {
    require_root();
    let bin = build_program("leaks", NEWEST, false);
    let mut outcomes = Vec::new();
    for delay_ms in [0u64, 10, 30, 60, 120, 250, 500] {
        let _slot = attach_slot();
        let mut target = Target::start(&bin, &["chan-send"]);
        let pid = target.pid().to_string();
        let s = Sfgi::spawn(&["attach", "--pid", &pid, "--format", "json"], &[]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(target.pid(), libc::SIGKILL);
        let _ = target.exit_status();
        let (st, stdout, stderr) = s.wait();
        assert!(
            !stderr.contains("panicked"),
            "killed after {delay_ms} ms: {stderr}"
        );
        if st.success() {
            let v: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("after {delay_ms} ms: bad JSON ({e}):\n{stdout}"));
            assert_eq!(
                v["stats"]["target_exited"].as_bool(),
                Some(true),
                "killed after {delay_ms} ms: the report does not say the target exited:\n{}",
                pretty(&v["stats"])
            );
            outcomes.push(format!("{delay_ms}ms: report (target_exited)"));
        } else {
            let lines: Vec<&str> = stderr.lines().collect();
            let errors: Vec<&&str> = lines
                .iter()
                .filter(|l| l.starts_with("sfgi: error: "))
                .collect();
            assert_eq!(
                errors.len(),
                1,
                "killed after {delay_ms} ms: expected one error line:\n{stderr}"
            );
            // Only the progress notices may come before the error.
            assert!(
                lines.iter().all(|l| l.starts_with("sfgi: error: ")
                    || l.starts_with("sfgi: attached")
                    || l.starts_with("sfgi: reading the goroutine inventory")),
                "killed after {delay_ms} ms:\n{stderr}"
            );
            outcomes.push(format!("{delay_ms}ms: {}", errors[0]));
        }
    }
    eprintln!("target killed mid-attach:\n  {}", outcomes.join("\n  "));
}

/// A copy of `bin` with every `go1.27.3` (the `.go.buildinfo` version and
/// `runtime.buildVersion`) replaced by `version` (same length).
fn with_version(bin: &Path, version: &str, name: &str) -> PathBuf {
    let mut data = std::fs::read(bin).unwrap();
    let old = format!("go{NEWEST}");
    assert_eq!(old.len(), version.len());
    let mut n = 0;
    let mut i = 0;
    while let Some(p) = data[i..]
        .windows(old.len())
        .position(|w| w == old.as_bytes())
    {
        data[i + p..i + p + old.len()].copy_from_slice(version.as_bytes());
        i += p + old.len();
        n += 1;
    }
    assert!(n >= 1, "no {old} in {}", bin.display());
    let out = target_dir().join("hardening").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    std::fs::write(&out, &data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    out
}

#[test]
fn go_versions_older_and_newer_than_known() {
    require_root();
    let normal = build_program("leaks", NEWEST, false);
    let stripped = build_program("leaks", NEWEST, true);
    struct Case {
        bin: PathBuf,
        inspect_says: &'static str,
        attaches: bool,
    }
    let cases = [
        Case {
            bin: with_version(&normal, "go1.20.9", "leaks-go1.20.9"),
            inspect_says: "go1.20.9 is older than go1.21 (unsupported)",
            attaches: false,
        },
        Case {
            bin: with_version(&normal, "go1.99.0", "leaks-go1.99.0"),
            inspect_says: "go1.99.0 is newer than the newest Go SFGI knows (go1.27): struct offsets come from DWARF",
            attaches: true,
        },
        Case {
            bin: with_version(&stripped, "go1.99.0", "leaks-stripped-go1.99.0"),
            inspect_says: "go1.99.0 is newer than the newest Go SFGI knows (go1.27) and it has no DWARF",
            attaches: false,
        },
    ];
    for c in &cases {
        let path = c.bin.to_str().unwrap();
        let r = run_sfgi(&["inspect", path], Duration::from_secs(30));
        assert!(
            r.status.success() && !r.stderr.contains("panicked"),
            "inspect {path}: {}\n{}",
            r.status,
            r.stderr
        );
        assert!(
            r.stdout.contains(c.inspect_says),
            "inspect {path} does not say {:?}:\n{}",
            c.inspect_says,
            r.stdout
        );
        let _slot = attach_slot();
        let mut target = Target::start(&c.bin, &["chan-send", "-delay", "300ms"]);
        let pid = target.pid().to_string();
        let r = run_sfgi(
            &[
                "attach",
                "--pid",
                &pid,
                "--duration",
                "2s",
                "--format",
                "json",
            ],
            Duration::from_secs(60),
        );
        if c.attaches {
            assert!(r.status.success(), "attach {path}: {}", r.stderr);
            let v: Value = serde_json::from_str(&r.stdout).unwrap();
            let g = find_group(&v, "chan send", "main.leakChanSend", "main.spawnChanSend")
                .unwrap_or_else(|| panic!("{path}: no chan-send group:\n{}", pretty(&v)));
            assert!(g["count"].as_u64().unwrap_or(0) >= 10, "{}", pretty(g));
        } else {
            assert_one_error_line(&r, &["cannot trace", c.inspect_says]);
        }
        target.heartbeat();
    }
}

/// Builds `tests/programs/leaks` with Go `version`, `CGO_ENABLED` and extra flags.
fn build_leaks_variant(tag: &str, cgo: bool, flags: &[&str]) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = target_dir()
        .join("go-bin")
        .join(NEWEST)
        .join(format!("leaks-{tag}"));
    let src = program_dir("leaks");
    let src_time = std::fs::metadata(src.join("main.go"))
        .and_then(|m| m.modified())
        .unwrap();
    if std::fs::metadata(&out)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= src_time)
    {
        return out;
    }
    let go = sfgi_gotool::go_binary(NEWEST).unwrap();
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&out).args(flags).arg(".");
    cmd.current_dir(&src);
    sfgi_gotool::go_env(&mut cmd, NEWEST);
    if cgo {
        cmd.env("CGO_ENABLED", "1");
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "go build {tag}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn odd_build_modes_attach_and_find_the_leak() {
    require_root();
    let t0 = Instant::now();
    let variants: [(&str, bool, &[&str]); 4] = [
        ("pie", false, &["-buildmode=pie"]),
        ("cgo", true, &[]),
        ("race", true, &["-race"]),
        (
            "static-external",
            true,
            &["-ldflags=-linkmode=external -extldflags=-static"],
        ),
    ];
    let mut summary = Vec::new();
    for (tag, cgo, flags) in variants {
        let bin = build_leaks_variant(tag, cgo, flags);
        let _slot = attach_slot();
        let mut target = Target::start(&bin, &["chan-send", "-delay", "300ms"]);
        let pid = target.pid();
        let v = attach_json(pid, "2s", &[]);
        let g = find_group(&v, "chan send", "main.leakChanSend", "main.spawnChanSend")
            .unwrap_or_else(|| panic!("{tag}: no chan-send group:\n{}", pretty(&v)));
        assert!(
            g["count"].as_u64().unwrap_or(0) >= 10,
            "{tag}: {}",
            pretty(g)
        );
        let missing = v["stats"]["missing_probes"].as_array().map_or(0, Vec::len);
        summary.push(format!(
            "{tag}: {} leaked, pie={}, missing probes {missing}",
            g["count"], v["target"]["pie"]
        ));
        target.heartbeat();
        let out = target.stop();
        assert!(out.contains(" ok"), "{tag}: {out}");
    }
    eprintln!(
        "build modes ({}):\n  {}",
        secs(t0.elapsed()),
        summary.join("\n  ")
    );
}

#[test]
fn no_privileges_and_kernel_support() {
    require_root();
    let bin = build_program("leaks", NEWEST, false);
    let mut target = Target::start(&bin, &["chan-send"]);
    let pid = target.pid().to_string();
    // An unprivileged copy of sfgi (the build tree may not be readable by nobody).
    let dir = std::env::temp_dir().join(format!("sfgi-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("sfgi");
    std::fs::copy(sfgi_bin(), &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let out = Command::new(sfgi_gotool::tools::require("setpriv"))
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("setpriv");
        SfgiRun {
            args: args.iter().map(|s| s.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let r = as_nobody(&["attach", "--pid", &pid, "--duration", "1s"]);
    assert_one_error_line(&r, &["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "sudo"]);
    let r = as_nobody(&["watch", "--pid", &pid]);
    assert_one_error_line(&r, &["CAP_BPF", "CAP_PERFMON"]);
    let r = as_nobody(&["inspect", "--pid", &pid]);
    assert_one_error_line(&r, &["cannot read the executable", "CAP_SYS_PTRACE"]);
    let _ = std::fs::remove_dir_all(&dir);

    // A kernel without BPF ring buffers (simulated: the checker is told so, a test-hooks build).
    let mut cmd = Command::new(sfgi_test_hooks_bin());
    let out = cmd
        .args(["attach", "--pid", &pid, "--duration", "1s"])
        .env("SFGI_TEST_HOST", "no-ringbuf")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let r = SfgiRun {
        args: vec!["attach (no-ringbuf)".into()],
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_one_error_line(&r, &["ring buffer", "Linux 5.8"]);
    // No kernel BTF: SFGI's programs have no CO-RE relocations and do not need it.
    let _slot = attach_slot();
    let out = Command::new(sfgi_test_hooks_bin())
        .args(["attach", "--pid", &pid, "--duration", "1s"])
        .env("SFGI_TEST_HOST", "no-btf")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "no-btf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.heartbeat();
}

/// File offset and size of ELF64 little-endian section `name` (no dependency on an ELF crate).
fn elf_section(d: &[u8], name: &str) -> Option<(usize, usize)> {
    let u16at = |o: usize| Some(u16::from_le_bytes(d.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32at = |o: usize| Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?) as usize);
    let u64at = |o: usize| Some(u64::from_le_bytes(d.get(o..o + 8)?.try_into().ok()?) as usize);
    let (shoff, shnum, shstrndx) = (u64at(0x28)?, u16at(0x3c)?, u16at(0x3e)?);
    let sh = |i: usize| shoff + i * 64;
    let strtab = u64at(sh(shstrndx) + 0x18)?;
    (0..shnum).find_map(|i| {
        let n = strtab + u32at(sh(i))?;
        let end = n + d.get(n..)?.iter().position(|&b| b == 0)?;
        (d.get(n..end)? == name.as_bytes())
            .then(|| Some((u64at(sh(i) + 0x18)?, u64at(sh(i) + 0x20)?)))
            .flatten()
    })
}

/// `sfgi inspect` on mutated copies of real binaries: exit 0, or exactly one error line; never
/// a panic.
#[test]
fn inspect_survives_corrupt_binaries() {
    let t0 = Instant::now();
    let dir = target_dir().join("hardening").join("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let mut mutants = 0;
    let mut errors = 0;
    for stripped in [false, true] {
        let bin = build_program("leaks", NEWEST, stripped);
        let data = std::fs::read(&bin).unwrap();
        let mut cuts: Vec<(String, Vec<u8>)> = Vec::new();
        for name in [
            ".go.buildinfo",
            ".gopclntab",
            ".noptrdata",
            ".symtab",
            ".debug_info",
            ".debug_abbrev",
            ".debug_line",
        ] {
            let Some((off, size)) = elf_section(&data, name) else {
                continue;
            };
            // Truncated inside the section.
            for frac in [0usize, 1, 2, 3] {
                let cut = off + size * frac / 4 + 1;
                cuts.push((
                    format!("{name}-cut{frac}"),
                    data[..cut.min(data.len())].to_vec(),
                ));
            }
            // Overwritten: zeros, 0xff and a pseudo-random pattern at its start and middle.
            for (i, at) in [off, off + 8, off + size / 2].into_iter().enumerate() {
                for (j, fill) in [0x00u8, 0xff, 0x5a].into_iter().enumerate() {
                    let mut m = data.clone();
                    let end = (at + 64).min(off + size).min(m.len());
                    for (k, b) in m[at..end].iter_mut().enumerate() {
                        *b = if fill == 0x5a {
                            (k as u8).wrapping_mul(37) ^ 0x5a
                        } else {
                            fill
                        };
                    }
                    cuts.push((format!("{name}-fill{i}{j}"), m));
                }
            }
        }
        // ELF header and program/section header table fields.
        for at in [0x04usize, 0x10, 0x18, 0x20, 0x28, 0x36, 0x38, 0x3c, 0x3e] {
            let mut m = data.clone();
            m[at] ^= 0xff;
            cuts.push((format!("elf-hdr-{at:#x}"), m));
        }
        for (name, bytes) in cuts {
            let path = dir.join(format!("{}-{name}", if stripped { "s" } else { "d" }));
            std::fs::write(&path, &bytes).unwrap();
            let r = run_sfgi(
                &["inspect", path.to_str().unwrap(), "--format", "json"],
                Duration::from_secs(30),
            );
            mutants += 1;
            assert!(
                !r.stderr.contains("panicked"),
                "inspect {name} panicked:\n{}",
                r.stderr
            );
            if !r.status.success() {
                errors += 1;
                assert_one_error_line(&r, &[]);
            } else {
                let _: Value = serde_json::from_str(&r.stdout)
                    .unwrap_or_else(|e| panic!("inspect {name}: bad JSON ({e})"));
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    eprintln!(
        "inspect on {mutants} mutated binaries: {errors} clean errors, {} reports, no panic ({})",
        mutants - errors,
        secs(t0.elapsed())
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP surface.

/// `sfgi watch --listen 127.0.0.1:0 EXTRA...` on `pid`; returns it and the bound address.
fn start_watch(pid: u32, extra: &[&str]) -> (Sfgi, SocketAddr) {
    let pid = pid.to_string();
    let mut args = vec!["watch", "--pid", &pid, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut s = Sfgi::spawn(&args, &[]);
    s.wait_stderr("serving on http://");
    let err = s.stderr();
    let addr = err
        .lines()
        .find_map(|l| l.split("serving on http://").nth(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (s, addr)
}

/// GET `path`: (status, body, time taken).
fn get(addr: SocketAddr, path: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    let _ = c.read_to_string(&mut buf);
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body, t.elapsed())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn http_slowloris_and_connection_flood() {
    require_root();
    let t0 = Instant::now();
    let bin = build_program("leaks", NEWEST, false);
    let _slot = attach_slot();
    let mut target = Target::start(&bin, &["chan-send"]);
    let (watch, addr) = start_watch(target.pid(), &[]);
    let spid = watch.pid();
    assert_eq!(get(addr, "/sfgi/leaks").0, 200);
    let rss_before = rss_kib(spid);

    // 50 slowloris clients: one header byte per second, never finishing the headers. The server
    // must close each at its header-read timeout (5 s after the connection started); each
    // client returns how long after connecting it saw the server end the connection (EOF, a
    // reset or a response), or why it did not (still open after 20 s).
    let slow: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || -> Result<Duration, String> {
                let start = Instant::now();
                let mut c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
                // Each read waits up to 1 s for the server to end the connection: that is also
                // the pace of the bytes.
                c.set_read_timeout(Some(Duration::from_secs(1)))
                    .map_err(|e| format!("set_read_timeout: {e}"))?;
                let mut buf = [0u8; 256];
                for b in b"GET /sfgi/leaks HTTP/1.1\r\nX".iter().cycle().take(20) {
                    if c.write_all(&[*b]).is_err() {
                        // Reset by the server.
                        return Ok(start.elapsed());
                    }
                    match c.read(&mut buf) {
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        // EOF, a reset or a response: the server ended the connection.
                        _ => return Ok(start.elapsed()),
                    }
                }
                Err(format!(
                    "still open after {} of dribbling header bytes",
                    secs(start.elapsed())
                ))
            })
        })
        .collect();
    // Normal requests meanwhile: all answered.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1000));
        let (st, _, took) = get(addr, "/sfgi/leaks");
        assert_eq!(st, 200, "a normal request during slowloris failed");
        worst = worst.max(took);
    }
    let mut closed = Vec::new();
    for (i, h) in slow.into_iter().enumerate() {
        match h.join().expect("slowloris client thread panicked") {
            Ok(after) => closed.push(after),
            Err(why) => panic!(
                "slowloris client {i}: {why}; the server must close a connection whose headers \
                 are not complete within the 5 s header-read timeout"
            ),
        }
    }
    closed.sort();
    let last_closed = closed.last().copied().unwrap_or_default();
    assert!(
        last_closed < Duration::from_secs(15),
        "a slowloris client was closed only {} after connecting: expected within 15 s (the \
         header-read timeout is 5 s)",
        secs(last_closed)
    );
    // A generous deadline, not a latency figure: served, a request takes milliseconds; one
    // queued behind the slowloris connections would wait for their 5 s header timeout.
    assert!(
        worst < Duration::from_secs(4),
        "a normal request took {} under slowloris: expected within 4 s (a request stuck behind \
         the slowloris connections waits for their 5 s header timeout)",
        secs(worst)
    );

    // A flood: 200 connections that send nothing. At most 64 are kept; the rest are closed at
    // once; after the 5 s header timeout a normal request is served again.
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = flood
        .iter()
        .filter(|c| {
            c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut b = [0u8; 1];
            // EOF (0 bytes) or reset: closed by the server; a timeout: still held.
            match (&**c).read(&mut b) {
                Ok(0) => true,
                Err(e) => {
                    e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut
                }
                Ok(_) => false,
            }
        })
        .count();
    let rss_flood = rss_kib(spid);
    std::thread::sleep(Duration::from_millis(5500));
    let (st, _, took) = get(addr, "/sfgi/leaks");
    assert_eq!(st, 200, "no service after the flood");
    drop(flood);
    let rss_after = rss_kib(spid);
    assert!(
        refused >= 200 - 64,
        "only {refused} of 200 idle connections were refused"
    );
    assert!(
        rss_after < rss_before + 20 * 1024 && rss_flood < rss_before + 20 * 1024,
        "sfgi RSS grew from {rss_before} KiB to {rss_flood} KiB (flood) / {rss_after} KiB"
    );
    signal(spid, libc::SIGTERM);
    let (st, _, err) = watch.wait();
    assert!(st.success(), "{err}");
    eprintln!(
        "slowloris: 50 clients closed after {}-{} (header timeout 5 s); normal requests: worst {worst:?}; \
         flood: {refused}/200 refused, request after it in {took:?}; sfgi RSS {rss_before} -> {rss_flood} -> {rss_after} KiB ({})",
        secs(closed.first().copied().unwrap_or_default()),
        secs(last_closed),
        secs(t0.elapsed())
    );
    target.heartbeat();
}

// ---------------------------------------------------------------------------------------------
// Honesty: losses are counted and shown everywhere.

#[test]
fn dropped_events_are_reported_everywhere() {
    require_root();
    let t0 = Instant::now();
    let bin = build_program("stress", NEWEST, false);
    let mut target = Target::start(&bin, &["-total", "1000000"]);
    let pid = target.pid();
    let pid_s = pid.to_string();
    {
        let _slot = attach_slot();
        // JSON: stats.dropped, the warning, and every verdict marked incomplete.
        let v = attach_json(pid, "2s", &["--ring-size", "4096"]);
        let dropped = v["stats"]["dropped"].as_u64().unwrap_or(0);
        assert!(dropped > 0, "no drops:\n{}", pretty(&v["stats"]));
        let warnings = v["stats"]["warnings"].to_string();
        assert!(warnings.contains("dropped"), "{warnings}");
        let groups = groups(&v);
        assert!(!groups.is_empty());
        assert!(
            groups.iter().all(|g| g["incomplete"] == Value::Bool(true)),
            "a verdict is not marked incomplete despite {dropped} drops"
        );
        // Table: the drop count and the warning line.
        let r = run_sfgi(
            &[
                "attach",
                "--pid",
                &pid_s,
                "--duration",
                "2s",
                "--ring-size",
                "4096",
            ],
            Duration::from_secs(60),
        );
        assert!(r.status.success(), "{}", r.stderr);
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("events "))
            .unwrap_or("");
        assert!(!line.contains("dropped 0 "), "table: {line}\n{}", r.stdout);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains("events were dropped")),
            "table has no drop warning:\n{}",
            r.stdout
        );
    }
    {
        // /metrics and /sfgi/groups of watch.
        let _slot = attach_slot();
        let (watch, addr) = start_watch(pid, &["--ring-size", "4096"]);
        std::thread::sleep(Duration::from_millis(2500));
        let (st, metrics, _) = get(addr, "/metrics");
        assert_eq!(st, 200);
        let total: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("sfgi_events_dropped_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(total > 0.0, "sfgi_events_dropped_total is 0:\n{metrics}");
        let (_, body, _) = get(addr, "/sfgi/groups");
        let gs: Value = serde_json::from_str(&body).unwrap();
        let gs = gs.as_array().cloned().unwrap_or_default();
        assert!(
            !gs.is_empty() && gs.iter().all(|g| g["incomplete"] == Value::Bool(true)),
            "/sfgi/groups verdicts not marked incomplete"
        );
        signal(watch.pid(), libc::SIGTERM);
        let (st, out, err) = watch.wait();
        assert!(st.success(), "{err}");
        assert!(
            out.contains("events were dropped"),
            "watch final report:\n{out}"
        );
        eprintln!("watch: sfgi_events_dropped_total = {total}");
    }
    let out = target.stop();
    assert!(out.contains(" ok created="), "stress target:\n{out}");
    eprintln!(
        "dropped_events_are_reported_everywhere: {}",
        secs(t0.elapsed())
    );
}

/// A copy of the leaks binary whose `runtime.gcMarkTermination` is renamed (in `.gopclntab` and
/// `.symtab`), so SFGI cannot find its GC-end probe point: the missing probe must show.
#[test]
fn missing_probe_point_is_reported_everywhere() {
    require_root();
    let bin = build_program("leaks", NEWEST, false);
    let mut data = std::fs::read(&bin).unwrap();
    let (old, new) = (
        b"runtime.gcMarkTermination\0".as_slice(),
        b"runtime.gcMarkTerminatioX\0".as_slice(),
    );
    let mut i = 0;
    let mut n = 0;
    while let Some(p) = data[i..].windows(old.len()).position(|w| w == old) {
        data[i + p..i + p + old.len()].copy_from_slice(new);
        i += p + old.len();
        n += 1;
    }
    assert!(n >= 1);
    let path = target_dir().join("hardening").join("leaks-no-gcend");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, &data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _slot = attach_slot();
    let mut target = Target::start(&path, &["chan-send", "-delay", "300ms"]);
    let pid = target.pid();
    let v = attach_json(pid, "2s", &[]);
    let missing = v["stats"]["missing_probes"].to_string();
    assert!(missing.contains("gc_end"), "{}", pretty(&v["stats"]));
    assert!(
        v["stats"]["warnings"]
            .to_string()
            .contains("probes missing: gc_end"),
        "{}",
        pretty(&v["stats"])
    );
    let r = run_sfgi(
        &["attach", "--pid", &pid.to_string(), "--duration", "1s"],
        Duration::from_secs(60),
    );
    assert!(
        r.stderr.contains("warning: no gc_end probe"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("warning: probes missing: gc_end"),
        "{}",
        r.stdout
    );
    // And in /metrics.
    let (watch, addr) = start_watch(pid, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let (st, metrics, _) = get(addr, "/metrics");
    assert_eq!(st, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sfgi_probe_missing{probe=\"gc_end\"} 1")),
        "no sfgi_probe_missing for gc_end:\n{metrics}"
    );
    signal(watch.pid(), libc::SIGTERM);
    let (st, _, err) = watch.wait();
    assert!(st.success(), "{err}");
    target.heartbeat();
}

// ---------------------------------------------------------------------------------------------
// The session loop under pressure.

/// A Ctrl-C that arrives while SFGI reads the inventory of a large target (before the loop has
/// started) ends the session with its report, instead of being lost (the session would then
/// run to `--duration`) or killing SFGI without one.
#[test]
fn ctrl_c_during_the_inventory_read_ends_with_a_report() {
    require_root();
    let bin = build_program("parked", NEWEST, false);
    let _slot = attach_slot();
    let target = Target::start_until(&bin, &["-scale", "300000"], "ready");
    let pid = target.pid().to_string();
    let mut s = Sfgi::spawn(
        &[
            "attach",
            "--pid",
            &pid,
            "--duration",
            "120s",
            "--format",
            "json",
        ],
        &[],
    );
    s.wait_stderr("reading the goroutine inventory");
    let sent = Instant::now();
    assert!(signal(s.pid(), libc::SIGINT), "could not signal sfgi");
    let (st, stdout, stderr) = s.wait();
    let took = sent.elapsed();
    assert!(
        st.success(),
        "sfgi did not end cleanly on a Ctrl-C during the inventory ({st}):\n{stderr}"
    );
    // It stopped because of the signal, not the 120 s duration (wait() gives up after 20 s).
    assert!(
        took < Duration::from_secs(60),
        "the Ctrl-C was not seen: sfgi ran {}",
        secs(took)
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report after the Ctrl-C ({e}):\n{stdout}\n{stderr}"));
    let parked = v["stats"]["parked"].as_u64().unwrap_or(0);
    assert!(
        parked >= 300_000,
        "the report lacks the inventory's goroutines (parked={parked}):\n{}",
        pretty(&v["stats"])
    );
    eprintln!(
        "Ctrl-C during the inventory: report after {}, {parked} parked goroutines",
        secs(took)
    );
    drop(target);
}

/// A target flooding the probes with events (no overhead budget, so every probe stays
/// attached) keeps SFGI busy draining, yet it still answers HTTP and stops on Ctrl-C: no pass
/// of the loop folds more than a bounded batch of records.
#[test]
fn an_event_flood_does_not_starve_http_or_ctrl_c() {
    require_root();
    let bin = build_program("stress", NEWEST, false);
    let _slot = attach_slot();
    let target = Target::start_until(
        &bin,
        &["-total", "1000000000", "-live", "2000", "-depth", "4"],
        "ready",
    );
    let (watch, addr) = start_watch(
        target.pid(),
        &["--max-event-rate", "0", "--interval", "250ms"],
    );
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(8);
    let mut answered = 0;
    while Instant::now() < until {
        let (status, body, took) = get(addr, "/sfgi/leaks");
        assert_eq!(status, 200, "GET /sfgi/leaks during the flood: {body}");
        assert!(
            took < Duration::from_secs(5),
            "GET /sfgi/leaks took {} during the flood: the loop starved the server",
            secs(took)
        );
        slowest = slowest.max(took);
        answered += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let (status, metrics, _) = get(addr, "/metrics");
    assert_eq!(status, 200);
    // One series per probe: `sfgi_events_total{probe="park"} N`.
    let events: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("sfgi_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        events > 100_000.0,
        "not a flood: only {events} events in 8 s (the target churns goroutines)"
    );
    let sent = Instant::now();
    assert!(signal(watch.pid(), libc::SIGINT), "could not signal sfgi");
    // wait() fails the test if sfgi is not gone within 20 s.
    let (st, stdout, stderr) = watch.wait();
    let took = sent.elapsed();
    assert!(
        st.success(),
        "sfgi watch failed after Ctrl-C ({st}):\n{stderr}"
    );
    assert!(
        stdout.contains("sfgi: stopped; detached"),
        "sfgi watch did not stop on the Ctrl-C:\n{stdout}\n{stderr}"
    );
    eprintln!(
        "event flood: {events} events, {answered} HTTP answers (slowest {}), stopped {} after Ctrl-C",
        secs(slowest),
        secs(took)
    );
    drop(target);
}
