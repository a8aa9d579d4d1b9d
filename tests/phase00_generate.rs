mod common;
use common::*;

use squeeze::format::dataset;

#[test]
fn generate_writes_a_verified_dataset_and_explains_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = small_dataset(dir.path());
    assert!(
        out.contains("generated 3,000 samples in 15 series"),
        "{out}"
    );
    assert!(out.contains("verified bit-exact: yes"), "{out}");
    let d = dataset::read(&dir.path().join(dataset::FILE_NAME)).unwrap();
    assert_eq!(d.sample_count(), 3000);
    assert!(dir.path().join("report/00.json").exists());
}

#[test]
fn same_seed_gives_identical_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    small_dataset(a.path());
    small_dataset(b.path());
    let read = |d: &std::path::Path| std::fs::read(d.join(dataset::FILE_NAME)).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
    ok(run_in(
        b.path(),
        "00_generate",
        &["--points", "3000", "--series", "15", "--seed", "9"],
    ));
    assert_ne!(read(a.path()), read(b.path()));
}

#[test]
fn squeezed_profile_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(run_in(
        dir.path(),
        "00_generate",
        &[
            "--profile",
            "squeezed",
            "--points",
            "2000",
            "--series",
            "10",
        ],
    ));
    assert!(out.contains("profile=squeezed"), "{out}");
}

#[test]
fn help_describes_the_phase() {
    let out = ok(std::process::Command::new(bin("00_generate"))
        .arg("--help")
        .output()
        .unwrap());
    for flag in [
        "--import",
        "--points",
        "--series",
        "--interval",
        "--jitter",
        "--seed",
        "--output-dir",
        "--profile",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}:\n{out}");
    }
}

#[test]
fn bad_arguments_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--interval", "fortnight"],
        vec!["--points", "3", "--series", "10"],
        vec!["--jitter", "20s"],
    ] {
        let o = run_in(dir.path(), "00_generate", &args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!dir.path().join(dataset::FILE_NAME).exists());
}
