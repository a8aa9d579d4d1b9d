//! Phase 05: downsampled rollups, and how much they lose.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};

/// Phase 05: roll the phase 04 file up to 1m, 5m, 15m and 1h buckets.
///
/// Gauges keep count, sum, min, max, p95 and p99 per bucket (avg is
/// sum/count); counters (declared by the source's # TYPE, else named
/// *_total) keep last value, increase across resets and reset count. A
/// resolution is skipped for a series when it is at or below twice the
/// series' step, when the series is constant, when its rollups would not be
/// at most half its samples' bytes, or at most 90% of its rollups at the
/// next finer resolution that keeps it; the phase says how many and why,
/// and skipped series are answered from raw samples or finer rollups. Each
/// resolution is written in the phase 04 format as
/// output/05_rollup_RES.metrics and read back. Downsampling is lossy: the
/// phase measures the error of hourly averages, maxima and p99s rebuilt from
/// each resolution against the raw samples (as a share of each series' value
/// range), and the bytes a long-range query reads from rollups instead of
/// raw blocks.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Also print what keeping raw samples this long (e.g. 7d; at most 365d),
    /// then each resolution's rollups, costs over a year, scaled from this
    /// run's sizes.
    #[arg(long, value_name = "DURATION", value_parser = parse_keep_raw, allow_hyphen_values = true)]
    keep_raw: Option<i64>,
}

fn parse_keep_raw(text: &str) -> Result<i64, String> {
    const YEAR: i64 = 365 * 86_400 * squeeze::time::NANOS_PER_SECOND;
    if text.trim_start().starts_with('-') {
        return Err("a duration is not negative".into());
    }
    let ns = squeeze::time::parse_duration(text).map_err(|e| e.to_string())?;
    if ns > YEAR {
        return Err("at most a year (365d): the table is what a year costs".into());
    }
    Ok(ns)
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        squeeze::course::downsampling::run_with(&args.common.context(), args.keep_raw)?.print();
        Ok(())
    })())
}
