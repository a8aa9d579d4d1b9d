//! The 07_gpu_tiered binary: demo, query formats, jobs, errors.

use std::path::Path;
use std::process::{Command, Output};

fn bin(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .arg("--storage")
        .arg(store)
        .args(args)
        .env_remove("SSIG_STORAGE_PATH")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_counts_exactly_then_queries_print_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = bin(
        &store,
        &[
            "--mode",
            "trading",
            "demo",
            "30000",
            "--batch-size",
            "3000",
            "--warm-mb",
            "0.3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("INGESTION COMPLETE (exact match)"), "{out}");
    assert!(out.contains("Cold tier:"), "{out}");
    assert!(out.contains("side = buy AND exchange IN"), "{out}");

    let o = bin(
        &store,
        &[
            "query",
            "--symbol",
            "BTC/USD",
            "--limit",
            "3",
            "--format",
            "csv",
            "--columns",
            "timestamp,symbol,price",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "timestamp,symbol,price");
    assert_eq!(lines.len(), 4);
    assert!(lines[1..]
        .iter()
        .all(|l| l.contains(",BTC/USD,") && l.contains("Z,")));
    assert!(stderr(&o).starts_with("3 rows in"), "{}", stderr(&o));

    let o = bin(
        &store,
        &[
            "query",
            "--where",
            "price>=100",
            "--sort",
            "price",
            "--desc",
            "--limit",
            "5",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let prices: Vec<f64> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["price"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(prices.len(), 5);
    assert!(
        prices.windows(2).all(|w| w[0] >= w[1]) && prices[4] >= 100.0,
        "{prices:?}"
    );

    let o = bin(
        &store,
        &[
            "query",
            "--where",
            "exchange in kraken|binance",
            "--where",
            "side=sell",
            "--stats",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("cold:"), "{}", stderr(&o));

    let o = bin(&store, &["stats", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let total: u64 = ["hot_records", "warm_records", "cold_records"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, 30000);

    // Bars of a symbol: as many trades as the query finds, over the tiers.
    let range = ["--from", "2024-01-01", "--to", "2024-02-01"];
    let mut args = vec![
        "aggregate",
        "--symbol",
        "BTC/USD",
        "--every",
        "1h",
        "--format",
        "csv",
    ];
    args.extend(range);
    let o = bin(&store, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("symbol,time,trades,open,high,low,close,volume,mean_price")
    );
    let mut trades = 0u64;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f[0], "BTC/USD");
        let [open, high, low, close]: [f64; 4] = [3, 4, 5, 6].map(|i| f[i].parse::<f64>().unwrap());
        assert!(low <= open.min(close) && high >= open.max(close), "{l}");
        trades += f[2].parse::<u64>().unwrap();
    }
    let mut args = vec!["query", "--symbol", "BTC/USD", "--stats"];
    args.extend(range);
    let q = bin(&store, &args);
    let rows: u64 = stderr(&q).split(' ').next().unwrap().parse().unwrap();
    assert!(rows > 0);
    assert_eq!(trades, rows, "{}", stderr(&o));
    assert!(stderr(&o).contains(" ms on CPU"), "{}", stderr(&o));
    let o = bin(
        &store,
        &["aggregate", "--from", "0", "--to", "1", "--every", "0s"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--every"), "{}", stderr(&o));
}

#[test]
fn gpubench_measures_both_tiers_or_says_why_there_is_no_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .args([
            "gpubench", "--rows", "40000", "--batch", "15000", "--reps", "1",
        ])
        .args(["--buffer-mb", "8", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["rows"], 40000);
    let sides = r["sides"].as_array().unwrap();
    assert_eq!(sides.len(), 6);
    assert!(sides.iter().all(|s| s["cpu_ms"].as_f64().unwrap() >= 0.0));
    assert!(r["range_count_rows"].as_u64().unwrap() > 0);
    if r["no_gpu"].is_null() {
        // A GPU: every answer the same as the CPU tier's.
        assert!(sides.iter().all(|s| s["identical"] == true), "{r}");
        assert!(r["bandwidth"]["htod_pinned"].as_f64().unwrap() > 0.0);
    } else {
        assert!(stdout(&o).contains("no GPU:"), "{}", stdout(&o));
        assert!(sides.iter().all(|s| s["gpu_ms"].is_null()));
    }
}

#[test]
fn errors_are_one_line_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = dir.path().join("bad.json");
    std::fs::write(&cfg, r#"{"cold_tier": {"compression": 5}}"#).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .args(["--config", cfg.to_str().unwrap(), "stats"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("bad.json") && e.contains("invalid type"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");

    let o = bin(&store, &["query", "--where", "colour=red"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown column `colour`"),
        "{}",
        stderr(&o)
    );
    let o = bin(&store, &["query", "--from", "tomorrow"]);
    assert!(stderr(&o).contains("--from \"tomorrow\""), "{}", stderr(&o));
    // Not a leap year: an error naming the flag and the day, never March 1st.
    let o = bin(&store, &["query", "--from", "2023-02-29"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("--from \"2023-02-29\"") && e.contains("day"),
        "{e}"
    );
    let o = bin(&store, &["jobs", "status", "99"]);
    assert!(stderr(&o).contains("job 99 not found"), "{}", stderr(&o));
    // A time limit that is not a time: an error, not a panic.
    for v in ["NaN", "0", "inf"] {
        let o = bin(
            &store,
            &["loadtest", "--addr", "127.0.0.1:1", "--max-seconds", v],
        );
        assert_eq!(o.status.code(), Some(1), "{v}: {}", stderr(&o));
        assert!(stderr(&o).contains("--max-seconds"), "{}", stderr(&o));
    }
    let o = bin(&store, &["jobs", "create", "notes.txt"]);
    assert!(
        stderr(&o).contains("expected a .csv or .parquet file"),
        "{}",
        stderr(&o)
    );

    // The demo does not wipe a directory that is not a store.
    let other = dir.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("thesis.txt"), "do not delete").unwrap();
    let o = bin(&other, &["demo", "1000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(other.join("thesis.txt").exists());
}

#[test]
fn jobs_run_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = bin(&store, &["jobs", "create", "gen:5000:1"]);
    assert!(stdout(&o).contains("created job 1"), "{}", stderr(&o));
    let o = bin(&store, &["jobs", "start", "1", "--batch-size", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("job 1: done, 5000 records"),
        "{}",
        stdout(&o)
    );
    let o = bin(&store, &["jobs", "list"]);
    assert!(
        stdout(&o).contains("job 1: done gen:5000:1 records 5000/5000 (100.0%)"),
        "{}",
        stdout(&o)
    );
    bin(&store, &["jobs", "create", "gen:10"]);
    let o = bin(&store, &["jobs", "cancel", "2"]);
    assert!(stdout(&o).contains("job 2: cancelled"), "{}", stdout(&o));
    // Ages that are not ages are refused, and delete nothing (NaN and
    // negative hours used to delete every finished job).
    for bad in [
        &["--older-than-hours", "NaN"][..],
        &["--older-than-hours", "-1"],
        &["--older-than-hours", "inf"],
        &["--max-age", "-1h"],
        &["--max-age", "1 fortnight"],
        &["--max-age", "1h", "--older-than-hours", "1"],
    ] {
        let o = bin(&store, &[&["jobs", "cleanup"][..], bad].concat());
        assert!(!o.status.success(), "{bad:?}: {}", stdout(&o));
    }
    let o = bin(&store, &["jobs", "cleanup"]);
    assert!(
        stdout(&o).contains("deleted 0 finished jobs that finished at least 1d ago"),
        "{}",
        stdout(&o)
    );
    let o = bin(&store, &["jobs", "cleanup", "--max-age", "0s"]);
    assert!(
        stdout(&o).contains("deleted 2 finished jobs"),
        "{}",
        stdout(&o)
    );
    let o = bin(
        &store,
        &[
            "quality",
            "BTC/USD",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-01T00:05:00Z",
            "--interval",
            "1s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let q: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(q["expected_buckets"], 300);
}

#[test]
fn ingest_with_an_idempotency_key_run_again_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let csv = dir.path().join("in.csv");
    let mut text = String::from("timestamp,symbol,price,volume\n");
    for i in 0..250 {
        text.push_str(&format!(
            "{},AAA/USD,{}.5,1\n",
            1_704_067_200_000_000_000i64 + i,
            i
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let csv = csv.to_str().unwrap();
    let run = |batch: &str, key: &str| {
        bin(
            &store,
            &[
                "ingest",
                csv,
                "--batch-size",
                batch,
                "--log-batches",
                "--idempotency-key",
                key,
            ],
        )
    };
    let o = run("100", "nightly-2024-01-01");
    assert!(o.status.success(), "{}", stderr(&o));
    let first = stdout(&o);
    assert_eq!(first.matches(" stored\n").count(), 3, "{first}");
    assert!(
        first.contains("batch 0:2 lsn 3 records 50 stored"),
        "{first}"
    );

    // Run again (as after a crash): every batch is recognised by its key.
    let o = run("100", "nightly-2024-01-01");
    assert!(o.status.success(), "{}", stderr(&o));
    let again = stdout(&o);
    assert_eq!(again.matches(" already stored\n").count(), 3, "{again}");
    assert!(
        again.contains("batch 0:2 lsn 3 records 50 already stored"),
        "{again}"
    );
    assert!(
        again.contains("(3 batches were already stored under their keys)"),
        "{again}"
    );
    let o = bin(&store, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stats["hot_records"], 250, "{stats}");

    // Other batches under the same keys: refused, nothing stored.
    let o = run("120", "nightly-2024-01-01");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("was used for another batch"),
        "{}",
        stderr(&o)
    );
    let o = run("100", "has space");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--idempotency-key"), "{}", stderr(&o));
    let o = bin(&store, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stats["hot_records"], 250, "{stats}");
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = bin(
        &store,
        &["demo", "20000", "--no-queries", "--batch-size", "1000"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for _ in 0..20 {
        bin(&store, &["jobs", "create", "gen:10"]);
    }
    for args in [
        &["stats"][..],
        &["jobs", "list"][..],
        &["query", "--limit", "20000", "--format", "csv"][..],
        &["config"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
            .arg("--storage")
            .arg(&store)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes (`| head -0`).
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
    }
}

/// CSV output quotes what needs quoting: a symbol holding a comma, a quote
/// or a line break reads back as one field (query, aggregate and bars).
#[test]
fn csv_output_quotes_fields_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = dir.path().join("odd.csv");
    let odd = ["a,b", "say \"hi\"", "two\nlines"];
    let mut w = csv::Writer::from_path(&input).unwrap();
    w.write_record(["timestamp", "symbol", "price", "volume"])
        .unwrap();
    for (i, s) in odd.iter().enumerate() {
        let ts = (1_704_067_200_000_000_000i64 + i as i64).to_string();
        w.write_record([ts.as_str(), s, "1.5", "2"]).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let o = bin(&store, &["ingest", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |args: &[&str]| -> Vec<csv::StringRecord> {
        let o = bin(&store, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        csv::Reader::from_reader(o.stdout.as_slice())
            .records()
            .map(|r| r.unwrap())
            .collect()
    };
    let rows = read(&["query", "--format", "csv"]);
    let got: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(got, odd);
    for s in odd {
        let agg = read(&[
            "aggregate",
            "--symbol",
            s,
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--every",
            "1d",
            "--format",
            "csv",
        ]);
        let bars = read(&[
            "bars",
            "--symbol",
            s,
            "--timeframe",
            "1d",
            "--limit",
            "5",
            "--format",
            "csv",
        ]);
        assert_eq!(agg.len(), 1);
        assert_eq!(&agg[0][0], s);
        assert_eq!(agg, bars, "{s}");
    }
}

/// A credential variable set but empty is refused before any request,
/// naming it (the S3 client would send it, and every request would be
/// refused as a bad signature).
#[test]
fn an_empty_credential_variable_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"))
        .arg("--storage")
        .arg(dir.path().join("store"))
        .arg("stats")
        .env("SSIG_COLD_URL", "s3://bkt/p")
        .env("SSIG_COLD_ENDPOINT", "http://127.0.0.1:9")
        .env("SSIG_COLD_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("AWS_SECRET_ACCESS_KEY is set but empty"), "{e}");
}
