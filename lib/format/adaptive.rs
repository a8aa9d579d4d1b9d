//! Phase 03b: the adaptive columnar file.
//!
//! Three ideas beyond phase 03:
//!
//! 1. **Shared columns.** One scrape writes every series of a target at the
//!    same instant, so their timestamp columns are identical. Each distinct
//!    timestamp column is stored once; series refer to it by number. Value
//!    columns repeat too (host metrics are full of all-zero series): a series
//!    whose values equal an earlier series' refers to it instead.
//! 3. **Adaptive values.** Each series' values are cut into blocks of at most
//!    [`BLOCK`] samples and each block is coded by the smallest exact scheme
//!    of [`crate::codec::adaptive`] (constant, decimal, Gorilla XOR).
//!
//! # Layout (version 1)
//!
//! ```text
//! | magic "SSIGADPT" (8B) | version u32 LE = 1 | source (string) |
//! | column count (varint) |
//! | per column, sorted by first timestamp: n (varint) | length (varint) |
//! |   timestamp column relative to the previous one (codec::delta::encode_in_context) |
//! | series count (varint) |
//! | per series: key | column id (varint) | value reference (varint) |
//! |   reference 0: per block of <= 512 values: length (varint) | adaptive value block |
//! |   reference j + 1: the values are those of series j (j before this one) |
//! | CRC32C of all preceding bytes (u32 LE) |
//! ```
//!
//! A series has as many samples as its column; its block count follows
//! from that and [`BLOCK`].
//!
//! # Phase 03c: the same file with another value codec
//!
//! [`ENTROPY`] writes the same layout with magic `SSIGENTR` (version 1),
//! the value blocks of [`crate::codec::adaptive_entropy`], and blocks of
//! up to [`ENTROPY_BLOCK`] values cut evenly: a series of `n` values has
//! `b = ceil(n / 8192)` blocks, the first `n mod b` of them one value
//! longer than the rest (8,760 hourly values: two blocks of 4,380, not
//! 8,192 and 568). Large blocks let an entropy table pay for itself.

use std::collections::HashMap;
use std::path::Path;

use crate::bytes::write_string;
use crate::codec::adaptive::{self, ValueScheme};
use crate::codec::adaptive_entropy::{self, Choice};
use crate::codec::delta;
use crate::codec::varint::write_u64;
use crate::error::Result;
use crate::files::{read_input, write_atomic};
use crate::format::{open_checked, push_crc_trailer, read_key, write_header, write_key};
use crate::model::{Dataset, Series};

/// The most samples reserved ahead of decoding them (1 Mi: 8 MiB).
const PREALLOCATE: usize = 1 << 20;

pub const MAGIC: &[u8; 8] = b"SSIGADPT";
pub const VERSION: u32 = 1;
pub const FILE_NAME: &str = "03b_adaptive.ssa";
/// Values per block.
pub const BLOCK: usize = 512;
/// Phase 03c: the most values per block.
pub const ENTROPY_BLOCK: usize = 8192;

/// A value codec and the file it writes: phase 03b's or phase 03c's.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    pub magic: &'static [u8; 8],
    pub version: u32,
    pub file_name: &'static str,
    /// The most values per block.
    pub block: usize,
    /// Cut a series into blocks of equal length (03c) or of `block` and a rest (03b).
    pub even: bool,
    /// Statistics rows ([`Flavor::label_name`] names them).
    pub labels: usize,
    /// Encodes one block; returns its statistics row.
    encode: fn(&[f64], &mut Vec<u8>, &mut adaptive_entropy::Scratch) -> usize,
    decode: fn(&[u8], usize, &mut Vec<f64>) -> Result<()>,
    name: fn(usize) -> &'static str,
}

impl Flavor {
    /// Name of a statistics row.
    pub fn label_name(&self, label: usize) -> &'static str {
        (self.name)(label)
    }

    /// The lengths of the blocks of a series of `n` values.
    pub fn block_lengths(&self, n: usize) -> impl Iterator<Item = usize> {
        let blocks = n.div_ceil(self.block);
        let (even, block) = (self.even, self.block);
        (0..blocks).map(move |i| {
            if even {
                n / blocks + (i < n % blocks) as usize
            } else {
                block.min(n - i * block)
            }
        })
    }
}

/// Phase 03b: constant, decimal or Gorilla XOR per block of 512.
pub const ADAPTIVE: Flavor = Flavor {
    magic: MAGIC,
    version: VERSION,
    file_name: FILE_NAME,
    block: BLOCK,
    even: false,
    labels: 3,
    encode: |v, out, _| adaptive::encode(v, out) as usize,
    decode: |p, n, out| adaptive::decode(p, n, out).map(|_| ()),
    name: value_scheme_name,
};

/// Phase 03c: entropy-coded decimals in delta orders, multiples,
/// dictionaries, binned and shifted bits besides 03b's schemes, per block
/// of up to 8192.
pub const ENTROPY: Flavor = Flavor {
    magic: b"SSIGENTR",
    version: 1,
    file_name: "03c_entropy.sse",
    block: ENTROPY_BLOCK,
    even: true,
    labels: Choice::LABELS,
    encode: |v, out, scratch| adaptive_entropy::encode_with(v, out, scratch).label(),
    decode: |p, n, out| adaptive_entropy::decode(p, n, out).map(|_| ()),
    name: |l| Choice::of_label(l).map(Choice::name).unwrap_or("unknown"),
};

/// Where the bytes went and what was chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdaptiveStats {
    pub columns: u64,
    pub timestamps: u64,
    pub values: u64,
    pub metadata: u64,
    /// Blocks, bytes and values per statistics row of the flavor (03b: its
    /// `ValueScheme` tags; 03c: `Choice::label`).
    pub scheme_blocks: Vec<u64>,
    pub scheme_bytes: Vec<u64>,
    pub scheme_samples: Vec<u64>,
    /// Timestamp columns per timestamp scheme.
    pub ts_schemes: [u64; 2],
    /// Series whose values repeat an earlier series' and are stored as a reference.
    pub shared_values: u64,
}

/// Hash of a value column by the bits of its values (so NaN equals itself
/// and -0.0 differs from 0.0).
fn bits_hash(values: &[f64]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    values.len().hash(&mut h);
    for v in values {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Encodes `dataset` adaptively (phase 03b).
pub fn encode(dataset: &Dataset) -> (Vec<u8>, AdaptiveStats) {
    encode_as(&ADAPTIVE, dataset)
}

/// Encodes `dataset` with the value codec of `flavor`.
pub fn encode_as(flavor: &Flavor, dataset: &Dataset) -> (Vec<u8>, AdaptiveStats) {
    let mut out = Vec::with_capacity(dataset.sample_count() as usize + 1024);
    let mut st = AdaptiveStats {
        scheme_blocks: vec![0; flavor.labels],
        scheme_bytes: vec![0; flavor.labels],
        scheme_samples: vec![0; flavor.labels],
        ..AdaptiveStats::default()
    };
    let mut scratch = adaptive_entropy::Scratch::default();
    write_header(&mut out, flavor.magic, flavor.version);
    write_string(&mut out, &dataset.source);

    // Distinct timestamp columns, stored in order of their first timestamp so
    // that each is stored relative to the one before it.
    let mut ids: HashMap<&[i64], usize> = HashMap::new();
    let mut columns: Vec<&[i64]> = Vec::new();
    for s in &dataset.series {
        ids.entry(&s.timestamps).or_insert_with(|| {
            columns.push(&s.timestamps);
            columns.len() - 1
        });
    }
    columns.sort_by_key(|ts| (ts.first().copied(), ts.len()));
    let position: HashMap<&[i64], u64> = columns
        .iter()
        .enumerate()
        .map(|(i, ts)| (*ts, i as u64))
        .collect();
    let column_of: Vec<u64> = dataset
        .series
        .iter()
        .map(|s| position[s.timestamps.as_slice()])
        .collect();
    write_u64(&mut out, columns.len() as u64);
    let mut ctx = delta::ColumnContext::default();
    let mut col = Vec::new();
    for ts in &columns {
        col.clear();
        let scheme = delta::encode_smallest_in_context(ts, &mut ctx, &mut col);
        st.ts_schemes[scheme as usize] += 1;
        write_u64(&mut out, ts.len() as u64);
        write_u64(&mut out, col.len() as u64);
        out.extend_from_slice(&col);
        st.timestamps += col.len() as u64;
    }
    st.columns = columns.len() as u64;

    write_u64(&mut out, dataset.series.len() as u64);
    let mut block = Vec::new();
    // Earlier series by the hash of their values; a hit is confirmed bit by bit.
    let mut seen_values: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (s, &column)) in dataset.series.iter().zip(&column_of).enumerate() {
        write_key(&mut out, &s.key);
        write_u64(&mut out, column);
        let candidates = seen_values.entry(bits_hash(&s.values)).or_default();
        if let Some(&j) = candidates
            .iter()
            .find(|&&j| same_bits(&dataset.series[j].values, &s.values))
        {
            write_u64(&mut out, j as u64 + 1);
            st.shared_values += 1;
            continue;
        }
        candidates.push(i);
        write_u64(&mut out, 0);
        let mut at = 0;
        for len in flavor.block_lengths(s.values.len()) {
            let chunk = &s.values[at..at + len];
            at += len;
            block.clear();
            let k = (flavor.encode)(chunk, &mut block, &mut scratch);
            write_u64(&mut out, block.len() as u64);
            out.extend_from_slice(&block);
            st.scheme_blocks[k] += 1;
            st.scheme_bytes[k] += block.len() as u64;
            st.scheme_samples[k] += chunk.len() as u64;
            st.values += block.len() as u64;
        }
    }
    push_crc_trailer(&mut out);
    st.metadata = out.len() as u64 - st.timestamps - st.values;
    (out, st)
}

/// Decodes bytes written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Dataset> {
    decode_as(&ADAPTIVE, bytes)
}

/// Decodes bytes written by [`encode_as`] with the same `flavor`.
pub fn decode_as(flavor: &Flavor, bytes: &[u8]) -> Result<Dataset> {
    let what: &'static str = if flavor.magic == MAGIC {
        "adaptive file"
    } else {
        "entropy-coded file"
    };
    let mut r = open_checked(bytes, flavor.magic, flavor.version, what)?;
    let source = r.string()?.to_string();
    let n_columns = r.count(2, "timestamp column")?;
    // Column descriptors first; a column is decoded when a series first uses
    // it, after checking that the file can hold that series' value blocks,
    // so a corrupt count cannot make the decoder allocate without bound.
    // Each column is stored relative to the one before it (its context);
    // reading only the column headers gives every context.
    let mut descriptors = Vec::with_capacity(n_columns);
    let mut ctx = delta::ColumnContext::default();
    for c in 0..n_columns {
        let n = r.varint()?;
        let len = r.count(1, "timestamp column byte")?;
        let at = r.position() as u64 + 12;
        let payload = r.bytes(len)?;
        let n = usize::try_from(n).map_err(|_| r.corrupt(format!("column {c}: {n} timestamps")))?;
        descriptors.push((n, payload, at, ctx));
        ctx = delta::read_context(payload, n, ctx)
            .map_err(|e| e.within(format!("{what}: timestamp column {c} at byte {at}")))?
            .0;
    }
    let mut columns: Vec<Option<Vec<i64>>> = vec![None; n_columns];
    let n_series = r.count(2, "series")?;
    let mut series = Vec::with_capacity(n_series);
    let mut last_key = None;
    for i in 0..n_series {
        let key = read_key(&mut r)?;
        if last_key.as_ref().is_some_and(|k| k >= &key) {
            return Err(r.corrupt(format!("series {key} out of order or repeated")));
        }
        last_key = Some(key.clone());
        let column = r.varint()?;
        let &(n, payload, at, context) = descriptors.get(column as usize).ok_or_else(|| {
            r.corrupt(format!(
                "series {i} ({key}): column {column} of {n_columns}"
            ))
        })?;
        let value_ref = r.varint()?;
        let shared: Option<&Series> = match value_ref {
            0 => None,
            j => {
                let j = (j - 1) as usize;
                let earlier: &Series = series.get(j).ok_or_else(|| {
                    r.corrupt(format!(
                        "series {i} ({key}): values of series {j}, which does not come before it"
                    ))
                })?;
                if earlier.values.len() != n {
                    return Err(r.corrupt(format!(
                        "series {i} ({key}): {n} timestamps but the {} values of series {j}",
                        earlier.values.len()
                    )));
                }
                Some(earlier)
            }
        };
        // Each block takes at least 2 bytes (its length and its tag).
        if shared.is_none() && n.div_ceil(flavor.block).saturating_mul(2) > r.remaining() {
            return Err(r.corrupt(format!(
                "series {i} ({key}): {n} samples need {} value blocks, only {} bytes left",
                n.div_ceil(flavor.block),
                r.remaining()
            )));
        }
        let shared_values = shared.map(|s| s.values.clone());
        if columns[column as usize].is_none() {
            // Reserved up to a bound, then grown as samples decode: a
            // claimed count is not a reason to allocate (regular timestamps
            // code millions of samples in a few bytes, so the count cannot
            // be bounded by the bytes left).
            let mut ts = Vec::with_capacity(n.min(PREALLOCATE));
            delta::decode_in_context(payload, n, context, &mut ts)
                .map_err(|e| e.within(format!("{what}: timestamp column {column} at byte {at}")))?;
            columns[column as usize] = Some(ts);
        }
        let ts = columns[column as usize].as_deref().unwrap_or_default();
        let mut s = Series::new(key);
        s.timestamps = ts.to_vec();
        if let Some(values) = shared_values {
            s.values = values;
            series.push(s);
            continue;
        }
        s.values.reserve(n.min(PREALLOCATE));
        for (b, take) in flavor.block_lengths(n).enumerate() {
            let len = r.count(1, "value block byte")?;
            let at = r.position() as u64 + 12;
            let payload = r.bytes(len)?;
            (flavor.decode)(payload, take, &mut s.values).map_err(|e| {
                e.within(format!(
                    "{what}: series {i} ({}) block {b} at byte {at}",
                    s.key
                ))
            })?;
        }
        series.push(s);
    }
    if let Some(c) = columns.iter().position(Option::is_none) {
        return Err(r.corrupt(format!("timestamp column {c} is used by no series")));
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

/// Writes the file atomically; returns its size and statistics.
pub fn write(dataset: &Dataset, path: &Path) -> Result<(u64, AdaptiveStats)> {
    write_as(&ADAPTIVE, dataset, path)
}

/// Writes the file of `flavor` atomically; returns its size and statistics.
pub fn write_as(flavor: &Flavor, dataset: &Dataset, path: &Path) -> Result<(u64, AdaptiveStats)> {
    let (bytes, st) = encode_as(flavor, dataset);
    Ok((write_atomic(path, &bytes)?, st))
}

/// Reads an adaptive file.
pub fn read(path: &Path) -> Result<Dataset> {
    read_as(&ADAPTIVE, path)
}

/// Reads a file of `flavor`.
pub fn read_as(flavor: &Flavor, path: &Path) -> Result<Dataset> {
    let bytes = read_input(path, "run `cargo run --release --bin 03_compressed` first")?;
    decode_as(flavor, &bytes).map_err(|e| e.within(path.display()))
}

/// Name of a value scheme by tag.
pub fn value_scheme_name(tag: usize) -> &'static str {
    ValueScheme::ALL
        .get(tag)
        .map(|s| s.name())
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, SeriesKey};

    fn sample() -> Dataset {
        let key = |m: &str, h: &str| SeriesKey::new(m, Labels::from([("host".into(), h.into())]));
        let ts: Vec<i64> = (0..700)
            .map(|i| 1_700_000_000_000_000_000 + i * 15_000_000_000 + (i % 3) * 1_000_000)
            .collect();
        let mut a = Series::new(key("cpu", "a"));
        a.timestamps = ts.clone();
        a.values = (0..700).map(|i| ((i * 37 % 1000) as f64) / 100.0).collect();
        let mut b = Series::new(key("up", "a"));
        b.timestamps = ts.clone();
        // Constant, with no short decimal form: stored as a constant.
        b.values = vec![0.1f64.sqrt(); 700];
        let mut c = Series::new(key("odd", "b"));
        c.timestamps = ts[..3].to_vec();
        c.values = vec![f64::NAN, -0.0, 0.1f64.sqrt()];
        let d = Series::new(key("empty", "c"));
        Dataset::new("t", vec![a, b, c, d])
    }

    #[test]
    fn repeated_value_columns_are_stored_once() {
        let mut d = sample();
        let mut twin = d.series[0].clone();
        twin.key.metric = "cpu_twin".into();
        d = Dataset::new("t", d.series.into_iter().chain([twin]).collect());
        let (bytes, st) = encode(&d);
        assert_eq!(st.shared_values, 1);
        assert_eq!(d.bit_diff(&decode(&bytes).unwrap()), None);
        // -0.0 and 0.0 differ by bits: no sharing.
        let key = |m: &str| SeriesKey::new(m, Labels::new());
        let mut a = Series::new(key("a"));
        a.push(1, 0.0);
        let mut b = Series::new(key("b"));
        b.push(1, -0.0);
        let d = Dataset::new("t", vec![a, b]);
        let (bytes, st) = encode(&d);
        assert_eq!(st.shared_values, 0);
        assert_eq!(d.bit_diff(&decode(&bytes).unwrap()), None);
    }

    #[test]
    fn round_trip_shares_columns_and_picks_schemes() {
        let d = sample();
        let (bytes, st) = encode(&d);
        assert_eq!(st.columns, 3, "cpu and up share one column");
        assert_eq!(st.shared_values, 0);
        assert!(st.scheme_blocks[ValueScheme::Decimal as usize] >= 2);
        assert!(st.scheme_blocks[ValueScheme::Constant as usize] >= 2);
        assert_eq!(st.metadata + st.timestamps + st.values, bytes.len() as u64);
        assert_eq!(d.bit_diff(&decode(&bytes).unwrap()), None);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let mut d = sample();
        for s in &mut d.series {
            s.timestamps.truncate(20);
            s.values.truncate(20);
        }
        let (bytes, _) = encode(&d);
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
