//! Phase 04: the self-contained binary format with an index, and tools to look inside it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use squeeze::cli::{exit_with, CommonArgs};
use squeeze::format::metrics::{self, BlockOptions, MetricsFile};
use squeeze::matcher::SeriesMatcher;
use squeeze::time::parse_duration;

/// Phase 04: write the dataset as one self-contained, indexed binary file.
///
/// The file starts with METRICS! and a version, holds the samples in
/// checksummed blocks (the pieces of one aligned time window; short series
/// share a block), timestamp columns shared by the series scraped together
/// (large ones in parts), index pages coded column by column (each piece's
/// time range, count, min/max and place), compressed name pages, a small
/// root and a fixed footer. With no
/// subcommand it writes output/04_custom.metrics, reads it back, verifies it
/// and measures a one-series query over 1% of the time range.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  04_custom_binary\n  04_custom_binary inspect output/04_custom.metrics --blocks 2\n  04_custom_binary series '{job=\"api\"}'"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Pieces never span two aligned windows of this length (default 6h).
    #[arg(long)]
    block_window: Option<String>,
    /// Nor hold more than this many samples (default 256).
    #[arg(long)]
    block_samples: Option<usize>,
    /// Split pieces, and fill blocks, to about this many bytes (default 512).
    #[arg(long)]
    block_bytes: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the layout of a .metrics file: header, blocks, shared columns, index and name pages, root, footer (versions 1, 2: block lists, directory).
    Inspect {
        /// The file (default: the phase 04 artifact in the output directory).
        file: Option<PathBuf>,
        /// Show at most this many blocks of each index page (and shared columns).
        #[arg(long, default_value_t = 3)]
        blocks: usize,
    },
    /// List the series of a .metrics file that match a selector, e.g. 'cpu_usage_percent{region="eu-west-1"}'.
    Series {
        /// The selector (default: every series).
        matcher: Option<String>,
        /// The file (default: the phase 04 artifact in the output directory).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        let ctx = args.common.context();
        let default_file = || ctx.path(metrics::FILE_NAME);
        match &args.command {
            None => {
                let d = BlockOptions::default();
                let options = BlockOptions {
                    window_ns: match &args.block_window {
                        Some(w) => parse_duration(w)?,
                        None => d.window_ns,
                    },
                    max_samples: args.block_samples.unwrap_or(d.max_samples),
                    max_bytes: args.block_bytes.unwrap_or(d.max_bytes),
                };
                squeeze::course::custom_binary::run(&ctx, options)?.print();
            }
            Some(Command::Inspect { file, blocks }) => {
                let path = file.clone().unwrap_or_else(default_file);
                let f = MetricsFile::open(&path)?;
                let inspection = metrics::inspect(&f, *blocks)?;
                squeeze::cli::say(inspection.text.trim_end_matches('\n'));
                if let Some(first) = inspection.failures.first() {
                    return Err(squeeze::Error::Verify {
                        artifact: path.display().to_string(),
                        reason: format!(
                            "{} part(s) of the file (blocks, shared columns) failed their check, the first: {first}",
                            inspection.failures.len()
                        ),
                    });
                }
            }
            Some(Command::Series { matcher, file }) => {
                let path = file.clone().unwrap_or_else(default_file);
                let f = MetricsFile::open(&path)?;
                let m = match matcher {
                    Some(text) => SeriesMatcher::parse(text)?,
                    None => SeriesMatcher::all(),
                };
                let chosen = f.select(&m);
                // Version 3 cuts series into pieces that share blocks.
                let unit = if f.version() >= 3 { "pieces" } else { "blocks" };
                for &i in &chosen {
                    let s = &f.series()[i];
                    squeeze::cli::say(format!(
                        "{}  ({} samples, {} {unit})",
                        s.key, s.samples, s.blocks
                    ));
                }
                squeeze::cli::say(format!(
                    "{} of {} series match; opening the file (every name and index page) read {} bytes.",
                    chosen.len(),
                    f.series().len(),
                    f.open_bytes()
                ));
            }
        }
        Ok(())
    })())
}
