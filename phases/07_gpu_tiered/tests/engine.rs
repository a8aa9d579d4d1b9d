//! The engine: exact tier counts, queries across tiers against a naive
//! scan, reopen, bad input, corrupt cold files, retention, jobs.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch, TimestampNanosecondArray};
use arrow_schema::{DataType, Field, Schema};
use common::{concat, small_config};
use proptest::prelude::*;
use tiered::error::Error;
use tiered::filter::{bind_all, filter_batch, Filter, Scalar};
use tiered::gen::{Generator, START_NS};
use tiered::read::query::{Query, Sort};
use tiered::schema::Mode;
use tiered::Engine;

/// A store with `n` batches of `rows` trading records spread over the tiers.
fn filled(dir: &std::path::Path, n: usize, rows: usize) -> (Engine, Vec<RecordBatch>) {
    let engine = Engine::open(small_config(dir, Mode::Trading)).unwrap();
    let mut g = Generator::new(Mode::Trading, 5, 12);
    g.mean_gap_ns = 60_000_000_000; // 60 s: about four days of data
    let mut all = Vec::new();
    for _ in 0..n {
        let b = g.batch(rows).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
        let s = engine.stats().unwrap();
        let ingested: usize = all.iter().map(|b| b.num_rows()).sum();
        assert_eq!(
            s.total(),
            ingested as u64,
            "every record in exactly one tier"
        );
    }
    (engine, all)
}

/// Rows as comparable strings (bit-exact floats).
fn row_keys(b: &RecordBatch) -> Vec<String> {
    (0..b.num_rows())
        .map(|r| {
            b.columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Float64 => c
                        .as_primitive::<Float64Type>()
                        .value(r)
                        .to_bits()
                        .to_string(),
                    DataType::Utf8 => c.as_string::<i32>().value(r).to_string(),
                    _ => arrow_cast_like(c.as_ref(), r),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn arrow_cast_like(c: &dyn Array, r: usize) -> String {
    match c.data_type() {
        DataType::Timestamp(..) => c
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap()
            .value(r)
            .to_string(),
        DataType::Int64 => c.as_primitive::<Int64Type>().value(r).to_string(),
        DataType::Int32 => c
            .as_primitive::<arrow_array::types::Int32Type>()
            .value(r)
            .to_string(),
        _ => String::new(),
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn records_spread_over_all_three_tiers_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, all) = filled(dir.path(), 30, 200);
    let s = engine.stats().unwrap();
    assert!(
        s.hot_records > 0 && s.warm_records > 0 && s.cold_records > 0,
        "{s:?}"
    );
    assert!(s.migrations > 0);
    let (before, _) = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap();
    drop(engine);
    let engine = Engine::open(small_config(dir.path(), Mode::Trading)).unwrap();
    let s2 = engine.stats().unwrap();
    assert_eq!(s2.total(), 6000);
    assert_eq!(s2.cold_records, s.cold_records);
    let (after, _) = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap();
    let want = sorted(row_keys(&concat(&all)));
    assert_eq!(sorted(row_keys(&before)), want);
    assert_eq!(sorted(row_keys(&after)), want);
    // Everything migrated: still every record once.
    engine.migrate_all().unwrap();
    let s3 = engine.stats().unwrap();
    assert_eq!(
        (s3.hot_records, s3.warm_records, s3.cold_records),
        (0, 0, 6000)
    );
    let (all_cold, _) = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap();
    assert_eq!(sorted(row_keys(&all_cold)), want);
}

fn arb_filter(symbols: Vec<String>) -> impl Strategy<Value = Filter> {
    let sym = proptest::sample::select(symbols);
    prop_oneof![
        sym.clone().prop_map(|s| Filter::eq("symbol", s.as_str())),
        proptest::collection::vec(sym, 1..4)
            .prop_map(|v| Filter::is_in("symbol", v.iter().map(String::as_str))),
        (0i64..600_000, 1i64..200_000).prop_map(|(a, len)| Filter::range(
            "timestamp",
            Some(Scalar::Int(START_NS + a * 100_000_000_000 / 10_000)),
            Some(Scalar::Int(START_NS + (a + len) * 100_000_000_000 / 10_000)),
        )),
        (1.0f64..1000.0).prop_map(|p| Filter::range("price", Some(Scalar::Float(p)), None)),
        (1.0f64..1000.0).prop_map(|p| Filter::range("price", None, Some(Scalar::Float(p)))),
        prop_oneof![Just("buy"), Just("sell")].prop_map(|s| Filter::eq("side", s)),
        Just(Filter::is_in("exchange", ["kraken", "coinbase"])),
        (0i64..4).prop_map(|f| Filter::eq("flags", f)),
        (0i64..6000).prop_map(|t| Filter::range("trade_id", Some(Scalar::Int(t)), None)),
    ]
}

fn sort_values(b: &RecordBatch, col: &str) -> Vec<String> {
    let c = b.column_by_name(col).unwrap();
    (0..b.num_rows())
        .map(|r| match c.data_type() {
            DataType::Float64 => c
                .as_primitive::<Float64Type>()
                .value(r)
                .to_bits()
                .to_string(),
            DataType::Utf8 => c.as_string::<i32>().value(r).to_string(),
            _ => arrow_cast_like(c.as_ref(), r),
        })
        .collect()
}

#[test]
fn queries_across_tiers_match_a_naive_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, all) = filled(dir.path(), 30, 200);
    let everything = concat(&all);
    let symbols: Vec<String> = Generator::new(Mode::Trading, 5, 12).symbols().to_vec();
    let columns = ["timestamp", "symbol", "price", "volume", "trade_id"];
    let strategy = (
        proptest::collection::vec(arb_filter(symbols), 0..3),
        proptest::option::of((proptest::sample::select(columns.to_vec()), any::<bool>())),
        proptest::option::of(0usize..300),
        1usize..500,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&strategy, |(filters, sort, limit, batch_size)| {
            let q = Query {
                filters: filters.clone(),
                sort: sort.map(|(c, d)| Sort {
                    column: c.to_string(),
                    descending: d,
                }),
                limit,
                columns: None,
                batch_size: Some(batch_size),
            };
            let mut stream = engine.query(&q).unwrap();
            let mut parts = Vec::new();
            for b in stream.by_ref() {
                let b = b.unwrap();
                prop_assert!(b.num_rows() <= batch_size && b.num_rows() > 0);
                parts.push(b);
            }
            let got = if parts.is_empty() {
                RecordBatch::new_empty(engine.schema().clone())
            } else {
                concat(&parts)
            };
            let preds = bind_all(&filters, engine.schema()).unwrap();
            let want = filter_batch(&preds, &everything).unwrap();
            let total = want.num_rows();
            prop_assert_eq!(got.num_rows(), limit.map_or(total, |l| l.min(total)));
            let got_keys = row_keys(&got);
            let want_keys = row_keys(&want);
            match &q.sort {
                None if limit.is_none() => {
                    prop_assert_eq!(sorted(got_keys), sorted(want_keys));
                }
                None => {
                    let set: std::collections::HashSet<_> = want_keys.into_iter().collect();
                    prop_assert!(got_keys.iter().all(|k| set.contains(k)));
                }
                Some(s) => {
                    // The sort column's values are exactly the naive sort's
                    // first rows; every row is a real match.
                    let opts = arrow_ord::sort::SortOptions {
                        descending: s.descending,
                        nulls_first: false,
                    };
                    let idx = arrow_ord::sort::sort_to_indices(
                        want.column_by_name(&s.column).unwrap(),
                        Some(opts),
                        None,
                    )
                    .unwrap();
                    let naive = arrow_select::take::take_record_batch(&want, &idx).unwrap();
                    let n = got.num_rows();
                    prop_assert_eq!(
                        sort_values(&got, &s.column),
                        sort_values(&naive.slice(0, n), &s.column)
                    );
                    let set: std::collections::HashSet<_> = want_keys.into_iter().collect();
                    prop_assert!(got_keys.iter().all(|k| set.contains(k)));
                    if limit.is_none() {
                        prop_assert_eq!(sorted(got_keys), sorted(row_keys(&naive)));
                    }
                }
            }
            let st = &stream.stats;
            prop_assert_eq!(st.rows_out as usize, got.num_rows());
            Ok(())
        })
        .unwrap();
}

#[test]
fn cold_pruning_skips_files_row_groups_and_pages() {
    // One migration of everything: a file per day, several row groups each.
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Trading);
    config.warm_tier.max_memory_mb = 64.0;
    let engine = Engine::open(config).unwrap();
    let mut g = Generator::new(Mode::Trading, 5, 12);
    g.mean_gap_ns = 10_000_000_000;
    for _ in 0..10 {
        engine.ingest(&g.batch(2000).unwrap()).unwrap();
    }
    engine.migrate_all().unwrap();
    let q = Query {
        filters: vec![Filter::eq("symbol", "ETH/USD")],
        ..Query::default()
    };
    let (got, st) = engine.query(&q).unwrap().collect_batch().unwrap();
    assert!(got.num_rows() > 0);
    assert!(
        st.cold.row_groups_pruned + st.cold.pages_pruned > 0,
        "{st:?}"
    );
    let full = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap()
        .1;
    assert!(
        st.cold.bytes_read < full.cold.bytes_read / 2,
        "{st:?} vs {full:?}"
    );
}

#[test]
fn bad_batches_are_refused_whole_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = filled(dir.path(), 3, 100);
    let before = engine.stats().unwrap();
    let mut g = Generator::new(Mode::Simple, 1, 2);
    // Wrong schema (simple batch into a trading store).
    let e = engine.ingest(&g.batch(5).unwrap()).unwrap_err();
    assert!(matches!(e, Error::Schema(_)), "{e}");
    // Non-UTC timestamps.
    let mut tg = Generator::new(Mode::Trading, 1, 2);
    let b = tg.batch(5).unwrap();
    let ts = b
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    let local = ts.clone().with_timezone("Europe/Paris");
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[0] = Field::new("timestamp", local.data_type().clone(), false);
    let mut cols = b.columns().to_vec();
    cols[0] = Arc::new(local);
    let bad = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let e = engine.ingest(&bad).unwrap_err();
    assert!(e.to_string().contains("UTC"), "{e}");
    // Out of range.
    let mut cols = b.columns().to_vec();
    cols[0] = Arc::new(TimestampNanosecondArray::from(vec![1, 2, -3, 4, 5]).with_timezone("UTC"));
    let e = engine
        .ingest(&RecordBatch::try_new(b.schema(), cols).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("row 2"), "{e}");
    let after = engine.stats().unwrap();
    assert_eq!(after.total(), before.total());
    assert_eq!(after.wal_records_written, before.wal_records_written);
}

#[test]
fn a_corrupt_cold_file_is_named_and_other_data_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = filled(dir.path(), 30, 200);
    engine.migrate_all().unwrap();
    let files = engine.with_catalog(|c| c.files()).unwrap();
    assert!(files.len() >= 2);
    drop(engine);
    // Damage the footer of the first file (same length).
    let victim = dir.path().join("cold").join(&files[0].path);
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 40..n - 8] {
        *b ^= 0xA5;
    }
    std::fs::write(&victim, &bytes).unwrap();
    let engine = Engine::open(small_config(dir.path(), Mode::Trading)).unwrap();
    let e = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap_err();
    let name = files[0].path.file_name().unwrap().to_str().unwrap();
    assert!(e.to_string().contains(name), "{e}");
    // A query the catalog prunes to other files still answers.
    let later = files.iter().find(|f| f.min_ts > files[0].max_ts).unwrap();
    let q = Query {
        filters: vec![Filter::range(
            "timestamp",
            Some(Scalar::Int(later.min_ts)),
            None,
        )],
        ..Query::default()
    };
    let (got, _) = engine.query(&q).unwrap().collect_batch().unwrap();
    assert!(got.num_rows() > 0);
    drop(engine);
    // A file of the wrong length is refused at open, naming it.
    std::fs::write(&victim, &bytes[..n / 2]).unwrap();
    let e = Engine::open(small_config(dir.path(), Mode::Trading)).unwrap_err();
    assert!(e.to_string().contains(name), "{e}");
}

#[test]
fn retention_deletes_old_partitions_with_their_catalog_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, all) = filled(dir.path(), 30, 200);
    engine.migrate_all().unwrap();
    let files = engine.with_catalog(|c| c.files()).unwrap();
    let partitions: std::collections::BTreeSet<_> =
        files.iter().map(|f| f.partition.clone()).collect();
    assert!(partitions.len() >= 3, "{partitions:?}");
    let last_ts = concat(&all)
        .column(0)
        .as_primitive::<arrow_array::types::TimestampNanosecondType>()
        .values()
        .iter()
        .copied()
        .max()
        .unwrap();
    // Keep only the last day's partition.
    let gone = engine.retention(0, last_ts).unwrap();
    let kept = engine.with_catalog(|c| c.files()).unwrap();
    assert!(!gone.is_empty());
    assert!(kept.iter().all(|f| Some(&f.partition) == partitions.last()));
    for f in &gone {
        assert!(!dir.path().join("cold").join(&f.path).exists());
    }
    let s = engine.stats().unwrap();
    let removed: u64 = gone.iter().map(|f| f.rows).sum();
    assert_eq!(s.total(), 6000 - removed);
    let (rows, _) = engine
        .query(&Query::default())
        .unwrap()
        .collect_batch()
        .unwrap();
    assert_eq!(rows.num_rows() as u64, s.total());
}

#[test]
fn jobs_ingest_generator_and_csv_and_report_failures() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(small_config(dir.path(), Mode::Simple)).unwrap();
    let id = engine.with_catalog(|c| c.create_job("gen:2500:3")).unwrap();
    let mut seen = Vec::new();
    let n = tiered::ingest::jobs::run(&engine, id, 1000, |done, total| seen.push((done, total)))
        .unwrap();
    assert_eq!(n, 2500);
    assert_eq!(
        seen,
        vec![(1000, Some(2500)), (2000, Some(2500)), (2500, Some(2500))]
    );
    let job = engine.with_catalog(|c| c.job(id)).unwrap();
    assert_eq!((job.state.as_str(), job.records_done), ("done", 2500));
    assert_eq!(engine.stats().unwrap().total(), 2500);
    // A job cannot start twice.
    assert!(tiered::ingest::jobs::run(&engine, id, 1000, |_, _| {}).is_err());

    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "timestamp,symbol,price,volume\n2024-03-01T00:00:00Z,X/USD,1.5,2\n1709251201000000000,X/USD,1.75,3\n",
    )
    .unwrap();
    let id = engine
        .with_catalog(|c| c.create_job(csv.to_str().unwrap()))
        .unwrap();
    assert_eq!(
        tiered::ingest::jobs::run(&engine, id, 1000, |_, _| {}).unwrap(),
        2
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "timestamp,symbol,price,volume\n2024-03-01T00:00:00Z,X/USD,cheap,2\n",
    )
    .unwrap();
    let id = engine
        .with_catalog(|c| c.create_job(bad.to_str().unwrap()))
        .unwrap();
    let e = tiered::ingest::jobs::run(&engine, id, 1000, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("bad.csv:2"), "{e}");
    let job = engine.with_catalog(|c| c.job(id)).unwrap();
    assert_eq!(job.state, "failed");
    // The error names the line and the column, never the text it found.
    let error = job.error.unwrap();
    assert!(error.contains("bad.csv:2: price: not a number"), "{error}");
    assert!(!error.contains("cheap"), "{error}");
    assert_eq!(engine.stats().unwrap().total(), 2502);
}

#[test]
fn csv_files_as_spreadsheets_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str, text: &[u8]| -> tiered::Result<Vec<RecordBatch>> {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        tiered::ingest::files::read_csv(&path, Mode::Simple, 1000, |b| {
            out.push(b);
            Ok(true)
        })?;
        Ok(out)
    };
    let plain = read(
        "plain.csv",
        b"timestamp,symbol,price,volume\n2024-01-02T14:30:00Z,ACME,10.5,100\n",
    )
    .unwrap();
    // A byte-order mark, quoted fields (RFC 4180), CRLF: the same rows.
    let sheet = read(
        "sheet.csv",
        b"\xEF\xBB\xBFtimestamp,symbol,price,volume\r\n\"2024-01-02T14:30:00Z\",\"ACME\",\"10.5\",100\r\n",
    )
    .unwrap();
    assert_eq!(plain, sheet);
    let quoted = read(
        "q.csv",
        b"timestamp,symbol,price,volume\n2024-01-02T15:30:00+01:00,\"ACME, Inc.\",+Inf,-0.0\n",
    )
    .unwrap();
    let b = &quoted[0];
    let sym = b
        .column(1)
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    assert_eq!(sym.value(0), "ACME, Inc.");
    let ts = b
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .unwrap();
    assert_eq!(
        ts.value(0),
        1_704_205_800_000_000_000,
        "the offset is applied"
    );
    let f = |i: usize| {
        b.column(i)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(f(2), f64::INFINITY);
    assert_eq!(f(3).to_bits(), (-0.0f64).to_bits());
    // An impossible date is an error naming the line, never March 1st.
    let e = read(
        "leap.csv",
        b"timestamp,symbol,price,volume\n2023-02-29T00:00:00Z,A,1,1\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("leap.csv:2: timestamp"), "{e}");
    assert!(e.to_string().contains("the day is out of range"), "{e}");
    assert!(!e.to_string().contains("2023"), "{e}");
    let e = read("n.csv", b"timestamp,symbol,price,volume\n1,A,1e400,1\n").unwrap_err();
    assert!(e.to_string().contains("n.csv:2: price"), "{e}");
    // Quoting RFC 4180 does not allow is an error, never a guess ("1"2 is not 12).
    let e = read("q2.csv", b"timestamp,symbol,price,volume\n1,A,\"1\"2,1\n").unwrap_err();
    assert!(e.to_string().contains("q2.csv:2: field 3"), "{e}");
    // Text is kept as written.
    let spaced = read("s.csv", b"timestamp,symbol,price,volume\n1, A ,1,1\n").unwrap();
    let sym = spaced[0]
        .column(1)
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    assert_eq!(sym.value(0), " A ");
}

#[test]
fn quality_finds_gaps_and_duplicates_across_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(small_config(dir.path(), Mode::Simple)).unwrap();
    // One record per second for 100 s, minus seconds 40..50, plus a duplicate.
    let mut ts: Vec<i64> = (0..100)
        .filter(|s| !(40..50).contains(s))
        .map(|s| START_NS + s * 1_000_000_000)
        .collect();
    ts.push(START_NS + 5_000_000_000);
    ts.sort();
    for chunk in ts.chunks(20) {
        let n = chunk.len();
        let b = RecordBatch::try_new(
            Mode::Simple.schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(chunk.to_vec()).with_timezone("UTC")),
                Arc::new(arrow_array::StringArray::from(vec!["Q"; n])),
                Arc::new(arrow_array::Float64Array::from(vec![1.0; n])),
                Arc::new(arrow_array::Float64Array::from(vec![1.0; n])),
            ],
        )
        .unwrap();
        engine.ingest(&b).unwrap();
    }
    engine.migrate_all().unwrap();
    let q = tiered::read::quality::check(
        &engine,
        "Q",
        START_NS,
        START_NS + 100_000_000_000,
        1_000_000_000,
    )
    .unwrap();
    assert_eq!(
        (q.expected_buckets, q.filled_buckets, q.missing_intervals),
        (100, 90, 10)
    );
    assert_eq!(
        (q.gaps, q.longest_gap_ns, q.duplicates, q.records),
        (1, 10_000_000_000, 1, 91)
    );
    let stored = engine.with_catalog(|c| c.quality("Q")).unwrap();
    assert_eq!(stored, vec![q]);
}

#[test]
fn a_store_refuses_a_second_process_and_another_mode() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(small_config(dir.path(), Mode::Simple)).unwrap();
    let e = Engine::open(small_config(dir.path(), Mode::Simple)).unwrap_err();
    assert!(e.to_string().contains("open in another process"), "{e}");
    drop(engine);
    let e = Engine::open(small_config(dir.path(), Mode::Trading)).unwrap_err();
    assert!(e.to_string().contains("simple records"), "{e}");
    let _ = HashMap::<u8, u8>::new();
}

#[test]
fn the_warm_device_is_chosen_at_run_time_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Simple);
    config.warm_tier.device = "cpu".into();
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(engine.stats().unwrap().warm_device, "CPU");
    drop(engine);

    config.warm_tier.device = "auto".into();
    let engine = Engine::open(config.clone()).unwrap();
    let device = engine.stats().unwrap().warm_device;
    drop(engine);
    config.warm_tier.device = "gpu".into();
    let forced = Engine::open(config);
    match tiered::store::gpu::probe() {
        Ok(gpu) => {
            assert!(device.starts_with("GPU"), "{device}");
            assert!(device.contains(&gpu.name), "{device}");
            assert!(forced.is_ok());
        }
        Err(why) => {
            assert_eq!(device, format!("CPU (no GPU: {why})"));
            let e = forced.unwrap_err().to_string();
            assert!(
                e.contains("warm_tier.device is gpu") && e.contains(&why),
                "{e}"
            );
        }
    }
}

/// Bars the plain way: the matching rows sorted by (time, price), folded.
fn naive_bars(
    rows: &RecordBatch,
    buckets: &tiered::agg::Buckets,
) -> Vec<(String, i64, u64, [f64; 5])> {
    let ts = rows
        .column(0)
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let sym = rows.column(1).as_string::<i32>();
    let px = rows.column(2).as_primitive::<Float64Type>();
    let vol = rows.column(3).as_primitive::<Float64Type>();
    let mut v: Vec<(String, i64, i64, f64, f64)> = (0..rows.num_rows())
        .filter_map(|r| {
            let b = buckets.index(ts.value(r))?;
            Some((
                sym.value(r).to_string(),
                buckets.time(b),
                ts.value(r),
                px.value(r),
                vol.value(r),
            ))
        })
        .collect();
    v.sort_by(|a, b| {
        (&a.0, a.1, a.2)
            .cmp(&(&b.0, b.1, b.2))
            .then(a.3.total_cmp(&b.3))
    });
    let mut out: Vec<(String, i64, u64, [f64; 5])> = Vec::new();
    for (s, t, _, p, vl) in v {
        match out.last_mut() {
            Some(last) if last.0 == s && last.1 == t => {
                last.2 += 1;
                last.3[1] = last.3[1].max(p);
                last.3[2] = last.3[2].min(p);
                last.3[3] = p;
                last.3[4] += vl;
            }
            _ => out.push((s, t, 1, [p, p, p, p, vl])),
        }
    }
    out
}

#[test]
fn aggregates_across_tiers_match_a_naive_fold_and_do_not_depend_on_the_tier() {
    use tiered::agg::Buckets;
    let dir = tempfile::tempdir().unwrap();
    let (engine, all) = filled(dir.path(), 30, 200);
    let s = engine.stats().unwrap();
    assert!(s.hot_records > 0 && s.warm_records > 0 && s.cold_records > 0);
    let everything = concat(&all);
    let g = Generator::new(Mode::Trading, 5, 12);
    let ts = everything
        .column(0)
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let (lo, hi) = (
        ts.values().iter().min().copied().unwrap(),
        ts.values().iter().max().copied().unwrap(),
    );
    let mut prices = everything
        .column(2)
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    prices.sort_by(f64::total_cmp);
    let median_price = prices[prices.len() / 2];
    let cases: Vec<(Vec<Filter>, Buckets)> = vec![
        (
            vec![],
            Buckets::new(lo, hi + 1, 3_600_000_000_000, 1 << 20).unwrap(),
        ),
        (
            vec![Filter::eq("symbol", g.symbol(2))],
            Buckets::new(lo, hi + 1, 60_000_000_000, 1 << 20).unwrap(),
        ),
        (
            vec![
                Filter::is_in("symbol", [g.symbol(0), g.symbol(5)]),
                Filter::eq("side", "buy"),
            ],
            Buckets::new(lo + (hi - lo) / 3, hi, 86_400_000_000_000, 1 << 20).unwrap(),
        ),
        (
            vec![Filter::range(
                "price",
                Some(Scalar::Float(median_price)),
                None,
            )],
            Buckets::new(lo, hi + 1, hi - lo + 1, 1 << 20).unwrap(),
        ),
    ];
    let mut before = Vec::new();
    for (filters, buckets) in &cases {
        let (bars, st) = engine.aggregate(filters, buckets).unwrap();
        let preds = bind_all(filters, engine.schema()).unwrap();
        let want = naive_bars(&filter_batch(&preds, &everything).unwrap(), buckets);
        assert_eq!(bars.len(), want.len(), "{filters:?}");
        assert!(!bars.is_empty(), "{filters:?}");
        assert_eq!(
            st.hot_rows + st.warm_rows + st.cold_rows,
            want.iter().map(|w| w.2).sum::<u64>()
        );
        for (b, (s, t, n, [o, h, l, c, v])) in bars.iter().zip(&want) {
            assert_eq!((&*b.symbol, b.time, b.trades), (s.as_str(), *t, *n));
            assert_eq!(
                [b.open, b.high, b.low, b.close].map(f64::to_bits),
                [*o, *h, *l, *c].map(f64::to_bits)
            );
            assert!(
                (b.volume - v).abs() <= 1e-9 * v.abs(),
                "{} vs {v}",
                b.volume
            );
        }
        before.push(bars);
    }
    // Wherever the rows sit, the answers are the same bits.
    engine.migrate_all().unwrap();
    for ((filters, buckets), want) in cases.iter().zip(&before) {
        let (bars, st) = engine.aggregate(filters, buckets).unwrap();
        assert_eq!(st.hot_rows + st.warm_rows, 0);
        let bits = |v: &[tiered::agg::Bar]| {
            v.iter()
                .map(|b| {
                    (
                        b.symbol.to_string(),
                        b.time,
                        b.trades,
                        [b.open, b.high, b.low, b.close, b.volume, b.price_sum].map(f64::to_bits),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&bars), bits(want), "{filters:?}");
    }
}

/// Cold files are aggregated in parallel: the answer, and every count but
/// the times, is the same bits on one thread as on several.
#[test]
fn aggregates_read_cold_files_in_parallel_and_answer_as_one_thread_does() {
    use tiered::agg::Buckets;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = filled(dir.path(), 30, 200);
    engine.migrate_all().unwrap();
    let s = engine.stats().unwrap();
    assert!(s.cold_files >= 4, "{s:?}");
    let g = Generator::new(Mode::Trading, 5, 12);
    let buckets = Buckets::new(i64::MIN / 2, i64::MAX / 2, 3_600_000_000_000, 1 << 40).unwrap();
    let run = |threads: usize, filters: &[Filter]| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (bars, st) = pool
            .install(|| engine.aggregate(filters, &buckets))
            .unwrap();
        let bits: Vec<_> = bars
            .iter()
            .map(|b| {
                (
                    b.symbol.to_string(),
                    b.time,
                    b.trades,
                    [b.open, b.high, b.low, b.close, b.volume, b.price_sum].map(f64::to_bits),
                )
            })
            .collect();
        // Times differ, and only the first read of a file checks it whole.
        let mut cold = st.cold.clone();
        (cold.verify_ns, cold.check_ns, cold.bytes_verified) = (0, 0, 0);
        (bits, st.cold_rows, cold)
    };
    for filters in [vec![], vec![Filter::eq("symbol", g.symbol(3))]] {
        let one = run(1, &filters);
        assert!(!one.0.is_empty());
        for threads in [2, 4, 8] {
            let many = run(threads, &filters);
            assert_eq!(
                (many.0 == one.0, many.1, &many.2),
                (true, one.1, &one.2),
                "{threads} threads, {filters:?}"
            );
        }
    }
}

/// Queries without a limit read cold files in parallel: the rows come in
/// the same order, and the counts are the same, on one thread as on several.
#[test]
fn queries_read_cold_files_in_parallel_and_answer_as_one_thread_does() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = filled(dir.path(), 30, 200);
    engine.migrate_all().unwrap();
    let mut g = Generator::new(Mode::Trading, 9, 12);
    engine.ingest(&g.batch(300).unwrap()).unwrap();
    assert!(engine.stats().unwrap().cold_files >= 4);
    let queries = [
        Query::default(),
        Query {
            filters: vec![Filter::eq("side", "sell")],
            ..Query::default()
        },
        Query {
            filters: vec![Filter::eq("symbol", g.symbol(1))],
            sort: Some(Sort {
                column: "price".into(),
                descending: true,
            }),
            ..Query::default()
        },
    ];
    for q in &queries {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (batch, st) = pool
                .install(|| engine.query(q).unwrap().collect_batch())
                .unwrap();
            let mut cold = st.cold.clone();
            (cold.verify_ns, cold.check_ns, cold.bytes_verified) = (0, 0, 0);
            (row_keys(&batch), st.cold_rows, st.rows_out, cold)
        };
        let one = run(1);
        assert!(one.1 > 0, "{q:?}");
        for threads in [2, 3, 8] {
            let many = run(threads);
            assert!(
                many.0 == one.0,
                "{threads} threads: other rows or order, {q:?}"
            );
            assert_eq!((many.1, many.2, &many.3), (one.1, one.2, &one.3), "{q:?}");
        }
    }
}

#[test]
fn one_key_sent_by_many_writers_at_once_is_stored_once_and_survives_migration_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), Mode::Simple);
    let engine = Arc::new(Engine::open(config.clone()).unwrap());
    let batch = Generator::new(Mode::Simple, 3, 4).batch(200).unwrap();
    let answers: Vec<_> = (0..6)
        .map(|_| {
            let (e, b) = (engine.clone(), batch.clone());
            std::thread::spawn(move || e.ingest_keyed(&b, Some("the-one")).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert!(answers.iter().all(|a| (a.lsn, a.records) == (1, 200)));
    assert_eq!(engine.stats().unwrap().total(), 200);
    // The batch moves to the cold tier, its WAL record goes: the key is
    // kept in the catalog.
    engine.migrate_all().unwrap();
    let mut g = Generator::new(Mode::Simple, 4, 4);
    engine.ingest(&g.batch(10).unwrap()).unwrap();
    engine.migrate_all().unwrap();
    let kept = engine
        .with_catalog(|c| {
            c.idempotency_keys(tiered::store::catalog::KeyRetention {
                max_keys: 10,
                min_created_s: 0,
            })
        })
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].key.as_str(), kept[0].lsn), ("the-one", 1));
    drop(engine);
    let engine = Engine::open(config).unwrap();
    assert_eq!(engine.stats().unwrap().watermark_lsn, 2);
    let again = engine.ingest_keyed(&batch, Some("the-one")).unwrap();
    assert!(again.replayed);
    assert_eq!((again.lsn, again.records), (1, 200));
    let other = Generator::new(Mode::Simple, 9, 4).batch(200).unwrap();
    let e = engine.ingest_keyed(&other, Some("the-one")).unwrap_err();
    assert!(matches!(e, Error::KeyConflict(_)), "{e}");
    assert_eq!(engine.stats().unwrap().total(), 210);
    assert_eq!(engine.key_stats().keys, 1);
}
