//! Phase 03: compress the columns (delta-of-delta timestamps, Gorilla XOR values) and read them back.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};

/// Phase 03: compress the columns (delta-of-delta timestamps, Gorilla XOR values) and read them back.
///
/// Prints an ablation table showing what each technique buys. Reads the dataset written by 00_generate and verifies the
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
        squeeze::phases::compressed::run(&args.common.context())?.print();
        Ok(())
    })())
}
