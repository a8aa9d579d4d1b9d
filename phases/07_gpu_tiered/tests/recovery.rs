//! Recovery never deletes or silently changes data (issue 16). Each test is
//! one kind of fault: a missing or empty catalog, a flipped bit in a
//! catalog path, in a cold file, in the watermark, a missing first WAL
//! segment, a file the catalog lost. Every case either refuses, naming what
//! is wrong and changing nothing, or answers exactly what was stored; and
//! `repair` brings the store back exactly.
//!
//! The cold bit-flip test flips every bit of `SSIG_FLIP_BYTES` bytes (spread
//! evenly, default 12, plus 5 at the ends) of `SSIG_FLIP_FILES` cold files
//! (the first and the last by default; `all`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use common::{concat, files_under, row_keys, small_config};
use tiered::config::Config;
use tiered::engine::recovery;
use tiered::filter::{Filter, Scalar};
use tiered::gen::Generator;
use tiered::read::query::{Query, Sort};
use tiered::schema::Mode;
use tiered::store::wal;
use tiered::Engine;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Fills a store of `config` with `n` batches of 200 trading records (about
/// a day and a half), spread over the three tiers, and closes it; returns
/// every record ingested, sorted.
fn fill(config: &Config, n: usize) -> Vec<String> {
    fill_with(config, n, true)
}

/// [`fill`], checking that every tier holds records only when `spread`.
fn fill_with(config: &Config, n: usize, spread: bool) -> Vec<String> {
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Trading, 5, 12);
    g.mean_gap_ns = 20_000_000_000;
    let mut all = Vec::new();
    for _ in 0..n {
        let b = g.batch(200).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
    }
    let s = engine.stats().unwrap();
    assert!(
        !spread || (s.cold_files >= 2 && s.warm_records > 0 && s.hot_records > 0),
        "{s:?}"
    );
    sorted(row_keys(&concat(&all)))
}

/// Every record the store answers with, sorted.
fn everything(engine: &Engine) -> Vec<String> {
    let (b, _) = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap();
    sorted(row_keys(&b))
}

/// (cold files, cold records, all records, watermark) of a reopened store.
fn counts(config: &Config) -> (u64, u64, u64, u64) {
    let e = Engine::open(config.clone()).unwrap();
    let s = e.stats().unwrap();
    (s.cold_files, s.cold_records, s.total(), s.watermark_lsn)
}

fn parquet_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|x| x == "parquet"))
        .collect()
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn bin(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SSIG_STORAGE_PATH")
        .output()
        .unwrap()
}

#[test]
fn a_missing_or_empty_catalog_is_refused_and_repair_rebuilds_it_exactly() {
    for emptied in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(dir.path(), Mode::Trading);
        let want = fill(&config, 30);
        let before = counts(&config);
        let cold = parquet_under(&config.cold_dir());
        let log = files_under(&config.wal_dir());
        let cat = config.catalog_path();
        if emptied {
            std::fs::write(&cat, b"").unwrap();
        } else {
            std::fs::remove_file(&cat).unwrap();
        }
        let e = Engine::open(config.clone()).unwrap_err().to_string();
        let said = if emptied { "is empty" } else { "is missing" };
        assert!(
            e.contains(said) && e.contains("07_gpu_tiered repair"),
            "{e}"
        );
        assert!(e.contains("no file was deleted"), "{e}");
        assert_eq!(
            parquet_under(&config.cold_dir()),
            cold,
            "no cold file changed"
        );
        assert_eq!(
            files_under(&config.wal_dir()),
            log,
            "no WAL segment changed"
        );
        assert_eq!(cat.exists(), emptied, "no catalog was created");

        let r = recovery::repair(&config, false).unwrap();
        assert_eq!(r.files as u64, before.0, "{r:?}");
        assert_eq!(r.watermark, before.3, "{r:?}");
        assert_eq!(
            parquet_under(&config.cold_dir()),
            cold,
            "repair moved no file"
        );
        assert_eq!(counts(&config), before);
        let engine = Engine::open(config.clone()).unwrap();
        assert_eq!(everything(&engine), want);
        // And it goes on: more records, another migration, a reopen.
        let mut g = Generator::new(Mode::Trading, 6, 12);
        g.mean_gap_ns = 20_000_000_000;
        for _ in 0..5 {
            engine.ingest(&g.batch(200).unwrap()).unwrap();
        }
        engine.migrate_all().unwrap();
        drop(engine);
        assert_eq!(counts(&config).2, before.2 + 1000);
    }
}

#[test]
fn the_command_line_refuses_a_store_without_its_catalog_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(&dir.path().join("store"), Mode::Trading);
    fill(&config, 30);
    let before = counts(&config);
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, serde_json::to_string(&config).unwrap()).unwrap();
    let cold = parquet_under(&config.cold_dir());
    std::fs::remove_file(config.catalog_path()).unwrap();

    let o = bin(&cfg, &["stats"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "stats must not succeed: {err}");
    assert!(err.contains("07_gpu_tiered repair"), "{err}");
    assert_eq!(
        parquet_under(&config.cold_dir()),
        cold,
        "stats deleted nothing"
    );

    let o = bin(&cfg, &["repair"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!("watermark LSN {}", before.3)),
        "{out}"
    );
    let o = bin(&cfg, &["stats", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(counts(&config), before);
    assert_eq!(parquet_under(&config.cold_dir()), cold);
}

#[test]
fn a_flipped_bit_in_a_catalog_path_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let cat = config.catalog_path();
    let sidecar = PathBuf::from(format!("{}-wal", cat.display()));
    assert!(!sidecar.exists(), "the catalog was checkpointed at close");
    let original = std::fs::read(&cat).unwrap();
    let files = Engine::open(config.clone())
        .unwrap()
        .with_catalog(|c| c.files())
        .unwrap();
    let victim = files[0].path.to_str().unwrap().as_bytes().to_vec();
    let at = find_all(&original, &victim);
    assert!(!at.is_empty());
    let cold = parquet_under(&config.cold_dir());
    let (mut refused, mut exact) = (0, 0);
    for &start in &at {
        for i in 0..victim.len() {
            for bit in 0..8 {
                let mut bytes = original.clone();
                bytes[start + i] ^= 1 << bit;
                std::fs::write(&cat, &bytes).unwrap();
                match Engine::open(config.clone()) {
                    Err(e) => {
                        let e = e.to_string();
                        assert!(e.contains("07_gpu_tiered repair"), "{e}");
                        refused += 1;
                    }
                    Ok(engine) => {
                        assert_eq!(everything(&engine), want, "byte {} bit {bit}", start + i);
                        exact += 1;
                    }
                }
                assert_eq!(
                    parquet_under(&config.cold_dir()),
                    cold,
                    "a flip at byte {} bit {bit} changed the cold tier",
                    start + i
                );
            }
        }
    }
    eprintln!(
        "catalog path flips: {} copies of the path, {} flips: {refused} refused, {exact} answered exactly, 0 files deleted",
        at.len(),
        refused + exact
    );
    assert!(
        refused >= victim.len() * 8,
        "the table's copy is always caught"
    );

    // One flip in the table's copy, then repair: the store is whole again.
    let mut bytes = original.clone();
    bytes[at[0] + 30] ^= 1;
    std::fs::write(&cat, &bytes).unwrap();
    if Engine::open(config.clone()).is_err() {
        recovery::repair(&config, false).unwrap();
    }
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(everything(&engine), want);
    assert_eq!(parquet_under(&config.cold_dir()), cold);
}

/// The queries the bit-flip test asks, each with its answer as row keys
/// (sorted, unless the query sorts).
fn flip_queries(engine: &Engine) -> Vec<Query> {
    let files = engine.with_catalog(|c| c.files()).unwrap();
    let first_day_end = files.iter().map(|f| f.max_ts).min().unwrap();
    vec![
        Query::default(),
        Query {
            filters: vec![Filter::eq("symbol", "ETH/USD")],
            ..Query::default()
        },
        Query {
            filters: vec![Filter::range(
                "price",
                Some(Scalar::Float(500.0)),
                Some(Scalar::Float(2000.0)),
            )],
            ..Query::default()
        },
        Query {
            sort: Some(Sort {
                column: "volume".into(),
                descending: true,
            }),
            limit: Some(50),
            ..Query::default()
        },
        // After the first file: the catalog prunes it.
        Query {
            filters: vec![Filter::range(
                "timestamp",
                Some(Scalar::Int(first_day_end + 1)),
                None,
            )],
            ..Query::default()
        },
    ]
}

fn answer(engine: &Engine, q: &Query) -> tiered::Result<Vec<String>> {
    let (b, _) = engine.query(q)?.collect_batch()?;
    let keys = row_keys(&b);
    Ok(if q.sort.is_some() { keys } else { sorted(keys) })
}

#[test]
fn bit_flips_in_cold_files_are_errors_naming_the_file_never_changed_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    fill(&config, 30);
    let engine = Engine::open(config.clone()).unwrap();
    engine.migrate_all().unwrap();
    let queries = flip_queries(&engine);
    let want: Vec<Vec<String>> = queries
        .iter()
        .map(|q| answer(&engine, q).unwrap())
        .collect();
    let files = engine.with_catalog(|c| c.files()).unwrap();
    let cold_before = parquet_under(&config.cold_dir());
    let per_file: usize = std::env::var("SSIG_FLIP_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let sample: Vec<&tiered::store::cold::ColdFile> =
        match std::env::var("SSIG_FLIP_FILES").as_deref() {
            Ok("all") => files.iter().collect(),
            _ => vec![&files[0], &files[files.len() - 1]],
        };
    let (mut reads, mut errors, mut same, mut changed, mut unnamed, mut panics) =
        (0, 0, 0, 0, 0, 0);
    let mut flips = 0;
    for f in &sample {
        let path = config.cold_dir().join(&f.path);
        let name = f.path.file_name().unwrap().to_str().unwrap().to_string();
        let original = std::fs::read(&path).unwrap();
        let n = original.len();
        // Evenly spread, plus the magic and the footer's last bytes.
        let mut offsets: Vec<usize> = (0..per_file).map(|i| i * n / per_file).collect();
        offsets.extend([1, n - 5, n - 6, n - 9, n - 2]);
        offsets.sort_unstable();
        offsets.dedup();
        for &at in &offsets {
            for bit in 0..8 {
                let mut bytes = original.clone();
                bytes[at] ^= 1 << bit;
                std::fs::write(&path, &bytes).unwrap();
                // A fresh process has not checked the file yet.
                engine.meta_cache().forget(&path);
                flips += 1;
                for (q, want) in queries.iter().zip(&want) {
                    reads += 1;
                    match catch_unwind(AssertUnwindSafe(|| answer(&engine, q))) {
                        Err(_) => panics += 1,
                        Ok(Ok(got)) if &got == want => same += 1,
                        Ok(Ok(_)) => {
                            changed += 1;
                            eprintln!("{name} byte {at} bit {bit}: a changed answer");
                        }
                        Ok(Err(e)) if e.to_string().contains(&name) => errors += 1,
                        Ok(Err(e)) => {
                            unnamed += 1;
                            eprintln!("{name} byte {at} bit {bit}: {e}");
                        }
                    }
                }
            }
        }
        std::fs::write(&path, &original).unwrap();
        engine.meta_cache().forget(&path);
    }
    eprintln!(
        "cold bit flips: {} of {} files, {flips} flips, {reads} reads: {errors} errors naming the file, {same} exact answers, {changed} changed answers, {unnamed} errors not naming it, {panics} panics",
        sample.len(),
        files.len()
    );
    assert_eq!((changed, unnamed, panics), (0, 0, 0));
    assert!(
        errors > 0 && same > 0,
        "some reads are pruned to other files"
    );
    assert_eq!(
        parquet_under(&config.cold_dir()),
        cold_before,
        "0 files deleted"
    );
    let s = engine.scrub().unwrap();
    assert!(s.damaged.is_empty(), "{s:?}");
    drop(engine);

    // Scrub names a damaged file; the CLI's query fails naming it.
    let victim = config.cold_dir().join(&files[1].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&victim, &bytes).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    let s = engine.scrub().unwrap();
    assert_eq!(s.damaged.len(), 1, "{s:?}");
    assert!(s.damaged[0].1.contains("checksum mismatch"), "{s:?}");
    drop(engine);
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, serde_json::to_string(&config).unwrap()).unwrap();
    for args in [&["query", "--limit", "100000"][..], &["scrub"][..]] {
        let o = bin(&cfg, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        let name = files[1].path.file_name().unwrap().to_str().unwrap();
        let all = format!("{err}{}", String::from_utf8_lossy(&o.stdout));
        assert!(all.contains(name), "{args:?}: {all}");
    }
}

#[test]
fn repair_takes_a_damaged_files_records_from_the_wal_or_refuses_to_lose_them() {
    // With one big WAL segment the log still holds every record: the
    // damaged file goes to quarantine and its records come back from it.
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Trading);
    config.wal.segment_mb = 100.0;
    let want = fill(&config, 30);
    let files = Engine::open(config.clone())
        .unwrap()
        .with_catalog(|c| c.files())
        .unwrap();
    let victim = config.cold_dir().join(&files[0].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 4;
    std::fs::write(&victim, &bytes).unwrap();
    let r = recovery::repair(&config, false).unwrap();
    assert!(r.quarantined.iter().any(|q| q.from == victim), "{r:?}");
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(everything(&engine), want);
    drop(engine);

    // With small segments the log no longer holds the first migration:
    // repair refuses, and with --accept-loss goes on without that file.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let files = Engine::open(config.clone())
        .unwrap()
        .with_catalog(|c| c.files())
        .unwrap();
    let victim = config.cold_dir().join(&files[0].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 4;
    std::fs::write(&victim, &bytes).unwrap();
    let e = recovery::repair(&config, false).unwrap_err().to_string();
    assert!(e.contains("--accept-loss") && e.contains("lost"), "{e}");
    assert_eq!(std::fs::read(&victim).unwrap(), bytes, "nothing moved");
    let r = recovery::repair(&config, true).unwrap();
    let moved = r.quarantined.iter().find(|q| q.from == victim).unwrap();
    assert_eq!(
        std::fs::read(&moved.to).unwrap(),
        bytes,
        "kept, in quarantine"
    );
    let engine = Engine::open(config.clone()).unwrap();
    let got = everything(&engine);
    assert_eq!(got.len() as u64, want.len() as u64 - files[0].rows);
    assert!(got.iter().all(|k| want.binary_search(k).is_ok()));
}

#[test]
fn a_missing_first_wal_segment_is_an_error() {
    for migrated in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path(), Mode::Trading);
        if !migrated {
            config.warm_tier.max_memory_mb = 100.0;
        }
        let engine = Engine::open(config.clone()).unwrap();
        let mut g = Generator::new(Mode::Trading, 5, 12);
        let mut all = Vec::new();
        for _ in 0..30 {
            let b = g.batch(200).unwrap();
            engine.ingest(&b).unwrap();
            all.push(b);
        }
        let w = engine.stats().unwrap().watermark_lsn;
        assert_eq!(w > 0, migrated);
        drop(engine);
        let want = sorted(row_keys(&concat(&all)));
        let segments = wal::list_segments(&config.wal_dir()).unwrap();
        assert!(segments.len() >= 3, "{segments:?}");
        let first = &segments[0];
        let saved = std::fs::read(&first.path).unwrap();
        std::fs::remove_file(&first.path).unwrap();
        let cold = parquet_under(&config.cold_dir());
        let e = Engine::open(config.clone()).unwrap_err().to_string();
        let missing = format!(
            "records {}..={} are missing",
            w + 1,
            segments[1].first_lsn - 1
        );
        assert!(e.contains(&missing), "{e}");
        assert_eq!(parquet_under(&config.cold_dir()), cold);
        std::fs::write(&first.path, &saved).unwrap();
        let engine = Engine::open(config.clone()).unwrap();
        assert_eq!(everything(&engine), want);
    }
}

#[test]
fn a_flipped_watermark_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let w = counts(&config).3;
    let cold = parquet_under(&config.cold_dir());
    let set = |v: &str| {
        let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
        c.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'cold_watermark_lsn'",
            [v],
        )
        .unwrap();
    };
    // Every bit of the number.
    for bit in 0..64 {
        set(&(w ^ (1u64 << bit)).to_string());
        let e = Engine::open(config.clone()).unwrap_err().to_string();
        assert!(e.contains("watermark"), "bit {bit}: {e}");
        assert_eq!(parquet_under(&config.cold_dir()), cold, "bit {bit}");
    }
    set(&w.to_string());
    // Every bit of its text in the database file.
    let cat = config.catalog_path();
    let original = std::fs::read(&cat).unwrap();
    let text = format!("cold_watermark_lsn{w}");
    let at = find_all(&original, text.as_bytes());
    assert_eq!(at.len(), 1, "one record holds it");
    let digits = at[0] + "cold_watermark_lsn".len();
    let mut refused = 0;
    for i in 0..w.to_string().len() {
        for bit in 0..8 {
            let mut bytes = original.clone();
            bytes[digits + i] ^= 1 << bit;
            std::fs::write(&cat, &bytes).unwrap();
            match Engine::open(config.clone()) {
                Err(_) => refused += 1,
                Ok(engine) => assert_eq!(everything(&engine), want, "byte {i} bit {bit}"),
            }
            assert_eq!(parquet_under(&config.cold_dir()), cold);
        }
    }
    eprintln!(
        "watermark flips: 64 of 64 numeric flips refused; {refused} of {} flips of its text refused",
        w.to_string().len() * 8
    );
    assert_eq!(refused, w.to_string().len() * 8);
    std::fs::write(&cat, &original).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(everything(&engine), want);
}

#[test]
fn a_file_the_catalog_lost_is_refused_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let cold = parquet_under(&config.cold_dir());
    let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
    let path: String = c
        .query_row("SELECT path FROM files ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    c.execute("DELETE FROM files WHERE path = ?1", [&path])
        .unwrap();
    drop(c);
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(e.contains(&path) && e.contains("not in the catalog"), "{e}");
    assert_eq!(parquet_under(&config.cold_dir()), cold);
    recovery::repair(&config, false).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(everything(&engine), want);
    assert_eq!(parquet_under(&config.cold_dir()), cold);
}

/// A lock that outlives its holder for an instant (a child being started
/// holds a copy of the open directory until its exec) delays an open; it
/// does not refuse it. Before, the open failed at once as "open in
/// another process", and CI failed on it once.
#[test]
fn a_lock_released_a_moment_later_delays_an_open_and_does_not_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    drop(Engine::open(config.clone()).unwrap());
    // What the child's copy does: an exclusive flock on the directory,
    // released when the copy is closed.
    let copy = std::fs::File::open(dir.path()).unwrap();
    copy.lock().unwrap();
    // The copy is closed 300 ms from now, well inside the open's second
    // of patience; without it the open below found the lock taken.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(copy);
    });
    let engine = Engine::open(config.clone());
    release.join().unwrap();
    assert!(engine.is_ok(), "{:?}", engine.err());
}

#[test]
fn deleting_the_lock_file_does_not_let_a_second_writer_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let engine = Engine::open(config.clone()).unwrap();
    let lock = dir.path().join("LOCK");
    assert!(
        std::fs::read_to_string(&lock)
            .unwrap()
            .contains(&std::process::id().to_string()),
        "the LOCK file says who holds the store"
    );
    std::fs::remove_file(&lock).unwrap();
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(e.contains("open in another process"), "{e}");
    // Nor a reader, beside a writer; a command in another process neither.
    let e = Engine::open_read_only(config.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("open in another process"), "{e}");
    let cfg = dir.path().join("config.json");
    let mut elsewhere = config.clone();
    elsewhere.storage.base_path = dir.path().to_path_buf();
    std::fs::write(&cfg, serde_json::to_string(&elsewhere).unwrap()).unwrap();
    let o = bin(&cfg, &["stats"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("open in another process"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(engine);
    // Readers share the store with each other.
    let a = Engine::open_read_only(config.clone()).unwrap();
    let b = Engine::open_read_only(config.clone()).unwrap();
    assert!(
        Engine::open(config.clone()).is_err(),
        "no writer beside them"
    );
    drop((a, b));
    Engine::open(config).unwrap();
}

#[test]
fn read_only_commands_change_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(&dir.path().join("store"), Mode::Trading);
    config.warm_tier.max_memory_mb = 1.0;
    let want = fill_with(&config, 30, false);
    // A torn tail (half of a record appended), a staged leftover, and a
    // smaller warm budget: a writer would cut, delete and migrate.
    let segs = wal::list_segments(&config.wal_dir()).unwrap();
    let last = segs.last().unwrap().path.clone();
    let mut torn = std::fs::read(&last).unwrap();
    torn.extend_from_slice(&record_prefix(100));
    std::fs::write(&last, &torn).unwrap();
    let staging = config.cold_dir().join("_staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("oddity.parquet"), b"half a file").unwrap();
    config.warm_tier.max_memory_mb = 0.05;
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, serde_json::to_string(&config).unwrap()).unwrap();
    let before = files_under(&config.storage.base_path);
    for args in [
        &["stats"][..],
        &["stats", "--json"][..],
        &["query", "--limit", "5"][..],
        &[
            "aggregate",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-03",
            "--every",
            "1h",
        ][..],
        &["scrub"][..],
        &["jobs", "list"][..],
    ] {
        let o = bin(&cfg, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {err}");
        if args[0] != "jobs" {
            assert!(err.contains("recovery not done"), "{args:?}: {err}");
        }
        let mut after = files_under(&config.storage.base_path);
        // SQLite's shared-memory index of a reader is not the store.
        after.retain(|p, _| !p.to_string_lossy().ends_with("-shm"));
        after.retain(|p, _| !p.to_string_lossy().ends_with("-wal") || before.contains_key(p));
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{args:?}"
        );
        assert!(after == before, "{args:?} changed a file");
    }
    let o = bin(&cfg, &["stats", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        s["hot_records"].as_u64().unwrap()
            + s["warm_records"].as_u64().unwrap()
            + s["cold_records"].as_u64().unwrap(),
        want.len() as u64
    );
    // A store that is not there reads as empty, and is not created.
    let nowhere = dir.path().join("nowhere");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .args(["--storage", nowhere.to_str().unwrap(), "stats"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!nowhere.exists());
    // The writer does it all.
    let engine = Engine::open(config.clone()).unwrap();
    assert!(engine.recovery().torn_tail.is_some());
    assert_eq!(engine.opened().quarantined.len(), 1);
    assert_eq!(everything(&engine), want);
}

/// The first `n` bytes of a WAL record: what a write cut short by a crash
/// leaves at the end of a segment.
fn record_prefix(n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let schema = Mode::Trading.schema();
    let rec = wal::replay(dir.path(), &schema, 0, |_, _| Ok(())).unwrap();
    let log = wal::Wal::open(dir.path(), schema, &rec, 1 << 30, true).unwrap();
    let seg = wal::list_segments(dir.path()).unwrap()[0].path.clone();
    let header = std::fs::metadata(&seg).unwrap().len() as usize;
    log.append(&Generator::new(Mode::Trading, 1, 2).batch(50).unwrap())
        .unwrap();
    std::fs::read(&seg).unwrap()[header..header + n].to_vec()
}

#[test]
fn a_job_left_running_by_a_stopped_process_is_marked_failed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    let engine = Engine::open(config.clone()).unwrap();
    let (running, pending) = engine
        .with_catalog(|c| {
            let a = c.create_job("gen:1000")?;
            c.set_job_state(a, tiered::store::catalog::JobState::Running, None)?;
            Ok((a, c.create_job("gen:10")?))
        })
        .unwrap();
    drop(engine);
    let engine = Engine::open(config).unwrap();
    assert_eq!(engine.opened().interrupted_jobs, vec![running]);
    let j = engine.with_catalog(|c| c.job(running)).unwrap();
    assert_eq!(j.state, "failed");
    assert!(j.error.unwrap().contains("interrupted"));
    assert_eq!(
        engine.with_catalog(|c| c.job(pending)).unwrap().state,
        "pending"
    );
}

// ---- The WAL's segments, recorded in the catalog ----

/// A store whose records are all still in the WAL (no migration), over
/// several segments; returns every record, sorted.
fn wal_only(config: &mut Config, n: usize) -> Vec<String> {
    config.warm_tier.max_memory_mb = 100.0;
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Trading, 5, 12);
    let mut all = Vec::new();
    for _ in 0..n {
        let b = g.batch(200).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
    }
    assert_eq!(engine.stats().unwrap().watermark_lsn, 0);
    sorted(row_keys(&concat(&all)))
}

#[test]
fn losing_every_wal_segment_or_the_last_one_is_refused_not_a_smaller_store() {
    // Never migrated: every record is in the log. Removing the whole log
    // used to open an empty store (a new segment, exit 0).
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Trading);
    wal_only(&mut config, 30);
    let segs = wal::list_segments(&config.wal_dir()).unwrap();
    let saved: Vec<(PathBuf, Vec<u8>)> = segs
        .iter()
        .map(|s| (s.path.clone(), std::fs::read(&s.path).unwrap()))
        .collect();
    for s in &segs {
        std::fs::remove_file(&s.path).unwrap();
    }
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains("is missing") && e.contains("repair --accept-loss"),
        "{e}"
    );
    assert!(Engine::open_read_only(config.clone()).is_err());
    assert!(
        wal::list_segments(&config.wal_dir()).unwrap().is_empty(),
        "no new segment was created"
    );
    for (p, b) in &saved {
        std::fs::write(p, b).unwrap();
    }

    // Migrated: the last segment lost used to open with fewer records.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let segs = wal::list_segments(&config.wal_dir()).unwrap();
    let last = segs.last().unwrap();
    let saved = std::fs::read(&last.path).unwrap();
    std::fs::remove_file(&last.path).unwrap();
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains(&wal::segment_name(last.first_lsn)) && e.contains("the last one"),
        "{e}"
    );
    let e = recovery::repair(&config, false).unwrap_err().to_string();
    assert!(
        e.contains("would lose records") && e.contains("the last one"),
        "{e}"
    );
    std::fs::write(&last.path, &saved).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(everything(&engine), want);
    drop(engine);
    // Given up for good: repair --accept-loss goes on without it.
    std::fs::remove_file(&last.path).unwrap();
    let r = recovery::repair(&config, true).unwrap();
    assert!(r.notes.iter().any(|n| n.contains("accepted loss")), "{r:?}");
    let engine = Engine::open(config.clone()).unwrap();
    let got = everything(&engine);
    assert!(got.len() < want.len() && got.iter().all(|k| want.binary_search(k).is_ok()));
}

#[test]
fn segments_the_catalog_did_not_record_are_refused_unless_new_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Trading);
    let want = wal_only(&mut config, 30);
    let segs = wal::list_segments(&config.wal_dir()).unwrap();
    let forget = |config: &Config, lsn: u64| {
        let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
        c.execute(
            "DELETE FROM wal_segments WHERE first_lsn = ?1",
            [lsn as i64],
        )
        .unwrap();
    };
    // The newest segment holds records: a log that did not record it wrote
    // to it (this store records a segment before writing to it).
    forget(&config, segs.last().unwrap().first_lsn);
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(e.contains("is not one this store created"), "{e}");
    // A middle one unrecorded: not this store's.
    let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
    c.execute(
        "INSERT INTO wal_segments (first_lsn, created_at) VALUES (?1, 0)",
        [segs.last().unwrap().first_lsn as i64],
    )
    .unwrap();
    drop(c);
    forget(&config, segs[1].first_lsn);
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(e.contains("is not one this store created"), "{e}");
    let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
    c.execute(
        "INSERT INTO wal_segments (first_lsn, created_at) VALUES (?1, 0)",
        [segs[1].first_lsn as i64],
    )
    .unwrap();
    drop(c);
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(everything(&engine), want);
    drop(engine);

    // A crash between creating a segment and recording it leaves a new,
    // empty segment: recorded at the next open. And a crash between
    // deleting a segment and forgetting it leaves a row whose records the
    // cold tier holds: forgotten.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    drop(Engine::open(config.clone()).unwrap());
    forget(&config, 1);
    let engine = Engine::open(config.clone()).unwrap();
    assert!(
        engine
            .opened()
            .segment_notes
            .iter()
            .any(|n| n.contains("created, empty")),
        "{:?}",
        engine.opened().segment_notes
    );
    drop(engine);
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let first = wal::list_segments(&config.wal_dir()).unwrap()[0].first_lsn;
    assert!(first > 1);
    let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
    c.execute(
        "INSERT INTO wal_segments (first_lsn, created_at) VALUES (1, 0)",
        [],
    )
    .unwrap();
    drop(c);
    let engine = Engine::open(config.clone()).unwrap();
    assert!(
        engine
            .opened()
            .segment_notes
            .iter()
            .any(|n| n.contains("forgot the deleted WAL segment")),
        "{:?}",
        engine.opened().segment_notes
    );
    assert_eq!(everything(&engine), want);
}

#[test]
fn a_missing_middle_segment_says_what_to_do_and_repair_keeps_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Trading);
    let want = wal_only(&mut config, 30);
    let segs = wal::list_segments(&config.wal_dir()).unwrap();
    assert!(segs.len() >= 4, "{segs:?}");
    let middle = &segs[2];
    let (lo, hi) = (middle.first_lsn, segs[3].first_lsn - 1);
    let mut lost_rows = Vec::new();
    let options = wal::ScanOptions {
        owner: wal::Owner::Any,
        watermark: None,
        cut_damaged_tail: false,
    };
    wal::scan_with(
        &config.wal_dir(),
        &Mode::Trading.schema(),
        &options,
        |lsn, b| {
            if (lo..=hi).contains(&lsn) {
                lost_rows.extend(row_keys(&b));
            }
            Ok(())
        },
    )
    .unwrap();
    std::fs::remove_file(&middle.path).unwrap();
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains(&format!("records {lo}..={hi} are missing"))
            && e.contains("put a missing segment back")
            && e.contains("repair --accept-loss"),
        "{e}"
    );
    let e = recovery::repair(&config, false).unwrap_err().to_string();
    assert!(e.contains(&format!("LSNs {lo}..={hi}")), "{e}");
    let r = recovery::repair(&config, true).unwrap();
    assert_eq!(r.watermark, hi, "{r:?}");
    let engine = Engine::open(config.clone()).unwrap();
    let got = everything(&engine);
    let mut expect: Vec<String> = want.clone();
    for k in &lost_rows {
        let at = expect.binary_search(k).unwrap();
        expect.remove(at);
    }
    assert_eq!(got, expect, "everything but the lost segment's records");
    let s = engine.stats().unwrap();
    assert!(
        s.cold_records > 0,
        "the records before the gap went to the cold tier"
    );
}

// ---- Whose store: IDs in the catalog, the cold files, the WAL ----

#[test]
fn two_stores_cannot_share_a_cold_directory_and_foreign_files_are_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared-cold");
    let mut b = small_config(&dir.path().join("b"), Mode::Trading);
    b.storage.cold_path = shared.clone();
    let want_b = fill(&b, 30);
    let b_files = parquet_under(&shared);
    let mut a = small_config(&dir.path().join("a"), Mode::Trading);
    a.storage.cold_path = shared.clone();
    let e = Engine::open(a.clone()).unwrap_err().to_string();
    assert!(
        e.contains("belongs to store") && e.contains("cannot share"),
        "{e}"
    );
    assert_eq!(parquet_under(&shared), b_files);
    // Without B's owner file (a store from before owner files), A still
    // refuses: B's files carry B's ID. Before, A deleted them all as "a
    // migration that never committed" (their LSNs above A's watermark, all
    // in A's WAL).
    std::fs::remove_file(shared.join(recovery::COLD_OWNER)).unwrap();
    let mut own = a.clone();
    own.storage.cold_path = dir.path().join("a-cold");
    wal_only(&mut own, 40);
    let mut a = own.clone();
    a.storage.cold_path = shared.clone();
    // A's catalog records its own cold directory: refused at once.
    let e = Engine::open(a.clone()).unwrap_err().to_string();
    assert!(e.contains("records its cold tier at"), "{e}");
    assert_eq!(parquet_under(&shared), b_files, "nothing of B's deleted");
    // A catalog from before that record: B's files are still told apart.
    rusqlite::Connection::open(a.catalog_path())
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'cold_location'", [])
        .unwrap();
    let e = Engine::open(a.clone()).unwrap_err().to_string();
    assert!(e.contains("belongs to another store"), "{e}");
    assert_eq!(parquet_under(&shared), b_files, "nothing of B's deleted");
    let engine = Engine::open(b.clone()).unwrap();
    assert_eq!(everything(&engine), want_b);
}

#[test]
fn a_wal_segment_of_another_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = small_config(&dir.path().join("a"), Mode::Trading);
    let want = wal_only(&mut a, 30);
    let mut b = small_config(&dir.path().join("b"), Mode::Trading);
    wal_only(&mut b, 30);
    let a_segs = wal::list_segments(&a.wal_dir()).unwrap();
    let b_segs = wal::list_segments(&b.wal_dir()).unwrap();
    // The same name: its header names store B.
    let victim = &a_segs[1];
    let saved = std::fs::read(&victim.path).unwrap();
    let theirs = b_segs
        .iter()
        .find(|s| s.first_lsn == victim.first_lsn)
        .unwrap();
    std::fs::copy(&theirs.path, &victim.path).unwrap();
    let e = Engine::open(a.clone()).unwrap_err().to_string();
    assert!(e.contains("belongs to another store"), "{e}");
    std::fs::write(&victim.path, &saved).unwrap();
    // A name A never created: not recorded.
    let extra = a.wal_dir().join(wal::segment_name(10_000));
    std::fs::copy(&b_segs[0].path, &extra).unwrap();
    let e = Engine::open(a.clone()).unwrap_err().to_string();
    assert!(
        e.contains("not one this store created") || e.contains("another store"),
        "{e}"
    );
    std::fs::remove_file(&extra).unwrap();
    let engine = Engine::open(a.clone()).unwrap();
    assert_eq!(everything(&engine), want);
}

#[test]
fn a_cold_file_of_another_store_is_refused_at_open_and_set_aside_by_repair() {
    let dir = tempfile::tempdir().unwrap();
    let a = small_config(&dir.path().join("a"), Mode::Trading);
    let want = fill(&a, 30);
    let b = small_config(&dir.path().join("b"), Mode::Trading);
    fill(&b, 40);
    // B's newest file, under its own name, in one of A's partitions.
    let b_files = Engine::open(b.clone())
        .unwrap()
        .with_catalog(|c| c.files())
        .unwrap();
    let theirs = b_files.last().unwrap();
    let dest = a.cold_dir().join(&theirs.path);
    assert!(!dest.exists());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(b.cold_dir().join(&theirs.path), &dest).unwrap();
    let cfg = dir.path().join("a.json");
    std::fs::write(&cfg, serde_json::to_string(&a).unwrap()).unwrap();
    let o = bin(&cfg, &["stats"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("belongs to another store"));
    let e = Engine::open(a.clone()).unwrap_err().to_string();
    assert!(e.contains("belongs to another store"), "{e}");
    assert!(dest.exists(), "never deleted");
    // Repair sets it aside, and A is whole.
    let r = recovery::repair(&a, false).unwrap();
    let q = r.quarantined.iter().find(|q| q.from == dest).unwrap();
    assert!(q.why.contains("another store"), "{q:?}");
    let engine = Engine::open(a.clone()).unwrap();
    assert_eq!(everything(&engine), want);
}

#[test]
fn repair_compares_a_cold_file_with_the_wal_records_it_came_from() {
    // Two copies of one store (one ID) take different records at the same
    // LSNs; a file of the one, dropped over the other's file of the same
    // name, is self-consistent: only the WAL can tell.
    let dir = tempfile::tempdir().unwrap();
    let mut a = small_config(&dir.path().join("a"), Mode::Trading);
    a.wal.segment_mb = 100.0;
    drop(Engine::open(a.clone()).unwrap());
    let mut copy = a.clone();
    copy.storage.base_path = dir.path().join("copy");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&a.storage.base_path)
        .arg(&copy.storage.base_path)
        .status()
        .unwrap();
    assert!(status.success());
    let want = fill(&a, 30);
    let mut g = Generator::new(Mode::Trading, 99, 12);
    g.mean_gap_ns = 20_000_000_000;
    let engine = Engine::open(copy.clone()).unwrap();
    for _ in 0..30 {
        engine.ingest(&g.batch(200).unwrap()).unwrap();
    }
    drop(engine);
    let files = Engine::open(a.clone())
        .unwrap()
        .with_catalog(|c| c.files())
        .unwrap();
    let victim = files
        .iter()
        .find(|f| copy.cold_dir().join(&f.path).exists())
        .expect("a file name both copies wrote");
    std::fs::copy(
        copy.cold_dir().join(&victim.path),
        a.cold_dir().join(&victim.path),
    )
    .unwrap();
    std::fs::remove_file(a.catalog_path()).unwrap();
    let r = recovery::repair(&a, false).unwrap();
    let q = r
        .quarantined
        .iter()
        .find(|q| q.from == a.cold_dir().join(&victim.path))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(q.why.contains("not the WAL's records"), "{q:?}");
    let engine = Engine::open(a.clone()).unwrap();
    assert_eq!(everything(&engine), want);
}

// ---- The last WAL record, damaged ----

#[test]
fn a_damaged_last_wal_record_is_refused_and_repair_accept_loss_cuts_it_keeping_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    let want = fill(&config, 30);
    let last = wal::list_segments(&config.wal_dir())
        .unwrap()
        .pop()
        .unwrap();
    let mut bytes = std::fs::read(&last.path).unwrap();
    let at = bytes.len() - 500;
    bytes[at] ^= 1;
    std::fs::write(&last.path, &bytes).unwrap();
    // Before: a torn tail, 200 acknowledged records cut and gone.
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains("damage") && e.contains("repair --accept-loss"),
        "{e}"
    );
    assert_eq!(std::fs::read(&last.path).unwrap(), bytes, "nothing was cut");
    let e = recovery::repair(&config, false).unwrap_err().to_string();
    assert!(e.contains("--accept-loss"), "{e}");
    let r = recovery::repair(&config, true).unwrap();
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("accepted loss: WAL record")),
        "{r:?}"
    );
    let kept = std::fs::read_dir(dir.path().join("quarantine/wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().ends_with(".why"))
        .unwrap();
    let cut = std::fs::read(&kept).unwrap();
    assert_eq!(
        [std::fs::read(&last.path).unwrap(), cut].concat(),
        bytes,
        "the cut bytes are kept"
    );
    let engine = Engine::open(config.clone()).unwrap();
    let got = everything(&engine);
    assert_eq!(got.len(), want.len() - 200);
}

// ---- Quarantine on another filesystem ----

#[test]
fn leftovers_on_a_cold_directory_of_another_filesystem_go_to_its_own_quarantine() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("no /dev/shm: not tested here");
        return;
    };
    if std::fs::metadata(shm.path()).unwrap().dev() == std::fs::metadata(dir.path()).unwrap().dev()
    {
        eprintln!("/dev/shm is on the same filesystem: not tested here");
        return;
    }
    let mut config = small_config(dir.path(), Mode::Trading);
    config.storage.cold_path = shm.path().join("cold");
    let want = fill(&config, 30);
    // What a full disk leaves: staged files cut short.
    let staging = config.cold_dir().join("_staging");
    std::fs::create_dir_all(&staging).unwrap();
    let staged = staging.join(format!("19723-{}", tiered::store::cold::file_name(31, 33)));
    std::fs::write(&staged, b"PAR1 and then the disk was full").unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    let q = &engine.opened().quarantined;
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(
        q[0].to.starts_with(config.cold_dir().join("_quarantine")),
        "{q:?}"
    );
    assert_eq!(
        std::fs::read(&q[0].to).unwrap(),
        b"PAR1 and then the disk was full"
    );
    assert_eq!(everything(&engine), want);
    drop(engine);
    // Repair sets staged leftovers aside too.
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(&staged, b"PAR1 again").unwrap();
    let r = recovery::repair(&config, false).unwrap();
    assert!(r.quarantined.iter().any(|q| q.from == staged), "{r:?}");
    assert_eq!(everything(&Engine::open(config).unwrap()), want);
}

// ---- Retention and repair ----

/// A store of `n` batches over about four days (60 s between trades) whose
/// WAL holds every record (one big segment), spread over the tiers.
fn days_of_data(config: &Config, seed: u64, n: usize) -> Vec<RecordBatch> {
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Trading, seed, 12);
    g.mean_gap_ns = 60_000_000_000;
    let all: Vec<RecordBatch> = (0..n)
        .map(|_| {
            let b = g.batch(200).unwrap();
            engine.ingest(&b).unwrap();
            b
        })
        .collect();
    all
}

#[test]
fn repair_of_a_healthy_store_that_ran_retention_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Trading);
    config.wal.segment_mb = 100.0;
    days_of_data(&config, 5, 30);
    let engine = Engine::open(config.clone()).unwrap();
    let partitions: BTreeSet<String> = engine
        .with_catalog(|c| c.files())
        .unwrap()
        .iter()
        .map(|f| f.partition.clone())
        .collect();
    assert!(partitions.len() >= 3, "{partitions:?}");
    // Delete the first day, then ingest more (the old days again too).
    let second = tiered::store::cold::partition_day(partitions.iter().nth(1).unwrap()).unwrap();
    let gone = engine
        .retention(0, second * tiered::store::cold::DAY_NS)
        .unwrap();
    assert!(!gone.is_empty());
    drop(engine);
    days_of_data(&config, 6, 20);
    let engine = Engine::open(config.clone()).unwrap();
    let want = everything(&engine);
    let before = (
        engine.stats().unwrap().watermark_lsn,
        engine.stats().unwrap().cold_files,
    );
    drop(engine);
    let cold = parquet_under(&config.cold_dir());
    let r = recovery::repair(&config, false).unwrap();
    // The old catalog goes to quarantine; no cold file does.
    assert!(
        r.quarantined
            .iter()
            .all(|q| q.from.to_string_lossy().contains("catalog.sqlite")),
        "{r:?}"
    );
    assert_eq!(parquet_under(&config.cold_dir()), cold);
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(
        everything(&engine),
        want,
        "no deleted record came back, none twice"
    );
    let s = engine.stats().unwrap();
    assert_eq!((s.watermark_lsn, s.cold_files), before);
}

#[test]
fn a_lost_catalog_row_in_a_partition_retention_once_deleted_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    days_of_data(&config, 5, 30);
    let engine = Engine::open(config.clone()).unwrap();
    let files = engine.with_catalog(|c| c.files()).unwrap();
    let first_day = files[0].partition.clone();
    let day = tiered::store::cold::partition_day(&first_day).unwrap();
    let doomed: Vec<_> = files
        .iter()
        .filter(|f| f.partition == first_day)
        .cloned()
        .collect();
    // Keep a copy of one file retention will delete.
    let copy = std::fs::read(config.cold_dir().join(&doomed[0].path)).unwrap();
    engine
        .retention(0, (day + 1) * tiered::store::cold::DAY_NS)
        .unwrap();
    // The same day again: new files in the partition retention deleted.
    let mut g =
        Generator::new(Mode::Trading, 77, 12).starting_at(day * tiered::store::cold::DAY_NS);
    g.mean_gap_ns = 2_000_000_000;
    for _ in 0..20 {
        engine.ingest(&g.batch(200).unwrap()).unwrap();
    }
    engine.migrate_all().unwrap();
    let fresh = engine
        .with_catalog(|c| c.files())
        .unwrap()
        .into_iter()
        .find(|f| f.partition == first_day)
        .expect("a new file in the deleted partition");
    drop(engine);
    let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
    c.execute(
        "DELETE FROM files WHERE path = ?1",
        [fresh.path.to_str().unwrap()],
    )
    .unwrap();
    drop(c);
    let cold = parquet_under(&config.cold_dir());
    // Before: quarantined silently, its 4,000 records gone, exit 0.
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(
        e.contains(fresh.path.to_str().unwrap()) && e.contains("not provably a leftover"),
        "{e}"
    );
    assert_eq!(parquet_under(&config.cold_dir()), cold, "nothing moved");
    recovery::repair(&config, false).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    assert!(engine.with_catalog(|c| c.files()).unwrap().contains(&fresh));
    drop(engine);

    // What an interrupted retention leaves is the very file it deleted:
    // that is proof, and it goes; a different file under its name does not.
    let at = config.cold_dir().join(&doomed[0].path);
    let mut other = copy.clone();
    other[100] ^= 1;
    std::fs::write(&at, &other).unwrap();
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(e.contains("not provably a leftover"), "{e}");
    std::fs::write(&at, &copy).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    let (gone, proof) = &engine.opened().deleted[0];
    assert_eq!(gone, &at);
    assert!(
        proof.contains("retention deleted its catalog row"),
        "{proof}"
    );
}

// ---- An error that is not damage ----

#[test]
fn a_file_that_cannot_be_read_is_refused_by_repair_and_not_called_damaged_by_scrub() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    fill(&config, 30);
    let engine = Engine::open(config.clone()).unwrap();
    let files = engine.with_catalog(|c| c.files()).unwrap();
    let victim = config.cold_dir().join(&files[0].path);
    let saved = std::fs::read(&victim).unwrap();
    // An I/O error on read, as root too: the path is a directory now.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &victim).unwrap();
    let s = engine.scrub().unwrap();
    assert!(s.damaged.is_empty(), "{s:?}");
    assert_eq!(s.unreadable.len(), 1, "{s:?}");
    drop(engine);
    // Before: repair --accept-loss quarantined it as damaged.
    let e = recovery::repair(&config, true).unwrap_err().to_string();
    assert!(
        e.contains("could not read") && e.contains("not damage"),
        "{e}"
    );
    assert!(std::fs::symlink_metadata(&victim)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, &saved).unwrap();
    // Where permissions bite (not as root), the same.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&victim).is_err() {
        let e = recovery::repair(&config, true).unwrap_err().to_string();
        assert!(e.contains("Permission denied"), "{e}");
    }
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    recovery::repair(&config, false).unwrap();
}

// ---- Messages ----

#[test]
fn an_unreadable_watermark_and_a_lost_range_are_each_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    fill(&config, 30);
    let c = rusqlite::Connection::open(config.catalog_path()).unwrap();
    c.execute(
        "UPDATE meta SET value = '-1' WHERE key = 'cold_watermark_lsn'",
        [],
    )
    .unwrap();
    drop(c);
    let e = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(e.contains("not a number"), "{e}");
    assert!(!e.contains("the watermark is LSN 0"), "{e}");
    recovery::repair(&config, false).unwrap();
    // A damaged file whose records the WAL no longer holds: its LSNs once.
    let files = Engine::open(config.clone())
        .unwrap()
        .with_catalog(|c| c.files())
        .unwrap();
    let victim = config.cold_dir().join(&files[0].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 4;
    std::fs::write(&victim, &bytes).unwrap();
    let e = recovery::repair(&config, false).unwrap_err().to_string();
    let range = format!("{}..={}", files[0].lsn_lo, files[0].lsn_hi);
    assert_eq!(e.matches(&range).count(), 1, "{e}");
}

#[test]
fn bit_flips_after_a_file_was_first_read_are_errors_too_never_changed_answers() {
    // A long-running server read each file once, then keeps reading it: a
    // bit that rots after the first read must not change an answer either.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Trading);
    fill(&config, 30);
    let engine = Engine::open(config.clone()).unwrap();
    engine.migrate_all().unwrap();
    let queries = flip_queries(&engine);
    let want: Vec<Vec<String>> = queries
        .iter()
        .map(|q| answer(&engine, q).unwrap())
        .collect();
    let files = engine.with_catalog(|c| c.files()).unwrap();
    let per_file: usize = std::env::var("SSIG_FLIP_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let (mut reads, mut errors, mut same, mut changed, mut unnamed) = (0, 0, 0, 0, 0);
    for f in [&files[0], &files[files.len() - 1]] {
        let path = config.cold_dir().join(&f.path);
        let name = f.path.file_name().unwrap().to_str().unwrap().to_string();
        let original = std::fs::read(&path).unwrap();
        let n = original.len();
        let mut offsets: Vec<usize> = (0..per_file).map(|i| i * n / per_file).collect();
        offsets.extend([1, n / 2, n - 5, n - 9]);
        offsets.sort_unstable();
        offsets.dedup();
        for &at in &offsets {
            for bit in 0..8 {
                let mut bytes = original.clone();
                bytes[at] ^= 1 << bit;
                std::fs::write(&path, &bytes).unwrap();
                // No forgetting: the engine checked this file before.
                for (q, want) in queries.iter().zip(&want) {
                    reads += 1;
                    match answer(&engine, q) {
                        Ok(got) if &got == want => same += 1,
                        Ok(_) => {
                            changed += 1;
                            eprintln!("{name} byte {at} bit {bit}: a changed answer");
                        }
                        Err(e) if e.to_string().contains(&name) => errors += 1,
                        Err(e) => {
                            unnamed += 1;
                            eprintln!("{name} byte {at} bit {bit}: {e}");
                        }
                    }
                }
            }
        }
        std::fs::write(&path, &original).unwrap();
    }
    eprintln!(
        "cold bit flips after the first read: {reads} reads: {errors} errors naming the file, {same} exact answers, {changed} changed answers, {unnamed} errors not naming it"
    );
    assert_eq!((changed, unnamed), (0, 0));
    assert!(errors > 0);
    // Undamaged again: every answer as before.
    for (q, want) in queries.iter().zip(&want) {
        assert_eq!(&answer(&engine, q).unwrap(), want);
    }
}

// ---- Another store inside this one's cold directory ----

/// Stores whose base paths lie inside another store's cold directory (a
/// plain name, a name spelled like a partition, the cold directory
/// itself): the outer store's open neither judges nor moves their files,
/// and each store still reads all of its own (found by a break test: the
/// outer store moved the inner ones' files to its quarantine).
#[test]
fn stores_inside_another_stores_cold_directory_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let outer = small_config(&dir.path().join("outer"), Mode::Trading);
    let want_outer = fill(&outer, 30);
    let mut inner: Vec<Config> = ["inner", "year=2030", ""]
        .iter()
        .map(|name| small_config(&outer.cold_dir().join(name), Mode::Trading))
        .collect();
    // Spelled like a partition, with a catalog, WAL and cold directory not
    // named as the defaults are: its cold files lie at
    // `year=2031/parquet/year=…/month=…/day=…/`, below a day partition's
    // depth, so they are not the outer tier's.
    let mut odd = small_config(&outer.cold_dir().join("year=2031"), Mode::Trading);
    odd.storage.catalog = "meta.db".into();
    odd.storage.wal_path = "log".into();
    odd.storage.cold_path = "parquet".into();
    inner.push(odd);
    // Found by a break test: a store at a day partition's depth whose
    // catalog is named like a Parquet file (it is SQLite), and one inside
    // the staging directory with names of its own.
    let mut in_day = small_config(
        &outer.cold_dir().join("year=2024/month=01/day=01"),
        Mode::Trading,
    );
    in_day.storage.catalog = "cat.parquet".into();
    in_day.storage.wal_path = "w".into();
    in_day.storage.cold_path = "d".into();
    inner.push(in_day);
    let mut in_staging = small_config(&outer.cold_dir().join("_staging/inner"), Mode::Trading);
    in_staging.storage.catalog = "cat.db".into();
    in_staging.storage.wal_path = "log".into();
    in_staging.storage.cold_path = "data".into();
    inner.push(in_staging);
    let mut want = Vec::new();
    for c in &inner {
        want.push(fill(c, 30));
    }
    // Links in a day partition are not the tier's files: a link to a
    // user's file, one to a directory, and a dangling one.
    let day = outer.cold_dir().join("year=2024/month=01/day=02");
    std::fs::create_dir_all(&day).unwrap();
    let users = dir.path().join("users.parquet");
    std::fs::write(&users, b"PAR1 a user's file PAR1").unwrap();
    std::os::unix::fs::symlink(&users, day.join("link.parquet")).unwrap();
    std::os::unix::fs::symlink(dir.path(), day.join("dirlink.parquet")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), day.join("dangling.parquet")).unwrap();
    let links = ["link.parquet", "dirlink.parquet", "dangling.parquet"];
    let files = |c: &Config| files_under(&c.cold_dir());
    let before: Vec<_> = inner.iter().map(files).collect();
    let engine = Engine::open(outer.clone()).unwrap();
    assert!(
        engine.opened().quarantined.is_empty(),
        "{:?}",
        engine.opened().quarantined
    );
    assert_eq!(everything(&engine), want_outer);
    engine.migrate_all().unwrap();
    drop(engine);
    for link in links {
        assert!(
            day.join(link).symlink_metadata().is_ok(),
            "{link} was moved"
        );
    }
    assert!(users.exists());
    for ((c, want), before) in inner.iter().zip(&want).zip(&before) {
        assert_eq!(&files(c), before, "{}", c.storage.base_path.display());
        let engine = Engine::open(c.clone()).unwrap();
        assert_eq!(
            &everything(&engine),
            want,
            "{}",
            c.storage.base_path.display()
        );
    }
}
