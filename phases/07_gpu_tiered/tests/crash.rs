//! The crash harness: a child process ingests numbered batches and says
//! `begin N` before and `ack N` after each acknowledged write; the parent
//! kills it with SIGKILL at random moments (and, a few times, exactly
//! between the two phases of a migration), restarts it, and at the end
//! checks that every acknowledged batch is present exactly once and every
//! other batch is present whole or not at all.
//!
//! `SSIG_CRASH_KILLS` sets the number of random kills (default 8 in CI;
//! the closing note's run used 60).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use rand::{Rng, SeedableRng};
use tiered::query::Query;
use tiered::schema::Mode;
use tiered::Engine;

const ROWS: u64 = 300;

struct Ledger {
    begun: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    next: u64,
}

fn run_child(
    config: &std::path::Path,
    ledger: &mut Ledger,
    kill_after: Option<Duration>,
    crash_at: Option<&str>,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"));
    cmd.arg("--config")
        .arg(config)
        .arg("crash-child")
        .arg("--first-batch")
        .arg(ledger.next.to_string())
        .arg("--rows")
        .arg(ROWS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(point) = crash_at {
        cmd.env("SSIG_CRASH_AT", point);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    match kill_after {
        Some(d) => {
            std::thread::sleep(d);
            let _ = child.kill(); // SIGKILL
        }
        None => {
            // Runs until the crash point aborts it; bounded all the same.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child only ends by being killed");
    for line in reader.join().unwrap() {
        let (what, n) = line.split_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        match what {
            "begin" => {
                ledger.begun.insert(n);
            }
            "ack" => {
                assert!(ledger.begun.contains(&n));
                ledger.acked.insert(n);
            }
            other => panic!("unexpected line {other}"),
        }
    }
    if let Some(&last) = ledger.begun.last() {
        ledger.next = last + 1;
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let kills: usize = std::env::var("SSIG_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut config = common::small_config(&store, Mode::Trading);
    config.hot_tier.max_records = 1_500;
    config.warm_tier.max_memory_mb = 0.1;
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();

    let mut ledger = Ledger {
        begun: BTreeSet::new(),
        acked: BTreeSet::new(),
        next: 0,
    };
    // Exactly between the phases of a migration, twice each.
    for point in [
        "after-parquet",
        "after-catalog",
        "after-parquet",
        "after-catalog",
    ] {
        run_child(&config_path, &mut ledger, None, Some(point));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..kills {
        let ms = rng.gen_range(30..400);
        run_child(
            &config_path,
            &mut ledger,
            Some(Duration::from_millis(ms)),
            None,
        );
    }
    assert!(
        ledger.acked.len() > kills,
        "the children made progress: {}",
        ledger.acked.len()
    );

    let engine = Engine::open(config).unwrap();
    let q = Query {
        columns: Some(vec!["trade_id".into()]),
        ..Query::default()
    };
    let (ids, _) = engine.query(&q).unwrap().collect_batch().unwrap();
    let mut per_batch: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for &id in ids.column(0).as_primitive::<Int64Type>().values() {
        assert!(seen.insert(id), "trade id {id} is stored twice");
        *per_batch.entry(id as u64 / ROWS).or_default() += 1;
    }
    for n in &ledger.acked {
        assert_eq!(per_batch.get(n), Some(&ROWS), "acknowledged batch {n}");
    }
    for (n, count) in &per_batch {
        assert!(ledger.begun.contains(n), "batch {n} was never written");
        assert_eq!(*count, ROWS, "batch {n} is half present");
    }
    let stats = engine.stats().unwrap();
    assert_eq!(stats.total(), ids.num_rows() as u64);
    assert!(stats.cold_records > 0, "migrations happened: {stats:?}");
}
