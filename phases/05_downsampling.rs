//! Phase 05: downsampled rollups, and how much they lose.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};

/// Phase 05: roll the phase 04 file up to 1m, 5m, 15m and 1h buckets.
///
/// Gauges keep avg, min, max, p95, p99, count and sum per bucket; counters
/// (metrics ending in _total) keep last value, increase across resets and
/// count. Each resolution is written in the phase 04 format as
/// output/05_rollup_RES.metrics and read back. Downsampling is lossy: the
/// phase measures the error of hourly averages and p99s rebuilt from each
/// resolution against the raw samples, and the bytes a long-range query reads
/// from rollups instead of raw blocks.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        squeeze::phases::downsampling::run(&args.common.context())?.print();
        Ok(())
    })())
}
