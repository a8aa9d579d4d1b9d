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
            return Ok(Some(self.batch.clone()));
        }
        let ix = self.index();
        let in_time = preds
            .iter()
            .filter(|p| p.column == 0)
            .all(|p| p.kind.may_match(&Stats::Int(ix.min_ts, ix.max_ts)));
        if !in_time {
            return Ok(None);
        }
        let candidates = match preds.iter().find(|p| p.column == 1) {
            Some(Pred {
                kind: PredKind::StrSet(set),
                ..
            }) => {
                let mut rows: Vec<u32> = set
                    .iter()
                    .filter_map(|s| ix.symbols.get(s))
                    .flatten()
                    .copied()
                    .collect();
                if rows.is_empty() {
                    return Ok(None);
                }
                rows.sort_unstable();
                Some(rows)
            }
            _ => None,
        };
        let base = match candidates {
            Some(rows) => {
                arrow_select::take::take_record_batch(&self.batch, &UInt32Array::from(rows))
                    .map_err(|e| Error::arrow("reading hot rows", e))?
            }
            None => self.batch.clone(),
        };
        let kept = filter_batch(preds, &base)?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }
}
