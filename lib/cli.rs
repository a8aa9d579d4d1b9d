//! Command-line pieces shared by the phase binaries and the orchestrator:
//! the options every phase takes, where the dataset comes from, and how a
//! failure is reported (one `error:` line, exit code 1, no panic).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::generate::{GenerateConfig, Profile};
use crate::import::{ImportFormat, ImportOptions, TimestampUnit};
use crate::phases::generate::DatasetSource;
use crate::phases::{Context, DEFAULT_OUTPUT_DIR};
use crate::time::parse_duration;

/// Options every phase binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Directory the phases read from and write to.
    #[arg(long, short = 'o', global = true, default_value = DEFAULT_OUTPUT_DIR, value_name = "DIR")]
    pub output_dir: PathBuf,
}

impl CommonArgs {
    pub fn context(&self) -> Context {
        Context::new(&self.output_dir)
    }
}

/// Where the dataset comes from: generated (the default) or imported.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Import real metrics from FILE instead of generating them.
    #[arg(long, value_name = "FILE")]
    pub import: Option<PathBuf>,
    /// Format of the imported file (default: from its extension, else sniffed).
    #[arg(long, value_enum, requires = "import")]
    pub format: Option<ImportFormat>,
    /// Unit of integer timestamps in the imported file.
    #[arg(long, value_enum, default_value = "auto", requires = "import")]
    pub timestamp_unit: TimestampUnit,
    /// Kind of generated data.
    #[arg(
        long,
        value_enum,
        default_value = "observability",
        conflicts_with = "import"
    )]
    pub profile: Profile,
    /// Number of series to generate (market profile: number of symbols, at most 16).
    #[arg(long, default_value_t = 50, conflicts_with = "import")]
    pub series: usize,
    /// Total number of samples to generate, spread evenly over the series.
    #[arg(long, default_value_t = 50_000, conflicts_with = "import")]
    pub points: u64,
    /// Scrape interval (e.g. 15s, 1m, 500ms).
    #[arg(long, default_value = "15s", conflicts_with = "import")]
    pub interval: String,
    /// Largest scrape jitter (e.g. 5ms; 0 for perfectly regular scrapes).
    #[arg(long, default_value = "5ms", conflicts_with = "import")]
    pub jitter: String,
    /// Random seed: the same seed always gives the same dataset.
    #[arg(long, default_value_t = 42, conflicts_with = "import")]
    pub seed: u64,
}

impl SourceArgs {
    pub fn to_source(&self) -> crate::Result<DatasetSource> {
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

/// Turns a phase's result into an exit code, printing `error: ...` on failure.
pub fn exit_with(result: crate::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
