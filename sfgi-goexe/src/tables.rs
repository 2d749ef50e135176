//! Built-in per-version facts for binaries without DWARF (stripped): `runtime.g`/`m`/`gobuf`
//! offsets on amd64 for each supported minor version. Kept honest by `tests/goexe_versions.rs`,
//! which compares them with the DWARF of real builds of every version.

use super::{OffsetSource, RuntimeOffsets};

/// Oldest minor version (of Go 1) SFGI has facts for.
pub const OLDEST_MINOR: u32 = 21;
/// Newest minor version (of Go 1) SFGI has facts for.
pub const NEWEST_MINOR: u32 = 27;

/// The built-in offsets for Go 1.`minor` (amd64), `None` outside 1.21–1.27.
pub fn offsets_for_minor(minor: u32) -> Option<RuntimeOffsets> {
    // (g size, atomicstatus, goid, waitsince, waitreason, parentGoid, gopc, startpc, waiting,
    //  m.curg, gobuf.bp, trackingSeq)
    let row: [u64; 12] = match minor {
        21 => [408, 144, 152, 168, 176, 272, 280, 296, 312, 192, 48, 188],
        22 => [424, 144, 152, 168, 176, 272, 280, 296, 312, 192, 48, 191],
        23 => [432, 152, 160, 176, 184, 280, 288, 304, 320, 192, 48, 199],
        24 => [440, 152, 160, 176, 184, 280, 288, 304, 320, 192, 48, 199],
        25 => [440, 144, 152, 168, 176, 272, 280, 296, 312, 184, 40, 191],
        26 => [456, 144, 152, 168, 176, 280, 288, 304, 320, 184, 40, 191],
        27 => [456, 144, 152, 168, 176, 280, 288, 304, 320, 184, 40, 191],
        _ => return None,
    };
    Some(RuntimeOffsets {
        g_stack_lo: 0,
        g_stack_hi: 8,
        g_m: 48,
        g_sched: 56,
        g_atomicstatus: row[1],
        g_goid: row[2],
        g_waitsince: row[3],
        g_waitreason: row[4],
        g_parent_goid: row[5],
        g_gopc: row[6],
        g_startpc: row[7],
        g_waiting: row[8],
        g_tracking_seq: row[11],
        g_size: row[0],
        m_curg: row[9],
        gobuf_sp: 0,
        gobuf_pc: 8,
        gobuf_bp: row[10],
        source: OffsetSource::Table { minor },
    })
}

/// The built-in `waitReason` names for Go 1.`minor`, indexed by `waitReason` value (gaps are
/// empty strings). `None` outside 1.21–1.27.
pub fn wait_reasons_for_minor(minor: u32) -> Option<Vec<String>> {
    const TSV: &str = include_str!("waitreasons.tsv");
    let mut lines = TSV.lines();
    let header = lines.next()?;
    let col = header
        .split('\t')
        .position(|v| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()) == Some(minor))?;
    let mut names: Vec<String> = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(num)) = (fields.first(), fields.get(col)) else {
            continue;
        };
        let Ok(n) = num.parse::<usize>() else {
            continue;
        };
        if names.len() <= n {
            names.resize(n + 1, String::new());
        }
        names[n] = (*name).to_string();
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_minor_has_tables() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let o = offsets_for_minor(minor).expect("offsets");
            assert!(o.g_size > o.g_waiting);
            let w = wait_reasons_for_minor(minor).expect("wait reasons");
            assert_eq!(w[0], "");
            assert_eq!(w[2], "IO wait");
        }
        assert!(offsets_for_minor(20).is_none());
        assert!(wait_reasons_for_minor(28).is_none());
        assert_eq!(wait_reasons_for_minor(21).unwrap()[14], "chan receive");
        assert_eq!(wait_reasons_for_minor(27).unwrap()[19], "chan receive");
    }
}
