//! Command-line pieces shared by the phase binaries and the orchestrator:
//! the options every phase takes, where the dataset comes from, and how a
//! failure is reported (one `error:` line, exit code 1, no panic).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::course::generate::DatasetSource;
use crate::course::{Context, DEFAULT_OUTPUT_DIR};
use crate::generate::{GenerateConfig, Profile};
use crate::import::{DuplicatePolicy, ImportFormat, ImportOptions, TimestampUnit};
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
    /// Samples of one series at one timestamp with different values: stop
    /// with an error naming both lines, or keep the first or the last
    /// (identical duplicates are always dropped, keeping one).
    #[arg(long, value_enum, default_value = "error", requires = "import")]
    pub duplicates: DuplicatePolicy,
    /// Time given to samples written without one (a live scrape of an
    /// exporter's /metrics page): `now`, a UTC date-time such as
    /// 2024-01-01T00:00:00Z, or Unix seconds. Without it such a sample is an error.
    #[arg(long, value_name = "TIME", requires = "import")]
    pub default_timestamp: Option<String>,
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
                    duplicates: self.duplicates,
                    default_timestamp: self
                        .default_timestamp
                        .as_deref()
                        .map(parse_default_timestamp)
                        .transpose()?,
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

/// `--default-timestamp`: `now`, a date-time, or Unix seconds (with decimals).
pub fn parse_default_timestamp(text: &str) -> crate::Result<i64> {
    let bad =
        |why: String| crate::Error::InvalidArgument(format!("--default-timestamp {text:?}: {why}"));
    if text.trim().eq_ignore_ascii_case("now") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| bad(e.to_string()))?;
        return i64::try_from(now.as_nanos()).map_err(|e| bad(e.to_string()));
    }
    let t = text.trim();
    if t.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'))
    {
        // Unix seconds, converted exactly (no float in between).
        return crate::import::decimal_to_nanos(t, crate::time::NANOS_PER_SECOND)
            .map_err(|why| bad(format!("{t:?} {why}")));
    }
    crate::time::parse_timestamp(text).map_err(bad)
}

/// Writes `text` and a newline to standard output, for the binaries'
/// front ends. A closed pipe (`| head`) ends the process with exit code 0,
/// as a Unix filter ends (`println!` panics there); any other failure to
/// write (a full disk under `>`) ends it with `error: …` and exit code 1.
pub fn say(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing standard output: {e}");
            std::process::exit(1)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timestamps_are_exact() {
        assert_eq!(
            parse_default_timestamp("1704067200.123456789").unwrap(),
            1_704_067_200_123_456_789
        );
        assert_eq!(
            parse_default_timestamp("9219999999").unwrap(),
            9_219_999_999_000_000_000
        );
        assert_eq!(
            parse_default_timestamp("2024-01-01T01:00:00+01:00").unwrap(),
            1_704_067_200_000_000_000
        );
        assert_eq!(parse_default_timestamp("-1").unwrap(), -1_000_000_000);
        for bad in ["1e30", "nan", "9223372037", "tomorrow", "1.0000000001"] {
            assert!(parse_default_timestamp(bad).is_err(), "{bad}");
        }
        let now = parse_default_timestamp("now").unwrap();
        assert!(now > 1_704_067_200_000_000_000);
    }
}
