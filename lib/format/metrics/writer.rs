//! Writing a `.metrics` file (layout in the module above).

use std::collections::HashMap;
use std::path::Path;

use super::{Footer, HEADER_LEN, MAGIC, VERSION};
use crate::bytes::write_string;
use crate::codec::adaptive;
use crate::codec::delta;
use crate::codec::varint::{write_i64, write_u64};
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::Dataset;

/// How samples are cut into blocks.
///
/// A block never spans two aligned time windows, never holds more than
/// `max_samples`, and is split further while its encoded size exceeds
/// `max_bytes`: series that compress well get long blocks (little index
/// overhead), series that do not get short ones (little to read per query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOptions {
    /// Length of the aligned windows, nanoseconds.
    pub window_ns: i64,
    pub max_samples: usize,
    /// Target upper bound of a block's encoded size (a one-sample block may exceed it).
    pub max_bytes: usize,
}

impl Default for BlockOptions {
    fn default() -> Self {
        BlockOptions {
            window_ns: 2 * 3600 * crate::time::NANOS_PER_SECOND,
            max_samples: 1024,
            max_bytes: 512,
        }
    }
}

/// Appends one block (header, columns, CRC) to `out`.
fn encode_block(ts: &[i64], vs: &[f64], ts_col: &mut Vec<u8>, out: &mut Vec<u8>) {
    let start = out.len();
    ts_col.clear();
    delta::encode_smallest(ts, ts_col);
    write_u64(out, ts.len() as u64);
    write_u64(out, ts_col.len() as u64);
    out.extend_from_slice(ts_col);
    adaptive::encode(vs, out);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Where the bytes of an encoded file went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub blocks: u64,
    /// Header and footer.
    pub frame: u64,
    /// Block payloads, their headers and CRCs.
    pub data: u64,
    pub block_lists: u64,
    pub directory: u64,
    pub symbols: u64,
}

/// Interns strings into the symbol table.
#[derive(Default)]
struct Symbols {
    ids: HashMap<String, u64>,
    list: Vec<String>,
}

impl Symbols {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.list.len() as u64;
        self.ids.insert(s.to_string(), id);
        self.list.push(s.to_string());
        id
    }
}

/// The `[start, end)` sample ranges of the blocks of one series.
pub(crate) fn block_ranges(ts: &[i64], options: BlockOptions) -> Vec<(usize, usize)> {
    let window = options.window_ns.max(1);
    let max = options.max_samples.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < ts.len() {
        let w = ts[start].div_euclid(window);
        let mut end = start + 1;
        while end < ts.len() && end - start < max && ts[end].div_euclid(window) == w {
            end += 1;
        }
        out.push((start, end));
        start = end;
    }
    out
}

/// Min and max ignoring NaN (NaN, NaN when every value is NaN).
pub(crate) fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .filter(|v| !v.is_nan())
        .fold((f64::NAN, f64::NAN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Encodes `dataset` as a `.metrics` file.
pub fn encode(dataset: &Dataset, options: BlockOptions) -> Result<(Vec<u8>, EncodeStats)> {
    let mut out = Vec::with_capacity(dataset.sample_count() as usize * 3 + 4096);
    let mut stats = EncodeStats::default();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());

    // Data: every series' blocks, back to back; remember each series' block list.
    let mut lists: Vec<Vec<u8>> = Vec::with_capacity(dataset.series.len());
    let mut data_lens = Vec::with_capacity(dataset.series.len());
    let mut block_counts = Vec::with_capacity(dataset.series.len());
    let mut ts_col = Vec::new();
    let mut block = Vec::new();
    for s in &dataset.series {
        let data_start = out.len();
        let mut list = Vec::new();
        let mut prev_last = 0i64;
        let mut blocks = 0u64;
        for (a, b) in block_ranges(&s.timestamps, options) {
            let mut start = a;
            while start < b {
                // Shrink the block until it fits max_bytes (or holds one sample).
                let mut end = b;
                loop {
                    block.clear();
                    encode_block(
                        &s.timestamps[start..end],
                        &s.values[start..end],
                        &mut ts_col,
                        &mut block,
                    );
                    let n = end - start;
                    if block.len() <= options.max_bytes || n == 1 {
                        break;
                    }
                    let fit = (n as u64 * options.max_bytes as u64 / block.len() as u64)
                        .clamp(1, n as u64 - 1);
                    end = start + fit as usize;
                }
                out.extend_from_slice(&block);
                let (ts, vs) = (&s.timestamps[start..end], &s.values[start..end]);
                let (first, last) = (ts[0], ts[ts.len() - 1]);
                let (lo, hi) = min_max(vs);
                write_i64(&mut list, first.wrapping_sub(prev_last));
                write_u64(&mut list, last.wrapping_sub(first) as u64);
                write_u64(&mut list, ts.len() as u64);
                list.extend_from_slice(&lo.to_bits().to_le_bytes());
                list.extend_from_slice(&hi.to_bits().to_le_bytes());
                write_u64(&mut list, block.len() as u64);
                prev_last = last;
                blocks += 1;
                start = end;
            }
        }
        let crc = crc32c::crc32c(&list);
        list.extend_from_slice(&crc.to_le_bytes());
        block_counts.push(blocks);
        data_lens.push((out.len() - data_start) as u64);
        stats.blocks += blocks;
        lists.push(list);
    }
    stats.data = out.len() as u64 - HEADER_LEN;

    // Block lists.
    for list in &lists {
        out.extend_from_slice(list);
        stats.block_lists += list.len() as u64;
    }

    // Directory: symbols, then series.
    let mut symbols = Symbols::default();
    let mut series_table = Vec::new();
    for (i, s) in dataset.series.iter().enumerate() {
        write_u64(&mut series_table, symbols.id(&s.key.metric));
        write_u64(&mut series_table, s.key.labels.len() as u64);
        for (k, v) in &s.key.labels {
            write_u64(&mut series_table, symbols.id(k));
            write_u64(&mut series_table, symbols.id(v));
        }
        write_u64(&mut series_table, s.len() as u64);
        write_u64(&mut series_table, block_counts[i]);
        write_u64(&mut series_table, data_lens[i]);
        write_u64(&mut series_table, lists[i].len() as u64);
    }
    let directory_offset = out.len() as u64;
    write_u64(&mut out, symbols.list.len() as u64);
    for s in &symbols.list {
        write_string(&mut out, s);
    }
    stats.symbols = out.len() as u64 - directory_offset;
    write_u64(&mut out, dataset.series.len() as u64);
    out.extend_from_slice(&series_table);
    let directory_len = out.len() as u64 - directory_offset;
    stats.directory = directory_len;

    let too_many =
        |what: &str| Error::InvalidArgument(format!("too many {what} for one .metrics file"));
    Footer {
        directory_offset,
        directory_len,
        directory_crc: crc32c::crc32c(&out[directory_offset as usize..]),
        series_count: u32::try_from(dataset.series.len()).map_err(|_| too_many("series"))?,
        block_count: u32::try_from(stats.blocks).map_err(|_| too_many("blocks"))?,
        version: VERSION,
    }
    .encode(&mut out);
    stats.frame = HEADER_LEN + super::FOOTER_LEN;
    Ok((out, stats))
}

/// Writes `dataset` to `path` atomically; returns the size and the breakdown.
pub fn write(dataset: &Dataset, path: &Path, options: BlockOptions) -> Result<(u64, EncodeStats)> {
    let (bytes, stats) = encode(dataset, options)?;
    Ok((write_atomic(path, &bytes)?, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_windows_and_caps() {
        let ts: Vec<i64> = (0..10).map(|i| i * 10).collect();
        let opts = |window_ns, max_samples| BlockOptions {
            window_ns,
            max_samples,
            max_bytes: 1 << 20,
        };
        let by_window = block_ranges(&ts, opts(35, 100));
        assert_eq!(by_window, vec![(0, 4), (4, 7), (7, 10)]);
        let by_count = block_ranges(&ts, opts(1000, 4));
        assert_eq!(by_count, vec![(0, 4), (4, 8), (8, 10)]);
        assert!(block_ranges(&[], BlockOptions::default()).is_empty());
    }

    #[test]
    fn min_max_ignores_nan() {
        assert_eq!(min_max(&[3.0, f64::NAN, -1.0]), (-1.0, 3.0));
        let (lo, hi) = min_max(&[f64::NAN]);
        assert!(lo.is_nan() && hi.is_nan());
    }
}
