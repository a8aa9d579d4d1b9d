//! Phase 07 on the CPU: ingest, a filtered query and an aggregate, each
//! through the engine as a user calls it. The store lives in a temporary
//! directory; the warm tier is the CPU one (`warm_tier.device = cpu`) so
//! that the numbers do not depend on a GPU being there.
//!
//! - `ingest/wal-fsync` and `ingest/no-fsync`: batches of 10,000 generated
//!   trades into the WAL and the memory tiers (records per second), with the
//!   WAL fsynced per write (the default) and without (the CPU path alone).
//!   The warm budget is large enough that no migration to Parquet runs
//!   during the bench: migrations come in bursts, and their cost is the
//!   demo's to show (chapter 07's Measured section).
//! - `query/*`: one symbol over one hour of 1,000,000 records spread over
//!   the three tiers (about 60% in Parquet), all columns, as NDJSON's
//!   caller reads them (Arrow batches).
//! - `aggregate/*`: one-minute bars of every symbol over the same data.
//! - `bars/*`: the newest 100 one-hour bars of one symbol (of 100) in a
//!   store of 600,000 trades over a week, all in Parquet but the newest
//!   10,000: from the catalog's materialised bars alone (`Catalog::latest_bars`),
//!   through the engine (those merged with the memory tiers), and computed
//!   from the raw rows (`Engine::latest_bars_from_raw`, the reference).
//!
//! `cargo bench -p gpu-tiered --bench tiered`; `SSIG_BENCH_RECORDS` sets the
//! size of the query and aggregate store (default 1,000,000).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tiered::agg::{Buckets, MAX_BUCKETS};
use tiered::config::Config;
use tiered::filter::{Filter, Scalar};
use tiered::gen::{Generator, START_NS};
use tiered::read::query::Query;
use tiered::schema::Mode;
use tiered::store::bars::Timeframe;
use tiered::Engine;

const BATCH: usize = 10_000;
const HOUR_NS: i64 = 3_600_000_000_000;

fn config(dir: &std::path::Path, fsync: bool) -> Config {
    let mut c = Config {
        mode: Some(Mode::Trading),
        ..Config::default()
    };
    c.storage.base_path = dir.to_path_buf();
    c.warm_tier.device = "cpu".into();
    c.wal.fsync = fsync;
    c
}

fn ingest(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(BATCH as u64));
    for fsync in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = config(dir.path(), fsync);
        c.warm_tier.max_memory_mb = 8192.0;
        let engine = Engine::open(c).expect("open");
        let mut gen = Generator::new(Mode::Trading, 1, 100);
        let name = if fsync { "wal-fsync" } else { "no-fsync" };
        g.bench_function(name, |b| {
            b.iter_batched(
                || gen.batch(BATCH).expect("batch"),
                |batch| engine.ingest(&batch).expect("ingest"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// A store of `n` trading records over the three tiers: the oldest
/// migrated to Parquet, the rest as the thresholds leave them.
fn store(dir: &std::path::Path, n: usize) -> Engine {
    let mut c = config(dir, false);
    c.hot_tier.max_records = n as u64 / 10;
    c.warm_tier.max_memory_mb = (n as f64 * 48.0 * 0.3) / 1e6;
    let engine = Engine::open(c).expect("open");
    let mut gen = Generator::new(Mode::Trading, 7, 100);
    for _ in 0..n.div_ceil(BATCH) {
        engine
            .ingest(&gen.batch(BATCH).expect("batch"))
            .expect("ingest");
    }
    engine
}

fn reads(c: &mut Criterion) {
    let n: usize = std::env::var("SSIG_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = store(dir.path(), n);
    let s = engine.stats().expect("stats");
    eprintln!(
        "store: {} records: hot {}, warm {}, cold {} in {} files",
        s.total(),
        s.hot_records,
        s.warm_records,
        s.cold_records,
        s.cold_files
    );
    let one_hour = Query {
        filters: vec![
            Filter::eq("symbol", "BTC/USD"),
            Filter::range(
                "timestamp",
                Some(Scalar::Int(START_NS)),
                Some(Scalar::Int(START_NS + HOUR_NS)),
            ),
        ],
        ..Query::default()
    };
    let mut g = c.benchmark_group("query");
    g.bench_function("one symbol, one hour", |b| {
        b.iter(|| {
            engine
                .query(&one_hour)
                .expect("query")
                .collect_batch()
                .expect("rows")
        })
    });
    g.finish();
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(s.total()));
    let buckets = Buckets::new(
        START_NS,
        START_NS + 24 * HOUR_NS,
        60_000_000_000,
        MAX_BUCKETS,
    )
    .expect("buckets");
    g.bench_function("1-minute bars, every symbol", |b| {
        b.iter(|| engine.aggregate(&[], &buckets).expect("aggregate"))
    });
    g.finish();
}

fn bars(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(config(dir.path(), false)).expect("open");
    let mut gen = Generator::new(Mode::Trading, 11, 100);
    gen.mean_gap_ns = 1_000_000_000;
    for _ in 0..60 {
        engine
            .ingest(&gen.batch(BATCH).expect("batch"))
            .expect("ingest");
    }
    engine.migrate_all().expect("migrate");
    engine
        .ingest(&gen.batch(BATCH).expect("batch"))
        .expect("ingest");
    let tf = Timeframe::parse("1h").expect("1h");
    let symbol = gen.symbol(0);
    let (from_catalog, stats) = engine.latest_bars(&symbol, tf, 100).expect("bars");
    let (from_raw, _) = engine
        .latest_bars_from_raw(&symbol, tf, 100)
        .expect("raw bars");
    assert_eq!(stats.source, "catalog");
    assert_eq!(
        from_catalog, from_raw,
        "the catalog's bars are the raw rows' bars"
    );
    assert_eq!(from_catalog.len(), 100);
    let mut g = c.benchmark_group("bars");
    g.bench_function("newest 100 1h bars, catalog alone", |b| {
        b.iter(|| {
            engine
                .with_catalog(|c| c.latest_bars(&symbol, tf, 100))
                .expect("catalog")
        })
    });
    g.bench_function("newest 100 1h bars, engine", |b| {
        b.iter(|| engine.latest_bars(&symbol, tf, 100).expect("bars"))
    });
    g.bench_function("newest 100 1h bars, from raw rows", |b| {
        b.iter(|| {
            engine
                .latest_bars_from_raw(&symbol, tf, 100)
                .expect("raw bars")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = ingest, reads, bars
}
criterion_main!(benches);
