//! Turns the target's instruction addresses into Go function names and file:line.
//!
//! Binaries with symbols go through blazesym (DWARF: file:line and inlined calls); stripped ones,
//! and any address blazesym cannot name, through the binary's own `.gopclntab`, which stripping
//! leaves in place.
use blazesym::symbolize::{source::Elf, source::Source, Input, Symbolized, Symbolizer as Bz};
use sfgi_engine::frame::{Frame, Symbols};
use sfgi_goexe::GoBinary;
use std::collections::HashMap;
use std::path::PathBuf;

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

    /// A symbolizer that reads Go's own tables only (`.gopclntab` and its inline tree, which
    /// every Go binary has), never DWARF: what `sfgi agent` uses, since blazesym's DWARF line
    /// tables cost tens of MB per traced binary. Go frames come out the same; non-Go (cgo)
    /// frames are `?`.
    pub fn go_tables_only(bin: &'a GoBinary, bias: u64) -> Self {
        let mut s = Self::new(bin, bias);
        s.elf = None;
        s
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

impl Symbols for Symbolizer<'_> {
    fn frames(&mut self, pc: u64, return_address: bool) -> Vec<Frame> {
        Symbolizer::frames(self, pc, return_address)
    }

    fn wait_reason(&self, raw: u32) -> Option<String> {
        self.bin.wait_reasons().name(raw).map(str::to_string)
    }
}
