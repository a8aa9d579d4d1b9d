//! The engine: ingest, tiers, migration, recovery.
//!
//! # Where a record is, at every moment
//!
//! Every acknowledged record is in the WAL and in exactly one tier. The hot
//! tier holds whole WAL records (batches) by LSN; the oldest move to the warm
//! tier when the hot tier reaches its threshold; the oldest warm records are
//! migrated to the cold tier when the warm tier reaches its threshold. Moves
//! happen under the state's write lock, and queries take their snapshot
//! under its read lock, so no query sees a record twice or misses it.
//!
//! # Migration, two-phase
//!
//! 1. The oldest warm records, LSNs `lo..=hi` (`lo` is the watermark + 1),
//!    are written as Parquet files into `_staging/`, fsynced, and renamed
//!    into their partitions (new directories fsynced into their parents).
//!    They are not yet part of the store.
//! 2. One catalog transaction inserts their rows (each with its file's
//!    CRC-32C and a checksum of the row), the migration's row, and sets
//!    the watermark to `hi`. From this commit on they are.
//! 3. Under the write lock, the records leave the warm tier and the files
//!    join the cold list.
//! 4. WAL segments whose records are all `<= hi` are deleted.
//!
//! A crash before 2 leaves files the catalog does not list: recovery deletes
//! them, once it has proven they are leftovers (their LSNs are above the
//! watermark and all in the WAL), and replays the records from the WAL. A
//! crash after 2 leaves WAL records `<= hi`: recovery skips them. Either way
//! each record is read back exactly once. What recovery checks first, and
//! what it refuses, is in [`crate::engine::recovery`].
//!
//! # What an ingest answers
//!
//! [`Engine::ingest_keyed`] answers for its own records only: an error if
//! they could not be made durable (nothing of them is stored), success once
//! they are in the WAL and visible in the hot tier. Moving records between
//! tiers afterwards (to the warm tier, a migration to the cold tier) is the
//! store's work, not the writer's: if it fails (the cold directory is not
//! writable, the disk is full), the records stay where they are, readable,
//! the failure is logged on stderr, counted and kept in
//! [`Engine::move_status`] (the HTTP API's `/health` says `degraded`), and
//! the migration is tried again after a backoff (1 s, doubling up to 60 s):
//! by the next ingest, or by [`Engine::retry_moves`]. A failed migration
//! deletes the files it wrote, which no catalog row lists, so that the
//! next try starts clean. With an idempotency key
//! ([`crate::store::idempotency`]), a batch sent again is answered with the first
//! answer instead of being stored twice.

pub mod recovery;

mod open;
mod reconcile;
mod scrub;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::store::cache::RangeCache;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::{self, Mode};
use crate::store::bars::BarsBuilder;
use crate::store::catalog::{BarsCommit, Catalog};
use crate::store::cold::{self, ColdFile};
use crate::store::hot::HotBatch;
use crate::store::idempotency::{Begin, KeyStats, KeyTable};
use crate::store::wal::{self, Recovery, Wal, WalStats};
use crate::store::warm::WarmTier;
use recovery::OpenReport;

/// Called with every batch once it is durable (the HTTP API's live feed).
pub type Observer = Arc<dyn Fn(&RecordBatch) + Send + Sync>;

/// The tiers' contents, guarded by one lock.
pub(crate) struct State {
    pub hot: BTreeMap<u64, Arc<HotBatch>>,
    pub hot_rows: u64,
    /// Highest LSN that has left the hot tier (or is in the cold tier).
    pub moved_through: u64,
    pub warm: Box<dyn WarmTier>,
    pub cold: Arc<Vec<ColdFile>>,
    pub cold_rows: u64,
    pub watermark: u64,
}

/// Counts per tier and the log, read under one lock.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TierStats {
    pub hot_records: u64,
    pub hot_bytes: u64,
    pub warm_records: u64,
    pub warm_bytes: u64,
    pub warm_device: String,
    /// Device memory of the warm tier, when it lives on a GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_device_memory: Option<crate::store::warm::DeviceMemory>,
    pub cold_records: u64,
    pub cold_files: u64,
    pub cold_bytes: u64,
    pub wal_bytes: u64,
    pub wal_fsyncs: u64,
    pub wal_records_written: u64,
    pub watermark_lsn: u64,
    pub migrations: u64,
}

impl TierStats {
    /// Records in all tiers.
    pub fn total(&self) -> u64 {
        self.hot_records + self.warm_records + self.cold_records
    }
}

/// What [`Engine::ingest_keyed`] answers: the batch's LSN and records, and
/// whether they were stored by an earlier ingest with the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ingested {
    pub lsn: u64,
    pub records: u64,
    /// True when an earlier ingest with the same key stored this batch:
    /// nothing was stored now, and `lsn` and `records` are its answer.
    pub replayed: bool,
}

/// A kind of move between tiers that keeps failing.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Failure {
    /// The last error.
    pub error: String,
    /// Attempts that failed in a row.
    pub attempts: u64,
    /// When the first of them failed, and the last (unix seconds).
    pub first_s: i64,
    pub last_s: i64,
}

/// Moves between tiers after ingest (hot to warm, warm to cold): failures
/// since the store opened, and what is failing now. Records stay readable
/// where they are while a move fails.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MoveStatus {
    /// Failed moves since the store opened.
    pub failures: u64,
    /// The migration to the cold tier, while it fails.
    pub migration: Option<Failure>,
    /// Moving records from the hot to the warm tier, while it fails.
    pub eviction: Option<Failure>,
    /// Seconds until the migration is tried again, while it fails.
    pub retry_in_s: Option<f64>,
}

impl MoveStatus {
    /// True while a move is failing.
    pub fn degraded(&self) -> bool {
        self.migration.is_some() || self.eviction.is_some()
    }
}

#[derive(Default)]
struct MoveHealth {
    failures: u64,
    migration: Option<Failure>,
    eviction: Option<Failure>,
    /// No migration is tried before this, after a failure.
    retry_at: Option<Instant>,
    backoff: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn fail(slot: &mut Option<Failure>, e: &Error) {
    let now = crate::store::catalog::now_secs();
    match slot {
        Some(f) => {
            f.error = e.to_string();
            f.attempts += 1;
            f.last_s = now;
        }
        None => {
            *slot = Some(Failure {
                error: e.to_string(),
                attempts: 1,
                first_s: now,
                last_s: now,
            })
        }
    }
}

/// The tiered store.
pub struct Engine {
    config: Config,
    /// Where the cold tier lives (a directory, or an object store).
    cold: crate::store::objects::ColdStore,
    /// Other stores' files in a shared cold tier, as last read from the
    /// table (see [`Engine::cold_view`]).
    others: Mutex<OtherStores>,
    mode: Mode,
    schema: SchemaRef,
    /// The log; `None` when the store was opened read-only.
    wal: Option<Wal>,
    pub(crate) state: RwLock<State>,
    /// Shared with the log, which records its segments in it.
    catalog: Arc<Mutex<Catalog>>,
    /// Held while a migration runs: one at a time.
    migrating: Mutex<()>,
    migrations: std::sync::atomic::AtomicU64,
    /// True while a thread runs [`Engine::run_migrator`].
    background: AtomicBool,
    /// Signals "migration wanted" to the migrator, and "migrated" back.
    signal: Mutex<()>,
    wanted: Condvar,
    migrated: Condvar,
    recovery: Recovery,
    opened: OpenReport,
    observer: RwLock<Option<Observer>>,
    meta_cache: Arc<cold::MetaCache>,
    /// Finished answers (OHLCV documents of the HTTP API), kept exact by
    /// invalidation on every write and retention.
    answers: RangeCache,
    /// Idempotency keys of stored batches (see [`crate::store::idempotency`]).
    keys: KeyTable,
    /// Failed moves between tiers, and the migration's backoff.
    health: Mutex<MoveHealth>,
    /// The store's ID (written into cold files and WAL segments); `None`
    /// only when opened read-only before the store had one.
    store_id: Option<String>,
    /// The cold tier's Delta table (see [`crate::store::table`]); `None`
    /// when opened read-only.
    table: Option<crate::store::table::ColdTable>,
    /// Set when a migration's table commit succeeded and its catalog
    /// commit did not: migrations stop until the store is reopened, whose
    /// recovery takes the migration from the table.
    table_ahead: AtomicBool,
    /// Whose segments the log holds (for [`Engine::scrub`]).
    pub(crate) log_owner: wal::Owner,
    /// Held (flock on the store directory) while the engine lives: one
    /// writing process per store. `None` for an empty read-only engine.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("base", &self.config.storage.base_path)
            .finish()
    }
}

/// Other stores' files in a shared table: each described once (read whole
/// and checked against its own description), kept by its path in the log.
#[derive(Default)]
pub(crate) struct OtherStores {
    /// This process's reader of the table (opened at first use).
    table: Option<crate::store::table::ColdTable>,
    read_at: Option<std::time::Instant>,
    known: std::collections::HashMap<String, ColdFile>,
    list: Arc<Vec<ColdFile>>,
}

/// How long a read of the shared table's other files is used before the
/// table is read again.
const OTHERS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Whether the store was opened read-only ([`Engine::open_read_only`]).
    pub fn read_only(&self) -> bool {
        self.wal.is_none()
    }

    /// The log, or an error saying the store was opened to read only.
    fn log(&self) -> Result<&Wal> {
        self.wal.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the store at {} was opened read-only; nothing can be written",
                self.config.storage.base_path.display()
            ))
        })
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The store's Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Sets (or clears) the function told of every durable batch.
    pub fn set_observer(&self, observer: Option<Observer>) {
        if let Ok(mut o) = self.observer.write() {
            *o = observer;
        }
    }

    /// The store's ID (see [`crate::engine::recovery`]); `None` only for a store
    /// opened read-only before it had one.
    pub fn store_id(&self) -> Option<&str> {
        self.store_id.as_deref()
    }

    /// The cache of finished answers over time ranges (see [`crate::store::cache`]).
    pub fn answers(&self) -> &RangeCache {
        &self.answers
    }

    /// Where the cold tier lives, and (for an object store) what was
    /// asked of it.
    pub fn cold_store(&self) -> &crate::store::objects::ColdStore {
        &self.cold
    }

    /// The cold files a read covers: this store's `own`, and in a shared
    /// cold tier (`cold_tier.shared`) the other stores' files the table
    /// lists, read from it again when the last read is older than a second.
    /// Another store's file is described once (read whole and checked
    /// against its own description and the table's size for it); one that
    /// cannot be read is an error, never a file left out of the answer.
    pub fn cold_view(&self, own: Arc<Vec<ColdFile>>) -> Result<Arc<Vec<ColdFile>>> {
        if !self.config.cold_tier.shared {
            return Ok(own);
        }
        let Some(me) = self.store_id.as_deref() else {
            return Ok(own);
        };
        let mut o = lock(&self.others);
        if o.read_at.is_none_or(|t| t.elapsed() >= OTHERS_FRESH) {
            if o.table.is_none() && crate::store::table::exists(&self.cold)? {
                o.table = Some(crate::store::table::ColdTable::open(&self.cold, me)?);
            }
            let files = match &o.table {
                Some(t) => t.state()?.files,
                None => Vec::new(),
            };
            let mut known = std::collections::HashMap::new();
            for f in files {
                let Some(id) = cold::store_of_path(&f.path) else {
                    continue;
                };
                if id == me {
                    continue;
                }
                if let Some(c) = o.known.remove(&f.raw) {
                    known.insert(f.raw, c);
                    continue;
                }
                let name = self.cold.name(&f.path);
                let d = cold::describe(&self.cold, &f.path, &self.schema).map_err(|e| {
                    Error::corrupt(
                        name.display().to_string(),
                        0,
                        format!(
                            "store {id}'s file in the shared cold tier cannot be read: {}",
                            match e {
                                cold::DescribeError::Unreadable(e) => e.to_string(),
                                cold::DescribeError::Damaged(why) => why,
                            }
                        ),
                    )
                })?;
                if d.store_id.as_deref() != Some(id.as_str()) || d.file.bytes != f.bytes {
                    return Err(Error::corrupt(
                        name.display().to_string(),
                        0,
                        format!(
                            "the shared table lists it as store {id}'s, {} bytes; the file says store {:?}, {} bytes",
                            f.bytes, d.store_id, d.file.bytes
                        ),
                    ));
                }
                known.insert(f.raw, d.file);
            }
            for gone in o.known.keys() {
                self.meta_cache.forget(std::path::Path::new(gone));
            }
            let mut list: Vec<ColdFile> = known.values().cloned().collect();
            list.sort_by(|a, b| a.path.cmp(&b.path));
            o.list = Arc::new(list);
            o.known = known;
            o.read_at = Some(std::time::Instant::now());
        }
        if o.list.is_empty() {
            return Ok(own);
        }
        let mut all = (*own).clone();
        all.extend(o.list.iter().cloned());
        Ok(Arc::new(all))
    }

    /// Parsed Parquet footers of the cold files.
    pub fn meta_cache(&self) -> &Arc<cold::MetaCache> {
        &self.meta_cache
    }

    /// What recovery found in the WAL when the store was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// What opening the store deleted (proven leftovers) and quarantined.
    pub fn opened(&self) -> &OpenReport {
        &self.opened
    }

    /// Returns once no migration is running (one that was is finished).
    pub(crate) fn wait_for_migration(&self) {
        drop(lock(&self.migrating));
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the catalog.
    pub fn with_catalog<T>(&self, f: impl FnOnce(&mut Catalog) -> Result<T>) -> Result<T> {
        f(&mut lock(&self.catalog))
    }

    /// Stores `batch`; returns its LSN once it is durable in the WAL. The
    /// batch is checked first: a batch that does not fit the schema is
    /// refused whole, and nothing of it is written. An error means nothing
    /// of the batch was stored; a failure of the moves between tiers that
    /// follow is not the batch's (see the module doc).
    pub fn ingest(&self, batch: &RecordBatch) -> Result<u64> {
        self.ingest_keyed(batch, None).map(|i| i.lsn)
    }

    /// [`Engine::ingest`] with an optional idempotency key: a key stored
    /// before with the same batch answers that ingest's answer, and stores
    /// nothing ([`Ingested::replayed`]); with another batch it is an
    /// [`Error::KeyConflict`]. The key is written in the batch's WAL record,
    /// so it is durable with it (see [`crate::store::idempotency`]).
    pub fn ingest_keyed(&self, batch: &RecordBatch, key: Option<&str>) -> Result<Ingested> {
        self.log()?;
        schema::validate(self.mode, batch)?;
        let batch = schema::conform(self.mode, batch)?;
        let records = batch.num_rows() as u64;
        let encoded = Wal::encode(&batch)?;
        let reservation = match key {
            None => None,
            Some(key) => match self.keys.begin(key, encoded.fingerprint())? {
                Begin::Stored(first) => {
                    return Ok(Ingested {
                        lsn: first.lsn,
                        records: first.records,
                        replayed: true,
                    })
                }
                Begin::Reserved(r) => Some(r),
            },
        };
        // A batch already stored is answered above, even now.
        self.refuse_if_full()?;
        let stamp = reservation.as_ref().map(|r| r.stamp());
        // An error here (or a panic) drops the reservation: the key is free
        // for the retry, since nothing was stored.
        let lsn = self.log()?.append_encoded(encoded, stamp.as_ref())?;
        // Durable from here on: whatever follows, the answer is success.
        crash_point("after-wal");
        if let Some(r) = reservation {
            r.complete(lsn, records);
        }
        let evicted = {
            let mut state = self.write();
            state.hot_rows += records;
            state.hot.insert(lsn, HotBatch::new(batch.clone()));
            evict_hot(&mut state, hot_threshold(&self.config))
        };
        self.record_eviction(evicted);
        // Visible to queries now: cached answers over its time range go.
        self.answers.written(|| {
            let ts = batch
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values();
            Some((*ts.iter().min()?, *ts.iter().max()?))
        });
        let observer = self.observer.read().ok().and_then(|o| o.clone());
        if let Some(observe) = observer {
            observe(&batch);
        }
        if self.background.load(Ordering::Acquire) {
            self.wait_for_room();
        } else {
            // Recorded, logged and retried later: not this batch's failure.
            let _ = self.maybe_migrate();
        }
        Ok(Ingested {
            lsn,
            records,
            replayed: false,
        })
    }

    /// Refuses an ingest while a move between tiers fails and the tier it
    /// would fill is past its `refuse_at_pct`: the tiers stay bounded by
    /// memory budgets even when the cold tier cannot take records.
    /// ([`Error::Busy`]: nothing is stored; retry later.)
    fn refuse_if_full(&self) -> Result<()> {
        let (migration, eviction, retry_at) = {
            let h = lock(&self.health);
            (h.migration.clone(), h.eviction.clone(), h.retry_at)
        };
        if migration.is_none() && eviction.is_none() {
            return Ok(());
        }
        let retry_after_s = retry_at
            .map(|at| {
                at.saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil() as u64
            })
            .unwrap_or(1)
            .max(1);
        let state = self.read();
        if let Some(f) = &migration {
            let budget = self.config.warm_budget_bytes() as f64;
            let held = state.warm.memory_bytes() as f64;
            if held >= budget * self.config.warm_tier.refuse_at_pct {
                return Err(Error::Busy {
                    message: format!(
                        "the warm tier holds {:.1} MB, {:.0}% of its {} MB budget (warm_tier.refuse_at_pct), because migrations to the cold tier fail ({}); nothing was stored; retry in {retry_after_s} s",
                        held / 1_048_576.0,
                        100.0 * held / budget,
                        crate::config::fmt_num(self.config.warm_tier.max_memory_mb),
                        f.error
                    ),
                    retry_after_s,
                });
            }
        }
        if let Some(f) = &eviction {
            let max = self.config.hot_tier.max_records as f64;
            if state.hot_rows as f64 >= max * self.config.hot_tier.refuse_at_pct {
                return Err(Error::Busy {
                    message: format!(
                        "the hot tier holds {} records, {:.0}% of hot_tier.max_records (hot_tier.refuse_at_pct), because moving records to the warm tier fails ({}); nothing was stored; retry in 1 s",
                        state.hot_rows,
                        100.0 * state.hot_rows as f64 / max,
                        f.error
                    ),
                    retry_after_s: 1,
                });
            }
        }
        Ok(())
    }

    /// Counters of the idempotency keys.
    pub fn key_stats(&self) -> KeyStats {
        self.keys.stats()
    }

    /// Failed moves between tiers (see the module doc).
    pub fn move_status(&self) -> MoveStatus {
        let h = lock(&self.health);
        MoveStatus {
            failures: h.failures,
            migration: h.migration.clone(),
            eviction: h.eviction.clone(),
            retry_in_s: h
                .migration
                .as_ref()
                .and(h.retry_at)
                .map(|at| at.saturating_duration_since(Instant::now()).as_secs_f64()),
        }
    }

    /// Tries the moves that failed again (eviction at once, the migration
    /// once its backoff has passed); for a timer, so that a store that
    /// receives no more writes still catches up. Failures are recorded.
    pub fn retry_moves(&self) {
        if self.read_only() {
            return;
        }
        if lock(&self.health).eviction.is_none() && !self.warm_over(&self.read()) {
            return;
        }
        let evicted = {
            let mut state = self.write();
            evict_hot(&mut state, hot_threshold(&self.config))
        };
        self.record_eviction(evicted);
        let _ = self.maybe_migrate();
    }

    fn record_eviction(&self, result: Result<()>) {
        let mut h = lock(&self.health);
        match result {
            Ok(()) => h.eviction = None,
            Err(e) => {
                h.failures += 1;
                fail(&mut h.eviction, &e);
                eprintln!("moving records to the warm tier failed (they stay in the hot tier, readable; tried again at the next write): {e}");
            }
        }
    }

    fn record_migration(&self, result: &Result<()>) {
        let mut h = lock(&self.health);
        match result {
            Ok(()) => {
                h.migration = None;
                h.retry_at = None;
                h.backoff = Duration::ZERO;
            }
            Err(e) => {
                h.failures += 1;
                fail(&mut h.migration, e);
                h.backoff = (h.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                h.retry_at = Some(Instant::now() + h.backoff);
                eprintln!(
                    "migration to the cold tier failed (the records stay in the warm tier, readable; tried again in {} s): {e}",
                    h.backoff.as_secs()
                );
            }
        }
    }

    /// With a background migrator: wakes it when the warm tier is over its
    /// threshold, and holds the writer back while the tier is over its whole
    /// budget (backpressure), until the migrator has made room.
    fn wait_for_room(&self) {
        let budget = self.config.warm_budget_bytes();
        if !self.warm_over(&self.read()) {
            return;
        }
        self.wanted.notify_one();
        let mut guard = lock(&self.signal);
        while self.read().warm.memory_bytes() > budget && self.background.load(Ordering::Acquire) {
            self.wanted.notify_one();
            guard = self
                .migrated
                .wait_timeout(guard, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Migrates in this thread whenever the warm tier is over its threshold,
    /// until `stop` is set. While it runs, [`Engine::ingest`] does not
    /// migrate itself; it wakes this thread and waits only if the warm tier
    /// is over its whole budget. Returns the first migration error.
    pub fn run_migrator(&self, stop: &AtomicBool) -> Result<()> {
        self.background.store(true, Ordering::Release);
        let result = (|| {
            while !stop.load(Ordering::Acquire) {
                {
                    let guard = lock(&self.signal);
                    let _ = self.wanted.wait_timeout(guard, Duration::from_millis(20));
                }
                if self.warm_over(&self.read()) {
                    let _guard = lock(&self.migrating);
                    let result = self.migrate_locked(false);
                    self.record_migration(&result);
                    result?;
                    self.migrated.notify_all();
                }
            }
            Ok(())
        })();
        self.background.store(false, Ordering::Release);
        self.migrated.notify_all();
        result
    }

    fn warm_over(&self, state: &State) -> bool {
        let budget = self.config.warm_budget_bytes() as f64;
        state.warm.memory_bytes() as f64 >= budget * self.config.warm_tier.eviction_threshold_pct
    }

    /// Migrates if the warm tier is over its threshold, no other thread
    /// is migrating already, and no failed migration is waiting out its
    /// backoff. A failure is recorded ([`Engine::move_status`]), logged,
    /// and returned.
    pub fn maybe_migrate(&self) -> Result<()> {
        if self.read_only() || !self.warm_over(&self.read()) {
            return Ok(());
        }
        if lock(&self.health)
            .retry_at
            .is_some_and(|at| Instant::now() < at)
        {
            return Ok(());
        }
        match self.migrating.try_lock() {
            Ok(_guard) => {
                let result = self.migrate_locked(false);
                self.record_migration(&result);
                result
            }
            Err(_) => Ok(()),
        }
    }

    /// Moves every record to the cold tier (hot and warm end empty).
    pub fn migrate_all(&self) -> Result<()> {
        self.log()?;
        let _guard = lock(&self.migrating);
        {
            let mut state = self.write();
            evict_hot(&mut state, 0)?;
        }
        let result = self.migrate_locked(true);
        self.record_migration(&result);
        result
    }

    /// Runs one migration; the caller holds `migrating`.
    ///
    /// The order is what recovery relies on ([`reconcile`]): Parquet files
    /// written and renamed into their partitions, then one commit to the
    /// cold tier's Delta table (the files and this store's `txn` version,
    /// the migration's last LSN), then the catalog's commit (files,
    /// watermark, keys, bars). The table's commit is the point of no
    /// return: before it the files are discarded on failure; after it they
    /// are in the table, and a catalog that did not take them takes them
    /// at the next open.
    fn migrate_locked(&self, everything: bool) -> Result<()> {
        if self.table_ahead.load(Ordering::Acquire) {
            return Err(Error::Inconsistent(
                "a migration is in the cold tier's Delta table but not in the catalog (its commit failed); reopen the store to take it into the catalog".into(),
            ));
        }
        let budget = self.config.warm_budget_bytes() as f64;
        let target = (budget * self.config.warm_tier.migrate_to_pct) as u64;
        let (lsn_lo, through, batches) = {
            let state = self.read();
            let mut left = state.warm.memory_bytes();
            let mut through = None;
            for (lsn, _rows, bytes) in state.warm.records() {
                if !everything && left <= target {
                    break;
                }
                through = Some(lsn);
                left = left.saturating_sub(bytes);
            }
            let Some(through) = through else {
                return Ok(());
            };
            // A migration covers every LSN after the watermark through
            // `through`, so that the committed ranges follow each other.
            (
                state.watermark + 1,
                through,
                state.warm.export_through(through)?,
            )
        };
        let only: Vec<RecordBatch> = batches.into_iter().map(|(_, b)| b).collect();
        let keep = self.config.cold_tier.bars_kept;
        let mut bars = (keep > 0).then(|| BarsBuilder::new(keep));
        // On failure it deletes what it wrote: the next try starts clean.
        let files = cold::write_migration(
            &self.cold,
            &self.config.cold_tier,
            &self.schema,
            &only,
            (lsn_lo, through),
            self.store_id.as_deref(),
            &mut |day| match bars.as_mut() {
                Some(b) => b.add(day),
                None => Ok(()),
            },
        )?;
        let bars = bars.map(BarsBuilder::finish);
        crash_point("after-parquet");
        if let Some(table) = &self.table {
            if let Err(e) = table.add(&files, through) {
                // A commit that reports an error may still have been
                // written: the table's txn version for this store says.
                match table.state() {
                    Ok(s) if s.committed_through >= Some(through) => {}
                    // On local disk a commit that failed was not written.
                    Ok(_) if !self.cold.is_remote() => {
                        cold::discard(&self.cold, &files);
                        return Err(e);
                    }
                    // In an object store the commit's PUT may still land
                    // (a request timed out is not a request refused): the
                    // files stay, migrations stop, and the next open
                    // settles it from the table (adopted, or proven
                    // leftovers and deleted).
                    Ok(_) => {
                        self.table_ahead.store(true, Ordering::Release);
                        return Err(e);
                    }
                    // Unknown: the files stay for recovery to settle.
                    Err(_) => {
                        self.table_ahead.store(true, Ordering::Release);
                        return Err(e);
                    }
                }
            }
            crash_point("after-table");
        }
        let keys = self.keys.in_range(lsn_lo, through);
        // The cold tier before this migration: a symbol it lists has kept
        // bars, so one without them was lost (the bars are then rebuilt).
        let cold_before = self.read().cold.clone();
        let in_cold = |symbol: &str| {
            cold_before
                .iter()
                .any(|f| f.symbols.iter().any(|s| s == symbol))
        };
        let committed = {
            let mut catalog = lock(&self.catalog);
            match catalog.commit_migration_with_bars(
                &files,
                lsn_lo,
                through,
                &keys,
                Some(self.keys.retention()),
                bars.as_ref().map(|update| BarsCommit {
                    update,
                    keep,
                    in_cold: &in_cold,
                }),
            ) {
                Ok(()) => Ok(()),
                // A commit that reports an error may still have committed
                // (an I/O error at the very end): the watermark says.
                Err(e) => match catalog.watermark() {
                    Ok(w) if w >= through => Ok(()),
                    // The table (which every writing engine has) holds the
                    // files since its commit above: they stay, and the next
                    // open gives them to the catalog.
                    _ => {
                        self.table_ahead.store(true, Ordering::Release);
                        Err(e)
                    }
                },
            }
        };
        committed?;
        crash_point("after-catalog");
        {
            let mut state = self.write();
            state.warm.remove_through(through);
            let mut cold = (*state.cold).clone();
            state.cold_rows += files.iter().map(|f| f.rows).sum::<u64>();
            cold.extend(files);
            state.cold = Arc::new(cold);
            state.watermark = through;
        }
        self.log()?.delete_through(through)?;
        self.migrations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counts per tier, consistent with each other.
    pub fn stats(&self) -> Result<TierStats> {
        let state = self.read();
        let wal = self.wal_stats();
        Ok(TierStats {
            hot_records: state.hot_rows,
            // The bytes of the rows themselves: batches replayed from the WAL
            // are slices of a segment's buffer, whose capacity is not theirs.
            hot_bytes: state
                .hot
                .values()
                .flat_map(|b| b.batch.columns())
                .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
                .sum(),
            warm_records: state.warm.rows(),
            warm_bytes: state.warm.memory_bytes(),
            warm_device: state.warm.device(),
            warm_device_memory: state.warm.device_memory(),
            cold_records: state.cold_rows,
            cold_files: state.cold.len() as u64,
            cold_bytes: state.cold.iter().map(|f| f.bytes).sum(),
            wal_bytes: wal::disk_bytes(&self.config.wal_dir())?,
            wal_fsyncs: wal.fsyncs,
            wal_records_written: wal.records,
            watermark_lsn: state.watermark,
            migrations: self.migrations.load(Ordering::Relaxed),
        })
    }

    /// WAL counters since open.
    pub fn wal_stats(&self) -> WalStats {
        self.wal.as_ref().map(Wal::stats).unwrap_or_default()
    }

    /// Deletes cold partitions whose day is more than `days` before `now_ns`
    /// (catalog rows first, in one transaction, then the files). Records still
    /// in the hot or warm tier are not touched. Returns the files removed.
    pub fn retention(&self, days: u32, now_ns: i64) -> Result<Vec<ColdFile>> {
        self.log()?;
        let _migration = lock(&self.migrating);
        let cutoff_day = now_ns.div_euclid(cold::DAY_NS) - days as i64;
        if cutoff_day < 0 {
            // Nothing in the store is from before 1970.
            return Ok(Vec::new());
        }
        let cutoff = cold::partition_of_day(cutoff_day);
        // The table first: once it has removed the files, an interrupted
        // retention is finished by the next open (its tombstones are the
        // proof); the catalog's rows go next, the files last.
        if let Some(table) = &self.table {
            // The proof an open needs to finish it, should it stop between
            // the table's commit and the catalog's.
            lock(&self.catalog).begin_retention(&cutoff)?;
            let going: Vec<ColdFile> = self
                .read()
                .cold
                .iter()
                .filter(|f| f.partition < cutoff)
                .cloned()
                .collect();
            table.remove(&going)?;
            crash_point("after-table-remove");
        }
        let doomed =
            lock(&self.catalog).drop_partitions_before(&cutoff, cutoff_day * cold::DAY_NS)?;
        {
            let mut state = self.write();
            let keep: Vec<ColdFile> = state
                .cold
                .iter()
                .filter(|f| !doomed.contains(f))
                .cloned()
                .collect();
            state.cold_rows = keep.iter().map(|f| f.rows).sum();
            state.cold = Arc::new(keep);
        }
        if !doomed.is_empty() {
            self.answers.clear();
        }
        for f in &doomed {
            self.meta_cache.forget(&f.path);
            match self.cold.remove(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(self.cold.name(&f.path), e)),
            }
            if let Some(dir) = self.cold.local_dir().map(|d| d.join(&f.path)) {
                // Empty partition directories go too; a non-empty one stays.
                if let Some(parent) = dir.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
        Ok(doomed)
    }
}

fn hot_threshold(config: &Config) -> u64 {
    (config.hot_tier.max_records as f64 * config.hot_tier.eviction_threshold_pct) as u64
}

/// Moves the oldest hot records to the warm tier while the hot tier holds
/// more than `limit` rows, stopping at a gap in the LSNs (a record still
/// being inserted by another thread). A record leaves the hot tier only
/// once the warm tier has taken it: on an error it stays where it was.
fn evict_hot(state: &mut State, limit: u64) -> Result<()> {
    while state.hot_rows > limit {
        let Some((&lsn, hot)) = state.hot.first_key_value() else {
            break;
        };
        if lsn != state.moved_through + 1 {
            break;
        }
        let hot = hot.clone();
        state.warm.append(lsn, &hot.batch)?;
        state.hot.remove(&lsn);
        state.hot_rows -= hot.batch.num_rows() as u64;
        state.moved_through = lsn;
    }
    Ok(())
}

/// Test hook: with `SSIG_CRASH_AT=<name>` (or `<name>:<n>`, the n-th time)
/// set, the process aborts at that point: `after-wal` (a batch durable,
/// its answer not yet sent), `after-parquet` and `after-catalog` (between
/// the phases of a migration). The crash tests land kills there.
fn crash_point(name: &str) {
    static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Ok(v) = std::env::var("SSIG_CRASH_AT") else {
        return;
    };
    let (point, nth) = match v.split_once(':') {
        Some((p, n)) => (p, n.parse().unwrap_or(1)),
        None => (v.as_str(), 1),
    };
    if point == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 >= nth {
        std::process::abort();
    }
}
