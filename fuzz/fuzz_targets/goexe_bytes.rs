//! `GoBinary::from_bytes` on raw bytes: the ELF reader and everything behind it, from scratch.
//! Seeds: the first pages of real Go binaries and small non-Go ELF files (see
//! docs/RELIABILITY.md); `goexe_patch` covers mutations of whole real binaries.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sfgi_fuzz::parse_and_exercise(data.to_vec());
});
