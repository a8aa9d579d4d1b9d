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
pub mod query_engine;

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
    /// Prints the explanation to standard output (a closed pipe ends the
    /// process quietly: [`crate::cli::say`]).
    pub fn print(&self) {
        for line in &self.lines {
            crate::cli::say(line);
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
        .filter(|n| entry.bytes > 0 && !entry.holds_nothing && n.dataset == entry.dataset)
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

/// The phases of the course, in the order they run. Each has one name at
/// the edges: its binary (`03_compressed`), its module here
/// ([`compressed`]), its chapter (`docs/src/03-compressed.md`) and, where it
/// has tests of its own, their files (`tests/phase03_*.rs`; tests of several
/// phases say which: `tests/phase01_to_03.rs`); the core modules it calls are named for what they
/// are ([`crate::format::gorilla`], [`crate::codec::xor`]). Phases 03b and 03c
/// run inside phase 03, phase 07 is its own crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Generate,
    Ndjson,
    Columnar,
    Compressed,
    CustomBinary,
    Downsampling,
    QueryEngine,
}

/// What the orchestrator passes to the phases that take options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where phase 00 takes its dataset from.
    pub source: generate::DatasetSource,
    /// The reference compressors phase 03 measures.
    pub references: crate::reference::References,
    /// Phase 04's block layout.
    pub blocks: crate::format::metrics::BlockOptions,
}

impl Phase {
    /// Every phase, in the order the course runs them.
    pub const ALL: [Phase; 7] = [
        Phase::Generate,
        Phase::Ndjson,
        Phase::Columnar,
        Phase::Compressed,
        Phase::CustomBinary,
        Phase::Downsampling,
        Phase::QueryEngine,
    ];

    /// Its number, `00` to `06`.
    pub fn number(self) -> &'static str {
        match self {
            Phase::Generate => "00",
            Phase::Ndjson => "01",
            Phase::Columnar => "02",
            Phase::Compressed => "03",
            Phase::CustomBinary => "04",
            Phase::Downsampling => "05",
            Phase::QueryEngine => "06",
        }
    }

    /// Its name, as its module and (after the number) its binary spell it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Generate => "generate",
            Phase::Ndjson => "ndjson",
            Phase::Columnar => "columnar",
            Phase::Compressed => "compressed",
            Phase::CustomBinary => "custom_binary",
            Phase::Downsampling => "downsampling",
            Phase::QueryEngine => "query_engine",
        }
    }

    /// Its binary: `03_compressed`.
    pub fn binary(self) -> String {
        format!("{}_{}", self.number(), self.name())
    }

    /// Its chapter, relative to the repository: `docs/src/03-compressed.md`.
    pub fn chapter(self) -> String {
        format!(
            "docs/src/{}-{}.md",
            self.number(),
            self.name().replace('_', "-")
        )
    }

    /// Runs the phase and returns its explanation.
    pub fn run(self, ctx: &Context, options: &RunOptions) -> Result<Vec<String>> {
        Ok(match self {
            Phase::Generate => generate::run(ctx, &options.source)?.lines,
            Phase::Ndjson => ndjson::run(ctx)?.lines,
            Phase::Columnar => columnar::run(ctx)?.lines,
            Phase::Compressed => compressed::run(ctx, options.references)?.lines,
            Phase::CustomBinary => custom_binary::run(ctx, options.blocks)?.lines,
            Phase::Downsampling => downsampling::run(ctx)?.lines,
            Phase::QueryEngine => query_engine::run(ctx)?,
        })
    }
}

/// Runs every phase of [`Phase::ALL`] in order, then gathers and writes the
/// report. Returns each phase's explanation lines and the report.
pub fn run_all(ctx: &Context, options: &RunOptions) -> Result<(Vec<Vec<String>>, Report)> {
    let lines = Phase::ALL
        .iter()
        .map(|p| p.run(ctx, options))
        .collect::<Result<Vec<_>>>()?;
    let report = ctx.report()?;
    report.write(&ctx.output_dir)?;
    Ok((lines, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase's binary, module and chapter exist under the one name the
    /// list gives it.
    #[test]
    fn every_phase_has_its_binary_module_and_chapter() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        for p in Phase::ALL {
            let bin = format!("phases/{}.rs", p.binary());
            assert!(root.join(&bin).exists(), "{bin}");
            assert!(
                manifest.contains(&format!("name = \"{}\"", p.binary())),
                "{p:?}"
            );
            let module = format!("lib/course/{}.rs", p.name());
            assert!(root.join(&module).exists(), "{module}");
            assert!(root.join(p.chapter()).exists(), "{}", p.chapter());
        }
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
