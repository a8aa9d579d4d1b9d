//! Downsampling: rollups of raw samples into fixed time buckets.
//!
//! For every series and every resolution (1 m, 5 m, 15 m, 1 h) the samples
//! are grouped into buckets aligned to the resolution (`t.div_euclid(res)`),
//! and each bucket becomes one sample of several rollup series, named
//! `{metric}_{aggregate}_{resolution}` with the raw series' labels:
//!
//! | kind | aggregates | why |
//! |------|------------|-----|
//! | gauge | `count`, `sum`, `min`, `max`, `p95`, `p99` | `count` and `sum` make averages compose: the average over an hour is Σsum / Σcount of its buckets, exactly; so `avg` is not stored, it is `sum / count` on read |
//! | counter (declared `counter` by the source's `# TYPE`, else named `*_total`; [`Dataset::is_counter`]) | `last`, `increase`, `resets` | a counter's average means nothing; its increase does. A drop between two instants is a reset: the increase after it is the new value (a second sample at the same instant is a duplicate, not a reset) |
//!
//! A resolution at or below twice a series' own step (the median distance
//! between its timestamps, [`series_step`]) is skipped for that series: a
//! bucket would hold two samples or fewer and keep more numbers than it
//! replaces. A constant series (every sample the same bits) is skipped at
//! every resolution: its raw file holds one number a window. A series is
//! also skipped where its rollups would not be at most half its samples'
//! bytes, or at most [`FINER_PERCENT`]% of its rollups at the nearest
//! finer resolution that keeps it ([`rollup_series`], [`skip_reason`]).
//! NaN samples are left out of every aggregate (and of `count`).
//! Percentiles use the nearest-rank method. Rollups are lossy:
//! [`measure_loss`] says by how much, against the raw samples.

use crate::model::{Dataset, Series, SeriesKey};
use crate::time::NANOS_PER_SECOND;

/// A rollup resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub name: &'static str,
    pub ns: i64,
}

/// The resolutions phase 05 writes.
pub const RESOLUTIONS: [Resolution; 4] = [
    Resolution {
        name: "1m",
        ns: 60 * NANOS_PER_SECOND,
    },
    Resolution {
        name: "5m",
        ns: 300 * NANOS_PER_SECOND,
    },
    Resolution {
        name: "15m",
        ns: 900 * NANOS_PER_SECOND,
    },
    Resolution {
        name: "1h",
        ns: 3600 * NANOS_PER_SECOND,
    },
];

/// A series' own step: the median distance between its consecutive
/// distinct timestamps (`None` with fewer than two distinct instants).
pub fn series_step(timestamps: &[i64]) -> Option<i64> {
    let mut deltas: Vec<i64> = timestamps
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .filter(|&d| d > 0)
        .collect();
    if deltas.is_empty() {
        return None;
    }
    let mid = deltas.len() / 2;
    Some(*deltas.select_nth_unstable(mid).1)
}

/// Whether `res` is skipped for a series of this step: a bucket at or
/// below twice the step holds two samples or fewer.
pub fn skips(step: Option<i64>, res: &Resolution) -> bool {
    step.is_some_and(|s| res.ns <= s.saturating_mul(2))
}

/// Rollups are kept for a series only when their estimated bytes are at
/// most `1 / MIN_SHRINK` of its samples' ([`rollup_series`]).
pub const MIN_SHRINK: usize = 2;

/// A coarser resolution is kept for a series only when its rollups, in a
/// `.metrics` file of their own, are at most `FINER_PERCENT`% of its
/// rollups at the nearest finer resolution that keeps it
/// ([`rollup_series`]): a query falls back to that finer one, which then
/// costs it little more.
pub const FINER_PERCENT: usize = 90;

/// Bytes a series costs in a `.metrics` file beyond its values, as the
/// estimate counts it: a directory entry, a share of the name pages and
/// of the index (measured on the course's files: 6 to 12 bytes).
const SERIES_OVERHEAD: usize = 10;

/// Why a series has no rollups at a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The resolution is at most twice the series' step ([`skips`]).
    Step(i64),
    /// Its rollups would not be at most half the bytes of its samples
    /// (a short or sparse series, a step close to the resolution, or
    /// samples that compress better than their sums): reading them would
    /// save little, and storing them would cost more.
    NotSmaller,
    /// Every sample has the same bits: the raw file keeps one number a
    /// window for it already, and its rollups would keep more.
    Constant,
    /// Its rollups would be more than [`FINER_PERCENT`]% of the bytes of
    /// its rollups at this finer resolution, which keeps it (a short
    /// series, or a periodic one whose buckets hold the same numbers at
    /// both): queries take those.
    NotSmallerThanFiner(&'static str),
}

/// Which series rollups keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Those whose rollups are at most `1 / MIN_SHRINK` of their samples'
    /// bytes (phase 05, [`rollup_series`]).
    Smaller,
    /// Every series the step rule allows, constant ones aside: to study
    /// the aggregates on small data.
    All,
}

/// Blocks of rollups span 480 buckets (1m: 8 h, 1h: 20 days), so that a
/// block of a coarse resolution holds as many points as a raw block does.
pub fn rollup_block_options(res: &Resolution) -> crate::format::metrics::BlockOptions {
    crate::format::metrics::BlockOptions {
        window_ns: res.ns.saturating_mul(480),
        ..crate::format::metrics::BlockOptions::default()
    }
}

/// Whether, and why, `s` has no rollups at `res` ([`rollup_series`]).
pub fn skip_reason(s: &Series, counter: bool, res: &Resolution) -> Option<Skip> {
    rollup_series(s, counter, res, Keep::Smaller).err()
}

/// Nearest-rank percentile of sorted, NaN-free values (`q` in 0..=1).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The aggregates of one bucket of a gauge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeBucket {
    pub start: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub p95: f64,
    pub p99: f64,
}

impl GaugeBucket {
    /// The bucket's average, derived: it is not stored.
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// The aggregates of one bucket of a counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterBucket {
    pub start: i64,
    pub last: f64,
    /// Increase since the previous sample before this bucket, across resets.
    pub increase: f64,
    /// Drops between two instants (resets) in the bucket, counting the
    /// one from the previous bucket's last sample to this bucket's first.
    pub resets: u64,
}

/// Consecutive runs of samples that fall in the same bucket: `(bucket start, range)`.
fn buckets(ts: &[i64], res: i64) -> Vec<(i64, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ts.len() {
        let b = ts[i].div_euclid(res);
        let mut j = i + 1;
        while j < ts.len() && ts[j].div_euclid(res) == b {
            j += 1;
        }
        out.push((b.saturating_mul(res), i..j));
        i = j;
    }
    out
}

/// The sum of `values` computed exactly in integers when every value is a
/// decimal with the same number of digits (`37.42` is 3742 hundredths),
/// then rounded once to `f64`; `None` when they are not.
///
/// Q: Why not `values.iter().sum()`?
/// A: Adding `f64`s rounds at every step, so a sum of two-digit decimals
/// ends in rounding noise (`163.60999999999998`) that no codec can predict:
/// such sums took 7.7 bytes each in a rollup file, the maxima beside them
/// 1.5. The integer sum is exact, so it stays a short decimal and compresses
/// like the samples.
pub fn decimal_sum(values: &[f64]) -> Option<f64> {
    let mut ks = Vec::new();
    let e = crate::codec::adaptive::find_decimal(values, &mut ks)?;
    let total: i128 = ks.iter().map(|&k| i128::from(k)).sum();
    Some(total as f64 / crate::codec::adaptive::POW10[usize::from(e)])
}

/// Adds `x` to the compensated sum `(s, comp)` (Neumaier's variant of
/// Kahan summation: the low-order bits each addition loses are kept apart;
/// the sum is `s + comp`). Neumaier, "Rundungsfehleranalyse einiger
/// Verfahren zur Summation endlicher Summen", ZAMM 54 (1974).
pub fn neumaier(s: &mut f64, comp: &mut f64, x: f64) {
    let t = *s + x;
    *comp += if s.abs() >= x.abs() {
        (*s - t) + x
    } else {
        (x - t) + *s
    };
    *s = t;
}

/// The compensated sum of `values` in their order ([`neumaier`]), as the
/// query engine adds samples.
pub fn compensated_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut comp) = (0.0, 0.0);
    for x in values {
        neumaier(&mut s, &mut comp, x);
    }
    // An infinite or NaN sum has no low-order bits to add back.
    if s.is_finite() {
        s + comp
    } else {
        s
    }
}

/// Rolls a gauge up; buckets with only NaN samples are left out. `sum` is
/// [`decimal_sum`] where the samples are decimals (exact, rounded once),
/// else their compensated sum in time order ([`compensated_sum`]), as the
/// query engine adds samples: never in sorted order, which overflows or
/// cancels differently.
pub fn rollup_gauge(s: &Series, res: i64) -> Vec<GaugeBucket> {
    let mut out = Vec::new();
    let mut sorted = Vec::new();
    for (start, range) in buckets(&s.timestamps, res) {
        sorted.clear();
        sorted.extend(s.values[range].iter().copied().filter(|v| !v.is_nan()));
        if sorted.is_empty() {
            continue;
        }
        let sum = decimal_sum(&sorted).unwrap_or_else(|| compensated_sum(sorted.iter().copied()));
        sorted.sort_by(f64::total_cmp);
        out.push(GaugeBucket {
            start,
            count: sorted.len() as u64,
            sum,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            p95: percentile(&sorted, 0.95),
            p99: percentile(&sorted, 0.99),
        });
    }
    out
}

/// `(bucket start, NaN samples)` for the buckets of `s` that hold NaN
/// samples (a bucket of only NaN samples has no other aggregate).
pub fn nan_buckets(s: &Series, res: i64) -> Vec<(i64, u64)> {
    if !s.values.iter().any(|v| v.is_nan()) {
        return Vec::new();
    }
    buckets(&s.timestamps, res)
        .into_iter()
        .filter_map(|(start, range)| {
            let n = s.values[range].iter().filter(|v| v.is_nan()).count() as u64;
            (n > 0).then_some((start, n))
        })
        .collect()
}

/// Rolls a counter up: last value, increase across resets, and resets.
///
/// A drop between two samples is a reset (the increase after it is the new
/// value), but only between two *instants*: a sample at the same timestamp
/// as the one before it is a duplicate, not a later reading, and is left
/// out (the first one stands, as Prometheus' storage keeps the first of
/// two samples at one timestamp). The importers refuse conflicting
/// duplicates unless told which to keep, so this only matters for data
/// built in code.
pub fn rollup_counter(s: &Series, res: i64) -> Vec<CounterBucket> {
    let mut out = Vec::new();
    let mut prev: Option<(i64, f64)> = None;
    let (mut steps, mut ks) = (Vec::new(), Vec::new());
    for (start, range) in buckets(&s.timestamps, res) {
        let (mut increase, mut resets, mut seen, mut last) = (0.0, 0u64, false, f64::NAN);
        // The values the increase is made of: the previous one, then the bucket's.
        steps.clear();
        steps.extend(prev.map(|(_, p)| p));
        let samples = s.timestamps[range.clone()].iter().zip(&s.values[range]);
        for (&t, &v) in samples.filter(|(_, v)| !v.is_nan()) {
            if let Some((pt, p)) = prev {
                if pt == t {
                    continue;
                }
                if v >= p {
                    increase += v - p;
                } else {
                    increase += v;
                    resets += 1;
                }
            }
            prev = Some((t, v));
            steps.push(v);
            last = v;
            seen = true;
        }
        // As for a gauge's sum: exact in integers where the values are decimals.
        if let Some(e) = crate::codec::adaptive::find_decimal(&steps, &mut ks) {
            let inc: i128 = ks
                .windows(2)
                .map(|w| i128::from(if w[1] >= w[0] { w[1] - w[0] } else { w[1] }))
                .sum();
            increase = inc as f64 / crate::codec::adaptive::POW10[usize::from(e)];
        }
        if seen {
            out.push(CounterBucket {
                start,
                last,
                increase,
                resets,
            });
        }
    }
    out
}

/// What a gauge keeps per bucket (`avg` is `sum / count`, derived on read).
pub const GAUGE_AGGREGATES: [&str; 6] = ["count", "sum", "min", "max", "p95", "p99"];

/// The NaN samples of a gauge's buckets, stored only for buckets that hold
/// some ([`nan_buckets`]): every other aggregate leaves NaN out, and a query
/// answered from rollups must still count those rows as the raw scan does.
pub const GAUGE_NANS: &str = "nans";

/// What a counter keeps per bucket.
pub const COUNTER_AGGREGATES: [&str; 3] = ["last", "increase", "resets"];

/// The rollups of a dataset at one resolution.
#[derive(Debug, Clone)]
pub struct Rollup {
    /// One series per aggregate of each raw series that was rolled up.
    pub data: Dataset,
    /// Raw series rolled up, and of them counters.
    pub series: usize,
    pub counters: usize,
    /// Raw series skipped because the resolution is at most twice their step.
    pub skipped: usize,
    /// The largest step among them, ns (0 when none).
    pub skipped_max_step: i64,
    /// Raw series skipped because they are constant ([`Skip::Constant`]).
    pub skipped_constant: usize,
    /// Raw series whose rollups would not be half their bytes ([`Skip::NotSmaller`]).
    pub skipped_larger: usize,
    /// Raw series whose rollups would not be smaller enough than at a
    /// finer resolution ([`Skip::NotSmallerThanFiner`]), per finer resolution.
    pub skipped_finer: Vec<(&'static str, usize)>,
    /// Whether each raw series (in the dataset's order) was rolled up.
    pub rolled: Vec<bool>,
    /// Why each raw series (in the dataset's order) was not: `None` where
    /// it was rolled up.
    pub skips: Vec<Option<Skip>>,
}

fn aggregate_series(
    key: &SeriesKey,
    aggregate: &str,
    res: &Resolution,
    starts: &[i64],
    values: Vec<f64>,
) -> Series {
    let mut s = Series::new(rollup_key(key, aggregate, res));
    s.timestamps = starts.to_vec();
    s.values = values;
    s
}

/// The key of one aggregate of a raw series: `{metric}_{aggregate}_{res}`
/// with the raw series' labels.
pub fn rollup_key(key: &SeriesKey, aggregate: &str, res: &Resolution) -> SeriesKey {
    SeriesKey::new(
        format!("{}_{aggregate}_{}", key.metric, res.name),
        key.labels.clone(),
    )
}

/// An aggregate that is often equal, bit for bit, to another one (`fallback`,
/// the next order statistic up, or 0 for `resets`): only the buckets where it
/// differs are stored, and none at all when it never does. When more than
/// half the buckets differ the whole column is stored, which shares the
/// bucket timestamps of the other aggregates. A reader takes a missing
/// bucket's value from `fallback` ([`gauge_buckets`], [`counter_buckets`]).
fn where_different(
    key: &SeriesKey,
    aggregate: &str,
    res: &Resolution,
    starts: &[i64],
    values: Vec<f64>,
    fallback: impl Fn(usize) -> f64,
) -> Option<Series> {
    let differ: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].to_bits() != fallback(i).to_bits())
        .collect();
    if differ.is_empty() {
        return None;
    }
    if differ.len() * 2 > values.len() {
        return Some(aggregate_series(key, aggregate, res, starts, values));
    }
    let mut s = Series::new(rollup_key(key, aggregate, res));
    for i in differ {
        s.push(starts[i], values[i]);
    }
    Some(s)
}

/// Every rollup series of `dataset` at one resolution, for each series
/// whose step the resolution does not [`skips`]: for a gauge `count`,
/// `sum` and `max` in full, and `p99`, `p95` and `min` where each differs
/// from the next one up (`p99` from `max`, `p95` from `p99`, `min` from
/// `p95`); for a counter `last` and `increase` in full and `resets` where
/// it is not 0. [`gauge_buckets`] and [`counter_buckets`] rebuild every
/// bucket's aggregates, bit for bit.
pub fn rollup(dataset: &Dataset, res: &Resolution) -> Rollup {
    rollup_keeping(dataset, res, Keep::Smaller)
}

/// [`rollup`], keeping the series `keep` says.
pub fn rollup_keeping(dataset: &Dataset, res: &Resolution, keep: Keep) -> Rollup {
    let mut out = Vec::new();
    let (mut series, mut counters, mut skipped, mut skipped_max_step) = (0, 0, 0, 0);
    let (mut skipped_constant, mut skipped_larger) = (0, 0);
    let mut skipped_finer: Vec<(&'static str, usize)> = Vec::new();
    let mut rolled = Vec::with_capacity(dataset.series.len());
    let mut skips = Vec::with_capacity(dataset.series.len());
    for s in &dataset.series {
        let counter = dataset.is_counter(&s.key.metric);
        let parts = rollup_series(s, counter, res, keep);
        rolled.push(parts.is_ok());
        skips.push(parts.as_ref().err().copied());
        match parts {
            Err(Skip::Step(step)) => {
                skipped += 1;
                skipped_max_step = skipped_max_step.max(step);
            }
            Err(Skip::Constant) => skipped_constant += 1,
            Err(Skip::NotSmaller) => skipped_larger += 1,
            Err(Skip::NotSmallerThanFiner(name)) => {
                match skipped_finer.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, k)) => *k += 1,
                    None => skipped_finer.push((name, 1)),
                }
            }
            Ok(parts) => {
                series += 1;
                counters += usize::from(counter);
                out.extend(parts);
            }
        }
    }
    Rollup {
        data: Dataset::new(format!("{} (rollups {})", dataset.source, res.name), out),
        series,
        counters,
        skipped,
        skipped_max_step,
        skipped_constant,
        skipped_larger,
        skipped_finer,
        rolled,
        skips,
    }
}

/// The rollup series of one raw series at `res` (a counter's when
/// `counter`), or why it has none: it is constant, the resolution is at
/// most twice its step ([`skips`]), its rollups would not be at most half
/// its samples' bytes, or they would not be at most [`FINER_PERCENT`]% of
/// its rollups at the next finer resolution of [`RESOLUTIONS`] that keeps
/// it (each finer one judged by these same rules).
///
/// Against the samples, the estimate encodes values with the codec the
/// `.metrics` blocks use ([`crate::codec::adaptive`]), piece by piece as
/// the file does (a counter's resets widened the whole column's bit width
/// in one piece, and made its samples look 3.5 times their file's bytes:
/// a break test found 1m rollups kept at 100.6% of them), and adds each
/// series' overhead in the file (bucket timestamps, regular, a byte
/// each); what it leaves out (the samples' timestamps) only makes the raw
/// side look cheaper, so a kept rollup is smaller still. Against a finer
/// resolution, both are written as `.metrics` files of their own (blocks,
/// shared timestamps, constants in the index, names, header and footer),
/// since there the timestamps and the columns that never change, which
/// the file keeps for nearly nothing, decide.
pub fn rollup_series(
    s: &Series,
    counter: bool,
    res: &Resolution,
    keep: Keep,
) -> Result<Vec<Series>, Skip> {
    let parts = parts_at(s, counter, res)?;
    if keep == Keep::All {
        return Ok(parts);
    }
    let mut estimate = Estimate::default();
    let raw = estimate.values(&s.values);
    if estimate.parts(&parts).saturating_mul(MIN_SHRINK) > raw {
        return Err(Skip::NotSmaller);
    }
    // The finer resolutions in turn (RESOLUTIONS is finest first), each
    // kept under the rules this one is: the last kept is the next finer.
    let mut finer: Option<(&'static str, usize)> = None;
    for r in RESOLUTIONS.iter().filter(|r| r.ns < res.ns) {
        let Ok(p) = parts_at(s, counter, r) else {
            continue;
        };
        if estimate.parts(&p).saturating_mul(MIN_SHRINK) > raw {
            continue;
        }
        let bytes = file_bytes(&p, r);
        if finer.is_none_or(|(_, f)| shrinks(bytes, f)) {
            finer = Some((r.name, bytes));
        }
    }
    match finer {
        Some((name, f)) if !shrinks(file_bytes(&parts, res), f) => {
            Err(Skip::NotSmallerThanFiner(name))
        }
        _ => Ok(parts),
    }
}

/// Bytes the rollup series `parts` take in a `.metrics` file of their own
/// at `res`, its fixed bytes (header, root, footer) included: for a short
/// series they weigh as much in the file as its rollups do, so leaving
/// them out let files of one series through at 91–94% (a break test).
/// `usize::MAX` if they cannot be written (then nothing is smaller than
/// them, and they are not kept).
fn file_bytes(parts: &[Series], res: &Resolution) -> usize {
    crate::format::metrics::encode(&Dataset::new("", parts.to_vec()), rollup_block_options(res))
        .map_or(usize::MAX, |(bytes, _)| bytes.len())
}

/// Whether `bytes` are at most [`FINER_PERCENT`]% of a finer level's.
fn shrinks(bytes: usize, finer: usize) -> bool {
    bytes.saturating_mul(100) <= finer.saturating_mul(FINER_PERCENT)
}

/// The rollup series of `s` at `res` before any size rule, or why the
/// step or the values rule them out.
fn parts_at(s: &Series, counter: bool, res: &Resolution) -> Result<Vec<Series>, Skip> {
    // Constant first: it holds at every resolution, so each series is
    // counted once under one reason at each.
    if s.values
        .windows(2)
        .all(|w| w[0].to_bits() == w[1].to_bits())
    {
        return Err(Skip::Constant);
    }
    let step = series_step(&s.timestamps);
    if skips(step, res) {
        if let Some(step) = step {
            return Err(Skip::Step(step));
        }
    }
    Ok(if counter {
        counter_parts(s, res)
    } else {
        gauge_parts(s, res)
    })
}

/// The size estimate of [`rollup_series`], with one scratch buffer.
#[derive(Default)]
struct Estimate {
    scratch: Vec<u8>,
}

impl Estimate {
    /// Bytes of one series' values in a `.metrics` file, overhead included:
    /// coded piece by piece, as the file codes them (a piece holds at most
    /// `max_samples` values, and a piece that wraps, such as a counter's
    /// reset, widens only its own bit width).
    fn values(&mut self, values: &[f64]) -> usize {
        let piece = crate::format::metrics::BlockOptions::default()
            .max_samples
            .max(1);
        let mut bytes = SERIES_OVERHEAD;
        for chunk in values.chunks(piece) {
            self.scratch.clear();
            crate::codec::adaptive::encode(chunk, &mut self.scratch);
            bytes += self.scratch.len();
        }
        bytes
    }

    /// Bytes of the rollup series of one raw series: their values and
    /// one byte per bucket timestamp (the first part has every bucket).
    fn parts(&mut self, parts: &[Series]) -> usize {
        let buckets = parts.first().map_or(0, Series::len);
        buckets + parts.iter().map(|p| self.values(&p.values)).sum::<usize>()
    }
}

/// A counter's rollup series: `last` and `increase` in full, `resets`
/// where it is not 0.
fn counter_parts(s: &Series, res: &Resolution) -> Vec<Series> {
    let key = &s.key;
    let b = rollup_counter(s, res.ns);
    let starts: Vec<i64> = b.iter().map(|b| b.start).collect();
    let col = |f: fn(&CounterBucket) -> f64| b.iter().map(f).collect::<Vec<f64>>();
    let mut out = vec![
        aggregate_series(key, "last", res, &starts, col(|b| b.last)),
        aggregate_series(key, "increase", res, &starts, col(|b| b.increase)),
    ];
    out.extend(where_different(
        key,
        "resets",
        res,
        &starts,
        col(|b| b.resets as f64),
        |_| 0.0,
    ));
    out
}

/// A gauge's rollup series: `count`, `sum` and `max` in full; `p99`,
/// `p95` and `min` where each differs from the next one up; `nans` where
/// a bucket holds NaN samples.
fn gauge_parts(s: &Series, res: &Resolution) -> Vec<Series> {
    let key = &s.key;
    let b = rollup_gauge(s, res.ns);
    let starts: Vec<i64> = b.iter().map(|b| b.start).collect();
    let col = |f: fn(&GaugeBucket) -> f64| b.iter().map(f).collect::<Vec<f64>>();
    let mut out = vec![
        aggregate_series(key, "count", res, &starts, col(|b| b.count as f64)),
        aggregate_series(key, "sum", res, &starts, col(|b| b.sum)),
        aggregate_series(key, "max", res, &starts, col(|b| b.max)),
    ];
    let (p99, p95, min) = (col(|b| b.p99), col(|b| b.p95), col(|b| b.min));
    out.extend(where_different(
        key,
        "p99",
        res,
        &starts,
        p99.clone(),
        |i| b[i].max,
    ));
    out.extend(where_different(
        key,
        "p95",
        res,
        &starts,
        p95.clone(),
        |i| p99[i],
    ));
    out.extend(where_different(key, "min", res, &starts, min, |i| p95[i]));
    let nans = nan_buckets(s, res.ns);
    if !nans.is_empty() {
        let mut n = Series::new(rollup_key(key, GAUGE_NANS, res));
        for (start, k) in nans {
            n.push(start, k as f64);
        }
        out.push(n);
    }
    out
}

/// The samples of the rollup series `key` in `rollups`, by timestamp.
fn column<'a>(rollups: &'a Dataset, key: &SeriesKey) -> Option<&'a Series> {
    rollups
        .series
        .binary_search_by(|s| s.key.cmp(key))
        .ok()
        .map(|i| &rollups.series[i])
}

/// The value of `s` at `t`, if it has a sample there.
fn at(s: Option<&Series>, t: i64) -> Option<f64> {
    let s = s?;
    s.timestamps.binary_search(&t).ok().map(|i| s.values[i])
}

/// Rebuilds the buckets of the gauge `raw` from the rollups at `res`
/// (`None` when they hold no `count` series for it: skipped, or a counter).
/// A bucket's `min`, `p95` or `p99` that is not stored is the next one up.
pub fn gauge_buckets(
    rollups: &Dataset,
    raw: &SeriesKey,
    res: &Resolution,
) -> Option<Vec<GaugeBucket>> {
    let count = column(rollups, &rollup_key(raw, "count", res))?;
    let get = |agg: &str| column(rollups, &rollup_key(raw, agg, res));
    let (sum, max) = (get("sum")?, get("max")?);
    let (p99, p95, min) = (get("p99"), get("p95"), get("min"));
    let mut out = Vec::with_capacity(count.len());
    for (i, &start) in count.timestamps.iter().enumerate() {
        let max_v = at(Some(max), start)?;
        let p99_v = at(p99, start).unwrap_or(max_v);
        let p95_v = at(p95, start).unwrap_or(p99_v);
        out.push(GaugeBucket {
            start,
            count: count.values[i] as u64,
            sum: at(Some(sum), start)?,
            min: at(min, start).unwrap_or(p95_v),
            max: max_v,
            p95: p95_v,
            p99: p99_v,
        });
    }
    Some(out)
}

/// Rebuilds the buckets of the counter `raw` from the rollups at `res`
/// (`None` when they hold no `last` series for it); `resets` not stored is 0.
pub fn counter_buckets(
    rollups: &Dataset,
    raw: &SeriesKey,
    res: &Resolution,
) -> Option<Vec<CounterBucket>> {
    let last = column(rollups, &rollup_key(raw, "last", res))?;
    let increase = column(rollups, &rollup_key(raw, "increase", res))?;
    let resets = column(rollups, &rollup_key(raw, "resets", res));
    let mut out = Vec::with_capacity(last.len());
    for (i, &start) in last.timestamps.iter().enumerate() {
        out.push(CounterBucket {
            start,
            last: last.values[i],
            increase: at(Some(increase), start)?,
            resets: at(resets, start).unwrap_or(0.0) as u64,
        });
    }
    Some(out)
}

/// How far hourly answers rebuilt from rollups are from the raw truth.
///
/// Each error is `|rebuilt − raw|` divided by the series' *value range*
/// (largest minus smallest of its raw samples, NaN left out), so that it
/// reads as a share of the scale the series moves on, whether its values
/// are near zero or near 10^12; where the range is zero (a constant
/// series) the error is absolute. Each field is the mean over every
/// (series, hour) pair of the series the resolution rolls up (skipped
/// series are answered from raw data, without loss).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Loss {
    /// (gauge series, hour) pairs compared.
    pub hours: u64,
    /// Hourly average as Σsum / Σcount of the buckets (composes exactly).
    pub avg: f64,
    /// Hourly average as the mean of the bucket averages (the naive way).
    pub avg_of_avgs: f64,
    /// Hourly maximum as the largest bucket maximum (composes exactly).
    pub max: f64,
    /// Hourly p99 as the largest bucket p99 (an upper estimate).
    pub p99_max_of_buckets: f64,
    /// Hourly p99 as the count-weighted mean of bucket p99s.
    pub p99_weighted: f64,
    /// (counter series, hour) pairs compared.
    pub counter_hours: u64,
    /// Hourly increase of counters as the sum of bucket increases.
    pub counter_increase: f64,
}

/// The smallest and largest of `values`, NaN left out (`None` if none).
fn extremes(values: &[f64]) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .iter()
        .filter(|v| !v.is_nan())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (lo <= hi).then_some((lo, hi))
}

/// The value range of a series' samples (NaN left out; 0 when none).
pub fn value_range(values: &[f64]) -> f64 {
    extremes(values).map_or(0.0, |(lo, hi)| hi - lo)
}

/// Half of [`value_range`], which is finite for any finite samples
/// (`1e308 − (−1e308)` is not; half of each is).
fn half_range(values: &[f64]) -> f64 {
    extremes(values).map_or(0.0, |(lo, hi)| hi * 0.5 - lo * 0.5)
}

/// `|estimate − truth|` as a share of `range`, absolute where the range is
/// zero (or not finite: a series holding ±inf).
pub fn scaled_error(estimate: f64, truth: f64, range: f64) -> f64 {
    scaled_by_half(estimate, truth, range * 0.5)
}

/// [`scaled_error`] with half the range: the difference is taken at half
/// scale too, so that samples near ±`f64::MAX` do not overflow it.
fn scaled_by_half(estimate: f64, truth: f64, half_range: f64) -> f64 {
    if estimate == truth || (estimate.is_nan() && truth.is_nan()) {
        return 0.0;
    }
    let half_diff = (estimate * 0.5 - truth * 0.5).abs();
    if half_range > 0.0 && half_range.is_finite() {
        half_diff / half_range
    } else {
        half_diff * 2.0
    }
}

/// Compares hourly averages, maxima, p99s and counter increases rebuilt
/// from `res` rollups with the same computed from the raw samples (see
/// [`Loss`] for the definition).
pub fn measure_loss(raw: &Dataset, res: &Resolution) -> Loss {
    measure_loss_keeping(raw, res, Keep::Smaller)
}

/// [`measure_loss`] over the series `keep` says rollups keep.
pub fn measure_loss_keeping(raw: &Dataset, res: &Resolution, keep: Keep) -> Loss {
    let rolled: Vec<bool> = raw
        .series
        .iter()
        .map(|s| rollup_series(s, raw.is_counter(&s.key.metric), res, keep).is_ok())
        .collect();
    measure_loss_of(raw, res, &rolled)
}

/// [`measure_loss`] over the series `rolled` says were rolled up
/// (`rolled[i]`: raw series `i`, as [`Rollup::rolled`] holds it), for a
/// caller that has the rollup already and need not weigh them again.
pub fn measure_loss_of(raw: &Dataset, res: &Resolution, rolled: &[bool]) -> Loss {
    const HOUR: i64 = 3600 * NANOS_PER_SECOND;
    let mut loss = Loss::default();
    let mut sums = [0.0f64; 6];
    for (i, s) in raw.series.iter().enumerate() {
        if rolled.get(i) != Some(&true) {
            continue;
        }
        let range = half_range(&s.values);
        if raw.is_counter(&s.key.metric) {
            let hourly = rollup_counter(s, HOUR);
            let fine = rollup_counter(s, res.ns);
            let mut j = 0;
            for h in &hourly {
                let mut inc = 0.0;
                while j < fine.len() && fine[j].start < h.start + HOUR {
                    inc += fine[j].increase;
                    j += 1;
                }
                sums[5] += scaled_by_half(inc, h.increase, range);
                loss.counter_hours += 1;
            }
            continue;
        }
        let truth = rollup_gauge(s, HOUR);
        let fine = rollup_gauge(s, res.ns);
        let mut j = 0;
        for h in &truth {
            while j < fine.len() && fine[j].start < h.start {
                j += 1;
            }
            let k = fine[j..]
                .iter()
                .take_while(|b| b.start < h.start + HOUR)
                .count();
            let part = &fine[j..j + k];
            if part.is_empty() {
                continue;
            }
            let count: u64 = part.iter().map(|b| b.count).sum();
            let sum: f64 = part.iter().map(|b| b.sum).sum();
            let avg_of_avgs = part.iter().map(|b| b.avg() / k as f64).sum::<f64>();
            let max = part.iter().map(|b| b.max).fold(f64::NEG_INFINITY, f64::max);
            let p99_max = part.iter().map(|b| b.p99).fold(f64::NEG_INFINITY, f64::max);
            // Weights first: p99 × count overflows near f64::MAX.
            let p99_w = part
                .iter()
                .map(|b| b.p99 * (b.count as f64 / count as f64))
                .sum::<f64>();
            sums[0] += scaled_by_half(sum / count as f64, h.avg(), range);
            sums[1] += scaled_by_half(avg_of_avgs, h.avg(), range);
            sums[2] += scaled_by_half(max, h.max, range);
            sums[3] += scaled_by_half(p99_max, h.p99, range);
            sums[4] += scaled_by_half(p99_w, h.p99, range);
            loss.hours += 1;
        }
    }
    let mean = |x: f64, k: u64| if k == 0 { 0.0 } else { x / k as f64 };
    loss.avg = mean(sums[0], loss.hours);
    loss.avg_of_avgs = mean(sums[1], loss.hours);
    loss.max = mean(sums[2], loss.hours);
    loss.p99_max_of_buckets = mean(sums[3], loss.hours);
    loss.p99_weighted = mean(sums[4], loss.hours);
    loss.counter_increase = mean(sums[5], loss.counter_hours);
    loss
}

/// An error share in a readable form: `0`, `<0.0001%` (rounding), or a
/// percentage with about three significant digits.
pub fn error_share(x: f64) -> String {
    let p = 100.0 * x;
    if x == 0.0 {
        "0".into()
    } else if !p.is_finite() {
        format!("{p}")
    } else if p < 1e-4 {
        "<0.0001%".into()
    } else if p < 0.01 {
        format!("{p:.4}%")
    } else if p < 1.0 {
        format!("{p:.3}%")
    } else if p < 100.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.0}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    const S: i64 = NANOS_PER_SECOND;

    fn series(metric: &str, points: &[(i64, f64)]) -> Series {
        let mut s = Series::new(SeriesKey::new(
            metric,
            Labels::from([("host".into(), "a".into())]),
        ));
        for &(t, v) in points {
            s.push(t * S, v);
        }
        s
    }

    /// `n` samples every `step` seconds, valued by `f(i)`.
    fn regular(metric: &str, n: i64, step: i64, f: impl Fn(i64) -> f64) -> Series {
        let pts: Vec<(i64, f64)> = (0..n).map(|i| (i * step, f(i))).collect();
        series(metric, &pts)
    }

    fn names(r: &Rollup) -> Vec<String> {
        r.data.series.iter().map(|s| s.key.metric.clone()).collect()
    }

    #[test]
    fn rollup_series_are_the_listed_aggregates() {
        // 300 distinct values in 5 minutes: min, p95, p99 and max all
        // differ; the counter resets every 7 samples.
        let d = Dataset::new(
            "t",
            vec![
                regular("cpu", 600, 1, |i| ((i * 37) % 1009) as f64),
                regular("requests_total", 600, 1, |i| (i % 7) as f64),
            ],
        );
        let mut got = names(&rollup(&d, &RESOLUTIONS[1]));
        let mut want: Vec<String> = GAUGE_AGGREGATES
            .iter()
            .map(|a| format!("cpu_{a}_5m"))
            .chain(
                COUNTER_AGGREGATES
                    .iter()
                    .map(|a| format!("requests_total_{a}_5m")),
            )
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(!got.iter().any(|n| n.contains("_avg_")), "avg is derived");
    }

    /// A mix of gauges and counters whose order statistics sometimes tie.
    // The aggregates are studied on small series, which the size rule
    // would skip: these tests keep every series the step rule allows.
    fn rollup(d: &Dataset, res: &Resolution) -> Rollup {
        rollup_keeping(d, res, Keep::All)
    }

    fn measure_loss(d: &Dataset, res: &Resolution) -> Loss {
        measure_loss_keeping(d, res, Keep::All)
    }

    fn skip_reason(s: &Series, counter: bool, res: &Resolution) -> Option<Skip> {
        rollup_series(s, counter, res, Keep::All).err()
    }

    #[test]
    fn phase_05_keeps_only_rollups_at_most_half_their_samples_bytes() {
        // 26 noisy samples a minute apart (a Beringei-like series) and ten
        // days of 15 s samples of the same kind.
        let noisy = |i: i64| ((i * 7919 + 13) % 1009) as f64 / 10.0;
        let d = Dataset::new(
            "t",
            vec![
                regular("short", 26, 60, noisy),
                regular("long", 57_600, 15, noisy),
            ],
        );
        let hour = &RESOLUTIONS[3];
        let r = super::rollup(&d, hour);
        assert_eq!((r.series, r.skipped_larger), (1, 1));
        assert_eq!(
            super::skip_reason(&d.series[1], false, hour),
            Some(Skip::NotSmaller)
        );
        assert!(r
            .data
            .series
            .iter()
            .all(|s| s.key.metric.starts_with("long_")));
        // The estimate holds for the files themselves.
        let opts = crate::format::metrics::BlockOptions::default();
        let long = Dataset::new("t", vec![d.series[0].clone()]);
        let raw = crate::format::metrics::encode(&long, opts)
            .expect("raw")
            .0
            .len();
        let rolled = crate::format::metrics::encode(&r.data, opts)
            .expect("rollups")
            .0
            .len();
        assert!(rolled * 2 <= raw, "rollups {rolled} B, raw {raw} B");
        // Studying the aggregates, every series is kept.
        assert_eq!(rollup(&d, hour).series, 2);
    }

    #[test]
    fn a_coarser_resolution_is_kept_only_when_smaller_than_the_finer_one_kept() {
        // 14 minutes of noisy 1 s samples from the top of an hour: one
        // bucket at 15m and at 1h alike, so 1h would repeat 15m's bytes.
        let noisy = |i: i64| ((i * 7919 + 13) % 1009) as f64 / 10.0;
        let short = regular("short", 840, 1, noisy);
        let hour = &RESOLUTIONS[3];
        let quarter = &RESOLUTIONS[2];
        assert!(super::skip_reason(&short, false, quarter).is_none());
        assert_eq!(
            super::skip_reason(&short, false, hour),
            Some(Skip::NotSmallerThanFiner("15m"))
        );
        let d = Dataset::new("t", vec![short.clone(), regular("long", 57_600, 15, noisy)]);
        let r = super::rollup(&d, hour);
        assert_eq!((r.series, r.skipped_finer.clone()), (1, vec![("15m", 1)]));
        let rolled: Vec<(&str, bool)> = d
            .series
            .iter()
            .zip(&r.rolled)
            .map(|(s, &k)| (s.key.metric.as_str(), k))
            .collect();
        assert_eq!(rolled, vec![("long", true), ("short", false)]);
        // A long series shrinks at every step and keeps every resolution.
        for res in &RESOLUTIONS[1..] {
            assert!(
                super::skip_reason(&d.series[0], false, res).is_none(),
                "{}",
                res.name
            );
        }
        // Its loss is measured over the series kept.
        assert_eq!(super::measure_loss(&d, hour).hours, 240);
    }

    #[test]
    fn a_counter_that_resets_is_weighed_piece_by_piece() {
        // A day at 15 s of a counter that resets every 1,000 samples: its
        // samples cost the file about 2.7 KB, its 1m rollups as much.
        let c = regular("c_total", 5_760, 15, |i| ((i % 1_000) * 5 + 3) as f64);
        assert_eq!(
            super::skip_reason(&c, true, &RESOLUTIONS[0]),
            Some(Skip::NotSmaller)
        );
    }

    fn mixed() -> Dataset {
        Dataset::new(
            "t",
            vec![
                regular("flat", 500, 15, |_| 3.5),
                regular("steps", 500, 15, |i| (i / 40) as f64),
                regular("noisy", 500, 15, |i| ((i * 7919) % 97) as f64 - 0.0),
                regular("zeros", 500, 15, |i| if i % 2 == 0 { 0.0 } else { -0.0 }),
                regular("few_total", 500, 15, |i| ((i % 50) * 3) as f64),
                series(
                    "gappy",
                    &[(0, 1.0), (15, f64::NAN), (3000, 2.0), (3015, 9.0)],
                ),
            ],
        )
    }

    #[test]
    fn every_bucket_is_rebuilt_bit_for_bit_from_the_stored_aggregates() {
        let d = mixed();
        for res in &RESOLUTIONS {
            let r = rollup(&d, res);
            for s in &d.series {
                if skip_reason(s, d.is_counter(&s.key.metric), res).is_some() {
                    assert!(gauge_buckets(&r.data, &s.key, res).is_none());
                    continue;
                }
                let bits = |v: f64| v.to_bits();
                if d.is_counter(&s.key.metric) {
                    let want = rollup_counter(s, res.ns);
                    let got = counter_buckets(&r.data, &s.key, res).expect("counter rollups");
                    assert_eq!(got.len(), want.len(), "{} {}", s.key, res.name);
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!((g.start, g.resets), (w.start, w.resets));
                        assert_eq!(bits(g.last), bits(w.last));
                        assert_eq!(bits(g.increase), bits(w.increase));
                    }
                } else {
                    let want = rollup_gauge(s, res.ns);
                    let got = gauge_buckets(&r.data, &s.key, res).expect("gauge rollups");
                    assert_eq!(got.len(), want.len(), "{} {}", s.key, res.name);
                    for (g, w) in got.iter().zip(&want) {
                        let row = |b: &GaugeBucket| {
                            (
                                b.start,
                                b.count,
                                bits(b.sum),
                                bits(b.min),
                                bits(b.max),
                                bits(b.p95),
                                bits(b.p99),
                            )
                        };
                        assert_eq!(row(g), row(w), "{} {}", s.key, res.name);
                    }
                }
            }
        }
    }

    #[test]
    fn order_statistics_equal_to_the_next_one_up_are_not_stored() {
        let r = rollup(&mixed(), &RESOLUTIONS[0]);
        let names = names(&r);
        let has = |n: &str| names.iter().any(|x| x == n);
        // A constant series has no rollups; in a constant bucket of a
        // series that steps, min, p95 and p99 are the max.
        assert!(!names.iter().any(|n| n.starts_with("flat_")), "{names:?}");
        assert!(has("steps_max_1m") && !has("steps_min_1m") && !has("steps_p99_1m"));
        // Four samples a minute: p95 and p99 are the maximum.
        assert!(has("noisy_min_1m") && !has("noisy_p95_1m") && !has("noisy_p99_1m"));
        // -0.0 and 0.0 are equal but not the same bits: min is stored.
        assert!(has("zeros_min_1m"), "{names:?}");
        // Resets happen in a few buckets only: stored sparse.
        let resets = column(
            &r.data,
            &rollup_key(&mixed().series[1].key, "resets", &RESOLUTIONS[0]),
        );
        assert!(resets.is_none(), "the gauge `flat` has no resets");
        let few = r
            .data
            .series
            .iter()
            .find(|s| s.key.metric == "few_total_resets_1m")
            .unwrap();
        let last = r
            .data
            .series
            .iter()
            .find(|s| s.key.metric == "few_total_last_1m")
            .unwrap();
        assert!(
            !few.is_empty() && few.len() * 2 <= last.len(),
            "{} of {}",
            few.len(),
            last.len()
        );
    }

    #[test]
    fn sums_and_increases_of_decimals_are_exact_decimals() {
        assert_eq!(0.1 + 0.2, 0.30000000000000004);
        assert_eq!(decimal_sum(&[0.1, 0.2]), Some(0.3));
        assert_eq!(decimal_sum(&[37.42, 0.5, 12.0]), Some(49.92));
        // Beyond 18 digits (or -0.0, whose sign an integer loses): no exact sum.
        assert_eq!(decimal_sum(&[0.1, 1e-300]), None);
        assert_eq!(decimal_sum(&[-0.0]), None);
        let g = rollup_gauge(&series("g", &[(0, 0.1), (1, 0.2)]), 60 * S);
        assert_eq!(g[0].sum.to_bits(), 0.3f64.to_bits());
        // A counter of decimals: 0.1 -> 0.3 rises by 0.2, not 0.19999999999999998.
        let c = rollup_counter(&series("c_total", &[(0, 0.1), (1, 0.3), (2, 0.1)]), 60 * S);
        assert_eq!((c[0].increase, c[0].resets), (0.3, 1));
        assert_eq!(c[0].increase.to_bits(), 0.3f64.to_bits());
    }

    #[test]
    fn series_step_is_the_median_distance_between_instants() {
        let ts: Vec<i64> = [0, 10, 20, 20, 30, 100].iter().map(|t| t * S).collect();
        assert_eq!(series_step(&ts), Some(10 * S));
        assert_eq!(series_step(&[5]), None);
        assert_eq!(series_step(&[5, 5]), None);
    }

    #[test]
    fn a_resolution_at_twice_the_step_or_less_is_skipped() {
        let d = Dataset::new(
            "t",
            vec![
                regular("every_30s", 10, 30, |i| i as f64),
                regular("every_10s", 30, 10, |i| i as f64),
                series("one_sample", &[(0, 1.0)]),
            ],
        );
        // A single sample has no step, but is constant: skipped for that.
        let r = rollup(&d, &RESOLUTIONS[0]);
        assert_eq!(
            (r.series, r.skipped, r.skipped_max_step, r.skipped_constant),
            (1, 1, 30 * S, 1)
        );
        assert!(names(&r).iter().all(|n| n.starts_with("every_10s")));
        // 5 minutes is more than twice 30 s.
        let r = rollup(&d, &RESOLUTIONS[1]);
        assert_eq!((r.series, r.skipped, r.skipped_constant), (2, 0, 1));
        assert_eq!(
            skip_reason(&d.series[2], false, &RESOLUTIONS[0]),
            Some(Skip::Constant),
            "{}",
            d.series[2].key
        );
        assert!(!skips(Some(30 * S), &RESOLUTIONS[1]));
        assert!(skips(Some(30 * S), &RESOLUTIONS[0]));
        assert!(!skips(None, &RESOLUTIONS[0]));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn gauge_buckets_are_aligned_and_skip_nan() {
        let s = series(
            "cpu",
            &[
                (59, 1.0),
                (60, 2.0),
                (61, f64::NAN),
                (119, 4.0),
                (180, f64::NAN),
            ],
        );
        let b = rollup_gauge(&s, 60 * S);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].start, b[0].count, b[0].sum), (0, 1, 1.0));
        assert_eq!(
            (b[1].start, b[1].count, b[1].min, b[1].max),
            (60 * S, 2, 2.0, 4.0)
        );
        assert_eq!(b[1].avg(), 3.0);
    }

    #[test]
    fn counter_increase_crosses_resets_and_bucket_edges() {
        let s = series("req_total", &[(0, 10.0), (30, 15.0), (70, 3.0), (90, 8.0)]);
        let b = rollup_counter(&s, 60 * S);
        assert_eq!((b[0].increase, b[0].resets), (5.0, 0));
        // reset to 3 counts as +3, then +5
        assert_eq!((b[1].increase, b[1].resets), (8.0, 1));
        assert_eq!(b[1].last, 8.0);
    }

    #[test]
    fn a_lower_duplicate_at_one_instant_is_not_a_reset() {
        // Scraped twice at 0 s (100, then 90), then 101 at 15 s: the counter
        // went up by 1, it did not reset.
        let s = series("c_total", &[(0, 100.0), (0, 90.0), (15, 101.0)]);
        for res in [60 * S, S] {
            let b = rollup_counter(&s, res);
            let total: f64 = b.iter().map(|b| b.increase).sum();
            let resets: u64 = b.iter().map(|b| b.resets).sum();
            assert_eq!((total, resets), (1.0, 0), "resolution {res}");
        }
        // A real drop between instants still is one.
        let s = series("c_total", &[(0, 100.0), (15, 90.0), (30, 101.0)]);
        let b = rollup_counter(&s, 60 * S);
        let total: f64 = b.iter().map(|b| b.increase).sum();
        assert_eq!((total, b[0].resets), (101.0, 1));
    }

    #[test]
    fn declared_types_decide_the_rollup_kind() {
        use crate::model::{MetricKind, MetricMeta};
        let d = Dataset::new(
            "t",
            vec![
                regular("requests", 20, 60, |i| i as f64),
                regular("temperature_total", 20, 60, |i| i as f64),
            ],
        )
        .with_metadata(std::collections::BTreeMap::from([
            ("requests".into(), MetricMeta::of_kind(MetricKind::Counter)),
            (
                "temperature_total".into(),
                MetricMeta::of_kind(MetricKind::Gauge),
            ),
        ]));
        let r = rollup(&d, &RESOLUTIONS[1]);
        assert_eq!((r.series, r.counters), (2, 1));
        let names = names(&r);
        assert!(names.contains(&"requests_increase_5m".into()), "{names:?}");
        // It never drops: no reset is stored.
        assert!(!names.contains(&"requests_resets_5m".into()), "{names:?}");
        assert!(
            names.contains(&"temperature_total_sum_5m".into()),
            "{names:?}"
        );
        assert!(
            !names.contains(&"temperature_total_increase_5m".into()),
            "{names:?}"
        );
    }

    #[test]
    fn rollup_names_and_kinds() {
        let d = Dataset::new(
            "t",
            vec![
                regular("cpu_usage", 20, 60, |i| i as f64),
                regular("req_total", 20, 60, |i| i as f64),
            ],
        );
        let names = names(&rollup(&d, &RESOLUTIONS[1]));
        for want in [
            "cpu_usage_count_5m",
            "cpu_usage_max_5m",
            "cpu_usage_sum_5m",
            "req_total_increase_5m",
            "req_total_last_5m",
        ] {
            assert!(
                names.contains(&want.into()),
                "{want} missing from {names:?}"
            );
        }
        assert!(
            !names.contains(&"req_total_sum_5m".into()),
            "counters are not summed"
        );
    }

    #[test]
    fn averages_compose_exactly_but_avg_of_avgs_does_not() {
        // Uneven counts per 5-minute bucket within one hour.
        let mut pts: Vec<(i64, f64)> = (0..20).map(|i| (i * 15, (i % 7) as f64)).collect();
        pts.extend((0..3).map(|i| (2000 + i * 15, 100.0)));
        let d = Dataset::new("t", vec![series("g", &pts)]);
        let loss = measure_loss(&d, &RESOLUTIONS[1]);
        assert_eq!(loss.hours, 1);
        assert!(loss.avg < 1e-12, "{loss:?}");
        assert!(loss.avg_of_avgs > 0.1, "{loss:?}");
        assert_eq!(loss.max, 0.0, "the max of maxes is the max");
        // At one-hour resolution nothing is lost.
        let exact = measure_loss(&d, &RESOLUTIONS[3]);
        assert_eq!((exact.avg_of_avgs, exact.p99_max_of_buckets), (0.0, 0.0));
    }

    #[test]
    fn loss_near_the_largest_doubles_is_finite() {
        // ±1e308 in turn, and a ramp from -1e305 to 1e305: the range, the
        // differences and the weighted p99 would overflow at full scale.
        // (Sums of an hour of samples near f64::MAX overflow in the
        // rollups themselves, as they do in a raw query's sum.)
        let d = Dataset::new(
            "t",
            vec![
                regular(
                    "flip",
                    2_000,
                    15,
                    |i| if i % 2 == 0 { 1e308 } else { -1e308 },
                ),
                regular("ramp", 2_000, 15, |i| 1e305 * (i - 1_000) as f64 / 1_000.0),
            ],
        );
        for res in &RESOLUTIONS {
            let l = measure_loss(&d, res);
            assert!(l.hours > 0, "{}", res.name);
            for (what, x) in [
                ("avg", l.avg),
                ("avg of avgs", l.avg_of_avgs),
                ("max", l.max),
                ("p99 max", l.p99_max_of_buckets),
                ("p99 weighted", l.p99_weighted),
            ] {
                assert!(
                    x.is_finite() && (0.0..=1.0).contains(&x),
                    "{} {what}: {x}",
                    res.name
                );
            }
        }
    }

    #[test]
    fn loss_is_a_share_of_the_value_range_not_of_values_near_zero() {
        // A gauge near zero: one hour of 15 s samples, 1e-300 most of the
        // time, with a spike. A relative error divided by 1e-300 was 1e300.
        let s = regular("tiny", 240, 15, |i| if i % 50 == 7 { 5.0 } else { 1e-300 });
        let d = Dataset::new("t", vec![s]);
        let loss = measure_loss(&d, &RESOLUTIONS[1]);
        assert_eq!(loss.hours, 1);
        assert!(
            loss.p99_weighted > 0.0 && loss.p99_weighted <= 1.0,
            "{loss:?}"
        );
        assert!(loss.p99_max_of_buckets <= 1.0, "{loss:?}");
        assert_eq!(scaled_error(3.0, 1.0, 4.0), 0.5);
        // Where the range is zero, the error is absolute.
        assert_eq!(scaled_error(3.0, 1.0, 0.0), 2.0);
        assert_eq!(value_range(&[f64::NAN, 2.0, -1.0]), 3.0);
        assert_eq!(value_range(&[f64::NAN]), 0.0);
    }

    #[test]
    fn counter_loss_counts_every_hour_and_is_exact() {
        let d = Dataset::new("t", vec![regular("c_total", 480, 15, |i| (i % 100) as f64)]);
        let loss = measure_loss(&d, &RESOLUTIONS[0]);
        assert_eq!((loss.counter_hours, loss.counter_increase), (2, 0.0));
    }

    #[test]
    fn error_shares_read_as_percentages() {
        assert_eq!(error_share(0.0), "0");
        assert_eq!(error_share(1.4e-16), "<0.0001%");
        assert_eq!(error_share(0.000_027), "0.0027%");
        assert_eq!(error_share(0.02754), "2.75%");
        assert_eq!(error_share(0.5), "50.00%");
        assert_eq!(error_share(3.0), "300%");
    }
}
