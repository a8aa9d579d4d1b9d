//! Phase 00: generate (or import) the canonical dataset.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs, SourceArgs};

/// Phase 00: write the canonical dataset every later phase reads.
///
/// By default it generates about 50,000 samples of realistic observability
/// metrics (gauges, counters with resets, near-constant series, latency
/// quantiles) scraped every 15 s with millisecond jitter. With --import it
/// reads real metrics instead: long CSV (series,timestamp,value), wide CSV
/// (timestamp, symbol and value columns: trades, OHLCV bars), Prometheus
/// text or OpenMetrics, or Influx line protocol. Chapter 00 of the book
/// says what each importer accepts and refuses.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  00_generate --points 10000000\n  00_generate --profile squeezed\n  00_generate --import ../shared/data/beringei-5000.csv"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    source: SourceArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        squeeze::course::generate::run(&args.common.context(), &args.source.to_source()?)?.print();
        Ok(())
    })())
}
