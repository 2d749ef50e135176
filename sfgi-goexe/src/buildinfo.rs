//! `.go.buildinfo`: the Go version and module information embedded by the linker.
//!
//! Layout: 14-byte magic `\xff Go buildinf:`, pointer size byte, flags byte. With flag 0x2
//! (Go 1.18+) two varint-length-prefixed strings follow at offset 32: the version, then the
//! modinfo. Older binaries instead hold two pointers (at offset 16) to Go string headers.

use super::elf::ElfInfo;
use serde::Serialize;

/// The magic at the start of `.go.buildinfo`.
pub(crate) const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Longest version/modinfo string we accept.
const MAX_STRING: u64 = 1 << 20;

/// A parsed Go release number, e.g. `go1.27.3` → `{1, 27, 3}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GoVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (21 for go1.21.13).
    pub minor: u32,
    /// Patch release (13 for go1.21.13; 0 for `go1.21rc2`).
    pub patch: u32,
}

impl GoVersion {
    /// Parses `go1.21.13`, `go1.22`, `go1.23rc1`, `go1.24.1 X:boringcrypto`, `devel go1.25-abc`.
    pub fn parse(s: &str) -> Option<GoVersion> {
        let start = s.find("go1.")?;
        let rest = &s[start + 2..];
        let mut nums = [0u32; 3];
        let mut parts = rest.splitn(3, '.');
        for (i, slot) in nums.iter_mut().enumerate() {
            let Some(p) = parts.next() else { break };
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.is_empty() {
                if i < 2 {
                    return None;
                }
                break;
            }
            *slot = digits.parse().ok()?;
            if digits.len() != p.len() {
                break; // "23rc1", "13 X:..."
            }
        }
        Some(GoVersion {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
        })
    }
}

impl std::fmt::Display for GoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Build information from `.go.buildinfo` (best effort for the module part).
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildInfo {
    /// The runtime version string exactly as embedded, e.g. `go1.27.3`. Empty if unknown.
    pub go_version: String,
    /// `go_version` parsed; all zero if it could not be parsed.
    pub version: GoVersion,
    /// The main package path (`path` line of the modinfo).
    pub path: String,
    /// The main module path (`mod` line), if any.
    pub main_module: String,
    /// The main module version (`mod` line), e.g. `(devel)`.
    pub main_module_version: String,
    /// `build` settings (`-ldflags`, `CGO_ENABLED`, `GOARCH`, `vcs.revision`, …).
    pub settings: Vec<(String, String)>,
}

/// Reads an unsigned LEB128 varint from `b` at `*pos`, advancing `*pos`. At most 10 bytes.
pub(crate) fn uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn varint_bytes(b: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let len = uvarint(b, pos)?;
    if len > MAX_STRING {
        return None;
    }
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let s = b.get(*pos..end)?;
    *pos = end;
    Some(s.to_vec())
}

/// Finds and parses `.go.buildinfo`. `None` if there is none (then the binary may still be Go).
pub(crate) fn parse(data: &[u8], elf: &ElfInfo) -> Option<BuildInfo> {
    let blob = match elf.section_bytes(data, ".go.buildinfo") {
        Some(b) => b,
        None => find_magic(data)?,
    };
    if blob.len() < 32 || &blob[..14] != MAGIC {
        return None;
    }
    let ptr_size = blob[14];
    let flags = blob[15];
    let (version, modinfo) = if flags & 0x2 != 0 {
        let mut pos = 32;
        let v = varint_bytes(blob, &mut pos)?;
        let m = varint_bytes(blob, &mut pos).unwrap_or_default();
        (v, m)
    } else {
        let big_endian = flags & 0x1 != 0;
        let read_ptr = |off: usize| -> Option<u64> {
            match ptr_size {
                8 => {
                    let b: [u8; 8] = blob.get(off..off + 8)?.try_into().ok()?;
                    Some(if big_endian {
                        u64::from_be_bytes(b)
                    } else {
                        u64::from_le_bytes(b)
                    })
                }
                4 => {
                    let b: [u8; 4] = blob.get(off..off + 4)?.try_into().ok()?;
                    Some(u64::from(if big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    }))
                }
                _ => None,
            }
        };
        let ps = usize::from(ptr_size);
        let read_go_string = |hdr_addr: u64| -> Option<Vec<u8>> {
            let hdr = elf.read_vaddr(data, hdr_addr, 2 * u64::from(ptr_size))?;
            let word = |i: usize| -> Option<u64> {
                let b = hdr.get(i * ps..(i + 1) * ps)?;
                Some(match (ps, big_endian) {
                    (8, false) => u64::from_le_bytes(b.try_into().ok()?),
                    (8, true) => u64::from_be_bytes(b.try_into().ok()?),
                    (4, false) => u64::from(u32::from_le_bytes(b.try_into().ok()?)),
                    (4, true) => u64::from(u32::from_be_bytes(b.try_into().ok()?)),
                    _ => return None,
                })
            };
            let (ptr, len) = (word(0)?, word(1)?);
            if len > MAX_STRING {
                return None;
            }
            Some(elf.read_vaddr(data, ptr, len)?.to_vec())
        };
        let v = read_go_string(read_ptr(16)?)?;
        let m = read_ptr(16 + ps)
            .and_then(read_go_string)
            .unwrap_or_default();
        (v, m)
    };
    let version = String::from_utf8_lossy(&version).into_owned();
    let mut info = BuildInfo {
        version: GoVersion::parse(&version).unwrap_or_default(),
        go_version: version,
        ..BuildInfo::default()
    };
    parse_modinfo(&modinfo, &mut info);
    Some(info)
}

/// Searches the first 64 MiB of the file for a 16-byte-aligned buildinfo magic (for files
/// without section headers).
fn find_magic(data: &[u8]) -> Option<&[u8]> {
    let limit = data.len().min(64 << 20);
    let mut off = 0;
    while off + 32 <= limit {
        if &data[off..off + 14] == MAGIC {
            return data.get(off..);
        }
        off += 16;
    }
    None
}

/// Parses the modinfo string (`path`, `mod`, `build` lines, 16-byte sentinels around it).
fn parse_modinfo(modinfo: &[u8], info: &mut BuildInfo) {
    let mut b = modinfo;
    // 16-byte binary sentinels surround the text; the text ends in "\n" (as Go's debug/buildinfo).
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        b = &b[16..b.len() - 16];
    }
    let s = String::from_utf8_lossy(b);
    for line in s.lines() {
        let mut fields = line.split('\t');
        match fields.next() {
            Some("path") => info.path = fields.next().unwrap_or_default().to_string(),
            Some("mod") => {
                info.main_module = fields.next().unwrap_or_default().to_string();
                info.main_module_version = fields.next().unwrap_or_default().to_string();
            }
            Some("build") => {
                let kv = fields.collect::<Vec<_>>().join("\t");
                let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                info.settings.push((k.to_string(), v.to_string()));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |s| GoVersion::parse(s);
        assert_eq!(
            v("go1.21.13"),
            Some(GoVersion {
                major: 1,
                minor: 21,
                patch: 13
            })
        );
        assert_eq!(
            v("go1.22"),
            Some(GoVersion {
                major: 1,
                minor: 22,
                patch: 0
            })
        );
        assert_eq!(
            v("go1.23rc1"),
            Some(GoVersion {
                major: 1,
                minor: 23,
                patch: 0
            })
        );
        assert_eq!(
            v("go1.24.1 X:boringcrypto"),
            Some(GoVersion {
                major: 1,
                minor: 24,
                patch: 1
            })
        );
        assert_eq!(
            v("devel go1.25-abcdef"),
            Some(GoVersion {
                major: 1,
                minor: 25,
                patch: 0
            })
        );
        assert_eq!(v("go"), None);
        assert_eq!(v(""), None);
    }

    #[test]
    fn varints() {
        let mut p = 0;
        assert_eq!(uvarint(&[0x96, 0x01], &mut p), Some(150));
        assert_eq!(p, 2);
        let mut p = 0;
        assert_eq!(uvarint(&[0x80], &mut p), None);
        let mut p = 0;
        assert_eq!(uvarint(&[0xff; 11], &mut p), None);
    }

    #[test]
    fn modinfo() {
        let mut s = String::from("0123456789abcde\n");
        s.push_str("path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\nbuild\t-ldflags=-s -w\nbuild\tGOARCH=amd64\n");
        s.push_str("\n123456789abcdef");
        let mut info = BuildInfo::default();
        parse_modinfo(s.as_bytes(), &mut info);
        assert_eq!(info.path, "example.com/hello");
        assert_eq!(info.main_module, "example.com/hello");
        assert_eq!(info.main_module_version, "(devel)");
        assert_eq!(info.settings[0], ("-ldflags".into(), "-s -w".into()));
        assert_eq!(info.settings[1], ("GOARCH".into(), "amd64".into()));
    }
}
