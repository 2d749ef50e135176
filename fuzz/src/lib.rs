//! Shared helpers of SFGI's fuzz targets.
use sfgi_goexe::{GoBinary, PROBE_FUNCTIONS};
use std::path::PathBuf;

/// Calls every query a parsed binary answers (what `sfgi inspect` and `sfgi attach` use), so a
/// panic anywhere behind `GoBinary::from_bytes` is found, not only in the parse itself.
pub fn exercise(bin: &GoBinary) {
    let _ = bin.support();
    let _ = bin.build_info();
    let _ = bin.offsets();
    let _ = bin.spawn_probe();
    for &f in PROBE_FUNCTIONS {
        if let Some(func) = bin.func_by_name(f) {
            let _ = bin.func_for_pc(func.entry);
            let _ = bin.line_for_pc(func.entry);
            let _ = bin.line_for_pc(func.end.wrapping_sub(1));
            let end = func.end.min(func.entry.saturating_add(256));
            for pc in (func.entry..end).step_by(13) {
                let _ = bin.frames_for_pc(pc);
            }
        }
        let _ = bin.probe_point(f);
        let _ = bin.pclntab_func_by_name(f);
    }
    let _ = bin.call_sites("runtime.newproc.func1", "runtime.runqput");
    for name in ["main.main", "runtime.main", "main.knownLine", "main.worker"] {
        if let Some(func) = bin.func_by_name(name) {
            let _ = bin.frames_for_pc(func.entry);
            let _ = bin.file_offset(func.entry);
        }
    }
    for pc in [0, 1, 0x401000, 0x450000, u64::MAX] {
        let _ = bin.func_for_pc(pc);
        let _ = bin.line_for_pc(pc);
        let _ = bin.file_offset(pc);
        let _ = bin.frames_for_pc(pc);
        let _ = bin.vaddr_of_file_offset(pc);
    }
    let _ = bin.wait_reasons().name(0);
    let _ = bin.wait_reasons().name(u32::MAX);
    let _ = sfgi_goexe::inspect::render_text(&sfgi_goexe::inspect::report(bin));
}

/// Parses `data` as a Go binary and exercises it.
pub fn parse_and_exercise(data: Vec<u8>) {
    if let Ok(bin) = GoBinary::from_bytes(data, PathBuf::from("fuzz-input")) {
        exercise(&bin);
    }
}
