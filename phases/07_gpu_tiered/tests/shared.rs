//! Several stores writing one cold table (`cold_tier.shared`): each with
//! its own WAL, hot and warm tiers and catalog, all committing their
//! Parquet files to one Delta table (on local disk, or in an S3 server
//! started by the test), and each answering queries over the whole table
//! plus its own memory tiers.
//!
//! `SSIG_CRASH_KILLS` sets the kills of the process harness (default 6 in
//! CI). For a large run, `SSIG_SHARED_FILES` and `SSIG_SHARED_FILE_ROWS`
//! set each writer's files and their rows (default 3 + kills/2 files of
//! 3,000; with more rows per file the tiers are made larger, so that a
//! migration moves hundreds of thousands of rows), and `SSIG_SHARED_KEEP`
//! names a directory to keep the S3 server's folder in (its bucket folder
//! is the table, which the `deltalake` package then reads as a local one).

mod common;
#[path = "common/s3_server.rs"]
mod s3_server;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType};
use arrow_array::RecordBatch;
use rand::{Rng, SeedableRng};
use tiered::config::Config;
use tiered::gen::Generator;
use tiered::read::query::Query;
use tiered::schema::Mode;
use tiered::store::catalog::Catalog;
use tiered::store::objects::ColdStore;
use tiered::store::table::ColdTable;
use tiered::Engine;

const DAY_NS: i64 = 86_400_000_000_000;

/// Store `name`'s configuration, its cold tier at `url`, shared.
fn config(dir: &Path, name: &str, url: &str, server: Option<&s3_server::Server>) -> Config {
    let mut config = common::small_config(&dir.join(name), Mode::Trading);
    config.hot_tier.max_records = 1_500;
    config.warm_tier.max_memory_mb = 0.1;
    config.cold_tier.url = Some(url.to_string());
    config.cold_tier.shared = true;
    if let Some(s) = server {
        config.cold_tier.endpoint = Some(s.endpoint.clone());
        config.cold_tier.allow_http = true;
    }
    config
}

/// `rows` generated trades with trade ids `first..`, over a few days.
fn trades(first: i64, rows: usize, seed: usize) -> RecordBatch {
    let b = Generator::new(Mode::Trading, 8, seed).batch(rows).unwrap();
    let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
    let spread = arrow_array::TimestampNanosecondArray::from_iter_values(
        ts.values()
            .iter()
            .enumerate()
            .map(|(i, t)| t + (first + i as i64) % 3 * DAY_NS),
    )
    .with_timezone("UTC");
    let ids = arrow_array::Int64Array::from_iter_values((0..rows as i64).map(|i| first + i));
    let mut cols = b.columns().to_vec();
    cols[0] = Arc::new(spread);
    cols[6] = Arc::new(ids);
    RecordBatch::try_new(b.schema(), cols).unwrap()
}

/// Every trade id a store reads (its tiers and the whole shared table),
/// and how many rows.
fn ids(config: &Config) -> (BTreeSet<i64>, usize) {
    let engine = Engine::open_read_only(config.clone()).unwrap();
    let q = Query {
        columns: Some(vec!["trade_id".into()]),
        ..Query::default()
    };
    let (ids, _) = engine.query(&q).unwrap().collect_batch().unwrap();
    let all = ids.column(0).as_primitive::<Int64Type>().values().to_vec();
    (all.iter().copied().collect(), all.len())
}

/// The table holds exactly the files the stores' catalogs list, and each
/// store's txn version is its watermark.
fn assert_table_is_the_catalogs(stores: &[&Config]) {
    let mut listed = BTreeSet::new();
    let mut state = None;
    for c in stores {
        let catalog = Catalog::open_read_only(&c.catalog_path()).unwrap();
        let (id, _) = catalog.store_id().unwrap().unwrap();
        for f in catalog.files().unwrap() {
            assert!(
                f.path.to_string_lossy().contains(&id),
                "{:?} carries its store's ID",
                f.path
            );
            assert!(listed.insert(f.path), "no file listed twice");
        }
        let s = ColdTable::open(&ColdStore::of(c).unwrap(), &id)
            .unwrap()
            .state()
            .unwrap();
        assert_eq!(
            s.committed_through.unwrap_or(0),
            catalog.watermark().unwrap()
        );
        state = Some(s);
    }
    let held: BTreeSet<PathBuf> = state.unwrap().files.into_iter().map(|f| f.path).collect();
    assert_eq!(held, listed, "the table's files are the catalogs'");
}

/// Two stores, in two threads at once, ingesting and migrating into one
/// table at `url`; both then read every row of both, once.
fn two_writers(dir: &Path, url: &str, server: Option<&s3_server::Server>) {
    let a = config(dir, "a", url, server);
    let b = config(dir, "b", url, server);
    let handles: Vec<_> = [(a.clone(), 0i64), (b.clone(), 1_000_000)]
        .into_iter()
        .map(|(config, base)| {
            std::thread::spawn(move || {
                let engine = Engine::open(config).unwrap();
                for round in 0..8 {
                    let first = base + round * 1_000;
                    engine
                        .ingest(&trades(first, 1_000, round as usize))
                        .unwrap();
                    engine.migrate_all().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let want: BTreeSet<i64> = (0..8_000).chain(1_000_000..1_008_000).collect();
    for c in [&a, &b] {
        assert_eq!(ids(c), (want.clone(), 16_000), "{:?}", c.storage.base_path);
    }
    assert_table_is_the_catalogs(&[&a, &b]);
    // A store that is not shared refuses the table (other stores' files).
    let mut alone = config(dir, "c", url, server);
    alone.cold_tier.shared = false;
    let e = Engine::open(alone).unwrap_err().to_string();
    assert!(e.contains("nothing was changed"), "{e}");
}

#[test]
fn two_stores_share_one_table_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    two_writers(dir.path(), &format!("file://{}", shared.display()), None);
    // Nobody owns a shared tier.
    assert!(!shared.join("_store").exists());
}

#[test]
fn two_stores_share_one_table_on_s3() {
    s3_server::credentials();
    let dir = tempfile::tempdir().unwrap();
    let server = s3_server::Server::start(&dir.path().join("s3"));
    two_writers(
        dir.path(),
        &format!("s3://{}/shared", s3_server::BUCKET),
        Some(&server),
    );
}

#[test]
fn a_shared_store_refuses_a_tier_another_store_owns_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cold = dir.path().join("cold");
    let url = format!("file://{}", cold.display());
    let mut alone = config(dir.path(), "a", &url, None);
    alone.cold_tier.shared = false;
    let engine = Engine::open(alone).unwrap();
    engine.ingest(&trades(0, 1_000, 1)).unwrap();
    engine.migrate_all().unwrap();
    drop(engine);
    let e = Engine::open(config(dir.path(), "b", &url, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("belongs to store"), "{e}");
}

/// A store that is not shared, pointed at a shared table's tier, is
/// refused with the reason (the files are other stores'), not only "the
/// catalog is missing" (found by a break test); nothing changes.
#[test]
fn a_store_not_shared_is_told_the_tier_is_a_shared_one() {
    let dir = tempfile::tempdir().unwrap();
    let cold = dir.path().join("cold");
    let url = format!("file://{}", cold.display());
    let engine = Engine::open(config(dir.path(), "a", &url, None)).unwrap();
    engine.ingest(&trades(0, 1_000, 1)).unwrap();
    engine.migrate_all().unwrap();
    drop(engine);
    let before = common::files_under(&cold);
    let mut alone = config(dir.path(), "b", &url, None);
    alone.cold_tier.shared = false;
    let e = Engine::open(alone).unwrap_err().to_string();
    assert!(
        e.contains("named for stores of a shared tier") && e.contains("cold_tier.shared"),
        "{e}"
    );
    assert_eq!(common::files_under(&cold), before, "nothing changed");
}

/// Batch files of one writer: `files` CSVs of 10 batches of 300 trades,
/// trade ids from `base`.
fn write_csvs(dir: &Path, writer: &str, base: i64, files: usize, rows: usize) -> Vec<PathBuf> {
    (0..files)
        .map(|f| {
            let path = dir.join(format!("{writer}-{f}.csv"));
            common::write_trades_csv(&path, [trades(base + (f * rows) as i64, rows, f + 10)]);
            path
        })
        .collect()
}

/// Two writer processes (`07_gpu_tiered ingest FILE --idempotency-key K`,
/// migrating as their warm tiers fill) on one table in the S3 server, one
/// of them killed (SIGKILL) at a random moment again and again, each run
/// again until its file is in: at the end both stores read every trade of
/// every file exactly once.
#[test]
fn two_writer_processes_killed_at_random_keep_every_row_once() {
    s3_server::credentials();
    let kills: usize = std::env::var("SSIG_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let file_rows = env("SSIG_SHARED_FILE_ROWS").unwrap_or(3_000);
    let file_count = env("SSIG_SHARED_FILES").unwrap_or(3 + kills / 2);
    let dir = tempfile::tempdir().unwrap();
    let server = s3_server::Server::start(&dir.path().join("s3"));
    let url = format!("s3://{}/killed", s3_server::BUCKET);
    let second = 1i64 << 40;
    let writers: Vec<(Config, PathBuf, Vec<PathBuf>)> = [("a", 0i64), ("b", second)]
        .into_iter()
        .map(|(name, base)| {
            let mut config = config(dir.path(), name, &url, Some(&server));
            if file_rows > 3_000 {
                config.hot_tier.max_records = 100_000;
                config.warm_tier.max_memory_mb = 32.0;
            }
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
            let files = write_csvs(dir.path(), name, base, file_count, file_rows);
            (config, path, files)
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    // Next file of each writer, and its running process.
    let mut next = [0usize; 2];
    let mut running: [Option<std::process::Child>; 2] = [None, None];
    let (mut killed, started) = (0usize, Instant::now());
    let spawn = |w: usize, f: usize| {
        let (_, path, files) = &writers[w];
        Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
            .arg("--config")
            .arg(path)
            .arg("ingest")
            .arg(&files[f])
            .args(["--batch-size", &(file_rows / 10).max(1).to_string()])
            .args(["--idempotency-key", &format!("file-{f}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    loop {
        for w in 0..2 {
            if running[w].is_none() && next[w] < writers[w].2.len() {
                running[w] = Some(spawn(w, next[w]));
            }
        }
        if running.iter().all(Option::is_none) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600 * (file_rows / 3_000).max(1) as u64),
            "the writers did not finish"
        );
        let longest = (400 * file_rows / 3_000).clamp(400, 4_000) as u64;
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..longest)));
        // Kill one writer while kills remain; reap the ones that ended.
        let victim = rng.gen_range(0..2usize);
        for w in 0..2 {
            let Some(child) = running[w].as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "writer {w} failed on its own");
                next[w] += 1;
                running[w] = None;
            } else if w == victim && killed < kills {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                running[w] = None;
            }
        }
    }
    // Every record into the table, by each writer's own open.
    for (config, _, _) in &writers {
        Engine::open(config.clone()).unwrap().migrate_all().unwrap();
    }
    let mut want = BTreeSet::new();
    for (w, base) in [0i64, second].into_iter().enumerate() {
        want.extend(base..base + (writers[w].2.len() * file_rows) as i64);
    }
    for (config, _, _) in &writers {
        let (got, rows) = ids(config);
        assert_eq!(rows, want.len(), "no row twice");
        assert_eq!(got, want, "every row");
    }
    assert_table_is_the_catalogs(&[&writers[0].0, &writers[1].0]);
    if let Ok(keep) = std::env::var("SSIG_SHARED_KEEP") {
        let status = Command::new("cp")
            .args(["-r"])
            .arg(dir.path().join("s3"))
            .arg(&keep)
            .status()
            .unwrap();
        assert!(status.success());
    }
    println!(
        "{killed} kills, {} rows, {:.1} s",
        want.len(),
        started.elapsed().as_secs_f64()
    );
}
