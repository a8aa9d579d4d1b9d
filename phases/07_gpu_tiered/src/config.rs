//! Configuration: defaults, then a JSON file, then `SSIG_*` environment
//! variables, each layer overriding the one before.
//!
//! Unknown keys and wrong types are errors that name the key (serde's
//! `deny_unknown_fields`), so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::Mode;

/// The engine's configuration. Every field has a default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Columns of the store: `simple` (4) or `trading` (8). Fixed when the
    /// store is created; absent, an existing store keeps its own and a new
    /// one is simple. Opening a store with another mode is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    pub storage: StorageConfig,
    pub wal: WalConfig,
    pub hot_tier: HotConfig,
    pub warm_tier: WarmConfig,
    pub cold_tier: ColdConfig,
    pub query: QueryConfig,
    pub server: ServerConfig,
    pub idempotency: IdempotencyConfig,
}

/// Where things live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Root directory of the store.
    pub base_path: PathBuf,
    /// WAL directory, relative to `base_path`.
    pub wal_path: PathBuf,
    /// Cold tier directory, relative to `base_path`.
    pub cold_path: PathBuf,
    /// SQLite catalog file, relative to `base_path`.
    pub catalog: PathBuf,
}

/// The write-ahead log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// A segment rolls over once it is this large.
    pub segment_mb: f64,
    /// fsync before acknowledging a write. Turning it off is for comparison
    /// only: an acknowledged write may then be lost in a power cut (not in a
    /// process crash).
    pub fsync: bool,
}

/// The hot tier (recent batches in memory, covered by the WAL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotConfig {
    pub max_records: u64,
    /// Oldest batches move to the warm tier once the hot tier holds this
    /// fraction of `max_records`.
    pub eviction_threshold_pct: f64,
    /// While moving records to the warm tier fails, ingests are refused
    /// (nothing stored; the HTTP API answers 503 with `Retry-After`) once
    /// the hot tier holds this fraction of `max_records`.
    pub refuse_at_pct: f64,
}

/// The warm tier (columns in memory, dictionary-encoded symbols).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmConfig {
    pub max_memory_mb: f64,
    /// Migration to the cold tier starts at this fraction of the budget...
    pub eviction_threshold_pct: f64,
    /// ...and moves the oldest rows until the tier is down to this fraction.
    pub migrate_to_pct: f64,
    /// While migrations to the cold tier fail, ingests are refused (nothing
    /// stored; the HTTP API answers 503 with `Retry-After`) once the tier
    /// holds this fraction of `max_memory_mb` (1.0: the budget is a bound;
    /// more lets it grow while the failure is mended).
    pub refuse_at_pct: f64,
    /// `auto`, `cpu` or `gpu` (the GPU tier is a separate build step; `auto`
    /// and `cpu` run the CPU implementation).
    pub device: String,
}

/// Most bars the catalog may keep per (symbol, timeframe).
pub const MAX_BARS_KEPT: usize = 100_000;

/// The cold tier (Parquet files).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdConfig {
    /// `zstd`, `snappy`, `lz4` or `none`.
    pub compression: String,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Rows per data page (the unit the page index prunes).
    pub page_rows: usize,
    /// Materialised bars the catalog keeps per (symbol, timeframe), newest
    /// first, for `bars` lookups; 0 keeps none (lookups read the raw rows).
    pub bars_kept: usize,
    /// Where the cold tier lives: `s3://bucket/prefix` for S3 or an
    /// S3-compatible server, `file:///dir` for a local directory; absent,
    /// `storage.cold_path`. Credentials come from the AWS environment
    /// variables (see [`crate::store::objects`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The endpoint of an S3-compatible server (`http://host:port`), with
    /// path-style requests; absent, AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allows an `http://` endpoint (a test or a private network).
    pub allow_http: bool,
    /// The bucket's region, over `AWS_REGION`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Seconds an object-store request may take, and its retries together
    /// (a server that does not answer is an error after this).
    pub timeout_s: f64,
    /// Other stores write the same table (each with its own WAL, tiers and
    /// catalog): file names carry the store's ID, the tier has no single
    /// owner, and queries read the other stores' files from the table too.
    pub shared: bool,
}

impl ColdConfig {
    /// The Parquet codec [`compression`](ColdConfig::compression) names;
    /// an unknown name is [`Error::Config`].
    pub fn parquet_compression(&self) -> Result<parquet::basic::Compression> {
        use parquet::basic::{Compression, ZstdLevel};
        match self.compression.as_str() {
            "zstd" => Ok(Compression::ZSTD(ZstdLevel::default())),
            "snappy" => Ok(Compression::SNAPPY),
            "lz4" => Ok(Compression::LZ4_RAW),
            "none" => Ok(Compression::UNCOMPRESSED),
            other => Err(Error::Config(format!(
                "cold_tier.compression {other:?}: expected zstd, snappy, lz4 or none"
            ))),
        }
    }
}

/// Query execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Rows per streamed result batch.
    pub output_batch_size: usize,
    /// Megabytes of finished answers (OHLCV documents) kept for repeated
    /// questions; 0 turns the cache off.
    pub answer_cache_mb: f64,
}

/// The HTTP API (`serve`): what one request, one connection and the whole
/// server may hold. Every limit answers with a status code, never by
/// falling over; the chapter's "What can go wrong" section has the tests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest `/ingest` body, in MB (413 above it). Other endpoints take
    /// at most 1 MB.
    pub max_body_mb: f64,
    /// Ingests decoded at once; a request beyond them waits for a slot.
    /// Memory held by ingest is about this many times the largest body
    /// times the per-request factor the chapter measures.
    pub max_concurrent_ingests: usize,
    /// How long an ingest waits for a slot before it is answered 503 with
    /// `Retry-After`.
    pub ingest_wait_s: f64,
    /// Longest a request may take before it is answered 408 (at most 600).
    /// For `/ingest` and `POST /jobs` it covers waiting for a slot and
    /// reading the body: once the records are being stored the request is
    /// not cut off, and the answer says what happened to them.
    pub request_timeout_s: f64,
    /// An `/ingest` body must arrive at least this fast, in KB/s, after its
    /// first second (408 otherwise, nothing stored): a client that trickles
    /// its body cannot hold an ingest slot for the whole request timeout.
    /// 0 turns the check off.
    pub min_body_rate_kbs: f64,
    /// A connection that has not sent a whole request head (request line
    /// and headers) this long after it opened, or after its previous
    /// response, is closed.
    pub header_read_timeout_s: f64,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Live feeds (`/stream`) open at once, at most; also at most half of
    /// `max_connections`, so that the other half stays free for `/health`
    /// and the rest. One more is answered 503 with `Retry-After`.
    pub max_streams: usize,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to
    /// finish (bodies still being read are answered 503 at once).
    pub shutdown_grace_s: f64,
    /// Jobs `POST /jobs` runs at once (503 with `Retry-After` beyond).
    pub max_running_jobs: usize,
    /// Largest `batch_size` a job may ask for (memory: a batch is held
    /// whole while it is stored).
    pub max_job_batch_size: usize,
    /// Most records a generator job (`gen:N`) may ask for.
    pub max_job_records: u64,
    /// The directory `POST /jobs` may read `.csv` and `.parquet` files
    /// from, relative to `storage.base_path` unless absolute. Paths in a
    /// job are relative to it and may not leave it (no `..`, no symlink
    /// pointing outside). The command line reads any path it is given.
    pub import_dir: PathBuf,
}

/// Idempotency keys of ingests (the HTTP API's `Idempotency-Key`, the
/// command line's `ingest --idempotency-key`): how long a key is kept, so
/// that a retry with it is answered with the first answer instead of being
/// stored again. Both bounds hold: a key is forgotten once it is older than
/// `retention_hours`, or once `max_keys` newer keys have been stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Keys kept at most (the newest); each costs about 150 bytes of
    /// memory plus its length.
    pub max_keys: usize,
    /// Hours a key is kept after its batch was stored.
    pub retention_hours: f64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            max_keys: 100_000,
            retention_hours: 24.0,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            base_path: PathBuf::from("output/07_tiered"),
            wal_path: PathBuf::from("wal"),
            cold_path: PathBuf::from("cold"),
            catalog: PathBuf::from("catalog.sqlite"),
        }
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_mb: 100.0,
            fsync: true,
        }
    }
}

impl Default for HotConfig {
    fn default() -> Self {
        HotConfig {
            max_records: 1_000_000,
            eviction_threshold_pct: 0.95,
            refuse_at_pct: 1.0,
        }
    }
}

impl Default for WarmConfig {
    fn default() -> Self {
        WarmConfig {
            max_memory_mb: 2048.0,
            eviction_threshold_pct: 0.95,
            migrate_to_pct: 0.75,
            refuse_at_pct: 1.0,
            device: "auto".into(),
        }
    }
}

impl Default for ColdConfig {
    fn default() -> Self {
        ColdConfig {
            compression: "zstd".into(),
            row_group_rows: 131_072,
            page_rows: 8192,
            bars_kept: 1000,
            url: None,
            endpoint: None,
            allow_http: false,
            region: None,
            timeout_s: 30.0,
            shared: false,
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            output_batch_size: 4096,
            answer_cache_mb: 64.0,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_mb: 64.0,
            max_concurrent_ingests: 2,
            ingest_wait_s: 10.0,
            request_timeout_s: 30.0,
            min_body_rate_kbs: 64.0,
            header_read_timeout_s: 10.0,
            max_connections: 512,
            max_streams: 64,
            shutdown_grace_s: 10.0,
            max_running_jobs: 2,
            max_job_batch_size: 100_000,
            max_job_records: 100_000_000,
            import_dir: PathBuf::from("import"),
        }
    }
}

/// Where the cold tier lives ([`Config::cold_location`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ColdLocation {
    /// A local directory.
    Local(PathBuf),
    /// A prefix (no leading or trailing `/`; empty for the bucket's root)
    /// of an S3 bucket, on AWS or at `endpoint`.
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        allow_http: bool,
        region: Option<String>,
        timeout_s: f64,
    },
}

/// The environment variables read by [`Config::load`], with what they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("SSIG_STORAGE_PATH", "storage.base_path"),
    ("SSIG_MODE", "mode (simple | trading)"),
    ("SSIG_WAL_SEGMENT_MB", "wal.segment_mb"),
    ("SSIG_WAL_FSYNC", "wal.fsync (true | false)"),
    ("SSIG_HOT_MAX_RECORDS", "hot_tier.max_records"),
    ("SSIG_WARM_MAX_MEMORY_MB", "warm_tier.max_memory_mb"),
    ("SSIG_DEVICE", "warm_tier.device (auto | cpu | gpu)"),
    (
        "SSIG_COLD_COMPRESSION",
        "cold_tier.compression (zstd | snappy | lz4 | none)",
    ),
    ("SSIG_BARS_KEPT", "cold_tier.bars_kept"),
    (
        "SSIG_COLD_URL",
        "cold_tier.url (s3://bucket/prefix | file:///dir)",
    ),
    (
        "SSIG_COLD_ENDPOINT",
        "cold_tier.endpoint (an S3-compatible server)",
    ),
    (
        "SSIG_COLD_ALLOW_HTTP",
        "cold_tier.allow_http (true | false)",
    ),
    ("SSIG_COLD_SHARED", "cold_tier.shared (true | false)"),
    ("SSIG_QUERY_BATCH_SIZE", "query.output_batch_size"),
    ("SSIG_ANSWER_CACHE_MB", "query.answer_cache_mb"),
    ("SSIG_MAX_BODY_MB", "server.max_body_mb"),
    ("SSIG_MAX_INGESTS", "server.max_concurrent_ingests"),
    ("SSIG_MAX_CONNECTIONS", "server.max_connections"),
    ("SSIG_IMPORT_DIR", "server.import_dir"),
    ("SSIG_IDEMPOTENCY_KEYS", "idempotency.max_keys"),
    ("SSIG_IDEMPOTENCY_HOURS", "idempotency.retention_hours"),
];

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Parses a JSON file; missing keys take their defaults.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses JSON text (errors carry serde's line and column).
    pub fn from_json(text: &str) -> Result<Config> {
        serde_json::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Applies `SSIG_*` overrides read through `get` (a seam for tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
            value
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("{key}={value:?} is not a valid value")))
        }
        for &(key, _) in ENV_VARS {
            let Some(value) = get(key) else { continue };
            match key {
                "SSIG_STORAGE_PATH" => self.storage.base_path = PathBuf::from(value),
                "SSIG_MODE" => {
                    self.mode = Some(Mode::parse(value.trim()).ok_or_else(|| {
                        Error::Config(format!("{key}={value:?}: expected simple or trading"))
                    })?)
                }
                "SSIG_WAL_SEGMENT_MB" => self.wal.segment_mb = parse(key, &value)?,
                "SSIG_WAL_FSYNC" => self.wal.fsync = parse(key, &value)?,
                "SSIG_HOT_MAX_RECORDS" => self.hot_tier.max_records = parse(key, &value)?,
                "SSIG_WARM_MAX_MEMORY_MB" => self.warm_tier.max_memory_mb = parse(key, &value)?,
                "SSIG_DEVICE" => self.warm_tier.device = value,
                "SSIG_COLD_COMPRESSION" => self.cold_tier.compression = value,
                "SSIG_BARS_KEPT" => self.cold_tier.bars_kept = parse(key, &value)?,
                "SSIG_COLD_URL" => self.cold_tier.url = Some(value),
                "SSIG_COLD_ENDPOINT" => self.cold_tier.endpoint = Some(value),
                "SSIG_COLD_ALLOW_HTTP" => self.cold_tier.allow_http = parse(key, &value)?,
                "SSIG_COLD_SHARED" => self.cold_tier.shared = parse(key, &value)?,
                "SSIG_QUERY_BATCH_SIZE" => self.query.output_batch_size = parse(key, &value)?,
                "SSIG_ANSWER_CACHE_MB" => self.query.answer_cache_mb = parse(key, &value)?,
                "SSIG_MAX_BODY_MB" => self.server.max_body_mb = parse(key, &value)?,
                "SSIG_MAX_INGESTS" => self.server.max_concurrent_ingests = parse(key, &value)?,
                "SSIG_MAX_CONNECTIONS" => self.server.max_connections = parse(key, &value)?,
                "SSIG_IMPORT_DIR" => self.server.import_dir = PathBuf::from(value),
                "SSIG_IDEMPOTENCY_KEYS" => self.idempotency.max_keys = parse(key, &value)?,
                "SSIG_IDEMPOTENCY_HOURS" => self.idempotency.retention_hours = parse(key, &value)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks ranges and names that serde cannot.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(what));
        let num = fmt_num;
        if !(self.wal.segment_mb > 0.0 && self.wal.segment_mb.is_finite()) {
            return bad(format!(
                "wal.segment_mb must be positive, got {}",
                num(self.wal.segment_mb)
            ));
        }
        if self.hot_tier.max_records == 0 {
            return bad("hot_tier.max_records must be at least 1".into());
        }
        for (key, v) in [
            (
                "hot_tier.eviction_threshold_pct",
                self.hot_tier.eviction_threshold_pct,
            ),
            (
                "warm_tier.eviction_threshold_pct",
                self.warm_tier.eviction_threshold_pct,
            ),
            ("warm_tier.migrate_to_pct", self.warm_tier.migrate_to_pct),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(format!("{key} must be in (0, 1], got {}", num(v)));
            }
        }
        for (key, v, at_least) in [
            (
                "hot_tier.refuse_at_pct",
                self.hot_tier.refuse_at_pct,
                self.hot_tier.eviction_threshold_pct,
            ),
            (
                "warm_tier.refuse_at_pct",
                self.warm_tier.refuse_at_pct,
                self.warm_tier.eviction_threshold_pct,
            ),
        ] {
            if !(v >= at_least && v <= 100.0) {
                return bad(format!(
                    "{key} must be between the tier's eviction_threshold_pct ({}) and 100, got {}",
                    num(at_least),
                    num(v)
                ));
            }
        }
        if self.warm_tier.migrate_to_pct > self.warm_tier.eviction_threshold_pct {
            return bad(
                "warm_tier.migrate_to_pct must not exceed warm_tier.eviction_threshold_pct".into(),
            );
        }
        if !(self.warm_tier.max_memory_mb > 0.0 && self.warm_tier.max_memory_mb.is_finite()) {
            return bad(format!(
                "warm_tier.max_memory_mb must be positive, got {}",
                num(self.warm_tier.max_memory_mb)
            ));
        }
        if !["auto", "cpu", "gpu"].contains(&self.warm_tier.device.as_str()) {
            return bad(format!(
                "warm_tier.device must be auto, cpu or gpu, got {:?}",
                self.warm_tier.device
            ));
        }
        self.cold_tier.parquet_compression()?;
        if self.cold_tier.row_group_rows == 0 || self.cold_tier.page_rows == 0 {
            return bad("cold_tier.row_group_rows and page_rows must be at least 1".into());
        }
        // A cold_tier.url that cannot be used is refused here (no request
        // is made).
        self.cold_location()?;
        if self.cold_tier.bars_kept > MAX_BARS_KEPT {
            return bad(format!(
                "cold_tier.bars_kept must be at most {MAX_BARS_KEPT}, got {}",
                self.cold_tier.bars_kept
            ));
        }
        if self.query.output_batch_size == 0 {
            return bad("query.output_batch_size must be at least 1".into());
        }
        let mb = self.query.answer_cache_mb;
        if !(0.0..=1e6).contains(&mb) {
            return bad(format!(
                "query.answer_cache_mb must be between 0 and 1000000, got {}",
                num(mb)
            ));
        }
        let sv = &self.server;
        for (key, v, max) in [
            ("server.max_body_mb", sv.max_body_mb, 4096.0),
            ("server.ingest_wait_s", sv.ingest_wait_s, 3600.0),
            ("server.request_timeout_s", sv.request_timeout_s, 600.0),
            (
                "server.header_read_timeout_s",
                sv.header_read_timeout_s,
                3600.0,
            ),
            ("server.shutdown_grace_s", sv.shutdown_grace_s, 600.0),
        ] {
            if !(v > 0.0 && v <= max) {
                return bad(format!(
                    "{key} must be above 0 and at most {}, got {}",
                    num(max),
                    num(v)
                ));
            }
        }
        if !(0.0..=1e6).contains(&sv.min_body_rate_kbs) {
            return bad(format!(
                "server.min_body_rate_kbs must be 0 (off) to 1000000, got {}",
                num(sv.min_body_rate_kbs)
            ));
        }
        for (key, v, max) in [
            ("server.max_streams", sv.max_streams, 100_000),
            ("server.max_running_jobs", sv.max_running_jobs, 64),
            (
                "server.max_job_batch_size",
                sv.max_job_batch_size,
                1_000_000,
            ),
        ] {
            if !(1..=max).contains(&v) {
                return bad(format!("{key} must be 1 to {max}, got {v}"));
            }
        }
        if sv.max_job_records == 0 {
            return bad("server.max_job_records must be at least 1".into());
        }
        if !(1..=10_000).contains(&sv.max_concurrent_ingests) {
            return bad(format!(
                "server.max_concurrent_ingests must be 1 to 10000, got {}",
                sv.max_concurrent_ingests
            ));
        }
        if !(1..=1_000_000).contains(&sv.max_connections) {
            return bad(format!(
                "server.max_connections must be 1 to 1000000, got {}",
                sv.max_connections
            ));
        }
        let id = &self.idempotency;
        if !(1..=10_000_000).contains(&id.max_keys) {
            return bad(format!(
                "idempotency.max_keys must be 1 to 10000000, got {}",
                id.max_keys
            ));
        }
        if !(id.retention_hours > 0.0 && id.retention_hours <= 8760.0) {
            return bad(format!(
                "idempotency.retention_hours must be above 0 and at most 8760, got {}",
                num(id.retention_hours)
            ));
        }
        Ok(())
    }

    /// The directory `POST /jobs` reads from.
    pub fn import_dir(&self) -> PathBuf {
        self.storage.base_path.join(&self.server.import_dir)
    }

    /// The WAL directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.storage.base_path.join(&self.storage.wal_path)
    }

    /// The cold tier directory (of a local tier; see [`Config::cold_location`]).
    pub fn cold_dir(&self) -> PathBuf {
        self.storage.base_path.join(&self.storage.cold_path)
    }

    /// Where the cold tier lives: `cold_tier.url` if set, else
    /// [`Config::cold_dir`]. A URL that cannot be used is [`Error::Config`]
    /// (checked here, with no request made; `store::objects` makes the
    /// client).
    pub fn cold_location(&self) -> Result<ColdLocation> {
        let Some(url) = &self.cold_tier.url else {
            return Ok(ColdLocation::Local(self.cold_dir()));
        };
        // Credentials in the URL would be dropped by the S3 client (it
        // reads them from the environment only) and written into logs and
        // the catalog's record of the tier: refused first, whatever else
        // is wrong, and never repeated.
        if without_userinfo(url) != *url {
            return Err(Error::Config(
                "cold_tier.url: credentials do not go in the URL (it is not repeated here, so that they are not either); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if any) in the environment".into(),
            ));
        }
        let bad = |why: &str| Error::Config(format!("cold_tier.url {url:?}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a query or fragment has no meaning here"));
        }
        match parsed.scheme() {
            "file" => parsed
                .to_file_path()
                .map(ColdLocation::Local)
                .map_err(|()| bad("not a local path")),
            "s3" | "s3a" => {
                if parsed.port().is_some() {
                    return Err(bad(
                        "a port belongs to the server, not the bucket: give the server as cold_tier.endpoint (http://host:port) and the URL as s3://bucket/prefix",
                    ));
                }
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("no bucket (expected s3://bucket/prefix)"))?
                    .to_string();
                if let Some(why) = bad_bucket_name(&bucket) {
                    return Err(bad(&why));
                }
                // The URL parser resolves `.` and `..` away; a prefix that
                // says them is refused rather than silently moved.
                let raw_path = url.split_once("://").map_or("", |(_, rest)| rest);
                if raw_path.split(['/', '?', '#']).any(|s| {
                    s == "."
                        || s == ".."
                        || s.eq_ignore_ascii_case("%2e%2e")
                        || s.eq_ignore_ascii_case("%2e")
                }) {
                    return Err(bad("the prefix may not hold . or .. segments"));
                }
                // Object keys as the table's readers spell them: a prefix
                // the URL had to escape (spaces, `%`, non-ASCII) would be
                // decoded by one client and not another.
                // One leading slash (the URL's) and one trailing one are
                // not part of the prefix; any other empty segment
                // (`s3://b//p`) would be a different key, so it is refused
                // rather than dropped.
                let path = parsed.path();
                let path = path.strip_prefix('/').unwrap_or(path);
                let prefix = path.strip_suffix('/').unwrap_or(path).to_string();
                let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=+".contains(c);
                if !prefix.chars().all(safe)
                    || (!prefix.is_empty() && prefix.split('/').any(str::is_empty))
                {
                    return Err(bad(
                        "the prefix may hold only ASCII letters, digits and - _ . = + between single slashes",
                    ));
                }
                if prefix.len() > MAX_PREFIX_BYTES {
                    return Err(bad(&format!(
                        "the prefix is {} bytes; S3 keys are at most 1,024 bytes and the tier's own names add up to {} to it, so keep the prefix to {MAX_PREFIX_BYTES} bytes",
                        prefix.len(),
                        1024 - MAX_PREFIX_BYTES
                    )));
                }
                // A store's tier holds `year=…/` partitions, `_delta_log/`,
                // `_store` and `_quarantine/` under its prefix, and its open
                // judges every object there. A store whose prefix has such a
                // segment could sit inside another store's tier, which would
                // take its files for strays and set them aside.
                if let Some(seg) = prefix
                    .split('/')
                    .find(|s| s.contains('=') || s.starts_with('_') || s.starts_with('.'))
                {
                    return Err(bad(&format!(
                        "the prefix segment {seg:?} is spelled like a name inside a cold tier (a key=value partition, or a name starting with _ or .); another store at the prefix above would take this store's files for its own strays; choose a segment without = and not starting with _ or ."
                    )));
                }
                let t = self.cold_tier.timeout_s;
                if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
                    return Err(Error::Config(format!(
                        "cold_tier.timeout_s must be in (0, 3600], got {t}"
                    )));
                }
                if let Some(endpoint) = &self.cold_tier.endpoint {
                    let e = url::Url::parse(endpoint).map_err(|e| {
                        Error::Config(format!("cold_tier.endpoint {endpoint:?}: {e}"))
                    })?;
                    match e.scheme() {
                        "https" => {}
                        "http" if self.cold_tier.allow_http => {}
                        "http" => {
                            return Err(Error::Config(format!(
                                "cold_tier.endpoint {endpoint:?} is plain HTTP: set cold_tier.allow_http (SSIG_COLD_ALLOW_HTTP=true) to use it"
                            )))
                        }
                        other => {
                            return Err(Error::Config(format!(
                                "cold_tier.endpoint {endpoint:?}: scheme {other:?} (expected http or https)"
                            )))
                        }
                    }
                }
                Ok(ColdLocation::S3 {
                    bucket,
                    prefix,
                    endpoint: self.cold_tier.endpoint.clone(),
                    allow_http: self.cold_tier.allow_http,
                    region: self.cold_tier.region.clone(),
                    timeout_s: t,
                })
            }
            other => Err(bad(&format!(
                "unsupported scheme {other:?} (expected file:// or s3://)"
            ))),
        }
    }

    /// The catalog database.
    pub fn catalog_path(&self) -> PathBuf {
        self.storage.base_path.join(&self.storage.catalog)
    }

    /// WAL segment size in bytes.
    pub fn segment_bytes(&self) -> u64 {
        (self.wal.segment_mb * 1_048_576.0) as u64
    }

    /// Warm tier budget in bytes.
    pub fn warm_budget_bytes(&self) -> u64 {
        (self.warm_tier.max_memory_mb * 1_048_576.0) as u64
    }
}

/// `url` with anything before an `@` in its authority (user, password)
/// replaced by `***`: for messages, which must not repeat credentials.
/// The authority is what follows the scheme's `:` (and `//`) up to the
/// next `/`, `?` or `#`; a URL that does not parse is treated the same.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once(':') else {
        return url.to_string();
    };
    let slashes = (rest.len() - rest.trim_start_matches('/').len()).min(2);
    let (lead, rest) = rest.split_at(slashes);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}:{lead}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// The longest object-store prefix a cold tier takes, in bytes: S3 keys
/// are at most 1,024 bytes, and the longest key the tier writes under its
/// prefix, a set-aside file's note
/// (`/_quarantine/year=YYYY/month=MM/day=DD/part-<20>-<20>-<32>.parquet.why`,
/// 130 bytes) or a Delta log checkpoint, takes at most 160 more.
pub const MAX_PREFIX_BYTES: usize = 1024 - 160;

/// A number for a message: as written for everyday sizes, in scientific
/// notation when huge or tiny (`1e308`, not 309 digits).
pub fn fmt_num(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Why `bucket` cannot name an S3 bucket, or `None`. The rule is the one
/// every S3 server shares: 3 to 255 characters of ASCII letters, digits,
/// `.`, `-` and `_`, starting and ending with a letter or a digit, no `..`
/// (AWS's rule for new buckets is stricter: 63 characters, lower case,
/// no `_`; older buckets and other servers allow those, so they are let
/// through and the server says). Anything else (a `%` escape, a space)
/// would reach the server spelled one way or another, never as written.
pub(crate) fn bad_bucket_name(bucket: &str) -> Option<String> {
    let n = bucket.len();
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !(3..=255).contains(&n) {
        Some(format!("the bucket name {bucket:?} is {n} characters; S3 bucket names are 3 to 63 (255 for older buckets)"))
    } else if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_".contains(*c)))
    {
        Some(format!("the bucket name {bucket:?} holds {c:?}; S3 bucket names hold only letters, digits, '.', '-' (and '_' in older buckets)"))
    } else if !ends_ok(bucket.chars().next()) || !ends_ok(bucket.chars().last()) {
        Some(format!(
            "the bucket name {bucket:?} must start and end with a letter or a digit"
        ))
    } else if bucket.contains("..") {
        Some(format!(
            "the bucket name {bucket:?} holds '..'; S3 bucket names never do"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_are_refused_without_repeating_them() {
        for url in [
            "s3://AKID:SECRETXYZ@/p",
            "s3://AKID:SECRETXYZ@bkt/p?x=1",
            "s3:/AKID:SECRETXYZ@bkt/p",
            "s3:AKID:SECRETXYZ@bkt/p",
            "file://AKID:SECRETXYZ@host/tmp/x",
            "http://AKID:SECRETXYZ@bkt/p",
            "s3://AKID:SECRETXYZ@bkt:9000/p",
            "s3a://:SECRETXYZ@bkt/p",
        ] {
            let mut c = Config::default();
            c.cold_tier.url = Some(url.into());
            let e = c.cold_location().map(|_| ()).unwrap_err().to_string();
            assert!(!e.contains("SECRETXYZ"), "{url}: {e}");
            assert!(e.contains("credentials"), "{url}: {e}");
        }
        assert_eq!(without_userinfo("s3://bkt/a@b"), "s3://bkt/a@b");
        assert_eq!(without_userinfo("s3://u:p@bkt/a"), "s3://***@bkt/a");
        assert_eq!(without_userinfo("no url"), "no url");
        assert_eq!(without_userinfo("file:///tmp@x/y"), "file:///tmp@x/y");
    }

    #[test]
    fn huge_and_tiny_numbers_are_written_short_in_messages() {
        let mut c = Config::default();
        c.server.max_body_mb = 1e308;
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("got 1e308") && e.len() < 120, "{e}");
        assert_eq!(fmt_num(64.0), "64");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(1e-9), "1e-9");
        assert_eq!(fmt_num(f64::NAN), "NaN");
    }

    #[test]
    fn missing_keys_take_defaults() {
        let c = Config::from_json(r#"{"hot_tier": {"max_records": 5}}"#).unwrap();
        assert_eq!(c.hot_tier.max_records, 5);
        assert_eq!(c.hot_tier.eviction_threshold_pct, 0.95);
        assert_eq!(c.warm_tier, WarmConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_json(r#"{"hot_tier": {"max_recs": 5}}"#).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("max_recs"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let e = Config::from_json(r#"{"hot_tier": {"max_records": "many"}}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }

    #[test]
    fn environment_overrides_file() {
        let mut c = Config::from_json(r#"{"hot_tier": {"max_records": 5}}"#).unwrap();
        c.apply_env(|k| match k {
            "SSIG_HOT_MAX_RECORDS" => Some("77".into()),
            "SSIG_STORAGE_PATH" => Some("/tmp/x".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.hot_tier.max_records, 77);
        assert_eq!(c.storage.base_path, PathBuf::from("/tmp/x"));
        let e = c
            .apply_env(|k| (k == "SSIG_HOT_MAX_RECORDS").then(|| "lots".into()))
            .unwrap_err();
        assert!(e.to_string().contains("SSIG_HOT_MAX_RECORDS"), "{e}");
    }

    #[test]
    fn check_refuses_bad_ranges() {
        let mut c = Config::default();
        c.cold_tier.compression = "brotli9".into();
        assert!(c.check().is_err());
        let mut c = Config::default();
        c.warm_tier.migrate_to_pct = 0.99;
        assert!(c.check().is_err());
        for mb in [-1.0, f64::NAN, 2e6] {
            let mut c = Config::default();
            c.query.answer_cache_mb = mb;
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains("query.answer_cache_mb"), "{e}");
        }
    }
}
