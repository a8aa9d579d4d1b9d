//! The newest N bars of one symbol at one timeframe ([`Engine::latest_bars`]):
//! the catalog's materialised bars of the cold tier (one indexed SQLite read),
//! merged exactly with the rows still in the hot and warm tiers.
//!
//! Consistency: the catalog's bars describe the cold tier through its
//! watermark, the memory tiers hold every record after the engine's
//! watermark. The two are read one after the other and used only when the
//! watermarks agree (a migration between the reads is waited out and the
//! lookup retried), so no row is counted twice or missed. When the catalog
//! cannot answer (bars stale or turned off, a window that no longer
//! reaches back far enough, a damaged row), the bars are computed from the
//! raw rows of every tier instead, and the answer says so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;

use crate::agg::{Bar, Partial};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::filter::{bind_all, Filter, Pred, Scalar};
use crate::store::bars::{fold_aligned, newest, BarsBuilder, Timeframe};
use crate::store::cold::{self, ScanStats};

/// Most bars one lookup may ask for.
pub const MAX_LATEST: usize = 100_000;

/// Where a lookup's bars came from.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LatestStats {
    /// `catalog` (materialised bars plus the memory tiers) or `raw` (every
    /// row of the symbol read and folded).
    pub source: &'static str,
    /// Why the catalog could not answer, for `raw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_raw: Option<String>,
    /// Bars read from the catalog, and rows folded from the memory tiers.
    pub catalog_bars: u64,
    pub memory_rows: u64,
    /// For `raw`: rows folded from the cold tier, and files read.
    pub cold_rows: u64,
    pub cold_files_read: u64,
    pub total_ms: f64,
}

impl Engine {
    /// The newest `limit` bars of `symbol` at `tf`, oldest first: exactly
    /// the bars [`Engine::aggregate`] computes for those buckets from every
    /// row of the symbol (same bits). `limit` is 1..=[`MAX_LATEST`].
    pub fn latest_bars(
        &self,
        symbol: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<(Vec<Bar>, LatestStats)> {
        check_limit(limit)?;
        let started = Instant::now();
        let keep = self.config().cold_tier.bars_kept;
        let why_raw = if keep == 0 {
            "cold_tier.bars_kept is 0".to_string()
        } else if self.config().cold_tier.shared {
            "the cold tier is shared: the catalog keeps this store's bars only".to_string()
        } else if limit > keep {
            format!("{limit} bars asked for, the catalog keeps {keep} (cold_tier.bars_kept)")
        } else {
            match self.latest_from_catalog(symbol, tf, limit)? {
                Ok((bars, mut stats)) => {
                    stats.total_ms = started.elapsed().as_secs_f64() * 1e3;
                    return Ok((bars, stats));
                }
                Err(why) => why,
            }
        };
        let (bars, mut stats) = self.latest_bars_from_raw(symbol, tf, limit)?;
        stats.why_raw = Some(why_raw);
        stats.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok((bars, stats))
    }

    /// The catalog's answer, or (as `Ok(Err(why))`) why it has none.
    fn latest_from_catalog(
        &self,
        symbol: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<std::result::Result<(Vec<Bar>, LatestStats), String>> {
        // A migration commits to the catalog, then updates the memory
        // tiers: a lookup between the two sees the catalog ahead and waits
        // for the migration to finish. Bounded: each retry follows a
        // finished migration.
        for _ in 0..8 {
            let kept = match self.with_catalog(|c| c.latest_bars(symbol, tf, limit)) {
                Ok(k) => k,
                Err(e @ Error::Corrupt { .. }) => return Ok(Err(self.damaged_bars(e.to_string()))),
                Err(e) => return Err(e),
            };
            if !kept.current {
                return Ok(Err(format!(
                    "the catalog's bars are not current (they describe {}; the cold tier is {}); \
                     the next open of the store to write rebuilds them",
                    kept.describes
                        .as_deref()
                        .map_or("nothing".into(), readable_state),
                    readable_state(&kept.cold)
                )));
            }
            if kept.rows.len() < limit && kept.complete_from.is_some() {
                return Ok(Err(format!(
                    "the catalog keeps {} {} bars of {symbol} and older ones were dropped",
                    kept.rows.len(),
                    tf.name()
                )));
            }
            // Memory rows of buckets older than `from` cannot be among the
            // newest `limit`: the catalog has `limit` newer ones.
            let from = match kept.rows.last() {
                Some(&(oldest, _)) if kept.rows.len() == limit => oldest,
                _ => kept.complete_from.unwrap_or(i64::MIN),
            };
            let preds = symbol_preds(self, symbol, from)?;
            let (rows, watermark) = {
                let state = self.read();
                if state.watermark != kept.watermark {
                    let behind = state.watermark < kept.watermark;
                    drop(state);
                    if behind {
                        self.wait_for_migration();
                    }
                    continue;
                }
                // Every symbol of the cold tier has kept bars: none while
                // its files list it means rows of the catalog were lost.
                if !kept.key
                    && state
                        .cold
                        .iter()
                        .any(|f| f.symbols.iter().any(|s| s == symbol))
                {
                    drop(state);
                    return Ok(Err(self.damaged_bars(format!(
                        "the catalog keeps no {} bars of {symbol}, which the cold tier holds",
                        tf.name()
                    ))));
                }
                let mut rows = state.warm.scan(&preds, &[0, 1, 2, 3], None)?;
                for hot in state.hot.values() {
                    if let Some(b) = hot.matching(&preds)? {
                        rows.push(project4(&b)?);
                    }
                }
                (rows, state.watermark)
            };
            debug_assert_eq!(watermark, kept.watermark);
            let mut partials: BTreeMap<i64, Partial> = kept.rows.into_iter().collect();
            let catalog_bars = partials.len() as u64;
            let memory_rows = rows.iter().map(|b| b.num_rows() as u64).sum();
            fold_aligned(&mut partials, tf, from, &rows)?;
            let name: Arc<str> = Arc::from(symbol);
            return Ok(Ok((
                newest(&name, &partials, limit),
                LatestStats {
                    source: "catalog",
                    why_raw: None,
                    catalog_bars,
                    memory_rows,
                    cold_rows: 0,
                    cold_files_read: 0,
                    total_ms: 0.0,
                },
            )));
        }
        Ok(Err(
            "migrations kept moving the cold tier during the lookup".into(),
        ))
    }

    /// Says why damaged bars are not used; a store open to write marks them
    /// stale, so that every lookup reads raw rows (not only this one) and
    /// the next writing open rebuilds them.
    fn damaged_bars(&self, why: String) -> String {
        if self.read_only() {
            return format!("{why}; `07_gpu_tiered bars --rebuild` rebuilds the bars");
        }
        match self.with_catalog(|c| c.mark_bars_stale()) {
            Ok(()) => format!(
                "{why}; the bars are marked stale and the next open of the store to write rebuilds them \
                 (or `07_gpu_tiered bars --rebuild`)"
            ),
            Err(e) => format!("{why} (and marking the bars stale failed: {e})"),
        }
    }

    /// The same bars computed from every row of `symbol` in every tier
    /// (the reference the catalog's answer must equal, and its fallback).
    /// Memory stays bounded by `limit` buckets: a bucket older than the
    /// newest `limit` seen so far is dropped as soon as it is passed.
    pub fn latest_bars_from_raw(
        &self,
        symbol: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<(Vec<Bar>, LatestStats)> {
        check_limit(limit)?;
        let started = Instant::now();
        let preds = symbol_preds(self, symbol, i64::MIN)?;
        let (mut rows, files) = {
            let state = self.read();
            let mut rows = state.warm.scan(&preds, &[0, 1, 2, 3], None)?;
            for hot in state.hot.values() {
                if let Some(b) = hot.matching(&preds)? {
                    rows.push(project4(&b)?);
                }
            }
            (rows, state.cold.clone())
        };
        let files = self.cold_view(files)?;
        let memory_rows: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
        let mut partials = BTreeMap::new();
        fold_aligned(&mut partials, tf, i64::MIN, &rows)?;
        rows.clear();
        let mut scan = ScanStats::default();
        // Newest files first, so that older buckets can be skipped once
        // `limit` newer ones are known.
        let mut candidates: Vec<_> = files
            .iter()
            .filter(|f| cold::file_may_match(f, &preds))
            .collect();
        candidates.sort_by_key(|f| std::cmp::Reverse(f.max_ts));
        let mut read = 0;
        for f in candidates {
            let bound = (partials.len() >= limit)
                .then(|| partials.keys().rev().nth(limit - 1).copied())
                .flatten();
            if bound.is_some_and(|b| tf.bucket(f.max_ts) < b) {
                continue;
            }
            read += 1;
            let from = bound.unwrap_or(i64::MIN);
            super::scan_trades(self, f, &preds, &mut scan, |b| {
                fold_aligned(&mut partials, tf, from, std::slice::from_ref(&b))?;
                Ok(true)
            })?;
            while partials.len() > limit {
                partials.pop_first();
            }
        }
        let name: Arc<str> = Arc::from(symbol);
        Ok((
            newest(&name, &partials, limit),
            LatestStats {
                source: "raw",
                why_raw: None,
                catalog_bars: 0,
                memory_rows,
                cold_rows: scan.rows_matched,
                cold_files_read: read,
                total_ms: started.elapsed().as_secs_f64() * 1e3,
            },
        ))
    }

    /// Rebuilds the catalog's bars from every cold file when they do not
    /// describe the cold tier (a repaired catalog, a store from before
    /// bars, bars found damaged), or always with `force`; returns what it
    /// did, `None` when nothing was needed. Before that, a quick check of
    /// every key's row against its pages (no page is read) finds pages
    /// or rows lost or added since, and has them rebuilt too.
    pub fn rebuild_bars(&self, force: bool) -> Result<Option<String>> {
        let keep = self.config().cold_tier.bars_kept;
        if keep == 0 || self.read_only() {
            return Ok(None);
        }
        let (watermark, current) =
            self.with_catalog(|c| Ok((c.watermark()?, c.bars_current()?)))?;
        let damaged = if current && !force {
            let symbols: std::collections::BTreeSet<String> = self
                .read()
                .cold
                .iter()
                .flat_map(|f| f.symbols.iter().cloned())
                .collect();
            self.with_catalog(|c| c.check_bar_keys(&symbols))?
        } else {
            Vec::new()
        };
        if current && !force && damaged.is_empty() {
            return Ok(None);
        }
        let started = Instant::now();
        let files = self.read().cold.clone();
        let mut builder = BarsBuilder::new(keep);
        let mut scan = ScanStats::default();
        for f in files.iter() {
            super::scan_trades(self, f, &[], &mut scan, |b| builder.add(&b).map(|()| true))?;
        }
        let update = builder.finish();
        let n = update.len();
        self.with_catalog(|c| c.replace_bars(&update, keep, watermark))?;
        if files.is_empty() && damaged.is_empty() && !force {
            // A new store: nothing was rebuilt, nothing to say.
            return Ok(None);
        }
        let why = match damaged.first() {
            Some(first) => format!(" ({} problems found, the first: {first})", damaged.len()),
            None => String::new(),
        };
        Ok(Some(format!(
            "rebuilt the catalog's bars from {} cold files ({} rows, {n} bars kept) in {:.1} s{why}",
            files.len(),
            scan.rows_matched,
            started.elapsed().as_secs_f64()
        )))
    }
}

/// `LSN;files:CRCs:rows` (what the catalog records) as words.
fn readable_state(s: &str) -> String {
    let parts: Vec<&str> = s.split([';', ':']).collect();
    match parts[..] {
        [lsn, files, _, rows] => format!("watermark LSN {lsn}, {files} files of {rows} rows"),
        _ => format!("{s:?}"),
    }
}

fn check_limit(limit: usize) -> Result<()> {
    if (1..=MAX_LATEST).contains(&limit) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "limit {limit}: between 1 and {MAX_LATEST} bars"
        )))
    }
}

fn symbol_preds(engine: &Engine, symbol: &str, from: i64) -> Result<Vec<Pred>> {
    let mut filters = vec![Filter::eq("symbol", Scalar::Str(symbol.to_string()))];
    if from > i64::MIN {
        filters.push(Filter::range("timestamp", Some(Scalar::Int(from)), None));
    }
    bind_all(&filters, engine.schema())
}

fn project4(b: &RecordBatch) -> Result<RecordBatch> {
    b.project(&[0, 1, 2, 3])
        .map_err(|e| Error::arrow("projecting hot rows", e))
}
