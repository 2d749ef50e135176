//! `sfgi_heap` against live Go processes of every supported version (the program of
//! `tests/programs/proof`, normal and stripped), without probes: the globals are found in
//! stripped binaries where the symbols say they are in normal ones (from code: `semtable`,
//! `allfin`, `gcCleanups`), and one reachability pass over the running target finds the
//! program's leaks unreachable and its look-alikes reachable (among them goroutines whose
//! channel only a queued finalizer or cleanup references).
//!
//! Needs root (or CAP_SYS_PTRACE) to read the targets' memory, and the Go toolchains.
use sfgi_goexe::{GoBinary, HeapLayout};
use sfgi_heap::{Globals, Memory, ProofConfig, Prover, RemoteMemory};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn program() -> PathBuf {
    sfgi_gotool::workspace_root().join("tests/programs/proof")
}

fn build(version: &str, stripped: bool) -> PathBuf {
    let _g = sfgi_gotool::fixtures::BUILD_LOCK
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    sfgi_gotool::build(
        &program(),
        &sfgi_gotool::Build {
            version,
            stripped,
            tag: "heap",
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("building the proof program with Go {version}: {e:#}"))
}

/// The program, running, after its `ready` line.
struct Running(Child);

impl Running {
    fn start(bin: &Path) -> Running {
        let mut c = Command::new(bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the proof program");
        let out = c.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.starts_with("ready pid="), "{line}");
        // Let the leaked goroutines park (SFGI's default settle time).
        std::thread::sleep(Duration::from_secs(1));
        Running(c)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pointer masks SFGI builds for types whose masks the runtime builds on demand (Go
/// 1.24+) are the ones the runtime built (the program's garbage keeps its GC running, and every
/// GC scans them): `main.bigStruct` (20 100 pointer-sized words, the type of `main.bigTyped`'s
/// large object, from its span's `largeType`) and, where it is built on demand too (Go 1.27),
/// `runtime.p` (from `allp[0]`'s allocation header).
fn check_built_masks(
    mem: &RemoteMemory,
    bin: &GoBinary,
    layout: &HeapLayout,
    mheap: u64,
    what: &str,
) {
    let word = |a: u64| {
        let b = mem
            .read_ranges(&[(a, 8)])
            .expect("read")
            .pop()
            .flatten()
            .expect("word");
        u64::from_le_bytes(b.try_into().expect("8 bytes"))
    };
    let (big, _) = bin.data_symbol("main.bigTyped").expect("bigTyped symbol");
    let big = word(big);
    let spans = sfgi_heap::Spans::read(mem, layout, mheap).expect("spans");
    let (si, _, _) = spans.object(big).expect("bigTyped's span");
    let big_type = spans.get(si).expect("span").large_type;
    let (allp, _) = bin.data_symbol("runtime.allp").expect("allp symbol");
    let p_type = word(word(word(allp)) - 8);
    for (name, typ) in [("main.bigStruct", big_type), ("runtime.p", p_type)] {
        let head = mem
            .read_ranges(&[(typ, 48)])
            .expect("read")
            .pop()
            .flatten()
            .expect("type");
        let ptr_words = u64::from_le_bytes(head[8..16].try_into().expect("8")) / 8;
        if head[20] & 16 == 0 {
            assert_ne!(name, "main.bigStruct", "{what}: its mask is in the binary");
            continue;
        }
        let slot = u64::from_le_bytes(head[32..40].try_into().expect("8"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let built = loop {
            let b = word(slot);
            if b != 0 {
                break b;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the runtime built no mask for {name}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let runtime = mem
            .read_ranges(&[(built, ptr_words.div_ceil(8) as usize)])
            .expect("read")
            .pop()
            .flatten()
            .expect("mask");
        let ours = sfgi_heap::build_type_mask(mem, typ).expect("SFGI builds the mask");
        assert_eq!(ours, runtime, "{what}: {name}'s pointer mask");
        eprintln!(
            "{what}: {name}'s pointer mask built by SFGI = the runtime's ({ptr_words} words, {} pointers)",
            ours.iter().map(|b| b.count_ones()).sum::<u32>()
        );
    }
}

/// Whether a pass's refusal is one a live, busy target causes now and then and a later pass
/// does not meet (the program's garbage goroutine keeps its GC busy): a scanned goroutine's
/// stack moved (a running one's grew, or a parked one's was halved by a GC — a young
/// goroutine's, at several GCs in a row), or a span was read while the runtime was setting it
/// up (`slots outside the span`, seen once in about 20 runs under load). Refusing is right;
/// the test retries as `sfgi` does at its next proof.
fn transient(why: &str) -> bool {
    why.contains("moved") || why.contains("corrupt mspan")
}

/// Proven goroutines per creating function (from the inventory's goroutines' start pcs).
fn check_version(version: &str) {
    let minor = sfgi_gotool::fixtures::minor(version);
    let normal = build(version, false);
    let stripped = build(version, true);
    for (bin_path, is_stripped) in [(&normal, false), (&stripped, true)] {
        let what = format!("go{version}{}", if is_stripped { " stripped" } else { "" });
        let bin = GoBinary::open(bin_path).expect("open");
        let layout = bin.heap_layout().expect("heap layout").clone();
        let run = Running::start(bin_path);
        let pid = run.0.id();
        let mem = RemoteMemory::new(pid, 0, 1024);
        let g = Globals::locate(&mem, &bin, &layout, 0).expect("globals");
        // The contents scan finds mheap_ where the symbol is; the code finds semtable there.
        let by_scan = sfgi_heap::locate_mheap(&mem, &bin, &layout, 0);
        if let Err(e) = &by_scan {
            eprintln!("{what}: mheap_ by contents: {e}");
        }
        if let Some((sym, _)) = bin.data_symbol("runtime.mheap_") {
            assert_eq!(by_scan.ok(), Some(sym), "{what}: mheap_ by contents");
            assert_eq!(g.mheap, sym);
            assert_eq!(
                sfgi_trace::inventory::locate_semtable_in_code(&bin).ok(),
                bin.data_symbol("runtime.semtable").map(|s| s.0),
                "{what}: semtable from code"
            );
            // The finalizer and cleanup queues too.
            let allfin = bin.data_symbol("runtime.allfin").map(|s| s.0);
            assert!(allfin.is_some(), "{what}: no allfin symbol");
            assert_eq!(
                sfgi_trace::inventory::locate_allfin_in_code(&bin).ok(),
                allfin,
                "{what}: allfin from code"
            );
            assert_eq!(Some(g.allfin), allfin);
            if minor >= 25 {
                let q = bin.data_symbol("runtime.gcCleanups").map(|s| s.0);
                assert!(q.is_some(), "{what}: no gcCleanups symbol");
                assert_eq!(
                    sfgi_trace::inventory::locate_cleanup_queue_in_code(&bin, layout.cleanupq_all)
                        .ok(),
                    q,
                    "{what}: gcCleanups from code"
                );
                assert_eq!(g.cleanup_queue, q);
            }
            if minor >= 24 {
                check_built_masks(&mem, &bin, &layout, g.mheap, &what);
            }
        } else {
            assert_eq!(by_scan.ok(), Some(g.mheap), "{what}");
        }
        assert!(g.semtable.is_some(), "{what}: semtable");
        assert_eq!(g.cleanup_queue.is_some(), minor >= 25, "{what}: gcCleanups");
        let prover = Prover {
            layout,
            globals: g,
            config: ProofConfig {
                gap: Duration::from_millis(100),
                g_stack: bin.offsets().g_stack_lo,
            },
        };
        // A pass is refused (rightly) when what it read changed under it (see `transient`):
        // wait a little, read the inventory again and retry, up to five tries, every refusal
        // printed.
        let mut tries = 0;
        let (inv, (found, candidates)) = loop {
            tries += 1;
            let inv = sfgi_trace::inventory::read(pid, &bin, 0).expect("inventory");
            match prover.pass(&mem, &inv.goroutines) {
                Err(e) if transient(&e.to_string()) && tries < 5 => {
                    eprintln!("{what}: pass try {tries} refused: {e}");
                    std::thread::sleep(Duration::from_millis(300));
                }
                r => break (inv, r.expect("pass")),
            }
        };
        // Name each proven goroutine by the function it starts in (`go f(x)` starts in a
        // wrapper named after the function holding the `go` statement: `main.leakMutex.func1`
        // up to Go 1.23, `.gowrap1` from 1.24).
        let mut by_func: BTreeMap<String, usize> = BTreeMap::new();
        for gi in inv
            .goroutines
            .iter()
            .filter(|g| found.contains_key(&g.goid))
        {
            let f = bin
                .func_for_pc(gi.startpc)
                .map(|f| f.name)
                .unwrap_or_default();
            let f = f
                .trim_end_matches(".func1")
                .trim_end_matches(".gowrap1")
                .to_string();
            *by_func.entry(f).or_default() += 1;
        }
        // Leaks only, never a look-alike (healthyHeld's and healthyWaitGroup's goroutines
        // block in the same functions as leakChanReceive's and leakWaitGroup's), and nearly
        // all of them: a conservative scan may keep one alive for a pass through a stale word
        // (the whole stack of a goroutine running at that instant is scanned); `tests/proof.rs`
        // requires every one through the CLI.
        let leaks = [
            "main.leakChanSend",
            "main.leakChanReceive",
            "main.leakSelect",
            "main.leakMutex",
            "main.leakWaitGroup",
            "main.blockNil",
        ];
        assert!(
            by_func.keys().all(|f| leaks.contains(&f.as_str()))
                && by_func.values().all(|&n| n <= 3),
            "{what}: not a leak: {by_func:?}"
        );
        let total: usize = by_func.values().sum();
        assert!(
            total >= 16,
            "{what}: {candidates} candidates, proven {by_func:?}"
        );
        // The objects: channels for channel waits, the semaphore for sync waits.
        for (park, obj) in found.values() {
            assert!(
                !park.objects.is_empty() || obj.kind == "nil chan",
                "{what}: {obj:?}"
            );
        }
        // A whole proof (two passes) agrees, with the same retry on a moved stack.
        let mut tries = 0;
        let report = loop {
            tries += 1;
            let r = prover.prove(&mem, || {
                sfgi_trace::inventory::read(pid, &bin, 0).map(|i| i.goroutines)
            });
            match &r.refused {
                Some(why) if transient(why) && tries < 5 => {
                    eprintln!("{what}: proof try {tries} refused: {why}");
                    std::thread::sleep(Duration::from_millis(300));
                }
                _ => break r,
            }
        };
        assert_eq!(report.refused, None, "{what} (try {tries})");
        // Every goroutine the proof proved is one of the leaks' (named as above).
        let leak_goids: std::collections::BTreeSet<u64> = inv
            .goroutines
            .iter()
            .filter(|g| {
                let f = bin
                    .func_for_pc(g.startpc)
                    .map(|f| f.name)
                    .unwrap_or_default();
                leaks.contains(&f.trim_end_matches(".func1").trim_end_matches(".gowrap1"))
            })
            .map(|g| g.goid)
            .collect();
        assert_eq!(leak_goids.len(), 18, "{what}");
        assert!(
            report.proven.len() >= 16 && report.proven.iter().all(|p| leak_goids.contains(&p.goid)),
            "{what}: {report:#?}"
        );
        assert!(mem.bytes_read() > 0);
        eprintln!(
            "{what}: go1.{minor} {candidates} candidates, {total} proven by one pass, {} by a proof, {} bytes read in {:.1} ms",
            report.proven.len(),
            report.bytes_read,
            report.pass_ns as f64 / 1e6
        );
    }
}

sfgi_gotool::every_go_version!();
