//! `loadtest`: load on a running server, time-series requests or ingest.

use std::time::{Duration, Instant};

use clap::ValueEnum;

use tiered::error::{Error, Result};
use tiered::gen::Generator;
use tiered::output;
use tiered::schema::Mode;

use crate::common::percentile;
use crate::common::time_arg;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The server, host:port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    #[arg(long, value_enum, default_value = "timeseries")]
    pub kind: LoadKind,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 3200)]
    pub requests: usize,
    /// Stop after this many seconds even if requests are left.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
    /// timeseries: the symbol, or several comma-separated, asked for in turn.
    #[arg(long, default_value = "BTC/USD", value_delimiter = ',')]
    pub symbol: Vec<String>,
    /// timeseries: start of the range asked for; ingest: time of the first
    /// generated trade.
    #[arg(long, default_value = "2024-01-01T00:00:00Z")]
    pub start: String,
    /// timeseries: length of the range.
    #[arg(long, default_value = "1d")]
    pub span: String,
    /// timeseries: bar frequency.
    #[arg(long, default_value = "1min")]
    pub frequency: String,
    /// ingest: records per request body.
    #[arg(long, default_value_t = 100_000)]
    pub batch: usize,
    /// ingest: columns of the records sent.
    #[arg(long, value_enum, default_value = "simple")]
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LoadKind {
    Timeseries,
    IngestArrow,
    IngestJson,
}

pub fn run(l: &LoadArgs) -> Result<()> {
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
                tiered::api::client::encode_segment(sym),
                start,
                start + span,
                l.frequency
            )
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let hits = std::sync::atomic::AtomicU64::new(0);
    let limit = Duration::try_from_secs_f64(l.max_seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--max-seconds must be a positive number of seconds, got {}",
                l.max_seconds
            ))
        })?;
    let deadline = Instant::now()
        .checked_add(limit)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
    let started = Instant::now();
    let results: Vec<Result<(Vec<f64>, u64, u64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..l.clients)
            .map(|c| {
                let (paths, next, hits) = (&paths, &next, &hits);
                s.spawn(move || -> Result<(Vec<f64>, u64, u64)> {
                    let mut conn = tiered::api::client::Conn::open(&l.addr)
                        .map_err(|e| Error::io(&l.addr, e))?;
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
                                ("POST", "/ingest", tiered::api::server::ARROW_STREAM, body)
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
