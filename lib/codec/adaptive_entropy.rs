//! Phase 03c's value codec: 03b's schemes plus entropy coding, delta
//! orders, a dictionary and binned raw bits, chosen per block.
//!
//! 03b packs decimal integers at a fixed width: every value pays for the
//! widest. Real series are skewed (a temperature mostly moves by a tenth,
//! now and then by five degrees; a rain gauge mostly reads 0), so this
//! codec codes integers with [`crate::codec::entropy`] (bins + tANS), on
//! the values, their deltas or their deltas of deltas, whichever a block
//! needs (pco does the same, per chunk).
//!
//! | tag | scheme | layout after the tag | good for |
//! |-----|--------|----------------------|----------|
//! | 0 | constant | 8 bytes: the value's bits, LE | `up`, flags |
//! | 1 | Gorilla XOR | the [`crate::codec::xor`] stream | rarely: true doubles that XOR well |
//! | 2 | decimal, packed | `e` (1 byte), [`crate::codec::intpack`] integers | short blocks |
//! | 3 | decimal, entropy-coded | `e` (1 byte), order `d` and flags (1 byte), see below | gauges (`d` 0), smooth series (`d` 1), trends (`d` 2) |
//! | 4 | dictionary | `m - 1` (varint), `m` values (8 bytes LE each, most frequent first), [`crate::codec::entropy`] over the `n` indices | few distinct values that are not short decimals |
//! | 5 | binned bits | [`crate::codec::entropy`] over the `n` raw bit patterns | true doubles: bins split sign, exponent and top mantissa from raw low bits (as ALP-RD does) |
//! | 6 | multiple | divisor `s` (f64 LE, positive, finite), then as tag 3 after `e`: value = `k / s` plus its correction | a step that is no power of ten, kept to full precision: a share of a fixed size, minutes as hours (pco's float multiplier) |
//!
//! Tag 3 in full:
//!
//! ```text
//! | e (u8) | d | G << 6 | C << 7 (u8) | g - 1 (varint), if G |
//! | the first d terms: k[0], then Δk[1] (zigzag varints) |
//! | length of the integer stream (varint), if C |
//! | integer stream: crate::codec::entropy over the n - d values (d-th difference) / g |
//! | correction stream, if C: crate::codec::entropy over n ULP corrections |
//! ```
//!
//! `g` is the greatest common divisor of the differences (volumes traded in
//! lots of 100, byte counts in pages). A *correction* handles a value that
//! is a decimal only up to floating-point noise (`23.445999999999998`, one
//! ULP off `23.446`, as arithmetic on prices leaves them): the block's
//! integers are `k = round(v × 10^e)`, and the correction is
//! `bits(v) - bits(k / 10^e)` as a signed integer, almost always 0 (pco's
//! float modes keep such an adjustment too). The decoder adds it back to
//! the bits.
//!
//! Differences are taken modulo 2^64 and coded as `d ^ 2^63` (so that
//! negative ones sort below positive ones, and bins stay narrow); the
//! decoder adds them back modulo 2^64, which restores every integer
//! exactly. Decimals are found as in 03b ([`crate::codec::adaptive::find_decimal`],
//! checked bit for bit), so no scheme can lose a bit.
//!
//! The chooser computes each applicable scheme's exact size and keeps the
//! smallest (every scheme up to [`EXHAUSTIVE`] values), in the delta order
//! it estimates; blocks of up to [`SHORT`] values code integers as one
//! bin, without a table.
//! The count of values is not stored here.

use std::collections::HashMap;

use crate::bytes::ByteReader;
use crate::codec::adaptive::{find_decimal, round_half_away};
use crate::codec::varint::{len_u64, unzigzag, write_i64, write_u64, zigzag};
use crate::codec::{entropy, intpack, xor};
use crate::error::{Error, Result};

/// Powers of ten that are exact in `f64` (10^0 ..= 10^18).
const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// The most distinct values the dictionary scheme takes.
pub const DICTIONARY_MAX: usize = 256;
/// The most delta orders.
pub const MAX_ORDER: u8 = 2;
/// The largest ULP correction a near-decimal value may need.
pub const MAX_CORRECTION: u64 = 1 << 10;
const FLAG_GCD: u8 = 1 << 6;
const FLAG_CORRECTIONS: u8 = 1 << 7;

/// The smallest exponent at which every value is within [`MAX_CORRECTION`]
/// ULPs of `k / 10^e` (same sign, finite), with the integers and the
/// corrections; `None` if no exponent fits.
pub fn find_near_decimal(
    values: &[f64],
    ks: &mut Vec<i64>,
    corrections: &mut Vec<i64>,
) -> Option<u8> {
    'exponent: for (e, &scale) in POW10.iter().enumerate() {
        ks.clear();
        corrections.clear();
        for &v in values {
            let k = round_half_away(v * scale);
            if k.is_nan() || k.abs() > intpack::LIMIT as f64 {
                continue 'exponent;
            }
            let k = k as i64;
            let c = (k as f64 / scale).to_bits();
            let bits = v.to_bits();
            if (c ^ bits) >> 63 != 0 || bits.abs_diff(c) > MAX_CORRECTION {
                continue 'exponent;
            }
            ks.push(k);
            corrections.push(bits.wrapping_sub(c) as i64);
        }
        return Some(e as u8);
    }
    None
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// What a block chose: the scheme, and for entropy-coded decimals the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    Constant,
    Gorilla,
    DecimalPacked,
    DecimalEntropy {
        order: u8,
    },
    Dictionary,
    BinnedBits,
    /// Integers `k` times a step that is no power of ten (`k / s`, `s` any
    /// positive double), entropy-coded like a decimal, with corrections.
    Multiple {
        order: u8,
    },
    /// Bit patterns whose low `q` bits are 0 in every value (single
    /// precision widened to double), shifted right by `q`, in bins.
    ShiftedBits,
}

impl Choice {
    /// Rows of phase 03's table, in order; [`Choice::label`] indexes it.
    pub const LABELS: usize = 12;

    /// A dense index for statistics: 0..[`Choice::LABELS`].
    pub fn label(self) -> usize {
        match self {
            Self::Constant => 0,
            Self::Gorilla => 1,
            Self::DecimalPacked => 2,
            Self::DecimalEntropy { order } => 3 + order.min(MAX_ORDER) as usize,
            Self::Dictionary => 6,
            Self::BinnedBits => 7,
            Self::Multiple { order } => 8 + order.min(MAX_ORDER) as usize,
            Self::ShiftedBits => 11,
        }
    }

    /// The choice of a label.
    pub fn of_label(label: usize) -> Option<Choice> {
        Some(match label {
            0 => Self::Constant,
            1 => Self::Gorilla,
            2 => Self::DecimalPacked,
            3..=5 => Self::DecimalEntropy {
                order: (label - 3) as u8,
            },
            6 => Self::Dictionary,
            7 => Self::BinnedBits,
            8..=10 => Self::Multiple {
                order: (label - 8) as u8,
            },
            11 => Self::ShiftedBits,
            _ => return None,
        })
    }

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Gorilla => "gorilla-xor",
            Self::DecimalPacked => "decimal packed",
            Self::DecimalEntropy { order: 0 } => "decimal ANS, values",
            Self::DecimalEntropy { order: 1 } => "decimal ANS, deltas",
            Self::DecimalEntropy { .. } => "decimal ANS, delta-of-deltas",
            Self::Dictionary => "dictionary",
            Self::BinnedBits => "binned bits",
            Self::Multiple { order: 0 } => "multiple ANS, values",
            Self::Multiple { order: 1 } => "multiple ANS, deltas",
            Self::Multiple { .. } => "multiple ANS, delta-of-deltas",
            Self::ShiftedBits => "shifted bits",
        }
    }

    /// Why a block takes it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Constant => "every value has the same bits: 9 bytes",
            Self::Gorilla => "no short decimal, and XOR with the previous value beat binned bits",
            Self::DecimalPacked => {
                "a base and a fixed width beat a table (short or near-constant blocks)"
            }
            Self::DecimalEntropy { order: 0 } => {
                "k / 10^e exactly; the integers themselves are the narrowest, coded by frequency"
            }
            Self::DecimalEntropy { order: 1 } => {
                "k / 10^e exactly; steps between neighbours are small and skewed"
            }
            Self::DecimalEntropy { .. } => "k / 10^e exactly; the steps change slowly (a trend)",
            Self::Dictionary => "few distinct values with no short decimal: an index each",
            Self::BinnedBits => {
                "no short decimal: bins code the sign, exponent and top bits, the rest is raw"
            }
            Self::Multiple { .. } => {
                "k times a step that is no power of ten (a share, a rate, minutes / 60), corrected to the bit"
            }
            Self::ShiftedBits => {
                "the low bits of every value are 0 (single precision widened): bins of the rest"
            }
        }
    }

    fn tag(self) -> u8 {
        match self {
            Self::Constant => 0,
            Self::Gorilla => 1,
            Self::DecimalPacked => 2,
            Self::DecimalEntropy { .. } => 3,
            Self::Dictionary => 4,
            Self::BinnedBits => 5,
            Self::Multiple { .. } => 6,
            Self::ShiftedBits => 7,
        }
    }
}

#[inline(always)]
fn to_latent(d: i64) -> u64 {
    (d as u64) ^ (1 << 63)
}

#[inline(always)]
fn from_latent(u: u64) -> i64 {
    (u ^ (1 << 63)) as i64
}

/// Distinct bit patterns by descending count (ties: first seen first)
/// into `dict`, and each value's position in it into `indices`; `false`
/// above [`DICTIONARY_MAX`] distinct values.
///
/// Short blocks sort `(bits, position)` pairs: for a few dozen values that
/// is cheaper than hashing each twice. Long ones count in a hash map,
/// which stops at the first value past [`DICTIONARY_MAX`].
fn dictionary(
    values: &[f64],
    pairs: &mut Vec<(u64, u32)>,
    dict: &mut Vec<u64>,
    indices: &mut Vec<u64>,
) -> bool {
    dict.clear();
    indices.clear();
    // (bits, count, first position) of each distinct value.
    let mut entries: Vec<(u64, u32, u32)> = Vec::new();
    if values.len() <= SHORT {
        pairs.clear();
        pairs.extend(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| (v.to_bits(), i as u32)),
        );
        pairs.sort_unstable();
        for &(bits, i) in pairs.iter() {
            match entries.last_mut() {
                Some(e) if e.0 == bits => e.1 += 1,
                _ => entries.push((bits, 1, i)),
            }
        }
    } else {
        let mut seen: HashMap<u64, u32> = HashMap::new();
        for (i, v) in values.iter().enumerate() {
            let next = entries.len() as u32;
            let at = *seen.entry(v.to_bits()).or_insert(next) as usize;
            if at == entries.len() {
                if entries.len() == DICTIONARY_MAX {
                    return false;
                }
                entries.push((v.to_bits(), 0, i as u32));
            }
            entries[at].1 += 1;
        }
    }
    if entries.len() > DICTIONARY_MAX {
        // A short block with more distinct values (none while SHORT is
        // at most DICTIONARY_MAX; the long path stopped counting above).
        return false;
    }
    // Each entry's position in `dict`: by count, then first position
    // (unique, so the order is total).
    let mut ranked: Vec<(u32, u32, u32)> = entries
        .iter()
        .enumerate()
        .map(|(e, &(_, count, first))| (count, first, e as u32))
        .collect();
    ranked.sort_unstable_by_key(|&(count, first, _)| (std::cmp::Reverse(count), first));
    let mut rank = vec![0u64; entries.len()];
    for (r, &(_, _, e)) in ranked.iter().enumerate() {
        dict.push(entries[e as usize].0);
        rank[e as usize] = r as u64;
    }
    if values.len() <= SHORT {
        // `pairs` are sorted by bits, so entries follow them in order.
        indices.resize(values.len(), 0);
        let mut e = 0;
        for &(bits, i) in pairs.iter() {
            if entries[e].0 != bits {
                e += 1;
            }
            indices[i as usize] = rank[e];
        }
    } else {
        let index: HashMap<u64, u64> = dict
            .iter()
            .enumerate()
            .map(|(i, &b)| (b, i as u64))
            .collect();
        indices.extend(values.iter().map(|v| index[&v.to_bits()]));
    }
    true
}

/// Blocks of up to this many values try every scheme (in the estimated
/// delta order). Longer blocks try the others only when no exact decimal
/// exists. Coding every order exactly here instead, as the first version
/// did, saved 0.41 % of a PCP archive's value bytes (most of its blocks
/// hold 65 to 256 values) for 30 % less encoding speed, and nothing on
/// the real series.
pub const EXHAUSTIVE: usize = 512;
/// Blocks of up to this many values code their integers as one bin
/// (frame of reference, no table: [`entropy::encode_one_bin`]), in the
/// delta order whose one-bin width is smallest. Below this a table rarely
/// repays its header, and choosing bins costs more than coding the block:
/// on Beringei's 5,000 short series, 1.1 % more bytes than with tables for
/// 2.6 times the encoding speed (chapter 03c).
pub const SHORT: usize = 64;

/// The most values [`decode`] takes in one block (the `.sse` file's blocks
/// hold up to 8,192; the bound leaves room and stops a claimed count from
/// becoming an allocation).
pub const MAX_BLOCK_VALUES: usize = 1 << 16;

/// Scratch buffers the chooser reuses between blocks.
#[derive(Debug, Default)]
pub struct Scratch {
    ks: Vec<i64>,
    fewer_ks: Vec<i64>,
    fewer_corrections: Vec<i64>,
    diffs: Vec<i64>,
    latents: Vec<u64>,
    ints: Vec<u8>,
    candidate: Vec<u8>,
    pairs: Vec<(u64, u32)>,
    dict: Vec<u64>,
    entropy: entropy::Scratch,
    /// This block is short (at most [`SHORT`] values): integers are coded
    /// as one bin ([`entropy::encode_one_bin`]), without a table.
    one_bin: bool,
}

/// Codes `latents` with bins and tANS, or as one bin when `one_bin`.
fn encode_latents(latents: &[u64], out: &mut Vec<u8>, es: &mut entropy::Scratch, one_bin: bool) {
    if one_bin {
        entropy::encode_one_bin(latents, out);
    } else {
        entropy::encode_scratch(latents, out, es);
    }
}

/// The greatest common divisor of the magnitudes of `diffs` (at least 1).
///
/// Q: Why not fold `gcd` over every value?
/// A: Euclid divides several times per value. Most series have no common
/// divisor, and stop here after a few values at `g = 1`; for those that
/// do (volumes in lots of 100), one remainder a value confirms `g`.
fn common_divisor(diffs: impl IntoIterator<Item = i64>) -> u64 {
    let mut g = 0u64;
    for d in diffs {
        let m = d.unsigned_abs();
        if g == 0 {
            g = m;
        } else if m % g != 0 {
            g = gcd(g, m);
            if g == 1 {
                break;
            }
        }
    }
    g.max(1)
}

/// What a tag-3 or tag-6 block divides its integers by.
#[derive(Debug, Clone, Copy)]
enum Head {
    /// Tag 3: `10^e`.
    Decimal(u8),
    /// Tag 6: any positive finite double.
    Divisor(f64),
}

/// Appends a tag-3 block (integers `ks` over `10^e`) or a tag-6 block
/// (over a divisor), in delta `order`, with `corrections` unless they are
/// all 0.
fn encode_decimal_entropy(
    head: Head,
    order: u8,
    ks: &[i64],
    corrections: &[i64],
    sc: &mut Scratch,
    out: &mut Vec<u8>,
) {
    // At most one order per integer (a byte would wrap at 256 values).
    let order = order.min(u8::try_from(ks.len()).unwrap_or(u8::MAX));
    let diffs = &mut sc.diffs;
    diffs.clear();
    match order {
        0 => diffs.extend_from_slice(ks),
        1 => diffs.extend(ks.windows(2).map(|w| w[1].wrapping_sub(w[0]))),
        _ => diffs.extend(ks.windows(3).map(|w| {
            w[2].wrapping_sub(w[1])
                .wrapping_sub(w[1].wrapping_sub(w[0]))
        })),
    }
    let g = common_divisor(diffs.iter().copied());
    let mut flags = order;
    if g > 1 {
        flags |= FLAG_GCD;
    }
    let corrected = corrections.iter().any(|&c| c != 0);
    if corrected {
        flags |= FLAG_CORRECTIONS;
    }
    match head {
        Head::Decimal(e) => {
            out.push(Choice::DecimalEntropy { order }.tag());
            out.push(e);
        }
        Head::Divisor(s) => {
            out.push(Choice::Multiple { order }.tag());
            out.extend_from_slice(&s.to_bits().to_le_bytes());
        }
    }
    out.push(flags);
    if g > 1 {
        write_u64(out, g - 1);
    }
    if order >= 1 {
        write_i64(out, ks[0]);
    }
    if order >= 2 {
        write_i64(out, ks[1].wrapping_sub(ks[0]));
    }
    let latents = &mut sc.latents;
    latents.clear();
    if g > 1 {
        // Exact: g divides every difference (and i64::MIN only when g is 2^63).
        latents.extend(diffs.iter().map(|&d| to_latent(d.wrapping_div(g as i64))));
    } else {
        latents.extend(diffs.iter().map(|&d| to_latent(d)));
    }
    // A short block whose integers are mostly one value (a gauge at its
    // ceiling, with a few readings below) still takes a table: it makes
    // that value almost free, where one bin charges it the full width.
    let one_bin = sc.one_bin && !mostly_one_value(latents);
    if corrected {
        sc.ints.clear();
        encode_integers(latents, &mut sc.ints, &mut sc.entropy, one_bin);
        write_u64(out, sc.ints.len() as u64);
        out.extend_from_slice(&sc.ints);
        latents.clear();
        latents.extend(corrections.iter().map(|&c| to_latent(c)));
        // Corrections are mostly 0 with a few wide ones: bins, even in a
        // short block, or one wide value would widen every 0. Wide ones
        // that repeat (a decimal written from single precision) get a bin
        // each.
        entropy::encode_distinct(latents, out, &mut sc.entropy);
        return;
    }
    encode_integers(latents, out, &mut sc.entropy, one_bin);
}

/// [`encode_latents`] for a decimal's integers: bins checked against
/// sorted pre-bins where they are wide ([`entropy::encode_thorough`]).
fn encode_integers(latents: &[u64], out: &mut Vec<u8>, es: &mut entropy::Scratch, one_bin: bool) {
    if one_bin {
        entropy::encode_one_bin(latents, out);
    } else {
        entropy::encode_thorough(latents, out, es);
    }
}

/// Whether one value is more than half of `latents` (and there are at
/// least 8): the case where a table beats one bin by far. Boyer and
/// Moore's majority vote, then a count: two passes, no sort.
fn mostly_one_value(latents: &[u64]) -> bool {
    let (mut candidate, mut lead) = (0u64, 0usize);
    for &v in latents {
        if lead == 0 {
            (candidate, lead) = (v, 1);
        } else if v == candidate {
            lead += 1;
        } else {
            lead -= 1;
        }
    }
    let count = latents.iter().filter(|&&v| v == candidate).count();
    latents.len() >= 8 && 2 * count > latents.len()
}

/// Classes of the order estimate: the integers -15..=15 one by one, then
/// one class per sign and bit width (5 to 64 bits).
const CLASSES: usize = 31 + 2 * 60;

#[inline(always)]
fn class(x: i64) -> usize {
    let m = x.unsigned_abs();
    if m < 16 {
        (x + 15) as usize
    } else {
        31 + 2 * (64 - m.leading_zeros() as usize - 5) + (x < 0) as usize
    }
}

/// Raw offset bits of a value in class `c`: 0 for the exact classes, else
/// its width less the leading one (and less `g_bits` of common divisor).
fn class_offset_bits(c: usize, g_bits: f64) -> f64 {
    if c < 31 {
        0.0
    } else {
        (((c - 31) / 2 + 5 - 1) as f64 - g_bits).max(0.0)
    }
}

/// `log2(c)` in `f64` for small counts from a table (the same values
/// `f64::log2` gives: the table is filled by it), else computed.
#[inline]
fn log2_f64(c: u32) -> f64 {
    static TABLE: std::sync::OnceLock<[f64; 1025]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| std::array::from_fn(|c| (c as f64).log2()));
    match t.get(c as usize) {
        Some(&l) => l,
        None => (c as f64).log2(),
    }
}

/// Counts of integers per class.
struct ClassCounts {
    counts: [u32; CLASSES_PADDED],
}

/// [`CLASSES`] rounded up to whole chunks of 8 counts.
const CLASSES_PADDED: usize = CLASSES.div_ceil(8) * 8;

impl ClassCounts {
    fn new() -> Self {
        ClassCounts {
            counts: [0; CLASSES_PADDED],
        }
    }

    #[inline(always)]
    fn add(&mut self, x: i64) {
        self.counts[class(x)] += 1;
    }

    /// Estimated bits of coding these integers: a header per class, the
    /// entropy of the classes and the raw bits inside them, in class order.
    ///
    /// Chunks of 8 empty classes are passed over with one test: a block
    /// of 25 values fills a few of the 151.
    fn bits(&self, g: u64) -> f64 {
        let n: u32 = self.counts.iter().sum();
        let log_n = log2_f64(n.max(1));
        let g_bits = u32::try_from(g).map_or_else(|_| (g as f64).log2(), log2_f64);
        let mut total = 0.0;
        for (k, chunk) in self.counts.chunks_exact(8).enumerate() {
            if chunk.iter().fold(0, |any, &c| any | c) == 0 {
                continue;
            }
            for (i, &c) in chunk.iter().enumerate() {
                if c > 0 {
                    let class = 8 * k + i;
                    total +=
                        32.0 + c as f64 * (log_n - log2_f64(c) + class_offset_bits(class, g_bits));
                }
            }
        }
        total
    }
}

/// The delta order whose integers look cheapest, from cheap statistics
/// of all of them (no binning, no coding).
///
/// Each order's integers (order 0 centred on the median of a sample) are
/// counted in [`CLASSES`]: exact values near 0, then sign and bit width.
/// The estimate is the entropy of the classes plus the raw bits inside
/// them, as bins would spend them, and a header per class. It sees what
/// the spread of the differences misses: irradiance, 0 every night, is
/// cheapest as plain values although its deltas are narrower by day.
/// Common divisors are taken from a sample, and subtract their bits.
/// Up to [`SHORT`] integers, which are coded as one bin, the order is the
/// one whose one-bin width is smallest ([`choose_order_one_bin`]).
pub fn choose_order(ks: &[i64]) -> u8 {
    let n = ks.len();
    if n < 3 {
        return 0;
    }
    if n <= SHORT {
        return choose_order_one_bin(ks);
    }
    let stride = n.div_ceil(31);
    let mut sample: Vec<i64> = ks.iter().step_by(stride).copied().collect();
    sample.sort_unstable();
    let centre = sample[sample.len() / 2];
    let mut counts = [ClassCounts::new(), ClassCounts::new(), ClassCounts::new()];
    counts[0].add(ks[0].wrapping_sub(centre));
    counts[0].add(ks[1].wrapping_sub(centre));
    let mut d1 = ks[1].wrapping_sub(ks[0]);
    counts[1].add(d1);
    for w in ks.windows(2).skip(1) {
        let d = w[1].wrapping_sub(w[0]);
        counts[0].add(w[1].wrapping_sub(centre));
        counts[1].add(d);
        counts[2].add(d.wrapping_sub(d1));
        d1 = d;
    }
    // Common divisors of a sample of each order's integers.
    let g = |order: usize| -> u64 {
        common_divisor((0..n - order).step_by(stride.max(1)).map(|i| {
            match order {
                0 => ks[i],
                1 => ks[i + 1].wrapping_sub(ks[i]),
                _ => ks[i + 2]
                    .wrapping_sub(ks[i + 1])
                    .wrapping_sub(ks[i + 1].wrapping_sub(ks[i])),
            }
        }))
    };
    let mut best = (f64::INFINITY, 0u8);
    for (order, c) in counts.iter().enumerate() {
        let bits = c.bits(g(order));
        if bits < best.0 {
            best = (bits, order as u8);
        }
    }
    best.1
}

/// The delta order whose integers take the fewest bits as one bin (what
/// a block of at most [`SHORT`] values codes): for each order, the width
/// of its integers' range times their count, plus the first terms the
/// order stores. Common divisors are not counted (they can only shrink
/// the winner further). Exact for one bin up to that, and one pass with no
/// table: the class counts of [`choose_order`] cost more than a short
/// block's whole coding.
fn choose_order_one_bin(ks: &[i64]) -> u8 {
    let (Some(&k0), Some(&k1)) = (ks.first(), ks.get(1)) else {
        return 0;
    };
    let first_delta = k1.wrapping_sub(k0);
    let mut d1 = first_delta;
    let (mut lo, mut hi) = ([k0.min(k1), d1, i64::MAX], [k0.max(k1), d1, i64::MIN]);
    for w in ks.windows(2).skip(1) {
        let d = w[1].wrapping_sub(w[0]);
        let dd = d.wrapping_sub(d1);
        lo = [lo[0].min(w[1]), lo[1].min(d), lo[2].min(dd)];
        hi = [hi[0].max(w[1]), hi[1].max(d), hi[2].max(dd)];
        d1 = d;
    }
    let varint_bits = |x: i64| 8 * len_u64(zigzag(x)) as u64;
    let n = ks.len() as u64;
    let mut best = (u64::MAX, 0u8);
    for order in 0..=MAX_ORDER.min(u8::try_from(ks.len() - 1).unwrap_or(u8::MAX)) {
        let o = order as usize;
        let width = 64 - u64::from((hi[o].wrapping_sub(lo[o]) as u64).leading_zeros());
        let head = match order {
            0 => 0,
            1 => varint_bits(k0),
            _ => varint_bits(k0) + varint_bits(first_delta),
        };
        let bits = (n - u64::from(order)) * width + head;
        if bits < best.0 {
            best = (bits, order);
        }
    }
    best.1
}

/// log2(10): the bits one more decimal digit adds to an integer.
const LOG2_10: f64 = std::f64::consts::LOG2_10;

/// Per sampled value: the smallest exponent at which it is exactly
/// `k / 10^e`, and the smallest at which it is within [`MAX_CORRECTION`]
/// ULPs of one (19: none).
///
/// Most exponents are ruled out by a multiplication alone: a value within
/// [`MAX_CORRECTION`] ULPs of `k / 10^e` has `v × 10^e` within
/// [`near_slack`] of `k`, and only an exponent that passes
/// pays the division that decides.
fn digits(v: f64) -> (u8, u8) {
    let mut near = 19;
    for (e, &scale) in POW10.iter().enumerate() {
        let x = v * scale;
        let k = round_half_away(x);
        if !k.is_finite() || k.abs() > intpack::LIMIT as f64 {
            continue;
        }
        // `x` and `k` are finite here: the distance is a number.
        if (x - k).abs() > near_slack(v, x) {
            continue;
        }
        let c = (k / scale).to_bits();
        let bits = v.to_bits();
        if c == bits {
            return (e as u8, near.min(e as u8));
        }
        if near == 19 && (c ^ bits) >> 63 == 0 && bits.abs_diff(c) <= MAX_CORRECTION {
            near = e as u8;
        }
    }
    (19, near)
}

/// Below this, [`digits_of_integer`] may answer for [`digits`].
const DIGITS_BY_INTEGER: u64 = 1 << 50;

/// [`digits`] of `v = k / 10^e` (the division correctly rounded, as the
/// exact decimal search made it) from `k` alone, without a division:
/// drop `k`'s trailing zeros. `None` when that cannot be proven (`|k|`
/// of 2^50 or more, or `k` too close to a multiple of a larger power of
/// ten); the caller then asks [`digits`].
///
/// Why: a value `j / 10^f` (`f < e`) within `M` = [`MAX_CORRECTION`] ULPs
/// of `v` (or equal to it) has `|j × 10^(e-f) - k| ≤ (M + 1.01) |k| 2^-52`
/// (two half ULPs of rounding, `M` steps of at most `|v| 2^-52`). If the
/// distance from `k` to the nearest multiple of `10^(t+1)` (`t` trailing
/// zeros; larger powers are farther) exceeds that, no shorter exponent is
/// exact or near, and `k / 10^t` over `10^(e-t)` is the same correctly
/// rounded value: `(e - t, e - t)`. Below 2^41 every `k` passes: the
/// distance is at least 1. Checked against [`digits`] by a test.
fn digits_of_integer(k: i64, e: u8) -> Option<(u8, u8)> {
    let magnitude = k.unsigned_abs();
    if magnitude >= DIGITS_BY_INTEGER {
        return None;
    }
    if magnitude == 0 {
        return Some((0, 0));
    }
    let (mut m, mut d) = (magnitude, e);
    while d > 0 && m % 10 == 0 {
        m /= 10;
        d -= 1;
    }
    if d > 0 {
        // 10^(t+1) with t + 1 = e - d + 1 <= e <= 18: fits a u64.
        let p = 10u64.pow(u32::from(e - d) + 1);
        let r = magnitude % p;
        let distance = r.min(p - r) as f64;
        let reach = (MAX_CORRECTION as f64 + 16.0) * magnitude as f64 * f64::EPSILON;
        if distance <= reach {
            return None;
        }
    }
    Some((d, d))
}

/// How far `x = v × s` can be from `k = round(x)` when `v` is within
/// `M` = [`MAX_CORRECTION`] ULPs of `k / s` (the division correctly
/// rounded): at most about `M + 2` ULPs of `x` (three roundings, and `M`
/// steps of `v`'s spacing, at most `|v| × 2^-52` each). Twice that and
/// more is allowed: a larger slack only costs a division. For `v` near or
/// below the subnormal range the spacing is not relative: infinite slack,
/// and the division decides (subnormal arithmetic would be slow, too).
fn near_slack(v: f64, x: f64) -> f64 {
    const NORMAL: f64 = 1e-290; // well above 2^-1022 × (1 + M)
    if v.abs() >= NORMAL {
        x.abs() * f64::EPSILON * (2 * MAX_CORRECTION + 8) as f64
    } else {
        f64::INFINITY
    }
}

/// An exponent below `above` (at most 15) at which a sample of `values`
/// says integers plus corrections cost less: each digit less saves about
/// 3.3 bits a value, a value that needs more digits costs a correction
/// (about 12 bits when near a decimal, 50 when not). `None` when no
/// exponent looks cheaper, or when most values are near no decimal.
///
/// This is how IBM's closing prices, in cents but for three values with
/// four decimals, are coded in cents with three corrections.
const FEWER_SAMPLE: usize = 64;
/// Long blocks coded in more bits a value than this try [`fewer_digits`]'s
/// loose exponent.
const LOOSE_BITS: usize = 12;

/// `ks`: the block's integers at exponent `above` when every value is
/// exactly `k / 10^above` (then most samples take [`digits_of_integer`]).
///
/// `loose`: when no exponent looks cheaper, the smallest at which at least
/// half the samples are exact (pco's float-multiplier mode on values of
/// single precision written with eight digits: 1199.988 and 1200.1169,
/// which is 1200.117 with a correction that repeats).
fn fewer_digits(values: &[f64], above: u8, ks: Option<&[i64]>, loose: bool) -> Option<u8> {
    if above == 0 {
        // Integers already: no exponent below.
        return None;
    }
    let stride = values.len().div_ceil(FEWER_SAMPLE).max(1);
    // At most FEWER_SAMPLE samples: no allocation per block.
    let mut held = [(0u8, 0u8); FEWER_SAMPLE];
    let mut taken = 0;
    for (i, slot) in (0..values.len()).step_by(stride).zip(held.iter_mut()) {
        let of_integer = ks
            .and_then(|ks| ks.get(i))
            .and_then(|&k| digits_of_integer(k, above));
        *slot = match of_integer {
            Some(d) => d,
            None => digits(values[i]),
        };
        taken += 1;
    }
    // How many samples are exact (near) at each exponent or below.
    let (mut exact_at, mut near_at) = ([0u32; 20], [0u32; 20]);
    for &(exact, near) in &held[..taken] {
        exact_at[usize::from(exact)] += 1;
        near_at[usize::from(near)] += 1;
    }
    for e in 1..20 {
        exact_at[e] += exact_at[e - 1];
        near_at[e] += near_at[e - 1];
    }
    let n = taken as f64;
    // Bits of the sample at exponent `e`: digits, then 12 bits for a value
    // near but not exactly a decimal there, 50 for one near none.
    let cost = |e: u8| -> f64 {
        let (exact, near) = (exact_at[usize::from(e)], near_at[usize::from(e)]);
        n * f64::from(e) * LOG2_10
            + 12.0 * f64::from(near - exact)
            + 50.0 * (taken as f64 - f64::from(near))
    };
    let top = above.min(16);
    let (e, bits) = (0..top)
        .map(|e| (e, cost(e)))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    let far = taken - near_at[usize::from(e)] as usize;
    let saving = if above <= 18 {
        cost(above) - bits
    } else {
        f64::INFINITY
    };
    if e <= 15 && 2 * far < taken && saving > n * 0.5 {
        return Some(e);
    }
    if !loose {
        return None;
    }
    (0..top).find(|&e| 2 * exact_at[usize::from(e)] as usize >= taken)
}

/// The integers `k = round(v × 10^e)` and corrections
/// `bits(v) - bits(k / 10^e)` of every value; a value with no finite
/// integer in range takes the previous integer (its correction carries it).
pub fn decimal_with_corrections(
    values: &[f64],
    e: u8,
    ks: &mut Vec<i64>,
    corrections: &mut Vec<i64>,
) {
    scaled_with_corrections(values, POW10[e as usize], ks, corrections)
}

/// [`decimal_with_corrections`] over any divisor `scale`: `k = round(v ×
/// scale)`, corrected to the bits of `k / scale`, as the decoder computes
/// it.
fn scaled_with_corrections(
    values: &[f64],
    scale: f64,
    ks: &mut Vec<i64>,
    corrections: &mut Vec<i64>,
) {
    ks.clear();
    corrections.clear();
    let mut prev = 0i64;
    for &v in values {
        let k = round_half_away(v * scale);
        let k = if k.is_finite() && k.abs() <= intpack::LIMIT as f64 {
            k as i64
        } else {
            prev
        };
        ks.push(k);
        corrections.push(v.to_bits().wrapping_sub((k as f64 / scale).to_bits()) as i64);
        prev = k;
    }
}

/// Values sampled by [`find_divisor`].
const DIVISOR_SAMPLE: usize = 64;
/// The largest integer [`find_divisor`] accepts for a sampled value: a
/// step finer than this says "no step", and its integers would be wide.
const MAX_MULTIPLE: f64 = (1u64 << 40) as f64;

/// A divisor `s` such that every value of a sample is within a hundredth
/// of an integer over `s` (`v × s` near `k`): the values are multiples of
/// a step `1/s` that is not a power of ten. `None` when the sample holds
/// a non-finite value, a single value, or no step up to a twelfth of its
/// smallest gap fits.
///
/// A share of a fixed size (a file system's `used / size × 100`), minutes
/// counted in hours (`k / 60`, rounded to ten digits), a rate per interval:
/// no short decimal exists, so 03b falls back to XOR, but the integers
/// `k` are small and smooth. This is pco's float-multiplier mode. The
/// step is the smallest gap between sorted sample values or a twelfth of
/// it; it is then refined on the largest value (`|v| / round(|v| / step)`:
/// a gap is a difference of nearby values and carries their rounding), and
/// snapped to an integer divisor when `1 / step` is one to 1e-9 (60, 3600).
/// The encoder verifies nothing here: corrections make any divisor exact,
/// and a poor one simply loses to the other schemes.
fn find_divisor(values: &[f64]) -> Option<f64> {
    let stride = values.len().div_ceil(DIVISOR_SAMPLE).max(1);
    let mut held = [0f64; DIVISOR_SAMPLE];
    let mut n = 0;
    for (slot, &v) in held.iter_mut().zip(values.iter().step_by(stride)) {
        if !v.is_finite() {
            return None;
        }
        *slot = v;
        n += 1;
    }
    let sample = &mut held[..n];
    sample.sort_unstable_by(f64::total_cmp);
    let far = sample.iter().fold(0f64, |m, v| m.max(v.abs()));
    let gap = sample
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !(gap.is_finite() && far > 0.0) {
        return None;
    }
    // The smallest gap or a small fraction of it; else the approximate
    // common divisor of every gap (a sample's gaps are often many steps).
    let tolerance = far * 1e-9;
    let sample_ref = &*sample;
    let common = move || {
        sample_ref
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&d| d > tolerance)
            .take(16)
            .fold(0.0, |g, d| {
                // Euclid's remainders pile up rounding (a quotient of
                // thousands times a gap's error): refine the divisor on
                // the larger input, divided by its count of steps.
                let h = approximate_gcd(g, d, tolerance);
                let top = g.max(d);
                let count = round_half_away(top / h);
                if h > 0.0 && (1.0..=MAX_MULTIPLE).contains(&count) {
                    top / count
                } else {
                    h
                }
            })
    };
    let steps = || {
        (1..=12u32)
            .map(|m| gap / f64::from(m))
            .chain(std::iter::once_with(common))
    };
    let span = sample[n - 1] - sample[0];
    let refined = |rough: f64| -> Option<f64> {
        // The step from the whole span (its rounding spread over every
        // step in it), then the divisor from the largest value.
        let count = round_half_away(span / rough);
        if !(1.0..=MAX_MULTIPLE).contains(&count) {
            return None;
        }
        let top = round_half_away(far / (span / count));
        if !(1.0..=MAX_MULTIPLE).contains(&top) {
            return None;
        }
        let scale = top / far;
        let whole = round_half_away(scale);
        let scale = if whole >= 1.0 && (scale - whole).abs() <= scale * 1e-9 {
            whole
        } else {
            scale
        };
        (scale.is_finite() && scale > 0.0).then_some(scale)
    };
    let fits = |v: f64, scale: f64| {
        let x = v * scale;
        (x - round_half_away(x)).abs() <= 0.01
    };
    // Every sampled value on the step; else, in a block of more than
    // SHORT values, three in four of them (a share of a file system that
    // was replaced, a few readings of another source), the step then
    // refined on the value closest to it, and the others left to their
    // corrections.
    steps()
        .find_map(|rough| refined(rough).filter(|&s| sample.iter().all(|&v| fits(v, s))))
        .or_else(|| {
            if values.len() <= SHORT {
                return None; // a short block's search stays cheap
            }
            steps().find_map(|rough| {
                let scale = refined(rough)?;
                let fitting = sample.iter().filter(|&&v| fits(v, scale)).count();
                if 4 * fitting < 3 * n {
                    return None;
                }
                // The rough step was refined on the largest value, maybe
                // an outlier; the fitting value nearest the sample's median
                // belongs to the three in four. Any value on the grid gives
                // the step to a rounding: `top / v`.
                let anchor = sample
                    .iter()
                    .enumerate()
                    .filter(|&(_, &v)| v != 0.0 && fits(v, scale))
                    .min_by_key(|&(i, _)| i.abs_diff(n / 2))
                    .map(|(_, &v)| v)?;
                let top = round_half_away(anchor.abs() * scale);
                let scale = top / anchor.abs();
                let fitting = sample.iter().filter(|&&v| fits(v, scale)).count();
                ((1.0..=MAX_MULTIPLE).contains(&top) && 4 * fitting >= 3 * n).then_some(scale)
            })
        })
}

/// The greatest common divisor of `a` and `b` up to `tolerance`: Euclid's
/// algorithm on doubles, a remainder within `tolerance` of 0 or of the
/// divisor counting as none (at most 64 steps).
fn approximate_gcd(a: f64, b: f64, tolerance: f64) -> f64 {
    let (mut a, mut b) = (a.max(b), a.min(b));
    for _ in 0..64 {
        if b <= tolerance {
            return a;
        }
        // a - trunc(a / b) × b: the remainder up to rounding, which the
        // tolerance absorbs (libm's exact fmod was a tenth of Beringei's
        // encoding time).
        let q = a / b;
        if q >= MAX_MULTIPLE {
            return 0.0;
        }
        let r = (a - (q as i64) as f64 * b).max(0.0);
        (a, b) = (b, r.min(b - r));
    }
    0.0
}

/// The fewest zero low bits worth a shifted-bits block (scheme 7): single
/// precision widened to double has 29.
const SHIFT_MIN: u32 = 8;

/// Blocks whose best so far takes more than this many bits a value try
/// [`find_divisor`]: below it, a divisor has little left to win.
const DIVISOR_MIN_BITS: usize = 10;
/// [`DIVISOR_MIN_BITS`] for blocks of more than [`SHORT`] values.
const DIVISOR_MIN_BITS_LONG: usize = 2;
/// Exact decimals with fewer digits than this do not try a divisor.
const DIVISOR_MIN_DIGITS: u8 = 9;

/// Tries a tag-6 block (integers over a divisor, with corrections) when
/// the best so far is wide enough to be worth it; keeps it if smaller.
///
/// With an exact decimal at `10^e`, a divisor `10^e / g` for a whole `g`
/// is what tag 3 already codes (its common divisor): only other divisors
/// are tried.
fn try_divisor(
    values: &[f64],
    decimal: Option<u8>,
    sc: &mut Scratch,
    start: usize,
    out: &mut Vec<u8>,
    best: &mut Choice,
) {
    // A step that is no power of ten shows only in values kept to (almost)
    // full precision: a decimal of 8 digits or fewer rounds it away.
    // A long block pays for the search more easily than a short one.
    let min_bits = if values.len() > SHORT {
        DIVISOR_MIN_BITS_LONG
    } else {
        DIVISOR_MIN_BITS
    };
    if values.len() < 8
        || (out.len() - start) * 8 <= min_bits * values.len()
        || decimal.is_some_and(|e| e < DIVISOR_MIN_DIGITS)
    {
        return;
    }
    let Some(scale) = find_divisor(values) else {
        return;
    };
    // A step within a millionth of 1 / w for a whole w: values of single
    // precision written as decimals (0.079999998 for 0.08) are k / w plus
    // corrections that repeat with k; w, not the noisy step, makes them
    // so. Both are tried.
    let whole = round_half_away(scale);
    if whole >= 1.0 && whole != scale && (scale - whole).abs() <= scale * 1e-6 {
        try_scale(values, decimal, whole, sc, start, out, best);
    }
    try_scale(values, decimal, scale, sc, start, out, best);
}

/// [`try_divisor`]'s candidate `scale`, unless tag 3 codes it already.
fn try_scale(
    values: &[f64],
    decimal: Option<u8>,
    scale: f64,
    sc: &mut Scratch,
    start: usize,
    out: &mut Vec<u8>,
    best: &mut Choice,
) {
    if let Some(e) = decimal {
        // 10^e / scale whole, every integer a multiple of it: tag 3's
        // common divisor codes this already.
        let g = round_half_away(POW10[e as usize] / scale);
        if g >= 1.0
            && (POW10[e as usize] / scale - g).abs() <= 1e-6
            && sc.ks.iter().all(|&k| k % (g as i64) == 0)
        {
            return;
        }
    }
    keep_corrected(values, Head::Divisor(scale), false, sc, start, out, best);
}

/// Codes `values` as integers over `head`'s divisor with corrections (in
/// the scratch's `fewer_*` buffers), in the estimated delta order (in
/// every order when `every_order`), and keeps the block if it is smaller
/// than the best so far.
fn keep_corrected(
    values: &[f64],
    head: Head,
    every_order: bool,
    sc: &mut Scratch,
    start: usize,
    out: &mut Vec<u8>,
    best: &mut Choice,
) {
    let (mut ks, mut cs) = (
        std::mem::take(&mut sc.fewer_ks),
        std::mem::take(&mut sc.fewer_corrections),
    );
    let scale = match head {
        Head::Decimal(e) => POW10[e as usize],
        Head::Divisor(s) => s,
    };
    scaled_with_corrections(values, scale, &mut ks, &mut cs);
    let estimated = choose_order(&ks);
    let orders = if every_order {
        0..=MAX_ORDER.min(values.len().saturating_sub(1) as u8)
    } else {
        estimated..=estimated
    };
    for order in orders {
        let mut candidate = std::mem::take(&mut sc.candidate);
        candidate.clear();
        encode_decimal_entropy(head, order, &ks, &cs, sc, &mut candidate);
        sc.candidate = candidate;
        let choice = match head {
            Head::Decimal(_) => Choice::DecimalEntropy { order },
            Head::Divisor(_) => Choice::Multiple { order },
        };
        keep(choice, sc, start, out, best);
    }
    (sc.fewer_ks, sc.fewer_corrections) = (ks, cs);
}

/// Encodes one block with the smallest exact scheme; returns the choice.
pub fn encode(values: &[f64], out: &mut Vec<u8>) -> Choice {
    encode_with(values, out, &mut Scratch::default())
}

/// The fewest bytes [`xor::encode`] can write for `values`: 64 bits for
/// the first, then 1 bit for a repeated value and at least 3 (a control
/// code and a meaningful bit) for any other; nothing for no values.
fn xor_lower_bound(values: &[f64]) -> usize {
    if values.is_empty() {
        return 0;
    }
    let changes = values
        .windows(2)
        .filter(|w| w[0].to_bits() != w[1].to_bits())
        .count();
    let repeats = values.len().saturating_sub(1) - changes;
    (64 + repeats + 3 * changes).div_ceil(8)
}

/// Appends a tag-2 block: exponent `e`, then `ks` bit-packed.
fn write_packed(e: u8, ks: &[i64], plan: &intpack::Plan, out: &mut Vec<u8>) {
    out.push(Choice::DecimalPacked.tag());
    out.push(e);
    intpack::encode_planned(ks, plan, out);
}

/// Replaces the bytes after `start` with `candidate` if it is shorter.
fn keep(choice: Choice, sc: &Scratch, start: usize, out: &mut Vec<u8>, best: &mut Choice) {
    if sc.candidate.len() < out.len() - start {
        out.truncate(start);
        out.extend_from_slice(&sc.candidate);
        *best = choice;
    }
}

/// [`encode`] with reusable scratch buffers.
///
/// Every block codes decimals in one delta order, the one [`choose_order`]
/// picks. Blocks of up to [`EXHAUSTIVE`] values code every applicable
/// scheme and keep the smallest. Longer ones take the fast road: an exact
/// decimal tries fewer digits with corrections only when a sample suggests
/// it ([`fewer_digits`]), and sizes the packed decimal without writing it;
/// the other schemes are tried only when no exact decimal exists.
pub fn encode_with(values: &[f64], out: &mut Vec<u8>, sc: &mut Scratch) -> Choice {
    let start = out.len();
    let decimal = find_decimal(values, &mut sc.ks);
    if let Some(&first) = values.first() {
        let constant = values.iter().all(|v| v.to_bits() == first.to_bits());
        // A constant decimal packs into 0 bits: 2 bytes + base; else 9 bytes.
        if constant {
            if let Some(e) = decimal {
                let plan = intpack::plan_full(&sc.ks);
                if 2 + plan.size < 9 {
                    write_packed(e, &sc.ks, &plan, out);
                    return Choice::DecimalPacked;
                }
            }
            out.push(Choice::Constant.tag());
            out.extend_from_slice(&first.to_bits().to_le_bytes());
            return Choice::Constant;
        }
    }
    sc.one_bin = values.len() <= SHORT;
    let exhaustive = values.len() <= EXHAUSTIVE;
    let mut best;
    if let (Some(e), false) = (decimal, exhaustive) {
        let ks = std::mem::take(&mut sc.ks);
        let order = choose_order(&ks);
        encode_decimal_entropy(Head::Decimal(e), order, &ks, &[], sc, out);
        best = Choice::DecimalEntropy { order };
        // Wide integers (more than LOOSE_BITS a value) try the exponent
        // at which most values are exact, too.
        let loose = (out.len() - start) * 8 > LOOSE_BITS * values.len();
        if let Some(fewer) = fewer_digits(values, e, Some(&ks), loose) {
            keep_corrected(
                values,
                Head::Decimal(fewer),
                loose,
                sc,
                start,
                out,
                &mut best,
            );
        }
        let plan = intpack::plan_full(&ks);
        if 2 + plan.size < out.len() - start {
            out.truncate(start);
            write_packed(e, &ks, &plan, out);
            best = Choice::DecimalPacked;
        }
        sc.ks = ks;
        try_divisor(values, decimal, sc, start, out, &mut best);
        return best;
    }
    // Decimal candidates: (exponent, with corrections).
    // At most two: the exact one and fewer digits, or a near decimal.
    let mut exponents: [Option<(u8, bool)>; 2] = [None; 2];
    match decimal {
        Some(e) => {
            // Gorilla first, replaced by the packed decimal when smaller;
            // when the packed decimal is smaller than any XOR stream of
            // these values could be, skip writing the XOR stream.
            let plan = intpack::plan_full(&sc.ks);
            let packed = 2 + plan.size;
            if packed < 1 + xor_lower_bound(values) {
                best = Choice::DecimalPacked;
                write_packed(e, &sc.ks, &plan, out);
            } else {
                best = Choice::Gorilla;
                out.push(Choice::Gorilla.tag());
                xor::encode(values, out);
                // The packed decimal's size is known: write it only if it wins.
                if packed < out.len() - start {
                    out.truncate(start);
                    write_packed(e, &sc.ks, &plan, out);
                    best = Choice::DecimalPacked;
                }
            }
            exponents[0] = Some((e, false));
            if let Some(fewer) = fewer_digits(values, e, Some(&sc.ks), false) {
                exponents[1] = Some((fewer, true));
            }
        }
        None => {
            best = Choice::Gorilla;
            out.push(Choice::Gorilla.tag());
            xor::encode(values, out);
            let mut near = find_near_decimal(values, &mut sc.fewer_ks, &mut sc.fewer_corrections);
            if near.is_none() {
                near = fewer_digits(values, 19, None, false);
                if let Some(e) = near {
                    let (mut fks, mut fcs) = (
                        std::mem::take(&mut sc.fewer_ks),
                        std::mem::take(&mut sc.fewer_corrections),
                    );
                    decimal_with_corrections(values, e, &mut fks, &mut fcs);
                    (sc.fewer_ks, sc.fewer_corrections) = (fks, fcs);
                }
            }
            if let Some(e) = near {
                exponents[0] = Some((e, true));
            }
        }
    }
    for (e, corrected) in exponents.into_iter().flatten() {
        let (ks, cs) = if corrected {
            if decimal.is_some() {
                let (mut fks, mut fcs) = (
                    std::mem::take(&mut sc.fewer_ks),
                    std::mem::take(&mut sc.fewer_corrections),
                );
                decimal_with_corrections(values, e, &mut fks, &mut fcs);
                (fks, fcs)
            } else {
                (
                    std::mem::take(&mut sc.fewer_ks),
                    std::mem::take(&mut sc.fewer_corrections),
                )
            }
        } else {
            (std::mem::take(&mut sc.ks), Vec::new())
        };
        // The estimated order only (one bin's widths in short blocks).
        let order = choose_order(&ks);
        let mut candidate = std::mem::take(&mut sc.candidate);
        candidate.clear();
        encode_decimal_entropy(Head::Decimal(e), order, &ks, &cs, sc, &mut candidate);
        sc.candidate = candidate;
        keep(Choice::DecimalEntropy { order }, sc, start, out, &mut best);
        if corrected {
            (sc.fewer_ks, sc.fewer_corrections) = (ks, cs);
        } else {
            sc.ks = ks;
        }
    }
    try_divisor(values, decimal, sc, start, out, &mut best);
    if decimal.is_none() {
        sc.candidate.clear();
        sc.candidate.push(Choice::BinnedBits.tag());
        sc.latents.clear();
        sc.latents.extend(values.iter().map(|v| v.to_bits()));
        encode_latents(&sc.latents, &mut sc.candidate, &mut sc.entropy, sc.one_bin);
        keep(Choice::BinnedBits, sc, start, out, &mut best);
        // Bits that are 0 in every value would widen every bin's offsets:
        // shift them out (pco's float quantization, without adjustments).
        let q = values
            .iter()
            .map(|v| v.to_bits())
            .filter(|&b| b != 0)
            .map(u64::trailing_zeros)
            .min()
            .unwrap_or(0);
        if q >= SHIFT_MIN {
            // As they are, then as steps between neighbours (a gauge that
            // holds its value: mostly 0).
            for order in 0..=u8::from(values.len() > 1) {
                sc.candidate.clear();
                sc.candidate.push(Choice::ShiftedBits.tag());
                sc.candidate.push(q as u8);
                sc.candidate.push(order);
                sc.latents.clear();
                let shifted = |v: &f64| v.to_bits() >> q;
                if order == 0 {
                    sc.latents.extend(values.iter().map(shifted));
                } else {
                    write_u64(&mut sc.candidate, shifted(&values[0]));
                    sc.latents.extend(
                        values
                            .windows(2)
                            .map(|w| to_latent(shifted(&w[1]).wrapping_sub(shifted(&w[0])) as i64)),
                    );
                }
                encode_integers(&sc.latents, &mut sc.candidate, &mut sc.entropy, sc.one_bin);
                keep(Choice::ShiftedBits, sc, start, out, &mut best);
            }
        }
    }
    // A dictionary stores 8 bytes a distinct value: in a short block,
    // skip it when that alone cannot beat the best so far (a block of
    // distinct values). Long blocks leave it to `dictionary`, which stops
    // counting at DICTIONARY_MAX.
    if values.len() <= SHORT {
        sc.latents.clear();
        sc.latents.extend(values.iter().map(|v| v.to_bits()));
        sc.latents.sort_unstable();
        sc.latents.dedup();
        let n = sc.latents.len();
        let least = 1 + len_u64((n as u64).saturating_sub(1)) + 8 * n;
        if least >= out.len() - start {
            return best;
        }
    }
    let (mut dict, mut indices) = (
        std::mem::take(&mut sc.dict),
        std::mem::take(&mut sc.latents),
    );
    if dictionary(values, &mut sc.pairs, &mut dict, &mut indices) {
        sc.candidate.clear();
        sc.candidate.push(Choice::Dictionary.tag());
        write_u64(&mut sc.candidate, dict.len() as u64 - 1);
        for bits in &dict {
            sc.candidate.extend_from_slice(&bits.to_le_bytes());
        }
        encode_latents(&indices, &mut sc.candidate, &mut sc.entropy, sc.one_bin);
        keep(Choice::Dictionary, sc, start, out, &mut best);
    }
    (sc.dict, sc.latents) = (dict, indices);
    best
}

/// Appends `k / 10^e` for each `k` of `ks`, bit for bit what
/// `k as f64 / scale` gives.
///
/// Q: Why the magic number?
/// A: The x86-64 baseline has no vector instruction that turns 64-bit
/// integers into doubles, so `k as f64` runs one value at a time and keeps
/// the division scalar too. For |k| < 2^51, the bits of `M = 2^52 + 2^51`
/// plus `k` are the double `M + k` exactly (one binade, unit spacing), and
/// `(M + k) - M` is `k` exactly: an integer add and a subtraction, which
/// the compiler vectorizes, and the divisions with them. A batch with a
/// larger integer takes the plain conversion.
///
/// Q: Why not multiply by the reciprocal instead of dividing?
/// A: `k × (1 / 10^e)` is not always the correctly rounded `k / 10^e`,
/// and the encoder chose `k` so that the division gives the value's bits.
/// A correction with fused multiply-add (Markstein) restores it, but the
/// batched division measured as fast here (281 M values/s either way on
/// the real series): the divisions of a batch pipeline.
#[inline(always)]
fn push_scaled(out: &mut Vec<f64>, ks: &[i64], e: u8, scale: f64) {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let small = ks
        .iter()
        .fold(0u64, |far, &k| far | (k.wrapping_add(1 << 51) as u64 >> 52))
        == 0;
    let exact = |k: i64| f64::from_bits((k as u64).wrapping_add(MAGIC.to_bits())) - MAGIC;
    // Written in place into spare capacity: a loop here is compiled with
    // the caller's instructions (one inside `Vec::extend` might not be),
    // and nothing is zeroed first only to be overwritten.
    out.reserve(ks.len());
    let start = out.len();
    let spare = out.spare_capacity_mut();
    // Plain index loops: iterator adapters are std functions the compiler
    // may leave out of line, compiled without the caller's instructions.
    let len = spare.len().min(ks.len());
    let (dst, ks) = (&mut spare[..len], &ks[..len]);
    match (small, e) {
        (true, 0) => {
            for i in 0..len {
                dst[i].write(exact(ks[i]));
            }
        }
        (true, _) => {
            for i in 0..len {
                dst[i].write(exact(ks[i]) / scale);
            }
        }
        (false, 0) => {
            for i in 0..len {
                dst[i].write(ks[i] as f64);
            }
        }
        (false, _) => {
            for i in 0..len {
                dst[i].write(ks[i] as f64 / scale);
            }
        }
    }
    // SAFETY: the `len` slots after `start` were each written just above,
    // and `len` is at most the spare capacity.
    unsafe { out.set_len(start + len) };
}

/// Decodes exactly `n` values of one block, appending them to `out`.
///
/// Q: Why two copies of the decoder?
/// A: The hot loop shifts by amounts it reads from the table, three times
/// a value. The x86-64 baseline shifts by a variable amount only through
/// the `cl` register, in several micro-operations; BMI2's `shrx`/`shlx`
/// take any register in one, and AVX2 divides four decimals at once. On a
/// CPU that has BMI2 and AVX2 (Intel since 2013, AMD since 2015) the same
/// Rust code, compiled for them, decodes faster; elsewhere the portable
/// copy runs. Both come from one
/// source and give the same bits (a test runs both on the same blocks).
pub fn decode(payload: &[u8], n: usize, out: &mut Vec<f64>) -> Result<Choice> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `decode_v3` is `decode_block` compiled with BMI2 and
        // AVX2 enabled; the CPU was just found to have them.
        return unsafe { decode_v3(payload, n, out) };
    }
    decode_block(payload, n, out)
}

/// [`decode_block`] compiled for BMI2 and AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2")]
fn decode_v3(payload: &[u8], n: usize, out: &mut Vec<f64>) -> Result<Choice> {
    decode_block(payload, n, out)
}

/// The decoder of [`decode`], always inlined into its two copies.
#[inline(always)]
fn decode_block(payload: &[u8], n: usize, out: &mut Vec<f64>) -> Result<Choice> {
    const WHAT: &str = "value block";
    // A constant block of 9 bytes stands for any count: refuse counts no
    // writer makes before allocating for them.
    if n > MAX_BLOCK_VALUES {
        return Err(Error::corrupt(
            WHAT,
            0,
            format!("{n} values in one block (at most {MAX_BLOCK_VALUES})"),
        ));
    }
    let Some((&tag, rest)) = payload.split_first() else {
        return Err(Error::truncated(WHAT, 0, "empty block: no scheme tag"));
    };
    match tag {
        0 => {
            let bits: [u8; 8] = rest.try_into().map_err(|_| {
                Error::truncated(
                    WHAT,
                    1,
                    format!("a constant takes 8 bytes, found {}", rest.len()),
                )
            })?;
            out.extend(std::iter::repeat_n(
                f64::from_bits(u64::from_le_bytes(bits)),
                n,
            ));
            Ok(Choice::Constant)
        }
        1 => {
            xor::decode(rest, n, out).map_err(|e| e.within("value block (gorilla-xor)"))?;
            Ok(Choice::Gorilla)
        }
        2 | 3 | 6 => {
            let mut r = ByteReader::at_offset(payload, 0, WHAT);
            r.u8()?;
            let (e, scale) = if tag == 6 {
                let s = f64::from_bits(r.u64_le()?);
                if !(s.is_finite() && s > 0.0) {
                    return Err(r.corrupt(format!("divisor {s:e} (positive and finite)")));
                }
                // Any e but 0 makes push_scaled divide.
                (1, s)
            } else {
                let e = r.u8()?;
                let scale = *POW10
                    .get(e as usize)
                    .ok_or_else(|| r.corrupt(format!("decimal exponent {e} is above 18")))?;
                (e, scale)
            };
            out.reserve(n.min(payload.len() * 8 + 16));
            // Dividing by 10^0 = 1 is exact: one expression for every `e`.
            let push = |out: &mut Vec<f64>, k: i64| out.push(k as f64 / scale);
            if tag == 2 {
                intpack::decode(r.rest(), n, |k| push(out, k))
                    .map_err(|e| e.within("value block (decimal packed)"))?;
                return Ok(Choice::DecimalPacked);
            }
            let flags = r.u8()?;
            let order = flags & 0b11;
            if order > MAX_ORDER || order as usize > n || flags & 0b0011_1100 != 0 {
                return Err(r.corrupt(format!(
                    "flags {flags:#04x} (delta order {order}) for {n} values"
                )));
            }
            let g = if flags & FLAG_GCD != 0 {
                // Stored as g - 1; a writer's g is 2 to 2^63 (differences
                // of ±2^62 wrap to i64::MIN, whose divisor is 2^63).
                let g = r.varint()?;
                if g == 0 || g >= 1 << 63 {
                    return Err(
                        r.corrupt(format!("common divisor {} (2 to 2^63)", u128::from(g) + 1))
                    );
                }
                // 2^63 becomes i64::MIN, as the encoder divided by it.
                (g + 1) as i64
            } else {
                1
            };
            let start = out.len();
            let mut k = 0i64;
            let mut d = 0i64;
            if order >= 1 {
                k = r.varint_i64()?;
                push(out, k);
            }
            if order >= 2 {
                d = unzigzag(r.varint()?);
                k = k.wrapping_add(d);
                push(out, k);
            }
            let ints = if flags & FLAG_CORRECTIONS != 0 {
                let len = r.count(1, "integer stream byte")?;
                r.bytes(len)?
            } else {
                r.rest()
            };
            let at = r.position()
                - if flags & FLAG_CORRECTIONS != 0 {
                    ints.len()
                } else {
                    0
                };
            let m = n - order as usize;
            let mut ks = [0i64; entropy::BATCH];
            // Q: Why one closure per order, over whole batches?
            // A: The integers arrive BATCH at a time; a tight loop per batch
            // adds them up and divides, with no per-value call or branch.
            let decoded = match order {
                // The running sums are copied into locals per batch: held
                // through the closure's reference they would make a store
                // and a load per value.
                0 => entropy::decode_batches(
                    ints,
                    m,
                    #[inline(always)]
                    |batch| {
                        for (o, &u) in ks.iter_mut().zip(batch) {
                            *o = from_latent(u).wrapping_mul(g);
                        }
                        push_scaled(out, &ks[..batch.len()], e, scale);
                    },
                ),
                1 => entropy::decode_batches(
                    ints,
                    m,
                    #[inline(always)]
                    |batch| {
                        let mut kk = k;
                        for (o, &u) in ks.iter_mut().zip(batch) {
                            kk = kk.wrapping_add(from_latent(u).wrapping_mul(g));
                            *o = kk;
                        }
                        k = kk;
                        push_scaled(out, &ks[..batch.len()], e, scale);
                    },
                ),
                _ => entropy::decode_batches(
                    ints,
                    m,
                    #[inline(always)]
                    |batch| {
                        let (mut kk, mut dd) = (k, d);
                        for (o, &u) in ks.iter_mut().zip(batch) {
                            dd = dd.wrapping_add(from_latent(u).wrapping_mul(g));
                            kk = kk.wrapping_add(dd);
                            *o = kk;
                        }
                        (k, d) = (kk, dd);
                        push_scaled(out, &ks[..batch.len()], e, scale);
                    },
                ),
            };
            decoded.map_err(|err| err.within(format!("value block (decimal ANS) at byte {at}")))?;
            if flags & FLAG_CORRECTIONS != 0 {
                let at = r.position();
                // Exactly n values follow `start`, and n corrections come.
                let mut values = out[start..].iter_mut();
                entropy::decode_batches(
                    r.rest(),
                    n,
                    #[inline(always)]
                    |batch| {
                        // The batch first: zip takes from its left side first.
                        for (&u, v) in batch.iter().zip(&mut values) {
                            *v = f64::from_bits(v.to_bits().wrapping_add(from_latent(u) as u64));
                        }
                    },
                )
                .map_err(|err| err.within(format!("value block (ULP corrections) at byte {at}")))?;
            }
            Ok(if tag == 6 {
                Choice::Multiple { order }
            } else {
                Choice::DecimalEntropy { order }
            })
        }
        4 => {
            let mut r = ByteReader::at_offset(payload, 0, WHAT);
            r.u8()?;
            let m = r.varint()?;
            if m >= DICTIONARY_MAX as u64 || (m + 1) * 8 > r.remaining() as u64 {
                return Err(r.corrupt(format!(
                    "a dictionary of {} values in {} bytes (at most {DICTIONARY_MAX})",
                    m.saturating_add(1),
                    r.remaining()
                )));
            }
            let dict: Vec<f64> = (0..=m)
                .map(|_| r.u64_le().map(f64::from_bits))
                .collect::<Result<_>>()?;
            let at = r.position();
            let mut bad = None;
            entropy::decode_batches(
                r.rest(),
                n,
                #[inline(always)]
                |batch| {
                    out.extend(batch.iter().map(|&i| match dict.get(i as usize) {
                        Some(&v) => v,
                        None => {
                            bad.get_or_insert(i);
                            0.0
                        }
                    }))
                },
            )
            .map_err(|err| err.within(format!("value block (dictionary) at byte {at}")))?;
            if let Some(i) = bad {
                return Err(Error::corrupt(
                    WHAT,
                    at as u64,
                    format!("dictionary index {i} of {} entries", dict.len()),
                ));
            }
            Ok(Choice::Dictionary)
        }
        5 => {
            entropy::decode_batches(
                rest,
                n,
                #[inline(always)]
                |batch| out.extend(batch.iter().map(|&b| f64::from_bits(b))),
            )
            .map_err(|e| e.within("value block (binned bits) at byte 1"))?;
            Ok(Choice::BinnedBits)
        }
        7 => {
            let mut r = ByteReader::at_offset(rest, 1, WHAT);
            let q = r.u8()?;
            if !(1..=63).contains(&q) {
                return Err(r.corrupt(format!("shifted bits: a shift of {q} (1 to 63)")));
            }
            let order = r.u8()?;
            if order > 1 || (order == 1 && n == 0) {
                return Err(r.corrupt(format!("shifted bits: order {order} for {n} values")));
            }
            let mut k = 0u64;
            if order == 1 {
                k = r.varint()?;
            }
            let at = 1 + r.position();
            // A value with bits at or above 64 - q would lose them.
            let mut wide = None;
            let mut check = |k: u64, out: &mut Vec<f64>| {
                if k >> (64 - q) != 0 {
                    wide.get_or_insert(k);
                }
                out.push(f64::from_bits(k << q));
            };
            out.reserve(n.min(payload.len() * 8 + 16));
            if order == 1 {
                check(k, out);
            }
            entropy::decode_batches(
                r.rest(),
                n - usize::from(order),
                #[inline(always)]
                |batch| {
                    for &u in batch {
                        k = if order == 0 {
                            u
                        } else {
                            k.wrapping_add(from_latent(u) as u64)
                        };
                        check(k, out);
                    }
                },
            )
            .map_err(|e| e.within(format!("value block (shifted bits) at byte {at}")))?;
            if let Some(k) = wide {
                return Err(Error::corrupt(
                    WHAT,
                    at as u64,
                    format!("shifted bits: {k:#x} is wider than {} bits", 64 - q),
                ));
            }
            Ok(Choice::ShiftedBits)
        }
        t => Err(Error::corrupt(
            WHAT,
            0,
            format!("unknown value scheme tag {t}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64]) -> (Choice, Vec<u8>) {
        let mut out = Vec::new();
        let choice = encode(values, &mut out);
        let mut back = Vec::new();
        assert_eq!(decode(&out, values.len(), &mut back).unwrap(), choice);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(values));
        // The portable copy of the decoder gives the same bits as the one
        // `decode` picked for this CPU.
        let mut portable = Vec::new();
        assert_eq!(
            decode_block(&out, values.len(), &mut portable).unwrap(),
            choice
        );
        assert_eq!(bits(&portable), bits(values));
        (choice, out)
    }

    #[test]
    fn a_claimed_count_beyond_any_block_is_an_error_not_an_allocation() {
        // A 9-byte constant block claiming 2^39 values asked for 4 TiB.
        let mut block = vec![0u8];
        block.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        let mut out = Vec::new();
        assert!(decode(&block, 1 << 39, &mut out).is_err());
        assert!(out.is_empty());
        assert_eq!(
            decode(&block, MAX_BLOCK_VALUES, &mut out).unwrap(),
            Choice::Constant
        );
        assert_eq!(out.len(), MAX_BLOCK_VALUES);
    }

    #[test]
    fn labels_name_every_choice_once() {
        for l in 0..Choice::LABELS {
            assert_eq!(Choice::of_label(l).unwrap().label(), l);
        }
        assert_eq!(Choice::of_label(Choice::LABELS), None);
    }

    /// A reproducible pseudo-random number per index (splitmix64's mixer).
    fn noise(i: u64) -> u64 {
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }

    #[test]
    fn orders_follow_the_shape_of_the_series() {
        // Skewed values: 5 three times in four, else anything in 0..16.
        let skewed = |i: u64| {
            if noise(i) >> 62 != 0 {
                5
            } else {
                (noise(i) >> 56 & 15) as i64
            }
        };
        let gauge: Vec<f64> = (0..1000).map(|i| skewed(i) as f64).collect();
        let walk: Vec<f64> = (0..1000)
            .scan(500i64, |k, i| {
                *k += skewed(i) - 5;
                Some(*k as f64 / 10.0)
            })
            .collect();
        let trend: Vec<f64> = (0..1000)
            .map(|i: i64| (i * i * 3 + skewed(i as u64)) as f64)
            .collect();
        assert_eq!(round_trip(&gauge).0, Choice::DecimalEntropy { order: 0 });
        assert_eq!(round_trip(&walk).0, Choice::DecimalEntropy { order: 1 });
        assert_eq!(round_trip(&trend).0, Choice::DecimalEntropy { order: 2 });
    }

    #[test]
    fn short_blocks_take_the_order_of_fewest_one_bin_bits() {
        let small = |i: u64| (noise(i) >> 62) as i64; // 0..=3
        let gauge: Vec<i64> = (0..40).map(|i| 500 + (noise(i) >> 55) as i64).collect();
        let walk: Vec<i64> = (0..40).map(|i| 1000 + 70 * i + small(i as u64)).collect();
        let trend: Vec<i64> = (0..40).map(|i| 3 * i * i + small(i as u64)).collect();
        assert_eq!(choose_order_one_bin(&gauge), 0);
        assert_eq!(choose_order_one_bin(&walk), 1);
        assert_eq!(choose_order_one_bin(&trend), 2);
        // Equal widths: the order that stores fewer first terms wins.
        assert_eq!(choose_order_one_bin(&[4, 4, 4, 4]), 0);
        assert_eq!(choose_order_one_bin(&[1, 2]), 0);
        // Deltas wrap: MIN, MAX, MIN steps by -1 and +1 (2 bits each plus
        // the first term's 80), where the values span 64 bits each.
        assert_eq!(choose_order_one_bin(&[i64::MIN, i64::MAX, i64::MIN]), 1);
        // choose_order delegates to it for short blocks only.
        assert_eq!(choose_order(&trend), 2);
    }

    /// A block of at most SHORT values codes its integers as one bin: the
    /// bytes are the tag-3 header, then `encode_one_bin` of the latents,
    /// with no table. A longer block of the same shape takes a table.
    #[test]
    fn short_blocks_code_their_integers_as_one_bin() {
        let trend = |n: i64| -> Vec<f64> {
            (0..n)
                .map(|i| (3 * i * i + (noise(i as u64) >> 62) as i64) as f64)
                .collect()
        };
        let values = trend(SHORT as i64);
        let (choice, bytes) = round_trip(&values);
        assert_eq!(choice, Choice::DecimalEntropy { order: 2 });
        let ks: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        let mut want = vec![choice.tag(), 0, 2];
        write_i64(&mut want, ks[0]);
        write_i64(&mut want, ks[1] - ks[0]);
        let latents: Vec<u64> = ks
            .windows(3)
            .map(|w| to_latent(w[2] - 2 * w[1] + w[0]))
            .collect();
        entropy::encode_one_bin(&latents, &mut want);
        assert_eq!(bytes, want);
        // Longer: the same shape is worth a table (more than one bin).
        let (choice, long) = round_trip(&trend(4 * SHORT as i64));
        assert_eq!(choice, Choice::DecimalEntropy { order: 2 });
        let header = 3 + len_u64(zigzag(0)) + len_u64(zigzag(3));
        assert_ne!(long[header], 0, "a table's bin count, less one");
    }

    #[test]
    fn a_divisor_is_found_where_values_are_multiples_of_a_step() {
        // Minutes as hours rounded to ten digits: k / 60.
        let hours: Vec<f64> = (0..40u64)
            .map(|i| {
                let k = 4000 + (noise(i) >> 58) as i64;
                (k as f64 / 60.0 * 1e10).round() / 1e10
            })
            .collect();
        assert_eq!(find_divisor(&hours), Some(60.0));
        // A share of a fixed size: used × 100 / size (its gaps are several
        // steps each: the common divisor of the gaps finds the step).
        let share: Vec<f64> = (0..300u64)
            .map(|i| {
                (8_625_260 + 37 * i as i64 + (noise(i) >> 60) as i64) as f64 * 100.0 / 12_176_504.0
            })
            .collect();
        let s = find_divisor(&share).expect("a step");
        assert!((s - 121_765.04).abs() < 1e-6, "{s}");
        let (mut ks, mut cs) = (Vec::new(), Vec::new());
        scaled_with_corrections(&share, s, &mut ks, &mut cs);
        assert!(cs.iter().all(|c| c.abs() <= 2), "corrections of a few ULPs");
        // No step: random doubles, a NaN, one value, nothing.
        let random: Vec<f64> = (0..64).map(|i| f64::from_bits(noise(i) >> 2)).collect();
        assert_eq!(find_divisor(&random), None);
        assert_eq!(find_divisor(&[1.5, f64::NAN, 2.5]), None);
        assert_eq!(find_divisor(&[7.25; 10]), None);
        assert_eq!(find_divisor(&[]), None);
        // Each codes as a multiple (k / s) and comes back bit for bit.
        let (choice, _) = round_trip(&share);
        assert!(matches!(choice, Choice::Multiple { .. }), "{choice:?}");
        let (choice, _) = round_trip(&hours);
        assert!(matches!(choice, Choice::Multiple { .. }), "{choice:?}");
    }

    /// A share of one file system, then of another (bozo's `filesys.full`:
    /// a few readings of a second size): in a long block, the step of
    /// three in four sampled values is found and the rest corrected; a
    /// short block keeps the cheap search, which finds none.
    #[test]
    fn a_divisor_is_found_where_most_values_are_multiples_of_a_step() {
        // A slowly filling disk, then (the last tenth) another one.
        let mixed = |n: u64| -> Vec<f64> {
            (0..n)
                .map(|i| {
                    if i >= n - n / 10 {
                        (93_000_000 + i as i64) as f64 * 100.0 / 97_651_223.0
                    } else {
                        (16_418 + (i / 8) as i64 + (noise(i) >> 63) as i64) as f64 * 100.0
                            / 23_320_547.0
                    }
                })
                .collect()
        };
        let long = mixed(400);
        let s = find_divisor(&long).expect("a step");
        assert!((s / 233_205.47 - 1.0).abs() < 1e-9, "{s}");
        let (choice, bytes) = round_trip(&long);
        assert!(matches!(choice, Choice::Multiple { .. }), "{choice:?}");
        let mut xor_bytes = Vec::new();
        xor::encode(&long, &mut xor_bytes);
        assert!(
            2 * bytes.len() < xor_bytes.len(),
            "{} vs XOR {}",
            bytes.len(),
            xor_bytes.len()
        );
        assert_eq!(find_divisor(&mixed(SHORT as u64)), None);
    }

    /// Single-precision readings written with eight digits (PCP's
    /// `kernel.all.load`: 0.079999998 for 0.08): an exact decimal of nine
    /// digits, but integers over 100 with corrections that repeat with
    /// the integer. The whole divisor is tried beside the noisy step.
    #[test]
    fn single_precision_written_as_decimals_codes_over_a_whole_divisor() {
        let load: Vec<f64> = (0..600u64)
            .map(|i| {
                let k = 5 + (noise(i) >> 59) + (i % 50);
                let f = (k as f32 / 100.0) as f64;
                format!("{f:.7e}").parse::<f64>().expect("a number")
            })
            .collect();
        let mut ks = Vec::new();
        assert_eq!(find_decimal(&load, &mut ks), Some(9));
        let (choice, bytes) = round_trip(&load);
        assert!(matches!(choice, Choice::Multiple { .. }), "{choice:?}");
        let per_value = bytes.len() as f64 * 8.0 / load.len() as f64;
        assert!(per_value < 12.0, "{per_value} bits a value");
    }

    /// A clock in MHz kept in single precision and written with eight
    /// digits (PCP's `hinv.cpu.clock`): half the readings 1199.988, the
    /// rest three decimals of which many show a fourth (1200.1169 for
    /// 1200.117). Three decimals with corrections, which repeat, beat
    /// four decimals.
    #[test]
    fn a_wide_block_tries_the_exponent_most_values_are_exact_at() {
        let clock: Vec<f64> = (0..1000u64)
            .map(|i| {
                let mhz = if noise(i) % 2 == 0 {
                    1199.988
                } else {
                    1200.0 + (noise(i) >> 54) as f64 * 0.517
                };
                format!("{:.7e}", mhz as f32 as f64)
                    .parse::<f64>()
                    .expect("a number")
            })
            .collect();
        let mut ks = Vec::new();
        assert_eq!(find_decimal(&clock, &mut ks), Some(4));
        let (choice, bytes) = round_trip(&clock);
        assert!(
            matches!(choice, Choice::DecimalEntropy { .. }),
            "{choice:?}"
        );
        let bits = bytes.len() as f64 * 8.0 / clock.len() as f64;
        // 12.4 bits a value as four decimals (measured).
        assert!(bits < 12.0, "{bits} bits a value");
    }

    #[test]
    fn a_multiple_block_with_a_bad_divisor_is_an_error() {
        let share: Vec<f64> = (0..100u64)
            .map(|i| (8_625_260 + (noise(i) >> 50) as i64) as f64 * 100.0 / 12_176_504.0)
            .collect();
        let (choice, good) = round_trip(&share);
        assert!(matches!(choice, Choice::Multiple { .. }), "{choice:?}");
        for bad in [0.0, -60.0, f64::NAN, f64::INFINITY, -0.0, f64::NEG_INFINITY] {
            let mut block = good.clone();
            block[1..9].copy_from_slice(&bad.to_bits().to_le_bytes());
            let err = decode(&block, share.len(), &mut Vec::new()).unwrap_err();
            assert!(err.to_string().contains("divisor"), "{bad}: {err}");
        }
    }

    /// Corrections in a short block keep their bins: one wide correction
    /// must not widen every 0 (one-bin coding would).
    #[test]
    fn corrections_in_short_blocks_are_binned() {
        // Four decimals, but for one value with eleven (102.1 / 19).
        let mut values: Vec<f64> = (0..50u64)
            .map(|i| (30_000 + (noise(i) >> 54) as i64) as f64 / 10_000.0)
            .collect();
        values[12] = 102.1 / 19.0;
        let (choice, bytes) = round_trip(&values);
        assert!(
            matches!(choice, Choice::DecimalEntropy { .. }),
            "{choice:?}"
        );
        // One bin would give every correction the width of the wide one
        // (40-odd bits: 250 bytes and more); bins keep the zeros cheap.
        assert!(bytes.len() < 160, "{} bytes", bytes.len());
    }

    /// Beringei's ods_4329: a gauge at its ceiling (1200.0) with a few
    /// readings below, some with eight decimals. One bin charged every
    /// 1200.0 the full width (175 bytes, pco 153); a table makes it cheap.
    #[test]
    fn a_short_block_mostly_one_value_takes_a_table() {
        #[rustfmt::skip]
        let values = [
            1200.0, 1187.5, 1149.5, 1126.15384615, 1097.94871795, 1180.54054054, 1037.64705882,
            1107.33333333, 1037.33333333, 1056.25, 1078.75, 1172.66666667, 1142.5, 1067.5,
            1200.0, 1189.0, 1192.5, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0,
            1200.0, 1199.0, 1200.0, 1200.0, 1200.0, 1194.5, 1200.0, 1200.0, 1200.0, 1200.0,
            1200.0, 1199.5, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0, 1200.0,
            1200.0, 1200.0, 1200.0, 1200.0, 1200.0, 1170.0, 989.5, 839.0, 1106.0, 1170.0,
            1200.0, 1200.0, 1200.0, 1200.0,
        ];
        let (_, bytes) = round_trip(&values);
        assert!(bytes.len() < 150, "{} bytes", bytes.len());
        let ceiling = to_latent(12000);
        let mut latents = vec![ceiling; 30];
        latents.extend((0..30).map(|i| to_latent(11000 + i)));
        assert!(
            !mostly_one_value(&latents),
            "30 of 60 is not more than half"
        );
        latents.push(ceiling);
        assert!(mostly_one_value(&latents), "31 of 61");
        latents.push(to_latent(1));
        assert!(
            !mostly_one_value(&latents),
            "31 of 62 is not more than half"
        );
        assert!(!mostly_one_value(&[ceiling; 7]), "too few to matter");
    }

    /// Blocks of -2^62 and +2^62: their differences wrap to i64::MIN, the
    /// common divisor is 2^63 (stored as 2^63 - 1), and the decoder added
    /// 1 to it in i64 (a debug build panicked; found by a break test). A
    /// divisor above 2^63 is no writer's and is refused.
    #[test]
    fn a_common_divisor_of_2_pow_63_decodes() {
        let (low, high) = (-(2f64.powi(62)), 2f64.powi(62));
        for values in [
            [vec![low; 512], vec![high]].concat(),
            [vec![low; 256], vec![high; 256]].concat(),
        ] {
            let (choice, bytes) = round_trip(&values);
            assert!(
                matches!(choice, Choice::DecimalEntropy { .. }),
                "{choice:?}"
            );
            assert_ne!(bytes[2] & FLAG_GCD, 0, "the common divisor is stored");
        }
        let mut back = Vec::new();
        // 2^63 - 1 stored: a divisor of 2^63.
        let stored = [
            0x03, 0x00, 0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        let _ = decode(&[&stored[..], &[0, 0, 0]].concat(), 1, &mut back);
        // 2^63 stored: a divisor of 2^63 + 1.
        let above = [
            0x03, 0x00, 0x40, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        let err = decode(&[&above[..], &[0, 0, 0]].concat(), 1, &mut back)
            .unwrap_err()
            .to_string();
        assert!(err.contains("common divisor 9223372036854775809"), "{err}");
    }

    #[test]
    fn values_whose_integers_reach_2_pow_62_round_trip() {
        let edge = (1u64 << 62) as f64;
        round_trip(&[-edge, edge]);
        round_trip(
            &(0..20)
                .map(|i| if i % 2 == 0 { edge } else { -edge })
                .collect::<Vec<_>>(),
        );
        let mut out = Vec::new();
        crate::codec::adaptive::encode(&[-edge, edge], &mut out);
    }

    #[test]
    fn golden_bytes_per_scheme() {
        let (c, b) = round_trip(&[f64::NAN, f64::NAN]);
        assert_eq!(
            (c, b),
            (Choice::Constant, vec![0, 0, 0, 0, 0, 0, 0, 0xF8, 0x7F])
        );
        // 37.42, 37.5, 37.39: 3 values are too few for a table.
        let (c, b) = round_trip(&[37.42, 37.5, 37.39]);
        assert_eq!(
            (c, b),
            (
                Choice::DecimalPacked,
                vec![2, 2, 0, 0xB6, 0x3A, 0x04, 0x3B, 0x00]
            )
        );
    }

    #[test]
    fn every_prefix_is_an_error() {
        for values in fixtures() {
            let mut out = Vec::new();
            encode(&values, &mut out);
            for cut in 0..out.len() {
                assert!(
                    decode(&out[..cut], values.len(), &mut Vec::new()).is_err(),
                    "cut {cut} of {:?}",
                    encode(&values, &mut Vec::new())
                );
            }
        }
    }

    /// One input per scheme, small enough for golden bytes.
    pub(super) fn fixtures() -> Vec<Vec<f64>> {
        vec![
            vec![f64::NAN, f64::NAN],
            (0..40).map(|i| (i % 3) as f64).collect(),
            (0..64).map(|i| (i * i % 17) as f64 / 10.0).collect(),
            (0..64)
                .map(|i| 20.0 + (i % 5) as f64 / 10.0 + i as f64)
                .collect(),
            (0..64)
                .map(|i| [0.1f64.sqrt(), 2.0f64.sqrt(), -0.0][i % 3])
                .collect(),
            (0..64).map(|i| (i as f64 + 0.5).sqrt() * 1e-3).collect(),
            [0.3f64.sqrt(), 1.7f64.ln(), 9.1].to_vec(),
            (0..64u64)
                .map(|i| (8_625_260 + (noise(i) >> 50) as i64) as f64 * 100.0 / 12_176_504.0)
                .collect(),
            single_precision(64),
            single_precision(300),
        ]
    }

    /// Single precision readings widened to double: the low 29 bits of
    /// every value are 0, and with mantissas at random over eight binades
    /// no decimal and no one step fits them.
    fn single_precision(n: u64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let exponent = 124 + (noise(i) >> 61) as u32; // 2^-3 ..= 2^4
                f64::from(f32::from_bits(exponent << 23 | (noise(i + 5) >> 41) as u32))
            })
            .collect()
    }

    /// Scheme 7: single precision widened keeps 29 zero bits, shifted out;
    /// the layout, and a decoder that refuses what no writer makes.
    #[test]
    fn single_precision_widened_codes_as_shifted_bits() {
        for n in [64, 300] {
            let values = single_precision(n);
            let (choice, bytes) = round_trip(&values);
            assert_eq!(choice, Choice::ShiftedBits, "{n} values");
            assert_eq!(&bytes[..2], &[7, 29], "tag, then the shift");
            // 3 bits of exponent and 23 of mantissa are left: about 27
            // bits a value (XOR takes about 36, binned bits 29 more).
            let bits = bytes.len() as f64 * 8.0 / n as f64;
            assert!(bits < 29.0, "{n} values: {bits} bits a value");
        }
        let (_, good) = round_trip(&single_precision(64));
        let mut back = Vec::new();
        for (at, byte, why) in [
            (1, 0u8, "a shift of 0"),
            (1, 64, "a shift of 64"),
            (2, 2, "order 2"),
        ] {
            let mut bad = good.clone();
            bad[at] = byte;
            let err = decode(&bad, 64, &mut back).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
        // A latent wider than 64 - q bits: one value, shift 63, latent 3
        // (one bin of width 2 holding 3: one bin, lower 3, 0 offset bits).
        let mut wide = vec![7u8, 63, 0];
        entropy::encode_one_bin(&[3], &mut wide);
        let err = decode(&wide, 1, &mut back).unwrap_err().to_string();
        assert!(err.contains("wider than 1 bits"), "{err}");
        // Order 1 with no values.
        assert!(decode(&[7, 29, 1, 0], 0, &mut back).is_err());
    }

    /// The dictionary the sorting path (short blocks) and the hashing path
    /// (long blocks) build is the one defined: most frequent first, ties
    /// by first position, every value's index pointing at its bits.
    #[test]
    fn dictionary_orders_by_count_then_first_position_on_both_paths() {
        for len in [0, 1, 2, 7, SHORT - 1, SHORT, SHORT + 1, 300] {
            for distinct in [1u64, 2, 5, 40] {
                let values: Vec<f64> = (0..len as u64)
                    .map(|i| f64::from_bits(noise(i) % distinct + (noise(i + 99) & 1) * 7))
                    .collect();
                let (mut pairs, mut dict, mut indices) = (Vec::new(), Vec::new(), Vec::new());
                assert!(dictionary(&values, &mut pairs, &mut dict, &mut indices));
                // The definition, counted the slow way.
                let mut want: Vec<(u64, usize, usize)> = Vec::new();
                for (i, v) in values.iter().enumerate() {
                    match want.iter_mut().find(|w| w.0 == v.to_bits()) {
                        Some(w) => w.1 += 1,
                        None => want.push((v.to_bits(), 1, i)),
                    }
                }
                want.sort_by_key(|&(_, count, first)| (std::cmp::Reverse(count), first));
                let want: Vec<u64> = want.into_iter().map(|w| w.0).collect();
                assert_eq!(dict, want, "len {len}, distinct {distinct}");
                assert_eq!(indices.len(), values.len());
                for (v, &i) in values.iter().zip(&indices) {
                    assert_eq!(dict[i as usize], v.to_bits());
                }
            }
        }
        let many: Vec<f64> = (0..=DICTIONARY_MAX as u64).map(|i| i as f64).collect();
        let (mut pairs, mut dict, mut indices) = (Vec::new(), Vec::new(), Vec::new());
        assert!(!dictionary(&many, &mut pairs, &mut dict, &mut indices));
        assert!(dictionary(&many[1..], &mut pairs, &mut dict, &mut indices));
    }

    /// The encoder skips the XOR stream when the packed decimal is smaller
    /// than [`xor_lower_bound`]: it must never exceed what XOR writes.
    #[test]
    fn the_xor_lower_bound_never_exceeds_the_xor_stream() {
        let mut blocks = fixtures();
        blocks.push(vec![
            f64::NAN,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
        ]);
        for len in [1usize, 2, 3, 9, 64, 65] {
            blocks.push((0..len as u64).map(|i| (noise(i) % 4) as f64).collect());
            blocks.push((0..len as u64).map(|i| f64::from_bits(noise(i))).collect());
            blocks.push(vec![-0.0; len]);
        }
        for values in blocks {
            let mut out = Vec::new();
            xor::encode(&values, &mut out);
            assert!(xor_lower_bound(&values) <= out.len(), "{values:?}");
        }
    }

    /// The delta order is capped by the block's length, not by its length
    /// modulo 256: a block of 8,192 values (the `.sse` block) was coded as
    /// plain values, and blocks of 256 m or 256 m + 1 values returned an
    /// order other than the one their bytes hold.
    #[test]
    fn blocks_of_a_multiple_of_256_values_keep_their_delta_order() {
        let trend = |n: usize| -> Vec<f64> {
            (0..n as u64)
                .map(|i| (100_000 + 3 * i + noise(i) % 3) as f64 / 100.0)
                .collect()
        };
        for n in [
            255, 256, 257, 258, 511, 512, 513, 768, 769, 8191, 8192, 8193,
        ] {
            let values = trend(n);
            let (choice, bytes) = round_trip(&values);
            assert!(
                matches!(choice, Choice::DecimalEntropy { order } if order >= 1),
                "{n} values: {choice:?}"
            );
            let per_value = bytes.len() as f64 / n as f64;
            assert!(per_value < 0.5, "{n} values: {per_value} bytes a value");
        }
        // Alternating values: 513 of them chose order 2 and held order 1.
        let alternating: Vec<f64> = (0..513)
            .map(|i| {
                f64::from_bits(if i % 2 == 0 {
                    0x4000_0000_0000_0000
                } else {
                    0x4009_e377_9b97_f4a7
                })
            })
            .collect();
        round_trip(&alternating);
    }

    /// [`digits`] as it was before the multiplication filter: a division
    /// at every exponent.
    fn digits_by_division(v: f64) -> (u8, u8) {
        let mut near = 19;
        for (e, &scale) in POW10.iter().enumerate() {
            let k = round_half_away(v * scale);
            if !k.is_finite() || k.abs() > intpack::LIMIT as f64 {
                continue;
            }
            let (c, bits) = ((k / scale).to_bits(), v.to_bits());
            if c == bits {
                return (e as u8, near.min(e as u8));
            }
            if near == 19 && (c ^ bits) >> 63 == 0 && bits.abs_diff(c) <= MAX_CORRECTION {
                near = e as u8;
            }
        }
        (19, near)
    }

    /// Values at the edge of [`near_slack`]: a decimal moved by up to
    /// MAX_CORRECTION ULPs and just past it, subnormals and the largest
    /// integers.
    #[test]
    fn the_multiplication_filter_keeps_every_near_and_exact_exponent() {
        let m = MAX_CORRECTION as i64;
        for (e, &scale) in POW10.iter().enumerate() {
            for k in [1i64, 7, 12_345, 99_999_999, 1 << 40, intpack::LIMIT - 1] {
                let exact = k as f64 / scale;
                for d in [0, 1, -1, m / 2, m - 1, m, m + 1, -m, -m - 1, 3 * m] {
                    for sign in [1.0, -1.0] {
                        let v = f64::from_bits(exact.to_bits().wrapping_add_signed(d)) * sign;
                        assert_eq!(
                            digits(v),
                            digits_by_division(v),
                            "{v:e} ({k}e-{e}, {d} ULPs)"
                        );
                    }
                }
            }
        }
        for bits in [
            0u64,
            1,
            2,
            1024,
            1025,
            0x000f_ffff_ffff_ffff,
            0x0010_0000_0000_0000,
        ] {
            for v in [f64::from_bits(bits), -f64::from_bits(bits)] {
                assert_eq!(digits(v), digits_by_division(v), "{v:e}");
            }
        }
    }

    /// [`digits_of_integer`] against [`digits`] for a value that is
    /// exactly `k / 10^e`, as the exact decimal search leaves it.
    fn check_digits_of_integer(k: i64, e: usize) {
        let v = k as f64 / POW10[e];
        if round_half_away(v * POW10[e]) as i64 != k {
            return; // not an integer the decimal search would hold
        }
        if let Some(d) = digits_of_integer(k, e as u8) {
            assert_eq!(d, digits(v), "{v:e} = {k}e-{e}");
        }
    }

    #[test]
    fn digits_of_an_integer_are_its_values_digits() {
        let big = DIGITS_BY_INTEGER as i64;
        for (e, _) in POW10.iter().enumerate() {
            for k in [
                0i64,
                1,
                -1,
                10,
                1200,
                -120_000,
                123_456_789,
                1_000_000_000,
                1 << 41,
                (1 << 41) + 1,
                822_533_333_333,
                5_882_352_941_180_000,
                big - 1,
                big - 10,
                big - 3,
                -(big - 1),
                big,
                300_000_000_000_004,
                299_999_999_999_999,
                100_000_000_000_001,
            ] {
                check_digits_of_integer(k, e);
            }
        }
        assert_eq!(digits_of_integer(big, 3), None);
        assert_eq!(digits_of_integer(300_000_000_000_004, 17), None);
        assert_eq!(digits_of_integer(1200, 3), Some((1, 1)));
        assert_eq!(digits_of_integer(1200, 0), Some((0, 0)));
    }

    proptest::proptest! {
        #[test]
        fn digits_of_any_small_integer_are_its_values_digits(
            k in -(DIGITS_BY_INTEGER as i64)..DIGITS_BY_INTEGER as i64,
            zeros in 0u32..12,
            e in 0usize..19,
        ) {
            check_digits_of_integer(k, e);
            if let Some(z) = k.checked_mul(10i64.pow(zeros)) {
                check_digits_of_integer(z, e);
            }
        }

        /// Integers just off a multiple of a power of ten: the values
        /// near a shorter decimal, which must fall back to [`digits`].
        #[test]
        fn digits_of_an_integer_near_a_round_one_are_its_values_digits(
            j in 1i64..1 << 20,
            a in 1u32..18,
            off in -3000i64..3000,
            e in 0usize..19,
        ) {
            if let Some(k) = j.checked_mul(10i64.pow(a)).and_then(|m| m.checked_add(off)) {
                check_digits_of_integer(k, e);
                check_digits_of_integer(-k, e);
            }
        }

        #[test]
        fn digits_are_those_found_by_division(
            bits in proptest::prelude::any::<u64>(),
            k in -(1i64 << 52)..(1i64 << 52),
            e in 0usize..19,
            d in -1100i64..1100,
        ) {
            let near = f64::from_bits((k as f64 / POW10[e]).to_bits().wrapping_add_signed(d));
            for v in [f64::from_bits(bits), near] {
                proptest::prop_assert_eq!(digits(v), digits_by_division(v), "{:e}", v);
            }
        }
    }
}
