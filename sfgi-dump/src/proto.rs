//! pprof's protobuf profiles (profile.proto, gzip'd) of goroutines: `/debug/pprof/goroutine`
//! and, from Go 1.26 with the experiment or 1.27, `/debug/pprof/goroutineleak`. A sample is one
//! distinct stack with the number of goroutines on it; there are no goroutine ids, states or
//! wait times. The wait reason is read off the stack (`runtime.chansend1` → `chan send`), and
//! the members of a stack are numbered per stack, the same in every profile of a series
//! ([`FrameTable::stack_number`]): a group whose count does not fall is taken to keep its
//! members.
use crate::dump::{Dump, DumpGoroutine, DumpKind, Limits};
use crate::error::DumpError;
use crate::table::FrameTable;
use prost::Message;
use sfgi_engine::goroutine::GStatus;
use std::collections::HashMap;

/// First synthetic goid of protobuf profiles' goroutines: far above real goids, so they are
/// never taken for real ones.
pub const SYNTHETIC_GOID_BASE: u64 = 1 << 48;
/// Members numbered per stack: room for this many on one stack.
const PER_STACK: u64 = 1 << 24;

/// `perftools.profiles.Profile`, only the fields SFGI reads (prost skips the others).
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    /// What each sample value counts.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples: one per distinct stack.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Locations (addresses with their source lines).
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string, by index (0 is "").
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// When the profile was taken, ns since the Unix epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
}

/// `ValueType`: a sample value's type and unit, as string-table indices.
#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    /// Type (`goroutine`, `goroutineleak`).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Unit (`count`).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`: a stack (leaf first) and its values.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// Values, one per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

/// `Location`: one address; several lines when calls were inlined there (innermost first).
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    /// Its id (not 0).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The address.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Source lines, innermost first.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `Line`: a function and a line in it.
#[derive(Clone, PartialEq, Message)]
pub struct Line {
    /// The function's id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// The line number.
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `Function`: names and file, as string-table indices.
#[derive(Clone, PartialEq, Message)]
pub struct Function {
    /// Its id (not 0).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Name (`main.worker`).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Source file.
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// The state and wait reason a parked stack shows, read off its frames (innermost first): a
/// profile has no states. No `runtime.gopark` and no system call: running.
pub fn infer_state<'a>(
    functions: impl IntoIterator<Item = &'a str>,
) -> (GStatus, Option<&'static str>) {
    let mut parked = false;
    for f in functions {
        let reason = match f {
            "runtime.gopark" | "runtime.goparkunlock" => {
                parked = true;
                continue;
            }
            "runtime.chanrecv" | "runtime.chanrecv1" | "runtime.chanrecv2" => "chan receive",
            "runtime.chansend" | "runtime.chansend1" => "chan send",
            "runtime.selectgo" => "select",
            "runtime.block" => "select (no cases)",
            "sync.(*WaitGroup).Wait" => "sync.WaitGroup.Wait",
            "sync.(*Cond).Wait" => "sync.Cond.Wait",
            "sync.(*Mutex).Lock" | "sync.(*Mutex).lockSlow" | "internal/sync.(*Mutex).lockSlow" => {
                "sync.Mutex.Lock"
            }
            "sync.(*RWMutex).RLock" => "sync.RWMutex.RLock",
            "sync.(*RWMutex).Lock" => "sync.RWMutex.Lock",
            "time.Sleep" => "sleep",
            "runtime.netpollblock" | "internal/poll.runtime_pollWait" => "IO wait",
            "runtime.gcBgMarkWorker" => "GC worker (idle)",
            "runtime.bgsweep" => "GC sweep wait",
            "runtime.bgscavenge" => "GC scavenge wait",
            "runtime.runfinq" | "runtime.runFinalizers" => "finalizer wait",
            "runtime.runCleanups" => "cleanup wait",
            "runtime.forcegchelper" => "force gc (idle)",
            "os/signal.signal_recv" | "runtime.signal_recv" => "signal wait",
            "runtime.semacquire1"
            | "sync.runtime_Semacquire"
            | "internal/sync.runtime_SemacquireMutex" => "semacquire",
            f if !parked
                && (f.starts_with("syscall.Syscall")
                    || f.starts_with("syscall.RawSyscall")
                    || f.starts_with("internal/runtime/syscall.")
                    || f == "runtime.entersyscall"
                    || f == "runtime.exitsyscall") =>
            {
                return (GStatus::Syscall, None);
            }
            _ => continue,
        };
        if parked {
            return (GStatus::Waiting, Some(reason));
        }
    }
    if parked {
        (
            GStatus::Waiting,
            Some("waiting (reason not in the profile)"),
        )
    } else {
        (GStatus::Running, None)
    }
}

/// Parses a decompressed profile.proto of goroutines. Frames and wait reasons go into `table`.
pub fn parse_profile(
    data: &[u8],
    table: &mut FrameTable,
    limits: &Limits,
) -> Result<Dump, DumpError> {
    let p = Profile::decode(data).map_err(|e| DumpError::Proto(e.to_string()))?;
    let string = |i: i64| -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| p.string_table.get(i))
            .map_or("", String::as_str)
    };
    let kind = match p.sample_type.first().map(|t| string(t.r#type)) {
        Some("goroutine") => DumpKind::GoroutineProfile,
        Some("goroutineleak") => DumpKind::LeakProfile,
        Some(other) => return Err(DumpError::OtherProfile(other.to_string())),
        None => return Err(DumpError::Proto("no sample type".into())),
    };
    let functions: HashMap<u64, &Function> = p.function.iter().map(|f| (f.id, f)).collect();
    let locations: HashMap<u64, &Location> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut dump = Dump {
        kind,
        goroutines: Vec::new(),
        deadlock: false,
        time_ns: u64::try_from(p.time_nanos).ok().filter(|&t| t > 0),
        skipped_lines: 0,
        warnings: Vec::new(),
    };
    let mut missing = 0usize;
    for s in &p.sample {
        let count = s.value.first().copied().unwrap_or(0);
        let Ok(count) = u64::try_from(count) else {
            return Err(DumpError::Proto(format!("a negative count {count}")));
        };
        if count == 0 {
            continue;
        }
        // Frames innermost first: each location's lines are innermost first too.
        let mut names: Vec<&str> = Vec::new();
        let mut stack: Vec<u64> = Vec::new();
        let mut truncated = false;
        for id in &s.location_id {
            let Some(loc) = locations.get(id) else {
                missing += 1;
                continue;
            };
            let n = loc.line.len();
            for (k, line) in loc.line.iter().enumerate() {
                let Some(f) = functions.get(&line.function_id) else {
                    missing += 1;
                    continue;
                };
                let name = string(f.name);
                if name == "runtime.goexit" {
                    continue;
                }
                if stack.len() >= limits.max_frames {
                    truncated = true;
                    continue;
                }
                let file = string(f.filename);
                let pc = table.intern(
                    name,
                    (!file.is_empty()).then_some(file),
                    u32::try_from(line.line).ok(),
                    0,
                    // All but the last line of a location were inlined into it.
                    k + 1 < n,
                )?;
                names.push(name);
                stack.push(pc);
            }
        }
        let (status, reason) = infer_state(names.iter().copied());
        let status = if kind == DumpKind::LeakProfile {
            GStatus::Leaked
        } else {
            status
        };
        let reason = match reason {
            Some(r) => table.reason(r)?,
            None => 0,
        };
        let base = SYNTHETIC_GOID_BASE + table.stack_number(&stack, 0) * PER_STACK;
        let count = count.min(PER_STACK);
        if dump.goroutines.len() as u64 + count > limits.max_goroutines as u64 {
            return Err(DumpError::OverLimit {
                what: "goroutines in one dump",
                limit: limits.max_goroutines,
            });
        }
        for i in 0..count {
            dump.goroutines.push(DumpGoroutine {
                goid: base + i,
                status,
                reason,
                wait_minutes: None,
                locked_to_thread: false,
                stack: stack.clone(),
                stack_truncated: truncated,
                created_by: 0,
                creator: 0,
            });
        }
    }
    if missing > 0 {
        dump.warnings.push(format!(
            "{missing} stack entries name a location or function the profile does not have"
        ));
    }
    if dump.goroutines.is_empty() && kind == DumpKind::GoroutineProfile {
        return Err(DumpError::NoGoroutines);
    }
    Ok(dump)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::sample;
    use sfgi_engine::frame::Symbols;
    use std::io::Read;

    /// Decompresses and parses a checked-in profile.
    fn parse(gz: &[u8], table: &mut FrameTable, limits: &Limits) -> Result<Dump, DumpError> {
        let mut data = Vec::new();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut data)?;
        parse_profile(&data, table, limits)
    }

    #[test]
    fn a_goroutine_profile() {
        let mut t = FrameTable::new();
        let d = parse(&sample("goroutine.pb.gz"), &mut t, &Limits::default()).unwrap();
        assert_eq!(d.kind, DumpKind::GoroutineProfile);
        assert!(d.time_ns.is_some());
        let leaky: Vec<&DumpGoroutine> = d
            .goroutines
            .iter()
            .filter(|g| {
                g.stack
                    .iter()
                    .any(|&pc| t.frames(pc, false)[0].function == "main.leakySend")
            })
            .collect();
        assert_eq!(leaky.len(), 76);
        assert!(leaky
            .iter()
            .all(|g| g.status == GStatus::Waiting && g.goid >= SYNTHETIC_GOID_BASE));
        assert_eq!(
            t.wait_reason(u32::from(leaky[0].reason)).as_deref(),
            Some("chan send")
        );
        // The same stack numbers its members the same way in the next profile of the series.
        let again = parse(&sample("goroutine.pb.gz"), &mut t, &Limits::default()).unwrap();
        let ids = |d: &Dump| d.goroutines.iter().map(|g| g.goid).collect::<Vec<u64>>();
        assert_eq!(ids(&d), ids(&again));
    }

    #[test]
    fn a_goroutineleak_profile() {
        let mut t = FrameTable::new();
        let d = parse(&sample("goroutineleak.pb.gz"), &mut t, &Limits::default()).unwrap();
        assert_eq!(d.kind, DumpKind::LeakProfile);
        assert_eq!(d.goroutines.len(), 76);
        assert!(d.goroutines.iter().all(|g| g.status == GStatus::Leaked));
    }

    #[test]
    fn wait_reasons_from_stacks() {
        let s = |f: &[&str]| infer_state(f.iter().copied());
        assert_eq!(
            s(&[
                "runtime.gopark",
                "runtime.chansend",
                "runtime.chansend1",
                "main.f"
            ]),
            (GStatus::Waiting, Some("chan send"))
        );
        assert_eq!(
            s(&["runtime.gopark", "runtime.selectgo", "main.f"]),
            (GStatus::Waiting, Some("select"))
        );
        assert_eq!(
            s(&["syscall.Syscall6", "os.(*File).Read"]),
            (GStatus::Syscall, None)
        );
        assert_eq!(
            s(&["runtime/pprof.writeGoroutine", "main.f"]),
            (GStatus::Running, None)
        );
        assert_eq!(s(&["runtime.gopark", "main.f"]).0, GStatus::Waiting);
    }

    #[test]
    fn profiles_that_are_not_goroutine_profiles() {
        let mut t = FrameTable::new();
        let l = Limits::default();
        let mut p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            string_table: vec![String::new(), "alloc_space".into(), "bytes".into()],
            ..Profile::default()
        };
        assert!(
            matches!(parse_profile(&p.encode_to_vec(), &mut t, &l), Err(DumpError::OtherProfile(k)) if k == "alloc_space")
        );
        p.string_table[1] = "goroutine".into();
        p.sample = vec![Sample {
            location_id: vec![9],
            value: vec![-1],
        }];
        assert!(matches!(
            parse_profile(&p.encode_to_vec(), &mut t, &l),
            Err(DumpError::Proto(_))
        ));
        p.sample = vec![Sample {
            location_id: vec![9],
            value: vec![3],
        }];
        let d = parse_profile(&p.encode_to_vec(), &mut t, &l).unwrap();
        assert_eq!(d.goroutines.len(), 3);
        assert_eq!(d.warnings.len(), 1, "a missing location is said");
        p.sample = vec![Sample {
            location_id: vec![],
            value: vec![3_000_000],
        }];
        assert!(matches!(
            parse_profile(&p.encode_to_vec(), &mut t, &l),
            Err(DumpError::OverLimit { .. })
        ));
        assert!(matches!(
            parse_profile(b"\xff\xff\xff", &mut t, &l),
            Err(DumpError::Proto(_))
        ));
    }
}
