//! The write-ahead log: segments in the Arrow IPC stream format, one record
//! batch per message, a checksum per record, group commit.
//!
//! # Format
//!
//! A segment `wal-<first lsn, 20 digits>.arrows` is an Arrow IPC stream
//! (pyarrow's `ipc.open_stream` reads it): a Schema message, then one
//! RecordBatch message per acknowledged write, no end-of-stream marker (the
//! log is append-only; readers stop at the end of the file). Each message is
//! framed as IPC requires:
//!
//! ```text
//! 0xFFFFFFFF | metadata length (i32 LE) | flatbuffer Message, zero padded to 8 bytes
//!            | trailer: "SSWL" | crc32c (u32 LE) | lsn (u64 LE)
//!            | body (the batch's buffers)
//! ```
//!
//! The 16-byte trailer sits inside the metadata length, after the flatbuffer,
//! where IPC readers see padding; so the file stays a plain IPC stream while
//! each record carries its log sequence number (LSN) and a CRC-32C over
//! flatbuffer, body and LSN. The Schema message carries the segment's first
//! LSN and the store's ID in its metadata (`2 first_lsn=N store=ID`;
//! segments written before stores had IDs say `1 first_lsn=N`), and must
//! match the store's schema byte for byte.
//!
//! A record written with an idempotency key ([`KeyStamp`], see
//! [`crate::store::idempotency`]) carries it in the same padding, between the
//! flatbuffer and the trailer, and says so with the trailer magic `SSWK`:
//!
//! ```text
//! 0xFFFFFFFF | metadata length | flatbuffer Message, zero padded to 8 bytes
//!            | key (n bytes, ASCII), zero padded to 8 | created (i64 LE, unix seconds)
//!            | fingerprint (u64 LE) | n (u32 LE) | 0 (u32)
//!            | "SSWK" | crc32c | lsn
//!            | body
//! ```
//!
//! The checksum covers the key block as well (it covers everything in the
//! metadata before the trailer), so the key is durable, and checked, with
//! its batch: no crash can keep one without the other. The fingerprint is
//! XXH64 over the padded flatbuffer and the body: the same records encode
//! to the same bytes, so a retry of the same batch has the same fingerprint.
//!
//! # Durability
//!
//! [`Wal::append`] returns only after the record's bytes are written and
//! fsynced. Writers that arrive while a flush is running queue their records;
//! the next flush writes them all and fsyncs once (group commit). A failed
//! write or fsync poisons the log: the state of the file is unknown, so every
//! later append fails until the store is reopened and the log replayed.
//!
//! # Recovery
//!
//! [`scan_with`] reads the segments in order and checks every record.
//! Segments are named for their first LSN and must follow each other
//! without a gap, the first starting at or before the LSN after the
//! catalog's watermark: a missing segment, the first one included, is an
//! error. A record that is cut short (its bytes end before it does, or are zeros to the
//! end) at the end of the last segment with nothing valid after it is a
//! torn tail, a write that was never acknowledged: it is cut off, the bytes
//! kept in quarantine, and reported. A record whose bytes are all there but
//! fail a check is damage, also at the end: an error (`repair
//! --accept-loss` cuts it, keeping the bytes). Anything else that fails a
//! check is corruption, and an error names the segment, byte offset and
//! reason; nothing is skipped silently.
//!
//! What the log cannot tell by itself: that a whole segment is gone (the
//! engine records every segment in the catalog), or that the last segment
//! was cut exactly at a record boundary (that looks like a log that ended
//! there; no per-append metadata says otherwise).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow_ipc::MetadataVersion;
use arrow_schema::{Schema, SchemaRef};

use crate::error::{Error, Result};

const CONTINUATION: [u8; 4] = [0xFF; 4];
const MAGIC: &[u8; 4] = b"SSWL";
/// The trailer magic of a record that carries a key block.
const MAGIC_KEYED: &[u8; 4] = b"SSWK";
const TRAILER: usize = 16;
/// The fixed part of a key block: created, fingerprint, key length, 0.
const KEY_FIXED: usize = 24;
const WAL_VERSION_KEY: &str = "squeezed_signals.wal";

/// One segment file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub first_lsn: u64,
    pub path: PathBuf,
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    pub fsyncs: u64,
    pub records: u64,
    pub bytes: u64,
    pub segments: u64,
}

/// An idempotency key as a WAL record carries it (see [`crate::store::idempotency`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStamp {
    /// The client's key: 1 to 255 bytes of visible ASCII.
    pub key: String,
    /// XXH64 of the record's encoded batch ([`Encoded::fingerprint`]).
    pub fingerprint: u64,
    /// When the batch was first stored, in unix seconds (for retention).
    pub created_s: i64,
}

/// What recovery found.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Records read back (including those already in the cold tier).
    pub records: u64,
    /// Records handed to the caller (LSN above the watermark).
    pub replayed: u64,
    /// Bytes cut from the end of the last segment, and why.
    pub torn_tail: Option<(u64, String)>,
    /// The next LSN to assign.
    pub next_lsn: u64,
    /// The first LSN the log holds (its first segment's), if it has a
    /// segment: every LSN from there to `next_lsn - 1` is in the log.
    pub first_lsn: Option<u64>,
    /// The repair of a torn tail that [`scan`] found and did not make yet.
    pub cut: Option<Cut>,
    /// The idempotency keys of every record read (those at or below the
    /// watermark too): LSN, records in the batch, key.
    pub keys: Vec<(u64, u64, KeyStamp)>,
    /// The store IDs the segment headers name.
    pub store_ids: std::collections::BTreeSet<String>,
    /// The LSN of a damaged last record cut by `repair --accept-loss`
    /// ([`ScanOptions::cut_damaged_tail`]): lost.
    pub damaged_tail: Option<u64>,
    /// Where [`Recovery::apply_cut`] kept the bytes it cut.
    pub cut_kept: Option<PathBuf>,
}

/// How to repair a torn tail: cut the segment to `keep` bytes, or, when its
/// header itself was torn, rewrite it as `header`. The bytes cut are kept
/// in quarantine, never discarded.
#[derive(Clone, Debug)]
pub struct Cut {
    pub path: PathBuf,
    pub keep: u64,
    pub header: Option<Vec<u8>>,
    /// Why, for the note beside the kept bytes.
    pub why: String,
}

impl Recovery {
    /// Is LSN `lsn` in the log?
    pub fn holds(&self, lsn: u64) -> bool {
        self.first_lsn.is_some_and(|f| f <= lsn) && lsn < self.next_lsn
    }

    /// Makes the repair [`scan`] found (cuts the torn tail); nothing if none.
    /// The bytes cut are first written to `keep_in` (named for the segment
    /// and the offset, with a `.why` note) and fsynced: a cut never
    /// discards bytes.
    pub fn apply_cut(&mut self, keep_in: &Path) -> Result<()> {
        let Some(cut) = self.cut.take() else {
            return Ok(());
        };
        let raw = std::fs::read(&cut.path).map_err(|e| Error::io(&cut.path, e))?;
        let tail = raw.get(cut.keep as usize..).unwrap_or_default();
        if !tail.is_empty() {
            create_dir_durable(keep_in)?;
            let name = cut
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut kept = keep_in.join(format!("{name}.cut-at-{}", cut.keep));
            let mut n = 1;
            while kept.exists() {
                kept = keep_in.join(format!("{name}.cut-at-{}.{n}", cut.keep));
                n += 1;
            }
            let note = PathBuf::from(format!("{}.why", kept.display()));
            std::fs::write(
                &note,
                format!(
                    "{} from byte {} to its end ({} bytes)\n{}\n",
                    cut.path.display(),
                    cut.keep,
                    tail.len(),
                    cut.why
                ),
            )
            .map_err(|e| Error::io(&note, e))?;
            File::create(&kept)
                .and_then(|mut f| f.write_all(tail).and_then(|()| f.sync_all()))
                .map_err(|e| Error::io(&kept, e))?;
            sync_dir(keep_in)?;
            self.cut_kept = Some(kept);
        }
        match &cut.header {
            Some(header) => std::fs::write(&cut.path, header).and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .open(&cut.path)
                    .and_then(|f| f.sync_all())
            }),
            None => OpenOptions::new()
                .write(true)
                .open(&cut.path)
                .and_then(|f| f.set_len(cut.keep).and_then(|()| f.sync_all())),
        }
        .map_err(|e| Error::io(&cut.path, e))
    }
}

/// Bytes of all segments in `dir`.
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for s in list_segments(dir)? {
        total += std::fs::metadata(&s.path)
            .map_err(|e| Error::io(&s.path, e))?
            .len();
    }
    Ok(total)
}

/// The segment's name for its first LSN.
pub fn segment_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.arrows")
}

/// Segments in `dir`, sorted by first LSN.
pub fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix("wal-")
            .and_then(|s| s.strip_suffix(".arrows"))
        else {
            continue;
        };
        let first_lsn = num.parse().map_err(|_| {
            Error::corrupt(entry.path().display().to_string(), 0, "bad segment name")
        })?;
        out.push(Segment {
            first_lsn,
            path: entry.path(),
        });
    }
    out.sort_by_key(|s| s.first_lsn);
    Ok(out)
}

fn ipc_options() -> IpcWriteOptions {
    // Alignment 8 and V5 are what the IPC spec requires; both always valid.
    IpcWriteOptions::try_new(8, false, MetadataVersion::V5).unwrap_or_default()
}

/// The bytes of a segment's header: a framed Schema message whose
/// metadata says `2 first_lsn=N store=ID` (`1 first_lsn=N` for a segment
/// written before stores had IDs, or for a log that belongs to no store).
fn segment_header(schema: &Schema, first_lsn: u64, store_id: Option<&str>) -> Vec<u8> {
    let mut meta = HashMap::new();
    meta.insert(
        WAL_VERSION_KEY.to_string(),
        match store_id {
            Some(id) => format!("2 first_lsn={first_lsn} store={id}"),
            None => format!("1 first_lsn={first_lsn}"),
        },
    );
    let schema = schema.clone().with_metadata(meta);
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        &schema,
        &mut DictionaryTracker::new(false),
        &ipc_options(),
    );
    let fb = encoded.ipc_message;
    let padded = fb.len().div_ceil(8) * 8;
    let mut out = Vec::with_capacity(8 + padded);
    out.extend_from_slice(&CONTINUATION);
    out.extend_from_slice(&(padded as i32).to_le_bytes());
    out.extend_from_slice(&fb);
    out.resize(8 + padded, 0);
    out
}

/// A batch encoded for the log, not yet framed: the flatbuffer (padded to
/// 8 bytes) and the body. [`Wal::encode`] makes it outside every lock;
/// [`Wal::append_encoded`] frames and writes it.
pub struct Encoded {
    fb: Vec<u8>,
    body: Vec<u8>,
}

impl Encoded {
    fn new(batch: &RecordBatch) -> Result<Encoded> {
        let (_dicts, encoded) = IpcDataGenerator::default()
            .encode(
                batch,
                &mut DictionaryTracker::new(false),
                &ipc_options(),
                &mut Default::default(),
            )
            .map_err(|e| Error::arrow("encoding a WAL record", e))?;
        let mut fb = encoded.ipc_message;
        fb.resize(fb.len().div_ceil(8) * 8, 0);
        Ok(Encoded {
            fb,
            body: encoded.arrow_data,
        })
    }

    /// XXH64 over the padded flatbuffer and the body: equal for equal
    /// batches (the same records, columns and types), so a retried batch
    /// can be recognised by it. Computed on each call (only keyed ingests
    /// need it, so the others do not pay for hashing their bodies).
    pub fn fingerprint(&self) -> u64 {
        let mut h = twox_hash::XxHash64::with_seed(0);
        std::hash::Hasher::write(&mut h, &self.fb);
        std::hash::Hasher::write(&mut h, &self.body);
        std::hash::Hasher::finish(&h)
    }
}

/// A framed record, its LSN and checksum still to be set: `head` (the
/// continuation marker, the metadata length, the flatbuffer, the key
/// block, the trailer) and `body` are written one after the other, so the
/// body is never copied into a frame buffer.
struct Frame {
    head: Vec<u8>,
    body: Vec<u8>,
    /// Offset of the trailer in `head`.
    trailer: usize,
    /// CRC-32C of the metadata before the trailer and the body, before the
    /// LSN is appended.
    partial_crc: u32,
}

impl Frame {
    fn encode(batch: &RecordBatch) -> Result<Frame> {
        Frame::assemble(Encoded::new(batch)?, None)
    }

    /// Frames `encoded`, with `key`'s block between flatbuffer and trailer
    /// when there is one.
    fn assemble(encoded: Encoded, key: Option<&KeyStamp>) -> Result<Frame> {
        let Encoded { fb, body, .. } = encoded;
        let key_block = match key {
            None => 0,
            Some(k) => {
                if k.key.is_empty() || k.key.len() > MAX_KEY_BYTES {
                    return Err(Error::InvalidArgument(format!(
                        "an idempotency key has 1 to {MAX_KEY_BYTES} bytes, this one {}",
                        k.key.len()
                    )));
                }
                k.key.len().div_ceil(8) * 8 + KEY_FIXED
            }
        };
        let meta_len = fb.len() + key_block + TRAILER;
        let meta_len_i32 = i32::try_from(meta_len)
            .map_err(|_| Error::InvalidArgument("a WAL record's metadata is too large".into()))?;
        let mut bytes = Vec::with_capacity(8 + meta_len);
        bytes.extend_from_slice(&CONTINUATION);
        bytes.extend_from_slice(&meta_len_i32.to_le_bytes());
        bytes.extend_from_slice(&fb);
        let magic = match key {
            None => MAGIC,
            Some(k) => {
                bytes.extend_from_slice(k.key.as_bytes());
                bytes.resize(8 + fb.len() + k.key.len().div_ceil(8) * 8, 0);
                bytes.extend_from_slice(&k.created_s.to_le_bytes());
                bytes.extend_from_slice(&k.fingerprint.to_le_bytes());
                bytes.extend_from_slice(&(k.key.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&0u32.to_le_bytes());
                MAGIC_KEYED
            }
        };
        let trailer = bytes.len();
        let partial_crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[8..trailer]), &body);
        bytes.extend_from_slice(magic);
        bytes.extend_from_slice(&[0; 12]);
        Ok(Frame {
            head: bytes,
            body,
            trailer,
            partial_crc,
        })
    }

    fn seal(&mut self, lsn: u64) {
        let crc = crc32c::crc32c_append(self.partial_crc, &lsn.to_le_bytes());
        let t = self.trailer;
        self.head[t + 4..t + 8].copy_from_slice(&crc.to_le_bytes());
        self.head[t + 8..t + 16].copy_from_slice(&lsn.to_le_bytes());
    }

    fn len(&self) -> u64 {
        (self.head.len() + self.body.len()) as u64
    }
}

/// The longest idempotency key a record can carry, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// The active segment, touched only by the flushing leader.
struct Writer {
    dir: PathBuf,
    schema: SchemaRef,
    file: File,
    path: PathBuf,
    len: u64,
    /// Length of the active segment's header (a segment holding only its
    /// header never rolls, so a huge record still gets written).
    header_len: u64,
    segment_bytes: u64,
    fsync: bool,
    store_id: Option<String>,
    registry: Option<Arc<dyn SegmentRegistry>>,
    stats: WalStats,
}

/// Told of the segments the log creates and deletes, so that a segment
/// that goes missing later can be noticed (the engine records them in the
/// catalog). [`SegmentRegistry::created`] is called once the new segment's
/// header is durable and before any record is written to it: a segment
/// that holds records is always registered.
pub trait SegmentRegistry: Send + Sync {
    /// A segment starting at `first_lsn` now exists (header fsynced).
    fn created(&self, first_lsn: u64) -> Result<()>;
    /// The segments starting at these LSNs were deleted (their records are
    /// all in the cold tier).
    fn deleted(&self, first_lsns: &[u64]) -> Result<()>;
}

/// How the log is written: segment size, fsync, the store it belongs to,
/// and who is told of new and deleted segments.
#[derive(Clone, Default)]
pub struct WalOptions {
    pub segment_bytes: u64,
    pub fsync: bool,
    /// Written into every new segment's header; a scan that expects it
    /// refuses segments of other stores ([`Owner`]).
    pub store_id: Option<String>,
    pub registry: Option<Arc<dyn SegmentRegistry>>,
}

/// Creates a segment holding only its header; returns it and its length.
fn create_segment(
    dir: &Path,
    schema: &Schema,
    first_lsn: u64,
    store_id: Option<&str>,
    fsync: bool,
) -> Result<(File, PathBuf, u64)> {
    let path = dir.join(segment_name(first_lsn));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let header = segment_header(schema, first_lsn, store_id);
    file.write_all(&header).map_err(|e| Error::io(&path, e))?;
    if fsync {
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)?;
    }
    Ok((file, path, header.len() as u64))
}

impl Writer {
    fn roll(&mut self, first_lsn: u64) -> Result<()> {
        let (file, path, len) = create_segment(
            &self.dir,
            &self.schema,
            first_lsn,
            self.store_id.as_deref(),
            self.fsync,
        )?;
        if let Some(r) = &self.registry {
            r.created(first_lsn)?;
        }
        self.file = file;
        self.path = path;
        self.len = len;
        self.header_len = len;
        self.stats.segments += 1;
        if self.fsync {
            self.stats.fsyncs += 1;
        }
        Ok(())
    }

    /// Writes frames (rolling segments at frame boundaries), then one fsync.
    fn write(&mut self, frames: &[(u64, Frame)]) -> Result<()> {
        for (lsn, frame) in frames {
            if self.len > self.header_len && self.len + frame.len() > self.segment_bytes {
                if self.fsync {
                    self.file
                        .sync_data()
                        .map_err(|e| Error::io(&self.path, e))?;
                    self.stats.fsyncs += 1;
                }
                self.roll(*lsn)?;
            }
            self.file
                .write_all(&frame.head)
                .and_then(|()| self.file.write_all(&frame.body))
                .map_err(|e| Error::io(&self.path, e))?;
            self.len += frame.len();
            self.stats.records += 1;
            self.stats.bytes += frame.len();
        }
        if self.fsync {
            self.file
                .sync_data()
                .map_err(|e| Error::io(&self.path, e))?;
            self.stats.fsyncs += 1;
        }
        Ok(())
    }
}

struct Queue {
    pending: Vec<(u64, Frame)>,
    next_lsn: u64,
    /// Every LSN below this is durable.
    durable: u64,
    flushing: bool,
    poisoned: Option<String>,
}

/// The write-ahead log of one store.
pub struct Wal {
    dir: PathBuf,
    queue: Mutex<Queue>,
    flushed: Condvar,
    writer: Mutex<Writer>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these structures half
    // updated in a way later code would misread; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// fsyncs a directory so that created, renamed or deleted entries persist.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Creates `root/rel` and every directory between, and fsyncs `root` and
/// each of them, so that after a power loss the new directories are still
/// in their parents. Always all of them: a run that created a directory and
/// crashed before its fsync leaves one that exists now but might not after
/// a power loss.
pub fn create_dirs_durable(root: &Path, rel: &Path) -> Result<()> {
    let dir = root.join(rel);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut at = root.to_path_buf();
    sync_dir(&at)?;
    for part in rel.components() {
        at.push(part);
        sync_dir(&at)?;
    }
    Ok(())
}

/// Creates `dir` (and its missing parents) and fsyncs it and its parent.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    sync_dir(dir)?;
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => Ok(()),
    }
}

impl Wal {
    /// Opens the log for appending after [`replay`] returned `recovery`,
    /// belonging to no store and telling no one of its segments.
    pub fn open(
        dir: &Path,
        schema: SchemaRef,
        recovery: &Recovery,
        segment_bytes: u64,
        fsync: bool,
    ) -> Result<Wal> {
        Wal::open_with(
            dir,
            schema,
            recovery,
            WalOptions {
                segment_bytes,
                fsync,
                ..WalOptions::default()
            },
        )
    }

    /// Opens the log for appending after [`scan`] returned `recovery` (and
    /// its cut was made): appends go to the last segment, or to a new one
    /// if there is none (registered like a rolled one).
    pub fn open_with(
        dir: &Path,
        schema: SchemaRef,
        recovery: &Recovery,
        options: WalOptions,
    ) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let WalOptions {
            segment_bytes,
            fsync,
            store_id,
            registry,
        } = options;
        let segments = list_segments(dir)?;
        let (file, path, len, header_len) = match segments.last() {
            Some(last) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(|e| Error::io(&last.path, e))?;
                let len = file.metadata().map_err(|e| Error::io(&last.path, e))?.len();
                let head = read_head(&last.path, &schema)?;
                let header_len =
                    header_of(&schema, last.first_lsn, &head).map_or(len, |(h, _)| h.len() as u64);
                (file, last.path.clone(), len, header_len)
            }
            None => {
                let (file, path, len) =
                    create_segment(dir, &schema, recovery.next_lsn, store_id.as_deref(), fsync)?;
                if let Some(r) = &registry {
                    r.created(recovery.next_lsn)?;
                }
                (file, path, len, len)
            }
        };
        let writer = Writer {
            dir: dir.to_path_buf(),
            schema,
            file,
            path,
            len,
            header_len,
            segment_bytes,
            fsync,
            store_id,
            registry,
            stats: WalStats {
                segments: segments.len().max(1) as u64,
                ..WalStats::default()
            },
        };
        Ok(Wal {
            dir: dir.to_path_buf(),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                next_lsn: recovery.next_lsn,
                durable: recovery.next_lsn,
                flushing: false,
                poisoned: None,
            }),
            flushed: Condvar::new(),
            writer: Mutex::new(writer),
        })
    }

    /// Appends `batch` and returns its LSN once it is durable. Concurrent
    /// callers share fsyncs.
    pub fn append(&self, batch: &RecordBatch) -> Result<u64> {
        self.write_frame(Frame::encode(batch)?)
    }

    /// Encodes `batch` for [`Wal::append_encoded`] (outside every lock), so
    /// that its fingerprint is known before it is written.
    pub fn encode(batch: &RecordBatch) -> Result<Encoded> {
        Encoded::new(batch)
    }

    /// Appends an encoded batch, with its idempotency key when given, and
    /// returns its LSN once record and key are durable.
    pub fn append_encoded(&self, encoded: Encoded, key: Option<&KeyStamp>) -> Result<u64> {
        self.write_frame(Frame::assemble(encoded, key)?)
    }

    fn write_frame(&self, mut frame: Frame) -> Result<u64> {
        let mut q = lock(&self.queue);
        if let Some(why) = &q.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let lsn = q.next_lsn;
        q.next_lsn += 1;
        frame.seal(lsn);
        q.pending.push((lsn, frame));
        loop {
            if q.durable > lsn {
                return Ok(lsn);
            }
            if let Some(why) = &q.poisoned {
                return Err(Error::Poisoned(why.clone()));
            }
            if !q.flushing {
                // Lead: take everything queued, write it with one fsync.
                q.flushing = true;
                let frames = std::mem::take(&mut q.pending);
                let upto = q.next_lsn;
                drop(q);
                let result = lock(&self.writer).write(&frames);
                q = lock(&self.queue);
                q.flushing = false;
                match result {
                    Ok(()) => q.durable = upto,
                    Err(e) => q.poisoned = Some(e.to_string()),
                }
                self.flushed.notify_all();
            } else {
                q = self.flushed.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        lock(&self.writer).stats
    }

    /// Bytes of all segments on disk.
    pub fn disk_bytes(&self) -> Result<u64> {
        disk_bytes(&self.dir)
    }

    /// Deletes every segment whose records all have LSN <= `lsn` (they are in
    /// the cold tier), then tells the registry. The active segment is kept.
    pub fn delete_through(&self, lsn: u64) -> Result<usize> {
        let writer = lock(&self.writer);
        let segments = list_segments(&self.dir)?;
        let mut deleted = Vec::new();
        for pair in segments.windows(2) {
            let (seg, next) = (&pair[0], &pair[1]);
            if next.first_lsn <= lsn + 1 && seg.path != writer.path {
                std::fs::remove_file(&seg.path).map_err(|e| Error::io(&seg.path, e))?;
                deleted.push(seg.first_lsn);
            }
        }
        if !deleted.is_empty() {
            sync_dir(&self.dir)?;
            // A crash before this leaves a registered segment that is gone,
            // but whose records the next segment shows were all migrated:
            // recovery drops its row.
            if let Some(r) = &writer.registry {
                r.deleted(&deleted)?;
            }
        }
        Ok(deleted.len())
    }
}

/// One record read back: its LSN, its batch, its key (if it carries one),
/// and the offset where the next record starts.
type ReadRecord = (u64, RecordBatch, Option<KeyStamp>, usize);

/// Why a record could not be read, and whether it is cut short: its bytes
/// end before the record does (or are zeros to the end), as a write that a
/// crash interrupted leaves it. A record whose bytes are all there but
/// wrong is damage.
#[derive(Debug)]
struct FrameError {
    reason: String,
    cut_short: bool,
}

impl FrameError {
    fn cut_short(reason: String) -> FrameError {
        FrameError {
            reason,
            cut_short: true,
        }
    }
}

impl From<String> for FrameError {
    fn from(reason: String) -> Self {
        FrameError {
            reason,
            cut_short: false,
        }
    }
}

impl From<&str> for FrameError {
    fn from(reason: &str) -> Self {
        FrameError::from(reason.to_string())
    }
}

/// One record found by [`replay`].
fn read_frame(
    bytes: &Buffer,
    offset: usize,
    schema: &SchemaRef,
) -> std::result::Result<ReadRecord, FrameError> {
    let data = bytes.as_slice();
    let rest = data.len() - offset;
    if data[offset..].iter().all(|&b| b == 0) {
        // What a power loss leaves after a write the disk never made: the
        // file's length, but no bytes. Nothing there was acknowledged.
        return Err(FrameError::cut_short(format!(
            "the {rest} bytes to the end are all zero"
        )));
    }
    if rest < 8 {
        return Err(FrameError::cut_short(format!(
            "{rest} bytes left, a record header needs 8"
        )));
    }
    if data[offset..offset + 4] != CONTINUATION {
        return Err("no IPC continuation marker".into());
    }
    let meta_len = i32::from_le_bytes([
        data[offset + 4],
        data[offset + 5],
        data[offset + 6],
        data[offset + 7],
    ]);
    if meta_len < (TRAILER as i32) + 8 || meta_len % 8 != 0 {
        return Err(format!("metadata length {meta_len} is impossible").into());
    }
    let meta_len = meta_len as usize;
    if rest - 8 < meta_len {
        return Err(FrameError::cut_short(format!(
            "record metadata needs {meta_len} bytes, {} left",
            rest - 8
        )));
    }
    let meta = &data[offset + 8..offset + 8 + meta_len];
    let (covered, trailer) = meta.split_at(meta_len - TRAILER);
    let keyed = match &trailer[..4] {
        m if m == MAGIC => false,
        m if m == MAGIC_KEYED => true,
        _ => return Err("record trailer magic missing".into()),
    };
    let crc = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&trailer[8..16]);
    let lsn = u64::from_le_bytes(lsn_bytes);
    // Checked below, once the checksum has passed.
    let (fb, key_at) = if keyed {
        let fixed = covered
            .len()
            .checked_sub(KEY_FIXED)
            .ok_or("record key block is cut short")?;
        let f = &covered[fixed..];
        let n = u32::from_le_bytes([f[16], f[17], f[18], f[19]]) as usize;
        let start = fixed
            .checked_sub(n.div_ceil(8) * 8)
            .filter(|_| (1..=MAX_KEY_BYTES).contains(&n))
            .ok_or_else(|| format!("record key length {n} is impossible"))?;
        (&covered[..start], Some((start, n)))
    } else {
        (covered, None)
    };
    let message = arrow_ipc::root_as_message(fb)
        .map_err(|e| format!("record metadata does not parse: {e}"))?;
    let body_len = usize::try_from(message.bodyLength())
        .map_err(|_| format!("negative body length {}", message.bodyLength()))?;
    let body_start = offset + 8 + meta_len;
    if data.len() - body_start < body_len {
        return Err(FrameError::cut_short(format!(
            "record body needs {body_len} bytes, {} left",
            data.len() - body_start
        )));
    }
    let body = &data[body_start..body_start + body_len];
    // The checksum covers the padded flatbuffer region (and the key block),
    // the body, the LSN.
    let want = crc32c::crc32c_append(
        crc32c::crc32c_append(crc32c::crc32c(covered), body),
        &lsn_bytes,
    );
    if want != crc {
        return Err(
            format!("checksum mismatch (stored {crc:#010x}, computed {want:#010x})").into(),
        );
    }
    let key = match key_at {
        None => None,
        Some((start, n)) => {
            let fixed = &covered[covered.len() - KEY_FIXED..];
            let word = |at: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&fixed[at..at + 8]);
                w
            };
            let key = std::str::from_utf8(&covered[start..start + n])
                .map_err(|_| "record key is not UTF-8".to_string())?;
            Some(KeyStamp {
                key: key.to_string(),
                created_s: i64::from_le_bytes(word(0)),
                fingerprint: u64::from_le_bytes(word(8)),
            })
        }
    };
    let Some(rb) = message.header_as_record_batch() else {
        return Err("message is not a record batch".into());
    };
    let body_buf = bytes.slice_with_length(body_start, body_len);
    let batch = arrow_ipc::reader::read_record_batch(
        &body_buf,
        rb,
        schema.clone(),
        &HashMap::new(),
        None,
        &message.version(),
    )
    .map_err(|e| format!("record does not decode: {e}"))?;
    Ok((lsn, batch, key, body_start + body_len))
}

/// Which store's segments a scan accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Any segment, with or without a store ID ([`scan_all`], for repair,
    /// which learns the IDs from [`Recovery::store_ids`]).
    Any,
    /// The segments of one store: headers carry `id` (none: headers carry
    /// no ID), except segments starting below `legacy_below`, written
    /// before the store had an ID, which may carry none.
    Store {
        id: Option<String>,
        legacy_below: u64,
    },
}

impl Owner {
    /// A log that belongs to no store (the log's own tests and tools).
    pub fn none() -> Owner {
        Owner::Store {
            id: None,
            legacy_below: u64::MAX,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Owner::Any => None,
            Owner::Store { id, .. } => id.as_deref(),
        }
    }
}

/// How [`scan_with`] reads a log.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Whose segments these are.
    pub owner: Owner,
    /// The catalog's watermark: every record up to it is in the cold tier,
    /// and the log must start at or before the next LSN. `None`: the log
    /// may start anywhere (repair, which learns where from it).
    pub watermark: Option<u64>,
    /// Cut a damaged last record (whole on disk, failing its checks, with
    /// nothing valid after it) instead of refusing the log: `repair
    /// --accept-loss`. The cut bytes go to quarantine like a torn tail's.
    pub cut_damaged_tail: bool,
}

/// Reads up to the first 64 KiB of a segment (its header is far shorter).
fn read_head(path: &Path, schema: &Schema) -> Result<Vec<u8>> {
    use std::io::Read;
    let want = segment_header(schema, u64::MAX, Some(&"f".repeat(64))).len() + 64;
    let mut head = Vec::with_capacity(want);
    File::open(path)
        .and_then(|f| f.take(want as u64).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// The header `raw` starts with, if it is a whole header of this schema
/// for a segment starting at `first_lsn`: its bytes and the store ID it
/// names.
fn header_of(schema: &Schema, first_lsn: u64, raw: &[u8]) -> Option<(Vec<u8>, Option<String>)> {
    let len = i32::from_le_bytes(raw.get(4..8)?.try_into().ok()?);
    let fb = raw.get(8..8 + usize::try_from(len).ok()?)?;
    let message = arrow_ipc::root_as_message(fb).ok()?;
    let version = message
        .header_as_schema()?
        .custom_metadata()?
        .iter()
        .find(|kv| kv.key() == Some(WAL_VERSION_KEY))?
        .value()?
        .to_string();
    let id = version
        .split_whitespace()
        .find_map(|w| w.strip_prefix("store="))
        .map(str::to_string);
    let header = segment_header(schema, first_lsn, id.as_deref());
    raw.starts_with(&header).then_some((header, id))
}

/// The store ID a segment's header names (`Ok(None)`: a header without
/// one); an error if the header is not a header of `schema`.
pub fn segment_store_id(segment: &Segment, schema: &Schema) -> Result<Option<String>> {
    let head = read_head(&segment.path, schema)?;
    header_of(schema, segment.first_lsn, &head)
        .map(|(_, id)| id)
        .ok_or_else(|| {
            Error::corrupt(
                segment.path.display().to_string(),
                0,
                "segment header is not this store's schema (wrong store, or damaged)",
            )
        })
}

/// Whether a segment holds its header and nothing else, or less: a part of
/// the header `store_id`'s log (or a log of no store) would write (what a
/// crash while the segment was being created leaves).
pub fn holds_no_record(segment: &Segment, schema: &Schema, store_id: Option<&str>) -> Result<bool> {
    let len = std::fs::metadata(&segment.path)
        .map_err(|e| Error::io(&segment.path, e))?
        .len();
    let head = read_head(&segment.path, schema)?;
    if let Some((h, _)) = header_of(schema, segment.first_lsn, &head) {
        return Ok(h.len() as u64 == len);
    }
    Ok([store_id, None].into_iter().any(|id| {
        let h = segment_header(schema, segment.first_lsn, id);
        (len as usize) < h.len() && h.starts_with(&head)
    }))
}

/// Reads every segment in `dir`, calls `f(lsn, batch)` for each record with
/// LSN > `after`, cuts a torn tail off the last segment (keeping the cut
/// bytes in `dir/quarantine/`), and returns what it found: [`scan`], then
/// [`Recovery::apply_cut`]. For a log of no store (tests, tools).
pub fn replay(
    dir: &Path,
    schema: &SchemaRef,
    after: u64,
    f: impl FnMut(u64, RecordBatch) -> Result<()>,
) -> Result<Recovery> {
    let mut recovery = scan(dir, schema, after, f)?;
    recovery.apply_cut(&dir.join("quarantine"))?;
    Ok(recovery)
}

/// Reads every segment in `dir` (a log of no store, see [`Owner::none`])
/// and calls `f(lsn, batch)` for each record with LSN > `after`, changing
/// nothing: [`scan_with`] with the watermark `after`.
pub fn scan(
    dir: &Path,
    schema: &SchemaRef,
    after: u64,
    f: impl FnMut(u64, RecordBatch) -> Result<()>,
) -> Result<Recovery> {
    scan_with(
        dir,
        schema,
        &ScanOptions {
            owner: Owner::none(),
            watermark: Some(after),
            cut_damaged_tail: false,
        },
        f,
    )
}

/// Reads and checks every record in `dir` wherever the log starts, changing
/// nothing (for repair, which learns from it which LSNs the log holds).
pub fn scan_all(dir: &Path, schema: &SchemaRef) -> Result<Recovery> {
    scan_with(
        dir,
        schema,
        &ScanOptions {
            owner: Owner::Any,
            watermark: None,
            cut_damaged_tail: false,
        },
        |_, _| Ok(()),
    )
}

/// Starts an empty log at `first_lsn` in `dir` (for repair, when the log is
/// gone), its header naming `store_id`.
pub fn start_log(
    dir: &Path,
    schema: &Schema,
    first_lsn: u64,
    store_id: Option<&str>,
) -> Result<PathBuf> {
    create_dir_durable(dir)?;
    let (_, path, _) = create_segment(dir, schema, first_lsn, store_id, true)?;
    Ok(path)
}

/// Reads every segment in `dir` and calls `f(lsn, batch)` for each record
/// with LSN above the watermark, changing nothing on disk: a torn tail is
/// reported, and its repair left in [`Recovery::cut`].
///
/// Segments are named for their first LSN, and the watermark says which
/// must exist: the first segment must start at or before watermark + 1,
/// and each segment where the one before it ended. A missing segment
/// anywhere, the first included, is an error naming the LSNs that are not
/// there; so is a store past its first migration with no segment at all
/// (the engine always keeps one). Each header must be `options.owner`'s.
///
/// A record that fails its checks at the end of the last segment, with
/// nothing valid after it, is a torn tail only if it is cut short (its
/// bytes end before it does, or are zeros to the end): a write that a
/// crash interrupted, never acknowledged. A record whose bytes are all
/// there but wrong is damage: an error, unless
/// [`ScanOptions::cut_damaged_tail`].
pub fn scan_with(
    dir: &Path,
    schema: &SchemaRef,
    options: &ScanOptions,
    f: impl FnMut(u64, RecordBatch) -> Result<()>,
) -> Result<Recovery> {
    let segments = list_segments(dir)?;
    if segments.is_empty() && options.watermark.is_some_and(|w| w > 0) {
        return Err(Error::corrupt(
            dir.display().to_string(),
            0,
            format!(
                "the log has no segment, but the catalog's watermark is LSN {}: the records after it are not there (the engine always keeps a segment); nothing was changed; `07_gpu_tiered repair --accept-loss` starts a new log if they are gone for good",
                options.watermark.unwrap_or(0)
            ),
        ));
    }
    scan_segments(&segments, schema, options, true, f)
}

/// [`scan_with`] over some of a log's segments, in order. `ends_log`: the
/// last of them is the log's last segment (only there may a tail be cut).
pub fn scan_segments(
    segments: &[Segment],
    schema: &SchemaRef,
    options: &ScanOptions,
    ends_log: bool,
    mut f: impl FnMut(u64, RecordBatch) -> Result<()>,
) -> Result<Recovery> {
    let after = options.watermark.unwrap_or(0);
    let mut recovery = Recovery {
        next_lsn: after + 1,
        first_lsn: segments.first().map(|s| s.first_lsn),
        ..Recovery::default()
    };
    // Where the next segment must start.
    let mut expect_first = after + 1;
    for (i, seg) in segments.iter().enumerate() {
        let last = ends_log && i + 1 == segments.len();
        let what = seg.path.display().to_string();
        if i == 0 && options.watermark.is_none() {
            expect_first = seg.first_lsn;
        }
        if i == 0 && seg.first_lsn > expect_first {
            return Err(Error::corrupt(
                what,
                0,
                format!(
                    "the log starts at LSN {}, but the catalog's watermark is {after}: records {}..={} are missing (a deleted or lost segment, {}); nothing was changed; put it back (from a backup) and open again, or, if it is lost for good, `07_gpu_tiered repair --accept-loss` records those LSNs as lost",
                    seg.first_lsn,
                    after + 1,
                    seg.first_lsn - 1,
                    segment_name(after + 1)
                ),
            ));
        }
        if i > 0 && seg.first_lsn != expect_first {
            return Err(Error::corrupt(
                what,
                0,
                if seg.first_lsn > expect_first {
                    format!(
                        "segment starts at LSN {} but the previous one ended at {}: records {expect_first}..={} are missing (a deleted or lost segment, {}); nothing was changed; put it back (from a backup) and open again, or, if it is lost for good, `07_gpu_tiered repair --accept-loss` moves the records before the gap to the cold tier and records LSNs {expect_first}..={} as lost",
                        seg.first_lsn,
                        expect_first - 1,
                        seg.first_lsn - 1,
                        segment_name(expect_first),
                        seg.first_lsn - 1
                    )
                } else {
                    format!(
                        "segment starts at LSN {} but the previous one ended at {}: the two overlap (a segment copied in?); nothing was changed",
                        seg.first_lsn,
                        expect_first - 1
                    )
                },
            ));
        }
        let raw = std::fs::read(&seg.path).map_err(|e| Error::io(&seg.path, e))?;
        let header_len = match header_of(schema, seg.first_lsn, &raw) {
            Some((header, id)) => {
                check_owner(&options.owner, seg, id.as_deref())?;
                if let Some(id) = id {
                    recovery.store_ids.insert(id);
                }
                header.len()
            }
            None => {
                let id = options
                    .owner
                    .id()
                    .or_else(|| recovery.store_ids.iter().next().map(String::as_str));
                let header = segment_header(schema, seg.first_lsn, id);
                if last && raw.len() < header.len() && header.starts_with(&raw) {
                    // Created but its header never fully written: nothing in
                    // it was acknowledged. Rewrite it empty.
                    recovery.torn_tail = Some((
                        (header.len() - raw.len()) as u64,
                        "segment header incomplete".into(),
                    ));
                    recovery.cut = Some(Cut {
                        path: seg.path.clone(),
                        keep: 0,
                        header: Some(header),
                        why: "a segment header a crash cut short".into(),
                    });
                    recovery.next_lsn = recovery.next_lsn.max(seg.first_lsn);
                    continue;
                }
                return Err(Error::corrupt(
                    what,
                    0,
                    "segment header is not this store's schema (wrong store, or damaged)",
                ));
            }
        };
        let bytes = Buffer::from_vec(raw);
        let mut offset = header_len;
        let mut expect = seg.first_lsn;
        while offset < bytes.len() {
            match read_frame(&bytes, offset, schema) {
                Ok((lsn, batch, key, end)) => {
                    if lsn != expect {
                        return Err(Error::corrupt(
                            what,
                            offset as u64,
                            format!("record has LSN {lsn}, expected {expect}"),
                        ));
                    }
                    recovery.records += 1;
                    if let Some(k) = key {
                        recovery.keys.push((lsn, batch.num_rows() as u64, k));
                    }
                    if lsn > after {
                        recovery.replayed += 1;
                        f(lsn, batch)?;
                    }
                    expect += 1;
                    offset = end;
                }
                Err(FrameError { reason, cut_short }) => {
                    let later = valid_frame_after(&bytes, offset + 8, schema);
                    if !last || later.is_some() {
                        let extra = match later {
                            Some(at) => format!("; a valid record follows at byte {at}"),
                            None => "; the segment is not the last one".into(),
                        };
                        return Err(Error::corrupt(
                            what,
                            offset as u64,
                            format!("record LSN {expect}: {reason}{extra}; nothing was changed; the log cannot be mended in the middle: put the segment back from a backup"),
                        ));
                    }
                    if !cut_short && !options.cut_damaged_tail {
                        return Err(Error::corrupt(
                            what,
                            offset as u64,
                            format!(
                                "record LSN {expect}: {reason}; the record is whole on disk (not a write cut short by a crash), so this is damage; nothing was changed; `07_gpu_tiered repair --accept-loss` cuts the log here (the {} bytes cut go to quarantine/) and loses what they held",
                                bytes.len() - offset
                            ),
                        ));
                    }
                    let cut = (bytes.len() - offset) as u64;
                    let kind = if cut_short {
                        "torn"
                    } else {
                        "damaged, cut by repair --accept-loss"
                    };
                    recovery.cut = Some(Cut {
                        path: seg.path.clone(),
                        keep: offset as u64,
                        header: None,
                        why: format!("{kind}: record LSN {expect}: {reason}"),
                    });
                    recovery.torn_tail = Some((
                        cut,
                        format!("{what} at byte {offset}: record LSN {expect}: {reason}"),
                    ));
                    if !cut_short {
                        recovery.damaged_tail = Some(expect);
                    }
                    break;
                }
            }
        }
        expect_first = expect;
        recovery.next_lsn = recovery.next_lsn.max(expect);
    }
    Ok(recovery)
}

/// Refuses a segment whose header names another store than `owner`.
fn check_owner(owner: &Owner, seg: &Segment, found: Option<&str>) -> Result<()> {
    let Owner::Store { id, legacy_below } = owner else {
        return Ok(());
    };
    let why = match (id.as_deref(), found) {
        (Some(want), Some(got)) if want == got => return Ok(()),
        (_, None) if seg.first_lsn < *legacy_below => return Ok(()),
        (None, None) => return Ok(()),
        (Some(want), Some(got)) => format!(
            "the segment belongs to another store (its header says store {got}, this store is {want})"
        ),
        (None, Some(got)) => format!(
            "the segment belongs to another store (its header says store {got}; this store has no ID yet)"
        ),
        (Some(want), None) => format!(
            "the segment carries no store ID, but this store ({want}) has written its ID into every segment since LSN {legacy_below}"
        ),
    };
    Err(Error::corrupt(
        seg.path.display().to_string(),
        0,
        format!("{why}; nothing was changed; move it out of the WAL directory"),
    ))
}

/// The offset of the first valid record after `from`, if any (used to tell a
/// torn tail from damage in the middle of a segment).
fn valid_frame_after(bytes: &Buffer, from: usize, schema: &SchemaRef) -> Option<usize> {
    let data = bytes.as_slice();
    let mut at = from.div_ceil(8) * 8;
    while at + 8 <= data.len() {
        if data[at..at + 4] == CONTINUATION && read_frame(bytes, at, schema).is_ok() {
            return Some(at);
        }
        at += 8;
    }
    None
}

/// Appends are shared across threads through an `Arc`.
pub type SharedWal = Arc<Wal>;
