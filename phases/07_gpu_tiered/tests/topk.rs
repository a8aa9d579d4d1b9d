//! Top-K: a sorted query with a limit returns exactly the first rows of the
//! full sort (ties, NaN, signed zeros, LIMIT 0, limits past the end, both
//! directions, data in every tier), and skips what its bound rules out.

mod common;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow_schema::DataType;
use common::{concat, row_keys, small_config};
use proptest::prelude::*;
use tiered::filter::{Filter, Scalar};
use tiered::gen::Generator;
use tiered::read::query::{Query, QueryStats, Sort};
use tiered::schema::{Mode, UTC};
use tiered::Engine;

/// Generated trading rows made hard to sort: prices on a coarse grid (many
/// ties) with NaN of both signs, both zeros and infinities mixed in,
/// timestamps rounded to 10 s (ties), trade ids repeating.
fn awkward(g: &mut Generator, rows: usize, salt: usize) -> RecordBatch {
    let b = g.batch(rows).unwrap();
    let specials = [
        f64::NAN,
        -f64::NAN,
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let price: Vec<f64> = b
        .column(2)
        .as_primitive::<Float64Type>()
        .values()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let k = (i * 31 + salt * 17) % 97;
            if k < specials.len() {
                specials[k]
            } else {
                (p / 50.0).round() * 50.0
            }
        })
        .collect();
    let volume: Vec<f64> = b
        .column(3)
        .as_primitive::<Float64Type>()
        .values()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (i + salt).is_multiple_of(41) {
                f64::NAN
            } else {
                *v
            }
        })
        .collect();
    let ts: Vec<i64> = b
        .column(0)
        .as_primitive::<TimestampNanosecondType>()
        .values()
        .iter()
        .map(|t| t - t.rem_euclid(10_000_000_000))
        .collect();
    let ids: Vec<i64> = (0..rows).map(|i| ((i + salt) % 50) as i64).collect();
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols[0] = Arc::new(TimestampNanosecondArray::from(ts).with_timezone(UTC));
    cols[2] = Arc::new(Float64Array::from(price));
    cols[3] = Arc::new(Float64Array::from(volume));
    cols[6] = Arc::new(Int64Array::from(ids));
    RecordBatch::try_new(b.schema(), cols).unwrap()
}

/// A store of `n` awkward batches of `rows` spread over the three tiers.
fn store(dir: &std::path::Path, n: usize, rows: usize) -> Engine {
    let engine = Engine::open(small_config(dir, Mode::Trading)).unwrap();
    let mut g = Generator::new(Mode::Trading, 11, 12);
    g.mean_gap_ns = 60_000_000_000;
    for i in 0..n {
        engine.ingest(&awkward(&mut g, rows, i)).unwrap();
    }
    let s = engine.stats().unwrap();
    assert!(
        s.hot_records > 0 && s.warm_records > 0 && s.cold_records > 0,
        "{s:?}"
    );
    engine
}

fn run(engine: &Engine, q: &Query) -> (RecordBatch, QueryStats) {
    let (b, s) = engine.query(q).unwrap().collect_batch().unwrap();
    (b, s)
}

/// The order the engine promises, computed naively: every matching row in
/// the order an unsorted query returns them (cold files in catalog order,
/// warm, hot), stably sorted by the column under IEEE 754 total order
/// (reversed when descending), cut to the limit.
fn naive(
    engine: &Engine,
    filters: &[Filter],
    column: &str,
    desc: bool,
    limit: usize,
) -> RecordBatch {
    let (all, _) = run(
        engine,
        &Query {
            filters: filters.to_vec(),
            ..Query::default()
        },
    );
    let c = all.column_by_name(column).unwrap().clone();
    let mut idx: Vec<u32> = (0..all.num_rows() as u32).collect();
    let cmp = |a: &u32, b: &u32| {
        let (a, b) = (*a as usize, *b as usize);
        let o = match c.data_type() {
            DataType::Float64 => {
                let v = c.as_primitive::<Float64Type>();
                v.value(a).total_cmp(&v.value(b))
            }
            DataType::Int64 => {
                let v = c.as_primitive::<Int64Type>();
                v.value(a).cmp(&v.value(b))
            }
            DataType::Int32 => {
                let v = c.as_primitive::<Int32Type>();
                v.value(a).cmp(&v.value(b))
            }
            DataType::Timestamp(..) => {
                let v = c.as_primitive::<TimestampNanosecondType>();
                v.value(a).cmp(&v.value(b))
            }
            DataType::Utf8 => {
                let v = c.as_string::<i32>();
                v.value(a).cmp(v.value(b))
            }
            other => panic!("no order for {other}"),
        };
        if desc {
            o.reverse()
        } else {
            o
        }
    };
    idx.sort_by(cmp); // stable: ties keep source order
    idx.truncate(limit);
    arrow_select::take::take_record_batch(&all, &arrow_array::UInt32Array::from(idx)).unwrap()
}

fn sorted_query(filters: &[Filter], column: &str, desc: bool, limit: Option<usize>) -> Query {
    Query {
        filters: filters.to_vec(),
        sort: Some(Sort {
            column: column.into(),
            descending: desc,
        }),
        limit,
        ..Query::default()
    }
}

#[test]
fn top_k_equals_the_full_sort_across_tiers_with_ties_nan_and_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let engine = store(dir.path(), 30, 200);
    let total = 6000usize;
    let columns = [
        "price",
        "volume",
        "timestamp",
        "trade_id",
        "flags",
        "symbol",
    ];
    let strategy = (
        proptest::sample::select(columns.to_vec()),
        any::<bool>(),
        prop_oneof![
            Just(0usize),
            Just(1usize),
            1usize..50,
            50usize..2000,
            Just(total),
            Just(total + 1),
            Just(100_000usize),
        ],
        proptest::option::of(prop_oneof![
            Just(Filter::eq("side", "buy")),
            Just(Filter::range("price", Some(Scalar::Float(100.0)), None)),
            Just(Filter::is_in("symbol", ["BTC/USD", "ETH/USD", "SOL/USD"])),
        ]),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&strategy, |(column, desc, limit, filter)| {
            let filters: Vec<Filter> = filter.into_iter().collect();
            let (got, st) = run(&engine, &sorted_query(&filters, column, desc, Some(limit)));
            let want = naive(&engine, &filters, column, desc, limit);
            prop_assert_eq!(got.num_rows(), want.num_rows());
            // Whole rows, in order, floats by their bits.
            prop_assert_eq!(row_keys(&got), row_keys(&want));
            // And the engine's own full sort (no limit), cut.
            let (full, _) = run(&engine, &sorted_query(&filters, column, desc, None));
            let n = got.num_rows();
            prop_assert_eq!(row_keys(&got), row_keys(&full.slice(0, n)));
            prop_assert_eq!(st.rows_out as usize, n);
            if limit == 0 {
                prop_assert_eq!(st.cold.bytes_read, 0);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn nan_and_signed_zeros_sort_as_total_order_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = store(dir.path(), 30, 200);
    let price = |b: &RecordBatch| -> Vec<u64> {
        b.column_by_name("price")
            .unwrap()
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let (top, _) = run(&engine, &sorted_query(&[], "price", true, Some(3)));
    assert!(
        price(&top).iter().all(|&b| b == f64::NAN.to_bits()),
        "{top:?}"
    );
    let (bottom, _) = run(&engine, &sorted_query(&[], "price", false, Some(3)));
    assert!(
        price(&bottom).iter().all(|&b| b == (-f64::NAN).to_bits()),
        "{bottom:?}"
    );
    // Around zero: -0.0 before +0.0 ascending, after it descending.
    let zeros = [Filter::range(
        "price",
        Some(Scalar::Float(0.0)),
        Some(Scalar::Float(1.0)),
    )];
    let (asc, _) = run(&engine, &sorted_query(&zeros, "price", false, Some(10_000)));
    let p = price(&asc);
    let neg = p.iter().filter(|&&b| b == (-0.0f64).to_bits()).count();
    assert!(neg > 0 && p.len() > neg, "{p:?}");
    assert!(p[..neg].iter().all(|&b| b == (-0.0f64).to_bits()));
    assert!(p[neg..].iter().all(|&b| b == 0.0f64.to_bits()));
    let (desc, _) = run(&engine, &sorted_query(&zeros, "price", true, Some(10_000)));
    let d = price(&desc);
    assert!(d[..d.len() - neg].iter().all(|&b| b == 0.0f64.to_bits()));
    assert!(d[d.len() - neg..].iter().all(|&b| b == (-0.0f64).to_bits()));
}

/// Everything in the cold tier: one file per day, many row groups.
fn all_cold(dir: &std::path::Path, nan_at: Option<usize>) -> (Engine, Vec<RecordBatch>) {
    let mut config = small_config(dir, Mode::Trading);
    config.warm_tier.max_memory_mb = 64.0;
    let engine = Engine::open(config).unwrap();
    let mut g = Generator::new(Mode::Trading, 5, 12);
    g.mean_gap_ns = 10_000_000_000;
    let mut all = Vec::new();
    for i in 0..10 {
        let mut b = g.batch(2000).unwrap();
        if nan_at == Some(i) {
            let mut price: Vec<f64> = b.column(2).as_primitive::<Float64Type>().values().to_vec();
            price[1234] = f64::NAN;
            let mut cols = b.columns().to_vec();
            cols[2] = Arc::new(Float64Array::from(price));
            b = RecordBatch::try_new(b.schema(), cols).unwrap();
        }
        engine.ingest(&b).unwrap();
        all.push(b);
    }
    engine.migrate_all().unwrap();
    (engine, all)
}

#[test]
fn top_k_skips_row_groups_and_files_its_bound_rules_out() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = all_cold(dir.path(), None);
    // Price, highest first: row groups of cheap symbols are never read.
    let q = sorted_query(&[], "price", true, Some(10));
    let (got, st) = run(&engine, &q);
    let want = naive(&engine, &[], "price", true, 10);
    assert_eq!(row_keys(&got), row_keys(&want));
    assert!(st.cold.row_groups_total > 4, "{st:?}");
    assert!(st.cold.topk_row_groups_skipped > 0, "{st:?}");
    assert!(
        st.cold.topk_row_groups_skipped <= st.cold.row_groups_pruned,
        "{st:?}"
    );
    assert!(
        st.cold_rows < 20_000 / 2,
        "read {} of 20000 rows",
        st.cold_rows
    );
    let (_, full) = run(&engine, &sorted_query(&[], "price", true, None));
    assert!(
        st.cold.bytes_read < full.cold.bytes_read / 2,
        "{st:?} vs {full:?}"
    );
    // Time, newest first: whole files (older days) are skipped unopened.
    let q = sorted_query(&[], "timestamp", true, Some(5));
    let (got, st) = run(&engine, &q);
    assert_eq!(
        row_keys(&got),
        row_keys(&naive(&engine, &[], "timestamp", true, 5))
    );
    assert!(st.cold.files_total > 1, "{st:?}");
    assert!(st.cold.topk_files_skipped > 0, "{st:?}");
    // Ascending too.
    let (got, st) = run(&engine, &sorted_query(&[], "timestamp", false, Some(5)));
    assert_eq!(
        row_keys(&got),
        row_keys(&naive(&engine, &[], "timestamp", false, 5))
    );
    assert!(st.cold.topk_files_skipped > 0, "{st:?}");
}

#[test]
fn a_row_group_holding_nan_is_not_skipped_by_its_statistics() {
    // One NaN among ordinary prices: its row group's max says nothing of
    // it (Parquet statistics leave NaN out), and it sorts first descending.
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = all_cold(dir.path(), Some(3));
    let (got, st) = run(&engine, &sorted_query(&[], "price", true, Some(5)));
    let p = got
        .column_by_name("price")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert!(p.value(0).is_nan(), "{got:?}");
    assert!(p.values()[1..].iter().all(|v| !v.is_nan()));
    assert_eq!(
        row_keys(&got),
        row_keys(&naive(&engine, &[], "price", true, 5))
    );
    // Still pruned elsewhere.
    assert!(st.cold.topk_row_groups_skipped > 0, "{st:?}");
}

#[test]
fn top_k_on_time_skips_hot_batches_older_than_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), Mode::Simple);
    config.hot_tier.max_records = 100_000;
    let engine = Engine::open(config).unwrap();
    let mut g = Generator::new(Mode::Simple, 3, 4);
    let mut all = Vec::new();
    for _ in 0..20 {
        let b = g.batch(100).unwrap();
        engine.ingest(&b).unwrap();
        all.push(b);
    }
    assert_eq!(engine.stats().unwrap().hot_records, 2000);
    let (got, st) = run(&engine, &sorted_query(&[], "timestamp", true, Some(3)));
    assert_eq!(st.hot_batches_skipped, 19, "{st:?}");
    assert_eq!(st.hot_rows, 100);
    let want = naive(&engine, &[], "timestamp", true, 3);
    assert_eq!(row_keys(&got), row_keys(&want));
    let newest = concat(&all[19..]);
    let ts = newest.column(0).as_primitive::<TimestampNanosecondType>();
    let max = ts.values().iter().copied().max().unwrap();
    assert_eq!(
        got.column(0)
            .as_primitive::<TimestampNanosecondType>()
            .value(0),
        max
    );
}
