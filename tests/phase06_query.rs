//! The phase 06 binary: one query in each output format, a script on
//! standard input, errors, the demo, and a closed pipe.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{bin, ok, run_in, run_with_stdin, small_dataset, stderr};

fn prepared() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    dir
}

#[test]
fn one_query_in_three_formats() {
    let dir = prepared();
    let q = "SELECT host, count(*), max(value) FROM cpu_usage_percent GROUP BY host ORDER BY host";
    let csv = ok(run_in(
        dir.path(),
        "06_query_engine",
        &["--format", "csv", q],
    ));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("host,count(*),max(value)"));
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    let json = ok(run_in(
        dir.path(),
        "06_query_engine",
        &["--format", "json", q],
    ));
    assert_eq!(json.lines().count(), rows.len());
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["count(*)"].as_i64().unwrap() > 0);
    }
    let table = run_in(dir.path(), "06_query_engine", &[q]);
    let text = ok(table.clone());
    assert!(text.contains("count(*)"), "{text}");
    assert!(stderr(&table).contains("rows in"), "{}", stderr(&table));
}

#[test]
fn a_script_on_stdin_runs_each_statement() {
    let dir = prepared();
    let out = run_with_stdin(
        dir.path(),
        "06_query_engine",
        &["--format", "csv", "-q"],
        b"-- two queries\nSELECT count(*) FROM up;\nSELECT count(*) AS n FROM up WHERE host != 'x;y';\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("count(*)").count(), 1, "{text}");
    assert!(text.lines().any(|l| l == "n"), "{text}");
}

#[test]
fn errors_exit_nonzero_with_one_line() {
    let dir = prepared();
    for (q, word) in [
        ("SELECT * FROM nope", "unknown metric `nope`"),
        ("SELECT nope FROM up", "unknown column `nope`"),
        ("SELECT * FROM up WHERE", "syntax error"),
        ("INSERT INTO up VALUES (1)", "unsupported"),
    ] {
        let o = run_in(dir.path(), "06_query_engine", &[q]);
        assert_eq!(o.status.code(), Some(1), "{q}");
        let err = stderr(&o);
        assert!(err.contains(word), "{q}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let missing = tempfile::tempdir().unwrap();
    let o = run_in(missing.path(), "06_query_engine", &["SELECT * FROM up"]);
    assert!(stderr(&o).contains("04_custom_binary"), "{}", stderr(&o));
}

#[test]
fn the_demo_writes_its_artifact() {
    let dir = prepared();
    let text = ok(run_in(dir.path(), "06_query_engine", &["--demo"]));
    assert!(text.contains("pruned by time"), "{text}");
    assert!(text.contains("M samples/s"), "{text}");
    let md = std::fs::read_to_string(dir.path().join("06_queries.md")).unwrap();
    assert!(md.contains("EXPLAIN ANALYZE"), "{md}");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let dir = prepared();
    let mut child = Command::new(bin("06_query_engine"))
        .args([
            "--format",
            "csv",
            "SELECT * FROM cpu_usage_percent",
            "--output-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
