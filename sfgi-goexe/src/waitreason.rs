//! `waitReason` names: read from the binary's own `runtime.waitReasonStrings` (an array of Go
//! string headers `{ptr, len}` in `.data` pointing into `.rodata`), or from the built-in
//! per-version table when the symbol is gone (stripped binaries).

use super::elf::ElfInfo;
use serde::Serialize;

/// Largest array we accept (the real one has < 64 entries).
const MAX_REASONS: u64 = 1024;
/// Longest reason string we accept.
const MAX_REASON_LEN: u64 = 256;

/// Where the wait-reason names came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum WaitReasonSource {
    /// The binary's `runtime.waitReasonStrings`.
    Binary,
    /// SFGI's built-in table for Go 1.`minor`.
    Table {
        /// The minor version of the table used.
        minor: u32,
    },
    /// The binary's version is unknown to SFGI and it has no symbol: the nearest built-in table
    /// (Go 1.`minor`) was used as a guess. Numbers may be wrong.
    Guess {
        /// The minor version of the table used.
        minor: u32,
    },
}

/// `waitReason` names indexed by the enum value.
#[derive(Clone, Debug, Serialize)]
pub struct WaitReasons {
    /// Name of each `waitReason` value (index 0 is the empty `waitReasonZero`).
    pub names: Vec<String>,
    /// Where `names` came from.
    pub source: WaitReasonSource,
}

impl WaitReasons {
    /// Name of wait reason `n`, `None` if out of range.
    pub fn name(&self, n: u32) -> Option<&str> {
        self.names.get(usize::try_from(n).ok()?).map(String::as_str)
    }

    /// The value of the wait reason called `name`, if any.
    pub fn number(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u32::try_from(i).ok())
    }
}

/// Reads `runtime.waitReasonStrings` from the binary (needs `.symtab`; 64-bit little endian).
pub(crate) fn from_binary(data: &[u8], elf: &ElfInfo) -> Result<Vec<String>, String> {
    let sym = elf
        .symbols
        .get("runtime.waitReasonStrings")
        .ok_or("no runtime.waitReasonStrings symbol")?;
    if !elf.little_endian {
        return Err("big-endian binaries are not supported".into());
    }
    let count = sym.size / 16;
    if count == 0 || count > MAX_REASONS || sym.size % 16 != 0 {
        return Err(format!("implausible waitReasonStrings size {}", sym.size));
    }
    let arr = elf
        .read_vaddr(data, sym.addr, sym.size)
        .ok_or("waitReasonStrings is not file-backed")?;
    let mut names = Vec::new();
    for hdr in arr.chunks_exact(16) {
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                hdr.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let (ptr, len) = (word(0).unwrap_or(0), word(1).unwrap_or(0));
        if len == 0 {
            names.push(String::new());
            continue;
        }
        if len > MAX_REASON_LEN {
            return Err(format!("implausible string length {len}"));
        }
        let bytes = elf
            .read_vaddr(data, ptr, len)
            .ok_or_else(|| format!("string pointer {ptr:#x} is not file-backed"))?;
        names.push(String::from_utf8_lossy(bytes).into_owned());
    }
    Ok(names)
}
