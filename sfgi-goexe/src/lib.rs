//! Go-binary introspection (pure Rust, no target process needed).
//!
//! [`GoBinary`] answers what SFGI must know before attaching uprobes to a Go program: its Go
//! version (`.go.buildinfo`), function addresses and source lines (`.symtab`, else
//! `.gopclntab`, which survives stripping), where to put each probe (past Go's stack-check
//! prologue, or on a CALL instruction), the `runtime.g`/`m`/`gobuf` field offsets (DWARF, else a
//! built-in per-version table) and the `waitReason` names (the binary's own
//! `runtime.waitReasonStrings`, else a built-in table).
//!
//! All parsing is bounds-checked: malformed input yields [`GoExeError`], never a panic.

mod buildinfo;
pub mod chan;
mod dwarf;
mod elf;
mod heap;
pub mod inspect;
mod pclntab;
mod prologue;
mod sudog;
pub mod tables;
mod waitreason;

pub use buildinfo::{BuildInfo, GoVersion};
pub use chan::ChanLayout;
pub use heap::{HeapLayout, HeapLayoutSource};
pub use sudog::{SudogOffsets, SudogSource};
pub use waitreason::{WaitReasonSource, WaitReasons};

use elf::ElfInfo;
use pclntab::Pclntab;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Largest binary [`GoBinary::open`] reads (4 GiB).
const MAX_FILE: u64 = 4 << 30;
/// Largest function body decoded by [`GoBinary::call_sites`].
const MAX_FUNC_BYTES: u64 = 1 << 20;

/// The runtime functions SFGI probes (their entries, past the prologue).
pub const PROBE_FUNCTIONS: &[&str] = &[
    "runtime.gopark",
    "runtime.ready",
    "runtime.execute",
    "runtime.goexit1",
    "runtime.newproc",
    "runtime.newproc.func1",
    "runtime.gcStart",
    "runtime.gcMarkTermination",
];

/// The probe functions SFGI cannot attach without.
pub const REQUIRED_PROBE_FUNCTIONS: &[&str] = &["runtime.gopark"];

/// Errors from reading a Go binary.
#[derive(Debug, thiserror::Error)]
pub enum GoExeError {
    /// The file could not be read. (The I/O error is part of the message, not a `source()`, so
    /// error chains do not print it twice.)
    #[error("reading the binary: {0}")]
    Io(std::io::Error),
    /// The file is not an ELF file.
    #[error("{0}: not an ELF file")]
    NotElf(PathBuf),
    /// The file is ELF but has neither `.go.buildinfo` nor `.gopclntab`.
    #[error("{0}: not a Go binary (no .go.buildinfo and no .gopclntab)")]
    NotGo(PathBuf),
    /// The operation needs an architecture this binary is not (probes are amd64-only).
    #[error("unsupported architecture {0} (SFGI probes need amd64)")]
    UnsupportedArch(String),
    /// A structure in the file is malformed.
    #[error("corrupt {what}: {why}")]
    Corrupt {
        /// Which structure.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The file is larger than SFGI reads.
    #[error("{path}: {size} bytes is too large")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// No function of that name (neither `.symtab` nor `.gopclntab`).
    #[error("function {0} not found")]
    FuncNotFound(String),
    /// The function's code is not in the file (or is implausibly large).
    #[error("code of {0} is not readable from the file")]
    CodeUnavailable(String),
}

impl From<std::io::Error> for GoExeError {
    fn from(e: std::io::Error) -> Self {
        GoExeError::Io(e)
    }
}

/// CPU architecture of the binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// AArch64.
    Arm64,
    /// Anything else (lower-cased `object` architecture name).
    Other(String),
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arch::Amd64 => f.write_str("amd64"),
            Arch::Arm64 => f.write_str("arm64"),
            Arch::Other(s) => f.write_str(s),
        }
    }
}

/// Whether SFGI can probe this binary, and why not.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Support {
    /// All probes can be attached with trustworthy offsets.
    pub probes_supported: bool,
    /// Reasons probes are unsupported (empty when supported).
    pub problems: Vec<String>,
    /// Non-fatal remarks (e.g. a newer Go version whose offsets came from DWARF).
    pub notes: Vec<String>,
}

/// A function's address range (link-time virtual addresses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Func {
    /// Full Go symbol name, e.g. `runtime.gopark`.
    pub name: String,
    /// Entry address.
    pub entry: u64,
    /// End address (exclusive; from `.symtab` size, or the next function's entry in `.gopclntab`).
    pub end: u64,
}

/// One source-level frame of a pc, from `.gopclntab` and its inline tree (see
/// [`GoBinary::frames_for_pc`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceFrame {
    /// Go function name (for an inlined frame, the inlined callee).
    pub function: String,
    /// Source file, when known.
    pub file: Option<String>,
    /// Source line, when known.
    pub line: Option<u32>,
    /// This frame was inlined into the next one (all frames but the last).
    pub inlined: bool,
    /// Entry address of the physical function containing the pc (the same for all frames of a
    /// pc, as inlined calls have no code of their own).
    pub entry: u64,
}

/// Where to attach a uprobe for a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbePoint {
    /// The function.
    pub function: String,
    /// Its entry address.
    pub entry: u64,
    /// The address to probe (link-time virtual address).
    pub address: u64,
    /// `address` as a file offset (what uprobes take).
    pub file_offset: u64,
    /// `address` is the `PUSHQ BP` right after the stack-check prologue (or the function starts
    /// with that push), so the probe fires once per call even if the stack grows.
    pub past_prologue: bool,
}

/// Which instruction SFGI's spawn probe goes on, and where the new `g` is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SpawnProbeKind {
    /// The `CALL runtime.runqput` in `runtime.newproc.func1`: the new g is in RBX (2nd arg).
    RunqputCall,
    /// `runqput` is inlined: the instruction after `CALL runtime.newproc1`; the new g is in RAX.
    AfterNewproc1,
}

/// SFGI's goroutine-creation probe location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpawnProbe {
    /// Which instruction it is.
    pub kind: SpawnProbeKind,
    /// Link-time virtual address.
    pub address: u64,
    /// File offset of `address`.
    pub file_offset: u64,
}

/// Where [`RuntimeOffsets`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OffsetSource {
    /// The binary's DWARF.
    Dwarf,
    /// SFGI's built-in table for Go 1.`minor` (amd64).
    Table {
        /// The minor version of the table.
        minor: u32,
    },
    /// No DWARF and a Go version SFGI has no table for: the nearest table (Go 1.`minor`) as a
    /// guess. Callers should refuse to probe with these.
    Guess {
        /// The minor version of the table.
        minor: u32,
    },
}

/// Byte offsets of the runtime struct fields SFGI's eBPF programs read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeOffsets {
    /// `g.stack.lo`.
    pub g_stack_lo: u64,
    /// `g.stack.hi`.
    pub g_stack_hi: u64,
    /// `g.m`.
    pub g_m: u64,
    /// `g.sched` (a `gobuf`).
    pub g_sched: u64,
    /// `g.atomicstatus`.
    pub g_atomicstatus: u64,
    /// `g.goid`.
    pub g_goid: u64,
    /// `g.waitsince`.
    pub g_waitsince: u64,
    /// `g.waitreason`.
    pub g_waitreason: u64,
    /// `g.parentGoid`.
    pub g_parent_goid: u64,
    /// `g.gopc`.
    pub g_gopc: u64,
    /// `g.startpc`.
    pub g_startpc: u64,
    /// `g.waiting`.
    pub g_waiting: u64,
    /// `g.trackingSeq` (a `uint8` the runtime increments every time the goroutine stops
    /// running: a park counter modulo 256); 0 if unknown.
    pub g_tracking_seq: u64,
    /// `sizeof(runtime.g)`.
    pub g_size: u64,
    /// `m.curg`.
    pub m_curg: u64,
    /// `gobuf.sp`.
    pub gobuf_sp: u64,
    /// `gobuf.pc`.
    pub gobuf_pc: u64,
    /// `gobuf.bp`.
    pub gobuf_bp: u64,
    /// Where these came from.
    pub source: OffsetSource,
}

impl RuntimeOffsets {
    /// The offsets with the `source` field ignored (for comparisons).
    pub fn values(&self) -> [u64; 18] {
        [
            self.g_stack_lo,
            self.g_stack_hi,
            self.g_m,
            self.g_sched,
            self.g_atomicstatus,
            self.g_goid,
            self.g_waitsince,
            self.g_waitreason,
            self.g_parent_goid,
            self.g_gopc,
            self.g_startpc,
            self.g_waiting,
            self.g_tracking_seq,
            self.g_size,
            self.m_curg,
            self.gobuf_sp,
            self.gobuf_pc,
            self.gobuf_bp,
        ]
    }
}

/// A parsed Go executable.
#[derive(Debug)]
pub struct GoBinary {
    path: PathBuf,
    data: Vec<u8>,
    elf: ElfInfo,
    build_info: BuildInfo,
    pclntab: Option<Pclntab>,
    text_start_candidates: Vec<(&'static str, u64)>,
    gofunc_candidates: Vec<(&'static str, u64)>,
    offsets: RuntimeOffsets,
    dwarf_offsets_error: Option<String>,
    sudog: SudogOffsets,
    heap: Option<HeapLayout>,
    firstmoduledata: Option<u64>,
    wait_reasons: WaitReasons,
    wait_reasons_error: Option<String>,
}

/// Reads only the `.go.buildinfo` of the ELF file at `path` (no symbol tables, no DWARF): what
/// process discovery needs to tell a Go 1.21+ program from anything else. `Ok(None)`: an ELF file
/// without build information (not Go, or a Go too old to matter).
pub fn read_build_info(path: &Path) -> Result<Option<BuildInfo>, GoExeError> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE {
        return Err(GoExeError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let data = std::fs::read(path)?;
    let elf = ElfInfo::parse(&data, path)?;
    Ok(buildinfo::parse(&data, &elf))
}

impl GoBinary {
    /// Reads and parses the Go binary at `path`.
    pub fn open(path: &Path) -> Result<GoBinary, GoExeError> {
        let size = std::fs::metadata(path)?.len();
        if size > MAX_FILE {
            return Err(GoExeError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let data = std::fs::read(path)?;
        Self::from_bytes(data, path.to_path_buf())
    }

    /// Parses a Go binary held in memory (`path` is only used for messages and [`Self::path`]).
    pub fn from_bytes(data: Vec<u8>, path: PathBuf) -> Result<GoBinary, GoExeError> {
        let elf = ElfInfo::parse(&data, &path)?;
        let build_info = buildinfo::parse(&data, &elf);
        let pclntab = find_pclntab(&data, &elf)?;
        if build_info.is_none() && pclntab.is_none() {
            return Err(GoExeError::NotGo(path));
        }
        let mut build_info = build_info.unwrap_or_default();
        if build_info.go_version.is_empty() {
            if let Some(v) = runtime_build_version(&data, &elf) {
                build_info.version = GoVersion::parse(&v).unwrap_or_default();
                build_info.go_version = v;
            }
        }
        let mut text_start_candidates = Vec::new();
        let mut gofunc_candidates = Vec::new();
        let mut firstmoduledata = elf.symbols.get("runtime.firstmoduledata").map(|s| s.addr);
        let pclntab = pclntab.map(|mut t| {
            let md = find_moduledata(&data, &elf, &t);
            if firstmoduledata.is_none() {
                firstmoduledata = md.as_ref().map(|m| m.addr);
            }
            text_start_candidates = text_start_candidates_for(&elf, &t, md.as_ref());
            gofunc_candidates = gofunc_candidates_for(&elf, md.as_ref());
            if t.header_text_start == 0 {
                if let Some(&(_, v)) = text_start_candidates.iter().find(|(k, _)| *k != "header") {
                    t.text_start = v;
                }
            }
            t
        });

        let minor = (build_info.version.major == 1).then_some(build_info.version.minor);
        let (offsets, dwarf_offsets_error) = match dwarf::read_offsets(&elf.dwarf) {
            Ok(o) if !elf.dwarf.is_empty() => (o, None),
            r => {
                let err = match r {
                    Err(e) if !elf.dwarf.is_empty() => Some(e),
                    _ => elf.dwarf_problem.clone(),
                };
                (table_offsets(minor), err)
            }
        };
        // The file was read once and its DWARF sections decompressed once (elf.rs): every
        // layout SFGI needs is taken from them here, at open.
        let sudog = SudogOffsets::resolve(&elf.dwarf, minor);
        let heap = HeapLayout::resolve(
            &elf.dwarf,
            minor,
            elf.symbols.get("runtime.semtable").map(|s| s.size),
            &sudog,
        );
        let (wait_reasons, wait_reasons_error) = match waitreason::from_binary(&data, &elf) {
            Ok(names) => (
                WaitReasons {
                    names,
                    source: WaitReasonSource::Binary,
                },
                None,
            ),
            Err(e) => (table_wait_reasons(minor), elf.has_symtab.then_some(e)),
        };
        Ok(GoBinary {
            path,
            data,
            elf,
            build_info,
            pclntab,
            text_start_candidates,
            gofunc_candidates,
            offsets,
            dwarf_offsets_error,
            sudog,
            heap,
            firstmoduledata,
            wait_reasons,
            wait_reasons_error,
        })
    }

    /// `runtime.sudog` field offsets (DWARF, else the per-version table, else a guess; see
    /// [`SudogOffsets::source`]).
    pub fn sudog_offsets(&self) -> SudogOffsets {
        self.sudog
    }

    /// `runtime.hchan`/`runtime.timer` layout for this Go version (`None` for versions SFGI
    /// has no table for: channels are then not described).
    pub fn chan_layout(&self) -> Option<ChanLayout> {
        let v = self.build_info.version;
        if v.major != 1 {
            return None;
        }
        ChanLayout::for_minor(v.minor)
    }

    /// The file this binary was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Go version and module information (empty strings if `.go.buildinfo` is missing).
    pub fn build_info(&self) -> &BuildInfo {
        &self.build_info
    }

    /// CPU architecture.
    pub fn arch(&self) -> Arch {
        self.elf.arch.clone()
    }

    /// No `.symtab` (built with `-ldflags=-s` or stripped afterwards).
    pub fn is_stripped(&self) -> bool {
        !self.elf.has_symtab
    }

    /// Has (readable) DWARF debug info.
    pub fn has_dwarf(&self) -> bool {
        self.elf.dwarf.contains_key(".debug_info")
    }

    /// Position-independent (ELF type `ET_DYN`).
    pub fn is_pie(&self) -> bool {
        self.elf.is_pie
    }

    /// Whether SFGI can probe this binary, with reasons.
    pub fn support(&self) -> Support {
        let mut s = Support::default();
        if self.elf.arch != Arch::Amd64 {
            s.problems.push(format!(
                "architecture {} (SFGI probes are amd64-only)",
                self.elf.arch
            ));
        }
        let v = self.build_info.version;
        if self.build_info.go_version.is_empty() || v.major == 0 {
            s.problems.push(format!(
                "Go version unknown ({:?})",
                self.build_info.go_version
            ));
        } else if v.major != 1 || v.minor < tables::OLDEST_MINOR {
            s.problems.push(format!(
                "{} is older than go1.{} (unsupported)",
                self.build_info.go_version,
                tables::OLDEST_MINOR
            ));
        } else if v.minor > tables::NEWEST_MINOR {
            let newer = format!(
                "{} is newer than the newest Go SFGI knows (go1.{})",
                self.build_info.go_version,
                tables::NEWEST_MINOR
            );
            if self.offsets.source == OffsetSource::Dwarf {
                s.notes
                    .push(format!("{newer}: struct offsets come from DWARF"));
            } else {
                s.problems.push(format!(
                    "{newer} and it has no DWARF to read struct offsets from"
                ));
            }
        }
        if let OffsetSource::Guess { minor } = self.offsets.source {
            if !s.problems.iter().any(|p| p.contains("DWARF")) {
                s.problems.push(format!(
                    "struct offsets are a guess (go1.{minor} table; no DWARF)"
                ));
            }
        }
        if let Some(e) = &self.dwarf_offsets_error {
            s.notes
                .push(format!("DWARF unusable ({e}); using the built-in table"));
        }
        if let WaitReasonSource::Guess { minor } = self.wait_reasons.source {
            s.notes
                .push(format!("wait-reason names are a guess (go1.{minor} table)"));
        }
        if let Some(e) = &self.wait_reasons_error {
            s.notes.push(format!(
                "runtime.waitReasonStrings unreadable ({e}); using the built-in table"
            ));
        }
        if self.pclntab.is_none() && !self.elf.has_symtab {
            s.problems
                .push("no .gopclntab and no .symtab: function addresses unknown".to_string());
        }
        let missing: Vec<&str> = PROBE_FUNCTIONS
            .iter()
            .copied()
            .filter(|f| self.func_by_name(f).is_none())
            .collect();
        // Only the park probe is required (see `probe::ProbePlan`): without another one SFGI
        // still attaches, and the missing probe is named in every output.
        let (required, optional): (Vec<&str>, Vec<&str>) = missing
            .iter()
            .partition(|f| REQUIRED_PROBE_FUNCTIONS.contains(f));
        if !required.is_empty() {
            s.problems
                .push(format!("probe functions missing: {}", required.join(", ")));
        }
        if !optional.is_empty() {
            s.notes.push(format!(
                "probe functions missing: {} (those probes are skipped and reported as missing)",
                optional.join(", ")
            ));
        }
        s.probes_supported = s.problems.is_empty();
        s
    }

    /// Function `name`'s address range: from `.symtab` if present, else `.gopclntab`.
    pub fn func_by_name(&self, name: &str) -> Option<Func> {
        if let Some(sym) = self.elf.symbols.get(name).filter(|s| s.is_func) {
            let end = if sym.size > 0 {
                sym.addr.checked_add(sym.size)
            } else {
                self.func_for_pc(sym.addr)
                    .filter(|f| f.entry == sym.addr)
                    .map(|f| f.end)
            };
            if let Some(end) = end {
                return Some(Func {
                    name: name.to_string(),
                    entry: sym.addr,
                    end,
                });
            }
        }
        self.pclntab_func_by_name(name)
    }

    /// Function `name` looked up in `.gopclntab` only (ignores `.symtab`).
    pub fn pclntab_func_by_name(&self, name: &str) -> Option<Func> {
        let t = self.pclntab.as_ref()?;
        let tab = t.bytes(&self.data);
        let i = t.find_name(tab, name)?;
        Some(Func {
            name: name.to_string(),
            entry: t.entry(tab, i)?,
            end: t.end(tab, i)?,
        })
    }

    /// The function containing `pc` (link-time address), from `.gopclntab`.
    pub fn func_for_pc(&self, pc: u64) -> Option<Func> {
        let t = self.pclntab.as_ref()?;
        let tab = t.bytes(&self.data);
        let i = t.find(tab, pc)?;
        Some(Func {
            name: t.name(tab, i)?.to_string(),
            entry: t.entry(tab, i)?,
            end: t.end(tab, i)?,
        })
    }

    /// The stack-pointer delta at link-time address `pc` (bytes the function's frame has
    /// pushed below its entry SP there; the return address is at `SP + delta`), from
    /// `.gopclntab`'s pcsp table (works on stripped binaries). `None` outside any function.
    pub fn sp_delta(&self, pc: u64) -> Option<u64> {
        let t = self.pclntab.as_ref()?;
        let tab = t.bytes(&self.data);
        let i = t.find(tab, pc)?;
        u64::try_from(t.sp_delta(tab, i, pc)?).ok()
    }

    /// Source file and line of `pc`, from `.gopclntab` (works on stripped binaries).
    pub fn line_for_pc(&self, pc: u64) -> Option<(String, u32)> {
        let t = self.pclntab.as_ref()?;
        let tab = t.bytes(&self.data);
        let i = t.find(tab, pc)?;
        t.line(tab, i, pc)
    }

    /// The source frames of `pc` (link-time address), innermost first: one per inlined call
    /// containing `pc` (`inlined: true`), then the physical function. Read from `.gopclntab`
    /// and its inline tree exactly as Go's `runtime.inlineUnwinder` does, so it works on
    /// stripped binaries. Empty when no function contains `pc`; just the physical function when
    /// the inline tree cannot be read (no `go:func.*` base found, or corrupt data).
    pub fn frames_for_pc(&self, pc: u64) -> Vec<SourceFrame> {
        /// Deeper inlining than this means a corrupt (cyclic) tree.
        const MAX_DEPTH: usize = 256;
        let Some(t) = self.pclntab.as_ref() else {
            return Vec::new();
        };
        let tab = t.bytes(&self.data);
        let Some(i) = t.find(tab, pc) else {
            return Vec::new();
        };
        let Some(entry) = t.entry(tab, i) else {
            return Vec::new();
        };
        let frame = |function: String, at: u64, inlined: bool| {
            let (file, line) = t.line(tab, i, at).unzip();
            SourceFrame {
                function,
                file,
                line,
                inlined,
                entry,
            }
        };
        let mut frames = Vec::new();
        let mut at = pc;
        let inl_tree = self.gofunc().and_then(|base| {
            let off = t.funcdata_off(tab, i, pclntab::FUNCDATA_INL_TREE)?;
            base.checked_add(u64::from(off))
        });
        if let Some(tree) = inl_tree {
            let mut index = t.pcdata_value(tab, i, pclntab::PCDATA_INL_TREE_INDEX, at);
            while index >= 0 && frames.len() < MAX_DEPTH {
                let call = u64::try_from(index)
                    .ok()
                    .and_then(|x| x.checked_mul(pclntab::INLINED_CALL_SIZE))
                    .and_then(|o| tree.checked_add(o))
                    .and_then(|a| {
                        self.elf
                            .read_vaddr(&self.data, a, pclntab::INLINED_CALL_SIZE)
                    });
                let Some(call) = call else { break };
                let word =
                    |o: usize| u32::from_le_bytes([call[o], call[o + 1], call[o + 2], call[o + 3]]);
                let (name_off, parent_pc) = (word(4), word(8) as i32);
                let name = t.funcname(tab, name_off).unwrap_or("?").to_string();
                frames.push(frame(name, at, true));
                // The parent pc is an instruction whose position is the call site.
                let Some(parent) = entry.checked_add_signed(i64::from(parent_pc)) else {
                    break;
                };
                at = parent;
                index = t.pcdata_value(tab, i, pclntab::PCDATA_INL_TREE_INDEX, at);
            }
        }
        let outer = t.name(tab, i).unwrap_or("?").to_string();
        frames.push(frame(outer, at, false));
        frames
    }

    /// `moduledata.gofunc` (the `go:func.*` symbol), the base FUNCDATA offsets are relative to:
    /// the first of [`Self::gofunc_candidates`].
    pub fn gofunc(&self) -> Option<u64> {
        self.gofunc_candidates.first().map(|&(_, v)| v)
    }

    /// The ways `moduledata.gofunc` was found, each with its value: `symbol` (`go:func.*` in
    /// `.symtab`) and `moduledata` (read from `runtime.firstmoduledata`, which stripping keeps).
    /// For tests and `sfgi inspect`.
    pub fn gofunc_candidates(&self) -> &[(&'static str, u64)] {
        &self.gofunc_candidates
    }

    /// File offset of link-time virtual address `vaddr` (via the PT_LOAD program headers).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.elf.file_offset(vaddr)
    }

    /// Link-time virtual address of file offset `offset` (inverse of [`Self::file_offset`], via
    /// the PT_LOAD program headers).
    pub fn vaddr_of_file_offset(&self, offset: u64) -> Option<u64> {
        self.elf.segments.iter().find_map(|s| {
            let rel = offset.checked_sub(s.offset)?;
            (rel < s.filesz).then(|| s.vaddr.checked_add(rel)).flatten()
        })
    }

    /// The code bytes of `f` (at most [`MAX_FUNC_BYTES`]).
    fn code(&self, f: &Func) -> Result<&[u8], GoExeError> {
        let len = f.end.saturating_sub(f.entry);
        if len == 0 || len > MAX_FUNC_BYTES {
            return Err(GoExeError::CodeUnavailable(f.name.clone()));
        }
        self.elf
            .read_vaddr(&self.data, f.entry, len)
            .ok_or_else(|| GoExeError::CodeUnavailable(f.name.clone()))
    }

    fn need_amd64(&self) -> Result<(), GoExeError> {
        match self.elf.arch {
            Arch::Amd64 => Ok(()),
            ref a => Err(GoExeError::UnsupportedArch(a.to_string())),
        }
    }

    /// Where to probe function `func`: the `PUSHQ BP` right after Go's stack-check prologue
    /// (see [`ProbePoint::past_prologue`]), else the entry.
    pub fn probe_point(&self, func: &str) -> Result<ProbePoint, GoExeError> {
        self.need_amd64()?;
        let f = self
            .func_by_name(func)
            .ok_or_else(|| GoExeError::FuncNotFound(func.to_string()))?;
        let code = self.code(&f)?;
        let p = prologue::scan_prologue(code, f.entry);
        let file_offset = self
            .file_offset(p.address)
            .ok_or_else(|| GoExeError::CodeUnavailable(func.to_string()))?;
        Ok(ProbePoint {
            function: f.name,
            entry: f.entry,
            address: p.address,
            file_offset,
            past_prologue: p.past_prologue,
        })
    }

    /// Addresses of the `CALL` instructions in `caller` that call `callee`'s entry.
    pub fn call_sites(&self, caller: &str, callee: &str) -> Result<Vec<u64>, GoExeError> {
        self.need_amd64()?;
        let f = self
            .func_by_name(caller)
            .ok_or_else(|| GoExeError::FuncNotFound(caller.to_string()))?;
        let target = self
            .func_by_name(callee)
            .ok_or_else(|| GoExeError::FuncNotFound(callee.to_string()))?;
        Ok(prologue::calls_to(self.code(&f)?, f.entry, target.entry))
    }

    /// SFGI's spawn probe: the `CALL runtime.runqput` in `runtime.newproc.func1` (new g in
    /// RBX), or if `runqput` is inlined, the instruction after `CALL runtime.newproc1` (new g
    /// in RAX).
    pub fn spawn_probe(&self) -> Result<SpawnProbe, GoExeError> {
        const CLOSURE: &str = "runtime.newproc.func1";
        let runqput = if self.func_by_name("runtime.runqput").is_some() {
            self.call_sites(CLOSURE, "runtime.runqput")?
        } else {
            Vec::new()
        };
        let (kind, address) = if let Some(&a) = runqput.first() {
            (SpawnProbeKind::RunqputCall, a)
        } else {
            let calls = self.call_sites(CLOSURE, "runtime.newproc1")?;
            let &call = calls.first().ok_or_else(|| GoExeError::Corrupt {
                what: "runtime.newproc.func1",
                why: "calls neither runtime.runqput nor runtime.newproc1".into(),
            })?;
            let f = self
                .func_by_name(CLOSURE)
                .ok_or_else(|| GoExeError::FuncNotFound(CLOSURE.into()))?;
            let next = prologue::next_instruction(self.code(&f)?, f.entry, call)
                .ok_or_else(|| GoExeError::CodeUnavailable(CLOSURE.into()))?;
            (SpawnProbeKind::AfterNewproc1, next)
        };
        let file_offset = self
            .file_offset(address)
            .ok_or_else(|| GoExeError::CodeUnavailable(CLOSURE.into()))?;
        Ok(SpawnProbe {
            kind,
            address,
            file_offset,
        })
    }

    /// `runtime.g`/`m`/`gobuf` field offsets (see [`RuntimeOffsets::source`]).
    pub fn offsets(&self) -> &RuntimeOffsets {
        &self.offsets
    }

    /// `waitReason` names for this binary's Go version.
    pub fn wait_reasons(&self) -> &WaitReasons {
        &self.wait_reasons
    }

    /// Layouts of the runtime heap structures (DWARF, else the table of the binary's Go
    /// version); `None` for a Go version without a table and without usable DWARF.
    pub fn heap_layout(&self) -> Option<&HeapLayout> {
        self.heap.as_ref()
    }

    /// Link-time address of `runtime.firstmoduledata`: the symbol, else the word of a writable
    /// segment that holds the `.gopclntab` address followed by the module's tables (found in
    /// stripped binaries too).
    pub fn firstmoduledata(&self) -> Option<u64> {
        self.firstmoduledata
    }

    /// Link-time address range `[start, end)` of the section `name` (e.g. `.bss`), `None` if
    /// the binary has no such section.
    pub fn section_range(&self, name: &str) -> Option<(u64, u64)> {
        let s = self.elf.section(name)?;
        Some((s.addr, s.addr.checked_add(s.size)?))
    }

    /// Address and size of a `.symtab` symbol (e.g. `runtime.allgs`); `None` when stripped.
    pub fn data_symbol(&self, name: &str) -> Option<(u64, u64)> {
        self.elf.symbols.get(name).map(|s| (s.addr, s.size))
    }

    /// The ways the `.gopclntab` text start was determined, each with its value (`header`,
    /// `runtime.text`, `moduledata`, `.text`, `segment`); the first non-header one is used when
    /// the header field is 0 (Go 1.26+). For tests and `sfgi inspect`.
    pub fn text_start_candidates(&self) -> &[(&'static str, u64)] {
        &self.text_start_candidates
    }
}

/// The built-in offsets for `minor`, or the nearest table marked as a guess.
fn table_offsets(minor: Option<u32>) -> RuntimeOffsets {
    if let Some(o) = minor.and_then(tables::offsets_for_minor) {
        return o;
    }
    let nearest = nearest_minor(minor);
    let mut o = tables::offsets_for_minor(nearest).unwrap_or_else(unreachable_table);
    o.source = OffsetSource::Guess { minor: nearest };
    o
}

fn unreachable_table() -> RuntimeOffsets {
    // Only reached if the built-in table lost its newest row: keep it total anyway.
    RuntimeOffsets {
        g_stack_lo: 0,
        g_stack_hi: 8,
        g_m: 48,
        g_sched: 56,
        g_atomicstatus: 144,
        g_goid: 152,
        g_waitsince: 168,
        g_waitreason: 176,
        g_parent_goid: 280,
        g_gopc: 288,
        g_startpc: 304,
        g_waiting: 320,
        g_tracking_seq: 191,
        g_size: 456,
        m_curg: 184,
        gobuf_sp: 0,
        gobuf_pc: 8,
        gobuf_bp: 40,
        source: OffsetSource::Guess {
            minor: tables::NEWEST_MINOR,
        },
    }
}

fn nearest_minor(minor: Option<u32>) -> u32 {
    match minor {
        Some(m) if m < tables::OLDEST_MINOR => tables::OLDEST_MINOR,
        _ => tables::NEWEST_MINOR,
    }
}

fn table_wait_reasons(minor: Option<u32>) -> WaitReasons {
    if let Some(m) = minor {
        if let Some(names) = tables::wait_reasons_for_minor(m) {
            return WaitReasons {
                names,
                source: WaitReasonSource::Table { minor: m },
            };
        }
    }
    let nearest = nearest_minor(minor);
    WaitReasons {
        names: tables::wait_reasons_for_minor(nearest).unwrap_or_default(),
        source: WaitReasonSource::Guess { minor: nearest },
    }
}

/// Finds `.gopclntab` by section name, else by searching read-only segments for its magic.
fn find_pclntab(data: &[u8], elf: &ElfInfo) -> Result<Option<Pclntab>, GoExeError> {
    // PIE and externally linked binaries put it in RELRO as `.data.rel.ro.gopclntab`.
    let sec = elf
        .section(".gopclntab")
        .or_else(|| elf.section(".data.rel.ro.gopclntab"));
    if let Some(sec) = sec {
        let (off, size) = sec.file_range.ok_or_else(|| GoExeError::Corrupt {
            what: ".gopclntab",
            why: "section has no file contents".into(),
        })?;
        let tab = elf::slice(data, off, size).ok_or_else(|| GoExeError::Corrupt {
            what: ".gopclntab",
            why: "section extends past the end of the file".into(),
        })?;
        let off = usize::try_from(off).map_err(|_| GoExeError::Corrupt {
            what: ".gopclntab",
            why: "offset overflow".into(),
        })?;
        // Go 1.2–1.15 (0xfffffffb) and 1.16–1.17 (0xfffffffa) tables: an old but valid Go
        // binary. Open it without a table so `support()` can say why it is unsupported.
        if matches!(tab.get(..4), Some([0xfb | 0xfa, 0xff, 0xff, 0xff])) {
            return Ok(None);
        }
        return Pclntab::parse(tab, off, sec.addr).map(Some);
    }
    // Fallback: no section headers (or renamed). Scan non-executable PT_LOADs (read-only, or
    // RELRO for PIE), 8-byte aligned, for a header that validates. Bounded by the segment sizes.
    const MAX_SCAN: u64 = 512 << 20;
    for seg in elf.segments.iter().filter(|s| !s.executable) {
        let Some(bytes) = elf::slice(data, seg.offset, seg.filesz.min(MAX_SCAN)) else {
            continue;
        };
        let mut i = 0usize;
        while i + 8 <= bytes.len() {
            let m = u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            if m == pclntab::MAGIC_120 || m == pclntab::MAGIC_118 {
                let file_off = seg.offset as usize + i;
                if let Ok(t) = Pclntab::parse(&bytes[i..], file_off, seg.vaddr + i as u64) {
                    let tab = t.bytes(data);
                    if t.name(tab, 0).is_some() && t.name(tab, t.nfunc - 1).is_some() {
                        return Ok(Some(t));
                    }
                }
            }
            i += 8;
        }
    }
    Ok(None)
}

/// All ways to find the address `.gopclntab`'s entry offsets are relative to.
fn text_start_candidates_for(
    elf: &ElfInfo,
    t: &Pclntab,
    md: Option<&ModuleData>,
) -> Vec<(&'static str, u64)> {
    let mut c = Vec::new();
    if t.header_text_start != 0 {
        c.push(("header", t.header_text_start));
    }
    if let Some(s) = elf.symbols.get("runtime.text") {
        c.push(("runtime.text", s.addr));
    }
    if let Some(v) = md.map(|m| m.text) {
        c.push(("moduledata", v));
    }
    if let Some(s) = elf.section(".text") {
        c.push((".text", s.addr));
    }
    if let Some(seg) = elf.segments.iter().find(|s| s.executable) {
        // Go's internal linker starts text one page into the first executable segment.
        let v = if seg.offset == 0 {
            seg.vaddr + 0x1000
        } else {
            seg.vaddr
        };
        c.push(("segment", v));
    }
    c
}

/// All ways to find `moduledata.gofunc` (`go:func.*`), the base of FUNCDATA offsets.
fn gofunc_candidates_for(elf: &ElfInfo, md: Option<&ModuleData>) -> Vec<(&'static str, u64)> {
    let mut c = Vec::new();
    // `go:func.*` since Go 1.20 (`go.func.*` before).
    if let Some(s) = ["go:func.*", "go.func.*"]
        .iter()
        .find_map(|n| elf.symbols.get(*n))
    {
        c.push(("symbol", s.addr));
    }
    if let Some(v) = md.and_then(|m| m.gofunc) {
        c.push(("moduledata", v));
    }
    c
}

/// The `runtime.firstmoduledata` fields `goexe` reads.
#[derive(Clone, Copy, Debug)]
struct ModuleData {
    /// Its link-time address.
    addr: u64,
    /// `moduledata.text`.
    text: u64,
    /// `moduledata.gofunc`, when it validates.
    gofunc: Option<u64>,
}

/// Finds `runtime.firstmoduledata` (its first word is the pclntab address, the second the
/// funcname table address) and reads its `text` field (6 words after the `ftab` slice pointer),
/// validated against `minpc` (4 words after `ftab`), and its `gofunc` field.
///
/// Words after the `ftab` slice pointer (`k`), 64-bit, Go 1.21–1.27: `minpc` k+4, `text` k+6,
/// ... `types, etypes` k+21..22 (1.21–1.26) or `types, typedesclen, etypes, itaboffset,
/// itabsize` k+21..25 (1.27), then `rodata, gofunc, epclntab`: `gofunc` is k+24 (1.21–1.26) or
/// k+27 (1.27). Both are tried; the right one is the one where `rodata` and `gofunc` are
/// addresses in the same read-only PT_LOAD with `rodata <= gofunc` (the other slot holds a size
/// or a count in those versions). The words are in the file even for PIE (the dynamic
/// relocations repeat them).
fn find_moduledata(data: &[u8], elf: &ElfInfo, t: &Pclntab) -> Option<ModuleData> {
    if t.vaddr == 0 || t.ptr_size != 8 || !elf.little_endian {
        return None;
    }
    let want0 = t.vaddr;
    let want1 = t.vaddr.checked_add(t.funcname_off as u64)?;
    let ftab = t.vaddr.checked_add(t.pcln_off as u64)?;
    let tab = t.bytes(data);
    let first_off = u64::from(t.entryoff(tab, 0)?);
    const MAX_SCAN: u64 = 256 << 20;
    for seg in elf.segments.iter().filter(|s| s.writable) {
        let bytes = elf::slice(data, seg.offset, seg.filesz.min(MAX_SCAN))?;
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                bytes.get(i..i.checked_add(8)?)?.try_into().ok()?,
            ))
        };
        let mut i = 0usize;
        while i + 16 <= bytes.len() {
            if word(i) == Some(want0) && word(i + 8) == Some(want1) {
                for k in 2..40 {
                    if word(i + 8 * k) != Some(ftab) {
                        continue;
                    }
                    let minpc = word(i + 8 * (k + 4))?;
                    let text = word(i + 8 * (k + 6))?;
                    if text != 0 && text.checked_add(first_off) == Some(minpc) {
                        let gofunc = [24, 27].iter().find_map(|&g| {
                            let rodata = word(i + 8 * (k + g - 1))?;
                            let gofunc = word(i + 8 * (k + g))?;
                            let seg = elf.segments.iter().find(|s| {
                                !s.executable
                                    && rodata.checked_sub(s.vaddr).is_some_and(|r| r < s.filesz)
                            })?;
                            (rodata <= gofunc && gofunc - seg.vaddr < seg.filesz).then_some(gofunc)
                        });
                        let addr = seg.vaddr.checked_add(i as u64)?;
                        return Some(ModuleData { addr, text, gofunc });
                    }
                }
            }
            i += 8;
        }
    }
    None
}

/// `runtime.buildVersion` (a Go string) when `.go.buildinfo` is missing.
fn runtime_build_version(data: &[u8], elf: &ElfInfo) -> Option<String> {
    let sym = elf.symbols.get("runtime.buildVersion")?;
    let hdr = elf.read_vaddr(data, sym.addr, 16)?;
    let ptr = u64::from_le_bytes(hdr.get(0..8)?.try_into().ok()?);
    let len = u64::from_le_bytes(hdr.get(8..16)?.try_into().ok()?);
    if len == 0 || len > 256 {
        return None;
    }
    Some(String::from_utf8_lossy(elf.read_vaddr(data, ptr, len)?).into_owned())
}
