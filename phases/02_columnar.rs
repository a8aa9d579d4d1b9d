//! Phase 02: write the dataset as columnar MessagePack and read it back.

use std::process::ExitCode;

use clap::Parser;
use squeeze::cli::{exit_with, CommonArgs};

/// Phase 02: write the dataset as columnar MessagePack and read it back.
///
/// Metadata is stored once per series and samples as two columns, so the next phase can compress each column with a codec made for it. Reads the dataset written by 00_generate and verifies the
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
        squeeze::course::columnar::run(&args.common.context())?.print();
        Ok(())
    })())
}
