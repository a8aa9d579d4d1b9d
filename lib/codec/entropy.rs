//! Entropy-coded integers: bins chosen by dynamic programming, bin numbers
//! coded with [`crate::codec::ans`], offsets within a bin as plain bits.
//!
//! After pco (Martin Loncaric, "pcodec", 2023): an integer (a *latent*,
//! here any `u64`) is coded as the bin it falls in plus its offset from the
//! bin's lower bound. A bin is a range `lower .. lower + 2^bits`; frequent
//! narrow bins get short ANS codes, and the offset costs `bits` raw bits.
//!
//! Why it beats fixed-width packing: deltas of a temperature in tenths of a
//! degree are mostly -2..=2 but now and then ±40. Frame-of-reference
//! packing pays the widest value's 7 bits for *every* value. Here the five
//! common values are five bins of width 1 (0 offset bits) with codes of
//! about 1.5 to 3 bits, and the rare large ones share a wide bin whose
//! code is long but rarely used: about 2.5 bits a value instead of 7.
//!
//! Choosing bins: the sorted latents are cut into at most [`PREBINS`]
//! *pre-bins* (each distinct value when there are few, else equal-count
//! ranges); then a dynamic program over consecutive pre-bins finds the
//! merge that minimises the estimated size
//!
//! ```text
//! sum over bins of  META_BITS + count × (log2(n / count) + bits(upper - lower))
//! ```
//!
//! as pco's `optimize_bins` does. One bin means no ANS at all: the stream
//! is plain frame-of-reference bit packing.
//!
//! # Layout
//!
//! ```text
//! | bins - 1 (varint) | table log (u8), only with 2+ bins |
//! | per bin: lower (varint; after the first, minus the previous lower, > 0) |
//! |          offset bits (u8, <= 64) | weight - 1 (varint), only with 2+ bins |
//! | bit stream: 4 final ANS states (log bits each), only with 2+ bins;     |
//! |             per value: its offset (bin's bits), then its ANS bits      |
//! ```
//!
//! The weights sum to `2^log`. The count of values is not stored. A decoder
//! checks every field, that each value's bits exist, that the four states
//! end at slot 0 and that nothing but zero padding follows.

use crate::bytes::ByteReader;
use crate::codec::ans::{self, STATES};
use crate::codec::bits::BitWriter;
use crate::codec::varint::{len_u64, write_u64};
use crate::error::{Error, Result};

/// Bits a value above which the histogram's bins are checked against
/// sorted pre-bins ([`choose_bins_with`]).
const WIDE_BITS: f32 = 12.0;

/// The most pre-bins the dynamic program merges.
pub const PREBINS: usize = 256;
/// The largest table the encoder picks (the decoder accepts up to [`ans::MAX_LOG`]).
pub const ENCODE_MAX_LOG: u32 = 11;
/// Estimated header bits of one bin (lower, offset bits, weight).
const META_BITS: f32 = 32.0;
/// What the table chooser charges per slot of the table, in bits: the
/// decoder builds every slot before the first value, and a slot costs
/// about as much time as decoding a value. At 1 bit a slot the real series
/// grow by 0.2 % and decode 10 % faster (measured, `cargo bench --bench
/// adaptive`).
const SLOT_BITS: f64 = 1.0;
/// Latents within `4 n + DIRECT_SPAN` of each other are counted value by
/// value (a table of counts), up to [`DIRECT_MAX`].
const DIRECT_SPAN: u64 = 1024;
const DIRECT_MAX: u64 = 1 << 20;
/// Blocks of up to this many latents are sorted rather than counted; the
/// histogram's sample is then the whole block (see [`prebins`]).
const SORT_MAX: usize = 63;
/// Buckets of the log-scale histogram: per side of the centre, 16 exact
/// distances, then 8 buckets per octave up to 2^64.
const SIDE: usize = 16 + 60 * 8;

/// One bin: values `lower ..= lower + (2^bits - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bin {
    pub lower: u64,
    pub bits: u32,
    pub count: u64,
}

fn width(span: u64) -> u32 {
    64 - span.leading_zeros()
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

/// `log2(c)` for counts up to [`LOG2_TABLE`]: look them up with
/// [`log2_count`]. Taken once per call, not once per count: the lock's
/// check sat in the binning's innermost loop.
fn log2_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..=LOG2_TABLE).map(|c| (c as f32).log2()).collect())
}

/// `log2(c)` from `table` ([`log2_table`]) when it holds `c`, else computed.
#[inline(always)]
fn log2_count(table: &[f32], c: u64) -> f32 {
    match table.get(c as usize) {
        Some(&l) => l,
        None => (c as f32).log2(),
    }
}
const LOG2_TABLE: u64 = 8192;

/// Scratch buffers the encoder reuses between calls.
#[derive(Debug, Default)]
pub struct Scratch {
    counts: Vec<u32>,
    low: Vec<u64>,
    high: Vec<u64>,
    units: Vec<(u64, u64, u64)>,
    prebins: Vec<(u64, u64, u64)>,
    best: Vec<f32>,
    from: Vec<usize>,
    symbols: Vec<u16>,
    transitions: Vec<(u32, u8)>,
    lookup: Vec<u16>,
    sample: Vec<u64>,
    bins: Vec<Bin>,
    /// The bins of [`sorted_prebins`], when tried.
    other_bins: Vec<Bin>,
    /// Wide histograms are checked against sorted pre-bins
    /// ([`encode_thorough`]).
    thorough: bool,
    /// Pre-bins are the distinct values when there are at most
    /// [`PREBINS`] of them, however wide their span ([`encode_distinct`]).
    distinct: bool,
}

/// The histogram bucket of `v` around `centre`: buckets below the centre
/// come first, in value order (see [`SIDE`]).
#[inline(always)]
fn bucket(v: u64, centre: u64) -> usize {
    let (above, m) = if v >= centre {
        (true, v - centre)
    } else {
        (false, centre - v - 1)
    };
    let k = if m < 16 {
        m as usize
    } else {
        let e = 63 - m.leading_zeros() as usize; // 4..=63
        16 + (e - 4) * 8 + ((m >> (e - 3)) & 7) as usize
    };
    if above {
        SIDE + k
    } else {
        SIDE - 1 - k
    }
}

/// Distinct values, or narrow ranges, of `latents` in value order, with
/// counts: `(lo, hi, count)`, at most [`PREBINS`] of them, sorting only
/// short blocks.
///
/// A narrow range of latents is counted value by value. A wide one goes
/// into a log-scale histogram around the median of a sample: exact near
/// the centre, 8 buckets per octave further out, each keeping its
/// smallest and largest latent. Above [`PREBINS`] distinct values or
/// buckets, neighbours are grouped into ranges of about `n / 128` values,
/// as equal-count pre-bins of the sorted latents would be.
fn prebins(latents: &[u64], sc: &mut Scratch) -> bool {
    sc.units.clear();
    sc.prebins.clear();
    let (Some(&first), n) = (latents.first(), latents.len()) else {
        return false;
    };
    let mut histogram = false;
    let (mut lo, mut hi) = (first, first);
    for &v in latents {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let span = hi - lo;
    let direct = span < (4 * n as u64 + DIRECT_SPAN).min(DIRECT_MAX);
    if n <= SORT_MAX {
        // A short block: sorting its latents is cheaper than a table of
        // about a thousand counts, and gives the same units (distinct
        // values, or the buckets below, in value order).
        sc.sample.clear();
        sc.sample.extend_from_slice(latents);
        sc.sample.sort_unstable();
        let centre = sc.sample[sc.sample.len() / 2];
        for &v in &sc.sample {
            let same = match sc.units.last() {
                Some(u) if direct => u.1 == v,
                Some(u) => bucket(u.1, centre) == bucket(v, centre),
                None => false,
            };
            match sc.units.last_mut() {
                Some(u) if same => {
                    u.1 = v;
                    u.2 += 1;
                }
                _ => sc.units.push((v, v, 1)),
            }
        }
    } else if direct {
        sc.counts.clear();
        sc.counts.resize(span as usize + 1, 0);
        for &v in latents {
            sc.counts[(v - lo) as usize] += 1;
        }
        sc.units.extend(
            sc.counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(i, &c)| (lo + i as u64, lo + i as u64, c as u64)),
        );
    } else if sc.distinct && distinct_units(latents, sc, PREBINS) {
        // Few values far apart (corrections that repeat): each its own unit.
    } else {
        histogram = true;
        sc.sample.clear();
        let stride = n.div_ceil(63).max(1);
        sc.sample.extend(latents.iter().step_by(stride));
        sc.sample.sort_unstable();
        let centre = sc.sample[sc.sample.len() / 2];
        sc.counts.clear();
        sc.counts.resize(2 * SIDE, 0);
        sc.low.clear();
        sc.low.resize(2 * SIDE, u64::MAX);
        sc.high.clear();
        sc.high.resize(2 * SIDE, 0);
        for &v in latents {
            let b = bucket(v, centre);
            sc.counts[b] += 1;
            sc.low[b] = sc.low[b].min(v);
            sc.high[b] = sc.high[b].max(v);
        }
        sc.units.extend(
            (0..2 * SIDE)
                .filter(|&b| sc.counts[b] > 0)
                .map(|b| (sc.low[b], sc.high[b], sc.counts[b] as u64)),
        );
    }
    group_units(n, sc);
    histogram
}

/// `sc.units` into `sc.prebins`: as they are when at most [`PREBINS`],
/// else neighbours grouped into about `n / 128` values each.
fn group_units(n: usize, sc: &mut Scratch) {
    if sc.units.len() <= PREBINS {
        sc.prebins.extend_from_slice(&sc.units);
        return;
    }
    let target = n.div_ceil(PREBINS / 2) as u64;
    for &(lo, hi, c) in &sc.units {
        match sc.prebins.last_mut() {
            Some(p) if p.2 < target => {
                p.1 = hi;
                p.2 += c;
            }
            _ => sc.prebins.push((lo, hi, c)),
        }
    }
}

/// Pre-bins from the sorted latents: distinct values, grouped into equal
/// counts when there are more than [`PREBINS`] (pco's pre-bins).
fn sorted_prebins(latents: &[u64], sc: &mut Scratch) {
    sc.prebins.clear();
    distinct_units(latents, sc, usize::MAX);
    group_units(latents.len(), sc);
}

/// Sorts `latents` into `sc.units` as distinct values with counts;
/// `false` (units cleared) when there are more than `most`.
fn distinct_units(latents: &[u64], sc: &mut Scratch, most: usize) -> bool {
    sc.sample.clear();
    sc.sample.extend_from_slice(latents);
    sc.sample.sort_unstable();
    sc.units.clear();
    for &v in &sc.sample {
        if let Some(u) = sc.units.last_mut().filter(|u| u.0 == v) {
            u.2 += 1;
        } else if sc.units.len() == most {
            sc.units.clear();
            return false;
        } else {
            sc.units.push((v, v, 1));
        }
    }
    true
}

/// The bins that minimise the estimated size of `latents`.
pub fn choose_bins(latents: &[u64]) -> Vec<Bin> {
    let mut bins = Vec::new();
    choose_bins_with(latents, &mut Scratch::default(), &mut bins);
    bins
}

/// [`choose_bins`] with reusable scratch buffers, into `bins`.
///
/// The dynamic program: `best[i]` is the cheapest binning of pre-bins
/// `0..i`, its last bin starting at pre-bin `from[i]`. A bin over pre-bins
/// `j..i` costs `META_BITS + c × (log2(n / c) + width)`; going further left
/// only adds values and width, so once `META_BITS + c × width` alone
/// exceeds the best cost found for `i`, no longer bin can win.
pub fn choose_bins_with(latents: &[u64], sc: &mut Scratch, bins: &mut Vec<Bin>) {
    let histogram = prebins(latents, sc);
    let n = latents.len();
    let cost = program(n, sc, bins);
    // The log-scale histogram is coarse far from its centre: where its
    // bins cost more than WIDE_BITS a value and one value is a tenth of
    // them or more, [`encode_thorough`] tries equal-count pre-bins of the
    // sorted latents (pco's) too, and keeps the cheaper.
    if sc.thorough
        && histogram
        && cost > WIDE_BITS * n as f32
        && sc.units.iter().any(|u| 10 * u.2 >= n as u64)
    {
        let mut other = std::mem::take(&mut sc.other_bins);
        sorted_prebins(latents, sc);
        if program(n, sc, &mut other) < cost {
            std::mem::swap(bins, &mut other);
        }
        sc.other_bins = other;
    }
}

/// The dynamic program over `sc.prebins` into `bins`; returns its
/// estimated cost in bits.
fn program(n: usize, sc: &mut Scratch, bins: &mut Vec<Bin>) -> f32 {
    bins.clear();
    let pre = &sc.prebins;
    if pre.len() <= 1 {
        let (lo, hi) = pre.first().map(|p| (p.0, p.1)).unwrap_or((0, 0));
        let bits = width(hi - lo);
        bins.push(Bin {
            lower: lo,
            bits,
            count: n as u64,
        });
        return META_BITS + n as f32 * bits as f32;
    }
    let log2 = log2_table();
    let log_n = log2_count(log2, n as u64);
    let b = pre.len();
    sc.best.clear();
    sc.best.resize(b + 1, f32::INFINITY);
    sc.from.clear();
    sc.from.resize(b + 1, 0);
    sc.best[0] = 0.0;
    for i in 1..=b {
        let hi = pre[i - 1].1;
        let mut count = 0u64;
        let mut best = f32::INFINITY;
        let mut from = i - 1;
        for j in (0..i).rev() {
            count += pre[j].2;
            // Through i64: one signed conversion instead of the unsigned
            // sequence (the same value: count is at most the block's length).
            let c = count as i64 as f32;
            let w = width(hi - pre[j].0) as f32;
            if META_BITS + c * w >= best {
                break;
            }
            let cost = sc.best[j] + META_BITS + c * (log_n - log2_count(log2, count) + w);
            if cost < best {
                best = cost;
                from = j;
            }
        }
        sc.best[i] = best;
        sc.from[i] = from;
    }
    let mut i = b;
    while i > 0 {
        let j = sc.from[i];
        let lower = pre[j].0;
        bins.push(Bin {
            lower,
            bits: width(pre[i - 1].1 - lower),
            count: pre[j..i].iter().map(|p| p.2).sum(),
        });
        i = j;
    }
    bins.reverse();
    sc.best[b]
}

/// The table log and weights for bins with these counts over `n` values:
/// of the logs from the smallest that holds every bin up to
/// `min(log2(n) - 1, ENCODE_MAX_LOG)`, the one with the smallest estimated
/// size, table header and final states included, plus [`SLOT_BITS`] per
/// slot: a smaller table builds and decodes faster.
fn choose_table(counts: &[u64], n: usize) -> (u32, Vec<u32>) {
    let floor_log_n = usize::BITS - 1 - n.max(1).leading_zeros();
    let least = ceil_log2(counts.len());
    let most = least.max(floor_log_n.saturating_sub(1).min(ENCODE_MAX_LOG));
    let mut best: Option<(f64, u32, Vec<u32>)> = None;
    for log in least..=most {
        let w = ans::quantize(counts, log);
        let mut bits = (STATES as u32 * log) as f64 + SLOT_BITS * (1u64 << log) as f64;
        for (&c, &wi) in counts.iter().zip(&w) {
            bits += c as f64 * (log as f64 - (wi as f64).log2());
            bits += 8.0 * len_u64(wi as u64 - 1) as f64;
        }
        if best.as_ref().is_none_or(|b| bits < b.0) {
            best = Some((bits, log, w));
        }
    }
    let (_, log, w) = best.expect("at least one table log");
    (log, w)
}

/// Appends `latents` coded with the bins [`choose_bins`] picks.
pub fn encode(latents: &[u64], out: &mut Vec<u8>) {
    encode_scratch(latents, out, &mut Scratch::default())
}

/// [`encode`] with reusable scratch buffers.
pub fn encode_scratch(latents: &[u64], out: &mut Vec<u8>, sc: &mut Scratch) {
    let mut bins = std::mem::take(&mut sc.bins);
    choose_bins_with(latents, sc, &mut bins);
    encode_bins(latents, &bins, out, sc);
    sc.bins = bins;
}

/// [`encode_scratch`] for latents that are likely few distinct values
/// spread over a wide range (ULP corrections that repeat with their
/// integer): up to [`PREBINS`] distinct values are pre-bins of their own,
/// where the log-scale histogram would share a bin of many offset bits
/// among them. Costs a sort of the latents. The layout is the same.
pub fn encode_distinct(latents: &[u64], out: &mut Vec<u8>, sc: &mut Scratch) {
    sc.distinct = true;
    encode_scratch(latents, out, sc);
    sc.distinct = false;
}

/// [`encode_scratch`] that, where the bins from the log-scale histogram
/// cost more than [`WIDE_BITS`] a value, also tries equal-count pre-bins
/// of the sorted latents and keeps the cheaper: a wide spread of decimal
/// integers with a few frequent values (a CPU clock at its floor, then
/// anywhere up to its ceiling). Costs a sort where it tries. The layout is
/// the same.
pub fn encode_thorough(latents: &[u64], out: &mut Vec<u8>, sc: &mut Scratch) {
    sc.thorough = true;
    encode_scratch(latents, out, sc);
    sc.thorough = false;
}

/// Appends `latents` coded with `bins` (sorted, disjoint, covering every latent).
pub fn encode_with(latents: &[u64], bins: &[Bin], out: &mut Vec<u8>) {
    encode_bins(latents, bins, out, &mut Scratch::default())
}

/// Appends `latents` as one bin over their whole range: frame of
/// reference, `width(max - min)` bits a value, no table and no tANS state
/// (what [`encode`] writes when its program picks one bin). Short blocks
/// use it: below about 64 values a table rarely pays for its header, and
/// choosing bins costs more than coding them.
pub fn encode_one_bin(latents: &[u64], out: &mut Vec<u8>) {
    let (mut lo, mut hi) = (u64::MAX, 0);
    for &v in latents {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if latents.is_empty() {
        (lo, hi) = (0, 0);
    }
    write_u64(out, 0);
    write_one_bin(latents, lo, width(hi - lo), out);
}

/// The payload of a one-bin block after its bin count: lower end, width,
/// offsets.
fn write_one_bin(latents: &[u64], lower: u64, bits: u32, out: &mut Vec<u8>) {
    write_u64(out, lower);
    out.push(bits as u8);
    let mut w = BitWriter::append_to(std::mem::take(out));
    for &v in latents {
        w.write_bits(v - lower, bits);
    }
    *out = w.finish();
}

fn encode_bins(latents: &[u64], bins: &[Bin], out: &mut Vec<u8>, sc: &mut Scratch) {
    write_u64(out, bins.len() as u64 - 1);
    if bins.len() == 1 {
        write_one_bin(latents, bins[0].lower, bins[0].bits, out);
        return;
    }
    let counts: Vec<u64> = bins.iter().map(|b| b.count).collect();
    let (log, weights) = choose_table(&counts, latents.len());
    out.push(log as u8);
    let mut prev = 0;
    for (i, (bin, &w)) in bins.iter().zip(&weights).enumerate() {
        write_u64(out, if i == 0 { bin.lower } else { bin.lower - prev });
        prev = bin.lower;
        out.push(bin.bits as u8);
        write_u64(out, w as u64 - 1);
    }
    bin_indices(latents, bins, &mut sc.lookup, &mut sc.symbols);
    let enc = ans::Encoder::new(&weights, log).expect("quantize gives valid weights");
    let finals = enc.encode(&sc.symbols, &mut sc.transitions);
    let mut w = BitWriter::append_to(std::mem::take(out));
    for f in finals {
        w.write_bits(f as u64, log);
    }
    for ((&v, &s), &(t, tn)) in latents.iter().zip(&sc.symbols).zip(&sc.transitions) {
        let bin = bins[s as usize];
        let offset = v - bin.lower;
        if bin.bits + tn as u32 <= 64 {
            // One field: the offset, then the transition bits.
            w.write_bits((offset << tn) | t as u64, bin.bits + tn as u32);
        } else {
            w.write_bits(offset, bin.bits);
            w.write_bits(t as u64, tn as u32);
        }
    }
    *out = w.finish();
}

/// The bin of each latent into `symbols`: a direct table over a small
/// range; else a table by the top bits of `v - lower` (up to 4,096 slices) that
/// names the bin holding the start of each slice, then a binary search
/// among the few bins that start inside the slice.
fn bin_indices(latents: &[u64], bins: &[Bin], lookup: &mut Vec<u16>, symbols: &mut Vec<u16>) {
    let lo = bins[0].lower;
    let last = bins[bins.len() - 1];
    let span = (last.lower - lo).saturating_add(1);
    symbols.clear();
    lookup.clear();
    if span <= 4 * latents.len() as u64 + 64 {
        lookup.resize(span as usize, 0);
        for (i, pair) in bins.windows(2).enumerate() {
            let from = (pair[0].lower - lo) as usize;
            let to = (pair[1].lower - lo) as usize;
            lookup[from..to].fill(i as u16);
        }
        let at = (last.lower - lo) as usize;
        lookup[at] = (bins.len() - 1) as u16;
        symbols.extend(
            latents
                .iter()
                .map(|&v| lookup[((v - lo).min(span - 1)) as usize]),
        );
        return;
    }
    // About two slices a latent, at most 2^12.
    let slice_bits = (ceil_log2(latents.len()) + 1).min(12);
    let shift = width((span - 1) >> slice_bits);
    let slices = ((span - 1) >> shift) as usize + 1;
    // lookup[s]: the bin holding the first latent of slice s; one more
    // entry closes the last slice.
    lookup.resize(slices + 1, (bins.len() - 1) as u16);
    let mut b = 0usize;
    for (slice, entry) in lookup[..slices].iter_mut().enumerate() {
        let start = lo + ((slice as u64) << shift);
        while b + 1 < bins.len() && bins[b + 1].lower <= start {
            b += 1;
        }
        *entry = b as u16;
    }
    symbols.extend(latents.iter().map(|&v| {
        let slice = (((v - lo) >> shift) as usize).min(slices - 1);
        let (first, last) = (lookup[slice] as usize, lookup[slice + 1] as usize);
        let inside = &bins[first + 1..=last.max(first)];
        (first + inside.partition_point(|bin| bin.lower <= v)) as u16
    }));
}

/// Latents decoded per batch: the decoder hands them to its caller in
/// slices of this many (fewer in the last).
pub const BATCH: usize = 512;

/// One decode-table slot with its bin folded in (16 bytes), with what the
/// hot loop needs precomputed.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The bin's lower bound.
    lower: u64,
    /// The next state before the transition bits are added.
    next: u16,
    /// `2^ans_bits - 1`: the transition bits of the field.
    ans_mask: u16,
    /// Transition bits.
    ans_bits: u8,
    /// Offset bits plus transition bits, read as one field when at most 57.
    total_bits: u8,
    /// `63 - total_bits`: the field is `(word >> 1) >> shift` (0 bits too).
    shift: u8,
}

/// A parsed header: how the values of the bit stream are coded.
enum Table {
    /// One bin: every value is `lower` plus `bits` raw bits.
    Packed { lower: u64, bits: u32 },
    /// Bins coded with tANS: one slot per state.
    Ans {
        slots: Vec<Slot>,
        log: u32,
        /// The widest `total_bits` of any slot.
        widest: u32,
    },
}

/// Reads the header: the bins, and with two or more the table.
fn read_table(r: &mut ByteReader<'_>) -> Result<Table> {
    let bins = r.varint()?;
    if bins >= 1 << ans::MAX_LOG {
        return Err(r.corrupt(format!(
            "{} bins, at most {}",
            u128::from(bins) + 1,
            1 << ans::MAX_LOG
        )));
    }
    let bins = bins as usize + 1;
    if bins == 1 {
        let lower = r.varint()?;
        let bits = r.u8()? as u32;
        if bits > 64 {
            return Err(r.corrupt(format!("offset width {bits} exceeds 64")));
        }
        return Ok(Table::Packed { lower, bits });
    }
    let log = r.u8()? as u32;
    if log > ans::MAX_LOG || bins > 1 << log {
        return Err(r.corrupt(format!("table log {log} for {bins} bins")));
    }
    // Per bin: its lower bound and offset width; and its weight.
    let mut info: Vec<(u64, u8)> = Vec::with_capacity(bins);
    let mut weights = Vec::with_capacity(bins);
    let mut prev: u64 = 0;
    for i in 0..bins {
        let d = r.varint()?;
        let lower = if i == 0 {
            d
        } else if d == 0 {
            return Err(r.corrupt(format!("bin {i} does not start above bin {}", i - 1)));
        } else {
            prev.checked_add(d)
                .ok_or_else(|| r.corrupt(format!("bin {i} starts beyond 2^64")))?
        };
        prev = lower;
        let bits = r.u8()?;
        if bits > 64 {
            return Err(r.corrupt(format!("bin {i}: offset width {bits} exceeds 64")));
        }
        let w = r.varint()?;
        if w >= 1 << log {
            return Err(r.corrupt(format!("bin {i}: weight {} above the table size", w + 1)));
        }
        info.push((lower, bits));
        weights.push(w as u32 + 1);
    }
    ans::check_weights(&weights, log).map_err(|e| e.within("entropy-coded integers"))?;
    // The table as `ans::decode_table` builds it, in place: spread the
    // symbols (kept in `next` for now), then number each symbol's slots
    // in slot order.
    let size = 1u32 << log;
    let mut slots = vec![Slot::default(); size as usize];
    ans::spread_with(&weights, log, |at, s| slots[at].next = s);
    let mut occurrence = weights;
    let mut widest = 0;
    for slot in &mut slots {
        let s = slot.next as usize;
        let j = occurrence[s];
        occurrence[s] = j + 1;
        let bits = log - (31 - j.leading_zeros());
        let (lower, width) = info[s];
        let total = width + bits as u8;
        widest = widest.max(total as u32);
        *slot = Slot {
            lower,
            next: ((j << bits) - size) as u16,
            ans_mask: ((1u32 << bits) - 1) as u16,
            ans_bits: bits as u8,
            total_bits: total,
            shift: 63u8.saturating_sub(total),
        };
    }
    Ok(Table::Ans { slots, log, widest })
}

/// The bit stream of the values, read without a bounds branch that can fail.
///
/// Q: Why is a read never out of bounds?
/// A: A read takes the 8 bytes at its bit position. One batch reads at
/// most `BATCH × widest` bits. A batch runs on the stream itself while
/// that many bits and 8 bytes more are left in it; the batches after that
/// run on a copy of the rest of the stream with that much zero padding
/// behind it, and each starts only at a position inside the stream
/// (checked). A corrupt stream can make the decoder read padding (zeros);
/// the end checks (position within the stream, states back at slot 0,
/// only zero bits after the last value) then refuse it.
struct Bits<'a> {
    stream: &'a [u8],
    /// The most bits one value takes.
    widest: u32,
    /// The copy of the stream's last bytes, from byte `tail_from` on.
    tail: Vec<u8>,
    tail_from: usize,
}

impl<'a> Bits<'a> {
    fn new(stream: &'a [u8], widest: u32) -> Self {
        Bits {
            stream,
            widest,
            tail: Vec::new(),
            tail_from: usize::MAX,
        }
    }

    /// Bits of the stream itself.
    fn len(&self) -> usize {
        self.stream.len() * 8
    }

    /// The bytes a batch from bit `pos` reads and its position in them.
    #[inline(always)]
    fn batch(&mut self, pos: usize) -> (&[u8], usize) {
        let reach = BATCH * self.widest as usize + 64;
        if self.tail_from == usize::MAX && pos + reach > self.len() {
            let from = (pos / 8).min(self.stream.len());
            self.tail.extend_from_slice(&self.stream[from..]);
            self.tail.resize(self.tail.len() + reach.div_ceil(8) + 8, 0);
            self.tail_from = from;
        }
        if self.tail_from == usize::MAX {
            (self.stream, pos)
        } else {
            (&self.tail, pos - self.tail_from * 8)
        }
    }

    /// Checks before a batch that it starts inside the stream.
    #[inline]
    fn check(&self, pos: usize, base: usize) -> Result<()> {
        if pos > self.len() {
            return Err(Error::truncated(
                "entropy-coded integers",
                (base + self.stream.len()) as u64,
                format!(
                    "the values need more than the {} bits of the stream",
                    self.len()
                ),
            ));
        }
        Ok(())
    }

    /// Checks after the last value: the stream was long enough, and only
    /// zero padding (under 8 bits) follows.
    fn finish(&self, pos: usize, base: usize) -> Result<()> {
        self.check(pos, base)?;
        let left = self.len() - pos;
        let last = self.stream.last().copied().unwrap_or(0);
        if left >= 8 || (left > 0 && last & ((1u8 << left) - 1) != 0) {
            return Err(Error::corrupt(
                "bit stream",
                (base + pos.div_ceil(8)) as u64,
                format!("{left} unexpected trailing bits"),
            ));
        }
        Ok(())
    }
}

/// The 64 bits of `bytes` from bit `pos` on (the caller knows 8 bytes are there).
#[inline(always)]
fn word_at(bytes: &[u8], pos: usize) -> u64 {
    let at = pos >> 3;
    let b: [u8; 8] = bytes[at..at + 8].try_into().unwrap_or([0; 8]);
    u64::from_be_bytes(b) << (pos & 7)
}

/// The `n` bits (`0..=64`) of `bytes` at bit `pos`.
#[inline(always)]
fn bits_at(bytes: &[u8], pos: usize, n: u32) -> u64 {
    if n <= 57 {
        (word_at(bytes, pos) >> 1) >> (63 - n)
    } else {
        let hi = word_at(bytes, pos) >> 32;
        let lo = (word_at(bytes, pos + 32) >> 1) >> (63 - (n - 32));
        (hi << (n - 32)) | lo
    }
}

/// Decodes exactly `n` latents from all of `payload`, calling `sink` on each.
#[inline]
pub fn decode(payload: &[u8], n: usize, mut sink: impl FnMut(u64)) -> Result<()> {
    decode_batches(payload, n, |batch| batch.iter().for_each(|&v| sink(v)))
}

/// Decodes exactly `n` latents from all of `payload`, handing them to
/// `sink` in order, [`BATCH`] at a time (the last batch may be shorter).
///
/// Q: Why is this fast?
/// A: The header is read and checked once; the bit stream is checked once
/// per batch, its last bytes copied behind zero padding ([`Bits`]), so a value
/// costs one table look-up, one 8-byte load, two shifts and a mask, with no
/// bounds branch that can fail and no error path. Four states take turns,
/// so four table look-ups are in flight at once.
///
/// Always inlined, so that a caller compiled for more instructions (see
/// [`crate::codec::adaptive_entropy::decode`]) decodes with them.
#[inline(always)]
pub fn decode_batches(payload: &[u8], n: usize, mut sink: impl FnMut(&[u64])) -> Result<()> {
    let mut r = ByteReader::new(payload, "entropy-coded integers");
    let table = read_table(&mut r)?;
    let at = r.position();
    let stream = r.rest();
    let mut batch = [0u64; BATCH];
    match table {
        Table::Packed { lower, bits } => {
            if (n as u64).saturating_mul(bits as u64) > stream.len() as u64 * 8 {
                return Err(Error::truncated(
                    "entropy-coded integers",
                    payload.len() as u64,
                    format!(
                        "{n} values of {bits} bits do not fit in {} bytes",
                        stream.len()
                    ),
                ));
            }
            let mut bits_in = Bits::new(stream, bits);
            let mut pos = 0;
            let mut done = 0;
            while done < n {
                let len = (n - done).min(BATCH);
                let (bytes, mut p) = bits_in.batch(pos);
                for v in &mut batch[..len] {
                    *v = lower.wrapping_add(bits_at(bytes, p, bits));
                    p += bits as usize;
                }
                pos += len * bits as usize;
                sink(&batch[..len]);
                done += len;
            }
            bits_in.finish(pos, at)
        }
        Table::Ans { slots, log, widest } => {
            if stream.len() * 8 < STATES * log as usize {
                return Err(Error::truncated(
                    "entropy-coded integers",
                    payload.len() as u64,
                    "the four ANS states do not fit",
                ));
            }
            let mut bits_in = Bits::new(stream, widest);
            let mut x = [0usize; STATES];
            let (bytes, p) = bits_in.batch(0);
            for (i, s) in x.iter_mut().enumerate() {
                *s = bits_at(bytes, p + i * log as usize, log) as usize;
            }
            let mut pos = STATES * log as usize;
            let mut done = 0;
            while done < n {
                bits_in.check(pos, at)?;
                let len = (n - done).min(BATCH);
                let (bytes, p) = bits_in.batch(pos);
                let end = if widest <= 57 {
                    ans_batch::<true>(&slots, bytes, p, &mut x, &mut batch[..len])
                } else {
                    ans_batch::<false>(&slots, bytes, p, &mut x, &mut batch[..len])
                };
                pos += end - p;
                sink(&batch[..len]);
                done += len;
            }
            bits_in.finish(pos, at)?;
            if x != [0; STATES] {
                return Err(Error::corrupt(
                    "entropy-coded integers",
                    (at + pos / 8) as u64,
                    format!("ANS states end at {x:?}, not at slot 0"),
                ));
            }
            Ok(())
        }
    }
}

/// Decodes `out.len()` values (at most [`BATCH`]) from bit `pos`; returns
/// the position after them. `NARROW`: every slot's offset and transition
/// fit one 57-bit read.
///
/// A state `x` is always below the table size: `next + t` with `t` below
/// `2^ans_bits` stays in the table by construction ([`ans::decode_table`]).
#[inline(always)]
fn ans_batch<const NARROW: bool>(
    slots: &[Slot],
    bytes: &[u8],
    mut pos: usize,
    x: &mut [usize; STATES],
    out: &mut [u64],
) -> usize {
    // Q: Why four named states and a macro instead of a closure?
    // A: Each value needs a table look-up that depends on the previous
    // value *of the same state*. With four states the CPU works on four
    // independent chains at once. A macro keeps the states and the bit
    // position in registers (a closure captures them by reference).
    // The table has 2^log slots: masking a state (a no-op) lets the
    // compiler drop the bounds check of the look-up.
    let mask = slots.len() - 1;
    let [mut s0, mut s1, mut s2, mut s3] = *x;
    macro_rules! step {
        ($s:ident) => {{
            let slot = slots[$s & mask];
            let ab = slot.ans_bits as u32;
            let total = slot.total_bits as u32;
            let (offset, t) = if NARROW || total <= 57 {
                let at = pos >> 3;
                debug_assert!(at + 8 <= bytes.len());
                // SAFETY: `Bits::batch` hands out bytes that reach at least
                // `BATCH × widest + 64` bits past the batch's start, a batch
                // decodes at most `BATCH` values, and no slot's `total_bits`
                // exceeds `widest` (`read_table` computes it as their
                // maximum): `at + 8 <= bytes.len()`.
                let word = u64::from_be_bytes(unsafe {
                    std::ptr::read_unaligned(bytes.as_ptr().add(at).cast::<[u8; 8]>())
                });
                let field = ((word << (pos & 7)) >> 1) >> slot.shift;
                (field >> ab, field & slot.ans_mask as u64)
            } else {
                let ob = total - ab;
                (
                    bits_at(bytes, pos, ob),
                    bits_at(bytes, pos + ob as usize, ab),
                )
            };
            pos += total as usize;
            $s = slot.next as usize + t as usize;
            slot.lower.wrapping_add(offset)
        }};
    }
    let mut quads = out.chunks_exact_mut(STATES);
    for q in &mut quads {
        q[0] = step!(s0);
        q[1] = step!(s1);
        q[2] = step!(s2);
        q[3] = step!(s3);
    }
    let rest = quads.into_remainder();
    if let Some(v) = rest.first_mut() {
        *v = step!(s0);
    }
    if let Some(v) = rest.get_mut(1) {
        *v = step!(s1);
    }
    if let Some(v) = rest.get_mut(2) {
        *v = step!(s2);
    }
    *x = [s0, s1, s2, s3];
    pos
}

/// The exact encoded size of `latents` with `bins`, in bytes, without encoding.
pub fn size_with(latents: &[u64], bins: &[Bin]) -> usize {
    let mut header = len_u64(bins.len() as u64 - 1);
    if bins.len() == 1 {
        let bits = bins[0].bits as usize * latents.len();
        return header + len_u64(bins[0].lower) + 1 + bits.div_ceil(8);
    }
    let mut buf = Vec::new();
    encode_with(latents, bins, &mut buf);
    header = buf.len();
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bin count of 2^64 is an error that says so, not an overflow in
    /// its own message (a debug build panicked; found by a break test).
    #[test]
    fn the_largest_bin_count_is_an_error() {
        let payload = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let err = decode(&payload, 1, |_| {}).unwrap_err().to_string();
        assert!(err.contains("18446744073709551616 bins"), "{err}");
    }

    /// Half zeros, half thirty ULP corrections near 2^28, repeated: a bin
    /// each with [`encode_distinct`], where the log-scale histogram around
    /// 0 shares bins of about 24 offset bits among them.
    #[test]
    fn few_wide_values_take_a_bin_each() {
        let few: Vec<u64> = (1..=30u64)
            .map(|i| (1 << 28) + (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 36))
            .collect();
        // Half of them 0 (exact values), the others one of the thirty.
        let latents: Vec<u64> = (0..2000u64)
            .map(|i| {
                if i % 2 == 0 {
                    0
                } else {
                    few[((i * i + 7 * i) % 30) as usize]
                }
            })
            .collect();
        let (mut plain, mut distinct) = (Vec::new(), Vec::new());
        encode(&latents, &mut plain);
        let mut sc = Scratch::default();
        encode_distinct(&latents, &mut distinct, &mut sc);
        let mut back = Vec::new();
        decode(&distinct, latents.len(), |v| back.push(v)).unwrap();
        assert_eq!(back, latents);
        // Measured: 2.4 bits a value against 7.
        assert!(
            distinct.len() * 2 < plain.len(),
            "{} vs {}",
            distinct.len(),
            plain.len()
        );
        // More than PREBINS distinct values: the histogram, as `encode`.
        let many: Vec<u64> = (0..2000u64).map(|i| (1 << 40) + i * 1_000_003).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode(&many, &mut a);
        encode_distinct(&many, &mut b, &mut sc);
        assert_eq!(a, b);
    }

    /// A clock's integers (PCP's `hinv.cpu.clock` in kHz): 30 % at its
    /// floor, the rest anywhere up to 500,000 above it, some of them
    /// repeated. The histogram around the median has bins of about 15
    /// offset bits far out; sorted equal-count pre-bins are cheaper.
    #[test]
    fn a_wide_spread_with_a_frequent_value_tries_sorted_prebins() {
        let mix = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        let latents: Vec<u64> = (0..1700u64)
            .map(|i| match mix(i) % 10 {
                0..=2 => 2 * 1_199_988,
                3 => 2 * (1_200_000 + (mix(i) >> 30) % 64 * 7_001),
                _ => 2 * (1_200_000 + (mix(i) >> 24) % 500_000),
            })
            .collect();
        let (mut plain, mut thorough) = (Vec::new(), Vec::new());
        encode(&latents, &mut plain);
        encode_thorough(&latents, &mut thorough, &mut Scratch::default());
        let mut back = Vec::new();
        decode(&thorough, latents.len(), |v| back.push(v)).unwrap();
        assert_eq!(back, latents);
        // Measured: 3,180 bytes against 4,047.
        assert!(
            thorough.len() * 10 < plain.len() * 9,
            "{} vs {}",
            thorough.len(),
            plain.len()
        );
    }

    fn round_trip(latents: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(latents, &mut out);
        let mut back = Vec::with_capacity(latents.len());
        decode(&out, latents.len(), |v| back.push(v)).unwrap();
        assert_eq!(back, latents);
        out
    }

    #[test]
    fn golden_bytes_one_bin_is_frame_of_reference() {
        // 1 bin (0), lower 10 (0a), 2 bits; 10, 12, 11 -> 00 10 01 -> 0010 0100
        assert_eq!(round_trip(&[10, 12, 11]), [0x00, 0x0A, 0x02, 0x24]);
    }

    #[test]
    fn golden_bytes_two_bins() {
        // Nine 7s and one 1000: 2 bins (01). Table log 1 (01), weights 1
        // and 1, estimates as small as log 2 with weights 3 and 1 (nine
        // values at 0.42 bits and one at 2, but two more state bits and
        // twice the slots), and the smaller table wins the tie;
        // bin 7 (07), 0 bits (00), weight 1 (00); bin 7 + 993 (e1 07),
        // 0 bits, weight 1 (00); then two bytes of bit stream: the four
        // 1-bit final states and one transition bit per value (00 40).
        let mut v = vec![7u64; 9];
        v.push(1000);
        let out = round_trip(&v);
        assert_eq!(
            out,
            [0x01, 0x01, 0x07, 0x00, 0x00, 0xE1, 0x07, 0x00, 0x00, 0x00, 0x40]
        );
    }

    #[test]
    fn skewed_deltas_beat_fixed_width() {
        // Mostly -2..=2, sometimes ±40: 7 bits each fixed-width.
        let v: Vec<u64> = (0..4096u64)
            .map(|i| {
                let d: i64 = if i % 97 == 0 {
                    40
                } else {
                    (i * 7 % 5) as i64 - 2
                };
                (d + 64) as u64
            })
            .collect();
        let bytes = round_trip(&v).len();
        let fixed = 4096 * 7 / 8;
        assert!(bytes * 2 < fixed, "{bytes} bytes vs {fixed} fixed-width");
    }

    #[test]
    fn edges_round_trip() {
        round_trip(&[]);
        round_trip(&[0]);
        round_trip(&[u64::MAX]);
        round_trip(&[0, u64::MAX]);
        round_trip(&[u64::MAX, 0, u64::MAX - 1, 1, 1 << 63]);
        round_trip(
            &(0..5000)
                .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect::<Vec<_>>(),
        );
        round_trip(&(0..300).map(|i| i as u64 % 7).collect::<Vec<_>>());
        round_trip(&(0..3000).map(|i| i as u64).collect::<Vec<_>>());
    }

    #[test]
    fn every_prefix_is_an_error() {
        let v: Vec<u64> = (0..300u64)
            .map(|i| (i * i) % 23 + (i % 50 == 0) as u64 * 5000)
            .collect();
        let out = round_trip(&v);
        for cut in 0..out.len() {
            assert!(decode(&out[..cut], v.len(), |_| {}).is_err(), "cut {cut}");
        }
    }

    /// The bin program without any pruning: every bin `j..i` is costed.
    fn choose_bins_unpruned(latents: &[u64]) -> Vec<Bin> {
        let mut sc = Scratch::default();
        prebins(latents, &mut sc);
        let pre = &sc.prebins;
        let log2 = log2_table();
        let log_n = log2_count(log2, latents.len() as u64);
        let b = pre.len();
        let mut best = vec![f32::INFINITY; b + 1];
        let mut from = vec![0; b + 1];
        best[0] = 0.0;
        for i in 1..=b {
            let mut count = 0;
            for j in (0..i).rev() {
                count += pre[j].2;
                let w = width(pre[i - 1].1 - pre[j].0) as f32;
                let cost =
                    best[j] + META_BITS + count as f32 * (log_n - log2_count(log2, count) + w);
                if cost < best[i] {
                    best[i] = cost;
                    from[i] = j;
                }
            }
        }
        let mut bins = Vec::new();
        let mut i = b;
        while i > 0 {
            let j = from[i];
            bins.push(Bin {
                lower: pre[j].0,
                bits: width(pre[i - 1].1 - pre[j].0),
                count: pre[j..i].iter().map(|p| p.2).sum(),
            });
            i = j;
        }
        bins.reverse();
        bins
    }

    proptest::proptest! {
        /// Pruning drops only bins that cannot win: the same bins as the
        /// program that costs every one, on mixtures of a narrow bulk and
        /// wide outliers, few and many values, direct and histogram pre-bins.
        #[test]
        fn pruning_keeps_the_cheapest_bins(
            seed in proptest::prelude::any::<u64>(),
            n in 2usize..3000,
            bulk_bits in 0u32..20,
            outlier_bits in 0u32..64,
            outlier_per_mille in 0u64..300,
        ) {
            let mut x = seed | 1;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mask = |bits: u32| if bits == 0 { 0 } else { u64::MAX >> (64 - bits) };
            let latents: Vec<u64> = (0..n)
                .map(|_| {
                    let r = next();
                    if r % 1000 < outlier_per_mille {
                        next() & mask(outlier_bits)
                    } else {
                        (1 << 40) + (next() & mask(bulk_bits))
                    }
                })
                .collect();
            proptest::prop_assert_eq!(choose_bins(&latents), choose_bins_unpruned(&latents));
        }
    }

    #[test]
    fn size_with_is_exact() {
        for v in [
            vec![1u64, 2, 3],
            (0..999u64).map(|i| i % 13 * 1000).collect(),
        ] {
            let bins = choose_bins(&v);
            let mut out = Vec::new();
            encode_with(&v, &bins, &mut out);
            assert_eq!(size_with(&v, &bins), out.len());
        }
    }
}
