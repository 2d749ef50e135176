//! Helpers for SFGI integration tests: the `sfgi` binary, Go targets, and `sfgi attach` runs.
//!
//! These tests attach real uprobes to real Go processes, so they need root (CAP_BPF +
//! CAP_PERFMON); [`require_root`] fails loudly instead of skipping.
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod scenarios;

pub use sfgi_gotool::{target_dir, workspace_root, Build, ALL, NEWEST, OLDEST};

/// One leak pattern of `tests/programs/leaks`: how it is selected and what Go reports for it.
#[derive(Clone, Copy, Debug)]
pub struct Pattern {
    /// Command-line name (`leaks <name>`).
    pub name: &'static str,
    /// The non-inlined function the leaked goroutine blocks in (the expected `blocked_at`).
    pub blocks_in: &'static str,
    /// The function whose `go` statement creates it (the expected `created_by`).
    pub spawned_by: &'static str,
    /// Go's wait reason text (as in a SIGQUIT goroutine dump) with the newest Go.
    pub wait_reason: &'static str,
}

/// Every pattern of `tests/programs/leaks`.
pub const PATTERNS: &[Pattern] = &[
    Pattern {
        name: "chan-send",
        blocks_in: "main.leakChanSend",
        spawned_by: "main.spawnChanSend",
        wait_reason: "chan send",
    },
    Pattern {
        name: "chan-receive",
        blocks_in: "main.leakChanReceive",
        spawned_by: "main.spawnChanReceive",
        wait_reason: "chan receive",
    },
    Pattern {
        name: "select",
        blocks_in: "main.leakSelect",
        spawned_by: "main.spawnSelect",
        wait_reason: "select",
    },
    Pattern {
        name: "mutex",
        blocks_in: "main.leakMutex",
        spawned_by: "main.spawnMutex",
        wait_reason: "sync.Mutex.Lock",
    },
    Pattern {
        name: "waitgroup",
        blocks_in: "main.leakWaitGroup",
        spawned_by: "main.spawnWaitGroup",
        wait_reason: "sync.WaitGroup.Wait",
    },
    Pattern {
        name: "io",
        blocks_in: "main.leakIOWait",
        spawned_by: "main.spawnIOWait",
        wait_reason: "IO wait",
    },
    Pattern {
        name: "nil-chan",
        blocks_in: "main.leakNilChan",
        spawned_by: "main.spawnNilChan",
        wait_reason: "chan receive (nil chan)",
    },
    Pattern {
        name: "select-empty",
        blocks_in: "main.leakSelectEmpty",
        spawned_by: "main.spawnSelectEmpty",
        wait_reason: "select (no cases)",
    },
    Pattern {
        name: "cond",
        blocks_in: "main.leakCondWait",
        spawned_by: "main.spawnCondWait",
        wait_reason: "sync.Cond.Wait",
    },
    Pattern {
        name: "sleep",
        blocks_in: "main.leakSleep",
        spawned_by: "main.spawnSleep",
        wait_reason: "sleep",
    },
];

impl Pattern {
    /// The wait reason Go `version` itself reports (checked against SIGQUIT dumps): before Go
    /// 1.24, `sync.WaitGroup.Wait` parked with the generic "semacquire".
    pub fn wait_reason_for(&self, version: &str) -> &'static str {
        if self.name == "waitgroup" && go_minor(version) < 24 {
            "semacquire"
        } else {
            self.wait_reason
        }
    }

    /// `(blocking line, go statement line)` in `tests/programs/leaks/main.go`, found from the
    /// `sfgi:blocks` / `sfgi:spawns` markers inside the pattern's functions.
    pub fn source_lines(&self) -> (u32, u32) {
        let src = std::fs::read_to_string(leaks_source()).expect("reading leaks/main.go");
        let find = |func: &str, marker: &str| -> u32 {
            let short = func.trim_start_matches("main.");
            let mut inside = false;
            for (i, line) in src.lines().enumerate() {
                if line.starts_with("func ") {
                    inside = line.starts_with(&format!("func {short}("));
                } else if inside && line.contains(marker) {
                    return i as u32 + 1;
                }
            }
            panic!("no {marker} marker in {func} of leaks/main.go");
        };
        (
            find(self.blocks_in, "sfgi:blocks"),
            find(self.spawned_by, "sfgi:spawns"),
        )
    }
}

/// The pattern called `name`.
pub fn pattern(name: &str) -> &'static Pattern {
    PATTERNS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no leak pattern {name:?}"))
}

/// Minor version of a Go version string ("1.21.13" or "go1.21.13" -> 21).
pub fn go_minor(version: &str) -> u32 {
    version
        .trim_start_matches("go")
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("bad Go version {version:?}"))
}

/// `tests/programs/<name>`.
pub fn program_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("programs")
        .join(name)
}

/// `tests/programs/leaks/main.go`.
pub fn leaks_source() -> PathBuf {
    program_dir("leaks").join("main.go")
}

/// Builds `tests/programs/<name>` with Go `version` (installing it on first use).
pub fn build_program(name: &str, version: &str, stripped: bool) -> PathBuf {
    build_dir(&program_dir(name), version, stripped)
}

/// Builds the Go main package in `dir`. Builds are serialized within the test process so two
/// tests never write the same output at once.
pub fn build_dir(dir: &Path, version: &str, stripped: bool) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    sfgi_gotool::build(
        dir,
        &Build {
            version,
            stripped,
            ..Build::default()
        },
    )
    .unwrap_or_else(|e| panic!("building {} with Go {version}: {e:#}", dir.display()))
}

/// The `http://ADDR` a target announced on its `pprof http://ADDR ...` stdout line (the dumps
/// program, and the scenarios built with the `sfgipprof` tag), if it did.
pub fn pprof_base(t: &Target) -> Option<String> {
    t.stdout()
        .lines()
        .find_map(|l| l.strip_prefix("pprof "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// `tests/programs/dumps serve` (Go [`NEWEST`]): serves net/http/pprof and leaks one goroutine
/// every `interval` (blocked sending in `main.leakySend`, created by `main.spawnLeaks`).
/// Returns it and its `http://ADDR`.
pub fn serve_dumps(interval: &str) -> (Target, String) {
    let bin = build_program("dumps", NEWEST, false);
    let t = Target::start_until(
        &bin,
        &["serve", "-interval", interval, "-traceback", "all"],
        "pprof http://",
    );
    let base = pprof_base(&t).expect("pprof address");
    (t, base)
}

/// The `sfgi` binary under test: `$SFGI_BIN` if set, else the newer of `target/release/sfgi` and
/// `target/debug/sfgi`; if neither exists, `cargo build -p sfgi-cli` builds the debug one.
pub fn sfgi_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SFGI_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "SFGI_BIN={} is not a file", p.display());
            return p;
        }
        let t = target_dir();
        let newest = ["release", "debug"]
            .iter()
            .map(|profile| t.join(profile).join("sfgi"))
            .filter_map(|p| {
                let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
                Some((m, p))
            })
            .max_by_key(|(m, _)| *m);
        if let Some((_, p)) = newest {
            return p;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("sfgi-tests: no sfgi binary yet, running cargo build -p sfgi-cli ...");
        let status = Command::new(cargo)
            .args(["build", "-p", "sfgi-cli"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build -p sfgi-cli");
        assert!(status.success(), "cargo build -p sfgi-cli failed");
        let p = t.join("debug").join("sfgi");
        assert!(
            p.is_file(),
            "cargo build succeeded but {} is missing",
            p.display()
        );
        p
    })
    .clone()
}

/// The `sfgi` binary built with the `test-hooks` feature (`$SFGI_TEST_HOOKS_BIN`, which
/// `cargo xtask test` builds and sets), for the tests that need a hook a normal build leaves
/// out (`SFGI_TEST_PANIC`). Panics with one line when it is not set: unlike [`sfgi_bin`] there is
/// no fallback, since a binary found in `target/` may have been built without the feature.
pub fn sfgi_test_hooks_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let Some(p) = std::env::var_os("SFGI_TEST_HOOKS_BIN") else {
            panic!("SFGI_TEST_HOOKS_BIN is not set: run the tests through `cargo xtask test`");
        };
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SFGI_TEST_HOOKS_BIN={} is not a file",
            p.display()
        );
        p
    })
    .clone()
}

/// Panics unless running as root: SFGI needs CAP_BPF and CAP_PERFMON to load probes.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "SFGI integration tests must run as root (they load eBPF uprobes: CAP_BPF + CAP_PERFMON); \
         euid is {euid}. Run e.g. `sudo -E cargo test -p sfgi-tests`."
    );
}

/// Sends `sig` to `pid`; false if it failed (e.g. the process is gone).
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: plain kill(2) on a pid we own.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Output captured from a child's pipe by a reader thread, with a condition to wait on.
#[derive(Default)]
struct Captured {
    text: Mutex<String>,
    changed: Condvar,
}

impl Captured {
    fn spawn_reader(pipe: impl Read + Send + 'static) -> (Arc<Self>, std::thread::JoinHandle<()>) {
        let cap = Arc::new(Self::default());
        let c = Arc::clone(&cap);
        let handle = std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        c.text
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_str(&String::from_utf8_lossy(&line));
                        c.changed.notify_all();
                    }
                }
            }
        });
        (cap, handle)
    }

    fn get(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until `f(text)` returns Some, or `timeout`.
    fn wait_for<T>(&self, timeout: Duration, mut f: impl FnMut(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = f(&text) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            text = self
                .changed
                .wait_timeout(text, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A running Go test program. It must print `ready pid=<pid>` on stdout once set up; the
/// programs of `tests/programs` also answer SIGUSR1 with `heartbeat=<n>` and SIGTERM with
/// `heartbeat=<n> ok`. Dropping a `Target` kills it.
pub struct Target {
    child: Child,
    desc: String,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
    readers: Vec<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Target {
    /// Starts `bin args...` and waits (up to 15 s) for its `ready pid=<pid>` line.
    pub fn start(bin: &Path, args: &[&str]) -> Target {
        Self::start_until(bin, args, "ready pid=")
    }

    /// Starts `bin args...` and waits (up to 15 s) for a stdout line containing `marker` and
    /// ending in `pid=<pid>` (e.g. `leaky-service listening on ADDR pid=PID`).
    pub fn start_until(bin: &Path, args: &[&str], marker: &str) -> Target {
        let desc = format!("{} {}", bin.display(), args.join(" "));
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {desc}: {e}"));
        let (stdout, h1) = Captured::spawn_reader(child.stdout.take().expect("piped stdout"));
        let (stderr, h2) = Captured::spawn_reader(child.stderr.take().expect("piped stderr"));
        let mut t = Target {
            child,
            desc,
            stdout,
            stderr,
            readers: vec![h1, h2],
            status: None,
        };
        let pid = t.pid();
        let ready = t.stdout.wait_for(Duration::from_secs(15), |s| {
            s.lines()
                .filter(|l| l.contains(marker))
                .find_map(|l| l.rsplit_once("pid="))
                .map(|(_, p)| p.trim().to_string())
        });
        match ready {
            Some(p) => assert_eq!(
                p,
                pid.to_string(),
                "{}: ready line names another pid",
                t.desc
            ),
            None => panic!(
                "{} did not print `{marker} ... pid=` within 15 s (alive: {})\nstdout:\n{}\nstderr:\n{}",
                t.desc.clone(),
                t.alive(),
                t.stdout(),
                t.stderr()
            ),
        }
        t
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (not exited, not a zombie).
    pub fn alive(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(st)) => {
                self.status = Some(st);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Everything the program printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.get()
    }

    /// Everything the program printed on stderr so far (a Go crash dump lands here).
    pub fn stderr(&self) -> String {
        self.stderr.get()
    }

    /// The heartbeat counter now: sends SIGUSR1 and waits (5 s) for the next `heartbeat=<n>` line.
    pub fn heartbeat(&mut self) -> u64 {
        let count = |s: &str| s.lines().filter(|l| l.starts_with("heartbeat=")).count();
        let before = count(&self.stdout.get());
        assert!(
            self.alive() && signal(self.pid(), libc::SIGUSR1),
            "{} is not running (status {:?}); stderr:\n{}",
            self.desc,
            self.status,
            self.stderr()
        );
        let n = self.stdout.wait_for(Duration::from_secs(5), |s| {
            let beats: Vec<&str> = s.lines().filter(|l| l.starts_with("heartbeat=")).collect();
            beats.get(before).map(|l| {
                l["heartbeat=".len()..]
                    .trim()
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("bad heartbeat line {l:?}"))
            })
        });
        n.unwrap_or_else(|| {
            panic!(
                "{} did not answer SIGUSR1 within 5 s (alive: {})\nstdout:\n{}\nstderr:\n{}",
                self.desc.clone(),
                self.alive(),
                self.stdout(),
                self.stderr()
            )
        })
    }

    /// Sends SIGTERM, waits up to 10 s for the exit (then SIGKILLs it and panics), and returns
    /// the complete stdout. Checking [`Target::exit_status`] is the caller's job.
    pub fn stop(&mut self) -> String {
        if self.alive() {
            signal(self.pid(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within 10 s of SIGTERM\nstdout:\n{}\nstderr:\n{}",
                    self.desc,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        self.stdout()
    }

    /// Exit status, once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.alive();
        self.status
    }

    /// The command line, for messages.
    pub fn describe(&self) -> &str {
        &self.desc
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Outcome of one `sfgi` run.
#[derive(Debug)]
pub struct SfgiRun {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sfgi args...` (without `RUST_LOG`, so stderr holds only what users see), killing it
/// and panicking after `timeout`.
pub fn run_sfgi(args: &[&str], timeout: Duration) -> SfgiRun {
    run_sfgi_bin(&sfgi_bin(), args, &[], timeout)
}

/// [`run_sfgi`] with another `sfgi` binary (e.g. [`sfgi_test_hooks_bin`]) and extra environment.
pub fn run_sfgi_bin(bin: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> SfgiRun {
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
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} {}: {e}", bin.display(), args.join(" ")));
    let (stdout, h1) = Captured::spawn_reader(child.stdout.take().expect("piped stdout"));
    let (stderr, h2) = Captured::spawn_reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sfgi {} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    args.join(" "),
                    stdout.get(),
                    stderr.get()
                );
            }
        }
    };
    let _ = h1.join();
    let _ = h2.join();
    SfgiRun {
        args: args.iter().map(|s| s.to_string()).collect(),
        status,
        stdout: stdout.get(),
        stderr: stderr.get(),
    }
}

/// Runs `sfgi attach --pid PID --duration D --format json EXTRA...`, asserts exit status 0 and
/// returns the parsed JSON report.
pub fn attach_json(pid: u32, duration: &str, extra_args: &[&str]) -> Value {
    let pid_s = pid.to_string();
    let mut args = vec![
        "attach",
        "--pid",
        &pid_s,
        "--duration",
        duration,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra_args);
    let run = run_sfgi(&args, Duration::from_secs(120));
    assert!(
        run.status.success(),
        "sfgi {} failed with {}\nstderr:\n{}\nstdout:\n{}",
        run.args.join(" "),
        run.status,
        run.stderr,
        run.stdout
    );
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "sfgi {} printed invalid JSON ({e})\nstdout:\n{}\nstderr:\n{}",
            run.args.join(" "),
            run.stdout,
            run.stderr
        )
    })
}

/// The report's `groups` array (empty if missing).
pub fn groups(v: &Value) -> Vec<&Value> {
    v["groups"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The first group with exactly `wait_reason` whose `blocked_at` contains `blocked_in` and whose
/// `created_by` contains `created_in`.
pub fn find_group<'a>(
    v: &'a Value,
    wait_reason: &str,
    blocked_in: &str,
    created_in: &str,
) -> Option<&'a Value> {
    groups(v).into_iter().find(|g| {
        g["wait_reason"].as_str() == Some(wait_reason)
            && g["blocked_at"]
                .as_str()
                .is_some_and(|s| contains_func(s, blocked_in))
            && g["created_by"]
                .as_str()
                .is_some_and(|s| contains_func(s, created_in))
    })
}

/// Whether `site` ("main.leakMutex at /x/main.go:99") names function `func` exactly (not just a
/// prefix of a longer name such as `main.leakSelectEmpty` for `main.leakSelect`).
pub fn contains_func(site: &str, func: &str) -> bool {
    site.match_indices(func).any(|(i, _)| {
        site[i + func.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'))
    })
}

/// The sum of the samples of `name` in a Prometheus text exposition whose labels include all of
/// `labels` (`None`: no such sample).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut sum = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n == name && labels.iter().all(|want| rest.contains(want)) {
            if let Ok(v) = value.trim().parse::<f64>() {
                *sum.get_or_insert(0.0) += v;
            }
        }
    }
    sum
}

/// Pretty JSON for failure messages.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A process-wide limit on concurrent attaches (`SFGI_TEST_MAX_ATTACH`, default 4), so parallel
/// tests do not overload small machines and make timing-sensitive checks flaky.
pub fn attach_slot() -> AttachSlot {
    static SLOTS: OnceLock<(Mutex<usize>, Condvar)> = OnceLock::new();
    let (m, cv) = SLOTS.get_or_init(|| {
        let n = std::env::var("SFGI_TEST_MAX_ATTACH")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(4);
        (Mutex::new(n), Condvar::new())
    });
    let mut free = m.lock().unwrap_or_else(|e| e.into_inner());
    while *free == 0 {
        free = cv.wait(free).unwrap_or_else(|e| e.into_inner());
    }
    *free -= 1;
    AttachSlot { slots: (m, cv) }
}

/// A held [`attach_slot`]; released on drop.
pub struct AttachSlot {
    slots: (&'static Mutex<usize>, &'static Condvar),
}

impl Drop for AttachSlot {
    fn drop(&mut self) {
        *self.slots.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.slots.1.notify_one();
    }
}

/// A pid that no process has right now.
pub fn unused_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (2..max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("every pid is in use")
}

/// The BPF program IDs process `pid` holds (from `/proc/PID/fdinfo`): what must be gone from the
/// kernel once it exits.
pub fn bpf_prog_ids_held(pid: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                ids.extend(
                    t.lines()
                        .filter_map(|l| l.strip_prefix("prog_id:"))
                        .filter_map(|v| v.trim().parse::<u64>().ok()),
                );
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}
