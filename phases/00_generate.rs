//! Phase 00: generate (or import) the canonical dataset.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use squeeze::generate::{GenerateConfig, Profile};
use squeeze::import::{ImportFormat, ImportOptions, TimestampUnit};
use squeeze::phases::generate::{self, DatasetSource};
use squeeze::time::parse_duration;

#[path = "cli.rs"]
mod cli;

/// Phase 00: write the canonical dataset every later phase reads.
///
/// By default it generates about 50,000 samples of realistic observability
/// metrics (gauges, counters with resets, near-constant series, latency
/// quantiles) scraped every 15 s with millisecond jitter. With --import it
/// reads real metrics instead.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  00_generate --points 10000000\n  00_generate --import ../shared/data/beringei-5000.csv"
)]
pub struct Args {
    #[command(flatten)]
    common: cli::CommonArgs,
    #[command(flatten)]
    source: SourceArgs,
}

/// Where the dataset comes from (shared with the orchestrator).
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Import real metrics from FILE instead of generating them.
    #[arg(long, value_name = "FILE")]
    import: Option<PathBuf>,
    /// Format of the imported file (default: from its extension, else sniffed).
    #[arg(long, value_enum, requires = "import")]
    format: Option<ImportFormat>,
    /// Unit of integer timestamps in the imported file.
    #[arg(long, value_enum, default_value = "auto", requires = "import")]
    timestamp_unit: TimestampUnit,
    /// Kind of generated data.
    #[arg(
        long,
        value_enum,
        default_value = "observability",
        conflicts_with = "import"
    )]
    profile: Profile,
    /// Number of series to generate.
    #[arg(long, default_value_t = 50, conflicts_with = "import")]
    series: usize,
    /// Total number of samples to generate, spread evenly over the series.
    #[arg(long, default_value_t = 50_000, conflicts_with = "import")]
    points: u64,
    /// Scrape interval (e.g. 15s, 1m, 500ms).
    #[arg(long, default_value = "15s", conflicts_with = "import")]
    interval: String,
    /// Largest scrape jitter (e.g. 5ms; 0 for perfectly regular scrapes).
    #[arg(long, default_value = "5ms", conflicts_with = "import")]
    jitter: String,
    /// Random seed: the same seed always gives the same dataset.
    #[arg(long, default_value_t = 42, conflicts_with = "import")]
    seed: u64,
}

impl SourceArgs {
    pub fn to_source(&self) -> squeeze::Result<DatasetSource> {
        Ok(match &self.import {
            Some(path) => DatasetSource::Import(
                path.clone(),
                ImportOptions {
                    format: self.format,
                    timestamp_unit: self.timestamp_unit,
                },
            ),
            None => DatasetSource::Generate(GenerateConfig {
                profile: self.profile,
                series: self.series,
                points: self.points,
                interval_ns: parse_duration(&self.interval)?,
                jitter_ns: parse_duration(&self.jitter)?,
                seed: self.seed,
                ..GenerateConfig::default()
            }),
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::exit_with((|| {
        let outcome = generate::run(&args.common.context(), &args.source.to_source()?)?;
        outcome.print();
        Ok(())
    })())
}
