//! Execution: choose series with the label index, prune blocks with their
//! statistics, decode what is left, filter rows, then project or aggregate.

use std::collections::{BTreeMap, HashMap};

use super::ast::Cmp;
use super::functions::{self, bucket_start, Columns};
use super::index::{intersect, union, LabelIndex};
use super::plan::{AggFn, AggSpec, GroupKey, Plan, Scalar, Shape, SourceSpec};
use super::pred::{Pred, Tri};
use super::rollups::{Partial, Rollups};
use super::table::{Table, Value};
use crate::downsample::neumaier;
use crate::error::Result;
use crate::format::metrics::{BlockMeta, MetricsFile};
use crate::model::{Labels, Series};

/// What a query did: the counts EXPLAIN prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Series of the source metric.
    pub series_in_metric: usize,
    /// One line per index lookup: the condition and the series it left.
    pub index_steps: Vec<String>,
    /// Series left after label conditions.
    pub series_chosen: usize,
    /// Blocks of the chosen series.
    pub blocks_total: u64,
    pub blocks_pruned_time: u64,
    pub blocks_pruned_value: u64,
    /// Blocks left after pruning, and their bytes.
    pub blocks_candidate: u64,
    pub bytes_candidate: u64,
    /// Of those, blocks whose rows all pass (no row filter needed).
    pub blocks_whole: u64,
    /// Blocks never read because LIMIT was already satisfied.
    pub blocks_skipped_limit: u64,
    /// Blocks decoded.
    pub blocks_read: u64,
    /// Bytes read by this query: index (block lists in versions 1, 2),
    /// blocks, shared timestamp columns.
    pub bytes_read: u64,
    pub rows_scanned: u64,
    pub rows_matched: u64,
    pub rows_out: u64,
    /// Blocks (version 3: pieces) and bytes of the whole file, and bytes
    /// read by opening it.
    pub file_blocks: u64,
    pub file_bytes: u64,
    pub open_bytes: u64,
    /// Series answered from rollups: (file name, resolution, series, of
    /// them with raw samples at the edges of their time range).
    pub rollup_series: Vec<(String, String, usize, usize)>,
    /// Rollup buckets read for them.
    pub rollup_buckets: u64,
    /// Why rollups were not used, or series were read raw beside them.
    pub rollup_note: Option<String>,
}

/// Most bytes read at once when adjacent blocks are read together.
const SPAN_BYTES: u64 = 1 << 20;

/// A series chosen by the planner, with its labels bound into the predicate.
struct Chosen<'f> {
    id: usize,
    labels: &'f Labels,
    pred: Pred,
}

/// Label index lookups, then each candidate's labels bound into the predicate.
fn choose<'f>(
    file: &'f MetricsFile,
    index: &LabelIndex,
    metric: &str,
    pred: &Pred,
    stats: &mut Stats,
) -> Vec<Chosen<'f>> {
    let all = index.metric(metric).unwrap_or(&[]);
    stats.series_in_metric = all.len();
    let mut ids = all.to_vec();
    for (name, values) in pred.index_terms() {
        let hits = union(values.iter().map(|v| index.lookup(name, v, all)).collect());
        ids = intersect(&ids, &hits);
        let shown: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
        stats.index_steps.push(format!(
            "{name} {} -> {} series",
            if shown.len() == 1 {
                format!("= {}", shown[0])
            } else {
                format!("IN ({})", shown.join(", "))
            },
            ids.len()
        ));
    }
    let series = file.series();
    let chosen: Vec<Chosen> = ids
        .into_iter()
        .filter_map(|id| {
            let labels = &series.get(id)?.key.labels;
            let p = pred.bind_labels(labels);
            (p != Pred::Const(false)).then_some(Chosen {
                id,
                labels,
                pred: p,
            })
        })
        .collect();
    stats.series_chosen = chosen.len();
    chosen
}

/// A block that survived pruning.
struct Candidate {
    series: usize,
    meta: BlockMeta,
    tri: Tri,
}

/// Reads block lists and prunes blocks by time, then by value.
fn prune(file: &MetricsFile, chosen: &[Chosen], stats: &mut Stats) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for (rank, c) in chosen.iter().enumerate() {
        for meta in file.blocks(c.id)? {
            stats.blocks_total += 1;
            if c.pred.tri((meta.first, meta.last), None) == Tri::Never {
                stats.blocks_pruned_time += 1;
                continue;
            }
            let tri = c
                .pred
                .tri((meta.first, meta.last), Some((meta.min, meta.max)));
            if tri == Tri::Never {
                stats.blocks_pruned_value += 1;
                continue;
            }
            stats.blocks_candidate += 1;
            stats.bytes_candidate += meta.length;
            stats.blocks_whole += u64::from(tri == Tri::Always);
            out.push(Candidate {
                series: rank,
                meta,
                tri,
            });
        }
    }
    Ok(out)
}

/// One batch of rows handed to a sink.
struct Batch<'a> {
    rank: usize,
    labels: &'a Labels,
    pred: &'a Pred,
    tri: Tri,
    ts: &'a [i64],
    cols: &'a [&'a [f64]],
}

/// Rows that pass, as (timestamps, columns), gathered only when filtered.
struct Selected {
    mask: Vec<bool>,
    ts: Vec<i64>,
    cols: Vec<Vec<f64>>,
}

impl Selected {
    fn new() -> Self {
        Selected {
            mask: Vec::new(),
            ts: Vec::new(),
            cols: Vec::new(),
        }
    }

    /// The rows to use: the gathered ones when the batch was filtered,
    /// else the batch's own columns.
    fn view<'a>(&'a self, b: &'a Batch, filtered: bool) -> (&'a [i64], Vec<&'a [f64]>) {
        if filtered {
            (&self.ts, self.cols.iter().map(Vec::as_slice).collect())
        } else {
            (b.ts, b.cols.to_vec())
        }
    }

    /// Applies the batch's predicate; returns `None` when every row passes.
    fn apply(&mut self, b: &Batch) -> Option<()> {
        if b.tri == Tri::Always {
            return None;
        }
        b.pred.eval_rows(b.ts, b.cols, &mut self.mask);
        self.ts.clear();
        self.cols.resize_with(b.cols.len(), Vec::new);
        for c in &mut self.cols {
            c.clear();
        }
        for (i, &keep) in self.mask.iter().enumerate() {
            if keep {
                self.ts.push(b.ts[i]);
                for (dst, src) in self.cols.iter_mut().zip(b.cols) {
                    dst.push(src[i]);
                }
            }
        }
        Some(())
    }
}

trait Sink {
    /// Consumes a batch; `false` once no more rows are wanted.
    fn push(&mut self, b: &Batch, stats: &mut Stats) -> bool;

    /// Whether rows need their timestamps.
    fn needs_time(&self) -> bool {
        true
    }

    /// For a time-ordered scan: with LIMIT rows held, the timestamp of the
    /// last one kept (unread blocks beyond it cannot matter).
    fn time_bound(&mut self) -> Option<i64> {
        None
    }
}

// ---------------------------------------------------------------- aggregates

/// The running state of one aggregate.
#[derive(Debug, Clone)]
enum Acc {
    Count(u64),
    /// Sum, its compensation (Neumaier), count, and the sum of the
    /// magnitudes of the rollup buckets' sums added (0 for samples).
    Sum(f64, f64, u64, f64),
    Min(f64, u64),
    Max(f64, u64),
    First(i64, f64, bool),
    Last(i64, f64, bool),
    /// Count, mean, sum of squared deviations (Welford, row by row).
    Moments(u64, f64, f64),
    Values(Vec<f64>),
    /// Area, duration, previous sample (series rank, ts, value), value sum, count.
    Twap(f64, f64, Option<(usize, i64, f64)>, f64, u64),
}

/// The smaller of two values, NaN passed over, and `-0.0` below `0.0`
/// (so that the answer does not depend on the order of the rows).
fn min_total(a: f64, b: f64) -> f64 {
    if a.is_nan() || b < a || (b == a && b.is_sign_negative()) {
        b
    } else {
        a
    }
}

/// The larger of two values, NaN passed over, and `0.0` above `-0.0`.
fn max_total(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a || (b == a && b.is_sign_positive()) {
        b
    } else {
        a
    }
}

/// A sum from rollup buckets is within `SUM_TOLERANCE` (relative) of
/// the raw sum unless the buckets' sums cancel: each bucket's sum is
/// rounded once (within `f64::EPSILON` of it, relative), so the merged
/// sum may be off by `f64::EPSILON × Σ|bucket sums|`.
const SUM_TOLERANCE: f64 = 1e-12;

impl Acc {
    /// Adds what one rollup bucket says of its raw samples, as
    /// [`Acc::update`] would have with the samples themselves: NaN samples
    /// are rows (`count`), make a sum NaN, and are passed over by `min`
    /// and `max`. Only `count`, `sum`, `avg`, `min` and `max` take buckets
    /// ([`super::rollups`]); the planner sends nothing else here.
    fn merge(&mut self, p: &Partial) {
        let rows = p.count + p.nans;
        match self {
            Acc::Count(c) => *c += rows,
            Acc::Sum(s, comp, c, spread) if rows > 0 => {
                neumaier(s, comp, if p.nans > 0 { f64::NAN } else { p.sum });
                *spread += p.sum.abs();
                *c += rows;
            }
            Acc::Min(m, c) => {
                if p.count > 0 {
                    *m = min_total(*m, p.min);
                }
                *c += rows;
            }
            Acc::Max(m, c) => {
                if p.count > 0 {
                    *m = max_total(*m, p.max);
                }
                *c += rows;
            }
            _ => {}
        }
    }

    /// Whether a sum made partly of rollup buckets may be further than
    /// [`SUM_TOLERANCE`] from the raw sum: its buckets' sums cancel, or it
    /// is infinite (where the order of the additions decides the answer).
    fn uncertain(&self) -> bool {
        match self {
            Acc::Sum(s, comp, _, spread) if *spread > 0.0 => {
                // NaN comes from NaN samples, and is NaN in any order;
                // overflow is ruled out before rollups are read (`magnitude`).
                let sum = *s + *comp;
                sum.is_infinite()
                    || (sum.is_finite()
                        && 2.0 * f64::EPSILON * spread > 0.5 * SUM_TOLERANCE * sum.abs())
            }
            _ => false,
        }
    }

    fn new(f: AggFn) -> Acc {
        match f {
            AggFn::Count => Acc::Count(0),
            AggFn::Sum | AggFn::Avg => Acc::Sum(0.0, 0.0, 0, 0.0),
            AggFn::Min => Acc::Min(f64::NAN, 0),
            AggFn::Max => Acc::Max(f64::NAN, 0),
            AggFn::First => Acc::First(0, 0.0, false),
            AggFn::Last => Acc::Last(0, 0.0, false),
            AggFn::Stddev => Acc::Moments(0, 0.0, 0.0),
            AggFn::Percentile(_) => Acc::Values(Vec::new()),
            AggFn::Twap => Acc::Twap(0.0, 0.0, None, 0.0, 0),
        }
    }

    /// Adds rows of one series (`rank`), in time order. Sums and moments
    /// take the rows one at a time, so that an answer depends on the rows
    /// and their order only, never on how the file cut them into blocks;
    /// sums are compensated (Neumaier), so they are as good as exact.
    fn update(&mut self, rank: usize, ts: &[i64], v: &[f64]) {
        let n = v.len() as u64;
        match self {
            Acc::Count(c) => *c += n,
            Acc::Sum(s, comp, c, _) => {
                for &x in v {
                    neumaier(s, comp, x);
                }
                *c += n;
            }
            Acc::Min(m, c) => {
                *m = v.iter().fold(*m, |a, &b| min_total(a, b));
                *c += n;
            }
            Acc::Max(m, c) => {
                *m = v.iter().fold(*m, |a, &b| max_total(a, b));
                *c += n;
            }
            Acc::First(t, x, set) => {
                if let (Some(&t0), Some(&v0)) = (ts.first(), v.first()) {
                    if !*set || t0 < *t {
                        (*t, *x, *set) = (t0, v0, true);
                    }
                }
            }
            Acc::Last(t, x, set) => {
                if let (Some(&t1), Some(&v1)) = (ts.last(), v.last()) {
                    if !*set || t1 >= *t {
                        (*t, *x, *set) = (t1, v1, true);
                    }
                }
            }
            Acc::Moments(c, mean, m2) => {
                for &x in v {
                    *c += 1;
                    let delta = x - *mean;
                    *mean += delta / *c as f64;
                    *m2 += delta * (x - *mean);
                }
            }
            Acc::Values(all) => all.extend_from_slice(v),
            Acc::Twap(area, dur, prev, sum, c) => {
                for (&t, &x) in ts.iter().zip(v) {
                    if let Some((r, pt, pv)) = *prev {
                        if r == rank && t >= pt {
                            // i128: timestamps may span more than i64::MAX.
                            let dt = (t as i128 - pt as i128) as f64;
                            *area += pv * dt;
                            *dur += dt;
                        }
                    }
                    *prev = Some((rank, t, x));
                    *sum += x;
                    *c += 1;
                }
            }
        }
    }

    fn finish(&mut self, f: AggFn) -> Value {
        match (self, f) {
            (Acc::Count(c), _) => Value::Int(*c as i64),
            (Acc::Sum(_, _, 0, _), _) => Value::Null,
            (Acc::Sum(s, comp, c, _), f) => {
                // An infinite or NaN sum has no low-order bits to add back.
                let sum = if s.is_finite() { *s + *comp } else { *s };
                Value::Float(if f == AggFn::Sum {
                    sum
                } else {
                    sum / *c as f64
                })
            }
            (Acc::Min(_, 0) | Acc::Max(_, 0), _) => Value::Null,
            (Acc::Min(m, _) | Acc::Max(m, _), _) => Value::Float(*m),
            (Acc::First(_, x, true) | Acc::Last(_, x, true), _) => Value::Float(*x),
            (Acc::First(..) | Acc::Last(..), _) => Value::Null,
            (Acc::Moments(c, _, m2), _) => {
                if *c < 2 {
                    Value::Null
                } else {
                    Value::Float((*m2 / (*c - 1) as f64).sqrt())
                }
            }
            (Acc::Values(all), AggFn::Percentile(p)) => {
                all.retain(|x| !x.is_nan());
                if all.is_empty() {
                    return Value::Null;
                }
                all.sort_by(f64::total_cmp);
                Value::Float(percentile_sorted(all, p))
            }
            (Acc::Values(_), _) => Value::Null,
            (Acc::Twap(area, dur, _, sum, c), _) => {
                if *dur > 0.0 {
                    Value::Float(*area / *dur)
                } else if *c > 0 {
                    Value::Float(*sum / *c as f64)
                } else {
                    Value::Null
                }
            }
        }
    }
}

/// Linear interpolation between the closest ranks of sorted values.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    if frac == 0.0 {
        sorted[lo]
    } else {
        sorted[lo] + (sorted[hi] - sorted[lo]) * frac
    }
}

/// One group's label values and its accumulators per time bucket.
type GroupState = (Vec<String>, BTreeMap<i64, Vec<Acc>>);

struct AggSink<'p> {
    keys: &'p [GroupKey],
    aggs: &'p [AggSpec],
    bucket: Option<i64>,
    groups: HashMap<Vec<String>, usize>,
    states: Vec<GroupState>,
    sel: Selected,
}

impl<'p> AggSink<'p> {
    fn new(keys: &'p [GroupKey], aggs: &'p [AggSpec]) -> Self {
        let bucket = keys.iter().find_map(|k| match k {
            GroupKey::Bucket(w) => Some(*w),
            _ => None,
        });
        AggSink {
            keys,
            aggs,
            bucket,
            groups: HashMap::new(),
            states: Vec::new(),
            sel: Selected::new(),
        }
    }

    fn finish(mut self) -> Vec<Vec<Value>> {
        let mut rows = Vec::new();
        for (labels, buckets) in &mut self.states {
            for (bucket, accs) in buckets.iter_mut() {
                let mut row = Vec::with_capacity(self.keys.len() + self.aggs.len());
                let mut li = 0;
                for k in self.keys {
                    row.push(match k {
                        GroupKey::Label(_) => {
                            li += 1;
                            Value::Text(labels[li - 1].clone())
                        }
                        GroupKey::Bucket(_) => Value::Time(*bucket),
                    });
                }
                for (acc, spec) in accs.iter_mut().zip(self.aggs) {
                    row.push(acc.finish(spec.func));
                }
                rows.push(row);
            }
        }
        rows
    }
}

impl AggSink<'_> {
    /// The index of the group of a series with `labels`, made if new.
    fn group(&mut self, labels: &Labels) -> usize {
        let key: Vec<String> = self
            .keys
            .iter()
            .filter_map(|k| match k {
                GroupKey::Label(l) => Some(labels.get(l).cloned().unwrap_or_default()),
                GroupKey::Bucket(_) => None,
            })
            .collect();
        match self.groups.get(&key) {
            Some(&g) => g,
            None => {
                self.states.push((key.clone(), BTreeMap::new()));
                self.groups.insert(key, self.states.len() - 1);
                self.states.len() - 1
            }
        }
    }

    /// Whether some sum made of rollup buckets may be off ([`Acc::uncertain`]).
    fn uncertain(&self) -> bool {
        self.states
            .iter()
            .any(|(_, buckets)| buckets.values().flatten().any(Acc::uncertain))
    }

    /// Adds the rollup buckets of one series (each inside one query bucket).
    fn push_partials(&mut self, labels: &Labels, parts: &[Partial]) {
        let gid = self.group(labels);
        let aggs = self.aggs;
        let width = self.bucket;
        let buckets = &mut self.states[gid].1;
        for p in parts {
            let bucket = width.map_or(0, |w| bucket_start(p.start, w));
            let accs = buckets
                .entry(bucket)
                .or_insert_with(|| aggs.iter().map(|a| Acc::new(a.func)).collect());
            for acc in accs.iter_mut() {
                acc.merge(p);
            }
        }
    }
}

impl Sink for AggSink<'_> {
    /// Time buckets, first, last and twap look at timestamps.
    fn needs_time(&self) -> bool {
        self.bucket.is_some()
            || self
                .aggs
                .iter()
                .any(|a| matches!(a.func, AggFn::First | AggFn::Last | AggFn::Twap))
    }

    fn push(&mut self, b: &Batch, stats: &mut Stats) -> bool {
        // Rows come from the value columns: a values-only batch has no ts.
        let rows = b.cols.first().map_or(b.ts.len(), |c| c.len());
        stats.rows_scanned += rows as u64;
        // A group made here and given no rows yields no row at finish.
        let gid = self.group(b.labels);
        let filtered = self.sel.apply(b).is_some();
        let (ts, cols) = self.sel.view(b, filtered);
        let cols = cols.as_slice();
        let n = if filtered { ts.len() } else { rows };
        stats.rows_matched += n as u64;
        if n == 0 {
            return true;
        }
        let aggs = self.aggs;
        let buckets = &mut self.states[gid].1;
        let mut i = 0;
        while i < n {
            let (bucket, j) = match (self.bucket, ts.get(i)) {
                (Some(w), Some(&t)) => {
                    let start = bucket_start(t, w);
                    let mut j = i + 1;
                    while j < ts.len() && bucket_start(ts[j], w) == start {
                        j += 1;
                    }
                    (start, j)
                }
                _ => (0, n),
            };
            let accs = buckets
                .entry(bucket)
                .or_insert_with(|| aggs.iter().map(|a| Acc::new(a.func)).collect());
            for (acc, spec) in accs.iter_mut().zip(aggs) {
                let col = cols.get(spec.col).copied().unwrap_or(&[]);
                acc.update(
                    b.rank,
                    ts.get(i..j).unwrap_or(&[]),
                    col.get(i..j).unwrap_or(&[]),
                );
            }
            i = j;
        }
        true
    }
}

// ---------------------------------------------------------------------- rows

/// A row with its ORDER BY keys and its tie-break (series rank, time).
type KeyedRow = (Vec<Value>, (usize, i64), Vec<Value>);

struct RowSink<'p> {
    outs: &'p [Scalar],
    order: &'p [(Scalar, bool)],
    limit: Option<usize>,
    /// (order keys, (rank, ts), output cells)
    rows: Vec<KeyedRow>,
    sel: Selected,
}

fn scalar(s: &Scalar, labels: &Labels, t: i64, cols: &[&[f64]], i: usize) -> Value {
    match s {
        Scalar::Ts => Value::Time(t),
        Scalar::Label(l) => Value::Text(labels.get(l).cloned().unwrap_or_default()),
        Scalar::Num(c) => cols
            .get(*c)
            .and_then(|col| col.get(i))
            .map_or(Value::Null, |v| Value::Float(*v)),
        Scalar::Bucket(w) => Value::Time(bucket_start(t, *w)),
    }
}

impl RowSink<'_> {
    fn compare(order: &[(Scalar, bool)], a: &KeyedRow, b: &KeyedRow) -> std::cmp::Ordering {
        for (k, (_, desc)) in order.iter().enumerate() {
            let o = a.0[k].order(&b.0[k]);
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        a.1.cmp(&b.1)
    }

    /// Sorts and keeps the first `limit` rows.
    fn trim(&mut self) {
        let order = self.order;
        self.rows.sort_by(|a, b| Self::compare(order, a, b));
        if let Some(l) = self.limit {
            self.rows.truncate(l);
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.rows.len() >= l)
    }

    fn finish(mut self) -> Vec<Vec<Value>> {
        self.trim();
        self.rows.into_iter().map(|r| r.2).collect()
    }
}

impl Sink for RowSink<'_> {
    fn time_bound(&mut self) -> Option<i64> {
        if !self.full() {
            return None;
        }
        self.trim();
        self.rows.last().map(|r| r.1 .1)
    }

    fn push(&mut self, b: &Batch, stats: &mut Stats) -> bool {
        stats.rows_scanned += b.ts.len() as u64;
        let filtered = self.sel.apply(b).is_some();
        let (ts, cols) = self.sel.view(b, filtered);
        let cols = cols.as_slice();
        for (i, &t) in ts.iter().enumerate() {
            stats.rows_matched += 1;
            let keys = self
                .order
                .iter()
                .map(|(s, _)| scalar(s, b.labels, t, cols, i))
                .collect();
            let out = self
                .outs
                .iter()
                .map(|s| scalar(s, b.labels, t, cols, i))
                .collect();
            self.rows.push((keys, (b.rank, t), out));
            if self.order.is_empty() && self.full() {
                return false;
            }
        }
        if let Some(l) = self.limit {
            if !self.order.is_empty() && self.rows.len() >= l.saturating_mul(2).max(1024) {
                self.trim();
            }
        }
        true
    }
}

// ----------------------------------------------------------------- execution

/// Runs a bound plan.
/// Runs a bound plan over `file` (with `run` false, only plans: EXPLAIN);
/// aggregates take what they can from `rollups` ([`super::rollups`]).
pub fn execute(
    file: &MetricsFile,
    index: &LabelIndex,
    rollups: Option<&Rollups>,
    plan: &Plan,
    run: bool,
) -> Result<(Table, Stats)> {
    let mut stats = Stats {
        file_blocks: file.piece_count(),
        file_bytes: file.len(),
        open_bytes: file.open_bytes(),
        ..Stats::default()
    };
    let read_so_far = || file.bytes_read() + rollups.map_or(0, Rollups::bytes_read);
    let before = read_so_far();
    let chosen = choose(file, index, plan.source.driver(), &plan.pred, &mut stats);
    let limit = plan.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let rows = match &plan.shape {
        Shape::Agg {
            keys,
            aggs,
            outs,
            order,
        } => {
            let mut sink = AggSink::new(keys, aggs);
            let chosen = match rollups {
                Some(r) => from_rollups(file, r, plan, chosen, &mut sink, run, &mut stats)?,
                None => chosen,
            };
            feed(file, index, plan, &chosen, &mut sink, None, run, &mut stats)?;
            // A sum whose rollup buckets cancel (or overflowed) is not
            // the raw sum to the tolerance: the whole query again, raw.
            if sink.uncertain() {
                sink = AggSink::new(keys, aggs);
                stats = Stats {
                    file_blocks: stats.file_blocks,
                    file_bytes: stats.file_bytes,
                    open_bytes: stats.open_bytes,
                    ..Stats::default()
                };
                let chosen = choose(file, index, plan.source.driver(), &plan.pred, &mut stats);
                stats.rollup_note = Some(
                    "read, then not used: a sum of rollup buckets cancels or overflows beyond the rounding the raw sum allows".into(),
                );
                feed(file, index, plan, &chosen, &mut sink, None, run, &mut stats)?;
            }

            let mut rows = sink.finish();
            sort_rows(&mut rows, order, keys.len());
            if let Some(l) = limit {
                rows.truncate(l);
            }
            rows.into_iter()
                .map(|r| outs.iter().map(|&i| r[i].clone()).collect())
                .collect()
        }
        Shape::Rows { outs, order } => {
            let mut sink = RowSink {
                outs,
                order,
                limit,
                rows: Vec::new(),
                sel: Selected::new(),
            };
            let by_time = match (order.as_slice(), limit) {
                ([(Scalar::Ts, desc)], Some(_)) => Some(*desc),
                _ => None,
            };
            if limit == Some(0) {
                Vec::new()
            } else {
                feed(
                    file, index, plan, &chosen, &mut sink, by_time, run, &mut stats,
                )?;
                sink.finish()
            }
        }
    };
    stats.rows_out = rows.len() as u64;
    stats.bytes_read = read_so_far() - before;
    if let (Some(r), false) = (rollups, stats.rollup_series.is_empty()) {
        stats.open_bytes += r.open_bytes();
    }
    Ok((
        Table {
            columns: plan.columns.clone(),
            rows,
        },
        stats,
    ))
}

/// Why an aggregate query cannot take rollup buckets at all, or the query
/// buckets' width (`None`: one over the range) and whether it needs `min`.
fn rollup_shape(plan: &Plan) -> std::result::Result<(Option<i64>, bool, bool), String> {
    let Shape::Agg { keys, aggs, .. } = &plan.shape else {
        return Err("not an aggregate".into());
    };
    if !matches!(plan.source, SourceSpec::Metric(_)) {
        return Err("a table function reads raw samples".into());
    }
    fn on_values(p: &Pred) -> bool {
        match p {
            Pred::Num { .. } => true,
            Pred::And(ps) | Pred::Or(ps) => ps.iter().any(on_values),
            Pred::Not(p) => on_values(p),
            _ => false,
        }
    }
    if on_values(&plan.pred) {
        return Err("a condition on value needs raw samples".into());
    }
    let mut width = None;
    for k in keys {
        match k {
            GroupKey::Bucket(1) => {
                return Err("grouping by exact timestamp needs raw samples".into())
            }
            GroupKey::Bucket(w) => width = Some(*w),
            GroupKey::Label(_) => {}
        }
    }
    let (mut with_min, mut sums) = (false, false);
    for a in aggs.iter() {
        match a.func {
            AggFn::Count => {}
            AggFn::Sum | AggFn::Avg if a.col == 0 => sums = true,
            AggFn::Max if a.col == 0 => {}
            AggFn::Min if a.col == 0 => with_min = true,
            AggFn::Percentile(_) => {
                return Err("percentiles need raw samples (rollups keep p95 and p99 per bucket, which do not combine)".into())
            }
            f => return Err(format!("{}() needs raw samples", format!("{f:?}").to_lowercase())),
        }
    }
    Ok((width, with_min, sums))
}

/// A bound on the magnitude of any partial sum of a series' samples:
/// Σ over its blocks of samples × the larger of |min| and |max| (from the
/// index, no block read; infinite for infinite samples).
fn magnitude(file: &MetricsFile, series: usize) -> Result<f64> {
    Ok(file
        .blocks(series)?
        .iter()
        .map(|b| {
            let m = b.min.abs().max(b.max.abs());
            if m.is_nan() {
                0.0
            } else {
                m * b.count as f64
            }
        })
        .sum())
}

/// Answers the series of an aggregate query that rollups can answer
/// ([`super::rollups`]) into `sink`; returns the others, for a raw scan.
fn from_rollups<'f>(
    file: &MetricsFile,
    rollups: &Rollups,
    plan: &Plan,
    chosen: Vec<Chosen<'f>>,
    sink: &mut AggSink,
    run: bool,
    stats: &mut Stats,
) -> Result<Vec<Chosen<'f>>> {
    if rollups.files.is_empty() {
        stats.rollup_note.clone_from(&rollups.note);
        return Ok(chosen);
    }
    let (width, with_min, sums) = match rollup_shape(plan) {
        Ok(shape) => shape,
        Err(why) => {
            stats.rollup_note = Some(format!("not used: {why}"));
            return Ok(chosen);
        }
    };
    // Samples large enough that a partial sum may overflow: the raw sum
    // then depends on the order of the additions, which buckets change.
    if sums {
        let mut bound = 0.0;
        for c in &chosen {
            bound += magnitude(file, c.id)?;
        }
        if bound.is_nan() || bound >= f64::MAX / 4.0 {
            stats.rollup_note =
                Some("not used: the samples are large enough that a sum may overflow".into());
            return Ok(chosen);
        }
    }
    let mut raw = Vec::new();
    let mut per_file = vec![(0usize, 0usize); rollups.files.len()];
    let mut fully_raw = 0;
    for ch in chosen {
        let Some(key) = file.series().get(ch.id).map(|s| &s.key) else {
            raw.push(ch);
            fully_raw += 1;
            continue;
        };
        let Some(choice) = rollups.choose(key, &ch.pred, width)? else {
            raw.push(ch);
            fully_raw += 1;
            continue;
        };
        if let Some(n) = per_file.get_mut(choice.file) {
            n.0 += 1;
            n.1 += usize::from(!choice.edges.is_empty());
        }
        if run {
            let parts = rollups.read(&choice, with_min)?;
            stats.rollup_buckets += parts.len() as u64;
            sink.push_partials(ch.labels, &parts);
        }
        // The edges of its range that no whole bucket covers: raw samples.
        for &(lo, hi) in &choice.edges {
            raw.push(Chosen {
                id: ch.id,
                labels: ch.labels,
                pred: Pred::and(vec![
                    ch.pred.clone(),
                    Pred::Ts {
                        op: Cmp::Ge,
                        value: lo,
                    },
                    Pred::Ts {
                        op: Cmp::Le,
                        value: hi,
                    },
                ]),
            });
        }
    }
    for (f, (n, edged)) in rollups.files.iter().zip(per_file) {
        if n > 0 {
            stats
                .rollup_series
                .push((f.name(), f.res.name.to_string(), n, edged));
        }
    }
    if fully_raw > 0 {
        stats.rollup_note = Some(format!(
            "{fully_raw} series read raw: no rollup file holds them at a resolution that divides the buckets with a whole bucket in the time range (phase 05 keeps no count or sum of a counter, and skips constant series and series whose rollups would not shrink them)"
        ));
    }
    Ok(raw)
}

/// Groups first by their keys in order, then as the query orders them.
fn sort_rows(rows: &mut [Vec<Value>], order: &[(usize, bool)], nkeys: usize) {
    rows.sort_by(|a, b| {
        for &(i, desc) in order {
            let o = a[i].order(&b[i]);
            let o = if desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        for i in 0..nkeys {
            let o = a[i].order(&b[i]);
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
}

/// Feeds the source's rows to the sink. With `by_time`, blocks are read in
/// time order (descending if true) across series and reading stops once the
/// sink's LIMIT rows are all earlier (later) than every unread block.
#[allow(clippy::too_many_arguments)]
fn feed(
    file: &MetricsFile,
    index: &LabelIndex,
    plan: &Plan,
    chosen: &[Chosen],
    sink: &mut dyn Sink,
    by_time: Option<bool>,
    run: bool,
    stats: &mut Stats,
) -> Result<()> {
    match &plan.source {
        SourceSpec::Metric(_) => {
            let mut cands = prune(file, chosen, stats)?;
            if !run {
                return Ok(());
            }
            if let Some(desc) = by_time {
                if desc {
                    cands.sort_by_key(|c| (std::cmp::Reverse(c.meta.last), c.series));
                } else {
                    cands.sort_by_key(|c| (c.meta.first, c.series));
                }
            }
            let mut buf = Series::default();
            let (t_lo, t_hi) = plan.pred.time_bounds();
            // Adjacent blocks of one series are read together, up to
            // SPAN_BYTES at a time, unless LIMIT may stop the scan early.
            let coalesce = by_time.is_none() && plan.limit.is_none();
            let mut span: (u64, Vec<u8>) = (0, Vec::new());
            for (k, c) in cands.iter().enumerate() {
                if let (Some(desc), Some(bound)) = (by_time, sink.time_bound()) {
                    let beyond = if desc {
                        c.meta.last < bound
                    } else {
                        c.meta.first > bound
                    };
                    if beyond {
                        stats.blocks_skipped_limit += (cands.len() - k) as u64;
                        break;
                    }
                }
                let ch = &chosen[c.series];
                buf.timestamps.clear();
                buf.values.clear();
                let covered = c.meta.offset >= span.0
                    && c.meta.offset + c.meta.length <= span.0 + span.1.len() as u64;
                if !covered {
                    let mut end = c.meta.offset + c.meta.length;
                    if coalesce {
                        for next in &cands[k + 1..] {
                            if next.series != c.series
                                || next.meta.offset != end
                                || end + next.meta.length - c.meta.offset > SPAN_BYTES
                            {
                                break;
                            }
                            end += next.meta.length;
                        }
                    }
                    span = (
                        c.meta.offset,
                        file.read_span(c.meta.offset, end - c.meta.offset)?,
                    );
                }
                let at = (c.meta.offset - span.0) as usize;
                let raw = span.1.get(at..at + c.meta.length as usize).unwrap_or(&[]);
                let times =
                    (c.tri != Tri::Always || sink.needs_time()).then_some(&mut buf.timestamps);
                // Rows outside the query's time bounds may be left out (a
                // large shared timestamp column is read in parts).
                file.decode_block_within(ch.id, &c.meta, raw, times, &mut buf.values, t_lo, t_hi)?;
                stats.blocks_read += 1;
                let cols = [buf.values.as_slice()];
                let more = sink.push(
                    &Batch {
                        rank: c.series,
                        labels: ch.labels,
                        pred: &ch.pred,
                        tri: c.tri,
                        ts: &buf.timestamps,
                        cols: &cols,
                    },
                    stats,
                );
                if !more {
                    stats.blocks_skipped_limit += (cands.len() - k - 1) as u64;
                    break;
                }
            }
            Ok(())
        }
        source => {
            let (lo, hi) = plan.pred.time_bounds();
            for (rank, ch) in chosen.iter().enumerate() {
                let out = match source {
                    SourceSpec::Ohlcv { volume, bar, .. } => {
                        let (lo, hi) = (
                            bucket_start(lo, *bar),
                            bucket_start(hi, *bar).saturating_add(*bar - 1),
                        );
                        let p = read(file, ch.id, lo, hi, run, stats)?;
                        let v = match volume {
                            Some(m) => match partner(file, index, m, ch.labels) {
                                Some(id) => Some(read(file, id, lo, hi, run, stats)?),
                                None => Some(Series::default()),
                            },
                            None => None,
                        };
                        functions::ohlcv(
                            &p.timestamps,
                            &p.values,
                            v.as_ref()
                                .map(|s| (s.timestamps.as_slice(), s.values.as_slice())),
                            *bar,
                        )
                    }
                    SourceSpec::Rolling { func, window, .. } => {
                        let from = match window {
                            super::plan::Window::Duration(d) => lo.saturating_sub(*d),
                            super::plan::Window::Count(_) => i64::MIN,
                        };
                        let s = read(file, ch.id, from, hi, run, stats)?;
                        functions::rolling(&s.timestamps, &s.values, *func, *window)
                    }
                    SourceSpec::Asof {
                        right, tolerance, ..
                    } => {
                        let l = read(file, ch.id, lo, hi, run, stats)?;
                        let r = match partner(file, index, right, ch.labels) {
                            Some(id) => {
                                read(file, id, lo.saturating_sub(*tolerance), hi, run, stats)?
                            }
                            None => Series::default(),
                        };
                        functions::asof(
                            &l.timestamps,
                            &l.values,
                            &r.timestamps,
                            &r.values,
                            *tolerance,
                        )
                    }
                    SourceSpec::Metric(_) => Columns::default(),
                };
                if !run {
                    continue;
                }
                let cols: Vec<&[f64]> = out.cols.iter().map(Vec::as_slice).collect();
                let more = sink.push(
                    &Batch {
                        rank,
                        labels: ch.labels,
                        pred: &ch.pred,
                        tri: Tri::Maybe,
                        ts: &out.ts,
                        cols: &cols,
                    },
                    stats,
                );
                if !more {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// The first series of `metric` (in key order) whose labels agree with
/// `labels` on every label name the two share.
fn partner(file: &MetricsFile, index: &LabelIndex, metric: &str, labels: &Labels) -> Option<usize> {
    let series = file.series();
    index.metric(metric)?.iter().copied().find(|&id| {
        series.get(id).is_some_and(|s| {
            s.key
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_none_or(|mine| mine == v))
        })
    })
}

/// Reads the samples of one series in `[lo, hi]` (blocks pruned by time).
fn read(
    file: &MetricsFile,
    id: usize,
    lo: i64,
    hi: i64,
    run: bool,
    stats: &mut Stats,
) -> Result<Series> {
    let mut s = Series::default();
    let blocks = file.blocks(id)?;
    for b in &blocks {
        stats.blocks_total += 1;
        if !b.overlaps(lo, hi) {
            stats.blocks_pruned_time += 1;
            continue;
        }
        stats.blocks_candidate += 1;
        stats.bytes_candidate += b.length;
        if run {
            file.read_block(id, b, &mut s)?;
            stats.blocks_read += 1;
        }
    }
    if lo != i64::MIN || hi != i64::MAX {
        let keep: Vec<usize> = (0..s.timestamps.len())
            .filter(|&i| (lo..=hi).contains(&s.timestamps[i]))
            .collect();
        s.timestamps = keep.iter().map(|&i| s.timestamps[i]).collect();
        s.values = keep.iter().map(|&i| s.values[i]).collect();
    }
    Ok(s)
}
