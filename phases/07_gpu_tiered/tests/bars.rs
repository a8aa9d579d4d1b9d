//! Materialised bars: the newest N bars of a symbol from the catalog
//! (merged with the memory tiers) equal, bit for bit, the bars computed
//! from every raw row, through migrations, late rows, a small window,
//! retention, a reopen, a catalog whose bars are missing or damaged, and
//! migrations running beside the lookups.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::RecordBatch;
use common::small_config;
use tiered::agg::{Bar, Buckets};
use tiered::filter::Filter;
use tiered::gen::Generator;
use tiered::schema::Mode;
use tiered::store::bars::{Timeframe, TIMEFRAMES};
use tiered::Engine;

/// A bar as comparable values (floats by their bits).
fn key(b: &Bar) -> (String, i64, u64, [u64; 7]) {
    (
        b.symbol.to_string(),
        b.time,
        b.trades,
        [
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.price_sum,
            b.volume_min,
        ]
        .map(f64::to_bits),
    )
}

fn keys(bars: &[Bar]) -> Vec<(String, i64, u64, [u64; 7])> {
    bars.iter().map(key).collect()
}

/// The newest `limit` bars of `symbol` by `Engine::aggregate` over every
/// tier: an independent path (per-tier partials, buckets by index).
fn by_aggregate(
    engine: &Engine,
    symbol: &str,
    tf: Timeframe,
    limit: usize,
    (lo, hi): (i64, i64),
) -> Vec<Bar> {
    let every = tf.nanos();
    let buckets = Buckets::new(tf.bucket(lo), tf.bucket(hi) + every, every, 1 << 22).unwrap();
    let (bars, _) = engine
        .aggregate(&[Filter::eq("symbol", symbol)], &buckets)
        .unwrap();
    let skip = bars.len().saturating_sub(limit);
    bars[skip..].to_vec()
}

/// Ingests `n` generated batches of `rows` (kept in `all`), then moves
/// everything to the cold tier.
fn fill_and_migrate(
    engine: &Engine,
    g: &mut Generator,
    (n, rows): (usize, usize),
    all: &mut Vec<RecordBatch>,
) {
    for _ in 0..n {
        let b = g.batch(rows).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
    }
    engine.migrate_all().unwrap();
}

fn span(batches: &[RecordBatch]) -> (i64, i64) {
    let mut lo = i64::MAX;
    let mut hi = i64::MIN;
    for b in batches {
        for &t in b
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .values()
        {
            lo = lo.min(t);
            hi = hi.max(t);
        }
    }
    (lo, hi)
}

/// Checks every timeframe, a few symbols and limits; returns how many
/// lookups the catalog answered.
fn check_all(engine: &Engine, g: &Generator, all: &[RecordBatch], keep: usize) -> usize {
    check(engine, g, all, keep, true)
}

/// [`check_all`]; `settled`: the catalog's windows were built with `keep`
/// (so it answers every limit up to `keep`).
fn check(engine: &Engine, g: &Generator, all: &[RecordBatch], keep: usize, settled: bool) -> usize {
    let range = span(all);
    let mut from_catalog = 0;
    for tf in TIMEFRAMES {
        for s in [0, 3] {
            let symbol = g.symbol(s);
            for limit in [1, 7, keep, keep + 5] {
                let want = by_aggregate(engine, &symbol, tf, limit, range);
                let (got, stats) = engine.latest_bars(&symbol, tf, limit).unwrap();
                assert_eq!(
                    keys(&got),
                    keys(&want),
                    "{symbol} {} limit {limit}: {stats:?}",
                    tf.name()
                );
                let (raw, _) = engine.latest_bars_from_raw(&symbol, tf, limit).unwrap();
                assert_eq!(keys(&raw), keys(&want), "from raw, {symbol} {}", tf.name());
                if limit <= keep {
                    assert!(!settled || stats.source == "catalog", "{stats:?}");
                    from_catalog += (stats.source == "catalog") as usize;
                } else {
                    assert_eq!(stats.source, "raw");
                    assert!(stats.why_raw.as_deref().unwrap_or("").contains("keeps"));
                }
            }
        }
    }
    from_catalog
}

#[test]
fn latest_bars_equal_the_raw_bars_through_migrations_late_rows_retention_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let keep = 12;
    let mut config = small_config(dir.path(), Mode::Trading);
    config.cold_tier.bars_kept = keep;
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Trading, 9, 6);
    g.mean_gap_ns = 40_000_000_000; // 40 s: several days over the test
    let mut late = Generator::new(Mode::Trading, 10, 6).starting_at(g.now());
    late.mean_gap_ns = 5_000_000_000;
    let mut all = Vec::new();
    for i in 0..24 {
        let b = g.batch(300).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
        if i % 5 == 4 {
            // Late rows: from an hour to a day behind the newest, some
            // into buckets the catalog already holds, some older than its
            // window.
            let b = late.batch(120).unwrap();
            engine.ingest(&b).unwrap();
            all.push(b);
            late = Generator::new(Mode::Trading, 11 + i, 6)
                .starting_at(g.now() - 3_600_000_000_000 * (1 + i as i64 % 24));
            late.mean_gap_ns = 5_000_000_000;
        }
        if i % 8 == 7 {
            let s = engine.stats().unwrap();
            assert!(s.cold_records > 0 && s.hot_records > 0, "{s:?}");
            assert!(check_all(&engine, &g, &all, keep) > 0);
        }
    }
    engine.migrate_all().unwrap();
    check_all(&engine, &g, &all, keep);
    let kept: i64 = engine
        .with_catalog(|c| {
            let tf = Timeframe::parse("1m")?;
            Ok(c.latest_bars(&g.symbol(0), tf, 10_000)?.rows.len() as i64)
        })
        .unwrap();
    // Whole pages (an hour of 1-minute bars) holding the newest `keep`.
    assert!(
        (keep as i64..keep as i64 + 60).contains(&kept),
        "the catalog keeps {kept} for {keep}"
    );

    // Retention drops old days: the bars of the days left still agree.
    let (_, hi) = span(&all);
    let gone = engine.retention(1, hi).unwrap();
    assert!(!gone.is_empty());
    let removed: Vec<_> = gone.iter().map(|f| f.max_ts).collect();
    let cutoff = removed.iter().max().copied().unwrap();
    let mut left: Vec<RecordBatch> = all
        .iter()
        .map(|b| {
            let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
            let keep = arrow_array::BooleanArray::from(
                ts.values().iter().map(|&t| t > cutoff).collect::<Vec<_>>(),
            );
            arrow_select::filter::filter_record_batch(b, &keep).unwrap()
        })
        .collect();
    check_all(&engine, &g, &left, keep);

    // A reopen keeps them; a catalog whose bars are gone (a repaired one,
    // or a store from before bars) has them rebuilt when it opens.
    drop(engine);
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(engine.opened().bars, None);
    check_all(&engine, &g, &left, keep);
    engine
        .with_catalog(|c| c.set_meta("bars_watermark_lsn", "1"))
        .unwrap();
    let (_, stats) = engine.latest_bars(&g.symbol(0), TIMEFRAMES[0], 3).unwrap();
    assert_eq!(stats.source, "raw");
    assert!(stats.why_raw.unwrap().contains("not current"));
    drop(engine);
    let engine = Engine::open(config.clone()).unwrap();
    let note = engine.opened().bars.clone().unwrap();
    assert!(note.starts_with("rebuilt the catalog's bars"), "{note}");
    check_all(&engine, &g, &left, keep);

    // A larger window than the catalog kept: lookups it cannot answer
    // whole read the raw rows, then new rows (late ones among them) and
    // migrations fill it; a smaller one cuts it.
    drop(engine);
    for keep in [keep * 2, keep / 3] {
        config.cold_tier.bars_kept = keep;
        let engine = Engine::open(config.clone()).unwrap();
        check(&engine, &g, &left, keep, false);
        let mut more = left.clone();
        for i in 0..6 {
            let b = if i % 2 == 0 {
                g.batch(300)
            } else {
                late.batch(100)
            }
            .unwrap();
            engine.ingest(&b).unwrap();
            more.push(b);
        }
        engine.migrate_all().unwrap();
        check(&engine, &g, &more, keep, false);
        left = more;
    }
}

#[test]
fn a_damaged_kept_bar_is_not_used_and_does_not_stop_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    let engine = Engine::open(config.clone()).unwrap();
    let mut g = Generator::new(Mode::Simple, 3, 2);
    g.mean_gap_ns = 10_000_000_000;
    let mut all = Vec::new();
    fill_and_migrate(&engine, &mut g, (4, 500), &mut all);
    let symbol = g.symbol(0);
    let tf = Timeframe::parse("1h").unwrap();
    let path = dir.path().join("catalog.sqlite");
    drop(engine);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let n = conn
            .execute(
                "UPDATE bar_pages SET state = zeroblob(length(state)) WHERE symbol = ?1 AND timeframe = 3600",
                [&symbol],
            )
            .unwrap();
        assert!(n > 0);
    }
    let engine = Engine::open(config).unwrap();
    let (got, stats) = engine.latest_bars(&symbol, tf, 5).unwrap();
    assert_eq!(stats.source, "raw", "{stats:?}");
    assert!(stats.why_raw.unwrap().contains("CRC-32C"));
    assert_eq!(
        keys(&got),
        keys(&by_aggregate(&engine, &symbol, tf, 5, span(&all)))
    );
    // Later migrations still commit; the bars are marked stale instead of
    // merging into the damaged row, and the next open rebuilds them.
    fill_and_migrate(&engine, &mut g, (3, 500), &mut all);
    assert_eq!(engine.stats().unwrap().hot_records, 0);
    assert!(!engine.with_catalog(|c| c.bars_current()).unwrap());
    let (got, stats) = engine.latest_bars(&symbol, tf, 5).unwrap();
    assert_eq!(stats.source, "raw");
    assert_eq!(
        keys(&got),
        keys(&by_aggregate(&engine, &symbol, tf, 5, span(&all)))
    );
    drop(engine);
    let engine = Engine::open(small_config(dir.path(), Mode::Simple)).unwrap();
    assert!(engine.opened().bars.is_some());
    let (got, stats) = engine.latest_bars(&symbol, tf, 5).unwrap();
    assert_eq!(stats.source, "catalog");
    assert_eq!(
        keys(&got),
        keys(&by_aggregate(&engine, &symbol, tf, 5, span(&all)))
    );
}

/// Lookups beside a writer whose ingests migrate: every lookup sees each
/// row once, never twice (a migration between the catalog read and the
/// memory read) and never not at all.
#[test]
fn lookups_beside_migrations_count_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(small_config(dir.path(), Mode::Simple)).unwrap());
    let mut g = Generator::new(Mode::Simple, 5, 1);
    g.mean_gap_ns = 1_000_000_000;
    let symbol = g.symbol(0);
    let ingested = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (engine, ingested, done) = (engine.clone(), ingested.clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..150 {
                let b = g.batch(200).unwrap();
                engine.ingest(&b).unwrap();
                ingested.fetch_add(200, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let tf = Timeframe::parse("1d").unwrap();
    let mut lookups = 0;
    while !done.load(Ordering::SeqCst) || lookups < 10 {
        let before = ingested.load(Ordering::SeqCst);
        let (bars, _) = engine.latest_bars(&symbol, tf, 100).unwrap();
        // A batch being ingested may be visible before it is counted; a
        // row counted twice would show a whole migration (over 1,000 rows)
        // too many.
        let after = ingested.load(Ordering::SeqCst) + 200;
        let seen: u64 = bars.iter().map(|b| b.trades).sum();
        assert!(
            (before..=after).contains(&seen),
            "saw {seen} rows, {before}..={after} were ingested"
        );
        lookups += 1;
    }
    writer.join().unwrap();
    assert!(engine.stats().unwrap().migrations > 3);
}

/// The kept bars edited behind the engine's back: a page or a key row
/// deleted, both deleted, a garbage watermark. Each is noticed (the answer
/// comes from the raw rows and says why), `scrub` reports it, migrations
/// still commit, and the next writing open rebuilds the bars.
#[test]
fn hand_edits_of_the_kept_bars_are_noticed_scrubbed_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    let mut g = Generator::new(Mode::Simple, 21, 3);
    g.mean_gap_ns = 20_000_000_000;
    let mut all = Vec::new();
    let engine = Engine::open(config.clone()).unwrap();
    fill_and_migrate(&engine, &mut g, (6, 400), &mut all);
    drop(engine);
    let symbol = g.symbol(0);
    let tf = Timeframe::parse("1h").unwrap();
    let path = dir.path().join("catalog.sqlite");
    let edits = [
        "DELETE FROM bar_pages WHERE symbol = ?1 AND timeframe = 3600
         AND page = (SELECT max(page) FROM bar_pages WHERE symbol = ?1 AND timeframe = 3600)",
        "DELETE FROM bar_keys WHERE symbol = ?1 AND timeframe = 3600",
        "DELETE FROM bar_pages WHERE symbol = ?1 AND timeframe = 3600 AND ?1 = ?1",
        "UPDATE bar_keys SET complete_from = 0 WHERE symbol = ?1 AND timeframe = 3600",
        "UPDATE meta SET value = 'abc' WHERE key = 'bars_watermark_lsn' AND ?1 = ?1",
    ];
    for (n, edit) in edits.iter().chain(&edits).enumerate() {
        // First pass: a lookup meets the damage first; second: a migration.
        let (i, lookup_first) = (n % edits.len(), n < edits.len());
        let engine = Engine::open(config.clone()).unwrap();
        let (_, s) = engine.latest_bars(&symbol, tf, 50).unwrap();
        assert_eq!(s.source, "catalog", "before edit {i}: {s:?}");
        if i == 2 {
            // Both the key row and its pages: nothing left to disagree,
            // but the cold tier lists the symbol.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute(edits[1], [&symbol]).unwrap();
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert!(conn.execute(edit, [&symbol]).unwrap() > 0, "edit {i}");
        drop(conn);
        let report = engine.scrub().unwrap();
        if i < 4 {
            assert!(
                !report.bars_problems.is_empty(),
                "edit {i}: scrub saw nothing"
            );
        } else {
            // Stale bars are not damage: scrub says it skipped them.
            assert!(report.bars_not_checked.is_some(), "edit {i}: {report:?}");
        }
        let lookup = |all: &[RecordBatch]| {
            let (got, s) = engine.latest_bars(&symbol, tf, 50).unwrap();
            assert_eq!(s.source, "raw", "edit {i}: {s:?}");
            let want = keys(&by_aggregate(&engine, &symbol, tf, 50, span(all)));
            assert_eq!(keys(&got), want, "edit {i}");
        };
        if lookup_first {
            lookup(&all);
        }
        // Migrations still commit.
        let b = g.batch(300).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
        engine.migrate_all().unwrap();
        assert_eq!(engine.stats().unwrap().hot_records, 0);
        lookup(&all);
        drop(engine);
        let engine = Engine::open(config.clone()).unwrap();
        let note = engine.opened().bars.clone();
        assert!(
            note.as_deref().unwrap_or("").starts_with("rebuilt"),
            "edit {i}: {note:?}"
        );
        let (got, s) = engine.latest_bars(&symbol, tf, 50).unwrap();
        assert_eq!(s.source, "catalog", "after edit {i}: {s:?}");
        assert_eq!(
            keys(&got),
            keys(&by_aggregate(&engine, &symbol, tf, 50, span(&all)))
        );
        assert!(engine.scrub().unwrap().bars_problems.is_empty());
    }
}

/// An earlier build (before bars) ran retention on the store: the files
/// went, the bars of their days stayed, the watermark did not move. The
/// bars describe the files too, so they are stale and rebuilt, never
/// answered with the deleted days.
#[test]
fn bars_left_behind_by_an_earlier_builds_retention_are_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    let mut g = Generator::new(Mode::Simple, 31, 2);
    g.mean_gap_ns = 60_000_000_000;
    let mut all = Vec::new();
    let engine = Engine::open(config.clone()).unwrap();
    fill_and_migrate(&engine, &mut g, (8, 500), &mut all);
    let path = dir.path().join("catalog.sqlite");
    // The bars as they are, kept aside; retention by this build; then the
    // bars put back as the earlier build would have left them.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE old_pages AS SELECT * FROM bar_pages;
         CREATE TABLE old_keys AS SELECT * FROM bar_keys;
         CREATE TABLE old_meta AS SELECT * FROM meta WHERE key = 'bars_watermark_lsn';",
    )
    .unwrap();
    let (_, hi) = span(&all);
    let gone = engine.retention(1, hi).unwrap();
    assert!(!gone.is_empty());
    conn.execute_batch(
        "DELETE FROM bar_pages; INSERT INTO bar_pages SELECT * FROM old_pages;
         DELETE FROM bar_keys; INSERT INTO bar_keys SELECT * FROM old_keys;
         INSERT OR REPLACE INTO meta SELECT * FROM old_meta;",
    )
    .unwrap();
    let symbol = g.symbol(0);
    let tf = Timeframe::parse("1d").unwrap();
    let want = |engine: &Engine| keys(&engine.latest_bars_from_raw(&symbol, tf, 30).unwrap().0);
    let (got, s) = engine.latest_bars(&symbol, tf, 30).unwrap();
    assert_eq!(s.source, "raw", "{s:?}");
    assert!(s.why_raw.unwrap().contains("not current"));
    assert_eq!(keys(&got), want(&engine));
    drop(engine);
    let engine = Engine::open(config).unwrap();
    assert!(engine.opened().bars.is_some());
    let (got, s) = engine.latest_bars(&symbol, tf, 30).unwrap();
    assert_eq!(s.source, "catalog", "{s:?}");
    assert_eq!(keys(&got), want(&engine));
}
