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
//! what it refuses, is in [`crate::recovery`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::cache::RangeCache;

use crate::catalog::Catalog;
use crate::cold::{self, ColdFile};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::hot::HotBatch;
use crate::recovery::{self, OpenReport};
use crate::schema::{self, Mode};
use crate::wal::{self, Recovery, Wal, WalStats};
use crate::warm::{CpuWarm, WarmTier};

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
    pub warm_device_memory: Option<crate::warm::DeviceMemory>,
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

/// The tiered store.
pub struct Engine {
    config: Config,
    mode: Mode,
    schema: SchemaRef,
    wal: Wal,
    pub(crate) state: RwLock<State>,
    catalog: Mutex<Catalog>,
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
    /// Held (flock) while the engine lives: one process per store.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("base", &self.config.storage.base_path)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Opens (or creates) the store the configuration describes: checks the
    /// catalog, the cold files and the WAL against each other, changing
    /// nothing, and refuses the store if they disagree; then cuts a torn WAL
    /// tail, deletes what an interrupted migration left (only what it can
    /// prove is garbage), moves files it cannot explain but need not refuse
    /// for to quarantine, replays the WAL, and is ready. See [`crate::recovery`].
    pub fn open(config: Config) -> Result<Engine> {
        config.check()?;
        let base = &config.storage.base_path;
        wal::create_dir_durable(base)?;
        let lock_file = recovery::lock_store(base)?;
        let cold_dir = config.cold_dir();
        wal::create_dir_durable(&cold_dir)?;
        let wal_dir = config.wal_dir();
        wal::create_dir_durable(&wal_dir)?;
        recovery::check_catalog_file(&config)?;
        let catalog = recovery::open_catalog(&config.catalog_path())?;
        let stored = match catalog.meta("mode")? {
            None => None,
            Some(m) => Some(Mode::parse(&m).ok_or_else(|| {
                Error::corrupt(
                    config.catalog_path().display().to_string(),
                    0,
                    format!("meta mode is {m:?}"),
                )
            })?),
        };
        let mode = match (stored, config.mode) {
            (Some(s), Some(want)) if s != want => {
                return Err(Error::Config(format!(
                    "the store at {} holds {} records; it cannot be opened in {} mode",
                    base.display(),
                    s.name(),
                    want.name()
                )))
            }
            (Some(s), _) => s,
            (None, want) => {
                // A catalog that never described a store, in a store that
                // holds data: it is not this store's.
                recovery::refuse_if_data(&config, "holds no store (no mode)")?;
                let m = want.unwrap_or(Mode::Simple);
                catalog.set_meta("mode", m.name())?;
                m
            }
        };
        let mut config = config;
        config.mode = Some(mode);
        let schema = mode.schema();

        // Check everything, changing nothing on disk.
        let checked = recovery::check_catalog(&catalog, &cold_dir)?;
        let watermark = checked.watermark;
        let warm = make_warm(&config, mode)?;
        let mut state = State {
            hot: BTreeMap::new(),
            hot_rows: 0,
            moved_through: watermark,
            warm,
            cold_rows: checked.files.iter().map(|f| f.rows).sum(),
            cold: Arc::new(checked.files.clone()),
            watermark,
        };
        let hot_limit = hot_threshold(&config);
        let mut recovery = wal::scan(&wal_dir, &schema, watermark, |lsn, batch| {
            state.hot_rows += batch.num_rows() as u64;
            state.hot.insert(lsn, HotBatch::new(batch));
            evict_hot(&mut state, hot_limit)
        })?;
        let cleanup = recovery::plan_cleanup(&config, &checked, &recovery)?;

        // Everything agrees: now act.
        recovery.apply_cut()?;
        let opened = cleanup.apply()?;
        let wal = Wal::open(
            &wal_dir,
            schema.clone(),
            &recovery,
            config.segment_bytes(),
            config.wal.fsync,
        )?;
        wal.delete_through(watermark)?;
        let answer_budget = (config.query.answer_cache_mb * 1e6) as usize;
        let engine = Engine {
            config,
            mode,
            schema,
            wal,
            state: RwLock::new(state),
            catalog: Mutex::new(catalog),
            migrating: Mutex::new(()),
            migrations: std::sync::atomic::AtomicU64::new(0),
            background: AtomicBool::new(false),
            signal: Mutex::new(()),
            wanted: Condvar::new(),
            migrated: Condvar::new(),
            recovery,
            opened,
            observer: RwLock::new(None),
            meta_cache: Arc::new(cold::MetaCache::default()),
            answers: RangeCache::new(answer_budget),
            _lock: lock_file,
        };
        engine.maybe_migrate()?;
        Ok(engine)
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

    /// The cache of finished answers over time ranges (see [`crate::cache`]).
    pub fn answers(&self) -> &RangeCache {
        &self.answers
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
    /// refused whole, and nothing of it is written.
    pub fn ingest(&self, batch: &RecordBatch) -> Result<u64> {
        schema::validate(self.mode, batch)?;
        let batch = schema::conform(self.mode, batch)?;
        let lsn = self.wal.append(&batch)?;
        {
            let mut state = self.write();
            state.hot_rows += batch.num_rows() as u64;
            state.hot.insert(lsn, HotBatch::new(batch.clone()));
            evict_hot(&mut state, hot_threshold(&self.config))?;
        }
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
            self.maybe_migrate()?;
        }
        Ok(lsn)
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
                    self.migrate_locked(false)?;
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

    /// Migrates if the warm tier is over its threshold and no other thread
    /// is migrating already.
    pub fn maybe_migrate(&self) -> Result<()> {
        if !self.warm_over(&self.read()) {
            return Ok(());
        }
        match self.migrating.try_lock() {
            Ok(_guard) => self.migrate_locked(false),
            Err(_) => Ok(()),
        }
    }

    /// Moves every record to the cold tier (hot and warm end empty).
    pub fn migrate_all(&self) -> Result<()> {
        let _guard = lock(&self.migrating);
        {
            let mut state = self.write();
            evict_hot(&mut state, 0)?;
        }
        self.migrate_locked(true)
    }

    /// Runs one migration; the caller holds `migrating`.
    fn migrate_locked(&self, everything: bool) -> Result<()> {
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
        let files = cold::write_migration(
            &self.config.cold_dir(),
            &self.config.cold_tier,
            &self.schema,
            &only,
            lsn_lo,
            through,
        )?;
        crash_point("after-parquet");
        lock(&self.catalog).commit_migration(&files, lsn_lo, through)?;
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
        self.wal.delete_through(through)?;
        self.migrations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counts per tier, consistent with each other.
    pub fn stats(&self) -> Result<TierStats> {
        let state = self.read();
        let wal = self.wal.stats();
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
            wal_bytes: self.wal.disk_bytes()?,
            wal_fsyncs: wal.fsyncs,
            wal_records_written: wal.records,
            watermark_lsn: state.watermark,
            migrations: self.migrations.load(Ordering::Relaxed),
        })
    }

    /// WAL counters since open.
    pub fn wal_stats(&self) -> WalStats {
        self.wal.stats()
    }

    /// Deletes cold partitions whose day is more than `days` before `now_ns`
    /// (catalog rows first, in one transaction, then the files). Records still
    /// in the hot or warm tier are not touched. Returns the files removed.
    pub fn retention(&self, days: u32, now_ns: i64) -> Result<Vec<ColdFile>> {
        let _migration = lock(&self.migrating);
        let cutoff_day = now_ns.div_euclid(cold::DAY_NS) - days as i64;
        if cutoff_day < 0 {
            // Nothing in the store is from before 1970.
            return Ok(Vec::new());
        }
        let cutoff = cold::partition_of_day(cutoff_day);
        let doomed = lock(&self.catalog).drop_partitions_before(&cutoff)?;
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
        let cold_dir = self.config.cold_dir();
        for f in &doomed {
            let p = cold_dir.join(&f.path);
            self.meta_cache.forget(&p);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
            if let Some(dir) = p.parent() {
                // Empty partition directories go too; a non-empty one stays.
                let _ = std::fs::remove_dir(dir);
            }
        }
        Ok(doomed)
    }
}

fn make_warm(config: &Config, mode: Mode) -> Result<Box<dyn WarmTier>> {
    let device = config.warm_tier.device.as_str();
    if device == "cpu" {
        return Ok(Box::new(CpuWarm::new(mode)));
    }
    match gpu_warm(config, mode) {
        Ok(w) => Ok(Box::new(w)),
        Err(why) if device == "auto" => Ok(Box::new(CpuWarm::instead_of_gpu(mode, why))),
        Err(why) => Err(Error::Config(format!(
            "warm_tier.device is gpu, but {why}; use auto or cpu"
        ))),
    }
}

/// The GPU warm tier, its columns preallocated for the warm budget, once the
/// budget fits the device and the device has passed the self-test against
/// the CPU tier.
fn gpu_warm(config: &Config, mode: Mode) -> std::result::Result<crate::gpu::GpuWarm, String> {
    let gpu = Arc::new(crate::gpu::probe()?);
    let budget = (config.warm_tier.max_memory_mb * 1e6) as usize;
    if budget > gpu.total_mem / 10 * 9 {
        return Err(format!(
            "warm_tier.max_memory_mb ({} MB) does not fit the {} MB of {}",
            config.warm_tier.max_memory_mb,
            gpu.total_mem / 1_000_000,
            gpu.name
        ));
    }
    crate::gpu::self_test(&gpu, mode)?;
    let row_bytes = match mode {
        Mode::Simple => 28,
        Mode::Trading => 48,
    };
    crate::gpu::GpuWarm::new(gpu, mode, budget / row_bytes + 1).map_err(|e| e.to_string())
}

fn hot_threshold(config: &Config) -> u64 {
    (config.hot_tier.max_records as f64 * config.hot_tier.eviction_threshold_pct) as u64
}

/// Moves the oldest hot records to the warm tier while the hot tier holds
/// more than `limit` rows, stopping at a gap in the LSNs (a record still
/// being inserted by another thread).
fn evict_hot(state: &mut State, limit: u64) -> Result<()> {
    while state.hot_rows > limit {
        let Some((&lsn, _)) = state.hot.first_key_value() else {
            break;
        };
        if lsn != state.moved_through + 1 {
            break;
        }
        let Some(hot) = state.hot.remove(&lsn) else {
            break;
        };
        let batch = &hot.batch;
        state.warm.append(lsn, batch)?;
        state.hot_rows -= batch.num_rows() as u64;
        state.moved_through = lsn;
    }
    Ok(())
}

/// Test hook: with `SSIG_CRASH_AT=<name>` set, the process aborts at that
/// point of a migration (used by the crash tests to land kills exactly
/// between the two phases).
fn crash_point(name: &str) {
    if std::env::var("SSIG_CRASH_AT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}
