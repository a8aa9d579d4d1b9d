//! Shared command-line pieces of the phase binaries (included with `#[path]`).

use std::path::PathBuf;
use std::process::ExitCode;

/// Options every phase binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Directory the phases read from and write to.
    #[arg(long, short = 'o', default_value = squeeze::phases::DEFAULT_OUTPUT_DIR, value_name = "DIR")]
    pub output_dir: PathBuf,
}

impl CommonArgs {
    pub fn context(&self) -> squeeze::phases::Context {
        squeeze::phases::Context::new(&self.output_dir)
    }
}

/// Runs a phase body, printing an error and exiting non-zero on failure.
pub fn exit_with(result: squeeze::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
