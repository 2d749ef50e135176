//! The checked-in dumps of `tests/programs/dumps` the unit tests read (see
//! tests/data/dumps/README.md).

/// The bytes of `tests/data/dumps/<name>`.
pub(crate) fn sample(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/dumps")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
