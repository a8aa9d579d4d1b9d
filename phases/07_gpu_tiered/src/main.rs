//! Phase 07: the tiered engine from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use tiered::agg::{Buckets, MAX_BUCKETS};
use tiered::cold::{self, ScanStats};
use tiered::config::{Config, ENV_VARS};
use tiered::engine::{Engine, TierStats};
use tiered::error::{Error, Result};
use tiered::filter::{Cond, Filter, Scalar};
use tiered::gen::Generator;
use tiered::query::{Query, QueryStats, Sort};
use tiered::schema::Mode;
use tiered::{catalog, jobs, output, quality};

/// Phase 07: a tiered time-series store for trades.
///
/// Writes go to a write-ahead log (Arrow IPC, fsynced, group commit) and the
/// hot tier; older records move to the warm tier (columns in memory, symbols
/// dictionary-encoded; on the CPU in this build) and then to the cold tier
/// (Parquet by day, sorted by symbol and time) listed in a SQLite catalog.
/// Queries filter, sort and limit across all three.
///
/// Configuration: defaults, then --config FILE (JSON), then SSIG_* variables
/// (see `07_gpu_tiered config`), then --storage and --mode.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Examples:\n  07_gpu_tiered demo 10000000\n  07_gpu_tiered query --symbol BTC/USD --from 2024-01-01T01:00:00Z --to 2024-01-01T02:00:00Z --limit 5\n  07_gpu_tiered query --where 'price>=500' --sort price --desc --limit 10\n  07_gpu_tiered jobs create gen:1000000 && 07_gpu_tiered jobs start 1\n  07_gpu_tiered quality BTC/USD --from 2024-01-01 --to 2024-01-02 --interval 1s\n  07_gpu_tiered stats"
)]
struct Args {
    /// JSON configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Store directory (overrides storage.base_path).
    #[arg(long, global = true)]
    storage: Option<PathBuf>,
    /// Columns of a new store (overrides `mode`).
    #[arg(long, global = true, value_enum)]
    mode: Option<Mode>,
    /// Where the warm tier lives (overrides warm_tier.device): auto uses a
    /// GPU when one is found and passes its self-test, and says why not
    /// otherwise; gpu fails without one.
    #[arg(long, global = true, value_parser = ["auto", "cpu", "gpu"])]
    device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate and ingest trades with a live progress line, print exact
    /// per-tier counts, then run query benchmarks. Starts from an empty store
    /// unless --keep.
    Demo(DemoArgs),
    /// Ingest CSV or Parquet files (with the store's columns).
    ///
    /// With --idempotency-key, batch B of the F-th file is stored under the
    /// key KEY:F:B, so that the same command run again after it was
    /// interrupted (killed, a crash) stores only the batches that were not
    /// stored yet: the others are recognised by their keys and skipped.
    /// Run it again with the same files in the same order and the same
    /// --batch-size; a batch that differs under the same key is an error.
    Ingest {
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 100_000)]
        batch_size: usize,
        /// Name this ingest for retries: at most 200 visible ASCII characters.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Print a line per batch: `batch F:B lsn L records R stored|already stored`.
        #[arg(long)]
        log_batches: bool,
    },
    /// Query across the tiers.
    Query(QueryArgs),
    /// Bars per symbol and time bucket across the tiers: trades, open,
    /// high, low, close, volume, mean price. Each tier reduces its own rows
    /// (the warm tier on the GPU when it has one); sums are exact.
    Aggregate(AggArgs),
    /// Measure the GPU warm tier against the CPU one on generated data:
    /// bandwidths (pinned/pageable host-to-device, device-to-device), warm
    /// ingest, range count, filters and aggregates side by side, results
    /// compared bit for bit. Without a GPU, measures the CPU tier and says why.
    Gpubench(tiered::bench::BenchArgs),
    /// Ingestion jobs recorded in the catalog.
    Jobs {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Data quality of one symbol over a range: completeness against an
    /// expected interval, missing intervals, gaps, duplicates. Stored in the
    /// catalog.
    Quality {
        symbol: String,
        /// Start (inclusive): UTC time or nanoseconds.
        #[arg(long)]
        from: String,
        /// End (exclusive).
        #[arg(long)]
        to: String,
        /// Expected interval between records, e.g. 1s, 250ms, 1m.
        #[arg(long, default_value = "1s")]
        interval: String,
    },
    /// Delete cold partitions more than DAYS days older than --now (catalog
    /// rows and files together).
    Retention {
        #[arg(long)]
        days: u32,
        /// The reference time (default: the clock).
        #[arg(long)]
        now: Option<String>,
    },
    /// Per-tier counts and bytes, WAL, catalog.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration and the environment variables read.
    Config,
    /// Read every cold file whole and check it against the CRC-32C the
    /// catalog recorded; read every WAL record and check its CRC. Exits
    /// non-zero if anything is damaged.
    Scrub {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the catalog from the cold files (each read whole and checked
    /// against its own description) and the WAL, when the catalog is
    /// missing, empty or damaged. Deletes nothing: the old catalog and any
    /// file that cannot stay go to quarantine/ in the store.
    Repair {
        /// Go on even if records would be lost (a damaged cold file whose
        /// records are not in the WAL, or LSNs neither holds); without it,
        /// repair refuses and says what would be lost.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Serve the HTTP API (see /openapi.json) until Ctrl-C or SIGTERM.
    Serve {
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Largest ingest body, in MB (default: server.max_body_mb, 64).
        #[arg(long)]
        max_body_mb: Option<f64>,
        /// Longest a request may take before it is answered 408, in seconds
        /// (default: server.request_timeout_s, 30).
        #[arg(long)]
        timeout_s: Option<f64>,
    },
    /// Load-test a running server: time-series requests from concurrent
    /// clients (latency percentiles), or ingest throughput with Arrow or JSON
    /// bodies. Bounded by --requests and --max-seconds.
    Loadtest(LoadArgs),
    /// (For the crash tests.) Ingest numbered trading-mode batches forever,
    /// printing `begin N` before and `ack N` after each acknowledged write.
    #[command(hide = true)]
    CrashChild {
        #[arg(long)]
        first_batch: u64,
        #[arg(long, default_value_t = 500)]
        rows: usize,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Records to ingest.
    #[arg(default_value_t = 1_000_000)]
    records: u64,
    /// Records per ingested batch.
    #[arg(long, default_value_t = 100_000)]
    batch_size: usize,
    /// Threads calling ingest at once (they share fsyncs).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Distinct symbols.
    #[arg(long, default_value_t = 100)]
    symbols: usize,
    /// Warm tier budget in MB (default: a third of the data's warm size, so
    /// that the run shows all three tiers).
    #[arg(long)]
    warm_mb: Option<f64>,
    /// Skip the query benchmarks.
    #[arg(long)]
    no_queries: bool,
    /// Keep what the store already holds (default: start empty).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// symbol = S (repeat for IN).
    #[arg(long)]
    symbol: Vec<String>,
    /// timestamp >= T (UTC time or nanoseconds).
    #[arg(long)]
    from: Option<String>,
    /// timestamp < T.
    #[arg(long)]
    to: Option<String>,
    /// A condition `column OP value`, OP one of = > >= < <= in; for `in`,
    /// values separated by `|`: `side=buy`, `price>=100`, `exchange in kraken|binance`.
    #[arg(long = "where")]
    conditions: Vec<String>,
    /// Sort by this column.
    #[arg(long)]
    sort: Option<String>,
    /// Sort descending.
    #[arg(long, requires = "sort")]
    desc: bool,
    #[arg(long)]
    limit: Option<usize>,
    /// Output columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Print only counts: rows per tier, pruning, bytes read, time.
    #[arg(long)]
    stats: bool,
    /// Run the query this many times more first (untimed answer, same
    /// process, so the later runs find the files checked and their footers
    /// cached), then print the median and best time of all runs.
    #[arg(long, default_value_t = 0)]
    repeat: usize,
}

#[derive(Debug, clap::Args)]
struct AggArgs {
    /// symbol = S (repeat for IN); all symbols when absent.
    #[arg(long)]
    symbol: Vec<String>,
    /// Start of the first bucket (UTC time or nanoseconds).
    #[arg(long)]
    from: String,
    /// End (exclusive).
    #[arg(long)]
    to: String,
    /// Bucket width, e.g. 1s, 1min, 1h, 1d.
    #[arg(long, default_value = "1min")]
    every: String,
    /// A condition `column OP value`, as for `query --where`.
    #[arg(long = "where")]
    conditions: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Print only counts: groups, rows per tier, where the warm share ran, time.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// The server, host:port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[arg(long, value_enum, default_value = "timeseries")]
    kind: LoadKind,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 3200)]
    requests: usize,
    /// Stop after this many seconds even if requests are left.
    #[arg(long, default_value_t = 120.0)]
    max_seconds: f64,
    /// timeseries: the symbol, or several comma-separated, asked for in turn.
    #[arg(long, default_value = "BTC/USD", value_delimiter = ',')]
    symbol: Vec<String>,
    /// timeseries: start of the range asked for; ingest: time of the first
    /// generated trade.
    #[arg(long, default_value = "2024-01-01T00:00:00Z")]
    start: String,
    /// timeseries: length of the range.
    #[arg(long, default_value = "1d")]
    span: String,
    /// timeseries: bar frequency.
    #[arg(long, default_value = "1min")]
    frequency: String,
    /// ingest: records per request body.
    #[arg(long, default_value_t = 100_000)]
    batch: usize,
    /// ingest: columns of the records sent.
    #[arg(long, value_enum, default_value = "simple")]
    mode: Mode,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LoadKind {
    Timeseries,
    IngestArrow,
    IngestJson,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Create a pending job: SOURCE is a .csv or .parquet file, or `gen:RECORDS[:SEED]`.
    Create { source: String },
    /// Run a pending job in this process, with progress.
    Start {
        id: i64,
        #[arg(long, default_value_t = 100_000)]
        batch_size: usize,
    },
    /// A job's state and progress.
    Status { id: i64 },
    /// Cancel a pending or running job.
    Cancel { id: i64 },
    /// Every job, newest first.
    List,
    /// Delete finished jobs older than the given hours.
    Cleanup {
        #[arg(long, default_value_t = 24.0)]
        older_than_hours: f64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !matches!(args.command, Command::Serve { .. } | Command::Loadtest(_)) {
        // Output piped into a reader that stops early (`| head`) ends this
        // process quietly, as it does any Unix filter, instead of a panic
        // in `println!`. Not for the server and the load generator, whose
        // sockets must not kill them when a peer goes away.
        // SAFETY: restoring the default action of one signal, before any
        // thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(args: &Args) -> Result<Config> {
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

fn run(args: Args) -> Result<()> {
    let mut config = load_config(&args)?;
    match args.command {
        Command::Demo(d) => demo(config, &d),
        Command::Ingest {
            files,
            batch_size,
            idempotency_key,
            log_batches,
        } => {
            if let Some(k) = &idempotency_key {
                if k.len() > 200 {
                    return Err(Error::InvalidArgument(
                        "--idempotency-key: at most 200 characters (batches add :FILE:BATCH)"
                            .into(),
                    ));
                }
                tiered::idempotency::check_key(k)
                    .map_err(|e| Error::InvalidArgument(format!("--idempotency-key: {e}")))?;
            }
            let engine = open(config)?;
            let stdout = std::io::stdout();
            for (file_no, f) in files.iter().enumerate() {
                let started = Instant::now();
                let (mut n, mut batch_no, mut skipped) = (0u64, 0u64, 0u64);
                let mut step = |b: RecordBatch| -> Result<bool> {
                    let key = idempotency_key
                        .as_ref()
                        .map(|k| format!("{k}:{file_no}:{batch_no}"));
                    let done = engine.ingest_keyed(&b, key.as_deref()).map_err(|e| {
                        Error::InvalidArgument(format!("{}: after {n} records: {e}", f.display()))
                    })?;
                    if log_batches {
                        let mut out = stdout.lock();
                        writeln!(
                            out,
                            "batch {file_no}:{batch_no} lsn {} records {} {}",
                            done.lsn,
                            done.records,
                            if done.replayed {
                                "already stored"
                            } else {
                                "stored"
                            }
                        )
                        .and_then(|()| out.flush())
                        .map_err(|e| Error::io("<stdout>", e))?;
                    }
                    skipped += done.replayed as u64;
                    n += b.num_rows() as u64;
                    batch_no += 1;
                    Ok(true)
                };
                match f.extension().and_then(|e| e.to_str()) {
                    Some("csv") => jobs::read_csv(f, engine.mode(), batch_size, &mut step)?,
                    Some("parquet") => jobs::read_parquet(f, batch_size, &mut step)?,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "{}: expected a .csv or .parquet file",
                            f.display()
                        )))
                    }
                }
                println!(
                    "{}: {n} records in {:.2} s{}",
                    f.display(),
                    started.elapsed().as_secs_f64(),
                    if skipped > 0 {
                        format!(" ({skipped} batches were already stored under their keys)")
                    } else {
                        String::new()
                    }
                );
            }
            print_tiers(&engine.stats()?);
            Ok(())
        }
        Command::Query(q) => {
            let engine = open_read_only(config)?;
            query_cmd(&engine, &q)
        }
        Command::Aggregate(a) => aggregate_cmd(&open_read_only(config)?, &a),
        Command::Gpubench(b) => tiered::bench::run(&b),
        Command::Jobs { command } => jobs_cmd(config, command),
        Command::Quality {
            symbol,
            from,
            to,
            interval,
        } => {
            let engine = open(config)?;
            let start = time_arg("--from", &from)?;
            let end = time_arg("--to", &to)?;
            let interval = squeeze::time::parse_duration(&interval)
                .map_err(|e| Error::InvalidArgument(format!("--interval: {e}")))?;
            let q = quality::check(&engine, &symbol, start, end, interval)?;
            println!("{}", serde_json::to_string_pretty(&q).unwrap_or_default());
            Ok(())
        }
        Command::Retention { days, now } => {
            let engine = open(config)?;
            let now = match now {
                Some(t) => time_arg("--now", &t)?,
                None => catalog::now_secs() * 1_000_000_000,
            };
            let gone = engine.retention(days, now)?;
            let rows: u64 = gone.iter().map(|f| f.rows).sum();
            let bytes: u64 = gone.iter().map(|f| f.bytes).sum();
            println!(
                "deleted {} files ({rows} records, {bytes} bytes) in partitions older than {days} days",
                gone.len()
            );
            Ok(())
        }
        Command::Stats { json } => {
            let engine = open_read_only(config)?;
            let s = engine.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print_tiers(&s);
                println!(
                    "WAL: {} bytes on disk; cold: {} files, {} bytes; watermark LSN {}",
                    s.wal_bytes, s.cold_files, s.cold_bytes, s.watermark_lsn
                );
            }
            Ok(())
        }
        Command::Config => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config).unwrap_or_default()
            );
            println!("\nEnvironment overrides:");
            for (k, what) in ENV_VARS {
                println!("  {k:<26} {what}");
            }
            Ok(())
        }
        Command::Serve {
            addr,
            max_body_mb,
            timeout_s,
        } => {
            config.server.max_body_mb = max_body_mb.unwrap_or(config.server.max_body_mb);
            config.server.request_timeout_s = timeout_s.unwrap_or(config.server.request_timeout_s);
            config.check()?;
            tiered::jobs::check_import_dir(&config)?;
            let limits = tiered::server::Limits::from_config(&config);
            serve(open(config)?, &addr, &limits)
        }
        Command::Scrub { json } => {
            let engine = open_read_only(config)?;
            let r = engine.scrub()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                println!(
                    "cold: {} files, {} bytes read and checked; {} damaged{}",
                    r.files,
                    r.bytes,
                    r.damaged.len(),
                    if r.unreadable.is_empty() {
                        String::new()
                    } else {
                        format!(", {} could not be read", r.unreadable.len())
                    }
                );
                for (p, why) in &r.damaged {
                    println!("  DAMAGED {}: {why}", p.display());
                }
                for (p, why) in &r.unreadable {
                    println!("  NOT READ {}: {why}", p.display());
                }
                match &r.wal_problem {
                    None => println!("WAL: {} records checked", r.wal_records),
                    Some(why) => println!("WAL: DAMAGED: {why}"),
                }
            }
            if r.damaged.is_empty() && r.wal_problem.is_none() && r.unreadable.is_empty() {
                Ok(())
            } else {
                Err(Error::Inconsistent(format!(
                    "scrub found {} damaged cold files{}{}",
                    r.damaged.len(),
                    if r.unreadable.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " and could not read {} (not damage: fix the error it names and scrub again)",
                            r.unreadable.len()
                        )
                    },
                    if r.wal_problem.is_some() {
                        " and a damaged WAL"
                    } else {
                        ""
                    }
                )))
            }
        }
        Command::Repair { accept_loss } => {
            let r = tiered::recovery::repair(&config, accept_loss)?;
            for note in &r.notes {
                println!("  {note}");
            }
            for q in &r.quarantined {
                println!(
                    "  quarantined {} -> {} ({})",
                    q.from.display(),
                    q.to.display(),
                    q.why
                );
            }
            println!(
                "repaired: {} mode, {} cold files ({} records{}), watermark LSN {}, WAL {}",
                r.mode.map_or("?", |m| m.name()),
                r.files,
                r.rows,
                if r.undescribed > 0 {
                    format!(
                        ", {} files without a description of their own",
                        r.undescribed
                    )
                } else {
                    String::new()
                },
                r.watermark,
                match r.wal {
                    Some((first, next)) if next > first => {
                        format!("holds LSNs {first}..={}", next - 1)
                    }
                    _ => "holds no record".into(),
                }
            );
            Ok(())
        }
        Command::Loadtest(l) => loadtest(&l),
        Command::CrashChild { first_batch, rows } => {
            config.mode = Some(Mode::Trading);
            crash_child(config, first_batch, rows)
        }
    }
}

/// Opens the store to read and write, and says on stderr what recovery did.
fn open(config: Config) -> Result<Engine> {
    let engine = Engine::open(config)?;
    if let Some((bytes, why)) = &engine.recovery().torn_tail {
        eprintln!("recovery: cut a torn WAL tail of {bytes} bytes ({why})");
    }
    for note in &engine.opened().segment_notes {
        eprintln!("recovery: {note}");
    }
    if let Some(kept) = &engine.recovery().cut_kept {
        eprintln!("recovery: the bytes cut are kept in {}", kept.display());
    }
    for id in &engine.opened().interrupted_jobs {
        eprintln!(
            "recovery: job {id} was running when its process stopped: marked failed (interrupted)"
        );
    }
    for (p, proof) in &engine.opened().deleted {
        eprintln!("recovery: deleted {} ({proof})", p.display());
    }
    for q in &engine.opened().quarantined {
        eprintln!(
            "recovery: quarantined {} -> {} ({})",
            q.from.display(),
            q.to.display(),
            q.why
        );
    }
    Ok(engine)
}

/// Opens the store to read only (changing nothing), and says on stderr what
/// a read-write open would have done.
fn open_read_only(config: Config) -> Result<Engine> {
    let engine = Engine::open_read_only(config)?;
    for what in &engine.opened().not_done {
        eprintln!(
            "recovery not done (opened read-only; the next command that writes does it): {what}"
        );
    }
    Ok(engine)
}

fn time_arg(flag: &str, s: &str) -> Result<i64> {
    s.parse::<i64>()
        .or_else(|_| squeeze::time::parse_timestamp(s))
        .map_err(|why| {
            Error::InvalidArgument(format!(
                "{flag} {why} (write a time such as 2024-01-01T00:00:00Z, or integer nanoseconds)"
            ))
        })
}

/// Parses `column OP value` against the store's column types.
fn parse_condition(engine: &Engine, text: &str) -> Result<Filter> {
    let ops = [" in ", ">=", "<=", "=", ">", "<"];
    let (at, op) = ops
        .iter()
        .filter_map(|op| text.find(op).map(|i| (i, *op)))
        .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--where {text:?}: expected `column OP value` with OP one of = > >= < <= in"
            ))
        })?;
    let column = text[..at].trim();
    let value = text[at + op.len()..].trim();
    let field = engine.schema().field_with_name(column).map_err(|_| {
        Error::InvalidArgument(format!("--where {text:?}: unknown column `{column}`"))
    })?;
    let scalar = |v: &str| -> Result<Scalar> {
        let v = v.trim();
        Ok(match field.data_type() {
            DataType::Utf8 => Scalar::Str(v.to_string()),
            DataType::Timestamp(..) => Scalar::Int(time_arg(column, v)?),
            DataType::Float64 => Scalar::Float(v.parse().map_err(|_| {
                Error::InvalidArgument(format!("--where {text:?}: {v:?} is not a number"))
            })?),
            _ => Scalar::Int(v.parse().map_err(|_| {
                Error::InvalidArgument(format!("--where {text:?}: {v:?} is not an integer"))
            })?),
        })
    };
    let cond = match op {
        " in " => Cond::In(value.split('|').map(scalar).collect::<Result<_>>()?),
        "=" => Cond::Eq(scalar(value)?),
        _ => {
            let v = Some(scalar(value)?);
            let (mut gt, mut gte, mut lt, mut lte) = (None, None, None, None);
            match op {
                ">" => gt = v,
                ">=" => gte = v,
                "<" => lt = v,
                _ => lte = v,
            }
            Cond::Range { gt, gte, lt, lte }
        }
    };
    Ok(Filter {
        column: column.to_string(),
        cond,
    })
}

fn build_query(engine: &Engine, q: &QueryArgs) -> Result<Query> {
    let mut filters = Vec::new();
    match q.symbol.len() {
        0 => {}
        1 => filters.push(Filter::eq("symbol", q.symbol[0].as_str())),
        _ => filters.push(Filter::is_in("symbol", q.symbol.iter().map(String::as_str))),
    }
    if q.from.is_some() || q.to.is_some() {
        let from = q
            .from
            .as_deref()
            .map(|t| time_arg("--from", t))
            .transpose()?;
        let to = q.to.as_deref().map(|t| time_arg("--to", t)).transpose()?;
        filters.push(Filter::range(
            "timestamp",
            from.map(Scalar::Int),
            to.map(Scalar::Int),
        ));
    }
    for c in &q.conditions {
        filters.push(parse_condition(engine, c)?);
    }
    Ok(Query {
        filters,
        sort: q.sort.as_ref().map(|c| Sort {
            column: c.clone(),
            descending: q.desc,
        }),
        limit: q.limit,
        columns: q.columns.clone(),
        batch_size: None,
    })
}

fn query_cmd(engine: &Engine, q: &QueryArgs) -> Result<()> {
    let query = build_query(engine, q)?;
    let mut times = Vec::with_capacity(q.repeat + 1);
    for _ in 0..q.repeat {
        let started = Instant::now();
        let (_, s) = engine.query(&query)?.collect_batch()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        eprintln!("{}", stats_line(s.rows_out, &s));
    }
    let started = Instant::now();
    let mut stream = engine.query(&query)?;
    let schema = stream.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(names.clone());
    let mut rows = 0u64;
    if matches!(q.format, Format::Csv) && !q.stats {
        write_out(&mut out, &names.join(","))?;
    }
    for batch in stream.by_ref() {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        if q.stats {
            continue;
        }
        for r in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| output::cell(c.as_ref(), r))
                .collect();
            match q.format {
                Format::Table => {
                    table.add_row(cells);
                }
                Format::Csv => write_out(&mut out, &cells.join(","))?,
                Format::Json => {
                    let obj = output::json_row(&batch, r);
                    write_out(&mut out, &serde_json::Value::Object(obj).to_string())?;
                }
            }
        }
    }
    if matches!(q.format, Format::Table) && !q.stats {
        write_out(&mut out, &table.to_string())?;
    }
    let _ = out.flush();
    eprintln!("{}", stats_line(rows, &stream.stats));
    if q.repeat > 0 {
        times.push(started.elapsed().as_secs_f64() * 1e3);
        times.sort_by(f64::total_cmp);
        eprintln!(
            "timing: median {:.2} ms, best {:.2} ms over {} runs",
            times[times.len() / 2],
            times[0],
            times.len()
        );
    }
    Ok(())
}

fn aggregate_cmd(engine: &Engine, a: &AggArgs) -> Result<()> {
    let every = squeeze::time::parse_duration(&a.every)
        .ok()
        .filter(|&e| e > 0)
        .ok_or_else(|| {
            Error::InvalidArgument(format!("--every {:?}: use e.g. 1s, 1min, 1h", a.every))
        })?;
    let buckets = Buckets::new(
        time_arg("--from", &a.from)?,
        time_arg("--to", &a.to)?,
        every,
        MAX_BUCKETS,
    )?;
    let mut filters = Vec::new();
    match a.symbol.len() {
        0 => {}
        1 => filters.push(Filter::eq("symbol", a.symbol[0].as_str())),
        _ => filters.push(Filter::is_in("symbol", a.symbol.iter().map(String::as_str))),
    }
    for c in &a.conditions {
        filters.push(parse_condition(engine, c)?);
    }
    let (bars, s) = engine.aggregate(&filters, &buckets)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let names = [
        "symbol",
        "time",
        "trades",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "mean_price",
    ];
    let rows = bars.iter().map(|b| {
        vec![
            b.symbol.to_string(),
            output::fmt_ns(b.time),
            b.trades.to_string(),
            b.open.to_string(),
            b.high.to_string(),
            b.low.to_string(),
            b.close.to_string(),
            b.volume.to_string(),
            (b.price_sum / b.trades as f64).to_string(),
        ]
    });
    if !a.stats {
        match a.format {
            Format::Table => {
                let mut table = comfy_table::Table::new();
                table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
                table.set_header(names);
                for r in rows {
                    table.add_row(r);
                }
                write_out(&mut out, &table.to_string())?;
            }
            Format::Csv => {
                write_out(&mut out, &names.join(","))?;
                for r in rows {
                    write_out(&mut out, &r.join(","))?;
                }
            }
            Format::Json => {
                for b in &bars {
                    let num = |v: f64| {
                        serde_json::Number::from_f64(v)
                            .map(serde_json::Value::Number)
                            .unwrap_or(serde_json::Value::Null)
                    };
                    let v = serde_json::json!({
                        "symbol": &*b.symbol,
                        "time": output::fmt_ns(b.time),
                        "trades": b.trades,
                        "open": num(b.open),
                        "high": num(b.high),
                        "low": num(b.low),
                        "close": num(b.close),
                        "volume": num(b.volume),
                        "mean_price": num(b.price_sum / b.trades as f64),
                    });
                    write_out(&mut out, &v.to_string())?;
                }
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(Error::io("<stdout>", e))
        }
        _ => {}
    }
    eprintln!(
        "{} groups from {} hot + {} warm + {} cold rows; hot {:.2} ms, warm {:.2} ms on {}, cold {:.2} ms ({} of {} files read); {:.2} ms in all",
        s.groups,
        s.hot_rows,
        s.warm_rows,
        s.cold_rows,
        s.hot_ms,
        s.warm_ms,
        s.warm_device,
        s.cold_ms,
        s.cold.files_total - s.cold.files_pruned,
        s.cold.files_total,
        s.total_ms
    );
    Ok(())
}

fn write_out(out: &mut impl Write, line: &str) -> Result<()> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) ends the output quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

fn stats_line(rows: u64, s: &QueryStats) -> String {
    format!(
        "{rows} rows in {:.2} ms (hot {}, warm {}, cold {}); cold: {} of {} files pruned, {} of {} row groups pruned, {} of {} pages pruned, {} bytes read ({} more to check files whole the first time, in {:.2} ms; {} bytes of pages checked in {:.2} ms)",
        s.elapsed.as_secs_f64() * 1e3,
        s.hot_rows,
        s.warm_rows,
        s.cold_rows,
        s.cold.files_pruned,
        s.cold.files_total,
        s.cold.row_groups_pruned,
        s.cold.row_groups_total,
        s.cold.pages_pruned,
        s.cold.pages_total,
        s.cold.bytes_read,
        s.cold.bytes_verified,
        s.cold.verify_ms,
        s.cold.bytes_checked,
        s.cold.check_ms
    ) + &if s.hot_batches_skipped + s.cold.topk_files_skipped + s.cold.topk_row_groups_skipped > 0 {
        format!(
            "; top-K skipped {} hot batches, {} files and {} row groups by their statistics",
            s.hot_batches_skipped, s.cold.topk_files_skipped, s.cold.topk_row_groups_skipped
        )
    } else {
        String::new()
    }
}

fn jobs_cmd(config: Config, command: JobCommand) -> Result<()> {
    // Reading and changing job rows needs only the catalog, so status and
    // cancel work while another process runs the job.
    let catalog_only = || -> Result<catalog::Catalog> {
        std::fs::create_dir_all(&config.storage.base_path)
            .map_err(|e| Error::io(&config.storage.base_path, e))?;
        catalog::Catalog::open(&config.catalog_path())
    };
    // Reading job rows changes nothing, not even a missing catalog.
    let catalog_to_read = || -> Result<catalog::Catalog> {
        let path = config.catalog_path();
        if path.exists() {
            catalog::Catalog::open_read_only(&path)
        } else {
            catalog::Catalog::open_in_memory()
        }
    };
    let show = |j: &catalog::Job| {
        let progress = match j.records_total {
            Some(t) if t > 0 => format!(
                "{}/{} ({:.1}%)",
                j.records_done,
                t,
                100.0 * j.records_done as f64 / t as f64
            ),
            _ => format!("{}", j.records_done),
        };
        println!(
            "job {}: {} {} records {}{}",
            j.id,
            j.state,
            j.source,
            progress,
            j.error
                .as_deref()
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        );
    };
    match command {
        JobCommand::Create { source } => {
            jobs::Source::parse(&source)?;
            let id = catalog_only()?.create_job(&source)?;
            println!("created job {id} ({source}); run it with: 07_gpu_tiered jobs start {id}");
        }
        JobCommand::Start { id, batch_size } => {
            let engine = open(config)?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} records {per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let result = jobs::run(&engine, id, batch_size, |done, total| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            });
            bar.finish_and_clear();
            match result {
                Ok(n) => println!("job {id}: done, {n} records"),
                Err(Error::Cancelled(_)) => println!("job {id}: cancelled"),
                Err(e) => return Err(e),
            }
            print_tiers(&engine.stats()?);
        }
        JobCommand::Status { id } => show(&catalog_to_read()?.job(id)?),
        JobCommand::Cancel { id } => show(&catalog_only()?.cancel_job(id)?),
        JobCommand::List => {
            let jobs = catalog_to_read()?.jobs()?;
            if jobs.is_empty() {
                println!("no jobs");
            }
            jobs.iter().for_each(show);
        }
        JobCommand::Cleanup { older_than_hours } => {
            let n = catalog_only()?.cleanup_jobs(older_than_hours)?;
            println!("deleted {n} finished jobs older than {older_than_hours} hours");
        }
    }
    Ok(())
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

fn print_tiers(s: &TierStats) {
    let t = s.total();
    println!("   Total: {t} records");
    println!(
        "   Hot tier:  {:>12} records ({:.1}%)",
        s.hot_records,
        pct(s.hot_records, t)
    );
    println!(
        "   Warm tier: {:>12} records ({:.1}%) on {}, {:.1} MB",
        s.warm_records,
        pct(s.warm_records, t),
        s.warm_device,
        s.warm_bytes as f64 / 1e6
    );
    if let Some(m) = &s.warm_device_memory {
        println!("              GPU memory: {m}");
    }
    println!(
        "   Cold tier: {:>12} records ({:.1}%) in {} Parquet files, {:.1} MB",
        s.cold_records,
        pct(s.cold_records, t),
        s.cold_files,
        s.cold_bytes as f64 / 1e6
    );
}

/// Resident memory of this process in MB (Linux; 0 elsewhere).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0 / 1e6)
        .unwrap_or(0.0)
}

fn demo(mut config: Config, d: &DemoArgs) -> Result<()> {
    if d.batch_size == 0 || d.writers == 0 {
        return Err(Error::InvalidArgument(
            "--batch-size and --writers must be at least 1".into(),
        ));
    }
    let base = config.storage.base_path.clone();
    if !d.keep && base.exists() {
        let ours = base.join("catalog.sqlite").exists() || base.join("wal").exists();
        let empty = std::fs::read_dir(&base)
            .map(|mut r| r.next().is_none())
            .unwrap_or(false);
        if !ours && !empty {
            return Err(Error::InvalidArgument(format!(
                "{} exists and does not look like a store; choose another --storage",
                base.display()
            )));
        }
        std::fs::remove_dir_all(&base).map_err(|e| Error::io(&base, e))?;
    }
    // Warm bytes per record: the columns plus 4 bytes of symbol grouping.
    let per_row = if config.mode != Some(Mode::Trading) {
        32.0
    } else {
        52.0
    };
    let warm_mb = d.warm_mb.unwrap_or_else(|| {
        let data_mb = d.records as f64 * per_row / 1_048_576.0;
        (data_mb / 3.0).max(1.0)
    });
    config.warm_tier.max_memory_mb = warm_mb;
    config.check()?;
    let engine = open(config)?;
    let stats0 = engine.stats()?;
    println!(
        "Phase 07 demo: {} records, {} mode, batches of {}, {} writer threads",
        d.records,
        engine.mode().name(),
        d.batch_size,
        d.writers
    );
    println!(
        "  store {}; hot tier {} records, warm tier {:.1} MB on {}; WAL fsync {}",
        base.display(),
        engine.config().hot_tier.max_records,
        warm_mb,
        stats0.warm_device,
        if engine.config().wal.fsync {
            "on"
        } else {
            "OFF"
        }
    );
    println!("\nINGESTION");
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(d.writers * 2);
    let rx = std::sync::Mutex::new(rx);
    let ingested = std::sync::atomic::AtomicU64::new(0);
    let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let bar = ProgressBar::new(d.records);
    bar.set_style(
        ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut gen = Generator::new(engine.mode(), 42, d.symbols);
    let fsyncs0 = engine.wal_stats().fsyncs;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        let migrator = s.spawn(|| engine.run_migrator(&stop));
        let mut writers = Vec::new();
        for _ in 0..d.writers {
            writers.push(s.spawn(|| loop {
                let batch = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok(batch) = batch else { return };
                match engine.ingest(&batch) {
                    Ok(_) => {
                        ingested.fetch_add(
                            batch.num_rows() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            }));
        }
        let mut sent = 0u64;
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        while sent < d.records {
            let n = (d.records - sent).min(d.batch_size as u64) as usize;
            let batch = gen.batch(n)?;
            if tx.send(batch).is_err() {
                break;
            }
            sent += n as u64;
            if last_draw.elapsed() >= Duration::from_millis(200) {
                last_draw = Instant::now();
                let done = ingested.load(std::sync::atomic::Ordering::Relaxed);
                let el = started.elapsed().as_secs_f64();
                let rate = done as f64 / el.max(1e-9);
                let st = engine.stats()?;
                let eta = (d.records - done) as f64 / rate.max(1.0);
                bar.set_message(format!(
                    "{done}/{} records ({:.1}%) | {:.0} rec/s | Hot: {} | Warm: {} | Cold: {} | RAM: {:.0} MB | {} | ETA: {:.1} s",
                    d.records,
                    pct(done, d.records),
                    rate,
                    st.hot_records,
                    st.warm_records,
                    st.cold_records,
                    rss_mb(),
                    st.warm_device,
                    eta
                ));
                bar.tick();
            }
        }
        drop(tx);
        for w in writers {
            let _ = w.join();
        }
        // The writers are done; stop the migrator and surface its error.
        stop.store(true, std::sync::atomic::Ordering::Release);
        match migrator.join() {
            Ok(r) => r,
            Err(_) => Err(Error::InvalidArgument(
                "the migration thread panicked".into(),
            )),
        }
    })?;
    bar.finish_and_clear();
    if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let st = engine.stats()?;
    let fsyncs = engine.wal_stats().fsyncs - fsyncs0;
    let expected = stats0.total() + d.records;
    println!(
        "  {} records in {:.2} s = {:.0} records/s; {} fsyncs ({:.0} records per fsync); {} migrations to Parquet",
        d.records,
        elapsed,
        d.records as f64 / elapsed,
        fsyncs,
        d.records as f64 / fsyncs.max(1) as f64,
        st.migrations
    );
    println!(
        "\nINGESTION COMPLETE ({})",
        if st.total() == expected {
            "exact match".to_string()
        } else {
            format!("MISMATCH: expected {expected}")
        }
    );
    print_tiers(&st);
    println!("   RAM: {:.0} MB", rss_mb());
    if st.total() != expected {
        return Err(Error::InvalidArgument(format!(
            "tier counts add up to {}, expected {expected}",
            st.total()
        )));
    }
    if !d.no_queries {
        println!("\nQUERIES");
        demo_queries(&engine, &gen)?;
    }
    Ok(())
}

fn demo_queries(engine: &Engine, gen: &Generator) -> Result<()> {
    let end = gen.now();
    let start = tiered::gen::START_NS;
    let span = end - start;
    let sym = gen.symbol(0);
    let mut queries: Vec<(String, Query)> = vec![
        (
            format!("symbol = {sym} (count)"),
            Query {
                filters: vec![Filter::eq("symbol", sym.as_str())],
                columns: Some(vec!["timestamp".into()]),
                ..Query::default()
            },
        ),
        (
            format!("symbol = {sym}, first 1% of time"),
            Query {
                filters: vec![
                    Filter::eq("symbol", sym.as_str()),
                    Filter::range(
                        "timestamp",
                        Some(Scalar::Int(start)),
                        Some(Scalar::Int(start + span / 100)),
                    ),
                ],
                ..Query::default()
            },
        ),
        (
            "3 symbols IN, last hour, newest 100".into(),
            Query {
                filters: vec![
                    Filter::is_in("symbol", [gen.symbol(1), gen.symbol(2), gen.symbol(3)]),
                    Filter::range(
                        "timestamp",
                        Some(Scalar::Int(end - 3_600_000_000_000)),
                        None,
                    ),
                ],
                sort: Some(Sort {
                    column: "timestamp".into(),
                    descending: true,
                }),
                limit: Some(100),
                ..Query::default()
            },
        ),
        (
            "top 1000 by price (all data, k-way merge)".into(),
            Query {
                sort: Some(Sort {
                    column: "price".into(),
                    descending: true,
                }),
                limit: Some(1000),
                columns: Some(vec!["symbol".into(), "price".into()]),
                ..Query::default()
            },
        ),
        (
            "volume >= 9.99 (full scan, filter)".into(),
            Query {
                filters: vec![Filter::range("volume", Some(Scalar::Float(9.99)), None)],
                ..Query::default()
            },
        ),
        (
            "first 10 rows, no filter (early stop)".into(),
            Query {
                limit: Some(10),
                ..Query::default()
            },
        ),
    ];
    if engine.mode() == Mode::Trading {
        queries.push((
            "side = buy AND exchange IN (kraken, binance)".into(),
            Query {
                filters: vec![
                    Filter::eq("side", "buy"),
                    Filter::is_in("exchange", ["kraken", "binance"]),
                ],
                columns: Some(vec!["trade_id".into()]),
                ..Query::default()
            },
        ));
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "query",
        "rows",
        "hot",
        "warm",
        "cold",
        "files pruned",
        "row groups pruned",
        "pages pruned",
        "cold bytes read",
        "ms",
    ]);
    for (name, q) in &queries {
        let (_batch, s) = engine.query(q)?.collect_batch()?;
        table.add_row(vec![
            name.clone(),
            s.rows_out.to_string(),
            s.hot_rows.to_string(),
            s.warm_rows.to_string(),
            s.cold_rows.to_string(),
            format!("{}/{}", s.cold.files_pruned, s.cold.files_total),
            format!("{}/{}", s.cold.row_groups_pruned, s.cold.row_groups_total),
            format!("{}/{}", s.cold.pages_pruned, s.cold.pages_total),
            s.cold.bytes_read.to_string(),
            format!("{:.2}", s.elapsed.as_secs_f64() * 1e3),
        ]);
    }
    println!("{table}");
    // Aggregates: each tier reduces its own rows, the warm tier where its
    // columns live.
    let aggregates = tiered::bench::sample_aggregates(&sym, start, end)?;
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "aggregate",
        "groups",
        "hot",
        "warm",
        "cold",
        "warm on",
        "warm ms",
        "ms",
    ]);
    for (name, filters, buckets) in &aggregates {
        let (_, s) = engine.aggregate(filters, buckets)?;
        table.add_row(vec![
            name.clone(),
            s.groups.to_string(),
            s.hot_rows.to_string(),
            s.warm_rows.to_string(),
            s.cold_rows.to_string(),
            s.warm_device.clone(),
            format!("{:.2}", s.warm_ms),
            format!("{:.2}", s.total_ms),
        ]);
    }
    println!("{table}");
    // How close does pruning come to the minimum? A query for one symbol's
    // 1% of the cold data, bytes read vs. the row groups holding matches.
    let preds = tiered::filter::bind_all(&[Filter::eq("symbol", sym.as_str())], engine.schema())?;
    let files = engine.with_catalog(|c| c.files())?;
    let mut minimum = 0u64;
    let mut scan = ScanStats::default();
    for f in &files {
        if !cold::file_may_match(f, &preds) {
            continue;
        }
        let path = engine.config().cold_dir().join(&f.path);
        minimum += cold::matching_row_group_bytes(&path, &preds)?;
        let all: Vec<usize> = (0..engine.schema().fields().len()).collect();
        cold::scan_file(
            &path,
            f,
            engine.schema(),
            &preds,
            &all,
            8192,
            &mut scan,
            None,
            |_| Ok(true),
        )?;
    }
    let cold_rows: u64 = files.iter().map(|f| f.rows).sum();
    if cold_rows > 0 {
        println!(
            "  cold pruning, symbol = {sym} ({:.2}% of the cold rows): read {} bytes; the row groups holding the matches are {} bytes ({:.2}x)",
            pct(scan.rows_matched, cold_rows),
            scan.bytes_read,
            minimum,
            scan.bytes_read as f64 / minimum.max(1) as f64
        );
    }
    Ok(())
}

fn crash_child(config: Config, first_batch: u64, rows: usize) -> Result<()> {
    let engine = Engine::open(config)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut gen = Generator::new(Mode::Trading, 1, 7);
    for n in first_batch.. {
        let batch = gen.batch(rows)?;
        // Stamp the batch's trade ids with its number so that the parent
        // can tell batches apart: ids n*rows .. (n+1)*rows.
        let ids = arrow_array::Int64Array::from_iter_values(
            (0..rows as i64).map(|i| n as i64 * rows as i64 + i),
        );
        let mut cols = batch.columns().to_vec();
        cols[6] = std::sync::Arc::new(ids);
        let batch = RecordBatch::try_new(batch.schema(), cols)
            .map_err(|e| Error::arrow("stamping a batch", e))?;
        writeln!(out, "begin {n}").map_err(|e| Error::io("<stdout>", e))?;
        out.flush().map_err(|e| Error::io("<stdout>", e))?;
        engine.ingest(&batch)?;
        writeln!(out, "ack {n}").map_err(|e| Error::io("<stdout>", e))?;
        out.flush().map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(())
}

fn serve(engine: Engine, addr: &str, limits: &tiered::server::Limits) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))?;
    let engine = std::sync::Arc::new(engine);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(addr, e))?;
        let local = listener.local_addr().map_err(|e| Error::io(addr, e))?;
        let stop = shutdown_signal().map_err(|e| Error::io("<signal handlers>", e))?;
        let s = engine.stats()?;
        println!(
            "listening on http://{local} ({} records: hot {}, warm {} on {}, cold {}); Ctrl-C stops",
            s.total(),
            s.hot_records,
            s.warm_records,
            s.warm_device,
            s.cold_records
        );
        let _ = std::io::stdout().flush();
        tiered::server::serve(listener, engine.clone(), limits, stop)
            .await
            .map_err(|e| Error::io(addr, e))
    })?;
    // In-flight requests have finished: every acknowledged write is in the
    // fsynced WAL. Stop running jobs before their next batch.
    let jobs = engine.with_catalog(|c| c.jobs())?;
    for j in jobs
        .iter()
        .filter(|j| j.state == "running" || j.state == "pending")
    {
        engine.with_catalog(|c| c.cancel_job(j.id))?;
    }
    runtime.shutdown_timeout(limits.shutdown_grace);
    let s = engine.stats()?;
    println!(
        "shut down: {} records durable ({} fsyncs this run), WAL {} bytes",
        s.total(),
        s.wal_fsyncs,
        s.wal_bytes
    );
    Ok(())
}

/// The signals that stop the server, registered at once: a signal that
/// arrives after the address is announced but before the accept loop first
/// polls must not take the default action (killing the process without a
/// clean shutdown).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = term.recv() => {},
        }
        println!("shutting down: finishing requests in flight");
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn loadtest(l: &LoadArgs) -> Result<()> {
    if l.clients == 0 || l.requests == 0 || l.batch == 0 {
        return Err(Error::InvalidArgument(
            "--clients, --requests and --batch must be at least 1".into(),
        ));
    }
    let start = time_arg("--start", &l.start)?;
    let span = squeeze::time::parse_duration(&l.span)
        .map_err(|e| Error::InvalidArgument(format!("--span: {e}")))?;
    let paths: Vec<String> = l
        .symbol
        .iter()
        .map(|sym| {
            format!(
                "/timeseries/{}?start={}&end={}&frequency={}",
                tiered::http::encode_segment(sym),
                start,
                start + span,
                l.frequency
            )
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let hits = std::sync::atomic::AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(l.max_seconds);
    let started = Instant::now();
    let results: Vec<Result<(Vec<f64>, u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..l.clients)
            .map(|c| {
                let (paths, next, hits) = (&paths, &next, &hits);
                s.spawn(move || -> Result<(Vec<f64>, u64, u64)> {
                    let mut conn =
                        tiered::http::Conn::open(&l.addr).map_err(|e| Error::io(&l.addr, e))?;
                    let mut lat = Vec::new();
                    let (mut records, mut errors) = (0u64, 0u64);
                    let mut gen = Generator::new(l.mode, 1000 + c as u64, 100).starting_at(start);
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= l.requests || Instant::now() >= deadline {
                            break;
                        }
                        let (method, p, ct, body): (&str, &str, &str, Vec<u8>) = match l.kind {
                            LoadKind::Timeseries => (
                                "GET",
                                paths[i % paths.len()].as_str(),
                                "text/plain",
                                Vec::new(),
                            ),
                            LoadKind::IngestArrow => {
                                let b = gen.batch(l.batch)?;
                                let mut w = arrow_ipc::writer::StreamWriter::try_new(
                                    Vec::new(),
                                    &b.schema(),
                                )
                                .map_err(|e| Error::arrow("encoding a request", e))?;
                                w.write(&b)
                                    .map_err(|e| Error::arrow("encoding a request", e))?;
                                w.finish()
                                    .map_err(|e| Error::arrow("encoding a request", e))?;
                                let body = w
                                    .into_inner()
                                    .map_err(|e| Error::arrow("encoding a request", e))?;
                                ("POST", "/ingest", tiered::server::ARROW_STREAM, body)
                            }
                            LoadKind::IngestJson => {
                                let b = gen.batch(l.batch)?;
                                let rows: Vec<serde_json::Value> = (0..b.num_rows())
                                    .map(|r| {
                                        let mut o = output::json_row(&b, r);
                                        // Timestamps as nanoseconds, as a feed would send them.
                                        o.insert(
                                            "timestamp".into(),
                                            b.column(0)
                                                .as_primitive::<TimestampNanosecondType>()
                                                .value(r)
                                                .into(),
                                        );
                                        serde_json::Value::Object(o)
                                    })
                                    .collect();
                                let body = serde_json::to_vec(&rows).unwrap_or_default();
                                ("POST", "/ingest", "application/json", body)
                            }
                        };
                        let t = Instant::now();
                        let resp = conn
                            .request(method, p, &[("Content-Type", ct)], &body)
                            .map_err(|e| Error::io(&l.addr, e))?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        if resp.status != 200 {
                            errors += 1;
                        } else if matches!(l.kind, LoadKind::Timeseries) {
                            if resp.header("x-answer-cache") == Some("hit") {
                                hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        } else {
                            records += l.batch as u64;
                        }
                    }
                    Ok((lat, records, errors))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::InvalidArgument("a client thread panicked".into()))
                })
            })
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (mut lat, mut records, mut errors) = (Vec::new(), 0u64, 0u64);
    for r in results {
        let (l, n, e) = r?;
        lat.extend(l);
        records += n;
        errors += e;
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "{} requests from {} clients in {:.2} s ({:.0} requests/s), {} errors",
        lat.len(),
        l.clients,
        elapsed,
        lat.len() as f64 / elapsed,
        errors
    );
    println!(
        "latency ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    if matches!(l.kind, LoadKind::Timeseries) {
        println!(
            "answered from the server's cache: {} of {}",
            hits.load(std::sync::atomic::Ordering::Relaxed),
            lat.len()
        );
    }
    if records > 0 {
        println!(
            "ingested {records} records: {:.0} records/s",
            records as f64 / elapsed
        );
    }
    Ok(())
}
