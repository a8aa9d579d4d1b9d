//! The on-disk formats, one module each, named for what they are (the
//! phases that write them are in [`crate::course`]). Every module opens with
//! a drawing of its byte layout; `docs/src/` explains them chapter by
//! chapter.
//!
//! | module | phase | file |
//! |--------|-------|------|
//! | [`dataset`] | 00 | `output/dataset.ssd`: the canonical dataset, raw and checksummed |
//! | [`ndjson`] | 01 | `output/01_metrics.ndjson`: one JSON object per sample |
//! | [`columnar`] | 02 | `output/02_columnar.msgpack`: metadata once, two columns per series |
//! | [`gorilla`] | 03 | `output/03_compressed.ssc`: delta-of-delta timestamps, XOR values |
//! | [`adaptive`] | 03b, 03c | `output/03b_adaptive.ssa`, `output/03c_entropy.sse`: shared columns, a value codec per block |
//! | [`metrics`] | 04, 05 | `output/04_custom.metrics` and phase 05's rollups: blocks, a paged index, names, a root |

pub mod adaptive;
pub mod columnar;
pub mod dataset;
pub mod gorilla;
pub mod metrics;
pub mod ndjson;

use crate::bytes::{write_string, ByteReader};
use crate::codec::varint::write_u64;
use crate::error::Result;
use crate::model::{Labels, SeriesKey};

/// Appends a series key: metric string, label count, then name/value strings.
pub(crate) fn write_key(out: &mut Vec<u8>, key: &SeriesKey) {
    write_string(out, &key.metric);
    write_u64(out, key.labels.len() as u64);
    for (k, v) in &key.labels {
        write_string(out, k);
        write_string(out, v);
    }
}

/// Reads a key written by [`write_key`]; label names must be strictly increasing.
pub(crate) fn read_key(r: &mut ByteReader<'_>) -> Result<SeriesKey> {
    let metric = r.string()?.to_string();
    let n = r.count(2, "label")?;
    let mut labels = Labels::new();
    let mut last: Option<&str> = None;
    for _ in 0..n {
        let k = r.string()?;
        if last.is_some_and(|l| l >= k) {
            return Err(r.corrupt(format!("label {k:?} out of order or repeated")));
        }
        last = Some(k);
        labels.insert(k.to_string(), r.string()?.to_string());
    }
    Ok(SeriesKey { metric, labels })
}

/// Bytes of the header every checksummed file starts with: magic and version.
pub(crate) const HEADER_LEN: usize = 12;

/// Appends the 12-byte header: an 8-byte magic and a `u32` LE version.
pub(crate) fn write_header(out: &mut Vec<u8>, magic: &[u8; 8], version: u32) {
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
}

/// Opens a checksummed file: checks the magic, the version (naming an
/// unsupported one) and the CRC32C trailer, in that order, and returns a
/// reader over the body between header and trailer, whose error offsets
/// are those of the file.
pub(crate) fn open_checked<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    what: &'a str,
) -> Result<ByteReader<'a>> {
    Ok(open_checked_versions(bytes, magic, &[version], what)?.0)
}

/// [`open_checked`] for a format with several readable versions; returns
/// the version found with the reader.
pub(crate) fn open_checked_versions<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    versions: &[u32],
    what: &'a str,
) -> Result<(ByteReader<'a>, u32)> {
    let mut r = ByteReader::new(bytes, what);
    r.expect_magic(magic)?;
    let found = r.u32_le()?;
    if !versions.contains(&found) {
        let readable: Vec<String> = versions.iter().map(u32::to_string).collect();
        return Err(r.corrupt(format!(
            "unsupported version {found}, this build reads {}",
            readable.join(" and ")
        )));
    }
    let body = split_crc_trailer(bytes, what)?;
    match body.get(HEADER_LEN..) {
        Some(rest) => Ok((ByteReader::at_offset(rest, HEADER_LEN as u64, what), found)),
        None => Err(crate::Error::truncated(
            what,
            bytes.len() as u64,
            "no room for the body after the header",
        )),
    }
}

/// Checks the 4-byte CRC32C trailer of `bytes` and returns the body before it.
pub(crate) fn split_crc_trailer<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8]> {
    if bytes.len() < 4 {
        return Err(crate::Error::truncated(
            what,
            bytes.len() as u64,
            "shorter than its 4-byte checksum",
        ));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(crate::Error::corrupt(
            what,
            body.len() as u64,
            format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x} (file truncated or damaged)"),
        ));
    }
    Ok(body)
}

/// Appends the CRC32C of everything in `out` as a 4-byte little-endian trailer.
pub(crate) fn push_crc_trailer(out: &mut Vec<u8>) {
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
}
