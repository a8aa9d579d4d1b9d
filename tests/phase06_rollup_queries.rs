//! Phase 06 answering aggregates from phase 05's rollups: the same rows as
//! the raw scan, far fewer bytes, and never from rollups of other data.

mod common;
use common::*;

use std::path::Path;

use squeeze::query::{Engine, Output, Value};

/// Runs phases 04 and 05 on what `00_generate` wrote in `dir`.
fn roll_up(dir: &Path) {
    ok(run_in(dir, "04_custom_binary", &[]));
    ok(run_in(dir, "05_downsampling", &[]));
}

/// A new directory with `points` generated samples of 4 series (15 s
/// apart), phases 04 and 05 run on them.
fn rolled_up(points: u64, seed: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(run_in(
        dir.path(),
        "00_generate",
        &[
            "--series",
            "4",
            "--points",
            &points.to_string(),
            "--seed",
            seed,
        ],
    ));
    roll_up(dir.path());
    dir
}

fn engines(dir: &Path) -> (Engine, Engine) {
    let path = dir.join("04_custom.metrics");
    (
        Engine::open(&path).expect("raw engine"),
        Engine::open_with_rollups(&path).expect("rollup engine"),
    )
}

fn query(e: &Engine, sql: &str) -> Output {
    e.query(sql).unwrap_or_else(|err| panic!("{sql}: {err}"))
}

fn explain(e: &Engine, sql: &str) -> String {
    let o = query(e, &format!("EXPLAIN ANALYZE {sql}"));
    o.table
        .rows
        .iter()
        .map(|r| r.iter().map(Value::render).collect::<String>() + "\n")
        .collect()
}

/// Same rows: keys, counts, minima and maxima bit for bit; sums and
/// averages within a relative 1e-12 (bucket sums are added, not samples).
fn assert_same_rows(raw: &Output, rolled: &Output, sql: &str) {
    assert_eq!(raw.table.columns, rolled.table.columns, "{sql}");
    assert_eq!(raw.table.rows.len(), rolled.table.rows.len(), "{sql}");
    assert!(!raw.table.rows.is_empty(), "{sql} returned nothing");
    for (a, b) in raw.table.rows.iter().zip(&rolled.table.rows) {
        for ((x, y), col) in a.iter().zip(b).zip(&raw.table.columns) {
            match (x, y) {
                (Value::Float(x), Value::Float(y))
                    if col.starts_with("sum") || col.starts_with("avg") =>
                {
                    let same = (x.is_nan() && y.is_nan())
                        || x == y
                        || (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
                    assert!(same, "{sql}: {col} {x} (raw) vs {y} (rollups)");
                }
                (Value::Float(x), Value::Float(y)) => {
                    assert_eq!(x.to_bits(), y.to_bits(), "{sql}: {col} {x} vs {y}")
                }
                _ => assert_eq!(x, y, "{sql}: {col}"),
            }
        }
    }
}

const HOURLY: &str = "SELECT time_bucket('1h', ts) AS h, host, avg(value), max(value), min(value), sum(value), count(*) FROM cpu_usage_percent";

#[test]
fn an_hourly_query_over_30_days_reads_20x_fewer_bytes_from_rollups_and_gives_the_raw_rows() {
    // 30 days of 15 s scrapes of 4 series.
    let dir = rolled_up(4 * 30 * 5760, "42");
    let (raw, rolled) = engines(dir.path());
    for sql in [
        format!("{HOURLY} GROUP BY h, host ORDER BY h, host"),
        format!("{HOURLY} WHERE ts >= '2024-01-03T00:00:00Z' AND ts < '2024-01-20T00:00:00Z' GROUP BY h, host"),
        "SELECT count(*), max(value), avg(value) FROM cpu_usage_percent".into(),
        "SELECT time_bucket('1d', ts) AS d, count(*), sum(value) FROM cpu_usage_percent GROUP BY d".into(),
    ] {
        let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
        assert_same_rows(&a, &b, &sql);
        assert!(
            !b.stats.rollup_series.is_empty(),
            "{sql}: not answered from rollups: {:?}",
            b.stats.rollup_note
        );
        assert_eq!(b.stats.rollup_series[0].0, "05_rollup_1h.metrics", "{sql}");
        // Both open the raw file (its directory); the rollup files' roots
        // are what rollups add at open.
        let ra = a.stats.bytes_read;
        let rb = b.stats.bytes_read + (b.stats.open_bytes - a.stats.open_bytes);
        assert!(
            ra >= 20 * rb,
            "{sql}: raw read {ra} B, rollups {rb} B ({:.1}x)",
            ra as f64 / rb as f64
        );
    }
    let plan = explain(&rolled, &format!("{HOURLY} GROUP BY h, host"));
    assert!(
        plan.contains(" series from 05_rollup_1h.metrics: its 1h buckets divide"),
        "{plan}"
    );
}

#[test]
fn rollups_answer_only_what_they_can_and_explain_says_why() {
    let dir = rolled_up(4 * 3 * 5760, "42");
    let (raw, rolled) = engines(dir.path());
    // A range on 5-minute boundaries but not on hours: the 5m rollups.
    let sql = format!(
        "{HOURLY} WHERE ts >= '2024-01-01T00:05:00Z' AND ts <= '2024-01-02T10:54:59.999999999Z' GROUP BY h, host"
    );
    let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
    assert_same_rows(&a, &b, &sql);
    assert_eq!(
        b.stats.rollup_series.first().map(|s| s.0.as_str()),
        Some("05_rollup_5m.metrics"),
        "{sql}"
    );
    // Off every boundary: the hours inside from the 1h rollups, the
    // edges (a second short of an hour, and 1.5 s) from raw samples.
    let sql = format!(
        "{HOURLY} WHERE ts >= '2024-01-01T00:00:01Z' AND ts < '2024-01-02T07:00:01.5Z' GROUP BY h, host"
    );
    let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
    assert_same_rows(&a, &b, &sql);
    assert_eq!(
        b.stats.rollup_series.first().map(|s| (s.0.as_str(), s.3)),
        Some(("05_rollup_1h.metrics", 1)),
        "{sql}"
    );
    assert!(b.stats.blocks_read > 0, "{sql}: the edges are raw");
    assert!(b.stats.bytes_read < a.stats.bytes_read, "{sql}");
    assert!(explain(&rolled, &sql).contains("edges"), "{sql}");
    // No whole bucket of any resolution in the range: raw.
    let sql = format!(
        "{HOURLY} WHERE ts > '2024-01-01T00:00:01Z' AND ts < '2024-01-01T00:00:59Z' GROUP BY h, host"
    );
    let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
    assert_same_rows(&a, &b, &sql);
    assert!(b.stats.rollup_series.is_empty(), "{sql}");
    assert!(explain(&rolled, &sql).contains("series read raw"), "{sql}");
    // Ranges written every way, on and off boundaries, agree with raw.
    for range in [
        "ts BETWEEN '2024-01-01T01:00:00Z' AND '2024-01-01T05:59:59.999999999Z'",
        "ts > '2024-01-01T00:59:59.999999999Z' AND ts <= '2024-01-02T00:00:00Z'",
        "ts >= '2024-01-01T01:00:00Z' AND ts < '2024-01-01T01:00:30Z'",
        "ts < '2024-01-01T03:17:00Z'",
        "ts >= '2024-01-02T23:59:59Z'",
        "(ts < '2024-01-01T02:00:00Z' OR ts >= '2024-01-02T02:00:00Z')",
    ] {
        let sql = format!("{HOURLY} WHERE {range} GROUP BY h, host");
        let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
        assert_same_rows(&a, &b, &sql);
    }
    // Buckets that 1h does not divide (90 minutes): the 15m rollups.
    let sql = "SELECT time_bucket('90m', ts) AS t, count(*), max(value) FROM cpu_usage_percent GROUP BY t";
    let (a, b) = (query(&raw, sql), query(&rolled, sql));
    assert_same_rows(&a, &b, sql);
    assert_eq!(
        b.stats.rollup_series.first().map(|s| s.0.as_str()),
        Some("05_rollup_15m.metrics")
    );
    // What rollups cannot answer, with the reason.
    for (sql, why) in [
        (
            "SELECT time_bucket('1h', ts) AS h, percentile(value, 0.5) FROM cpu_usage_percent GROUP BY h",
            "percentiles need raw samples",
        ),
        (
            "SELECT time_bucket('1h', ts) AS h, count(*) FROM cpu_usage_percent WHERE value > 50 GROUP BY h",
            "a condition on value needs raw samples",
        ),
        (
            "SELECT time_bucket('1h', ts) AS h, last(value) FROM cpu_usage_percent GROUP BY h",
            "last() needs raw samples",
        ),
        (
            "SELECT ts, count(*) FROM cpu_usage_percent GROUP BY ts",
            "grouping by exact timestamp",
        ),
    ] {
        let (a, b) = (query(&raw, sql), query(&rolled, sql));
        assert_eq!(a.table, b.table, "{sql}");
        assert!(b.stats.rollup_series.is_empty(), "{sql}");
        let plan = explain(&rolled, sql);
        assert!(plan.contains(why), "{sql}: {plan}");
    }
}

#[test]
fn rollups_of_another_dataset_are_never_read() {
    let dir = rolled_up(40_000, "42");
    // New data, phase 04 again, phase 05 not: the rollups are stale.
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--series", "4", "--points", "40000", "--seed", "7"],
    ));
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let (raw, rolled) = engines(dir.path());
    let sql = format!("{HOURLY} GROUP BY h, host");
    let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
    assert_eq!(a.table, b.table);
    assert!(b.stats.rollup_series.is_empty());
    let plan = explain(&rolled, &sql);
    assert!(plan.contains("describe another dataset"), "{plan}");
    // The binary says the same, and --no-rollups is quiet about it.
    let out = ok(run_in(
        dir.path(),
        "06_query_engine",
        &[&format!("EXPLAIN {sql}")],
    ));
    assert!(out.contains("rollups:"), "{out}");
    let out = ok(run_in(
        dir.path(),
        "06_query_engine",
        &["--no-rollups", &format!("EXPLAIN {sql}")],
    ));
    assert!(!out.contains("rollups:"), "{out}");
}

/// A rollup file replaced behind the report's back (here: copied from a
/// run on other data, its report entry made to match its size, as if the
/// two sizes had collided) is never read: the entry records the identity
/// of the file phase 05 wrote and of the raw file it rolled up.
#[test]
fn a_rollup_file_swapped_for_another_of_the_same_size_is_never_read() {
    let (a, b) = (rolled_up(40_000, "1"), rolled_up(40_000, "7"));
    let name = "05_rollup_1h.metrics";
    swap_behind_the_report(a.path(), b.path(), name, "05.4");
    let (raw, rolled) = engines(b.path());
    let sql = format!("{HOURLY} GROUP BY h, host ORDER BY h, host");
    let (x, y) = (query(&raw, &sql), query(&rolled, &sql));
    assert_same_rows(&x, &y, &sql);
    assert!(
        y.stats.rollup_series.iter().all(|r| !r.0.contains(name)),
        "{:?}",
        y.stats.rollup_series
    );
    let plan = explain(&rolled, &sql);
    assert!(plan.contains("from 05_rollup_15m.metrics"), "{plan}");
    assert!(!plan.contains(name), "{plan}");
}

/// The same for the raw file: rollups made from other samples than the
/// file's are never read.
#[test]
fn a_raw_file_swapped_for_another_of_the_same_size_reads_no_rollups() {
    let (a, b) = (rolled_up(40_000, "1"), rolled_up(40_000, "7"));
    swap_behind_the_report(a.path(), b.path(), "04_custom.metrics", "04");
    let (raw, rolled) = engines(b.path());
    let sql = format!("{HOURLY} GROUP BY h, host ORDER BY h, host");
    let (x, y) = (query(&raw, &sql), query(&rolled, &sql));
    assert_eq!(x.table, y.table);
    assert!(
        y.stats.rollup_series.is_empty(),
        "{:?}",
        y.stats.rollup_series
    );
    let plan = explain(&rolled, &sql);
    assert!(plan.contains("rerun phases 04 and 05"), "{plan}");
}

/// Copies `name` from `from` over the one in `to` and makes `to`'s report
/// entry `phase` give its size, as if the two sizes had been equal.
fn swap_behind_the_report(from: &Path, to: &Path, name: &str, phase: &str) {
    let entry = to.join(format!("report/{phase}.json"));
    let json = std::fs::read_to_string(&entry).unwrap();
    assert!(json.contains(name), "{json}");
    let (old, new) = (
        std::fs::metadata(to.join(name)).unwrap().len(),
        std::fs::metadata(from.join(name)).unwrap().len(),
    );
    std::fs::copy(from.join(name), to.join(name)).unwrap();
    let patched = json.replace(&format!("\"bytes\": {old},"), &format!("\"bytes\": {new},"));
    assert_ne!(patched, json, "the entry's size was patched");
    std::fs::write(&entry, patched).unwrap();
}

#[test]
fn nan_samples_count_as_rows_and_make_sums_nan_as_in_the_raw_scan() {
    let dir = tempfile::tempdir().unwrap();
    // Two gauges at 10 s over a day; one has NaN samples here and there
    // and a whole NaN hour.
    let mut csv = String::from("series,timestamp,value\n");
    let start = 1_704_067_200i64;
    for i in 0..8640i64 {
        let t = start + 10 * i;
        let hour = i / 360;
        let a = if hour == 5 || i % 97 == 0 {
            "NaN".to_string()
        } else {
            format!("{}.{}", 20 + (i * 7) % 13, i % 10)
        };
        csv.push_str(&format!("\"temp{{room=\"\"a\"\"}}\",{t},{a}\n"));
        csv.push_str(&format!(
            "\"temp{{room=\"\"b\"\"}}\",{t},{}.5\n",
            (i * 3) % 17
        ));
    }
    let file = dir.path().join("temp.csv");
    std::fs::write(&file, csv).unwrap();
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--import", file.to_str().unwrap()],
    ));
    roll_up(dir.path());
    let (raw, rolled) = engines(dir.path());
    for sql in [
        "SELECT time_bucket('1h', ts) AS h, room, count(*), sum(value), avg(value), min(value), max(value) FROM temp GROUP BY h, room",
        "SELECT room, count(*), sum(value), min(value), max(value) FROM temp GROUP BY room",
    ] {
        let (a, b) = (query(&raw, sql), query(&rolled, sql));
        assert_same_rows(&a, &b, sql);
        assert_eq!(b.stats.rollup_series.len(), 1, "{sql}");
        assert_eq!(b.stats.rollup_series[0].2, 2, "{sql}");
    }
}

/// Imports `rows` of (series, seconds, value) and runs phases 04 and 05.
fn imported(rows: &[(&str, i64, String)]) -> (tempfile::TempDir, Engine, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("series,timestamp,value\n");
    for (s, t, v) in rows {
        csv.push_str(&format!("\"{}\",{t},{v}\n", s.replace('"', "\"\"")));
    }
    let file = dir.path().join("data.csv");
    std::fs::write(&file, csv).unwrap();
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--import", file.to_str().unwrap()],
    ));
    roll_up(dir.path());
    let (raw, rolled) = engines(dir.path());
    (dir, raw, rolled)
}

#[test]
fn sums_that_cancel_or_overflow_and_signed_zeros_give_the_raw_answer() {
    let t0 = 1_704_067_200i64;
    let noisy = |i: i64| format!("{}.{:02}", (i * 7919) % 97, (i * 31) % 100);
    let mut rows = Vec::new();
    for i in 0..1440i64 {
        // Host a: 1e17 and -1e17 around a small value, in one bucket.
        let a = match i {
            10 => "1e17".to_string(),
            11 => (10.0f64 / 3.0).to_string(),
            12 => "-1e17".to_string(),
            _ => noisy(i),
        };
        rows.push(("cpu{host=\"a\"}", t0 + 15 * i, a));
        // Host b: a sine over whole periods (its sums cancel to ~0).
        let b = (2.0 * std::f64::consts::PI * i as f64 / 97.0).sin();
        rows.push(("cpu{host=\"b\"}", t0 + 15 * i, format!("{b:e}")));
        // Zeros of both signs with negative values: min and max are zeros.
        // Host d: each hour the negation of the one before, so that its
        // hourly sums cancel exactly over two hours.
        let x = ((i % 240) + 1) as f64 / 3.0;
        let d = if (i / 240) % 2 == 0 { x } else { -x };
        rows.push(("cpu{host=\"d\"}", t0 + 15 * i, format!("{d:e}")));
        let z = ["0.0", "-0.0", "-1.5", "-2.25"][((i * 7) % 4) as usize];
        rows.push(("z{host=\"c\"}", t0 + 15 * i, z.to_string()));
    }
    let (_dir, raw, rolled) = imported(&rows);
    for sql in [
        "SELECT host, count(*), sum(value), avg(value), min(value), max(value) FROM cpu GROUP BY host",
        "SELECT time_bucket('1h', ts) AS h, host, sum(value), avg(value) FROM cpu GROUP BY h, host",
        "SELECT time_bucket('1h', ts) AS h, min(value), max(value) FROM z GROUP BY h",
    ] {
        let (a, b) = (query(&raw, sql), query(&rolled, sql));
        assert_same_rows(&a, &b, sql);
    }
    // Host d's sum over the whole range is its buckets' sums cancelling:
    // the query is read again, raw, and EXPLAIN says so.
    let sql = "SELECT sum(value) FROM cpu WHERE host = 'd'";
    let (a, b) = (query(&raw, sql), query(&rolled, sql));
    assert_eq!(a.table, b.table, "{sql}");
    assert!(b.stats.rollup_series.is_empty(), "{sql}");
    assert!(explain(&rolled, sql).contains("cancels"), "{sql}");
    // Whatever the order of the rows, min is -0 and max is +0.
    let o = query(
        &raw,
        "SELECT min(value), max(value) FROM z WHERE value >= 0",
    );
    let bits: Vec<u64> = o.table.rows[0]
        .iter()
        .map(|v| match v {
            Value::Float(x) => x.to_bits(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bits, vec![(-0.0f64).to_bits(), 0.0f64.to_bits()]);

    // Samples near the largest double: a sum may overflow in one order and
    // not in another, so sums are not taken from rollups.
    let mut rows = Vec::new();
    for i in 0..1440i64 {
        let v = match i {
            300 | 301 => "1e308".to_string(),
            302 => "-1e308".to_string(),
            _ => noisy(i),
        };
        rows.push(("big{host=\"a\"}", t0 + 15 * i, v));
    }
    let (_dir, raw, rolled) = imported(&rows);
    let sql =
        "SELECT time_bucket('1h', ts) AS h, sum(value), avg(value), max(value) FROM big GROUP BY h";
    let (a, b) = (query(&raw, sql), query(&rolled, sql));
    assert_same_rows(&a, &b, sql);
    assert!(b.stats.rollup_series.is_empty());
    assert!(explain(&rolled, sql).contains("overflow"), "{sql}");
    // Without a sum, the same data is answered from rollups.
    let sql = "SELECT time_bucket('1h', ts) AS h, count(*), max(value) FROM big GROUP BY h";
    let (a, b) = (query(&raw, sql), query(&rolled, sql));
    assert_same_rows(&a, &b, sql);
    assert!(!b.stats.rollup_series.is_empty());
}

/// Series that a coarser resolution skips because their finer rollups are
/// smaller (14 minutes of 5 s samples from the top of an hour: one bucket
/// at 15m and at 1h alike) are answered from the finer rollups, with the
/// raw rows.
#[test]
fn series_a_coarser_resolution_skips_are_answered_from_the_finer_one() {
    let dir = tempfile::tempdir().unwrap();
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--series", "200", "--points", "33600", "--interval", "5s"],
    ));
    roll_up(dir.path());
    let (raw, rolled) = engines(dir.path());
    let mut files = std::collections::BTreeSet::new();
    for metric in [
        "cpu_usage_percent",
        "memory_used_bytes",
        "disk_free_bytes",
        "http_request_duration_seconds",
    ] {
        let sql = format!(
            "SELECT time_bucket('1h', ts) AS h, host, avg(value), max(value), min(value), sum(value), count(*) FROM {metric} GROUP BY h, host ORDER BY h, host"
        );
        let (a, b) = (query(&raw, &sql), query(&rolled, &sql));
        assert_same_rows(&a, &b, &sql);
        files.extend(b.stats.rollup_series.iter().map(|r| r.0.clone()));
    }
    // The 1h file holds none of them; the 15m one answers for some.
    assert!(!files.contains("05_rollup_1h.metrics"), "{files:?}");
    assert!(files.contains("05_rollup_15m.metrics"), "{files:?}");
}
