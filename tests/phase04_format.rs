//! The `.metrics` format: round trips, range reads that touch only the
//! blocks they need, and robustness against every truncation and bit flip.

use proptest::prelude::*;
use squeeze::format::metrics::{self, BlockOptions, MetricsFile};
use squeeze::generate::{generate, GenerateConfig};
use squeeze::matcher::SeriesMatcher;
use squeeze::{Dataset, Error, Labels, Series, SeriesKey};

fn small_dataset() -> Dataset {
    generate(&GenerateConfig {
        series: 3,
        points: 120,
        ..GenerateConfig::default()
    })
    .unwrap()
}

/// Small pieces and blocks so that a small file still has several of them.
fn small_blocks() -> BlockOptions {
    BlockOptions {
        window_ns: 300 * 1_000_000_000,
        max_samples: 16,
        max_bytes: 48,
    }
}

fn encode(d: &Dataset, o: BlockOptions) -> Vec<u8> {
    metrics::encode(d, o).unwrap().0
}

/// Opens and reads everything, as a full verification does.
fn read_all(bytes: &[u8]) -> squeeze::Result<Dataset> {
    MetricsFile::from_bytes(bytes.to_vec(), "t.metrics")?.read_all("t")
}

#[test]
fn round_trip_is_bit_exact_with_several_blocks() {
    let d = small_dataset();
    let bytes = encode(&d, small_blocks());
    let f = MetricsFile::from_bytes(bytes.clone(), "t").unwrap();
    assert!(f.block_count() >= 6, "{} blocks", f.block_count());
    let pieces: u64 = f.series().iter().map(|s| s.blocks).sum();
    assert!(pieces >= 12, "{pieces} pieces");
    assert_eq!(d.bit_diff(&f.read_all("t").unwrap()), None);
    assert_eq!(&bytes[..8], b"METRICS!");
    assert_eq!(&bytes[bytes.len() - 8..], b"METRICS!");
}

#[test]
fn special_values_and_empty_series_survive() {
    let mut a = Series::new(SeriesKey::new("a", Labels::new()));
    for (i, v) in [
        f64::NAN,
        -0.0,
        f64::INFINITY,
        f64::from_bits(0x7FF0_0000_0000_0001),
    ]
    .into_iter()
    .enumerate()
    {
        a.push(i64::MAX - 10 + i as i64, v);
    }
    let b = Series::new(SeriesKey::new(
        "b",
        Labels::from([("k".into(), "v".into())]),
    ));
    let d = Dataset::new("t", vec![a, b]);
    let back = read_all(&encode(&d, BlockOptions::default())).unwrap();
    assert_eq!(d.bit_diff(&back), None);
}

#[test]
fn range_reads_touch_only_overlapping_blocks() {
    let d = small_dataset();
    let (bytes, written) = metrics::encode(&d, small_blocks()).unwrap();
    let f = MetricsFile::from_bytes(bytes, "t").unwrap();
    let s = &d.series[0];
    let (start, end) = (s.timestamps[20], s.timestamps[25]);
    let (got, stats) = f.read_range(0, start, end).unwrap();
    assert_eq!(got.timestamps, s.timestamps[20..=25].to_vec());
    assert!(stats.blocks_read <= 2, "{stats:?}");
    assert!(stats.blocks_read < stats.blocks_total);
    // The blocks of the overlapping pieces (each once), plus the shared
    // timestamp columns they use, and nothing else.
    let mut blocks: Vec<(u64, u64)> = f
        .blocks(0)
        .unwrap()
        .iter()
        .filter(|b| b.overlaps(start, end) && b.length > 0)
        .map(|b| (b.offset, b.length))
        .collect();
    blocks.dedup();
    let block_bytes: u64 = blocks.iter().map(|b| b.1).sum();
    assert!(stats.bytes_read >= block_bytes, "{stats:?}");
    assert!(
        stats.bytes_read - block_bytes <= written.columns,
        "{stats:?}, {block_bytes} of blocks"
    );
}

#[test]
fn a_lazy_open_reads_one_series_and_little_else() {
    let d = generate(&GenerateConfig::default()).unwrap();
    let bytes = encode(&d, BlockOptions::default());
    let len = bytes.len() as u64;
    let f = MetricsFile::from_bytes_lazy(bytes, "t").unwrap();
    assert!(f.series().is_empty(), "a lazy open reads no keys");
    assert_eq!(f.series_count(), d.series.len());
    let key = &d.series[17].key;
    let id = f.find(key).unwrap().expect("found");
    assert_eq!(id, 17);
    let s = &d.series[17];
    let (lo, hi) = (s.timestamps[0], s.timestamps[s.len() - 1]);
    let (start, end) = (lo + (hi - lo) / 2, lo + (hi - lo) / 2 + (hi - lo) / 100);
    let (got, _) = f.read_range(id, start, end).unwrap();
    let want: Vec<i64> = s
        .timestamps
        .iter()
        .copied()
        .filter(|t| (start..=end).contains(t))
        .collect();
    assert_eq!(got.timestamps, want);
    let read = f.open_bytes() + f.bytes_read();
    assert!(read * 50 <= len, "read {read} of {len} bytes");
    // A key that is not there, before, between and after the others.
    for missing in ["a", "cpu_usage_percent", "zzz"] {
        let k = SeriesKey::new(missing, Labels::new());
        assert_eq!(f.find(&k).unwrap(), None, "{missing}");
    }
    // Reading everything from a lazy open still works.
    assert_eq!(d.bit_diff(&f.read_all("t").unwrap()), None);
}

#[test]
fn matcher_selects_series() {
    let d = small_dataset();
    let f = MetricsFile::from_bytes(encode(&d, small_blocks()), "t").unwrap();
    let all = f.select(&SeriesMatcher::all());
    assert_eq!(all.len(), 3);
    let cpu = f.select(&SeriesMatcher::parse("cpu_usage_percent").unwrap());
    assert_eq!(cpu.len(), 1);
    assert_eq!(f.series()[cpu[0]].key.metric, "cpu_usage_percent");
    assert!(f
        .select(&SeriesMatcher::parse("{job=\"nope\"}").unwrap())
        .is_empty());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = encode(&small_dataset(), small_blocks());
    for cut in 0..bytes.len() {
        assert!(
            read_all(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes read"
        );
    }
}

#[test]
fn every_bit_flip_is_an_error_and_flips_in_blocks_name_the_block() {
    let bytes = encode(&small_dataset(), small_blocks());
    let f = MetricsFile::from_bytes(bytes.clone(), "t").unwrap();
    // Byte ranges of every block, with the name the error must carry: the
    // first piece (in series order) that reads the block.
    let mut blocks = Vec::new();
    for i in 0..f.series().len() {
        for b in f.blocks(i).unwrap() {
            blocks.push((
                b.offset..b.offset + b.length,
                format!(
                    "series {i} ({}) piece {} in the block at byte {}",
                    f.series()[i].key,
                    b.index,
                    b.offset
                ),
            ));
        }
    }
    assert!(blocks.len() >= 9);
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let err = match read_all(&b) {
            Ok(_) => panic!("flip of bit {bit} (byte {}) went unnoticed", bit / 8),
            Err(e) => e.to_string(),
        };
        if let Some((_, name)) = blocks.iter().find(|(r, _)| r.contains(&((bit / 8) as u64))) {
            assert!(err.contains(name), "flip in {name}: {err}");
        }
    }
}

#[test]
fn unknown_version_is_named() {
    let mut bytes = encode(&small_dataset(), small_blocks());
    let at = bytes.len() - 12;
    bytes[at] = 4;
    let err = read_all(&bytes).unwrap_err().to_string();
    assert!(err.contains("unsupported format version 4"), "{err}");
}

#[test]
fn a_file_of_another_kind_is_refused() {
    for bytes in [vec![], b"hello".to_vec(), vec![0u8; 100]] {
        let err = read_all(&bytes).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. } | Error::Corrupt { .. }),
            "{err}"
        );
    }
}

fn expected_csv(d: &Dataset) -> String {
    let mut csv = String::from("series,timestamp_ns,value_bits\n");
    for s in &d.series {
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            csv.push_str(&format!(
                "{},{t},{:016x}\n",
                s.key.to_string().replace(',', ";"),
                v.to_bits()
            ));
        }
    }
    csv
}

/// Every committed fixture (`v1.metrics`, `v2.metrics`, ...) decodes to its
/// committed expected samples, forever. `UPDATE_FIXTURES=1 cargo test --test
/// phase04_format` writes the fixture of the current version only; older
/// ones are never rewritten.
#[test]
fn committed_fixtures_of_every_version_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let v = metrics::VERSION;
        let d = generate(&GenerateConfig {
            series: 4,
            points: 160,
            ..GenerateConfig::default()
        })
        .unwrap();
        std::fs::write(
            dir.join(format!("v{v}.metrics")),
            encode(&d, small_blocks()),
        )
        .unwrap();
        std::fs::write(dir.join(format!("v{v}.expected.csv")), expected_csv(&d)).unwrap();
    }
    for v in metrics::READABLE_VERSIONS {
        let file = dir.join(format!("v{v}.metrics"));
        let f = MetricsFile::open(&file).unwrap();
        assert_eq!(f.version(), v);
        let d = f.read_all("fixture").unwrap();
        let want = std::fs::read_to_string(dir.join(format!("v{v}.expected.csv"))).unwrap();
        assert_eq!(expected_csv(&d), want, "fixture v{v}");
    }
}

/// A committed version 3 file whose shared timestamp columns are stored in
/// parts (market trades at random instants) decodes to its committed
/// samples, whole and range by range, forever. `UPDATE_FIXTURES=1` writes
/// it only when it is missing.
#[test]
fn committed_fixture_with_columns_in_parts_decodes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (file, csv) = (
        dir.join("v3-parts.metrics"),
        dir.join("v3-parts.expected.csv"),
    );
    if std::env::var_os("UPDATE_FIXTURES").is_some() && !file.exists() {
        let d = generate(&GenerateConfig {
            profile: squeeze::generate::Profile::Market,
            series: 4,
            points: 1_200,
            ..GenerateConfig::default()
        })
        .unwrap();
        let options = BlockOptions {
            max_bytes: 160,
            ..BlockOptions::default()
        };
        let (bytes, stats) = metrics::encode(&d, options).unwrap();
        assert!(stats.parted_columns > 0, "{stats:?}");
        std::fs::write(&file, bytes).unwrap();
        std::fs::write(&csv, expected_csv(&d)).unwrap();
    }
    let f = MetricsFile::open(&file).unwrap();
    let d = f.read_all("fixture").unwrap();
    assert_eq!(expected_csv(&d), std::fs::read_to_string(&csv).unwrap());
    // Range reads (a column's parts) give the samples of the whole read.
    for (i, s) in d.series.iter().enumerate() {
        for w in s.timestamps.windows(5).step_by(7) {
            let g = MetricsFile::open_lazy(&file).unwrap();
            let id = g.find(&s.key).unwrap().unwrap();
            assert_eq!(id, i);
            let (got, _) = g.read_range(id, w[0], w[4]).unwrap();
            assert_eq!(got.timestamps, w, "{}", s.key);
        }
    }
}

/// The version 2 writer kept for comparisons is the one that wrote the
/// committed version 2 fixture: it makes the same bytes.
#[test]
fn the_kept_v2_writer_makes_the_committed_v2_bytes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let d = generate(&GenerateConfig {
        series: 4,
        points: 160,
        ..GenerateConfig::default()
    })
    .unwrap();
    let options = BlockOptions {
        window_ns: 300 * 1_000_000_000,
        max_samples: 16,
        max_bytes: 1 << 20,
    };
    let bytes = metrics::encode_v2(&d, options).unwrap();
    assert_eq!(bytes, std::fs::read(dir.join("v2.metrics")).unwrap());
}

fn mutate(bytes: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for &(i, x) in edits {
        if !b.is_empty() {
            let i = i % b.len();
            b[i] = x;
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_all(&bytes);
    }

    #[test]
    fn mutated_files_never_panic_or_return_other_samples(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let d = small_dataset();
        let bytes = encode(&d, small_blocks());
        let b = mutate(&bytes, &edits);
        if let Ok(back) = read_all(&b) {
            // Only an edit that changed nothing may read successfully.
            prop_assert_eq!(&b, &bytes);
            prop_assert_eq!(d.bit_diff(&back), None);
        }
    }

    #[test]
    fn range_reads_equal_a_naive_filter(a in 0usize..120, len in 0usize..60, series in 0usize..3) {
        let d = small_dataset();
        let f = MetricsFile::from_bytes(encode(&d, small_blocks()), "t").unwrap();
        let s = &d.series[series];
        let start = s.timestamps[a.min(s.len() - 1)];
        let end = start + len as i64 * 7_000_000_000;
        let (got, _) = f.read_range(series, start, end).unwrap();
        let want: Vec<i64> = s.timestamps.iter().copied().filter(|t| (start..=end).contains(t)).collect();
        prop_assert_eq!(got.timestamps, want);
    }
}
