//! The HTTP API (`07_gpu_tiered serve`): ingest, query, OHLCV time series,
//! stats, a live feed (server-sent events or a WebSocket), jobs and data
//! quality, over axum.
//!
//! The engine is synchronous (an acknowledged write has been fsynced), so
//! handlers run it on tokio's blocking pool. Bad input answers 400 with a
//! JSON body `{"error": …, "field": …}`; an oversized body 413; an unknown
//! job or route 404; a method an endpoint does not take 405 (JSON too, with
//! `Allow`); a request that runs past the timeout 408; an ingest
//! that finds no free slot in time 503 with `Retry-After`; a handler that
//! panics 500 (and the server goes on). No SQL is built from request data:
//! the catalog binds every value.
//!
//! What one client can hold is bounded ([`Limits`], the configuration's
//! `server` section): a connection must send its request head within
//! `header_read_timeout_s` and there are at most `max_connections` of them
//! ([`serve`]); an ingest body is read only once one of
//! `max_concurrent_ingests` slots is free, at most `max_body_mb` of it, and
//! is decoded without copies that grow with its text ([`crate::ingest::decode`]);
//! other bodies are at most [`MAX_SMALL_BODY`]. Jobs read files only from
//! the import directory ([`crate::ingest::jobs::confine`]). On shutdown the live
//! feed ends, so that requests in flight can finish and the process exit.
//!
//! An ingest answers for its own records: 200 once they are durable (even
//! if a migration that follows fails: that is logged, counted in `/stats`,
//! shown by `/health` as `degraded`, and retried), an error only when they
//! were not stored. With an `Idempotency-Key` header a batch sent again is
//! answered with the first answer (and `Idempotent-Replayed: true`) instead
//! of being stored twice; the same key with another batch is a 422
//! ([`crate::store::idempotency`]).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch, Semaphore};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::Error;
use crate::ingest::decode::{BodyError, Format};
use crate::read::query::Query;
use crate::schema::Mode;

/// Media type of Arrow IPC streams.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// Media type of newline-delimited JSON.
pub const NDJSON: &str = "application/x-ndjson";
/// Largest `limit` a query may ask for.
pub const MAX_LIMIT: usize = 10_000_000;
/// Most bars one time-series request may produce.
pub const MAX_BARS: i64 = 100_000;
/// Largest body of a request other than `/ingest` (a query, a job).
pub const MAX_SMALL_BODY: usize = 1 << 20;
/// The request header that names an ingest's batch for retries.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header set on an ingest answered from an earlier one.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Server limits: the configuration's `server` section, in the units the
/// server uses.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest `/ingest` body.
    pub max_body_bytes: usize,
    /// Longest a request may take (408 after).
    pub timeout: Duration,
    /// Longest a connection may take to send a request head.
    pub header_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Ingests read and decoded at once.
    pub max_concurrent_ingests: usize,
    /// How long an ingest waits for a slot (503 after).
    pub ingest_wait: Duration,
    /// Slowest an ingest body may arrive after its first second, in bytes
    /// per second (0: no minimum).
    pub min_body_rate: f64,
    /// Live feeds open at once (also at most half the connections).
    pub max_streams: usize,
    /// How long requests in flight may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Jobs running at once.
    pub max_running_jobs: usize,
    /// Largest batch a job may ask for.
    pub max_job_batch_size: usize,
    /// Most records a generator job may ask for.
    pub max_job_records: u64,
}

impl Limits {
    /// The limits `config.server` sets.
    pub fn from_config(config: &Config) -> Limits {
        let s = &config.server;
        Limits {
            max_body_bytes: (s.max_body_mb * 1_048_576.0) as usize,
            timeout: Duration::from_secs_f64(s.request_timeout_s),
            header_read_timeout: Duration::from_secs_f64(s.header_read_timeout_s),
            max_connections: s.max_connections,
            max_concurrent_ingests: s.max_concurrent_ingests,
            ingest_wait: Duration::from_secs_f64(s.ingest_wait_s),
            min_body_rate: s.min_body_rate_kbs * 1000.0,
            max_streams: s.max_streams,
            shutdown_grace: Duration::from_secs_f64(s.shutdown_grace_s),
            max_running_jobs: s.max_running_jobs,
            max_job_batch_size: s.max_job_batch_size,
            max_job_records: s.max_job_records,
        }
    }

    /// Live feeds open at once: `max_streams`, and at most half of
    /// `max_connections`, so that the other half stays for `/health` and
    /// the rest.
    pub fn streams_in_effect(&self) -> usize {
        self.max_streams.min(self.max_connections / 2)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&Config::default())
    }
}

/// Tells long-lived responses (the live feed) that the server is stopping.
/// Cloning shares it; [`Shutdown::trigger`] reaches every clone.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    /// Starts the shutdown: every [`Shutdown::wait`] returns.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the shutdown has started.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this only returns once triggered.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    feed: broadcast::Sender<Arc<FeedBatch>>,
    shutdown: Shutdown,
    ingests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    jobs: Arc<Semaphore>,
    limits: Arc<Limits>,
    /// OHLCV computations: identical requests waiting together share one
    /// ([`crate::api::coalesce`]).
    bars: Arc<BarsCoalescer>,
}

type BarsCoalescer = crate::api::coalesce::Coalescer<crate::store::cache::Key, ApiResult<Arc<str>>>;

/// An error answer: status and a JSON body naming the field when there is one.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }

    fn bad(field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: field.map(str::to_string),
            ..ApiError::new(StatusCode::BAD_REQUEST, message)
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Schema(_) | Error::InvalidArgument(_) | Error::Config(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Cancelled(_) => StatusCode::CONFLICT,
            Error::Busy { retry_after_s, .. } => {
                return ApiError {
                    retry_after_s: Some(*retry_after_s),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
            }
            Error::KeyConflict(_) => {
                return ApiError {
                    field: Some("Idempotency-Key".into()),
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                }
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::bad(e.field.as_deref(), e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Requests whose handler panicked since the process started (each was
/// answered 500; the server went on).
pub fn handler_panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

fn panicked() -> ApiError {
    PANICS.fetch_add(1, Ordering::Relaxed);
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: the request failed (the server goes on)",
    )
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(panicked()),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )),
    }
}

/// Wraps every route of `router` so that a handler that panics is answered
/// 500 and counted ([`handler_panics`]), and the connection and the server
/// go on. (Bodies that fail to decode are 400s well before this.)
pub fn catch_panics(router: Router) -> Router {
    router.layer(middleware::from_fn(|req: Request, next: Next| async move {
        match AssertUnwindSafe(next.run(req)).catch_unwind().await {
            Ok(response) => response,
            Err(_) => panicked().into_response(),
        }
    }))
}

/// The router, for tests: [`router_with`] and a shutdown nobody triggers.
pub fn router(engine: Arc<Engine>, limits: &Limits) -> Router {
    router_with(engine, limits, Shutdown::default())
}

/// The router of [`serve`]: the live feed ends when `shutdown` is triggered.
pub fn router_with(engine: Arc<Engine>, limits: &Limits, shutdown: Shutdown) -> Router {
    let (feed, _) = broadcast::channel(FEED_BATCHES);
    let publisher = feed.clone();
    engine.set_observer(Some(Arc::new(move |b: &RecordBatch| {
        // No subscriber is fine: the feed is best effort.
        if publisher.receiver_count() > 0 {
            let _ = publisher.send(Arc::new(FeedBatch::new(b.clone())));
        }
    })));
    let state = AppState {
        engine,
        feed,
        shutdown,
        ingests: Arc::new(Semaphore::new(limits.max_concurrent_ingests.max(1))),
        streams: Arc::new(Semaphore::new(limits.streams_in_effect())),
        jobs: Arc::new(Semaphore::new(limits.max_running_jobs.max(1))),
        limits: Arc::new(limits.clone()),
        // As many bar computations at once as there are cores: more only
        // share the cores, and requests that wait can be coalesced.
        bars: Arc::new(BarsCoalescer::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
        )),
    };
    let timeout = limits.timeout;
    // Requests that only read are cut off at the timeout (408). Those that
    // write (`/ingest`, `POST /jobs`, `DELETE /jobs/{id}`) bound their own
    // waiting and body reading, and once they store something run to the
    // end: an answer never says "failed" for what was stored.
    let router = Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/query", post(query))
        .route("/timeseries/{symbol}", get(timeseries))
        .route("/stream", get(stream))
        // GET alone: `get` would route HEAD too, which cannot upgrade.
        .route(
            "/ws",
            axum::routing::on(axum::routing::MethodFilter::GET, websocket),
        )
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/quality/{symbol}", get(quality))
        .route("/bars/{symbol}", get(latest_bars))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("the request took longer than {} s", timeout.as_secs_f64()),
                    )
                    .into_response(),
                }
            },
        ))
        .route("/ingest", post(ingest))
        .route("/jobs", post(create_job))
        .route("/jobs/{id}", delete(cancel_job))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint (see /openapi.json)",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see /openapi.json)",
            )
        })
        // `/ingest` and `POST /jobs` read their bodies themselves.
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY))
        .with_state(state);
    catch_panics(router)
}

/// Serves the API on `listener` until `signal` completes, then stops
/// accepting, ends the live feed, answers 503 to ingests still reading
/// their bodies, lets requests in flight finish (for at most
/// `shutdown_grace`) and returns.
///
/// Each connection is HTTP/1.1 (hyper) with a header-read timeout; at most
/// `limits.max_connections` are open, and one more is answered `503` with
/// `Retry-After: 1` and closed at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    limits: &Limits,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    // Jobs read from here; an operator drops files in. (The command line
    // checked it first: crate::ingest::jobs::check_import_dir.)
    let _ = std::fs::create_dir_all(engine.config().import_dir());
    let limits = &Limits {
        max_connections: connection_budget(limits.max_connections),
        ..limits.clone()
    };
    let shutdown = Shutdown::default();
    // Moves between tiers that failed are tried again even when no write
    // comes to trigger them (the engine keeps the backoff).
    let retrier = {
        let engine = engine.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait() => return,
                }
                if engine.move_status().degraded() {
                    let engine = engine.clone();
                    let _ = tokio::task::spawn_blocking(move || engine.retry_moves()).await;
                }
            }
        })
    };
    let app = router_with(engine, limits, shutdown.clone());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut signal = std::pin::pin!(signal);
    loop {
        let stream = tokio::select! {
            _ = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, most likely: let connections
                    // close before accepting more.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: say so without reading the request. The socket buffer
            // of a new connection is empty, so this write does not block.
            let _ = stream.try_write(FULL_RESPONSE.as_bytes());
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each request carries the slot: a WebSocket keeps it once the
        // connection below has handed its socket over and ended.
        let slot = ConnectionSlot(Arc::new(slot));
        let for_requests = slot.clone();
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(for_requests.clone());
                req
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = shutdown.wait() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    shutdown.trigger();
    let _ = retrier.await;
    // Every connection gives its slot back when it closes. Bodies still
    // being read were answered 503 at the trigger; what is being stored
    // finishes, within the grace.
    let grace = limits
        .shutdown_grace
        .min(limits.timeout + limits.header_read_timeout);
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    Ok(())
}

/// Open files kept for the store (WAL segments, Parquet files, the catalog)
/// and for answering 503 beyond the connection cap.
const RESERVED_FILES: u64 = 64;

/// At most `wanted` connections, and fewer if the process may not open
/// that many files: past the open-file limit `accept` fails, and nothing,
/// not even `/health`, gets in. The soft limit is raised to the hard one
/// first (as Go's runtime does at start); the budget is what that leaves
/// after 64 files kept for the store.
pub fn connection_budget(wanted: usize) -> usize {
    let limit = open_file_limit().unwrap_or(u64::MAX);
    let budget = limit.saturating_sub(RESERVED_FILES).max(1);
    wanted.clamp(1, usize::try_from(budget).unwrap_or(usize::MAX))
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    Some(lim.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// The answer to a connection beyond `max_connections`.
const FULL_RESPONSE: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 57\r\n\r\n{\"error\":\"too many connections (server.max_connections)\"}";

/// `ok`, or `degraded` while a move between tiers fails (every stored
/// record is readable and writes are accepted; the failure is retried):
/// 200 either way, with the failure when there is one.
async fn health(State(s): State<AppState>) -> Json<Value> {
    let device = s.engine.stats().map(|t| t.warm_device).unwrap_or_default();
    let moves = s.engine.move_status();
    if moves.degraded() {
        return Json(json!({ "status": "degraded", "device": device, "moves": moves }));
    }
    Json(json!({ "status": "ok", "device": device }))
}

async fn stats(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let engine = s.engine.clone();
    let limits = s.limits.clone();
    let bars = s.bars.stats();
    blocking(move || {
        let t = engine.stats()?;
        let a = engine.answers().stats();
        let files = engine.with_catalog(|c| c.files())?;
        let partitions: std::collections::BTreeSet<&str> =
            files.iter().map(|f| f.partition.as_str()).collect();
        let raw_per_record = match engine.mode() {
            Mode::Simple => 28.0,
            Mode::Trading => 48.0,
        };
        let ratio = if t.cold_bytes > 0 {
            t.cold_records as f64 * raw_per_record / t.cold_bytes as f64
        } else {
            0.0
        };
        Ok(Json(json!({
            "mode": engine.mode().name(),
            "device": t.warm_device,
            "tiers": {
                "hot": { "records": t.hot_records, "bytes": t.hot_bytes },
                "warm": { "records": t.warm_records, "bytes": t.warm_bytes },
                "cold": { "records": t.cold_records, "bytes": t.cold_bytes, "files": t.cold_files },
            },
            "total_records": t.total(),
            "wal": { "bytes": t.wal_bytes, "fsyncs": t.wal_fsyncs, "records_written": t.wal_records_written },
            "catalog": { "files": files.len(), "partitions": partitions.len(), "watermark_lsn": t.watermark_lsn },
            "compression_ratio": ratio,
            "migrations": t.migrations,
            "moves": engine.move_status(),
            "idempotency": engine.key_stats(),
            "answer_cache": {
                "entries": a.entries, "bytes": a.bytes, "hits": a.hits,
                "misses": a.misses, "invalidated": a.invalidated,
            },
            "bars": {
                "computed": bars.computed, "joined": bars.joined, "waiting": bars.waiting,
                "abandoned": bars.abandoned,
            },
            "server": {
                "max_connections": limits.max_connections,
                "max_concurrent_ingests": limits.max_concurrent_ingests,
                "max_body_bytes": limits.max_body_bytes,
                "max_streams": limits.streams_in_effect(),
                "max_running_jobs": limits.max_running_jobs,
                "handler_panics": handler_panics(),
                "decoder_panics": crate::ingest::decode::decoder_panics(),
            },
        })))
    })
    .await
}

// ---- ingest ----

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Reads a request's body, at most `limit` bytes, before `deadline` (the
/// request's timeout, for waiting and reading together) and at least at
/// `limits.min_body_rate` bytes per second after its first second; a body
/// still being read when the server shuts down is answered 503. Every
/// refusal says nothing was stored: nothing has been, yet.
async fn read_body(
    body: Body,
    limit: usize,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
    s: &AppState,
) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {limit} bytes (server.max_body_mb); nothing was stored"
            ),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let started = tokio::time::Instant::now();
    let rate = s.limits.min_body_rate;
    // One buffer, grown as chunks arrive; never more than `limit`.
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let mut chunks = body.into_data_stream();
    loop {
        // The body must have come this far by now: one second, then the
        // minimum rate for what has arrived.
        let slow = if rate > 0.0 {
            started + Duration::from_secs_f64(1.0 + (buf.len() as f64 + 1.0) / rate)
        } else {
            deadline
        };
        let until = deadline.min(slow);
        let next = tokio::select! {
            n = tokio::time::timeout_at(until, chunks.next()) => n,
            _ = s.shutdown.wait() => {
                return Err(ApiError {
                    retry_after_s: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the server is shutting down; the body was not read and nothing was stored; send it again",
                    )
                })
            }
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => {
                let why = if until < deadline {
                    format!(
                        "the body arrived slower than {} KB/s (server.min_body_rate_kbs): {} bytes in {:.1} s",
                        crate::config::fmt_num(rate / 1000.0),
                        buf.len(),
                        started.elapsed().as_secs_f64()
                    )
                } else {
                    format!(
                        "the body was not read within the request timeout ({} s)",
                        s.limits.timeout.as_secs_f64()
                    )
                };
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("{why}; nothing was stored; send it again"),
                ));
            }
        };
        let chunk = chunk.map_err(|e| {
            ApiError::bad(None, format!("reading the body: {e}; nothing was stored"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Reads `/ingest` bodies: waits for an ingest slot (503 with
/// `Retry-After` after `ingest_wait`), then reads at most `max_body_bytes`
/// (413 beyond; a declared `Content-Length` beyond is refused before
/// anything is read), at the minimum rate and within the request timeout
/// (408 otherwise), then decodes and stores on the blocking pool while
/// still holding the slot, so that at most `max_concurrent_ingests` bodies
/// are in memory however many clients send at once. Once the body is read
/// nothing cuts the request off: the answer says what was stored.
async fn ingest(State(s): State<AppState>, req: Request) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + s.limits.timeout;
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                ApiError::bad(
                    Some("Idempotency-Key"),
                    "an idempotency key is visible ASCII",
                )
            })?;
            crate::store::idempotency::check_key(text)
                .map_err(|e| ApiError::bad(Some("Idempotency-Key"), e.to_string()))?;
            Some(text.to_string())
        }
    };
    let format = match content_type(req.headers()).as_str() {
        ARROW_STREAM => Format::ArrowStream,
        "application/json" => Format::Json,
        NDJSON => Format::Ndjson,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?}: send application/json, {NDJSON} or {ARROW_STREAM}"
                ),
            ))
        }
    };
    let limit = s.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {limit} bytes (server.max_body_mb); nothing was stored"
            ),
        ));
    }
    let wait = s.limits.ingest_wait;
    let waited = tokio::time::timeout_at(
        deadline.min(tokio::time::Instant::now() + wait),
        s.ingests.clone().acquire_owned(),
    )
    .await;
    let slot = match waited {
        Ok(Ok(slot)) => slot,
        _ => {
            return Err(ApiError {
                retry_after_s: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                    "every ingest slot was busy for {} s (server.max_concurrent_ingests); nothing was stored; retry",
                    wait.as_secs_f64()
                ),
                )
            })
        }
    };
    let body = read_body(req.into_body(), limit, declared, deadline, &s).await?;
    let engine = s.engine.clone();
    // Not cut off from here on (no timeout, and the work runs on the
    // blocking pool even if the client goes away): the records are stored
    // or not, and the answer says which.
    blocking(move || {
        let _slot = slot;
        let batch = crate::ingest::decode::decode(engine.mode(), format, body)?;
        if batch.num_rows() == 0 {
            return Ok(Json(json!({ "accepted": 0 })).into_response());
        }
        // Success once the records are durable: what happens to the tiers
        // afterwards is not this request's to answer for.
        let done = engine.ingest_keyed(&batch, key.as_deref())?;
        let mut response =
            Json(json!({ "accepted": done.records, "lsn": done.lsn })).into_response();
        if done.replayed {
            response.headers_mut().insert(
                header::HeaderName::from_static(IDEMPOTENT_REPLAYED),
                header::HeaderValue::from_static("true"),
            );
        }
        Ok(response)
    })
    .await
}

// ---- query ----

fn wants_arrow(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM))
}

async fn query(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let q: Query = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(None, format!("query body: {e}")))?;
    if q.limit.is_some_and(|l| l > MAX_LIMIT) {
        return Err(ApiError::bad(
            Some("limit"),
            format!("limit is larger than {MAX_LIMIT}"),
        ));
    }
    if q.batch_size.is_some_and(|b| b == 0 || b > 1_000_000) {
        return Err(ApiError::bad(
            Some("batch_size"),
            "batch_size must be 1 to 1000000",
        ));
    }
    let arrow = wants_arrow(&headers);
    let engine = s.engine.clone();
    // Plan, snapshot, and read up to the first batch before answering: a
    // bad query is a 400, and a damaged file met so far an error status
    // (a sorted query reads every source before its first batch).
    let (mut stream, first) = blocking(move || {
        let mut stream = engine.query(&q)?;
        let first = stream.next().transpose()?;
        Ok((stream, first))
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let schema = stream.schema();
        let mut writer = if arrow {
            match arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema) {
                Ok(w) => Some(w),
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
        } else {
            None
        };
        let flush =
            |w: &mut Option<arrow_ipc::writer::StreamWriter<Vec<u8>>>, out: Vec<u8>| -> bool {
                let chunk = match w {
                    Some(w) => std::mem::take(w.get_mut()),
                    None => out,
                };
                chunk.is_empty() || tx.blocking_send(Ok(Bytes::from(chunk))).is_ok()
            };
        let mut rows = 0u64;
        for batch in first.into_iter().map(Ok).chain(stream.by_ref()) {
            let mut out = Vec::new();
            match (batch, writer.as_mut()) {
                (Ok(b), Some(w)) => {
                    rows += b.num_rows() as u64;
                    if let Err(e) = w.write(&b) {
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                        return;
                    }
                }
                (Ok(b), None) => {
                    rows += b.num_rows() as u64;
                    crate::output::ndjson(&b, &mut out)
                }
                (Err(e), _) => {
                    // The status is sent already. NDJSON: the last line says
                    // so, in the shape the OpenAPI document gives it
                    // (`QueryError`: no row has an `error` field). Arrow:
                    // the stream breaks off without its end-of-stream
                    // marker, which an IPC reader reports.
                    if writer.is_none() {
                        out.extend_from_slice(
                            json!({
                                "error": e.to_string(),
                                "complete": false,
                                "rows_before": rows,
                            })
                            .to_string()
                            .as_bytes(),
                        );
                        out.push(b'\n');
                        flush(&mut writer, out);
                    } else {
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    }
                    return;
                }
            }
            if !flush(&mut writer, out) {
                return; // the client went away
            }
        }
        if let Some(w) = writer.as_mut() {
            let _ = w.finish();
        }
        flush(&mut writer, Vec::new());
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let ct = if arrow { ARROW_STREAM } else { NDJSON };
    Ok(([(header::CONTENT_TYPE, ct)], body).into_response())
}

// ---- time series ----

/// Longest symbol a read names (a bound on what a request makes us look up).
pub const MAX_SYMBOL_BYTES: usize = 256;

/// A symbol as the API reads it: any text the store can hold (ingest takes
/// any symbol, so every one it took can be asked for), 1 to
/// [`MAX_SYMBOL_BYTES`] bytes.
pub fn check_symbol(s: &str) -> ApiResult<()> {
    if (1..=MAX_SYMBOL_BYTES).contains(&s.len()) {
        Ok(())
    } else {
        let shown: String = s.chars().take(40).collect();
        Err(ApiError::bad(
            Some("symbol"),
            format!(
                "symbol {shown:?}{}: 1 to {MAX_SYMBOL_BYTES} bytes",
                if shown.len() < s.len() { "…" } else { "" }
            ),
        ))
    }
}

fn time_param(params: &HashMap<String, String>, name: &str) -> ApiResult<i64> {
    let v = params
        .get(name)
        .ok_or_else(|| ApiError::bad(Some(name), format!("{name} is required")))?;
    crate::filter::parse_time_or_ns(v).map_err(|why| {
        ApiError::bad(
            Some(name),
            format!("{name}: {why} (nor integer nanoseconds)"),
        )
    })
}

fn range_params(params: &HashMap<String, String>) -> ApiResult<(i64, i64)> {
    let start = time_param(params, "start")?;
    let end = time_param(params, "end")?;
    if start > end {
        return Err(ApiError::bad(Some("start"), "start is after end"));
    }
    Ok((start, end))
}

async fn timeseries(
    State(s): State<AppState>,
    Path(symbol): Path<String>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    check_symbol(&symbol)?;
    let (start, end) = range_params(&params)?;
    let freq_text = params
        .get("frequency")
        .map(String::as_str)
        .unwrap_or("1min");
    let freq = squeeze::time::parse_duration(freq_text)
        .ok()
        .filter(|&f| f > 0)
        .ok_or_else(|| {
            ApiError::bad(
                Some("frequency"),
                format!("frequency {freq_text:?}: use e.g. 1s, 1min, 5min, 1h"),
            )
        })?;
    if (end - start) / freq > MAX_BARS {
        return Err(ApiError::bad(
            Some("frequency"),
            format!("more than {MAX_BARS} bars: use a coarser frequency or a shorter range"),
        ));
    }
    let key = crate::store::cache::Key {
        kind: "ohlcv",
        symbol,
        start,
        end,
        param: freq,
    };
    // A repeated question is answered from the cache without leaving the
    // async thread; the cache drops an answer as soon as a write overlaps it.
    if let Some(body) = s.engine.answers().get(&key) {
        return Ok(ohlcv_response(String::from(&*body), "hit"));
    }
    // Requests for the same bars that wait for a computation together get
    // its one answer; none joins a computation already reading the store.
    let engine = s.engine.clone();
    let body = s
        .bars
        .run(key.clone(), move |slot| {
            blocking(move || {
                // The slot is held for as long as the work runs, even if
                // every request for it has gone away.
                let _slot = slot;
                let cache = engine.answers();
                let ticket = cache.ticket();
                let body: Arc<str> = ohlcv_json(&engine, &key.symbol, start, end, freq)?.into();
                cache.put(ticket, key, body.clone());
                Ok(body)
            })
        })
        .await
        .unwrap_or_else(|| Err(panicked()))?;
    Ok(ohlcv_response(String::from(&*body), "miss"))
}

fn ohlcv_response(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-answer-cache"), cache),
        ],
        body,
    )
        .into_response()
}

/// OHLCV bars of `symbol` over `[start, end)` as a JSON document: the
/// engine's aggregate (each tier reduces its rows, the warm tier on its
/// device), so the answer is the same bits whichever tier holds a trade;
/// empty intervals are left out.
pub fn ohlcv_json(
    engine: &Engine,
    symbol: &str,
    start: i64,
    end: i64,
    freq: i64,
) -> crate::Result<String> {
    let buckets = crate::agg::Buckets::new(start, end, freq, crate::agg::MAX_BUCKETS)?;
    let (bars, _) = engine.aggregate(&[crate::filter::Filter::eq("symbol", symbol)], &buckets)?;
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64 + bars.len() * 160);
    out.push_str("{\"symbol\":");
    out.push_str(&Value::String(symbol.to_string()).to_string());
    let _ = write!(out, ",\"frequency_ns\":{freq},\"bars\":");
    write_bars_json(&mut out, &bars);
    out.push('}');
    Ok(out)
}

/// Appends `bars` as a JSON array: `{"time","open","high","low","close",
/// "volume","trades"}` each, written straight into `out` (a day of
/// 1-minute bars is 1,440 of them): numbers as serde_json writes them,
/// null when not finite.
fn write_bars_json(out: &mut String, bars: &[crate::agg::Bar]) {
    use std::fmt::Write as _;
    let num = |out: &mut String, key: &str, v: f64| {
        out.push_str(key);
        match serde_json::Number::from_f64(v) {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.push_str("null"),
        }
    };
    out.push('[');
    for (i, b) in bars.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"time\":\"");
        crate::output::write_ns(out, b.time);
        out.push('"');
        num(out, ",\"open\":", b.open);
        num(out, ",\"high\":", b.high);
        num(out, ",\"low\":", b.low);
        num(out, ",\"close\":", b.close);
        num(out, ",\"volume\":", b.volume);
        let _ = write!(out, ",\"trades\":{}}}", b.trades);
    }
    out.push(']');
}

/// `GET /bars/{symbol}?timeframe=1h&limit=100`: the newest bars of one
/// symbol from the catalog's materialised bars and the memory tiers
/// ([`Engine::latest_bars`]), oldest first, with where they came from.
async fn latest_bars(
    State(s): State<AppState>,
    Path(symbol): Path<String>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    check_symbol(&symbol)?;
    let tf_text = params.get("timeframe").map(String::as_str).unwrap_or("1h");
    let tf = crate::store::bars::Timeframe::parse(tf_text)
        .map_err(|e| ApiError::bad(Some("timeframe"), e.to_string()))?;
    let limit = match params.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=crate::read::bars::MAX_LATEST).contains(n))
            .ok_or_else(|| {
                ApiError::bad(
                    Some("limit"),
                    format!(
                        "limit {v:?}: a number of bars from 1 to {}",
                        crate::read::bars::MAX_LATEST
                    ),
                )
            })?,
    };
    let engine = s.engine.clone();
    blocking(move || {
        use std::fmt::Write as _;
        let (bars, stats) = engine.latest_bars(&symbol, tf, limit)?;
        let mut out = String::with_capacity(128 + bars.len() * 160);
        let _ = write!(
            out,
            "{{\"symbol\":{},\"timeframe\":\"{}\",\"source\":\"{}\"",
            Value::String(symbol),
            tf.name(),
            stats.source
        );
        if let Some(why) = &stats.why_raw {
            let _ = write!(out, ",\"why_raw\":{}", Value::String(why.clone()));
        }
        out.push_str(",\"bars\":");
        write_bars_json(&mut out, &bars);
        out.push('}');
        Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
    })
    .await
}

// ---- live feed ----

/// The symbols a feed asks for: every `symbols` parameter, each a
/// comma-separated list (`?symbols=A,B&symbols=C`), duplicates dropped;
/// none: every symbol. An empty name (`symbols=`, `A,,B`) is an error.
fn feed_symbols(params: &[(String, String)]) -> ApiResult<Vec<String>> {
    let mut symbols: Vec<String> = Vec::new();
    for (_, list) in params.iter().filter(|(k, _)| k == "symbols") {
        for sym in list.split(',').map(str::trim) {
            check_symbol(sym)?;
            if !symbols.iter().any(|s| s == sym) {
                symbols.push(sym.to_string());
            }
        }
    }
    Ok(symbols)
}

/// A feed's permit, or `None` when the feeds are full. Feeds (`/stream`
/// and `/ws` together) hold their connection for as long as they last: at
/// most `max_streams`, and never more than half the connections.
fn feed_permit(s: &AppState) -> Option<tokio::sync::OwnedSemaphorePermit> {
    s.streams.clone().try_acquire_owned().ok()
}

/// The answer to one feed more than [`feed_permit`] allows: 503 with
/// `Retry-After` and `Connection: close`.
fn feeds_full(s: &AppState) -> Response {
    let mut response = ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} live feeds are open (server.max_streams, at most half of server.max_connections); retry",
                s.limits.streams_in_effect()
            ),
        )
    }
    .into_response();
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// Records in one feed message (an SSE event or a WebSocket message),
/// about 0.4 to 0.8 MB of JSON: under the 1 MiB that common WebSocket
/// clients accept by default (Python's `websockets`), where a batch of a
/// million records would be one message of about 100 MB.
const FEED_MESSAGE_RECORDS: usize = 5_000;

/// Batches published to the live feeds before the oldest is dropped; a
/// reader further behind is told how many it missed (`lagged`).
const FEED_BATCHES: usize = 16;

/// An ingested batch as the live feeds see it. Its JSON is made once, by
/// the first feed that needs it and on the blocking pool, and shared by
/// every feed; each feed only picks its symbols' rows and joins their
/// text.
struct FeedBatch {
    batch: RecordBatch,
    rendered: tokio::sync::OnceCell<Arc<Rendered>>,
}

#[derive(Default)]
struct Rendered {
    /// Each row as a JSON object.
    rows: Vec<String>,
    /// The rows of each symbol, ascending.
    by_symbol: HashMap<String, Vec<u32>>,
}

impl FeedBatch {
    fn new(batch: RecordBatch) -> FeedBatch {
        FeedBatch {
            batch,
            rendered: tokio::sync::OnceCell::new(),
        }
    }

    async fn rendered(self: &Arc<Self>) -> Arc<Rendered> {
        let this = self.clone();
        self.rendered
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let batch = &this.batch;
                    let syms = batch.column(1).as_string::<i32>();
                    let mut by_symbol: HashMap<String, Vec<u32>> = HashMap::new();
                    for r in 0..batch.num_rows() {
                        match by_symbol.get_mut(syms.value(r)) {
                            Some(rows) => rows.push(r as u32),
                            None => {
                                by_symbol.insert(syms.value(r).to_string(), vec![r as u32]);
                            }
                        }
                    }
                    let rows = (0..batch.num_rows())
                        .map(|r| Value::Object(crate::output::json_row(batch, r)).to_string())
                        .collect();
                    Arc::new(Rendered { rows, by_symbol })
                })
                .await
                // A panic while rendering: the feeds skip this batch.
                .unwrap_or_default()
            })
            .await
            .clone()
    }

    /// The records whose symbol is in `symbols` (all when it is empty), in
    /// order, as JSON arrays of at most [`FEED_MESSAGE_RECORDS`] row
    /// objects, each wrapped as `prefix` + array + `suffix`; empty when
    /// there are none.
    async fn messages(
        self: &Arc<Self>,
        symbols: &[String],
        prefix: &str,
        suffix: &str,
    ) -> Vec<String> {
        let r = self.rendered().await;
        let picked: Vec<u32> = if symbols.is_empty() {
            (0..r.rows.len() as u32).collect()
        } else {
            let mut picked: Vec<u32> = symbols
                .iter()
                .filter_map(|s| r.by_symbol.get(s))
                .flatten()
                .copied()
                .collect();
            picked.sort_unstable();
            picked
        };
        picked
            .chunks(FEED_MESSAGE_RECORDS)
            .map(|chunk| {
                let len: usize = chunk.iter().map(|&i| r.rows[i as usize].len() + 1).sum();
                let mut text = String::with_capacity(prefix.len() + len + suffix.len() + 2);
                text.push_str(prefix);
                text.push('[');
                for (n, &i) in chunk.iter().enumerate() {
                    if n > 0 {
                        text.push(',');
                    }
                    text.push_str(&r.rows[i as usize]);
                }
                text.push(']');
                text.push_str(suffix);
                text
            })
            .collect()
    }
}

async fn stream(
    State(s): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let symbols = feed_symbols(&params)?;
    let Some(permit) = feed_permit(&s) else {
        return Ok(feeds_full(&s));
    };
    let rx = s.feed.subscribe();
    let stop = s.shutdown.clone();
    // The feed ends when the server shuts down: a stream that never ended
    // would keep the server (and its store lock) alive forever.
    let state = (rx, symbols, (stop, permit));
    // `held`: the shutdown signal, and the feed's permit, given back when
    // the feed ends.
    let events = futures_util::stream::unfold(state, |(mut rx, symbols, held)| async move {
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = held.0.wait() => return None,
            };
            match received {
                Ok(batch) => {
                    let events: Vec<_> = batch
                        .messages(&symbols, "", "")
                        .await
                        .into_iter()
                        .map(|rows| {
                            Ok::<Event, std::convert::Infallible>(
                                Event::default().event("records").data(rows),
                            )
                        })
                        .collect();
                    if events.is_empty() {
                        continue;
                    }
                    return Some((events, (rx, symbols, held)));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let event = Event::default().event("lagged").data(n.to_string());
                    return Some((vec![Ok(event)], (rx, symbols, held)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(events.flat_map(futures_util::stream::iter))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The connection slot ([`serve`]'s `max_connections`) of the connection a
/// request came on. A WebSocket keeps it after its HTTP connection has
/// handed the socket over, so that open sockets stay counted.
#[derive(Clone)]
struct ConnectionSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// The largest message or frame a WebSocket client may send: it has
/// nothing to send but pings, pongs and a close frame, so what it sends is
/// never buffered beyond this.
const WS_MAX_CLIENT_MESSAGE: usize = 4 << 10;

/// Messages a WebSocket client may send in a burst, and per second after
/// it; past that the server closes the socket with 1008 (policy
/// violation), so that a client sending as fast as it can does not keep a
/// runtime thread busy.
const WS_CLIENT_BURST: f64 = 32.0;
const WS_CLIENT_PER_SECOND: f64 = 4.0;

/// `GET /ws?symbols=A,B`: the live feed of `/stream` over a WebSocket
/// (RFC 6455). Each ingested batch's records of those symbols arrive as
/// text messages `{"event":"records","records":[{…},…]}` of at most
/// [`FEED_MESSAGE_RECORDS`] records each, in order; a reader too slow
/// for the feed gets `{"event":"lagged","batches":N}` for the N batches it
/// missed. The server pings every 15 s, answers a client's close frame
/// with its own and ends, and on shutdown sends a close frame with code
/// 1001 (going away). A client's messages are otherwise ignored: one over
/// [`WS_MAX_CLIENT_MESSAGE`] bytes, or more than [`WS_CLIENT_BURST`] at
/// once and [`WS_CLIENT_PER_SECOND`] a second after, ends the socket with
/// 1009 or 1008. A GET that is not a WebSocket upgrade is answered with
/// the error axum names (400, 426) as JSON, and so is HEAD (400).
async fn websocket(
    method: axum::http::Method,
    State(s): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
    slot: Option<axum::Extension<ConnectionSlot>>,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> ApiResult<Response> {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        // HEAD reaches a GET route (axum's `Allow` names both): answered
        // as a GET without the upgrade headers is, never upgraded.
        Err(_) if method == axum::http::Method::HEAD => {
            return Err(ApiError::bad(
                None,
                "HEAD cannot open a WebSocket: send GET with the upgrade headers",
            ));
        }
        Err(e) => return Err(ApiError::new(e.status(), e.body_text())),
    };
    let symbols = feed_symbols(&params)?;
    let Some(permit) = feed_permit(&s) else {
        return Ok(feeds_full(&s));
    };
    let rx = s.feed.subscribe();
    let stop = s.shutdown.clone();
    let held = (permit, slot.map(|axum::Extension(slot)| slot));
    Ok(upgrade
        .max_message_size(WS_MAX_CLIENT_MESSAGE)
        .max_frame_size(WS_MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| websocket_feed(socket, rx, symbols, stop, held)))
}

async fn websocket_feed<H>(
    mut socket: axum::extract::ws::WebSocket,
    mut rx: broadcast::Receiver<Arc<FeedBatch>>,
    symbols: Vec<String>,
    stop: Shutdown,
    // The feed's permit and the connection's slot, given back at the end.
    _held: H,
) {
    use axum::extract::ws::{close_code, CloseFrame, Message};
    let mut ping = tokio::time::interval(Duration::from_secs(15));
    ping.tick().await;
    // A token bucket for the client's messages.
    let (mut tokens, mut refilled) = (WS_CLIENT_BURST, tokio::time::Instant::now());
    let closing = |code, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let last = 'feed: loop {
        let messages = tokio::select! {
            received = rx.recv() => match received {
                Ok(batch) => batch.messages(&symbols, r#"{"event":"records","records":"#, "}").await
                    .into_iter()
                    .map(|text| Message::Text(text.into()))
                    .collect(),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    vec![Message::Text(format!(r#"{{"event":"lagged","batches":{n}}}"#).into())]
                }
                Err(broadcast::error::RecvError::Closed) => break closing(close_code::AWAY, "the server is shutting down"),
            },
            from_client = socket.recv() => match from_client {
                // Closed by the client: its close frame is answered (the
                // reply is queued by the protocol library; flushed below).
                Some(Ok(Message::Close(_))) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), futures_util::SinkExt::flush(&mut socket)).await;
                    return;
                }
                // The connection broke.
                None => return,
                // A protocol violation, or a message over the limit.
                Some(Err(e)) => {
                    let too_big = matches!(
                        e.into_inner().downcast_ref::<tungstenite::Error>(),
                        Some(tungstenite::Error::Capacity(_))
                    );
                    break if too_big {
                        closing(close_code::SIZE, "messages to the server are at most 4 KiB")
                    } else {
                        closing(close_code::PROTOCOL, "protocol error")
                    };
                }
                Some(Ok(_)) => {
                    let now = tokio::time::Instant::now();
                    tokens = (tokens + now.duration_since(refilled).as_secs_f64() * WS_CLIENT_PER_SECOND).min(WS_CLIENT_BURST) - 1.0;
                    refilled = now;
                    if tokens < 0.0 {
                        break closing(close_code::POLICY, "too many messages from the client");
                    }
                    continue;
                }
            },
            _ = ping.tick() => vec![Message::Ping(Bytes::new())],
            _ = stop.wait() => break closing(close_code::AWAY, "the server is shutting down"),
        };
        for message in messages {
            // A client that stopped reading blocks the send; shutdown
            // still ends the feed.
            tokio::select! {
                sent = socket.send(message) => if sent.is_err() { return },
                _ = stop.wait() => break 'feed closing(close_code::AWAY, "the server is shutting down"),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(last)).await;
}

// ---- jobs and quality ----

/// Creates a job and starts it in the background. The body is read as an
/// ingest's is (bounded in size, time and rate); a job past
/// `max_running_jobs`, a batch larger than `max_job_batch_size` or a
/// generator of more than `max_job_records` is refused before anything is
/// recorded. Once the job is recorded the request is not cut off.
async fn create_job(
    State(s): State<AppState>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let deadline = tokio::time::Instant::now() + s.limits.timeout;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = read_body(req.into_body(), MAX_SMALL_BODY, declared, deadline, &s).await?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(None, format!("job body: {e}")))?;
    let source = v
        .get("source")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad(
                Some("source"),
                "source (a .csv or .parquet path, or gen:N[:SEED]) is required",
            )
        })?
        .to_string();
    if let Some(k) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "source" && *k != "batch_size"))
    {
        return Err(ApiError::bad(Some(k), format!("unknown field `{k}`")));
    }
    let max_batch = s.limits.max_job_batch_size;
    let batch = match v.get("batch_size") {
        None => max_batch.min(100_000),
        Some(b) => match b.as_u64() {
            Some(n) if (1..=max_batch as u64).contains(&n) => n as usize,
            _ => {
                return Err(ApiError::bad(
                    Some("batch_size"),
                    format!("batch_size must be 1 to {max_batch} (server.max_job_batch_size)"),
                ))
            }
        },
    };
    // A file must be inside the import directory; it is recorded as
    // `import:PATH` and shown so, never as the server's own path.
    let source = match crate::ingest::jobs::Source::parse(&source)
        .map_err(|e| ApiError::bad(Some("source"), e.to_string()))?
    {
        crate::ingest::jobs::Source::Csv(p)
        | crate::ingest::jobs::Source::Parquet(p)
        | crate::ingest::jobs::Source::Import(p) => {
            let config = s.engine.config().clone();
            blocking(move || {
                crate::ingest::jobs::resolve_import(&p, &config)
                    .map_err(|e| ApiError::bad(Some("source"), e.to_string()))?;
                let rel: PathBuf = p
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                rel.to_str()
                    .map(|r| format!("{}{r}", crate::ingest::jobs::IMPORT_PREFIX))
                    .ok_or_else(|| ApiError::bad(Some("source"), "the path is not UTF-8"))
            })
            .await?
        }
        crate::ingest::jobs::Source::Generator { records, .. }
            if records > s.limits.max_job_records =>
        {
            return Err(ApiError::bad(
                Some("source"),
                format!(
                    "a generator job makes at most {} records (server.max_job_records)",
                    s.limits.max_job_records
                ),
            ))
        }
        crate::ingest::jobs::Source::Generator { .. } => source,
    };
    let Ok(permit) = s.jobs.clone().try_acquire_owned() else {
        return Err(ApiError {
            retry_after_s: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{} jobs are running (server.max_running_jobs); nothing was created; retry when one has finished",
                    s.limits.max_running_jobs
                ),
            )
        });
    };
    let engine = s.engine.clone();
    let id = blocking(move || Ok(engine.with_catalog(|c| c.create_job(&source))?)).await?;
    let engine = s.engine.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // Failure is recorded in the job's row.
        let _ = crate::ingest::jobs::run(&engine, id, batch, |_, _| {});
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "state": "pending" })),
    ))
}

async fn list_jobs(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let engine = s.engine.clone();
    blocking(move || Ok(Json(json!(engine.with_catalog(|c| c.jobs())?)))).await
}

fn job_id(text: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::bad(Some("id"), format!("job id {text:?} is not a number")))
}

async fn get_job(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = job_id(&id)?;
    let engine = s.engine.clone();
    blocking(move || Ok(Json(json!(engine.with_catalog(|c| c.job(id))?)))).await
}

async fn cancel_job(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = job_id(&id)?;
    let engine = s.engine.clone();
    blocking(move || Ok(Json(json!(engine.with_catalog(|c| c.cancel_job(id))?)))).await
}

async fn quality(
    State(s): State<AppState>,
    Path(symbol): Path<String>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    check_symbol(&symbol)?;
    let engine = s.engine.clone();
    if !params.contains_key("start") && !params.contains_key("end") {
        // Without a range: the results stored for the symbol.
        return blocking(move || Ok(Json(json!(engine.with_catalog(|c| c.quality(&symbol))?))))
            .await;
    }
    let (start, end) = range_params(&params)?;
    if start == end {
        return Err(ApiError::bad(Some("end"), "the range is empty"));
    }
    let text = params.get("interval").map(String::as_str).unwrap_or("1s");
    let interval = squeeze::time::parse_duration(text)
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| {
            ApiError::bad(
                Some("interval"),
                format!("interval {text:?}: use e.g. 1s, 250ms, 1min"),
            )
        })?;
    // Computed and answered, not stored: a GET does not grow the catalog.
    blocking(move || {
        Ok(Json(json!(crate::read::quality::measure_range(
            &engine, &symbol, start, end, interval
        )?)))
    })
    .await
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");
