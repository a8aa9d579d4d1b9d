//! Version 3 index pages: where the samples of a run of series are, coded
//! column by column as the data is.
//!
//! A page describes consecutive series (in key order). Each series' samples
//! are cut into *pieces*: one aligned time window, at most `max_samples`
//! samples, and (when its bytes are stored) about `max_bytes` bytes. A piece
//! says where its timestamps are (a column shared by the window's series,
//! or *inline* in a block) and where its values are (*stored* in a block, a
//! *constant* held here, or a *reference* to an earlier piece of the page
//! with the same value bits). A piece with inline timestamps or stored
//! values has an *item* in a block; the items of one window share blocks,
//! in page order, so a block's time bounds stay within its window.
//!
//! ```text
//! | piece count (varint) | block count (varint) |
//! | column: pieces per series          (intpack)              |
//! | column: window ordinal per piece   (intpack)              |
//! | column: flags per piece            (intpack): bit 0 inline timestamps, bits 1-2 values: 0 stored, 1 constant, 2 reference |
//! | column: samples per piece          (intpack)              |
//! | column: shared column id per piece with shared timestamps (intpack) |
//! | column: block per piece with an item (intpack)            |
//! | column: constant per constant piece (adaptive values)     |
//! | column: target per reference piece (intpack: the ordinal of an earlier stored piece) |
//! | column: block lengths, CRC included (intpack)             |
//! | column: block first timestamps, in quanta after the start of the earliest window of its items (varints) |
//! | column: block spans, last − first, in quanta (varints)    |
//! | column: block minima, maxima (intpack each): the top 16 bits of the f64, rounded outward |
//! | CRC32C (u32 LE) of everything before it                   |
//!
//! column = | byte length (varint) | payload |  (an empty column has length 0)
//! ```
//!
//! A piece with shared timestamps covers samples `start .. start + n` of
//! its column, where `start` is the samples of the pieces before it in the
//! same series and window; those pieces together cover the column.
//!
//! A block's bounds only have to *contain* its samples for pruning to be
//! right, so they are stored coarse: times in quanta of the window
//! ([`super::root::quantum`]), minimum and maximum as the sign, exponent
//! and 4 mantissa bits of the `f64` (steps of at most 6.25 %), the
//! minimum rounded down and the maximum up. A block without stored values has the bounds
//! NaN, NaN.

use std::ops::Range;

use super::root::{from_quanta, to_quanta};
use crate::bytes::ByteReader;
use crate::codec::varint::write_u64;
use crate::codec::{adaptive, intpack};
use crate::error::Result;

/// Most pieces one page may hold (the reader refuses more before allocating).
pub(crate) const MAX_PAGE_PIECES: usize = 1 << 20;
/// Most series one page may describe.
pub(crate) const MAX_PAGE_SERIES: usize = 1 << 16;
/// Most samples one piece may hold.
pub(crate) const MAX_PIECE_SAMPLES: usize = 1 << 16;

/// Where a piece's timestamps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsSource {
    /// Samples `start .. start + n` of shared column `column` of its window.
    Shared { column: u32, start: u32 },
    /// Its own column, in its item.
    Inline,
}

/// Where a piece's values are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueSource {
    /// In its item: an adaptive value block.
    Stored,
    /// Every value has these bits.
    Constant(f64),
    /// The values of piece `target` of the same page (stored, same count).
    Ref(u32),
}

/// One piece as the page describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Piece {
    /// Ordinal of its window among the file's windows.
    pub window: u32,
    pub n: u32,
    pub ts: TsSource,
    pub values: ValueSource,
    /// The block (index within the page) holding its item, if it has one.
    pub block: Option<u32>,
}

impl Piece {
    pub fn has_item(&self) -> bool {
        self.ts == TsSource::Inline || self.values == ValueSource::Stored
    }

    fn flags(&self) -> i64 {
        let inline = i64::from(self.ts == TsSource::Inline);
        let kind = match self.values {
            ValueSource::Stored => 0,
            ValueSource::Constant(_) => 1,
            ValueSource::Ref(_) => 2,
        };
        inline | (kind << 1)
    }
}

/// One block as the page describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BlockEntry {
    /// Bytes of the block, its CRC32C included.
    pub length: u64,
    /// The earliest window of its items (not stored: the items say).
    pub window: u32,
    /// Bounds of its items' timestamps.
    pub first: i64,
    pub last: i64,
    /// Bounds of the non-NaN values stored in it (NaN, NaN if none).
    pub min: f64,
    pub max: f64,
}

/// Bits of an `f64` bound dropped: 48 of 64, keeping the sign, the
/// exponent and 4 mantissa bits.
const BOUND_SHIFT: u32 = 48;

/// `x` rounded toward −∞ (`down`) or +∞ to 16 bits; NaN stays a NaN.
pub(crate) fn bound_code(x: f64, down: bool) -> i64 {
    if x.is_nan() {
        return (f64::NAN.to_bits() >> BOUND_SHIFT) as i64;
    }
    let bits = x.to_bits();
    let (code, rest) = (bits >> BOUND_SHIFT, bits & ((1 << BOUND_SHIFT) - 1));
    let negative = bits >> 63 == 1;
    // Truncating moves a positive value down and a negative one up; one
    // step more in magnitude moves it the other way.
    let away = rest != 0 && (negative == down);
    (code + u64::from(away)) as i64
}

/// The `f64` a bound code stands for.
pub(crate) fn bound_value(code: i64) -> f64 {
    f64::from_bits((code as u64) << BOUND_SHIFT)
}

/// A decoded index page.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct IndexPage {
    /// For each series of the page, the range of its pieces.
    pub series: Vec<Range<usize>>,
    pub pieces: Vec<Piece>,
    pub blocks: Vec<BlockEntry>,
    /// For each block, the pieces with items in it, in order.
    pub block_items: Vec<Vec<usize>>,
}

fn column(out: &mut Vec<u8>, payload: &[u8]) {
    write_u64(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn ints(out: &mut Vec<u8>, values: &[i64]) {
    let mut buf = Vec::new();
    if !values.is_empty() {
        intpack::encode(values, &mut buf);
    }
    column(out, &buf);
}

fn floats(out: &mut Vec<u8>, values: &[f64]) {
    let mut buf = Vec::new();
    if !values.is_empty() {
        adaptive::encode(values, &mut buf);
    }
    column(out, &buf);
}

/// Encodes a page (`pieces` in series order; `blocks` in order; each
/// piece with an item names its block, and blocks follow their items).
/// `window_start(w)` is the first timestamp of window `w`, `q` a quantum.
pub(crate) fn encode(page: &IndexPage, window_start: impl Fn(u32) -> i64, q: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let p = &page.pieces;
    write_u64(&mut out, p.len() as u64);
    write_u64(&mut out, page.blocks.len() as u64);
    let per_series: Vec<i64> = page.series.iter().map(|r| r.len() as i64).collect();
    ints(&mut out, &per_series);
    ints(
        &mut out,
        &p.iter().map(|x| x.window as i64).collect::<Vec<_>>(),
    );
    ints(&mut out, &p.iter().map(Piece::flags).collect::<Vec<_>>());
    ints(&mut out, &p.iter().map(|x| x.n as i64).collect::<Vec<_>>());
    let shared: Vec<i64> = p
        .iter()
        .filter_map(|x| match x.ts {
            TsSource::Shared { column, .. } => Some(column as i64),
            TsSource::Inline => None,
        })
        .collect();
    ints(&mut out, &shared);
    let blocks: Vec<i64> = p.iter().filter_map(|x| x.block.map(i64::from)).collect();
    ints(&mut out, &blocks);
    let constants: Vec<f64> = p
        .iter()
        .filter_map(|x| match x.values {
            ValueSource::Constant(v) => Some(v),
            _ => None,
        })
        .collect();
    floats(&mut out, &constants);
    // A reference names its target by its ordinal among the stored pieces.
    let mut ordinal = vec![0i64; p.len()];
    let mut stored = 0;
    for (i, x) in p.iter().enumerate() {
        ordinal[i] = stored;
        stored += i64::from(x.values == ValueSource::Stored);
    }
    let targets: Vec<i64> = p
        .iter()
        .filter_map(|x| match x.values {
            ValueSource::Ref(t) => Some(ordinal[t as usize]),
            _ => None,
        })
        .collect();
    ints(&mut out, &targets);
    let b = &page.blocks;
    ints(
        &mut out,
        &b.iter().map(|x| x.length as i64).collect::<Vec<_>>(),
    );
    let (mut times, mut spans) = (Vec::new(), Vec::new());
    for x in b {
        let (lo, span) = to_quanta(x.first, x.last, window_start(x.window), q);
        write_u64(&mut times, lo);
        write_u64(&mut spans, span);
    }
    column(&mut out, &times);
    column(&mut out, &spans);
    ints(
        &mut out,
        &b.iter()
            .map(|x| bound_code(x.min, true))
            .collect::<Vec<_>>(),
    );
    ints(
        &mut out,
        &b.iter()
            .map(|x| bound_code(x.max, false))
            .collect::<Vec<_>>(),
    );
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What the reader knows about a page before decoding it (from the root).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageShape {
    pub series: usize,
    /// Windows of the file.
    pub windows: usize,
    /// A quantum of time bounds, ns.
    pub quantum: i64,
}

/// Reads one column: its length, then its payload.
fn read_column<'a>(r: &mut ByteReader<'a>, name: &str) -> Result<&'a [u8]> {
    let len = r.count(1, name)?;
    r.bytes(len)
}

/// Decodes `count` packed integers of column `name`.
fn read_ints(r: &mut ByteReader<'_>, count: usize, name: &str) -> Result<Vec<i64>> {
    let at = r.position();
    let payload = read_column(r, name)?;
    if count == 0 {
        if !payload.is_empty() {
            return Err(r.corrupt_at(at, format!("{name}: {} bytes for no values", payload.len())));
        }
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(count);
    intpack::decode(payload, count, |k| out.push(k))
        .map_err(|e| r.corrupt_at(at, format!("{name}: {e}")))?;
    Ok(out)
}

fn read_floats(r: &mut ByteReader<'_>, count: usize, name: &str) -> Result<Vec<f64>> {
    let at = r.position();
    let payload = read_column(r, name)?;
    if count == 0 {
        if !payload.is_empty() {
            return Err(r.corrupt_at(at, format!("{name}: {} bytes for no values", payload.len())));
        }
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(count);
    adaptive::decode(payload, count, &mut out)
        .map_err(|e| r.corrupt_at(at, format!("{name}: {e}")))?;
    Ok(out)
}

/// Converts a decoded integer to a bounded index, or says which is wrong.
fn bounded(r: &ByteReader<'_>, v: i64, limit: usize, what: &str) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&x| x < limit)
        .ok_or_else(|| r.corrupt(format!("{what} {v} is out of range (0..{limit})")))
}

/// Decodes a page whose CRC has been checked (`body` excludes the CRC).
/// `column_len(window, column)` gives a shared column's sample count, or
/// `None` if there is no such column; `window_start(w)` the first
/// timestamp of window `w`.
pub(crate) fn decode(
    body: &[u8],
    at: u64,
    what: &str,
    shape: PageShape,
    column_len: impl Fn(usize, usize) -> Option<usize>,
    window_start: impl Fn(u32) -> i64,
) -> Result<IndexPage> {
    let mut r = ByteReader::at_offset(body, at, what);
    let (n, blocks) = (r.varint()?, r.varint()?);
    if n > MAX_PAGE_PIECES as u64 || blocks > n || shape.series > MAX_PAGE_SERIES {
        return Err(r.corrupt(format!(
            "{n} pieces in {blocks} blocks for {} series (at most {MAX_PAGE_PIECES} pieces)",
            shape.series
        )));
    }
    let (n, n_blocks) = (n as usize, blocks as usize);
    let per_series = read_ints(&mut r, shape.series, "pieces per series")?;
    let windows = read_ints(&mut r, n, "windows")?;
    let flags = read_ints(&mut r, n, "flags")?;
    let counts = read_ints(&mut r, n, "samples per piece")?;
    let mut series = Vec::with_capacity(shape.series);
    let mut at_piece = 0usize;
    for (i, &k) in per_series.iter().enumerate() {
        let k = usize::try_from(k)
            .ok()
            .filter(|&k| k <= n - at_piece)
            .ok_or_else(|| r.corrupt(format!("series {i} of the page: {k} pieces")))?;
        series.push(at_piece..at_piece + k);
        at_piece += k;
    }
    if at_piece != n {
        return Err(r.corrupt(format!("the series hold {at_piece} pieces, the page {n}")));
    }
    let shared_count = flags.iter().filter(|&&f| f & 1 == 0).count();
    let shared = read_ints(&mut r, shared_count, "shared column ids")?;
    let mut pieces = Vec::with_capacity(n);
    let mut items = 0usize;
    let (mut constants, mut refs) = (0usize, 0usize);
    for i in 0..n {
        let f = flags[i];
        if !(0..=4).contains(&f) {
            return Err(r.corrupt(format!("piece {i}: flags {f}")));
        }
        let window = bounded(&r, windows[i], shape.windows, "window")? as u32;
        let count = usize::try_from(counts[i])
            .ok()
            .filter(|&c| (1..=MAX_PIECE_SAMPLES).contains(&c))
            .ok_or_else(|| r.corrupt(format!("piece {i}: {} samples", counts[i])))?;
        let inline = f & 1 == 1;
        let values = match f >> 1 {
            0 => ValueSource::Stored,
            1 => {
                constants += 1;
                ValueSource::Constant(0.0)
            }
            _ => {
                refs += 1;
                ValueSource::Ref(0)
            }
        };
        let p = Piece {
            window,
            n: count as u32,
            ts: if inline {
                TsSource::Inline
            } else {
                TsSource::Shared {
                    column: 0,
                    start: 0,
                }
            },
            values,
            block: None,
        };
        items += usize::from(p.has_item());
        pieces.push(p);
    }
    let item_blocks = read_ints(&mut r, items, "blocks of the items")?;
    let constant_values = read_floats(&mut r, constants, "constants")?;
    let targets = read_ints(&mut r, refs, "reference targets")?;
    let lengths = read_ints(&mut r, n_blocks, "block lengths")?;
    let times = read_column(&mut r, "block first timestamps")?;
    let spans = read_column(&mut r, "block spans")?;
    let mins = read_ints(&mut r, n_blocks, "block minima")?;
    let maxs = read_ints(&mut r, n_blocks, "block maxima")?;
    if !r.is_empty() {
        return Err(r.corrupt(format!(
            "{} unexpected bytes after the last column",
            r.remaining()
        )));
    }

    // Fill in shared columns (with their starts), constants, targets, blocks.
    let (mut s_i, mut c_i, mut t_i, mut item_i) = (0usize, 0usize, 0usize, 0usize);
    let mut stored: Vec<usize> = Vec::new();
    let mut block_items: Vec<Vec<usize>> = vec![Vec::new(); n_blocks];
    for (si, range) in series.iter().enumerate() {
        // The shared column run in progress: (window, column, samples so far).
        let mut run: Option<(u32, u32, usize)> = None;
        let mut prev_window = 0u32;
        for i in range.clone() {
            let mut p = pieces[i];
            if p.window < prev_window {
                return Err(r.corrupt(format!(
                    "series {si} of the page: piece {i} goes back to window {}",
                    p.window
                )));
            }
            prev_window = p.window;
            if let TsSource::Shared { .. } = p.ts {
                let w = p.window as usize;
                let column = shared[s_i];
                s_i += 1;
                let found = usize::try_from(column)
                    .ok()
                    .and_then(|c| column_len(w, c).map(|len| (c, len)));
                let Some((c, len)) = found else {
                    return Err(r.corrupt(format!(
                        "piece {i}: no shared column {column} in window {w}"
                    )));
                };
                let start = match run {
                    Some((rw, rc, done)) if rw == p.window && rc as usize == c && done < len => {
                        done
                    }
                    other => {
                        check_run_complete(&r, other, &column_len, si)?;
                        0
                    }
                };
                if start + p.n as usize > len {
                    return Err(r.corrupt(format!(
                        "piece {i}: samples {start}..{} of a {len}-sample column",
                        start + p.n as usize
                    )));
                }
                p.ts = TsSource::Shared {
                    column: c as u32,
                    start: start as u32,
                };
                run = Some((p.window, c as u32, start + p.n as usize));
            } else {
                check_run_complete(&r, run.take(), &column_len, si)?;
            }
            match p.values {
                ValueSource::Constant(_) => {
                    p.values = ValueSource::Constant(constant_values[c_i]);
                    c_i += 1;
                }
                ValueSource::Ref(_) => {
                    let t = bounded(&r, targets[t_i], stored.len(), "reference target")?;
                    t_i += 1;
                    let target = stored[t];
                    if pieces[target].n != p.n {
                        return Err(r.corrupt(format!(
                            "piece {i}: refers to piece {target} of {} samples, has {}",
                            pieces[target].n, p.n
                        )));
                    }
                    p.values = ValueSource::Ref(target as u32);
                }
                ValueSource::Stored => stored.push(i),
            }
            if p.has_item() {
                let b = bounded(&r, item_blocks[item_i], n_blocks, "block")?;
                block_items[b].push(i);
                p.block = Some(b as u32);
                item_i += 1;
            }
            pieces[i] = p;
        }
        check_run_complete(&r, run, &column_len, si)?;
    }
    if let Some(b) = block_items.iter().position(Vec::is_empty) {
        return Err(r.corrupt(format!("block {b} holds no item")));
    }

    // The block table; a block's window is the earliest of its items'.
    let mut block_window = vec![u32::MAX; n_blocks];
    for p in &pieces {
        if let Some(b) = p.block {
            let w = &mut block_window[b as usize];
            *w = (*w).min(p.window);
        }
    }
    let mut tr = ByteReader::new(times, "block first timestamps");
    let mut sr = ByteReader::new(spans, "block spans");
    let mut blocks = Vec::with_capacity(n_blocks);
    for b in 0..n_blocks {
        let lo = tr.varint().map_err(|e| e.within(what))?;
        let span = sr.varint().map_err(|e| e.within(what))?;
        let window = block_window[b];
        let (first, last) = from_quanta(lo, span, window_start(window), shape.quantum);
        let length = lengths[b];
        let (min, max) = (bound_value(mins[b]), bound_value(maxs[b]));
        if length < 5 || min > max || min.is_nan() != max.is_nan() {
            return Err(r.corrupt(format!("block {b}: {length} bytes, values {min} ..= {max}")));
        }
        blocks.push(BlockEntry {
            length: length as u64,
            window,
            first,
            last,
            min,
            max,
        });
    }
    if !tr.is_empty() || !sr.is_empty() {
        return Err(r.corrupt("bytes left over in the block table"));
    }
    Ok(IndexPage {
        series,
        pieces,
        blocks,
        block_items,
    })
}

/// A run of pieces on one shared column must cover all of it.
fn check_run_complete(
    r: &ByteReader<'_>,
    run: Option<(u32, u32, usize)>,
    column_len: &impl Fn(usize, usize) -> Option<usize>,
    series: usize,
) -> Result<()> {
    let Some((window, column, done)) = run else {
        return Ok(());
    };
    let len = column_len(window as usize, column as usize).unwrap_or(0);
    if done != len {
        return Err(r.corrupt(format!(
            "series {series} of the page covers {done} of the {len} samples of shared column {column} of window {window}"
        )));
    }
    Ok(())
}

impl IndexPage {
    /// The pieces with items in block `b`, in order.
    pub fn block_items(&self, b: usize) -> impl Iterator<Item = usize> + '_ {
        self.block_items.get(b).into_iter().flatten().copied()
    }
}
