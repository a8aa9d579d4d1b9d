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

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::{concat, files_under, row_keys, small_config};
use tiered::config::Config;
use tiered::filter::{Filter, Scalar};
use tiered::gen::Generator;
use tiered::query::{Query, Sort};
use tiered::recovery;
use tiered::schema::Mode;
use tiered::wal;
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
    let sample: Vec<&tiered::cold::ColdFile> = match std::env::var("SSIG_FLIP_FILES").as_deref() {
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
    let bytes = std::fs::read(&last).unwrap();
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[bytes.len() - 300..bytes.len() - 200]);
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

#[test]
fn a_job_left_running_by_a_stopped_process_is_marked_failed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    let engine = Engine::open(config.clone()).unwrap();
    let (running, pending) = engine
        .with_catalog(|c| {
            let a = c.create_job("gen:1000")?;
            c.set_job_state(a, "running", None)?;
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
