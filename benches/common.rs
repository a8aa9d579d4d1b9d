//! Datasets shared by the benches: the default generated data and Beringei.

#![allow(dead_code)]

use std::path::Path;

use squeeze::generate::{generate, GenerateConfig};
use squeeze::import::{import_file, ImportOptions};
use squeeze::Dataset;

/// The default generated dataset (50,000 samples, seed 42).
pub fn generated() -> Dataset {
    generate(&GenerateConfig::default()).expect("default config is valid")
}

/// The full Beringei set from ../shared/data when present, else the fixture slice.
pub fn beringei() -> (Dataset, &'static str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let full = root.join("../shared/data/beringei-5000.csv");
    let (path, name) = if full.exists() {
        (full, "beringei-5000")
    } else {
        (
            root.join("tests/fixtures/beringei-slice.csv"),
            "beringei-slice",
        )
    };
    (
        import_file(&path, &ImportOptions::default()).expect("Beringei CSV imports"),
        name,
    )
}

/// The real single series `scripts/datasets.py` collects, when it has run.
pub fn real_series() -> Option<Dataset> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/datasets/series.csv");
    path.exists()
        .then(|| import_file(&path, &ImportOptions::default()).expect("series.csv imports"))
}

/// Performance Co-Pilot archives as long CSV (`scripts/pcp_to_csv.py`),
/// when `SSIG_BENCH_PCP` names them (one path, or several separated by
/// `:`): thousands of real host series, mostly counters, in blocks of
/// every length. Each is named `pcp-` and its file stem.
pub fn pcp() -> Vec<(String, Dataset)> {
    let Some(paths) = std::env::var_os("SSIG_BENCH_PCP") else {
        return Vec::new();
    };
    std::env::split_paths(&paths)
        .map(|path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let d = import_file(&path, &ImportOptions::default())
                .unwrap_or_else(|e| panic!("SSIG_BENCH_PCP {}: {e}", path.display()));
            (format!("pcp-{}", stem.unwrap_or_default()), d)
        })
        .collect()
}

/// Both datasets with their names.
pub fn datasets() -> Vec<(String, Dataset)> {
    let (b, name) = beringei();
    vec![
        ("generated".to_string(), generated()),
        (name.to_string(), b),
    ]
}
