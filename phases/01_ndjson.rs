//! Phase 01: write the dataset as NDJSON, one JSON object per sample, and read it back.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};

/// Phase 01: write the dataset as NDJSON, one JSON object per sample, and read it back.
///
/// NDJSON is the baseline every later phase is measured against: readable by anything, and large, because every line repeats every name. Reads the dataset written by 00_generate and verifies the
/// read-back bit for bit.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    exit_with((|| {
        squeeze::course::ndjson::run(&args.common.context())?.print();
        Ok(())
    })())
}
