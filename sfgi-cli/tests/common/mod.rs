//! Shared by the `sfgi-cli` integration tests: building the Go fixtures in `tests/fixtures/`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Tests run in parallel and share build outputs: build one at a time.
pub static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Builds fixture `name` with Go `version` (cached by `sfgi_gotool`), panicking with the build's
/// error on failure.
pub fn build_fixture(name: &str, version: &str, stripped: bool) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sfgi_gotool::build(
        &fixture(name),
        &sfgi_gotool::Build {
            version,
            stripped,
            tag: "goexe",
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("building the {name} fixture with Go {version}: {e:#}"))
}

/// The minor version of a Go release (`1.27.3` → 27).
pub fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("not a Go release: {version}"))
}

/// One `#[test]` per supported Go release, each calling the including file's
/// `check_version(VERSION)`, plus a test that the list is every release `sfgi_gotool` knows.
macro_rules! every_go_version {
    () => {
        every_go_version! {
            go1_21 => "1.21.13",
            go1_22 => "1.22.10",
            go1_23 => "1.23.9",
            go1_24 => "1.24.11",
            go1_25 => "1.25.5",
            go1_26 => "1.26.6",
            go1_27 => "1.27.3",
        }
    };
    ($($name:ident => $v:expr),* $(,)?) => {
        $(#[test] fn $name() { check_version($v); })*
        #[test]
        fn all_versions_covered() {
            let listed = [$($v),*];
            assert_eq!(&listed[..], sfgi_gotool::ALL);
        }
    };
}
