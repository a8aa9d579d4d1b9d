//! Bars across the tiers ([`Engine::aggregate`]): each tier reduces its own
//! rows to [`Partial`](crate::agg::Partial)s (the warm tier on its device),
//! and the partials are merged into one [`Bar`] per symbol and bucket.

use std::time::Instant;

use arrow_array::RecordBatch;
use rayon::prelude::*;

use crate::agg::{bars, fold, merge_groups, Bar, Buckets, Groups};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filter::{bind_all, Filter, Scalar};
use crate::store::cold::{self, ColdFile, ScanStats};

/// Counts and times of an aggregate, per tier.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AggStats {
    pub hot_rows: u64,
    pub warm_rows: u64,
    pub cold_rows: u64,
    /// Where the warm tier's share was computed.
    pub warm_device: String,
    pub warm_ms: f64,
    pub hot_ms: f64,
    pub cold_ms: f64,
    pub total_ms: f64,
    pub cold: ScanStats,
    pub groups: u64,
}

impl Engine {
    /// Aggregates the rows that satisfy `filters` and fall in `buckets`,
    /// per symbol and bucket, across the three tiers: each tier reduces its
    /// own rows (the warm tier on its device), the partials are merged.
    pub fn aggregate(&self, filters: &[Filter], buckets: &Buckets) -> Result<(Vec<Bar>, AggStats)> {
        let started = Instant::now();
        let mut filters = filters.to_vec();
        filters.push(Filter::range(
            "timestamp",
            Some(Scalar::Int(buckets.start)),
            Some(Scalar::Int(buckets.end)),
        ));
        let preds = bind_all(&filters, self.schema())?;
        let mut stats = AggStats::default();
        let (hot, mut groups, files) = {
            let state = self.read();
            let hot: Vec<_> = state.hot.values().cloned().collect();
            let t = Instant::now();
            let groups = state.warm.aggregate(&preds, buckets)?;
            stats.warm_ms = t.elapsed().as_secs_f64() * 1e3;
            stats.warm_device = state.warm.device();
            (hot, groups, state.cold.clone())
        };
        let files = self.cold_view(files)?;
        stats.warm_rows = groups.values().map(|p| p.count).sum();
        let t = Instant::now();
        let mut rows = Vec::new();
        for b in &hot {
            if let Some(kept) = b.matching(&preds)? {
                stats.hot_rows += kept.num_rows() as u64;
                rows.push(
                    kept.project(&[0, 1, 2, 3])
                        .map_err(|e| Error::arrow("projecting hot rows", e))?,
                );
            }
        }
        fold(&mut groups, buckets, &rows)?;
        stats.hot_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        // A cold file whose rows fall into few groups (many rows each) is
        // read and folded on its own task, in parallel with the others, and
        // its partials merged after; one whose rows spread over many groups
        // is folded straight into the shared groups, one after another,
        // since merging many partials costs more than the parallel fold
        // saves. Partials are order-free (exact sums, first and last by
        // timestamp then price), so the answer is the same bits either way
        // and whatever order the tasks finish in.
        let read = |f: &ColdFile| -> Result<(Vec<RecordBatch>, ScanStats)> {
            let (mut scan, mut rows) = (ScanStats::default(), Vec::new());
            super::scan_trades(self, f, &preds, &mut scan, |b| {
                rows.push(b);
                Ok(true)
            })?;
            Ok((rows, scan))
        };
        let mut scan = ScanStats {
            files_total: files.len() as u64,
            ..ScanStats::default()
        };
        let candidates: Vec<&ColdFile> = files
            .iter()
            .filter(|f| cold::file_may_match(f, &preds))
            .collect();
        scan.files_pruned = (files.len() - candidates.len()) as u64;
        let (few, many): (Vec<&ColdFile>, Vec<&ColdFile>) = candidates
            .into_iter()
            .partition(|f| groups_bound(f, buckets).saturating_mul(ROWS_PER_GROUP) <= f.rows);
        let folded = few
            .par_iter()
            .map(|f| -> Result<(Groups, ScanStats)> {
                let (rows, file_scan) = read(f)?;
                let mut local = Groups::new();
                fold(&mut local, buckets, &rows)?;
                Ok((local, file_scan))
            })
            .collect::<Vec<_>>();
        for r in folded {
            let (local, file_scan) = r?;
            merge_groups(&mut groups, local);
            scan.add(&file_scan);
        }
        for f in many {
            let (rows, file_scan) = read(f)?;
            fold(&mut groups, buckets, &rows)?;
            scan.add(&file_scan);
        }
        stats.cold_rows = scan.rows_matched;
        stats.cold_ms = t.elapsed().as_secs_f64() * 1e3;
        stats.cold = scan;
        stats.groups = groups.len() as u64;
        let out = bars(&groups, buckets);
        stats.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok((out, stats))
    }
}

/// A file is folded on its own task when its rows average at least this
/// many a group.
const ROWS_PER_GROUP: u64 = 16;

/// The most groups a file's rows can fall into: its symbols times the
/// buckets its time range meets (0 when it meets none).
fn groups_bound(f: &ColdFile, buckets: &Buckets) -> u64 {
    let lo = f.min_ts.max(buckets.start);
    let hi = f.max_ts.min(buckets.end.saturating_sub(1));
    if lo > hi || buckets.every <= 0 {
        return 0;
    }
    let every = buckets.every as i128;
    let first = (lo as i128 - buckets.start as i128) / every;
    let last = (hi as i128 - buckets.start as i128) / every;
    u64::try_from(last - first + 1)
        .unwrap_or(u64::MAX)
        .saturating_mul(f.symbols.len().max(1) as u64)
}
