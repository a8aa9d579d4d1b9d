//! Each phase of the course as one library call.
//!
//! A phase reads the canonical dataset (written by phase 00), writes its
//! artifact under the output directory, reads the artifact back, proves it
//! equal to the input bit for bit, records a [`ReportEntry`] and returns a few
//! lines that explain what it did and why the result is smaller. The phase
//! binaries print those lines; the orchestrator runs every phase in turn.

pub mod columnar;
pub mod compressed;
pub mod custom_binary;
pub mod downsampling;
pub mod generate;
pub mod ndjson;
pub mod query;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::format::dataset;
use crate::model::Dataset;
use crate::report::{Report, ReportEntry};

/// Default output directory, relative to the working directory.
pub const DEFAULT_OUTPUT_DIR: &str = "output";

/// What a phase returns: its report entry and its explanation.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub entry: ReportEntry,
    pub lines: Vec<String>,
}

impl PhaseOutcome {
    /// Prints the explanation to standard output.
    pub fn print(&self) {
        for line in &self.lines {
            println!("{line}");
        }
    }
}

/// Where phases read and write.
#[derive(Debug, Clone)]
pub struct Context {
    pub output_dir: PathBuf,
}

impl Context {
    pub fn new(output_dir: impl Into<PathBuf>) -> Self {
        Context {
            output_dir: output_dir.into(),
        }
    }

    /// Path of a file in the output directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.output_dir.join(name)
    }

    pub fn dataset_path(&self) -> PathBuf {
        self.path(dataset::FILE_NAME)
    }

    /// Loads the canonical dataset and its fingerprint.
    pub fn load_dataset(&self) -> Result<(Dataset, String)> {
        let path = self.dataset_path();
        let bytes = crate::files::read_input(
            &path,
            "run `cargo run --release --bin 00_generate` first to create the dataset",
        )?;
        let d = dataset::decode(&bytes).map_err(|e| e.within(path.display()))?;
        Ok((d, dataset::fingerprint(&bytes)))
    }

    /// A progress bar for `len` samples, shown only for long work on a terminal.
    pub fn progress(&self, len: u64, label: &str) -> ProgressBar {
        if len < 2_000_000 {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{label:>10} [{{bar:40}}] {{human_pos}}/{{human_len}} samples {{per_sec}} eta {{eta}}"
        )) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    /// Gathers every entry measured on the current dataset into a report.
    pub fn report(&self) -> Result<Report> {
        let (d, fp) = self.load_dataset()?;
        Report::gather(&self.output_dir, &d.source, &fp)
    }
}

/// Runs `f`, returning its result and the elapsed milliseconds.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed().as_secs_f64() * 1e3))
}

/// Fails with [`Error::Verify`] if the read-back differs from the input.
pub fn verify(artifact: &Path, original: &Dataset, read_back: &Dataset) -> Result<()> {
    match original.bit_diff(read_back) {
        None => Ok(()),
        Some(reason) => Err(Error::Verify {
            artifact: artifact.display().to_string(),
            reason,
        }),
    }
}

/// Fills in an artifact's timings, marks it verified (its read-back was
/// compared with what was written) and records it under `report/`.
pub(crate) fn record(
    ctx: &Context,
    mut entry: ReportEntry,
    write_ms: f64,
    read_ms: f64,
) -> Result<ReportEntry> {
    entry.encode_ms = write_ms;
    entry.decode_ms = read_ms;
    entry.verified = true;
    entry.save(&ctx.output_dir)?;
    Ok(entry)
}

/// `12345678` -> `12,345,678`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line every phase ends its explanation with.
pub(crate) fn summary_line(entry: &ReportEntry, ndjson: Option<&ReportEntry>) -> String {
    let ratio = ndjson
        .filter(|n| entry.bytes > 0 && n.dataset == entry.dataset)
        .map(|n| {
            format!(
                ", {:.1}x smaller than NDJSON",
                n.bytes as f64 / entry.bytes as f64
            )
        })
        .unwrap_or_default();
    format!(
        "  {} -> {} ({:.3} bytes/sample{ratio}); wrote in {:.1} ms, read back in {:.1} ms, verified bit-exact: {}",
        entry.artifact,
        crate::report::human_bytes(entry.bytes),
        entry.bytes_per_sample,
        entry.encode_ms,
        entry.decode_ms,
        if entry.verified { "yes" } else { "no" }
    )
}

/// Runs phases 00 to 06 in order, then gathers and writes the report.
/// Returns each phase's explanation lines and the report.
pub fn run_all(
    ctx: &Context,
    source: &generate::DatasetSource,
    references: crate::reference::References,
) -> Result<(Vec<Vec<String>>, Report)> {
    let outcomes = [
        generate::run(ctx, source)?,
        ndjson::run(ctx)?,
        columnar::run(ctx)?,
        compressed::run(ctx, references)?,
        custom_binary::run(ctx, crate::format::metrics::BlockOptions::default())?,
        downsampling::run(ctx)?,
    ];
    let mut lines: Vec<Vec<String>> = outcomes.into_iter().map(|o| o.lines).collect();
    lines.push(query::run(ctx)?);
    let report = ctx.report()?;
    report.write(&ctx.output_dir)?;
    Ok((lines, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
