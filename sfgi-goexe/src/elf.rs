//! ELF container parsing: sections, PT_LOAD segments, `.symtab`, and the (decompressed) DWARF
//! sections. Everything is copied into owned, bounds-checked structures so the rest of `goexe`
//! never touches `object`'s borrowed views.

use super::{Arch, GoExeError};
use object::{Object, ObjectKind, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};
use std::collections::HashMap;

/// Largest decompressed DWARF section we accept (guards against decompression bombs).
const MAX_DWARF_SECTION: u64 = 1 << 30;

/// Names of the DWARF sections `gimli` may ask for.
pub(crate) const DWARF_SECTIONS: &[&str] = &[
    ".debug_abbrev",
    ".debug_info",
    ".debug_str",
    ".debug_str_offsets",
    ".debug_line",
    ".debug_line_str",
    ".debug_addr",
    ".debug_rnglists",
    ".debug_loclists",
    ".debug_ranges",
    ".debug_loc",
    ".debug_types",
];

/// One section header (only what `goexe` needs).
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: String,
    pub addr: u64,
    /// Size in memory.
    pub size: u64,
    /// File range of the (possibly compressed) contents; `None` for SHT_NOBITS.
    pub file_range: Option<(u64, u64)>,
}

/// One PT_LOAD program header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub writable: bool,
    pub executable: bool,
}

/// One `.symtab` entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Symbol {
    pub addr: u64,
    pub size: u64,
    pub is_func: bool,
}

/// The parsed ELF container.
#[derive(Debug)]
pub(crate) struct ElfInfo {
    pub arch: Arch,
    pub is_pie: bool,
    pub little_endian: bool,
    pub sections: Vec<Section>,
    pub segments: Vec<Segment>,
    pub symbols: HashMap<String, Symbol>,
    pub has_symtab: bool,
    /// Decompressed DWARF sections by name (only present ones).
    pub dwarf: HashMap<&'static str, Vec<u8>>,
    /// A DWARF section that was present but could not be decompressed.
    pub dwarf_problem: Option<String>,
}

impl ElfInfo {
    /// Parses `data` as an ELF file.
    pub fn parse(data: &[u8], path: &std::path::Path) -> Result<ElfInfo, GoExeError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(GoExeError::NotElf(path.to_path_buf()));
        }
        let file = object::File::parse(data).map_err(|e| GoExeError::Corrupt {
            what: "ELF header",
            why: e.to_string(),
        })?;
        let arch = match file.architecture() {
            object::Architecture::X86_64 => Arch::Amd64,
            object::Architecture::Aarch64 => Arch::Arm64,
            other => Arch::Other(format!("{other:?}").to_lowercase()),
        };
        let is_pie = file.kind() == ObjectKind::Dynamic;
        let little_endian = file.is_little_endian();

        let mut sections = Vec::new();
        for s in file.sections() {
            let Ok(name) = s.name() else { continue };
            sections.push(Section {
                name: name.to_string(),
                addr: s.address(),
                size: s.size(),
                file_range: s.file_range(),
            });
        }

        let mut segments = Vec::new();
        for seg in file.segments() {
            let (offset, filesz) = seg.file_range();
            let flags = seg.flags();
            let (writable, executable) = match flags {
                object::SegmentFlags::Elf { p_flags } => (
                    p_flags & object::elf::PF_W != 0,
                    p_flags & object::elf::PF_X != 0,
                ),
                _ => (false, false),
            };
            segments.push(Segment {
                vaddr: seg.address(),
                offset,
                filesz,
                writable,
                executable,
            });
        }

        let has_symtab = file.section_by_name(".symtab").is_some();
        let mut symbols = HashMap::new();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() || sym.is_undefined() {
                continue;
            }
            symbols.entry(name.to_string()).or_insert(Symbol {
                addr: sym.address(),
                size: sym.size(),
                is_func: sym.kind() == SymbolKind::Text,
            });
        }

        let mut dwarf = HashMap::new();
        let mut dwarf_problem = None;
        for &name in DWARF_SECTIONS {
            // `section_by_name` also finds the old `.zdebug_*` spelling.
            let Some(sec) = file.section_by_name(name) else {
                continue;
            };
            let loaded = sec
                .compressed_data()
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    if c.uncompressed_size > MAX_DWARF_SECTION {
                        return Err(format!("declared size {} too large", c.uncompressed_size));
                    }
                    c.decompress().map_err(|e| e.to_string())
                });
            match loaded {
                Ok(bytes) => {
                    dwarf.insert(name, bytes.into_owned());
                }
                Err(why) => {
                    dwarf_problem.get_or_insert(format!("{name}: {why}"));
                }
            }
        }

        Ok(ElfInfo {
            arch,
            is_pie,
            little_endian,
            sections,
            segments,
            symbols,
            has_symtab,
            dwarf,
            dwarf_problem,
        })
    }

    /// The section named `name`, if any.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The raw file bytes of section `name` (not decompressed).
    pub fn section_bytes<'d>(&self, data: &'d [u8], name: &str) -> Option<&'d [u8]> {
        let (off, size) = self.section(name)?.file_range?;
        slice(data, off, size)
    }

    /// File offset of link-time virtual address `vaddr` (must be file-backed).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|s| {
            let rel = vaddr.checked_sub(s.vaddr)?;
            (rel < s.filesz)
                .then(|| s.offset.checked_add(rel))
                .flatten()
        })
    }

    /// `len` file-backed bytes at virtual address `vaddr`.
    pub fn read_vaddr<'d>(&self, data: &'d [u8], vaddr: u64, len: u64) -> Option<&'d [u8]> {
        let seg = self.segments.iter().find(|s| {
            vaddr
                .checked_sub(s.vaddr)
                .is_some_and(|rel| rel < s.filesz && s.filesz - rel >= len)
        })?;
        slice(data, seg.offset.checked_add(vaddr - seg.vaddr)?, len)
    }
}

/// `data[off..off+len]`, bounds-checked.
pub(crate) fn slice(data: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let len = usize::try_from(len).ok()?;
    data.get(start..start.checked_add(len)?)
}
