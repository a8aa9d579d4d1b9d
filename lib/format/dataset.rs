//! The canonical dataset file written by phase 00 and read by every later phase.
//!
//! It is the simplest lossless form there is: every timestamp and value as
//! raw 8-byte little-endian words, series by series, with a checksum. It is
//! not meant to be small (16 bytes a sample plus metadata); it is meant to be
//! exact, fast to read and impossible to misread.
//!
//! # Layout (versions 1 and 2)
//!
//! ```text
//! | magic "SSIGDSET" (8B) | version u32 LE | source (string) |
//! | version 2 only: metadata count (varint) | metadata entry ... |
//! | series count (varint) | series 0 | series 1 | ... |
//! | CRC32C of all preceding bytes (u32 LE) |
//!
//! metadata entry (names in increasing order):
//! | metric (string) | kind u8: 0 unknown, 1 gauge, 2 counter, 3 none declared |
//! | unit (string) | help (string) |
//!
//! series:
//! | metric (string) | label count (varint) | name (string) | value (string) | ... |
//! | sample count n (varint) | n × timestamp i64 LE | n × value bits u64 LE |
//!
//! string = | byte length (varint) | UTF-8 bytes |
//! ```
//!
//! A dataset without metadata (generated data, a CSV) is written as
//! version 1, byte for byte as before metadata existed; one with declared
//! types, units or help texts (a Prometheus or OpenMetrics import) as
//! version 2.
//!
//! The reader checks the checksum before anything else, then bounds every
//! count by the bytes left, so a truncated or damaged file is an error that
//! says where, never a panic or a wrong dataset.

use std::collections::BTreeMap;
use std::path::Path;

use crate::bytes::write_string;
use crate::codec::varint::write_u64;
use crate::error::Result;
use crate::files::{read_input, write_atomic};
use crate::format::{open_checked_versions, push_crc_trailer, read_key, write_header, write_key};
use crate::model::{Dataset, MetricKind, MetricMeta, Series};

pub const MAGIC: &[u8; 8] = b"SSIGDSET";
/// The version written for a dataset without metadata.
pub const VERSION: u32 = 1;
/// The version written for a dataset with metadata.
pub const VERSION_METADATA: u32 = 2;
/// File name of the canonical dataset inside the output directory.
pub const FILE_NAME: &str = "dataset.ssd";

/// Serializes a dataset to bytes.
pub fn encode(dataset: &Dataset) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + dataset.sample_count() as usize * 16);
    let version = if dataset.metadata.is_empty() {
        VERSION
    } else {
        VERSION_METADATA
    };
    write_header(&mut out, MAGIC, version);
    write_string(&mut out, &dataset.source);
    if version == VERSION_METADATA {
        write_u64(&mut out, dataset.metadata.len() as u64);
        for (name, meta) in &dataset.metadata {
            write_string(&mut out, name);
            out.push(meta.kind.map_or(3, MetricKind::code));
            write_string(&mut out, &meta.unit);
            write_string(&mut out, &meta.help);
        }
    }
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
    let (mut r, version) = open_checked_versions(bytes, MAGIC, &[VERSION, VERSION_METADATA], WHAT)?;
    let source = r.string()?.to_string();
    let mut metadata = BTreeMap::new();
    if version == VERSION_METADATA {
        // An entry is at least 4 bytes: three empty strings and the kind.
        let n = r.count(4, "metadata entry")?;
        let mut last: Option<String> = None;
        for _ in 0..n {
            let name = r.string()?.to_string();
            if last.as_ref().is_some_and(|l| *l >= name) {
                return Err(r.corrupt(format!("metadata of {name:?} out of order or repeated")));
            }
            let code = r.u8()?;
            let kind =
                match code {
                    3 => None,
                    c => Some(MetricKind::from_code(c).ok_or_else(|| {
                        r.corrupt(format!("metadata of {name:?}: unknown kind {c}"))
                    })?),
                };
            let unit = r.string()?.to_string();
            let help = r.string()?.to_string();
            last = Some(name.clone());
            metadata.insert(name, MetricMeta { kind, unit, help });
        }
    }
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
    Ok(Dataset {
        source,
        series,
        metadata,
    })
}

/// Writes the dataset to `path` atomically; returns the file size.
pub fn write(dataset: &Dataset, path: &Path) -> Result<u64> {
    write_atomic(path, &encode(dataset))
}

/// Reads the canonical dataset from `path`, with a hint if it does not exist.
pub fn read(path: &Path) -> Result<Dataset> {
    let bytes = read_input(
        path,
        "run `cargo run --release --bin 00_generate` first to create the dataset",
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
    fn metadata_round_trips_as_version_2_and_its_absence_keeps_version_1() {
        let plain = encode(&sample());
        assert_eq!(plain[8..12], VERSION.to_le_bytes());
        let d = sample().with_metadata(BTreeMap::from([
            (
                "cpu".to_string(),
                MetricMeta {
                    kind: Some(MetricKind::Gauge),
                    unit: "percent".into(),
                    help: "CPU use.\nSecond line".into(),
                },
            ),
            (
                "up".to_string(),
                MetricMeta {
                    kind: None,
                    unit: String::new(),
                    help: "Up.".into(),
                },
            ),
        ]));
        let bytes = encode(&d);
        assert_eq!(bytes[8..12], VERSION_METADATA.to_le_bytes());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.metadata, d.metadata);
        assert!(d.bit_diff(&back).is_none());
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
