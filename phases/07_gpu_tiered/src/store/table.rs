//! The cold tier as an open table: a Delta Lake table whose root is the
//! cold directory, written through delta-rs (`deltalake-core`).
//!
//! The Parquet files stay where [`cold`](super::cold) writes them
//! (`year=YYYY/month=MM/day=DD/part-<lo>-<hi>.parquet`); what the table adds
//! is its log, `_delta_log/`, a sequence of commits (JSON, a Parquet
//! checkpoint every 100) that says which files make up the table at each
//! version (the protocol: <https://github.com/delta-io/delta/blob/master/PROTOCOL.md>).
//! Any Delta reader (Spark, Trino, DuckDB's `delta` extension, DataFusion,
//! the `deltalake` Python package) reads the cold tier as one table from it.
//!
//! # What a commit says
//!
//! A migration commits one `add` action per file: its path, size,
//! partition value (`date`, the file's UTC day), statistics (`numRecords`,
//! `minValues`/`maxValues` of `timestamp` and `symbol`, `nullCount` 0 for
//! every column) and tags naming the store that wrote it and the WAL range
//! it holds; and one `txn` action (Delta's application transaction:
//! `appId` = `squeezed-signals/<store id>`, `version` = the migration's
//! last LSN). The txn version is how a store reads back, after a crash,
//! the last migration the table took from it: written in the same atomic
//! commit as the files, it can never disagree with them. Retention commits
//! `remove` actions, whose tombstones are the proof that a file is no
//! longer in the table.
//!
//! # Schema
//!
//! The table's columns are the store's (see [`crate::schema`]) plus the
//! partition column `date` (Delta `date`), which is not stored in the
//! files (the protocol takes it from each file's partition value).
//! `timestamp` is a Delta `long` of nanoseconds since the epoch: Delta's
//! `timestamp` type holds microseconds, and the store's nanoseconds would
//! not survive it; the files keep their Parquet `TIMESTAMP(NANOS, UTC)`
//! annotation, which readers of the table cast to `long`.
//!
//! # Calls
//!
//! delta-rs is asynchronous. Every call here runs on a thread of its own,
//! on a one-thread tokio runtime made for the call and dropped on that
//! thread, so it can be called (and a [`ColdTable`] dropped) from anywhere:
//! a migration thread, a blocking task or an async task of the HTTP
//! server. A panic inside delta-rs while it reads a damaged log is an error
//! naming the table, not the end of the process.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow_schema::{DataType as ArrowType, Schema};
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, DataType, Remove, Transaction};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::DeltaTable;
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::store::cold::{self, ColdFile};
use crate::store::objects::ColdStore;

/// The table's log directory inside the cold directory.
pub const LOG_DIR: &str = "_delta_log";
/// The partition column.
pub const PARTITION_COLUMN: &str = "date";
/// The tag of an `add` action naming the store that wrote the file.
pub const TAG_STORE: &str = "squeezed_signals.store";
/// The tag of an `add` action giving the WAL range (`<lo>-<hi>`).
pub const TAG_LSN: &str = "squeezed_signals.lsn";

/// A file the table holds, as its `add` action describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFile {
    /// The path as the log spells it (percent-decoded): compared as a
    /// string, never as a [`Path`], whose equality would take `a//b` or
    /// `a/./b` for `a/b`.
    pub raw: String,
    /// [`TableFile::raw`] as a path, relative to the table's root.
    pub path: PathBuf,
    pub bytes: u64,
    /// The WAL range its name gives (`part-<lo>-<hi>.parquet`), if it is
    /// named as a migration names its files.
    pub lsn: Option<(u64, u64)>,
}

/// The table at its latest version.
#[derive(Clone, Debug, Default)]
pub struct TableState {
    pub version: u64,
    /// The last LSN this store committed to the table (its `txn` version).
    pub committed_through: Option<u64>,
    /// The files the table holds.
    pub files: Vec<TableFile>,
    /// The files removed from the table whose tombstones the log still keeps.
    pub removed: HashSet<PathBuf>,
}

impl TableState {
    /// The files the table holds, by their path as the log spells it.
    pub fn by_raw(&self) -> HashMap<&str, &TableFile> {
        self.files.iter().map(|f| (f.raw.as_str(), f)).collect()
    }
}

/// The path of `f` as the log spells it: `year=…/month=…/day=…/part-….parquet`.
pub fn raw_path(f: &ColdFile) -> String {
    path_str(&f.path)
}

/// Whether `raw` is a cold file's name spelled exactly as a migration
/// writes it (what [`raw_path`] gives).
pub fn is_canonical(raw: &str) -> bool {
    let path = Path::new(raw);
    cold::parse_path(path).is_some_and(|(partition, lo, hi)| {
        let store = cold::store_of_path(path);
        raw == format!(
            "{partition}/{}",
            cold::file_name_of(lo, hi, store.as_deref())
        )
    })
}

/// The Delta table over one store's cold directory.
pub struct ColdTable {
    root: PathBuf,
    /// Where its files are (their footers give the `add` statistics).
    cold: ColdStore,
    app_id: String,
    store_id: String,
    table: Mutex<DeltaTable>,
}

impl std::fmt::Debug for ColdTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdTable")
            .field("root", &self.root)
            .field("app_id", &self.app_id)
            .finish()
    }
}

/// Whether the cold tier holds a table (something is at its log's path).
pub fn exists(cold: &ColdStore) -> Result<bool> {
    // Anything under that name (a file, a dangling link) is a log that
    // cannot be read, not the absence of one.
    let log = Path::new(LOG_DIR);
    cold.exists(log).map_err(|e| Error::io(cold.name(log), e))
}

/// The table's application id for a store (`txn.appId`).
pub fn app_id(store_id: &str) -> String {
    format!("squeezed-signals/{store_id}")
}

/// `year=YYYY/month=MM/day=DD` as the `date` partition value `YYYY-MM-DD`.
pub fn date_of_partition(partition: &str) -> Option<String> {
    let day = cold::partition_day(partition)?;
    let ts = squeeze::time::format_timestamp(day.saturating_mul(cold::DAY_NS));
    ts.get(..10).map(str::to_string)
}

fn table_error(root: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    let said = without_backtrace(&e.to_string());
    let said = crate::store::objects::no_credentials(&said).unwrap_or(said);
    Error::Table(format!(
        "the cold tier's Delta table at {}: {what}: {said}",
        root.display(),
    ))
}

/// delta-kernel's errors end with the backtrace of where they were made
/// when `RUST_BACKTRACE` is set (`{source}\n{backtrace}`): the message is
/// the lines before the first frame (`   0: symbol`).
fn without_backtrace(text: &str) -> String {
    let frame = |line: &str| {
        let t = line.trim_start();
        line.len() > t.len()
            && t.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let lines: Vec<&str> = text.lines().take_while(|l| !frame(l)).collect();
    lines.join("\n").trim_end().to_string()
}

/// The Delta type of a store column.
fn delta_type(t: &ArrowType) -> Result<DataType> {
    Ok(match t {
        ArrowType::Timestamp(..) | ArrowType::Int64 => DataType::LONG,
        ArrowType::Int32 => DataType::INTEGER,
        ArrowType::Float64 => DataType::DOUBLE,
        ArrowType::Utf8 => DataType::STRING,
        other => {
            return Err(Error::Config(format!(
                "a column of type {other} has no Delta type here"
            )))
        }
    })
}

impl ColdTable {
    /// Opens the table of the cold tier `cold` (which [`exists`]).
    pub fn open(cold: &ColdStore, store_id: &str) -> Result<ColdTable> {
        let root = cold.root_name();
        let builder = builder(cold)?;
        let table = run(&root, "open", async move {
            let mut t = builder?.build()?;
            t.load().await?;
            Ok(t)
        })?;
        Ok(ColdTable::over(cold, store_id, table))
    }

    fn over(cold: &ColdStore, store_id: &str, table: DeltaTable) -> ColdTable {
        ColdTable {
            root: cold.root_name(),
            cold: cold.clone(),
            app_id: app_id(store_id),
            store_id: store_id.to_string(),
            table: Mutex::new(table),
        }
    }

    /// Creates the table in `cold_dir` with the store's `schema` and the
    /// `date` partition column; it holds no file.
    pub fn create(cold: &ColdStore, schema: &Schema, store_id: &str) -> Result<ColdTable> {
        let root = cold.root_name();
        let builder = builder(cold)?;
        let mut columns = Vec::new();
        for f in schema.fields() {
            columns.push((f.name().clone(), delta_type(f.data_type())?));
        }
        let table = run(&root, "create", async move {
            let t = builder?.build()?;
            let mut create = t
                .create()
                .with_table_name("trades")
                .with_comment("squeezed-signals phase 07 cold tier; timestamp: ns since the epoch");
            for (name, ty) in columns {
                create = create.with_column(name, ty, false, None);
            }
            create
                .with_column(PARTITION_COLUMN, DataType::DATE, false, None)
                .with_partition_columns([PARTITION_COLUMN])
                .with_save_mode(SaveMode::ErrorIfExists)
                // Version 0 or nothing: delta-rs would otherwise retry a
                // create that lost the race for version 0 (another store
                // of a shared tier made the table meanwhile) as version 1,
                // a second CREATE whose new metadata fails every commit
                // the other store then makes.
                .with_commit_properties(CommitProperties::default().with_max_retries(0))
                .await
        })?;
        Ok(ColdTable::over(cold, store_id, table))
    }

    /// The table at its latest version (read from the log again).
    pub fn state(&self) -> Result<TableState> {
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let table = &mut *guard;
        let app_id = self.app_id.clone();
        run(&self.root, "read the log", async move {
            table.update_state().await?;
            let snapshot = table.snapshot()?;
            let store = table.log_store();
            let committed_through = snapshot
                .transaction_version(store.as_ref(), app_id)
                .await?
                .map(|v| v.max(0) as u64);
            let mut files = Vec::new();
            for f in snapshot.log_data().iter() {
                files.push(file_of(&f.path(), f.size()));
            }
            let mut removed = HashSet::new();
            let mut tombstones = snapshot.all_tombstones(store.as_ref());
            while let Some(t) = tombstones.next().await {
                removed.insert(PathBuf::from(t?.path().to_string()));
            }
            Ok(TableState {
                version: snapshot.version(),
                committed_through,
                files,
                removed,
            })
        })
    }

    /// Commits `files` (a migration's, through LSN `through`) to the table
    /// in one atomic commit with this store's `txn` version `through`.
    /// Returns the table version it made.
    pub fn add(&self, files: &[ColdFile], through: u64) -> Result<u64> {
        let mut actions = Vec::with_capacity(files.len() + 1);
        for f in files {
            actions.push(Action::Add(self.add_action(f)?));
        }
        let txn = Transaction {
            app_id: self.app_id.clone(),
            version: i64::try_from(through)
                .map_err(|_| Error::InvalidArgument(format!("LSN {through} is out of range")))?,
            last_updated: Some(now_ms()),
        };
        self.commit(actions, Some(txn), write_operation())
    }

    /// Commits the removal of `files` from the table (retention). Files the
    /// table does not hold are skipped; with none left, nothing is committed.
    pub fn remove(&self, files: &[ColdFile]) -> Result<Option<u64>> {
        let held: HashSet<String> = self.state()?.files.into_iter().map(|f| f.raw).collect();
        let removes = files
            .iter()
            .map(|f| (raw_path(f), f))
            .filter(|(raw, _)| held.contains(raw))
            .map(|(path, f)| Remove {
                path,
                extended_file_metadata: Some(true),
                partition_values: date_of_partition(&f.partition)
                    .map(|d| HashMap::from([(PARTITION_COLUMN.to_string(), Some(d))])),
                size: i64::try_from(f.bytes).ok(),
                ..Default::default()
            })
            .collect();
        self.commit_removes(removes)
    }

    /// Commits the `remove` actions of entries the table holds, by their
    /// path as the log spells it ([`TableFile::raw`]), for `repair`.
    pub fn forget(&self, raw_paths: &[String]) -> Result<Option<u64>> {
        let removes = raw_paths
            .iter()
            .map(|p| Remove {
                path: p.clone(),
                ..Default::default()
            })
            .collect();
        self.commit_removes(removes)
    }

    /// Commits `removes` (stamped now, as data changes), if there are any.
    fn commit_removes(&self, removes: Vec<Remove>) -> Result<Option<u64>> {
        if removes.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let actions = removes
            .into_iter()
            .map(|r| {
                Action::Remove(Remove {
                    data_change: true,
                    deletion_timestamp: Some(now),
                    ..r
                })
            })
            .collect();
        self.commit(actions, None, DeltaOperation::Delete { predicate: None })
            .map(Some)
    }

    fn commit(
        &self,
        actions: Vec<Action>,
        txn: Option<Transaction>,
        operation: DeltaOperation,
    ) -> Result<u64> {
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let table = &mut *guard;
        run(&self.root, "commit", async move {
            // The state this process last read or wrote: if another writer
            // committed since, delta-rs reads the versions in between and
            // checks them for conflicts before it writes (blind appends
            // never conflict). A checkpoint every 100 commits, and log
            // files past the table's retention deleted, as delta-rs does by
            // default.
            let mut props = CommitProperties::default();
            if let Some(txn) = txn {
                props = props.with_application_transaction(txn);
            }
            let done = CommitBuilder::from(props)
                .with_actions(actions)
                .build(Some(table.snapshot()?), table.log_store(), operation)
                .await?;
            let version = done.version;
            table.state = Some(done.snapshot);
            Ok(version)
        })
    }

    fn add_action(&self, f: &ColdFile) -> Result<Add> {
        let date = date_of_partition(&f.partition).ok_or_else(|| {
            Error::InvalidArgument(format!("{}: not a day partition", f.partition))
        })?;
        // Every column's bounds, from the file's footer: a reader given
        // some columns' bounds and not the others' may take the missing
        // ones as null and skip the file for any filter on them (the
        // `deltalake` package's pyarrow datasets do). Without bounds for
        // every column (or a footer that cannot be read: bounds only
        // prune, the row count is always right), the row count alone.
        let stats = cold::delta_stats(&self.cold, &f.path)
            .ok()
            .flatten()
            .unwrap_or_else(|| serde_json::json!({ "numRecords": f.rows }));
        Ok(Add {
            path: path_str(&f.path),
            partition_values: HashMap::from([(PARTITION_COLUMN.to_string(), Some(date))]),
            size: i64::try_from(f.bytes)
                .map_err(|_| Error::InvalidArgument(format!("{} bytes", f.bytes)))?,
            modification_time: now_ms(),
            data_change: true,
            stats: Some(stats.to_string()),
            tags: Some(HashMap::from([
                (TAG_STORE.to_string(), Some(self.store_id.clone())),
                (
                    TAG_LSN.to_string(),
                    Some(format!("{}-{}", f.lsn_lo, f.lsn_hi)),
                ),
            ])),
            ..Default::default()
        })
    }
}

fn write_operation() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: Some(vec![PARTITION_COLUMN.to_string()]),
        predicate: None,
    }
}

fn file_of(raw: &str, size: i64) -> TableFile {
    let path = PathBuf::from(raw);
    TableFile {
        lsn: cold::parse_path(&path).map(|(_, lo, hi)| (lo, hi)),
        bytes: size.max(0) as u64,
        raw: raw.to_string(),
        path,
    }
}

/// A file's path as the log writes it (relative, `/`-separated).
fn path_str(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A builder of the table at the cold tier's location, over our own client
/// for an object store (see [`crate::store::objects`]).
fn builder(
    cold: &ColdStore,
) -> Result<deltalake_core::DeltaResult<deltalake_core::DeltaTableBuilder>> {
    let (url, backend) = cold.table_location()?;
    Ok(
        deltalake_core::DeltaTableBuilder::from_url(url.clone()).map(|b| match backend {
            Some(store) => b.with_storage_backend(store, url),
            None => b,
        }),
    )
}

/// Runs `fut` to completion on a one-thread runtime made for it, on a
/// thread of its own (so that it can be called from inside another
/// runtime), turning a panic into an error naming the table.
fn run<T: Send>(
    root: &Path,
    what: &str,
    fut: impl Future<Output = std::result::Result<T, deltalake_core::DeltaTableError>> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io(root, e))?;
            runtime
                .block_on(fut)
                .map_err(|e| table_error(root, what, e))
        })
        .join()
        .map_err(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            table_error(root, what, format!("delta-rs panicked: {why}"))
        })?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_become_dates() {
        assert_eq!(
            date_of_partition("year=2024/month=01/day=05").as_deref(),
            Some("2024-01-05")
        );
        assert_eq!(
            date_of_partition("year=1970/month=01/day=01").as_deref(),
            Some("1970-01-01")
        );
        assert_eq!(date_of_partition("2024-01-05"), None);
    }

    #[test]
    fn backtraces_are_cut_from_messages() {
        let e = "Invalid JSON in log record\n   0: buoyant_kernel::error::Error::with_backtrace\n             at src/error.rs:479:5\n   1: main";
        assert_eq!(without_backtrace(e), "Invalid JSON in log record");
        assert_eq!(without_backtrace("two\nlines: kept"), "two\nlines: kept");
    }

    #[test]
    fn only_the_migrations_spelling_is_canonical() {
        let name = format!("year=2024/month=01/day=05/{}", cold::file_name(7, 9));
        assert!(is_canonical(&name));
        for odd in [
            name.replace("day=05/", "day=05//"),
            name.replace("day=05/", "day=05/./"),
            format!("/{name}"),
            format!("file:///x/{name}"),
            "year=2024/month=01/day=05".to_string(),
            "../catalog.sqlite".to_string(),
        ] {
            assert!(!is_canonical(&odd), "{odd}");
        }
    }

    #[test]
    fn names_give_the_wal_range() {
        let name = format!("year=2024/month=01/day=05/{}", cold::file_name(7, 9));
        let f = file_of(&name, 10);
        assert_eq!((f.lsn, f.bytes), (Some((7, 9)), 10));
        let bare = file_of("x.parquet", -1);
        assert_eq!((bare.lsn, bare.bytes), (None, 0));
    }
}
