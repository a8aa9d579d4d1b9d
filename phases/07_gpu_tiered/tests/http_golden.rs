//! The HTTP contract as golden files: every `tests/http/*.http` request is
//! sent, in file-name order, to one store's router (in process, through
//! tower's `oneshot`), and the answer (status, content type, body) must equal
//! the `.out` file beside it. `SSIG_BLESS=1 cargo test -p gpu-tiered --test
//! http_golden` rewrites the `.out` files; review them with `git diff`.
//!
//! A case file holds one request as HTTP writes it, comment lines first:
//!
//! ```text
//! # what the case checks
//! POST /ingest
//! Content-Type: application/json
//!
//! [{"timestamp": "2024-01-01T00:00:00Z", "symbol": "A", "price": 1, "volume": 1}]
//! ```
//!
//! JSON bodies are printed with sorted keys, and values that differ from
//! run to run (times, the device, the store's ID, byte counts of files whose
//! metadata holds times) are printed as `"<varies>"`; the key stays, so a
//! field that appears or disappears still shows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tiered::api::server::{router, Limits};
use tiered::config::Config;
use tiered::schema::Mode;
use tiered::Engine;
use tower::ServiceExt;

/// Keys whose values are not the same from run to run.
const VARIES: [&str; 13] = [
    "device",
    "warm_device",
    "store_id",
    "created_at",
    "started_at",
    "finished_at",
    "checked_at",
    "uptime_s",
    "elapsed_ms",
    "verify_ms",
    "check_ms",
    "warm_device_memory",
    "bytes_verified",
];

struct Case {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().skip_while(|l| l.starts_with('#'));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("{}: no request line", path.display()));
    let (method, target) = first
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}: request line {first:?}", path.display()));
    let mut headers = Vec::new();
    for l in lines.by_ref() {
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: header {l:?}", path.display()));
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let body: Vec<&str> = lines.collect();
    Case {
        method: method.to_string(),
        path: target.trim().to_string(),
        headers,
        body: if body.is_empty() {
            Vec::new()
        } else {
            (body.join("\n") + "\n").into_bytes()
        },
    }
}

/// `v` with every key of [`VARIES`] replaced, keys sorted (serde_json's map
/// is ordered by key), pretty.
fn normalize(mut v: Value) -> String {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if VARIES.contains(&k.as_str()) && !x.is_null() {
                        *x = Value::String("<varies>".into());
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn answer(status: u16, content_type: &str, body: &[u8]) -> String {
    let shown = if content_type.contains("json") && !content_type.contains("ndjson") {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => normalize(v),
            Err(e) => format!("(not JSON: {e})\n{}\n", String::from_utf8_lossy(body)),
        }
    } else if content_type.contains("ndjson") {
        String::from_utf8_lossy(body)
            .lines()
            .map(|l| match serde_json::from_str::<Value>(l) {
                Ok(v) => normalize(v),
                Err(_) => format!("{l}\n"),
            })
            .collect()
    } else if content_type.contains("arrow") {
        format!("({} bytes of Arrow IPC)\n", body.len())
    } else {
        format!("{}\n", String::from_utf8_lossy(body))
    };
    format!("{status}\ncontent-type: {content_type}\n\n{shown}")
}

fn config(dir: &Path) -> Config {
    let mut c = Config {
        mode: Some(Mode::Simple),
        ..Config::default()
    };
    c.storage.base_path = dir.to_path_buf();
    c.warm_tier.device = "cpu".into();
    c
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/http")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "http"))
        .collect();
    cases.sort();
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_contract_matches_its_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let limits = Limits::from_config(&config);
    let engine = Arc::new(tokio::task::block_in_place(|| Engine::open(config)).unwrap());
    let app = router(engine, &limits);
    let bless = std::env::var_os("SSIG_BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let c = parse(case);
        let mut req = Request::builder().method(c.method.as_str()).uri(&c.path);
        for (k, v) in &c.headers {
            req = req.header(k, v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(c.body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        let got = answer(status, &content_type, &body);
        let out = case.with_extension("out");
        if bless {
            std::fs::write(&out, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&out) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{}: answer differs\n--- want\n{want}--- got\n{got}",
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

/// Every case says what it checks, and its `.out` file is there (a case
/// added without blessing fails here by name, not only as a difference);
/// no `.out` file is left without its case.
#[test]
fn every_case_is_described_and_has_an_answer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "out") {
            assert!(
                p.with_extension("http").exists(),
                "{}: an answer without its case",
                p.display()
            );
        }
    }
    for case in cases() {
        let text = std::fs::read_to_string(&case).unwrap();
        assert!(
            text.starts_with("# "),
            "{}: start with a `# ` line saying what the case checks",
            case.display()
        );
        assert!(
            case.with_extension("out").exists(),
            "{}: no .out file",
            case.display()
        );
    }
}
