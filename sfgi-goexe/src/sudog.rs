//! `runtime.sudog` field offsets (amd64): from the binary's DWARF when it has any, else a
//! built-in table checked against the DWARF of real builds of every supported version
//! (`tests/inventory.rs`).
//!
//! Go 1.26 turned `sudog.elem` and `sudog.c` into `maybeTraceablePtr` structs `{vp
//! unsafe.Pointer; vu uintptr}` where `vu` is the source of truth (`vp` is cleared while the
//! goroutine-leak detector hides the pointer from the GC); the offsets here point at `vu`.

use gimli::{AttributeValue, DebugInfoOffset, EndianSlice, LittleEndian, UnitOffset};
use serde::Serialize;
use std::collections::HashMap;

/// Where [`SudogOffsets`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SudogSource {
    /// The binary's DWARF.
    Dwarf,
    /// SFGI's built-in table for Go 1.`minor`.
    Table {
        /// Minor version of the table.
        minor: u32,
    },
    /// Unknown Go version and no DWARF: the nearest table (Go 1.`minor`), a guess.
    Guess {
        /// Minor version of the table.
        minor: u32,
    },
}

/// Byte offsets of the `runtime.sudog` fields the inventory reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SudogOffsets {
    /// `sudog.elem` (its address word: `elem.vu` from Go 1.26).
    pub elem: u64,
    /// `sudog.isSelect` (a bool).
    pub is_select: u64,
    /// `sudog.waitlink` (next sudog in `g.waiting`).
    pub waitlink: u64,
    /// `sudog.c` (the `*hchan`; `c.vu` from Go 1.26).
    pub c: u64,
    /// `sizeof(runtime.sudog)`.
    pub size: u64,
    /// Where these came from.
    pub source: SudogSource,
}

impl SudogOffsets {
    /// The offsets with `source` ignored (for comparisons).
    pub fn values(&self) -> [u64; 5] {
        [self.elem, self.is_select, self.waitlink, self.c, self.size]
    }

    /// The built-in offsets for Go 1.`minor`, `None` outside 1.21–1.27.
    pub fn for_minor(minor: u32) -> Option<SudogOffsets> {
        let (elem, is_select, waitlink, c, size) = match minor {
            // g, next, prev, elem, acquiretime, releasetime, ticket, isSelect, success,
            // [waiters uint16 from 1.22, in padding], parent, waitlink, waittail, c.
            21..=25 => (24, 52, 64, 80, 88),
            // elem and c became 16-byte maybeTraceablePtr{vp, vu}.
            26 | 27 => (32, 60, 72, 96, 104),
            _ => return None,
        };
        Some(SudogOffsets {
            elem,
            is_select,
            waitlink,
            c,
            size,
            source: SudogSource::Table { minor },
        })
    }

    /// The offsets for a binary of Go 1.`minor` with the (decompressed) DWARF `sections`:
    /// DWARF if it is usable, else the table, else the nearest table marked as a guess.
    pub(crate) fn resolve(
        sections: &HashMap<&'static str, Vec<u8>>,
        minor: Option<u32>,
    ) -> SudogOffsets {
        if sections.contains_key(".debug_info") {
            if let Ok(o) = from_dwarf_sections(sections) {
                return o;
            }
        }
        if let Some(o) = minor.and_then(Self::for_minor) {
            return o;
        }
        let nearest = match minor {
            Some(m) if m < 21 => 21,
            _ => 27,
        };
        let mut o = Self::for_minor(nearest).unwrap_or(SudogOffsets {
            elem: 32,
            is_select: 60,
            waitlink: 72,
            c: 96,
            size: 104,
            source: SudogSource::Guess { minor: nearest },
        });
        o.source = SudogSource::Guess { minor: nearest };
        o
    }
}

/// Upper bound on DIEs visited.
const MAX_DIES: usize = 50_000_000;

type R<'a> = EndianSlice<'a, LittleEndian>;

fn from_dwarf_sections(sections: &HashMap<&'static str, Vec<u8>>) -> Result<SudogOffsets, String> {
    let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, gimli::Error> {
        let data = sections.get(id.name()).map(Vec::as_slice).unwrap_or(&[]);
        Ok(EndianSlice::new(data, LittleEndian))
    })
    .map_err(|e| e.to_string())?;
    let mut units = dwarf.units();
    let mut visited = 0usize;
    while let Some(header) = units.next().map_err(|e| format!("unit header: {e}"))? {
        let unit = dwarf.unit(header).map_err(|e| format!("unit: {e}"))?;
        let mut entries = unit.entries();
        while let Some(entry) = entries.next_dfs().map_err(|e| format!("DIE: {e}"))? {
            visited += 1;
            if visited > MAX_DIES {
                return Err("DWARF too large".into());
            }
            if entry.tag() != gimli::DW_TAG_structure_type
                || die_name(&dwarf, &unit, entry).as_deref() != Some("runtime.sudog")
            {
                continue;
            }
            let members = members(&dwarf, &unit, entry.offset())?;
            let get = |n: &str| {
                members
                    .iter()
                    .find(|m| m.0 == n)
                    .ok_or_else(|| format!("DWARF has no runtime.sudog.{n}"))
            };
            let size = entry
                .attr_value(gimli::DW_AT_byte_size)
                .and_then(|v| v.udata_value())
                .ok_or("runtime.sudog has no size")?;
            let word = |n: &str| -> Result<u64, String> {
                let (_, off, ty) = get(n)?;
                Ok(off + address_word(&dwarf, &unit, *ty, 0)?)
            };
            return Ok(SudogOffsets {
                elem: word("elem")?,
                is_select: get("isSelect")?.1,
                waitlink: get("waitlink")?.1,
                c: word("c")?,
                size,
                source: SudogSource::Dwarf,
            });
        }
    }
    Err("DWARF has no runtime.sudog".into())
}

fn die_name(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    entry: &gimli::DebuggingInformationEntry<R<'_>>,
) -> Option<String> {
    let v = entry.attr_value(gimli::DW_AT_name)?;
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(String::from_utf8_lossy(s.slice()).into_owned())
}

/// A member's `DW_AT_type`: in the same unit, or anywhere in `.debug_info`.
#[derive(Clone, Copy, Debug)]
enum TypeRef {
    Unit(UnitOffset),
    Info(DebugInfoOffset),
}

fn type_ref(e: &gimli::DebuggingInformationEntry<R<'_>>) -> Option<TypeRef> {
    match e.attr_value(gimli::DW_AT_type)? {
        AttributeValue::UnitRef(o) => Some(TypeRef::Unit(o)),
        AttributeValue::DebugInfoRef(o) => Some(TypeRef::Info(o)),
        _ => None,
    }
}

/// (name, offset, type) of the members of the struct DIE at `at`.
fn members(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    at: UnitOffset,
) -> Result<Vec<(String, u64, Option<TypeRef>)>, String> {
    let mut tree = unit.entries_tree(Some(at)).map_err(|e| e.to_string())?;
    let root = tree.root().map_err(|e| e.to_string())?;
    let mut children = root.children();
    let mut out = Vec::new();
    while let Some(m) = children.next().map_err(|e| e.to_string())? {
        let e = m.entry();
        if e.tag() != gimli::DW_TAG_member || out.len() > 1024 {
            continue;
        }
        let Some(name) = die_name(dwarf, unit, e) else {
            continue;
        };
        let off = match e.attr_value(gimli::DW_AT_data_member_location) {
            Some(AttributeValue::Udata(v)) => v,
            Some(other) => other.udata_value().unwrap_or(0),
            None => 0,
        };
        out.push((name, off, type_ref(e)));
    }
    Ok(out)
}

/// Offset of the address word inside a member of type `ty`: 0 for a pointer, `vu` for Go
/// 1.26's `maybeTraceablePtr` (possibly embedded, as in `maybeTraceableChan`).
fn address_word(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    ty: Option<TypeRef>,
    depth: u32,
) -> Result<u64, String> {
    let Some(ty) = ty else { return Ok(0) };
    if depth > 4 {
        return Err("type nesting too deep".into());
    }
    let at = match ty {
        TypeRef::Unit(o) => o,
        TypeRef::Info(o) => match o.to_unit_offset(&unit.header) {
            Some(u) => u,
            None => {
                // Another unit: find the one holding `o`, then continue there.
                let mut units = dwarf.units();
                let mut found = None;
                while let Some(h) = units.next().map_err(|e| e.to_string())? {
                    if o.to_unit_offset(&h).is_some() {
                        found = Some(h);
                        break;
                    }
                }
                let header = found.ok_or("type reference outside .debug_info")?;
                let other = dwarf.unit(header).map_err(|e| e.to_string())?;
                let u = o
                    .to_unit_offset(&other.header)
                    .ok_or("type reference outside its unit")?;
                return address_word(dwarf, &other, Some(TypeRef::Unit(u)), depth + 1);
            }
        },
    };
    let entry = unit.entry(at).map_err(|e| e.to_string())?;
    match entry.tag() {
        gimli::DW_TAG_structure_type => {
            let ms = members(dwarf, unit, at)?;
            if let Some((_, off, _)) = ms.iter().find(|m| m.0 == "vu") {
                return Ok(*off);
            }
            match ms.first() {
                Some((_, off, inner)) => Ok(off + address_word(dwarf, unit, *inner, depth + 1)?),
                None => Err("empty struct".into()),
            }
        }
        gimli::DW_TAG_typedef => address_word(dwarf, unit, type_ref(&entry), depth + 1),
        _ => Ok(0),
    }
}
