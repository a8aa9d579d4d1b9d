//! `07_gpu_tiered gpubench`: the GPU warm tier against the CPU one, in one
//! run, on the same generated rows.
//!
//! What it measures, in order: the device's copy bandwidths (host to device
//! from pinned and from pageable memory, device to device); appends into
//! each tier (the GPU figure as bytes of device columns per second, beside
//! the pinned bandwidth); a range count over the resident timestamps (the
//! kernel's read rate, beside the device-to-device copy's memory traffic);
//! then filters and aggregates through both tiers, timed, with the answers
//! compared bit for bit. Without a GPU it measures the CPU tier and says why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use tiered::agg::{Buckets, Groups, MAX_BUCKETS};
use tiered::error::{Error, Result};
use tiered::filter::{bind_all, Filter, Pred, Scalar};
use tiered::gen::{Generator, START_NS};
use tiered::schema::Mode;
use tiered::store::gpu::{self, Bandwidth, GpuWarm};
use tiered::store::warm::{CpuWarm, DeviceMemory, WarmTier};

/// Options of `gpubench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Rows in the warm tier.
    #[arg(long, default_value_t = 50_000_000)]
    pub rows: usize,
    /// Rows per append.
    #[arg(long, default_value_t = 10_000_000)]
    pub batch: usize,
    /// Distinct symbols.
    #[arg(long, default_value_t = 100)]
    pub symbols: usize,
    /// Size of the bandwidth test buffers, in MB.
    #[arg(long, default_value_t = 1024)]
    pub buffer_mb: usize,
    /// Timed repetitions of each step (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Columns of the generated rows.
    #[arg(long, value_enum, default_value = "simple")]
    pub mode: Mode,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One query or aggregate through both tiers.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub name: String,
    pub rows: u64,
    pub cpu_ms: f64,
    pub gpu_ms: Option<f64>,
    pub speedup: Option<f64>,
    /// The GPU's answer equals the CPU's bit for bit (None without a GPU).
    pub identical: Option<bool>,
}

/// What `gpubench` measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    pub device: String,
    pub no_gpu: Option<String>,
    pub rows: u64,
    pub row_bytes: u64,
    pub bandwidth: Option<Bandwidth>,
    pub cpu_ingest_rows_per_s: f64,
    pub gpu_ingest_rows_per_s: Option<f64>,
    /// Bytes of device columns appended per second.
    pub gpu_ingest_gbs: Option<f64>,
    /// `gpu_ingest_gbs` / pinned host-to-device bandwidth.
    pub ingest_vs_pinned: Option<f64>,
    pub range_count_rows: u64,
    /// Timestamps read per second by the range count kernel, GB/s.
    pub range_count_gbs: Option<f64>,
    /// `range_count_gbs` / device-to-device copy traffic.
    pub range_count_vs_dtod: Option<f64>,
    pub range_count_cpu_ms: f64,
    pub range_count_gpu_ms: Option<f64>,
    pub sides: Vec<Side>,
    pub gpu_memory: Option<DeviceMemory>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Median wall time of `reps` runs of `f`, ms, and its last answer.
fn timed<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut ms = Vec::new();
    let mut last = f()?; // warm-up
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        last = f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(ms), last))
}

fn rows_of(v: &[RecordBatch]) -> u64 {
    v.iter().map(|b| b.num_rows() as u64).sum()
}

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.rows == 0 || args.batch == 0 {
        return Err(Error::InvalidArgument(
            "--rows and --batch must be at least 1".into(),
        ));
    }
    let report = measure(args)?;
    print(&report);
    let differs: Vec<&str> = report
        .sides
        .iter()
        .filter(|s| s.identical == Some(false))
        .map(|s| s.name.as_str())
        .collect();
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::InvalidArgument(format!("report as JSON: {e}")))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
        println!("report written to {}", path.display());
    }
    if !differs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the GPU and CPU tiers answered differently: {}",
            differs.join("; ")
        )));
    }
    Ok(())
}

/// Measures; see the module documentation.
pub fn measure(args: &BenchArgs) -> Result<BenchReport> {
    let mode = args.mode;
    let mut r = BenchReport {
        row_bytes: match mode {
            Mode::Simple => 28,
            Mode::Trading => 48,
        },
        ..BenchReport::default()
    };
    let gpu = match gpu::probe() {
        Ok(g) => {
            r.device = g.name.clone();
            Some(Arc::new(g))
        }
        Err(why) => {
            r.device = "CPU".into();
            r.no_gpu = Some(why);
            None
        }
    };
    println!(
        "gpubench: {} rows ({mode:?} mode, {} symbols) in batches of {}; device: {}",
        args.rows,
        args.symbols,
        args.batch,
        match &r.no_gpu {
            None => format!("GPU ({})", r.device),
            Some(why) => format!("none ({why}), measuring the CPU tier only"),
        }
    );
    if let Some(g) = &gpu {
        if let Err(why) = gpu::self_test(g, mode) {
            return Err(Error::InvalidArgument(format!(
                "the GPU failed its self-test against the CPU tier: {why}"
            )));
        }
        r.bandwidth = Some(
            g.bandwidth(args.buffer_mb.max(1) << 20, args.reps)
                .map_err(Error::InvalidArgument)?,
        );
    }
    // The rows, generated before anything is timed.
    let bar = ProgressBar::new(args.rows as u64);
    bar.set_style(
        ProgressStyle::with_template("  generating {bar:30} {pos}/{len} rows ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut g = Generator::new(mode, 7, args.symbols);
    let mut batches = Vec::new();
    let mut left = args.rows;
    while left > 0 {
        let n = left.min(args.batch);
        batches.push(g.batch(n)?);
        left -= n;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    r.rows = args.rows as u64;
    let t = Instant::now();
    let mut cpu = CpuWarm::new(mode);
    for (i, b) in batches.iter().enumerate() {
        cpu.append(i as u64 + 1, b)?;
    }
    r.cpu_ingest_rows_per_s = args.rows as f64 / t.elapsed().as_secs_f64();
    let dev = match &gpu {
        None => None,
        Some(gpu) => {
            let mut dev = GpuWarm::new(gpu.clone(), mode, args.rows)?;
            let t = Instant::now();
            for (i, b) in batches.iter().enumerate() {
                dev.append(i as u64 + 1, b)?;
            }
            let secs = t.elapsed().as_secs_f64();
            r.gpu_ingest_rows_per_s = Some(args.rows as f64 / secs);
            let gbs = (args.rows as u64 * r.row_bytes) as f64 / secs / 1e9;
            r.gpu_ingest_gbs = Some(gbs);
            r.ingest_vs_pinned = r.bandwidth.map(|b| gbs / b.htod_pinned);
            r.gpu_memory = dev.device_memory();
            Some(dev)
        }
    };
    drop(batches);
    // Range count over the middle half of the time range.
    let end = g.now();
    let (lo, hi) = (
        START_NS + (end - START_NS) / 4,
        START_NS + (end - START_NS) / 4 * 3,
    );
    let schema = mode.schema();
    let range = bind_all(
        &[Filter::range(
            "timestamp",
            Some(Scalar::Int(lo)),
            Some(Scalar::Int(hi + 1)),
        )],
        &schema,
    )?;
    let (cpu_ms, n) = timed(args.reps, || Ok(rows_of(&cpu.scan(&range, &[0], None)?)))?;
    r.range_count_rows = n;
    r.range_count_cpu_ms = cpu_ms;
    if let Some(dev) = &dev {
        let mut kernel = Vec::new();
        let (wall, got) = timed(args.reps, || {
            let (c, ms) = dev.count_time_range_timed(lo, hi)?;
            kernel.push(ms);
            Ok(c)
        })?;
        if got != n {
            return Err(Error::InvalidArgument(format!(
                "range count: {got} on the GPU, {n} on the CPU"
            )));
        }
        let kernel_ms = median(kernel);
        r.range_count_gpu_ms = Some(wall);
        let gbs = (dev.rows() * 8) as f64 / (kernel_ms / 1e3) / 1e9;
        r.range_count_gbs = Some(gbs);
        r.range_count_vs_dtod = r.bandwidth.map(|b| gbs / b.dtod_traffic);
    }
    // Filters and aggregates through both tiers.
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let s0 = g.symbol(0);
    let queries: Vec<(String, Vec<Filter>)> = vec![
        (
            format!("symbol = {s0}"),
            vec![Filter::eq("symbol", s0.as_str())],
        ),
        (
            "3 symbols IN, price >= 100".into(),
            vec![
                Filter::is_in("symbol", [g.symbol(1), g.symbol(2), g.symbol(3)]),
                Filter::range("price", Some(Scalar::Float(100.0)), None),
            ],
        ),
        (
            "first 1% of time".into(),
            vec![Filter::range(
                "timestamp",
                Some(Scalar::Int(START_NS)),
                Some(Scalar::Int(START_NS + (end - START_NS) / 100)),
            )],
        ),
        (
            "volume >= 9.99 (every row tested)".into(),
            vec![Filter::range("volume", Some(Scalar::Float(9.99)), None)],
        ),
    ];
    for (name, filters) in queries {
        let preds = bind_all(&filters, &schema)?;
        r.sides.push(side(
            &name,
            args.reps,
            &cpu,
            dev.as_ref(),
            |t: &dyn WarmTier| t.scan(&preds, &all, None),
            |v| rows_of(v),
            |a, b| tiered::store::gpu::same_rows(a, b),
        )?);
    }
    for (name, filters, buckets) in sample_aggregates(&s0, START_NS, end)? {
        let mut f = filters.clone();
        f.push(Filter::range(
            "timestamp",
            Some(Scalar::Int(buckets.start)),
            Some(Scalar::Int(buckets.end)),
        ));
        let preds: Vec<Pred> = bind_all(&f, &schema)?;
        r.sides.push(side(
            &name,
            args.reps,
            &cpu,
            dev.as_ref(),
            |t: &dyn WarmTier| t.aggregate(&preds, &buckets),
            |g: &Groups| g.values().map(|p| p.count).sum(),
            |a, b| a == b,
        )?);
    }
    Ok(r)
}

/// The aggregates the demo and `gpubench` run over `[start, end]`: one
/// symbol's 1-minute bars, and every symbol per hour.
pub fn sample_aggregates(
    symbol: &str,
    start: i64,
    end: i64,
) -> Result<Vec<(String, Vec<Filter>, Buckets)>> {
    Ok(vec![
        (
            format!("OHLCV of {symbol}, 1-minute bars"),
            vec![Filter::eq("symbol", symbol)],
            Buckets::new(start, end + 1, 60_000_000_000, MAX_BUCKETS)?,
        ),
        (
            "count/sum/min/max per hour, every symbol".into(),
            vec![],
            Buckets::new(start, end + 1, 3_600_000_000_000, MAX_BUCKETS)?,
        ),
    ])
}

/// Times `f` on the CPU tier and, when there is one, the GPU tier.
fn side<T>(
    name: &str,
    reps: usize,
    cpu: &CpuWarm,
    dev: Option<&GpuWarm>,
    f: impl Fn(&dyn WarmTier) -> Result<T>,
    rows: impl Fn(&T) -> u64,
    same: impl Fn(&T, &T) -> bool,
) -> Result<Side> {
    let (cpu_ms, want) = timed(reps, || f(cpu))?;
    let mut s = Side {
        name: name.to_string(),
        rows: rows(&want),
        cpu_ms,
        gpu_ms: None,
        speedup: None,
        identical: None,
    };
    if let Some(dev) = dev {
        let (gpu_ms, got) = timed(reps, || f(dev))?;
        s.gpu_ms = Some(gpu_ms);
        s.speedup = Some(cpu_ms / gpu_ms);
        s.identical = Some(same(&want, &got));
    }
    Ok(s)
}

fn print(r: &BenchReport) {
    if let Some(b) = &r.bandwidth {
        println!(
            "  bandwidth ({} MB buffers): host->device pinned {:.1} GB/s, pageable {:.1} GB/s; device->device copy {:.1} GB/s ({:.1} GB/s of memory traffic)",
            b.bytes >> 20,
            b.htod_pinned,
            b.htod_pageable,
            b.dtod_copy,
            b.dtod_traffic
        );
    }
    println!(
        "  warm ingest: CPU {:.1} M rows/s{}",
        r.cpu_ingest_rows_per_s / 1e6,
        match (r.gpu_ingest_rows_per_s, r.gpu_ingest_gbs, r.ingest_vs_pinned) {
            (Some(rows), Some(gbs), Some(vs)) => format!(
                "; GPU {:.1} M rows/s = {gbs:.1} GB/s of device columns, {:.0}% of pinned host->device",
                rows / 1e6,
                vs * 100.0
            ),
            _ => String::new(),
        }
    );
    println!(
        "  range count ({} of {} rows): CPU {:.2} ms{}",
        r.range_count_rows,
        r.rows,
        r.range_count_cpu_ms,
        match (r.range_count_gpu_ms, r.range_count_gbs, r.range_count_vs_dtod) {
            (Some(ms), Some(gbs), Some(vs)) => format!(
                "; GPU {ms:.3} ms wall, kernel reads {gbs:.0} GB/s = {:.0}% of device->device copy traffic",
                vs * 100.0
            ),
            _ => String::new(),
        }
    );
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header([
        "warm tier",
        "rows",
        "CPU ms",
        "GPU ms",
        "speed-up",
        "same answer",
    ]);
    for s in &r.sides {
        t.add_row(vec![
            s.name.clone(),
            s.rows.to_string(),
            format!("{:.2}", s.cpu_ms),
            s.gpu_ms.map_or("-".into(), |v| format!("{v:.2}")),
            s.speedup.map_or("-".into(), |v| format!("{v:.1}x")),
            s.identical.map_or("-".into(), |v| {
                if v { "identical" } else { "DIFFERS" }.into()
            }),
        ]);
    }
    println!("{t}");
    if let Some(m) = &r.gpu_memory {
        println!("  GPU memory: {m}");
    }
    if let Some(why) = &r.no_gpu {
        println!("  no GPU: {why}");
    }
}
