//! Phase 03: compress the columns (delta-of-delta timestamps, Gorilla XOR values) and read them back.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};

/// Phase 03: compress the columns (delta-of-delta timestamps, Gorilla XOR values) and read them back.
///
/// Prints an ablation table showing what each technique buys. Then 03b:
/// the adaptive file (shared columns, per-block choice of constant,
/// decimal or Gorilla values), side by side with Gorilla, and reference
/// compressors (zstd -3/-19, pco, tsz) run on the same samples. Then 03c:
/// the same file with entropy-coded value blocks (bins + tANS, delta
/// orders, dictionaries). Reads the dataset written by 00_generate and verifies the
/// read-back bit for bit.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Reference compressors to run on the same samples (auto skips zstd -19 above 64 MiB of columnar data and 1 MiB of text).
    #[arg(long, value_enum, default_value = "auto")]
    references: squeeze::reference::References,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        squeeze::course::compressed::run(&args.common.context(), args.references)?.print();
        Ok(())
    })())
}
