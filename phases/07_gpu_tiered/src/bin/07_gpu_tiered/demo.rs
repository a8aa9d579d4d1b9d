//! `demo`: generated trades ingested with a live progress line, exact
//! per-tier counts, then query benchmarks.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use indicatif::{ProgressBar, ProgressStyle};

use tiered::config::Config;
use tiered::engine::Engine;
use tiered::error::{Error, Result};
use tiered::filter::{Filter, Scalar};
use tiered::gen::Generator;
use tiered::read::query::{Query, Sort};
use tiered::schema::Mode;
use tiered::store::cold::{self, ScanStats};

use crate::common::open;
use crate::common::{pct, print_tiers, rss_mb};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Records to ingest.
    #[arg(default_value_t = 1_000_000)]
    pub records: u64,
    /// Records per ingested batch.
    #[arg(long, default_value_t = 100_000)]
    pub batch_size: usize,
    /// Threads calling ingest at once (they share fsyncs).
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Distinct symbols.
    #[arg(long, default_value_t = 100)]
    pub symbols: usize,
    /// Warm tier budget in MB (default: a third of the data's warm size, so
    /// that the run shows all three tiers).
    #[arg(long)]
    pub warm_mb: Option<f64>,
    /// Skip the query benchmarks.
    #[arg(long)]
    pub no_queries: bool,
    /// Keep what the store already holds (default: start empty).
    #[arg(long)]
    pub keep: bool,
    /// Generate every batch before the clock starts, so that the rate is
    /// the engine's alone (the generator otherwise runs beside the
    /// writers, on the same cores). Holds the whole run in memory.
    #[arg(long)]
    pub pregenerate: bool,
}

/// Every batch of the run, as the ingest loop would generate them.
fn pregenerate(mode: Mode, d: &DemoArgs) -> Result<Vec<RecordBatch>> {
    let mut gen = Generator::new(mode, 42, d.symbols);
    let mut out = Vec::new();
    let mut made = 0u64;
    while made < d.records {
        let n = (d.records - made).min(d.batch_size as u64) as usize;
        out.push(gen.batch(n)?);
        made += n as u64;
    }
    Ok(out)
}

pub fn run(mut config: Config, d: &DemoArgs) -> Result<()> {
    if d.batch_size == 0 || d.writers == 0 {
        return Err(Error::InvalidArgument(
            "--batch-size and --writers must be at least 1".into(),
        ));
    }
    // Generated before the old store is deleted, so that the run writes
    // into the memory its deletion frees, as a writer that deletes its
    // previous output and writes again does (see chapter 07 on measuring
    // ingest in a VM). With --keep, the store's own mode decides, below.
    let mut ready = match (d.pregenerate, d.keep) {
        (true, false) => pregenerate(config.mode.unwrap_or(Mode::Simple), d)?,
        _ => Vec::new(),
    };
    let base = config.storage.base_path.clone();
    // The demo starts over by deleting the store's directory; a cold tier
    // elsewhere (an object store, a directory outside the store) is not
    // deleted with it, and a fresh store would find it another's.
    if !d.keep && config.cold_tier.url.is_some() {
        return Err(Error::InvalidArgument(
            "the demo deletes its store and starts over, but cold_tier.url puts the cold tier elsewhere, which it does not delete; run it without cold_tier.url, or with --keep".into(),
        ));
    }
    if !d.keep && base.exists() {
        let ours = base.join("catalog.sqlite").exists() || base.join("wal").exists();
        let empty = std::fs::read_dir(&base)
            .map(|mut r| r.next().is_none())
            .unwrap_or(false);
        if !ours && !empty {
            return Err(Error::InvalidArgument(format!(
                "{} exists and does not look like a store; choose another --storage",
                base.display()
            )));
        }
        std::fs::remove_dir_all(&base).map_err(|e| Error::io(&base, e))?;
    }
    // Warm bytes per record: the columns plus 4 bytes of symbol grouping.
    let per_row = if config.mode != Some(Mode::Trading) {
        32.0
    } else {
        52.0
    };
    let warm_mb = d.warm_mb.unwrap_or_else(|| {
        let data_mb = d.records as f64 * per_row / 1_048_576.0;
        (data_mb / 3.0).max(1.0)
    });
    config.warm_tier.max_memory_mb = warm_mb;
    config.check()?;
    let engine = open(config)?;
    let stats0 = engine.stats()?;
    println!(
        "Phase 07 demo: {} records, {} mode, batches of {}, {} writer threads",
        d.records,
        engine.mode().name(),
        d.batch_size,
        d.writers
    );
    println!(
        "  store {}; hot tier {} records, warm tier {:.1} MB on {}; WAL fsync {}",
        base.display(),
        engine.config().hot_tier.max_records,
        warm_mb,
        stats0.warm_device,
        if engine.config().wal.fsync {
            "on"
        } else {
            "OFF"
        }
    );
    println!("\nINGESTION");
    let mut gen = Generator::new(engine.mode(), 42, d.symbols);
    if d.pregenerate && d.keep {
        ready = pregenerate(engine.mode(), d)?;
    }
    if d.pregenerate {
        println!(
            "  {} batches generated before the clock started",
            ready.len()
        );
    }
    let mut ready = ready.into_iter();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(d.writers * 2);
    let rx = std::sync::Mutex::new(rx);
    let ingested = std::sync::atomic::AtomicU64::new(0);
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let bar = ProgressBar::new(d.records);
    bar.set_style(
        ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let fsyncs0 = engine.wal_stats().fsyncs;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        let migrator = s.spawn(|| engine.run_migrator(&stop));
        let mut writers = Vec::new();
        for _ in 0..d.writers {
            writers.push(s.spawn(|| loop {
                let batch = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok(batch) = batch else { return };
                match engine.ingest(&batch) {
                    Ok(_) => {
                        ingested.fetch_add(
                            batch.num_rows() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            }));
        }
        let mut sent = 0u64;
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        while sent < d.records {
            let n = (d.records - sent).min(d.batch_size as u64) as usize;
            let batch = match ready.next() {
                Some(b) => b,
                None => gen.batch(n)?,
            };
            if tx.send(batch).is_err() {
                break;
            }
            sent += n as u64;
            if last_draw.elapsed() >= Duration::from_millis(200) {
                last_draw = Instant::now();
                let done = ingested.load(std::sync::atomic::Ordering::Relaxed);
                let el = started.elapsed().as_secs_f64();
                let rate = done as f64 / el.max(1e-9);
                let st = engine.stats()?;
                let eta = (d.records - done) as f64 / rate.max(1.0);
                bar.set_message(format!(
                    "{done}/{} records ({:.1}%) | {:.0} rec/s | Hot: {} | Warm: {} | Cold: {} | RAM: {:.0} MB | {} | ETA: {:.1} s",
                    d.records,
                    pct(done, d.records),
                    rate,
                    st.hot_records,
                    st.warm_records,
                    st.cold_records,
                    rss_mb(),
                    st.warm_device,
                    eta
                ));
                bar.tick();
            }
        }
        drop(tx);
        for w in writers {
            let _ = w.join();
        }
        // The writers are done; stop the migrator and surface its error.
        stop.store(true, std::sync::atomic::Ordering::Release);
        match migrator.join() {
            Ok(r) => r,
            Err(_) => Err(Error::InvalidArgument(
                "the migration thread panicked".into(),
            )),
        }
    })?;
    bar.finish_and_clear();
    if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let st = engine.stats()?;
    let fsyncs = engine.wal_stats().fsyncs - fsyncs0;
    let expected = stats0.total() + d.records;
    println!(
        "  {} records in {:.2} s = {:.0} records/s; {} fsyncs ({:.0} records per fsync); {} migrations to Parquet",
        d.records,
        elapsed,
        d.records as f64 / elapsed,
        fsyncs,
        d.records as f64 / fsyncs.max(1) as f64,
        st.migrations
    );
    println!(
        "\nINGESTION COMPLETE ({})",
        if st.total() == expected {
            "exact match".to_string()
        } else {
            format!("MISMATCH: expected {expected}")
        }
    );
    print_tiers(&st);
    println!("   RAM: {:.0} MB", rss_mb());
    if st.total() != expected {
        return Err(Error::InvalidArgument(format!(
            "tier counts add up to {}, expected {expected}",
            st.total()
        )));
    }
    if !d.no_queries {
        println!("\nQUERIES");
        demo_queries(&engine, &gen)?;
    }
    Ok(())
}

fn demo_queries(engine: &Engine, gen: &Generator) -> Result<()> {
    let end = gen.now();
    let start = tiered::gen::START_NS;
    let span = end - start;
    let sym = gen.symbol(0);
    let mut queries: Vec<(String, Query)> = vec![
        (
            format!("symbol = {sym} (count)"),
            Query {
                filters: vec![Filter::eq("symbol", sym.as_str())],
                columns: Some(vec!["timestamp".into()]),
                ..Query::default()
            },
        ),
        (
            format!("symbol = {sym}, first 1% of time"),
            Query {
                filters: vec![
                    Filter::eq("symbol", sym.as_str()),
                    Filter::range(
                        "timestamp",
                        Some(Scalar::Int(start)),
                        Some(Scalar::Int(start + span / 100)),
                    ),
                ],
                ..Query::default()
            },
        ),
        (
            "3 symbols IN, last hour, newest 100".into(),
            Query {
                filters: vec![
                    Filter::is_in("symbol", [gen.symbol(1), gen.symbol(2), gen.symbol(3)]),
                    Filter::range(
                        "timestamp",
                        Some(Scalar::Int(end - 3_600_000_000_000)),
                        None,
                    ),
                ],
                sort: Some(Sort {
                    column: "timestamp".into(),
                    descending: true,
                }),
                limit: Some(100),
                ..Query::default()
            },
        ),
        (
            "top 1000 by price (all data, k-way merge)".into(),
            Query {
                sort: Some(Sort {
                    column: "price".into(),
                    descending: true,
                }),
                limit: Some(1000),
                columns: Some(vec!["symbol".into(), "price".into()]),
                ..Query::default()
            },
        ),
        (
            "volume >= 9.99 (full scan, filter)".into(),
            Query {
                filters: vec![Filter::range("volume", Some(Scalar::Float(9.99)), None)],
                ..Query::default()
            },
        ),
        (
            "first 10 rows, no filter (early stop)".into(),
            Query {
                limit: Some(10),
                ..Query::default()
            },
        ),
    ];
    if engine.mode() == Mode::Trading {
        queries.push((
            "side = buy AND exchange IN (kraken, binance)".into(),
            Query {
                filters: vec![
                    Filter::eq("side", "buy"),
                    Filter::is_in("exchange", ["kraken", "binance"]),
                ],
                columns: Some(vec!["trade_id".into()]),
                ..Query::default()
            },
        ));
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "query",
        "rows",
        "hot",
        "warm",
        "cold",
        "files pruned",
        "row groups pruned",
        "pages pruned",
        "cold bytes read",
        "ms",
    ]);
    for (name, q) in &queries {
        let (_batch, s) = engine.query(q)?.collect_batch()?;
        table.add_row(vec![
            name.clone(),
            s.rows_out.to_string(),
            s.hot_rows.to_string(),
            s.warm_rows.to_string(),
            s.cold_rows.to_string(),
            format!("{}/{}", s.cold.files_pruned, s.cold.files_total),
            format!("{}/{}", s.cold.row_groups_pruned, s.cold.row_groups_total),
            format!("{}/{}", s.cold.pages_pruned, s.cold.pages_total),
            s.cold.bytes_read.to_string(),
            format!("{:.2}", s.elapsed.as_secs_f64() * 1e3),
        ]);
    }
    println!("{table}");
    // Aggregates: each tier reduces its own rows, the warm tier where its
    // columns live.
    let aggregates = crate::gpubench::sample_aggregates(&sym, start, end)?;
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "aggregate",
        "groups",
        "hot",
        "warm",
        "cold",
        "warm on",
        "warm ms",
        "ms",
    ]);
    for (name, filters, buckets) in &aggregates {
        let (_, s) = engine.aggregate(filters, buckets)?;
        table.add_row(vec![
            name.clone(),
            s.groups.to_string(),
            s.hot_rows.to_string(),
            s.warm_rows.to_string(),
            s.cold_rows.to_string(),
            s.warm_device.clone(),
            format!("{:.2}", s.warm_ms),
            format!("{:.2}", s.total_ms),
        ]);
    }
    println!("{table}");
    // How close does pruning come to the minimum? A query for one symbol's
    // 1% of the cold data, bytes read vs. the row groups holding matches.
    let preds = tiered::filter::bind_all(&[Filter::eq("symbol", sym.as_str())], engine.schema())?;
    let files = engine.with_catalog(|c| c.files())?;
    let mut minimum = 0u64;
    let mut scan = ScanStats::default();
    for f in &files {
        if !cold::file_may_match(f, &preds) {
            continue;
        }
        minimum += cold::matching_row_group_bytes(engine.cold_store(), &f.path, &preds)?;
        let all: Vec<usize> = (0..engine.schema().fields().len()).collect();
        cold::scan_file(
            engine.cold_store(),
            f,
            engine.schema(),
            &preds,
            &all,
            8192,
            &mut scan,
            None,
            |_| Ok(true),
        )?;
    }
    let cold_rows: u64 = files.iter().map(|f| f.rows).sum();
    if cold_rows > 0 {
        println!(
            "  cold pruning, symbol = {sym} ({:.2}% of the cold rows): read {} bytes; the row groups holding the matches are {} bytes ({:.2}x)",
            pct(scan.rows_matched, cold_rows),
            scan.bytes_read,
            minimum,
            scan.bytes_read as f64 / minimum.max(1) as f64
        );
    }
    Ok(())
}
