//! Phase 00: make (or import) the canonical dataset and write it.

use std::path::PathBuf;

use crate::course::{record, summary_line, thousands, timed, verify, Context, PhaseOutcome};
use crate::error::Result;
use crate::format::dataset;
use crate::generate::{generate, GenerateConfig};
use crate::import::{import_file_summary, ImportOptions, ImportSummary};
use crate::model::Dataset;
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
    Ok(build_summary(source)?.0)
}

/// Builds the dataset from `source`, with what an import dropped or defaulted.
fn build_summary(source: &DatasetSource) -> Result<(Dataset, ImportSummary)> {
    match source {
        DatasetSource::Generate(config) => Ok((generate(config)?, ImportSummary::default())),
        DatasetSource::Import(path, options) => import_file_summary(path, options),
    }
}

/// Phase 00: builds the dataset, writes `output/dataset.ssd`, reads it back.
pub fn run(ctx: &Context, source: &DatasetSource) -> Result<PhaseOutcome> {
    let ((data, summary), build_ms) = timed(|| build_summary(source))?;
    let path = ctx.dataset_path();
    let (bytes, write_ms) = timed(|| dataset::write(&data, &path))?;
    let (back, read_ms) = timed(|| dataset::read(&path))?;
    verify(&path, &data, &back)?;
    if back.metadata != data.metadata {
        return Err(crate::Error::Verify {
            artifact: path.display().to_string(),
            reason: "metric metadata (types, units, help) read back differently".into(),
        });
    }
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
    let mut dropped = Vec::new();
    if summary.identical_duplicates > 0 {
        dropped.push(format!(
            "dropped {} identical duplicate samples",
            thousands(summary.identical_duplicates)
        ));
    }
    if summary.conflicting_duplicates > 0 {
        dropped.push(format!(
            "dropped {} conflicting samples at an instant already taken (--duplicates)",
            thousands(summary.conflicting_duplicates)
        ));
    }
    if summary.defaulted_timestamps > 0 {
        dropped.push(format!(
            "gave {} samples without a timestamp the --default-timestamp",
            thousands(summary.defaulted_timestamps)
        ));
    }
    if !dropped.is_empty() {
        lines.push(format!("  {}", dropped.join("; ")));
    }
    if !data.metadata.is_empty() {
        let counters = data
            .metadata
            .values()
            .filter(|m| m.kind == Some(crate::model::MetricKind::Counter))
            .count();
        lines.push(format!(
            "  metadata for {} metric names kept ({counters} declared counters roll up as counters in phase 05)",
            data.metadata.len()
        ));
    }
    lines.push(
        "  Stored raw: each sample is an 8-byte timestamp and an 8-byte value, 16 bytes, plus each series' name and labels once."
            .into(),
    );
    lines.push(summary_line(&entry, None));
    Ok(PhaseOutcome { entry, lines })
}
