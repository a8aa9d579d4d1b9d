//! Phase 03: compressed columnar.
//!
//! The columns of phase 02, each coded by a specialist: timestamps as
//! tick-scaled delta-of-deltas (Gorilla buckets or varints with zero runs,
//! whichever is smaller for that series, see [`crate::codec::delta`]), values
//! with Gorilla XOR (see [`crate::codec::xor`]), lengths as varints.
//!
//! # Layout (version 1)
//!
//! ```text
//! | magic "SSIGCOMP" (8B) | version u32 LE = 1 | source (string) | series count (varint) |
//! | series 0 | series 1 | ... | CRC32C of all preceding bytes (u32 LE) |
//!
//! series:
//! | metric (string) | label count (varint) | name (string) | value (string) | ... |
//! | sample count n (varint) |
//! | timestamp column length (varint) | timestamp column  (codec::delta layout) |
//! | value column length (varint)     | value column      (codec::xor bit stream) |
//! ```
//!
//! The decoder checks the CRC first, then decodes each value column (whose
//! length bounds `n`) before its timestamp column.

use std::path::Path;

use crate::bytes::write_string;
use crate::codec::delta::{self, TimestampScheme};
use crate::codec::varint::write_u64;
use crate::codec::xor;
use crate::error::Result;
use crate::files::{read_input, write_atomic};
use crate::format::{open_checked, push_crc_trailer, read_key, write_header, write_key};
use crate::model::{Dataset, Series};

pub const MAGIC: &[u8; 8] = b"SSIGCOMP";
pub const VERSION: u32 = 1;
pub const FILE_NAME: &str = "03_compressed.ssc";

/// Where the bytes of a compressed file went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Header, series keys, counts, lengths and the checksum.
    pub metadata: u64,
    pub timestamps: u64,
    pub values: u64,
    /// How many series chose each timestamp scheme, by `TimestampScheme as usize`.
    pub scheme_counts: [u64; 2],
}

/// Compresses a dataset; returns the bytes and where they went.
pub fn encode(dataset: &Dataset) -> (Vec<u8>, Breakdown) {
    let mut out = Vec::with_capacity(dataset.sample_count() as usize * 2 + 1024);
    let mut b = Breakdown::default();
    write_header(&mut out, MAGIC, VERSION);
    write_string(&mut out, &dataset.source);
    write_u64(&mut out, dataset.series.len() as u64);
    let mut ts_col = Vec::new();
    let mut val_col = Vec::new();
    for s in &dataset.series {
        write_key(&mut out, &s.key);
        write_u64(&mut out, s.len() as u64);
        ts_col.clear();
        let scheme = delta::encode_smallest(&s.timestamps, &mut ts_col);
        b.scheme_counts[scheme as usize] += 1;
        write_u64(&mut out, ts_col.len() as u64);
        out.extend_from_slice(&ts_col);
        b.timestamps += ts_col.len() as u64;
        val_col.clear();
        xor::encode(&s.values, &mut val_col);
        write_u64(&mut out, val_col.len() as u64);
        out.extend_from_slice(&val_col);
        b.values += val_col.len() as u64;
    }
    push_crc_trailer(&mut out);
    b.metadata = out.len() as u64 - b.timestamps - b.values;
    (out, b)
}

/// Decompresses bytes written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Dataset> {
    const WHAT: &str = "compressed file";
    let mut r = open_checked(bytes, MAGIC, VERSION, WHAT)?;
    let source = r.string()?.to_string();
    let n_series = r.count(4, "series")?;
    let mut series = Vec::with_capacity(n_series);
    for i in 0..n_series {
        let key = read_key(&mut r)?;
        let n = r.varint()?;
        let ts_len = r.count(1, "timestamp column byte")?;
        let ts_at = r.position() as u64 + 12;
        let ts_bytes = r.bytes(ts_len)?;
        let val_len = r.count(1, "value column byte")?;
        let val_at = r.position() as u64 + 12;
        let val_bytes = r.bytes(val_len)?;
        let context = |col: &str, at: u64| format!("series {i} ({key}) {col} at byte {at}");
        let n = usize::try_from(n)
            .map_err(|_| r.corrupt(format!("series {i}: sample count {n} too large")))?;
        let mut s = Series::new(key.clone());
        xor::decode(val_bytes, n, &mut s.values)
            .map_err(|e| e.within(context("values", val_at)))?;
        delta::decode(ts_bytes, n, &mut s.timestamps)
            .map_err(|e| e.within(context("timestamps", ts_at)))?;
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
        metadata: Default::default(),
    })
}

/// Writes the compressed file atomically; returns its size and breakdown.
pub fn write(dataset: &Dataset, path: &Path) -> Result<(u64, Breakdown)> {
    let (bytes, breakdown) = encode(dataset);
    Ok((write_atomic(path, &bytes)?, breakdown))
}

/// Reads a compressed file.
pub fn read(path: &Path) -> Result<Dataset> {
    let bytes = read_input(path, "run `cargo run --release --bin 03_compressed` first")?;
    decode(&bytes).map_err(|e| e.within(path.display()))
}

/// Looks up a scheme by its tag.
pub fn scheme_name(index: usize) -> &'static str {
    TimestampScheme::ALL
        .get(index)
        .map(|s| s.name())
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, SeriesKey};

    fn sample() -> Dataset {
        let mut a = Series::new(SeriesKey::new(
            "cpu",
            Labels::from([("host".into(), "a".into())]),
        ));
        for i in 0..50 {
            a.push(
                1_000_000_000 * 15 * i + (i % 3) * 1_000_000,
                20.0 + (i % 7) as f64 * 0.25,
            );
        }
        let mut b = Series::new(SeriesKey::new("up", Labels::new()));
        b.push(7, f64::NAN);
        let c = Series::new(SeriesKey::new("zero", Labels::new()));
        Dataset::new("t", vec![a, b, c])
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let d = sample();
        let (bytes, b) = encode(&d);
        assert_eq!(b.metadata + b.timestamps + b.values, bytes.len() as u64);
        assert_eq!(b.scheme_counts.iter().sum::<u64>(), 3);
        assert_eq!(d.bit_diff(&decode(&bytes).unwrap()), None);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let (bytes, _) = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&b).is_err(), "flip {bit}");
        }
    }
}
