//! Reachability proofs side by side with the Go runtime's own `goroutineleak` profile, on Go's
//! own leak-detector test programs (`$GOROOT/src/runtime/testdata/testgoroutineleakprofile`,
//! Go 1.27.3, every case `goroutineleakprofile_test.go` lists).
//!
//! Each case runs as Go's test runs it (its own profile written at its end), then waits; SFGI
//! proves what it can (two passes, no probes), and only then the program asks its runtime for
//! the profile again. Leaks are permanent (a goroutine blocked on an unreachable object stays
//! so), so every goroutine SFGI proved must be one the runtime marks leaked afterwards:
//! SFGI-only must be 0. Prints per case: the runtime's leaks, SFGI's, agreements, runtime-only.
//!
//! Needs root (or CAP_SYS_PTRACE) and the Go 1.27.3 toolchain.
use sfgi_goexe::GoBinary;
use sfgi_heap::{Globals, ProofConfig, Prover, RemoteMemory};
use sfgi_tests::scenarios::{go_profile_leaks, suite_cases};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The wrapper around each program's `main` (renamed `origMain`): run the case, say so, wait
/// for SIGUSR1 (SFGI has proved by then), write the leak profile again, exit.
const WRAPPER: &str = r#"package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

var sfgiNoLeakProfile = sync.OnceValue(func() *pprof.Profile {
	return pprof.NewProfile("sfgi-no-goroutineleak")
})

// The runtime's goroutineleak profile; before Go 1.27 (without the experiment) there is none,
// and an empty profile of SFGI's stands in, so the cases' own WriteTo calls still work.
func sfgiLeakProfile() *pprof.Profile {
	if p := pprof.Lookup("goroutineleak"); p != nil {
		return p
	}
	return sfgiNoLeakProfile()
}

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	fmt.Printf("ready pid=%d\n", os.Getpid())
	origMain()
	fmt.Println("sfgi-proof: case returned")
	select {
	case <-sig:
	case <-time.After(60 * time.Second):
	}
	fmt.Println("sfgi-proof: profile")
	sfgiLeakProfile().WriteTo(os.Stdout, 2)
	fmt.Println("sfgi-proof: done")
	os.Exit(0)
}
"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// Builds both suite programs of `source_version`'s Go tree with `version`'s toolchain and
/// [`WRAPPER`], stripped or not: (root, goker, the source's GOROOT).
fn build(source_version: &str, version: &str, stripped: bool) -> (PathBuf, PathBuf, PathBuf) {
    let go = sfgi_gotool::go_binary(version).expect("go");
    let goroot = sfgi_gotool::go_binary(source_version)
        .expect("go")
        .parent()
        .and_then(Path::parent)
        .expect("GOROOT")
        .to_path_buf();
    let src = goroot.join("src/runtime/testdata/testgoroutineleakprofile");
    let dir = sfgi_gotool::target_dir().join("proof-suite").join(format!(
        "{version}{}",
        if stripped { "-stripped" } else { "" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir.join("src"));
    let root = dir.join("src");
    // The language version of the toolchain, up to 1.26 (a Go 1.21 toolchain refuses a newer
    // go.mod; before 1.22 a loop variable is shared by the iterations, which the cases'
    // closures do not depend on for what they leak).
    let lang = if sfgi_gotool::fixtures::minor(version) < 26 {
        format!("1.{}", sfgi_gotool::fixtures::minor(version))
    } else {
        "1.26".into()
    };
    std::fs::write(
        root.join("go.mod"),
        format!("module testgoroutineleakprofile\n\ngo {lang}\n"),
    )
    .expect("go.mod");
    let mut bins = Vec::new();
    for (sub, name) in [(".", "suite"), ("goker", "goker")] {
        let pkg = root.join(sub);
        let main_go = pkg.join("main.go");
        let text = std::fs::read_to_string(&main_go).expect("main.go");
        assert!(text.contains("\nfunc main() {"), "{}", main_go.display());
        std::fs::write(
            &main_go,
            text.replace("\nfunc main() {", "\nfunc origMain() {"),
        )
        .expect("write");
        std::fs::write(pkg.join("zz_sfgi_proof.go"), WRAPPER).expect("wrapper");
        // The cases write the profile themselves too: through the wrapper's stand-in.
        for e in std::fs::read_dir(&pkg).expect("read_dir").flatten() {
            let f = e.path();
            if f.extension().is_some_and(|x| x == "go")
                && f.file_name() != Some("zz_sfgi_proof.go".as_ref())
            {
                let t = std::fs::read_to_string(&f).expect("read");
                if t.contains(r#"pprof.Lookup("goroutineleak")"#) {
                    // (`pprof` stays imported: keep it used.)
                    let t = t.replace(r#"pprof.Lookup("goroutineleak")"#, "sfgiLeakProfile()")
                        + "\nvar _ = pprof.Lookup\n";
                    std::fs::write(&f, t).expect("write");
                }
            }
        }
        let out = dir.join(name);
        let mut cmd = Command::new(&go);
        cmd.arg("build");
        if stripped {
            cmd.args(["-ldflags", "-s -w"]);
        }
        cmd.arg("-o").arg(&out).arg(".").current_dir(&pkg);
        sfgi_gotool::go_env(&mut cmd, version);
        let o = cmd.output().expect("go build");
        assert!(
            o.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        bins.push(out);
    }
    (bins[0].clone(), bins[1].clone(), goroot)
}

/// `Func(...) [reason]` of a goroutine, as Go's profile text gives it: the bottom frame above
/// `runtime.goexit` (compiler `go` wrappers left out), `main.` cut.
fn key(bin: &GoBinary, g: &sfgi_engine::goroutine::GoroutineInfo) -> String {
    let funcs: Vec<String> = g
        .stack
        .iter()
        .enumerate()
        .filter_map(|(i, &pc)| {
            bin.func_for_pc(if i == 0 { pc } else { pc.wrapping_sub(1) })
                .map(|f| f.name)
        })
        .collect();
    let bottom = funcs
        .iter()
        .rev()
        .find(|f| {
            *f != "runtime.goexit"
                && !f
                    .rsplit_once(".gowrap")
                    .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .cloned()
        .unwrap_or_else(|| "?".into());
    format!(
        "{}(...) [{}]",
        bottom.strip_prefix("main.").unwrap_or(&bottom),
        g.wait_reason.as_deref().unwrap_or("")
    )
}

/// One case's comparison, by goroutine id.
#[derive(Default, Debug)]
struct Row {
    /// Goids the runtime marked leaked (its profile, written after SFGI's proof).
    runtime: BTreeSet<u64>,
    /// Goids SFGI proved, with `Func(...) [reason]`.
    sfgi: BTreeMap<u64, String>,
    /// Goroutines blocked on channels or sync objects when SFGI proved.
    candidates: usize,
    refused: Option<String>,
}

/// Goids of `goroutine N [... (leaked)...]:` headers in a debug=2 profile.
fn leaked_goids(profile: &str) -> BTreeSet<u64> {
    profile
        .lines()
        .filter(|l| l.starts_with("goroutine ") && l.contains("(leaked)"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn run_case(bin_path: &Path, bin: &GoBinary, case: &str, simple: bool) -> Result<Row, String> {
    let mut cmd = Command::new(bin_path);
    cmd.arg(case)
        .env("GODEBUG", "asyncpreemptoff=1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if simple {
        cmd.env("GOMAXPROCS", "1");
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let out = child.stdout.take().ok_or("stdout")?;
    let child = Kill(child);
    let pid = child.0.id();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let wait_for = |lines: &mut Vec<String>, what: &str, secs: u64| -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(what);
                    lines.push(l);
                    if done {
                        return Ok(());
                    }
                }
                Err(_) => return Err(format!("no {what:?} line")),
            }
        }
    };
    wait_for(&mut lines, "sfgi-proof: case returned", 30)?;
    // SFGI's settle time, then a proof.
    std::thread::sleep(Duration::from_millis(1200));
    let layout = bin.heap_layout().ok_or("no layout")?.clone();
    let mem = RemoteMemory::new(pid, 0, 4096);
    let globals = Globals::locate(&mem, bin, &layout, 0).map_err(|e| e.to_string())?;
    let prover = Prover {
        layout,
        globals,
        config: ProofConfig {
            gap: Duration::from_millis(200),
            g_stack: bin.offsets().g_stack_lo,
        },
    };
    let mut last = Vec::new();
    let report = prover.prove(&mem, || {
        sfgi_trace::inventory::read(pid, bin, 0).map(|i| {
            last = i.goroutines.clone();
            i.goroutines
        })
    });
    let mut row = Row {
        candidates: report.candidates,
        refused: report.refused.clone(),
        ..Row::default()
    };
    for p in &report.proven {
        let k = last
            .iter()
            .find(|g| g.goid == p.goid)
            .map(|g| key(bin, g))
            .unwrap_or_default();
        row.sfgi.insert(p.goid, k);
    }
    // Only now the runtime's own verdict.
    assert!(unsafe_free_kill(pid, libc_sigusr1()), "SIGUSR1 to {pid}");
    let from = lines.len();
    wait_for(&mut lines, "sfgi-proof: done", 30)?;
    let profile = lines[from..].join("\n");
    row.runtime = leaked_goids(&profile);
    // The parser SFGI's evaluation uses agrees on the count.
    assert_eq!(
        go_profile_leaks(&profile).len(),
        row.runtime.len(),
        "{case}"
    );
    drop(child);
    Ok(row)
}

/// SIGUSR1's number on Linux.
fn libc_sigusr1() -> &'static str {
    "-USR1"
}

/// `kill -USR1 pid` (no unsafe code in this test).
fn unsafe_free_kill(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The suite's two programs by the name `suite_cases` gives them, opened; and the GOROOT their
/// sources came from.
type Suite = (BTreeMap<&'static str, (PathBuf, GoBinary)>, PathBuf);

fn open_suite((root, goker, goroot): (PathBuf, PathBuf, PathBuf)) -> Suite {
    let bins = [
        ("testgoroutineleakprofile", root),
        ("testgoroutineleakprofile/goker", goker),
    ]
    .into_iter()
    .map(|(k, p)| {
        let b = GoBinary::open(&p).expect("open");
        (k, (p, b))
    })
    .collect();
    (bins, goroot)
}

#[test]
#[ignore = "long run (~2 min, Go's 85 leak tests): cargo xtask test --full"]
fn sfgi_proves_nothing_the_runtime_does_not() {
    let version = sfgi_gotool::NEWEST;
    let (bins, goroot) = open_suite(build(version, version, false));
    let cases = suite_cases(&goroot).expect("suite cases");
    let (mut agree, mut runtime_only, mut sfgi_only, mut failed) = (0usize, 0usize, 0usize, 0usize);
    let mut sfgi_only_cases = Vec::new();
    eprintln!("| case | runtime's leaks | SFGI's candidates | SFGI's proofs | agreements | runtime-only | SFGI-only |");
    eprintln!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let Some((path, bin)) = bins.get(case.program.as_str()) else {
            continue;
        };
        let row = match run_case(path, bin, &case.name, case.simple) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                eprintln!("| {} | run failed: {e} | | | | | |", case.name);
                continue;
            }
        };
        let a = row.sfgi.keys().filter(|g| row.runtime.contains(g)).count();
        // SFGI-only, by what they wait in.
        let mut s_only: BTreeMap<&str, usize> = BTreeMap::new();
        for (g, k) in &row.sfgi {
            if !row.runtime.contains(g) {
                *s_only.entry(k.as_str()).or_default() += 1;
            }
        }
        let n_only: usize = s_only.values().sum();
        agree += a;
        runtime_only += row.runtime.len() - a;
        sfgi_only += n_only;
        let fmt = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, n)| {
                    if *n > 1 {
                        format!("{k} ×{n}")
                    } else {
                        k.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        if n_only > 0 {
            sfgi_only_cases.push(format!("{}: {}", case.name, fmt(&s_only)));
        }
        eprintln!(
            "| {} | {} | {} | {}{} | {a} | {} | {} |",
            case.name,
            row.runtime.len(),
            row.candidates,
            row.sfgi.len(),
            row.refused
                .as_deref()
                .map(|r| format!(" (refused: {r})"))
                .unwrap_or_default(),
            row.runtime.len() - a,
            if n_only == 0 {
                "0".to_string()
            } else {
                fmt(&s_only)
            }
        );
    }
    eprintln!(
        "\n{} cases: agreements {agree}, runtime-only {runtime_only}, SFGI-only {sfgi_only}, runs failed {failed}",
        cases.len()
    );
    assert_eq!(
        sfgi_only, 0,
        "SFGI proved what the runtime did not: {sfgi_only_cases:#?}"
    );
    assert!(agree > 0, "nothing proven at all");
}

/// Go's programs built with Go 1.21.13 (normal and stripped), where the runtime has no leak
/// detector and only SFGI can prove: per case, SFGI's proofs on 1.21 against the Go 1.27.3
/// runtime's own verdict on the same case (built from the same sources, its profile written
/// after SFGI's proof). How many goroutines a case leaks varies from run to run (most of
/// goker's cases race many goroutines), so the counts are compared, not the goroutines: no
/// proof on 1.21 in a case where the 1.27 runtime finds no leak, and no more proofs in all
/// than the runtime's leaks; cases with more proofs on 1.21 than in the 1.27 run are listed.
#[test]
#[ignore = "long run (~6 min, Go's 85 leak tests three times): cargo xtask test --full"]
fn sfgi_proves_on_go1_21_what_the_1_27_runtime_finds() {
    let newest = sfgi_gotool::NEWEST;
    let oldest = sfgi_gotool::OLDEST;
    let open = open_suite;
    let (truth_bins, goroot) = open(build(newest, newest, false));
    let builds = [
        ("go1.21", open(build(newest, oldest, false)).0),
        ("go1.21 stripped", open(build(newest, oldest, true)).0),
    ];
    let cases = suite_cases(&goroot).expect("suite cases");
    let mut totals = [0usize; 3];
    let mut over = Vec::new();
    let mut in_clean_cases = Vec::new();
    eprintln!(
        "| case | runtime's leaks (1.27) | SFGI's proofs, 1.21 | SFGI's proofs, 1.21 stripped |"
    );
    eprintln!("|---|---|---|---|");
    for case in &cases {
        let run = |bins: &BTreeMap<&str, (PathBuf, GoBinary)>| {
            let (path, bin) = bins.get(case.program.as_str())?;
            Some(run_case(path, bin, &case.name, case.simple))
        };
        let Some(truth) = run(&truth_bins) else {
            continue;
        };
        let truth = match truth {
            Ok(r) => r.runtime.len(),
            Err(e) => {
                eprintln!("| {} | run failed: {e} | | |", case.name);
                continue;
            }
        };
        let mut cells = vec![truth.to_string()];
        totals[0] += truth;
        for (i, (what, bins)) in builds.iter().enumerate() {
            match run(bins) {
                Some(Ok(row)) => {
                    assert!(row.runtime.is_empty(), "{what}: a leak profile before 1.27");
                    let n = row.sfgi.len();
                    totals[i + 1] += n;
                    if n > truth {
                        over.push(format!("{} ({what}): {n} > {truth}", case.name));
                    }
                    if truth == 0 && n > 0 {
                        in_clean_cases.push(format!("{} ({what}): {n}", case.name));
                    }
                    cells.push(match &row.refused {
                        Some(r) => format!("{n} (refused: {r})"),
                        None => n.to_string(),
                    });
                }
                Some(Err(e)) => cells.push(format!("run failed: {e}")),
                None => cells.push(String::new()),
            }
        }
        eprintln!("| {} | {} |", case.name, cells.join(" | "));
    }
    eprintln!(
        "\n{} cases: the 1.27 runtime's leaks {}, SFGI's proofs on 1.21 {}, on 1.21 stripped {}",
        cases.len(),
        totals[0],
        totals[1],
        totals[2]
    );
    eprintln!("cases with more proofs on 1.21 than leaks in the 1.27 run: {over:?}");
    assert!(
        in_clean_cases.is_empty(),
        "proofs on 1.21 where the 1.27 runtime finds no leak: {in_clean_cases:#?}"
    );
    assert!(
        totals[1] <= totals[0] && totals[2] <= totals[0],
        "more proofs on 1.21 than the runtime's leaks: {totals:?}"
    );
    assert!(totals[1] > 0 && totals[2] > 0, "nothing proven on Go 1.21");
}
