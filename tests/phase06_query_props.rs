//! The query engine against a naive scan of the raw samples, over random
//! predicates; random and mutated query text never panics; pruning counts
//! match what the block statistics allow.

use proptest::prelude::*;
use squeeze::format::metrics::{self, BlockOptions, MetricsFile};
use squeeze::model::{Dataset, Labels, Series, SeriesKey};
use squeeze::query::{Engine, Value};

const T0: i64 = 1_704_067_200_000_000_000;
const STEP: i64 = 10_000_000_000;

/// Six series of metric `m` (hosts a, b, c in zones x, y) with values from a
/// small set that includes NaN, -0.0 and infinities; many small blocks.
fn dataset(seed: u64, n: usize) -> Dataset {
    let mut series = Vec::new();
    let palette = [
        1.0,
        2.5,
        -3.0,
        0.0,
        -0.0,
        10.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        7.25,
    ];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    // Even seeds: the two zones of a host share one clock at irregular
    // nanosecond instants (shared timestamp columns, large enough to be
    // stored in parts); odd seeds: every series on a grid of its own.
    let shared = seed % 2 == 0;
    for host in ["a", "b", "c"] {
        let mut clock = Vec::with_capacity(n);
        let mut t = T0 + (next() % 5) as i64 * STEP;
        for _ in 0..n {
            clock.push(t);
            t += STEP * (1 + (next() % 3) as i64) + (next() % 1_000_000_007) as i64;
        }
        for zone in ["x", "y"] {
            let mut labels = Labels::new();
            labels.insert("host".into(), host.into());
            labels.insert("zone".into(), zone.into());
            let mut s = Series::new(SeriesKey::new("m", labels));
            let mut t = T0 + (next() % 5) as i64 * STEP;
            for &tick in &clock {
                if shared {
                    t = tick;
                }
                // Mostly smooth values so blocks have narrow min/max.
                let v = if next() % 4 == 0 {
                    palette[next() % palette.len()]
                } else {
                    (t - T0) as f64 / STEP as f64 / 10.0
                };
                s.push(t, v);
                t += STEP * (1 + (next() % 3) as i64);
            }
            series.push(s);
        }
    }
    Dataset::new("props", series)
}

fn engine(d: &Dataset) -> Engine {
    let options = BlockOptions {
        window_ns: 600 * 1_000_000_000,
        max_samples: 40,
        max_bytes: 96,
    };
    let (bytes, _) = metrics::encode(d, options).expect("encode");
    Engine::new(MetricsFile::from_bytes(bytes, "props.metrics").expect("open"))
}

/// Time ranges starting and ending everywhere over columns in parts: the
/// engine reads the parts a range needs and returns every row inside it.
#[test]
fn time_ranges_over_columns_in_parts_match_a_naive_scan() {
    let d = dataset(0, 120);
    let e = engine(&d);
    for k in 0..200i64 {
        let lo = T0 + k * STEP * 3 / 2 + k * 7_777_777;
        for span in [STEP / 2, 3 * STEP, 40 * STEP] {
            let p = P::And(Box::new(P::Ts(">=", lo)), Box::new(P::Ts("<=", lo + span)));
            let sql = format!("SELECT ts, host, zone, value FROM m WHERE {}", p.sql());
            let got = e.query(&sql).unwrap();
            let want = naive(&d, &p);
            assert_eq!(got.table.rows.len(), want.len(), "{sql}");
            for (row, (_, t, v)) in got.table.rows.iter().zip(&want) {
                assert_eq!(time(&row[0]), *t, "{sql}");
                assert_eq!(float(&row[3]).to_bits(), v.to_bits(), "{sql}");
            }
        }
    }
}

#[test]
fn shared_clocks_store_columns_in_parts() {
    let options = BlockOptions {
        window_ns: 600 * 1_000_000_000,
        max_samples: 40,
        max_bytes: 96,
    };
    let (_, st) = metrics::encode(&dataset(0, 120), options).unwrap();
    assert!(st.parted_columns >= 3, "{st:?}");
    let (_, st) = metrics::encode(&dataset(1, 120), options).unwrap();
    assert_eq!(st.shared_columns, 0, "{st:?}");
}

/// A predicate as SQL text and as a Rust function of one row.
#[derive(Debug, Clone)]
enum P {
    Host(&'static str, bool),
    HostIn(Vec<&'static str>, bool),
    Zone(&'static str),
    Ts(&'static str, i64),
    Val(&'static str, f64),
    And(Box<P>, Box<P>),
    Or(Box<P>, Box<P>),
    Not(Box<P>),
}

fn cmp(op: &str, a: f64, b: f64) -> bool {
    match op {
        "=" => a == b,
        "!=" => a != b,
        "<" => a < b,
        "<=" => a <= b,
        ">" => a > b,
        _ => a >= b,
    }
}

fn icmp(op: &str, a: i64, b: i64) -> bool {
    match op {
        "=" => a == b,
        "!=" => a != b,
        "<" => a < b,
        "<=" => a <= b,
        ">" => a > b,
        _ => a >= b,
    }
}

impl P {
    fn sql(&self) -> String {
        match self {
            P::Host(h, eq) => format!("host {} '{h}'", if *eq { "=" } else { "!=" }),
            P::HostIn(hs, neg) => format!(
                "host {}IN ({})",
                if *neg { "NOT " } else { "" },
                hs.iter()
                    .map(|h| format!("'{h}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            P::Zone(z) => format!("zone = '{z}'"),
            P::Ts(op, t) => format!("ts {op} {t}"),
            P::Val(op, v) => format!("value {op} {v}"),
            P::And(a, b) => format!("({} AND {})", a.sql(), b.sql()),
            P::Or(a, b) => format!("({} OR {})", a.sql(), b.sql()),
            P::Not(a) => format!("NOT ({})", a.sql()),
        }
    }

    fn eval(&self, labels: &Labels, t: i64, v: f64) -> bool {
        let l = |k: &str| labels.get(k).map_or("", String::as_str);
        match self {
            P::Host(h, eq) => (l("host") == *h) == *eq,
            P::HostIn(hs, neg) => hs.contains(&l("host")) != *neg,
            P::Zone(z) => l("zone") == *z,
            P::Ts(op, x) => icmp(op, t, *x),
            P::Val(op, x) => cmp(op, v, *x),
            P::And(a, b) => a.eval(labels, t, v) && b.eval(labels, t, v),
            P::Or(a, b) => a.eval(labels, t, v) || b.eval(labels, t, v),
            P::Not(a) => !a.eval(labels, t, v),
        }
    }
}

fn pred() -> impl Strategy<Value = P> {
    let op = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]);
    let host = prop::sample::select(vec!["a", "b", "c", "d"]);
    let leaf = prop_oneof![
        (host.clone(), any::<bool>()).prop_map(|(h, eq)| P::Host(h, eq)),
        (prop::collection::vec(host, 1..3), any::<bool>()).prop_map(|(h, n)| P::HostIn(h, n)),
        prop::sample::select(vec!["x", "y"]).prop_map(P::Zone),
        (op.clone(), 0i64..700).prop_map(|(o, k)| P::Ts(o, T0 + k * STEP)),
        (op, -4.0f64..80.0).prop_map(|(o, v)| P::Val(o, (v * 4.0).round() / 4.0)),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| P::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| P::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| P::Not(Box::new(a))),
        ]
    })
}

/// Rows (series rank, ts, value) that pass, in (series, time) order.
fn naive(d: &Dataset, p: &P) -> Vec<(usize, i64, f64)> {
    let mut out = Vec::new();
    for (rank, s) in d.series.iter().enumerate() {
        for (&t, &v) in s.timestamps.iter().zip(&s.values) {
            if p.eval(&s.key.labels, t, v) {
                out.push((rank, t, v));
            }
        }
    }
    out
}

fn float(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        Value::Int(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

fn time(v: &Value) -> i64 {
    match v {
        Value::Time(t) => *t,
        other => panic!("not a time: {other:?}"),
    }
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
        || (a.is_nan() && b.is_nan())
        || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn rows_match_a_naive_scan(seed in 0u64..1000, p in pred()) {
        let d = dataset(seed, 120);
        let e = engine(&d);
        let sql = format!("SELECT ts, host, zone, value FROM m WHERE {}", p.sql());
        let got = e.query(&sql).map_err(|err| TestCaseError::fail(format!("{sql}: {err}")))?;
        let want = naive(&d, &p);
        prop_assert_eq!(got.table.rows.len(), want.len(), "{}", sql);
        for (row, (rank, t, v)) in got.table.rows.iter().zip(&want) {
            let key = &d.series[*rank].key;
            prop_assert_eq!(time(&row[0]), *t);
            prop_assert_eq!(&row[1], &Value::Text(key.labels["host"].clone()));
            prop_assert_eq!(&row[2], &Value::Text(key.labels["zone"].clone()));
            prop_assert_eq!(float(&row[3]).to_bits(), v.to_bits(), "{}", sql);
        }
        // Pruning never reads more than the blocks left after it.
        prop_assert!(got.stats.blocks_read <= got.stats.blocks_candidate);
    }

    #[test]
    fn aggregates_match_a_naive_scan(seed in 0u64..1000, p in pred()) {
        let d = dataset(seed, 120);
        let e = engine(&d);
        let sql = format!(
            "SELECT host, count(*), sum(value), min(value), max(value), first(value), last(value) \
             FROM m WHERE {} GROUP BY host ORDER BY host",
            p.sql()
        );
        let got = e.query(&sql).map_err(|err| TestCaseError::fail(format!("{sql}: {err}")))?;
        let rows = naive(&d, &p);
        let mut hosts: Vec<&str> = rows.iter().map(|(r, ..)| d.series[*r].key.labels["host"].as_str()).collect();
        hosts.sort();
        hosts.dedup();
        prop_assert_eq!(got.table.rows.len(), hosts.len(), "{}", sql);
        for (row, host) in got.table.rows.iter().zip(&hosts) {
            let mine: Vec<&(usize, i64, f64)> = rows
                .iter()
                .filter(|(r, ..)| d.series[*r].key.labels["host"] == *host)
                .collect();
            prop_assert_eq!(&row[0], &Value::Text(host.to_string()));
            prop_assert_eq!(&row[1], &Value::Int(mine.len() as i64));
            let sum: f64 = mine.iter().map(|x| x.2).sum();
            prop_assert!(same(float(&row[2]), sum), "{}: sum {:?} vs {}", sql, row[2], sum);
            let min = mine.iter().fold(f64::NAN, |a, x| a.min(x.2));
            let max = mine.iter().fold(f64::NAN, |a, x| a.max(x.2));
            prop_assert!(same(float(&row[3]), min), "{}: min {:?} vs {}", sql, row[3], min);
            prop_assert!(same(float(&row[4]), max), "{}: max {:?} vs {}", sql, row[4], max);
            // first/last: earliest (latest) time; ties go to the first
            // (last) series in key order.
            let first = mine.iter().min_by_key(|x| (x.1, x.0)).map(|x| x.2).unwrap_or(f64::NAN);
            let last = mine.iter().max_by_key(|x| (x.1, x.0)).map(|x| x.2).unwrap_or(f64::NAN);
            prop_assert_eq!(float(&row[5]).to_bits(), first.to_bits(), "{}", sql);
            prop_assert_eq!(float(&row[6]).to_bits(), last.to_bits(), "{}", sql);
        }
    }

    #[test]
    fn order_by_time_with_limit_matches_a_naive_sort(
        seed in 0u64..1000, p in pred(), k in 1u64..40, desc in any::<bool>()
    ) {
        let d = dataset(seed, 120);
        let e = engine(&d);
        let sql = format!(
            "SELECT ts, value FROM m WHERE {} ORDER BY ts {} LIMIT {k}",
            p.sql(),
            if desc { "DESC" } else { "ASC" }
        );
        let got = e.query(&sql).map_err(|err| TestCaseError::fail(format!("{sql}: {err}")))?;
        let mut want = naive(&d, &p);
        want.sort_by_key(|&(r, t, _)| (if desc { -(t as i128) } else { t as i128 }, r));
        want.truncate(k as usize);
        prop_assert_eq!(got.table.rows.len(), want.len(), "{}", sql);
        for (row, (_, t, v)) in got.table.rows.iter().zip(&want) {
            prop_assert_eq!(time(&row[0]), *t, "{}", sql);
            prop_assert_eq!(float(&row[1]).to_bits(), v.to_bits(), "{}", sql);
        }
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,120}") {
        let e = engine(&dataset(1, 20));
        let _ = e.query(&text);
    }

    #[test]
    fn mutated_queries_never_panic(
        base in prop::sample::select(vec![
            "SELECT time_bucket('5m', ts) AS t, host, avg(value), max(value) FROM m WHERE zone = 'x' AND ts >= '2024-01-01T00:00:00Z' AND value > 5 GROUP BY t, host ORDER BY t DESC LIMIT 100",
            "SELECT * FROM ohlcv(m, '1m') WHERE host IN ('a', 'b') LIMIT 3",
            "SELECT ts, value, rolling FROM rolling(m, 'std', 3) WHERE NOT (value BETWEEN 1 AND 2)",
            "SELECT * FROM asof_join(m, m, '10s') ORDER BY value DESC LIMIT 2",
            "EXPLAIN ANALYZE SELECT host, percentile(value, 0.5), twap(value) FROM m GROUP BY host",
        ]),
        edits in prop::collection::vec((0usize..200, 0u8..4, any::<char>()), 1..6),
    ) {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, kind, c) in edits {
            let i = at % (chars.len() + 1);
            match kind {
                0 => chars.insert(i, c),
                1 if i < chars.len() => { chars.remove(i); }
                2 if i < chars.len() => chars[i] = c,
                _ => chars.truncate(i),
            }
        }
        let text: String = chars.into_iter().collect();
        let e = engine(&dataset(2, 20));
        let _ = e.query(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let e = engine(&dataset(3, 10));
    let deep = format!(
        "SELECT * FROM m WHERE {}value > 1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(e.query(&deep).is_err());
    let nots = format!("SELECT * FROM m WHERE {} value > 1", "NOT ".repeat(5000));
    assert!(e.query(&nots).is_err());
    // Just below the limit, on this 2 MiB test thread: it runs.
    let ok = format!(
        "SELECT count(*) FROM m WHERE {}value > 1 OR NOT (zone = 'x'){}",
        "(".repeat(16),
        ")".repeat(16)
    );
    e.query(&ok).expect("nesting below the limit runs");
}

/// Pruning counts on the default generated data: a one-series query over 1%
/// of the time range reads at most 2% of the file's blocks, and the blocks
/// pruned by time are exactly those whose range misses the query's.
#[test]
fn one_percent_query_reads_at_most_two_percent_of_blocks() {
    let d = squeeze::generate::generate(&squeeze::generate::GenerateConfig::default()).unwrap();
    let (bytes, _) = metrics::encode(&d, BlockOptions::default()).unwrap();
    let e = Engine::new(MetricsFile::from_bytes(bytes, "default.metrics").unwrap());
    let (lo, hi) = d.time_range().unwrap();
    let span = (hi - lo) / 100;
    let start = lo + 40 * span;
    let host = &d.series[0].key.labels["host"];
    let metric = &d.series[0].key.metric;
    let sql = format!(
        "SELECT ts, value FROM {metric} WHERE host = '{host}' AND ts >= {start} AND ts < {}",
        start + span
    );
    let o = e.query(&sql).unwrap();
    let s = &o.stats;
    assert!(
        s.blocks_read * 50 <= s.file_blocks,
        "read {} of {} blocks",
        s.blocks_read,
        s.file_blocks
    );
    let ids: Vec<usize> = (0..e.file().series().len())
        .filter(|&i| {
            let k = &e.file().series()[i].key;
            &k.metric == metric && &k.labels["host"] == host
        })
        .collect();
    let mut overlapping = 0;
    let mut total = 0;
    for id in ids {
        for b in e.file().blocks(id).unwrap() {
            total += 1;
            overlapping += u64::from(b.overlaps(start, start + span - 1));
        }
    }
    assert_eq!(s.blocks_total, total);
    assert_eq!(s.blocks_pruned_time, total - overlapping);
    assert_eq!(s.blocks_read, overlapping);
    let expected = d.series[0]
        .timestamps
        .iter()
        .filter(|&&t| t >= start && t < start + span)
        .count();
    assert_eq!(o.table.rows.len(), expected);
}

/// Value pruning: blocks whose max is at or below the threshold are never read.
#[test]
fn value_conditions_prune_by_min_max() {
    let d = dataset(7, 300);
    let e = engine(&d);
    let o = e.query("SELECT count(*) FROM m WHERE value > 25").unwrap();
    let mut by_value = 0;
    for i in 0..e.file().series().len() {
        for b in e.file().blocks(i).unwrap() {
            // max ignores NaN; a block of only NaN has a NaN max and is pruned too.
            if b.max.is_nan() || b.max <= 25.0 {
                by_value += 1;
            }
        }
    }
    assert!(by_value > 0);
    assert_eq!(o.stats.blocks_pruned_value, by_value);
    assert_eq!(o.stats.blocks_read, o.stats.blocks_total - by_value);
}
