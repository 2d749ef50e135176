//! `sfgi_goexe` must reject malformed input with an error and never panic: empty files, random
//! bytes, non-Go ELF files, truncated and bit-flipped Go binaries.

use sfgi_goexe::{GoBinary, GoExeError, PROBE_FUNCTIONS};
use std::path::{Path, PathBuf};

/// Tests run in parallel and share build outputs: build one at a time.
static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn build(stripped: bool) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sfgi_gotool::build(
        &sfgi_gotool::fixtures::fixture("hello"),
        &sfgi_gotool::Build {
            version: sfgi_gotool::NEWEST,
            stripped,
            tag: "goexe",
            ..Default::default()
        },
    )
    .expect("building the fixture")
}

/// Deterministic xorshift PRNG (no extra dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn parse(data: Vec<u8>) -> Result<GoBinary, GoExeError> {
    GoBinary::from_bytes(data, PathBuf::from("mutant"))
}

/// Calls every query on a binary that parsed, to make sure none of them panics.
fn exercise(bin: &GoBinary) {
    let _ = bin.support();
    let _ = bin.build_info();
    let _ = bin.spawn_probe();
    for &f in PROBE_FUNCTIONS {
        if let Some(func) = bin.func_by_name(f) {
            let _ = bin.func_for_pc(func.entry);
            let _ = bin.line_for_pc(func.entry);
            let _ = bin.line_for_pc(func.end.wrapping_sub(1));
            for pc in (func.entry..func.end.min(func.entry + 512)).step_by(7) {
                let _ = bin.frames_for_pc(pc);
            }
        }
        let _ = bin.probe_point(f);
        let _ = bin.pclntab_func_by_name(f);
    }
    let _ = bin.call_sites("runtime.newproc.func1", "runtime.runqput");
    for pc in [0, 1, 0x401000, 0x450000, u64::MAX] {
        let _ = bin.func_for_pc(pc);
        let _ = bin.line_for_pc(pc);
        let _ = bin.file_offset(pc);
        let _ = bin.frames_for_pc(pc);
    }
    let _ = bin.wait_reasons().name(u32::MAX);
    let _ = sfgi_goexe::inspect::render_text(&sfgi_goexe::inspect::report(bin));
}

fn section_range(data: &[u8], name: &str) -> (usize, usize) {
    use object::{Object, ObjectSection};
    let f = object::File::parse(data).unwrap();
    let s = f.section_by_name(name).unwrap();
    let (off, size) = s.file_range().unwrap();
    (off as usize, size as usize)
}

#[test]
fn empty_and_tiny_files() {
    assert!(matches!(parse(Vec::new()), Err(GoExeError::NotElf(_))));
    assert!(matches!(
        parse(b"\x7fEL".to_vec()),
        Err(GoExeError::NotElf(_))
    ));
    assert!(parse(b"\x7fELF".to_vec()).is_err());
    assert!(parse(b"\x7fELF\x02\x01\x01".to_vec()).is_err());
    let dir = std::env::temp_dir().join(format!("sfgi-goexe-empty-{}", std::process::id()));
    std::fs::write(&dir, b"").unwrap();
    assert!(matches!(GoBinary::open(&dir), Err(GoExeError::NotElf(_))));
    std::fs::remove_file(&dir).unwrap();
    assert!(matches!(
        GoBinary::open(Path::new("/nonexistent/sfgi")),
        Err(GoExeError::Io(_))
    ));
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for len in [1usize, 16, 64, 100, 1000, 4096, 65536] {
        for with_magic in [false, true] {
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if with_magic && len >= 4 {
                data[..4].copy_from_slice(b"\x7fELF");
            }
            assert!(parse(data).is_err(), "len {len}");
        }
    }
}

#[test]
fn non_go_elf() {
    let path = Path::new("/bin/true");
    if !path.exists() {
        return;
    }
    match GoBinary::open(path) {
        Err(GoExeError::NotGo(_)) => {}
        other => panic!("/bin/true: expected NotGo, got {other:?}"),
    }
}

#[test]
fn truncated_binaries() {
    for stripped in [true, false] {
        let data = std::fs::read(build(stripped)).unwrap();
        let (pc_off, pc_size) = section_range(&data, ".gopclntab");
        let pc_end = pc_off + pc_size;
        let mut cuts = vec![0, 1, 4, 16, 63, 64, 65, 200, 0x1000, data.len() / 3];
        cuts.extend([
            pc_off,
            pc_off + 4,
            pc_off + 40,
            pc_off + pc_size / 2,
            pc_end - 1,
        ]);
        cuts.extend([pc_end, pc_end + 100, data.len() * 3 / 4, data.len() - 1]);
        for cut in cuts {
            let r = parse(data[..cut].to_vec());
            if cut < pc_end {
                assert!(r.is_err(), "stripped={stripped} cut at {cut:#x} parsed");
            } else if let Ok(bin) = r {
                exercise(&bin);
            }
        }
    }
}

#[test]
fn corrupt_pclntab_header() {
    let data = std::fs::read(build(true)).unwrap();
    let (off, _) = section_range(&data, ".gopclntab");
    // (offset in the header, bytes to write)
    let edits: &[(usize, &[u8])] = &[
        (0, &[0x00]),                         // magic
        (3, &[0x7f]),                         // magic
        (4, &[1]),                            // pad
        (6, &[3]),                            // instruction quantum
        (7, &[5]),                            // pointer size
        (8, &[0xff, 0xff, 0xff, 0xff, 0xff]), // nfunc
        (15, &[0x80]),                        // nfunc high byte
        (32, &[0xff; 8]),                     // funcnameOffset
        (40, &[0xff; 8]),                     // cuOffset
        (48, &[0xff; 8]),                     // filetabOffset
        (56, &[0xff; 8]),                     // pctabOffset
        (64, &[0xff; 8]),                     // pclnOffset
    ];
    for (at, bytes) in edits {
        let mut d = data.clone();
        d[off + at..off + at + bytes.len()].copy_from_slice(bytes);
        match parse(d) {
            Err(GoExeError::Corrupt { what, .. }) => assert_eq!(what, ".gopclntab"),
            other => panic!(
                "header edit at {at}: expected Corrupt, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for stripped in [true, false] {
        let data = std::fs::read(build(stripped)).unwrap();
        let (pc_off, pc_size) = section_range(&data, ".gopclntab");
        let (bi_off, bi_size) = section_range(&data, ".go.buildinfo");
        let rounds = if stripped { 150 } else { 12 };
        for round in 0..rounds {
            let mut d = data.clone();
            for _ in 0..1 + rng.below(16) {
                // Aim most flips at the structures goexe parses.
                let at = match rng.below(4) {
                    0 => pc_off + rng.below(pc_size),
                    1 => pc_off + rng.below(4096.min(pc_size)),
                    2 => bi_off + rng.below(bi_size),
                    _ => rng.below(d.len()),
                };
                d[at] = rng.next() as u8;
            }
            if let Ok(bin) = parse(d) {
                exercise(&bin);
            } else if round == 0 {
                // Fine: rejected.
            }
        }
    }
}

#[test]
fn real_binary_still_parses() {
    // Sanity check for the tests above: the unmodified input is accepted and exercised.
    let bin = GoBinary::open(&build(true)).unwrap();
    exercise(&bin);
    assert!(bin.support().probes_supported);
}

/// Bytes flipped in the inline trees (`go:func.*`, found through `runtime.firstmoduledata`) and
/// in the PCDATA tables: `frames_for_pc` stays total and bounded (a corrupt tree can have
/// cycles).
#[test]
fn inline_tree_mutations_never_panic() {
    let path = {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        sfgi_gotool::build(
            &sfgi_gotool::fixtures::fixture("inline"),
            &sfgi_gotool::Build {
                version: sfgi_gotool::NEWEST,
                stripped: true,
                tag: "goexe",
                ..Default::default()
            },
        )
        .expect("building the inline fixture")
    };
    let data = std::fs::read(&path).unwrap();
    let reference = GoBinary::open(&path).unwrap();
    let gofunc = reference.gofunc().expect("go:func.* found via moduledata");
    let g_off = reference.file_offset(gofunc).unwrap() as usize;
    let g_len = (data.len() - g_off).min(64 << 10);
    let (pc_off, pc_size) = section_range(&data, ".gopclntab");
    let funcs: Vec<_> = ["main.lockAndAdd", "main.main", "runtime.chanrecv"]
        .iter()
        .map(|f| reference.func_by_name(f).unwrap())
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..60 {
        let mut d = data.clone();
        for _ in 0..1 + rng.below(64) {
            let at = if rng.below(2) == 0 {
                g_off + rng.below(g_len)
            } else {
                pc_off + rng.below(pc_size)
            };
            d[at] = rng.next() as u8;
        }
        if let Ok(bin) = parse(d) {
            for f in &funcs {
                for pc in f.entry..f.end {
                    let frames = bin.frames_for_pc(pc);
                    assert!(frames.len() <= 257, "{} frames", frames.len());
                }
            }
        }
    }
}
