//! Real files as users have them, through the whole course: each case of
//! the import issue (#15) is a file that goes through `squeezed-signals
//! --import FILE` (phases 00 to 06), with the value it must give, or a
//! file that must be refused with the line named.

mod common;
use common::*;

use squeeze::format::dataset;
use squeeze::format::metrics::MetricsFile;
use squeeze::Dataset;

const T0: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

/// Writes `text` as `name` in a fresh directory and runs the whole course
/// on it; returns the directory and what the run printed.
fn course(name: &str, text: &[u8], extra: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out_dir = dir.path().join("out");
    let mut args = vec!["--import", path.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    let out = run_in(&out_dir, "squeezed-signals", &args);
    (dir, out)
}

/// Runs the whole course on `text` and returns the dataset it imported;
/// panics with what the run printed if any phase failed.
fn imported(name: &str, text: &[u8], extra: &[&str]) -> Dataset {
    let (dir, out) = course(name, text, extra);
    assert!(
        out.status.success(),
        "{name}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let out_dir = dir.path().join("out");
    let d = dataset::read(&out_dir.join(dataset::FILE_NAME)).unwrap();
    // Phase 04's file and every rollup file read back (the phases verify
    // them; reading them again here checks they exist and open).
    let raw = MetricsFile::open(&out_dir.join("04_custom.metrics")).unwrap();
    assert!(d.bit_diff(&raw.read_all(&d.source).unwrap()).is_none());
    for res in ["1m", "5m", "15m", "1h"] {
        MetricsFile::open(&out_dir.join(format!("05_rollup_{res}.metrics")))
            .unwrap()
            .read_all("r")
            .unwrap();
    }
    d
}

/// Imports `text` as `name` with the whole course in `dir`, then runs one
/// query over it and returns its CSV output.
fn query_after_import(dir: &std::path::Path, name: &str, text: &str, sql: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    ok(run_in(
        dir,
        "squeezed-signals",
        &["--import", path.to_str().unwrap(), "-q"],
    ));
    ok(run_in(dir, "06_query_engine", &["--format", "csv", sql]))
}

/// The run fails, naming `want` (file:line: reason) on standard error.
fn refused(name: &str, text: &[u8], extra: &[&str], want: &str) {
    let (_dir, out) = course(name, text, extra);
    assert!(!out.status.success(), "{name} was accepted");
    let err = stderr(&out);
    assert!(err.contains(want), "{name}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A series as (metric, labels, timestamps, value bits).
type Flat<'a> = (&'a str, Vec<(String, String)>, Vec<i64>, Vec<u64>);

fn only(d: &Dataset) -> Flat<'_> {
    assert_eq!(d.series.len(), 1, "{:?}", d.series);
    let s = &d.series[0];
    (
        s.key.metric.as_str(),
        s.key.labels.clone().into_iter().collect(),
        s.timestamps.clone(),
        s.values.iter().map(|v| v.to_bits()).collect(),
    )
}

// 1. Series without labels, in every importer, through every phase.
#[test]
fn label_free_series_go_through_every_phase() {
    for (name, text, metric) in [
        ("up.prom", &b"up 1 1704067200000\n"[..], "up"),
        ("up.csv", b"up,1704067200,1\n", "up"),
        ("cpu.lp", b"cpu v=1 1704067200000000000\n", "cpu_v"),
        ("up.om", b"up 1 1704067200\n# EOF\n", "up"),
    ] {
        let d = imported(name, text, &[]);
        assert_eq!(
            only(&d),
            (metric, vec![], vec![T0], vec![1f64.to_bits()]),
            "{name}"
        );
    }
}

// 2. Line-protocol escapes.
#[test]
fn line_protocol_keeps_a_literal_backslash() {
    let d = imported(
        "disk.lp",
        b"disk,path=C:\\data used=1 1704067200000000000\n",
        &[],
    );
    let (metric, labels, ..) = only(&d);
    assert_eq!(metric, "disk_used");
    assert_eq!(labels, vec![("path".into(), "C:\\data".into())]);
}

// 3. CSV as spreadsheets write it.
#[test]
fn spreadsheet_csv_with_bom_and_quotes() {
    let plain = imported(
        "plain.csv",
        b"timestamp,symbol,price,size\n2024-01-02T14:30:00Z,ACME,10.5,100\n",
        &[],
    );
    let bom = imported(
        "bom.csv",
        b"\xEF\xBB\xBFtimestamp,symbol,price,size\n2024-01-02T14:30:00Z,ACME,10.5,100\n",
        &[],
    );
    assert!(plain.bit_diff(&bom).is_none());
    let quoted = imported(
        "quoted.csv",
        b"\xEF\xBB\xBFtimestamp,symbol,price,size\r\n\"2024-01-02T14:30:00Z\",\"ACME, Inc.\",\"10.5\",100\r\n",
        &[],
    );
    let price = quoted
        .series
        .iter()
        .find(|s| s.key.metric == "price")
        .unwrap();
    assert_eq!(price.key.labels["symbol"], "ACME, Inc.");
    assert_eq!(price.values, vec![10.5]);
    assert_eq!(price.timestamps, vec![1_704_205_800_000_000_000]);
}

// 4. OpenMetrics exemplars.
#[test]
fn an_exemplar_is_dropped_and_the_sample_kept() {
    let d = imported(
        "ex.om",
        b"# TYPE http_requests counter\nhttp_requests_total{code=\"200\"} 5 1704067200 # {trace_id=\"abc\"} 1 1704067199\n# EOF\n",
        &[],
    );
    let (metric, labels, ts, values) = only(&d);
    assert_eq!(metric, "http_requests_total");
    assert_eq!(labels, vec![("code".into(), "200".into())]);
    assert_eq!((ts, values), (vec![T0], vec![5f64.to_bits()]));
}

// 5. Float spellings.
#[test]
fn go_float_spellings_are_the_values_they_name() {
    let d = imported(
        "floats.prom",
        b"a -Infinity 1704067200000\nb +Inf 1704067200000\nc Inf 1704067200000\nd nAn 1704067200000\ne INFINITY 1704067200000\nf -inf 1704067200000\n",
        &[],
    );
    let values: Vec<(String, f64)> = d
        .series
        .iter()
        .map(|s| (s.key.metric.clone(), s.values[0]))
        .collect();
    assert_eq!(values[0], ("a".into(), f64::NEG_INFINITY));
    assert_eq!(values[1], ("b".into(), f64::INFINITY));
    assert_eq!(values[2], ("c".into(), f64::INFINITY));
    assert!(values[3].1.is_nan());
    assert_eq!(values[4], ("e".into(), f64::INFINITY));
    assert_eq!(values[5], ("f".into(), f64::NEG_INFINITY));
    for (name, text) in [
        ("big.prom", "a 1e400 1704067200000\n"),
        ("big.csv", "a,1704067200,1e400\n"),
        ("big.lp", "a v=1e400 1704067200000000000\n"),
    ] {
        refused(name, text.as_bytes(), &[], &format!("{name}:1:"));
    }
}

// 6. Calendar dates.
#[test]
fn an_impossible_date_is_an_error_naming_the_field() {
    refused(
        "leap.csv",
        b"timestamp,symbol,price\n2023-02-29,X,1\n",
        &[],
        "leap.csv:2: timestamp: \"2023-02-29\"",
    );
    let d = imported("leap.csv", b"timestamp,symbol,price\n2024-02-29,X,1\n", &[]);
    assert_eq!(only(&d).2, vec![1_709_164_800_000_000_000]);
}

// 7. Timestamp overflow.
#[test]
fn out_of_range_timestamps_are_errors_naming_the_line() {
    for (name, text) in [
        ("o.prom", "m 1 1\nm 1 340282366920938463463374607431769\n"),
        ("o.csv", "m,1,1\nm,340282366920938463463374607431769,1\n"),
        ("o.lp", "m v=1 1\nm v=1 9223372036854775807\n"),
    ] {
        let unit: &[&str] = if name.ends_with(".lp") {
            &["--timestamp-unit", "s"]
        } else {
            &[]
        };
        refused(name, text.as_bytes(), unit, &format!("{name}:2: timestamp"));
    }
}

// 8. Conflicting duplicates.
#[test]
fn conflicting_duplicates_are_refused_or_resolved_as_asked() {
    let text = b"c_total 100 1704067200000\nc_total 90 1704067200000\nc_total 101 1704067215000\n";
    refused(
        "dup.prom",
        text,
        &[],
        "dup.prom:2: c_total: value 90 conflicts with value 100 at line 1",
    );
    let first = imported("dup.prom", text, &["--duplicates", "first"]);
    assert_eq!(only(&first).3, vec![100f64.to_bits(), 101f64.to_bits()]);
    let last = imported("dup.prom", text, &["--duplicates", "last"]);
    assert_eq!(only(&last).3, vec![90f64.to_bits(), 101f64.to_bits()]);
    // Identical duplicates are dropped, in every importer.
    for (name, text) in [
        (
            "same.prom",
            "c_total 100 1704067200000\nc_total 100 1704067200000\n",
        ),
        (
            "same.csv",
            "c_total,1704067200,100\nc_total,1704067200,100\n",
        ),
        (
            "same.lp",
            "c total=100 1704067200000000000\nc total=100 1704067200000000000\n",
        ),
    ] {
        let d = imported(name, text.as_bytes(), &[]);
        assert_eq!(only(&d).3, vec![100f64.to_bits()], "{name}");
    }
}

// 9. Names real systems use.
#[test]
fn dotted_and_utf8_names_are_kept() {
    let d = imported(
        "pcp.csv",
        b"disk.all.read,1704067200,5\n\"{\"\"kernel.percpu.cpu.user\"\",instance=\"\"cpu0\"\"}\",1704067200,7\n",
        &[],
    );
    let keys: Vec<String> = d.series.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(
        keys,
        vec![
            "{\"disk.all.read\"}",
            "{\"kernel.percpu.cpu.user\",instance=\"cpu0\"}"
        ]
    );
    let d = imported(
        "utf8.prom",
        "{\"disk.all.read\", host=\"a\"} 5 1704067200000\n{\"température\", \"pièce.nom\"=\"salon\"} 21.5 1704067200000\n"
            .as_bytes(),
        &[],
    );
    assert_eq!(d.series[0].key.metric, "disk.all.read");
    assert_eq!(d.series[1].key.labels["pièce.nom"], "salon");
    // The query engine reads them as quoted identifiers.
    let dir = tempfile::tempdir().unwrap();
    let out = query_after_import(
        dir.path(),
        "pcp.csv",
        "disk.all.read,1704067200,5\ndisk.all.read,1704067260,6\n",
        "SELECT sum(value) FROM \"disk.all.read\"",
    );
    assert!(out.starts_with("sum(value)\n11\n"), "{out}");
}

// 10. Samples without timestamps.
#[test]
fn a_live_scrape_needs_a_default_timestamp() {
    let text = b"# TYPE up gauge\nup 1\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.5\n";
    refused("scrape.prom", text, &[], "--default-timestamp");
    let d = imported(
        "scrape.prom",
        text,
        &["--default-timestamp", "2024-01-01T00:00:00Z"],
    );
    assert!(d.series.iter().all(|s| s.timestamps == vec![T0]));
    assert!(d.is_counter("process_cpu_seconds_total"));
}

// Declared types decide counter or gauge rollups in phase 05.
#[test]
fn declared_types_reach_the_rollups() {
    // Two hours of samples 10 s apart: long enough that 5m rollups are at
    // most half the samples' bytes, so phase 05 keeps them.
    let mut text = String::from("# TYPE requests counter\n");
    for i in 0..720u64 {
        let t = 1_704_067_200_000 + i * 10_000;
        text.push_str(&format!("requests {} {t}\n", i * 17 + (i * i) % 13));
    }
    text.push_str("# TYPE temp_total gauge\n");
    for i in 0..720u64 {
        let t = 1_704_067_200_000 + i * 10_000;
        text.push_str(&format!(
            "temp_total {}.{} {t}\n",
            20 + (i * 7919) % 23,
            i % 10
        ));
    }
    let (dir, out) = course("typed.prom", text.as_bytes(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Neither series is constant (a constant one has no rollups).
    let rollups = MetricsFile::open(&dir.path().join("out/05_rollup_5m.metrics")).unwrap();
    let names: Vec<&str> = rollups
        .series()
        .iter()
        .map(|s| s.key.metric.as_str())
        .collect();
    assert!(names.contains(&"requests_increase_5m"), "{names:?}");
    assert!(names.contains(&"temp_total_sum_5m"), "{names:?}");
    assert!(!names.contains(&"temp_total_increase_5m"), "{names:?}");
}

// Labels named like the sample columns stay reachable, and the course runs.
#[test]
fn labels_named_ts_or_value_are_labels_dot_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = query_after_import(
        dir.path(),
        "m.prom",
        "m{ts=\"a\",value=\"b\",host=\"h\"} 7 1704067200000\nm{ts=\"a\",value=\"c\",host=\"h\"} 8 1704067200000\n",
        "SELECT * FROM m WHERE labels.value = 'c'",
    );
    assert!(
        out.starts_with("ts,host,labels.ts,labels.value,value\n2024-01-01T00:00:00.000Z,h,a,c,8\n"),
        "{out}"
    );
}

// A query too long to walk safely is refused, not a stack overflow; a
// series with thousands of labels still goes through the whole course.
#[test]
fn huge_queries_are_refused_and_huge_label_sets_run() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<String> = (0..3000).map(|i| format!("l{i}=\"x\"")).collect();
    let path = dir.path().join("wide.prom");
    std::fs::write(
        &path,
        format!("m{{{}}} 1 1704067200000\n", labels.join(",")),
    )
    .unwrap();
    ok(run_in(
        dir.path(),
        "squeezed-signals",
        &["--import", path.to_str().unwrap(), "-q"],
    ));
    let terms: Vec<String> = (0..12_000).map(|i| format!("l{i} = 'x'")).collect();
    let query = format!("SELECT count(*) FROM m WHERE {}", terms.join(" AND "));
    // Too long for a command-line argument: through standard input.
    let o = run_with_stdin(
        dir.path(),
        "06_query_engine",
        &[],
        format!("{query};\n").as_bytes(),
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("operators"), "{all}");
    assert!(!all.contains("overflow"), "{all}");
}
