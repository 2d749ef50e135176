//! Source-level frames, and the symbol lookup a source gives the engine.
//!
//! The engine never reads a binary: a source that sees raw addresses (the eBPF tracer, the
//! memory inventory) hands it a [`Symbols`]; a source that already has names (a goroutine dump)
//! builds [`Frame`]s itself.

/// One source-level frame.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// Runtime address symbolized.
    pub pc: u64,
    /// Go function name (`main.worker`, `runtime.gopark`); `?` when unknown.
    pub function: String,
    /// Source file, when known.
    pub file: Option<String>,
    /// Source line, when known.
    pub line: Option<u32>,
    /// Offset of `pc` from the function's entry.
    pub offset: u64,
    /// Whether this frame was inlined into the next one.
    pub inlined: bool,
}

impl Frame {
    /// `function at file:line` (or just the function).
    pub fn site(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{} at {f}:{l}", self.function),
            _ => self.function.clone(),
        }
    }
}

/// What the engine asks of a source's symbols: frames for an address and names for raw
/// wait-reason numbers.
pub trait Symbols {
    /// Frames for the runtime address `pc`, innermost (inlined) first. `return_address` says
    /// `pc` is a return address, whose call instruction is at `pc - 1`.
    fn frames(&mut self, pc: u64, return_address: bool) -> Vec<Frame>;

    /// Frames of a whole stack (innermost first): the first address is exact, the rest are
    /// return addresses.
    fn stack(&mut self, pcs: &[u64]) -> Vec<Frame> {
        let mut out = Vec::new();
        for (i, &pc) in pcs.iter().enumerate() {
            out.extend(self.frames(pc, i > 0));
        }
        out
    }

    /// The name of Go wait reason `raw` (`chan receive`), if known.
    fn wait_reason(&self, raw: u32) -> Option<String>;
}

/// Whether a frame belongs to the Go runtime's own machinery rather than the program: used to
/// find the blocking site (first frame outside it) and the creation site.
pub fn is_runtime_frame(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "runtime.",
        "internal/",
        "sync.",
        "sync/atomic.",
        "time.Sleep",
    ];
    PREFIXES.iter().any(|p| function.starts_with(p)) || function == "?"
}

/// Renders frames the way Go's goroutine dump does.
pub fn go_dump_text(frames: &[Frame]) -> String {
    let mut out = String::new();
    for f in frames {
        out.push_str(&f.function);
        out.push_str("(...)\n\t");
        match (&f.file, f.line) {
            (Some(file), Some(line)) => out.push_str(&format!("{file}:{line}")),
            _ => out.push('?'),
        }
        if !f.inlined {
            out.push_str(&format!(" +{:#x}", f.offset));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_frames_are_recognised() {
        assert!(is_runtime_frame("runtime.gopark"));
        assert!(is_runtime_frame("sync.(*Mutex).Lock"));
        assert!(is_runtime_frame("internal/poll.(*FD).Read"));
        assert!(!is_runtime_frame("main.leak"));
        assert!(!is_runtime_frame("net/http.(*conn).serve"));
    }

    #[test]
    fn dump_text_looks_like_go() {
        let f = Frame {
            pc: 1,
            function: "main.leak".into(),
            file: Some("/src/main.go".into()),
            line: Some(12),
            offset: 0x1d,
            inlined: false,
        };
        assert_eq!(
            go_dump_text(&[f]),
            "main.leak(...)\n\t/src/main.go:12 +0x1d\n"
        );
    }
}
