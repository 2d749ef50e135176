//! x86-64 instruction-level helpers (iced-x86): the probe address past Go's stack-check
//! prologue, and CALL sites of one function inside another.
//!
//! Go's amd64 prologue (Go 1.21+, ABIInternal, `g` in R14):
//! ```text
//! CMPQ SP, 16(R14)            ; or LEAQ -N(SP), R12; CMPQ R12, 16(R14) for big frames
//! JLS  morestack_tail         ; JBE
//! PUSHQ BP                    ; 0x55  <- probe here: runs once per call, after any stack growth
//! MOVQ SP, BP
//! ```
//! The morestack tail jumps back to the entry, so a probe at the entry can fire twice per call.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, Register};

/// How far into a function to look for the frame-pointer push.
pub(crate) const PROLOGUE_WINDOW: usize = 64;

/// Result of scanning a function's prologue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prologue {
    /// Address to probe.
    pub address: u64,
    /// `address` is the `PUSHQ BP` after the stack check (or at the entry of a function without one).
    pub past_prologue: bool,
    /// A stack-bound check was seen.
    pub stack_check: bool,
}

fn is_stack_check(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Cmp
        && i.op_count() == 2
        && i.memory_base() == Register::R14
        && i.memory_displacement64() == 16
        && matches!(i.op0_register(), Register::RSP | Register::R12)
}

/// Scans `code` (the first bytes of a function at `entry`) for the probe address.
pub(crate) fn scan_prologue(code: &[u8], entry: u64) -> Prologue {
    let window = &code[..code.len().min(PROLOGUE_WINDOW)];
    let mut dec = Decoder::with_ip(64, window, entry, DecoderOptions::NONE);
    let mut stack_check = false;
    let mut ins = Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            break;
        }
        if ins.code() == Code::Push_r64 && ins.op0_register() == Register::RBP {
            let past = stack_check || ins.ip() == entry;
            return Prologue {
                address: ins.ip(),
                past_prologue: past,
                stack_check,
            };
        }
        if is_stack_check(&ins) {
            stack_check = true;
            continue;
        }
        if matches!(
            ins.mnemonic(),
            Mnemonic::Call
                | Mnemonic::Jmp
                | Mnemonic::Ret
                | Mnemonic::Retf
                | Mnemonic::Int3
                | Mnemonic::Ud2
                | Mnemonic::Hlt
        ) {
            break; // CALL/JMP/RET before any push: no frame pointer in this window.
        }
    }
    Prologue {
        address: entry,
        past_prologue: false,
        stack_check,
    }
}

/// Addresses of `CALL rel32` instructions in `code` (at `start`) whose target is `target`.
pub(crate) fn calls_to(code: &[u8], start: u64, target: u64) -> Vec<u64> {
    let mut dec = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut out = Vec::new();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.code() == Code::Call_rel32_64 && ins.near_branch_target() == target {
            out.push(ins.ip());
        }
    }
    out
}

/// Address of the instruction right after the `CALL` at `call` (its return address).
pub(crate) fn next_instruction(code: &[u8], start: u64, call: u64) -> Option<u64> {
    let mut dec = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.ip() == call {
            return Some(ins.next_ip());
        }
        if ins.ip() > call {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frame() {
        // CMPQ SP, 16(R14); JBE +0x20; PUSHQ BP; MOVQ SP, BP
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0x48, 0x89, 0xe5];
        let p = scan_prologue(&code, 0x1000);
        assert_eq!(p.address, 0x1006);
        assert!(p.past_prologue && p.stack_check);
    }

    #[test]
    fn big_frame() {
        // LEAQ -0x88(SP), R12; CMPQ R12, 16(R14); JBE rel32; PUSHQ BP
        let code = [
            0x4c, 0x8d, 0xa4, 0x24, 0x78, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86,
            0x10, 0x00, 0x00, 0x00, 0x55,
        ];
        let p = scan_prologue(&code, 0x2000);
        assert_eq!(p.address, 0x2000 + 18);
        assert!(p.past_prologue && p.stack_check);
    }

    #[test]
    fn nosplit_and_frameless() {
        let p = scan_prologue(&[0x55, 0x48, 0x89, 0xe5], 0x3000);
        assert_eq!(p.address, 0x3000);
        assert!(p.past_prologue && !p.stack_check);
        let p = scan_prologue(&[0xc3], 0x3000); // RET
        assert_eq!(p.address, 0x3000);
        assert!(!p.past_prologue);
        let p = scan_prologue(&[], 0x3000);
        assert!(!p.past_prologue);
    }

    #[test]
    fn calls() {
        // CALL +0 (target 0x1005); NOP; CALL -11 (target 0x1000)
        let code = [0xe8, 0, 0, 0, 0, 0x90, 0xe8, 0xf5, 0xff, 0xff, 0xff];
        assert_eq!(calls_to(&code, 0x1000, 0x1005), vec![0x1000]);
        assert_eq!(calls_to(&code, 0x1000, 0x1000), vec![0x1006]);
        assert_eq!(next_instruction(&code, 0x1000, 0x1006), Some(0x100b));
    }
}
