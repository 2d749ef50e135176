//! Turns the target's instruction addresses into Go function names and file:line.
//!
//! Binaries with symbols go through blazesym (DWARF: file:line and inlined calls); stripped ones,
//! and any address blazesym cannot name, through the binary's own `.gopclntab`, which stripping
//! leaves in place.
use crate::goexe::GoBinary;
use blazesym::symbolize::{source::Elf, source::Source, Input, Symbolized, Symbolizer as Bz};
use std::collections::HashMap;
use std::path::PathBuf;

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

/// Symbolizes addresses of one target, with a cache.
pub struct Symbolizer<'a> {
    bin: &'a GoBinary,
    elf: Option<PathBuf>,
    bz: Bz,
    bias: u64,
    cache: HashMap<(u64, bool), Vec<Frame>>,
}

impl<'a> Symbolizer<'a> {
    /// A symbolizer for `bin`, loaded at `bias` (runtime minus link-time address).
    pub fn new(bin: &'a GoBinary, bias: u64) -> Self {
        let elf = (!bin.is_stripped()).then(|| bin.path().to_path_buf());
        let bz = Bz::builder()
            .enable_code_info(true)
            .enable_inlined_fns(true)
            .enable_demangling(false)
            .build();
        Self {
            bin,
            elf,
            bz,
            bias,
            cache: HashMap::new(),
        }
    }

    /// Frames for the runtime address `pc`, innermost (inlined) first. `return_address` says
    /// `pc` is a return address, whose call instruction is at `pc - 1`.
    pub fn frames(&mut self, pc: u64, return_address: bool) -> Vec<Frame> {
        if let Some(f) = self.cache.get(&(pc, return_address)) {
            return f.clone();
        }
        let vaddr = pc.wrapping_sub(self.bias);
        let lookup = if return_address {
            vaddr.saturating_sub(1)
        } else {
            vaddr
        };
        let mut frames = self.blazesym(pc, lookup).unwrap_or_default();
        if frames.is_empty() {
            frames = self.pclntab(pc, lookup);
        }
        if self.cache.len() > 1 << 16 {
            self.cache.clear();
        }
        self.cache.insert((pc, return_address), frames.clone());
        frames
    }

    /// Frames of a whole stack (innermost first): the first address is exact, the rest are
    /// return addresses.
    pub fn stack(&mut self, pcs: &[u64]) -> Vec<Frame> {
        pcs.iter()
            .enumerate()
            .flat_map(|(i, &pc)| self.frames(pc, i > 0))
            .collect()
    }

    /// Frames from `.gopclntab` and its inline tree (innermost first), or one `?` frame.
    fn pclntab(&self, pc: u64, lookup: u64) -> Vec<Frame> {
        let frames = self.bin.frames_for_pc(lookup);
        if frames.is_empty() {
            return vec![Frame {
                pc,
                function: "?".to_string(),
                file: None,
                line: None,
                offset: 0,
                inlined: false,
            }];
        }
        let last = frames.len() - 1;
        frames
            .into_iter()
            .enumerate()
            .map(|(i, f)| Frame {
                pc,
                offset: if i == last {
                    lookup.saturating_sub(f.entry)
                } else {
                    0
                },
                function: f.function,
                file: f.file,
                line: f.line,
                inlined: i != last,
            })
            .collect()
    }

    fn blazesym(&self, pc: u64, lookup: u64) -> Option<Vec<Frame>> {
        let path = self.elf.as_ref()?;
        let src = Source::Elf(Elf::new(path.clone()));
        let res = self
            .bz
            .symbolize_single(&src, Input::VirtOffset(lookup))
            .ok()?;
        let Symbolized::Sym(sym) = res else {
            return None;
        };
        let loc = |ci: &Option<blazesym::symbolize::CodeInfo<'_>>| match ci {
            Some(ci) => (
                Some(match &ci.dir {
                    Some(d) => d.join(&ci.file).to_string_lossy().into_owned(),
                    None => ci.file.to_string_lossy().into_owned(),
                }),
                ci.line,
            ),
            None => (None, None),
        };
        // `sym` is the outermost function and `inlined` the calls nested in it, outermost
        // first; each carries its own location (for the outer ones, the inlined call's line).
        let mut frames = Vec::with_capacity(sym.inlined.len() + 1);
        for inl in sym.inlined.iter().rev() {
            let (file, line) = loc(&inl.code_info);
            frames.push(Frame {
                pc,
                function: inl.name.to_string(),
                file,
                line,
                offset: 0,
                inlined: true,
            });
        }
        let (file, line) = loc(&sym.code_info.as_deref().cloned());
        frames.push(Frame {
            pc,
            function: sym.name.to_string(),
            file,
            line,
            offset: sym.offset as u64,
            inlined: false,
        });
        Some(frames)
    }
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
