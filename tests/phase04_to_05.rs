//! Phases 04 and 05 as binaries: the indexed file, its tools, the rollups.

mod common;
use common::*;

use squeeze::format::metrics::MetricsFile;

#[test]
fn phase04_writes_verifies_and_measures_a_query() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    let out = ok(run_in(dir.path(), "04_custom_binary", &[]));
    assert!(out.contains("verified bit-exact: yes"), "{out}");
    assert!(out.contains("over 1% of its time range"), "{out}");
    assert!(out.contains("shared timestamp columns"), "{out}");
    assert!(out.contains("name pages"), "{out}");
    let f = MetricsFile::open(&dir.path().join("04_custom.metrics")).unwrap();
    assert_eq!(f.series().len(), 15);
}

#[test]
fn inspect_shows_every_part_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let file = dir.path().join("04_custom.metrics");
    let out = ok(run_in(
        dir.path(),
        "04_custom_binary",
        &["inspect", file.to_str().unwrap(), "--blocks", "1"],
    ));
    for part in [
        "header",
        "magic \"METRICS!\"",
        "block 0",
        "CRC32C ok",
        "shared timestamp columns",
        "index page 0",
        "name page 0",
        "root",
        "footer",
    ] {
        assert!(out.contains(part), "inspect lacks {part}:\n{out}");
    }
    assert!(out.contains("@0 "), "offsets are shown: {out}");
}

#[test]
fn inspect_verdicts_are_computed_a_flipped_byte_fails_its_block() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let file = dir.path().join("04_custom.metrics");
    let f = MetricsFile::open(&file).unwrap();
    let series = (0..f.series().len())
        .max_by_key(|&i| f.series()[i].blocks)
        .unwrap();
    let blocks = f.blocks(series).unwrap();
    let block = *blocks.iter().rev().find(|b| b.length > 0).unwrap();
    // A block may be shared by several series: inspect names the block.
    let name = format!("block at byte {}", block.offset);
    let shown = "1000".to_string();
    drop(f);
    // Flip one byte in the middle of that block.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = (block.offset + block.length / 2) as usize;
    bytes[at] ^= 0x10;
    let bad = dir.path().join("bad.metrics");
    std::fs::write(&bad, &bytes).unwrap();
    for blocks in ["1", shown.as_str()] {
        let o = run_in(
            dir.path(),
            "04_custom_binary",
            &["inspect", bad.to_str().unwrap(), "--blocks", blocks],
        );
        assert!(!o.status.success(), "a corrupt block must fail inspect");
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(out.contains(&format!("FAILED {name}: ")), "{out}");
        assert!(out.contains("checksum mismatch"), "{out}");
        assert!(out.contains("1 FAILED"), "{out}");
        assert!(err.contains(&name), "{err}");
        if blocks != "1" {
            // Shown blocks carry their own verdict.
            assert!(out.contains("CRC32C ok, decodes"), "{out}");
            assert!(out.contains("FAILED: "), "{out}");
        }
    }
    let out = ok(run_in(
        dir.path(),
        "04_custom_binary",
        &["inspect", file.to_str().unwrap()],
    ));
    assert!(
        out.contains("every CRC32C matches and every block decodes"),
        "{out}"
    );
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn series_lists_what_a_matcher_selects() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let out = ok(run_in(
        dir.path(),
        "04_custom_binary",
        &["series", "cpu_usage_percent"],
    ));
    assert!(out.contains("2 of 15 series match"), "{out}");
    let o = run_in(
        dir.path(),
        "04_custom_binary",
        &["series", "cpu{host=oops}"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("double quotes"), "{}", stderr(&o));
}

#[test]
fn inspect_refuses_a_file_that_is_not_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.metrics");
    std::fs::write(&junk, vec![7u8; 200]).unwrap();
    let o = run_in(
        dir.path(),
        "04_custom_binary",
        &["inspect", junk.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("junk.metrics") && err.contains("METRICS!"),
        "{err}"
    );
}

#[test]
fn phase05_needs_phase04_on_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    let o = run_in(dir.path(), "05_downsampling", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("04_custom_binary"), "{}", stderr(&o));
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    // A new dataset makes the phase 04 file stale.
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--points", "3000", "--series", "15", "--seed", "3"],
    ));
    let o = run_in(dir.path(), "05_downsampling", &[]);
    assert!(!o.status.success(), "{}", stdout(&o));
}

#[test]
fn phase05_writes_four_resolutions_and_says_it_is_lossy() {
    let dir = tempfile::tempdir().unwrap();
    // A day of 15 s scrapes of 15 series.
    ok(run_in(
        dir.path(),
        "00_generate",
        &["--points", &(15 * 5760).to_string(), "--series", "15"],
    ));
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let out = ok(run_in(dir.path(), "05_downsampling", &[]));
    assert!(out.contains("LOSSY"), "{out}");
    assert!(out.contains("Long-range query"), "{out}");
    assert!(out.contains("of their raw"), "{out}");
    let mut kept = 0;
    for res in ["1m", "5m", "15m", "1h"] {
        let f = MetricsFile::open(&dir.path().join(format!("05_rollup_{res}.metrics"))).unwrap();
        let names: Vec<_> = f.series().iter().map(|s| s.key.metric.clone()).collect();
        kept += names.len();
        // Every gauge rolled up keeps count, sum and max; counters keep
        // their increase and are never summed; avg is never stored.
        for n in names
            .iter()
            .filter(|n| n.ends_with(&format!("_count_{res}")))
        {
            let metric = n.trim_end_matches(&format!("_count_{res}"));
            for agg in ["sum", "max"] {
                assert!(
                    names.contains(&format!("{metric}_{agg}_{res}")),
                    "{res}: {n}"
                );
            }
        }
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("http_requests_total_sum")),
            "counters are not summed"
        );
        assert!(
            !names.iter().any(|n| n.contains("_avg_")),
            "avg is derived from sum and count, not stored"
        );
        // A bucket of fewer than 100 samples has its max as its p99, which
        // is then not stored; an hour of 15 s samples has 240.
        if res != "1h" {
            assert!(
                !names.iter().any(|n| n.contains("_p99_")),
                "{res}: {names:?}"
            );
        }
    }
    let hourly = MetricsFile::open(&dir.path().join("05_rollup_1h.metrics")).unwrap();
    let names: Vec<_> = hourly
        .series()
        .iter()
        .map(|s| s.key.metric.clone())
        .collect();
    for n in [
        "cpu_usage_percent_sum_1h",
        "cpu_usage_percent_p99_1h",
        "http_requests_total_increase_1h",
    ] {
        assert!(names.iter().any(|m| m == n), "1h lacks {n}: {names:?}");
    }
    assert!(kept > 0);
}

#[test]
fn phase05_keep_raw_prints_a_year_of_retention() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let out = ok(run_in(dir.path(), "05_downsampling", &["--keep-raw", "7d"]));
    assert!(out.contains("Retention over a year"), "{out}");
    assert!(out.contains("raw samples for 7d"), "{out}");
    for res in ["1m", "5m", "15m", "1h"] {
        assert!(out.contains(&format!("    then {res}: ")), "{res}: {out}");
    }
    // Without the flag, no retention lines.
    let out = ok(run_in(dir.path(), "05_downsampling", &[]));
    assert!(!out.contains("Retention"), "{out}");
    let o = run_in(dir.path(), "05_downsampling", &["--keep-raw", "seven days"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--keep-raw"), "{}", stderr(&o));
    // More than the year the table covers, or negative: refused, saying so.
    for (args, says) in [
        (&["--keep-raw=400d"][..], "at most a year"),
        (&["--keep-raw=-1d"][..], "not negative"),
        (&["--keep-raw", "-1d"][..], "not negative"),
    ] {
        let o = run_in(dir.path(), "05_downsampling", args);
        let arg = args.join(" ");
        assert!(!o.status.success(), "{arg}");
        assert!(stderr(&o).contains(says), "{arg}: {}", stderr(&o));
    }
}

/// Output piped into a reader that stops early (`| head`) ends the
/// process quietly, as a Unix filter ends: no panic, no "Broken pipe".
#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    small_dataset(dir.path());
    ok(run_in(dir.path(), "04_custom_binary", &[]));
    let out = dir.path().to_str().unwrap();
    for (name, args) in [
        ("04_custom_binary", &["-o", out, "series"][..]),
        ("04_custom_binary", &["-o", out, "inspect"][..]),
        ("05_downsampling", &["-o", out][..]),
        ("06_query_engine", &["-o", out, "--demo"][..]),
    ] {
        let mut child = std::process::Command::new(bin(name))
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
            "{name} {args:?}: {err}"
        );
        assert_eq!(o.status.code(), Some(0), "{name} {args:?}: {err}");
    }
}
