//! A store written by an earlier version, committed in
//! `tests/fixtures/store-v1/` (a catalog, a WAL segment holding a keyed
//! batch, three Parquet files; how it was made is in
//! `tests/fixtures/README.md`), must open in every later version, read-only
//! and read-write, and give back every record it held, bit for bit:
//! `store-v1.rows` lists them (columns joined by `|`, floats by their bits,
//! sorted). A change that cannot read it is a change of format, and needs a
//! migration, not a new fixture.

mod common;

use std::path::Path;

use common::{concat, row_keys};
use tiered::config::Config;
use tiered::read::query::Query;
use tiered::Engine;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The fixture copied into `dir` (opening may change a store), with the
/// configuration it was written under.
fn config(dir: &Path) -> Config {
    copy_dir(&fixtures().join("store-v1"), dir);
    let mut c = Config::load(Some(&fixtures().join("store-v1.config.json"))).unwrap();
    c.storage.base_path = dir.to_path_buf();
    // The longest retention there is (a year): see [`key_kept`].
    c.idempotency.retention_hours = KEY_RETENTION_HOURS;
    c
}

const KEY_RETENTION_HOURS: f64 = 8760.0;
/// When the fixture's keyed batch was stored: after commit ce6c710 (the
/// version that wrote it, 2026-12-01T07:18:13Z) and before 629e17b (the
/// commit that added it, 07:20:40Z), in Unix seconds.
const KEY_STORED_AFTER_S: i64 = 1_796_109_493;
const KEY_STORED_BEFORE_S: i64 = 1_796_109_640;

/// Whether the fixture's idempotency key is still kept today: `Some(true)`
/// within [`KEY_RETENTION_HOURS`] of its storing, `Some(false)` after, and
/// `None` in the minutes between the two bounds a year on.
///
/// Q: Why does a fixture's test read the clock?
/// A: A key is kept for hours counted from when it was stored, and the
/// fixture's was stored when the fixture was made: with the default 24
/// hours, the test that found the key again failed the day after the
/// fixture landed. Both answers are right at their time, so both are
/// tested, each in its time.
fn key_kept() -> Option<bool> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let oldest_kept = now - (KEY_RETENTION_HOURS * 3600.0) as i64;
    if oldest_kept <= KEY_STORED_AFTER_S {
        Some(true)
    } else if oldest_kept > KEY_STORED_BEFORE_S {
        Some(false)
    } else {
        None
    }
}

fn all_rows(engine: &Engine) -> Vec<String> {
    let (batch, _) = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap();
    let mut rows = row_keys(&concat(&[batch]));
    rows.sort();
    rows
}

fn want() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("store-v1.rows"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_v1_store_opens_read_only_and_holds_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_read_only(config(dir.path())).unwrap();
    let rows = all_rows(&engine);
    let want = want();
    assert_eq!(want.len(), 2002);
    assert_eq!(rows.len(), want.len());
    assert!(rows == want, "the records read differ from store-v1.rows");
    let s = engine.stats().unwrap();
    assert_eq!((s.cold_files, s.cold_records), (3, 1500), "{s:?}");
    assert_eq!(s.total(), 2002);
    let scrub = engine.scrub().unwrap();
    assert!(
        scrub.damaged.is_empty() && scrub.unreadable.is_empty(),
        "{scrub:?}"
    );
    assert_eq!(scrub.wal_problem, None);
}

/// The cold directory says whose it is (`cold/_store`): the fixture's
/// store ID, from its catalog, is honoured, and a cold directory claimed by
/// another store is refused.
#[test]
fn the_v1_store_keeps_its_id_and_its_cold_directory_is_checked_against_it() {
    const ID: &str = "10e3c0b8463e1ce15294014288ed394e";
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let owner = std::fs::read_to_string(dir.path().join("cold/_store")).unwrap();
    assert!(owner.contains(ID), "{owner}");
    let engine = Engine::open_read_only(config.clone()).unwrap();
    assert_eq!(engine.store_id(), Some(ID));
    drop(engine);
    std::fs::write(
        dir.path().join("cold/_store"),
        owner.replace(ID, "00000000000000000000000000000000"),
    )
    .unwrap();
    assert!(Engine::open(config.clone()).is_err());
    assert!(Engine::open_read_only(config).is_err());
}

#[test]
fn the_v1_store_opens_read_write_keeps_its_keys_and_takes_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let engine = Engine::open(config.clone()).unwrap();
    assert!(
        all_rows(&engine) == want(),
        "the records read differ from store-v1.rows"
    );
    // The keyed batch in its WAL is recognised: the same batch under the
    // same key is not stored again.
    let mut keyed = Vec::new();
    tiered::ingest::files::read_csv(
        &fixtures().join("store-v1.keyed.csv"),
        engine.mode(),
        1000,
        |b| {
            keyed.push(b);
            Ok(true)
        },
    )
    .unwrap();
    let again = engine
        .ingest_keyed(&concat(&keyed), Some("fixture:0:0"))
        .unwrap();
    // Once the key has expired, the batch is stored again (2 records).
    let kept = key_kept().unwrap_or(again.replayed);
    assert_eq!(again.replayed, kept, "{again:?}");
    let stored = if kept { 2002 } else { 2004 };
    assert_eq!(engine.stats().unwrap().total(), stored);
    // New records go in, and survive a reopen with the old ones.
    let mut g = tiered::gen::Generator::new(engine.mode(), 5, 3);
    engine.ingest(&g.batch(100).unwrap()).unwrap();
    drop(engine);
    let engine = Engine::open(config).unwrap();
    let rows = all_rows(&engine);
    assert_eq!(rows.len() as u64, stored + 100);
    let want = want();
    assert!(
        want.iter().all(|r| rows.binary_search(r).is_ok()),
        "a record of the fixture is gone after new ones were added"
    );
}
