//! Writing a `.metrics` file, version 3 (layout in the module above).
//!
//! 1. Cut every series into *slices*: one aligned window, at most
//!    `max_samples` samples.
//! 2. In each window, a timestamp array that several slices share is
//!    stored once, as a *shared column*; the others stay with their series.
//! 3. Walk the series in key order, cutting each slice into *pieces*:
//!    a constant slice is one piece (its value goes to the index); a
//!    stored one is split while its encoded bytes exceed `max_bytes`.
//!    A piece whose values repeat an earlier piece of the same index page
//!    (bit for bit) refers to it.
//! 4. Pack the pieces' *items* (inline timestamps, stored values) into
//!    blocks of about `max_bytes`, so short series share blocks.
//! 5. Write the blocks, the shared columns, the index pages, the name
//!    pages, the root and the footer.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::index_page::{
    self, BlockEntry, IndexPage, Piece, TsSource, ValueSource, MAX_PAGE_PIECES, MAX_PAGE_SERIES,
    MAX_PIECE_SAMPLES,
};
use super::name_page;
use super::root::{ColumnEntry, IndexPageEntry, NamePageEntry, Root, WindowEntry};
use super::{Footer, HEADER_LEN, MAGIC, VERSION};
use crate::codec::adaptive;
use crate::codec::delta::{self, ColumnContext};
use crate::codec::varint::write_u64;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::{Dataset, SeriesKey};

/// How samples are cut into pieces and blocks.
///
/// A piece never spans two aligned time windows, never holds more than
/// `max_samples`, and a piece whose bytes are stored is split further
/// while they exceed `max_bytes`; items are packed into blocks of about
/// `max_bytes`. Series that compress well get long pieces (little index),
/// series that do not get short ones (little to read per query), and short
/// series share blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOptions {
    /// Length of the aligned windows, nanoseconds.
    pub window_ns: i64,
    /// Most samples in one piece (clamped to 1..=65,536).
    pub max_samples: usize,
    /// Target upper bound of a block's encoded size, bytes (one item may exceed it).
    pub max_bytes: usize,
}

impl Default for BlockOptions {
    fn default() -> Self {
        BlockOptions {
            window_ns: 6 * 3600 * crate::time::NANOS_PER_SECOND,
            max_samples: 256,
            max_bytes: 512,
        }
    }
}

/// A query reads one name page and one index page, so each is kept to
/// about this share of the data (1/256, 0.4 %), within [`PAGE_BYTES`].
pub const PAGE_SHARE: usize = 256;
/// The smallest and largest page budget, bytes.
pub const PAGE_BYTES: (usize, usize) = (192, 64 << 10);

/// The budget of one index or name page for `data` bytes of blocks.
fn page_budget(data: usize) -> usize {
    (data / PAGE_SHARE).clamp(PAGE_BYTES.0, PAGE_BYTES.1)
}

/// Where the bytes of an encoded file went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub blocks: u64,
    pub pieces: u64,
    /// Pieces whose values are one constant held in the index.
    pub constant_pieces: u64,
    /// Pieces whose values repeat an earlier piece's.
    pub shared_value_pieces: u64,
    /// Shared timestamp columns, and the pieces that use one.
    pub shared_columns: u64,
    pub shared_ts_pieces: u64,
    /// Of the shared columns, those stored in parts (larger than
    /// `max_bytes`: a range query reads the parts it needs).
    pub parted_columns: u64,
    pub index_pages: u64,
    pub name_pages: u64,
    /// Header and footer.
    pub frame: u64,
    /// Blocks: items and CRCs.
    pub data: u64,
    /// Of the blocks, bytes of inline timestamp columns.
    pub inline_timestamps: u64,
    /// Shared timestamp columns with their CRCs.
    pub columns: u64,
    pub index: u64,
    pub names: u64,
    pub root: u64,
}

/// The `[start, end)` sample ranges of the slices of one series: a slice
/// never spans two aligned windows nor holds more than `max_samples`.
pub(crate) fn block_ranges(ts: &[i64], options: BlockOptions) -> Vec<(usize, usize)> {
    let window = options.window_ns.max(1);
    let max = options.max_samples.clamp(1, MAX_PIECE_SAMPLES);
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

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn bits_hash(values: &[f64]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    values.len().hash(&mut h);
    for v in values {
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

/// A piece before it is written: the page's piece and its samples.
struct Draft<'a> {
    piece: Piece,
    ts: &'a [i64],
    vs: &'a [f64],
    /// Bytes of its item (about: before packing).
    item: usize,
    /// Whether it is its slice's only piece. A part of a split slice gets
    /// a block to itself, so that its block's time bounds stay its own.
    whole: bool,
}

/// The context a column with nothing before it starts from: its window's
/// start and base tick.
fn fresh_context(window: (i64, u64)) -> ColumnContext {
    ColumnContext {
        first: window.0,
        tick: window.1,
    }
}

/// Appends a piece's item (inline timestamps, stored values) to `out`,
/// advancing `ctx` past an inline column; returns the inline column's bytes.
fn encode_item(d: &Draft, ctx: &mut ColumnContext, col: &mut Vec<u8>, out: &mut Vec<u8>) -> u64 {
    let mut inline = 0;
    if d.piece.ts == TsSource::Inline {
        col.clear();
        delta::encode_smallest_in_context(d.ts, ctx, col);
        write_u64(out, col.len() as u64);
        out.extend_from_slice(col);
        inline = col.len() as u64;
    }
    if d.piece.values == ValueSource::Stored {
        col.clear();
        adaptive::encode(d.vs, col);
        write_u64(out, col.len() as u64);
        out.extend_from_slice(col);
    }
    inline
}

/// Shared timestamp columns of one window, by their samples.
struct WindowColumns<'a> {
    /// Start and base tick of the window.
    context: (i64, u64),
    ids: HashMap<&'a [i64], u32>,
    bytes: Vec<Vec<u8>>,
    columns: Vec<ColumnEntry>,
}

/// Finds and encodes the shared columns of every window.
fn shared_columns<'a>(
    dataset: &'a Dataset,
    slices: &[Vec<(usize, usize, usize)>],
    windows: &[i64],
    window_ns: i64,
    max_bytes: usize,
) -> Vec<WindowColumns<'a>> {
    let q = super::root::quantum(window_ns);
    let mut uses: Vec<HashMap<&'a [i64], usize>> = vec![HashMap::new(); windows.len()];
    // The base tick of a window: the tick most of its slices have.
    let mut ticks: Vec<HashMap<u64, usize>> = vec![HashMap::new(); windows.len()];
    for (s, list) in dataset.series.iter().zip(slices) {
        for &(w, a, b) in list {
            let ts = &s.timestamps[a..b];
            *uses[w].entry(ts).or_default() += 1;
            if ts.len() >= 2 {
                *ticks[w].entry(delta::tick(ts)).or_default() += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(windows.len());
    let mut col = Vec::new();
    for (w, counts) in uses.into_iter().enumerate() {
        let base = ticks[w]
            .iter()
            .max_by_key(|(&t, &n)| (n, std::cmp::Reverse(t)))
            .map_or(0, |(&t, _)| t);
        let context = (super::root::window_start(windows[w], window_ns), base);
        // A column is shared when storing it once saves more than its CRC
        // and its entry cost.
        let mut chosen: Vec<&[i64]> = counts
            .iter()
            .filter(|(ts, &n)| {
                if n < 2 {
                    return false;
                }
                col.clear();
                delta::encode_smallest_in_context(ts, &mut fresh_context(context), &mut col);
                (n - 1) * col.len() > 12
            })
            .map(|(ts, _)| *ts)
            .collect();
        chosen.sort_by(|a, b| (a.first(), a.len(), *a).cmp(&(b.first(), b.len(), *b)));
        let mut wc = WindowColumns {
            context,
            ids: HashMap::new(),
            bytes: Vec::new(),
            columns: Vec::new(),
        };
        for (i, ts) in chosen.into_iter().enumerate() {
            let bytes = super::parts::encode(ts, fresh_context(context), q, max_bytes);
            wc.ids.insert(ts, i as u32);
            wc.columns.push(ColumnEntry {
                samples: ts.len() as u64,
                length: bytes.len() as u64,
                first: ts[0],
                last: ts[ts.len() - 1],
            });
            wc.bytes.push(bytes);
        }
        out.push(wc);
    }
    out
}

/// The pieces of one slice.
fn slice_pieces<'a>(
    ts: &'a [i64],
    vs: &'a [f64],
    window: u32,
    window_context: (i64, u64),
    shared: Option<u32>,
    options: BlockOptions,
    out: &mut Vec<Draft<'a>>,
) {
    let ts_source = match shared {
        Some(column) => TsSource::Shared { column, start: 0 },
        None => TsSource::Inline,
    };
    let piece = |n: usize, values| Piece {
        window,
        n: n as u32,
        ts: ts_source,
        values,
        block: None,
    };
    if vs.iter().all(|v| v.to_bits() == vs[0].to_bits()) {
        let mut d = Draft {
            piece: piece(vs.len(), ValueSource::Constant(vs[0])),
            ts,
            vs,
            item: 0,
            whole: true,
        };
        if shared.is_none() {
            let (mut col, mut item) = (Vec::new(), Vec::new());
            encode_item(&d, &mut fresh_context(window_context), &mut col, &mut item);
            d.item = item.len();
        }
        out.push(d);
        return;
    }
    let (mut col, mut item) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < ts.len() {
        // Shrink the piece until its item fits max_bytes (or holds one sample).
        let mut end = ts.len();
        loop {
            let mut d = Draft {
                piece: piece(end - start, ValueSource::Stored),
                ts: &ts[start..end],
                vs: &vs[start..end],
                item: 0,
                whole: start == 0 && end == ts.len(),
            };
            item.clear();
            encode_item(&d, &mut fresh_context(window_context), &mut col, &mut item);
            let n = end - start;
            if item.len() + 4 <= options.max_bytes || n == 1 {
                d.item = item.len();
                out.push(d);
                break;
            }
            let fit = (n as u128 * options.max_bytes as u128 / (item.len() as u128 + 4))
                .clamp(1, n as u128 - 1);
            end = start + fit as usize;
        }
        start = end;
    }
}

/// One index page being filled.
#[derive(Default)]
struct PageDraft<'a> {
    series: Vec<std::ops::Range<usize>>,
    drafts: Vec<Draft<'a>>,
    /// Stored pieces by the hash of their values, for references.
    stored: HashMap<u64, Vec<usize>>,
    /// Bytes of the items so far.
    items: usize,
}

impl PageDraft<'_> {
    /// About the bytes the page will take: 2.5 a piece, 9 a block.
    fn estimate(&self, options: BlockOptions) -> usize {
        let blocks = self
            .items
            .div_ceil(options.max_bytes.max(1).saturating_mul(9) / 10 + 1);
        self.drafts.len() * 5 / 2 + self.series.len() / 4 + blocks * 9 + 50
    }
}

/// Packs a page's items into blocks, appending the blocks to `data`.
fn pack_page(
    mut page: PageDraft<'_>,
    options: BlockOptions,
    contexts: &[(i64, u64)],
    data: &mut Vec<u8>,
    stats: &mut EncodeStats,
) -> (IndexPage, u64) {
    let data_start = data.len();
    let mut blocks: Vec<BlockEntry> = Vec::new();
    let mut block_items: Vec<Vec<usize>> = Vec::new();
    let (mut block, mut col, mut item) = (Vec::new(), Vec::new(), Vec::new());
    let mut ctx: Option<ColumnContext> = None;
    let mut entry: Option<BlockEntry> = None;
    let close = |block: &mut Vec<u8>,
                 entry: &mut Option<BlockEntry>,
                 blocks: &mut Vec<BlockEntry>,
                 data: &mut Vec<u8>| {
        if let Some(mut e) = entry.take() {
            let crc = crc32c::crc32c(block);
            block.extend_from_slice(&crc.to_le_bytes());
            e.length = block.len() as u64;
            data.extend_from_slice(block);
            blocks.push(e);
            block.clear();
        }
    };
    // Window by window, the items in page order: a block never mixes windows.
    let mut order: Vec<usize> = (0..page.drafts.len())
        .filter(|&i| page.drafts[i].piece.has_item())
        .collect();
    order.sort_by_key(|&i| (page.drafts[i].piece.window, i));
    let mut alone = false;
    for i in order {
        let d = &page.drafts[i];
        if entry.is_some_and(|e: BlockEntry| e.window != d.piece.window) || alone || !d.whole {
            close(&mut block, &mut entry, &mut blocks, data);
            ctx = None;
        }
        alone = !d.whole;
        let start = contexts[d.piece.window as usize];
        // Try the item in the current block; start a new block if it does not fit.
        let mut c = ctx.unwrap_or_else(|| fresh_context(start));
        item.clear();
        let mut inline = encode_item(d, &mut c, &mut col, &mut item);
        if entry.is_some() && block.len() + item.len() + 4 > options.max_bytes {
            close(&mut block, &mut entry, &mut blocks, data);
            ctx = None;
            c = fresh_context(start);
            item.clear();
            inline = encode_item(d, &mut c, &mut col, &mut item);
        }
        if d.piece.ts == TsSource::Inline {
            ctx = Some(c);
        }
        stats.inline_timestamps += inline;
        let (first, last) = (d.ts[0], d.ts[d.ts.len() - 1]);
        let (lo, hi) = if d.piece.values == ValueSource::Stored {
            min_max(d.vs)
        } else {
            (f64::NAN, f64::NAN)
        };
        let e = entry.get_or_insert_with(|| {
            block_items.push(Vec::new());
            BlockEntry {
                length: 0,
                window: d.piece.window,
                first,
                last,
                min: f64::NAN,
                max: f64::NAN,
            }
        });
        e.first = e.first.min(first);
        e.last = e.last.max(last);
        e.min = e.min.min(lo);
        e.max = e.max.max(hi);
        block.extend_from_slice(&item);
        page.drafts[i].piece.block = Some(blocks.len() as u32);
        if let Some(items) = block_items.last_mut() {
            items.push(i);
        }
    }
    close(&mut block, &mut entry, &mut blocks, data);
    stats.blocks += blocks.len() as u64;
    let pieces = page.drafts.iter().map(|d| d.piece).collect();
    (
        IndexPage {
            series: page.series,
            pieces,
            blocks,
            block_items,
        },
        (data.len() - data_start) as u64,
    )
}

/// A short key `k` with `before < k <= after`: the metric of `after` and
/// its labels up to the first one that differs from `before`'s.
fn separator(before: &SeriesKey, after: &SeriesKey) -> SeriesKey {
    let mut labels = crate::model::Labels::new();
    if before.metric == after.metric {
        let mut theirs = before.labels.iter();
        for (k, v) in &after.labels {
            labels.insert(k.clone(), v.clone());
            if theirs.next() != Some((k, v)) {
                break;
            }
        }
    }
    SeriesKey::new(after.metric.clone(), labels)
}

/// Encodes `dataset` as a `.metrics` file (version 3).
///
/// Errors: a dataset with more than `u32::MAX` series or blocks, or a
/// series with more than 2^20 pieces, does not fit the format.
pub fn encode(dataset: &Dataset, options: BlockOptions) -> Result<(Vec<u8>, EncodeStats)> {
    let window_ns = options.window_ns.max(1);
    let options = BlockOptions {
        window_ns,
        max_samples: options.max_samples.clamp(1, MAX_PIECE_SAMPLES),
        max_bytes: options.max_bytes.max(1),
    };
    let mut stats = EncodeStats::default();

    // 1. Slices (window number, start, end) and the windows they use.
    let mut windows = BTreeSet::new();
    let raw: Vec<Vec<(i64, usize, usize)>> = dataset
        .series
        .iter()
        .map(|s| {
            block_ranges(&s.timestamps, options)
                .into_iter()
                .map(|(a, b)| {
                    let w = s.timestamps[a].div_euclid(window_ns);
                    windows.insert(w);
                    (w, a, b)
                })
                .collect()
        })
        .collect();
    let windows: Vec<i64> = windows.into_iter().collect();
    let ordinal: HashMap<i64, usize> = windows.iter().enumerate().map(|(i, &w)| (w, i)).collect();
    let slices: Vec<Vec<(usize, usize, usize)>> = raw
        .iter()
        .map(|l| l.iter().map(|&(w, a, b)| (ordinal[&w], a, b)).collect())
        .collect();
    // 2. Shared timestamp columns, and each window's context.
    let columns = shared_columns(dataset, &slices, &windows, window_ns, options.max_bytes);
    let contexts: Vec<(i64, u64)> = columns.iter().map(|c| c.context).collect();

    // 3 and 4. Pieces, pages, blocks.
    let mut out = Vec::with_capacity(dataset.sample_count() as usize + 4096);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut pages: Vec<(IndexPage, u64)> = Vec::new();
    let mut page = PageDraft::default();
    let flush = |page: PageDraft,
                 out: &mut Vec<u8>,
                 stats: &mut EncodeStats,
                 pages: &mut Vec<(IndexPage, u64)>| {
        if !page.series.is_empty() {
            pages.push(pack_page(page, options, &contexts, out, stats));
        }
    };
    // Every series' pieces first: their bytes size the pages.
    let mut all: Vec<Vec<Draft>> = Vec::with_capacity(dataset.series.len());
    let mut item_bytes = 0usize;
    for (s, list) in dataset.series.iter().zip(&slices) {
        let mut mine = Vec::new();
        for &(w, a, b) in list {
            let ts = &s.timestamps[a..b];
            let shared = columns[w].ids.get(ts).copied();
            slice_pieces(
                ts,
                &s.values[a..b],
                w as u32,
                columns[w].context,
                shared,
                options,
                &mut mine,
            );
        }
        if mine.len() > MAX_PAGE_PIECES {
            return Err(Error::InvalidArgument(format!(
                "series {} needs {} pieces, more than a .metrics index page holds ({MAX_PAGE_PIECES}); use longer windows",
                s.key,
                mine.len()
            )));
        }
        item_bytes += mine.iter().map(|d| d.item).sum::<usize>();
        all.push(mine);
    }
    let page_bytes = page_budget(item_bytes);
    for mine in all {
        if !page.series.is_empty()
            && (page.estimate(options) >= page_bytes
                || page.drafts.len() + mine.len() > MAX_PAGE_PIECES
                || page.series.len() >= MAX_PAGE_SERIES)
        {
            flush(std::mem::take(&mut page), &mut out, &mut stats, &mut pages);
        }
        let first = page.drafts.len();
        for mut d in mine {
            let i = page.drafts.len();
            if d.piece.values == ValueSource::Stored {
                let h = bits_hash(d.vs);
                let earlier = page.stored.get(&h).and_then(|c| {
                    c.iter()
                        .copied()
                        .find(|&j| same_bits(page.drafts[j].vs, d.vs))
                });
                match earlier {
                    Some(j) if d.piece.ts != TsSource::Inline => {
                        d.piece.values = ValueSource::Ref(j as u32);
                    }
                    Some(_) => {}
                    None => page.stored.entry(h).or_default().push(i),
                }
            }
            if d.piece.has_item() {
                page.items += d.item + 2;
            }
            page.drafts.push(d);
        }
        page.series.push(first..page.drafts.len());
    }
    flush(page, &mut out, &mut stats, &mut pages);
    let data_end = out.len();
    stats.data = (data_end - HEADER_LEN as usize) as u64;

    // 5. Shared columns, window by window.
    let mut root = Root {
        window_ns,
        max_samples: options.max_samples as u64,
        ..Root::default()
    };
    for (w, wc) in columns.into_iter().enumerate() {
        for bytes in &wc.bytes {
            out.extend_from_slice(bytes);
            stats.parted_columns += u64::from(bytes.first() == Some(&super::parts::IN_PARTS));
        }
        stats.shared_columns += wc.columns.len() as u64;
        root.windows.push(WindowEntry {
            number: windows[w],
            base_tick: wc.context.1,
            columns: wc.columns,
        });
    }
    stats.columns = (out.len() - data_end) as u64;

    // Index pages.
    let index_start = out.len();
    let q = super::root::quantum(window_ns);
    for (p, data_len) in &pages {
        let bytes = index_page::encode(p, |w| contexts[w as usize].0, q);
        for piece in &p.pieces {
            stats.pieces += 1;
            match piece.values {
                ValueSource::Constant(_) => stats.constant_pieces += 1,
                ValueSource::Ref(_) => stats.shared_value_pieces += 1,
                ValueSource::Stored => {}
            }
            stats.shared_ts_pieces += u64::from(piece.ts != TsSource::Inline);
        }
        root.index_pages.push(IndexPageEntry {
            series: p.series.len() as u64,
            data_len: *data_len,
            length: bytes.len() as u64,
        });
        out.extend_from_slice(&bytes);
    }
    stats.index = (out.len() - index_start) as u64;
    stats.index_pages = pages.len() as u64;

    // Name pages.
    let names_start = out.len();
    let keys: Vec<Vec<u8>> = dataset
        .series
        .iter()
        .map(|s| name_page::key_bytes(&s.key))
        .collect();
    // Front-coded keys compress about 8 to 1: a page of this many raw
    // bytes is about one page budget. But every page costs a separator in
    // the root, so there are at most about 32 of them.
    let raw_total: usize = keys.iter().map(Vec::len).sum();
    let name_raw_budget =
        (page_budget(stats.data as usize + stats.columns as usize) * 8).max(raw_total / 32);
    let mut from = 0;
    while from < keys.len() {
        let mut to = from;
        let mut raw = 0;
        while to < keys.len() && (to == from || raw < name_raw_budget) {
            raw += keys[to].len();
            to += 1;
        }
        let bytes = name_page::encode(&keys[from..to]);
        root.name_pages.push(NamePageEntry {
            series: (to - from) as u64,
            length: bytes.len() as u64,
            first_key: (from > 0)
                .then(|| separator(&dataset.series[from - 1].key, &dataset.series[from].key)),
        });
        out.extend_from_slice(&bytes);
        from = to;
    }
    stats.names = (out.len() - names_start) as u64;
    stats.name_pages = root.name_pages.len() as u64;

    // Root and footer.
    let root_bytes = root.encode();
    let root_offset = out.len() as u64;
    out.extend_from_slice(&root_bytes);
    stats.root = root_bytes.len() as u64;
    let too_many =
        |what: &str| Error::InvalidArgument(format!("too many {what} for one .metrics file"));
    Footer {
        directory_offset: root_offset,
        directory_len: root_bytes.len() as u64,
        directory_crc: crc32c::crc32c(&root_bytes),
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
    fn slices_follow_windows_and_caps() {
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
