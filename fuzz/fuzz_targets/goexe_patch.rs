//! `GoBinary::from_bytes` on real Go binaries with a few targeted byte patches: each patch lands
//! in one structure SFGI parses (ELF headers, `.go.buildinfo`, `.gopclntab`, the moduledata in
//! `.noptrdata`, `.symtab`, uncompressed DWARF sections, the probed functions' code), so the
//! fuzzer gets deep into each parser instead of failing the ELF magic check.
//!
//! Base binaries: the files in `fuzz/bases/` (`cargo xtask fuzz` puts small Go binaries there:
//! stripped, with uncompressed DWARF, PIE), or the paths in `$SFGI_FUZZ_BASES` (colon-separated).
//!
//! Input: `[base]` then patches `[region][offset u32 LE][len][len bytes]`; region 0xff means
//! "truncate the file at offset (mod its size)".
#![no_main]
use libfuzzer_sys::fuzz_target;
use object::{Object, ObjectSection};
use sfgi_goexe::{GoBinary, PROBE_FUNCTIONS};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Base {
    data: Vec<u8>,
    regions: Vec<Range<usize>>,
}

const SECTIONS: &[&str] = &[
    ".go.buildinfo",
    ".gopclntab",
    ".noptrdata",
    ".data",
    ".rodata",
    ".symtab",
    ".strtab",
    ".debug_info",
    ".debug_abbrev",
    ".debug_str",
    ".debug_line",
    ".debug_ranges",
    ".debug_rnglists",
    ".debug_addr",
    ".debug_loclists",
];

fn regions(data: &[u8]) -> Vec<Range<usize>> {
    let mut r = vec![0..64.min(data.len())];
    if let Ok(f) = object::File::parse(data) {
        // Program and section header tables (from the ELF header).
        if data.len() >= 64 {
            let u64at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
            let u16at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
            let (phoff, shoff) = (u64at(0x20), u64at(0x28));
            let (phn, shn) = (u16at(0x38), u16at(0x3c));
            r.push(phoff..phoff.saturating_add(phn * 56).min(data.len()));
            r.push(shoff..shoff.saturating_add(shn * 64).min(data.len()));
        }
        for name in SECTIONS {
            if let Some((off, size)) = f.section_by_name(name).and_then(|s| s.file_range()) {
                let (off, size) = (off as usize, size as usize);
                // Large sections: their first 64 KiB (headers, tables) are where parsing starts.
                r.push(off..(off + size.min(64 << 10)).min(data.len()));
            }
        }
    }
    if let Ok(bin) = GoBinary::from_bytes(data.to_vec(), PathBuf::from("base")) {
        for &name in PROBE_FUNCTIONS {
            if let Some(func) = bin.func_by_name(name) {
                if let Some(off) = bin.file_offset(func.entry) {
                    let len = func.end.saturating_sub(func.entry).min(512) as usize;
                    let off = off as usize;
                    r.push(off..(off + len).min(data.len()));
                }
            }
        }
    }
    r.retain(|x| x.start < x.end);
    r
}

fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut paths: Vec<PathBuf> = match std::env::var_os("SFGI_FUZZ_BASES") {
            Some(v) => std::env::split_paths(&v).collect(),
            None => std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/bases"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
        };
        paths.sort();
        let bases: Vec<Base> = paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|data| Base {
                regions: regions(&data),
                data,
            })
            .collect();
        assert!(
            !bases.is_empty(),
            "goexe_patch: no base binaries (run `cargo xtask fuzz`, or set SFGI_FUZZ_BASES)"
        );
        bases
    })
}

fuzz_target!(|input: &[u8]| {
    let bases = bases();
    let Some((&which, mut rest)) = input.split_first() else {
        return;
    };
    let base = &bases[usize::from(which) % bases.len()];
    let mut data = base.data.clone();
    while rest.len() >= 6 {
        let region = rest[0];
        let off = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let len = usize::from(rest[5]);
        rest = &rest[6..];
        if region == 0xff {
            if !data.is_empty() {
                data.truncate(off % data.len());
            }
            continue;
        }
        let bytes = &rest[..len.min(rest.len())];
        rest = &rest[bytes.len()..];
        let r = &base.regions[usize::from(region) % base.regions.len()];
        let start = r.start + off % (r.end - r.start);
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(slot) = data.get_mut(start + i) {
                *slot = b;
            }
        }
    }
    sfgi_fuzz::parse_and_exercise(data);
});
