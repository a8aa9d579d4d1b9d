//! Phase 06 goals, measured: a one-series, one-hour query end to end
//! (parse, plan, read, decode), on the default data and on the market
//! profile (timestamp columns in parts); a one-series query over 1% of the time
//! range; an hourly aggregate over a week from raw samples and from
//! phase 05's rollups; a full-scan `avg(value)` in samples per second on one core.
//! The files live on disk (a temporary directory), read through the page
//! cache, as the phase reads them.
//!
//! `cargo bench --bench query`; `SSIG_BENCH_POINTS` sets the size of the
//! full-scan dataset (default 10,000,000 samples).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use squeeze::course::query_engine::{ident, literal};
use squeeze::format::metrics::{self, BlockOptions};
use squeeze::generate::{generate, GenerateConfig};
use squeeze::query::{table::format_time, Engine};

fn engine_for(
    config: &GenerateConfig,
    dir: &std::path::Path,
    name: &str,
) -> (Engine, squeeze::Dataset) {
    let d = generate(config).expect("valid config");
    let path = dir.join(name);
    metrics::write(&d, &path, BlockOptions::default()).expect("write");
    (Engine::open(&path).expect("open"), d)
}

fn one_series(d: &squeeze::Dataset, start: i64, end: i64) -> String {
    let s = &d.series[0];
    let labels: Vec<String> = s
        .key
        .labels
        .iter()
        .map(|(k, v)| format!("{} = {}", ident(k), literal(v)))
        .collect();
    format!(
        "SELECT ts, value FROM {} WHERE {} AND ts >= {} AND ts < {}",
        ident(&s.key.metric),
        labels.join(" AND "),
        literal(&format_time(start)),
        literal(&format_time(end))
    )
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (small, d) = engine_for(&GenerateConfig::default(), dir.path(), "default.metrics");
    let (lo, hi) = d.time_range().expect("samples");
    let mut g = c.benchmark_group("query/default");
    let hour = one_series(&d, lo, lo + 3_600_000_000_000);
    g.bench_function("one series, one hour", |b| {
        b.iter(|| black_box(small.query(&hour).expect("query").table.rows.len()))
    });
    let span = (hi - lo) / 100;
    let pct = one_series(&d, lo + 50 * span, lo + 51 * span);
    g.bench_function("one series, 1% of the range", |b| {
        b.iter(|| black_box(small.query(&pct).expect("query").table.rows.len()))
    });
    let pct_all = format!(
        "SELECT avg(value) FROM cpu_usage_percent WHERE ts >= {} AND ts < {}",
        literal(&format_time(lo + 50 * span)),
        literal(&format_time(lo + 51 * span))
    );
    g.bench_function("every cpu series, 1% of the range, avg", |b| {
        b.iter(|| black_box(small.query(&pct_all).expect("query").table.rows.len()))
    });
    g.finish();

    // The market profile: trades at random instants, whose shared
    // timestamp columns are stored in parts (a range reads the parts it needs).
    let (market, d) = engine_for(
        &GenerateConfig {
            profile: squeeze::generate::Profile::Market,
            ..GenerateConfig::default()
        },
        dir.path(),
        "market.metrics",
    );
    let (lo, _) = d.time_range().expect("samples");
    let mut g = c.benchmark_group("query/market");
    let hour = one_series(&d, lo + 3_600_000_000_000, lo + 7_200_000_000_000);
    g.bench_function("one series, one hour", |b| {
        b.iter(|| black_box(market.query(&hour).expect("query").table.rows.len()))
    });
    g.finish();

    // An hourly aggregate over a week of 15 s samples, from the raw file
    // and from phase 05's rollups beside it (phases 00, 04 and 05 run
    // into a temporary directory first).
    let rollup_dir = dir.path().join("rollups");
    let ctx = squeeze::course::Context::new(&rollup_dir);
    let week = GenerateConfig {
        series: 4,
        points: 4 * 7 * 24 * 240,
        ..GenerateConfig::default()
    };
    squeeze::course::generate::run(
        &ctx,
        &squeeze::course::generate::DatasetSource::Generate(week),
    )
    .expect("phase 00");
    squeeze::course::custom_binary::run(&ctx, BlockOptions::default()).expect("phase 04");
    squeeze::course::downsampling::run(&ctx).expect("phase 05");
    let path = rollup_dir.join(metrics::FILE_NAME);
    let raw = Engine::open(&path).expect("open");
    let rolled = Engine::open_with_rollups(&path).expect("open with rollups");
    let hourly = "SELECT time_bucket('1h', ts) AS h, host, avg(value), max(value), count(*) \
                  FROM cpu_usage_percent GROUP BY h, host";
    assert!(!rolled
        .query(hourly)
        .expect("query")
        .stats
        .rollup_series
        .is_empty());
    let mut g = c.benchmark_group("query/hourly-week");
    g.bench_function("raw samples", |b| {
        b.iter(|| black_box(raw.query(hourly).expect("query").table.rows.len()))
    });
    g.bench_function("rollups", |b| {
        b.iter(|| black_box(rolled.query(hourly).expect("query").table.rows.len()))
    });
    g.finish();

    let points: u64 = std::env::var("SSIG_BENCH_POINTS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(10_000_000);
    let (big, d) = engine_for(
        &GenerateConfig {
            points,
            ..GenerateConfig::default()
        },
        dir.path(),
        "big.metrics",
    );
    let metrics: Vec<String> = big
        .index()
        .metrics()
        .map(|m| format!("SELECT avg(value) FROM {}", ident(m)))
        .collect();
    let mut g = c.benchmark_group("query/full-scan");
    g.sample_size(10);
    g.throughput(Throughput::Elements(d.sample_count()));
    g.bench_function(
        format!("avg(value) of every metric, {points} samples"),
        |b| {
            b.iter(|| {
                for q in &metrics {
                    black_box(big.query(q).expect("query").table.rows.len());
                }
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
