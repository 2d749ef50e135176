//! Finding `runtime.allgs` (and `runtime.allglen`) in binaries without a symbol table, from the
//! code of runtime functions that reference them RIP-relatively.
//!
//! Go 1.21–1.27 on amd64 compile `runtime.allgadd` to the same shape:
//!
//! ```text
//! MOVQ runtime.allgs+16(SB), CX      ; cap   } allgs = append(allgs, gp)
//! MOVQ runtime.allgs+8(SB), BX       ; len   }
//! MOVQ runtime.allgs(SB), AX         ; ptr   }
//! ...
//! MOVQ runtime.allgs+8(SB), CX
//! LEAQ runtime.allglen(SB), DX
//! XCHGQ CX, 0(DX)                    ; atomic.Storeuintptr(&allglen, uintptr(len(allgs)))
//! ```
//!
//! so `allgs` is the one address A with A, A+8 and A+16 all read, and `allglen` is where the
//! value loaded from A+8 is atomically stored. `runtime.forEachG` (`for _, gp := range allgs`,
//! which loads A and A+8 only) is the fallback and, when both are found, the cross-check.

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use std::collections::{BTreeSet, HashMap};

/// RIP-relative memory operands of one function.
#[derive(Default, Debug)]
struct RipRefs {
    /// Targets of loads/stores/compares (the memory is accessed).
    accessed: BTreeSet<u64>,
    /// Targets that are only address-taken with `LEA`.
    lea: BTreeSet<u64>,
    /// `XCHG reg, [reg2]` where reg2 held a `LEA` target: (target, RIP-relative source the
    /// exchanged register was last loaded from, if any).
    xchg_stores: Vec<(u64, Option<u64>)>,
}

fn scan(code: &[u8], entry: u64) -> RipRefs {
    let mut r = RipRefs::default();
    // Register (full 64-bit) -> last RIP-relative address LEA'd into it / loaded from.
    let mut lea_of: HashMap<Register, u64> = HashMap::new();
    let mut load_of: HashMap<Register, u64> = HashMap::new();
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            continue;
        }
        let dst = if ins.op_count() > 0 && ins.op0_kind() == OpKind::Register {
            let d = ins.op0_register();
            if (Register::AL..=Register::R15D).contains(&d) {
                // A partial-register write: forget everything rather than alias-track.
                lea_of.clear();
                load_of.clear();
                continue;
            }
            Some(d)
        } else {
            None
        };
        if ins.is_ip_rel_memory_operand() {
            let target = ins.ip_rel_memory_address();
            if ins.mnemonic() == Mnemonic::Lea {
                r.lea.insert(target);
                if let Some(d) = dst {
                    lea_of.insert(d, target);
                    load_of.remove(&d);
                }
                continue;
            }
            r.accessed.insert(target);
            if ins.mnemonic() == Mnemonic::Mov {
                if let Some(d) = dst {
                    load_of.insert(d, target);
                    lea_of.remove(&d);
                }
                continue;
            }
        }
        if ins.mnemonic() == Mnemonic::Xchg && ins.op_count() == 2 {
            // XCHG [base], reg or XCHG reg, [base].
            let (mem_op, reg_op) = if ins.op0_kind() == OpKind::Memory {
                (0, 1)
            } else {
                (1, 0)
            };
            if ins.op_kind(mem_op) == OpKind::Memory
                && ins.op_kind(reg_op) == OpKind::Register
                && ins.memory_index() == Register::None
                && ins.memory_displacement64() == 0
            {
                let base = ins.memory_base();
                let reg = ins.op_register(reg_op);
                if let Some(&t) = lea_of.get(&base) {
                    r.xchg_stores.push((t, load_of.get(&reg).copied()));
                }
                load_of.remove(&reg);
                continue;
            }
        }
        if let Some(d) = dst {
            // Any other write to a register forgets what it held.
            lea_of.remove(&d);
            load_of.remove(&d);
        }
        if matches!(ins.mnemonic(), Mnemonic::Call) {
            lea_of.clear();
            load_of.clear();
        }
    }
    r
}

/// Every target of a RIP-relative `LEA` in the code (address-taken globals).
pub(crate) fn lea_targets(code: &[u8], entry: u64) -> BTreeSet<u64> {
    scan(code, entry).lea
}

/// Every target of a RIP-relative memory access other than `LEA` (loads, stores, compares,
/// read-modify-writes) in the code.
pub(crate) fn accessed_targets(code: &[u8], entry: u64) -> BTreeSet<u64> {
    scan(code, entry).accessed
}

/// `allgs` from `runtime.allgadd`'s code: the unique A with A, A+8, A+16 all accessed.
pub(crate) fn allgs_from_allgadd(code: &[u8], entry: u64) -> Result<u64, String> {
    let r = scan(code, entry);
    let c: Vec<u64> = r
        .accessed
        .iter()
        .copied()
        .filter(|&a| {
            a.checked_add(16)
                .is_some_and(|a16| r.accessed.contains(&(a + 8)) && r.accessed.contains(&a16))
        })
        .collect();
    match c.as_slice() {
        [a] => Ok(*a),
        [] => Err("no global whose ptr, len and cap are all read".into()),
        _ => Err(format!("{} candidate slices: {c:x?}", c.len())),
    }
}

/// `allglen` from `runtime.allgadd`'s code: the `XCHG` target whose value was loaded from
/// `allgs+8`.
pub(crate) fn allglen_from_allgadd(code: &[u8], entry: u64, allgs: u64) -> Result<u64, String> {
    let r = scan(code, entry);
    let want = allgs + 8;
    let c: BTreeSet<u64> = r
        .xchg_stores
        .iter()
        .filter(|(_, src)| *src == Some(want))
        .map(|(t, _)| *t)
        .collect();
    let c: Vec<u64> = c.into_iter().collect();
    match c.as_slice() {
        [a] => Ok(*a),
        [] => Err("no atomic store of len(allgs)".into()),
        _ => Err(format!("{} candidates: {c:x?}", c.len())),
    }
}

/// `allgs` from `runtime.forEachG`'s code: the unique A with A and A+8 loaded (and not A+16).
pub(crate) fn allgs_from_foreachg(code: &[u8], entry: u64) -> Result<u64, String> {
    ranged_slice(code, entry)
}

/// The slice a function ranges over (`for _, x := range global`): the unique A with A and A+8
/// loaded and A-8 not (so the middle of a slice header is not taken for one). `allgs` in
/// `runtime.forEachG`, `allp` in `runtime.timeSleepUntil`.
pub(crate) fn ranged_slice(code: &[u8], entry: u64) -> Result<u64, String> {
    let r = scan(code, entry);
    let c: Vec<u64> = r
        .accessed
        .iter()
        .copied()
        .filter(|&a| r.accessed.contains(&(a.wrapping_add(8))))
        .filter(|&a| !r.accessed.contains(&(a.wrapping_sub(8))))
        .collect();
    match c.as_slice() {
        [a] => Ok(*a),
        [] => Err("no global whose ptr and len are both read".into()),
        _ => Err(format!("{} candidate slices: {c:x?}", c.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `op` + ModRM `modrm` (RIP-relative) + disp32 reaching `target`.
    fn rip(code: &mut Vec<u8>, base: u64, op: &[u8], modrm: u8, target: u64) {
        code.extend_from_slice(op);
        code.push(modrm);
        let next = base + code.len() as u64 + 4;
        code.extend_from_slice(&((target as i64 - next as i64) as i32).to_le_bytes());
    }

    /// The shape of Go's `runtime.allgadd` (allgs at 0x9000, allglen at 0x9100, allgptr at
    /// 0x9200).
    #[test]
    fn allgadd_shape() {
        let (base, allgs, allglen, allgptr) = (0x1000u64, 0x9000u64, 0x9100u64, 0x9200u64);
        let mut c = Vec::new();
        rip(&mut c, base, &[0x48, 0x8b], 0x0d, allgs + 16); // MOVQ allgs+16, CX
        rip(&mut c, base, &[0x48, 0x8b], 0x1d, allgs + 8); // MOVQ allgs+8, BX
        rip(&mut c, base, &[0x48, 0x8b], 0x05, allgs); // MOVQ allgs, AX
        rip(&mut c, base, &[0x48, 0x89], 0x05, allgs); // MOVQ AX, allgs
        rip(&mut c, base, &[0x48, 0x8b], 0x1d, allgs); // MOVQ allgs, BX
        rip(&mut c, base, &[0x48, 0x8d], 0x0d, allgptr); // LEAQ allgptr, CX
        c.extend_from_slice(&[0x48, 0x87, 0x19]); // XCHGQ BX, (CX)
        rip(&mut c, base, &[0x48, 0x8b], 0x0d, allgs + 8); // MOVQ allgs+8, CX
        rip(&mut c, base, &[0x48, 0x8d], 0x15, allglen); // LEAQ allglen, DX
        c.extend_from_slice(&[0x48, 0x87, 0x0a]); // XCHGQ CX, (DX)
        c.push(0xc3);
        assert_eq!(allgs_from_allgadd(&c, base), Ok(allgs));
        assert_eq!(allglen_from_allgadd(&c, base, allgs), Ok(allglen));
        assert_eq!(allgs_from_foreachg(&c[7..], base + 7), Ok(allgs));
        assert!(allgs_from_allgadd(&[0xc3], base).is_err());
        assert!(allglen_from_allgadd(&c, base, 0x5000).is_err());
    }
}
