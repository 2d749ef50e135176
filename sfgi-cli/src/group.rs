//! Groups parked goroutines by wait reason, blocking site and creation site.
use crate::goexe::GoBinary;
use crate::lifetime::{Goroutine, Lifetimes, Parked};
use crate::symbolize::{go_dump_text, is_runtime_frame, Frame, Symbolizer};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where SFGI gets user stacks by id (the eBPF stack map, or a test double).
pub trait StackSource {
    /// Instruction pointers of stack `id`, innermost first.
    fn stack(&self, id: i32) -> Option<Vec<u64>>;
}

/// The goroutines parked at one place for one reason, created at one place.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Group {
    /// Stable id: a hash of wait reason, blocking function and creating function.
    pub id: String,
    /// Go's wait-reason text (`chan send`, `select`, …).
    pub wait_reason: String,
    /// How many goroutines.
    pub count: usize,
    /// First frame of the park stack in the program's own code (`function at file:line`).
    pub blocked_at: String,
    /// The `go` statement that created them (`function at file:line`), or why it is unknown.
    pub created_by: String,
    /// Park stack of one member, as Go's goroutine dump prints it.
    pub stack_trace: String,
    /// Creation stack of one member (the creator's stack at the `go` statement).
    pub creation_stack: String,
    /// Up to 20 member goids, oldest parked first.
    pub goroutine_ids: Vec<u64>,
    /// Oldest member's time parked, as Go prints durations (`1m30.5s`).
    pub duration: String,
    /// Oldest member's time parked, in seconds.
    pub duration_seconds: f64,
    /// Most GC cycles a member stayed parked across.
    pub gc_cycles_blocked: u64,
    /// How many distinct objects (channel locks, semaphores) the members park on: one shared
    /// object suggests a pool; one each suggests private, abandoned channels.
    pub distinct_objects: usize,
    /// Monotonic ns when the oldest member parked (for ordering and wall-clock conversion).
    #[serde(skip)]
    pub oldest_since_ns: u64,
}

/// Whether `function` belongs to the Go standard library (package path without a dot in its
/// first element, other than `main`).
pub fn is_stdlib_function(function: &str) -> bool {
    let pkg_end = match function.rfind('/') {
        Some(slash) => function[slash..].find('.').map(|d| slash + d),
        None => function.find('.'),
    };
    let pkg = match pkg_end {
        Some(e) => &function[..e],
        None => function,
    };
    let first = pkg.split('/').next().unwrap_or(pkg);
    pkg != "main" && !first.contains('.')
}

/// The blocking site: the first frame in the program's own code; for goroutines that run only
/// standard-library code (an HTTP client's connection loops, the GC's workers), the goroutine's
/// own top-level function; else the innermost frame.
pub fn blocking_frame(frames: &[Frame]) -> Option<&Frame> {
    frames
        .iter()
        .find(|f| f.function != "?" && !is_stdlib_function(&f.function))
        .or_else(|| frames.iter().rev().find(|f| !is_wrapper_frame(&f.function)))
        .or_else(|| frames.first())
}

/// Frames that only start goroutines: `runtime.goexit` and the compiler's `go` wrappers.
fn is_wrapper_frame(function: &str) -> bool {
    function == "runtime.goexit"
        || function == "?"
        || function
            .rsplit_once(".gowrap")
            .is_some_and(|(_, n)| n.chars().all(|c| c.is_ascii_digit()))
}

/// Formats a duration the way Go's `time.Duration.String` does, to millisecond precision.
pub fn go_duration(secs: f64) -> String {
    let ms = (secs * 1000.0).round().max(0.0) as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms % 60_000) as f64 / 1000.0;
    let s = format!("{s}s");
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

fn stable_id(parts: &[&str]) -> String {
    // FNV-1a, 64-bit: stable across runs and builds of SFGI.
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("g-{:08x}", (h >> 32) ^ (h & 0xffff_ffff))
}

struct Member<'l> {
    g: &'l Goroutine,
    p: &'l Parked,
}

/// Wait reason, blocking site, creation site.
type GroupKey = (String, String, String);

/// The members of one group and the stacks of its first member.
struct Bucket<'l> {
    members: Vec<Member<'l>>,
    park_frames: Vec<Frame>,
    creation_frames: Vec<Frame>,
}

/// Builds the groups of every goroutine parked now, most members first.
pub fn group_parked(
    life: &Lifetimes,
    bin: &GoBinary,
    sym: &mut Symbolizer<'_>,
    stacks: &dyn StackSource,
    now_ns: u64,
) -> Vec<Group> {
    let mut stack_cache: HashMap<i32, Option<Vec<u64>>> = HashMap::new();
    let mut by_key: BTreeMap<GroupKey, Bucket<'_>> = BTreeMap::new();
    for (g, p) in life.parked() {
        let reason = bin
            .wait_reasons()
            .name(p.reason)
            .map(str::to_string)
            .unwrap_or_else(|| format!("wait reason {}", p.reason));
        let ips = stack_cache
            .entry(p.stack_id)
            .or_insert_with(|| stacks.stack(p.stack_id))
            .clone();
        // The stack map's first entry is gopark itself. Kernels since 6.12 add the caller's
        // return address for a probe at function entry; older ones start the frame-pointer walk
        // one frame up, so the event carries it. The rest are return addresses.
        let frames = match ips {
            Some(ips) if !ips.is_empty() => {
                let mut f = sym.frames(ips[0], false);
                if p.caller_pc != 0 && ips.get(1) != Some(&p.caller_pc) {
                    f.extend(sym.frames(p.caller_pc, true));
                }
                for &pc in &ips[1..] {
                    f.extend(sym.frames(pc, true));
                }
                f
            }
            _ if p.caller_pc != 0 => sym.frames(p.caller_pc, true),
            _ => Vec::new(),
        };
        let blocked_at = blocking_frame(&frames)
            .map(Frame::site)
            .unwrap_or_else(|| "unknown (no stack)".to_string());
        let created_by = match g.creation {
            Some(c) => sym
                .frames(c.gopc, true)
                .first()
                .map(Frame::site)
                .unwrap_or_else(|| format!("{:#x}", c.gopc)),
            None => "unknown (created before SFGI attached)".to_string(),
        };
        by_key
            .entry((reason, blocked_at, created_by))
            .or_insert_with(|| Bucket {
                members: Vec::new(),
                park_frames: frames,
                creation_frames: g
                    .creation
                    .and_then(|c| stacks.stack(c.stack_id))
                    .map(|ips| creation_stack(sym, &ips))
                    .unwrap_or_default(),
            })
            .members
            .push(Member { g, p });
    }
    let mut groups: Vec<Group> = by_key
        .into_iter()
        .map(|(key, bucket)| {
            let Bucket {
                mut members,
                park_frames: frames,
                creation_frames: cframes,
            } = bucket;
            members.sort_by_key(|m| (m.p.since_ns, m.g.goid));
            let oldest = members[0].p.since_ns;
            let secs = now_ns.saturating_sub(oldest) as f64 / 1e9;
            let (wait_reason, blocked_at, created_by) = key;
            let objects: HashSet<u64> = members.iter().map(|m| m.p.object).collect();
            Group {
                id: stable_id(&[
                    &wait_reason,
                    &strip_line(&blocked_at),
                    &strip_line(&created_by),
                ]),
                count: members.len(),
                stack_trace: go_dump_text(&frames),
                creation_stack: go_dump_text(&cframes),
                goroutine_ids: members.iter().take(20).map(|m| m.g.goid).collect(),
                duration: go_duration(secs),
                duration_seconds: (secs * 1000.0).round() / 1000.0,
                gc_cycles_blocked: members
                    .iter()
                    .map(|m| life.gc_cycles_blocked(m.p))
                    .max()
                    .unwrap_or(0),
                distinct_objects: objects.len(),
                oldest_since_ns: oldest,
                wait_reason,
                blocked_at,
                created_by,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.oldest_since_ns.cmp(&b.oldest_since_ns))
    });
    groups
}

/// The creation stack: frames from the `go` statement outwards (runtime frames of `newproc`
/// and the system-stack switch dropped).
fn creation_stack(sym: &mut Symbolizer<'_>, ips: &[u64]) -> Vec<Frame> {
    let frames = sym.stack(ips);
    let first_user = frames
        .iter()
        .position(|f| !is_runtime_frame(&f.function))
        .unwrap_or(frames.len());
    frames[first_user..].to_vec()
}

/// `function at file:line` → `function` (ids stay stable when unrelated lines move).
fn strip_line(site: &str) -> String {
    site.split(" at ").next().unwrap_or(site).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdlib_functions() {
        assert!(is_stdlib_function("runtime.gopark"));
        assert!(is_stdlib_function("net/http.(*conn).serve"));
        assert!(is_stdlib_function("sync.(*WaitGroup).Wait"));
        assert!(!is_stdlib_function("main.leak"));
        assert!(!is_stdlib_function("main.main.func1"));
        assert!(!is_stdlib_function(
            "github.com/segmentio/kafka-go.(*Reader).FetchMessage"
        ));
        assert!(!is_stdlib_function("example.com/svc.handler"));
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0.0), "0s");
        assert_eq!(go_duration(0.25), "250ms");
        assert_eq!(go_duration(2.5), "2.5s");
        assert_eq!(go_duration(90.5), "1m30.5s");
        assert_eq!(go_duration(3723.0), "1h2m3s");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = stable_id(&["chan send", "main.a", "main.b"]);
        assert_eq!(a, stable_id(&["chan send", "main.a", "main.b"]));
        assert_ne!(a, stable_id(&["chan send", "main.ab", ""]));
        assert_eq!(a.len(), 10);
    }

    fn frame(function: &str) -> Frame {
        Frame {
            pc: 0,
            function: function.into(),
            file: None,
            line: None,
            offset: 0,
            inlined: false,
        }
    }

    #[test]
    fn blocking_site_skips_runtime_and_stdlib() {
        let f = [
            frame("runtime.gopark"),
            frame("runtime.chansend"),
            frame("net.(*conn).Read"),
            frame("main.leak"),
        ];
        assert_eq!(
            blocking_frame(&f).map(|f| f.function.as_str()),
            Some("main.leak")
        );
        let g = [
            frame("runtime.gopark"),
            frame("net.(*conn).Read"),
            frame("net/http.(*persistConn).readLoop"),
            frame("net/http.(*Transport).dialConn.gowrap2"),
            frame("runtime.goexit"),
        ];
        assert_eq!(
            blocking_frame(&g).map(|f| f.function.as_str()),
            Some("net/http.(*persistConn).readLoop")
        );
    }
}
