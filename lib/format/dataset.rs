//! The canonical dataset file written by phase 00 and read by every later phase.
//!
//! It is the simplest lossless form there is: every timestamp and value as
//! raw 8-byte little-endian words, series by series, with a checksum. It is
//! not meant to be small (16 bytes a sample plus metadata); it is meant to be
//! exact, fast to read and impossible to misread.
//!
//! # Layout (version 1)
//!
//! ```text
//! | magic "SSIGDSET" (8B) | version u32 LE = 1 | source (string) | series count (varint) |
//! | series 0 | series 1 | ... | CRC32C of all preceding bytes (u32 LE) |
//!
//! series:
//! | metric (string) | label count (varint) | name (string) | value (string) | ... |
//! | sample count n (varint) | n × timestamp i64 LE | n × value bits u64 LE |
//!
//! string = | byte length (varint) | UTF-8 bytes |
//! ```
//!
//! The reader checks the checksum before anything else, then bounds every
//! count by the bytes left, so a truncated or damaged file is an error that
//! says where, never a panic or a wrong dataset.

use std::path::Path;

use crate::bytes::write_string;
use crate::codec::varint::write_u64;
use crate::error::Result;
use crate::files::{read_input, write_atomic};
use crate::format::{open_checked, push_crc_trailer, read_key, write_header, write_key};
use crate::model::{Dataset, Series};

pub const MAGIC: &[u8; 8] = b"SSIGDSET";
pub const VERSION: u32 = 1;
/// File name of the canonical dataset inside the output directory.
pub const FILE_NAME: &str = "dataset.ssd";

/// Serializes a dataset to bytes.
pub fn encode(dataset: &Dataset) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + dataset.sample_count() as usize * 16);
    write_header(&mut out, MAGIC, VERSION);
    write_string(&mut out, &dataset.source);
    write_u64(&mut out, dataset.series.len() as u64);
    for s in &dataset.series {
        write_key(&mut out, &s.key);
        write_u64(&mut out, s.len() as u64);
        for t in &s.timestamps {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in &s.values {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    push_crc_trailer(&mut out);
    out
}

/// Parses bytes written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Dataset> {
    const WHAT: &str = "canonical dataset";
    let mut r = open_checked(bytes, MAGIC, VERSION, WHAT)?;
    let source = r.string()?.to_string();
    let n_series = r.count(2, "series")?;
    let mut series = Vec::with_capacity(n_series);
    let mut last_key = None;
    for _ in 0..n_series {
        let key = read_key(&mut r)?;
        if last_key.as_ref().is_some_and(|k| k >= &key) {
            return Err(r.corrupt(format!("series {key} out of order or repeated")));
        }
        last_key = Some(key.clone());
        let n = r.count(16, "sample")?;
        let ts = r.bytes(n * 8)?;
        let vs = r.bytes(n * 8)?;
        let mut s = Series::new(key);
        s.timestamps = ts
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        s.values = vs
            .chunks_exact(8)
            .map(|c| {
                f64::from_bits(u64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]))
            })
            .collect();
        series.push(s);
    }
    if !r.is_empty() {
        return Err(r.corrupt(format!(
            "{} unexpected bytes after the last series",
            r.remaining()
        )));
    }
    Ok(Dataset { source, series })
}

/// Writes the dataset to `path` atomically; returns the file size.
pub fn write(dataset: &Dataset, path: &Path) -> Result<u64> {
    write_atomic(path, &encode(dataset))
}

/// Reads the canonical dataset from `path`, with a hint if it does not exist.
pub fn read(path: &Path) -> Result<Dataset> {
    let bytes = read_input(
        path,
        "run `cargo run --bin 00_generate` first to create the dataset",
    )?;
    decode(&bytes).map_err(|e| e.within(path.display()))
}

/// Fingerprint of a dataset file's bytes (its CRC trailer and length), used
/// to tell whether report entries were measured on the same data.
pub fn fingerprint(bytes: &[u8]) -> String {
    let crc = bytes
        .len()
        .checked_sub(4)
        .map(|i| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]))
        .unwrap_or(0);
    format!("{crc:08x}-{}", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, SeriesKey};

    fn sample() -> Dataset {
        let mut a = Series::new(SeriesKey::new(
            "cpu",
            Labels::from([("host".into(), "a".into()), ("region".into(), "eu".into())]),
        ));
        a.push(1, f64::from_bits(0x7FF0_0000_0000_0001));
        a.push(2, -0.0);
        let b = Series::new(SeriesKey::new("up", Labels::new()));
        Dataset::new("test", vec![a, b])
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let d = sample();
        let back = decode(&encode(&d)).unwrap();
        assert_eq!(back.source, "test");
        assert!(d.bit_diff(&back).is_none());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix {cut} decoded");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&b).is_err(), "flip of bit {bit} decoded");
        }
    }

    #[test]
    fn unknown_version_is_named() {
        let mut bytes = encode(&sample());
        bytes[8] = 9;
        let err = decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("unsupported version 9"), "{err}");
    }
}
