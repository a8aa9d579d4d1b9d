//! The crash harnesses. Each kills a process that writes numbered batches
//! of trades (trade ids `n * ROWS ..`) with SIGKILL at random moments, and
//! at the crash points `SSIG_CRASH_AT` names (a batch durable but not yet
//! answered, between the two phases of a migration), restarts it, and at
//! the end counts, per batch, what the store holds:
//!
//! - `sigkill_at_random_moments_loses_no_acknowledged_write`: a child that
//!   calls the engine directly and says `begin N` before and `ack N` after
//!   each write.
//! - `the_server_killed_at_random_moments_stores_every_acknowledged_batch_once`:
//!   `07_gpu_tiered serve`, with three clients that POST numbered batches
//!   with an `Idempotency-Key`, and after a connection error send the same
//!   batch with the same key to the restarted server.
//! - `the_cli_ingester_killed_and_rerun_stores_every_batch_once`:
//!   `07_gpu_tiered ingest FILE.csv --idempotency-key K`, killed and run
//!   again until a run finishes, file after file.
//!
//! The counts: acknowledged (answered success), lost (acknowledged, not
//! present whole), duplicated (a record stored twice), phantom (stored,
//! but never begun by any writer), torn (present, but not whole). Each run
//! must end with 0 lost, 0 duplicated, 0 phantom, 0 torn; the counts are
//! printed (`-- --nocapture`).
//!
//! `SSIG_CRASH_KILLS` sets the kills of each harness (default 8 for the
//! first, 6 for the others, in CI); the chapter's full run used 130.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use rand::{Rng, SeedableRng};
use tiered::gen::Generator;
use tiered::read::query::Query;
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

fn kills(default: usize) -> usize {
    std::env::var("SSIG_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let kills = kills(8);
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
    let started = Instant::now();
    // Exactly between the phases of a migration (Parquet files, the Delta
    // table's commit, the catalog's), twice each.
    for point in [
        "after-parquet",
        "after-table",
        "after-catalog",
        "after-parquet",
        "after-table",
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

    let stored = stored_batches(&config);
    let tally = Tally::of(&stored, &ledger.begun, &ledger.acked);
    let unacked = ledger.begun.difference(&ledger.acked).count();
    println!(
        "engine child: {kills} kills at random moments and 6 at crash points in {:.1} s; {} batches begun, \
         {} acknowledged; of the {unacked} not acknowledged, {} present whole; lost {}, duplicated {}, \
         phantom {}, torn {}",
        started.elapsed().as_secs_f64(),
        ledger.begun.len(),
        tally.acknowledged,
        stored.distinct.keys().filter(|n| !ledger.acked.contains(n)).count(),
        tally.lost,
        tally.duplicated,
        tally.phantom,
        tally.torn
    );
    tally.assert_clean("engine child");
    let engine = Engine::open(config.clone()).unwrap();
    let stats = engine.stats().unwrap();
    assert!(stats.cold_records > 0, "migrations happened: {stats:?}");
    drop(engine);
    common::assert_table_agrees(&config);
}

/// A store whose tiers are small enough that migrations run every few
/// batches (so that kills land in them), and its configuration file.
fn crash_store(dir: &std::path::Path) -> (tiered::Config, std::path::PathBuf) {
    let mut config = common::small_config(&dir.join("store"), Mode::Trading);
    config.hot_tier.max_records = 1_500;
    config.warm_tier.max_memory_mb = 0.1;
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    (config, path)
}

/// Batch `n`: ROWS trades, trade ids `n * ROWS ..`, always the same bytes.
fn numbered_batch(n: u64) -> RecordBatch {
    let batch = Generator::new(Mode::Trading, n, 5)
        .batch(ROWS as usize)
        .unwrap();
    let ids = arrow_array::Int64Array::from_iter_values(
        (0..ROWS as i64).map(|i| n as i64 * ROWS as i64 + i),
    );
    let mut cols = batch.columns().to_vec();
    cols[6] = Arc::new(ids);
    RecordBatch::try_new(batch.schema(), cols).unwrap()
}

/// What the store holds, per batch number (trade id / ROWS).
struct Stored {
    /// Distinct trade ids of each batch present.
    distinct: BTreeMap<u64, u64>,
    /// Batches with a trade id stored more than once.
    duplicated: BTreeSet<u64>,
}

fn stored_batches(config: &tiered::Config) -> Stored {
    let engine = Engine::open(config.clone()).unwrap();
    let q = Query {
        columns: Some(vec!["trade_id".into()]),
        ..Query::default()
    };
    let (ids, _) = engine.query(&q).unwrap().collect_batch().unwrap();
    let mut stored = Stored {
        distinct: BTreeMap::new(),
        duplicated: BTreeSet::new(),
    };
    let mut seen = BTreeSet::new();
    for &id in ids.column(0).as_primitive::<Int64Type>().values() {
        let n = id as u64 / ROWS;
        if seen.insert(id) {
            *stored.distinct.entry(n).or_default() += 1;
        } else {
            stored.duplicated.insert(n);
        }
    }
    let stats = engine.stats().unwrap();
    assert_eq!(stats.total(), ids.num_rows() as u64);
    stored
}

/// What a harness counts at the end.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    phantom: usize,
    torn: usize,
}

impl Tally {
    /// Counts the store against the writers' ledger: `begun` batches were
    /// sent at least once, `acked` were answered success.
    fn of(stored: &Stored, begun: &BTreeSet<u64>, acked: &BTreeSet<u64>) -> Tally {
        let d = &stored.distinct;
        Tally {
            acknowledged: acked.len(),
            lost: acked
                .iter()
                .filter(|n| d.get(n).is_none_or(|&c| c < ROWS))
                .count(),
            duplicated: stored.duplicated.len(),
            phantom: d.keys().filter(|n| !begun.contains(n)).count(),
            torn: d.values().filter(|&&c| c < ROWS).count(),
        }
    }

    fn assert_clean(&self, who: &str) {
        assert!(
            self.lost == 0 && self.duplicated == 0 && self.phantom == 0 && self.torn == 0,
            "{who}: {self:?}"
        );
    }
}

/// A server of the store, started; `None` if it died before it listened
/// (a crash point in the migration it runs when it opens).
fn start_server(config: &std::path::Path, crash_at: Option<&str>) -> (Child, Option<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"));
    cmd.arg("--config")
        .arg(config)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(point) = crash_at {
        cmd.env("SSIG_CRASH_AT", point);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    // Keep reading (and dropping) what it prints, so it never blocks.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string);
    (child, addr)
}

fn arrow_body(batch: &RecordBatch) -> Vec<u8> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    w.into_inner().unwrap()
}

/// The clients' shared ledger.
#[derive(Default)]
struct Clients {
    next: u64,
    /// Begun, answered nothing (the server died): sent again, same key.
    retry: VecDeque<u64>,
    begun: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    /// Sends of a batch after the first.
    resent: u64,
    /// Answers with `Idempotent-Replayed: true`: a resent batch that the
    /// server had stored before it died without answering.
    replayed: u64,
}

/// One client: sends batches until a connection fails or `stop` says so.
fn client(addr: String, ledger: Arc<Mutex<Clients>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let Ok(mut conn) = tiered::api::client::Conn::open(&addr) else {
        return;
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let n = {
            let mut l = ledger.lock().unwrap();
            match l.retry.pop_front() {
                Some(n) => {
                    l.resent += 1;
                    n
                }
                None => {
                    l.next += 1;
                    let n = l.next;
                    l.begun.insert(n);
                    n
                }
            }
        };
        let body = arrow_body(&numbered_batch(n));
        let key = format!("batch-{n}");
        let answer = conn.request(
            "POST",
            "/ingest",
            &[
                ("Content-Type", "application/vnd.apache.arrow.stream"),
                ("Idempotency-Key", &key),
            ],
            &body,
        );
        let mut l = ledger.lock().unwrap();
        match answer {
            Ok(r) if r.status == 200 => {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(v["accepted"], ROWS, "{}", r.text());
                if r.header("idempotent-replayed") == Some("true") {
                    l.replayed += 1;
                }
                l.acked.insert(n);
            }
            Ok(r) if r.status == 503 => l.retry.push_back(n),
            Ok(r) => panic!("batch {n}: {} {}", r.status, r.text()),
            Err(_) => {
                // The server died: this batch is sent again, same key, to
                // the next one.
                l.retry.push_front(n);
                return;
            }
        }
    }
}

#[test]
fn the_server_killed_at_random_moments_stores_every_acknowledged_batch_once() {
    let kills = kills(6);
    let dir = tempfile::tempdir().unwrap();
    let (config, config_path) = crash_store(dir.path());
    let ledger = Arc::new(Mutex::new(Clients::default()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let points = ["after-wal", "after-parquet", "after-table", "after-catalog"];
    let mut at_points: BTreeMap<&str, usize> = BTreeMap::new();
    let started = Instant::now();
    for cycle in 0..kills {
        // Every other cycle ends at a crash point; the others at random.
        let point = (cycle % 2 == 1).then(|| {
            let p = points[(cycle / 2) % points.len()];
            *at_points.entry(p).or_default() += 1;
            match p {
                "after-wal" => format!("after-wal:{}", rng.gen_range(1..20)),
                p => p.to_string(),
            }
        });
        let (mut server, addr) = start_server(&config_path, point.as_deref());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = addr
            .iter()
            .flat_map(|a| std::iter::repeat_n(a.clone(), 3))
            .map(|a| {
                let (l, s) = (ledger.clone(), stop.clone());
                std::thread::spawn(move || client(a, l, s))
            })
            .collect();
        match point {
            Some(_) => {
                // Runs until the crash point aborts it; bounded all the same.
                let deadline = Instant::now() + Duration::from_secs(30);
                while server.try_wait().unwrap().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            None => std::thread::sleep(Duration::from_millis(rng.gen_range(50..700))),
        }
        let _ = server.kill(); // SIGKILL
        let _ = server.wait();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            c.join().unwrap();
        }
    }

    // Before the last retries: every batch begun and not acknowledged is
    // present whole or not at all.
    let before = stored_batches(&config);
    assert!(before.duplicated.is_empty(), "a record is stored twice");
    let (unacked_whole, unacked_absent) = {
        let l = ledger.lock().unwrap();
        let unacked: Vec<u64> = l.begun.difference(&l.acked).copied().collect();
        for n in &unacked {
            let c = before.distinct.get(n).copied().unwrap_or(0);
            assert!(c == 0 || c == ROWS, "batch {n} is half present: {c}");
        }
        let whole = unacked
            .iter()
            .filter(|n| before.distinct.contains_key(n))
            .count();
        (whole, unacked.len() - whole)
    };
    // A last server: what the clients still hold is sent again, same keys.
    let (mut server, addr) = start_server(&config_path, None);
    let addr = addr.expect("the last server listens");
    let mut conn = tiered::api::client::Conn::open(&addr).unwrap();
    loop {
        let Some(n) = ledger.lock().unwrap().retry.pop_front() else {
            break;
        };
        let r = conn
            .request(
                "POST",
                "/ingest",
                &[
                    ("Content-Type", "application/vnd.apache.arrow.stream"),
                    ("Idempotency-Key", &format!("batch-{n}")),
                ],
                &arrow_body(&numbered_batch(n)),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let mut l = ledger.lock().unwrap();
        l.resent += 1;
        if r.header("idempotent-replayed") == Some("true") {
            l.replayed += 1;
        }
        l.acked.insert(n);
    }
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = server.wait();

    let after = stored_batches(&config);
    let l = ledger.lock().unwrap();
    let tally = Tally::of(&after, &l.begun, &l.acked);
    println!(
        "server: {kills} kills ({} at random moments, {} at crash points: {at_points:?}) in {:.1} s; \
         {} batches begun, {} acknowledged; {} sent again after a kill, {} of them answered from their key \
         (stored before the kill, not answered); unacknowledged at the last kill: {unacked_whole} present whole, \
         {unacked_absent} absent; lost {}, duplicated {}, phantom {}, torn {}",
        kills - at_points.values().sum::<usize>(),
        at_points.values().sum::<usize>(),
        started.elapsed().as_secs_f64(),
        l.begun.len(),
        tally.acknowledged,
        l.resent,
        l.replayed,
        tally.lost,
        tally.duplicated,
        tally.phantom,
        tally.torn
    );
    tally.assert_clean("server");
    common::assert_table_agrees(&config);
    assert_eq!(
        tally.acknowledged,
        l.begun.len(),
        "every batch was answered in the end"
    );
    assert!(tally.acknowledged > kills, "the clients made progress");
}

/// Writes batches `first..first + count` as a CSV file of the trading
/// columns.
fn write_csv(path: &std::path::Path, first: u64, count: u64) {
    common::write_trades_csv(path, (first..first + count).map(numbered_batch));
}

#[test]
fn the_cli_ingester_killed_and_rerun_stores_every_batch_once() {
    const PER_FILE: u64 = 40;
    let kills = kills(6);
    let dir = tempfile::tempdir().unwrap();
    let (config, config_path) = crash_store(dir.path());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(61);
    let points = ["after-wal", "after-parquet", "after-table", "after-catalog"];
    let mut at_points: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut begun, mut acked) = (BTreeSet::new(), BTreeSet::new());
    let (mut killed, mut runs, mut files, mut already) = (0, 0, 0u64, 0u64);
    let started = Instant::now();
    while killed < kills {
        // A file of PER_FILE batches, run until one run finishes it.
        let first = 1 + files * PER_FILE;
        let csv = dir.path().join(format!("part-{files}.csv"));
        write_csv(&csv, first, PER_FILE);
        begun.extend(first..first + PER_FILE);
        loop {
            runs += 1;
            let point = (killed < kills && killed % 2 == 1).then(|| {
                let p = points[(killed / 2) % points.len()];
                match p {
                    "after-wal" => (p, format!("after-wal:{}", rng.gen_range(1..PER_FILE))),
                    p => (p, p.to_string()),
                }
            });
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_07_gpu_tiered"));
            cmd.arg("--config")
                .arg(&config_path)
                .arg("ingest")
                .arg(&csv)
                .args(["--batch-size", &ROWS.to_string()])
                .args(["--idempotency-key", &format!("file-{files}")])
                .arg("--log-batches")
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            if let Some((_, at)) = &point {
                cmd.env("SSIG_CRASH_AT", at);
            }
            let mut child = cmd.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .collect::<Vec<String>>()
            });
            let kill_at = match (&point, killed < kills) {
                (None, true) => {
                    Some(Instant::now() + Duration::from_millis(rng.gen_range(30..800)))
                }
                _ => None,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if kill_at.is_some_and(|t| Instant::now() >= t) || Instant::now() >= deadline {
                    let _ = child.kill(); // SIGKILL
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            for line in reader.join().unwrap() {
                // `batch F:B lsn L records R stored|already stored`
                let Some(rest) = line.strip_prefix("batch ") else {
                    continue;
                };
                let b: u64 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|fb| fb.split_once(':'))
                    .and_then(|(_, b)| b.parse().ok())
                    .unwrap();
                acked.insert(first + b);
                already += line.ends_with("already stored") as u64;
            }
            if status.success() {
                break;
            }
            killed += 1;
            if let Some((p, _)) = point {
                *at_points.entry(p).or_default() += 1;
            }
        }
        files += 1;
    }
    let stored = stored_batches(&config);
    let tally = Tally::of(&stored, &begun, &acked);
    println!(
        "CLI ingest: {killed} kills ({} at random moments, {} at crash points: {at_points:?}) over {runs} runs \
         of {files} files of {PER_FILE} batches, in {:.1} s; {} batches acknowledged, {already} answered \
         \"already stored\" by a rerun; lost {}, duplicated {}, phantom {}, torn {}",
        killed - at_points.values().sum::<usize>(),
        at_points.values().sum::<usize>(),
        started.elapsed().as_secs_f64(),
        tally.acknowledged,
        tally.lost,
        tally.duplicated,
        tally.phantom,
        tally.torn
    );
    tally.assert_clean("CLI ingest");
    common::assert_table_agrees(&config);
    assert_eq!(acked, begun, "every file was finished by its last run");
}
