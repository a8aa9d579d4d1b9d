//! Every dataset a writer accepts, its reader reads back equal, bit for bit,
//! in every format the course writes: the canonical `.ssd` (00), NDJSON
//! (01), columnar MessagePack (02), `.ssc` (03), `.ssa` (03b), `.metrics`
//! (04, version 3 with large and tiny pieces, and version 2) and the
//! rollups (05, written as `.metrics`).
//!
//! The datasets are the odd ones real imports produce: one series, one
//! sample, no labels, empty label values, unicode and dotted names, NaN
//! payloads, `-0.0`, ±inf, equal timestamps, extreme timestamps, and many
//! label-free series (a reader's size bound once assumed 7 bytes per
//! directory entry while the writer makes 6).

use proptest::prelude::*;
use squeeze::downsample::{rollup, RESOLUTIONS};
use squeeze::format::metrics::{self, BlockOptions, MetricsFile};
use squeeze::format::{adaptive, columnar, dataset, gorilla, ndjson};
use squeeze::{Dataset, Labels, Series, SeriesKey};

fn tiny_blocks() -> BlockOptions {
    BlockOptions {
        window_ns: 1_000,
        max_samples: 3,
        max_bytes: 1 << 20,
    }
}

/// Writes `d` in every format and reads each back; returns the first
/// difference, naming the format.
fn round_trip_everywhere(d: &Dataset) -> Result<(), String> {
    let check = |what: &str, back: squeeze::Result<Dataset>, want: &Dataset| {
        let back = back.map_err(|e| format!("{what}: {e}"))?;
        match want.bit_diff(&back) {
            Some(diff) => Err(format!("{what}: {diff}")),
            None => Ok(()),
        }
    };
    let back = dataset::decode(&dataset::encode(d));
    if let Ok(b) = &back {
        if b.metadata != d.metadata {
            return Err(".ssd: metadata differs".into());
        }
    }
    check(".ssd", back, d)?;
    check(".ssc", gorilla::decode(&gorilla::encode(d).0), d)?;
    check(".ssa", adaptive::decode(&adaptive::encode(d).0), d)?;
    for (name, options) in [
        (".metrics", BlockOptions::default()),
        (".metrics (tiny blocks)", tiny_blocks()),
    ] {
        let bytes = metrics::encode(d, options).map_err(|e| format!("{name}: {e}"))?;
        let back =
            MetricsFile::from_bytes(bytes.0, "t.metrics").and_then(|f| f.read_all(&d.source));
        check(name, back, d)?;
    }
    // The version 2 writer is kept for comparisons: its files still read.
    let v2 = metrics::encode_v2(d, BlockOptions::default()).map_err(|e| format!("v2: {e}"))?;
    check(
        ".metrics v2",
        MetricsFile::from_bytes(v2, "t2.metrics").and_then(|f| f.read_all(&d.source)),
        d,
    )?;
    for res in &RESOLUTIONS {
        let r = rollup(d, res).data;
        let bytes = metrics::encode(&r, tiny_blocks()).map_err(|e| format!("rollup: {e}"))?;
        let back =
            MetricsFile::from_bytes(bytes.0, "r.metrics").and_then(|f| f.read_all(&r.source));
        check(&format!("rollups {}", res.name), back, &r)?;
    }
    // NDJSON and MessagePack hold samples, not series: a series without
    // samples has nothing to write there.
    let with_samples = Dataset::new(
        d.source.clone(),
        d.series.iter().filter(|s| !s.is_empty()).cloned().collect(),
    );
    check(
        "columnar",
        columnar::decode(&columnar::encode(&with_samples).map_err(|e| e.to_string())?),
        &with_samples,
    )?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("t.ndjson");
    let bar = indicatif::ProgressBar::hidden();
    ndjson::write(&with_samples, &path, &bar).map_err(|e| format!("ndjson: {e}"))?;
    check(
        "ndjson",
        ndjson::read(&path, &with_samples.source, &bar),
        &with_samples,
    )?;
    Ok(())
}

fn series(metric: &str, labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut s = Series::new(SeriesKey::new(metric, labels));
    for &(t, v) in points {
        s.push(t, v);
    }
    s
}

#[test]
fn the_smallest_and_oddest_datasets_round_trip() {
    let t0 = 1_704_067_200_000_000_000;
    let cases: Vec<(&str, Vec<Series>)> = vec![
        (
            "one label-free sample",
            vec![series("up", &[], &[(t0, 1.0)])],
        ),
        (
            "label-free series of a line-protocol import",
            vec![series("cpu_v", &[], &[(t0, 1.0), (t0 + 1, 2.0)])],
        ),
        (
            "empty label value",
            vec![series("m", &[("a", "")], &[(t0, 0.5)])],
        ),
        (
            "dotted and unicode names",
            vec![
                series("disk.all.read", &[("instance", "sda")], &[(t0, 3.0)]),
                series("température", &[("pièce", "salle à manger")], &[(t0, 21.5)]),
                series("{\"q\"}", &[("k,=\\", "v\"\n}")], &[(t0, 1.0)]),
            ],
        ),
        (
            "special values and extreme times",
            vec![series(
                "x",
                &[],
                &[
                    (i64::MIN, f64::from_bits(0x7FF0_0000_0000_0001)),
                    (-1, -0.0),
                    (0, f64::INFINITY),
                    (0, f64::NEG_INFINITY),
                    (i64::MAX, f64::NAN),
                ],
            )],
        ),
        ("an empty series", vec![series("empty", &[], &[])]),
        ("no series at all", vec![]),
    ];
    for (what, s) in cases {
        let d = Dataset::new("test", s);
        if let Err(e) = round_trip_everywhere(&d) {
            panic!("{what}: {e}");
        }
    }
}

#[test]
fn many_label_free_series_round_trip() {
    for n in [1usize, 100_000] {
        let s = (0..n)
            .map(|i| {
                series(
                    &format!("m{i:06}"),
                    &[],
                    &[(i as i64 * 1_000_000_000, i as f64)],
                )
            })
            .collect();
        let d = Dataset::new("many", s);
        for (name, options) in [
            ("default", BlockOptions::default()),
            ("tiny", tiny_blocks()),
        ] {
            let bytes = metrics::encode(&d, options).unwrap().0;
            let back = MetricsFile::from_bytes(bytes, "t.metrics")
                .and_then(|f| f.read_all("many"))
                .unwrap_or_else(|e| panic!("{n} series, {name} blocks: {e}"));
            assert!(d.bit_diff(&back).is_none(), "{n} series, {name} blocks");
        }
        let back = dataset::decode(&dataset::encode(&d)).unwrap();
        assert!(d.bit_diff(&back).is_none());
        let back = adaptive::decode(&adaptive::encode(&d).0).unwrap();
        assert!(d.bit_diff(&back).is_none());
        let back = gorilla::decode(&gorilla::encode(&d).0).unwrap();
        assert!(d.bit_diff(&back).is_none());
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,6}",
        "[a-z]{1,4}(\\.[a-z]{1,4}){1,3}",
        "\\PC{0,6}",
        Just(String::new()),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        (-1000i32..1000).prop_map(|x| f64::from(x) / 10.0),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
    ]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        (0i64..10_000).prop_map(|x| 1_704_067_200_000_000_000 + x * 15_000_000_000),
        Just(i64::MIN),
        Just(i64::MAX),
    ]
}

fn arb_series() -> impl Strategy<Value = Series> {
    (
        name(),
        prop::collection::btree_map(name(), "\\PC{0,5}", 0..3),
        prop::collection::vec((time(), value()), 0..40),
    )
        .prop_map(|(metric, labels, mut points)| {
            points.sort_by_key(|p| p.0);
            let mut s = Series::new(SeriesKey::new(metric, labels));
            for (t, v) in points {
                s.push(t, v);
            }
            s
        })
}

fn arb_dataset() -> impl Strategy<Value = Dataset> {
    prop::collection::vec(arb_series(), 0..8).prop_map(|mut series| {
        series.sort_by(|a, b| a.key.cmp(&b.key));
        series.dedup_by(|a, b| a.key == b.key);
        Dataset::new("prop", series)
    })
}

/// Datasets shaped like scrapes: groups of series on one timestamp grid
/// (with jitter), series on their own clocks, many short series, constant
/// and repeated value columns, label-free series.
fn scraped_dataset() -> impl Strategy<Value = Dataset> {
    // Jitter 0..=2: milliseconds off the grid; 3: up to a second, at
    // irregular instants (a column large enough to be stored in parts).
    let grid = (1i64..240, 1i64..90, 0i64..4, 0u8..4);
    (
        prop::collection::vec(grid, 1..4),
        prop::collection::vec((0usize..4, 0u8..5, 1usize..8), 1..40),
    )
        .prop_map(|(grids, members)| {
            let grids: Vec<Vec<i64>> = grids
                .iter()
                .map(|&(n, step, jitter, phase)| {
                    (0..n)
                        .map(|i| {
                            1_704_067_200_000_000_000
                                + phase as i64 * 7_000_000_000
                                + i * step * 1_000_000_000
                                + if jitter == 3 {
                                    ((i * i * 7919 + i * 104_729) % 997) * 1_000_003
                                } else {
                                    (i * 7919 % 5) * jitter * 1_000_000
                                }
                        })
                        .collect()
                })
                .collect();
            let mut series = Vec::new();
            for (i, &(g, kind, short)) in members.iter().enumerate() {
                let own: Vec<i64>;
                let ts: &[i64] = if g < grids.len() {
                    &grids[g]
                } else {
                    own = (0..short as i64)
                        .map(|k| {
                            1_704_067_200_000_000_000 + (i as i64 * 13 + k * 60) * 1_000_000_000
                        })
                        .collect();
                    &own
                };
                let value = |k: usize| match kind {
                    0 => 0.0,
                    1 => (k % 7) as f64 * 0.25,
                    2 => ((k * 31 + i) % 1000) as f64 / 100.0,
                    3 => (k as f64 + 0.5).sqrt(),
                    _ => f64::from_bits(0x7FF0_0000_0000_0001),
                };
                let labels: Labels = if i % 3 == 0 {
                    Labels::new()
                } else {
                    Labels::from([("host".to_string(), format!("h{}", i % 5))])
                };
                let mut s = Series::new(SeriesKey::new(format!("m{}", i % 7), labels));
                for (k, &t) in ts.iter().enumerate() {
                    s.push(t, value(k));
                }
                series.push(s);
            }
            series.sort_by(|a, b| a.key.cmp(&b.key));
            series.dedup_by(|a, b| a.key == b.key);
            Dataset::new("scraped", series)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_dataset_round_trips_in_every_format(d in arb_dataset()) {
        if let Err(e) = round_trip_everywhere(&d) {
            prop_assert!(false, "{}", e);
        }
    }

    /// Scrape-shaped datasets through `.metrics` with small pieces and
    /// blocks, read whole and series by series from a lazy open.
    #[test]
    fn scraped_datasets_round_trip_and_look_up(d in scraped_dataset(), bytes in 24usize..600, samples in 1usize..300, cut in 0.0f64..1.0, span in 0.0f64..0.3) {
        let options = BlockOptions { window_ns: 3_600_000_000_000, max_samples: samples, max_bytes: bytes };
        let encoded = metrics::encode(&d, options).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
        let back = MetricsFile::from_bytes(encoded.clone(), "t").and_then(|f| f.read_all("t"));
        prop_assert!(back.is_ok(), "{:?}", back.err());
        prop_assert_eq!(d.bit_diff(&back.unwrap()), None);
        let f = MetricsFile::from_bytes_lazy(encoded.clone(), "t").unwrap();
        for (i, s) in d.series.iter().enumerate().step_by(3) {
            prop_assert_eq!(f.find(&s.key).unwrap(), Some(i));
            let got = f.read_series(i).unwrap();
            prop_assert_eq!(got.bit_diff(s), None);
            // A range inside the series (a focused read: parts of columns).
            if let (Some(&a), Some(&b)) = (s.timestamps.first(), s.timestamps.last()) {
                let lo = a + ((b - a) as f64 * cut) as i64;
                let hi = lo + ((b - a) as f64 * span) as i64;
                let g = MetricsFile::from_bytes_lazy(encoded.clone(), "t").unwrap();
                g.find(&s.key).unwrap();
                let (got, _) = g.read_range(i, lo, hi).unwrap();
                let mut want = Series::new(s.key.clone());
                for (t, v) in s.timestamps.iter().zip(&s.values) {
                    if (lo..=hi).contains(t) {
                        want.push(*t, *v);
                    }
                }
                prop_assert_eq!(got.bit_diff(&want), None, "{}..={}", lo, hi);
            }
        }
    }
}
