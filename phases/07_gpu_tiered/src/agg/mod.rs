//! Aggregates per time bucket and symbol: count, sum, min, max and OHLCV.
//!
//! Each tier reduces its own rows to [`Partial`]s, one per (symbol, bucket)
//! group; the engine merges them. The warm tier's share is computed where
//! its columns live (on the GPU when it has one), so only the partials come
//! back, never the rows.
//!
//! A partial must not depend on the order its rows were visited in: the
//! GPU visits them in whatever order its threads run, the CPU in row order,
//! and the engine merges tiers in any order. Counts, minima and maxima are
//! order-free already. Floating-point sums are not (`(a + b) + c` may differ
//! from `a + (b + c)`), so sums are kept exactly in an [`ExactSum`], a long
//! fixed-point accumulator of 32-bit digits (Kulisch's), and rounded once at
//! the end: the result is the correctly rounded exact sum, the same bits on
//! every path. Open and close are the prices at the first and last
//! timestamp, ties broken by the total order of the price (smallest first).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};

use crate::error::{Error, Result};

/// Digits of an [`ExactSum`]: enough for 2^31 terms of any finite f64.
pub const LIMBS: usize = 68;

/// The exact sum of f64 values, rounded once when read.
///
/// A finite value is `m * 2^(p - 1074)` with `m < 2^53`, `0 <= p <= 2045`;
/// it is added as three 32-bit pieces of `m << (p % 32)` into the digits
/// `p / 32 .. p / 32 + 3`, each digit a signed 64-bit limb that absorbs
/// 2^31 additions before it could overflow (digits are carried, in
/// [`ExactSum::normalize`], before that). NaN and infinities are counted
/// apart. `kernels.cu` adds exactly the same pieces on the device.
#[derive(Clone, Debug)]
pub struct ExactSum {
    limbs: [i64; LIMBS],
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    /// A bound on every digit but the top one, in units of 2^32: one per
    /// addition since the digits were last carried (carried digits count 1).
    pending: u64,
}

impl Default for ExactSum {
    fn default() -> Self {
        ExactSum {
            limbs: [0; LIMBS],
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            pending: 0,
        }
    }
}

impl PartialEq for ExactSum {
    fn eq(&self, other: &Self) -> bool {
        (self.nan, self.pos_inf, self.neg_inf) == (other.nan, other.pos_inf, other.neg_inf)
            && carried(self.limbs) == carried(other.limbs)
    }
}

/// The 32-bit pieces of a finite value: (first digit, pieces, negative).
pub fn pieces(v: f64) -> Option<(usize, [i64; 3], bool)> {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as u32;
    let frac = bits & ((1u64 << 52) - 1);
    if exp == 0x7ff {
        return None;
    }
    let (m, p) = if exp == 0 {
        (frac, 0)
    } else {
        (frac | (1u64 << 52), exp - 1)
    };
    let w = (m as u128) << (p % 32);
    Some((
        (p / 32) as usize,
        [
            (w as u32) as i64,
            ((w >> 32) as u32) as i64,
            ((w >> 64) as u32) as i64,
        ],
        bits >> 63 == 1,
    ))
}

/// Carries every digit into [0, 2^32) but the top one, which keeps the sign.
fn carried(mut l: [i64; LIMBS]) -> [i64; LIMBS] {
    for k in 0..LIMBS - 1 {
        let carry = l[k] >> 32;
        l[k] -= carry << 32;
        l[k + 1] += carry;
    }
    l
}

impl ExactSum {
    /// Adds one value.
    pub fn add(&mut self, v: f64) {
        match pieces(v) {
            None if v.is_nan() => self.nan += 1,
            None if v > 0.0 => self.pos_inf += 1,
            None => self.neg_inf += 1,
            Some((d, p, neg)) => {
                for (j, x) in p.into_iter().enumerate() {
                    self.limbs[d + j] += if neg { -x } else { x };
                }
                self.pending += 1;
                if self.pending >= 1 << 30 {
                    self.normalize();
                }
            }
        }
    }

    /// Adds another sum: digit by digit, carrying only when a digit could
    /// come near overflowing.
    pub fn merge(&mut self, other: &ExactSum) {
        if self.pending + other.pending >= 1 << 30 {
            self.normalize();
        }
        for (a, b) in self.limbs.iter_mut().zip(other.limbs) {
            *a += b;
        }
        self.pending += other.pending;
        if self.pending >= 1 << 30 {
            self.normalize();
        }
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
    }

    /// Carries the digits (the value is unchanged).
    pub fn normalize(&mut self) {
        if self.pending > 1 {
            self.limbs = carried(self.limbs);
            self.pending = 1;
        }
    }

    /// A sum from the device's accumulator: `LIMBS` digits, then the counts
    /// of NaN, +inf and -inf.
    pub fn from_raw(limbs: &[u64], specials: [u64; 3]) -> Result<ExactSum> {
        let limbs: [i64; LIMBS] = limbs
            .iter()
            .map(|&x| x as i64)
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| Error::InvalidArgument(format!("an exact sum has {LIMBS} digits")))?;
        // The device may have added up to 2^31 terms: carry at once.
        Ok(ExactSum {
            limbs: carried(limbs),
            nan: specials[0],
            pos_inf: specials[1],
            neg_inf: specials[2],
            pending: 1,
        })
    }

    /// The correctly rounded sum (round to nearest, ties to even). NaN if a
    /// term was NaN or both infinities occur; an infinity if one occurs or
    /// the sum overflows; an exact zero is +0.0.
    pub fn value(&self) -> f64 {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            return f64::NAN;
        }
        if self.pos_inf > 0 {
            return f64::INFINITY;
        }
        if self.neg_inf > 0 {
            return f64::NEG_INFINITY;
        }
        let mut l = carried(self.limbs);
        let negative = l[LIMBS - 1] < 0;
        if negative {
            l = carried(l.map(|x| -x));
        }
        let magnitude = round_digits(&l);
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

impl ExactSum {
    /// Appends the sum's stored form (what the catalog keeps of a bar, so
    /// that later rows merge into it exactly): the counts of NaN, +inf and
    /// -inf (3 x u64 LE), the sign (u8), then the carried magnitude's
    /// nonzero digits: first index (u8), count (u8), each as u32 LE.
    /// 27 bytes plus 4 per digit; a sum of similar values has 2 to 4.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for c in [self.nan, self.pos_inf, self.neg_inf] {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let mut l = carried(self.limbs);
        let negative = l[LIMBS - 1] < 0;
        if negative {
            l = carried(l.map(|x| -x));
        }
        // A magnitude below 2^31 * f64::MAX leaves the top digits 0 and
        // every digit below 2^32 (see `LIMBS`).
        let lo = l.iter().position(|&d| d != 0).unwrap_or(0);
        let hi = l.iter().rposition(|&d| d != 0).map_or(lo, |k| k + 1);
        out.push(negative as u8);
        out.push(lo as u8);
        out.push((hi - lo) as u8);
        for &d in &l[lo..hi] {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
    }

    /// Reads a sum written by [`ExactSum::encode`] from the front of
    /// `bytes`, returning it and the bytes it took. Short or malformed bytes
    /// are [`Error::Corrupt`] (`what` names the place).
    pub fn decode(bytes: &[u8], what: &str) -> Result<(ExactSum, usize)> {
        let bad = |at: usize, why: &str| Error::corrupt(what, at as u64, why);
        if bytes.len() < 27 {
            return Err(bad(bytes.len(), "an exact sum needs at least 27 bytes"));
        }
        let u64_at =
            |k: usize| u64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().unwrap_or_default());
        let (nan, pos_inf, neg_inf) = (u64_at(0), u64_at(1), u64_at(2));
        let (sign, lo, n) = (bytes[24], bytes[25] as usize, bytes[26] as usize);
        if sign > 1 {
            return Err(bad(24, "the sign byte is neither 0 nor 1"));
        }
        if lo + n > LIMBS {
            return Err(bad(25, "the digits run past the accumulator's 68"));
        }
        let end = 27 + 4 * n;
        if bytes.len() < end {
            return Err(bad(bytes.len(), "the digits are cut short"));
        }
        let mut limbs = [0i64; LIMBS];
        for (k, d) in bytes[27..end].chunks_exact(4).enumerate() {
            let d = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64;
            limbs[lo + k] = if sign == 1 { -d } else { d };
        }
        Ok((
            ExactSum {
                limbs,
                nan,
                pos_inf,
                neg_inf,
                pending: 1,
            },
            end,
        ))
    }
}

/// Rounds a non-negative number of 32-bit digits (units of 2^-1074) to f64.
fn round_digits(d: &[i64; LIMBS]) -> f64 {
    let Some(top) = (0..LIMBS).rev().find(|&k| d[k] != 0) else {
        return 0.0;
    };
    let digit = |k: usize| -> u128 { d.get(k).map_or(0, |&x| x as u32 as u128) };
    let msb = 32 * top + (63 - (d[top] as u64).leading_zeros() as usize);
    // The 64 bits starting at bit `lo`.
    let window = |lo: usize| -> u64 {
        let k = lo / 32;
        let w = digit(k) | (digit(k + 1) << 32) | (digit(k + 2) << 64);
        (w >> (lo % 32)) as u64
    };
    if msb <= 52 {
        // Exact: a subnormal, or a normal of the smallest exponent, whose
        // bits are the integer itself.
        return f64::from_bits(window(0) & ((1u64 << 53) - 1));
    }
    let mut shift = msb - 52;
    let mut m = window(shift) & ((1u64 << 53) - 1);
    let round = (window(shift - 1) & 1) == 1;
    // Any set bit below the round bit.
    let r = shift - 1;
    let sticky =
        d[..r / 32].iter().any(|&x| x != 0) || digit(r / 32) & ((1u128 << (r % 32)) - 1) != 0;
    if round && (sticky || m & 1 == 1) {
        m += 1;
        if m == 1u64 << 53 {
            m >>= 1;
            shift += 1;
        }
    }
    let exp = shift as u64 + 1;
    if exp >= 0x7ff {
        return f64::INFINITY;
    }
    f64::from_bits((exp << 52) | (m - (1u64 << 52)))
}

/// A key whose unsigned order is `f64::total_cmp`'s.
pub fn total_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1u64 << 63)
    }
}

/// The value of a [`total_key`].
pub fn from_total_key(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1u64 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// Time buckets `[start + i * every, start + (i + 1) * every)` over `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets {
    pub start: i64,
    pub end: i64,
    pub every: i64,
}

impl Buckets {
    /// Checked buckets: `every > 0`, `start <= end`, at most `max` of them.
    pub fn new(start: i64, end: i64, every: i64, max: u64) -> Result<Buckets> {
        if every <= 0 {
            return Err(Error::InvalidArgument(format!(
                "bucket width must be positive, not {every} ns"
            )));
        }
        if start > end {
            return Err(Error::InvalidArgument("start is after end".into()));
        }
        let b = Buckets { start, end, every };
        if b.count() > max {
            return Err(Error::InvalidArgument(format!(
                "{} buckets, more than {max}: use wider buckets or a shorter range",
                b.count()
            )));
        }
        Ok(b)
    }

    /// How many buckets.
    pub fn count(&self) -> u64 {
        let span = (self.end as u64).wrapping_sub(self.start as u64);
        span.div_ceil(self.every as u64)
    }

    /// The bucket of `ts`, if in range (the same arithmetic as the kernel).
    pub fn index(&self, ts: i64) -> Option<u64> {
        if ts < self.start || ts >= self.end {
            return None;
        }
        Some((ts as u64).wrapping_sub(self.start as u64) / self.every as u64)
    }

    /// Start time of bucket `i`.
    pub fn time(&self, i: u64) -> i64 {
        self.start.wrapping_add((i as i64).wrapping_mul(self.every))
    }
}

/// One group's rows reduced: what every tier returns and the engine merges.
#[derive(Clone, Debug, PartialEq)]
pub struct Partial {
    pub count: u64,
    /// (timestamp, [`total_key`] of price) of the first trade.
    pub first: (i64, u64),
    /// ... and of the last.
    pub last: (i64, u64),
    /// [`total_key`]s of the smallest and largest non-NaN price and volume
    /// (`u64::MAX` / 0 when there is none; no non-NaN key takes those).
    pub price_min: u64,
    pub price_max: u64,
    pub volume_min: u64,
    pub volume_max: u64,
    pub price_sum: ExactSum,
    pub volume_sum: ExactSum,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            count: 0,
            first: (i64::MAX, u64::MAX),
            last: (i64::MIN, 0),
            price_min: u64::MAX,
            price_max: 0,
            volume_min: u64::MAX,
            volume_max: 0,
            price_sum: ExactSum::default(),
            volume_sum: ExactSum::default(),
        }
    }
}

impl Partial {
    /// Adds one trade.
    pub fn add(&mut self, ts: i64, price: f64, volume: f64) {
        let pk = total_key(price);
        self.count += 1;
        self.first = self.first.min((ts, pk));
        self.last = self.last.max((ts, pk));
        if !price.is_nan() {
            self.price_min = self.price_min.min(pk);
            self.price_max = self.price_max.max(pk);
        }
        if !volume.is_nan() {
            let vk = total_key(volume);
            self.volume_min = self.volume_min.min(vk);
            self.volume_max = self.volume_max.max(vk);
        }
        self.price_sum.add(price);
        self.volume_sum.add(volume);
    }

    /// Adds another partial of the same group.
    pub fn merge(&mut self, o: &Partial) {
        self.count += o.count;
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.price_min = self.price_min.min(o.price_min);
        self.price_max = self.price_max.max(o.price_max);
        self.volume_min = self.volume_min.min(o.volume_min);
        self.volume_max = self.volume_max.max(o.volume_max);
        self.price_sum.merge(&o.price_sum);
        self.volume_sum.merge(&o.volume_sum);
    }
}

impl Partial {
    /// Stored form version written by [`Partial::encode`].
    const VERSION: u8 = 1;

    /// The partial's stored form: a version byte, count, first and last
    /// (timestamp, price key), the four min/max keys (each 8 bytes LE),
    /// then the price and volume sums ([`ExactSum::encode`]). About 130
    /// bytes for a bar of ordinary prices.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.encode_into(&mut out);
        out
    }

    /// [`Partial::encode`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(Self::VERSION);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.first.0.to_le_bytes());
        out.extend_from_slice(&self.first.1.to_le_bytes());
        out.extend_from_slice(&self.last.0.to_le_bytes());
        out.extend_from_slice(&self.last.1.to_le_bytes());
        for k in [
            self.price_min,
            self.price_max,
            self.volume_min,
            self.volume_max,
        ] {
            out.extend_from_slice(&k.to_le_bytes());
        }
        self.price_sum.encode(out);
        self.volume_sum.encode(out);
    }

    /// Reads what [`Partial::encode`] wrote; anything else (short, long,
    /// another version, malformed sums) is [`Error::Corrupt`] naming `what`.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Partial> {
        const HEAD: usize = 1 + 9 * 8;
        if bytes.len() < HEAD {
            return Err(Error::corrupt(
                what,
                bytes.len() as u64,
                "a bar's state is cut short",
            ));
        }
        if bytes[0] != Self::VERSION {
            return Err(Error::corrupt(
                what,
                0,
                format!(
                    "a bar's state has version {}, this build reads {}",
                    bytes[0],
                    Self::VERSION
                ),
            ));
        }
        let word = |k: usize| -> [u8; 8] {
            let at = 1 + 8 * k;
            bytes[at..at + 8].try_into().unwrap_or_default()
        };
        let (price_sum, used) = ExactSum::decode(&bytes[HEAD..], what)?;
        let (volume_sum, used2) = ExactSum::decode(&bytes[HEAD + used..], what)?;
        if HEAD + used + used2 != bytes.len() {
            return Err(Error::corrupt(
                what,
                (HEAD + used + used2) as u64,
                "a bar's state has bytes after its sums",
            ));
        }
        Ok(Partial {
            count: u64::from_le_bytes(word(0)),
            first: (i64::from_le_bytes(word(1)), u64::from_le_bytes(word(2))),
            last: (i64::from_le_bytes(word(3)), u64::from_le_bytes(word(4))),
            price_min: u64::from_le_bytes(word(5)),
            price_max: u64::from_le_bytes(word(6)),
            volume_min: u64::from_le_bytes(word(7)),
            volume_max: u64::from_le_bytes(word(8)),
            price_sum,
            volume_sum,
        })
    }

    /// The bar of this group (`count` must be positive for a real bar).
    pub fn bar(&self, symbol: Arc<str>, time: i64) -> Bar {
        let key_or_nan = |k: u64, none: u64| {
            if k == none {
                f64::NAN
            } else {
                from_total_key(k)
            }
        };
        Bar {
            symbol,
            time,
            trades: self.count,
            open: from_total_key(self.first.1),
            high: key_or_nan(self.price_max, 0),
            low: key_or_nan(self.price_min, u64::MAX),
            close: from_total_key(self.last.1),
            volume: self.volume_sum.value(),
            price_sum: self.price_sum.value(),
            volume_min: key_or_nan(self.volume_min, u64::MAX),
            volume_max: key_or_nan(self.volume_max, 0),
        }
    }
}

/// Partials by (symbol, bucket index).
pub type Groups = BTreeMap<(Arc<str>, u64), Partial>;

/// Merges `from` into `into`.
pub fn merge_groups(into: &mut Groups, from: Groups) {
    for (k, p) in from {
        match into.get_mut(&k) {
            Some(q) => q.merge(&p),
            None => {
                into.insert(k, p);
            }
        }
    }
}

/// Folds batches of `[timestamp, symbol, price, volume]` rows (already
/// filtered) into `groups`; rows outside the buckets are skipped. The
/// batches' groups are gathered first (keyed by borrowed symbols, their
/// partials in one vector so that a partial, about a kilobyte with its
/// exact sums, is moved once), then merged into `groups` once each, with
/// one shared name per symbol.
pub fn fold(groups: &mut Groups, buckets: &Buckets, batches: &[RecordBatch]) -> Result<()> {
    type Fast = foldhash::fast::RandomState;
    let mut local: HashMap<(&str, u64), usize, Fast> = HashMap::default();
    let mut parts: Vec<Partial> = Vec::new();
    let mut last: Option<((&str, u64), usize)> = None;
    for batch in batches {
        if batch.num_columns() < 4 {
            return Err(Error::InvalidArgument(
                "aggregating needs timestamp, symbol, price and volume".into(),
            ));
        }
        let bad = |what: &str| Error::InvalidArgument(format!("aggregating: {what}"));
        let ts = batch
            .column(0)
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| bad("timestamp column is not a timestamp"))?;
        let sym = batch
            .column(1)
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("symbol column is not a string"))?;
        let price = batch
            .column(2)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| bad("price column is not f64"))?;
        let volume = batch
            .column(3)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| bad("volume column is not f64"))?;
        for r in 0..batch.num_rows() {
            if ts.is_null(r) || sym.is_null(r) {
                continue;
            }
            let t = ts.value(r);
            let Some(b) = buckets.index(t) else {
                continue;
            };
            // Rows come in runs of one group (cold files are sorted by
            // symbol and time): the run's group is looked up once.
            let key = (sym.value(r), b);
            let i = match last {
                Some((k, i)) if k == key => i,
                _ => {
                    let i = *local.entry(key).or_insert_with(|| {
                        parts.push(Partial::default());
                        parts.len() - 1
                    });
                    last = Some((key, i));
                    i
                }
            };
            parts[i].add(t, price.value(r), volume.value(r));
        }
    }
    let mut keys: Vec<(&str, u64)> = vec![("", 0); parts.len()];
    for (k, i) in local {
        keys[i] = k;
    }
    let mut names: HashMap<&str, Arc<str>, Fast> = HashMap::default();
    for ((s, b), p) in keys.into_iter().zip(parts) {
        let name = names.entry(s).or_insert_with(|| {
            groups
                .range((Arc::<str>::from(s), 0)..)
                .next()
                .filter(|((n, _), _)| &**n == s)
                .map(|((n, _), _)| n.clone())
                .unwrap_or_else(|| Arc::from(s))
        });
        match groups.entry((name.clone(), b)) {
            std::collections::btree_map::Entry::Occupied(mut q) => q.get_mut().merge(&p),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(p);
            }
        }
    }
    Ok(())
}

/// One group's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub symbol: Arc<str>,
    /// Start of the bucket.
    pub time: i64,
    pub trades: u64,
    pub open: f64,
    /// Largest and smallest non-NaN price (NaN when every price is NaN).
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Sum of the volumes.
    pub volume: f64,
    /// Sum of the prices (their mean is `price_sum / trades`).
    pub price_sum: f64,
    pub volume_min: f64,
    pub volume_max: f64,
}

/// The bars of merged groups, by symbol then time.
pub fn bars(groups: &Groups, buckets: &Buckets) -> Vec<Bar> {
    groups
        .iter()
        .filter(|(_, p)| p.count > 0)
        .map(|((s, b), p)| p.bar(s.clone(), buckets.time(*b)))
        .collect()
}

/// Most buckets one aggregate may ask for.
pub const MAX_BUCKETS: u64 = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Shewchuk's exact summation with the final correction of Python's
    /// `math.fsum`: a correctly rounded reference (for sums that never
    /// overflow on the way).
    fn fsum(values: &[f64]) -> f64 {
        let mut partials: Vec<f64> = Vec::new();
        for &v in values {
            let mut x = v;
            let mut i = 0;
            for j in 0..partials.len() {
                let mut y = partials[j];
                if x.abs() < y.abs() {
                    std::mem::swap(&mut x, &mut y);
                }
                let hi = x + y;
                let lo = y - (hi - x);
                if lo != 0.0 {
                    partials[i] = lo;
                    i += 1;
                }
                x = hi;
            }
            partials.truncate(i);
            partials.push(x);
        }
        let mut n = partials.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = partials[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = partials[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }

    fn exact(values: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        for &v in values {
            s.add(v);
        }
        s.value()
    }

    #[test]
    fn sums_are_exact_where_naive_sums_are_not() {
        assert_eq!(exact(&[1e308, 1e308, -1e308]), 1e308);
        assert_eq!(exact(&[1.0, 1e-300, -1.0]), 1e-300);
        assert_eq!(exact(&[0.1, 0.2, 0.3]), fsum(&[0.1, 0.2, 0.3]));
        assert_eq!(exact(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(exact(&[-f64::MAX, -f64::MAX]), f64::NEG_INFINITY);
        assert_eq!(exact(&[5e-324, 5e-324]).to_bits(), 2);
        assert_eq!(
            exact(&[f64::MIN_POSITIVE, -5e-324]).to_bits(),
            (1 << 52) - 1
        );
        assert_eq!(exact(&[]).to_bits(), 0);
        assert_eq!(exact(&[2.5, -2.5]).to_bits(), 0);
        assert!(exact(&[1.0, f64::NAN]).is_nan());
        assert!(exact(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert_eq!(exact(&[f64::INFINITY, 1.0]), f64::INFINITY);
        // Ties go to even: 2^53 + 1 is halfway between 2^53 and 2^53 + 2.
        let two53 = 9_007_199_254_740_992.0;
        assert_eq!(exact(&[two53, 1.0]), two53);
        assert_eq!(exact(&[two53, 1.0, 1e-10]), two53 + 2.0);
        assert_eq!(exact(&[two53 + 2.0, 1.0]), two53 + 4.0);
    }

    #[test]
    fn a_carried_sum_merges_like_one_long_sum() {
        let mut a = ExactSum::default();
        let mut b = ExactSum::default();
        let mut all = ExactSum::default();
        for i in 0..10_000 {
            let v = (i as f64).sin() * 10f64.powi(i % 40 - 20);
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.value().to_bits(), all.value().to_bits());
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e6f64..1e6,
            (-1e30f64..1e30),
            (-1e-300f64..1e-300),
            any::<i32>().prop_map(|x| x as f64 * 0.25),
        ]
    }

    proptest! {
        #[test]
        fn sums_are_correctly_rounded_and_order_free(
            mut v in proptest::collection::vec(finite(), 0..200),
            seed in any::<u64>(),
        ) {
            let want = fsum(&v);
            prop_assert_eq!(exact(&v).to_bits(), (want + 0.0).to_bits());
            // Any order, any split: the same bits.
            let mut rng = seed;
            for i in (1..v.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                v.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let (l, r) = v.split_at(v.len() / 2);
            let mut a = ExactSum::default();
            l.iter().for_each(|&x| a.add(x));
            let mut b = ExactSum::default();
            r.iter().for_each(|&x| b.add(x));
            b.merge(&a);
            prop_assert_eq!(b.value().to_bits(), (want + 0.0).to_bits());
        }

        /// A partial's stored form reads back equal, merges on exactly
        /// (the sum of the merged stored halves is the sum of all), and
        /// every shorter or longer copy is refused.
        #[test]
        fn stored_partials_read_back_and_merge_exactly(
            rows in proptest::collection::vec((any::<i64>(), any::<f64>(), any::<f64>()), 0..60),
            split in 0usize..60,
        ) {
            let (mut a, mut b, mut all) = (Partial::default(), Partial::default(), Partial::default());
            for (i, &(t, p, v)) in rows.iter().enumerate() {
                if i < split { a.add(t, p, v) } else { b.add(t, p, v) }
                all.add(t, p, v);
            }
            let bytes = a.encode();
            let mut back = Partial::decode(&bytes, "test")?;
            prop_assert_eq!(&back, &a);
            back.merge(&Partial::decode(&b.encode(), "test")?);
            prop_assert_eq!(&back, &all);
            let (x, y) = (back.bar("A".into(), 0), all.bar("A".into(), 0));
            prop_assert_eq!(x.volume.to_bits(), y.volume.to_bits());
            prop_assert_eq!(x.price_sum.to_bits(), y.price_sum.to_bits());
            for cut in 0..bytes.len() {
                prop_assert!(Partial::decode(&bytes[..cut], "test").is_err());
            }
            let mut long = bytes.clone();
            long.push(0);
            prop_assert!(Partial::decode(&long, "test").is_err());
        }

        /// Arbitrary bytes are an error or a partial, never a panic.
        #[test]
        fn stored_partials_survive_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Partial::decode(&bytes, "test");
        }

        #[test]
        fn total_keys_order_like_total_cmp(a in any::<f64>(), b in any::<f64>()) {
            prop_assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_total_key(total_key(a)).to_bits(), a.to_bits());
        }

        #[test]
        fn partials_do_not_depend_on_order(
            rows in proptest::collection::vec((0i64..5, finite(), finite()), 1..60),
        ) {
            let mut fwd = Partial::default();
            rows.iter().for_each(|&(t, p, v)| fwd.add(t, p, v));
            let mut back = Partial::default();
            rows.iter().rev().for_each(|&(t, p, v)| back.add(t, p, v));
            prop_assert_eq!(&fwd, &back);
            let mut halves = Partial::default();
            let mut other = Partial::default();
            for (i, &(t, p, v)) in rows.iter().enumerate() {
                if i % 2 == 0 { halves.add(t, p, v) } else { other.add(t, p, v) }
            }
            halves.merge(&other);
            prop_assert_eq!(&fwd, &halves);
        }
    }

    #[test]
    fn open_and_close_break_time_ties_by_price() {
        let mut p = Partial::default();
        for (t, px) in [
            (5, 3.0),
            (1, 9.0),
            (1, 2.0),
            (7, 1.0),
            (7, 4.0),
            (3, f64::NAN),
        ] {
            p.add(t, px, 1.0);
        }
        let b = &bars(
            &Groups::from([((Arc::from("A"), 0), p)]),
            &Buckets::new(0, 10, 10, 10).unwrap(),
        )[0];
        assert_eq!((b.open, b.close, b.high, b.low), (2.0, 4.0, 9.0, 1.0));
        assert_eq!(
            (b.trades, b.volume, b.volume_min, b.volume_max),
            (6, 6.0, 1.0, 1.0)
        );
        assert!(b.price_sum.is_nan());
    }

    #[test]
    fn buckets_are_checked_and_cover_the_range() {
        assert!(Buckets::new(0, 10, 0, 10).is_err());
        assert!(Buckets::new(10, 0, 1, 10).is_err());
        assert!(Buckets::new(0, 100, 1, 10).is_err());
        let b = Buckets::new(-5, 16, 10, 10).unwrap();
        assert_eq!(b.count(), 3);
        assert_eq!(
            [-6, -5, 4, 5, 15, 16].map(|t| b.index(t)),
            [None, Some(0), Some(0), Some(1), Some(2), None]
        );
        assert_eq!(b.time(2), 15);
    }
}
