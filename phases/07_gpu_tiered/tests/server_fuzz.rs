//! The ingest handler against 10,000 mutated bodies (Arrow IPC streams, JSON
//! arrays, NDJSON): bit flips, truncations, splices, and edits of the length
//! fields an attacker would aim at. Requests go through the router in
//! process (tower's `oneshot`), so the run takes seconds. Every answer must
//! be a 4xx, or a 2xx when the mutation left a valid body (and then the
//! records are stored); no handler or decoder panics, and the server still
//! answers `/health` after.
//!
//! Its own test binary: it reads the process-wide panic counters, which
//! another test that panics on purpose would disturb.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tiered::config::Config;
use tiered::gen::Generator;
use tiered::schema::Mode;
use tiered::Engine;
use tower::ServiceExt;

const CASES: usize = 10_000;

fn arrow_body(batches: &[arrow_array::RecordBatch]) -> Vec<u8> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    w.into_inner().unwrap()
}

/// Valid bodies to start from, with their content types.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut g = Generator::new(Mode::Simple, 11, 4);
    let arrow = "application/vnd.apache.arrow.stream";
    let mut out = vec![
        (arrow, arrow_body(&[g.batch(20).unwrap()])),
        (
            arrow,
            arrow_body(&[g.batch(3).unwrap(), g.batch(5).unwrap()]),
        ),
        (arrow, arrow_body(&[g.batch(0).unwrap()])),
    ];
    let rows: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"timestamp":{},"symbol":"S{}/USD","price":{}.5,"volume":{}}}"#,
                1_704_067_200_000_000_000i64 + i,
                i % 3,
                100 + i,
                i
            )
        })
        .collect();
    out.push((
        "application/json",
        format!("[{}]", rows.join(",")).into_bytes(),
    ));
    out.push((
        "application/json",
        r#"[{"timestamp":"2024-01-01T00:00:00Z","symbol":"A\"B","price":1e3,"volume":-0.0}]"#
            .as_bytes()
            .to_vec(),
    ));
    out.push((
        "application/x-ndjson",
        (rows.join("\n") + "\n").into_bytes(),
    ));
    out
}

/// Values worth writing over a length field.
const LENGTHS32: [i32; 8] = [0, 1, -1, -8, i32::MAX, i32::MIN, 0x7FFF_FFF8, 4096];
const LENGTHS64: [i64; 7] = [0, -1, -8, i64::MAX, i64::MIN, 2_200_000_000_000, 1 << 32];
/// JSON text worth splicing in.
const TOKENS: [&str; 12] = [
    "1e400",
    "-9223372036854775809",
    "18446744073709551616",
    "null",
    "[]",
    "{}",
    "\"x\"",
    "{\"a\":",
    "[[[[[[[[[[[[",
    "\"\\ud800\"",
    ",",
    "\u{0}",
];

fn mutate(rng: &mut ChaCha8Rng, body: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..=4) {
        if body.is_empty() {
            body.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..body.len());
        match rng.gen_range(0..8) {
            // A bit flip.
            0 | 1 => body[at] ^= 1 << rng.gen_range(0..8),
            // A truncation.
            2 => body.truncate(at),
            // A 32-bit length field: at a 4-byte boundary, as IPC lays
            // them out (message lengths, flatbuffer offsets).
            3 => {
                let at = at & !3;
                let v = LENGTHS32[rng.gen_range(0..LENGTHS32.len())].to_le_bytes();
                let end = (at + 4).min(body.len());
                body[at..end].copy_from_slice(&v[..end - at]);
            }
            // A 64-bit one (body lengths, buffer offsets and lengths).
            4 => {
                let at = at & !7;
                let v = LENGTHS64[rng.gen_range(0..LENGTHS64.len())].to_le_bytes();
                let end = (at + 8).min(body.len());
                body[at..end].copy_from_slice(&v[..end - at]);
            }
            // A token spliced in.
            5 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())].as_bytes();
                body.splice(at..at, t.iter().copied());
            }
            // A range deleted.
            6 => {
                let end = rng.gen_range(at..=body.len().min(at + 16));
                body.drain(at..end);
            }
            // A range repeated.
            _ => {
                let end = rng.gen_range(at..=body.len().min(at + 64));
                let copy = body[at..end].to_vec();
                body.splice(end..end, copy);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mutated_bodies_get_4xx_or_2xx_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        mode: Some(Mode::Simple),
        ..Config::default()
    };
    config.storage.base_path = dir.path().to_path_buf();
    config.wal.fsync = false; // speed; durability is not what this tests
    let engine = Arc::new(Engine::open(config).unwrap());
    let app = tiered::api::server::router(engine.clone(), &tiered::api::server::Limits::default());

    let seeds = seeds();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (mut ok, mut refused, mut stored) = (0u64, 0u64, 0u64);
    for case in 0..CASES {
        let (ct, seed) = &seeds[case % seeds.len()];
        let mut body = seed.clone();
        mutate(&mut rng, &mut body);
        let req = Request::post("/ingest")
            .header("content-type", *ct)
            .body(Body::from(body.clone()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        if status.is_success() {
            ok += 1;
            stored += v["accepted"].as_u64().unwrap();
        } else {
            assert!(
                status.is_client_error(),
                "case {case} ({ct}): {status} {v}\nbody: {body:?}"
            );
            refused += 1;
        }
    }
    println!("{CASES} bodies: {ok} accepted, {refused} refused, {stored} records stored");
    assert_eq!(
        tiered::ingest::decode::decoder_panics(),
        0,
        "the decoder panicked"
    );
    assert_eq!(
        tiered::api::server::handler_panics(),
        0,
        "a handler panicked"
    );
    assert!(refused > CASES as u64 / 2, "{refused}");
    let health = app
        .clone()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // What was acknowledged is there.
    assert_eq!(engine.stats().unwrap().total(), stored);
}
