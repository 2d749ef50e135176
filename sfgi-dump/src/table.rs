//! The frames and wait reasons of a series of dumps, interned: each distinct frame (function,
//! file, line) gets a synthetic address, each distinct wait reason a small number. Goroutine
//! records then carry stacks of addresses, as the live source's do, and the table answers the
//! engine's [`Symbols`] questions about them. One table serves a whole series of dumps of one
//! process, so the same frame has the same address in every dump (goroutine identity across
//! dumps rests on it).
use crate::error::DumpError;
use sfgi_engine::frame::{Frame, Symbols};
use sfgi_engine::group::StackSource;
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// Most distinct frames one table holds (a dump of a million goroutines of a large service has
/// tens of thousands).
pub const MAX_FRAMES: usize = 1 << 22;
/// Most distinct wait reasons (Go has about 50; raw reasons are one byte, 0 is "none").
pub const MAX_REASONS: usize = 255;

/// Interned frames and wait reasons (see the module doc).
#[derive(Debug, Default)]
pub struct FrameTable {
    /// Frame of synthetic address `i + 1`.
    frames: Vec<Frame>,
    /// Hash of (function, file, line, inlined) → addresses with that hash.
    index: HashMap<u64, Vec<u64>>,
    /// Wait reason of raw number `i` (0: none).
    reasons: Vec<String>,
    reason_index: HashMap<String, u8>,
    /// Stacks of goroutines without ids (protobuf profiles) → their number, for synthetic ids.
    stacks: HashMap<(Vec<u64>, u64), u64>,
}

fn frame_hash(function: &str, file: Option<&str>, line: Option<u32>, inlined: bool) -> u64 {
    let mut h = DefaultHasher::new();
    (function, file, line, inlined).hash(&mut h);
    h.finish()
}

impl FrameTable {
    /// An empty table.
    pub fn new() -> FrameTable {
        FrameTable {
            reasons: vec![String::new()],
            ..FrameTable::default()
        }
    }

    /// The synthetic address of a frame, interning it when new. `offset` is Go's `+0x…` (kept
    /// from the first sighting; frames are told apart by line, not offset).
    pub fn intern(
        &mut self,
        function: &str,
        file: Option<&str>,
        line: Option<u32>,
        offset: u64,
        inlined: bool,
    ) -> Result<u64, DumpError> {
        let h = frame_hash(function, file, line, inlined);
        if let Some(pcs) = self.index.get(&h) {
            for &pc in pcs {
                if let Some(f) = self.frame(pc) {
                    if f.function == function
                        && f.file.as_deref() == file
                        && f.line == line
                        && f.inlined == inlined
                    {
                        return Ok(pc);
                    }
                }
            }
        }
        if self.frames.len() >= MAX_FRAMES {
            return Err(DumpError::OverLimit {
                what: "distinct frames",
                limit: MAX_FRAMES,
            });
        }
        let pc = self.frames.len() as u64 + 1;
        self.frames.push(Frame {
            pc,
            function: function.to_string(),
            file: file.map(str::to_string),
            line,
            offset,
            inlined,
        });
        self.index.entry(h).or_default().push(pc);
        Ok(pc)
    }

    /// The frame at synthetic address `pc`.
    pub fn frame(&self, pc: u64) -> Option<&Frame> {
        let i = usize::try_from(pc.checked_sub(1)?).ok()?;
        self.frames.get(i)
    }

    /// Number of distinct frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was interned.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The raw number of wait reason `name` (never 0), interning it when new.
    pub fn reason(&mut self, name: &str) -> Result<u8, DumpError> {
        if let Some(&n) = self.reason_index.get(name) {
            return Ok(n);
        }
        if self.reasons.len() > MAX_REASONS {
            return Err(DumpError::OverLimit {
                what: "distinct wait reasons",
                limit: MAX_REASONS,
            });
        }
        let n = u8::try_from(self.reasons.len()).map_err(|_| DumpError::OverLimit {
            what: "distinct wait reasons",
            limit: MAX_REASONS,
        })?;
        self.reasons.push(name.to_string());
        self.reason_index.insert(name.to_string(), n);
        Ok(n)
    }

    /// A number for a stack (with its creation address) that stays the same across the dumps
    /// of a series: protobuf profiles carry no goroutine ids, so their members are numbered
    /// per stack from it.
    pub fn stack_number(&mut self, stack: &[u64], created_by: u64) -> u64 {
        let n = self.stacks.len() as u64;
        *self.stacks.entry((stack.to_vec(), created_by)).or_insert(n)
    }
}

impl Symbols for FrameTable {
    fn frames(&mut self, pc: u64, _return_address: bool) -> Vec<Frame> {
        match self.frame(pc) {
            Some(f) => vec![f.clone()],
            None => vec![Frame {
                pc,
                function: "?".to_string(),
                file: None,
                line: None,
                offset: 0,
                inlined: false,
            }],
        }
    }

    fn wait_reason(&self, raw: u32) -> Option<String> {
        let i = usize::try_from(raw).ok()?;
        self.reasons.get(i).filter(|r| !r.is_empty()).cloned()
    }
}

/// One [`FrameTable`] shared by the parser and the engine: a series of dumps is parsed one at
/// a time (only one is in memory), each interning into the table the engine names frames with.
#[derive(Clone, Debug, Default)]
pub struct SharedTable(Rc<RefCell<FrameTable>>);

impl SharedTable {
    /// An empty shared table.
    pub fn new() -> SharedTable {
        SharedTable(Rc::new(RefCell::new(FrameTable::new())))
    }

    /// Runs `f` on the table (not re-entrant: never call it from `f`).
    pub fn with<R>(&self, f: impl FnOnce(&mut FrameTable) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

impl Symbols for SharedTable {
    fn frames(&mut self, pc: u64, return_address: bool) -> Vec<Frame> {
        self.0.borrow_mut().frames(pc, return_address)
    }

    fn wait_reason(&self, raw: u32) -> Option<String> {
        self.0.borrow().wait_reason(raw)
    }
}

/// Dumps have no kernel stack map: every stack is in the goroutine records themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStackMap;

impl StackSource for NoStackMap {
    fn stack(&self, _id: i32) -> Option<Vec<u64>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_reasons_intern_once() {
        let mut t = FrameTable::new();
        let a = t
            .intern("main.f", Some("/m.go"), Some(3), 0x1d, false)
            .unwrap();
        let b = t
            .intern("main.f", Some("/m.go"), Some(4), 0x2d, false)
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            t.intern("main.f", Some("/m.go"), Some(3), 0x99, false)
                .unwrap(),
            a
        );
        assert_eq!(t.frames(a, true)[0].site(), "main.f at /m.go:3");
        assert_eq!(t.frames(a, true)[0].offset, 0x1d);
        assert_eq!(t.frames(0, false)[0].function, "?");
        let r = t.reason("chan send").unwrap();
        assert_eq!(r, 1);
        assert_eq!(t.reason("chan send").unwrap(), r);
        assert_eq!(t.wait_reason(u32::from(r)).as_deref(), Some("chan send"));
        assert_eq!(t.wait_reason(0), None);
        assert_eq!(t.stack_number(&[a, b], 0), 0);
        assert_eq!(t.stack_number(&[b], 0), 1);
        assert_eq!(t.stack_number(&[a, b], 0), 0);
    }

    #[test]
    fn reasons_are_bounded() {
        let mut t = FrameTable::new();
        for i in 0..MAX_REASONS {
            t.reason(&format!("r{i}")).unwrap();
        }
        assert!(matches!(
            t.reason("one too many"),
            Err(DumpError::OverLimit { .. })
        ));
    }
}
