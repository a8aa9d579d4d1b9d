//! Phases 01–03 run alone on a small dataset, verify, explain and fail
//! cleanly on missing or damaged input.

mod common;
use common::*;

#[test]
fn each_phase_runs_alone_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    for (phase, artifact, words) in [
        ("01_ndjson", "01_metrics.ndjson", "repeats the field names"),
        ("02_columnar", "02_columnar.msgpack", "stored once"),
        ("03_compressed", "03_compressed.ssc", "delta-of-deltas"),
    ] {
        let out = ok(run_in(dir.path(), phase, &[]));
        assert!(out.contains("verified bit-exact: yes"), "{phase}: {out}");
        assert!(
            out.contains(words),
            "{phase} does not explain itself: {out}"
        );
        assert!(dir.path().join(artifact).exists(), "{artifact}");
    }
}

#[test]
fn phase03_prints_the_ablation_table() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    let out = ok(run_in(dir.path(), "03_compressed", &[]));
    for row in [
        "raw i64",
        "delta-of-delta",
        "tick scaling",
        "zero runs",
        "Gorilla buckets",
        "Gorilla XOR",
    ] {
        assert!(out.contains(row), "ablation lacks {row}: {out}");
    }
}

#[test]
fn later_phases_before_00_say_run_00_first() {
    let dir = tempfile::tempdir().unwrap();
    for phase in ["01_ndjson", "02_columnar", "03_compressed"] {
        let o = run_in(dir.path(), phase, &[]);
        assert!(!o.status.success(), "{phase}");
        assert!(
            stderr(&o).contains("run `cargo run --release --bin 00_generate` first"),
            "{phase}: {}",
            stderr(&o)
        );
    }
    assert!(
        files_in(dir.path()).is_empty(),
        "left {:?}",
        files_in(dir.path())
    );
}

#[test]
fn damaged_dataset_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    let path = dir.path().join("dataset.ssd");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let o = run_in(dir.path(), "03_compressed", &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("dataset.ssd") && err.contains("checksum"),
        "{err}"
    );
    assert!(!dir.path().join("03_compressed.ssc").exists());
}

#[test]
fn help_lists_output_dir() {
    for phase in [
        "01_ndjson",
        "02_columnar",
        "03_compressed",
        "squeezed-signals",
    ] {
        let out = ok(std::process::Command::new(bin(phase))
            .arg("--help")
            .output()
            .unwrap());
        assert!(out.contains("--output-dir"), "{phase}: {out}");
    }
}
