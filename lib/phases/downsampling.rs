//! Phase 05: downsampled rollups for long-term retention.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::downsample::{
    measure_loss, rollup, Loss, COUNTER_AGGREGATES, GAUGE_AGGREGATES, RESOLUTIONS,
};
use crate::error::{Error, Result};
use crate::format::metrics::{self, BlockOptions, MetricsFile};
use crate::phases::{record, summary_line, thousands, timed, verify, Context, PhaseOutcome};
use crate::report::{human_bytes, ReportEntry};

/// Blocks of rollups span 480 buckets (1m: 8 h, 1h: 20 days), so that a
/// block of a coarse resolution holds as many points as a raw block does.
pub fn rollup_block_options(res: &crate::downsample::Resolution) -> BlockOptions {
    BlockOptions {
        window_ns: res.ns.saturating_mul(480),
        ..BlockOptions::default()
    }
}

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
        let name = format!("{}_{aggregate}_1h", key.metric);
        let j = (0..hourly.series().len())
            .find(|&j| {
                hourly.series()[j].key.metric == name && hourly.series()[j].key.labels == key.labels
            })
            .ok_or_else(|| Error::Verify {
                artifact: hourly_path.display().to_string(),
                reason: format!("no {name} series for {key}"),
            })?;
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

fn pct(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x < 1e-6 {
        format!("{x:.1e}")
    } else {
        format!("{:.3}%", 100.0 * x)
    }
}

pub fn run(ctx: &Context) -> Result<PhaseOutcome> {
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
    let raw = MetricsFile::open(&raw_path)?.read_all(&data.source)?;
    verify(&raw_path, &data, &raw)?;
    // The .metrics file holds samples; what the source declared (counter or
    // gauge) comes from the dataset.
    let raw = raw.with_metadata(data.metadata.clone());

    let ndjson = ReportEntry::load(&ctx.output_dir, "01")?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "resolution",
        "series",
        "points",
        "bytes",
        "B/raw sample",
        "vs NDJSON",
        "hourly avg: Σsum/Σcount",
        "hourly avg: avg of avgs",
        "hourly p99: max of p99s",
        "hourly p99: weighted",
        "counter increase",
    ]);
    let mut total_bytes = 0u64;
    let mut entries = Vec::new();
    let mut losses: Vec<(&str, Loss)> = Vec::new();
    for (k, res) in RESOLUTIONS.iter().enumerate() {
        let rolled = rollup(&raw, res);
        let path = ctx.path(&file_name(res.name));
        let ((bytes, _), write_ms) =
            timed(|| metrics::write(&rolled, &path, rollup_block_options(res)))?;
        let (back, read_ms) = timed(|| MetricsFile::open(&path)?.read_all(&rolled.source))?;
        verify(&path, &rolled, &back)?;
        total_bytes += bytes;
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
        entries.push(record(ctx, entry, write_ms, read_ms)?);
        let loss = measure_loss(&raw, res);
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
            right(
                ndjson
                    .as_ref()
                    .filter(|n| n.dataset == fp)
                    .map(|n| format!("{:.0}x", n.bytes as f64 / bytes.max(1) as f64))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(pct(loss.avg_from_sum_count)),
            right(pct(loss.avg_of_avgs)),
            right(pct(loss.p99_max_of_buckets)),
            right(pct(loss.p99_weighted_mean)),
            right(pct(loss.counter_increase)),
        ]);
        losses.push((res.name, loss));
    }

    // The phase's own entry is its coarsest resolution, the one kept longest.
    let Some(entry) = entries.pop() else {
        return Err(Error::InvalidArgument("no resolutions to roll up".into()));
    };
    let hours = losses.first().map(|(_, l)| l.hours).unwrap_or(0);
    let counters = raw
        .series
        .iter()
        .filter(|s| raw.is_counter(&s.key.metric))
        .count();
    let gauges = raw.series.len() - counters;
    let mut lines = vec![
        "Phase 05: downsampling, LOSSY: rollups at 1m, 5m, 15m and 1h, stored in the phase 04 format".to_string(),
        "  Gauges keep avg, min, max, p95, p99, count and sum per bucket; counters (*_total) keep last and increase (across resets) and count.".into(),
        format!(
            "  So each resolution holds {} series: {gauges} gauges × {} + {counters} counters × {}, each named {{metric}}_{{aggregate}}_{{resolution}}.",
            gauges * GAUGE_AGGREGATES.len() + counters * COUNTER_AGGREGATES.len(),
            GAUGE_AGGREGATES.len(),
            COUNTER_AGGREGATES.len()
        ),
        format!(
            "  Loss, as mean relative error over {hours} (gauge series, hour) pairs against the raw samples: an hourly average rebuilt as Σsum/Σcount is exact up to rounding; averaging the averages is not; no rollup can give back an exact p99."
        ),
    ];
    lines.extend(table.to_string().lines().map(|l| format!("  {l}")));
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
        "  All four resolutions: {} ({:.3} bytes per raw sample). Rollups pay off at coarse resolutions: a 1m bucket of 15s data holds 4 samples but keeps 7 aggregates.",
        human_bytes(total_bytes),
        total_bytes as f64 / data.sample_count().max(1) as f64
    ));
    lines.push(summary_line(&entry, ndjson.as_ref()));
    Ok(PhaseOutcome { entry, lines })
}
