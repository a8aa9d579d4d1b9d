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
//!    one of them, exist, and have the size the catalog recorded. The cold
//!    directory must not belong to another store (its `_store` file). The
//!    WAL segments on disk must be those the catalog recorded (the log
//!    records each segment when it creates it, and forgets it when it
//!    deletes it): a recorded segment that is gone is refused unless its
//!    records are all in the cold tier, a segment never recorded is
//!    refused unless it is the newest and holds no record (created, then a
//!    crash). The WAL is read (checksums, no gap between segments, the
//!    first one starting at or before watermark + 1, every header naming
//!    this store). Every Parquet file the catalog does not list is then
//!    classified:
//!    - a **leftover** of a migration that never committed: its name and
//!      its own description say LSNs `lo..=hi` above the watermark and this
//!      store's ID, and the WAL holds all of them. That is the proof: it is
//!      deleted.
//!    - a copy of a file **retention deleted**, byte for byte (the catalog
//!      records each deleted file's path, size and CRC-32C in the same
//!      transaction as the deletion): left by an interrupted retention,
//!      deleted.
//!    - a file in the staging directory without that proof: moved to
//!      `quarantine/`.
//!    - a file **of another store** (its description names another ID): the
//!      store is refused, naming it; it is never deleted.
//!    - anything else (a file holding committed LSNs the catalog does not
//!      list, say): the store is refused, naming it.
//!
//!    Problems are gathered, and the refusal lists them all.
//! 2. **Act**, only once everything checked: cut a torn WAL tail (its bytes
//!    kept in `quarantine/wal/`), delete the proven leftovers, quarantine
//!    the rest, record the segments, report each. A store opened read-only
//!    ([`Engine::open_read_only`]) does none of it and says what it would
//!    have done.
//!
//! # Whose store
//!
//! A store gets an ID once, when it is created (a store from before IDs
//! when it is next opened to write): 128 random bits in the catalog
//! (`meta.store_id`), in the header of every WAL segment it writes, in the
//! description of every cold file, and in the cold directory's `_store`
//! file. A segment or file that names another store is never taken for
//! this one's, and never deleted.
//!
//! # Repair
//!
//! [`repair`] rebuilds the catalog from what the files and the WAL say:
//! each cold file is read whole and must agree with its own description
//! (partition, rows, time range, symbols, LSN range, store, and a checksum
//! of its data region), where the old catalog can still be read with the
//! checksum that catalog recorded, and where the WAL still holds its LSNs
//! with the WAL's records (the same rows). A file that fails is moved to
//! quarantine only if its records are still in the WAL (they come back
//! from it) or with `--accept-loss`; a file of another store goes to
//! quarantine. LSNs that neither a cold file nor the WAL holds are likewise
//! refused without `--accept-loss`, unless the old catalog says retention
//! removed them (retention's record wins over the WAL). A WAL segment the
//! old catalog recorded that is gone, and a damaged last WAL record, are
//! losses too; with `--accept-loss` repair cuts the damaged record (its
//! bytes kept) and, for a gap in the middle of the log, writes the records
//! before the gap to the cold tier so that the log starts after it. A file
//! it cannot read (permissions, an I/O error) is not damage: repair
//! refuses, naming the error. The old catalog goes to quarantine too; its
//! jobs, quality results, retention log and idempotency keys are copied
//! over when it can be read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::Mode;
use crate::store::catalog::{Catalog, Migration};
use crate::store::cold::{self, ColdFile};
use crate::store::objects::ColdStore;
use crate::store::wal::{self, Recovery};

/// The directory inside the store where files that are not garbage but
/// cannot stay are moved, under their path relative to the store.
pub const QUARANTINE: &str = "quarantine";

/// The quarantine inside a directory on another filesystem than the store
/// (a cold directory elsewhere), where files go when a rename to
/// [`QUARANTINE`] cannot cross. Readers of the cold tier skip it (its name
/// starts with `_`, as Hive-style readers expect).
pub const QUARANTINE_IN_PLACE: &str = "_quarantine";

const REPAIR: &str = "`07_gpu_tiered repair` rebuilds the catalog from the cold files and the WAL (for a cold tier in an object store or a shared one, `07_gpu_tiered repair --help` says how)";

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
    /// What changed in the catalog's record of WAL segments.
    pub segment_notes: Vec<String>,
    /// What was done to make the catalog and the cold tier's Delta table
    /// agree (see [`super::reconcile`]).
    pub table_notes: Vec<String>,
    /// Opened read-only: what a read-write open would have done, and did
    /// not.
    pub not_done: Vec<String>,
    /// The catalog's bars rebuilt from the cold files (or why they could
    /// not be: lookups then read the raw rows).
    pub bars: Option<String>,
    /// Strays in an object store that could not be moved because their
    /// key cannot be addressed as it was listed (a folder marker
    /// `x.parquet/`, whose slash the client drops): left where they are,
    /// and said.
    pub left: Vec<String>,
}

/// How long [`lock_store`] waits for a lock held elsewhere before it
/// refuses (see there why it waits at all).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes the store's lock: an OS lock (`flock`) on the store directory
/// itself, exclusive for a process that writes, shared for one that only
/// reads (`stats`, `query`, `scrub`: they run beside each other, never
/// beside a writer). The lock is on the directory's file descriptor, so
/// deleting a file cannot defeat it; the `LOCK` file beside the data says
/// which process holds it, for people, and is not the lock.
///
/// Q: Why try again for up to [`LOCK_PATIENCE`] before refusing?
/// A: An `flock` belongs to the open file, and a process that starts a
/// child copies its open files into the child until the child's `exec`
/// closes them. A store closed by one thread while another thread of
/// the same process starts a program (a test binary running tests side
/// by side, a server running a tool) stays locked for that instant, and
/// an open right after it was refused as "open in another process". A
/// store truly held by another process is still refused, a moment later.
pub(crate) fn lock_store(base: &Path, write: bool) -> Result<std::fs::File> {
    let dir = std::fs::File::open(base).map_err(|e| Error::io(base, e))?;
    let try_lock = || {
        if write {
            dir.try_lock()
        } else {
            dir.try_lock_shared()
        }
    };
    let waited = std::time::Instant::now();
    let mut locked = try_lock();
    while matches!(locked, Err(std::fs::TryLockError::WouldBlock))
        && waited.elapsed() < LOCK_PATIENCE
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        locked = try_lock();
    }
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

/// Whose store this is: its ID, which cold files and WAL segments carry,
/// and the LSN before which they may carry none (written before the store
/// had an ID).
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub id: Option<String>,
    pub legacy_below: u64,
    /// Created by this open: to be recorded in the catalog.
    pub new: bool,
}

impl Identity {
    /// A store from before IDs, opened without giving it one (read-only).
    pub fn legacy() -> Identity {
        Identity {
            id: None,
            legacy_below: u64::MAX,
            new: false,
        }
    }

    /// What a WAL scan must accept.
    pub fn scan_owner(&self) -> wal::Owner {
        if self.new {
            // Segments so far were written before the ID existed.
            wal::Owner::Store {
                id: None,
                legacy_below: u64::MAX,
            }
        } else {
            wal::Owner::Store {
                id: self.id.clone(),
                legacy_below: self.legacy_below,
            }
        }
    }

    /// Why a file that says it was written by store `found` (and holds
    /// LSNs up to `lsn_hi`) is not this store's, if it is not.
    fn foreign(&self, found: Option<&str>, lsn_hi: u64) -> Option<String> {
        let legacy_ok = self.new || lsn_hi < self.legacy_below;
        match (self.id.as_deref(), found) {
            (Some(want), Some(got)) if want == got && !self.new => None,
            (_, None) if legacy_ok => None,
            (_, Some(got)) => Some(format!(
                "it belongs to another store (its description says store {got}{})",
                match self.id.as_deref() {
                    Some(want) if !self.new => format!(", this store is {want}"),
                    _ => ", this store had no ID until now".to_string(),
                }
            )),
            (Some(want), None) => Some(format!(
                "it carries no store ID, but this store ({want}) has written its ID into every file since LSN {}",
                self.legacy_below
            )),
            (None, None) => None,
        }
    }
}

/// A new store ID: 128 random bits, as 32 hex digits.
pub(crate) fn new_store_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The file in the cold directory that names the store it belongs to, so
/// that two stores cannot share one (each would take the other's files
/// for its own leftovers).
pub const COLD_OWNER: &str = "_store";

/// The catalog's record of where its cold tier is.
pub const COLD_LOCATION: &str = "cold_location";

/// Refuses a cold tier other than the one the catalog recorded
/// ([`ColdStore::location_key`]; a writing open records it), unless it is
/// that tier moved whole: its owner file names this store.
pub(crate) fn check_cold_location(
    config: &Config,
    catalog: &Catalog,
    cold: &ColdStore,
    store_id: Option<&str>,
) -> Result<()> {
    let here = cold.location_key(&config.storage.base_path);
    let Some(recorded) = catalog.meta(COLD_LOCATION)? else {
        return Ok(());
    };
    if recorded == here {
        return Ok(());
    }
    if !config.cold_tier.shared && store_id.is_some() && cold_owner(cold)?.as_deref() == store_id {
        return Ok(());
    }
    Err(Error::Inconsistent(format!(
        "the catalog {} records its cold tier at {recorded}, but the configuration puts it at {here} (cold_tier.url, storage.cold_path); nothing was changed; point the configuration back at {recorded}; a tier moved on purpose is taken where it is when its {COLD_OWNER} file, which names this store, moved with it",
        config.catalog_path().display()
    )))
}

/// The store ID the cold directory's owner file names, if it has one.
pub(crate) fn cold_owner(cold: &ColdStore) -> Result<Option<String>> {
    let rel = Path::new(COLD_OWNER);
    match cold.read(rel) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .find_map(|l| l.strip_prefix("store "))
            .map(|id| id.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(cold.name(rel), e)),
    }
}

/// Refuses a cold directory that another store owns.
pub(crate) fn check_cold_owner(cold: &ColdStore, identity: &Identity, shared: bool) -> Result<()> {
    let Some(owner) = cold_owner(cold)? else {
        return Ok(());
    };
    if shared {
        return Err(Error::Inconsistent(format!(
            "cold_tier.shared is set, but the cold tier {} belongs to store {owner} alone (its {COLD_OWNER} file); nothing was changed; a table shared by several stores must be made by shared stores from the start",
            cold.root_name().display()
        )));
    }
    match identity.id.as_deref() {
        Some(id) if id == owner && !identity.new => Ok(()),
        _ => Err(Error::Inconsistent(format!(
            "the cold directory {} belongs to store {owner} (its {COLD_OWNER} file), not to this store ({}); two stores cannot share a cold directory; nothing was changed; give this store its own storage.cold_path (or cold_tier.url)",
            cold.root_name().display(),
            match identity.id.as_deref() {
                Some(id) if !identity.new => id,
                _ => "no ID yet",
            }
        ))),
    }
}

/// Writes the cold directory's owner file (once; durably), only if there
/// is none: two stores opening one fresh tier at once cannot both take it
/// (a create-only PUT in an object store, a hard link on local disk), and
/// the one that finds it taken by another store is refused.
pub(crate) fn write_cold_owner(cold: &ColdStore, id: &str) -> Result<()> {
    if cold_owner(cold)?.as_deref() == Some(id) {
        return Ok(());
    }
    let text = format!(
        "store {id}\nThis directory holds the cold tier of that squeezed-signals store only.\n"
    );
    let rel = Path::new(COLD_OWNER);
    let written = match cold {
        ColdStore::Remote(r) => r.put_new(rel, text.into_bytes().into()),
        ColdStore::Local(dir) => {
            let path = dir.join(COLD_OWNER);
            let tmp = dir.join(format!("{COLD_OWNER}.{}.tmp", std::process::id()));
            std::fs::File::create(&tmp)
                .and_then(|mut f| {
                    use std::io::Write;
                    f.write_all(text.as_bytes()).and_then(|()| f.sync_all())
                })
                .map_err(|e| Error::io(&tmp, e))?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            wal::sync_dir(dir)?;
            linked
        }
    };
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match cold_owner(cold)? {
            Some(owner) if owner == id => Ok(()),
            owner => Err(Error::Inconsistent(format!(
                "the cold tier {} was just taken by store {} (its {COLD_OWNER} file), not this store ({id}); two stores cannot share a cold tier; nothing of this store was written there",
                cold.root_name().display(),
                owner.as_deref().unwrap_or("(unreadable)")
            ))),
        },
        Err(e) => Err(Error::io(cold.name(rel), e)),
    }
}

/// What opening will do to the catalog's record of WAL segments.
pub(crate) struct SegmentPlan {
    /// Segments to record: all of them for a catalog that never recorded
    /// any, or a last segment created but not recorded before a crash.
    record: Vec<u64>,
    /// Rows of segments that are gone, whose records were all migrated (a
    /// crash between deleting the file and its row).
    forget: Vec<u64>,
    /// The segment adopted as created-but-unrecorded: it must hold no
    /// record.
    adopted: Option<u64>,
    first_recording: bool,
}

/// Checks the WAL segments on disk against those the catalog recorded,
/// changing nothing. A recorded segment that is gone is an error unless
/// its records were all migrated; a segment on disk that was never
/// recorded is an error unless it is the newest, and empty (created, then
/// a crash before its row was written).
pub(crate) fn check_segments(
    config: &Config,
    schema: &SchemaRef,
    store_id: Option<&str>,
    recorded: Option<Vec<u64>>,
    on_disk: &[wal::Segment],
    watermark: u64,
) -> Result<SegmentPlan> {
    let disk: BTreeSet<u64> = on_disk.iter().map(|s| s.first_lsn).collect();
    let Some(recorded) = recorded else {
        return Ok(SegmentPlan {
            record: disk.into_iter().collect(),
            forget: Vec::new(),
            adopted: None,
            first_recording: true,
        });
    };
    let rec: BTreeSet<u64> = recorded.iter().copied().collect();
    let dir = config.wal_dir();
    let mut plan = SegmentPlan {
        record: Vec::new(),
        forget: Vec::new(),
        adopted: None,
        first_recording: false,
    };
    let mut problems = Vec::new();
    for &m in rec.difference(&disk) {
        let name = dir.join(wal::segment_name(m));
        match rec.range(m + 1..).next() {
            Some(&next) if next - 1 <= watermark => plan.forget.push(m),
            Some(&next) => problems.push(format!(
                "the WAL segment {} is missing (the catalog recorded it when the log created it): records {}..={next_lsn} are missing from the log{}",
                name.display(),
                m.max(watermark + 1),
                if m <= watermark {
                    format!(" (LSNs {m}..={watermark} are in the cold tier)")
                } else {
                    String::new()
                },
                next_lsn = next - 1
            )),
            None => problems.push(format!(
                "the WAL segment {} is missing (the catalog recorded it when the log created it): it was the last one, so the records from LSN {} on are missing from the log, how many is not known",
                name.display(),
                m.max(watermark + 1)
            )),
        }
    }
    let newest_recorded = rec.iter().next_back().copied();
    for &e in disk.difference(&rec) {
        let newest = disk.iter().next_back() == Some(&e);
        let seg = on_disk.iter().find(|s| s.first_lsn == e);
        let empty = seg.is_some_and(|s| wal::holds_no_record(s, schema, store_id).unwrap_or(false));
        if newest && empty && newest_recorded.is_none_or(|r| e > r) {
            plan.record.push(e);
            plan.adopted = Some(e);
        } else {
            problems.push(format!(
                "the WAL segment {} is not one this store created (the catalog has no record of it, and this store records a segment before it writes to it: copied from another store, or restored from an old backup?); move it out of the WAL directory",
                dir.join(wal::segment_name(e)).display()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Inconsistent(format!(
            "{}; nothing was changed; put a missing segment back (from a backup) and open again; if it is lost for good, `07_gpu_tiered repair --accept-loss` records its records as lost and goes on",
            problems.join("; ")
        )));
    }
    Ok(plan)
}

impl SegmentPlan {
    /// Records and forgets what the check found.
    pub(crate) fn apply(&self, catalog: &mut Catalog) -> Result<()> {
        if self.first_recording || !self.record.is_empty() {
            catalog.record_segments(&self.record)?;
        }
        if !self.forget.is_empty() {
            catalog.forget_segments(&self.forget)?;
        }
        Ok(())
    }

    /// What [`SegmentPlan::apply`] did, in words.
    pub(crate) fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.first_recording && !self.record.is_empty() {
            out.push(format!(
                "recorded the {} WAL segments in the catalog (from now on a missing one is noticed)",
                self.record.len()
            ));
        } else if let Some(first) = self.adopted {
            out.push(format!(
                "recorded the WAL segment {} (created, empty, not recorded before a crash)",
                wal::segment_name(first)
            ));
        }
        for f in &self.forget {
            out.push(format!(
                "forgot the deleted WAL segment {} (its records are in the cold tier)",
                wal::segment_name(*f)
            ));
        }
        out
    }

    /// What it would do, for a store opened read-only.
    pub(crate) fn not_done(&self) -> Vec<String> {
        self.notes()
            .into_iter()
            .map(|n| format!("{n}: would be done"))
            .collect()
    }
}

/// Parquet files under the cold directory, relative to it: those in
/// partitions, and those in the staging directory.
pub(crate) fn cold_files_on_disk(cold: &ColdStore) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let cold_dir = match cold {
        ColdStore::Local(d) => d,
        // An object store has no staging: a file is PUT whole into its
        // partition.
        ColdStore::Remote(r) => {
            let skip = [
                cold::STAGING,
                QUARANTINE,
                QUARANTINE_IN_PLACE,
                crate::store::table::LOG_DIR,
            ];
            let all = r
                .list_partitions()
                .map_err(|e| Error::io(cold.root_name(), e))?;
            // Only the day partitions are the tier's: a prefix below this
            // one (`<prefix>/eu/…`) may be another store's tier, never to
            // be judged, moved or deleted from here.
            // Nor is a key the tier never writes: a name outside the
            // characters of its own names (one a client would spell
            // another way, so that moving it could fail halfway), or an
            // object too short to be Parquet (a folder marker) unless it is
            // named as the tier's own files are (then it is a damaged one).
            let parts = all
                .into_iter()
                .filter(|(rel, _)| in_day_partition(rel))
                .filter(|(rel, _)| rel.extension().is_some_and(|x| x == "parquet"))
                .filter(|(rel, _)| {
                    !rel.components()
                        .any(|c| skip.iter().any(|s| c.as_os_str() == *s))
                })
                .filter(|(rel, _)| rel.to_str().is_some_and(|t| t.chars().all(tier_char)))
                .filter(|(rel, len)| *len >= MIN_PARQUET_BYTES || cold::parse_path(rel).is_some())
                .map(|(rel, _)| rel)
                .collect();
            return Ok((parts, Vec::new()));
        }
    };
    let mut parts = Vec::new();
    walk_partitions(cold_dir, Path::new(""), &mut parts)?;
    // As in an object store: only the day partitions are the tier's.
    // Anything else in the directory (another store whose base path is
    // here, say) is never judged, moved or deleted from here.
    parts.retain(|rel| in_day_partition(rel));
    let mut staged = Vec::new();
    walk_staging(cold_dir, &mut staged)?;
    Ok((parts, staged))
}

/// The fewest bytes a Parquet file has: `PAR1`, a footer length, `PAR1`.
const MIN_PARQUET_BYTES: u64 = 12;

/// Whether `c` may appear in a name the tier writes (partitions, files,
/// store IDs): ASCII letters and digits, `-`, `_`, `.`, `=` and `/`.
fn tier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.=/".contains(c)
}

/// Whether the file at `path` is a regular file that starts with
/// Parquet's magic bytes (`PAR1`) and is long enough to be one.
fn looks_like_parquet(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let long_enough = f
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() >= MIN_PARQUET_BYTES);
    let mut magic = [0u8; 4];
    long_enough && f.read_exact(&mut magic).is_ok() && &magic == b"PAR1"
}

/// The files a migration staged and left in `<cold>/_staging/`: the tier
/// stages `_staging/<day>-<file>.parquet`, or in a shared tier
/// `_staging/<store id>/<day>-<file>.parquet`, so only regular files there
/// (and in folders named by a store ID) are judged; anything else, a
/// store whose base path is in it, say, is never read, moved or deleted.
fn walk_staging(cold_dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let staging = Path::new(cold::STAGING);
    let mut dirs = vec![staging.to_path_buf()];
    let here = cold_dir.join(staging);
    match std::fs::read_dir(&here) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&here, e))?;
                let ty = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
                let name = entry.file_name();
                if ty.is_dir() && name.to_str().is_some_and(cold::is_store_id) {
                    dirs.push(staging.join(name));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&here, e)),
    }
    for rel in dirs {
        let here = cold_dir.join(&rel);
        let entries = match std::fs::read_dir(&here) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&here, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&here, e))?;
            let ty = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            let sub = rel.join(entry.file_name());
            if ty.is_file() && sub.extension().is_some_and(|x| x == "parquet") {
                out.push(sub);
            }
        }
    }
    Ok(())
}

/// Whether a path relative to the tier's root lies in a day partition
/// (`year=…/`): the only part of a tier, local or in an object store, that
/// is the tier's own. Anything else there (a prefix or a base path of
/// another store) is never judged, moved or deleted.
///
/// Exactly the shape the tier writes: `year=…/month=…/day=…/<file>`. A
/// file deeper than a day directory is never the tier's (a store whose
/// base path is `cold/year=2030`, with its own catalog and WAL names, keeps
/// its files at `year=2030/cold/year=…/…`).
fn in_day_partition(rel: &Path) -> bool {
    let mut names = rel.components().map(|c| c.as_os_str().to_string_lossy());
    PARTITION_LEVELS
        .iter()
        .all(|level| names.next().is_some_and(|n| n.starts_with(level)))
        && names.next().is_some()
        && names.next().is_none()
}

/// The directory levels of a day partition, outermost first.
const PARTITION_LEVELS: [&str; 3] = ["year=", "month=", "day="];

/// Every `*.parquet` in the day partitions of the tier at `dir`
/// (`year=…/month=…/day=…/*.parquet`), relative to `dir`: the walk enters
/// only directories named for the next partition level, so nothing else
/// in the directory (another store's base path, a user's files) is read,
/// let alone judged.
fn walk_partitions(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let depth = rel.components().count();
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
        match PARTITION_LEVELS.get(depth) {
            Some(level) => {
                if ty.is_dir() && name.to_string_lossy().starts_with(level) {
                    walk_partitions(dir, &sub, out)?;
                }
            }
            // A name the tier gives its own files is judged whatever it
            // is (a link, say, where someone moved the file: an unreadable
            // one is refused, never taken for lost). Any other name only
            // when it is a regular Parquet file: a link is not the tier's
            // (moving it would change what it points to), and a store
            // whose base path is here may call its catalog `x.parquet`.
            None => {
                if !ty.is_dir()
                    && sub.extension().is_some_and(|x| x == "parquet")
                    && (cold::parse_path(&sub).is_some()
                        || (ty.is_file() && looks_like_parquet(&entry.path())))
                {
                    out.push(sub);
                }
            }
        }
    }
    Ok(())
}

/// What the store holds on disk: WAL segments, and Parquet files in the
/// cold tier's day partitions (in a shared tier, those named for no store: the
/// files named for a store are that store's, and a store with no catalog
/// has no ID to own them by).
pub(crate) fn data_on_disk(config: &Config) -> Result<(usize, usize)> {
    let segments = wal::list_segments(&config.wal_dir())?.len();
    let (parts, staged) = cold_files_on_disk(&ColdStore::of(config)?)?;
    let ours = |rel: &PathBuf| !config.cold_tier.shared || cold::store_of_path(rel).is_none();
    let parquet = parts.iter().chain(&staged).filter(|r| ours(r)).count();
    Ok((segments, parquet))
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
    let cold = ColdStore::of(config)?;
    let owner = match cold_owner(&cold)? {
        Some(id) => format!(
            "; the cold directory {} belongs to store {id} (its {COLD_OWNER} file): if that is not this store, give this one its own storage.cold_path or cold_tier.url (two stores cannot share one)",
            cold.root_name().display()
        ),
        None => String::new(),
    };
    // Files named for stores are a shared tier's: a store that is not
    // shared finds them when pointed at one.
    let named = if config.cold_tier.shared {
        0
    } else {
        let (parts, _) = cold_files_on_disk(&cold)?;
        parts
            .iter()
            .filter(|r| cold::store_of_path(r).is_some())
            .count()
    };
    let shared = if named > 0 {
        format!(
            "; {named} of the Parquet files in {} are named for stores of a shared tier: if this store is to write that table with them, set cold_tier.shared; if not, give it its own storage.cold_path or cold_tier.url",
            cold.root_name().display()
        )
    } else {
        String::new()
    };
    Err(Error::Inconsistent(format!(
        "the catalog {} {why}, but the store holds {parquet} Parquet files and {segments} WAL segments; nothing was changed (no file was deleted); {REPAIR}{owner}{shared}",
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
    /// The files retention has deleted, by path.
    pub retained: HashMap<PathBuf, crate::store::catalog::RetainedFile>,
    /// Files the catalog listed and the cold tier's Delta table removed (an
    /// interrupted retention; see [`super::reconcile`]): proven garbage.
    pub removed_by_table: HashSet<PathBuf>,
    /// Files the cold tier's Delta table holds: never deleted or moved.
    pub held_by_table: HashSet<PathBuf>,
}

/// Checks the catalog's rows against each other and the files on disk,
/// changing nothing; every problem found is listed in the refusal.
pub(crate) fn check_catalog(catalog: &Catalog, cold: &ColdStore) -> Result<Checked> {
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
        Ok(w) => Some(w),
        Err(e) => {
            problems.push(e.to_string());
            None
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
    match watermark {
        Some(w) if w != last => problems.push(format!(
            "the watermark is LSN {w}, but the committed migrations end at LSN {last}"
        )),
        // Unreadable: said above, once.
        _ => {}
    }
    let watermark = watermark.unwrap_or(0);
    let ranges: HashSet<(u64, u64)> = migrations.iter().map(|m| (m.lsn_lo, m.lsn_hi)).collect();
    // An object store's partitions are listed (sizes and all), not asked file by
    // file; one that cannot be reached is that error, not a list of files
    // "unreadable".
    let sizes: Option<HashMap<PathBuf, u64>> = match cold {
        ColdStore::Local(_) => None,
        ColdStore::Remote(r) => Some(
            r.list_partitions()
                .map_err(|e| Error::io(cold.root_name(), e))?
                .into_iter()
                .collect(),
        ),
    };
    // A listing with nothing in it while the catalog names files is one
    // problem, said once: the wrong place, or a server that is not S3
    // (one that answers 200 to everything lists nothing), or a tier
    // emptied behind the store's back.
    let listed_nothing = sizes.as_ref().is_some_and(HashMap::is_empty) && !files.is_empty();
    // Said alone, without the advice to repair: the catalog is not what
    // is wrong, and repair cannot help.
    if listed_nothing {
        return Err(Error::Inconsistent(format!(
            "the catalog names {} files in the cold tier, but listing {} found no objects at all: is cold_tier.endpoint an S3 server, and are the bucket and prefix this store's? (if the objects were deleted, they are lost from the cold tier); nothing was changed",
            files.len(),
            cold.root_name().display()
        )));
    }
    let size_of = |rel: &Path| match &sizes {
        Some(m) => m
            .get(rel)
            .copied()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such object")),
        None => cold.len(rel),
    };
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
        let p = cold.name(&f.path);
        match size_of(&f.path) {
            Err(e) => problems.push(format!(
                "{}: listed in the catalog but unreadable: {e}",
                p.display()
            )),
            Ok(len) if len != f.bytes => problems.push(format!(
                "{}: the catalog says {} bytes, the file has {len}",
                p.display(),
                f.bytes,
            )),
            Ok(_) => {}
        }
    }
    let retained = catalog.retained_files().map_err(wrap)?;
    if !problems.is_empty() {
        return Err(refusal(catalog.path(), &problems));
    }
    Ok(Checked {
        files,
        watermark,
        retained,
        removed_by_table: HashSet::new(),
        held_by_table: HashSet::new(),
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
    cold: ColdStore,
    /// This store's staging folder, relative to the tier (removed when
    /// empty).
    staging: PathBuf,
    base: PathBuf,
    delete: Vec<(PathBuf, String)>,
    quarantine: Vec<(PathBuf, String)>,
}

/// What an unlisted file is, by its own description.
enum Verdict {
    /// A leftover this store may delete, and the proof.
    Leftover(String),
    /// Not provably a leftover, and why.
    Unproven(String),
    /// A file another store wrote: never deleted, never taken for this
    /// store's.
    Foreign(String),
}

/// Whether an unlisted file at `path`, named for LSNs `lo..=hi`, is the
/// leftover of a migration of this store that never committed: the LSNs
/// are above the watermark, the WAL holds every one of them, and the
/// file's own description says the same range and this store's ID (or
/// none, for a file written before the store had one).
fn leftover_proof(
    (cold, rel): (&ColdStore, &Path),
    (lo, hi): (u64, u64),
    watermark: u64,
    wal: &Recovery,
    identity: &Identity,
) -> Verdict {
    let meta = match cold::read_meta(cold, rel) {
        Ok(m) => m,
        Err(why) => return Verdict::Unproven(why),
    };
    if let Some(m) = &meta {
        if let Some(why) = identity.foreign(m.store_id.as_deref(), m.lsn_hi) {
            return Verdict::Foreign(why);
        }
    }
    if lo <= watermark {
        return Verdict::Unproven(format!(
            "its LSNs {lo}..={hi} are not above the watermark {watermark}"
        ));
    }
    if !(wal.holds(lo) && wal.holds(hi)) {
        return Verdict::Unproven(format!(
            "its LSNs {lo}..={hi} are above the watermark {watermark} but not all in the WAL"
        ));
    }
    match meta {
        Some(m) if (m.lsn_lo, m.lsn_hi) == (lo, hi) => Verdict::Leftover(format!(
            "LSNs {lo}..={hi}, above the watermark {watermark}, all in the WAL, written by this store: a migration that never committed"
        )),
        Some(m) => Verdict::Unproven(format!(
            "its name says LSNs {lo}..={hi}, its description {}..={}",
            m.lsn_lo, m.lsn_hi
        )),
        None => Verdict::Unproven("it carries no description".into()),
    }
}

/// Whether an unlisted file is the copy of a file retention deleted, left
/// by a retention interrupted between its catalog commit and the deletion:
/// the same path, size and CRC-32C as the file whose row it deleted.
fn retention_leftover(
    cold: &ColdStore,
    rel: &Path,
    retained: &HashMap<PathBuf, crate::store::catalog::RetainedFile>,
) -> Option<String> {
    let r = retained.get(rel)?;
    let (crc, len) = cold::file_checksum(cold, rel).ok()?;
    (len == r.bytes && crc == r.crc32c).then(|| {
        format!(
            "retention deleted its catalog row (LSNs {}..={}, partition {}), and this is that file, byte for byte: an interrupted retention",
            r.lsn_lo, r.lsn_hi, r.partition
        )
    })
}

/// Classifies every Parquet file the catalog does not list (see the module
/// doc), changing nothing; refuses if one cannot be explained, and for
/// every file another store wrote.
pub(crate) fn plan_cleanup(
    config: &Config,
    checked: &Checked,
    wal: &Recovery,
    identity: &Identity,
) -> Result<Cleanup> {
    let cold = ColdStore::of(config)?;
    let (parts, staged) = cold_files_on_disk(&cold)?;
    let listed: HashSet<&Path> = checked.files.iter().map(|f| f.path.as_path()).collect();
    let shared_id = identity.id.clone().filter(|_| config.cold_tier.shared);
    let mut plan = Cleanup {
        cold: cold.clone(),
        staging: match &shared_id {
            Some(id) => Path::new(cold::STAGING).join(id),
            None => PathBuf::from(cold::STAGING),
        },
        base: config.storage.base_path.clone(),
        delete: Vec::new(),
        quarantine: Vec::new(),
    };
    let mut problems = Vec::new();
    let w = checked.watermark;
    let foreign = |path: &Path, why: String| {
        format!(
            "{}: not in the catalog, and {why}; nothing was changed; move it out of this store's cold directory",
            path.display()
        )
    };
    // In a shared table, another store's files (named for it) are its
    // business: never read, deleted or moved here.
    let others = |rel: &Path| {
        config.cold_tier.shared
            && cold::store_of_path(rel)
                .is_some_and(|id| Some(id.as_str()) != identity.id.as_deref())
    };
    for rel in parts
        .into_iter()
        .filter(|r| !listed.contains(r.as_path()) && !others(r))
    {
        let path = cold.name(&rel);
        if checked.held_by_table.contains(&rel) {
            // Part of the table readers see: never deleted or moved.
            let range = cold::parse_path(&rel).map(|(_, lo, hi)| (lo, hi));
            match range.map(|r| leftover_proof((&cold, &rel), r, w, wal, identity)) {
                Some(Verdict::Foreign(why)) => problems.push(foreign(&path, why)),
                Some(Verdict::Unproven(why)) => problems.push(format!(
                    "{}: not in the catalog, and not provably a leftover: {why}; the cold tier's Delta table holds it",
                    path.display()
                )),
                _ => problems.push(format!(
                    "{}: not in the catalog, and not provably a leftover: the cold tier's Delta table holds it, and it is not the migration the table took after the watermark",
                    path.display()
                )),
            }
            continue;
        }
        let Some((_, lo, hi)) = cold::parse_path(&rel) else {
            plan.quarantine
                .push((rel, "a Parquet file whose name is not a cold file's".into()));
            continue;
        };
        match leftover_proof((&cold, &rel), (lo, hi), w, wal, identity) {
            Verdict::Leftover(proof) => plan.delete.push((rel, proof)),
            Verdict::Foreign(why) => problems.push(foreign(&path, why)),
            Verdict::Unproven(_) if checked.removed_by_table.contains(&rel) => {
                plan.delete.push((
                    rel,
                    "the cold tier's Delta table removed it (a tombstone in its log) and the catalog listed it: a retention interrupted before the catalog dropped it".into(),
                ))
            }
            Verdict::Unproven(why) => match retention_leftover(&cold, &rel, &checked.retained) {
                Some(proof) => plan.delete.push((rel, proof)),
                None => problems.push(format!(
                    "{}: not in the catalog, and not provably a leftover: {why}",
                    path.display()
                )),
            },
        }
    }
    for rel in staged {
        let path = cold.name(&rel);
        // Staged as `<day>-part-<lo>-<hi>[-<store id>].parquet`.
        let as_placed = rel
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('-'))
            .map(|(_, name)| Path::new("year=1970/month=01/day=01").join(name));
        if as_placed.as_deref().is_some_and(&others) {
            continue;
        }
        let range = as_placed
            .as_deref()
            .and_then(cold::parse_path)
            .map(|(_, lo, hi)| (lo, hi));
        match range.map(|range| leftover_proof((&cold, &rel), range, w, wal, identity)) {
            Some(Verdict::Leftover(proof)) => plan.delete.push((rel, proof)),
            Some(Verdict::Foreign(why)) => problems.push(foreign(&path, why)),
            Some(Verdict::Unproven(why)) => plan.quarantine.push((
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
                self.cold.name(rel).display()
            ));
        }
        for (rel, why) in &self.quarantine {
            report.not_done.push(format!(
                "{} would be moved to quarantine ({why})",
                self.cold.name(rel).display()
            ));
        }
        report
    }

    /// Deletes the proven leftovers and quarantines the rest.
    pub(crate) fn apply(self) -> Result<OpenReport> {
        let cold_dir = match &self.cold {
            ColdStore::Local(d) => d.clone(),
            ColdStore::Remote(r) => return self.apply_remote(r),
        };
        let mut report = OpenReport::default();
        let mut dirs = BTreeSet::new();
        for (rel, proof) in self.delete {
            let p = cold_dir.join(&rel);
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
            report.deleted.push((p, proof));
        }
        for (rel, why) in self.quarantine {
            report
                .quarantined
                .push(quarantine(&self.base, &cold_dir, &rel, &why)?);
        }
        for d in dirs {
            wal::sync_dir(&d)?;
        }
        let staging = cold_dir.join(&self.staging);
        if std::fs::remove_dir(&staging).is_ok() {
            wal::sync_dir(staging.parent().unwrap_or(&cold_dir))?;
        }
        Ok(report)
    }

    /// [`Cleanup::apply`] in an object store: leftovers are deleted, and
    /// what is set aside moves (a copy, then a delete) under
    /// `_quarantine/` in the tier's own prefix, with a `.why` object.
    fn apply_remote(&self, r: &crate::store::objects::Remote) -> Result<OpenReport> {
        let mut report = OpenReport::default();
        for (rel, proof) in &self.delete {
            let p = self.cold.name(rel);
            self.cold.remove(rel).map_err(|e| Error::io(&p, e))?;
            report.deleted.push((p, proof.clone()));
        }
        for (rel, why) in &self.quarantine {
            let to = Path::new(QUARANTINE_IN_PLACE).join(rel);
            let from = self.cold.name(rel);
            match r.set_aside(rel, &to, why) {
                Ok(()) => {}
                // Listed, yet not there under the key the client spells
                // from the listing: not the tier's file (the tier writes no
                // such key), and nothing to move. Failing here would stop
                // every write until someone deleted it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.left.push(format!(
                        "{}: judged a stray ({why}), but it cannot be moved: the object store has no object under the key it was listed as (a folder marker, say); left where it is",
                        from.display()
                    ));
                    continue;
                }
                Err(e) => return Err(Error::io(&from, e)),
            }
            report.quarantined.push(Quarantined {
                from,
                to: self.cold.name(&to),
                why: why.clone(),
            });
        }
        Ok(report)
    }
}

/// Moves `root/rel` to `base/quarantine/<root relative to base>/rel` (a
/// numbered suffix if that is taken), with a `.why` note beside it. Where
/// `root` is on another filesystem than the store (a `cold_path` on its
/// own disk), a rename cannot cross: the file goes to `root/_quarantine/`
/// instead, on its own filesystem, where a rename always works (a full
/// disk included; copying would need room).
pub fn quarantine(base: &Path, root: &Path, rel: &Path, why: &str) -> Result<Quarantined> {
    let under = root.strip_prefix(base).unwrap_or(Path::new("outside"));
    let dir_rel = Path::new(QUARANTINE)
        .join(under)
        .join(rel.parent().unwrap_or(Path::new("")));
    match move_into(base, &dir_rel, root, rel, why) {
        Err(Error::Io { source, .. }) if crosses_devices(&source) => {
            let dir_rel =
                Path::new(QUARANTINE_IN_PLACE).join(rel.parent().unwrap_or(Path::new("")));
            move_into(root, &dir_rel, root, rel, why)
        }
        other => other,
    }
}

/// Whether an I/O error says a rename would cross filesystems (EXDEV).
fn crosses_devices(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::CrossesDevices || e.raw_os_error() == Some(libc::EXDEV)
}

/// Moves `root/rel` into `top/dir_rel/`, with its note.
fn move_into(
    top: &Path,
    dir_rel: &Path,
    root: &Path,
    rel: &Path,
    why: &str,
) -> Result<Quarantined> {
    let from = root.join(rel);
    wal::create_dirs_durable(top, dir_rel)?;
    let dir = top.join(dir_rel);
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
    if let Err(e) = std::fs::rename(&from, &to) {
        let _ = std::fs::remove_file(&note);
        return Err(Error::io(&from, e));
    }
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

/// What [`Engine::scrub`](crate::Engine::scrub) found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ScrubReport {
    pub files: u64,
    pub bytes: u64,
    /// Each damaged file and what is wrong with it: its bytes were read
    /// and differ from what the catalog recorded.
    pub damaged: Vec<(PathBuf, String)>,
    /// Each file that could not be read, and the error (permissions, an
    /// I/O error): not damage, nothing is known of its bytes.
    pub unreadable: Vec<(PathBuf, String)>,
    pub wal_records: u64,
    /// What is wrong with the WAL, if anything.
    pub wal_problem: Option<String>,
    /// The catalog's pages of bars checked, and what is wrong with them
    /// (derived data: `bars --rebuild` rebuilds them from the cold files).
    pub bar_pages: u64,
    pub bars_problems: Vec<String>,
    /// Why the bars were not checked (off, or not describing the cold
    /// tier: the next writing open rebuilds them).
    pub bars_not_checked: Option<String>,
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
    /// The store's ID, as repair found it (or gave it).
    pub store_id: Option<String>,
}

/// What can still be read of the old catalog.
#[derive(Default)]
struct OldCatalog {
    readable: bool,
    mode: Option<String>,
    files: HashMap<PathBuf, ColdFile>,
    migrations: Vec<Migration>,
    store_id: Option<(String, u64)>,
    /// The WAL segments it recorded, if it recorded them.
    wal_segments: Option<Vec<u64>>,
    retained: HashMap<PathBuf, crate::store::catalog::RetainedFile>,
    /// Where it recorded its cold tier.
    cold_location: Option<String>,
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
    old.cold_location = c.meta(COLD_LOCATION).ok().flatten();
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
    match c.store_id() {
        Ok(id) => old.store_id = id,
        Err(e) => notes.push(format!("the old catalog's store ID cannot be read: {e}")),
    }
    match c.wal_segments() {
        Ok(s) => old.wal_segments = s,
        Err(e) => notes.push(format!(
            "the old catalog's WAL segments cannot be read: {e}"
        )),
    }
    match c.retained_files() {
        Ok(r) => old.retained = r,
        Err(e) => notes.push(format!(
            "the old catalog's files deleted by retention cannot be read: {e}"
        )),
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
    let segments = wal::list_segments(&config.wal_dir()).unwrap_or_default();
    let from_wal = segments.first().and_then(|seg| {
        [Mode::Simple, Mode::Trading]
            .into_iter()
            .find(|m| wal::segment_store_id(seg, &m.schema()).is_ok())
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

/// A stretch of the log without a gap: segments whose records follow each
/// other, LSNs `first..next`.
struct Run {
    segments: Vec<wal::Segment>,
    first: u64,
    next: u64,
}

/// Reads every segment of the log, each on its own, and groups them into
/// runs without a gap (a lost segment in the middle splits the log in
/// two). Also returns what the whole log says: the store IDs in its
/// headers, its idempotency keys, a damaged last record cut (only with
/// `cut_damaged_tail`) and the cut to make.
fn read_log(
    dir: &Path,
    schema: &SchemaRef,
    cut_damaged_tail: bool,
) -> Result<(Vec<Run>, Recovery)> {
    let segments = wal::list_segments(dir)?;
    let mut runs: Vec<Run> = Vec::new();
    let mut whole = Recovery::default();
    for (i, seg) in segments.iter().enumerate() {
        let options = wal::ScanOptions {
            owner: wal::Owner::Any,
            watermark: None,
            cut_damaged_tail,
        };
        let last = i + 1 == segments.len();
        let r = wal::scan_segments(std::slice::from_ref(seg), schema, &options, last, |_, _| {
            Ok(())
        })
        .map_err(|e| {
            Error::Inconsistent(format!(
                "{e}; repair rebuilds the catalog, and mends the log only where a segment is missing or its last record is damaged"
            ))
        })?;
        whole.store_ids.extend(r.store_ids.iter().cloned());
        whole.keys.extend(r.keys.iter().cloned());
        whole.records += r.records;
        if last {
            whole.cut = r.cut.clone();
            whole.torn_tail = r.torn_tail.clone();
            whole.damaged_tail = r.damaged_tail;
        }
        let next = r.next_lsn.max(seg.first_lsn);
        match runs.last_mut() {
            Some(run) if run.next == seg.first_lsn => {
                run.segments.push(seg.clone());
                run.next = next;
            }
            Some(run) if run.next > seg.first_lsn => {
                return Err(Error::Inconsistent(format!(
                    "the WAL segment {} starts at LSN {}, inside the segments before it (which end at {}): two logs mixed?; nothing was changed; move the one that does not belong out of the WAL directory",
                    seg.path.display(),
                    seg.first_lsn,
                    run.next - 1
                )))
            }
            _ => runs.push(Run {
                segments: vec![seg.clone()],
                first: seg.first_lsn,
                next,
            }),
        }
    }
    whole.first_lsn = runs.first().map(|r| r.first);
    whole.next_lsn = runs.last().map_or(1, |r| r.next);
    Ok((runs, whole))
}

/// Idempotency keys as a log carries them: LSN, records, key.
type LoggedKeys = Vec<(u64, u64, wal::KeyStamp)>;

/// The records of `segments` with LSN in `lo..=hi`, with their keys.
fn records_of(
    segments: &[wal::Segment],
    schema: &SchemaRef,
    (lo, hi): (u64, u64),
) -> Result<(Vec<RecordBatch>, LoggedKeys)> {
    let mut batches = Vec::new();
    let options = wal::ScanOptions {
        owner: wal::Owner::Any,
        watermark: None,
        cut_damaged_tail: false,
    };
    let r = wal::scan_segments(segments, schema, &options, false, |lsn, batch| {
        if (lo..=hi).contains(&lsn) {
            batches.push(batch);
        }
        Ok(())
    })?;
    let keys = r
        .keys
        .into_iter()
        .filter(|(lsn, ..)| (lo..=hi).contains(lsn))
        .collect();
    Ok((batches, keys))
}

/// Rebuilds the catalog of the store `config` describes from its cold
/// files and its WAL (see the module doc). Without `accept_loss` it refuses
/// whenever the rebuilt store would lack records: a damaged file whose
/// records are not in the WAL, LSNs that no file and no WAL segment holds,
/// a WAL segment the old catalog recorded that is gone, a damaged last WAL
/// record. Changes nothing before everything is read and decided; refuses
/// on an I/O error that is not damage (a file it may not read).
pub fn repair(config: &Config, accept_loss: bool) -> Result<RepairReport> {
    config.check()?;
    let base = config.storage.base_path.clone();
    if !base.is_dir() {
        return Err(Error::NotFound(format!("the store {}", base.display())));
    }
    if config.cold_tier.shared {
        return Err(Error::InvalidArgument(
            "repair of a store in a shared cold tier (cold_tier.shared) is not built yet: it would have to tell this store's files from the other stores' and rebuild only its own; nothing was changed".into(),
        ));
    }
    if ColdStore::of(config)?.is_remote() {
        return Err(Error::InvalidArgument(format!(
            "repair of a cold tier in an object store ({}) is not built yet: it rebuilds the catalog from a local cold directory; nothing was changed; to repair, copy the objects under the prefix to a local directory, run repair with cold_tier.url = file:///that/directory, then copy them back (the objects of a repaired table are the directory's)",
            ColdStore::of(config)?.root_name().display()
        )));
    }
    let _lock = lock_store(&base, true)?;
    let cold_dir = config.cold_dir();
    let cold = ColdStore::local(cold_dir.clone());
    let wal_dir = config.wal_dir();
    let cat_path = config.catalog_path();
    let mut report = RepairReport::default();
    let old = read_old(&cat_path, &mut report.notes);
    // Repair rebuilds from the cold tier it is given: never from one the
    // store did not use (a forgotten cold_tier.url).
    let here = cold.location_key(&base);
    let moved_whole = old
        .store_id
        .as_ref()
        .is_some_and(|(id, _)| cold_owner(&cold).ok().flatten().as_deref() == Some(id.as_str()));
    if let Some(recorded) = old
        .cold_location
        .as_ref()
        .filter(|r| **r != here && !moved_whole)
    {
        return Err(Error::Inconsistent(format!(
            "the catalog records its cold tier at {recorded}, but repair was given {here}; nothing was changed; run repair with the configuration that points at {recorded}"
        )));
    }
    let (parts, staged) = cold_files_on_disk(&cold)?;
    let mode = repair_mode(config, &old, &cold_dir, &parts)?;
    report.mode = Some(mode);
    let schema = mode.schema();

    // The WAL: which LSNs it holds, in runs without a gap.
    let (runs, mut log) = read_log(&wal_dir, &schema, accept_loss)?;
    report.wal = log.first_lsn.map(|f| (f, log.next_lsn));

    // Every cold file, read whole.
    let mut described: Vec<(PathBuf, cold::Described)> = Vec::new();
    struct Damaged {
        rel: PathBuf,
        why: String,
        range: Option<(u64, u64)>,
    }
    let mut damaged: Vec<Damaged> = Vec::new();
    let mut unreadable = Vec::new();
    for rel in &parts {
        let path = cold_dir.join(rel);
        match cold::describe(&cold, rel, &schema) {
            Ok(d) => described.push((rel.clone(), d)),
            Err(cold::DescribeError::Unreadable(e)) => {
                unreadable.push(format!("{}: {e}", path.display()))
            }
            Err(cold::DescribeError::Damaged(why)) => damaged.push(Damaged {
                rel: rel.clone(),
                why,
                range: cold::parse_path(rel).map(|(_, lo, hi)| (lo, hi)),
            }),
        }
    }
    if !unreadable.is_empty() {
        return Err(Error::Inconsistent(format!(
            "repair could not read {}: {}; that is not damage (nothing is known of the bytes), so nothing was changed; make the files readable and run repair again",
            if unreadable.len() == 1 { "a file" } else { "files" },
            unreadable.join("; ")
        )));
    }

    // Whose store this is: the old catalog says, else the WAL's headers,
    // else the cold files' descriptions; they must agree.
    let from_files: BTreeSet<String> = described
        .iter()
        .filter_map(|(_, d)| d.store_id.clone())
        .collect();
    let (store_id, legacy_below) = match (&old.store_id, log.store_ids.len()) {
        (Some((id, from)), _) => (id.clone(), *from),
        (None, 1) => {
            let id = log.store_ids.iter().next().cloned().unwrap_or_default();
            // Segments before the first that carries it were written
            // before the store had an ID.
            let from = wal::list_segments(&wal_dir)?
                .iter()
                .find(|s| wal::segment_store_id(s, &schema).ok().flatten().is_some())
                .map_or(log.next_lsn, |s| s.first_lsn);
            (id, from)
        }
        (None, 0) if from_files.len() <= 1 => match from_files.iter().next() {
            Some(id) => (id.clone(), 1),
            None => (new_store_id(), log.next_lsn),
        },
        (None, 0) => {
            return Err(Error::Inconsistent(format!(
                "the cold files were written by {} stores ({}), and neither a catalog nor the WAL says which this is; nothing was changed; move the files of the others out of the cold directory",
                from_files.len(),
                from_files.iter().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
        (None, _) => {
            return Err(Error::Inconsistent(format!(
                "the WAL segments name {} stores ({}); nothing was changed; move the segments of the others out of the WAL directory",
                log.store_ids.len(),
                log.store_ids.iter().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
    };
    if let Some(other) = log.store_ids.iter().find(|id| **id != store_id) {
        return Err(Error::Inconsistent(format!(
            "a WAL segment belongs to store {other}, this store is {store_id}; nothing was changed; move it out of the WAL directory"
        )));
    }
    if let Some(owner) = cold_owner(&cold)? {
        if owner != store_id {
            return Err(Error::Inconsistent(format!(
                "the cold directory {} belongs to store {owner} (its {COLD_OWNER} file), this store is {store_id}; nothing was changed",
                cold_dir.display()
            )));
        }
    }
    report.store_id = Some(store_id.clone());

    // Sound files: this store's, matching the old catalog's checksum, not
    // a copy of a file retention deleted, and the same rows as the WAL's
    // records where the WAL still holds them.
    let mut quarantine_list: Vec<(PathBuf, String)> = Vec::new();
    let mut good: BTreeMap<(u64, u64), Vec<ColdFile>> = BTreeMap::new();
    let mut retained_ranges: BTreeSet<(u64, u64)> = BTreeSet::new();
    let in_log = |a: u64, b: u64| runs.iter().any(|r| r.first <= a && b < r.next);
    let mut compare: Vec<(PathBuf, cold::Described)> = Vec::new();
    for (rel, d) in described {
        let f = &d.file;
        if let Some(got) = &d.store_id {
            if *got != store_id {
                quarantine_list.push((
                    rel.clone(),
                    format!("a file of another store (its description says store {got}, this store is {store_id})"),
                ));
                continue;
            }
        } else if f.lsn_hi >= legacy_below && old.store_id.is_some() {
            damaged.push(Damaged {
                rel: rel.clone(),
                why: format!("it carries no store ID, but this store has written its ID into every file since LSN {legacy_below}"),
                range: Some((f.lsn_lo, f.lsn_hi)),
            });
            continue;
        }
        if let Some(o) = old.files.get(&rel) {
            if o.crc32c != f.crc32c {
                damaged.push(Damaged {
                    rel: rel.clone(),
                    why: format!(
                        "checksum mismatch: the old catalog recorded crc32c {:#010x}, the file has {:#010x}",
                        o.crc32c, f.crc32c
                    ),
                    range: Some((f.lsn_lo, f.lsn_hi)),
                });
                continue;
            }
        } else if let Some(r) = old.retained.get(&rel) {
            if r.crc32c == f.crc32c && r.bytes == f.bytes {
                quarantine_list.push((
                    rel.clone(),
                    format!("retention deleted this file (its catalog row, LSNs {}..={}); a copy an interrupted retention left", r.lsn_lo, r.lsn_hi),
                ));
                retained_ranges.insert((f.lsn_lo, f.lsn_hi));
                continue;
            }
        }
        if in_log(f.lsn_lo, f.lsn_hi) {
            compare.push((rel, d));
        } else {
            if !d.self_described {
                report.undescribed += 1;
            }
            good.entry((f.lsn_lo, f.lsn_hi)).or_default().push(d.file);
        }
    }
    // Where the WAL still holds a file's LSNs, the file must hold the same
    // rows as those records (of its day).
    if !compare.is_empty() {
        let mut wal_digest: HashMap<(u64, u64, i64), cold::RowDigest> = HashMap::new();
        let ranges: BTreeSet<(u64, u64)> = compare
            .iter()
            .map(|(_, d)| (d.file.lsn_lo, d.file.lsn_hi))
            .collect();
        for run in &runs {
            let options = wal::ScanOptions {
                owner: wal::Owner::Any,
                watermark: None,
                cut_damaged_tail: accept_loss,
            };
            wal::scan_segments(&run.segments, &schema, &options, false, |lsn, batch| {
                for &(lo, hi) in ranges.range(..=(lsn, u64::MAX)).rev().take(1) {
                    if (lo..=hi).contains(&lsn) {
                        for (_, d) in compare
                            .iter()
                            .filter(|(_, d)| (d.file.lsn_lo, d.file.lsn_hi) == (lo, hi))
                        {
                            let day = cold::partition_day(&d.file.partition).unwrap_or(i64::MIN);
                            wal_digest
                                .entry((lo, hi, day))
                                .or_default()
                                .add(&batch, Some(day));
                        }
                    }
                }
                Ok(())
            })
            .or_else(|e| match e {
                // The damaged tail, already reported by read_log.
                Error::Corrupt { .. } if log.damaged_tail.is_some() || log.cut.is_some() => {
                    Ok(Recovery::default())
                }
                e => Err(e),
            })?;
        }
        for (rel, d) in compare {
            let f = &d.file;
            let day = cold::partition_day(&f.partition).unwrap_or(i64::MIN);
            let want = wal_digest
                .get(&(f.lsn_lo, f.lsn_hi, day))
                .copied()
                .unwrap_or_default();
            if want != d.digest {
                damaged.push(Damaged {
                    rel,
                    why: format!(
                        "its rows are not the WAL's records of LSNs {}..={} for its day ({} rows against {})",
                        f.lsn_lo, f.lsn_hi, d.digest.rows, want.rows
                    ),
                    range: Some((f.lsn_lo, f.lsn_hi)),
                });
            } else {
                if !d.self_described {
                    report.undescribed += 1;
                }
                good.entry((f.lsn_lo, f.lsn_hi)).or_default().push(d.file);
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

    // LSNs that no sound file holds: a damaged file's, and the gaps between
    // the sound files' ranges (each listed once). Retention's record wins:
    // LSNs the old catalog committed and retention removed stay removed.
    // Others come back from the WAL if it holds them and everything above
    // them (the watermark goes below them, and the sound files above go to
    // quarantine, since their records come back too); the rest are lost.
    let top = ranges.last().map_or(0, |r| r.1);
    let old_files: Vec<(u64, u64)> = old.files.values().map(|f| (f.lsn_lo, f.lsn_hi)).collect();
    let was_retained = |a: u64, b: u64| {
        retained_ranges.iter().any(|&(lo, hi)| lo <= a && b <= hi)
            || (covers(&old.migrations, a, b)
                && !old_files.iter().any(|&(lo, hi)| lo <= b && hi >= a))
    };
    struct Hole {
        lo: u64,
        hi: u64,
        file: Option<PathBuf>,
        what: String,
    }
    let mut holes: Vec<Hole> = Vec::new();
    let mut hole_files: Vec<(u64, u64)> = Vec::new();
    for Damaged { rel, why, range } in damaged {
        match range {
            Some((lo, hi)) => {
                hole_files.push((lo, hi));
                holes.push(Hole {
                    lo,
                    hi,
                    file: Some(rel),
                    what: format!("damaged ({why})"),
                })
            }
            None => quarantine_list.push((rel, format!("not a cold file of this store ({why})"))),
        }
    }
    let mut next = 1;
    for &(lo, hi) in &ranges {
        if lo > next {
            // Less what damaged files already name.
            let mut at = next;
            let mut covered: Vec<(u64, u64)> = hole_files
                .iter()
                .copied()
                .filter(|&(a, b)| a < lo && b >= next)
                .collect();
            covered.sort_unstable();
            for (a, b) in covered {
                if a > at {
                    holes.push(Hole {
                        lo: at,
                        hi: a - 1,
                        file: None,
                        what: "in no cold file".into(),
                    });
                }
                at = at.max(b + 1);
            }
            if at < lo {
                holes.push(Hole {
                    lo: at,
                    hi: lo - 1,
                    file: None,
                    what: "in no cold file".into(),
                });
            }
        }
        next = hi + 1;
    }
    holes.sort_by_key(|h| h.lo);
    let cut = holes
        .iter()
        .filter(|h| !(h.file.is_none() && was_retained(h.lo, h.hi)))
        .filter(|h| in_log(h.lo, top.max(h.hi)))
        .map(|h| h.lo.saturating_sub(1))
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
    // The committed migrations, from LSN 1 on: the sound ranges, and each
    // hole at or below the watermark as a range with no file.
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
    let gone = "found by repair in no cold file and not in the WAL; accepted as gone";
    for Hole {
        lo: a,
        hi: b,
        file,
        what,
    } in holes
    {
        if a > watermark {
            if let Some(rel) = file {
                quarantine_list.push((
                    rel,
                    format!("{what}; its LSNs {a}..={b} come back from the WAL"),
                ));
            }
            continue;
        }
        let note = if file.is_none() && was_retained(a, b) {
            "committed, files removed by retention (the old catalog's migrations)".to_string()
        } else {
            lost.push(match &file {
                Some(rel) => format!(
                    "{}: {what}, and the WAL does not hold its LSNs {a}..={b}: its records are lost",
                    rel.display()
                ),
                None => format!("LSNs {a}..={b}: {what}, and not in the WAL (deleted by retention, or lost)"),
            });
            if let Some(rel) = file {
                quarantine_list.push((rel, format!("{what}; its records are not in the WAL (lost, accepted by repair --accept-loss)")));
            }
            gone.to_string()
        };
        if !migrations.iter().any(|m| m.lsn_lo <= b && m.lsn_hi >= a) {
            migrations.push(Migration {
                lsn_lo: a,
                lsn_hi: b,
                note: Some(note),
            });
        }
    }

    // The WAL above the watermark: it must start at watermark + 1, without
    // a gap; the runs wholly at or below the watermark are in the cold
    // tier, and go to quarantine (the log must not have a gap).
    let mut segments_aside: Vec<(wal::Segment, String)> = Vec::new();
    let mut migrated_keys: Vec<crate::store::catalog::StoredKey> = Vec::new();
    let last_run = runs.len().checked_sub(1);
    let above: Vec<&Run> = runs
        .iter()
        .enumerate()
        .filter(|&(i, r)| r.next > watermark + 1 || Some(i) == last_run)
        .map(|(_, r)| r)
        .collect();
    for (i, r) in runs.iter().enumerate() {
        if r.next <= watermark + 1 && Some(i) != last_run {
            for s in &r.segments {
                segments_aside.push((
                    s.clone(),
                    format!("a WAL segment whose records (LSNs up to {}) are all in the cold tier, set aside so that the log has no gap", r.next - 1),
                ));
            }
        }
    }
    match above.first() {
        Some(first) if first.first > watermark + 1 => {
            lost.push(format!(
                "LSNs {}..={}: in no cold file and not in the WAL",
                watermark + 1,
                first.first - 1
            ));
            migrations.push(Migration {
                lsn_lo: watermark + 1,
                lsn_hi: first.first - 1,
                note: Some(gone.into()),
            });
            watermark = first.first - 1;
        }
        Some(_) => {}
        None if watermark > 0 || old.wal_segments.as_ref().is_some_and(|s| !s.is_empty()) => {
            lost.push(format!(
                "LSNs after {watermark}: the WAL holds no segment, so the records acknowledged after the cold files' cannot be known"
            ));
        }
        None => {}
    }
    // A gap between runs above the watermark: the records before it move to
    // the cold tier (a migration this repair writes), the gap is lost.
    let mut written: Vec<ColdFile> = Vec::new();
    for pair in above.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        lost.push(format!(
            "LSNs {}..={}: the WAL segment{} holding them {} missing",
            before.next,
            after.first - 1,
            if after.first - before.next > 1 {
                "s"
            } else {
                ""
            },
            if after.first - before.next > 1 {
                "are"
            } else {
                "is"
            }
        ));
        if accept_loss {
            let lo = watermark + 1;
            let hi = before.next - 1;
            if hi >= lo {
                let (batches, keys) = records_of(&before.segments, &schema, (lo, hi))?;
                let files = cold::write_migration(
                    &cold,
                    &config.cold_tier,
                    &schema,
                    &batches,
                    (lo, hi),
                    Some(&store_id),
                    // Bars are rebuilt from the cold files when the store
                    // opens after repair.
                    &mut |_| Ok(()),
                )?;
                migrations.push(Migration {
                    lsn_lo: lo,
                    lsn_hi: hi,
                    note: Some("written by repair from the WAL before a gap in it".into()),
                });
                migrated_keys.extend(keys.into_iter().map(|(lsn, records, k)| {
                    crate::store::catalog::StoredKey {
                        key: k.key,
                        fingerprint: k.fingerprint,
                        lsn,
                        records,
                        created_s: k.created_s,
                    }
                }));
                written.extend(files);
            }
            migrations.push(Migration {
                lsn_lo: before.next,
                lsn_hi: after.first - 1,
                note: Some(gone.into()),
            });
            watermark = after.first - 1;
            for s in &before.segments {
                segments_aside.push((
                    s.clone(),
                    format!("a WAL segment before a gap in the log; its records were written to the cold tier by repair (LSNs up to {hi})", hi = before.next - 1),
                ));
            }
        }
    }
    // Segments the old catalog recorded that are gone: their records are
    // lost unless the cold tier holds them.
    if let Some(recorded) = &old.wal_segments {
        let disk: BTreeSet<u64> = wal::list_segments(&wal_dir)?
            .iter()
            .map(|s| s.first_lsn)
            .collect();
        let recorded: BTreeSet<u64> = recorded.iter().copied().collect();
        for &m in recorded.difference(&disk) {
            let end = recorded.range(m + 1..).next().map(|n| n - 1);
            match end {
                Some(e) if e <= watermark => {}
                // Said above, as a gap between runs or before the first.
                Some(_) if log.first_lsn.is_some_and(|f| f > m) || runs.iter().any(|r| r.next <= m) => {}
                Some(e) => lost.push(format!(
                    "LSNs {}..={e}: the WAL segment {} is gone",
                    m.max(watermark + 1),
                    wal::segment_name(m)
                )),
                None => lost.push(format!(
                    "the WAL segment {} is gone, and it was the last one: the records from LSN {} on are lost, how many is not known",
                    wal::segment_name(m),
                    m.max(watermark + 1)
                )),
            }
        }
    }
    if let Some(lsn) = log.damaged_tail {
        lost.push(format!(
            "WAL record LSN {lsn}: whole on disk but damaged ({}); cut off, its bytes kept in quarantine",
            log.torn_tail.as_ref().map_or("", |t| t.1.as_str())
        ));
    }
    migrations.sort_by_key(|m| m.lsn_lo);
    if !lost.is_empty() && !accept_loss {
        // Nothing was written: a gap's records are moved only with
        // --accept-loss.
        return Err(Error::Inconsistent(format!(
            "repair would lose records: {}; nothing was changed; rerun with --accept-loss to set such files aside in quarantine and record those LSNs as gone",
            lost.join("; ")
        )));
    }
    for l in lost {
        report.notes.push(format!("accepted loss: {l}"));
    }
    kept.extend(written);
    // Staged files are never part of the store: the old catalog's leftovers.
    for rel in staged {
        quarantine_list.push((
            rel,
            "in the staging directory: written by a migration that never committed (or cut short by a full disk); its records are in the WAL or the cold tier".into(),
        ));
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
    let aside: BTreeSet<u64> = segments_aside.iter().map(|(s, _)| s.first_lsn).collect();
    let mut segments_kept: Vec<u64> = wal::list_segments(&wal_dir)?
        .iter()
        .map(|s| s.first_lsn)
        .filter(|f| !aside.contains(f))
        .collect();
    let new_log = segments_kept.is_empty() && watermark > 0;
    if new_log {
        segments_kept.push(watermark + 1);
    }
    let legacy_below =
        if old.store_id.is_none() && log.store_ids.is_empty() && from_files.is_empty() {
            log.next_lsn.max(watermark + 1)
        } else {
            legacy_below
        };
    {
        let mut fresh = Catalog::open(&tmp)?;
        fresh.rebuild(mode.name(), &kept, &migrations, watermark)?;
        fresh.set_store_id(&store_id, legacy_below)?;
        fresh.record_segments(&segments_kept)?;
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
        if !migrated_keys.is_empty() {
            fresh.add_keys(&migrated_keys)?;
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
    write_cold_owner(&cold, &store_id)?;
    // The cold tier's Delta table mirrors the rebuilt catalog (a crash
    // before this is settled by running repair again); a log that cannot
    // be read goes to quarantine first, and the table is made anew.
    if crate::store::table::exists(&cold)? {
        if let Err(why) = super::reconcile::log_is_readable(&cold) {
            report.quarantined.push(quarantine(
                &base,
                &cold_dir,
                Path::new(crate::store::table::LOG_DIR),
                &format!("the cold tier's Delta log could not be read ({why}); the table was made anew from the rebuilt catalog"),
            )?);
        }
    }
    report.notes.extend(super::reconcile::mirror_catalog(
        &cold, &schema, &store_id, &kept, watermark,
    )?);
    for (rel, why) in quarantine_list {
        report
            .quarantined
            .push(quarantine(&base, &cold_dir, &rel, &why)?);
    }
    for (seg, why) in segments_aside {
        let rel = PathBuf::from(seg.path.file_name().unwrap_or_default());
        report
            .quarantined
            .push(quarantine(&base, &wal_dir, &rel, &why)?);
    }
    if log.damaged_tail.is_some() {
        log.apply_cut(&base.join(QUARANTINE).join("wal"))?;
        if let Some(kept) = &log.cut_kept {
            report.notes.push(format!(
                "cut the damaged WAL tail; its bytes are in {}",
                kept.display()
            ));
        }
    }
    if new_log {
        let seg = wal::start_log(&wal_dir, &schema, watermark + 1, Some(&store_id))?;
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
