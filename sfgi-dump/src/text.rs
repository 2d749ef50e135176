//! Go's goroutine traceback text, as `runtime.Stack(buf, true)` writes it: the
//! `/debug/pprof/goroutine?debug=2` and `goroutineleak?debug=2` pages, and the dumps a process
//! prints on SIGQUIT (with `GOTRACEBACK=all`), on a panic and on a fatal error.
//!
//! ```text
//! goroutine 7 [chan send, 7 minutes]:
//! main.leakySend(...)
//!         /src/main.go:12
//! main.worker(0xc000012345)
//!         /src/main.go:20 +0x1d
//! created by main.spawn in goroutine 1
//!         /src/main.go:30 +0x45
//! ```
//!
//! The header may also carry `gp=… m=…` (crashes, `GOTRACEBACK=system`), `(leaked)`, `(scan)`,
//! `(durable)`, `, locked to thread`, `, synctest bubble N` and `{labels}`; stacks may end in
//! `...additional frames elided...` or be followed by `[originating from goroutine N]:`
//! ancestors (skipped). Older Go writes `created by main.spawn` without the goroutine. Lines
//! outside goroutines (a panic's message, registers, `exit status 2`) are skipped.
use crate::dump::{Dump, DumpGoroutine, DumpKind, Limits};
use crate::error::DumpError;
use crate::table::FrameTable;
use sfgi_engine::goroutine::GStatus;
use std::collections::HashSet;

/// `runtime.Stack` output is cut at this size by net/http/pprof's `debug=2` handler (Go's
/// `writeGoroutineStacks`): a dump of exactly this size lost its tail to Go, not to a copy.
pub const GO_PPROF_CAP: usize = 64 << 20;

/// The goroutine header of a line, if it is one.
#[derive(Debug, PartialEq, Eq)]
struct Header<'a> {
    goid: u64,
    /// The state part: a status name or a wait reason, suffixes removed.
    state: &'a str,
    leaked: bool,
    minutes: Option<u64>,
    locked: bool,
}

fn parse_header(line: &str) -> Option<Header<'_>> {
    let rest = line.strip_prefix("goroutine ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let goid: u64 = rest.get(..digits)?.parse().ok()?;
    let rest = rest.get(digits..)?;
    if !rest.ends_with(':') {
        return None;
    }
    let open = rest.find(" [")? + 2;
    let close = open + rest.get(open..)?.find(']')?;
    let inner = rest.get(open..close)?;
    let mut parts = inner.split(", ");
    let mut state = parts.next()?;
    let mut leaked = false;
    loop {
        if let Some(s) = state.strip_suffix(" (leaked)") {
            leaked = true;
            state = s;
        } else if let Some(s) = state
            .strip_suffix(" (scan)")
            .or_else(|| state.strip_suffix(" (durable)"))
        {
            state = s;
        } else {
            break;
        }
    }
    if state.is_empty() {
        return None;
    }
    let mut minutes = None;
    let mut locked = false;
    for p in parts {
        if let Some(n) = p.strip_suffix(" minutes") {
            minutes = n.parse().ok();
        } else if p == "locked to thread" {
            locked = true;
        }
    }
    Some(Header {
        goid,
        state,
        leaked,
        minutes,
        locked,
    })
}

/// The function of a frame line (`main.f(0x1, ...)`), if the line is one.
fn parse_function(line: &str) -> Option<&str> {
    if !line.ends_with(')') || line.starts_with([' ', '\t']) {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in line.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    let name = line.get(..i)?;
                    if name.is_empty() || name.contains(char::is_whitespace) {
                        return None;
                    }
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}

/// A frame's location line: `\t/path/file.go:12 +0x1d [fp=… sp=… pc=…]` → (file, line,
/// offset); no offset for inlined frames.
fn parse_location(line: &str) -> Option<(&str, u32, Option<u64>)> {
    let loc = line.strip_prefix('\t')?;
    let (place, offset) = match loc.find(" +0x") {
        Some(i) => {
            let hex = loc.get(i + 4..)?;
            let hex = hex.split(' ').next().unwrap_or(hex);
            (loc.get(..i)?, Some(u64::from_str_radix(hex, 16).ok()?))
        }
        None => (loc.split(" fp=").next().unwrap_or(loc), None),
    };
    let (file, num) = place.rsplit_once(':')?;
    if file.is_empty() {
        return None;
    }
    Some((file, num.parse().ok()?, offset))
}

/// `main.spawn in goroutine 1` or `main.spawn` → (function, creator goid).
fn parse_created_by(rest: &str) -> Option<(&str, u64)> {
    let (func, creator) = match rest.split_once(" in goroutine ") {
        Some((f, n)) => (f, n.trim().parse().ok()?),
        None => (rest.trim(), 0),
    };
    (!func.is_empty() && !func.contains(char::is_whitespace)).then_some((func, creator))
}

/// The status and wait reason a header's state names.
fn status_of(state: &str, leaked: bool) -> (GStatus, Option<&str>) {
    let status = match state {
        "idle" => GStatus::Idle,
        "runnable" => GStatus::Runnable,
        "running" => GStatus::Running,
        "syscall" => GStatus::Syscall,
        "waiting" => GStatus::Waiting,
        "dead" => GStatus::Dead,
        "copystack" => GStatus::Copystack,
        "preempted" => GStatus::Preempted,
        "leaked" => GStatus::Leaked,
        "waiting for cgo callback" => GStatus::DeadExtra,
        // Anything else is a waiting goroutine's wait reason.
        reason => {
            let s = if leaked {
                GStatus::Leaked
            } else {
                GStatus::Waiting
            };
            return (s, Some(reason));
        }
    };
    (if leaked { GStatus::Leaked } else { status }, None)
}

/// What the next line of the goroutine being read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A frame, `created by`, the elision marker, or the end of the goroutine.
    Frame,
    /// The location of the frame whose function was just read.
    Location,
    /// The location of the `go` statement of `created by`.
    Creator,
    /// Ancestors (`[originating from goroutine N]:`) or a note: skipped to the end.
    Skip,
}

struct Building<'a> {
    g: DumpGoroutine,
    line: usize,
    expect: Expect,
    function: &'a str,
    lines_after_header: usize,
}

/// Parses a goroutine dump in Go's traceback text. Frames and wait reasons go into `table`.
pub fn parse_text(text: &str, table: &mut FrameTable, limits: &Limits) -> Result<Dump, DumpError> {
    let mut dump = Dump {
        kind: DumpKind::Text,
        goroutines: Vec::new(),
        deadlock: false,
        time_ns: None,
        skipped_lines: 0,
        warnings: Vec::new(),
    };
    let mut seen: HashSet<u64> = HashSet::new();
    let mut cur: Option<Building<'_>> = None;
    let mut last_line = "";
    // A last line without its newline may be cut anywhere: what does not parse there is a
    // truncation, not garbage.
    let cut_line = if text.ends_with('\n') {
        0
    } else {
        text.lines().count()
    };
    let bad = |n: usize, b: &Building<'_>, what: String| {
        if n == cut_line {
            DumpError::Truncated {
                goid: b.g.goid,
                line: b.line,
            }
        } else {
            DumpError::Garbled { line: n, what }
        }
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        last_line = line;
        if let Some(h) = parse_header(line) {
            if let Some(b) = cur.take() {
                finish(b, &mut dump, &mut seen, limits, table)?;
            }
            let (status, reason) = status_of(h.state, h.leaked);
            let reason = match reason {
                Some(r) => table.reason(r)?,
                None => 0,
            };
            cur = Some(Building {
                g: DumpGoroutine {
                    goid: h.goid,
                    status,
                    reason,
                    wait_minutes: h.minutes,
                    locked_to_thread: h.locked,
                    stack: Vec::new(),
                    stack_truncated: false,
                    created_by: 0,
                    creator: 0,
                },
                line: n,
                expect: Expect::Frame,
                function: "",
                lines_after_header: 0,
            });
            continue;
        }
        let Some(b) = cur.as_mut() else {
            if line.starts_with("goroutine profile: total ") {
                return Err(DumpError::Debug1);
            }
            if n == cut_line && line.starts_with("goroutine ") {
                // A header cut before its end.
                return Err(DumpError::Truncated {
                    goid: line
                        .split(' ')
                        .nth(1)
                        .and_then(|g| g.parse().ok())
                        .unwrap_or(0),
                    line: n,
                });
            }
            if line.starts_with("fatal error: all goroutines are asleep") {
                dump.deadlock = true;
            }
            if !line.is_empty() {
                dump.skipped_lines += 1;
            }
            continue;
        };
        if line.len() > limits.max_line {
            let what = format!("a line of {} bytes in a goroutine's stack", line.len());
            return Err(bad(n, b, what));
        }
        b.lines_after_header += 1;
        match b.expect {
            Expect::Location | Expect::Creator => {
                let Some((file, num, offset)) = parse_location(line) else {
                    let what = format!(
                        "expected the file:line of `{}` (goroutine {}), found {:?}",
                        b.function,
                        b.g.goid,
                        clip(line)
                    );
                    return Err(bad(n, b, what));
                };
                let inlined = offset.is_none();
                let pc = table.intern(
                    b.function,
                    Some(file),
                    Some(num),
                    offset.unwrap_or(0),
                    inlined,
                )?;
                if b.expect == Expect::Creator {
                    b.g.created_by = pc;
                    b.expect = Expect::Skip;
                } else {
                    if b.g.stack.len() < limits.max_frames {
                        b.g.stack.push(pc);
                    } else {
                        b.g.stack_truncated = true;
                    }
                    b.expect = Expect::Frame;
                }
            }
            Expect::Frame | Expect::Skip if line.is_empty() => {
                if let Some(b) = cur.take() {
                    finish(b, &mut dump, &mut seen, limits, table)?;
                }
            }
            Expect::Skip => {}
            Expect::Frame => {
                if let Some(rest) = line.strip_prefix("created by ") {
                    let Some((func, creator)) = parse_created_by(rest) else {
                        let what =
                            format!("a `created by` line without a function: {:?}", clip(line));
                        return Err(bad(n, b, what));
                    };
                    b.function = func;
                    b.g.creator = creator;
                    b.expect = Expect::Creator;
                } else if line == "...additional frames elided..." {
                    b.g.stack_truncated = true;
                } else if line.starts_with("[originating from goroutine ") {
                    b.expect = Expect::Skip;
                } else if line.starts_with('\t') && b.lines_after_header == 1 {
                    // `\tgoroutine running on other thread; stack unavailable`, and the like.
                    b.expect = Expect::Skip;
                } else if let Some(func) = parse_function(line) {
                    b.function = func;
                    b.expect = Expect::Location;
                } else if line.starts_with('\t') {
                    let what = format!("a location without a function: {:?}", clip(line));
                    return Err(bad(n, b, what));
                } else if n == cut_line {
                    // A frame cut before its closing parenthesis.
                    return Err(bad(n, b, String::new()));
                } else {
                    // Not part of the stack (`exit status 2` right after the last frame): the
                    // goroutine ended.
                    dump.skipped_lines += 1;
                    if let Some(b) = cur.take() {
                        finish(b, &mut dump, &mut seen, limits, table)?;
                    }
                }
            }
        }
    }
    if let Some(b) = cur.take() {
        let cut_mid_stack = matches!(b.expect, Expect::Location | Expect::Creator)
            || b.lines_after_header == 0
            || (!text.ends_with('\n') && parse_location(last_line).is_none_or(|l| l.2.is_none()));
        if !cut_mid_stack {
            finish(b, &mut dump, &mut seen, limits, table)?;
        } else if text.len() == GO_PPROF_CAP {
            dump.warnings.push(format!(
                "the dump is exactly {} MiB, where Go's pprof handler cuts it: the goroutines after goroutine {} are missing",
                GO_PPROF_CAP >> 20,
                b.g.goid
            ));
        } else {
            return Err(DumpError::Truncated {
                goid: b.g.goid,
                line: b.line,
            });
        }
    }
    if dump.goroutines.is_empty() && seen.is_empty() {
        return Err(DumpError::NoGoroutines);
    }
    Ok(dump)
}

/// Adds a goroutine read to the end (goroutine 0, the signal handler's system stack, is not
/// one; a goid seen twice keeps its first stack). The main goroutine, which no `go` statement
/// created, is marked created by the runtime's start-up (`runtime.rt0_go`), as the live source
/// names it.
fn finish(
    mut b: Building<'_>,
    dump: &mut Dump,
    seen: &mut HashSet<u64>,
    limits: &Limits,
    table: &mut FrameTable,
) -> Result<(), DumpError> {
    if b.g.created_by == 0 {
        let outermost = b.g.stack.last().and_then(|&pc| table.frame(pc));
        if outermost.is_some_and(|f| matches!(f.function.as_str(), "main.main" | "runtime.main")) {
            b.g.created_by = table.intern("runtime.rt0_go", None, None, 0, false)?;
        }
    }
    if b.g.goid == 0 {
        return Ok(());
    }
    if !seen.insert(b.g.goid) {
        // A few examples, not one warning per line of a garbled file.
        if dump.warnings.len() < 5 {
            dump.warnings.push(format!(
                "goroutine {} appears twice (line {}): the first kept",
                b.g.goid, b.line
            ));
        }
        return Ok(());
    }
    if dump.goroutines.len() >= limits.max_goroutines {
        return Err(DumpError::OverLimit {
            what: "goroutines in one dump",
            limit: limits.max_goroutines,
        });
    }
    dump.goroutines.push(b.g);
    Ok(())
}

/// A line shortened for an error message.
fn clip(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::sample;
    use sfgi_engine::frame::Symbols;

    fn parse_str(s: &str) -> Result<(Dump, FrameTable), DumpError> {
        let mut t = FrameTable::new();
        let d = parse_text(s, &mut t, &Limits::default())?;
        Ok((d, t))
    }

    fn functions(t: &mut FrameTable, g: &DumpGoroutine) -> Vec<String> {
        g.stack
            .iter()
            .map(|&pc| t.frames(pc, false)[0].function.clone())
            .collect()
    }

    #[test]
    fn headers_of_every_shape() {
        let h = |s| {
            parse_header(s).map(|h| (h.goid, h.state.to_string(), h.leaked, h.minutes, h.locked))
        };
        assert_eq!(
            h("goroutine 1 [running]:"),
            Some((1, "running".into(), false, None, false))
        );
        assert_eq!(
            h("goroutine 7 [chan send, 7 minutes]:"),
            Some((7, "chan send".into(), false, Some(7), false))
        );
        assert_eq!(
            h("goroutine 24 [select, 2 minutes, locked to thread]:"),
            Some((24, "select".into(), false, Some(2), true))
        );
        assert_eq!(
            h("goroutine 5 [chan send (leaked)]:"),
            Some((5, "chan send".into(), true, None, false))
        );
        assert_eq!(
            h("goroutine 2 gp=0x281ea30a6780 m=nil [force gc (idle), 2 minutes]:"),
            Some((2, "force gc (idle)".into(), false, Some(2), false))
        );
        assert_eq!(
            h("goroutine 9 [chan receive (nil chan) (scan), synctest bubble 3]:"),
            Some((9, "chan receive (nil chan)".into(), false, None, false))
        );
        assert_eq!(
            h("goroutine 8 [sync.WaitGroup.Wait] {user: \"a b\", n: 1}:"),
            Some((8, "sync.WaitGroup.Wait".into(), false, None, false))
        );
        for bad in [
            "goroutine x [running]:",
            "goroutine 1 [running]",
            "goroutine 1 []:",
            "goroutine 1 [running:",
            "goroutine profile: total 5",
            "[originating from goroutine 1]:",
            "goroutine 99999999999999999999999 [running]:",
        ] {
            assert_eq!(parse_header(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_and_locations() {
        assert_eq!(parse_function("main.main()"), Some("main.main"));
        assert_eq!(
            parse_function("main.(*T).M(0xc000012345, {0x1, 0x2})"),
            Some("main.(*T).M")
        );
        assert_eq!(parse_function("main.G[...](...)"), Some("main.G[...]"));
        assert_eq!(
            parse_function("panic({0x4a5b20?, 0xc000012345?})"),
            Some("panic")
        );
        assert_eq!(parse_function("exit status 2"), None);
        assert_eq!(parse_function("panic: boom (x)"), None);
        assert_eq!(parse_function(")"), None);
        assert_eq!(
            parse_location("\t/src/main.go:12 +0x1d"),
            Some(("/src/main.go", 12, Some(0x1d)))
        );
        assert_eq!(
            parse_location("\t/src/x.go:575 +0x21 fp=0x7ffc sp=0x7ffc pc=0x492b21"),
            Some(("/src/x.go", 575, Some(0x21)))
        );
        assert_eq!(
            parse_location("\tC:/go/src/x.go:3"),
            Some(("C:/go/src/x.go", 3, None))
        );
        assert_eq!(parse_location("/src/main.go:12"), None);
        assert_eq!(parse_location("\t/src/main.go"), None);
        assert_eq!(parse_location("\t/src/main.go:12 +0xzz"), None);
        assert_eq!(
            parse_created_by("main.f in goroutine 1"),
            Some(("main.f", 1))
        );
        assert_eq!(parse_created_by("main.f"), Some(("main.f", 0)));
        assert_eq!(parse_created_by(""), None);
    }

    #[test]
    fn a_pprof_debug2_dump() {
        let text = String::from_utf8(sample("pprof-debug2.txt")).unwrap();
        let (d, mut t) = parse_str(&text).unwrap();
        assert_eq!(d.kind, DumpKind::Text);
        assert!(!d.deadlock);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let leaked: Vec<&DumpGoroutine> = d
            .goroutines
            .iter()
            .filter(|g| t.wait_reason(u32::from(g.reason)).as_deref() == Some("chan send"))
            .collect();
        assert_eq!(leaked.len(), 76);
        for g in &leaked {
            assert_eq!(g.status, GStatus::Waiting);
            assert_eq!(functions(&mut t, g)[0], "main.leakySend");
            assert_eq!(t.frames(g.created_by, true)[0].function, "main.spawnLeaks");
            assert_ne!(g.creator, 0);
        }
        // The oldest waited over two minutes (a GC stamped them), the newest under one.
        assert!(leaked.iter().any(|g| g.wait_minutes == Some(2)));
        assert!(leaked.iter().any(|g| g.wait_minutes.is_none()));
        let locked: Vec<&DumpGoroutine> =
            d.goroutines.iter().filter(|g| g.locked_to_thread).collect();
        assert_eq!(locked.len(), 1);
        assert_eq!(functions(&mut t, locked[0])[0], "main.locked");
        // The goroutine writing the dump is running; inlined frames have no offset.
        assert!(d.goroutines.iter().any(|g| g.status == GStatus::Running));
        let f = t.frames(leaked[0].stack[0], false).remove(0);
        assert_eq!(f.line, Some(40));
        assert!(f
            .file
            .is_some_and(|f| f.ends_with("tests/programs/dumps/main.go")));
    }

    #[test]
    fn a_sigquit_dump_with_registers_and_runtime_frames() {
        let text = String::from_utf8(sample("sigquit.txt")).unwrap();
        let (d, mut t) = parse_str(&text).unwrap();
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        // Goroutine 0 (the signal handler's system stack, once per thread) is not one.
        assert!(d.goroutines.iter().all(|g| g.goid != 0));
        assert!(
            d.skipped_lines > 20,
            "the registers and the message are skipped"
        );
        let leaky = d
            .goroutines
            .iter()
            .filter(|g| functions(&mut t, g).iter().any(|f| f == "main.leakySend"))
            .count();
        assert!(leaky >= 76, "{leaky}");
        let g2 = d.goroutines.iter().find(|g| g.goid == 2).unwrap();
        assert_eq!(g2.wait_minutes, Some(2));
        assert_eq!(
            t.wait_reason(u32::from(g2.reason)).as_deref(),
            Some("force gc (idle)")
        );
        assert_eq!(functions(&mut t, g2)[0], "runtime.gopark");
    }

    #[test]
    fn a_deadlock_and_a_panic() {
        let text = String::from_utf8(sample("deadlock.txt")).unwrap();
        let (d, mut t) = parse_str(&text).unwrap();
        assert!(d.deadlock);
        assert_eq!(d.goroutines.len(), 4);
        let main = &d.goroutines[0];
        assert_eq!(main.goid, 1);
        assert_eq!(
            t.frames(main.created_by, true)[0].function,
            "runtime.rt0_go"
        );
        assert!(d.goroutine_infos().all(|g| g.status == GStatus::Leaked));
        let text = String::from_utf8(sample("panic.txt")).unwrap();
        let (d, _) = parse_str(&text).unwrap();
        assert!(!d.deadlock);
        assert_eq!(d.goroutines.len(), 4);
        assert_eq!(d.goroutines[0].status, GStatus::Running);
    }

    #[test]
    fn a_goroutineleak_debug2_profile_marks_the_leaked() {
        let text = String::from_utf8(sample("goroutineleak-debug2.txt")).unwrap();
        let (d, mut t) = parse_str(&text).unwrap();
        let leaked: Vec<&DumpGoroutine> = d
            .goroutines
            .iter()
            .filter(|g| g.status == GStatus::Leaked)
            .collect();
        assert_eq!(leaked.len(), 76);
        assert_eq!(
            t.wait_reason(u32::from(leaked[0].reason)).as_deref(),
            Some("chan send")
        );
        assert!(leaked
            .iter()
            .all(|g| functions(&mut t, g)[0] == "main.leakySend"));
    }

    #[test]
    fn older_go_forms_and_elisions() {
        let text = "goroutine 5 [chan receive, 3 minutes]:\n\
                    main.inner(...)\n\t/m.go:3\n\
                    main.outer(0x1)\n\t/m.go:9 +0x1d\n\
                    ...additional frames elided...\n\
                    created by main.spawn\n\t/m.go:20 +0x45\n\n\
                    goroutine 6 [running]:\n\tgoroutine running on other thread; stack unavailable\n\
                    created by main.spawn\n\t/m.go:21 +0x45\n\n\
                    goroutine 7 [select]:\nmain.a()\n\t/m.go:1 +0x1\n\
                    [originating from goroutine 1]:\nmain.main()\n\t/m.go:30 +0x1\n";
        let (d, mut t) = parse_str(text).unwrap();
        assert_eq!(d.goroutines.len(), 3);
        let g = &d.goroutines[0];
        assert_eq!(functions(&mut t, g), vec!["main.inner", "main.outer"]);
        assert!(t.frames(g.stack[0], false)[0].inlined);
        assert!(!t.frames(g.stack[1], false)[0].inlined);
        assert!(g.stack_truncated);
        assert_eq!((g.creator, g.wait_minutes), (0, Some(3)));
        assert_eq!(
            t.frames(g.created_by, true)[0].site(),
            "main.spawn at /m.go:20"
        );
        assert!(d.goroutines[1].stack.is_empty());
        assert_eq!(
            functions(&mut t, &d.goroutines[2]),
            vec!["main.a"],
            "ancestors are not the stack"
        );
        // `go run`'s `exit status 2` right after the last frame ends the goroutine.
        let (d, _) =
            parse_str("goroutine 1 [running]:\nmain.main()\n\t/m.go:5 +0x1d\nexit status 2\n")
                .unwrap();
        assert_eq!((d.goroutines.len(), d.skipped_lines), (1, 1));
    }

    #[test]
    fn a_cut_dump_is_truncated_wherever_it_is_cut() {
        let text = String::from_utf8(sample("pprof-debug2.txt")).unwrap();
        let mut truncated = 0;
        for cut in (1..text.len()).step_by(97) {
            let Some(part) = text.get(..cut) else {
                continue;
            };
            match parse_str(part) {
                Ok((d, _)) => assert!(!d.goroutines.is_empty()),
                Err(DumpError::Truncated { .. }) => truncated += 1,
                Err(DumpError::NoGoroutines) => assert!(cut < 30),
                Err(e) => panic!("cut at {cut}: {e}"),
            }
        }
        assert!(truncated > 100, "{truncated}");
        // Cut after a whole frame and its newline: the last goroutine may look whole; cut
        // inside a line or between a function and its location: truncated.
        assert!(matches!(
            parse_str("goroutine 1 [running]:\nmain.main()\n"),
            Err(DumpError::Truncated { goid: 1, line: 1 })
        ));
        assert!(matches!(
            parse_str(
                "goroutine 1 [running]:\nmain.main()\n\t/m.go:5 +0x1d\n\ngoroutine 2 [select]:\n"
            ),
            Err(DumpError::Truncated { goid: 2, line: 5 })
        ));
        assert!(matches!(
            parse_str("goroutine 1 [running]:\nmain.main()\n\t/m.go:5"),
            Err(DumpError::Truncated { .. })
        ));
        assert!(parse_str("goroutine 1 [running]:\nmain.main()\n\t/m.go:5 +0x1d").is_ok());
    }

    #[test]
    fn garbled_lines_are_named() {
        for (text, line) in [
            ("goroutine 1 [running]:\nmain.main()\nmain.other()\n", 3),
            (
                "goroutine 1 [running]:\nmain.main()\n\t/m.go:5 +0x1d\n\t/m.go:6 +0x1d\n",
                4,
            ),
            (
                "goroutine 1 [running]:\nmain.main()\n\t/m.go:5 +0x1d\ncreated by \n",
                4,
            ),
        ] {
            match parse_str(text) {
                Err(DumpError::Garbled { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let long = format!(
            "goroutine 1 [running]:\nmain.main({})\n\t/m.go:5 +0x1d\n",
            "x".repeat(70_000)
        );
        assert!(matches!(
            parse_str(&long),
            Err(DumpError::Garbled { line: 2, .. })
        ));
        assert!(matches!(
            parse_str("hello\nworld\n"),
            Err(DumpError::NoGoroutines)
        ));
        let debug1 = String::from_utf8(sample("debug1.txt")).unwrap();
        assert!(matches!(parse_str(&debug1), Err(DumpError::Debug1)));
    }

    #[test]
    fn limits_hold() {
        let limits = Limits {
            max_goroutines: 2,
            max_frames: 1,
            ..Limits::default()
        };
        let text = "goroutine 1 [select]:\nmain.a()\n\t/m.go:1 +0x1\nmain.b()\n\t/m.go:2 +0x1\n\n\
                    goroutine 2 [select]:\nmain.a()\n\t/m.go:1 +0x1\n\n\
                    goroutine 3 [select]:\nmain.a()\n\t/m.go:1 +0x1\n";
        let mut t = FrameTable::new();
        let err = parse_text(text, &mut t, &limits).unwrap_err();
        assert!(
            matches!(err, DumpError::OverLimit { limit: 2, .. }),
            "{err}"
        );
        let mut t = FrameTable::new();
        let d = parse_text(&text[..text.find("goroutine 3").unwrap()], &mut t, &limits).unwrap();
        assert_eq!(d.goroutines[0].stack.len(), 1);
        assert!(d.goroutines[0].stack_truncated);
        // A goid twice: the first kept, said once.
        let twice = "goroutine 1 [select]:\nmain.a()\n\t/m.go:1 +0x1\n\ngoroutine 1 [select]:\nmain.b()\n\t/m.go:2 +0x1\n";
        let (d, _) = parse_str(twice).unwrap();
        assert_eq!((d.goroutines.len(), d.warnings.len()), (1, 1));
    }
}
