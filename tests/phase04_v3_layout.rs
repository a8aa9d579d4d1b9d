//! Version 3 of the `.metrics` format, behaviour by behaviour: golden bytes
//! of a tiny file, every kind of piece (shared or inline timestamps,
//! stored, constant or repeated values, packed or split) surviving every
//! truncation and bit flip as a clean error, lookups on a lazy open, and
//! short series sharing blocks.

use squeeze::format::metrics::{self, BlockOptions, EncodeStats, MetricsFile};
use squeeze::{Dataset, Labels, Series, SeriesKey};

const T0: i64 = 1_704_067_200_000_000_000;
const S: i64 = 1_000_000_000;

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

fn scrape(n: usize, step: i64, jitter: i64) -> Vec<i64> {
    (0..n as i64)
        .map(|i| T0 + i * step + (i * 7919 % 13) * jitter)
        .collect()
}

/// A dataset with every kind of piece: two series scraped together
/// (shared timestamps) with stored values, a constant and a repeat of an
/// earlier series' values; a series on its own clock (inline timestamps)
/// and a constant one on another clock; a long series that splits into
/// several pieces; short label-free series that share blocks; an empty
/// series and special values.
fn every_kind() -> Dataset {
    let grid = scrape(40, 15 * S, 1_000_000);
    let pts = |f: &dyn Fn(usize) -> f64| -> Vec<(i64, f64)> {
        grid.iter().enumerate().map(|(i, &t)| (t, f(i))).collect()
    };
    let mut out = vec![
        series(
            "cpu",
            &[("host", "a")],
            &pts(&|i| (i * 37 % 100) as f64 / 4.0),
        ),
        series(
            "cpu",
            &[("host", "b")],
            &pts(&|i| (i * 37 % 100) as f64 / 4.0),
        ),
        series("up", &[("host", "a")], &pts(&|_| 1.0)),
        series(
            "odd",
            &[],
            &[
                (T0 + 3, f64::NAN),
                (T0 + 1_000, -0.0),
                (T0 + 9_999, f64::INFINITY),
                (T0 + 10_000, 0.1f64.sqrt()),
            ],
        ),
        series(
            "idle",
            &[("core", "")],
            &[(T0 + 5 * S, 0.0), (T0 + 65 * S, 0.0), (T0 + 125 * S, 0.0)],
        ),
        series(
            "long",
            &[("k", "v")],
            &scrape(300, S, 3)
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, (i as f64).sqrt()))
                .collect::<Vec<_>>(),
        ),
        series("empty", &[("x", "y")], &[]),
    ];
    // Trades at irregular instants, two series on them: a shared column
    // too large for one piece's budget, stored in parts.
    let mut t = T0;
    let trades: Vec<i64> = (0..90i64)
        .map(|i| {
            t += 1 + (i * 2_654_435_761 % 4_000_000_007).abs();
            t
        })
        .collect();
    for (name, f) in [("trade_price", 0.01), ("trade_size", 1.0)] {
        let pts: Vec<(i64, f64)> = trades
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, (100 + i * 37 % 23) as f64 * f))
            .collect();
        out.push(series(name, &[("sym", "X")], &pts));
    }
    for i in 0..12 {
        let t = T0 + i as i64 * 61 * S;
        out.push(series(
            &format!("short_{i:02}"),
            &[],
            &[(t, i as f64), (t + 60 * S, i as f64 + 0.5)],
        ));
    }
    Dataset::new("every kind", out)
}

fn options() -> BlockOptions {
    BlockOptions {
        window_ns: 3600 * S,
        max_samples: 128,
        max_bytes: 96,
    }
}

fn encode(d: &Dataset, o: BlockOptions) -> (Vec<u8>, EncodeStats) {
    metrics::encode(d, o).unwrap()
}

fn read_all(bytes: &[u8]) -> squeeze::Result<Dataset> {
    MetricsFile::from_bytes(bytes.to_vec(), "t.metrics")?.read_all("t")
}

#[test]
fn every_kind_of_piece_is_written() {
    let d = every_kind();
    let (bytes, st) = encode(&d, options());
    assert!(st.shared_columns >= 1, "{st:?}");
    assert!(st.shared_ts_pieces >= 3, "{st:?}");
    assert!(st.inline_timestamps > 0, "{st:?}");
    assert!(st.constant_pieces >= 2, "{st:?}");
    assert!(st.shared_value_pieces >= 1, "{st:?}");
    assert!(st.pieces > st.blocks, "short series share blocks: {st:?}");
    assert!(st.parted_columns >= 1, "a column in parts: {st:?}");
    let f = MetricsFile::from_bytes(bytes, "t").unwrap();
    let key = SeriesKey::new("long", Labels::from([("k".into(), "v".into())]));
    let long = f.find(&key).unwrap().unwrap();
    assert!(f.series()[long].blocks >= 4, "the long series is split");
    assert_eq!(d.bit_diff(&f.read_all("t").unwrap()), None);
}

#[test]
fn every_prefix_of_every_kind_is_a_clean_error() {
    let (bytes, _) = encode(&every_kind(), options());
    for cut in 0..bytes.len() {
        assert!(read_all(&bytes[..cut]).is_err(), "prefix of {cut} bytes");
        assert!(
            MetricsFile::from_bytes_lazy(bytes[..cut].to_vec(), "t").is_err()
                || cut + 40 > bytes.len(),
            "prefix of {cut} bytes opened"
        );
    }
}

#[test]
fn every_bit_flip_of_every_kind_is_a_clean_error() {
    let d = every_kind();
    let (bytes, _) = encode(&d, options());
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        if let Ok(back) = read_all(&b) {
            panic!(
                "flip of bit {bit} (byte {}) went unnoticed{}",
                bit / 8,
                if d.bit_diff(&back).is_some() {
                    " and changed the samples"
                } else {
                    ""
                }
            );
        }
    }
}

#[test]
fn a_lazy_lookup_finds_every_series_and_nothing_else() {
    let d = every_kind();
    let (bytes, _) = encode(&d, options());
    for (i, s) in d.series.iter().enumerate() {
        let f = MetricsFile::from_bytes_lazy(bytes.clone(), "t").unwrap();
        assert_eq!(f.find(&s.key).unwrap(), Some(i), "{}", s.key);
        assert_eq!(f.read_series(i).unwrap().bit_diff(s), None, "{}", s.key);
        let mut other = s.key.clone();
        other.labels.insert("zz".into(), "1".into());
        assert_eq!(f.find(&other).unwrap(), None);
    }
}

/// A range read of a series on a shared column in parts reads the parts
/// the range needs, gives exactly the samples inside it, and a damaged
/// part it reads is an error while a damaged part it does not read
/// changes nothing.
#[test]
fn a_range_read_of_a_column_in_parts_reads_only_the_parts_it_needs() {
    let d = every_kind();
    let (bytes, _) = encode(&d, options());
    let key = SeriesKey::new("trade_price", Labels::from([("sym".into(), "X".into())]));
    let want = d.series.iter().find(|s| s.key == key).unwrap();
    let ranges: Vec<(i64, i64)> = (0..want.len() - 3)
        .map(|i| (want.timestamps[i], want.timestamps[i + 3]))
        .chain([
            (i64::MIN, T0),
            (want.timestamps[40] + 1, want.timestamps[41] - 1),
        ])
        .collect();
    let expect = |lo: i64, hi: i64| -> Vec<(i64, u64)> {
        want.timestamps
            .iter()
            .zip(&want.values)
            .filter(|(t, _)| (lo..=hi).contains(*t))
            .map(|(t, v)| (*t, v.to_bits()))
            .collect()
    };
    let pairs = |s: &Series| -> Vec<(i64, u64)> {
        s.timestamps
            .iter()
            .zip(&s.values)
            .map(|(t, v)| (*t, v.to_bits()))
            .collect()
    };
    let full = {
        let f = MetricsFile::from_bytes_lazy(bytes.clone(), "t").unwrap();
        let id = f.find(&key).unwrap().unwrap();
        f.read_range(id, i64::MIN, i64::MAX).unwrap().1.bytes_read
    };
    let mut fewer = 0;
    for &(lo, hi) in &ranges {
        let f = MetricsFile::from_bytes_lazy(bytes.clone(), "t").unwrap();
        let id = f.find(&key).unwrap().unwrap();
        let (got, stats) = f.read_range(id, lo, hi).unwrap();
        assert_eq!(pairs(&got), expect(lo, hi), "{lo}..={hi}");
        fewer += usize::from(stats.bytes_read < full);
    }
    assert!(
        fewer * 2 > ranges.len(),
        "{fewer} of {} ranges read less",
        ranges.len()
    );
    // Every bit flip: a clean error, or the right answer.
    let (lo, hi) = (want.timestamps[50], want.timestamps[53]);
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let got = MetricsFile::from_bytes_lazy(b, "t").and_then(|f| match f.find(&key)? {
            Some(id) => f.read_range(id, lo, hi).map(|r| Some(r.0)),
            None => Ok(None),
        });
        if let Ok(Some(got)) = got {
            assert_eq!(
                pairs(&got),
                expect(lo, hi),
                "flip of bit {bit} changed the answer"
            );
        }
    }
}

/// Odd writer inputs a break test found (debug builds panicked): a huge
/// byte budget, and two series sharing timestamps that go back in time.
#[test]
fn huge_budgets_and_unsorted_shared_columns_encode_without_panics() {
    let mut t = T0;
    let irregular: Vec<i64> = (0..4000i64)
        .map(|i| {
            t += 1 + (i * i * 7919 + i * 104_729) % 997_000_003;
            t
        })
        .collect();
    let on = |name: &str, ts: &[i64]| {
        let pts: Vec<(i64, f64)> = ts.iter().map(|&t| (t, 1.5)).collect();
        series(name, &[], &pts)
    };
    let d = Dataset::new("huge", vec![on("a", &irregular), on("b", &irregular)]);
    for max_bytes in [1 << 50, 1 << 55, usize::MAX / 10, usize::MAX] {
        let o = BlockOptions {
            window_ns: 86_400 * S,
            max_samples: 65_536,
            max_bytes,
        };
        let (bytes, _) = encode(&d, o);
        assert_eq!(d.bit_diff(&read_all(&bytes).unwrap()), None);
    }
    // Timestamps that go back in time, shared by two series: the column
    // stays whole and the file reads as before (a clean error).
    let back: Vec<i64> = (0..400i64).map(|i| T0 + (400 - i) * 7_777_777).collect();
    let d = Dataset::new("back", vec![on("a", &back), on("b", &back)]);
    let o = BlockOptions {
        window_ns: 3600 * S,
        max_samples: 1000,
        max_bytes: 64,
    };
    let (bytes, st) = encode(&d, o);
    assert_eq!(st.parted_columns, 0, "{st:?}");
    assert!(read_all(&bytes).is_err());
}

#[test]
fn short_series_share_blocks_and_are_read_without_the_others() {
    // 200 label-free series of 3 samples, each scraped at its own time.
    let s: Vec<Series> = (0..200)
        .map(|i| {
            let t = T0 + i as i64 * 7 * S;
            series(
                &format!("m{i:03}"),
                &[],
                &[(t, i as f64), (t + 61 * S, 1.5), (t + 127 * S, 2.25)],
            )
        })
        .collect();
    let d = Dataset::new("short", s);
    let (bytes, st) = encode(&d, BlockOptions::default());
    assert_eq!(st.pieces, 200);
    assert!(st.blocks * 10 <= st.pieces, "{st:?}");
    let len = bytes.len() as u64;
    let f = MetricsFile::from_bytes_lazy(bytes, "t").unwrap();
    let id = f.find(&d.series[123].key).unwrap().unwrap();
    let (got, stats) = f.read_range(id, i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.bit_diff(&d.series[123]), None);
    assert_eq!(stats.blocks_read, 1);
    // One block of at most ~512 bytes, one name page, one index page.
    assert!(
        f.open_bytes() + f.bytes_read() < len / 3,
        "{stats:?} of {len}"
    );
}

/// The bytes of a tiny file, so that format drift fails loudly. Rewrite
/// with `UPDATE_GOLDEN=1 cargo test --test phase04_v3_layout golden` and
/// review the diff.
#[test]
fn golden_bytes_of_a_tiny_file() {
    // a and b are scraped together (one shared column); b is constant;
    // c has a clock of its own (inline timestamps).
    let ts: Vec<i64> = (1..=10).map(|k| k * 60 * S + (k % 3) * 1_000_000).collect();
    let a: Vec<(i64, f64)> = ts
        .iter()
        .enumerate()
        .map(|(k, &t)| (t, 1.5 + k as f64 / 2.0))
        .collect();
    let b: Vec<(i64, f64)> = ts.iter().map(|&t| (t, 7.0)).collect();
    let d = Dataset::new(
        "golden",
        vec![
            series("a", &[], &a),
            series("b", &[], &b),
            series("c", &[("k", "v")], &[(61 * S, 0.25)]),
        ],
    );
    let (bytes, _) = encode(&d, BlockOptions::default());
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hex = hex.join(" ");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3.golden.hex");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, format!("{hex}\n")).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        hex,
        want.trim(),
        "the v3 bytes of the golden dataset changed"
    );
    assert_eq!(d.bit_diff(&read_all(&bytes).unwrap()), None);
}

/// A block whose checksum is recomputed over other bytes (a forgery, or a
/// writer bug) can pass every check of the block alone: the index's time
/// bounds are coarse. Its first timestamp must still not come before the
/// last of the series' earlier blocks, or reading the series is an error,
/// never a series whose time goes backwards.
#[test]
fn a_forged_block_never_makes_a_series_go_back_in_time() {
    // One series on its own clock (inline timestamps), cut into pieces of
    // 256 samples with 1 ns between the last sample of a piece and the
    // first of the next, where a small change can go back in time.
    let mut t = T0;
    let points: Vec<(i64, f64)> = (0..700)
        .map(|i| {
            t += if i % 256 == 0 {
                1
            } else {
                1_000 + (i * 7919 % 97) as i64
            };
            (t, (i % 17) as f64 / 4.0)
        })
        .collect();
    let d = Dataset::new("forged", vec![series("irregular", &[], &points)]);
    let (bytes, _) = encode(&d, BlockOptions::default());
    let file = MetricsFile::from_bytes(bytes.clone(), "forged").unwrap();
    let blocks = file.blocks(0).unwrap();
    assert!(blocks.len() >= 3, "{} blocks", blocks.len());
    let (mut caught, mut tried) = (0, 0);
    for b in &blocks[1..] {
        let (start, end) = (b.offset as usize, (b.offset + b.length) as usize);
        for at in start..end - 4 {
            for delta in [1u8, 2, 0x80, 0xff] {
                let mut forged = bytes.clone();
                forged[at] = forged[at].wrapping_sub(delta);
                let crc = crc32c::crc32c(&forged[start..end - 4]);
                forged[end - 4..end].copy_from_slice(&crc.to_le_bytes());
                tried += 1;
                let Ok(f) = MetricsFile::from_bytes(forged, "forged") else {
                    continue;
                };
                match f.read_series(0) {
                    Ok(s) => assert!(
                        s.timestamps.windows(2).all(|w| w[0] <= w[1]),
                        "byte {at} - {delta}: a series that goes back in time"
                    ),
                    Err(e) if e.to_string().contains("comes before") => caught += 1,
                    Err(_) => {}
                }
            }
        }
    }
    assert!(caught > 0, "no forgery of {tried} reached the order check");
}
