//! Data-quality metrics of one symbol over a time range, against an
//! expected interval between records.
//!
//! The range `[start, end)` is cut into buckets of the expected interval.
//! Completeness is the share of buckets holding at least one record; a
//! missing interval is an empty bucket; a gap is a run of consecutive empty
//! buckets (the longest is reported in nanoseconds); a duplicate is a record
//! with the same timestamp as the one before it.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::read::query::{Query, Sort};
use crate::store::catalog::Quality;

/// Computes the metrics from sorted timestamps.
pub fn measure(symbol: &str, ts: &[i64], start: i64, end: i64, interval: i64) -> Result<Quality> {
    if interval <= 0 {
        return Err(Error::InvalidArgument(format!(
            "the expected interval must be positive, got {interval} ns"
        )));
    }
    if end <= start {
        return Err(Error::InvalidArgument(format!(
            "the range is empty: start {start} is not before end {end}"
        )));
    }
    let span = end
        .checked_sub(start)
        .ok_or_else(|| Error::InvalidArgument(format!("the range {start}..{end} is too long")))?;
    let buckets = (span - 1) / interval + 1;
    if buckets > 100_000_000 {
        return Err(Error::InvalidArgument(format!(
            "{buckets} intervals in the range; use a longer interval or a shorter range"
        )));
    }
    let mut filled = vec![false; buckets as usize];
    let mut duplicates = 0;
    let mut prev = None;
    for &t in ts {
        if t < start || t >= end {
            continue;
        }
        filled[((t - start) / interval) as usize] = true;
        if prev == Some(t) {
            duplicates += 1;
        }
        prev = Some(t);
    }
    let filled_n = filled.iter().filter(|&&f| f).count() as i64;
    let (mut gaps, mut longest, mut run) = (0i64, 0i64, 0i64);
    for &f in &filled {
        if f {
            run = 0;
        } else {
            if run == 0 {
                gaps += 1;
            }
            run += 1;
            longest = longest.max(run);
        }
    }
    Ok(Quality {
        symbol: symbol.to_string(),
        start_ts: start,
        end_ts: end,
        interval_ns: interval,
        records: ts.iter().filter(|&&t| t >= start && t < end).count() as i64,
        expected_buckets: buckets,
        filled_buckets: filled_n,
        completeness: filled_n as f64 / buckets as f64,
        missing_intervals: buckets - filled_n,
        gaps,
        longest_gap_ns: longest * interval,
        duplicates,
    })
}

/// Reads the symbol's timestamps from every tier, measures, and stores the
/// result in the catalog (the newest [`KEPT_PER_SYMBOL`] per symbol are
/// kept).
pub fn check(
    engine: &Engine,
    symbol: &str,
    start: i64,
    end: i64,
    interval: i64,
) -> Result<Quality> {
    let result = measure_range(engine, symbol, start, end, interval)?;
    engine.with_catalog(|c| c.add_quality(&result, KEPT_PER_SYMBOL))?;
    Ok(result)
}

/// Stored results kept per symbol; older ones are deleted as new ones come.
pub const KEPT_PER_SYMBOL: usize = 100;

/// Reads the symbol's timestamps from every tier and measures, storing
/// nothing (the HTTP API's `GET /quality`).
pub fn measure_range(
    engine: &Engine,
    symbol: &str,
    start: i64,
    end: i64,
    interval: i64,
) -> Result<Quality> {
    let q = Query {
        sort: Some(Sort {
            column: "timestamp".into(),
            descending: false,
        }),
        ..Query::symbol_range(symbol, start, end, &["timestamp"])
    };
    let mut ts = Vec::new();
    for batch in engine.query(&q)? {
        let batch = batch?;
        ts.extend_from_slice(
            batch
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values(),
        );
    }
    measure(symbol, &ts, start, end, interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_missing_and_duplicates() {
        // Buckets of 10 over [0, 100): records in buckets 0, 1, 1 (dup), 5, 9.
        let q = measure("X", &[0, 12, 12, 55, 99], 0, 100, 10).unwrap();
        assert_eq!(q.expected_buckets, 10);
        assert_eq!(q.filled_buckets, 4);
        assert_eq!(q.missing_intervals, 6);
        assert_eq!(q.gaps, 2, "buckets 2-4 and 6-8");
        assert_eq!(q.longest_gap_ns, 30);
        assert_eq!(q.duplicates, 1);
        assert_eq!(q.records, 5);
        assert!((q.completeness - 0.4).abs() < 1e-12);
    }

    #[test]
    fn refuses_empty_ranges_and_bad_intervals() {
        assert!(measure("X", &[], 10, 10, 1).is_err());
        assert!(measure("X", &[], 0, 10, 0).is_err());
    }
}
