//! Reading an input within its limits, and telling what it is: gzip (a protobuf profile, or a
//! gzip'd text dump), an HTML page, a binary file, or a text dump.
use crate::dump::{Dump, Limits};
use crate::error::DumpError;
use crate::proto::parse_profile;
use crate::table::FrameTable;
use crate::text::parse_text;
use std::io::Read;
use std::path::Path;

/// Reads all of `path` (`-`: stdin), refusing more than `limits.max_bytes` without reading it
/// all: memory stays bounded whatever the input.
pub fn read_input(path: &Path, limits: &Limits) -> Result<Vec<u8>, DumpError> {
    if path == Path::new("-") {
        return read_bounded(std::io::stdin().lock(), limits);
    }
    let file = std::fs::File::open(path)?;
    // A regular file says its size: refuse a huge one before reading a byte.
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && meta.len() > limits.max_bytes {
            return Err(too_large(limits));
        }
    }
    read_bounded(file, limits)
}

fn too_large(limits: &Limits) -> DumpError {
    DumpError::TooLarge {
        limit_mib: limits.max_bytes >> 20,
    }
}

/// Reads at most `limits.max_bytes` of `r`; more is an error.
fn read_bounded(r: impl Read, limits: &Limits) -> Result<Vec<u8>, DumpError> {
    let mut buf = Vec::new();
    r.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limits.max_bytes {
        return Err(too_large(limits));
    }
    Ok(buf)
}

/// Parses one input (any supported kind, told by its content). Frames and wait reasons go into
/// `table`, shared by a series of dumps of one process.
pub fn parse(data: &[u8], table: &mut FrameTable, limits: &Limits) -> Result<Dump, DumpError> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .take(limits.max_bytes.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(DumpError::Gzip)?;
        if out.len() as u64 > limits.max_bytes {
            return Err(too_large(limits));
        }
        if out.starts_with(&[0x1f, 0x8b]) {
            return Err(DumpError::Proto("gzip inside gzip".into()));
        }
        if !looks_like_text(&out) {
            return parse_profile(&out, table, limits);
        }
        // A protobuf can look like text; text without a goroutine may still be one.
        return match parse_plain(&out, table, limits) {
            Err(DumpError::NoGoroutines | DumpError::Binary) => {
                parse_profile(&out, table, limits).map_err(|_| DumpError::NoGoroutines)
            }
            other => other,
        };
    }
    // An uncompressed profile.proto is binary to the text reader: try it as one before saying
    // it is a binary file.
    match parse_plain(data, table, limits) {
        Err(DumpError::Binary) => parse_profile(data, table, limits).map_err(|_| DumpError::Binary),
        other => other,
    }
}

/// Whether decompressed data is a text dump rather than a protobuf: its head is UTF-8 without
/// NUL bytes (a character cut by the 4 KiB window is still text).
fn looks_like_text(data: &[u8]) -> bool {
    let head = &data[..data.len().min(4096)];
    let text = match std::str::from_utf8(head) {
        Ok(_) => head,
        Err(e) if e.error_len().is_none() => &head[..e.valid_up_to()],
        Err(_) => return false,
    };
    !text.is_empty() && !text.contains(&0)
}

/// Text (or what claims to be): refuses empty input, binary data and HTML first.
fn parse_plain(data: &[u8], table: &mut FrameTable, limits: &Limits) -> Result<Dump, DumpError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(DumpError::Empty);
    }
    let head = &data[..data.len().min(64 << 10)];
    if head.contains(&0) {
        return Err(DumpError::Binary);
    }
    let text = String::from_utf8_lossy(data);
    // Mostly undecodable: binary, whatever its bytes.
    let bad = text
        .chars()
        .take(64 << 10)
        .filter(|&c| c == '\u{fffd}')
        .count();
    if bad > 16 && bad * 20 > text.chars().take(64 << 10).count() {
        return Err(DumpError::Binary);
    }
    let start = text.trim_start().get(..64).unwrap_or(text.trim_start());
    let lower = start.to_ascii_lowercase();
    if lower.starts_with("<!doctype") || lower.starts_with("<html") || lower.starts_with("<?xml") {
        return Err(DumpError::Html);
    }
    parse_text(&text, table, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::DumpKind;
    use crate::testdata::sample;
    use std::io::Write;

    fn parse_new(data: &[u8]) -> Result<Dump, DumpError> {
        parse(data, &mut FrameTable::new(), &Limits::default())
    }

    #[test]
    fn what_is_not_a_dump_says_what_it_is() {
        assert!(matches!(parse_new(b""), Err(DumpError::Empty)));
        assert!(matches!(parse_new(b" \n\t\n"), Err(DumpError::Empty)));
        assert!(matches!(
            parse_new(&sample("index.html")),
            Err(DumpError::Html)
        ));
        assert!(matches!(
            parse_new(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(DumpError::Binary)
        ));
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
            .collect();
        assert!(matches!(parse_new(&noise), Err(DumpError::Binary)));
        assert!(matches!(
            parse_new(b"\x1f\x8b\x08\0garbage"),
            Err(DumpError::Gzip(_))
        ));
        assert!(matches!(
            parse_new(&sample("debug1.txt")),
            Err(DumpError::Debug1)
        ));
    }

    #[test]
    fn gzip_of_text_is_text_wherever_its_characters_fall() {
        let mut text = String::from("goroutine 1 [running]:\nmain.main()\n\t/");
        text.push_str(&"é".repeat(3000));
        text.push_str(".go:1 +0x1\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let d = parse_new(&gz.finish().unwrap()).unwrap();
        assert_eq!((d.kind, d.goroutines.len()), (DumpKind::Text, 1));
    }

    #[test]
    fn an_uncompressed_profile_is_read_too() {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&sample("goroutine.pb.gz")[..])
            .read_to_end(&mut raw)
            .unwrap();
        let d = parse_new(&raw).unwrap();
        assert_eq!(d.kind, DumpKind::GoroutineProfile);
    }

    #[test]
    fn gzip_of_text_is_text() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&sample("deadlock.txt")).unwrap();
        let d = parse_new(&gz.finish().unwrap()).unwrap();
        assert_eq!(d.kind, DumpKind::Text);
        assert!(d.deadlock);
    }

    #[test]
    fn sizes_are_bounded_before_reading() {
        let limits = Limits {
            max_bytes: 1000,
            ..Limits::default()
        };
        let dir = std::env::temp_dir().join(format!("sfgi-dump-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        // A sparse 4 GiB file: refused from its size, never read.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        assert!(matches!(
            read_input(&big, &limits),
            Err(DumpError::TooLarge { .. })
        ));
        assert_eq!(
            read_bounded(&[b'x'; 1000][..], &limits).unwrap().len(),
            1000
        );
        assert!(matches!(
            read_bounded(&[b'x'; 1001][..], &limits),
            Err(DumpError::TooLarge { .. })
        ));
        // A gzip bomb: refused once the decompressed size passes the limit.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 10_000]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(matches!(
            parse(&bomb, &mut FrameTable::new(), &limits),
            Err(DumpError::TooLarge { .. })
        ));
        assert!(matches!(
            read_input(&dir.join("missing"), &limits),
            Err(DumpError::Io(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
