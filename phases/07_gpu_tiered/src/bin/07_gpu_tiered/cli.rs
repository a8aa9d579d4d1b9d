//! The command line: global options and one subcommand per task. Each
//! subcommand's options live in its own file beside this one.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use tiered::config::Config;
use tiered::error::Result;
use tiered::schema::Mode;

use crate::{admin, aggregate, crash_child, demo, gpubench, ingest, jobs, loadtest, query, serve};

/// Phase 07: a tiered time-series store for trades.
///
/// Writes go to a write-ahead log (Arrow IPC, fsynced, group commit) and the
/// hot tier; older records move to the warm tier (columns in memory, symbols
/// dictionary-encoded; on the CPU in this build) and then to the cold tier
/// (Parquet by day, sorted by symbol and time): a Delta Lake table in
/// `<storage>/cold`, or in S3 or an S3-compatible server with
/// `cold_tier.url = "s3://bucket/prefix"` (SSIG_COLD_URL; SSIG_COLD_ENDPOINT
/// for a server other than AWS; credentials from AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY), which Spark, DuckDB, DataFusion or the
/// `deltalake` Python package read as one table, with the engine's own
/// bookkeeping in a SQLite catalog. Queries filter, sort and limit across
/// all three.
///
/// Configuration: defaults, then --config FILE (JSON), then SSIG_* variables
/// (see `07_gpu_tiered config`), then --storage and --mode.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  07_gpu_tiered demo 10000000\n  07_gpu_tiered query --symbol BTC/USD --from 2024-01-01T01:00:00Z --to 2024-01-01T02:00:00Z --limit 5\n  07_gpu_tiered query --where 'price>=500' --sort price --desc --limit 10\n  07_gpu_tiered jobs create gen:1000000 && 07_gpu_tiered jobs start 1\n  07_gpu_tiered quality BTC/USD --from 2024-01-01 --to 2024-01-02 --interval 1s\n  07_gpu_tiered stats"
)]
pub struct Args {
    /// JSON configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Store directory (overrides storage.base_path).
    #[arg(long, global = true)]
    pub storage: Option<PathBuf>,
    /// Columns of a new store (overrides `mode`).
    #[arg(long, global = true, value_enum)]
    pub mode: Option<Mode>,
    /// Where the warm tier lives (overrides warm_tier.device): auto uses a
    /// GPU when one is found and passes its self-test, and says why not
    /// otherwise; gpu fails without one.
    #[arg(long, global = true, value_parser = ["auto", "cpu", "gpu"])]
    pub device: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate and ingest trades with a live progress line, print exact
    /// per-tier counts, then run query benchmarks. Starts from an empty store
    /// unless --keep.
    Demo(demo::DemoArgs),
    /// Ingest CSV or Parquet files (with the store's columns).
    ///
    /// With --idempotency-key, batch B of the F-th file is stored under the
    /// key KEY:F:B, so that the same command run again after it was
    /// interrupted (killed, a crash) stores only the batches that were not
    /// stored yet: the others are recognised by their keys and skipped.
    /// Run it again with the same files in the same order and the same
    /// --batch-size; a batch that differs under the same key is an error.
    Ingest(ingest::IngestArgs),
    /// Query across the tiers.
    Query(query::QueryArgs),
    /// Bars per symbol and time bucket across the tiers: trades, open,
    /// high, low, close, volume, mean price. Each tier reduces its own rows
    /// (the warm tier on the GPU when it has one); sums are exact.
    Aggregate(aggregate::AggArgs),
    /// The newest N bars of one symbol at 1m, 5m, 1h or 1d: the catalog's
    /// materialised bars of the cold tier (kept per symbol and timeframe
    /// at every migration) merged with the rows still in memory; the same
    /// bits `aggregate` computes from the raw rows. Says where they came
    /// from.
    Bars(aggregate::BarsArgs),
    /// Measure the GPU warm tier against the CPU one on generated data:
    /// bandwidths (pinned/pageable host-to-device, device-to-device), warm
    /// ingest, range count, filters and aggregates side by side, results
    /// compared bit for bit. Without a GPU, measures the CPU tier and says why.
    Gpubench(gpubench::BenchArgs),
    /// Ingestion jobs recorded in the catalog.
    Jobs(jobs::JobsArgs),
    /// Data quality of one symbol over a range: completeness against an
    /// expected interval, missing intervals, gaps, duplicates. Stored in the
    /// catalog.
    Quality(admin::QualityArgs),
    /// Delete cold partitions more than DAYS days older than --now: remove
    /// actions in the cold tier's Delta table, then the catalog rows, then
    /// the files.
    Retention(admin::RetentionArgs),
    /// Per-tier counts and bytes, WAL, catalog.
    Stats(admin::StatsArgs),
    /// Move every record to the cold tier now (hot and warm end empty), as
    /// migrations do: Parquet files first, then one commit to the cold
    /// tier's Delta table, then one catalog transaction.
    Migrate,
    /// Print the effective configuration and the environment variables read.
    Config,
    /// Read every cold file whole and check it against the CRC-32C the
    /// catalog recorded; read every WAL record and check its CRC; read
    /// every page of the catalog's bars and check it against its CRC and
    /// its key's row. Exits non-zero if anything is damaged.
    Scrub(admin::ScrubArgs),
    /// Rebuild the catalog from the cold files (each read whole and checked
    /// against its own description) and the WAL, when the catalog is
    /// missing, empty or damaged. Deletes nothing: the old catalog and any
    /// file that cannot stay go to quarantine/ in the store.
    ///
    /// A cold tier in an object store (cold_tier.url = s3://…) is not
    /// repaired in place yet: copy the objects under its prefix to a local
    /// directory, run repair with cold_tier.url = file:///that/directory,
    /// then copy them back (the objects of the repaired table are the
    /// directory's). A store in a shared cold tier (cold_tier.shared) is not
    /// repaired yet: it would have to tell its files from the other stores'.
    Repair(admin::RepairArgs),
    /// Serve the HTTP API (see /openapi.json) until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Load-test a running server: time-series requests from concurrent
    /// clients (latency percentiles), or ingest throughput with Arrow or JSON
    /// bodies. Bounded by --requests and --max-seconds.
    Loadtest(loadtest::LoadArgs),
    /// (For the crash tests.) Ingest numbered trading-mode batches forever,
    /// printing `begin N` before and `ack N` after each acknowledged write.
    #[command(hide = true)]
    CrashChild(crash_child::CrashChildArgs),
}

pub fn load_config(args: &Args) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(s) = &args.storage {
        config.storage.base_path = s.clone();
    }
    if let Some(m) = args.mode {
        config.mode = Some(m);
    }
    if let Some(d) = &args.device {
        config.warm_tier.device = d.clone();
    }
    config.check()?;
    Ok(config)
}
