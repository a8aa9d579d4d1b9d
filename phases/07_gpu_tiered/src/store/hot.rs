//! The hot tier's batches, each with an index built on first use: its time
//! range, and the rows of each symbol. Ingest pays nothing for it; the first
//! query that touches a batch does, and every later one skips batches
//! outside its time range and reads only its symbols' rows.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{RecordBatch, UInt32Array};

use crate::error::{Error, Result};
use crate::filter::{filter_batch, Pred, PredKind, Stats};

/// One hot batch (one WAL record).
#[derive(Debug)]
pub struct HotBatch {
    pub batch: RecordBatch,
    index: OnceLock<HotIndex>,
}

#[derive(Debug)]
struct HotIndex {
    min_ts: i64,
    max_ts: i64,
    /// Rows of each symbol, in row order.
    symbols: HashMap<String, Vec<u32>>,
}

impl HotBatch {
    /// Wraps a batch of the store's schema.
    pub fn new(batch: RecordBatch) -> Arc<HotBatch> {
        Arc::new(HotBatch {
            batch,
            index: OnceLock::new(),
        })
    }

    fn index(&self) -> &HotIndex {
        self.index.get_or_init(|| {
            let ts = self
                .batch
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values();
            let mut symbols: HashMap<String, Vec<u32>> = HashMap::new();
            for (row, s) in self.batch.column(1).as_string::<i32>().iter().enumerate() {
                let s = s.unwrap_or("");
                match symbols.get_mut(s) {
                    Some(rows) => rows.push(row as u32),
                    None => {
                        symbols.insert(s.to_string(), vec![row as u32]);
                    }
                }
            }
            HotIndex {
                min_ts: ts.iter().copied().min().unwrap_or(0),
                max_ts: ts.iter().copied().max().unwrap_or(-1),
                symbols,
            }
        })
    }

    /// The least and greatest timestamp of the batch (`(0, -1)` when empty).
    pub fn time_range(&self) -> (i64, i64) {
        let ix = self.index();
        (ix.min_ts, ix.max_ts)
    }

    /// The rows satisfying every predicate (full schema), using the index:
    /// `None` when nothing matches.
    pub fn matching(&self, preds: &[Pred]) -> Result<Option<RecordBatch>> {
        if preds.is_empty() {
            return Ok((self.batch.num_rows() > 0).then(|| self.batch.clone()));
        }
        let ix = self.index();
        let in_time = preds
            .iter()
            .filter(|p| p.column == 0)
            .all(|p| p.kind.may_match(&Stats::Int(ix.min_ts, ix.max_ts)));
        if !in_time {
            return Ok(None);
        }
        // The symbol set is answered exactly by the index, and conditions
        // on the timestamp are checked on the candidate rows' values, so
        // only rows that match are copied, and only the other conditions
        // (if any) are evaluated on the copy.
        let by_index = preds.iter().enumerate().find_map(|(i, p)| match &p.kind {
            PredKind::StrSet(set) if p.column == 1 => Some((i, set)),
            _ => None,
        });
        let Some((at, set)) = by_index else {
            let kept = filter_batch(preds, &self.batch)?;
            return Ok((kept.num_rows() > 0).then_some(kept));
        };
        let exact_on_time = |p: &Pred| {
            p.column == 0 && matches!(p.kind, PredKind::IntRange(..) | PredKind::IntSet(_))
        };
        let time: Vec<&Pred> = preds.iter().filter(|p| exact_on_time(p)).collect();
        let ts = self
            .batch
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .values();
        let mut rows: Vec<u32> = set
            .iter()
            .filter_map(|s| ix.symbols.get(s))
            .flatten()
            .copied()
            .filter(|&r| {
                ts.get(r as usize)
                    .is_some_and(|&v| time.iter().all(|p| p.kind.int(v)))
            })
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        rows.sort_unstable();
        let taken = arrow_select::take::take_record_batch(&self.batch, &UInt32Array::from(rows))
            .map_err(|e| Error::arrow("reading hot rows", e))?;
        let rest: Vec<Pred> = preds
            .iter()
            .enumerate()
            .filter(|&(i, p)| i != at && !exact_on_time(p))
            .map(|(_, p)| p.clone())
            .collect();
        if rest.is_empty() {
            return Ok(Some(taken));
        }
        let kept = filter_batch(&rest, &taken)?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{bind_all, Filter, Scalar};
    use crate::schema::Mode;
    use arrow_array::{Float64Array, StringArray, TimestampNanosecondArray};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn batch(rows: &[(i64, u8, f64)]) -> RecordBatch {
        let ts = TimestampNanosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .with_timezone("UTC");
        let sym: Vec<String> = rows.iter().map(|r| format!("S{}", r.1)).collect();
        RecordBatch::try_new(
            Mode::Simple.schema(),
            vec![
                Arc::new(ts),
                Arc::new(StringArray::from(sym)),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(vec![1.0; rows.len()])),
            ],
        )
        .unwrap()
    }

    proptest! {
        /// The index path (symbols from the index, timestamps checked on
        /// the candidates, other conditions on the copy) keeps exactly the
        /// rows, in order, that evaluating every condition on the whole
        /// batch keeps.
        #[test]
        fn matching_equals_filtering_the_whole_batch(
            rows in prop::collection::vec((0i64..50, 0u8..5, -2.0f64..2.0), 0..60),
            syms in prop::collection::vec(0u8..7, 0..3),
            time in prop::option::of((0i64..50, 0i64..50)),
            ts_in in prop::option::of(prop::collection::vec(0i64..50, 1..4)),
            price_from in prop::option::of(-2.0f64..2.0),
        ) {
            let b = batch(&rows);
            let mut filters = Vec::new();
            if !syms.is_empty() {
                filters.push(Filter::is_in("symbol", syms.iter().map(|s| format!("S{s}"))));
            }
            if let Some((lo, hi)) = time {
                filters.push(Filter::range("timestamp", Some(Scalar::Int(lo)), Some(Scalar::Int(hi))));
            }
            if let Some(set) = ts_in {
                filters.push(Filter::is_in("timestamp", set.into_iter().map(Scalar::Int)));
            }
            if let Some(p) = price_from {
                filters.push(Filter::range("price", Some(Scalar::Float(p)), None));
            }
            let Ok(preds) = bind_all(&filters, &Mode::Simple.schema()) else {
                return Ok(());
            };
            let got = HotBatch::new(b.clone()).matching(&preds).unwrap();
            let want = filter_batch(&preds, &b).unwrap();
            match got {
                None => prop_assert_eq!(want.num_rows(), 0),
                Some(g) => {
                    prop_assert!(g.num_rows() > 0);
                    prop_assert_eq!(g, want);
                }
            }
        }
    }
}
