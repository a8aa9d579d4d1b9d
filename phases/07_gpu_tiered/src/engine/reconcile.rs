//! The Delta table and the catalog, made to agree when a store opens.
//!
//! The table's log is the truth of what the cold tier holds (see
//! [`crate::store::table`]); the catalog keeps the engine's bookkeeping
//! (watermark, migrations, bars, jobs). A migration commits to the table
//! first and to the catalog second, and retention removes from the table
//! first, so a crash leaves at most one of these differences, each with its
//! proof in the log:
//!
//! | found at open | proof | what the open does |
//! |---|---|---|
//! | files the table holds, the catalog does not | the table's `txn` version for this store is above the watermark, and the files are named for the LSNs after it, carry this store's ID and check out ([`cold::describe`]) | the catalog takes them as that migration (the watermark moves; the WAL's records up to it are not replayed) |
//! | files the catalog lists, the table removed | their tombstones in the log | the catalog drops them and the files are deleted: an interrupted retention |
//! | files the catalog lists, the table never had | none needed: the table is behind (a store from before tables, or one repaired) | they are committed to the table |
//! | no table | | one is created, holding the catalog's files |
//!
//! Anything else is refused, changing nothing, with what was found: a
//! table file of another size than the catalog's, or one the catalog does
//! not list for any other reason (gone from disk: here; on disk: by the
//! cold tier's cleanup, which never deletes or moves a file the table
//! holds, and says why the file cannot be taken, such as another store's
//! ID or LSNs at or below the watermark). A read-only open
//! changes nothing and says what a writing open would do; its answers
//! already read the cold tier as the table says.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::Mode;
use crate::store::catalog::StoredKey;
use crate::store::cold::{self, ColdFile};
use crate::store::idempotency;
use crate::store::objects::ColdStore;
use crate::store::table::{self, ColdTable};
use crate::store::wal::KeyStamp;

/// What the open will do to make the table and the catalog agree.
#[derive(Debug, Default)]
pub(crate) struct TablePlan {
    /// The table, opened (`None` when there is none yet, or no store ID to
    /// commit under).
    pub table: Option<ColdTable>,
    /// No table exists: a writing open creates one.
    pub create: bool,
    /// A migration the table took and the catalog did not: its files and
    /// LSN range.
    pub adopt: Option<(Vec<ColdFile>, u64, u64)>,
    /// Catalog files the table removed: an interrupted retention.
    pub retired: Vec<ColdFile>,
    /// Catalog files the table does not know: committed to it.
    pub backfill: Vec<ColdFile>,
    /// Every file the table holds: the cold tier's cleanup never deletes
    /// or moves one of them (one the catalog does not list and that is not
    /// adopted is refused there, with its own reason).
    pub held: HashSet<PathBuf>,
}

impl TablePlan {
    /// The paths whose deletion this plan proves (retired files), for the
    /// cold tier's cleanup.
    pub fn retired_paths(&self) -> HashSet<PathBuf> {
        self.retired.iter().map(|f| f.path.clone()).collect()
    }

    /// Applies the plan to the catalog's view (its `files` and
    /// `watermark`) before the WAL is replayed: adopted files join it (and
    /// the watermark moves), retired ones leave and are added to
    /// `removed_by_table`, the cleanup's proof that they are garbage.
    pub fn apply_to(
        &self,
        files: &mut Vec<ColdFile>,
        watermark: &mut u64,
        removed_by_table: &mut HashSet<PathBuf>,
        held_by_table: &mut HashSet<PathBuf>,
    ) {
        let retired = self.retired_paths();
        files.retain(|f| !retired.contains(&f.path));
        removed_by_table.extend(retired);
        held_by_table.extend(self.held.iter().cloned());
        if let Some((adopted, _, hi)) = &self.adopt {
            files.extend(adopted.iter().cloned());
            *watermark = *hi;
        }
    }

    /// What a writing open would do, in words (read-only opens).
    pub fn not_done(&self, cold: &ColdStore) -> Vec<String> {
        let mut out = Vec::new();
        if self.create {
            out.push(format!(
                "a Delta table would be created in {} holding the catalog's {} files",
                cold.root_name().display(),
                self.backfill.len()
            ));
        } else if !self.backfill.is_empty() {
            out.push(format!(
                "{} files the catalog lists would be committed to the Delta table, which does not hold them",
                self.backfill.len()
            ));
        }
        if let Some((files, lo, hi)) = &self.adopt {
            out.push(format!(
                "the catalog would take the migration of LSNs {lo}..={hi} ({} files) that the Delta table committed",
                files.len()
            ));
        }
        for f in &self.retired {
            out.push(format!(
                "{} would be dropped from the catalog and deleted (the Delta table removed it)",
                cold.name(&f.path).display()
            ));
        }
        out
    }
}

/// What a damaged or unreadable log means for the user.
const LOG_REPAIR: &str =
    "`07_gpu_tiered repair` moves the log to quarantine and rebuilds the table from the catalog";

/// Opens the table and reads it, saying what to do when it cannot be read.
fn read_table(cold: &ColdStore, store_id: &str) -> Result<(ColdTable, table::TableState)> {
    let wrap = |e: Error| Error::Inconsistent(format!("{e}; nothing was changed; {LOG_REPAIR}"));
    let t = ColdTable::open(cold, store_id).map_err(wrap)?;
    let state = t.state().map_err(wrap)?;
    Ok((t, state))
}

/// Compares the table in the cold directory with the catalog's view (its
/// `files` and `watermark`), changing nothing; refuses what it cannot
/// explain (see the module doc). `store_id` is `None` only for a store
/// opened read-only before it had an ID: there is nothing to compare
/// under. `retention_pending` is the cutoff of a retention in progress
/// ([`Catalog::retention_pending`](crate::store::catalog::Catalog::retention_pending)).
pub(crate) fn check_table(
    config: &Config,
    files: &[ColdFile],
    watermark: u64,
    store_id: Option<&str>,
    retention_pending: Option<&str>,
) -> Result<TablePlan> {
    let cold = ColdStore::of(config)?;
    let Some(store_id) = store_id else {
        return Ok(TablePlan::default());
    };
    if !table::exists(&cold)? {
        return Ok(TablePlan {
            create: true,
            backfill: files.to_vec(),
            ..TablePlan::default()
        });
    }
    let (t, state) = read_table(&cold, store_id)?;
    let held = state.by_raw();
    let listed: HashSet<String> = files.iter().map(table::raw_path).collect();
    let mut plan = TablePlan::default();
    let mut problems = Vec::new();
    // Every entry must be a cold file's name, spelled as a migration
    // spells it: another spelling of a listed file (`a//b`) would be read
    // twice by the table's readers, and anything else is not ours.
    for f in &state.files {
        if !table::is_canonical(&f.raw) {
            problems.push(format!(
                "the Delta table holds {:?}, which is not a cold file's name as the engine writes it (year=YYYY/month=MM/day=DD/part-<lsn>-<lsn>.parquet)",
                f.raw
            ));
        }
    }
    for f in files {
        let raw = table::raw_path(f);
        match held.get(raw.as_str()) {
            Some(t) if t.bytes != f.bytes => problems.push(format!(
                "{raw}: the Delta table says {} bytes, the catalog {}",
                t.bytes, f.bytes
            )),
            Some(_) => {}
            None if state.removed.contains(&f.path) => {
                if retention_pending.is_some_and(|cutoff| f.partition.as_str() < cutoff) {
                    plan.retired.push(f.clone());
                } else {
                    problems.push(format!(
                        "{raw}: the catalog lists it and the Delta table removed it, but no retention of its partition was in progress (a remove this store did not write)"
                    ));
                }
            }
            None => plan.backfill.push(f.clone()),
        }
    }
    let w = watermark;
    let through = state.committed_through.unwrap_or(0);
    let mut adopt = Vec::new();
    let schema = config.mode.unwrap_or(Mode::Simple).schema();
    // In a shared table, other stores' files (named for them) are not this
    // catalog's to take or explain.
    let others = |f: &table::TableFile| {
        config.cold_tier.shared && cold::store_of_path(&f.path).is_some_and(|id| id != store_id)
    };
    for f in state
        .files
        .iter()
        .filter(|f| table::is_canonical(&f.raw) && !listed.contains(&f.raw) && !others(f))
    {
        let path = cold.name(&f.path);
        let last = through > w && f.lsn == Some((w + 1, through));
        if !last {
            // On disk, it is the cold tier's cleanup that says why it
            // cannot stay (another store's, a lost catalog row, …) and
            // refuses; gone, it is said here.
            if cold.len(&f.path).is_err() {
                problems.push(format!(
                    "{}: in the Delta table, not in the catalog, and not on disk (not the migration after the watermark, LSN {w}, that the table took from this store, through LSN {through})",
                    path.display()
                ));
            }
            continue;
        }
        match cold::describe(&cold, &f.path, &schema) {
            Ok(d) if d.store_id.as_deref() == Some(store_id) && d.file.bytes == f.bytes => {
                adopt.push(d.file)
            }
            Ok(d) => problems.push(format!(
                "{}: the Delta table committed it for this store's migration of LSNs {}..={through}, but the file says store {:?} and {} bytes (the table: {})",
                path.display(),
                w + 1,
                d.store_id,
                d.file.bytes,
                f.bytes
            )),
            Err(e) => problems.push(format!(
                "{}: the Delta table committed it for this store's migration of LSNs {}..={through}, but it cannot be read back: {}",
                path.display(),
                w + 1,
                match e {
                    cold::DescribeError::Unreadable(e) => e.to_string(),
                    cold::DescribeError::Damaged(why) => why,
                }
            )),
        }
    }
    if through > w && adopt.is_empty() && problems.is_empty() {
        problems.push(format!(
            "the Delta table says this store committed through LSN {through}, the catalog's watermark is {w}, and the table holds no file of the LSNs between"
        ));
    }
    if !problems.is_empty() {
        let mut msg = format!(
            "the cold tier's Delta table ({}) and the catalog ({}) disagree; nothing was changed; `07_gpu_tiered repair` rebuilds the catalog from the cold files and makes the table hold exactly them (for a cold tier in an object store or a shared one, `07_gpu_tiered repair --help` says how):",
            cold.name(std::path::Path::new(table::LOG_DIR)).display(),
            config.catalog_path().display()
        );
        for p in &problems {
            msg.push_str("\n  - ");
            msg.push_str(p);
        }
        return Err(Error::Inconsistent(msg));
    }
    if !adopt.is_empty() {
        plan.adopt = Some((adopt, w + 1, through));
    }
    plan.held = state.files.iter().map(|f| f.path.clone()).collect();
    plan.table = Some(t);
    Ok(plan)
}

/// Makes the catalog agree with the table (writing opens), before the cold
/// tier's cleanup deletes the retired files: the adopted migration and the
/// retired rows are committed to the catalog, then the table is created if
/// there was none and takes the catalog files it lacks. Returns the table
/// and what was done, in words.
///
/// `wal_keys` are the idempotency keys of the WAL's records (LSN, records,
/// key): those of an adopted migration are committed with it, as the
/// migration would have, since the WAL segments holding them are deleted
/// once the watermark has passed them.
pub(crate) fn apply(
    plan: TablePlan,
    config: &Config,
    catalog: &mut crate::store::catalog::Catalog,
    store_id: &str,
    wal_keys: &[(u64, u64, KeyStamp)],
) -> Result<(ColdTable, Vec<String>)> {
    let mut notes = Vec::new();
    if let Some((files, lo, hi)) = &plan.adopt {
        let keys: Vec<StoredKey> = wal_keys
            .iter()
            .filter(|(lsn, _, _)| (*lo..=*hi).contains(lsn))
            .map(|(lsn, records, k)| StoredKey {
                key: k.key.clone(),
                fingerprint: k.fingerprint,
                lsn: *lsn,
                records: *records,
                created_s: k.created_s,
            })
            .collect();
        catalog.commit_migration_with_bars(
            files,
            *lo,
            *hi,
            &keys,
            Some(idempotency::retention(&config.idempotency)),
            None,
        )?;
        notes.push(format!(
            "took the migration of LSNs {lo}..={hi} ({} files) that the Delta table had committed before the process stopped",
            files.len()
        ));
    }
    if !plan.retired.is_empty() {
        catalog.drop_files(&plan.retired)?;
        notes.push(format!(
            "finished a retention the Delta table had committed: {} files dropped from the catalog",
            plan.retired.len()
        ));
    } else if catalog.retention_pending()?.is_some() {
        // It stopped before its table commit: nothing to finish, and its
        // mark must not vouch for a later, foreign `remove`.
        catalog.end_retention()?;
    }
    let table = match plan.table {
        Some(t) => t,
        None => {
            let schema = config.mode.unwrap_or(Mode::Simple).schema();
            let cold = ColdStore::of(config)?;
            match ColdTable::create(&cold, &schema, store_id) {
                Ok(t) => t,
                // Another store of a shared tier made it since the check:
                // this store's files are committed to it all the same.
                Err(_) if config.cold_tier.shared && table::exists(&cold)? => {
                    ColdTable::open(&cold, store_id)?
                }
                Err(e) => return Err(e),
            }
        }
    };
    if !plan.backfill.is_empty() {
        let through = catalog.watermark()?;
        table.add(&plan.backfill, through)?;
        notes.push(format!(
            "committed {} cold files the catalog lists to the Delta table",
            plan.backfill.len()
        ));
    }
    Ok((table, notes))
}

/// Makes the table hold exactly `kept` (what [`super::recovery::repair`]
/// rebuilt the catalog from): entries it holds that are not a kept file
/// spelled as a migration spells it, or of another size, are removed from
/// it; kept files it lacks are committed, with this store's `txn` version
/// `watermark`. A missing table is created. The caller has set aside a
/// log that cannot be read ([`log_is_readable`]). Returns what was done,
/// in words.
pub(crate) fn mirror_catalog(
    cold: &ColdStore,
    schema: &arrow_schema::Schema,
    store_id: &str,
    kept: &[ColdFile],
    watermark: u64,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let t = if table::exists(cold)? {
        ColdTable::open(cold, store_id)?
    } else {
        notes.push(format!(
            "created the cold tier's Delta table in {}",
            cold.root_name().display()
        ));
        ColdTable::create(cold, schema, store_id)?
    };
    let state = t.state()?;
    let keep: HashMap<String, u64> = kept.iter().map(|f| (table::raw_path(f), f.bytes)).collect();
    let gone: Vec<String> = state
        .files
        .iter()
        .filter(|f| keep.get(&f.raw) != Some(&f.bytes))
        .map(|f| f.raw.clone())
        .collect();
    if t.forget(&gone)?.is_some() {
        notes.push(format!(
            "removed {} entries repair did not keep from the Delta table: {}",
            gone.len(),
            gone.join(", ")
        ));
    }
    let held: HashSet<&str> = state
        .files
        .iter()
        .filter(|f| keep.get(&f.raw) == Some(&f.bytes))
        .map(|f| f.raw.as_str())
        .collect();
    let missing: Vec<ColdFile> = kept
        .iter()
        .filter(|f| !held.contains(table::raw_path(f).as_str()))
        .cloned()
        .collect();
    // The txn version is set to the rebuilt watermark even where it goes
    // down (repair gave up LSNs the table had taken): it is what the next
    // open compares the catalog with.
    if !missing.is_empty() || state.committed_through != Some(watermark) {
        t.add(&missing, watermark)?;
        if !missing.is_empty() {
            notes.push(format!(
                "committed {} files to the Delta table",
                missing.len()
            ));
        }
    }
    Ok(notes)
}

/// Whether the table of the cold tier `cold` (which [`table::exists`]) can be read;
/// `Err` says why not.
pub(crate) fn log_is_readable(cold: &ColdStore) -> std::result::Result<(), String> {
    ColdTable::open(cold, "repair")
        .and_then(|t| t.state())
        .map(|_| ())
        .map_err(|e| e.to_string())
}
