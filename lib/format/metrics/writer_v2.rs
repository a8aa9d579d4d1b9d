//! The version 2 writer, kept so that benches and tests can put the two
//! versions side by side on the same data (`cargo bench --bench metrics`)
//! and so that the version 2 reader keeps being tested on more than its
//! committed fixture. Phase 04 writes version 3.
//!
//! Version 2 in short (`docs/src/format.md` has it in full): every series' blocks
//! one after another (each: sample count, timestamp column, adaptive value
//! block, CRC32C), then one block list per series (per block: first and
//! last time, count, min, max, length), then a directory (symbol table,
//! per series: symbol ids, counts, lengths), then the footer.

use std::collections::HashMap;

use super::writer::{block_ranges, min_max, BlockOptions};
use super::{Footer, MAGIC};
use crate::bytes::write_string;
use crate::codec::adaptive;
use crate::codec::delta;
use crate::codec::varint::{write_i64, write_u64};
use crate::error::{Error, Result};
use crate::model::Dataset;

/// The version this module writes.
pub const VERSION_2: u32 = 2;

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

/// Encodes `dataset` as a version 2 `.metrics` file: blocks cut by
/// `options` (aligned windows, at most `max_samples`, split while over
/// `max_bytes`). Errors as [`super::encode`].
pub fn encode_v2(dataset: &Dataset, options: BlockOptions) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(dataset.sample_count() as usize * 3 + 4096);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION_2.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut lists: Vec<Vec<u8>> = Vec::with_capacity(dataset.series.len());
    let mut data_lens = Vec::with_capacity(dataset.series.len());
    let mut block_counts = Vec::with_capacity(dataset.series.len());
    let (mut ts_col, mut block) = (Vec::new(), Vec::new());
    let mut total_blocks = 0u64;
    for s in &dataset.series {
        let data_start = out.len();
        let mut list = Vec::new();
        let mut prev_last = 0i64;
        let mut blocks = 0u64;
        for (a, b) in block_ranges(&s.timestamps, options) {
            let mut start = a;
            while start < b {
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
        total_blocks += blocks;
        lists.push(list);
    }
    for list in &lists {
        out.extend_from_slice(list);
    }
    // Directory: symbols, then series.
    let mut ids: HashMap<&str, u64> = HashMap::new();
    let mut symbols: Vec<&str> = Vec::new();
    fn id<'a>(s: &'a str, ids: &mut HashMap<&'a str, u64>, symbols: &mut Vec<&'a str>) -> u64 {
        *ids.entry(s).or_insert_with(|| {
            symbols.push(s);
            symbols.len() as u64 - 1
        })
    }
    let mut table = Vec::new();
    for (i, s) in dataset.series.iter().enumerate() {
        write_u64(&mut table, id(&s.key.metric, &mut ids, &mut symbols));
        write_u64(&mut table, s.key.labels.len() as u64);
        for (k, v) in &s.key.labels {
            write_u64(&mut table, id(k, &mut ids, &mut symbols));
            write_u64(&mut table, id(v, &mut ids, &mut symbols));
        }
        write_u64(&mut table, s.len() as u64);
        write_u64(&mut table, block_counts[i]);
        write_u64(&mut table, data_lens[i]);
        write_u64(&mut table, lists[i].len() as u64);
    }
    let directory_offset = out.len() as u64;
    write_u64(&mut out, symbols.len() as u64);
    for s in &symbols {
        write_string(&mut out, s);
    }
    write_u64(&mut out, dataset.series.len() as u64);
    out.extend_from_slice(&table);
    let too_many =
        |what: &str| Error::InvalidArgument(format!("too many {what} for one .metrics file"));
    Footer {
        directory_offset,
        directory_len: out.len() as u64 - directory_offset,
        directory_crc: crc32c::crc32c(&out[directory_offset as usize..]),
        series_count: u32::try_from(dataset.series.len()).map_err(|_| too_many("series"))?,
        block_count: u32::try_from(total_blocks).map_err(|_| too_many("blocks"))?,
        version: VERSION_2,
    }
    .encode(&mut out);
    Ok(out)
}

/// The options version 2 files were written with by phase 04: aligned 2 h
/// windows, at most 1024 samples and about 512 bytes a block.
pub fn v2_options() -> BlockOptions {
    BlockOptions {
        window_ns: 2 * 3600 * crate::time::NANOS_PER_SECOND,
        max_samples: 1024,
        max_bytes: 512,
    }
}
