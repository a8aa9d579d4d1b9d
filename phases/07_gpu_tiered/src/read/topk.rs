//! Top-K: the first `n` rows of a sorted query, kept in a bounded buffer
//! whose current `n`-th row is a bound that lets the reader skip what
//! cannot beat it.
//!
//! # The order
//!
//! A query sorted on a column orders rows by a *key*, the triple
//!
//! ```text
//! (rank of the sort value, source, position in the source)
//! ```
//!
//! - The rank orders values as the sort does: integers and timestamps by
//!   value, floats by IEEE 754 total order (`-NaN < -inf < … < -0.0 < +0.0
//!   < … < +inf < +NaN`, as Arrow's sort and row format order them),
//!   reversed for a descending sort. It is an `i64`, smaller first.
//! - Ties go to the earlier source: the cold files in catalog order, then
//!   the warm tier, then the hot tier (the order an unsorted query returns
//!   them in), and within a source to the earlier row in the order the
//!   source is scanned (a cold file's row groups in file order, the warm
//!   tier's records oldest first, the hot batches by LSN).
//!
//! The key is a total order over the rows, so the answer is one answer: the
//! full sort ([`crate::read::query`]'s merge of stably sorted sources) and the
//! top-K path return the same rows in the same order, whatever the top-K
//! path read first.
//!
//! # Pruning
//!
//! [`TopK`] holds candidates; once it holds `n`, the worst of them is the
//! bound, and only a strictly smaller key can still enter. A row group (or
//! a hot batch, or a whole cold file) whose statistics prove that its best
//! key is not below the bound is skipped unread: its best rank comes from
//! its min and max, its source and first position from where it is. Equal
//! ranks are decided by source and position, exactly as the order says, so
//! a skipped group never held a row of the answer.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::filter::Stats;

/// (rank, source, position): smaller comes first.
pub type Key = (i64, u32, u64);

/// Can a column of this type be ranked (and so sorted by the top-K path)?
pub fn rankable(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(..) | DataType::Int64 | DataType::Int32 | DataType::Float64
    )
}

/// The rank of an integer (or timestamp): the value, or its complement
/// (`!v = -v - 1`, order-reversing, never overflows) when descending.
#[inline]
pub fn rank_int(v: i64, descending: bool) -> i64 {
    if descending {
        !v
    } else {
        v
    }
}

/// The rank of a float under IEEE 754 total order (as `f64::total_cmp`),
/// complemented when descending.
#[inline]
pub fn rank_float(v: f64, descending: bool) -> i64 {
    let bits = v.to_bits() as i64;
    let total = bits ^ (((bits >> 63) as u64) >> 1) as i64;
    rank_int(total, descending)
}

/// The smallest rank any value within `stats` (min and max under total
/// order) can have.
pub fn best_rank(stats: &Stats, descending: bool) -> Option<i64> {
    match stats {
        Stats::Int(lo, hi) => Some(rank_int(*lo, descending).min(rank_int(*hi, descending))),
        Stats::Float(lo, hi) => Some(rank_float(*lo, descending).min(rank_float(*hi, descending))),
        Stats::Str(..) => None,
    }
}

/// The ranks of a column's values; `None` for a type without ranks.
pub fn ranks(column: &ArrayRef, descending: bool) -> Option<Vec<i64>> {
    if column.null_count() > 0 {
        return None;
    }
    Some(match column.data_type() {
        DataType::Timestamp(..) => column
            .as_primitive_opt::<TimestampNanosecondType>()?
            .values()
            .iter()
            .map(|&v| rank_int(v, descending))
            .collect(),
        DataType::Int64 => column
            .as_primitive_opt::<Int64Type>()?
            .values()
            .iter()
            .map(|&v| rank_int(v, descending))
            .collect(),
        DataType::Int32 => column
            .as_primitive_opt::<Int32Type>()?
            .values()
            .iter()
            .map(|&v| rank_int(v as i64, descending))
            .collect(),
        DataType::Float64 => column
            .as_primitive_opt::<Float64Type>()?
            .values()
            .iter()
            .map(|&v| rank_float(v, descending))
            .collect(),
        _ => return None,
    })
}

/// Row indices of `column` in sort order, stable (ties keep row order),
/// the first `limit` of them when given. Numbers sort by rank, other
/// types by Arrow's comparator (nulls last).
pub fn sort_indices(column: &ArrayRef, descending: bool, limit: Option<usize>) -> Result<Vec<u32>> {
    let n = column.len();
    let limit = limit.unwrap_or(n).min(n);
    if u32::try_from(n).is_err() {
        return Err(Error::InvalidArgument(format!(
            "cannot sort {n} rows of one source at once (at most 2^32)"
        )));
    }
    if let Some(r) = ranks(column, descending) {
        let mut keyed: Vec<(i64, u32)> = r.into_iter().zip(0u32..).collect();
        partial_sort(&mut keyed, limit, |a, b| a.cmp(b));
        return Ok(keyed.into_iter().map(|(_, i)| i).collect());
    }
    let cmp = arrow_ord::ord::make_comparator(
        column.as_ref(),
        column.as_ref(),
        arrow_ord::sort::SortOptions {
            descending,
            nulls_first: false,
        },
    )
    .map_err(|e| Error::arrow("sorting", e))?;
    let mut idx: Vec<u32> = (0..n as u32).collect();
    partial_sort(&mut idx, limit, |&a, &b| {
        cmp(a as usize, b as usize).then(a.cmp(&b))
    });
    Ok(idx)
}

/// Sorts the first `limit` elements of `v` into place (by `cmp`, a total
/// order) and drops the rest.
fn partial_sort<T>(v: &mut Vec<T>, limit: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if limit == 0 {
        v.clear();
        return;
    }
    if limit < v.len() {
        v.select_nth_unstable_by(limit - 1, &cmp);
        v.truncate(limit);
    }
    v.sort_unstable_by(&cmp);
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    batch: u32,
    row: u32,
}

/// The best `n` rows offered so far (by [`Key`]), and the bound they set.
pub struct TopK {
    n: usize,
    batches: Vec<RecordBatch>,
    entries: Vec<Entry>,
    /// The worst key held, once `n` are held.
    bound: Option<Key>,
}

/// Batches held before their rows are gathered into one.
const MAX_BATCHES: usize = 64;

impl TopK {
    /// Keeps the first `n` rows.
    pub fn new(n: usize) -> TopK {
        TopK {
            n,
            batches: Vec::new(),
            entries: Vec::new(),
            bound: None,
        }
    }

    /// Can a row with key `key` (or a group whose best key is `key`) still
    /// enter? False once `n` rows with smaller keys are held (always false
    /// for `n = 0`).
    pub fn can_beat(&self, key: Key) -> bool {
        self.n > 0 && self.bound.is_none_or(|b| key < b)
    }

    /// The current bound (the worst key held once `n` are held).
    pub fn bound(&self) -> Option<Key> {
        self.bound
    }

    /// Offers the rows of `batch`: row `i` has rank `ranks[i]`, source
    /// `source` and position `position(i)`.
    pub fn offer(
        &mut self,
        batch: &RecordBatch,
        ranks: &[i64],
        source: u32,
        position: impl Fn(usize) -> u64,
    ) -> Result<()> {
        if self.n == 0 || batch.num_rows() == 0 {
            return Ok(());
        }
        if ranks.len() != batch.num_rows() {
            return Err(Error::InvalidArgument(format!(
                "top-k: {} ranks for {} rows",
                ranks.len(),
                batch.num_rows()
            )));
        }
        let b = u32::try_from(self.batches.len())
            .map_err(|_| Error::InvalidArgument("top-k: too many batches".into()))?;
        let before = self.entries.len();
        for (i, &rank) in ranks.iter().enumerate() {
            let key = (rank, source, position(i));
            if self.bound.is_none_or(|bound| key < bound) {
                self.entries.push(Entry {
                    key,
                    batch: b,
                    row: i as u32,
                });
            }
        }
        if self.entries.len() > before {
            self.batches.push(batch.clone());
        }
        if self.batches.len() > MAX_BATCHES {
            self.compact()?;
        } else if (self.bound.is_none() && self.entries.len() >= self.n)
            || self.entries.len() >= self.n.saturating_add(self.n.max(4096))
        {
            self.tighten();
        }
        Ok(())
    }

    /// Keeps the best `n` entries and sets the bound from them (call before
    /// deciding what to skip: the tighter the bound, the more is skipped).
    pub fn tighten(&mut self) {
        if self.n == 0 {
            return;
        }
        if self.entries.len() > self.n {
            self.entries
                .select_nth_unstable_by_key(self.n - 1, |e| e.key);
            self.entries.truncate(self.n);
        }
        if self.entries.len() == self.n {
            self.bound = self.entries.iter().map(|e| e.key).max();
        }
    }

    /// [`TopK::tighten`], then gathers the rows held into one batch.
    fn compact(&mut self) -> Result<()> {
        self.tighten();
        if self.batches.len() > 1 {
            let picks: Vec<(usize, usize)> = self
                .entries
                .iter()
                .map(|e| (e.batch as usize, e.row as usize))
                .collect();
            let one = gather(&self.batches, &picks)?;
            for (i, e) in self.entries.iter_mut().enumerate() {
                e.batch = 0;
                e.row = i as u32;
            }
            self.batches = vec![one];
        }
        Ok(())
    }

    /// The rows held, in key order, as batches of at most `batch_size`.
    pub fn finish(mut self, batch_size: usize) -> Result<Vec<RecordBatch>> {
        self.tighten();
        self.entries.sort_unstable_by_key(|e| e.key);
        let picks: Vec<(usize, usize)> = self
            .entries
            .iter()
            .map(|e| (e.batch as usize, e.row as usize))
            .collect();
        picks
            .chunks(batch_size.max(1))
            .map(|chunk| gather(&self.batches, chunk))
            .collect()
    }
}

/// The rows `picks` ((batch, row) pairs) of `batches`, as one batch.
fn gather(batches: &[RecordBatch], picks: &[(usize, usize)]) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Err(Error::InvalidArgument("top-k: no rows to gather".into()));
    };
    let columns = (0..first.num_columns())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::interleave::interleave(&arrays, picks)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow("gathering the top rows", e))?;
    RecordBatch::try_new(first.schema(), columns)
        .map_err(|e| Error::arrow("gathering the top rows", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn float_ranks_follow_total_order_both_ways() {
        let v = [
            -f64::NAN,
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            2.0,
            f64::INFINITY,
            f64::NAN,
        ];
        for w in v.windows(2) {
            assert!(rank_float(w[0], false) < rank_float(w[1], false), "{w:?}");
            assert!(rank_float(w[0], true) > rank_float(w[1], true), "{w:?}");
        }
        for a in v {
            for b in v {
                assert_eq!(
                    rank_float(a, false).cmp(&rank_float(b, false)),
                    a.total_cmp(&b)
                );
            }
        }
        assert!(rank_int(i64::MIN, true) > rank_int(i64::MAX, true));
    }

    #[test]
    fn top_k_keeps_the_first_n_by_key_whatever_the_offer_order() {
        let values: Vec<i64> = (0..5000).map(|i| (i * 7919) % 97).collect();
        let batch = RecordBatch::try_from_iter([(
            "v",
            Arc::new(arrow_array::Int64Array::from(values.clone())) as ArrayRef,
        )])
        .unwrap();
        let mut want: Vec<(i64, usize)> = values.iter().copied().zip(0..).collect();
        want.sort();
        for n in [0, 1, 10, 97, 4999, 5000, 7000] {
            let mut top = TopK::new(n);
            // Offered backwards in slices: the answer is the same.
            for start in (0..5000).step_by(500).rev() {
                let part = batch.slice(start, 500);
                let r = ranks(part.column(0), false).unwrap();
                top.offer(&part, &r, 0, |i| (start + i) as u64).unwrap();
            }
            let got: Vec<i64> = top
                .finish(333)
                .unwrap()
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect();
            let expect: Vec<i64> = want.iter().take(n).map(|&(v, _)| v).collect();
            assert_eq!(got, expect, "n = {n}");
        }
    }

    #[test]
    fn sort_indices_is_stable_with_and_without_a_limit() {
        let col: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![
            1.0,
            f64::NAN,
            1.0,
            -0.0,
            0.0,
            1.0,
            -f64::NAN,
        ]));
        assert_eq!(
            sort_indices(&col, false, None).unwrap(),
            vec![6, 3, 4, 0, 2, 5, 1]
        );
        assert_eq!(
            sort_indices(&col, true, None).unwrap(),
            vec![1, 0, 2, 5, 4, 3, 6]
        );
        assert_eq!(sort_indices(&col, true, Some(3)).unwrap(), vec![1, 0, 2]);
        assert_eq!(
            sort_indices(&col, true, Some(0)).unwrap(),
            Vec::<u32>::new()
        );
        let s: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["b", "a", "b", "a"]));
        assert_eq!(sort_indices(&s, false, None).unwrap(), vec![1, 3, 0, 2]);
        assert_eq!(sort_indices(&s, true, Some(3)).unwrap(), vec![0, 2, 1]);
    }
}
