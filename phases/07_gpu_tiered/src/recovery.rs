//! Recovery: what opening a store checks before it changes anything, and
//! the two tools for a store that fails a check: `scrub` looks for damage,
//! `repair` rebuilds the catalog.
//!
//! # The rule
//!
//! Never delete what cannot be proven garbage; repair or refuse, never
//! guess. Opening a store runs in two halves:
//!
//! 1. **Check, changing nothing.** The catalog must be there (a missing or
//!    empty catalog in a store that holds data is refused: creating an
//!    empty one would make every cold file look unlisted). Every `files`
//!    row must pass its checksum and agree with itself (its path names its
//!    partition and LSN range); the committed migrations must follow each
//!    other from LSN 1 and end at the watermark; every file must belong to
//!    one of them, exist, and have the size the catalog recorded. The WAL
//!    is read (checksums, no gap between segments, the first one starting
//!    at or before watermark + 1). Every Parquet file the catalog does not
//!    list is then classified:
//!    - a **leftover** of a migration that never committed: its name and
//!      its own description say LSNs `lo..=hi` above the watermark, and
//!      the WAL holds all of them. That is the proof: it is deleted.
//!    - a file in the staging directory, or one left in a partition that
//!      retention deleted, without that proof: moved to `quarantine/`.
//!    - anything else (a file holding committed LSNs the catalog does not
//!      list, say): the store is refused, naming it.
//!
//!    Problems are gathered, and the refusal lists them all.
//! 2. **Act**, only once everything checked: cut a torn WAL tail, delete
//!    the proven leftovers, quarantine the rest, report each.
//!
//! # Repair
//!
//! [`repair`] rebuilds the catalog from what the files and the WAL say:
//! each cold file is read whole and must agree with its own description
//! (partition, rows, time range, symbols, LSN range, and a checksum of its
//! data region) and, where the old catalog can still be read, with the
//! checksum that catalog recorded. A file that fails is moved to
//! quarantine only if its records are still in the WAL (they come back
//! from it) or with `--accept-loss`. LSNs that neither a cold file nor the
//! WAL holds are likewise refused without `--accept-loss`. The old catalog
//! goes to quarantine too; its jobs, quality results and retention log are
//! copied over when it can be read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;

use crate::catalog::{Catalog, Migration};
use crate::cold::{self, ColdFile};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::schema::Mode;
use crate::wal::{self, Recovery};

/// The directory inside the store where files that are not garbage but
/// cannot stay are moved, under their path relative to the store.
pub const QUARANTINE: &str = "quarantine";

const REPAIR: &str = "`07_gpu_tiered repair` rebuilds the catalog from the cold files and the WAL";

/// A file moved to quarantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub from: PathBuf,
    pub to: PathBuf,
    pub why: String,
}

/// What opening a store changed on disk besides cutting a torn WAL tail.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// Leftovers of unfinished migrations, deleted, with the proof.
    pub deleted: Vec<(PathBuf, String)>,
    /// Files moved to quarantine.
    pub quarantined: Vec<Quarantined>,
    /// Jobs the catalog said were running when the store opened (their
    /// process stopped), now marked failed.
    pub interrupted_jobs: Vec<i64>,
    /// Opened read-only: what a read-write open would have done, and did
    /// not.
    pub not_done: Vec<String>,
}

/// Takes the store's lock: an OS lock (`flock`) on the store directory
/// itself, exclusive for a process that writes, shared for one that only
/// reads (`stats`, `query`, `scrub`: they run beside each other, never
/// beside a writer). The lock is on the directory's file descriptor, so
/// deleting a file cannot defeat it; the `LOCK` file beside the data says
/// which process holds it, for people, and is not the lock.
pub(crate) fn lock_store(base: &Path, write: bool) -> Result<std::fs::File> {
    let dir = std::fs::File::open(base).map_err(|e| Error::io(base, e))?;
    let locked = if write {
        dir.try_lock()
    } else {
        dir.try_lock_shared()
    };
    let info_path = base.join("LOCK");
    match locked {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&info_path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            return Err(Error::InvalidArgument(format!(
                "the store at {} is open in another process{holder}",
                base.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(base, e)),
    }
    if write {
        // Information only: who holds the lock. Losing it changes nothing.
        let _ = std::fs::write(
            &info_path,
            format!("held by process {}\n", std::process::id()),
        );
    }
    Ok(dir)
}

/// Parquet files under the cold directory, relative to it: those in
/// partitions, and those in the staging directory.
pub(crate) fn cold_files_on_disk(cold_dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut parts = Vec::new();
    walk(cold_dir, Path::new(""), &mut parts)?;
    let mut staged = Vec::new();
    walk(cold_dir, Path::new(cold::STAGING), &mut staged)?;
    Ok((parts, staged))
}

/// Every `*.parquet` under `dir/rel`, relative to `dir`; the staging and
/// quarantine directories are skipped unless they are where it starts.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let here = dir.join(rel);
    let entries = match std::fs::read_dir(&here) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&here, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&here, e))?;
        let name = entry.file_name();
        let sub = rel.join(&name);
        let ty = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if ty.is_dir() {
            if name != cold::STAGING && name != QUARANTINE {
                walk(dir, &sub, out)?;
            }
        } else if sub.extension().is_some_and(|x| x == "parquet") {
            out.push(sub);
        }
    }
    Ok(())
}

/// What the store holds on disk: WAL segments, and Parquet files anywhere
/// in the cold directory.
fn data_on_disk(config: &Config) -> Result<(usize, usize)> {
    let segments = wal::list_segments(&config.wal_dir())?.len();
    let (parts, staged) = cold_files_on_disk(&config.cold_dir())?;
    Ok((segments, parts.len() + staged.len()))
}

/// Whether `config` points at a store: a catalog file, or data (WAL
/// segments, Parquet files) without one.
pub(crate) fn store_exists(config: &Config) -> Result<bool> {
    if config.catalog_path().exists() {
        return Ok(true);
    }
    let (segments, parquet) = data_on_disk(config)?;
    Ok(segments + parquet > 0)
}

/// Refuses a store whose catalog is missing, empty or never initialized
/// while it holds data. `why` says which.
pub(crate) fn refuse_if_data(config: &Config, why: &str) -> Result<()> {
    let (segments, parquet) = data_on_disk(config)?;
    if segments == 0 && parquet == 0 {
        return Ok(());
    }
    Err(Error::Inconsistent(format!(
        "the catalog {} {why}, but the store holds {parquet} Parquet files and {segments} WAL segments; nothing was changed (no file was deleted); {REPAIR}",
        config.catalog_path().display()
    )))
}

/// Checks before the catalog is opened: a missing or empty catalog file is
/// refused if the store holds data (opening it would create an empty one).
pub(crate) fn check_catalog_file(config: &Config) -> Result<()> {
    let path = config.catalog_path();
    match std::fs::metadata(&path) {
        Ok(m) if m.len() > 0 => Ok(()),
        Ok(_) => refuse_if_data(config, "is empty (0 bytes)"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => refuse_if_data(config, "is missing"),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Opens the catalog; an error says how to repair it.
pub(crate) fn open_catalog(path: &Path) -> Result<Catalog> {
    Catalog::open(path).map_err(|e| match e {
        Error::Catalog { .. } => Error::Inconsistent(format!(
            "{e}; the catalog cannot be read; nothing was changed; {REPAIR}"
        )),
        other => other,
    })
}

/// Opens the catalog to read only, changing nothing (not even an upgrade):
/// a catalog this build would have to upgrade is read as it is when it
/// can be, and refused when it cannot.
pub(crate) fn open_catalog_read_only(path: &Path) -> Result<Catalog> {
    let catalog = Catalog::open_read_only(path).map_err(|e| {
        Error::Inconsistent(format!(
            "{e}; the catalog cannot be read; nothing was changed; {REPAIR}"
        ))
    })?;
    catalog.check_readable().map_err(|e| match e {
        Error::Catalog { .. } => Error::Inconsistent(format!(
            "{e}; the catalog cannot be read; nothing was changed; {REPAIR}"
        )),
        other => other,
    })?;
    Ok(catalog)
}

/// The catalog's view of the cold tier, checked against itself and the
/// disk.
pub(crate) struct Checked {
    pub files: Vec<ColdFile>,
    pub watermark: u64,
    /// Partitions retention has deleted.
    pub retained: BTreeSet<String>,
}

/// Checks the catalog's rows against each other and the files on disk,
/// changing nothing; every problem found is listed in the refusal.
pub(crate) fn check_catalog(catalog: &Catalog, cold_dir: &Path) -> Result<Checked> {
    let wrap = |e: Error| match e {
        Error::Catalog { .. } => Error::Inconsistent(format!("{e}; nothing was changed; {REPAIR}")),
        other => other,
    };
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for (id, row) in catalog.file_rows().map_err(wrap)? {
        match row {
            Ok(f) => files.push(f),
            Err(bad) => problems.push(format!("files row {id} ({}): {}", bad.path, bad.why)),
        }
    }
    let watermark = match catalog.watermark() {
        Ok(w) => w,
        Err(e) => {
            problems.push(e.to_string());
            0
        }
    };
    let migrations = catalog.migrations().map_err(wrap)?;
    let mut next = 1;
    for m in &migrations {
        if m.lsn_lo != next || m.lsn_hi < m.lsn_lo {
            problems.push(format!(
                "the committed migration of LSNs {}..={} does not follow the one before it (which ended at {})",
                m.lsn_lo,
                m.lsn_hi,
                next - 1
            ));
        }
        next = m.lsn_hi.saturating_add(1);
    }
    let last = migrations.last().map_or(0, |m| m.lsn_hi);
    if last != watermark {
        problems.push(format!(
            "the watermark is LSN {watermark}, but the committed migrations end at LSN {last}"
        ));
    }
    let ranges: HashSet<(u64, u64)> = migrations.iter().map(|m| (m.lsn_lo, m.lsn_hi)).collect();
    for f in &files {
        let name = f.path.display();
        if let Err(why) = f.check() {
            problems.push(format!("the catalog's row for {name}: {why}"));
            continue;
        }
        if !ranges.contains(&(f.lsn_lo, f.lsn_hi)) {
            problems.push(format!(
                "{name}: LSNs {}..={} are not a committed migration",
                f.lsn_lo, f.lsn_hi
            ));
        }
        let p = cold_dir.join(&f.path);
        match std::fs::metadata(&p) {
            Err(e) => problems.push(format!(
                "{}: listed in the catalog but unreadable: {e}",
                p.display()
            )),
            Ok(m) if m.len() != f.bytes => problems.push(format!(
                "{}: the catalog says {} bytes, the file has {}",
                p.display(),
                f.bytes,
                m.len()
            )),
            Ok(_) => {}
        }
    }
    let retained = catalog.retained_partitions().map_err(wrap)?;
    if !problems.is_empty() {
        return Err(refusal(catalog.path(), &problems));
    }
    Ok(Checked {
        files,
        watermark,
        retained,
    })
}

fn refusal(what: &Path, problems: &[String]) -> Error {
    Error::Inconsistent(format!(
        "the store's catalog {} disagrees with itself or the disk ({} problem{}): {}; nothing was changed; {REPAIR}",
        what.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("; ")
    ))
}

/// What opening will do to files the catalog does not list.
pub(crate) struct Cleanup {
    cold_dir: PathBuf,
    base: PathBuf,
    delete: Vec<(PathBuf, String)>,
    quarantine: Vec<(PathBuf, String)>,
}

/// Proof that an unlisted file at `path`, named for LSNs `lo..=hi`, is the
/// leftover of a migration that never committed: the LSNs are above the
/// watermark, the WAL holds every one of them, and the file's own
/// description says the same range.
fn leftover_proof(
    path: &Path,
    lo: u64,
    hi: u64,
    watermark: u64,
    wal: &Recovery,
) -> std::result::Result<String, String> {
    if lo <= watermark {
        return Err(format!(
            "its LSNs {lo}..={hi} are not above the watermark {watermark}"
        ));
    }
    if !(wal.holds(lo) && wal.holds(hi)) {
        return Err(format!(
            "its LSNs {lo}..={hi} are above the watermark {watermark} but not all in the WAL"
        ));
    }
    match cold::read_meta(path)? {
        Some(m) if (m.lsn_lo, m.lsn_hi) == (lo, hi) => Ok(format!(
            "LSNs {lo}..={hi}, above the watermark {watermark}, all in the WAL: a migration that never committed"
        )),
        Some(m) => Err(format!(
            "its name says LSNs {lo}..={hi}, its description {}..={}",
            m.lsn_lo, m.lsn_hi
        )),
        None => Err("it carries no description".into()),
    }
}

/// Classifies every Parquet file the catalog does not list (see the module
/// doc), changing nothing; refuses if one cannot be explained.
pub(crate) fn plan_cleanup(config: &Config, checked: &Checked, wal: &Recovery) -> Result<Cleanup> {
    let cold_dir = config.cold_dir();
    let (parts, staged) = cold_files_on_disk(&cold_dir)?;
    let listed: HashSet<&Path> = checked.files.iter().map(|f| f.path.as_path()).collect();
    let mut plan = Cleanup {
        cold_dir: cold_dir.clone(),
        base: config.storage.base_path.clone(),
        delete: Vec::new(),
        quarantine: Vec::new(),
    };
    let mut problems = Vec::new();
    let w = checked.watermark;
    for rel in parts.into_iter().filter(|r| !listed.contains(r.as_path())) {
        let path = cold_dir.join(&rel);
        let Some((partition, lo, hi)) = cold::parse_path(&rel) else {
            plan.quarantine
                .push((rel, "a Parquet file whose name is not a cold file's".into()));
            continue;
        };
        match leftover_proof(&path, lo, hi, w, wal) {
            Ok(proof) => plan.delete.push((rel, proof)),
            Err(_) if hi <= w && checked.retained.contains(&partition) => plan.quarantine.push((
                rel,
                format!("not in the catalog, in partition {partition}, which retention deleted: left by an interrupted retention"),
            )),
            Err(why) => problems.push(format!(
                "{}: not in the catalog, and not provably a leftover: {why}",
                path.display()
            )),
        }
    }
    for rel in staged {
        let path = cold_dir.join(&rel);
        // Staged as `<day>-part-<lo>-<hi>.parquet`.
        let range = rel
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('-'))
            .and_then(|(_, name)| {
                cold::parse_path(&Path::new("year=1970/month=01/day=01").join(name))
            })
            .map(|(_, lo, hi)| (lo, hi));
        match range.map(|(lo, hi)| leftover_proof(&path, lo, hi, w, wal)) {
            Some(Ok(proof)) => plan.delete.push((rel, proof)),
            Some(Err(why)) => plan.quarantine.push((
                rel,
                format!("staged by a migration that never committed, and {why}"),
            )),
            None => plan.quarantine.push((
                rel,
                "in the staging directory, under a name no migration writes".into(),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(refusal(&config.catalog_path(), &problems));
    }
    Ok(plan)
}

impl Cleanup {
    /// What [`Cleanup::apply`] and cutting the torn tail `wal` found would
    /// do, in words, for a store opened read-only (which does neither).
    pub(crate) fn not_done(&self, wal: &Recovery) -> OpenReport {
        let mut report = OpenReport::default();
        if let Some((bytes, why)) = &wal.torn_tail {
            report.not_done.push(format!(
                "a torn WAL tail of {bytes} bytes ({why}) would be cut (its record was never acknowledged and is not read)"
            ));
        }
        for (rel, proof) in &self.delete {
            report.not_done.push(format!(
                "{} would be deleted ({proof})",
                self.cold_dir.join(rel).display()
            ));
        }
        for (rel, why) in &self.quarantine {
            report.not_done.push(format!(
                "{} would be moved to quarantine ({why})",
                self.cold_dir.join(rel).display()
            ));
        }
        report
    }

    /// Deletes the proven leftovers and quarantines the rest.
    pub(crate) fn apply(self) -> Result<OpenReport> {
        let mut report = OpenReport::default();
        let mut dirs = BTreeSet::new();
        for (rel, proof) in self.delete {
            let p = self.cold_dir.join(&rel);
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
            report.deleted.push((p, proof));
        }
        for (rel, why) in self.quarantine {
            report
                .quarantined
                .push(quarantine(&self.base, &self.cold_dir, &rel, &why)?);
        }
        for d in dirs {
            wal::sync_dir(&d)?;
        }
        let staging = self.cold_dir.join(cold::STAGING);
        if std::fs::remove_dir(&staging).is_ok() {
            wal::sync_dir(&self.cold_dir)?;
        }
        Ok(report)
    }
}

/// Moves `root/rel` to `base/quarantine/<root relative to base>/rel` (a
/// numbered suffix if that is taken), with a `.why` note beside it.
pub fn quarantine(base: &Path, root: &Path, rel: &Path, why: &str) -> Result<Quarantined> {
    let from = root.join(rel);
    let under = root.strip_prefix(base).unwrap_or(Path::new("outside"));
    let dir_rel = Path::new(QUARANTINE)
        .join(under)
        .join(rel.parent().unwrap_or(Path::new("")));
    wal::create_dirs_durable(base, &dir_rel)?;
    let dir = base.join(&dir_rel);
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut to = dir.join(&name);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let note = PathBuf::from(format!("{}.why", to.display()));
    std::fs::write(&note, format!("{}\n{why}\n", from.display()))
        .map_err(|e| Error::io(&note, e))?;
    std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
    wal::sync_dir(&dir)?;
    if let Some(p) = from.parent() {
        wal::sync_dir(p)?;
    }
    Ok(Quarantined {
        from,
        to,
        why: why.to_string(),
    })
}

/// What [`Engine::scrub`] found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ScrubReport {
    pub files: u64,
    pub bytes: u64,
    /// Each damaged file and what is wrong with it.
    pub damaged: Vec<(PathBuf, String)>,
    pub wal_records: u64,
    /// What is wrong with the WAL, if anything.
    pub wal_problem: Option<String>,
}

impl Engine {
    /// Reads every cold file whole and checks it against the CRC-32C the
    /// catalog recorded, and reads every WAL record and checks its CRC.
    /// Damage is reported, not repaired.
    pub fn scrub(&self) -> Result<ScrubReport> {
        let (files, watermark) = {
            let state = self.read();
            (state.cold.clone(), state.watermark)
        };
        let cold_dir = self.config().cold_dir();
        let mut report = ScrubReport::default();
        for f in files.iter() {
            let p = cold_dir.join(&f.path);
            report.files += 1;
            report.bytes += f.bytes;
            if let Err(e) = cold::verify(&p, f) {
                report.damaged.push((p, e.to_string()));
            }
        }
        match wal::scan(
            &self.config().wal_dir(),
            self.schema(),
            watermark,
            |_, _| Ok(()),
        ) {
            Ok(r) => report.wal_records = r.records,
            Err(e) => report.wal_problem = Some(e.to_string()),
        }
        Ok(report)
    }
}

/// What [`repair`] did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    pub mode: Option<Mode>,
    /// Files the rebuilt catalog lists, and their rows.
    pub files: usize,
    pub rows: u64,
    /// Files among them without a description of their own (written
    /// before descriptions), trusted as their rows decode.
    pub undescribed: usize,
    pub watermark: u64,
    /// The LSNs the WAL holds, `first..next`.
    pub wal: Option<(u64, u64)>,
    pub quarantined: Vec<Quarantined>,
    /// Things said along the way: what the old catalog gave, gaps, losses.
    pub notes: Vec<String>,
}

/// What can still be read of the old catalog.
#[derive(Default)]
struct OldCatalog {
    readable: bool,
    mode: Option<String>,
    files: HashMap<PathBuf, ColdFile>,
    migrations: Vec<Migration>,
}

fn read_old(path: &Path, notes: &mut Vec<String>) -> OldCatalog {
    let mut old = OldCatalog::default();
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => {}
        Ok(_) => {
            notes.push(format!("the old catalog {} is empty", path.display()));
            return old;
        }
        Err(e) => {
            notes.push(format!("the old catalog {}: {e}", path.display()));
            return old;
        }
    }
    let c = match Catalog::open_read_only(path) {
        Ok(c) => c,
        Err(e) => {
            notes.push(format!("the old catalog cannot be read: {e}"));
            return old;
        }
    };
    old.mode = c.meta("mode").ok().flatten();
    old.readable = old.mode.is_some();
    match c.file_rows() {
        Ok(rows) => {
            for (id, row) in rows {
                match row {
                    Ok(f) => {
                        old.files.insert(f.path.clone(), f);
                    }
                    Err(bad) => notes.push(format!(
                        "the old catalog's files row {id} ({}) is not used: {}",
                        bad.path, bad.why
                    )),
                }
            }
        }
        Err(e) => notes.push(format!("the old catalog's files cannot be read: {e}")),
    }
    match c.migrations() {
        Ok(m) => old.migrations = m,
        Err(e) => notes.push(format!("the old catalog's migrations cannot be read: {e}")),
    }
    old
}

/// The store's mode: from the configuration, the old catalog, the WAL's
/// header or a cold file's schema, in that order; disagreement is an error.
fn repair_mode(
    config: &Config,
    old: &OldCatalog,
    cold_dir: &Path,
    parts: &[PathBuf],
) -> Result<Mode> {
    let from_old = match &old.mode {
        Some(m) => Some(Mode::parse(m).ok_or_else(|| {
            Error::Inconsistent(format!("the old catalog's mode is {m:?}; give --mode"))
        })?),
        None => None,
    };
    let from_wal = [Mode::Simple, Mode::Trading].into_iter().find(|m| {
        !wal::list_segments(&config.wal_dir())
            .unwrap_or_default()
            .is_empty()
            && wal::scan_all(&config.wal_dir(), &m.schema()).is_ok()
    });
    let from_cold = parts.iter().find_map(|rel| {
        let file = std::fs::File::open(cold_dir.join(rel)).ok()?;
        let b =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
        [Mode::Simple, Mode::Trading]
            .into_iter()
            .find(|m| same_fields(b.schema(), &m.schema()))
    });
    let mut found = None;
    for (what, m) in [
        ("the configuration", config.mode),
        ("the old catalog", from_old),
        ("the WAL", from_wal),
        ("the cold files", from_cold),
    ] {
        if let Some(m) = m {
            match found {
                None => found = Some((what, m)),
                Some((w, f)) if f != m => {
                    return Err(Error::Inconsistent(format!(
                        "{w} says the store holds {} records, {what} says {}; nothing was changed",
                        f.name(),
                        m.name()
                    )))
                }
                Some(_) => {}
            }
        }
    }
    Ok(found.map_or(Mode::Simple, |(_, m)| m))
}

fn same_fields(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Rebuilds the catalog of the store `config` describes from its cold
/// files and its WAL (see the module doc). Without `accept_loss` it refuses
/// whenever the rebuilt store would lack records: a damaged file whose
/// records are not in the WAL, or LSNs that no file and no WAL segment
/// holds. Changes nothing before everything is read and decided.
pub fn repair(config: &Config, accept_loss: bool) -> Result<RepairReport> {
    config.check()?;
    let base = config.storage.base_path.clone();
    if !base.is_dir() {
        return Err(Error::NotFound(format!("the store {}", base.display())));
    }
    let _lock = lock_store(&base, true)?;
    let cold_dir = config.cold_dir();
    let wal_dir = config.wal_dir();
    let cat_path = config.catalog_path();
    let mut report = RepairReport::default();
    let old = read_old(&cat_path, &mut report.notes);
    let (parts, _staged) = cold_files_on_disk(&cold_dir)?;
    let mode = repair_mode(config, &old, &cold_dir, &parts)?;
    report.mode = Some(mode);
    let schema = mode.schema();

    // The WAL: which LSNs it holds. Repair does not mend a damaged log.
    let log = wal::scan_all(&wal_dir, &schema).map_err(|e| {
        Error::Inconsistent(format!(
            "{e}; repair rebuilds the catalog, not the WAL; nothing was changed"
        ))
    })?;
    report.wal = log.first_lsn.map(|f| (f, log.next_lsn));

    // Every cold file, read whole.
    let mut good: BTreeMap<(u64, u64), Vec<ColdFile>> = BTreeMap::new();
    // A file that cannot be trusted: where, why, and the LSNs its name says.
    struct Damaged {
        rel: PathBuf,
        why: String,
        range: Option<(u64, u64)>,
    }
    let mut damaged: Vec<Damaged> = Vec::new();
    for rel in &parts {
        let path = cold_dir.join(rel);
        let described = cold::describe(&path, rel, &schema).and_then(|d| match old.files.get(rel) {
            Some(o) if o.crc32c != d.file.crc32c => Err(format!(
                "checksum mismatch: the old catalog recorded crc32c {:#010x}, the file has {:#010x}",
                o.crc32c, d.file.crc32c
            )),
            _ => Ok(d),
        });
        match described {
            Ok(d) => {
                if !d.self_described {
                    report.undescribed += 1;
                }
                good.entry((d.file.lsn_lo, d.file.lsn_hi))
                    .or_default()
                    .push(d.file);
            }
            Err(why) => {
                let range = cold::parse_path(rel).map(|(_, lo, hi)| (lo, hi));
                damaged.push(Damaged {
                    rel: rel.clone(),
                    why,
                    range,
                });
            }
        }
    }
    // Ranges are whole migrations: distinct ones must not overlap.
    let ranges: Vec<(u64, u64)> = good.keys().copied().collect();
    for w in ranges.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(Error::Inconsistent(format!(
                "cold files hold LSNs {}..={} and {}..={}, which overlap; nothing was changed; move the one that should not be there out of the cold directory",
                w[0].0, w[0].1, w[1].0, w[1].1
            )));
        }
    }

    // LSNs that no sound file holds (a damaged file's, or gaps between the
    // sound files' ranges) come back from the WAL if it holds them and
    // everything above: the watermark goes below the lowest such LSN, and
    // the sound files above it go to quarantine (their records come back
    // from the WAL too). Otherwise they are lost, unless the old catalog
    // says retention removed them.
    let top = ranges.last().map_or(0, |r| r.1);
    let in_wal = |a: u64, b: u64| log.first_lsn.is_some_and(|f| f <= a) && b < log.next_lsn;
    let mut holes: Vec<(u64, u64, Option<PathBuf>, String)> = Vec::new();
    let mut quarantine_list: Vec<(PathBuf, String)> = Vec::new();
    for Damaged { rel, why, range } in damaged {
        match range {
            Some((lo, hi)) => holes.push((lo, hi, Some(rel), format!("damaged ({why})"))),
            None => quarantine_list.push((rel, format!("not a cold file of this store ({why})"))),
        }
    }
    let mut next = 1;
    for &(lo, hi) in &ranges {
        if lo > next {
            holes.push((next, lo - 1, None, "in no cold file".into()));
        }
        next = hi + 1;
    }
    let cut = holes
        .iter()
        .filter(|(a, b, ..)| in_wal(*a, top.max(*b)))
        .map(|(a, ..)| a.saturating_sub(1))
        .min();
    let mut watermark = cut.unwrap_or(top);
    let mut kept: Vec<ColdFile> = Vec::new();
    for ((lo, hi), files) in &good {
        if *lo > watermark {
            for f in files {
                quarantine_list.push((
                    f.path.clone(),
                    format!("sound, but its LSNs {lo}..={hi} come back from the WAL (with LSNs no sound file holds below them)"),
                ));
            }
        } else {
            kept.extend(files.iter().cloned());
        }
    }
    // The WAL must start at or before the watermark + 1.
    match log.first_lsn {
        Some(first) if first > watermark + 1 => {
            holes.push((
                watermark + 1,
                first - 1,
                None,
                "in no cold file and not in the WAL".into(),
            ));
            watermark = first - 1;
        }
        Some(_) => {}
        None if watermark > 0 => {
            holes.push((
                watermark + 1,
                u64::MAX,
                None,
                "the WAL holds no segment: records acknowledged after the cold files' cannot be known".into(),
            ));
        }
        None => {}
    }
    // The committed migrations, from LSN 1 on: the sound ranges, and each
    // hole at or below the watermark as a range with no file.
    let old_files: Vec<(u64, u64)> = old.files.values().map(|f| (f.lsn_lo, f.lsn_hi)).collect();
    let mut migrations: Vec<Migration> = kept
        .iter()
        .map(|f| (f.lsn_lo, f.lsn_hi))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|(lo, hi)| Migration {
            lsn_lo: lo,
            lsn_hi: hi,
            note: Some("rebuilt by repair from the cold files".into()),
        })
        .collect();
    let mut lost = Vec::new();
    for (a, b, file, what) in holes {
        if a > watermark {
            if let Some(rel) = file {
                quarantine_list.push((
                    rel,
                    format!("{what}; its LSNs {a}..={b} come back from the WAL"),
                ));
            } else if b == u64::MAX {
                lost.push(format!("LSNs after {}: {what}", a - 1));
            }
            continue;
        }
        // Retention: the old catalog committed these LSNs and listed no
        // file for them any more.
        let retained = file.is_none()
            && covers(&old.migrations, a, b)
            && !old_files.iter().any(|&(lo, hi)| lo <= b && hi >= a);
        let note = if retained {
            "committed, files removed by retention (the old catalog's migrations)".to_string()
        } else {
            lost.push(match &file {
                Some(rel) => format!(
                    "{}: {what}; its LSNs {a}..={b} are not in the WAL: its records are lost",
                    rel.display()
                ),
                None => format!("LSNs {a}..={b}: {what} (deleted by retention, or lost)"),
            });
            if let Some(rel) = file {
                quarantine_list.push((rel, format!("{what}; its records are not in the WAL (lost, accepted by repair --accept-loss)")));
            }
            "found by repair in no cold file and not in the WAL; accepted as gone".to_string()
        };
        if !migrations.iter().any(|m| m.lsn_lo <= b && m.lsn_hi >= a) {
            migrations.push(Migration {
                lsn_lo: a,
                lsn_hi: b,
                note: Some(note),
            });
        }
    }
    migrations.sort_by_key(|m| m.lsn_lo);
    if !lost.is_empty() && !accept_loss {
        return Err(Error::Inconsistent(format!(
            "repair would lose records: {}; nothing was changed; rerun with --accept-loss to move such files to quarantine and record the LSNs as gone",
            lost.join("; ")
        )));
    }
    for l in lost {
        report.notes.push(format!("accepted loss: {l}"));
    }

    // Write the new catalog beside the old one, then swap.
    let name = cat_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "catalog.sqlite".into());
    let tmp = cat_path.with_file_name(format!("{name}.repair"));
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", tmp.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    {
        let mut fresh = Catalog::open(&tmp)?;
        fresh.rebuild(mode.name(), &kept, &migrations, watermark)?;
        if old.readable {
            for (table, copied) in fresh.copy_history(&cat_path) {
                match copied {
                    Ok(n) => report
                        .notes
                        .push(format!("copied {n} {table} rows from the old catalog")),
                    Err(e) => report
                        .notes
                        .push(format!("{table} not copied from the old catalog: {e}")),
                }
            }
        }
    }
    let tmp_wal = PathBuf::from(format!("{}-wal", tmp.display()));
    if tmp_wal.exists() {
        return Err(Error::Inconsistent(format!(
            "{} was left after the rebuilt catalog closed; nothing was swapped",
            tmp_wal.display()
        )));
    }
    wal::sync_dir(&base)?;
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", cat_path.display()));
        if p.exists() {
            let rel = PathBuf::from(p.file_name().unwrap_or_default());
            let root = p.parent().unwrap_or(&base).to_path_buf();
            report.quarantined.push(quarantine(
                &base,
                &root,
                &rel,
                "the catalog repair replaced",
            )?);
        }
    }
    std::fs::rename(&tmp, &cat_path).map_err(|e| Error::io(&cat_path, e))?;
    wal::sync_dir(cat_path.parent().unwrap_or(&base))?;
    for (rel, why) in quarantine_list {
        report
            .quarantined
            .push(quarantine(&base, &cold_dir, &rel, &why)?);
    }
    if log.first_lsn.is_none() && watermark > 0 {
        let seg = wal::start_log(&wal_dir, &schema, watermark + 1)?;
        report
            .notes
            .push(format!("started a new log at {}", seg.display()));
    }
    report.files = kept.len();
    report.rows = kept.iter().map(|f| f.rows).sum();
    report.watermark = watermark;
    Ok(report)
}

/// Do `migrations` cover every LSN of `a..=b` exactly, from `a` on?
fn covers(migrations: &[Migration], a: u64, b: u64) -> bool {
    let mut next = a;
    for m in migrations.iter().filter(|m| m.lsn_lo >= a && m.lsn_hi <= b) {
        if m.lsn_lo != next {
            return false;
        }
        next = m.lsn_hi + 1;
    }
    next == b + 1
}
