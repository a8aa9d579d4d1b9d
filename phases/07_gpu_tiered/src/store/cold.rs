//! The cold tier: Parquet files, one per day partition and migration.
//!
//! A migration's rows are split by UTC day, sorted by (symbol, timestamp)
//! and written as `year=YYYY/month=MM/day=DD/part-<first lsn>-<last lsn>.parquet`
//! with page-level statistics and the page index, so that a reader prunes
//! row groups and pages by symbol and time. On local disk each file is
//! written under `_staging/`, fsynced, then renamed into its partition (the
//! new directories fsynced into their parents); in an object store it is
//! one PUT straight into its partition (see [`super::objects`]). The table
//! commit and the catalog row that make it visible come after (see
//! `engine`). In a table several stores write (`cold_tier.shared`) the
//! name carries the store's ID ([`file_name_of`]).
//!
//! # What protects a file
//!
//! ```text
//! "PAR1" | column chunks (pages)      | page index | footer | len | "PAR1"
//! |<------ data_bytes, data_crc32c -->|
//! |<------------------------ crc32c (in the catalog) ------------------->|
//! ```
//!
//! - The footer's key-value metadata holds the file's own description
//!   under `squeezed_signals.cold` ([`FileMeta`]): partition, rows, time
//!   range, symbols, the WAL range it came from, and a CRC-32C of the data
//!   region before the page index. `repair` rebuilds a lost catalog from it.
//! - The catalog records a CRC-32C of the whole file. The first read of a
//!   file in a process checks it, reading the file whole, and in the same
//!   pass takes a CRC-32C of each region a later read can fetch: the
//!   magic, each column chunk's dictionary page, each data page (as the
//!   page index locates them), and the page index and footer
//!   ([`Regions`]). The footer and page index are parsed from the checked
//!   bytes and kept ([`MetaCache`]). Every later read checks each page it
//!   fetches against its region's CRC before Parquet decodes it
//!   ([`CheckedFile`]), so a flipped bit anywhere (data pages, page
//!   headers, statistics, the page index the pruning trusts), before the
//!   first read or after it, is an error naming the file, never a changed
//!   answer. The check costs a CRC-32C of the bytes read (crc32c runs at
//!   several GB/s; the chapter has the measured cost).
//! - Parquet's own page CRCs would check each page as it is read, but the
//!   writer of the `parquet` crate (version 59) does not write them
//!   (`column/page.rs`: "TODO: Add support for crc checksum"); its reader
//!   checks them only with the `crc` feature. So the whole-file CRC is the
//!   check.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{ArrowError, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, SortingColumn};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;

use parquet::file::metadata::KeyValue;

use crate::config::ColdConfig;
use crate::error::{Error, Result};
use crate::filter::{eval_batch, filter_batch, Pred, Stats};
use crate::store::objects::{Blob, ColdStore};

/// Nanoseconds per day.
pub const DAY_NS: i64 = 86_400_000_000_000;
/// The staging directory inside the cold directory.
pub const STAGING: &str = "_staging";

/// The key of a cold file's description in its Parquet key-value metadata.
pub const META_KEY: &str = "squeezed_signals.cold";

/// What a cold file says about itself (JSON in its footer's key-value
/// metadata under [`META_KEY`]), written when the file is.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMeta {
    /// 2 (1: written before stores had IDs, no `store_id`).
    pub format: u32,
    /// The ID of the store that wrote the file (see [`crate::engine::recovery`]):
    /// a file of another store is never taken for this one's, nor deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    pub partition: String,
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Sorted, distinct.
    pub symbols: Vec<String>,
    /// The WAL records the file's rows came from (a whole migration's).
    pub lsn_lo: u64,
    pub lsn_hi: u64,
    /// Length of the data region: the magic and every column chunk, up to
    /// the page index.
    pub data_bytes: u64,
    /// CRC-32C of the data region.
    pub data_crc32c: u32,
}

/// The key of a cold file's NaN counts in its Parquet key-value metadata:
/// a JSON object from each Float64 column's name to the number of NaN
/// values in each row group, in row-group order (`{"price": [0, 3, 0]}`).
///
/// Parquet's statistics leave NaN out of a chunk's min and max (the
/// `parquet` crate's writer skips them), so a row group whose max is 10.0
/// may still hold a NaN, which sorts above every number (IEEE 754 total
/// order, as the queries sort). Top-K pruning ([`crate::read::query`]) trusts a
/// float chunk's min and max only where this says the row group has no NaN;
/// a file without it (written before it existed) is read without that
/// pruning, never wrongly pruned.
pub const NAN_KEY: &str = "squeezed_signals.nan_counts";

/// NaN values per row group of each Float64 column of `batch`, whose rows
/// were written as row groups of `group_rows` rows, in order.
fn nan_counts(
    batch: &RecordBatch,
    group_rows: &[usize],
) -> std::collections::BTreeMap<String, Vec<u64>> {
    use arrow_array::types::Float64Type;
    let mut out = std::collections::BTreeMap::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let Some(values) = column.as_primitive_opt::<Float64Type>() else {
            continue;
        };
        let values = values.values();
        let mut counts = Vec::with_capacity(group_rows.len());
        let mut at = 0usize;
        for &rows in group_rows {
            let end = (at + rows).min(values.len());
            counts.push(
                values[at.min(end)..end]
                    .iter()
                    .filter(|v| v.is_nan())
                    .count() as u64,
            );
            at = end;
        }
        out.insert(field.name().clone(), counts);
    }
    out
}

/// A Parquet file of the cold tier, as listed in the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct ColdFile {
    /// `year=YYYY/month=MM/day=DD`.
    pub partition: String,
    /// Relative to the cold directory.
    pub path: PathBuf,
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Sorted, distinct.
    pub symbols: Vec<String>,
    pub bytes: u64,
    pub lsn_lo: u64,
    pub lsn_hi: u64,
    /// CRC-32C of the whole file.
    pub crc32c: u32,
}

/// The file name of a migration's file: `part-<lsn_lo>-<lsn_hi>.parquet`,
/// 20 digits each.
pub fn file_name(lsn_lo: u64, lsn_hi: u64) -> String {
    file_name_of(lsn_lo, lsn_hi, None)
}

/// The file name of a migration's file in a table other stores write too
/// (`cold_tier.shared`): `part-<lsn_lo>-<lsn_hi>-<store id>.parquet`, so
/// that two stores' LSN ranges never name the same object.
pub fn file_name_of(lsn_lo: u64, lsn_hi: u64, store: Option<&str>) -> String {
    match store {
        Some(id) => format!("part-{lsn_lo:020}-{lsn_hi:020}-{id}.parquet"),
        None => format!("part-{lsn_lo:020}-{lsn_hi:020}.parquet"),
    }
}

/// The store ID a shared table's file name carries ([`file_name_of`]),
/// if `rel` is a cold file's path with one.
pub fn store_of_path(rel: &Path) -> Option<String> {
    parse_path(rel)?;
    let name = rel.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let id = name.rsplit('-').next()?;
    is_store_id(id).then(|| id.to_string())
}

/// A store ID: 32 lowercase hex digits.
pub fn is_store_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits a cold file's path (relative to the cold directory) into its
/// partition and LSN range; `None` unless it is exactly
/// `year=YYYY/month=MM/day=DD/part-<20 digits>-<20 digits>[-<store id>].parquet`
/// with a real date and `lsn_lo <= lsn_hi`.
pub fn parse_path(rel: &Path) -> Option<(String, u64, u64)> {
    let text = rel.to_str()?;
    let mut parts = text.split('/');
    let (y, m, d, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let partition = format!("{y}/{m}/{d}");
    partition_day(&partition)?;
    let range = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (lo, hi) = range.split_once('-')?;
    let hi = match hi.split_once('-') {
        Some((hi, id)) if is_store_id(id) => hi,
        Some(_) => return None,
        None => hi,
    };
    if lo.len() != 20 || hi.len() != 20 {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || !digits(hi) {
        return None;
    }
    let (lo, hi): (u64, u64) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo <= hi).then_some((partition, lo, hi))
}

/// The UTC day number of a partition string, if it is one
/// (`year=YYYY/month=MM/day=DD` naming a real date).
pub fn partition_day(partition: &str) -> Option<i64> {
    let rest = partition.strip_prefix("year=")?;
    let (y, rest) = rest.split_once("/month=")?;
    let (m, d) = rest.split_once("/day=")?;
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let ts = squeeze::time::parse_timestamp(&format!("{y}-{m}-{d}T00:00:00Z")).ok()?;
    let day = ts.div_euclid(DAY_NS);
    (partition_of_day(day) == partition).then_some(day)
}

impl ColdFile {
    /// Checks that a catalog row is self-consistent: its path names its
    /// partition and LSN range, its times fall in the partition's day, and
    /// its counts are possible. `Err` says what disagrees.
    pub fn check(&self) -> std::result::Result<(), String> {
        let Some((partition, lo, hi)) = parse_path(&self.path) else {
            return Err(format!(
                "path {:?} is not year=YYYY/month=MM/day=DD/part-<lsn>-<lsn>.parquet",
                self.path.display()
            ));
        };
        if partition != self.partition {
            return Err(format!(
                "path {} is in partition {partition}, the row says {}",
                self.path.display(),
                self.partition
            ));
        }
        if (lo, hi) != (self.lsn_lo, self.lsn_hi) {
            return Err(format!(
                "path {} names LSNs {lo}..={hi}, the row says {}..={}",
                self.path.display(),
                self.lsn_lo,
                self.lsn_hi
            ));
        }
        let day = partition_day(&partition).unwrap_or(i64::MIN);
        let in_day = |t: i64| t.div_euclid(DAY_NS) == day;
        if !in_day(self.min_ts) || !in_day(self.max_ts) || self.min_ts > self.max_ts {
            return Err(format!(
                "times {}..={} do not fit partition {partition}",
                self.min_ts, self.max_ts
            ));
        }
        if self.rows == 0 || self.symbols.is_empty() || self.bytes < 12 {
            return Err(format!(
                "{} rows, {} symbols, {} bytes is not a cold file",
                self.rows,
                self.symbols.len(),
                self.bytes
            ));
        }
        if self.symbols.windows(2).any(|w| w[0] >= w[1]) {
            return Err("symbols are not sorted and distinct".into());
        }
        Ok(())
    }
}

/// CRC-32C and length of the whole file at `rel` in `store`.
pub fn file_checksum(store: &ColdStore, rel: &Path) -> Result<(u32, u64)> {
    let io = |e| Error::io(store.name(rel), e);
    let blob = store.open(rel).map_err(io)?;
    let mut crc = 0u32;
    let len = blob
        .read_all(|piece| crc = crc32c::crc32c_append(crc, piece))
        .map_err(io)?;
    Ok((crc, len))
}

/// Checks that the file `file` names in `store` holds exactly the bytes
/// the catalog recorded for it (length and CRC-32C); the error names the
/// file.
pub fn verify(store: &ColdStore, file: &ColdFile) -> Result<()> {
    let (crc, len) = file_checksum(store, &file.path)?;
    let path = store.name(&file.path);
    if len != file.bytes {
        return Err(Error::corrupt(
            path.display().to_string(),
            len,
            format!(
                "the catalog recorded {} bytes, the file has {len}",
                file.bytes
            ),
        ));
    }
    if crc != file.crc32c {
        return Err(Error::corrupt(
            path.display().to_string(),
            0,
            format!(
                "checksum mismatch: the catalog recorded crc32c {:#010x}, the file has {crc:#010x} (damaged since it was written; `07_gpu_tiered scrub` checks every file)",
                file.crc32c
            ),
        ));
    }
    Ok(())
}

/// Where a file being written goes: a staged local file, or memory for
/// one PUT to an object store.
enum Out {
    File(File),
    Memory(Vec<u8>),
}

/// A writer that passes bytes on and keeps the CRC-32C and length of
/// everything that went through.
struct CrcWrite {
    out: Out,
    crc: u32,
    len: u64,
}

impl std::io::Write for CrcWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            Out::File(f) => f.write(buf)?,
            Out::Memory(v) => {
                v.extend_from_slice(buf);
                buf.len()
            }
        };
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Out::File(f) => f.flush(),
            Out::Memory(_) => Ok(()),
        }
    }
}

/// The partition directory of a UTC day number (days since 1970-01-01).
pub fn partition_of_day(day: i64) -> String {
    let date = squeeze::time::format_timestamp(day.saturating_mul(DAY_NS));
    format!(
        "year={}/month={}/day={}",
        &date[0..4],
        &date[5..7],
        &date[8..10]
    )
}

fn writer_props(cfg: &ColdConfig) -> Result<WriterProperties> {
    // Dictionaries only where values repeat: symbols, sides, exchanges,
    // flags. For prices, volumes, times and ids a dictionary fills up and
    // falls back to plain encoding, after costing a hash per value.
    let mut b = WriterProperties::builder().set_dictionary_enabled(false);
    for col in ["symbol", "side", "exchange", "flags"] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(col), true);
    }
    Ok(b.set_compression(cfg.parquet_compression()?)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_data_page_row_count_limit(cfg.page_rows)
        .set_write_batch_size(cfg.page_rows.min(8192))
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 1,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
        ]))
        .build())
}

/// Writes the rows of `batches` (WAL records `lsn_lo..=lsn_hi`, all of the
/// store's schema) as one sorted Parquet file per UTC day, staged and renamed
/// into `cold_dir`. Returns the files, not yet in the catalog.
///
/// On an error it deletes what it wrote (the staged file, and the files
/// already renamed into their partitions: no catalog lists them, and the
/// WAL still holds their records), so that a retry, which may cover
/// another range, leaves no file behind that the catalog does not list.
/// `each_day` sees each day's rows, sorted by symbol then time, before
/// they are written (the migration builds its bars from them).
pub fn write_migration(
    store: &ColdStore,
    cfg: &ColdConfig,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    (lsn_lo, lsn_hi): (u64, u64),
    store_id: Option<&str>,
    each_day: &mut dyn FnMut(&RecordBatch) -> Result<()>,
) -> Result<Vec<ColdFile>> {
    let mut written = Vec::new();
    let mut staged = None;
    let result = write_days(
        store,
        cfg,
        schema,
        batches,
        (lsn_lo, lsn_hi),
        store_id,
        each_day,
        &mut written,
        &mut staged,
    );
    if result.is_err() {
        if let Some(path) = staged {
            let _ = std::fs::remove_file(path);
        }
        discard(store, &written);
    }
    result.map(|()| written)
}

/// Deletes the files of a migration that did not commit (best effort: what
/// stays is proven a leftover, and deleted, when the store next opens).
pub fn discard(store: &ColdStore, files: &[ColdFile]) {
    for f in files {
        if store.remove(&f.path).is_ok() {
            if let Some(dir) = store
                .local_dir()
                .and_then(|d| d.join(&f.path).parent().map(Path::to_path_buf))
            {
                let _ = crate::store::wal::sync_dir(&dir);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_days(
    store: &ColdStore,
    cfg: &ColdConfig,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    (lsn_lo, lsn_hi): (u64, u64),
    store_id: Option<&str>,
    each_day: &mut dyn FnMut(&RecordBatch) -> Result<()>,
    files: &mut Vec<ColdFile>,
    staged_now: &mut Option<PathBuf>,
) -> Result<()> {
    let all = arrow_select::concat::concat_batches(schema, batches)
        .map_err(|e| Error::arrow("gathering rows to migrate", e))?;
    let ts = all.column(0).as_primitive::<TimestampNanosecondType>();
    let mut by_day: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (i, &t) in ts.values().iter().enumerate() {
        by_day
            .entry(t.div_euclid(DAY_NS))
            .or_default()
            .push(i as u32);
    }
    // A local tier stages each file and renames it into its partition; an
    // object store takes it whole in one PUT (see `objects`).
    // In a table several stores write, each stages in a folder of its own
    // (another's cleanup never empties or removes it under it).
    let staging = store
        .local_dir()
        .map(|d| match store_id.filter(|_| cfg.shared) {
            Some(id) => d.join(STAGING).join(id),
            None => d.join(STAGING),
        });
    if let Some(staging) = &staging {
        std::fs::create_dir_all(staging).map_err(|e| Error::io(staging, e))?;
    }
    let props = writer_props(cfg)?;
    for (day, rows) in by_day {
        let part = arrow_select::take::take_record_batch(&all, &UInt32Array::from(rows))
            .map_err(|e| Error::arrow("splitting rows by day", e))?;
        let sorted = sort_symbol_time(&part)?;
        each_day(&sorted)?;
        let partition = partition_of_day(day);
        // In a table other stores write too, the name carries this store.
        let name = file_name_of(lsn_lo, lsn_hi, store_id.filter(|_| cfg.shared));
        let rel = PathBuf::from(&partition).join(&name);
        let staged = match &staging {
            Some(dir) => dir.join(format!("{day}-{name}")),
            None => store.name(&rel),
        };
        let ts = sorted.column(0).as_primitive::<TimestampNanosecondType>();
        let mut symbols: Vec<String> = sorted
            .column(1)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        symbols.dedup();
        let mut meta = FileMeta {
            format: if store_id.is_some() { 2 } else { 1 },
            store_id: store_id.map(str::to_string),
            partition: partition.clone(),
            rows: sorted.num_rows() as u64,
            min_ts: ts.values().iter().copied().min().unwrap_or(0),
            max_ts: ts.values().iter().copied().max().unwrap_or(0),
            symbols,
            lsn_lo,
            lsn_hi,
            data_bytes: 0,
            data_crc32c: 0,
        };
        let out = match &staging {
            Some(_) => {
                *staged_now = Some(staged.clone());
                Out::File(File::create(&staged).map_err(|e| Error::io(&staged, e))?)
            }
            None => Out::Memory(Vec::new()),
        };
        let sink = CrcWrite {
            out,
            crc: 0,
            len: 0,
        };
        let pq = |e| Error::parquet(&staged, e);
        let mut writer =
            ArrowWriter::try_new(sink, schema.clone(), Some(props.clone())).map_err(pq)?;
        writer.write(&sorted).map_err(pq)?;
        // Every row group out and through the buffer: what passed the
        // checksum so far is the data region.
        writer.flush().map_err(pq)?;
        writer.sync().map_err(|e| Error::io(&staged, e))?;
        meta.data_bytes = writer.inner().len;
        meta.data_crc32c = writer.inner().crc;
        let json = serde_json::to_string(&meta)
            .map_err(|e| Error::InvalidArgument(format!("describing {}: {e}", staged.display())))?;
        writer.append_key_value_metadata(KeyValue::new(META_KEY.to_string(), json));
        let group_rows: Vec<usize> = writer
            .flushed_row_groups()
            .iter()
            .map(|g| g.num_rows().max(0) as usize)
            .collect();
        if group_rows.iter().sum::<usize>() == sorted.num_rows() {
            let nans = serde_json::to_string(&nan_counts(&sorted, &group_rows)).map_err(|e| {
                Error::InvalidArgument(format!("describing {}: {e}", staged.display()))
            })?;
            writer.append_key_value_metadata(KeyValue::new(NAN_KEY.to_string(), nans));
        }
        let sink = writer.into_inner().map_err(pq)?;
        let (crc, written) = (sink.crc, sink.len);
        let bytes = match (sink.out, store) {
            (Out::File(file), ColdStore::Local(cold_dir)) => {
                file.sync_all().map_err(|e| Error::io(&staged, e))?;
                let bytes = file.metadata().map_err(|e| Error::io(&staged, e))?.len();
                if bytes != written {
                    return Err(Error::corrupt(
                        staged.display().to_string(),
                        bytes,
                        format!("wrote {written} bytes but the file has {bytes}"),
                    ));
                }
                crate::store::wal::create_dirs_durable(cold_dir, Path::new(&partition))?;
                let dest = cold_dir.join(&rel);
                std::fs::rename(&staged, &dest).map_err(|e| Error::io(&dest, e))?;
                *staged_now = None;
                crate::store::wal::sync_dir(&cold_dir.join(&partition))?;
                bytes
            }
            (Out::Memory(buf), ColdStore::Remote(remote)) => {
                let bytes = buf.len() as u64;
                // Listed before the PUT: a PUT that fails after the object
                // was stored leaves it for `discard` to find.
                files.push(ColdFile {
                    partition: partition.clone(),
                    path: rel.clone(),
                    rows: meta.rows,
                    min_ts: meta.min_ts,
                    max_ts: meta.max_ts,
                    symbols: meta.symbols.clone(),
                    bytes,
                    lsn_lo,
                    lsn_hi,
                    crc32c: crc,
                });
                // Never over another object: a name taken (another store's
                // file, a leftover) is an error, not a replaced file.
                remote
                    .put_new(&rel, Bytes::from(buf))
                    .map_err(|e| Error::io(&staged, e))?;
                continue;
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "a cold file's writer does not match its store".into(),
                ))
            }
        };
        files.push(ColdFile {
            partition,
            path: rel,
            rows: meta.rows,
            min_ts: meta.min_ts,
            max_ts: meta.max_ts,
            symbols: meta.symbols,
            bytes,
            lsn_lo,
            lsn_hi,
            crc32c: crc,
        });
    }
    if let Some(staging) = &staging {
        crate::store::wal::sync_dir(staging)?;
    }
    Ok(())
}

/// Sorts a batch by (symbol, timestamp): a stable counting sort by symbol
/// rank, then each symbol's rows by time (usually already in time order,
/// since the log is).
pub fn sort_symbol_time(batch: &RecordBatch) -> Result<RecordBatch> {
    let symbols = batch.column(1).as_string::<i32>();
    let ts = batch
        .column(0)
        .as_primitive::<TimestampNanosecondType>()
        .values();
    let mut codes: HashMap<&str, u32, foldhash::fast::RandomState> = HashMap::default();
    let mut row_code = Vec::with_capacity(batch.num_rows());
    for s in symbols.iter() {
        let s = s.unwrap_or("");
        let next = codes.len() as u32;
        row_code.push(*codes.entry(s).or_insert(next));
    }
    let mut names: Vec<(&str, u32)> = codes.into_iter().collect();
    names.sort_unstable();
    let mut rank = vec![0u32; names.len()];
    for (r, (_, code)) in names.iter().enumerate() {
        rank[*code as usize] = r as u32;
    }
    let mut starts = vec![0usize; names.len() + 1];
    for &c in &row_code {
        starts[rank[c as usize] as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut fill = starts.clone();
    let mut order = vec![0u32; row_code.len()];
    for (row, &c) in row_code.iter().enumerate() {
        let r = rank[c as usize] as usize;
        order[fill[r]] = row as u32;
        fill[r] += 1;
    }
    for w in starts.windows(2) {
        let part = &mut order[w[0]..w[1]];
        if part
            .windows(2)
            .any(|p| ts[p[0] as usize] > ts[p[1] as usize])
        {
            part.sort_by_key(|&i| ts[i as usize]);
        }
    }
    arrow_select::take::take_record_batch(batch, &UInt32Array::from(order))
        .map_err(|e| Error::arrow("sorting by symbol and time", e))
}

/// A file handle that counts the bytes Parquet reads through it.
pub struct CountingFile {
    file: File,
    len: u64,
    read: Arc<AtomicU64>,
}

impl CountingFile {
    /// Opens `path`, adding what is read to `counter`.
    pub fn open(path: &Path, counter: Arc<AtomicU64>) -> Result<CountingFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(CountingFile {
            file,
            len,
            read: counter,
        })
    }
}

impl Length for CountingFile {
    fn len(&self) -> u64 {
        self.len
    }
}

/// A reader at an offset, counting what passes through.
pub struct CountingRead {
    file: File,
    read: Arc<AtomicU64>,
}

impl Read for CountingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl ChunkReader for CountingFile {
    type T = CountingRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<CountingRead> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        Ok(CountingRead {
            file,
            read: self.read.clone(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut buf = vec![0; length];
        self.file.read_exact_at(&mut buf, start)?;
        self.read.fetch_add(length as u64, Ordering::Relaxed);
        Ok(Bytes::from(buf))
    }
}

/// What a cold scan did, for EXPLAIN-like output and the benchmarks. As
/// JSON (in query and aggregate statistics), times are milliseconds
/// (`verify_ms`, `check_ms`) and `rows_matched` is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    pub files_total: u64,
    pub files_pruned: u64,
    pub row_groups_total: u64,
    pub row_groups_pruned: u64,
    pub pages_total: u64,
    pub pages_pruned: u64,
    /// Bytes read from the files (footer, page index and pages).
    pub bytes_read: u64,
    /// Bytes read to check files' checksums (the first read of each file),
    /// and the nanoseconds it took.
    pub bytes_verified: u64,
    #[serde(rename = "verify_ms", serialize_with = "ns_as_ms")]
    pub verify_ns: u64,
    /// Bytes of the regions (pages) read that were checked against their
    /// checksums, and the nanoseconds it took.
    pub bytes_checked: u64,
    #[serde(rename = "check_ms", serialize_with = "ns_as_ms")]
    pub check_ns: u64,
    #[serde(skip)]
    pub rows_matched: u64,
    /// Files and row groups a top-K query skipped because their statistics
    /// could not beat its bound (also counted as pruned above).
    pub topk_files_skipped: u64,
    pub topk_row_groups_skipped: u64,
}

fn ns_as_ms<S: serde::Serializer>(ns: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(*ns as f64 / 1e6)
}

impl ScanStats {
    /// Milliseconds spent checking whole files' checksums.
    pub fn verify_ms(&self) -> f64 {
        self.verify_ns as f64 / 1e6
    }

    /// Milliseconds spent checking the pages' checksums.
    pub fn check_ms(&self) -> f64 {
        self.check_ns as f64 / 1e6
    }

    /// Adds another scan's counts.
    pub fn add(&mut self, o: &ScanStats) {
        self.files_total += o.files_total;
        self.files_pruned += o.files_pruned;
        self.row_groups_total += o.row_groups_total;
        self.row_groups_pruned += o.row_groups_pruned;
        self.pages_total += o.pages_total;
        self.pages_pruned += o.pages_pruned;
        self.bytes_read += o.bytes_read;
        self.bytes_verified += o.bytes_verified;
        self.verify_ns += o.verify_ns;
        self.bytes_checked += o.bytes_checked;
        self.check_ns += o.check_ns;
        self.rows_matched += o.rows_matched;
        self.topk_files_skipped += o.topk_files_skipped;
        self.topk_row_groups_skipped += o.topk_row_groups_skipped;
    }
}

/// Can the catalog entry hold a match? (Time range and symbol list.)
pub fn file_may_match(file: &ColdFile, preds: &[Pred]) -> bool {
    preds.iter().all(|p| match p.column {
        0 => p.kind.may_match(&Stats::Int(file.min_ts, file.max_ts)),
        1 => file.symbols.iter().any(|s| p.kind.str(s)),
        _ => true,
    })
}

fn chunk_stats(s: &Statistics) -> Option<Stats> {
    match s {
        Statistics::Int64(v) => Some(Stats::Int(*v.min_opt()?, *v.max_opt()?)),
        Statistics::Int32(v) => Some(Stats::Int(*v.min_opt()? as i64, *v.max_opt()? as i64)),
        Statistics::Double(v) => Some(Stats::Float(*v.min_opt()?, *v.max_opt()?)),
        Statistics::ByteArray(v) => Some(Stats::Str(
            String::from_utf8_lossy(v.min_bytes_opt()?).into_owned(),
            String::from_utf8_lossy(v.max_bytes_opt()?).into_owned(),
        )),
        _ => None,
    }
}

fn page_stats(index: &ColumnIndexMetaData, page: usize) -> Option<Stats> {
    match index {
        ColumnIndexMetaData::INT64(ix) => {
            Some(Stats::Int(*ix.min_value(page)?, *ix.max_value(page)?))
        }
        ColumnIndexMetaData::INT32(ix) => Some(Stats::Int(
            *ix.min_value(page)? as i64,
            *ix.max_value(page)? as i64,
        )),
        ColumnIndexMetaData::DOUBLE(ix) => {
            Some(Stats::Float(*ix.min_value(page)?, *ix.max_value(page)?))
        }
        ColumnIndexMetaData::BYTE_ARRAY(ix) => Some(Stats::Str(
            String::from_utf8_lossy(ix.min_value(page)?).into_owned(),
            String::from_utf8_lossy(ix.max_value(page)?).into_owned(),
        )),
        _ => None,
    }
}

/// Which rows of row group `rg` may match, from the page index; `None` if
/// the file has no usable index (then every row is read and filtered).
fn page_selection(
    meta: &ParquetMetaData,
    rg: usize,
    preds: &[Pred],
    stats: &mut ScanStats,
) -> Option<Vec<bool>> {
    let rows = meta.row_group(rg).num_rows() as usize;
    let col_index = meta.column_index()?.get(rg)?;
    let off_index = meta.offset_index()?.get(rg)?;
    // keep[r] per row would be large; work on row ranges instead.
    let mut keep = vec![true; rows];
    let mut any_index = false;
    for p in preds {
        let (Some(ix), Some(off)) = (col_index.get(p.column), off_index.get(p.column)) else {
            continue;
        };
        let locs = off.page_locations();
        for (page, loc) in locs.iter().enumerate() {
            let start = loc.first_row_index.max(0) as usize;
            let end = locs
                .get(page + 1)
                .map(|n| n.first_row_index.max(0) as usize)
                .unwrap_or(rows)
                .min(rows);
            let Some(s) = page_stats(ix, page) else {
                continue;
            };
            any_index = true;
            stats.pages_total += 1;
            if !p.kind.may_match(&s) {
                stats.pages_pruned += 1;
                keep[start.min(end)..end]
                    .iter_mut()
                    .for_each(|k| *k = false);
            }
        }
    }
    any_index.then_some(keep)
}

fn selectors(keep: &[bool]) -> Vec<RowSelector> {
    let mut out: Vec<RowSelector> = Vec::new();
    let mut i = 0;
    while i < keep.len() {
        let v = keep[i];
        let mut j = i;
        while j < keep.len() && keep[j] == v {
            j += 1;
        }
        out.push(if v {
            RowSelector::select(j - i)
        } else {
            RowSelector::skip(j - i)
        });
        i = j;
    }
    out
}

/// A cold file cut into byte regions that together cover it: the leading
/// magic, each column chunk's dictionary page, each data page (as the page
/// index locates them), and what follows the data (page index, footer),
/// each with the CRC-32C it had when the whole file matched the catalog's
/// checksum. A read fetches whole pages, so it checks what it fetched
/// against these before Parquet decodes a byte of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Regions {
    /// Region `i` is `bounds[i]..bounds[i + 1]`.
    bounds: Vec<u64>,
    crcs: Vec<u32>,
}

impl Regions {
    /// The regions of a file of `len` bytes, from its metadata (not yet
    /// trusted: every offset is checked against the length). `None` if the
    /// metadata does not describe a layout inside the file.
    fn layout(meta: &ParquetMetaData, len: u64) -> Option<Vec<u64>> {
        let mut cuts = std::collections::BTreeSet::from([0, len.min(4), len]);
        let within = |v: i64| u64::try_from(v).ok().filter(|&v| v <= len);
        for (rg, group) in meta.row_groups().iter().enumerate() {
            for (c, col) in group.columns().iter().enumerate() {
                let start = within(
                    col.dictionary_page_offset()
                        .unwrap_or(col.data_page_offset()),
                )?;
                let end = within(col.compressed_size())?
                    .checked_add(start)
                    .filter(|&e| e <= len)?;
                cuts.insert(start);
                cuts.insert(end);
                let pages = meta
                    .offset_index()
                    .and_then(|ix| ix.get(rg))
                    .and_then(|cols| cols.get(c));
                for page in pages
                    .map(|p| p.page_locations.as_slice())
                    .unwrap_or_default()
                {
                    let at = within(page.offset)?;
                    let size = u64::try_from(page.compressed_page_size).ok()?;
                    let to = at.checked_add(size).filter(|&e| e <= len)?;
                    cuts.insert(at);
                    cuts.insert(to);
                }
            }
        }
        Some(cuts.into_iter().collect())
    }

    fn index_of(&self, at: u64) -> usize {
        self.bounds.partition_point(|&b| b <= at).saturating_sub(1)
    }
}

/// What the first read of a cold file established: its parsed footer and
/// page index, and its regions' checksums.
#[derive(Clone)]
struct Checked {
    meta: ArrowReaderMetadata,
    regions: Arc<Regions>,
}

/// The first read of a cold file: checks its length and CRC-32C against the
/// catalog's row `listed`, reading it whole once, and in the same pass
/// takes the CRC-32C of each region. The footer and page index are then
/// parsed from the bytes that pass checked, so that nothing of the file is
/// trusted before its checksum has matched.
fn check_first(store: &ColdStore, listed: &ColdFile, stats: &mut ScanStats) -> Result<Checked> {
    let started = std::time::Instant::now();
    let checked = check_whole(store, listed, stats);
    stats.verify_ns += started.elapsed().as_nanos() as u64;
    checked
}

fn check_whole(store: &ColdStore, listed: &ColdFile, stats: &mut ScanStats) -> Result<Checked> {
    let path = &store.name(&listed.path);
    let corrupt = |at: u64, why: String| Error::corrupt(path.display().to_string(), at, why);
    let file = store.open(&listed.path).map_err(|e| Error::io(path, e))?;
    let len = file.len();
    if len != listed.bytes {
        return Err(corrupt(
            len,
            format!(
                "the catalog recorded {} bytes, the file has {len}",
                listed.bytes
            ),
        ));
    }
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    // Parsed before it is checked, only to know where the regions are. An
    // object is read whole in one GET first (its layout parsed from that,
    // then checked), a local file twice (the footer, then every byte).
    let whole_object = match &file {
        Blob::Remote { .. } => Some(
            file.read_at(0, len as usize)
                .map_err(|e| Error::io(path, e))?,
        ),
        Blob::Local { .. } => None,
    };
    let first = match &whole_object {
        Some(bytes) => ArrowReaderMetadata::load(bytes, options.clone()),
        None => ArrowReaderMetadata::load(&file, options.clone()),
    };
    let bounds = first
        .ok()
        .and_then(|m| Regions::layout(m.metadata(), len))
        .unwrap_or_else(|| vec![0, len]);
    let tail_start = bounds.iter().rev().nth(1).copied().unwrap_or(0);
    let mut crcs = vec![0u32; bounds.len().saturating_sub(1)];
    let mut tail = Vec::with_capacity((len - tail_start.min(len)) as usize);
    let (mut whole, mut at, mut region) = (0u32, 0u64, 0usize);
    let mut each = |mut chunk: &[u8]| {
        whole = crc32c::crc32c_append(whole, chunk);
        while !chunk.is_empty() && region < crcs.len() {
            let take = ((bounds[region + 1] - at) as usize).min(chunk.len());
            crcs[region] = crc32c::crc32c_append(crcs[region], &chunk[..take]);
            if at + take as u64 > tail_start {
                let from = tail_start.saturating_sub(at) as usize;
                tail.extend_from_slice(&chunk[from..take]);
            }
            at += take as u64;
            chunk = &chunk[take..];
            if at == bounds[region + 1] {
                region += 1;
            }
        }
    };
    match &whole_object {
        Some(bytes) => each(bytes),
        None => {
            file.read_all(each).map_err(|e| Error::io(path, e))?;
        }
    }
    stats.bytes_verified += at;
    if at != len {
        return Err(corrupt(
            at,
            format!("the file changed length while it was read ({len} bytes before)"),
        ));
    }
    if whole != listed.crc32c {
        return Err(corrupt(
            0,
            format!(
                "checksum mismatch: the catalog recorded crc32c {:#010x}, the file has {whole:#010x} (damaged since it was written; `07_gpu_tiered scrub` checks every file)",
                listed.crc32c
            ),
        ));
    }
    // The footer and page index again, from the checked bytes.
    let checked_tail = Suffix {
        len,
        start: tail_start,
        bytes: Bytes::from(tail),
    };
    let meta =
        ArrowReaderMetadata::load(&checked_tail, options).map_err(|e| Error::parquet(path, e))?;
    if Regions::layout(meta.metadata(), len).as_deref() != Some(&bounds[..]) {
        return Err(corrupt(0, "the file changed while it was checked".into()));
    }
    Ok(Checked {
        meta,
        regions: Arc::new(Regions { bounds, crcs }),
    })
}

/// The end of a file held in memory, read as the file itself (the footer
/// and page index, parsed from checked bytes).
struct Suffix {
    len: u64,
    start: u64,
    bytes: Bytes,
}

impl Length for Suffix {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Suffix {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self
            .get_bytes(start, (self.len - start.min(self.len)) as usize)?
            .reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let from = start
            .checked_sub(self.start)
            .map(|f| f as usize)
            .filter(|&f| f + length <= self.bytes.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "the footer points at bytes {start}..{} outside its own end of the file",
                    start + length as u64
                ))
            })?;
        Ok(self.bytes.slice(from..from + length))
    }
}

/// A cold file read region by region, each checked against the CRC-32C it
/// had when the file was first checked: a byte that changed since (bit
/// rot in a long-running server) is an error naming the file and the
/// bytes, never a changed answer. Counts the bytes read and checked.
pub struct CheckedFile {
    file: Blob,
    /// Bytes fetched ahead (an object store's row groups, in one GET), by
    /// their offset: reads inside are served from memory, and checked all
    /// the same.
    window: Option<(u64, Bytes)>,
    path: PathBuf,
    regions: Arc<Regions>,
    read: Arc<AtomicU64>,
    checked: Arc<AtomicU64>,
    check_ns: Arc<AtomicU64>,
}

impl CheckedFile {
    fn read_at(&self, start: u64, length: usize) -> std::io::Result<Bytes> {
        if let Some((at, bytes)) = &self.window {
            let from = start.checked_sub(*at).map(|f| f as usize);
            if let Some(from) = from.filter(|f| f + length <= bytes.len()) {
                self.read.fetch_add(length as u64, Ordering::Relaxed);
                return Ok(bytes.slice(from..from + length));
            }
        }
        let buf = self.file.read_at(start, length)?;
        self.read.fetch_add(length as u64, Ordering::Relaxed);
        Ok(buf)
    }

    /// Checks `bytes` (the file's bytes from `start`) against every region
    /// they touch; a region they hold only part of is read whole to check.
    fn check(&self, start: u64, bytes: &[u8]) -> parquet::errors::Result<()> {
        let t = std::time::Instant::now();
        let end = start + bytes.len() as u64;
        let r = &self.regions;
        let mut i = r.index_of(start);
        let mut checked = 0u64;
        while i + 1 < r.bounds.len() && r.bounds[i] < end {
            let (lo, hi) = (r.bounds[i], r.bounds[i + 1]);
            let crc = if lo >= start && hi <= end {
                crc32c::crc32c(&bytes[(lo - start) as usize..(hi - start) as usize])
            } else {
                let whole = self.read_at(lo, (hi - lo) as usize)?;
                crc32c::crc32c(&whole)
            };
            checked += hi - lo;
            if crc != r.crcs[i] {
                return Err(parquet::errors::ParquetError::General(format!(
                    "{} is corrupt at bytes {lo}..{hi}: checksum mismatch (crc32c {crc:#010x}, {:#010x} when the file was first checked): damaged since; `07_gpu_tiered scrub` checks every file",
                    self.path.display(),
                    r.crcs[i]
                )));
            }
            i += 1;
        }
        self.checked.fetch_add(checked, Ordering::Relaxed);
        self.check_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl Length for CheckedFile {
    fn len(&self) -> u64 {
        self.regions.bounds.last().copied().unwrap_or(0)
    }
}

impl ChunkReader for CheckedFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        // To the end of the region it starts in: each region whole, checked.
        use bytes::Buf;
        let r = &self.regions;
        let i = r.index_of(start);
        let end = r.bounds.get(i + 1).copied().unwrap_or(start).max(start);
        Ok(self.get_bytes(start, (end - start) as usize)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let buf = self.read_at(start, length)?;
        self.check(start, &buf)?;
        Ok(buf)
    }
}

/// Parsed footers, page indexes and region checksums of cold files, so that
/// a query does not read and decode them again (files are immutable once in
/// the catalog). A file enters only after its checksum matched the
/// catalog's; later reads check each region they fetch against it.
#[derive(Default)]
pub struct MetaCache {
    entries: std::sync::Mutex<HashMap<PathBuf, Checked>>,
}

impl std::fmt::Debug for MetaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaCache").finish()
    }
}

impl MetaCache {
    fn get(&self, path: &Path) -> Option<Checked> {
        self.entries.lock().ok()?.get(path).cloned()
    }

    fn put(&self, path: &Path, checked: Checked) {
        if let Ok(mut e) = self.entries.lock() {
            e.insert(path.to_path_buf(), checked);
        }
    }

    /// Forgets a file (deleted by retention).
    pub fn forget(&self, path: &Path) {
        if let Ok(mut e) = self.entries.lock() {
            e.remove(path);
        }
    }
}

/// Reads the rows of one cold file that satisfy `preds`, as batches with
/// the columns `projection` (indices into the store schema), pruning row
/// groups by their statistics and pages by the page index. The file at
/// `path` must be the one the catalog row `listed` describes: its length
/// and CRC-32C are checked before anything in it is trusted (once per file
/// with a cache, which then keeps its footer, page index and region
/// checksums; every time without), and every page a read fetches is
/// checked against its region's checksum before it is decoded.
#[allow(clippy::too_many_arguments)]
pub fn scan_file(
    store: &ColdStore,
    listed: &ColdFile,
    schema: &SchemaRef,
    preds: &[Pred],
    projection: &[usize],
    batch_size: usize,
    stats: &mut ScanStats,
    cache: Option<&MetaCache>,
    mut f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let reader = ColdReader::open(store, listed, schema, stats, cache)?;
    let groups = reader.row_groups(preds, stats);
    let result = reader.read(&groups, preds, projection, batch_size, stats, &mut f);
    reader.finish(stats);
    result
}

/// A cold file opened (and checked, see [`scan_file`]) for reads of chosen
/// row groups: the top-K path reads a file's row groups one at a time, in
/// the order their statistics say, and skips those that cannot matter.
/// [`ColdReader::finish`] adds the bytes it read and checked to the counts.
pub struct ColdReader {
    store: ColdStore,
    rel: PathBuf,
    path: PathBuf,
    checked: Checked,
    /// Bytes read, bytes checked, nanoseconds checking.
    counters: [Arc<AtomicU64>; 3],
}

/// A row group that may hold rows satisfying the predicates, and the rows
/// to read of it (from the page index).
#[derive(Clone, Debug)]
pub struct RowGroupPick {
    pub index: usize,
    selection: Vec<RowSelector>,
}

impl ColdReader {
    /// Opens the file at `path`, which must be the one the catalog row
    /// `listed` describes (checked the first time, as [`scan_file`] says),
    /// and checks that its columns are the store's.
    pub fn open(
        store: &ColdStore,
        listed: &ColdFile,
        schema: &SchemaRef,
        stats: &mut ScanStats,
        cache: Option<&MetaCache>,
    ) -> Result<ColdReader> {
        let path = &store.name(&listed.path);
        let checked = match cache.and_then(|c| c.get(&listed.path)) {
            Some(c) => c,
            None => {
                let c = check_first(store, listed, stats)?;
                if let Some(cache) = cache {
                    cache.put(&listed.path, c.clone());
                }
                c
            }
        };
        if !same_columns(checked.meta.schema(), schema) {
            return Err(Error::corrupt(
                path.display().to_string(),
                0,
                "the file's schema is not the store's schema",
            ));
        }
        Ok(ColdReader {
            store: store.clone(),
            rel: listed.path.clone(),
            path: path.to_path_buf(),
            checked,
            counters: [
                Arc::new(AtomicU64::new(0)),
                Arc::new(AtomicU64::new(0)),
                Arc::new(AtomicU64::new(0)),
            ],
        })
    }

    fn meta(&self) -> &ParquetMetaData {
        self.checked.meta.metadata()
    }

    /// The row groups that may hold rows satisfying `preds` (by their
    /// statistics), each with its rows to read (by the page index); counts
    /// row groups and pages, total and pruned.
    pub fn row_groups(&self, preds: &[Pred], stats: &mut ScanStats) -> Vec<RowGroupPick> {
        let meta = self.meta();
        let mut out = Vec::new();
        for rg in 0..meta.num_row_groups() {
            stats.row_groups_total += 1;
            let md = meta.row_group(rg);
            let may = preds.iter().all(|p| {
                md.columns()
                    .get(p.column)
                    .and_then(|c| c.statistics())
                    .and_then(chunk_stats)
                    .is_none_or(|s| p.kind.may_match(&s))
            });
            if !may {
                stats.row_groups_pruned += 1;
                continue;
            }
            let selection = match page_selection(meta, rg, preds, stats) {
                Some(keep) => selectors(&keep),
                None => vec![RowSelector::select(md.num_rows().max(0) as usize)],
            };
            out.push(RowGroupPick {
                index: rg,
                selection,
            });
        }
        out
    }

    /// The least and greatest value of column `column` in row group `rg`,
    /// under the order queries sort by (IEEE 754 total order for floats),
    /// when the statistics prove them: integer and timestamp chunks with
    /// statistics, float chunks with statistics whose row group holds no
    /// NaN (by [`NAN_KEY`]). `None` when nothing is proven.
    pub fn bounds(&self, rg: usize, column: usize) -> Option<Stats> {
        let meta = self.meta();
        let chunk = meta.row_groups().get(rg)?.columns().get(column)?;
        match chunk_stats(chunk.statistics()?)? {
            Stats::Int(lo, hi) => Some(Stats::Int(lo, hi)),
            Stats::Float(lo, hi) => {
                let name = self.checked.meta.schema().fields().get(column)?.name();
                let counts = nan_counts_of(meta, name)?;
                if counts.len() != meta.num_row_groups() || *counts.get(rg)? != 0 {
                    return None;
                }
                if lo.is_nan() || hi.is_nan() || lo > hi {
                    return None;
                }
                // A zero bound stands for both zeros (the writer writes
                // -0.0 as a min and +0.0 as a max; widen to be sure).
                let lo = if lo == 0.0 { -0.0 } else { lo };
                let hi = if hi == 0.0 { 0.0 } else { hi };
                Some(Stats::Float(lo, hi))
            }
            Stats::Str(..) => None,
        }
    }

    /// Reads the rows of `groups` (in file order) that satisfy `preds`,
    /// with the columns `projection`, passing batches to `f` until it
    /// answers false.
    pub fn read(
        &self,
        groups: &[RowGroupPick],
        preds: &[Pred],
        projection: &[usize],
        batch_size: usize,
        stats: &mut ScanStats,
        f: &mut impl FnMut(RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        let blob = self.store.open(&self.rel).map_err(|e| Error::io(path, e))?;
        // An object store answers each read with a request: the chosen row
        // groups' bytes come in one ranged GET instead of one per page.
        let window = match &blob {
            Blob::Remote { .. } => {
                let meta = self.meta();
                let spans = groups.iter().filter_map(|g| {
                    let rg = meta.row_groups().get(g.index)?;
                    let lo = rg.columns().iter().map(|c| c.byte_range().0).min()?;
                    let hi = rg
                        .columns()
                        .iter()
                        .map(|c| c.byte_range().0 + c.byte_range().1)
                        .max()?;
                    Some((lo, hi))
                });
                let (lo, hi) = spans.fold((u64::MAX, 0), |(a, b), (l, h)| (a.min(l), b.max(h)));
                if lo < hi && hi <= blob.len() {
                    let bytes = blob
                        .read_at(lo, (hi - lo) as usize)
                        .map_err(|e| Error::io(path, e))?;
                    Some((lo, bytes))
                } else {
                    None
                }
            }
            Blob::Local { .. } => None,
        };
        let file = CheckedFile {
            file: blob,
            window,
            path: path.to_path_buf(),
            regions: self.checked.regions.clone(),
            read: self.counters[0].clone(),
            checked: self.counters[1].clone(),
            check_ns: self.counters[2].clone(),
        };
        let builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.checked.meta.clone());
        let mut needed: Vec<usize> = projection.to_vec();
        needed.extend(preds.iter().map(|p| p.column));
        needed.sort_unstable();
        needed.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), needed.iter().copied());
        let selection: Vec<RowSelector> = groups
            .iter()
            .flat_map(|g| g.selection.iter().cloned())
            .collect();
        // Late materialization: when a predicate is on a column the files
        // are not sorted by (anything but symbol and timestamp, whose pages
        // the page index already picks, so that most rows read pass), and
        // the predicates need fewer columns than the read, the reader
        // decodes the predicates' columns first and the others only for the
        // rows that pass (parquet's RowFilter), as DuckDB and DataFusion do.
        // The rows are filtered again below, which changes nothing: the
        // same predicates on the same values.
        let mut pred_cols: Vec<usize> = preds.iter().map(|p| p.column).collect();
        pred_cols.sort_unstable();
        pred_cols.dedup();
        let unsorted_column = preds
            .iter()
            .any(|p| !matches!(p.name.as_str(), "timestamp" | "symbol"));
        let builder = if unsorted_column && pred_cols.len() < needed.len() {
            let owned = preds.to_vec();
            let filter = ArrowPredicateFn::new(
                ProjectionMask::roots(builder.parquet_schema(), pred_cols.iter().copied()),
                move |batch: RecordBatch| match eval_batch(&owned, &batch) {
                    Ok(Some(mask)) => Ok(mask),
                    Ok(None) => Ok(BooleanArray::from(vec![true; batch.num_rows()])),
                    Err(e) => Err(ArrowError::ComputeError(e.to_string())),
                },
            );
            builder.with_row_filter(RowFilter::new(vec![Box::new(filter)]))
        } else {
            builder
        };
        let reader = builder
            .with_row_groups(groups.iter().map(|g| g.index).collect())
            .with_row_selection(RowSelection::from(selection))
            .with_projection(mask)
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| Error::parquet(path, e))?;
        // Positions of the projection's columns in the read batches.
        let positions: Vec<usize> = projection
            .iter()
            .map(|c| needed.binary_search(c).unwrap_or(0))
            .collect();
        for batch in reader {
            let batch =
                batch.map_err(|e| Error::arrow(format!("reading {}", path.display()), e))?;
            let kept = filter_batch(preds, &batch)?;
            if kept.num_rows() == 0 {
                continue;
            }
            stats.rows_matched += kept.num_rows() as u64;
            let out = kept
                .project(&positions)
                .map_err(|e| Error::arrow("projecting cold rows", e))?;
            if !f(out)? {
                break;
            }
        }
        Ok(())
    }

    /// Adds the bytes read and checked to `stats`.
    pub fn finish(self, stats: &mut ScanStats) {
        stats.bytes_read += self.counters[0].load(Ordering::Relaxed);
        stats.bytes_checked += self.counters[1].load(Ordering::Relaxed);
        stats.check_ns += self.counters[2].load(Ordering::Relaxed);
    }
}

/// A cold file's statistics as a Delta `add` action writes them
/// (`numRecords`, and `minValues`, `maxValues` and `nullCount` for every
/// column), from its footer's row-group statistics. `None` when a column
/// has no finite bound in some row group (an all-NaN chunk, an infinity,
/// which JSON cannot hold): a reader given bounds for some columns and not
/// others may read the missing ones as null bounds and skip the file, so
/// such a file gets `numRecords` alone.
pub fn delta_stats(store: &ColdStore, rel: &Path) -> Result<Option<serde_json::Value>> {
    use serde_json::{json, Map, Value};
    let path = store.name(rel);
    let blob = store.open(rel).map_err(|e| Error::io(&path, e))?;
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&blob)
        .map_err(|e| Error::parquet(&path, e))?;
    let schema = meta.file_metadata().schema_descr();
    let (mut mins, mut maxs, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (i, column) in schema.columns().iter().enumerate() {
        let (mut lo, mut hi, mut null_count): (Option<Value>, Option<Value>, u64) = (None, None, 0);
        for rg in meta.row_groups() {
            let Some(st) = rg.column(i).statistics() else {
                return Ok(None);
            };
            null_count += st.null_count_opt().unwrap_or(0);
            let bounds = match st {
                Statistics::Int32(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .map(|(a, b)| (json!(a), json!(b))),
                Statistics::Int64(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .map(|(a, b)| (json!(a), json!(b))),
                Statistics::Double(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .map(|(a, b)| (json!(a), json!(b))),
                Statistics::ByteArray(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .and_then(|(a, b)| Some((json!(a.as_utf8().ok()?), json!(b.as_utf8().ok()?)))),
                _ => None,
            };
            let Some((a, b)) = bounds else {
                return Ok(None);
            };
            let less = |x: &Value, y: &Value| match (x, y) {
                (Value::String(x), Value::String(y)) => x < y,
                _ => {
                    x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x < y)
                        || x.as_i64().zip(y.as_i64()).is_some_and(|(x, y)| x < y)
                }
            };
            if lo.as_ref().is_none_or(|l| less(&a, l)) {
                lo = Some(a);
            }
            if hi.as_ref().is_none_or(|h| less(h, &b)) {
                hi = Some(b);
            }
        }
        let name = column.name().to_string();
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(None);
        };
        mins.insert(name.clone(), lo);
        maxs.insert(name.clone(), hi);
        nulls.insert(name, json!(null_count));
    }
    Ok(Some(json!({
        "numRecords": meta.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    })))
}

/// The NaN counts a file records for column `name` ([`NAN_KEY`]).
fn nan_counts_of(meta: &ParquetMetaData, name: &str) -> Option<Vec<u64>> {
    let kv = meta
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|k| k.key == NAN_KEY)?;
    let mut all: std::collections::BTreeMap<String, Vec<u64>> =
        serde_json::from_str(kv.value.as_deref()?).ok()?;
    all.remove(name)
}

/// Compressed bytes of the row groups of `path` that hold at least one row
/// satisfying `preds` (found by reading every row group: for measuring how
/// close a pruned scan comes to the minimum, not for queries).
pub fn matching_row_group_bytes(store: &ColdStore, rel: &Path, preds: &[Pred]) -> Result<u64> {
    let path = &store.name(rel);
    let file = store.read(rel).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.clone())
        .map_err(|e| Error::parquet(path, e))?;
    let meta = builder.metadata().clone();
    let mut total = 0;
    for rg in 0..meta.num_row_groups() {
        let reader = ParquetRecordBatchReaderBuilder::try_new(file.clone())
            .and_then(|b| b.with_row_groups(vec![rg]).build())
            .map_err(|e| Error::parquet(path, e))?;
        let mut hit = false;
        for batch in reader {
            let batch =
                batch.map_err(|e| Error::arrow(format!("reading {}", path.display()), e))?;
            if filter_batch(preds, &batch)?.num_rows() > 0 {
                hit = true;
                break;
            }
        }
        if hit {
            total += meta.row_group(rg).compressed_size() as u64;
        }
    }
    Ok(total)
}

/// The description a cold file carries in its footer, read from the footer
/// alone; `Ok(None)` for a file without one (written before descriptions).
pub fn read_meta(store: &ColdStore, rel: &Path) -> std::result::Result<Option<FileMeta>, String> {
    let file = store.open(rel).map_err(|e| e.to_string())?;
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| format!("footer: {e}"))?;
    meta_of(&meta)
}

fn meta_of(meta: &ParquetMetaData) -> std::result::Result<Option<FileMeta>, String> {
    let Some(kv) = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|k| k.key == META_KEY))
    else {
        return Ok(None);
    };
    serde_json::from_str(kv.value.as_deref().unwrap_or(""))
        .map(Some)
        .map_err(|e| format!("its description ({META_KEY}) does not parse: {e}"))
}

/// What [`describe`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Described {
    /// The catalog row the file deserves.
    pub file: ColdFile,
    /// Whether it carried its own description (files written before
    /// descriptions are known only from their name and rows).
    pub self_described: bool,
    /// The store that wrote it, as its description says.
    pub store_id: Option<String>,
    /// Its rows, as a multiset ([`RowDigest`]), to compare with the WAL.
    pub digest: RowDigest,
}

/// Why [`describe`] could not vouch for a file.
#[derive(Debug)]
pub enum DescribeError {
    /// The file could not be read (permissions, an I/O error): nothing is
    /// known about its bytes, so it is not damage.
    Unreadable(std::io::Error),
    /// Its bytes were read and are wrong.
    Damaged(String),
}

impl From<String> for DescribeError {
    fn from(why: String) -> Self {
        DescribeError::Damaged(why)
    }
}

impl From<&str> for DescribeError {
    fn from(why: &str) -> Self {
        DescribeError::Damaged(why.to_string())
    }
}

/// A multiset of rows: how many, and the wrapping sum of a 64-bit hash of
/// each (every column, floats by their bits). The same rows in any order
/// give the same digest; other rows almost surely another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowDigest {
    pub rows: u64,
    pub sum: u64,
}

impl RowDigest {
    /// Adds the rows of `batch` (the store's columns, in order); with
    /// `day`, only the rows of that UTC day.
    pub fn add(&mut self, batch: &RecordBatch, day: Option<i64>) {
        use arrow_array::types::{Float64Type, Int32Type, Int64Type};
        use arrow_schema::DataType;
        let ts = batch.column(0).as_primitive::<TimestampNanosecondType>();
        for r in 0..batch.num_rows() {
            if day.is_some_and(|d| ts.value(r).div_euclid(DAY_NS) != d) {
                continue;
            }
            let mut h = twox_hash::XxHash64::with_seed(7);
            for c in batch.columns() {
                let bytes: Vec<u8> = match c.data_type() {
                    DataType::Timestamp(..) => c
                        .as_primitive::<TimestampNanosecondType>()
                        .value(r)
                        .to_le_bytes()
                        .to_vec(),
                    DataType::Utf8 => {
                        let mut v = c.as_string::<i32>().value(r).as_bytes().to_vec();
                        v.push(0xFF);
                        v
                    }
                    DataType::Float64 => c
                        .as_primitive::<Float64Type>()
                        .value(r)
                        .to_bits()
                        .to_le_bytes()
                        .to_vec(),
                    DataType::Int64 => c
                        .as_primitive::<Int64Type>()
                        .value(r)
                        .to_le_bytes()
                        .to_vec(),
                    DataType::Int32 => c
                        .as_primitive::<Int32Type>()
                        .value(r)
                        .to_le_bytes()
                        .to_vec(),
                    _ => Vec::new(),
                };
                std::hash::Hasher::write(&mut h, &bytes);
            }
            self.rows += 1;
            self.sum = self.sum.wrapping_add(std::hash::Hasher::finish(&h));
        }
    }
}

/// Reads a cold file whole and says what it holds, from its bytes alone
/// (for repair, when the catalog cannot be trusted): its name gives the
/// partition and LSN range; its description must agree with the name, with
/// the checksum of its data region and with its rows, all decoded; every
/// row must fall in the partition's day. `Err` says why the file cannot be
/// trusted.
pub fn describe(
    store: &ColdStore,
    rel: &Path,
    schema: &SchemaRef,
) -> std::result::Result<Described, DescribeError> {
    let (partition, lsn_lo, lsn_hi) = parse_path(rel)
        .ok_or("its name is not year=YYYY/month=MM/day=DD/part-<lsn>-<lsn>.parquet")?;
    let data = store.read(rel).map_err(DescribeError::Unreadable)?;
    let crc = crc32c::crc32c(&data);
    let bytes = data.len() as u64;
    let builder = ParquetRecordBatchReaderBuilder::try_new(data.clone())
        .map_err(|e| format!("footer: {e}"))?;
    let got = builder.schema();
    let same = same_columns(got, schema);
    if !same {
        return Err("its schema is not the store's".into());
    }
    let meta = meta_of(builder.metadata())?;
    if let Some(m) = &meta {
        let region = usize::try_from(m.data_bytes)
            .ok()
            .and_then(|n| data.get(..n))
            .ok_or_else(|| {
                format!(
                    "its description says {} data bytes, the file has {bytes}",
                    m.data_bytes
                )
            })?;
        let want = crc32c::crc32c(region);
        if want != m.data_crc32c {
            return Err(format!(
                "data checksum mismatch: its description says {:#010x}, the data has {want:#010x}",
                m.data_crc32c
            )
            .into());
        }
    }
    let reader = builder
        .with_batch_size(65536)
        .build()
        .map_err(|e| format!("reading: {e}"))?;
    let (mut rows, mut min_ts, mut max_ts) = (0u64, i64::MAX, i64::MIN);
    let mut symbols = std::collections::BTreeSet::new();
    let mut digest = RowDigest::default();
    for batch in reader {
        let batch = batch.map_err(|e| format!("reading: {e}"))?;
        digest.add(&batch, None);
        rows += batch.num_rows() as u64;
        let ts = batch.column(0).as_primitive::<TimestampNanosecondType>();
        for &t in ts.values() {
            min_ts = min_ts.min(t);
            max_ts = max_ts.max(t);
        }
        for s in batch.column(1).as_string::<i32>().iter().flatten() {
            if !symbols.contains(s) {
                symbols.insert(s.to_string());
            }
        }
    }
    let file = ColdFile {
        partition,
        path: rel.to_path_buf(),
        rows,
        min_ts,
        max_ts,
        symbols: symbols.into_iter().collect(),
        bytes,
        lsn_lo,
        lsn_hi,
        crc32c: crc,
    };
    file.check()?;
    if let Some(m) = &meta {
        let said = (
            &m.partition,
            m.rows,
            m.min_ts,
            m.max_ts,
            &m.symbols,
            m.lsn_lo,
            m.lsn_hi,
        );
        let found = (
            &file.partition,
            file.rows,
            file.min_ts,
            file.max_ts,
            &file.symbols,
            file.lsn_lo,
            file.lsn_hi,
        );
        if said != found {
            return Err(format!(
                "its description (partition {}, {} rows, times {}..={}, LSNs {}..={}) does not match its name and rows (partition {}, {} rows, times {}..={}, LSNs {}..={})",
                m.partition, m.rows, m.min_ts, m.max_ts, m.lsn_lo, m.lsn_hi,
                file.partition, file.rows, file.min_ts, file.max_ts, file.lsn_lo, file.lsn_hi
            )
            .into());
        }
    }
    Ok(Described {
        file,
        self_described: meta.is_some(),
        store_id: meta.and_then(|m| m.store_id),
        digest,
    })
}

/// Whether `got` has exactly the columns of `want`: names and types, in
/// order (metadata aside).
fn same_columns(got: &arrow_schema::Schema, want: &arrow_schema::Schema) -> bool {
    got.fields().len() == want.fields().len()
        && got
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
}
