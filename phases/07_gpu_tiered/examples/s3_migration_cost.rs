//! Migration to an object store against migration to local disk, in the
//! same run: the same generated trades (spread over days) ingested into two
//! stores, one with its cold tier on local disk, one on an S3 server
//! (`s3s-fs` over a folder on the same disk, on 127.0.0.1, in this
//! process), and `migrate_all` timed on each, alternating, `RUNS` times.
//! The S3 path pays the HTTP requests, the signatures and the server's own
//! writes; local disk pays fsyncs and renames.
//!
//! `cargo run --release -p gpu-tiered --example s3_migration_cost [ROWS]`

#[path = "../tests/common/s3_server.rs"]
mod s3_server;

use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{RecordBatch, TimestampNanosecondArray};
use tiered::config::Config;
use tiered::gen::Generator;
use tiered::schema::Mode;
use tiered::Engine;

const RUNS: usize = 3;
const DAY_NS: i64 = 86_400_000_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    std::env::set_var("AWS_ACCESS_KEY_ID", s3_server::KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", s3_server::SECRET);
    std::env::set_var("AWS_REGION", "us-east-1");
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let server = s3_server::Server::start(&dir.path().join("s3"));
    // The rows once, as batches of 100,000 trades, 10 batches a day.
    let mut g = Generator::new(Mode::Trading, 100, 42);
    let mut batches = Vec::new();
    let mut done = 0usize;
    while done < rows {
        let b = g.batch(100_000.min(rows - done))?;
        let day = (done / 1_000_000) as i64;
        let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
        let moved = TimestampNanosecondArray::from_iter_values(
            ts.values().iter().map(|t| t + day * DAY_NS),
        )
        .with_timezone("UTC");
        let mut cols = b.columns().to_vec();
        cols[0] = Arc::new(moved);
        done += b.num_rows();
        batches.push(RecordBatch::try_new(b.schema(), cols)?);
    }
    let mut times = [Vec::new(), Vec::new()];
    for run in 0..RUNS {
        for (i, remote) in [false, true].into_iter().enumerate() {
            let mut config = Config {
                mode: Some(Mode::Trading),
                ..Config::default()
            };
            config.storage.base_path = dir.path().join(format!("store-{run}-{i}"));
            config.hot_tier.max_records = rows as u64 + 1;
            config.warm_tier.max_memory_mb = 16_384.0;
            config.warm_tier.device = "cpu".into();
            config.wal.fsync = false;
            if remote {
                config.cold_tier.url = Some(format!("s3://{}/run{run}", s3_server::BUCKET));
                config.cold_tier.endpoint = Some(server.endpoint.clone());
                config.cold_tier.allow_http = true;
            }
            let engine = Engine::open(config)?;
            for b in &batches {
                engine.ingest(b)?;
            }
            let started = Instant::now();
            engine.migrate_all()?;
            let s = started.elapsed().as_secs_f64();
            let stats = engine.stats()?;
            assert_eq!(stats.cold_records as usize, rows);
            times[i].push(s);
            println!(
                "run {run} {:<5} {:>7.3} s  {:>6.2} M rows/s  {} files, {} bytes",
                if remote { "s3" } else { "local" },
                s,
                rows as f64 / s / 1e6,
                stats.cold_files,
                stats.cold_bytes
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (local, s3) = (median(&mut times[0]), median(&mut times[1]));
    println!(
        "median: local {:.2} M rows/s, s3 {:.2} M rows/s: s3 at {:.0}% of local ({} requests served)",
        rows as f64 / local / 1e6,
        rows as f64 / s3 / 1e6,
        100.0 * local / s3,
        server.requests()
    );
    Ok(())
}
