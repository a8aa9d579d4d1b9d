mod common;
use common::*;

use squeeze::format::dataset;

fn import(dir: &std::path::Path, file: &str, extra: &[&str]) -> std::process::Output {
    let path = fixture(file);
    let mut args = vec!["--import", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_in(dir, "00_generate", &args)
}

#[test]
fn beringei_slice_imports_and_every_phase_runs_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(import(dir.path(), "beringei-slice.csv", &[]));
    assert!(out.contains("imported"), "{out}");
    let d = dataset::read(&dir.path().join(dataset::FILE_NAME)).unwrap();
    assert_eq!(d.series.len(), 80);
    // Unix seconds were detected and converted to nanoseconds.
    assert_eq!(d.series[0].timestamps[0], 1_377_721_380_000_000_000);
    let csv_lines = std::fs::read_to_string(fixture("beringei-slice.csv"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(d.sample_count(), csv_lines - 1);
    for phase in ["01_ndjson", "02_columnar", "03_compressed"] {
        let out = ok(run_in(dir.path(), phase, &[]));
        assert!(out.contains("verified bit-exact: yes"), "{phase}: {out}");
    }
}

#[test]
fn prometheus_and_influx_fixtures_import() {
    let dir = tempfile::tempdir().unwrap();
    ok(import(dir.path(), "scrapes.prom", &[]));
    let d = dataset::read(&dir.path().join(dataset::FILE_NAME)).unwrap();
    assert_eq!(d.series.len(), 5);
    assert_eq!(d.sample_count(), 15);
    ok(run_in(dir.path(), "03_compressed", &[]));

    ok(import(dir.path(), "telegraf.lp", &[]));
    let d = dataset::read(&dir.path().join(dataset::FILE_NAME)).unwrap();
    let names: Vec<_> = d.series.iter().map(|s| s.key.metric.as_str()).collect();
    assert!(
        names.contains(&"cpu_usage_user")
            && names.contains(&"mem_used")
            && names.contains(&"system_load1")
    );
    assert!(
        !names.contains(&"system_uptime_format"),
        "string fields are skipped"
    );
    ok(run_in(dir.path(), "01_ndjson", &[]));
}

#[test]
fn malformed_input_names_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "series,timestamp,value\nods,1377721380,1.0\nods,1377721440,oops\n",
    )
    .unwrap();
    let o = run_in(
        dir.path(),
        "00_generate",
        &["--import", bad.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.csv:3:") && err.contains("\"oops\""),
        "{err}"
    );
    assert!(!dir.path().join(dataset::FILE_NAME).exists());

    let empty = dir.path().join("empty.prom");
    std::fs::write(&empty, "").unwrap();
    let o = run_in(
        dir.path(),
        "00_generate",
        &["--import", empty.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no samples"), "{}", stderr(&o));

    let missing = run_in(dir.path(), "00_generate", &["--import", "/nonexistent.csv"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent.csv"));
}

#[test]
fn timestamp_unit_can_be_forced() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ms.csv");
    std::fs::write(&f, "a,1000,1\na,2000,2\n").unwrap();
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--import", f.to_str().unwrap(), "--timestamp-unit", "ms"],
    ));
    let d = dataset::read(&dir.path().join(dataset::FILE_NAME)).unwrap();
    assert_eq!(d.series[0].timestamps, vec![1_000_000_000, 2_000_000_000]);
}

#[test]
fn wide_trades_csv_imports_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    ok(import(dir.path(), "trades.csv", &[]));
    let d = dataset::read(&dir.path().join(dataset::FILE_NAME)).unwrap();
    let names: Vec<_> = d.series.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(
        names.contains(&"side{symbol=\"MSFT\"}".to_string()),
        "{names:?}"
    );
    // 6 rows x 3 value columns, one size missing.
    assert_eq!(d.sample_count(), 17);
    assert_eq!(d.series[0].timestamps[0], 1_704_205_800_120_000_000);
    for phase in ["01_ndjson", "03_compressed", "04_custom_binary"] {
        ok(run_in(dir.path(), phase, &[]));
    }
}
