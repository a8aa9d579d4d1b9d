//! Opening a store, one step per function: [`Engine::open`] takes the lock
//! ([`take_lock`]), settles the mode ([`settle_mode`]), checks the catalog,
//! the cold files and the WAL against each other changing nothing
//! ([`check_store`]), replays the WAL into the hot tier ([`replay`]), and
//! only then, when everything agrees, acts ([`act`]: cuts a torn tail,
//! repairs what an interrupted migration left in the cold tier, opens the
//! log), and builds the engine ([`build`]). What each check refuses is in
//! [`recovery`].

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use arrow_array::RecordBatch;

use super::reconcile::{self, TablePlan};
use super::recovery::{self, Checked, Cleanup, Identity, OpenReport, SegmentPlan};
use super::{evict_hot, hot_threshold, lock, Engine, MoveHealth, State};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::Mode;
use crate::store::cache::RangeCache;
use crate::store::catalog::{Catalog, StoredKey};
use crate::store::cold;
use crate::store::gpu::{self, GpuWarm};
use crate::store::hot::HotBatch;
use crate::store::idempotency::{self, KeyTable};
use crate::store::objects::ColdStore;
use crate::store::table::ColdTable;
use crate::store::wal::{self, Recovery, Wal};
use crate::store::warm::{CpuWarm, WarmTier};

/// What the checks found, before anything on disk changes.
struct Checks {
    catalog: Catalog,
    checked: Checked,
    identity: Identity,
    segments: SegmentPlan,
}

impl Engine {
    /// Opens (or creates) the store the configuration describes: checks the
    /// catalog, the cold files and the WAL against each other, changing
    /// nothing, and refuses the store if they disagree; then cuts a torn WAL
    /// tail, deletes what an interrupted migration left (only what it can
    /// prove is garbage), moves files it cannot explain but need not refuse
    /// for to quarantine, marks jobs a stopped process left running as
    /// failed, replays the WAL, and is ready. See [`recovery`].
    pub fn open(config: Config) -> Result<Engine> {
        Engine::open_with(config, false)
    }

    /// Opens the store to read it only (`stats`, `query`, `aggregate`,
    /// `scrub`), changing nothing on disk: the same checks as
    /// [`Engine::open`], but a torn WAL tail is left where it is (its
    /// record is not read), leftovers are neither deleted nor moved, no
    /// migration runs, and ingest is refused. What a read-write open would
    /// do is listed in [`OpenReport::not_done`]. The lock is shared: readers
    /// run beside each other, never beside a writer. A directory that holds
    /// no store reads as an empty one, and nothing is created.
    pub fn open_read_only(config: Config) -> Result<Engine> {
        Engine::open_with(config, true)
    }

    fn open_with(mut config: Config, read_only: bool) -> Result<Engine> {
        config.check()?;
        if read_only && !recovery::store_exists(&config)? {
            return Engine::empty(config);
        }
        let lock_file = take_lock(&config, read_only)?;
        let catalog = if read_only {
            recovery::open_catalog_read_only(&config.catalog_path())?
        } else {
            recovery::open_catalog(&config.catalog_path())?
        };
        let mode = settle_mode(&config, &catalog, read_only)?;
        config.mode = Some(mode);
        let mut checks = check_store(&config, catalog, read_only)?;
        // The cold tier's Delta table against the catalog: what a crash
        // between their commits left is settled by the log's proof (a
        // migration the table took is read as committed, before the WAL
        // is replayed over it).
        let table_plan = reconcile::check_table(
            &config,
            &checks.checked.files,
            checks.checked.watermark,
            checks.identity.id.as_deref(),
            checks.catalog.retention_pending()?.as_deref(),
        )?;
        let checked = &mut checks.checked;
        table_plan.apply_to(
            &mut checked.files,
            &mut checked.watermark,
            &mut checked.removed_by_table,
            &mut checked.held_by_table,
        );
        let watermark = checks.checked.watermark;
        let mut state = State {
            hot: BTreeMap::new(),
            hot_rows: 0,
            moved_through: watermark,
            warm: make_warm(&config, mode)?,
            cold_rows: checks.checked.files.iter().map(|f| f.rows).sum(),
            cold: Arc::new(checks.checked.files.clone()),
            watermark,
        };
        let mut recovery = replay(&config, &checks.identity, watermark, &mut state)?;
        let cleanup =
            recovery::plan_cleanup(&config, &checks.checked, &recovery, &checks.identity)?;
        let Checks {
            catalog,
            identity,
            segments,
            ..
        } = checks;
        let catalog = Arc::new(Mutex::new(catalog));

        // Everything agrees: now act (or, read-only, say what would be done).
        let (opened, wal, table) = if read_only {
            let mut opened = cleanup.not_done(&recovery);
            opened.not_done.extend(segments.not_done());
            opened
                .not_done
                .extend(table_plan.not_done(&ColdStore::of(&config)?));
            (opened, None, None)
        } else {
            let (opened, wal, table) = act(
                &config,
                &catalog,
                &identity,
                &segments,
                &mut recovery,
                cleanup,
                table_plan,
                watermark,
            )?;
            (opened, Some(wal), Some(table))
        };
        let mut engine = build(
            config,
            state,
            wal,
            catalog,
            recovery,
            opened,
            identity,
            Some(lock_file),
        )?;
        engine.table = table;
        if read_only {
            return Ok(engine);
        }
        // Bars are derived from the cold tier: one that cannot be rebuilt
        // (a cold file unreadable) leaves lookups to the raw rows, and the
        // store opens.
        engine.opened.bars = match engine.rebuild_bars(false) {
            Ok(note) => note,
            Err(e) => Some(format!(
                "the catalog's bars could not be rebuilt ({e}); bar lookups read the raw rows"
            )),
        };
        // Every record is readable now; a migration that fails here is
        // recorded and tried again later, like one after an ingest.
        let _ = engine.maybe_migrate();
        Ok(engine)
    }

    /// A read-only engine over a directory that holds no store: empty, and
    /// nothing is created on disk.
    fn empty(mut config: Config) -> Result<Engine> {
        let mode = config.mode.unwrap_or(Mode::Simple);
        config.mode = Some(mode);
        let state = State {
            hot: BTreeMap::new(),
            hot_rows: 0,
            moved_through: 0,
            warm: make_warm(&config, mode)?,
            cold: Arc::new(Vec::new()),
            cold_rows: 0,
            watermark: 0,
        };
        let recovery = Recovery {
            next_lsn: 1,
            ..Recovery::default()
        };
        build(
            config,
            state,
            None,
            Arc::new(Mutex::new(Catalog::open_in_memory()?)),
            recovery,
            OpenReport::default(),
            Identity {
                id: None,
                legacy_below: u64::MAX,
                new: false,
            },
            None,
        )
    }
}

/// Step 1: the store's directories (created when opening to write) and its
/// lock, shared for readers, exclusive for the one writer.
fn take_lock(config: &Config, read_only: bool) -> Result<File> {
    let base = &config.storage.base_path;
    if !read_only {
        wal::create_dir_durable(base)?;
    }
    let lock_file = recovery::lock_store(base, !read_only)?;
    if !read_only {
        if let Some(dir) = ColdStore::of(config)?.local_dir() {
            wal::create_dir_durable(dir)?;
        }
        wal::create_dir_durable(&config.wal_dir())?;
    }
    recovery::check_catalog_file(config)?;
    Ok(lock_file)
}

/// Step 2: the store's mode, from its catalog; a new store takes the
/// configured one (recorded unless read-only), and a store of another mode
/// than the one asked for is refused.
fn settle_mode(config: &Config, catalog: &Catalog, read_only: bool) -> Result<Mode> {
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
    Ok(match (stored, config.mode) {
        (Some(s), Some(want)) if s != want => {
            return Err(Error::Config(format!(
                "the store at {} holds {} records; it cannot be opened in {} mode",
                config.storage.base_path.display(),
                s.name(),
                want.name()
            )))
        }
        (Some(s), _) => s,
        (None, want) => {
            // A catalog that never described a store, in a store that
            // holds data: it is not this store's.
            recovery::refuse_if_data(config, "holds no store (no mode)")?;
            let m = want.unwrap_or(Mode::Simple);
            if !read_only {
                catalog.set_meta("mode", m.name())?;
            }
            m
        }
    })
}

/// Step 3: the catalog against the cold files, whose store this is (its ID,
/// created once; a store from before IDs gets one now, its segments and
/// files so far carrying none), and the WAL's segments against the
/// catalog's list. Changes nothing on disk.
fn check_store(config: &Config, catalog: Catalog, read_only: bool) -> Result<Checks> {
    let cold = ColdStore::of(config)?;
    // First: is this the cold tier the catalog knows (a forgotten
    // cold_tier.url must not read as "every file missing")?
    let known_id = catalog.store_id()?.map(|(id, _)| id);
    recovery::check_cold_location(config, &catalog, &cold, known_id.as_deref())?;
    let checked = recovery::check_catalog(&catalog, &cold)?;
    let watermark = checked.watermark;
    let identity = match catalog.store_id()? {
        Some((id, from)) => Identity {
            id: Some(id),
            legacy_below: from,
            new: false,
        },
        None if read_only => Identity::legacy(),
        None if recovery::data_on_disk(config)? == (0, 0) && watermark == 0 => Identity {
            id: Some(recovery::new_store_id()),
            legacy_below: 1,
            new: true,
        },
        None => Identity {
            id: Some(recovery::new_store_id()),
            legacy_below: u64::MAX,
            new: true,
        },
    };
    recovery::check_cold_owner(&cold, &identity, config.cold_tier.shared)?;
    let on_disk = wal::list_segments(&config.wal_dir())?;
    let segments = recovery::check_segments(
        config,
        &config.mode.unwrap_or(Mode::Simple).schema(),
        identity.id.as_deref(),
        catalog.wal_segments()?,
        &on_disk,
        watermark,
    )?;
    Ok(Checks {
        catalog,
        checked,
        identity,
        segments,
    })
}

/// Step 4: every WAL record above the watermark into the hot tier (and on
/// to the warm tier as the hot one fills), without cutting anything.
fn replay(
    config: &Config,
    identity: &Identity,
    watermark: u64,
    state: &mut State,
) -> Result<Recovery> {
    let hot_limit = hot_threshold(config);
    let schema = config.mode.unwrap_or(Mode::Simple).schema();
    let options = wal::ScanOptions {
        owner: identity.scan_owner(),
        watermark: Some(watermark),
        cut_damaged_tail: false,
    };
    wal::scan_with(
        &config.wal_dir(),
        &schema,
        &options,
        |lsn, batch: RecordBatch| {
            state.hot_rows += batch.num_rows() as u64;
            state.hot.insert(lsn, HotBatch::new(batch));
            evict_hot(state, hot_limit)
        },
    )
}

/// Step 5 (read-write only): records the store's ID and the WAL's
/// segments, cuts a torn WAL tail into quarantine, makes the catalog and
/// the cold tier's Delta table agree (creating the table if there is
/// none), applies the cold tier's cleanup, opens the log for appends and
/// deletes its segments below the watermark, and fails the jobs a stopped
/// process left running.
#[allow(clippy::too_many_arguments)]
fn act(
    config: &Config,
    catalog: &Arc<Mutex<Catalog>>,
    identity: &Identity,
    segments: &SegmentPlan,
    recovery: &mut Recovery,
    cleanup: Cleanup,
    table_plan: TablePlan,
    watermark: u64,
) -> Result<(OpenReport, Wal, ColdTable)> {
    let mut catalog_now = lock(catalog);
    if identity.new {
        let from = if identity.legacy_below == 1 {
            1
        } else {
            recovery.next_lsn
        };
        if let Some(id) = &identity.id {
            catalog_now.set_store_id(id, from)?;
        }
    }
    // A shared table has no single owner.
    let cold = ColdStore::of(config)?;
    if let Some(id) = identity.id.as_ref().filter(|_| !config.cold_tier.shared) {
        recovery::write_cold_owner(&cold, id)?;
    }
    catalog_now.set_meta(
        recovery::COLD_LOCATION,
        &cold.location_key(&config.storage.base_path),
    )?;
    segments.apply(&mut catalog_now)?;
    drop(catalog_now);
    recovery.apply_cut(
        &config
            .storage
            .base_path
            .join(recovery::QUARANTINE)
            .join("wal"),
    )?;
    let store_id = identity
        .id
        .as_deref()
        .ok_or_else(|| Error::Inconsistent("a store opened to write has no store ID".into()))?;
    let (table, table_notes) = reconcile::apply(
        table_plan,
        config,
        &mut lock(catalog),
        store_id,
        &recovery.keys,
    )?;
    let mut opened = cleanup.apply()?;
    opened.segment_notes = segments.notes();
    opened.table_notes = table_notes;
    let wal = Wal::open_with(
        &config.wal_dir(),
        config.mode.unwrap_or(Mode::Simple).schema(),
        recovery,
        wal::WalOptions {
            segment_bytes: config.segment_bytes(),
            fsync: config.wal.fsync,
            store_id: identity.id.clone(),
            registry: Some(Arc::new(CatalogSegments(catalog.clone()))),
        },
    )?;
    wal.delete_through(watermark)?;
    // This process holds the store's lock: a job still `running` in the
    // catalog belongs to a process that stopped.
    opened.interrupted_jobs = lock(catalog).fail_interrupted_jobs()?;
    Ok((opened, wal, table))
}

/// Step 6: the engine over what the steps before found.
#[allow(clippy::too_many_arguments)]
fn build(
    config: Config,
    state: State,
    wal: Option<Wal>,
    catalog: Arc<Mutex<Catalog>>,
    recovery: Recovery,
    opened: OpenReport,
    identity: Identity,
    lock_file: Option<File>,
) -> Result<Engine> {
    let mode = config.mode.unwrap_or(Mode::Simple);
    let keys = if lock_file.is_some() {
        kept_keys(&config, &lock(&catalog), &recovery)?
    } else {
        KeyTable::new(&config.idempotency, Vec::new())
    };
    let log_owner = if lock_file.is_some() {
        wal::Owner::Store {
            id: identity.id.clone(),
            legacy_below: if identity.new && identity.legacy_below != 1 {
                recovery.next_lsn
            } else {
                identity.legacy_below
            },
        }
    } else {
        wal::Owner::none()
    };
    let answer_budget = (config.query.answer_cache_mb * 1e6) as usize;
    Ok(Engine {
        cold: ColdStore::of(&config)?,
        others: Mutex::new(super::OtherStores::default()),
        schema: mode.schema(),
        mode,
        wal,
        state: RwLock::new(state),
        catalog,
        migrating: Mutex::new(()),
        migrations: AtomicU64::new(0),
        background: AtomicBool::new(false),
        signal: Mutex::new(()),
        wanted: Condvar::new(),
        migrated: Condvar::new(),
        recovery,
        opened,
        observer: RwLock::new(None),
        meta_cache: Arc::new(cold::MetaCache::default()),
        answers: RangeCache::new(answer_budget),
        keys,
        health: Mutex::new(MoveHealth::default()),
        log_owner,
        store_id: identity.id,
        table: None,
        table_ahead: AtomicBool::new(false),
        _lock: lock_file,
        config,
    })
}

/// The log's segments, recorded in the catalog as the log creates and
/// deletes them (see [`crate::engine::recovery`]: a recorded segment that is gone
/// is noticed).
struct CatalogSegments(Arc<Mutex<Catalog>>);

impl wal::SegmentRegistry for CatalogSegments {
    fn created(&self, first_lsn: u64) -> Result<()> {
        lock(&self.0).record_segments(&[first_lsn])
    }

    fn deleted(&self, first_lsns: &[u64]) -> Result<()> {
        lock(&self.0).forget_segments(first_lsns)
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
fn gpu_warm(config: &Config, mode: Mode) -> std::result::Result<GpuWarm, String> {
    let gpu = Arc::new(gpu::probe()?);
    let budget = (config.warm_tier.max_memory_mb * 1e6) as usize;
    if budget > gpu.total_mem / 10 * 9 {
        return Err(format!(
            "warm_tier.max_memory_mb ({} MB) does not fit the {} MB of {}",
            config.warm_tier.max_memory_mb,
            gpu.total_mem / 1_000_000,
            gpu.name
        ));
    }
    gpu::self_test(&gpu, mode)?;
    let row_bytes = match mode {
        Mode::Simple => 28,
        Mode::Trading => 48,
    };
    GpuWarm::new(gpu, mode, budget / row_bytes + 1).map_err(|e| e.to_string())
}

/// The idempotency keys a store keeps: those of batches in the cold tier
/// from the catalog, those of batches still in the log from their records.
fn kept_keys(config: &Config, catalog: &Catalog, recovery: &Recovery) -> Result<KeyTable> {
    let kept = idempotency::retention(&config.idempotency);
    let mut keys = catalog.idempotency_keys(kept)?;
    keys.extend(recovery.keys.iter().map(|(lsn, records, k)| StoredKey {
        key: k.key.clone(),
        fingerprint: k.fingerprint,
        lsn: *lsn,
        records: *records,
        created_s: k.created_s,
    }));
    Ok(KeyTable::new(&config.idempotency, keys))
}
