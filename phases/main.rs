//! The course end to end: runs every phase in order and prints the
//! comparative report.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs, SourceArgs};

/// squeezed-signals: run the whole course (phases 00 to 06) and print the
/// comparative report.
///
/// Generates the dataset (or imports one with --import), runs each phase,
/// each of which writes its artifact under the output directory, reads it
/// back and verifies it, then writes output/report.md, report.json and
/// report.svg.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  squeezed-signals\n  squeezed-signals --points 10000000\n  squeezed-signals --import ../shared/data/beringei-5000.csv\n  squeezed-signals --report-only"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    source: SourceArgs,
    /// Do not run any phase: gather the entries already in the output directory into the report.
    #[arg(long)]
    report_only: bool,
    /// Reference compressors to run in phase 03 (auto skips zstd -19 above 64 MiB of columnar data and 1 MiB of text).
    #[arg(long, value_enum, default_value = "auto")]
    references: squeeze::reference::References,
    /// Print only the report, not each phase's explanation.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        let start = Instant::now();
        let ctx = args.common.context();
        let report = if args.report_only {
            let report = ctx.report()?;
            report.write(&ctx.output_dir)?;
            report
        } else {
            let (outcomes, report) = squeeze::course::run_all(
                &ctx,
                &squeeze::course::RunOptions {
                    source: args.source.to_source()?,
                    references: args.references,
                    blocks: squeeze::format::metrics::BlockOptions::default(),
                },
            )?;
            if !args.quiet {
                for lines in &outcomes {
                    for line in lines {
                        squeeze::cli::say(line);
                    }
                    squeeze::cli::say("");
                }
            }
            report
        };
        squeeze::cli::say(format!("Comparative report: {}", report.source));
        squeeze::cli::say(report.table());
        if !report.stale.is_empty() {
            squeeze::cli::say(format!(
                "(left out entries of phases {} measured on another dataset: run them again)",
                report.stale.join(", ")
            ));
        }
        squeeze::cli::say(format!(
            "Wrote {}/report.md, report.json and report.svg in {:.2} s.",
            ctx.output_dir.display(),
            start.elapsed().as_secs_f64()
        ));
        if !args.quiet && !args.report_only {
            squeeze::cli::say(
                "Next, phase 07 (the tiered engine, its own crate): \
                 cargo run --release --bin 07_gpu_tiered -- demo 1000000",
            );
        }
        Ok(())
    })())
}
