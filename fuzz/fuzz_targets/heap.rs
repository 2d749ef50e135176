//! The heap readers of reachability proofs (`sfgi_heap`) on corrupt target memory: a fake
//! address space whose `mheap_`, span array, `mspan`s, module data, `semtable`, sudogs,
//! specials, finalizer and cleanup queue blocks, goroutine stacks and heap objects are all taken
//! from the input, read with the
//! layout of every supported Go version. Whatever the bytes, a pass returns (a proof or a
//! refusal) without panicking and within bounded work; spans decode or are rejected.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfgi_engine::goroutine::{GStatus, GoroutineInfo, SudogInfo};
use sfgi_goexe::HeapLayout;
use sfgi_heap::{
    decode_span, queue_roots, read_semtable, FakeMemory, Globals, ProofConfig, Prover, Spans,
};
use std::time::Duration;

const MHEAP: u64 = 0x10_0000;
const MD: u64 = 0x20_0000;
const SEMTABLE: u64 = 0x30_0000;
const ALLFIN: u64 = 0x31_0000;
const CLEANUPQ: u64 = 0x32_0000;
const HEAP: u64 = 0xc0_0000_0000;

/// `n` bytes of `data` from `at` (wrapping), so every region gets input bytes.
fn bytes(data: &[u8], at: usize, n: usize) -> Vec<u8> {
    if data.is_empty() {
        return vec![0; n];
    }
    (0..n).map(|i| data[(at + i) % data.len()]).collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let minor = 21 + u32::from(data[0]) % 7;
    let Some(l) = HeapLayout::for_minor(minor) else {
        return;
    };
    // One mspan straight from the input, and one made plausible with input fields.
    let _ = decode_span(data, &l, 0);
    let mut mem = FakeMemory::default();
    let mut mheap = bytes(data, 1, (l.mheap_allspans + 24) as usize);
    let span_array = 0x40_0000u64;
    let nspans = u64::from(data[1] % 8) + 1;
    let a = l.mheap_allspans as usize;
    mheap[a..a + 8].copy_from_slice(&span_array.to_le_bytes());
    mheap[a + 8..a + 16].copy_from_slice(&nspans.to_le_bytes());
    mheap[a + 16..a + 24].copy_from_slice(&nspans.to_le_bytes());
    mem.put(MHEAP, mheap);
    let mut array = Vec::new();
    for k in 0..nspans {
        let addr = 0x50_0000 + k * 0x1000;
        array.extend_from_slice(&addr.to_le_bytes());
        let mut s = bytes(data, 7 * k as usize + 3, l.span_size as usize);
        if data[2] & 1 == 1 {
            // Plausible: in use, 8 KB, objects of 16 << (k % 4) bytes.
            let es = 16u64 << (k % 4);
            let put = |s: &mut Vec<u8>, off: u64, v: u64| {
                s[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
            };
            let start = HEAP + k * 0x2000;
            put(&mut s, l.span_start, start);
            put(&mut s, l.span_npages, 1);
            put(&mut s, l.span_elemsize, es);
            put(&mut s, l.span_limit, start + 8192);
            let n = 8192 / es;
            if l.span_index_width == 2 {
                s[l.span_nelems as usize..l.span_nelems as usize + 2]
                    .copy_from_slice(&(n as u16).to_le_bytes());
            } else {
                put(&mut s, l.span_nelems, n);
            }
            s[l.span_state as usize] = 1;
            if data[3] & 1 == 0 {
                put(&mut s, l.span_specials, 0x60_0000 + k * 0x100);
            }
            mem.put(0x60_0000 + k * 0x100, bytes(data, 11 * k as usize, 64));
            mem.put(start, bytes(data, 13 * k as usize, 8192));
        }
        mem.put(addr, s);
    }
    mem.put(span_array, array);
    let _ = Spans::read(&mem, &l, MHEAP);
    // Module data: data and bss inside the input-filled region (or wherever the input says).
    let mut md = bytes(data, 5, (l.md_next.max(l.md_gcbssmask) + 16) as usize);
    if data[2] & 2 == 2 {
        let put = |s: &mut Vec<u8>, off: u64, v: u64| {
            s[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes())
        };
        put(&mut md, l.md_data, 0x70_0000);
        put(&mut md, l.md_edata, 0x70_0000 + 256);
        put(&mut md, l.md_bss, 0x70_0100);
        put(&mut md, l.md_ebss, 0x70_0200);
        put(&mut md, l.md_next, 0);
        // Pointer masks (32 words of data, 32 of bss) from the input, or a wrong size.
        put(
            &mut md,
            l.md_gcdatamask,
            if data[2] & 4 == 4 { 32 } else { 31 },
        );
        put(&mut md, l.md_gcdatamask + 8, 0x70_01f8);
        put(&mut md, l.md_gcbssmask, 32);
        put(&mut md, l.md_gcbssmask + 8, 0x70_01fc);
    }
    mem.put(MD, md);
    mem.put(0x70_0000, bytes(data, 17, 512));
    mem.put(
        SEMTABLE,
        bytes(data, 19, (l.semtable_len * l.semtable_entry) as usize),
    );
    let _ = read_semtable(&mem, &l, SEMTABLE);
    // Goroutines whose fields come from the input.
    let word = |i: usize| {
        let b = bytes(data, i * 8, 8);
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    };
    let reasons = [
        "chan receive",
        "select",
        "select (no cases)",
        "sync.Mutex.Lock",
        "sleep",
        "semacquire",
    ];
    let goroutines: Vec<GoroutineInfo> = (0..4usize)
        .map(|i| {
            let lo = 0x80_0000 + (i as u64) * 0x1000;
            mem.put(lo, bytes(data, 23 * i, 0x1000));
            GoroutineInfo {
                goid: 2 + i as u64,
                status: GStatus::from_raw(u32::from(data[(i + 4) % data.len()] % 12))
                    .unwrap_or(GStatus::Waiting),
                status_raw: 4,
                wait_reason: Some(
                    reasons[data[(i + 5) % data.len()] as usize % reasons.len()].into(),
                ),
                wait_reason_raw: 0,
                waitsince_ns: 0,
                wait_age_ns: None,
                gopc: 0,
                startpc: 0,
                parent_goid: 1,
                stack_lo: if data[2] & 4 == 4 { word(i) } else { lo },
                stack_hi: lo + 0x1000,
                sched_pc: 0,
                sched_sp: lo + (word(i + 1) % 0x1000),
                sched_bp: 0,
                stack: Vec::new(),
                stack_truncated: false,
                waiting_on: Vec::new(),
                sudogs: vec![SudogInfo {
                    addr: word(i + 2),
                    elem: word(i + 3),
                    c: if data[2] & 8 == 8 {
                        HEAP + (word(i + 4) % 0x4000)
                    } else {
                        word(i + 4)
                    },
                    is_select: false,
                    kind: Default::default(),
                }],
                g_addr: 0x90_0000 + i as u64 * 0x200,
                stayed_blocked: false,
            }
        })
        .collect();
    // Finalizer and cleanup queue blocks: a chain of up to 4 blocks of each, links and counts
    // from the input (or plausible ones), contents from the input.
    for (head, base, size, link) in [
        (ALLFIN, 0x33_0000u64, l.finblock_size, l.finblock_alllink),
        (
            CLEANUPQ + l.cleanupq_all,
            0x38_0000u64,
            l.cleanupblock_size,
            l.cleanupblock_alllink,
        ),
    ] {
        let first = if data[2] & 16 == 16 { word(8) } else { base };
        mem.put(head, first.to_le_bytes().to_vec());
        let nblocks = u64::from(data[4 % data.len()] % 5);
        for k in 0..nblocks {
            let mut b = bytes(data, 29 * k as usize, size.max(64) as usize);
            if data[2] & 32 == 0 {
                let next = if k + 1 < nblocks {
                    base + (k + 1) * 0x1000
                } else {
                    0
                };
                let o = link as usize;
                b[o..o + 8].copy_from_slice(&next.to_le_bytes());
            }
            mem.put(base + k * 0x1000, b);
        }
    }
    let cleanup_queue = (l.cleanupq_all != 0 && data[3] & 4 == 0).then_some(CLEANUPQ);
    if let Ok(ranges) = queue_roots(&mem, &l, ALLFIN, cleanup_queue) {
        // Every range is inside a block's entries.
        assert!(ranges.iter().all(|(s, e)| s <= e));
    }
    let prover = Prover {
        layout: l,
        globals: Globals {
            mheap: MHEAP,
            firstmoduledata: MD,
            semtable: (data[3] & 2 == 2).then_some(SEMTABLE),
            allfin: ALLFIN,
            cleanup_queue,
        },
        config: ProofConfig {
            gap: Duration::ZERO,
            g_stack: 0,
        },
    };
    let _ = prover.pass(&mem, &goroutines);
    let report = prover.prove(&mem, || Ok::<_, String>(goroutines.clone()));
    // A proof never names a goroutine that is not a waiting candidate.
    for p in &report.proven {
        assert!(goroutines
            .iter()
            .any(|g| g.goid == p.goid && matches!(g.status, GStatus::Waiting | GStatus::Leaked)));
    }
});
