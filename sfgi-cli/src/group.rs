//! How parked goroutines are grouped: blocking site, creation site, stable group ids.
use crate::symbolize::{is_runtime_frame, Frame, Symbolizer};

/// Where SFGI gets user stacks by id (the eBPF stack map, or a test double).
pub trait StackSource {
    /// Instruction pointers of stack `id`, innermost first.
    fn stack(&self, id: i32) -> Option<Vec<u64>>;
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

/// A stable group id from its key parts (FNV-1a).
pub fn stable_id(parts: &[&str]) -> String {
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

/// The creation stack: frames from the `go` statement outwards (runtime frames of `newproc`
/// and the system-stack switch dropped).
pub fn creation_stack(sym: &mut Symbolizer<'_>, ips: &[u64]) -> Vec<Frame> {
    let frames = sym.stack(ips);
    let first_user = frames
        .iter()
        .position(|f| !is_runtime_frame(&f.function))
        .unwrap_or(frames.len());
    frames[first_user..].to_vec()
}

/// `function at file:line` → `function` (ids stay stable when unrelated lines move).
pub fn strip_line(site: &str) -> String {
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
