//! Runtime struct layouts from DWARF: member offsets of `runtime.g`, `runtime.m`,
//! `runtime.gobuf` and `runtime.stack` (Go emits SHF_COMPRESSED `.debug_*` sections, which
//! `elf.rs` has already decompressed).

use super::{OffsetSource, RuntimeOffsets};
use gimli::{AttributeValue, EndianSlice, LittleEndian};
use std::collections::HashMap;

type R<'a> = EndianSlice<'a, LittleEndian>;

/// The struct types we need.
const WANTED: &[&str] = &["runtime.g", "runtime.m", "runtime.gobuf", "runtime.stack"];
/// Upper bound on DIEs visited (guards against pathological input).
const MAX_DIES: usize = 50_000_000;

/// A struct's byte size and member offsets.
#[derive(Default, Debug)]
pub(crate) struct Layout {
    /// `DW_AT_byte_size`.
    pub size: Option<u64>,
    /// Member name → byte offset.
    pub members: HashMap<String, u64>,
}

/// Struct layouts by type name, as found in the DWARF.
#[derive(Default, Debug)]
pub(crate) struct Layouts(HashMap<String, Layout>);

impl Layouts {
    /// The offset of `ty.member`, or why it cannot be had.
    pub(crate) fn member(&self, ty: &str, member: &str) -> Result<u64, String> {
        self.0
            .get(ty)
            .and_then(|l| l.members.get(member))
            .copied()
            .ok_or_else(|| format!("DWARF has no {ty}.{member}"))
    }

    /// The byte size of `ty`, or why it cannot be had.
    pub(crate) fn size(&self, ty: &str) -> Result<u64, String> {
        self.0
            .get(ty)
            .and_then(|l| l.size)
            .ok_or_else(|| format!("DWARF has no size for {ty}"))
    }
}

/// The layouts of the struct types named in `wanted` found in the DWARF `sections` (types
/// missing from the DWARF are missing from the map).
pub(crate) fn struct_layouts(
    sections: &HashMap<&'static str, Vec<u8>>,
    wanted: &[&str],
) -> Result<Layouts, String> {
    let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, gimli::Error> {
        let data = sections.get(id.name()).map(Vec::as_slice).unwrap_or(&[]);
        Ok(EndianSlice::new(data, LittleEndian))
    })
    .map_err(|e| e.to_string())?;
    find_layouts(&dwarf, wanted)
        .map(Layouts)
        .map_err(|e| format!("DWARF: {e}"))
}

/// Reads the runtime offsets from the DWARF sections `sections` (by name, decompressed).
pub(crate) fn read_offsets(
    sections: &HashMap<&'static str, Vec<u8>>,
) -> Result<RuntimeOffsets, String> {
    let layouts = struct_layouts(sections, WANTED)?;
    let get = |ty: &str, member: &str| layouts.member(ty, member);
    let g_stack = get("runtime.g", "stack")?;
    Ok(RuntimeOffsets {
        g_stack_lo: g_stack + get("runtime.stack", "lo")?,
        g_stack_hi: g_stack + get("runtime.stack", "hi")?,
        g_m: get("runtime.g", "m")?,
        g_sched: get("runtime.g", "sched")?,
        g_atomicstatus: get("runtime.g", "atomicstatus")?,
        g_goid: get("runtime.g", "goid")?,
        g_waitsince: get("runtime.g", "waitsince")?,
        g_waitreason: get("runtime.g", "waitreason")?,
        g_parent_goid: get("runtime.g", "parentGoid")?,
        g_gopc: get("runtime.g", "gopc")?,
        g_startpc: get("runtime.g", "startpc")?,
        g_waiting: get("runtime.g", "waiting")?,
        // A scheduler-latency detail that could go away: not fatal.
        g_tracking_seq: get("runtime.g", "trackingSeq").unwrap_or(0),
        g_size: layouts.size("runtime.g")?,
        m_curg: get("runtime.m", "curg")?,
        gobuf_sp: get("runtime.gobuf", "sp")?,
        gobuf_pc: get("runtime.gobuf", "pc")?,
        gobuf_bp: get("runtime.gobuf", "bp")?,
        source: OffsetSource::Dwarf,
    })
}

fn find_layouts(
    dwarf: &gimli::Dwarf<R<'_>>,
    wanted: &[&str],
) -> gimli::Result<HashMap<String, Layout>> {
    let mut found: HashMap<String, Layout> = HashMap::new();
    let mut visited = 0usize;
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(node) = children.next()? {
            visited += 1;
            if visited > MAX_DIES {
                return Ok(found);
            }
            let entry = node.entry();
            if entry.tag() != gimli::DW_TAG_structure_type {
                continue;
            }
            let Some(name) = entry.attr_value(gimli::DW_AT_name) else {
                continue;
            };
            let Ok(name) = dwarf.attr_string(&unit, name) else {
                continue;
            };
            let name = String::from_utf8_lossy(name.slice());
            if !wanted.contains(&name.as_ref()) || found.contains_key(name.as_ref()) {
                continue;
            }
            let mut layout = Layout {
                size: entry
                    .attr_value(gimli::DW_AT_byte_size)
                    .and_then(|v| v.udata_value()),
                ..Layout::default()
            };
            let mut members = node.children();
            while let Some(m) = members.next()? {
                visited += 1;
                let e = m.entry();
                if e.tag() != gimli::DW_TAG_member {
                    continue;
                }
                let (Some(n), Some(loc)) = (
                    e.attr_value(gimli::DW_AT_name),
                    e.attr_value(gimli::DW_AT_data_member_location),
                ) else {
                    continue;
                };
                let Ok(n) = dwarf.attr_string(&unit, n) else {
                    continue;
                };
                let off = match loc {
                    AttributeValue::Udata(v) => Some(v),
                    other => other.udata_value(),
                };
                if let Some(off) = off {
                    layout
                        .members
                        .insert(String::from_utf8_lossy(n.slice()).into_owned(), off);
                }
            }
            found.insert(name.into_owned(), layout);
            if found.len() == wanted.len() {
                return Ok(found);
            }
        }
    }
    Ok(found)
}
