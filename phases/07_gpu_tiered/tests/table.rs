//! The cold tier as a Delta Lake table (`store::table`, `engine::reconcile`):
//! every migration and retention reaches the table's log, and an open after
//! a crash between the table's commit and the catalog's settles it from the
//! log's proof, losing and duplicating nothing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use tiered::config::Config;
use tiered::gen::Generator;
use tiered::read::query::Query;
use tiered::schema::Mode;
use tiered::store::catalog::Catalog;
use tiered::store::table::{self, ColdTable};
use tiered::Engine;

const DAY_NS: i64 = 86_400_000_000_000;

/// A store with `n` generated trades over about three days, none migrated
/// yet past what ingest migrates on its own; its configuration file.
fn store(dir: &Path, n: usize) -> (Config, PathBuf) {
    let mut config = common::small_config(&dir.join("store"), Mode::Trading);
    config.hot_tier.max_records = 100_000;
    config.warm_tier.max_memory_mb = 64.0;
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Trading, 1, 3);
    let mut left = n;
    while left > 0 {
        let b = g.batch(left.min(1_000)).unwrap();
        // Spread the rows over days: each batch a few hours later.
        let ts = b
            .column(0)
            .as_primitive::<arrow_array::types::TimestampNanosecondType>();
        let shift = (n - left) as i64 * DAY_NS / 1_000;
        let moved = arrow_array::TimestampNanosecondArray::from_iter_values(
            ts.values().iter().map(|t| t + shift),
        )
        .with_timezone("UTC");
        let mut cols = b.columns().to_vec();
        cols[0] = std::sync::Arc::new(moved);
        let b = arrow_array::RecordBatch::try_new(b.schema(), cols).unwrap();
        engine.ingest(&b).unwrap();
        left -= b.num_rows();
    }
    (config, path)
}

/// [`store`], with every record migrated to the cold tier.
fn migrated(dir: &Path, n: usize) -> (Config, PathBuf) {
    let (config, path) = store(dir, n);
    Engine::open(config.clone()).unwrap().migrate_all().unwrap();
    (config, path)
}

/// One of `notes` says `what`.
fn assert_says(notes: &[String], what: &str) {
    assert!(
        notes.iter().any(|n| n.contains(what)),
        "{what:?} in {notes:?}"
    );
}

fn catalog_files(config: &Config) -> BTreeSet<PathBuf> {
    Catalog::open_read_only(&config.catalog_path())
        .unwrap()
        .files()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

/// The table, as the store (its ID from the catalog) reads it.
fn table_state(config: &Config) -> table::TableState {
    let catalog = Catalog::open_read_only(&config.catalog_path()).unwrap();
    let (id, _) = catalog.store_id().unwrap().unwrap();
    ColdTable::open(&tiered::store::objects::ColdStore::of(config).unwrap(), &id)
        .unwrap()
        .state()
        .unwrap()
}

fn assert_agree(config: &Config) {
    common::assert_table_agrees(config);
}

/// Every trade id the store holds, in every tier, and whether one is held
/// twice.
fn trade_ids(config: &Config) -> (BTreeSet<i64>, bool) {
    let engine = Engine::open_read_only(config.clone()).unwrap();
    let q = Query {
        columns: Some(vec!["trade_id".into()]),
        ..Query::default()
    };
    let (ids, _) = engine.query(&q).unwrap().collect_batch().unwrap();
    let all: Vec<i64> = ids.column(0).as_primitive::<Int64Type>().values().to_vec();
    let set: BTreeSet<i64> = all.iter().copied().collect();
    let twice = set.len() != all.len();
    (set, twice)
}

/// Runs the binary with `args`, aborted at crash point `at`.
fn crash(config_path: &Path, at: &str, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .arg("--config")
        .arg(config_path)
        .args(args)
        .env("SSIG_CRASH_AT", at)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "{at}: the process was aborted");
}

#[test]
fn migrations_and_retention_reach_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = migrated(dir.path(), 6_000);
    assert_agree(&config);
    let before = table_state(&config);
    assert!(before.files.len() >= 3, "files in several days");
    for f in &before.files {
        let (lo, hi) = f.lsn.expect("named for its LSNs");
        assert!(lo <= hi);
    }

    // Retention of all but the last day: remove actions, then the catalog.
    let engine = Engine::open(config.clone()).unwrap();
    let last = before
        .files
        .iter()
        .filter_map(|f| tiered::store::cold::parse_path(&f.path))
        .map(|(p, _, _)| tiered::store::cold::partition_day(&p).unwrap())
        .max()
        .unwrap();
    let gone = engine.retention(0, last * DAY_NS).unwrap();
    assert!(!gone.is_empty());
    drop(engine);
    assert_agree(&config);
    let after = table_state(&config);
    for f in &gone {
        assert!(
            after.removed.contains(&f.path),
            "a tombstone for {:?}",
            f.path
        );
        assert!(!config.cold_dir().join(&f.path).exists());
    }
}

#[test]
fn a_migration_the_table_took_and_the_catalog_did_not_is_taken_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (config, path) = store(dir.path(), 3_000);
    // A batch with an idempotency key, in the migration the crash cuts.
    let keyed = Generator::new(Mode::Trading, 9, 2).batch(50).unwrap();
    let mut cols = keyed.columns().to_vec();
    cols[6] = std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(
        1_000_000..1_000_050,
    ));
    let keyed = arrow_array::RecordBatch::try_new(keyed.schema(), cols).unwrap();
    let first = Engine::open(config.clone())
        .unwrap()
        .ingest_keyed(&keyed, Some("kept-across-the-crash"))
        .unwrap();
    assert!(!first.replayed);
    let (ids, _) = trade_ids(&config);
    crash(&path, "after-table", &["migrate"]);
    // The table is ahead of the catalog now.
    let state = table_state(&config);
    let catalog = Catalog::open_read_only(&config.catalog_path()).unwrap();
    assert!(state.committed_through > Some(catalog.watermark().unwrap()));
    drop(catalog);

    // A read-only open reads the migration as committed, and says what a
    // writing open will do.
    let ro = Engine::open_read_only(config.clone()).unwrap();
    assert_says(&ro.opened().not_done, "the Delta table committed");
    drop(ro);
    let (seen, twice) = trade_ids(&config);
    assert_eq!(seen, ids);
    assert!(
        !twice,
        "no row is read twice (cold and replayed from the WAL)"
    );

    let engine = Engine::open(config.clone()).unwrap();
    assert_says(&engine.opened().table_notes, "took the migration");
    let stats = engine.stats().unwrap();
    assert_eq!(stats.watermark_lsn, state.committed_through.unwrap());
    drop(engine);
    assert_agree(&config);
    let (seen, twice) = trade_ids(&config);
    assert_eq!(seen, ids);
    assert!(!twice);

    // Later batches and a migration delete the WAL segments of the adopted
    // migration; its key was committed with it, so a resend (after another
    // reopen) is answered from the key and not stored again.
    let engine = Engine::open(config.clone()).unwrap();
    let mut later = Generator::new(Mode::Trading, 11, 2);
    for i in 0..4 {
        let b = later.batch(1_000).unwrap();
        let mut cols = b.columns().to_vec();
        cols[6] = std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(
            2_000_000 + i * 1_000..2_000_000 + (i + 1) * 1_000,
        ));
        engine
            .ingest(&arrow_array::RecordBatch::try_new(b.schema(), cols).unwrap())
            .unwrap();
    }
    engine.migrate_all().unwrap();
    drop(engine);
    let engine = Engine::open(config.clone()).unwrap();
    let again = engine
        .ingest_keyed(&keyed, Some("kept-across-the-crash"))
        .unwrap();
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.lsn, first.lsn);
    drop(engine);
    let (_, twice) = trade_ids(&config);
    assert!(!twice);
}

#[test]
fn a_retention_the_table_committed_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (config, path) = migrated(dir.path(), 6_000);
    let (ids, _) = trade_ids(&config);
    let listed = catalog_files(&config);
    // Retention of everything before the last day, aborted after the
    // table's commit: the catalog still lists the files.
    let last = listed
        .iter()
        .filter_map(|p| tiered::store::cold::parse_path(p))
        .map(|(p, _, _)| tiered::store::cold::partition_day(&p).unwrap())
        .max()
        .unwrap();
    let now = (last * DAY_NS).to_string();
    crash(
        &path,
        "after-table-remove",
        &["retention", "--days", "0", "--now", &now],
    );
    assert_eq!(catalog_files(&config), listed, "the catalog did not commit");
    let removed: BTreeSet<PathBuf> = table_state(&config).removed.into_iter().collect();
    assert!(!removed.is_empty());

    let engine = Engine::open(config.clone()).unwrap();
    let deleted: BTreeSet<PathBuf> = engine
        .opened()
        .deleted
        .iter()
        .map(|(p, _)| p.strip_prefix(config.cold_dir()).unwrap().to_path_buf())
        .collect();
    assert_eq!(deleted, removed, "the open deleted what the table removed");
    drop(engine);
    assert_agree(&config);
    let (seen, twice) = trade_ids(&config);
    assert!(!twice);
    assert!(seen.len() < ids.len() && seen.is_subset(&ids));
}

#[test]
fn a_store_from_before_tables_gets_one_with_all_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = migrated(dir.path(), 3_000);
    std::fs::remove_dir_all(config.cold_dir().join(table::LOG_DIR)).unwrap();
    let ro = Engine::open_read_only(config.clone()).unwrap();
    assert_says(&ro.opened().not_done, "a Delta table would be created");
    assert!(
        !table::exists(&tiered::store::objects::ColdStore::of(&config).unwrap()).unwrap(),
        "read-only creates nothing"
    );
    drop(ro);
    let engine = Engine::open(config.clone()).unwrap();
    assert_says(&engine.opened().table_notes, "committed");
    drop(engine);
    assert_agree(&config);
}

#[test]
fn checkpoints_in_the_log_are_kept_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::small_config(&dir.path().join("store"), Mode::Simple);
    config.hot_tier.max_records = 10;
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Simple, 2, 3);
    // More than 100 commits: delta-rs writes a checkpoint every 100.
    for _ in 0..105 {
        engine.ingest(&g.batch(20).unwrap()).unwrap();
        engine.migrate_all().unwrap();
    }
    drop(engine);
    let log = config.cold_dir().join(table::LOG_DIR);
    let checkpoint = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".checkpoint.parquet"))
        .expect("a checkpoint was written");
    let engine = Engine::open(config.clone()).unwrap();
    assert!(engine.opened().quarantined.is_empty());
    assert!(engine.opened().deleted.is_empty());
    drop(engine);
    assert!(checkpoint.exists(), "the open left the checkpoint alone");
    assert_agree(&config);
}

#[test]
fn a_table_file_the_catalog_cannot_explain_is_refused_and_repair_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = migrated(dir.path(), 3_000);
    let catalog = Catalog::open_read_only(&config.catalog_path()).unwrap();
    let (id, _) = catalog.store_id().unwrap().unwrap();
    let mut files = catalog.files().unwrap();
    drop(catalog);
    // The table takes a file it was never given (a copy of a real one under
    // another, older LSN range), with the txn version unchanged.
    let real = files.remove(0);
    let mut fake = real.clone();
    fake.lsn_lo = 1;
    fake.lsn_hi = 1;
    fake.path = real
        .path
        .with_file_name(tiered::store::cold::file_name(1, 1));
    let watermark = Catalog::open_read_only(&config.catalog_path())
        .unwrap()
        .watermark()
        .unwrap();
    ColdTable::open(
        &tiered::store::objects::ColdStore::of(&config).unwrap(),
        &id,
    )
    .unwrap()
    .add(std::slice::from_ref(&fake), watermark)
    .unwrap();
    let before = common::files_under(&config.storage.base_path);
    let err = Engine::open(config.clone()).unwrap_err().to_string();
    assert!(
        err.contains("disagree") && err.contains(&fake.path.display().to_string()),
        "{err}"
    );
    let after = common::files_under(&config.storage.base_path);
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, b)| before.get(*p) != Some(b) && !p.ends_with("LOCK"))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(changed.is_empty(), "nothing changed: {changed:?}");

    let report = tiered::engine::recovery::repair(&config, false).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("did not keep")),
        "{:?}",
        report.notes
    );
    Engine::open(config.clone()).unwrap();
    assert_agree(&config);
}

/// Appends a hand-written commit to the table's log (as another writer, or
/// damage, would), one JSON action per line.
fn hand_commit(config: &Config, actions: &[String]) {
    let log = config.cold_dir().join(table::LOG_DIR);
    let next = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap()
        + 1;
    let mut text = String::from(r#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}"#);
    for a in actions {
        text.push('\n');
        text.push_str(a);
    }
    std::fs::write(log.join(format!("{next:020}.json")), text).unwrap();
}

fn add_action(path: &str, size: u64) -> String {
    format!(
        r#"{{"add":{{"path":"{path}","partitionValues":{{"date":"2024-01-01"}},"size":{size},"modificationTime":1,"dataChange":true}}}}"#
    )
}

/// Each kind of entry another writer (or damage) can put in the log that
/// the catalog cannot account for is refused with the repair hint, changes
/// nothing (no file deleted), and `repair` makes the table hold exactly the
/// catalog's files again: another spelling of a listed file (which the
/// table's readers would read twice), a path that is no cold file's, a
/// listed file with another size, and a lone `remove` of a listed file
/// (no retention in progress: before, the open deleted the file).
#[test]
fn entries_nobody_can_account_for_are_refused_and_repair_restores_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = migrated(dir.path(), 3_000);
    let (ids, _) = trade_ids(&config);
    let f = Catalog::open_read_only(&config.catalog_path())
        .unwrap()
        .files()
        .unwrap()
        .remove(0);
    let raw = table::raw_path(&f);
    let (dir_part, name) = raw.rsplit_once('/').unwrap();
    let abs = config.cold_dir().join(&f.path);
    let cases = [
        ("alias", add_action(&format!("{dir_part}//{name}"), f.bytes)),
        ("dot", add_action(&format!("{dir_part}/./{name}"), f.bytes)),
        ("directory", add_action(dir_part, 4096)),
        ("outside", add_action("../catalog.sqlite", 10)),
        (
            "absolute",
            add_action(&format!("file://{}", abs.display()), f.bytes),
        ),
        ("size", add_action(&raw, f.bytes + 1)),
        (
            "lone remove",
            format!(r#"{{"remove":{{"path":"{raw}","dataChange":true,"deletionTimestamp":1}}}}"#),
        ),
    ];
    for (what, action) in cases {
        hand_commit(&config, std::slice::from_ref(&action));
        let before = common::files_under(&config.cold_dir());
        let err = Engine::open(config.clone()).unwrap_err().to_string();
        assert!(
            err.contains("disagree") && err.contains("repair"),
            "{what}: {err}"
        );
        let after = common::files_under(&config.cold_dir());
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{what}: nothing changed"
        );
        assert!(abs.exists(), "{what}: the file is still there");
        tiered::engine::recovery::repair(&config, false).unwrap();
        Engine::open(config.clone()).unwrap();
        assert_agree(&config);
        let state = table_state(&config);
        assert!(
            state.files.iter().all(|t| table::is_canonical(&t.raw)),
            "{what}: {:?}",
            state.files
        );
        let (seen, twice) = trade_ids(&config);
        assert_eq!(seen, ids, "{what}");
        assert!(!twice, "{what}");
    }
}

/// A log that cannot be read (a commit cut short, garbage, a regular file
/// in its place) refuses every open with what to do, and `repair` moves it
/// to quarantine and makes the table anew from the catalog.
#[test]
fn a_log_that_cannot_be_read_is_refused_and_repair_sets_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = migrated(dir.path(), 3_000);
    let log = config.cold_dir().join(table::LOG_DIR);
    let damage: [(&str, &dyn Fn()); 2] = [
        ("garbage", &|| {
            hand_commit(&config, &["{not json".to_string()])
        }),
        ("a file", &|| {
            std::fs::remove_dir_all(&log).unwrap();
            std::fs::write(&log, b"x").unwrap();
        }),
    ];
    for (what, harm) in damage {
        harm();
        for read_only in [true, false] {
            let e = if read_only {
                Engine::open_read_only(config.clone()).unwrap_err()
            } else {
                Engine::open(config.clone()).unwrap_err()
            };
            let e = e.to_string();
            assert!(
                e.contains("repair") && e.contains("quarantine"),
                "{what}: {e}"
            );
        }
        let report = tiered::engine::recovery::repair(&config, false).unwrap();
        assert!(
            report
                .quarantined
                .iter()
                .any(|q| q.from.ends_with(table::LOG_DIR)),
            "{what}: {:?}",
            report.quarantined
        );
        Engine::open(config.clone()).unwrap();
        assert_agree(&config);
    }
}
