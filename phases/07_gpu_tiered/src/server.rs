//! The HTTP API (`07_gpu_tiered serve`): ingest, query, OHLCV time series,
//! stats, a live feed, jobs and data quality, over axum.
//!
//! The engine is synchronous (an acknowledged write has been fsynced), so
//! handlers run it on tokio's blocking pool. Bad input answers 400 with a
//! JSON body `{"error": …, "field": …}`; an oversized body 413; an unknown
//! job or route 404; a request that runs past the timeout 408. No SQL is
//! built from request data: the catalog binds every value.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::engine::Engine;
use crate::error::Error;
use crate::query::Query;
use crate::schema::{Mode, UTC};

/// Media type of Arrow IPC streams.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// Media type of newline-delimited JSON.
pub const NDJSON: &str = "application/x-ndjson";
/// Largest `limit` a query may ask for.
pub const MAX_LIMIT: usize = 10_000_000;
/// Most bars one time-series request may produce.
pub const MAX_BARS: i64 = 100_000;

/// Server limits.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    feed: broadcast::Sender<Arc<RecordBatch>>,
}

/// An error answer: status and a JSON body naming the field when there is one.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn bad(field: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: field.map(str::to_string),
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
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("worker failed: {e}"),
            field: None,
        }),
    }
}

/// The router, for `serve` and the tests.
pub fn router(engine: Arc<Engine>, limits: &Limits) -> Router {
    let (feed, _) = broadcast::channel(64);
    let publisher = feed.clone();
    engine.set_observer(Some(Arc::new(move |b: &RecordBatch| {
        // No subscriber is fine: the feed is best effort.
        let _ = publisher.send(Arc::new(b.clone()));
    })));
    let state = AppState { engine, feed };
    let timeout = limits.timeout;
    Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/ingest", post(ingest))
        .route("/query", post(query))
        .route("/timeseries/{symbol}", get(timeseries))
        .route("/stream", get(stream))
        .route("/jobs", post(create_job).get(list_jobs))
        .route("/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/quality/{symbol}", get(quality))
        .route("/openapi.json", get(openapi))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such endpoint (see /openapi.json)".into(),
                field: None,
            }
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => ApiError {
                        status: StatusCode::REQUEST_TIMEOUT,
                        message: format!(
                            "the request took longer than {} s",
                            timeout.as_secs_f64()
                        ),
                        field: None,
                    }
                    .into_response(),
                }
            },
        ))
        .with_state(state)
}

async fn health(State(s): State<AppState>) -> Json<Value> {
    let device = s.engine.stats().map(|t| t.warm_device).unwrap_or_default();
    Json(json!({ "status": "ok", "device": device }))
}

async fn stats(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let engine = s.engine.clone();
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
            "answer_cache": {
                "entries": a.entries, "bytes": a.bytes, "hits": a.hits,
                "misses": a.misses, "invalidated": a.invalidated,
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

async fn ingest(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mode = s.engine.mode();
    let ct = content_type(&headers);
    let engine = s.engine.clone();
    blocking(move || {
        let batch = match ct.as_str() {
            ARROW_STREAM => batch_from_ipc(mode, &body)?,
            "application/json" => {
                let rows: Vec<Value> = serde_json::from_slice(&body).map_err(|e| {
                    Error::InvalidArgument(format!("body is not a JSON array of records: {e}"))
                })?;
                batch_from_json(mode, rows.iter())?
            }
            NDJSON => {
                let mut rows = Vec::new();
                for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    rows.push(serde_json::from_slice::<Value>(line).map_err(|e| {
                        Error::InvalidArgument(format!("line {}: not JSON: {e}", i + 1))
                    })?);
                }
                batch_from_json(mode, rows.iter())?
            }
            other => {
                return Err(ApiError {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    message: format!(
                        "Content-Type {other:?}: send application/json, {NDJSON} or {ARROW_STREAM}"
                    ),
                    field: None,
                })
            }
        };
        let n = batch.num_rows();
        if n == 0 {
            return Ok(Json(json!({ "accepted": 0 })));
        }
        let lsn = engine.ingest(&batch)?;
        Ok(Json(json!({ "accepted": n, "lsn": lsn })))
    })
    .await
}

/// The batches of an Arrow IPC stream body, as one batch (so that a request
/// is stored whole or not at all).
fn batch_from_ipc(mode: Mode, body: &[u8]) -> crate::Result<RecordBatch> {
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(body), None)
        .map_err(|e| Error::InvalidArgument(format!("body is not an Arrow IPC stream: {e}")))?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| {
            Error::InvalidArgument(format!("body is not an Arrow IPC stream: {e}"))
        })?);
    }
    let all = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(|e| Error::InvalidArgument(format!("Arrow IPC body: {e}")))?;
    crate::schema::validate(mode, &all)?;
    crate::schema::conform(mode, &all)
}

fn field_err(row: usize, field: &str, what: &str) -> ApiError {
    ApiError::bad(Some(field), format!("record {row}: field `{field}` {what}"))
}

/// Records given as JSON objects, checked field by field.
pub fn batch_from_json<'a>(
    mode: Mode,
    rows: impl Iterator<Item = &'a Value>,
) -> ApiResult<RecordBatch> {
    let schema = mode.schema();
    let names = crate::schema::column_names(&schema);
    let (mut ts, mut sym, mut price, mut volume) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut side, mut exch, mut ids, mut flags) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (row, v) in rows.enumerate() {
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad(None, format!("record {row} is not a JSON object")))?;
        if let Some(k) = obj.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(field_err(
                row,
                k,
                &format!("is not a column ({})", names.join(", ")),
            ));
        }
        let get = |f: &str| obj.get(f).ok_or_else(|| field_err(row, f, "is missing"));
        let string = |f: &str| -> ApiResult<String> {
            get(f)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| field_err(row, f, "must be a string"))
        };
        let number = |f: &str| -> ApiResult<f64> {
            get(f)?
                .as_f64()
                .ok_or_else(|| field_err(row, f, "must be a number"))
        };
        let integer = |f: &str| -> ApiResult<i64> {
            get(f)?
                .as_i64()
                .ok_or_else(|| field_err(row, f, "must be an integer"))
        };
        let t = match get("timestamp")? {
            Value::Number(n) => n.as_i64().ok_or_else(|| {
                field_err(
                    row,
                    "timestamp",
                    "must be integer nanoseconds or a UTC time",
                )
            })?,
            Value::String(s) => squeeze::time::parse_timestamp(s).map_err(|why| {
                field_err(
                    row,
                    "timestamp",
                    &format!("{why} (write 2024-01-01T00:00:00Z)"),
                )
            })?,
            _ => {
                return Err(field_err(
                    row,
                    "timestamp",
                    "must be integer nanoseconds or a UTC time",
                ))
            }
        };
        ts.push(t);
        sym.push(string("symbol")?);
        price.push(number("price")?);
        volume.push(number("volume")?);
        if mode == Mode::Trading {
            side.push(string("side")?);
            exch.push(string("exchange")?);
            ids.push(integer("trade_id")?);
            let f = integer("flags")?;
            flags.push(i32::try_from(f).map_err(|_| field_err(row, "flags", "must fit 32 bits"))?);
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(ts).with_timezone(UTC)),
        Arc::new(StringArray::from(sym)),
        Arc::new(Float64Array::from(price)),
        Arc::new(Float64Array::from(volume)),
    ];
    if mode == Mode::Trading {
        columns.push(Arc::new(StringArray::from(side)));
        columns.push(Arc::new(StringArray::from(exch)));
        columns.push(Arc::new(Int64Array::from(ids)));
        columns.push(Arc::new(Int32Array::from(flags)));
    }
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| Error::arrow("building records", e))?;
    crate::schema::validate(mode, &batch)?;
    Ok(batch)
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
    // Plan and snapshot before answering, so a bad query is a 400.
    let stream = blocking(move || Ok(engine.query(&q)?)).await?;
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
        for batch in stream {
            let mut out = Vec::new();
            match (batch, writer.as_mut()) {
                (Ok(b), Some(w)) => {
                    if let Err(e) = w.write(&b) {
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                        return;
                    }
                }
                (Ok(b), None) => crate::output::ndjson(&b, &mut out),
                (Err(e), _) => {
                    // The status is sent already: end the body with the error.
                    if writer.is_none() {
                        out.extend_from_slice(
                            json!({ "error": e.to_string() }).to_string().as_bytes(),
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

/// A symbol as the API accepts it: 1 to 32 of letters, digits, `/ . _ -`.
pub fn check_symbol(s: &str) -> ApiResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            Some("symbol"),
            format!("symbol {s:?}: 1 to 32 letters, digits, '/', '.', '_' or '-'"),
        ))
    }
}

fn time_param(params: &HashMap<String, String>, name: &str) -> ApiResult<i64> {
    let v = params
        .get(name)
        .ok_or_else(|| ApiError::bad(Some(name), format!("{name} is required")))?;
    v.parse::<i64>()
        .or_else(|_| squeeze::time::parse_timestamp(v))
        .map_err(|why| {
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
    let key = crate::cache::Key {
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
    let engine = s.engine.clone();
    let body = blocking(move || {
        let cache = engine.answers();
        let ticket = cache.ticket();
        let body: Arc<str> = ohlcv_json(&engine, &key.symbol, start, end, freq)?.into();
        cache.put(ticket, key, body.clone());
        Ok(body)
    })
    .await?;
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
    let mut out = String::with_capacity(64 + bars.len() * 160);
    out.push_str(&format!(
        "{{\"symbol\":{},\"frequency_ns\":{freq},\"bars\":[",
        Value::String(symbol.to_string())
    ));
    let num = |v: f64| -> String {
        serde_json::Number::from_f64(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "null".into())
    };
    for (i, b) in bars.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"time\":\"{}\",\"open\":{},\"high\":{},\"low\":{},\"close\":{},\"volume\":{},\"trades\":{}}}",
            crate::output::fmt_ns(b.time),
            num(b.open),
            num(b.high),
            num(b.low),
            num(b.close),
            num(b.volume),
            b.trades
        ));
    }
    out.push_str("]}");
    Ok(out)
}

// ---- live feed ----

async fn stream(
    State(s): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let symbols: Vec<String> = match params.get("symbols") {
        None => Vec::new(),
        Some(list) => list.split(',').map(|x| x.trim().to_string()).collect(),
    };
    for sym in &symbols {
        check_symbol(sym)?;
    }
    let rx = s.feed.subscribe();
    let events = futures_util::stream::unfold((rx, symbols), |(mut rx, symbols)| async move {
        loop {
            match rx.recv().await {
                Ok(batch) => {
                    let syms = batch.column(1).as_string::<i32>();
                    let rows: Vec<Value> = (0..batch.num_rows())
                        .filter(|&r| {
                            symbols.is_empty() || symbols.iter().any(|s| s == syms.value(r))
                        })
                        .map(|r| Value::Object(crate::output::json_row(&batch, r)))
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let event = Event::default()
                        .event("records")
                        .data(Value::Array(rows).to_string());
                    return Some((Ok::<Event, std::convert::Infallible>(event), (rx, symbols)));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let event = Event::default().event("lagged").data(n.to_string());
                    return Some((Ok(event), (rx, symbols)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

// ---- jobs and quality ----

async fn create_job(
    State(s): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    let batch = v
        .get("batch_size")
        .and_then(Value::as_u64)
        .unwrap_or(100_000)
        .clamp(1, 1_000_000) as usize;
    crate::jobs::Source::parse(&source)
        .map_err(|e| ApiError::bad(Some("source"), e.to_string()))?;
    let engine = s.engine.clone();
    let id = blocking(move || Ok(engine.with_catalog(|c| c.create_job(&source))?)).await?;
    let engine = s.engine.clone();
    tokio::task::spawn_blocking(move || {
        // Failure is recorded in the job's row.
        let _ = crate::jobs::run(&engine, id, batch, |_, _| {});
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
    blocking(move || {
        Ok(Json(json!(crate::quality::check(
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
