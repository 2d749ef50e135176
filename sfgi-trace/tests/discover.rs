//! Discovery against real Go programs: the scanner recognises Go 1.21 (stripped) and the newest
//! Go by `.go.buildinfo` read through `/proc/PID/exe`, even after the executable was deleted
//! from the file system, and never lists this process.
use sfgi_trace::discover::{ns_pid, placement, Scanner};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn build(version: &str, stripped: bool) -> std::path::PathBuf {
    sfgi_gotool::build(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/programs/parked"),
        &sfgi_gotool::Build {
            version,
            stripped,
            ..sfgi_gotool::Build::default()
        },
    )
    .unwrap_or_else(|e| panic!("building parked with Go {version}: {e:#}"))
}

#[test]
fn finds_go_programs_through_proc_exe() {
    for (version, stripped) in [(sfgi_gotool::OLDEST, true), (sfgi_gotool::NEWEST, false)] {
        let bin = build(version, stripped);
        // A copy that is deleted once started: only /proc/PID/exe still reads it.
        let dir = std::env::temp_dir().join(format!("sfgi-discover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let copy = dir.join("parked-copy");
        std::fs::copy(&bin, &copy).expect("copy");
        let mut child = Command::new(&copy)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parked");
        std::thread::sleep(Duration::from_millis(200));
        std::fs::remove_dir_all(&dir).expect("rm");
        let mut scanner = Scanner::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let procs = scanner.scan();
            assert!(!procs.iter().any(|p| p.pid == std::process::id()));
            if let Some(p) = procs.into_iter().find(|p| p.pid == child.id()) {
                break p;
            }
            assert!(Instant::now() < deadline, "Go {version} program not found");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(found.exe, "parked-copy");
        assert!(
            found.go_version.starts_with(&format!("go{version}")),
            "{found:?}"
        );
        assert_eq!(ns_pid(child.id()), Some(child.id()));
        let _ = placement(child.id());
        let _ = child.kill();
        let _ = child.wait();
    }
}
