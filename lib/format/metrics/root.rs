//! Version 3 root: the small table a reader reads at open, which says where
//! every other part is. Its CRC32C is in the footer.
//!
//! ```text
//! | window length, ns (varint) | most samples a piece may hold (varint) |
//! | window count (varint) |
//! | per window: number (zigzag varint, from the previous window's; the first from 0) |
//! |             base tick, ns (varint) |
//! |             shared column count (varint) |
//! |             per column: most samples − samples | bytes, CRC included |
//! |                         first in quanta, from the previous column's | last − first in quanta (varints) |
//! | index page count (varint) |
//! | per page: series | bytes of its blocks | bytes of the page (varints) |
//! | name page count (varint) |
//! | per page: series (varint) | bytes (varint) |
//! |           from the second page on: first key (varint length + serialized key) |
//! ```
//!
//! Window `w` holds the timestamps `t` with `t.div_euclid(window) == w`.
//! Timestamp columns (shared or inline) are coded relative to a context
//! ([`crate::codec::delta::encode_in_context`]); a column with no column
//! before it in its block starts from the context (window start, base
//! tick), the window's most common tick, so that its tick costs one byte.
//! Time bounds in the index are *quanta* after the window start, a quantum
//! being `ceil(window / 4096)` ns: the first rounded down, the last up
//! (`last − first` is stored), so they bound the samples without costing
//! a full timestamp.
//! Offsets are not stored: the blocks of index page 0, 1, ... follow the
//! header; then the shared columns, window by window; then the index
//! pages; then the name pages; then the root. The reader checks that these
//! add up to the file.

use crate::bytes::ByteReader;
use crate::codec::varint::{write_i64, write_u64};
use crate::error::Result;
use crate::format::read_key;
use crate::model::SeriesKey;

use super::index_page::{MAX_PAGE_SERIES, MAX_PIECE_SAMPLES};

/// First timestamp of window `number` of `window_ns`: `number × window_ns`,
/// clamped to `i64` (the window of `i64::MIN` starts before it).
pub(crate) fn window_start(number: i64, window_ns: i64) -> i64 {
    (number as i128 * window_ns as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Steps of a window that time bounds are rounded to.
const QUANTA: i64 = 4096;

/// Nanoseconds of one quantum of a `window_ns` window (at least 1).
pub(crate) fn quantum(window_ns: i64) -> i64 {
    (window_ns / QUANTA + i64::from(window_ns % QUANTA != 0)).max(1)
}

/// `[first, last]` (with `first >= start`) as quanta after `start`: the
/// first rounded down, `last − first` rounded so that the bound covers `last`.
pub(crate) fn to_quanta(first: i64, last: i64, start: i64, q: i64) -> (u64, u64) {
    let (q, start) = (q as i128, start as i128);
    let lo = (first as i128 - start).max(0) / q;
    let hi = (last as i128 - start + q - 1).div_euclid(q);
    (lo as u64, (hi - lo).max(0) as u64)
}

/// The bounds `(first, last)` that quanta stand for, clamped to `i64`.
pub(crate) fn from_quanta(lo: u64, span: u64, start: i64, q: i64) -> (i64, i64) {
    let clamp = |x: i128| x.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let first = start as i128 + lo as i128 * q as i128;
    let last = first + span as i128 * q as i128;
    (clamp(first), clamp(last))
}

/// One shared timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnEntry {
    pub samples: u64,
    /// Bytes, CRC32C included.
    pub length: u64,
    /// Bounds of its timestamps (rounded outward to quanta when stored).
    pub first: i64,
    pub last: i64,
}

/// One window with samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowEntry {
    pub number: i64,
    /// The tick a column starts from when nothing comes before it.
    pub base_tick: u64,
    pub columns: Vec<ColumnEntry>,
}

/// One index page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexPageEntry {
    pub series: u64,
    pub data_len: u64,
    pub length: u64,
}

/// One name page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamePageEntry {
    pub series: u64,
    pub length: u64,
    /// Its first key (not stored for the first page: a lookup needs only
    /// the keys that separate pages).
    pub first_key: Option<SeriesKey>,
}

/// The decoded root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Root {
    pub window_ns: i64,
    pub max_samples: u64,
    pub windows: Vec<WindowEntry>,
    pub index_pages: Vec<IndexPageEntry>,
    pub name_pages: Vec<NamePageEntry>,
}

impl Root {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_u64(&mut out, self.window_ns as u64);
        write_u64(&mut out, self.max_samples);
        write_u64(&mut out, self.windows.len() as u64);
        let mut prev = 0i64;
        let q = quantum(self.window_ns);
        for w in &self.windows {
            write_i64(&mut out, w.number.wrapping_sub(prev));
            prev = w.number;
            write_u64(&mut out, w.base_tick);
            write_u64(&mut out, w.columns.len() as u64);
            let start = window_start(w.number, self.window_ns);
            let mut prev_lo = 0;
            for c in &w.columns {
                write_u64(&mut out, self.max_samples - c.samples);
                write_u64(&mut out, c.length);
                let (lo, span) = to_quanta(c.first, c.last, start, q);
                write_u64(&mut out, lo.wrapping_sub(prev_lo));
                write_u64(&mut out, span);
                prev_lo = lo;
            }
        }
        write_u64(&mut out, self.index_pages.len() as u64);
        for p in &self.index_pages {
            for v in [p.series, p.data_len, p.length] {
                write_u64(&mut out, v);
            }
        }
        write_u64(&mut out, self.name_pages.len() as u64);
        for p in &self.name_pages {
            write_u64(&mut out, p.series);
            write_u64(&mut out, p.length);
            if let Some(first) = &p.first_key {
                let mut key = Vec::new();
                crate::format::write_key(&mut key, first);
                write_u64(&mut out, key.len() as u64);
                out.extend_from_slice(&key);
            }
        }
        out
    }

    /// Decodes a root whose CRC has been checked.
    pub fn decode(bytes: &[u8], at: u64, what: &str) -> Result<Root> {
        let mut r = ByteReader::at_offset(bytes, at, what);
        let window_ns = r.varint()?;
        if window_ns == 0 || window_ns > i64::MAX as u64 {
            return Err(r.corrupt(format!("window length {window_ns} ns")));
        }
        let max_samples = r.varint()?;
        if max_samples == 0 || max_samples > MAX_PIECE_SAMPLES as u64 {
            return Err(r.corrupt(format!(
                "at most {max_samples} samples a piece (1..={MAX_PIECE_SAMPLES})"
            )));
        }
        // Each window takes at least 3 bytes, each column 4.
        let n_windows = r.count(3, "window")?;
        let q = quantum(window_ns as i64);
        let mut windows: Vec<WindowEntry> = Vec::with_capacity(n_windows);
        let mut prev = 0i64;
        for i in 0..n_windows {
            let number = prev.wrapping_add(r.varint_i64()?);
            if i > 0 && number <= prev {
                return Err(r.corrupt(format!("window {i}: number {number} after {prev}")));
            }
            let unclamped = number as i128 * window_ns as i128;
            if unclamped > i64::MAX as i128 || unclamped + (window_ns as i128) <= i64::MIN as i128 {
                return Err(r.corrupt(format!(
                    "window {i}: number {number} starts outside the timestamps"
                )));
            }
            prev = number;
            let base_tick = r.varint()?;
            let n_cols = r.count(4, "shared column")?;
            let mut columns = Vec::with_capacity(n_cols);
            let start = window_start(number, window_ns as i64);
            let mut prev_lo = 0u64;
            for c in 0..n_cols {
                let fewer = r.varint()?;
                let length = r.varint()?;
                let samples = max_samples.saturating_sub(fewer);
                if fewer >= max_samples || length < 6 {
                    return Err(r.corrupt(format!(
                        "window {i} column {c}: {max_samples} − {fewer} samples in {length} bytes"
                    )));
                }
                let lo = prev_lo.checked_add(r.varint()?).ok_or_else(|| {
                    r.corrupt(format!("window {i} column {c}: first time overflows"))
                })?;
                let span = r.varint()?;
                prev_lo = lo;
                let (first, last) = from_quanta(lo, span, start, q);
                columns.push(ColumnEntry {
                    samples,
                    length,
                    first,
                    last,
                });
            }
            windows.push(WindowEntry {
                number,
                base_tick,
                columns,
            });
        }
        let n_index = r.count(3, "index page")?;
        let mut index_pages = Vec::with_capacity(n_index);
        for i in 0..n_index {
            let (series, data_len, length) = (r.varint()?, r.varint()?, r.varint()?);
            if series == 0 || series > MAX_PAGE_SERIES as u64 || length < 7 {
                return Err(r.corrupt(format!(
                    "index page {i}: {series} series, {data_len} bytes of blocks, {length} bytes"
                )));
            }
            index_pages.push(IndexPageEntry {
                series,
                data_len,
                length,
            });
        }
        let n_names = r.count(2, "name page")?;
        let mut name_pages: Vec<NamePageEntry> = Vec::with_capacity(n_names);
        for i in 0..n_names {
            let series = r.varint()?;
            let length = r.varint()?;
            if series == 0 || length < 6 {
                return Err(r.corrupt(format!("name page {i}: {series} series in {length} bytes")));
            }
            let first_key = if i == 0 {
                None
            } else {
                let key_len = r.count(1, "key byte")?;
                let key_at = r.position();
                let raw = r.bytes(key_len)?;
                let mut kr = ByteReader::at_offset(raw, at + key_at as u64, what);
                let key = read_key(&mut kr)?;
                if !kr.is_empty() {
                    return Err(
                        r.corrupt(format!("name page {i}: first key {key} has trailing bytes"))
                    );
                }
                Some(key)
            };
            if i > 1 && name_pages.last().map(|p| &p.first_key) >= Some(&first_key) {
                return Err(r.corrupt(format!("name page {i}: first key out of order")));
            }
            name_pages.push(NamePageEntry {
                series,
                length,
                first_key,
            });
        }
        if !r.is_empty() {
            return Err(r.corrupt(format!(
                "{} unexpected bytes after the name pages",
                r.remaining()
            )));
        }
        Ok(Root {
            window_ns: window_ns as i64,
            max_samples,
            windows,
            index_pages,
            name_pages,
        })
    }

    /// First timestamp of window `w` (an ordinal).
    pub fn window_start(&self, w: usize) -> i64 {
        self.windows
            .get(w)
            .map_or(0, |x| window_start(x.number, self.window_ns))
    }

    /// The context a timestamp column of window `w` starts from.
    pub fn window_context(&self, w: usize) -> crate::codec::delta::ColumnContext {
        crate::codec::delta::ColumnContext {
            first: self.window_start(w),
            tick: self.windows.get(w).map_or(0, |x| x.base_tick),
        }
    }

    /// Last timestamp of window `w`, clamped to `i64::MAX`.
    pub fn window_end(&self, w: usize) -> i64 {
        let start = self.window_start(w) as i128;
        (start + self.window_ns as i128 - 1).min(i64::MAX as i128) as i64
    }
}
