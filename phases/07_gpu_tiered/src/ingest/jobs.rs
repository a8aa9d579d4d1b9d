//! Ingestion jobs: read CSV files, Parquet files or the trade generator into
//! the store, with progress and cancellation recorded in the catalog.
//!
//! A job's source is a path ending in `.csv` or `.parquet`, or
//! `gen:<records>[:<seed>]`. CSV files (RFC 4180, read by the `csv` crate:
//! quoted fields, CRLF, a byte-order mark) have a header naming the store's
//! columns in order; timestamps are nanoseconds or date-times
//! (`2024-01-02T03:04:05.123Z`, UTC unless an offset is written; an
//! impossible date is an error); numbers are read as Go's `ParseFloat`
//! does (`NaN`, `+Inf`).
//!
//! The command line reads any path the operator gives. A job created over
//! HTTP reads only files inside the import directory ([`confine`]), and no
//! error, from either, quotes the file's contents: errors name the file,
//! the line and the column, and say what was expected.

use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::files::{is_parquet, read_csv, read_csv_as, read_parquet, read_parquet_as};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gen::Generator;
use crate::store::catalog::JobState;

/// Where a job reads from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Csv(std::path::PathBuf),
    Parquet(std::path::PathBuf),
    /// `import:PATH`: a `.csv` or `.parquet` file inside the store's import
    /// directory ([`resolve_import`]), as a job created over HTTP names it;
    /// errors and job listings show `PATH`, never the server's own paths.
    Import(std::path::PathBuf),
    Generator {
        records: u64,
        seed: u64,
    },
}

/// The prefix of a job source inside the import directory.
pub const IMPORT_PREFIX: &str = "import:";

impl Source {
    /// Parses a job source string.
    pub fn parse(s: &str) -> Result<Source> {
        if let Some(rel) = s.strip_prefix(IMPORT_PREFIX) {
            return match Source::parse(rel)? {
                Source::Csv(p) | Source::Parquet(p) => Ok(Source::Import(p)),
                _ => Err(Error::InvalidArgument(format!(
                    "job source {s:?}: expected import:<a .csv or .parquet file in the import directory>"
                ))),
            };
        }
        if let Some(rest) = s.strip_prefix("gen:") {
            let mut parts = rest.split(':');
            let records = parts.next().and_then(|n| n.parse().ok());
            let seed = parts.next().map(|n| n.parse().ok()).unwrap_or(Some(42));
            return match (records, seed, parts.next()) {
                (Some(records), Some(seed), None) => Ok(Source::Generator { records, seed }),
                _ => Err(Error::InvalidArgument(format!(
                    "job source {s:?}: expected gen:<records>[:<seed>]"
                ))),
            };
        }
        let path = std::path::PathBuf::from(s);
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Source::Csv(path)),
            Some("parquet") => Ok(Source::Parquet(path)),
            _ => Err(Error::InvalidArgument(format!(
                "job source {s:?}: expected a .csv or .parquet file, or gen:<records>[:<seed>]"
            ))),
        }
    }
}

/// Resolves `path`, as an HTTP client gave it, inside `import_dir`: it must
/// be relative, without `..`, and name a regular file whose real path (all
/// symlinks followed) is inside the import directory's real path. Returns
/// that real path, which the job then reads. Errors say which rule the
/// path broke, and nothing about what lies outside.
pub fn confine(path: &Path, import_dir: &Path) -> Result<std::path::PathBuf> {
    use std::path::Component;
    let refuse = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "job source {:?}: {why}",
            path.display().to_string()
        )))
    };
    if path.as_os_str().is_empty() {
        return refuse("the path is empty");
    }
    if !path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return refuse(
            "give a path relative to the server's import directory, without `..` \
             (server.import_dir in the configuration)",
        );
    }
    let Ok(root) = import_dir.canonicalize() else {
        return refuse("the server has no import directory (server.import_dir)");
    };
    let Ok(real) = root.join(path).canonicalize() else {
        return refuse("no such file in the import directory");
    };
    if !real.starts_with(&root) {
        return refuse("the path leads outside the import directory (a symlink?)");
    }
    if !std::fs::metadata(&real).is_ok_and(|m| m.is_file()) {
        return refuse("not a regular file in the import directory");
    }
    Ok(real)
}

/// The store's own directories: a job must never read them (it would ingest
/// the store's Parquet files, or its log, again).
fn store_dirs(config: &crate::config::Config) -> Vec<std::path::PathBuf> {
    [
        config.storage.base_path.clone(),
        config.wal_dir(),
        config.cold_dir(),
        config
            .storage
            .base_path
            .join(crate::engine::recovery::QUARANTINE),
    ]
    .into_iter()
    .map(|p| real_path(&p).unwrap_or(p))
    .collect()
}

/// Checks the import directory before a server uses it (creating it if
/// needed): it may not be `/`, the store's own directory, or inside the
/// store's WAL, cold or quarantine directories (a job could ingest the
/// store's own files again). An empty `server.import_dir` would be the
/// store's directory. Returns its real path.
pub fn check_import_dir(config: &crate::config::Config) -> Result<std::path::PathBuf> {
    let refuse = |why: String| {
        Err(Error::Config(format!(
            "server.import_dir {:?}: {why}; give a directory of its own for the files jobs read (the default is `import` inside the store)",
            config.server.import_dir.display().to_string()
        )))
    };
    if config.server.import_dir.as_os_str().is_empty() {
        return refuse("is empty, which would be the store's own directory".into());
    }
    let dir = config.import_dir();
    let real = real_path(&dir).map_err(|e| Error::io(&dir, e))?;
    if real.parent().is_none() {
        return refuse("is the root directory: jobs could read any file".into());
    }
    let dirs = store_dirs(config);
    if dirs.first() == Some(&real) {
        return refuse("is the store's own directory".into());
    }
    if let Some(d) = dirs[1..].iter().find(|d| real.starts_with(d)) {
        return refuse(format!(
            "is inside the store's {}",
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
    }
    std::fs::create_dir_all(&real).map_err(|e| Error::io(&real, e))?;
    Ok(real)
}

/// The real path `path` has or would have: its deepest existing ancestor
/// with every symlink followed, then the rest of it (`.` and `..` taken
/// as written). Creates nothing.
fn real_path(path: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::path::Component;
    let absolute = std::env::current_dir()?.join(path);
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name().map(|n| n.to_os_string()));
        existing = match existing.parent() {
            Some(p) => p,
            None => break,
        };
    }
    let mut real = existing.canonicalize()?;
    for part in rest.into_iter().rev() {
        let Some(part) = part else { continue };
        match Path::new(&part).components().next() {
            Some(Component::ParentDir) => {
                real.pop();
            }
            Some(Component::CurDir) | None => {}
            Some(_) => real.push(part),
        }
    }
    Ok(real)
}

/// Resolves `rel` inside the store's import directory ([`confine`]), and
/// refuses a file of the store itself (an import directory that holds the
/// store, say).
pub fn resolve_import(rel: &Path, config: &crate::config::Config) -> Result<std::path::PathBuf> {
    let real = confine(rel, &config.import_dir())?;
    if store_dirs(config)[..]
        .iter()
        .skip(1)
        .any(|d| real.starts_with(d))
        || config
            .catalog_path()
            .canonicalize()
            .is_ok_and(|c| c == real)
    {
        return Err(Error::InvalidArgument(format!(
            "job source {:?}: a file of the store itself",
            rel.display().to_string()
        )));
    }
    Ok(real)
}

/// Runs job `id` in this thread: marks it running, ingests its source batch
/// by batch (stopping if the job is cancelled in the catalog), records
/// progress, and marks it done or failed. `progress(done, total)` is called
/// after every batch.
pub fn run(
    engine: &Engine,
    id: i64,
    batch_rows: usize,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<u64> {
    let job = engine.with_catalog(|c| c.job(id))?;
    if job.state != JobState::Pending {
        return Err(Error::InvalidArgument(format!(
            "job {id} is {}, only a pending job can start",
            job.state
        )));
    }
    let source = Source::parse(&job.source)?;
    engine.with_catalog(|c| c.set_job_state(id, JobState::Running, None))?;
    // A file in the import directory: read at its real path, shown as its
    // path inside the directory.
    let imported = match &source {
        Source::Import(rel) => match resolve_import(rel, engine.config()) {
            Ok(real) => Some((real, rel.clone())),
            Err(e) => {
                engine.with_catalog(|c| {
                    c.set_job_state(id, JobState::Failed, Some(&e.to_string()))
                })?;
                return Err(e);
            }
        },
        _ => None,
    };
    let parquet_rows = |p: &Path| {
        std::fs::File::open(p)
            .ok()
            .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).ok())
            .map(|b| b.metadata().file_metadata().num_rows() as u64)
    };
    let total = match (&source, &imported) {
        (Source::Generator { records, .. }, _) => Some(*records),
        (Source::Parquet(p), _) => parquet_rows(p),
        (Source::Import(rel), Some((real, _))) if is_parquet(rel) => parquet_rows(real),
        _ => None,
    };
    let mut done = 0u64;
    let mut step = |batch: RecordBatch| -> Result<bool> {
        loop {
            let state = engine.with_catalog(|c| c.job(id))?.state;
            if state == JobState::Cancelled {
                return Err(Error::Cancelled(id));
            }
            match engine.ingest(&batch) {
                Ok(_) => break,
                // The store is full while moves between tiers fail: wait,
                // nothing of this batch was stored.
                Err(Error::Busy { retry_after_s, .. }) => {
                    std::thread::sleep(std::time::Duration::from_secs(retry_after_s.clamp(1, 60)))
                }
                Err(e) => {
                    return Err(Error::InvalidArgument(format!(
                        "job {id}, after {done} records: {e}"
                    )))
                }
            }
        }
        done += batch.num_rows() as u64;
        engine.with_catalog(|c| c.set_job_progress(id, done as i64, total.map(|t| t as i64)))?;
        progress(done, total);
        Ok(true)
    };
    let result = match (&source, &imported) {
        (Source::Csv(p), _) => read_csv(p, engine.mode(), batch_rows, &mut step),
        (Source::Parquet(p), _) => read_parquet(p, batch_rows, &mut step),
        (Source::Import(_), Some((real, rel))) if is_parquet(rel) => {
            read_parquet_as(real, rel, batch_rows, &mut step)
        }
        (Source::Import(_), Some((real, rel))) => {
            read_csv_as(real, rel, engine.mode(), batch_rows, &mut step)
        }
        (Source::Import(rel), None) => Err(Error::NotFound(rel.display().to_string())),
        (Source::Generator { records, seed }, _) => {
            let mut g = Generator::new(engine.mode(), *seed, 100);
            let mut left = *records;
            let mut r = Ok(());
            while left > 0 {
                let n = left.min(batch_rows as u64) as usize;
                match g.batch(n).and_then(&mut step) {
                    Ok(_) => left -= n as u64,
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r
        }
    };
    match result {
        Ok(()) => {
            engine.with_catalog(|c| c.set_job_state(id, JobState::Done, None))?;
            Ok(done)
        }
        Err(Error::Cancelled(id)) => Err(Error::Cancelled(id)),
        Err(e) => {
            engine.with_catalog(|c| c.set_job_state(id, JobState::Failed, Some(&e.to_string())))?;
            Err(e)
        }
    }
}
