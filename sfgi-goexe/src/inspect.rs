//! `sfgi inspect`: what SFGI sees in a Go binary (version, probe points, struct offsets, wait
//! reasons) and whether it can probe it.

use crate::{
    GoBinary, OffsetSource, RuntimeOffsets, SpawnProbeKind, WaitReasonSource, PROBE_FUNCTIONS,
};
use serde::Serialize;
use std::fmt::Write as _;

/// One probed function.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeRow {
    /// Function (or, for the spawn probe, a description of the instruction).
    pub function: String,
    /// Entry address (link-time), if the function was found.
    pub entry: Option<u64>,
    /// Address to probe.
    pub address: Option<u64>,
    /// File offset of `address`.
    pub file_offset: Option<u64>,
    /// The probe is past the stack-check prologue.
    pub past_prologue: bool,
    /// Why the probe point could not be determined.
    pub error: Option<String>,
}

/// A data symbol.
#[derive(Clone, Debug, Serialize)]
pub struct DataSymbol {
    /// Symbol name.
    pub name: String,
    /// Address (link-time).
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Everything `sfgi inspect` shows.
#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    /// The binary's path.
    pub path: String,
    /// Go version string (`go1.27.3`).
    pub go_version: String,
    /// Architecture.
    pub arch: String,
    /// Position-independent executable.
    pub pie: bool,
    /// No `.symtab`.
    pub stripped: bool,
    /// Has DWARF.
    pub dwarf: bool,
    /// Main package path.
    pub main_path: String,
    /// Main module path.
    pub main_module: String,
    /// The probe points, one per probed function, then the spawn probe.
    pub probes: Vec<ProbeRow>,
    /// How the spawn probe is placed: `runqput-call` (new g in RBX), `after-newproc1` (RAX,
    /// `runqput` inlined) or `none`.
    pub spawn_probe: String,
    /// `runtime.allgs`, `runtime.allglen`, `runtime.allgptr` when present.
    pub data_symbols: Vec<DataSymbol>,
    /// Struct offsets.
    pub offsets: RuntimeOffsets,
    /// Human-readable source of `offsets`.
    pub offsets_source: String,
    /// Wait-reason names indexed by value.
    pub wait_reasons: Vec<String>,
    /// Human-readable source of `wait_reasons`.
    pub wait_reasons_source: String,
    /// Where the heap layouts of reachability proofs (`--prove`) come from, or why there are
    /// none.
    pub heap_layout_source: String,
    /// `runtime.firstmoduledata` (link-time address), found with or without symbols.
    pub firstmoduledata: Option<u64>,
    /// SFGI can probe this binary.
    pub supported: bool,
    /// Why not.
    pub problems: Vec<String>,
    /// Non-fatal remarks.
    pub notes: Vec<String>,
}

/// Builds the inspection report of `bin`.
pub fn report(bin: &GoBinary) -> InspectReport {
    let mut probes: Vec<ProbeRow> = PROBE_FUNCTIONS
        .iter()
        .map(|&f| match bin.probe_point(f) {
            Ok(p) => ProbeRow {
                function: f.to_string(),
                entry: Some(p.entry),
                address: Some(p.address),
                file_offset: Some(p.file_offset),
                past_prologue: p.past_prologue,
                error: None,
            },
            Err(e) => ProbeRow {
                function: f.to_string(),
                entry: bin.func_by_name(f).map(|f| f.entry),
                address: None,
                file_offset: None,
                past_prologue: false,
                error: Some(e.to_string()),
            },
        })
        .collect();
    let spawn_probe = match bin.spawn_probe() {
        Ok(s) => {
            let (desc, kind) = match s.kind {
                SpawnProbeKind::RunqputCall => (
                    "runtime.newproc.func1: CALL runtime.runqput (new g in RBX)",
                    "runqput-call",
                ),
                SpawnProbeKind::AfterNewproc1 => (
                    "runtime.newproc.func1: after CALL runtime.newproc1 (runqput inlined; new g in RAX)",
                    "after-newproc1",
                ),
            };
            probes.push(ProbeRow {
                function: desc.to_string(),
                entry: bin.func_by_name("runtime.newproc.func1").map(|f| f.entry),
                address: Some(s.address),
                file_offset: Some(s.file_offset),
                past_prologue: false,
                error: None,
            });
            kind.to_string()
        }
        Err(e) => {
            probes.push(ProbeRow {
                function: "runtime.newproc.func1 (spawn)".to_string(),
                entry: None,
                address: None,
                file_offset: None,
                past_prologue: false,
                error: Some(e.to_string()),
            });
            "none".to_string()
        }
    };
    let data_symbols = ["runtime.allgs", "runtime.allglen", "runtime.allgptr"]
        .iter()
        .filter_map(|&n| {
            bin.data_symbol(n).map(|(address, size)| DataSymbol {
                name: n.to_string(),
                address,
                size,
            })
        })
        .collect();
    let offsets = bin.offsets().clone();
    let offsets_source = match offsets.source {
        OffsetSource::Dwarf => "DWARF".to_string(),
        OffsetSource::Table { minor } => format!("built-in table (go1.{minor})"),
        OffsetSource::Guess { minor } => {
            format!("GUESS: nearest built-in table (go1.{minor}); do not trust")
        }
    };
    let wr = bin.wait_reasons();
    let wait_reasons_source = match wr.source {
        WaitReasonSource::Binary => "binary (runtime.waitReasonStrings)".to_string(),
        WaitReasonSource::Table { minor } => format!("built-in table (go1.{minor})"),
        WaitReasonSource::Guess { minor } => {
            format!("GUESS: nearest built-in table (go1.{minor})")
        }
    };
    let heap_layout_source = match bin.heap_layout().map(|l| l.source) {
        Some(crate::HeapLayoutSource::Dwarf) => "DWARF".to_string(),
        Some(crate::HeapLayoutSource::Table { minor }) => {
            format!("built-in table (go1.{minor})")
        }
        None => "none (unknown Go version without DWARF): no proofs".to_string(),
    };
    let support = bin.support();
    let bi = bin.build_info();
    InspectReport {
        path: bin.path().display().to_string(),
        go_version: bi.go_version.clone(),
        arch: bin.arch().to_string(),
        pie: bin.is_pie(),
        stripped: bin.is_stripped(),
        dwarf: bin.has_dwarf(),
        main_path: bi.path.clone(),
        main_module: bi.main_module.clone(),
        probes,
        spawn_probe,
        data_symbols,
        offsets,
        offsets_source,
        wait_reasons: wr.names.clone(),
        wait_reasons_source,
        heap_layout_source,
        firstmoduledata: bin.firstmoduledata(),
        supported: support.probes_supported,
        problems: support.problems,
        notes: support.notes,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn hex(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:#x}"))
}

/// Renders `r` as plain text.
pub fn render_text(r: &InspectReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Binary:      {}", r.path);
    let _ = writeln!(
        s,
        "Go version:  {}",
        if r.go_version.is_empty() {
            "unknown"
        } else {
            &r.go_version
        }
    );
    let _ = writeln!(s, "Arch:        {}", r.arch);
    let _ = writeln!(s, "PIE:         {}", yes_no(r.pie));
    let _ = writeln!(s, "Stripped:    {}", yes_no(r.stripped));
    let _ = writeln!(s, "DWARF:       {}", yes_no(r.dwarf));
    let _ = writeln!(
        s,
        "Main module: {}",
        if r.main_module.is_empty() {
            "-"
        } else {
            &r.main_module
        }
    );
    if !r.main_path.is_empty() && r.main_path != r.main_module {
        let _ = writeln!(s, "Main path:   {}", r.main_path);
    }

    let _ = writeln!(s, "\nProbes:");
    let width = r.probes.iter().map(|p| p.function.len()).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "  {:width$}  {:>10}  {:>10}  {:>10}  past prologue",
        "function", "entry", "probe", "offset"
    );
    for p in &r.probes {
        match &p.error {
            None => {
                let _ = writeln!(
                    s,
                    "  {:width$}  {:>10}  {:>10}  {:>10}  {}",
                    p.function,
                    hex(p.entry),
                    hex(p.address),
                    hex(p.file_offset),
                    yes_no(p.past_prologue)
                );
            }
            Some(e) => {
                let _ = writeln!(s, "  {:width$}  error: {e}", p.function);
            }
        }
    }

    let _ = writeln!(s, "\nData symbols:");
    if r.data_symbols.is_empty() {
        let _ = writeln!(s, "  (none: no .symtab)");
    }
    for d in &r.data_symbols {
        let _ = writeln!(s, "  {:18} {:#x} size {}", d.name, d.address, d.size);
    }

    let _ = writeln!(
        s,
        "\nReachability proofs (--prove): heap layout from {}, firstmoduledata {}",
        r.heap_layout_source,
        hex(r.firstmoduledata)
    );

    let o = &r.offsets;
    let _ = writeln!(s, "\nStruct offsets ({}):", r.offsets_source);
    let rows: [(&str, u64); 17] = [
        ("g.stack.lo", o.g_stack_lo),
        ("g.stack.hi", o.g_stack_hi),
        ("g.m", o.g_m),
        ("g.sched", o.g_sched),
        ("g.atomicstatus", o.g_atomicstatus),
        ("g.goid", o.g_goid),
        ("g.waitsince", o.g_waitsince),
        ("g.waitreason", o.g_waitreason),
        ("g.parentGoid", o.g_parent_goid),
        ("g.gopc", o.g_gopc),
        ("g.startpc", o.g_startpc),
        ("g.waiting", o.g_waiting),
        ("sizeof(g)", o.g_size),
        ("m.curg", o.m_curg),
        ("gobuf.sp", o.gobuf_sp),
        ("gobuf.pc", o.gobuf_pc),
        ("gobuf.bp", o.gobuf_bp),
    ];
    for (name, v) in rows {
        let _ = writeln!(s, "  {name:16} {v}");
    }

    let _ = writeln!(s, "\nWait reasons ({}):", r.wait_reasons_source);
    for (i, n) in r.wait_reasons.iter().enumerate() {
        if !n.is_empty() {
            let _ = writeln!(s, "  {i:3}  {n}");
        }
    }

    let _ = writeln!(s);
    if r.supported {
        let _ = writeln!(s, "Supported: yes");
    } else {
        let _ = writeln!(s, "Unsupported: {}", r.problems.join("; "));
    }
    for n in &r.notes {
        let _ = writeln!(s, "Note: {n}");
    }
    s
}
