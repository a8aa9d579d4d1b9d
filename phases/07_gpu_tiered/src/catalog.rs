//! The SQLite catalog: cold files, the migration watermark, ingestion jobs,
//! data-quality results and the retention log.
//!
//! Every statement binds its values as parameters; no SQL text is ever built
//! from data. The database runs in WAL journal mode with `synchronous=FULL`,
//! so a committed transaction survives a crash.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::cold::ColdFile;
use crate::error::{Error, Result};

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
    created_at  INTEGER NOT NULL   -- unix seconds
);
CREATE INDEX IF NOT EXISTS files_time ON files (min_ts, max_ts);
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

/// An ingestion job's row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub source: String,
    pub state: String,
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
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("path", &self.path).finish()
    }
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Catalog> {
        let err = |e| Error::catalog(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Catalog {
            conn,
            path: path.to_path_buf(),
        })
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
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
            .map_err(self.err())
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

    /// Every cold file, oldest migration first.
    pub fn files(&self) -> Result<Vec<ColdFile>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT partition, path, rows, min_ts, max_ts, symbols, bytes, lsn_lo, lsn_hi
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
                    },
                    symbols,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (mut file, symbols) = row.map_err(self.err())?;
            file.symbols = serde_json::from_str(&symbols).map_err(|e| {
                Error::corrupt(
                    self.path.display().to_string(),
                    0,
                    format!(
                        "symbols of {} are not a JSON list: {e}",
                        file.path.display()
                    ),
                )
            })?;
            out.push(file);
        }
        Ok(out)
    }

    /// Records a migration in one transaction: its files and the new
    /// watermark. After this returns, the files are part of the store.
    pub fn commit_migration(&mut self, files: &[ColdFile], watermark: u64) -> Result<()> {
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO files (partition, path, rows, min_ts, max_ts, symbols, bytes,
                                        lsn_lo, lsn_hi, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            for f in files {
                let symbols = serde_json::to_string(&f.symbols).unwrap_or_else(|_| "[]".into());
                insert
                    .execute(params![
                        f.partition,
                        f.path.to_string_lossy(),
                        f.rows as i64,
                        f.min_ts,
                        f.max_ts,
                        symbols,
                        f.bytes as i64,
                        f.lsn_lo as i64,
                        f.lsn_hi as i64,
                        now_secs()
                    ])
                    .map_err(err)?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('cold_watermark_lsn', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [watermark.to_string()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Removes the rows of every file in partitions strictly before
    /// `partition` (a `year=/month=/day=` string, which sorts by date); returns
    /// the removed files. The caller deletes them from disk after this commits.
    pub fn drop_partitions_before(&mut self, partition: &str) -> Result<Vec<ColdFile>> {
        let doomed: Vec<ColdFile> = self
            .files()?
            .into_iter()
            .filter(|f| f.partition.as_str() < partition)
            .collect();
        let path = self.path.clone();
        let err = |e| Error::catalog(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut by_partition: std::collections::BTreeMap<&str, (i64, i64, i64)> =
            Default::default();
        for f in &doomed {
            tx.execute(
                "DELETE FROM files WHERE path = ?1",
                [f.path.to_string_lossy()],
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
        tx.commit().map_err(err)?;
        Ok(doomed)
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
    pub fn set_job_state(&self, id: i64, state: &str, error: Option<&str>) -> Result<()> {
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
        if job.state == "pending" || job.state == "running" {
            self.set_job_state(id, "cancelled", None)?;
        }
        self.job(id)
    }

    /// Deletes finished jobs (done, failed, cancelled) that finished more
    /// than `hours` ago; returns how many.
    pub fn cleanup_jobs(&self, hours: f64) -> Result<usize> {
        let cutoff = now_secs() - (hours * 3600.0) as i64;
        self.conn
            .execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled')
                 AND finished_at IS NOT NULL AND finished_at <= ?1",
                [cutoff],
            )
            .map_err(self.err())
    }

    // ---- quality ----

    /// Stores a data-quality result.
    pub fn add_quality(&self, q: &Quality) -> Result<()> {
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
        };
        c.commit_migration(std::slice::from_ref(&f), 2).unwrap();
        assert_eq!(c.watermark().unwrap(), 2);
        assert_eq!(c.files().unwrap(), vec![f.clone()]);
        let gone = c
            .drop_partitions_before("year=2024/month=01/day=02")
            .unwrap();
        assert_eq!(gone, vec![f]);
        assert!(c.files().unwrap().is_empty());
    }

    #[test]
    fn jobs_move_through_their_states() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let id = c.create_job("gen:100").unwrap();
        assert_eq!(c.job(id).unwrap().state, "pending");
        c.set_job_state(id, "running", None).unwrap();
        c.set_job_progress(id, 50, Some(100)).unwrap();
        let j = c.job(id).unwrap();
        assert_eq!(
            (j.state.as_str(), j.records_done, j.records_total),
            ("running", 50, Some(100))
        );
        assert!(j.started_at.is_some());
        assert_eq!(c.cancel_job(id).unwrap().state, "cancelled");
        assert_eq!(c.cleanup_jobs(1.0).unwrap(), 0, "finished just now");
        assert_eq!(c.cleanup_jobs(0.0).unwrap(), 1);
        assert!(matches!(c.job(id), Err(Error::NotFound(_))));
        assert!(matches!(c.cancel_job(99), Err(Error::NotFound(_))));
    }
}
