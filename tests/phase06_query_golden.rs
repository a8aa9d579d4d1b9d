//! Golden-file query tests: every `tests/queries/*.sql` runs against a
//! generated dataset and its output (CSV, a plan, or the error) must equal
//! the `.out` file beside it. `SSIG_BLESS=1 cargo test --test phase06_query_golden`
//! rewrites the `.out` files; review them with `git diff`.
//!
//! A `-- file: market` line in a case selects the market dataset
//! (`00_generate --profile market`); the default is the observability one.

use std::path::Path;

use squeeze::format::metrics::{self, BlockOptions, MetricsFile};
use squeeze::generate::{generate, GenerateConfig, Profile};
use squeeze::query::{Engine, OutputFormat};

fn engine(profile: Profile) -> Engine {
    let config = GenerateConfig {
        profile,
        series: if profile == Profile::Market { 16 } else { 50 },
        ..GenerateConfig::default()
    };
    let d = generate(&config).expect("generate");
    let (bytes, _) = metrics::encode(&d, BlockOptions::default()).expect("encode");
    Engine::new(MetricsFile::from_bytes(bytes, "golden.metrics").expect("open"))
}

fn run(engine: &Engine, sql: &str) -> String {
    match engine.query(sql) {
        Ok(o) if o.explain => o.render(OutputFormat::Table),
        Ok(o) => o.render(OutputFormat::Csv),
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn golden_queries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/queries");
    let bless = std::env::var_os("SSIG_BLESS").is_some();
    let obs = engine(Profile::Observability);
    let market = engine(Profile::Market);
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/queries")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let sql = std::fs::read_to_string(case).expect("read case");
        let e = if sql.lines().any(|l| l.trim() == "-- file: market") {
            &market
        } else {
            &obs
        };
        let got = run(e, &sql);
        let out = case.with_extension("out");
        if bless {
            std::fs::write(&out, &got).expect("write .out");
            continue;
        }
        match std::fs::read_to_string(&out) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{}: output differs\n--- want\n{want}--- got\n{got}",
                case.display()
            )),
            Err(_) => failures.push(format!(
                "{}: no .out file (run with SSIG_BLESS=1 and review it)",
                case.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_cases_fail_and_others_succeed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/queries");
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|x| x == "out") {
            let text = std::fs::read_to_string(&p).expect("read");
            let is_err = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("err_"));
            assert_eq!(text.starts_with("error: "), is_err, "{}", p.display());
        }
    }
}
