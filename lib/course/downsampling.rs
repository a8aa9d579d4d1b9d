//! Phase 05: downsampled rollups for long-term retention.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::course::{record, summary_line, thousands, timed, verify, Context, PhaseOutcome};
use crate::downsample::{
    error_share, measure_loss_of, rollup, rollup_key, Loss, Resolution, Rollup, Skip,
    COUNTER_AGGREGATES, GAUGE_AGGREGATES, GAUGE_NANS, RESOLUTIONS,
};
use crate::error::{Error, Result};
use crate::format::metrics::{self, BlockOptions, MetricsFile};
use crate::report::{human_bytes, ReportEntry};

pub use crate::downsample::rollup_block_options;

/// File name of the rollups at one resolution.
pub fn file_name(resolution: &str) -> String {
    format!("05_rollup_{resolution}.metrics")
}

/// Bytes read to answer "hourly average of one series over its whole
/// range" from the raw phase 04 file and from the 1 h rollups.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRangeProbe {
    pub series: String,
    pub raw_bytes: u64,
    pub rollup_bytes: u64,
    pub hours: usize,
}

fn long_range_probe(
    data: &crate::model::Dataset,
    raw_path: &std::path::Path,
    hourly_path: &std::path::Path,
) -> Result<Option<LongRangeProbe>> {
    let raw = MetricsFile::open(raw_path)?;
    let Some(i) = (0..raw.series().len())
        .filter(|&i| !data.is_counter(&raw.series()[i].key.metric))
        .max_by_key(|&i| raw.series()[i].data_len)
    else {
        return Ok(None);
    };
    let key = raw.series()[i].key.clone();
    let (_, stats) = raw.read_range(i, i64::MIN, i64::MAX)?;
    let raw_bytes = raw.open_bytes() + stats.bytes_read;

    let hourly = MetricsFile::open(hourly_path)?;
    let mut rollup_bytes = hourly.open_bytes();
    let mut hours = 0;
    for aggregate in ["sum", "count"] {
        let name = crate::model::SeriesKey::new(
            format!("{}_{aggregate}_1h", key.metric),
            key.labels.clone(),
        );
        // A series whose step is 30 minutes or more has no 1h rollups.
        let Some(j) = hourly.find(&name)? else {
            return Ok(None);
        };
        let (s, stats) = hourly.read_range(j, i64::MIN, i64::MAX)?;
        rollup_bytes += stats.bytes_read;
        hours = s.len();
    }
    Ok(Some(LongRangeProbe {
        series: key.to_string(),
        raw_bytes,
        rollup_bytes,
        hours,
    }))
}

/// What a retention policy costs over a year: raw samples for `keep_raw`,
/// then one resolution's rollups for the rest of the year; series that
/// resolution skips stay raw all year. The bytes of a file that grow with
/// the time it covers (blocks, timestamp columns, index pages) scale with
/// the days kept; those that do not (names, header, footer:
/// [`MetricsFile::fixed_bytes`]) are counted once per file kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    pub resolution: &'static str,
    /// Growing bytes a day: raw samples of every series, raw samples of
    /// the series the resolution skips (a file of them alone), rollups.
    pub raw_per_day: f64,
    pub skipped_per_day: f64,
    pub rollup_per_day: f64,
    /// Bytes that do not grow: the raw file's, the rollup file's (0 when
    /// it holds no series).
    pub raw_fixed: f64,
    pub rollup_fixed: f64,
}

impl Retention {
    /// Bytes over 365 days, keeping raw samples for `keep_raw_days`.
    pub fn year_bytes(&self, keep_raw_days: f64) -> f64 {
        let keep = keep_raw_days.clamp(0.0, 365.0);
        let rolled = 365.0 - keep;
        let rollup_fixed = if rolled > 0.0 { self.rollup_fixed } else { 0.0 };
        self.raw_fixed
            + self.raw_per_day * keep
            + (self.rollup_per_day + self.skipped_per_day) * rolled
            + rollup_fixed
    }

    /// Bytes over 365 days of raw samples only.
    pub fn raw_year_bytes(&self) -> f64 {
        self.raw_fixed + self.raw_per_day * 365.0
    }
}

/// Bytes of a `.metrics` file that grow with time, and those that do not
/// ([`MetricsFile::fixed_bytes`]).
fn growing_and_fixed(file: &MetricsFile) -> (u64, u64) {
    let fixed = file.fixed_bytes();
    (file.len().saturating_sub(fixed), fixed)
}

/// [`growing_and_fixed`] of a `.metrics` file (phase 04's options) of the
/// raw series a rollup leaves raw (`skips[i]` set, and not to a finer
/// resolution that keeps the series); `(0, 0)` when none.
fn skipped_file(raw: &crate::model::Dataset, skips: &[Option<Skip>]) -> Result<(u64, u64)> {
    let skipped: Vec<crate::model::Series> = raw
        .series
        .iter()
        .zip(skips)
        .filter(|(_, k)| k.is_some_and(|k| !matches!(k, Skip::NotSmallerThanFiner(_))))
        .map(|(s, _)| s.clone())
        .collect();
    if skipped.is_empty() {
        return Ok((0, 0));
    }
    let subset = crate::model::Dataset::new(raw.source.clone(), skipped);
    let bytes = metrics::encode(&subset, BlockOptions::default())?.0;
    Ok(growing_and_fixed(&MetricsFile::from_bytes(
        bytes,
        "skipped series",
    )?))
}

/// The keys every rollup series of the raw series `key` at `res` may
/// have (gauge and counter aggregates, and `nans`).
fn aggregate_keys<'a>(
    key: &'a crate::model::SeriesKey,
    res: &'a Resolution,
) -> impl Iterator<Item = crate::model::SeriesKey> + 'a {
    GAUGE_AGGREGATES
        .iter()
        .chain(&COUNTER_AGGREGATES)
        .chain(std::iter::once(&GAUGE_NANS))
        .map(move |a| rollup_key(key, a, res))
}

/// The series of rollup `f` whose keys are in `names`.
fn rollups_named(
    f: &Rollup,
    names: &std::collections::HashSet<crate::model::SeriesKey>,
) -> Vec<crate::model::Series> {
    f.data
        .series
        .iter()
        .filter(|s| names.contains(&s.key))
        .cloned()
        .collect()
}

/// [`growing_and_fixed`], summed, of the rollups at finer resolutions
/// (`finer`, finest first) of the series a rollup skips because those are
/// smaller ([`Skip::NotSmallerThanFiner`]): what a store keeps for them.
fn finer_held_files(
    raw: &crate::model::Dataset,
    skips: &[Option<Skip>],
    finer: &[(Rollup, &Resolution)],
) -> Result<(u64, u64)> {
    let (mut growing, mut fixed) = (0, 0);
    for (f, res) in finer {
        let names: std::collections::HashSet<crate::model::SeriesKey> = raw
            .series
            .iter()
            .zip(skips)
            .filter(|(_, k)| *k == &Some(Skip::NotSmallerThanFiner(res.name)))
            .flat_map(|(s, _)| aggregate_keys(&s.key, res))
            .collect();
        let series = rollups_named(f, &names);
        if series.is_empty() {
            continue;
        }
        let subset = crate::model::Dataset::new(raw.source.clone(), series);
        let bytes = metrics::encode(&subset, rollup_block_options(res))?.0;
        let (g, x) = growing_and_fixed(&MetricsFile::from_bytes(bytes, "finer rollups")?);
        growing += g;
        fixed += x;
    }
    Ok((growing, fixed))
}

/// Bytes of a `.metrics` file (phase 04's options) holding only the raw
/// series a rollup rolled up (`rolled[i]`): what their rollups stand in for.
fn raw_bytes_of_rolled(raw: &crate::model::Dataset, rolled: &[bool]) -> Result<u64> {
    let kept: Vec<crate::model::Series> = raw
        .series
        .iter()
        .zip(rolled)
        .filter(|(_, &r)| r)
        .map(|(s, _)| s.clone())
        .collect();
    let subset = crate::model::Dataset::new(raw.source.clone(), kept);
    Ok(metrics::encode(&subset, BlockOptions::default())?.0.len() as u64)
}

/// Bytes of what the next finer level holds for the series `rolled` rolls
/// up (`rolled[i]`: raw series `i`): for each, its rollups at the nearest
/// finer resolution of `finer` (finest first) that holds it, else its raw
/// samples. Each part is a `.metrics` file as its phase writes it (phase
/// 04's blocks for the samples, the finer rollups' own blocks), one file's
/// fixed bytes (header, root, footer) counted once. `None` when `rolled`
/// holds no series.
///
/// This is what a rollup file must be smaller than, series for series,
/// as the size rule weighs it ([`crate::downsample::rollup_series`]): a
/// finer resolution skips the series whose step is too coarse for it, or
/// whose rollups there would not shrink them, so a coarser file can hold
/// series the finer one leaves raw, and be larger than the finer file
/// while smaller than what it stands for.
fn next_finer_bytes(
    raw: &crate::model::Dataset,
    rolled: &[bool],
    finer: &[(Rollup, &Resolution)],
) -> Result<Option<u64>> {
    if !rolled.contains(&true) {
        return Ok(None);
    }
    // For each raw series rolled up here, the nearest finer level holding it.
    let held_by = |i: usize| {
        finer
            .iter()
            .rposition(|(f, _)| f.rolled.get(i) == Some(&true))
    };
    let subset =
        |series: Vec<crate::model::Series>| crate::model::Dataset::new(raw.source.clone(), series);
    let mut samples = Vec::new();
    let mut by_level: Vec<std::collections::HashSet<crate::model::SeriesKey>> =
        vec![std::collections::HashSet::new(); finer.len()];
    for i in (0..raw.series.len()).filter(|&i| rolled.get(i) == Some(&true)) {
        match held_by(i) {
            None => samples.push(raw.series[i].clone()),
            Some(k) => by_level[k].extend(aggregate_keys(&raw.series[i].key, finer[k].1)),
        }
    }
    let mut parts = Vec::new();
    if !samples.is_empty() {
        parts.push(
            metrics::encode(&subset(samples), BlockOptions::default())?
                .0
                .len() as u64,
        );
    }
    for ((f, res), names) in finer.iter().zip(&by_level) {
        let series = rollups_named(f, names);
        if !series.is_empty() {
            parts.push(
                metrics::encode(&subset(series), rollup_block_options(res))?
                    .0
                    .len() as u64,
            );
        }
    }
    let empty = metrics::encode(&subset(Vec::new()), BlockOptions::default())?
        .0
        .len() as u64;
    let fixed = empty * (parts.len() as u64).saturating_sub(1);
    Ok(Some(parts.iter().sum::<u64>().saturating_sub(fixed)))
}

/// Phase 05 with the defaults (no retention table).
pub fn run(ctx: &Context) -> Result<PhaseOutcome> {
    run_with(ctx, None)
}

/// Phase 05; with `keep_raw` (ns), also what keeping raw samples that long
/// and rollups for the rest of a year costs, scaled from this run's sizes.
pub fn run_with(ctx: &Context, keep_raw: Option<i64>) -> Result<PhaseOutcome> {
    let (data, fp) = ctx.load_dataset()?;
    let raw_path = ctx.path(metrics::FILE_NAME);
    // Phase 05 reads phase 04's artifact; it must describe the current dataset.
    match ReportEntry::load(&ctx.output_dir, "04")? {
        Some(e) if e.dataset == fp && raw_path.exists() => {}
        _ => return Err(Error::MissingInput {
            path: raw_path,
            hint: "run `cargo run --release --bin 04_custom_binary` first (on the current dataset)"
                .into(),
        }),
    }
    let raw_file = MetricsFile::open(&raw_path)?;
    let raw = raw_file.read_all(&data.source)?;
    verify(&raw_path, &data, &raw)?;
    // The .metrics file holds samples; what the source declared (counter or
    // gauge) comes from the dataset.
    let raw = raw.with_metadata(data.metadata.clone());

    let ndjson = ReportEntry::load(&ctx.output_dir, "01")?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "resolution",
        "rollup series",
        "points",
        "bytes",
        "B/raw sample",
        "of their raw",
        "of next finer",
        "vs NDJSON",
        "skipped",
        "avg: Σsum/Σcount",
        "avg: avg of avgs",
        "max",
        "p99: max of p99s",
        "p99: weighted",
        "counter increase",
    ]);
    let mut total_bytes = 0u64;
    let mut entries = Vec::new();
    let mut losses: Vec<(&str, Loss)> = Vec::new();
    let mut skipped_lines = Vec::new();
    // Per resolution: growing bytes of its skipped series, growing and
    // fixed bytes of its rollup file (with --keep-raw only).
    let mut retention: Vec<(&'static str, u64, (u64, u64))> = Vec::new();
    let mut constant = 0;
    // The rollups made so far, finest first.
    let mut finer: Vec<(Rollup, &Resolution)> = Vec::new();
    for (k, res) in RESOLUTIONS.iter().enumerate() {
        let r = rollup(&raw, res);
        if r.skipped > 0 {
            skipped_lines.push(format!(
                "  {}: {} series skipped for their step (up to {}): {} is at most twice it, so a bucket would hold two samples or fewer.",
                res.name,
                thousands(r.skipped as u64),
                crate::time::format_duration(r.skipped_max_step),
                res.name
            ));
        }
        if r.skipped_larger > 0 {
            skipped_lines.push(format!(
                "  {}: {} series skipped because their rollups would not be at most 1/{} of their samples' bytes (short or sparse series, or samples that compress better than their sums).",
                res.name,
                thousands(r.skipped_larger as u64),
                crate::downsample::MIN_SHRINK
            ));
        }
        for (finer, n) in &r.skipped_finer {
            skipped_lines.push(format!(
                "  {}: {} series skipped because their rollups would not be at most {}% of their {} rollups' bytes (a short or periodic series, whose buckets hold nearly the same numbers at both): queries read the {} ones.",
                res.name,
                thousands(*n as u64),
                crate::downsample::FINER_PERCENT,
                finer,
                finer,
            ));
        }
        constant = r.skipped_constant;
        let rolled = &r.data;
        let path = ctx.path(&file_name(res.name));
        let ((bytes, _), write_ms) =
            timed(|| metrics::write(rolled, &path, rollup_block_options(res)))?;
        let ((back, file_id, parts), read_ms) = timed(|| {
            let f = MetricsFile::open(&path)?;
            Ok((
                f.read_all(&rolled.source)?,
                f.file_id(),
                growing_and_fixed(&f),
            ))
        })?;
        verify(&path, rolled, &back)?;
        total_bytes += bytes;
        if keep_raw.is_some() {
            // The rollups kept for the rest of the year: this file's, and
            // the finer ones of the series it skips for them.
            let (mut growing, mut fixed) = if r.series > 0 { parts } else { (0, 0) };
            let (g, x) = finer_held_files(&raw, &r.skips, &finer)?;
            growing += g;
            fixed += x;
            retention.push((res.name, skipped_file(&raw, &r.skips)?.0, (growing, fixed)));
        }
        // One report row per resolution; samples are the raw samples it stands for.
        let mut entry = ReportEntry::new(
            &format!("05.{}", k + 1),
            &format!("rollups {} (lossy)", res.name),
            &path,
            bytes,
            data.sample_count(),
            &fp,
        );
        entry.lossless = false;
        entry.holds_nothing = r.series == 0;
        entry.file_id = Some(file_id);
        entry.source_file_id = Some(raw_file.file_id());
        entries.push(record(ctx, entry, write_ms, read_ms)?);
        let loss = measure_loss_of(&raw, res, &r.rolled);
        let rolled_raw = (r.series > 0)
            .then(|| raw_bytes_of_rolled(&raw, &r.rolled))
            .transpose()?;
        // With no finer resolution, the next finer level is the raw
        // samples: the bytes just measured.
        let finer_bytes = if finer.is_empty() {
            rolled_raw
        } else {
            next_finer_bytes(&raw, &r.rolled, &finer)?
        };
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            Cell::new(res.name),
            right(thousands(rolled.series.len() as u64)),
            right(thousands(rolled.sample_count())),
            right(human_bytes(bytes)),
            right(format!(
                "{:.3}",
                bytes as f64 / data.sample_count().max(1) as f64
            )),
            // The rollups against a .metrics file of the raw series they roll up.
            right(match rolled_raw {
                Some(raw_bytes) => {
                    format!("{:.1}%", 100.0 * bytes as f64 / raw_bytes.max(1) as f64)
                }
                None => "-".into(),
            }),
            // Against what the next finer level holds for the same series.
            right(match finer_bytes {
                Some(f) => format!("{:.1}%", 100.0 * bytes as f64 / f.max(1) as f64),
                None => "-".into(),
            }),
            right(
                // An empty file stands for nothing: no ratio.
                ndjson
                    .as_ref()
                    .filter(|n| n.dataset == fp && r.series > 0)
                    .map(|n| format!("{:.0}x", n.bytes as f64 / bytes.max(1) as f64))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(thousands(
                (r.skipped
                    + r.skipped_constant
                    + r.skipped_larger
                    + r.skipped_finer.iter().map(|(_, n)| n).sum::<usize>()) as u64,
            )),
            right(error_share(loss.avg)),
            right(error_share(loss.avg_of_avgs)),
            right(error_share(loss.max)),
            right(error_share(loss.p99_max_of_buckets)),
            right(error_share(loss.p99_weighted)),
            right(error_share(loss.counter_increase)),
        ]);
        losses.push((res.name, loss));
        finer.push((r, res));
    }

    // The phase's own entry is its coarsest resolution, the one kept longest.
    let Some(entry) = entries.pop() else {
        return Err(Error::InvalidArgument("no resolutions to roll up".into()));
    };
    let hours = losses.last().map(|(_, l)| l.hours).unwrap_or(0);
    let counters = raw
        .series
        .iter()
        .filter(|s| raw.is_counter(&s.key.metric))
        .count();
    let gauges = raw.series.len() - counters;
    let mut lines = vec![
        "Phase 05: downsampling, LOSSY: rollups at 1m, 5m, 15m and 1h, stored in the phase 04 format".to_string(),
        format!(
            "  Gauges keep {} per bucket (avg is sum/count, derived on read); counters (declared by the source's # TYPE, else named *_total) keep {}.",
            GAUGE_AGGREGATES.join(", "),
            COUNTER_AGGREGATES.join(", ")
        ),
        format!(
            "  Each is a series named {{metric}}_{{aggregate}}_{{resolution}}: count, sum, max, last and increase in full; p99, p95 and min only where each differs from the next one up (p99 from max, p95 from p99, min from p95), resets only where not 0, and a gauge's {GAUGE_NANS} where its buckets hold NaN samples: at most {} series for {gauges} {} and {counters} {}.",
            gauges * (GAUGE_AGGREGATES.len() + 1) + counters * COUNTER_AGGREGATES.len(),
            if gauges == 1 { "gauge" } else { "gauges" },
            if counters == 1 { "counter" } else { "counters" },
        ),
        format!(
            "  Loss: the mean error of hourly answers rebuilt from each resolution against the raw samples, as a share of each series' value range (max − min; absolute where that is 0), over (series, hour) pairs ({} gauge pairs at 1h). Σsum/Σcount and the max of maxes are exact up to rounding; averaging the averages is not; no rollup gives back an exact p99.",
            thousands(hours)
        ),
    ];
    lines.extend(table.to_string().lines().map(|l| format!("  {l}")));
    if constant > 0 {
        lines.push(format!(
            "  Skipped at every resolution: {} constant series (every sample the same): the raw file holds one number a window for each, less than any rollup.",
            thousands(constant as u64)
        ));
    }
    if constant > 0 || !skipped_lines.is_empty() {
        lines.extend(skipped_lines);
        lines.push("  Skipped series are answered from the rollups of a finer resolution that holds them, else from their raw samples.".into());
    }
    if let Some(p) = long_range_probe(&data, &raw_path, &ctx.path(&file_name("1h")))? {
        lines.push(format!(
            "  Long-range query, hourly average of {} over its whole range ({} hours): {} read from raw blocks, {} from 1h rollups ({}).",
            p.series,
            p.hours,
            human_bytes(p.raw_bytes),
            human_bytes(p.rollup_bytes),
            if p.rollup_bytes * 2 <= p.raw_bytes {
                format!("{:.0}x less", p.raw_bytes as f64 / p.rollup_bytes.max(1) as f64)
            } else if p.rollup_bytes < p.raw_bytes {
                format!(
                    "{:.2}x less: over so short a range the rollup file's index and names weigh as much as what it saves",
                    p.raw_bytes as f64 / p.rollup_bytes.max(1) as f64
                )
            } else {
                format!(
                    "{:.2}x more: over so short a range the rollup file's index and names outweigh what it saves",
                    p.rollup_bytes as f64 / p.raw_bytes.max(1) as f64
                )
            }
        ));
    }
    lines.push(format!(
        "  All four resolutions: {} ({:.3} bytes per raw sample).",
        human_bytes(total_bytes),
        total_bytes as f64 / data.sample_count().max(1) as f64
    ));
    if let Some(keep) = keep_raw {
        let span = data
            .time_range()
            .map(|(a, b)| b.saturating_sub(a))
            .unwrap_or(0);
        let days = span as f64 / (86_400.0 * crate::time::NANOS_PER_SECOND as f64);
        if days <= 0.0 {
            return Err(Error::InvalidArgument(
                "--keep-raw needs data that spans some time".into(),
            ));
        }
        let (raw_growing, raw_fixed) = growing_and_fixed(&raw_file);
        let keep_days = keep as f64 / (86_400.0 * crate::time::NANOS_PER_SECOND as f64);
        lines.push(format!(
            "  Retention over a year, scaled from this run ({} of data): raw samples for {}, then rollups; series a resolution skips stay raw, or in the finer rollups that hold them. What grows with time (blocks, timestamps, index) is scaled; names are counted once per file kept.",
            crate::time::format_duration(span),
            crate::time::format_duration(keep)
        ));
        let per_day = |b: u64| b as f64 / days;
        let mut year_raw = None;
        for (name, skipped, (rollup_growing, rollup_fixed)) in &retention {
            let r = Retention {
                resolution: name,
                raw_per_day: per_day(raw_growing),
                skipped_per_day: per_day(*skipped),
                rollup_per_day: per_day(*rollup_growing),
                raw_fixed: raw_fixed as f64,
                rollup_fixed: *rollup_fixed as f64,
            };
            let raw_only = r.raw_year_bytes();
            if year_raw.is_none() {
                lines.push(format!("    raw only: {}", human_bytes(raw_only as u64)));
                year_raw = Some(raw_only);
            }
            let year = r.year_bytes(keep_days);
            lines.push(format!(
                "    then {}: {} ({:.1}% of raw only; skipped series, kept raw, are {:.1}% of the raw bytes a day)",
                name,
                human_bytes(year as u64),
                100.0 * year / raw_only.max(1.0),
                100.0 * *skipped as f64 / raw_growing.max(1) as f64
            ));
        }
    }
    lines.push(summary_line(&entry, ndjson.as_ref()));
    Ok(PhaseOutcome { entry, lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downsample::Resolution;
    use crate::generate::{generate, GenerateConfig};
    use crate::time::NANOS_PER_SECOND;

    fn encoded_len(d: &crate::model::Dataset, options: BlockOptions) -> usize {
        metrics::encode(d, options).expect("encode").0.len()
    }

    #[test]
    fn a_year_keeps_raw_then_rollups_and_skipped_series_raw() {
        let r = Retention {
            resolution: "1h",
            raw_per_day: 100.0,
            skipped_per_day: 10.0,
            rollup_per_day: 2.0,
            raw_fixed: 7.0,
            rollup_fixed: 3.0,
        };
        assert_eq!(r.raw_year_bytes(), 7.0 + 36_500.0);
        assert_eq!(r.year_bytes(365.0), 7.0 + 36_500.0, "no rollups kept");
        assert_eq!(r.year_bytes(0.0), 7.0 + 365.0 * (2.0 + 10.0) + 3.0);
        assert_eq!(r.year_bytes(5.0), 7.0 + 500.0 + 360.0 * 12.0 + 3.0);
        assert_eq!(r.year_bytes(1000.0), r.raw_year_bytes(), "at most a year");
    }

    #[test]
    fn names_do_not_grow_with_time_and_blocks_do() {
        let file = |points_per_series: u64| {
            let d = generate(&GenerateConfig {
                series: 20,
                points: 20 * points_per_series,
                ..GenerateConfig::default()
            })
            .expect("generate");
            let bytes = metrics::encode(&d, BlockOptions::default())
                .expect("encode")
                .0;
            let f = MetricsFile::from_bytes(bytes, "t").expect("open");
            (growing_and_fixed(&f), f.len())
        };
        // 15 s samples: 1 and 4 windows of 6 hours.
        let ((grow1, fixed1), len1) = file(1_440);
        let ((grow4, fixed4), len4) = file(5_760);
        assert_eq!((grow1 + fixed1, grow4 + fixed4), (len1, len4));
        assert!(grow4 > 3 * grow1, "growing {grow1} -> {grow4} B");
        // The same names; pages sized to the data, so larger pages
        // compress them a little better.
        assert!(fixed4 <= fixed1, "fixed {fixed1} -> {fixed4} B");
        assert!(fixed1 > 100, "20 series' names: {fixed1} B");
    }

    // A retention policy keeps the finer rollups of the series a coarser
    // resolution skips for them (found by a break test: the 1h line said
    // 100% of raw only where every series had 15m rollups).
    #[test]
    fn retention_counts_finer_rollups_for_series_skipped_for_them() {
        let d = generate(&GenerateConfig {
            series: 200,
            points: 200 * 168,
            interval_ns: 5 * NANOS_PER_SECOND,
            ..GenerateConfig::default()
        })
        .expect("generate");
        let mut finer: Vec<(Rollup, &Resolution)> = Vec::new();
        for res in &RESOLUTIONS[..3] {
            finer.push((rollup(&d, res), res));
        }
        let hour = rollup(&d, &RESOLUTIONS[3]);
        let for_finer = hour
            .skips
            .iter()
            .filter(|k| matches!(k, Some(Skip::NotSmallerThanFiner(_))))
            .count();
        assert!(for_finer > 0, "the case is not exercised");
        let (held, _) = finer_held_files(&d, &hour.skips, &finer).expect("encode");
        let (left_raw, _) = skipped_file(&d, &hour.skips).expect("encode");
        // Had they been kept raw:
        let all_raw: Vec<Option<Skip>> = hour
            .skips
            .iter()
            .map(|k| k.map(|_| Skip::NotSmaller))
            .collect();
        let (all_left_raw, _) = skipped_file(&d, &all_raw).expect("encode");
        assert!(held > 0 && left_raw < all_left_raw);
        assert!(
            held < all_left_raw - left_raw,
            "finer rollups {held} B, their raw samples {} B",
            all_left_raw - left_raw
        );
    }

    // Issue 19's goal "each rollup smaller than the next finer resolution",
    // series for series: a week of 15 s and 60 s series, where 1m skips
    // the 60 s ones (1m is at most twice their step) and 5m rolls them up,
    // so the coarser file holds series the finer one leaves raw; and short
    // series, which a coarser resolution would not shrink.
    #[test]
    fn each_rollup_is_smaller_than_what_the_next_finer_level_holds() {
        let week = |step_s: i64| {
            generate(&GenerateConfig {
                series: 6,
                points: 6 * 7 * 86_400 / step_s as u64,
                interval_ns: step_s * NANOS_PER_SECOND,
                ..GenerateConfig::default()
            })
            .expect("generate")
        };
        let mut series = week(15).series;
        series.extend(week(60).series.into_iter().map(|mut s| {
            s.key = crate::model::SeriesKey::new(format!("{}_slow", s.key.metric), s.key.labels);
            s
        }));
        let mixed = crate::model::Dataset::new("mixed steps", series);
        assert!(smaller_than_next_finer(&mixed), "the case is not exercised");
        // 14 minutes of 5 s samples from the top of an hour: one bucket at
        // 15m and at 1h alike, so 1h would repeat 15m's bytes.
        let short = generate(&GenerateConfig {
            series: 200,
            points: 200 * 168,
            interval_ns: 5 * NANOS_PER_SECOND,
            ..GenerateConfig::default()
        })
        .expect("generate");
        smaller_than_next_finer(&short);
        // Periodic and flapping series (a newcomer's break test): every
        // bucket holds the same numbers at 15m and at 1h, so 1h saves
        // nothing the file does not already save with constants.
        let day = |name: &str, f: fn(i64) -> f64| {
            (0..10)
                .map(|k| {
                    let mut s = crate::model::Series::new(crate::model::SeriesKey::new(
                        format!("{name}{k}"),
                        Default::default(),
                    ));
                    for i in 0..5_760 {
                        s.push((1_704_067_200 + i * 15) * NANOS_PER_SECOND, f(i));
                    }
                    s
                })
                .collect::<Vec<_>>()
        };
        // A day flat but for its last samples, one series alone: the
        // file's fixed bytes weigh as much as its rollups.
        let mut bump = day("bump", |i| if i < 5_755 { 100.0 } else { (100 + i) as f64 });
        bump.truncate(1);
        smaller_than_next_finer(&crate::model::Dataset::new("bump", bump));
        for (name, f) in [
            ("saw", (|i| (i % 20) as f64 * 0.5) as fn(i64) -> f64),
            ("steps", |i| (i % 4 + 1) as f64),
            ("flap", |i| (i % 2) as f64),
            ("zeros", |i| if i % 2 == 0 { 0.0 } else { -0.0 }),
        ] {
            smaller_than_next_finer(&crate::model::Dataset::new(name, day(name, f)));
        }
    }

    /// Asserts, resolution by resolution, that the rollups of `d` take at
    /// most `FINER_PERCENT`% of what the next finer level holds for the
    /// same series;
    /// returns whether a finer resolution left raw a series a coarser one
    /// rolled up.
    fn smaller_than_next_finer(d: &crate::model::Dataset) -> bool {
        let mut finer: Vec<(Rollup, &Resolution)> = Vec::new();
        let mut finer_skipped_what_coarser_holds = false;
        for res in &RESOLUTIONS {
            let r = rollup(d, res);
            let stands_for = next_finer_bytes(d, &r.rolled, &finer).expect("encode");
            let bytes = encoded_len(&r.data, rollup_block_options(res)) as u64;
            match stands_for {
                None => assert_eq!(r.series, 0),
                Some(f) => {
                    // The rule is per series, each in a file of its own;
                    // the files of all of them hold to it too.
                    assert!(
                        bytes * 100 <= f * crate::downsample::FINER_PERCENT as u64,
                        "{} {}: {bytes} B, the next finer level {f} B",
                        d.source,
                        res.name
                    );
                    let raw = raw_bytes_of_rolled(d, &r.rolled).expect("encode");
                    let in_finer = finer
                        .iter()
                        .any(|(p, _)| r.rolled.iter().zip(&p.rolled).any(|(a, b)| *a && *b));
                    if in_finer {
                        assert!(f < raw, "{}: finer rollups {f} B, raw {raw} B", res.name);
                    }
                    if let Some((p, _)) = finer.last() {
                        finer_skipped_what_coarser_holds |=
                            r.rolled.iter().zip(&p.rolled).any(|(a, b)| *a && !*b);
                    }
                }
            }
            finer.push((r, res));
        }
        finer_skipped_what_coarser_holds
    }

    // Issue 19's goal: on series of 10,000 samples or more at a step of
    // 60 s or less, the 1-hour rollups take at most 8% of the raw file.
    #[test]
    fn hourly_rollups_of_long_series_take_at_most_8_percent_of_the_raw_file() {
        for step_s in [15, 60] {
            let d = generate(&GenerateConfig {
                series: 10,
                points: 10 * 10_080,
                interval_ns: step_s * NANOS_PER_SECOND,
                ..GenerateConfig::default()
            })
            .expect("generate");
            assert!(d.series.iter().all(|s| s.len() >= 10_000));
            let raw = encoded_len(&d, BlockOptions::default());
            let hour: &Resolution = &RESOLUTIONS[3];
            let r = rollup(&d, hour);
            assert!(r.series > 0, "nothing rolled up at {step_s} s");
            let hourly = encoded_len(&r.data, rollup_block_options(hour));
            assert!(
                hourly * 100 <= raw * 8,
                "step {step_s} s: 1h rollups {hourly} B, raw {raw} B ({:.1}%)",
                100.0 * hourly as f64 / raw as f64
            );
        }
    }
}
