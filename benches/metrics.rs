//! Phase 04: opening a `.metrics` file and reading one series over 1 % of
//! its time range, version 3 against version 2, on the same data.
//!
//! Each iteration opens the file from disk (through the page cache) the
//! way a one-series query does, looks the series up by its key, and reads
//! the range: version 3 with `open_lazy` + `find` (root, one name page, one
//! index page), version 2 with `open` (its whole directory) + its block
//! list. The samples and the bytes read are checked once, outside the timed
//! loop, and printed.
//!
//! `cargo bench --bench metrics`

mod common;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use squeeze::format::metrics::{self, BlockOptions, MetricsFile};
use squeeze::Dataset;

/// The series with the most samples and a range of 1 % of its span, centred.
fn probe(d: &Dataset) -> (usize, i64, i64) {
    let i = (0..d.series.len())
        .max_by_key(|&i| d.series[i].len())
        .expect("a series");
    let ts = &d.series[i].timestamps;
    let (lo, hi) = (ts[0], ts[ts.len() - 1]);
    let mid = lo + (hi - lo) / 2;
    (i, mid, mid + (hi - lo) / 100)
}

/// Open, look up, read: the samples and the bytes read.
fn query(path: &std::path::Path, d: &Dataset, i: usize, start: i64, end: i64) -> (usize, u64) {
    let f = MetricsFile::open_lazy(path).expect("open");
    let id = f.find(&d.series[i].key).expect("find").expect("present");
    let (s, _) = f.read_range(id, start, end).expect("read");
    (s.len(), f.open_bytes() + f.bytes_read())
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, d) in common::datasets() {
        let (i, start, end) = probe(&d);
        let want = d.series[i]
            .timestamps
            .iter()
            .filter(|t| (start..=end).contains(*t))
            .count();
        let mut g = c.benchmark_group(format!("metrics/{name}"));
        let files = [
            (
                "v2",
                metrics::encode_v2(&d, metrics::v2_options()).expect("v2"),
            ),
            (
                "v3",
                metrics::encode(&d, BlockOptions::default()).expect("v3").0,
            ),
        ];
        for (version, bytes) in files {
            let path = dir.path().join(format!("{name}.{version}.metrics"));
            std::fs::write(&path, &bytes).expect("write");
            let (samples, read) = query(&path, &d, i, start, end);
            assert_eq!(samples, want, "{name} {version}");
            eprintln!(
                "{name} {version}: file {} B, one series over 1% read {read} B ({:.2}%)",
                bytes.len(),
                100.0 * read as f64 / bytes.len() as f64
            );
            g.bench_function(
                format!("{version}: open + one series, 1% of its range"),
                |b| b.iter(|| black_box(query(&path, &d, i, start, end))),
            );
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
