//! Phase 00: make (or import) the canonical dataset and write it.

use std::path::PathBuf;

use crate::error::Result;
use crate::format::dataset;
use crate::generate::{generate, GenerateConfig};
use crate::import::{import_file, ImportOptions};
use crate::model::Dataset;
use crate::phases::{record, summary_line, thousands, timed, verify, Context, PhaseOutcome};
use crate::report::ReportEntry;
use crate::time::{format_duration, format_timestamp};

/// Where the dataset comes from.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    Generate(GenerateConfig),
    Import(PathBuf, ImportOptions),
}

impl Default for DatasetSource {
    fn default() -> Self {
        DatasetSource::Generate(GenerateConfig::default())
    }
}

/// Builds the dataset from `source`.
pub fn build(source: &DatasetSource) -> Result<Dataset> {
    match source {
        DatasetSource::Generate(config) => generate(config),
        DatasetSource::Import(path, options) => import_file(path, options),
    }
}

/// Phase 00: builds the dataset, writes `output/dataset.ssd`, reads it back.
pub fn run(ctx: &Context, source: &DatasetSource) -> Result<PhaseOutcome> {
    let (data, build_ms) = timed(|| build(source))?;
    let path = ctx.dataset_path();
    let (bytes, write_ms) = timed(|| dataset::write(&data, &path))?;
    let (back, read_ms) = timed(|| dataset::read(&path))?;
    verify(&path, &data, &back)?;
    let raw = crate::files::read_input(&path, "")?;
    let fp = dataset::fingerprint(&raw);

    let samples = data.sample_count();
    let entry = record(
        ctx,
        ReportEntry::new(
            "00",
            "canonical raw (i64 + f64)",
            &path,
            bytes,
            samples,
            &fp,
        ),
        write_ms,
        read_ms,
    )?;

    let mut lines = vec![format!("Phase 00: the dataset ({})", data.source)];
    let verb = match source {
        DatasetSource::Generate(_) => "generated",
        DatasetSource::Import(..) => "imported",
    };
    lines.push(format!(
        "  {verb} {} samples in {} series in {build_ms:.1} ms",
        thousands(samples),
        thousands(data.series.len() as u64)
    ));
    if let Some((lo, hi)) = data.time_range() {
        lines.push(format!(
            "  time range {} .. {} ({})",
            format_timestamp(lo),
            format_timestamp(hi),
            format_duration(hi.saturating_sub(lo))
        ));
    }
    let metrics: std::collections::BTreeSet<&str> =
        data.series.iter().map(|s| s.key.metric.as_str()).collect();
    let label_names: std::collections::BTreeSet<&str> = data
        .series
        .iter()
        .flat_map(|s| s.key.labels.keys().map(String::as_str))
        .collect();
    lines.push(format!(
        "  {} metric names, label names: {}",
        metrics.len(),
        if label_names.is_empty() {
            "(none)".to_string()
        } else {
            label_names.into_iter().collect::<Vec<_>>().join(", ")
        }
    ));
    lines.push(
        "  Stored raw: each sample is an 8-byte timestamp and an 8-byte value, 16 bytes, plus each series' name and labels once."
            .into(),
    );
    lines.push(summary_line(&entry, None));
    Ok(PhaseOutcome { entry, lines })
}
