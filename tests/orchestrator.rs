//! The default binary runs every phase and writes the comparative report.

mod common;
use common::*;

use squeeze::report::Report;

#[test]
fn runs_every_phase_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(run_in(
        dir.path(),
        "squeezed-signals",
        &["--points", "4000", "--series", "20"],
    ));
    for phase in [
        "Phase 00",
        "Phase 01",
        "Phase 02",
        "Phase 03",
        "Phase 03b",
        "Phase 03c",
        "Phase 04",
        "Phase 05",
        "Comparative report",
    ] {
        assert!(out.contains(phase), "{phase} missing: {out}");
    }
    let json = std::fs::read(dir.path().join("report.json")).unwrap();
    let report: Report = serde_json::from_slice(&json).unwrap();
    let phases: Vec<_> = report.entries.iter().map(|e| e.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "00", "01", "02", "03", "03b", "03c", "04", "05.1", "05.2", "05.3", "05.4", "ref1",
            "ref2", "ref3", "ref4", "ref5", "ref6"
        ]
    );
    for e in &report.entries {
        assert!(e.verified, "{e:?}");
        assert_eq!(e.lossless, !e.phase.starts_with("05"), "{e:?}");
        assert_eq!(e.reference, e.phase.starts_with("ref"), "{e:?}");
        assert_eq!(e.samples, 4000);
        // A rollup file that holds nothing has no ratio; every other has.
        assert_eq!(e.ratio_to_ndjson.is_some(), !e.holds_nothing, "{e:?}");
    }
    // Each stage is smaller than NDJSON, and compression beats columnar.
    let bytes = |p: &str| report.entries.iter().find(|e| e.phase == p).unwrap().bytes;
    assert!(bytes("03") < bytes("02") && bytes("02") < bytes("01"));
    assert!(
        bytes("03b") < bytes("03"),
        "the adaptive file beats Gorilla"
    );
    assert!(bytes("03c") < bytes("03b"), "entropy coding beats 03b");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| 0")).count(),
        11,
        "{md}"
    );
    let svg = std::fs::read_to_string(dir.path().join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("compressed columnar"));
}

#[test]
fn report_only_leaves_out_entries_of_another_dataset() {
    let dir = tempfile::tempdir().unwrap();
    ok(run_in(
        dir.path(),
        "squeezed-signals",
        &["--points", "2000", "--series", "10", "-q"],
    ));
    // A new dataset makes every earlier entry but 00's stale.
    small_dataset(dir.path());
    let out = ok(run_in(dir.path(), "squeezed-signals", &["--report-only"]));
    assert!(
        out.contains("left out entries of phases 01, 02, 03"),
        "{out}"
    );
    let report: Report =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report.entries.len(), 1);
}
