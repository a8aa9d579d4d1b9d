//! Bars across the tiers ([`Engine::aggregate`]): each tier reduces its own
//! rows to [`Partial`](crate::agg::Partial)s (the warm tier on its device),
//! and the partials are merged into one [`Bar`] per symbol and bucket.

use std::time::Instant;

use rayon::prelude::*;

use crate::agg::{bars, fold, merge_groups, Bar, Buckets, Groups};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filter::{bind_all, Filter, Scalar};
use crate::store::cold::{self, ScanStats};

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
        // Cold files are read and folded in parallel, one file per task
        // (each holds one file's matches at a time), and their groups merged
        // in file order. Partials are order-free (exact sums, first and last
        // by timestamp then price), so the answer is the serial one, bit for
        // bit, whatever order the tasks finish in.
        let batch_size = self.config().query.output_batch_size.max(1);
        let cold_dir = self.config().cold_dir();
        let per_file = files
            .par_iter()
            .map(|f| -> Result<Option<(Groups, ScanStats, u64)>> {
                if !cold::file_may_match(f, &preds) {
                    return Ok(None);
                }
                let (mut scan, mut rows, mut n) = (ScanStats::default(), Vec::new(), 0u64);
                cold::scan_file(
                    &cold_dir.join(&f.path),
                    f,
                    self.schema(),
                    &preds,
                    &[0, 1, 2, 3],
                    batch_size,
                    &mut scan,
                    Some(self.meta_cache()),
                    |b| {
                        n += b.num_rows() as u64;
                        rows.push(b);
                        Ok(true)
                    },
                )?;
                let mut local = Groups::new();
                fold(&mut local, buckets, &rows)?;
                Ok(Some((local, scan, n)))
            })
            .collect::<Vec<_>>();
        let mut scan = ScanStats {
            files_total: files.len() as u64,
            ..ScanStats::default()
        };
        for r in per_file {
            match r? {
                None => scan.files_pruned += 1,
                Some((local, file_scan, n)) => {
                    merge_groups(&mut groups, local);
                    scan.add(&file_scan);
                    stats.cold_rows += n;
                }
            }
        }
        stats.cold_ms = t.elapsed().as_secs_f64() * 1e3;
        stats.cold = scan;
        stats.groups = groups.len() as u64;
        let out = bars(&groups, buckets);
        stats.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok((out, stats))
    }
}
