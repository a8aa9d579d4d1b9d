//! The SQLite catalog: cold files, the migration watermark, ingestion jobs,
//! data-quality results and the retention log.
//!
//! Every statement binds its values as parameters; no SQL text is ever built
//! from data. The database runs in WAL journal mode with `synchronous=FULL`,
//! so a committed transaction survives a crash.
//!
//! SQLite does not checksum its pages, so the rows that decide what a query
//! reads protect themselves:
//!
//! - each `files` row carries `row_crc`, a CRC-32C over its fields
//!   ([`row_crc`]); a row that fails it is an error naming the row, never
//!   a file silently pruned, misread or deleted;
//! - the watermark has a history: `migrations` holds one row per committed
//!   migration, LSNs `lsn_lo..=lsn_hi`, each starting where the one before
//!   ended. The watermark must be the last row's `lsn_hi`, and every file
//!   must belong to one of them (checked by the engine when it opens).
//!
//! `idempotency_keys` keeps the idempotency keys of batches that have left
//! the WAL for the cold tier (written in the migration's transaction, see
//! [`crate::store::idempotency`]), within the configured retention.
//!
//! `bar_pages` keeps materialised OHLCV bars ([`crate::store::bars`]): the
//! newest buckets per (symbol, timeframe), each with its exact partial, in
//! pages of one span (an hour of 1-minute bars, a day of 1-hour bars; a
//! page is one row, so a migration writes tens of rows, not thousands),
//! each page a zstd frame with a CRC-32C, updated in the migration's own
//! transaction. `bar_keys` has a row per (symbol, timeframe): from which
//! bucket its pages are complete once older ones were dropped, and its
//! pages' count, bars and summed CRCs, itself under a CRC-32C, so that a
//! page deleted or added by anything else is noticed too.
//! `meta.bars_watermark_lsn` says which cold watermark the bars describe;
//! when it is not the catalog's watermark (a repaired catalog, a store
//! from before bars, bars found damaged), the engine rebuilds them from the
//! cold files when it next opens to write.
//!
//! `meta.catalog_version` is 3. A catalog from before (no version) that
//! holds no file and no watermark is upgraded in place when opened; one
//! that does is refused, and `07_gpu_tiered repair` rebuilds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::agg::Partial;
use crate::error::{Error, Result};
use crate::store::bars::{BarsUpdate, Timeframe};
use crate::store::cold::ColdFile;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id          INTEGER PRIMARY KEY,
    partition   TEXT    NOT NULL,
    path        TEXT    NOT NULL UNIQUE,
    rows        INTEGER NOT NULL,
    min_ts      INTEGER NOT NULL,
    max_ts      INTEGER NOT NULL,
    symbols     TEXT    NOT NULL,  -- JSON array, sorted
    bytes       INTEGER NOT NULL,
    lsn_lo      INTEGER NOT NULL,
    lsn_hi      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,  -- unix seconds
    crc32c      INTEGER NOT NULL DEFAULT 0,  -- of the whole file
    row_crc     INTEGER NOT NULL DEFAULT 0   -- of this row's other fields
);
CREATE INDEX IF NOT EXISTS files_time ON files (min_ts, max_ts);
CREATE TABLE IF NOT EXISTS migrations (
    lsn_lo       INTEGER PRIMARY KEY,
    lsn_hi       INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,
    note         TEXT              -- set by repair
);
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY,
    source        TEXT    NOT NULL,
    state         TEXT    NOT NULL,  -- pending running done failed cancelled
    records_total INTEGER,
    records_done  INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
CREATE TABLE IF NOT EXISTS quality (
    id                INTEGER PRIMARY KEY,
    symbol            TEXT    NOT NULL,
    start_ts          INTEGER NOT NULL,
    end_ts            INTEGER NOT NULL,
    interval_ns       INTEGER NOT NULL,
    records           INTEGER NOT NULL,
    expected_buckets  INTEGER NOT NULL,
    filled_buckets    INTEGER NOT NULL,
    completeness      REAL    NOT NULL,
    missing_intervals INTEGER NOT NULL,
    gaps              INTEGER NOT NULL,
    longest_gap_ns    INTEGER NOT NULL,
    duplicates        INTEGER NOT NULL,
    computed_at       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT    PRIMARY KEY,
    fingerprint INTEGER NOT NULL,  -- XXH64 of the encoded batch, as i64
    lsn         INTEGER NOT NULL,  -- the WAL record that stored it
    records     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL   -- unix seconds
);
CREATE INDEX IF NOT EXISTS idempotency_keys_lsn ON idempotency_keys (lsn);
CREATE TABLE IF NOT EXISTS wal_segments (
    first_lsn  INTEGER PRIMARY KEY,  -- the segment wal-<first_lsn>.arrows exists
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS retained_files (
    path       TEXT    PRIMARY KEY,  -- a cold file retention deleted
    partition  TEXT    NOT NULL,
    lsn_lo     INTEGER NOT NULL,
    lsn_hi     INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    crc32c     INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bar_pages (
    symbol    TEXT    NOT NULL,
    timeframe INTEGER NOT NULL,  -- seconds
    page      INTEGER NOT NULL,  -- start of the page's span, ns since the epoch (UTC)
    bars      INTEGER NOT NULL,  -- bars in it
    crc       INTEGER NOT NULL,  -- CRC-32C of symbol, timeframe, page, state
    state     BLOB    NOT NULL,  -- each bar's bucket (i64 LE), length (u16 LE), exact partial: after a 0 byte, or a zstd frame
    PRIMARY KEY (symbol, timeframe, page)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bar_keys (
    symbol        TEXT    NOT NULL,
    timeframe     INTEGER NOT NULL,
    complete_from INTEGER,           -- NULL: the pages hold every cold row of the key
    pages         INTEGER NOT NULL,  -- its bar_pages rows,
    bars          INTEGER NOT NULL,  -- their bars,
    page_crcs     INTEGER NOT NULL,  -- and the sum of their CRCs
    crc           INTEGER NOT NULL,  -- CRC-32C of the fields before
    PRIMARY KEY (symbol, timeframe)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retention_log (
    id         INTEGER PRIMARY KEY,
    partition  TEXT    NOT NULL,
    files      INTEGER NOT NULL,
    rows       INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
);
";

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The catalog format this code writes (`meta.catalog_version`): 3 records
/// the store's ID, the WAL segments and the files retention deleted.
/// A version 2 catalog is upgraded in place (its new tables start empty).
pub const VERSION: &str = "3";

/// The catalog version before this one, upgraded in place.
const PREVIOUS: &str = "2";

/// CRC-32C over a `files` row's fields (all but `id`, `created_at` and
/// itself), each in a fixed encoding: text as its bytes and a 0, integers as
/// 8 little-endian bytes.
pub fn row_crc(f: &ColdFile) -> u32 {
    let mut crc = 0;
    let text =
        |crc: u32, s: &str| crc32c::crc32c_append(crc32c::crc32c_append(crc, s.as_bytes()), &[0]);
    crc = text(crc, &f.partition);
    crc = text(crc, &f.path.to_string_lossy());
    crc = text(crc, &serde_json::to_string(&f.symbols).unwrap_or_default());
    for v in [
        f.rows as i64,
        f.min_ts,
        f.max_ts,
        f.bytes as i64,
        f.lsn_lo as i64,
        f.lsn_hi as i64,
        f.crc32c as i64,
    ] {
        crc = crc32c::crc32c_append(crc, &v.to_le_bytes());
    }
    crc
}

/// A `files` row as read: the file, or the row's path and why it cannot be
/// trusted.
pub type FileRow = std::result::Result<ColdFile, BadRow>;

/// A `files` row that cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    pub path: String,
    pub why: String,
}

/// One committed migration: WAL records `lsn_lo..=lsn_hi` went to the cold
/// tier (its files may since have gone to retention).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub lsn_lo: u64,
    pub lsn_hi: u64,
    /// Why repair wrote the row, when it did.
    pub note: Option<String>,
}

/// An idempotency key and the answer of the ingest that stored its batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub key: String,
    /// XXH64 of the batch as the WAL encodes it.
    pub fingerprint: u64,
    /// The LSN the batch was stored at.
    pub lsn: u64,
    /// Records in the batch.
    pub records: u64,
    /// Unix seconds when it was stored.
    pub created_s: i64,
}

/// How long idempotency keys are kept: the newest `max_keys`, none older
/// than `min_created_s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRetention {
    pub max_keys: usize,
    pub min_created_s: i64,
}

/// A cold file retention deleted: where it was, the LSNs it held, and its
/// size and CRC-32C, so that a copy left on disk by an interrupted
/// retention can be recognised as that file and no other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedFile {
    pub path: PathBuf,
    pub partition: String,
    pub lsn_lo: u64,
    pub lsn_hi: u64,
    pub bytes: u64,
    pub crc32c: u32,
}

/// Where an ingestion job is: `pending` until a worker takes it, then
/// `running`, then one of the final states. Stored and served as its
/// lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    /// Every state, in the order a job moves through them.
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the catalog and served by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not change again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for JobState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl rusqlite::types::ToSql for JobState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for JobState {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        JobState::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| {
                rusqlite::types::FromSqlError::Other(format!("unknown job state {s:?}").into())
            })
    }
}

/// An ingestion job's row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub source: String,
    pub state: JobState,
    pub records_total: Option<i64>,
    pub records_done: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A stored data-quality result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Quality {
    pub symbol: String,
    pub start_ts: i64,
    pub end_ts: i64,
    pub interval_ns: i64,
    pub records: i64,
    pub expected_buckets: i64,
    pub filled_buckets: i64,
    pub completeness: f64,
    pub missing_intervals: i64,
    pub gaps: i64,
    pub longest_gap_ns: i64,
    pub duplicates: i64,
}

/// The catalog database.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// The cold tier's state as bars describe it ([`cold_state`]), kept
    /// between lookups: reading it costs a pass over `files` (2.4 ms for
    /// 10,000 files), and only this catalog changes the files while its
    /// process holds the store's lock. Cleared by every method that does.
    cold_state: Option<String>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("path", &self.path).finish()
    }
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`. A catalog of an
    /// earlier version is upgraded if it holds no file and no watermark, and
    /// refused otherwise.
    pub fn open(path: &Path) -> Result<Catalog> {
        let err = |e| Error::catalog(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let had_files: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'files'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            > 0;
        let catalog = Catalog {
            conn,
            path: path.to_path_buf(),
            cold_state: None,
        };
        if had_files {
            catalog.upgrade()?;
        }
        catalog.conn.execute_batch(SCHEMA).map_err(err)?;
        if catalog.meta("catalog_version")?.as_deref() != Some(VERSION) {
            catalog.set_meta("catalog_version", VERSION)?;
        }
        Ok(catalog)
    }

    /// Brings a catalog from before versions to version 2 when that needs
    /// no guess (no file, no watermark); refuses otherwise.
    fn upgrade(&self) -> Result<()> {
        // The same refusals as a read-only open; then only a catalog
        // without a version (and so, having passed, without files) changes.
        self.check_readable()?;
        if self.meta("catalog_version")?.is_some() {
            return Ok(());
        }
        self.conn
            .execute_batch(
                "ALTER TABLE files ADD COLUMN crc32c INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE files ADD COLUMN row_crc INTEGER NOT NULL DEFAULT 0;",
            )
            .map_err(self.err())
    }

    /// Opens an existing catalog read-only, changing nothing (for repair,
    /// which reads what it can of an old or damaged one).
    pub fn open_read_only(path: &Path) -> Result<Catalog> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::catalog(path, e))?;
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
            cold_state: None,
        })
    }

    /// An empty catalog in memory (for a read-only engine over a directory
    /// that holds no store: nothing is created on disk).
    pub fn open_in_memory() -> Result<Catalog> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| Error::catalog(&path, e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| Error::catalog(&path, e))?;
        Ok(Catalog {
            conn,
            path,
            cold_state: None,
        })
    }

    /// For a catalog opened read-only: refuses one written before catalog
    /// versions that holds files (only `repair` can bring it up to date) or
    /// one of a version this build does not know.
    pub fn check_readable(&self) -> Result<()> {
        match self.meta("catalog_version")?.as_deref() {
            Some(VERSION) | Some(PREVIOUS) => Ok(()),
            Some(v) => Err(Error::corrupt(
                self.path.display().to_string(),
                0,
                format!("catalog version {v:?} is not one this build knows ({VERSION})"),
            )),
            None => {
                let files: i64 = self
                    .conn
                    .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
                    .map_err(self.err())?;
                if files > 0 || self.meta("cold_watermark_lsn")?.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "the catalog {} was written by an earlier version, without checksums; nothing was changed; `07_gpu_tiered repair` rebuilds it from the cold files and the WAL",
                        self.path.display()
                    )));
                }
                Ok(())
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| Error::catalog(&self.path, e)
    }

    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Sets a value in the meta table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        upsert_meta(&self.conn, key, value).map_err(self.err())
    }

    /// Whether the database has a table of this name (a catalog opened
    /// read-only is read as it is, even from before a table existed).
    pub fn has_table(&self, name: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(self.err())
    }

    /// The store's ID and the LSN from which every WAL segment carries it
    /// (segments before were written before the store had an ID).
    pub fn store_id(&self) -> Result<Option<(String, u64)>> {
        let Some(id) = self.meta("store_id")? else {
            return Ok(None);
        };
        let from = match self.meta("store_id_from_lsn")? {
            None => 1,
            Some(v) => v.parse().map_err(|_| {
                Error::corrupt(
                    self.path.display().to_string(),
                    0,
                    format!("meta store_id_from_lsn is {v:?}, not a number"),
                )
            })?,
        };
        Ok(Some((id, from)))
    }

    /// Gives the store its ID, once: WAL segments from `from_lsn` on carry it.
    pub fn set_store_id(&mut self, id: &str, from_lsn: u64) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        for (k, v) in [
            ("store_id", id.to_string()),
            ("store_id_from_lsn", from_lsn.to_string()),
        ] {
            upsert_meta(&tx, k, &v).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// The first LSNs of the WAL segments the log has created and not
    /// deleted, in order; `None` while the catalog has never recorded them
    /// (a store from before catalog version 3, until it is opened once).
    pub fn wal_segments(&self) -> Result<Option<Vec<u64>>> {
        if !self.has_table("wal_segments")? || self.meta("wal_segments_recorded")?.is_none() {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT first_lsn FROM wal_segments ORDER BY first_lsn")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0).map(|v| v as u64))
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map(Some)
            .map_err(self.err())
    }

    /// Records WAL segments as existing (and that the catalog records them
    /// from now on), in one transaction.
    pub fn record_segments(&mut self, first_lsns: &[u64]) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        for &lsn in first_lsns {
            tx.execute(
                "INSERT OR IGNORE INTO wal_segments (first_lsn, created_at) VALUES (?1, ?2)",
                params![lsn as i64, now_secs()],
            )
            .map_err(err)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('wal_segments_recorded', '1')",
            [],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Forgets deleted WAL segments, in one transaction.
    pub fn forget_segments(&mut self, first_lsns: &[u64]) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        for &lsn in first_lsns {
            tx.execute(
                "DELETE FROM wal_segments WHERE first_lsn = ?1",
                [lsn as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// The cold files retention deleted, by path (empty for a catalog from
    /// before version 3, which did not record them).
    pub fn retained_files(&self) -> Result<std::collections::HashMap<PathBuf, RetainedFile>> {
        let mut out = std::collections::HashMap::new();
        if !self.has_table("retained_files")? {
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT path, partition, lsn_lo, lsn_hi, bytes, crc32c FROM retained_files")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RetainedFile {
                    path: PathBuf::from(r.get::<_, String>(0)?),
                    partition: r.get(1)?,
                    lsn_lo: r.get::<_, i64>(2)? as u64,
                    lsn_hi: r.get::<_, i64>(3)? as u64,
                    bytes: r.get::<_, i64>(4)? as u64,
                    crc32c: r.get::<_, i64>(5)? as u32,
                })
            })
            .map_err(self.err())?;
        for row in rows {
            let f = row.map_err(self.err())?;
            out.insert(f.path.clone(), f);
        }
        Ok(out)
    }

    /// The highest LSN whose records are all in the cold tier (0: none).
    pub fn watermark(&self) -> Result<u64> {
        match self.meta("cold_watermark_lsn")? {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| {
                Error::corrupt(
                    self.path.display().to_string(),
                    0,
                    format!("meta cold_watermark_lsn is {v:?}, not a number"),
                )
            }),
        }
    }

    /// Every cold file, oldest migration first. A row that fails its
    /// checksum is an error naming it.
    pub fn files(&self) -> Result<Vec<ColdFile>> {
        let mut out = Vec::new();
        for (id, row) in self.file_rows()? {
            let file = row.map_err(|BadRow { path, why }| {
                Error::corrupt(
                    self.path.display().to_string(),
                    0,
                    format!(
                        "files row {id} ({path}): {why}; nothing was changed; `07_gpu_tiered repair` rebuilds the catalog from the cold files"
                    ),
                )
            })?;
            out.push(file);
        }
        Ok(out)
    }

    /// Every `files` row by id: the file, or its path and why the row cannot
    /// be trusted (it fails its checksum, or its symbols do not parse).
    pub fn file_rows(&self) -> Result<Vec<(i64, FileRow)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT partition, path, rows, min_ts, max_ts, symbols, bytes, lsn_lo, lsn_hi,
                        crc32c, row_crc, id
                 FROM files ORDER BY lsn_lo, path",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let symbols: String = r.get(5)?;
                Ok((
                    ColdFile {
                        partition: r.get(0)?,
                        path: PathBuf::from(r.get::<_, String>(1)?),
                        rows: r.get::<_, i64>(2)? as u64,
                        min_ts: r.get(3)?,
                        max_ts: r.get(4)?,
                        symbols: Vec::new(),
                        bytes: r.get::<_, i64>(6)? as u64,
                        lsn_lo: r.get::<_, i64>(7)? as u64,
                        lsn_hi: r.get::<_, i64>(8)? as u64,
                        crc32c: r.get::<_, i64>(9)? as u32,
                    },
                    symbols,
                    r.get::<_, i64>(10)? as u32,
                    r.get::<_, i64>(11)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (mut file, symbols, stored, id) = row.map_err(self.err())?;
            let path = file.path.display().to_string();
            let checked = match serde_json::from_str(&symbols) {
                Err(e) => Err(BadRow {
                    path,
                    why: format!("symbols are not a JSON list: {e}"),
                }),
                Ok(list) => {
                    file.symbols = list;
                    let want = row_crc(&file);
                    if want == stored {
                        Ok(file)
                    } else {
                        Err(BadRow {
                            path,
                            why: format!(
                                "the row fails its checksum (stored {stored:#010x}, computed {want:#010x})"
                            ),
                        })
                    }
                }
            };
            out.push((id, checked));
        }
        Ok(out)
    }

    /// Every committed migration, oldest first.
    pub fn migrations(&self) -> Result<Vec<Migration>> {
        let mut stmt = self
            .conn
            .prepare("SELECT lsn_lo, lsn_hi, note FROM migrations ORDER BY lsn_lo")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Migration {
                    lsn_lo: r.get::<_, i64>(0)? as u64,
                    lsn_hi: r.get::<_, i64>(1)? as u64,
                    note: r.get(2)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())
    }

    /// Records a migration of WAL records `lsn_lo..=lsn_hi` in one
    /// transaction: its files, its row in `migrations`, and the new
    /// watermark `lsn_hi`. After this returns, the files are part of the
    /// store. `lsn_lo` must be the watermark + 1.
    pub fn commit_migration(&mut self, files: &[ColdFile], lsn_lo: u64, lsn_hi: u64) -> Result<()> {
        self.commit_migration_with_bars(files, lsn_lo, lsn_hi, &[], None, None)
    }

    /// [`Catalog::commit_migration`], and in the same transaction the
    /// idempotency keys of the migrated batches (their WAL records are
    /// about to be deleted), then the keys `retention` no longer keeps
    /// dropped, and the migration's bars ([`BarsCommit`]): merged into the kept ones
    /// when those describe the watermark before this migration (else left
    /// stale for the engine to rebuild).
    pub fn commit_migration_with_bars(
        &mut self,
        files: &[ColdFile],
        lsn_lo: u64,
        lsn_hi: u64,
        keys: &[StoredKey],
        retention: Option<KeyRetention>,
        bars: Option<BarsCommit<'_>>,
    ) -> Result<()> {
        self.cold_state = None;
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let watermark = self.watermark()?;
        let bars_current = self.bars_current()?;
        if lsn_lo != watermark + 1 || lsn_hi < lsn_lo {
            return Err(Error::InvalidArgument(format!(
                "a migration of LSNs {lsn_lo}..={lsn_hi} does not follow the watermark {watermark}"
            )));
        }
        let mut tx = self.conn.transaction().map_err(err)?;
        insert_files(&tx, files).map_err(err)?;
        tx.execute(
            "INSERT INTO migrations (lsn_lo, lsn_hi, committed_at) VALUES (?1, ?2, ?3)",
            params![lsn_lo as i64, lsn_hi as i64, now_secs()],
        )
        .map_err(err)?;
        upsert_meta(&tx, "cold_watermark_lsn", &lsn_hi.to_string()).map_err(err)?;
        insert_keys(&tx, keys).map_err(err)?;
        if let Some(r) = retention {
            prune_keys(&tx, r).map_err(err)?;
        }
        if let (Some(bars), true) = (bars, bars_current) {
            // Bars are derived: if the kept ones cannot be merged into (a
            // damaged row), the migration still commits, and the bars are
            // marked stale for the engine to rebuild from the cold files.
            let sp = tx.savepoint().map_err(&err)?;
            match apply_bars(&sp, bars) {
                Ok(()) => {
                    mark_current(&sp).map_err(&err)?;
                    sp.commit().map_err(&err)?;
                }
                Err(_) => {
                    drop(sp);
                    tx.execute("DELETE FROM meta WHERE key = ?1", [BARS_WATERMARK])
                        .map_err(&err)?;
                }
            }
        }
        tx.commit().map_err(err)
    }

    // ---- bars ----

    /// The cold watermark the kept bars describe (`None`: never built).
    /// Whether the kept bars describe the cold tier as the catalog lists it
    /// now: `meta.bars_watermark_lsn` holds the watermark and a summary of
    /// the files (count, summed CRCs, rows) as they were when the bars
    /// last matched them, so that files added or deleted by anything that
    /// did not update the bars (an earlier build's retention) make them
    /// stale, as does a value that is anything else.
    pub fn bars_current(&self) -> Result<bool> {
        bars_current(&self.conn).map_err(self.err())
    }

    /// Records the kept bars as describing the cold tier as it is now (for
    /// a catalog whose bars were built outside a migration, as in tests).
    pub fn mark_bars_current(&self) -> Result<()> {
        mark_current(&self.conn).map_err(self.err())
    }

    /// Marks the kept bars as not describing the cold tier (found damaged):
    /// lookups read raw rows, and the next writing open rebuilds them.
    pub fn mark_bars_stale(&self) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [BARS_WATERMARK])
            .map(|_| ())
            .map_err(self.err())
    }

    /// The quick check of every kept bar's key: its row's CRC, its pages'
    /// count, bars and summed CRCs against the row (no page is read), and
    /// a row per timeframe for each of `symbols`. The problems found.
    pub fn check_bar_keys(
        &self,
        symbols: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<String>> {
        self.check_bars_with(symbols, false).map(|(_, p)| p)
    }

    /// Reads and checks every kept bar (each key row's CRC and its pages'
    /// count, bars and CRCs, every page's CRC and contents), and that each
    /// of `symbols` (those the cold tier holds) has a key row per
    /// timeframe. Returns the pages checked and the problems found.
    pub fn check_bars(
        &self,
        symbols: &std::collections::BTreeSet<String>,
    ) -> Result<(u64, Vec<String>)> {
        self.check_bars_with(symbols, true)
    }

    fn check_bars_with(
        &self,
        symbols: &std::collections::BTreeSet<String>,
        pages_too: bool,
    ) -> Result<(u64, Vec<String>)> {
        let err = self.err();
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        // Every key row against its pages' totals, in one pass.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT k.symbol, k.timeframe, k.complete_from, k.pages, k.bars, k.page_crcs, k.crc,
                        coalesce(p.n, 0), coalesce(p.b, 0), coalesce(p.c, 0)
                 FROM bar_keys k LEFT JOIN
                     (SELECT symbol, timeframe, count(*) AS n, sum(bars) AS b, sum(crc) AS c
                      FROM bar_pages GROUP BY symbol, timeframe) p
                 ON p.symbol = k.symbol AND p.timeframe = k.timeframe",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    KeyRow::at(r, 2)?,
                    r.get::<_, i64>(6)?,
                    (
                        r.get::<_, i64>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, i64>(9)?,
                    ),
                ))
            })
            .map_err(&err)?;
        for row in rows {
            let (symbol, seconds, k, crc, totals) = row.map_err(&err)?;
            let Ok(tf) = Timeframe::parse(&format!("{seconds}s")) else {
                problems.push(format!(
                    "bars of {symbol} at an unknown timeframe of {seconds} s"
                ));
                continue;
            };
            let what = format!("the catalog's {} bars of {symbol}", tf.name());
            if key_crc(&symbol, tf, &k) as i64 != crc {
                problems.push(format!("{what}: its row's CRC-32C does not match"));
            } else if totals != (k.pages, k.bars, k.page_crcs) {
                problems.push(format!(
                    "{what}: {}",
                    pages_differ(totals, (k.pages, k.bars, k.page_crcs))
                ));
            }
            seen.insert((symbol, tf));
        }
        drop(stmt);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT symbol, timeframe FROM bar_pages
                 EXCEPT SELECT symbol, timeframe FROM bar_keys",
            )
            .map_err(&err)?;
        let orphans = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(&err)?;
        for o in orphans {
            let (symbol, seconds) = o.map_err(&err)?;
            problems.push(format!(
                "pages of bars of {symbol} at {seconds} s without a row for them"
            ));
        }
        drop(stmt);
        for symbol in symbols {
            for tf in crate::store::bars::TIMEFRAMES {
                if !seen.contains(&(symbol.clone(), tf)) {
                    problems.push(format!(
                        "no kept {} bars of {symbol}, which the cold tier holds",
                        tf.name()
                    ));
                }
            }
        }
        let mut pages = 0u64;
        if pages_too {
            let mut stmt = self
                .conn
                .prepare("SELECT symbol, timeframe, page, crc, state FROM bar_pages")
                .map_err(&err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .map_err(&err)?;
            for row in rows {
                let (symbol, seconds, page, crc, state) = row.map_err(&err)?;
                pages += 1;
                let Ok(tf) = Timeframe::parse(&format!("{seconds}s")) else {
                    continue;
                };
                if let Err(e) = read_page(&symbol, tf, page, &state, crc) {
                    problems.push(e.to_string());
                }
            }
        }
        Ok((pages, problems))
    }

    /// Replaces every kept bar with `update` (built from the whole cold
    /// tier), marked as describing `watermark`; refused if the catalog's
    /// watermark moved on meanwhile.
    pub fn replace_bars(&mut self, update: &BarsUpdate, keep: usize, watermark: u64) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let now: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'cold_watermark_lsn'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if now.unwrap_or_else(|| "0".into()) != watermark.to_string() {
            return Err(Error::Inconsistent(
                "the cold tier changed while its bars were rebuilt".into(),
            ));
        }
        tx.execute_batch("DELETE FROM bar_pages; DELETE FROM bar_keys;")
            .map_err(err)?;
        apply_bars(
            &tx,
            BarsCommit {
                update,
                keep,
                in_cold: &|_| false,
            },
        )
        .map_err(err)?;
        mark_current(&tx).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The newest `limit` kept bars of (`symbol`, `tf`), newest first, with
    /// the window's state, read in one transaction.
    pub fn latest_bars(&mut self, symbol: &str, tf: Timeframe, limit: usize) -> Result<KeptBars> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let meta = |k: &str| -> rusqlite::Result<Option<String>> {
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()
        };
        let num = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok());
        let watermark = num(meta("cold_watermark_lsn").map_err(err)?).unwrap_or(0);
        let describes = meta(BARS_WATERMARK).map_err(err)?;
        let cold = match &self.cold_state {
            Some(c) => c.clone(),
            None => cold_state(&tx).map_err(err)?,
        };
        let current = describes.as_deref() == Some(cold.as_str());
        let with_path = |e: Error| match e {
            Error::Corrupt {
                what,
                offset,
                reason,
            } => Error::Corrupt {
                what: format!("{what} ({})", path.display()),
                offset,
                reason,
            },
            e => e,
        };
        let key = read_key(&tx, symbol, tf).map_err(with_path)?;
        check_key_pages(&tx, symbol, tf, key.as_ref()).map_err(with_path)?;
        let complete_from = key.as_ref().and_then(|k| k.complete_from);
        let mut stmt = tx
            .prepare_cached(
                "SELECT page, crc, state FROM bar_pages WHERE symbol = ?1 AND timeframe = ?2
                 ORDER BY page DESC",
            )
            .map_err(err)?;
        let mut pages = stmt.query(params![symbol, tf.seconds]).map_err(err)?;
        let mut rows = Vec::new();
        while rows.len() < limit {
            let Some(r) = pages.next().map_err(err)? else {
                break;
            };
            let (page, crc, state): (i64, i64, Vec<u8>) = (
                r.get(0).map_err(err)?,
                r.get(1).map_err(err)?,
                r.get(2).map_err(err)?,
            );
            let mut bars = read_page(symbol, tf, page, &state, crc).map_err(with_path)?;
            rows.extend(std::mem::take(&mut bars).into_iter().rev());
        }
        rows.truncate(limit);
        drop(pages);
        drop(stmt);
        tx.finish().map_err(err)?;
        self.cold_state = Some(cold.clone());
        Ok(KeptBars {
            rows,
            key: key.is_some(),
            complete_from,
            watermark,
            current,
            describes,
            cold,
        })
    }

    /// The idempotency keys kept here that `retention` still keeps, oldest
    /// LSN first.
    pub fn idempotency_keys(&self, retention: KeyRetention) -> Result<Vec<StoredKey>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, fingerprint, lsn, records, created_at FROM idempotency_keys
                 WHERE created_at >= ?1 ORDER BY lsn DESC LIMIT ?2",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                params![retention.min_created_s, retention.max_keys as i64],
                |r| {
                    Ok(StoredKey {
                        key: r.get(0)?,
                        fingerprint: r.get::<_, i64>(1)? as u64,
                        lsn: r.get::<_, i64>(2)? as u64,
                        records: r.get::<_, i64>(3)? as u64,
                        created_s: r.get(4)?,
                    })
                },
            )
            .map_err(self.err())?;
        let mut out = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())?;
        out.reverse();
        Ok(out)
    }

    /// Adds idempotency keys (for repair, which writes a migration of its
    /// own when it mends a gap in the log).
    pub fn add_keys(&mut self, keys: &[StoredKey]) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        insert_keys(&tx, keys).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Writes a rebuilt catalog's files, migrations and watermark in one
    /// transaction (used by repair, on a new, empty catalog).
    pub fn rebuild(
        &mut self,
        mode: &str,
        files: &[ColdFile],
        migrations: &[Migration],
        watermark: u64,
    ) -> Result<()> {
        self.cold_state = None;
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        insert_files(&tx, files).map_err(err)?;
        for m in migrations {
            tx.execute(
                "INSERT INTO migrations (lsn_lo, lsn_hi, committed_at, note) VALUES (?1, ?2, ?3, ?4)",
                params![m.lsn_lo as i64, m.lsn_hi as i64, now_secs(), m.note],
            )
            .map_err(err)?;
        }
        for (k, v) in [
            ("mode", mode.to_string()),
            ("cold_watermark_lsn", watermark.to_string()),
        ] {
            upsert_meta(&tx, k, &v).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Copies the jobs, quality results, retention log and idempotency keys
    /// of the catalog at `old` into this one; returns the rows copied per table, or the error
    /// of a table that could not be read (the others are still copied).
    pub fn copy_history(&mut self, old: &Path) -> Vec<(&'static str, Result<usize>)> {
        let mut out = Vec::new();
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        if let Err(e) = self
            .conn
            .execute("ATTACH DATABASE ?1 AS old", [old.to_string_lossy()])
        {
            out.push(("jobs, quality, retention_log", Err(err(e))));
            return out;
        }
        for (table, sql) in [
            (
                "jobs",
                "INSERT INTO main.jobs (id, source, state, records_total, records_done, error,
                     created_at, started_at, finished_at)
                 SELECT id, source, state, records_total, records_done, error, created_at,
                     started_at, finished_at FROM old.jobs",
            ),
            (
                "quality",
                "INSERT INTO main.quality (id, symbol, start_ts, end_ts, interval_ns, records,
                     expected_buckets, filled_buckets, completeness, missing_intervals, gaps,
                     longest_gap_ns, duplicates, computed_at)
                 SELECT id, symbol, start_ts, end_ts, interval_ns, records, expected_buckets,
                     filled_buckets, completeness, missing_intervals, gaps, longest_gap_ns,
                     duplicates, computed_at FROM old.quality",
            ),
            (
                "retention_log",
                "INSERT INTO main.retention_log (id, partition, files, rows, bytes, deleted_at)
                 SELECT id, partition, files, rows, bytes, deleted_at FROM old.retention_log",
            ),
            (
                "idempotency_keys",
                "INSERT INTO main.idempotency_keys (key, fingerprint, lsn, records, created_at)
                 SELECT key, fingerprint, lsn, records, created_at FROM old.idempotency_keys",
            ),
            (
                "retained_files",
                "INSERT INTO main.retained_files (path, partition, lsn_lo, lsn_hi, bytes, crc32c,
                     deleted_at)
                 SELECT path, partition, lsn_lo, lsn_hi, bytes, crc32c, deleted_at
                 FROM old.retained_files",
            ),
        ] {
            out.push((table, self.conn.execute(sql, []).map_err(err)));
        }
        let _ = self.conn.execute("DETACH DATABASE old", []);
        out
    }

    /// Partitions retention has deleted (from `retention_log`).
    pub fn retained_partitions(&self) -> Result<std::collections::BTreeSet<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT partition FROM retention_log")
            .map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// Removes the rows of every file in partitions strictly before
    /// `partition` (a `year=/month=/day=` string, which sorts by date); returns
    /// the removed files. The caller deletes them from disk after this commits.
    /// Bars of buckets before `bars_before` (ns) go in the same transaction,
    /// and a window complete from before it is complete from the start
    /// (what the cold tier holds of its key is all in the window).
    pub fn drop_partitions_before(
        &mut self,
        partition: &str,
        bars_before: i64,
    ) -> Result<Vec<ColdFile>> {
        let doomed: Vec<ColdFile> = self
            .files()?
            .into_iter()
            .filter(|f| f.partition.as_str() < partition)
            .collect();
        self.drop_files_and_bars(&doomed, Some(bars_before))?;
        Ok(doomed)
    }

    /// The cutoff partition of a retention in progress: set by
    /// [`Catalog::begin_retention`] before the cold tier's Delta table
    /// commits the retention's `remove` actions, cleared in the transaction
    /// that drops the rows. It is the proof an open needs before it drops a
    /// file the table removed (the file's partition is below it).
    pub fn retention_pending(&self) -> Result<Option<String>> {
        self.meta(RETENTION_PENDING)
    }

    /// Records that a retention of the partitions before `partition` is
    /// about to commit to the cold tier's Delta table.
    pub fn begin_retention(&self, partition: &str) -> Result<()> {
        self.set_meta(RETENTION_PENDING, partition)
    }

    /// Clears [`Catalog::retention_pending`]: the open found nothing of
    /// that retention in the table to finish (it stopped before its table
    /// commit, and is run again by whoever runs retention).
    pub fn end_retention(&self) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [RETENTION_PENDING])
            .map_err(self.err())?;
        Ok(())
    }

    /// Removes the rows of `files`, as retention does (they are recorded as
    /// retained, so that a copy left on disk is proven a leftover), for a
    /// retention the cold tier's Delta table committed and the catalog did
    /// not. The bars are marked stale (rebuilt at the next writing open).
    pub fn drop_files(&mut self, files: &[ColdFile]) -> Result<()> {
        self.drop_files_and_bars(files, None)
    }

    fn drop_files_and_bars(&mut self, doomed: &[ColdFile], bars_before: Option<i64>) -> Result<()> {
        self.cold_state = None;
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let mut tx = self.conn.transaction().map_err(err)?;
        let bars_were_current = bars_current(&tx).map_err(err)?;
        let mut by_partition: std::collections::BTreeMap<&str, (i64, i64, i64)> =
            Default::default();
        for f in doomed {
            tx.execute(
                "DELETE FROM files WHERE path = ?1",
                [f.path.to_string_lossy()],
            )
            .map_err(err)?;
            tx.execute(
                "INSERT OR REPLACE INTO retained_files
                     (path, partition, lsn_lo, lsn_hi, bytes, crc32c, deleted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    f.path.to_string_lossy(),
                    f.partition,
                    f.lsn_lo as i64,
                    f.lsn_hi as i64,
                    f.bytes as i64,
                    f.crc32c as i64,
                    now_secs()
                ],
            )
            .map_err(err)?;
            let e = by_partition.entry(&f.partition).or_default();
            e.0 += 1;
            e.1 += f.rows as i64;
            e.2 += f.bytes as i64;
        }
        for (p, (files, rows, bytes)) in by_partition {
            tx.execute(
                "INSERT INTO retention_log (partition, files, rows, bytes, deleted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p, files, rows, bytes, now_secs()],
            )
            .map_err(err)?;
        }
        tx.execute("DELETE FROM meta WHERE key = ?1", [RETENTION_PENDING])
            .map_err(err)?;
        // Bars are derived: if they cannot be cut (a damaged key row, or
        // no cut given), retention still commits and the bars are marked
        // stale.
        let sp = tx.savepoint().map_err(err)?;
        match bars_before.map(|b| drop_bars_before(&sp, b)) {
            Some(Ok(())) => {
                if bars_were_current {
                    mark_current(&sp).map_err(err)?;
                }
                sp.commit().map_err(err)?
            }
            _ => {
                drop(sp);
                tx.execute("DELETE FROM meta WHERE key = ?1", [BARS_WATERMARK])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    // ---- jobs ----

    /// Creates a pending job reading `source`.
    pub fn create_job(&self, source: &str) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO jobs (source, state, created_at) VALUES (?1, 'pending', ?2)",
                params![source, now_secs()],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// One job.
    pub fn job(&self, id: i64) -> Result<Job> {
        self.conn
            .query_row(
                "SELECT id, source, state, records_total, records_done, error, created_at,
                        started_at, finished_at FROM jobs WHERE id = ?1",
                [id],
                job_row,
            )
            .optional()
            .map_err(self.err())?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, source, state, records_total, records_done, error, created_at,
                        started_at, finished_at FROM jobs ORDER BY id DESC",
            )
            .map_err(self.err())?;
        let rows = stmt.query_map([], job_row).map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())
    }

    /// Moves a job to `state` (setting start or finish times as fitting).
    pub fn set_job_state(&self, id: i64, state: JobState, error: Option<&str>) -> Result<()> {
        let now = now_secs();
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET state = ?2, error = COALESCE(?3, error),
                     started_at = CASE WHEN ?2 = 'running' THEN ?4 ELSE started_at END,
                     finished_at = CASE WHEN ?2 IN ('done', 'failed', 'cancelled') THEN ?4
                                        ELSE finished_at END
                 WHERE id = ?1",
                params![id, state, error, now],
            )
            .map_err(self.err())?;
        if n == 0 {
            return Err(Error::NotFound(format!("job {id}")));
        }
        Ok(())
    }

    /// Marks every job still `running` as failed, interrupted: called when
    /// the store opens for writing, which only one process can do at a
    /// time, so a running job is one whose process stopped. Returns their
    /// ids.
    pub fn fail_interrupted_jobs(&self) -> Result<Vec<i64>> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM jobs WHERE state = 'running' ORDER BY id")
                .map_err(self.err())?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(self.err())?;
            rows.collect::<rusqlite::Result<_>>().map_err(self.err())?
        };
        for &id in &ids {
            self.set_job_state(
                id,
                JobState::Failed,
                Some("interrupted: the process running it stopped before it finished; the records it stored are kept; create the job again to read the rest"),
            )?;
        }
        Ok(ids)
    }

    /// Records progress of a running job.
    pub fn set_job_progress(&self, id: i64, done: i64, total: Option<i64>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE jobs SET records_done = ?2, records_total = COALESCE(?3, records_total)
                 WHERE id = ?1",
                params![id, done, total],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Asks a job to stop: a pending job is cancelled at once, a running one
    /// stops before its next batch. Finished jobs are left as they are.
    pub fn cancel_job(&self, id: i64) -> Result<Job> {
        let job = self.job(id)?;
        if !job.state.is_finished() {
            self.set_job_state(id, JobState::Cancelled, None)?;
        }
        self.job(id)
    }

    /// Deletes finished jobs (done, failed, cancelled) that finished at
    /// least `max_age` ago (to the second); returns how many. Pending and
    /// running jobs are never deleted.
    pub fn cleanup_jobs(&self, max_age: std::time::Duration) -> Result<usize> {
        let age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now_secs().saturating_sub(age);
        self.conn
            .execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled')
                 AND finished_at IS NOT NULL AND finished_at <= ?1",
                [cutoff],
            )
            .map_err(self.err())
    }

    // ---- quality ----

    /// Stores a data-quality result, keeping the newest `keep` of its
    /// symbol.
    pub fn add_quality(&self, q: &Quality, keep: usize) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO quality (symbol, start_ts, end_ts, interval_ns, records,
                     expected_buckets, filled_buckets, completeness, missing_intervals, gaps,
                     longest_gap_ns, duplicates, computed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    q.symbol,
                    q.start_ts,
                    q.end_ts,
                    q.interval_ns,
                    q.records,
                    q.expected_buckets,
                    q.filled_buckets,
                    q.completeness,
                    q.missing_intervals,
                    q.gaps,
                    q.longest_gap_ns,
                    q.duplicates,
                    now_secs()
                ],
            )
            .map_err(self.err())?;
        self.conn
            .execute(
                "DELETE FROM quality WHERE symbol = ?1 AND id NOT IN
                     (SELECT id FROM quality WHERE symbol = ?1 ORDER BY id DESC LIMIT ?2)",
                params![q.symbol, keep as i64],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Stored results for `symbol`, newest first.
    pub fn quality(&self, symbol: &str) -> Result<Vec<Quality>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT symbol, start_ts, end_ts, interval_ns, records, expected_buckets,
                        filled_buckets, completeness, missing_intervals, gaps, longest_gap_ns,
                        duplicates
                 FROM quality WHERE symbol = ?1 ORDER BY id DESC",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([symbol], |r| {
                Ok(Quality {
                    symbol: r.get(0)?,
                    start_ts: r.get(1)?,
                    end_ts: r.get(2)?,
                    interval_ns: r.get(3)?,
                    records: r.get(4)?,
                    expected_buckets: r.get(5)?,
                    filled_buckets: r.get(6)?,
                    completeness: r.get(7)?,
                    missing_intervals: r.get(8)?,
                    gaps: r.get(9)?,
                    longest_gap_ns: r.get(10)?,
                    duplicates: r.get(11)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())
    }
}

fn insert_keys(tx: &rusqlite::Transaction<'_>, keys: &[StoredKey]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare(
        "INSERT INTO idempotency_keys (key, fingerprint, lsn, records, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(key) DO UPDATE SET fingerprint = excluded.fingerprint, lsn = excluded.lsn,
             records = excluded.records, created_at = excluded.created_at",
    )?;
    for k in keys {
        insert.execute(params![
            k.key,
            k.fingerprint as i64,
            k.lsn as i64,
            k.records as i64,
            k.created_s
        ])?;
    }
    Ok(())
}

fn prune_keys(tx: &rusqlite::Transaction<'_>, r: KeyRetention) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM idempotency_keys WHERE created_at < ?1",
        [r.min_created_s],
    )?;
    tx.execute(
        "DELETE FROM idempotency_keys WHERE lsn < (SELECT min(lsn) FROM
             (SELECT lsn FROM idempotency_keys ORDER BY lsn DESC LIMIT ?1))",
        [r.max_keys as i64],
    )?;
    Ok(())
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        source: r.get(1)?,
        state: r.get(2)?,
        records_total: r.get(3)?,
        records_done: r.get(4)?,
        error: r.get(5)?,
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

/// Inserts the `files` rows of `files` (created now, each with its row
/// checksum) inside the transaction `conn` is.
fn insert_files(conn: &rusqlite::Connection, files: &[ColdFile]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare(
        "INSERT INTO files (partition, path, rows, min_ts, max_ts, symbols, bytes,
                            lsn_lo, lsn_hi, created_at, crc32c, row_crc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for f in files {
        insert.execute(params![
            f.partition,
            f.path.to_string_lossy(),
            f.rows as i64,
            f.min_ts,
            f.max_ts,
            serde_json::to_string(&f.symbols).unwrap_or_else(|_| "[]".into()),
            f.bytes as i64,
            f.lsn_lo as i64,
            f.lsn_hi as i64,
            now_secs(),
            f.crc32c as i64,
            row_crc(f) as i64
        ])?;
    }
    Ok(())
}

/// The meta key of the watermark the kept bars describe.
/// The meta key of a retention in progress (see [`Catalog::retention_pending`]).
pub const RETENTION_PENDING: &str = "retention_pending_before";
const BARS_WATERMARK: &str = "bars_watermark_lsn";

/// What the catalog keeps of one (symbol, timeframe)'s bars.
#[derive(Debug)]
pub struct KeptBars {
    /// (bucket start ns, partial), newest first.
    pub rows: Vec<(i64, Partial)>,
    /// Whether the key has a row in `bar_keys` (every symbol the cold tier
    /// holds has one per timeframe while the bars describe it).
    pub key: bool,
    /// Set once older buckets were dropped: the window holds every cold row
    /// of buckets from here on, and nothing older.
    pub complete_from: Option<i64>,
    /// The catalog's cold watermark.
    pub watermark: u64,
    /// Whether the bars describe the cold tier as listed now, what they
    /// describe (`meta.bars_watermark_lsn`), and the cold tier now.
    pub current: bool,
    pub describes: Option<String>,
    pub cold: String,
}

/// The cold tier as the bars must describe it: `LSN;files:crcs:rows`.
fn cold_state(conn: &rusqlite::Connection) -> rusqlite::Result<String> {
    let watermark: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'cold_watermark_lsn'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let (files, crcs, rows): (i64, i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(crc32c), 0), coalesce(sum(rows), 0) FROM files",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(format!(
        "{};{files}:{crcs}:{rows}",
        watermark.as_deref().unwrap_or("0")
    ))
}

fn bars_current(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    let describes: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [BARS_WATERMARK],
            |r| r.get(0),
        )
        .optional()?;
    Ok(describes.is_some_and(|d| cold_state(conn).is_ok_and(|c| c == d)))
}

fn mark_current(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    upsert_meta(conn, BARS_WATERMARK, &cold_state(conn)?)
}

/// CRC-32C of a kept page's key and state.
fn page_crc(symbol: &str, tf: Timeframe, page: i64, state: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(symbol.as_bytes());
    c = crc32c::crc32c_append(c, &[0]);
    c = crc32c::crc32c_append(c, &tf.seconds.to_le_bytes());
    c = crc32c::crc32c_append(c, &page.to_le_bytes());
    crc32c::crc32c_append(c, state)
}

/// The bars of a kept page, oldest first, after checking its CRC and that
/// every bar belongs to the page.
fn read_page(
    symbol: &str,
    tf: Timeframe,
    page: i64,
    state: &[u8],
    crc: i64,
) -> Result<Vec<(i64, Partial)>> {
    let what = format!(
        "the catalog's page of {} bars of {symbol} at {page}",
        tf.name()
    );
    if page_crc(symbol, tf, page, state) as i64 != crc {
        return Err(Error::corrupt(what, 0, "its CRC-32C does not match"));
    }
    // Every bar's stored form is under 720 bytes with its header.
    let most = tf.page_bars() * 720;
    let raw;
    let state = match state.split_first() {
        Some((0, bars)) => bars,
        _ => {
            raw = zstd::bulk::decompress(state, most).map_err(|e| {
                Error::corrupt(&what, 0, format!("its zstd frame does not decompress: {e}"))
            })?;
            &raw[..]
        }
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < state.len() {
        let Some(head) = state.get(at..at + 10) else {
            return Err(Error::corrupt(
                what,
                at as u64,
                "a bar's header is cut short",
            ));
        };
        let bucket = i64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let len = u16::from_le_bytes([head[8], head[9]]) as usize;
        if tf.page(bucket) != page || tf.bucket(bucket) != bucket {
            return Err(Error::corrupt(
                what,
                at as u64,
                format!("bucket {bucket} is not one of the page's"),
            ));
        }
        let Some(body) = state.get(at + 10..at + 10 + len) else {
            return Err(Error::corrupt(
                what,
                at as u64,
                "a bar's state is cut short",
            ));
        };
        out.push((bucket, Partial::decode(body, &what)?));
        at += 10 + len;
    }
    Ok(out)
}

/// A page's stored form: its bars in bucket order, one zstd frame (level
/// 1: neighbouring bars share most of their bytes, about 2x smaller).
fn write_page<'a>(
    zstd: &mut zstd::bulk::Compressor<'_>,
    bars: impl Iterator<Item = (i64, &'a Partial)>,
) -> rusqlite::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 * 150);
    for (bucket, p) in bars {
        out.extend_from_slice(&bucket.to_le_bytes());
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        p.encode_into(&mut out);
        // A partial's stored form is under 700 bytes (68 digits at most).
        let len = (out.len() - at - 2) as u16;
        out[at..at + 2].copy_from_slice(&len.to_le_bytes());
    }
    // A page of a few bars is kept as it is, behind a 0 byte: zstd's
    // tables cost more than they save there (and most of a migration's
    // time, for many thinly traded symbols). Larger pages are a zstd
    // frame, whose first byte is never 0.
    if out.len() < PAGE_COMPRESS_FROM {
        out.insert(0, 0);
        return Ok(out);
    }
    zstd.compress(&out)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Raw page bytes from which a page is compressed (about 7 bars).
const PAGE_COMPRESS_FROM: usize = 1024;

fn to_sql_error(e: Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn to_sql_error_io(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Merges `update` into the kept bars, page by page, keeping the newest
/// pages that hold at least `keep` bars per key and raising each key's
/// `complete_from` past what it drops (always to a page's start).
fn apply_bars(tx: &rusqlite::Connection, bars: BarsCommit<'_>) -> rusqlite::Result<()> {
    let BarsCommit {
        update,
        keep,
        in_cold,
    } = bars;
    let mut get = tx.prepare_cached(
        "SELECT bars, crc, state FROM bar_pages WHERE symbol = ?1 AND timeframe = ?2 AND page = ?3",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO bar_pages (symbol, timeframe, page, bars, state, crc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut counts = tx.prepare_cached(
        "SELECT page, bars FROM bar_pages WHERE symbol = ?1 AND timeframe = ?2 ORDER BY page DESC",
    )?;
    let mut zstd = zstd::bulk::Compressor::new(1).map_err(to_sql_error_io)?;
    for ((symbol, tf), key) in &update.keys {
        let sym: &str = symbol;
        let key_row = read_key(tx, sym, *tf).map_err(to_sql_error)?;
        if key_row.is_none() && in_cold(sym) {
            return Err(to_sql_error(Error::corrupt(
                format!("the catalog's {} bars of {sym}", tf.name()),
                0,
                "no row, while the cold tier holds the symbol",
            )));
        }
        // The row's totals are carried forward, page by page, never
        // recounted from the pages: a page lost or added behind this
        // module's back stays a difference that the next check finds.
        let mut row = key_row.unwrap_or(KeyRow {
            complete_from: None,
            pages: 0,
            bars: 0,
            page_crcs: 0,
        });
        let old = row.complete_from;
        let mut floor = old.max(key.floor);
        let mut pages: BTreeMap<i64, Vec<(i64, &Partial)>> = BTreeMap::new();
        for (&bucket, p) in key.buckets.range(floor.unwrap_or(i64::MIN)..) {
            pages.entry(tf.page(bucket)).or_default().push((bucket, p));
        }
        for (page, new) in pages {
            let before: Option<(i64, i64, Vec<u8>)> = get
                .query_row(params![sym, tf.seconds, page], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let (state, bars) = match before {
                // A new page: its bars are the update's, written as they are.
                None => {
                    row.pages += 1;
                    (write_page(&mut zstd, new.iter().copied())?, new.len())
                }
                Some((old_bars, crc, state)) => {
                    // A damaged page is not merged into: the caller marks
                    // the bars stale (the migration still commits) and the
                    // next open rebuilds them from the cold files.
                    let mut bars: BTreeMap<i64, Partial> = read_page(sym, *tf, page, &state, crc)
                        .map_err(to_sql_error)?
                        .into_iter()
                        .collect();
                    for (bucket, p) in new {
                        bars.entry(bucket).or_default().merge(p);
                    }
                    row.bars -= old_bars;
                    row.page_crcs -= crc;
                    let state = write_page(&mut zstd, bars.iter().map(|(b, p)| (*b, p)))?;
                    (state, bars.len())
                }
            };
            let crc = page_crc(sym, *tf, page, &state) as i64;
            put.execute(params![sym, tf.seconds, page, bars as i64, state, crc])?;
            row.bars += bars as i64;
            row.page_crcs += crc;
        }
        // The newest pages holding `keep` bars stay; older ones go.
        if row.bars as usize > keep {
            let mut held = 0usize;
            let mut needed = None;
            let mut rows = counts.query(params![sym, tf.seconds])?;
            while let Some(r) = rows.next()? {
                if needed.is_some() {
                    // An older page than those holding `keep` bars: the
                    // window starts at the oldest of those.
                    floor = floor.max(needed);
                    break;
                }
                held += r.get::<_, i64>(1)? as usize;
                if held >= keep {
                    needed = Some(r.get::<_, i64>(0)?);
                }
            }
        }
        if floor != old {
            if let Some(f) = floor {
                let (pages, bars, crcs) = page_totals_before(tx, sym, *tf, f)?;
                tx.prepare_cached(
                    "DELETE FROM bar_pages WHERE symbol = ?1 AND timeframe = ?2 AND page < ?3",
                )?
                .execute(params![sym, tf.seconds, f])?;
                row.pages -= pages;
                row.bars -= bars;
                row.page_crcs -= crcs;
            }
        }
        row.complete_from = floor;
        write_key_row(tx, sym, *tf, &row)?;
    }
    Ok(())
}

/// A migration's bars as [`Catalog::commit_migration_with_bars`] takes them.
#[derive(Clone, Copy)]
pub struct BarsCommit<'a> {
    pub update: &'a BarsUpdate,
    /// Buckets kept per (symbol, timeframe).
    pub keep: usize,
    /// Whether the cold tier held the symbol before this migration: a key
    /// without a row must then have lost it (asked only for those).
    pub in_cold: &'a dyn Fn(&str) -> bool,
}

/// A `bar_keys` row.
#[derive(Debug)]
struct KeyRow {
    complete_from: Option<i64>,
    pages: i64,
    bars: i64,
    page_crcs: i64,
}

impl KeyRow {
    /// The row's four fields from `r`'s columns `at..at + 4`.
    fn at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<KeyRow> {
        Ok(KeyRow {
            complete_from: r.get(at)?,
            pages: r.get(at + 1)?,
            bars: r.get(at + 2)?,
            page_crcs: r.get(at + 3)?,
        })
    }
}

fn key_crc(symbol: &str, tf: Timeframe, k: &KeyRow) -> u32 {
    let mut c = crc32c::crc32c(symbol.as_bytes());
    c = crc32c::crc32c_append(c, &[0]);
    c = crc32c::crc32c_append(c, &tf.seconds.to_le_bytes());
    c = crc32c::crc32c_append(c, &[k.complete_from.is_some() as u8]);
    c = crc32c::crc32c_append(c, &k.complete_from.unwrap_or(0).to_le_bytes());
    for v in [k.pages, k.bars, k.page_crcs] {
        c = crc32c::crc32c_append(c, &v.to_le_bytes());
    }
    c
}

/// The key row of (`symbol`, `tf`), its CRC checked.
fn read_key(conn: &rusqlite::Connection, symbol: &str, tf: Timeframe) -> Result<Option<KeyRow>> {
    let row = conn
        .prepare_cached(
            "SELECT complete_from, pages, bars, page_crcs, crc FROM bar_keys
             WHERE symbol = ?1 AND timeframe = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![symbol, tf.seconds], |r| {
                Ok((KeyRow::at(r, 0)?, r.get::<_, i64>(4)?))
            })
            .optional()
        })
        .map_err(|e| Error::catalog(Path::new("bar_keys"), e))?;
    match row {
        Some((k, crc)) if key_crc(symbol, tf, &k) as i64 != crc => Err(Error::corrupt(
            format!("the catalog's row of {} bars of {symbol}", tf.name()),
            0,
            "its CRC-32C does not match",
        )),
        other => Ok(other.map(|(k, _)| k)),
    }
}

/// The count, bars and summed CRCs of the key's pages before `page`.
fn page_totals_before(
    conn: &rusqlite::Connection,
    symbol: &str,
    tf: Timeframe,
    page: i64,
) -> rusqlite::Result<(i64, i64, i64)> {
    conn.prepare_cached(
        "SELECT count(*), coalesce(sum(bars), 0), coalesce(sum(crc), 0) FROM bar_pages
         WHERE symbol = ?1 AND timeframe = ?2 AND page < ?3",
    )?
    .query_row(params![symbol, tf.seconds, page], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// The count, bars and summed CRCs of the key's pages, as stored now.
fn page_totals(
    conn: &rusqlite::Connection,
    symbol: &str,
    tf: Timeframe,
) -> rusqlite::Result<(i64, i64, i64)> {
    conn.prepare_cached(
        "SELECT count(*), coalesce(sum(bars), 0), coalesce(sum(crc), 0) FROM bar_pages
         WHERE symbol = ?1 AND timeframe = ?2",
    )?
    .query_row(params![symbol, tf.seconds], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// Checks that the key's pages are those its row describes (none without
/// a row): a page deleted, added or replaced by anything but this module
/// is an error.
fn check_key_pages(
    conn: &rusqlite::Connection,
    symbol: &str,
    tf: Timeframe,
    key: Option<&KeyRow>,
) -> Result<()> {
    let (pages, bars, crcs) =
        page_totals(conn, symbol, tf).map_err(|e| Error::catalog(Path::new("bar_pages"), e))?;
    let want = key.map_or((0, 0, 0), |k| (k.pages, k.bars, k.page_crcs));
    if (pages, bars, crcs) != want {
        return Err(Error::corrupt(
            format!("the catalog's pages of {} bars of {symbol}", tf.name()),
            0,
            pages_differ((pages, bars, crcs), want),
        ));
    }
    Ok(())
}

/// Says how a key's pages (count, bars, summed CRCs) differ from its row.
fn pages_differ(found: (i64, i64, i64), row: (i64, i64, i64)) -> String {
    if (found.0, found.1) == (row.0, row.1) {
        format!(
            "its {} pages of {} bars are not those its row records (their CRCs differ)",
            found.0, found.1
        )
    } else {
        format!(
            "{} pages of {} bars, where its row records {} of {}",
            found.0, found.1, row.0, row.1
        )
    }
}

/// Writes the key row of (`symbol`, `tf`) with its CRC.
fn write_key_row(
    conn: &rusqlite::Connection,
    symbol: &str,
    tf: Timeframe,
    k: &KeyRow,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO bar_keys
             (symbol, timeframe, complete_from, pages, bars, page_crcs, crc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        symbol,
        tf.seconds,
        k.complete_from,
        k.pages,
        k.bars,
        k.page_crcs,
        key_crc(symbol, tf, k) as i64
    ])
    .map(|_| ())
}

/// Retention's share: pages before `before` (ns, a day's start; pages
/// never straddle a day) go, and a key complete from at or before it is
/// complete from the start (what the cold tier keeps of it is all there).
fn drop_bars_before(conn: &rusqlite::Connection, before: i64) -> rusqlite::Result<()> {
    let keys: Vec<(String, i64)> = {
        let mut stmt = conn.prepare("SELECT symbol, timeframe FROM bar_keys")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (symbol, seconds) in keys {
        let tf = Timeframe::parse(&format!("{seconds}s")).map_err(to_sql_error)?;
        let Some(mut row) = read_key(conn, &symbol, tf).map_err(to_sql_error)? else {
            continue;
        };
        let (pages, bars, crcs) = page_totals_before(conn, &symbol, tf, before)?;
        row.pages -= pages;
        row.bars -= bars;
        row.page_crcs -= crcs;
        row.complete_from = row.complete_from.filter(|&f| f > before);
        write_key_row(conn, &symbol, tf, &row)?;
    }
    conn.execute("DELETE FROM bar_pages WHERE page < ?1", [before])?;
    Ok(())
}

/// Sets `key` to `value` in the meta table, inside whatever transaction
/// `conn` is (a `Transaction` derefs to its connection).
fn upsert_meta(conn: &rusqlite::Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_commit_is_visible_with_its_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        assert_eq!(c.watermark().unwrap(), 0);
        let f = ColdFile {
            partition: "year=2024/month=01/day=01".into(),
            path: "year=2024/month=01/day=01/part-1-2.parquet".into(),
            rows: 10,
            min_ts: 1,
            max_ts: 2,
            symbols: vec!["A".into(), "B".into()],
            bytes: 100,
            lsn_lo: 1,
            lsn_hi: 2,
            crc32c: 7,
        };
        c.commit_migration(std::slice::from_ref(&f), 1, 2).unwrap();
        assert_eq!(c.watermark().unwrap(), 2);
        assert_eq!(c.files().unwrap(), vec![f.clone()]);
        assert_eq!(
            c.migrations().unwrap(),
            vec![Migration {
                lsn_lo: 1,
                lsn_hi: 2,
                note: None
            }]
        );
        // A migration must follow the watermark.
        assert!(c.commit_migration(&[], 5, 6).is_err());
        let gone = c
            .drop_partitions_before("year=2024/month=01/day=02", 0)
            .unwrap();
        assert_eq!(gone, vec![f]);
        assert!(c.files().unwrap().is_empty());
    }

    /// Small migrations, each adding a few buckets: the catalog keeps whole
    /// pages holding at least `keep` bars, drops older pages, and says from
    /// where its window is complete; bars merge across migrations.
    #[test]
    fn kept_bars_stay_bounded_and_merge_across_migrations() {
        use crate::store::bars::{BarsUpdate, KeyUpdate, TIMEFRAMES};
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        c.mark_bars_current().unwrap();
        let tf = TIMEFRAMES[0];
        let keep = 7;
        let mut all: BTreeMap<i64, Partial> = BTreeMap::new();
        for m in 0..30u64 {
            let mut key = KeyUpdate::default();
            for i in 0..10 {
                // Each migration's buckets overlap the one before's.
                let bucket = (m as i64 * 8 + i) * tf.nanos();
                let mut p = Partial::default();
                p.add(bucket + i, m as f64 + 0.5, 1.0 + i as f64);
                all.entry(bucket).or_default().merge(&p);
                key.buckets.insert(bucket, Box::new(p));
            }
            let mut update = BarsUpdate::default();
            update.keys.insert((std::sync::Arc::from("A"), tf), key);
            let bars = BarsCommit {
                update: &update,
                keep,
                in_cold: &|_| false,
            };
            c.commit_migration_with_bars(&[], m + 1, m + 1, &[], None, Some(bars))
                .unwrap();
            let kept = c.latest_bars("A", tf, 10_000).unwrap();
            assert!(kept.current);
            assert!(
                kept.rows.len() < keep + tf.page_bars(),
                "{}",
                kept.rows.len()
            );
            if let Some(f) = kept.complete_from {
                assert_eq!(tf.page(f), f);
                assert!(kept.rows.len() >= keep);
                assert!(kept.rows.iter().all(|(b, _)| *b >= f));
            }
            let want: Vec<(i64, Partial)> = all
                .iter()
                .rev()
                .take(kept.rows.len())
                .map(|(b, p)| (*b, p.clone()))
                .collect();
            assert_eq!(kept.rows, want);
        }
        assert!(c.latest_bars("A", tf, 1).unwrap().complete_from.is_some());
    }

    #[test]
    fn jobs_move_through_their_states() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let id = c.create_job("gen:100").unwrap();
        assert_eq!(c.job(id).unwrap().state, "pending");
        c.set_job_state(id, JobState::Running, None).unwrap();
        c.set_job_progress(id, 50, Some(100)).unwrap();
        let j = c.job(id).unwrap();
        assert_eq!(
            (j.state.as_str(), j.records_done, j.records_total),
            ("running", 50, Some(100))
        );
        assert!(j.started_at.is_some());
        assert_eq!(c.cancel_job(id).unwrap().state, "cancelled");
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(c.cleanup_jobs(hour).unwrap(), 0, "finished just now");
        assert_eq!(c.cleanup_jobs(std::time::Duration::MAX).unwrap(), 0);
        let pending = c.create_job("gen:100").unwrap();
        assert_eq!(c.cleanup_jobs(std::time::Duration::ZERO).unwrap(), 1);
        assert_eq!(c.job(pending).unwrap().state, "pending", "kept");
        assert!(matches!(c.job(id), Err(Error::NotFound(_))));
        assert!(matches!(c.cancel_job(99), Err(Error::NotFound(_))));
    }
}
