//! Reading a `.metrics` file: open reads the footer, header and directory;
//! queries read one series' index and only the blocks they need. Every
//! read is counted, so a query can say how many bytes it touched.
//!
//! Versions 1 and 2 keep a directory that is read whole at open and one
//! block list per series. Version 3 keeps a small root (read at open),
//! name pages and index pages: [`MetricsFile::open`] reads them all (the
//! query engine needs every key), [`MetricsFile::open_lazy`] reads only
//! the root, and [`MetricsFile::find`] then reads the one name page and
//! the one index page a series needs.
//!
//! Nothing read is trusted: every offset and length is checked against the
//! file size before anything is allocated or read, every part's CRC is
//! checked before it is parsed, and decoded blocks are checked against
//! their index entries.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
#[cfg(not(unix))]
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use super::index_page::{self, IndexPage, PageShape, TsSource, ValueSource};
use super::name_page;
use super::parts::{self, Parts};
use super::root::{ColumnEntry, Root};
use super::{Footer, FOOTER_LEN, HEADER_LEN, MAGIC, READABLE_VERSIONS, VERSION};
use crate::bytes::ByteReader;
use crate::codec::delta::ColumnContext;
use crate::codec::{adaptive, delta, xor};
use crate::error::{Error, Result};
use crate::model::{Dataset, Labels, Series, SeriesKey};

/// A series as the directory describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub key: SeriesKey,
    pub samples: u64,
    /// Blocks its samples are in (versions 1, 2), or pieces (version 3:
    /// one window, at most `max_samples`, about `max_bytes` of a block).
    pub blocks: u64,
    /// Bytes of blocks a full read of the series reads (version 3: shared
    /// blocks count whole; shared timestamp columns are not counted).
    pub data_len: u64,
    pub(crate) loc: SeriesLoc,
}

/// Where a series' index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeriesLoc {
    /// Versions 1 and 2: its data region and its block list.
    List {
        data_offset: u64,
        list_offset: u64,
        list_len: u64,
    },
    /// Version 3: index page `page`, `index`-th series of the page.
    Page { page: usize, index: usize },
}

/// One block, or (version 3) one piece of a series, as its index entry
/// describes it: the bytes to read and bounds on what they hold.
///
/// Version 3 shares blocks between the pieces of short series and keeps
/// the values of constant pieces in the index, so `offset` and `length`
/// name the block that holds the piece's item (or, for a piece whose values
/// repeat another's, that piece's block; for a constant piece on a shared
/// timestamp column, no block: length 0). `first`, `last`, `min` and `max`
/// are bounds: exact in versions 1 and 2; in version 3 the block's (shared
/// by its items) or, without a block, the piece's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockMeta {
    /// Position within its series.
    pub index: usize,
    pub offset: u64,
    pub length: u64,
    pub first: i64,
    pub last: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub(crate) loc: BlockLoc,
}

/// How to decode a block's samples for its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockLoc {
    /// Versions 1 and 2: the block is the series' alone.
    Whole,
    /// Version 3: piece `piece` of index page `page`.
    Piece { page: usize, piece: usize },
}

impl BlockMeta {
    /// Whether the block may hold samples in `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.last >= start && self.first <= end
    }
}

/// What one query read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Bytes read by the query: block lists (versions 1, 2), blocks, shared
    /// timestamp columns (version 3).
    pub bytes_read: u64,
    pub blocks_total: u64,
    pub blocks_read: u64,
}

/// One positioned read: `pread` where there is one (a single system call).
#[cfg(unix)]
fn read_exact_at(file: &mut File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &mut File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

enum Source {
    File(RefCell<File>),
    Bytes(Vec<u8>),
}

/// A decoded shared timestamp column.
type SharedColumn = Rc<Vec<i64>>;
/// The parts header of a shared column, `None` when it is whole.
type ColumnParts = Option<Rc<Parts>>;

/// Where the parts of a version 3 file are, from its root.
struct V3 {
    root: Root,
    /// Per index page: offset of its blocks, offset of the page, first series.
    page_data: Vec<u64>,
    page_at: Vec<u64>,
    page_series: Vec<u64>,
    /// Per window, offset of each shared column.
    column_at: Vec<Vec<u64>>,
    /// Per name page: its offset and first series.
    name_at: Vec<u64>,
    name_series: Vec<u64>,
    /// Decoded index pages, with their blocks' offsets.
    pages: RefCell<HashMap<usize, Rc<LoadedPage>>>,
    /// Decoded shared columns by (window, column).
    columns: RefCell<HashMap<(usize, usize), SharedColumn>>,
    /// Headers of shared columns in parts, by (window, column), read by
    /// range queries; `None`: the column is not in parts.
    column_parts: RefCell<HashMap<(usize, usize), ColumnParts>>,
    /// Decoded parts of shared columns by (window, column, part).
    part_ts: RefCell<HashMap<(usize, usize, usize), SharedColumn>>,
    /// Series found by [`MetricsFile::find`] on a lazily opened file.
    found: RefCell<BTreeMap<usize, SeriesInfo>>,
    /// Name pages decoded by [`MetricsFile::find`], as index pages are
    /// kept in `pages`: a file stays open for many lookups.
    names: RefCell<HashMap<usize, Rc<Vec<SeriesKey>>>>,
}

/// Where the parts of a version 3 file are (see [`MetricsFile::v3_parts`]).
pub(crate) struct V3Parts {
    pub window_ns: i64,
    pub max_samples: u64,
    /// (window, column, window start, offset, length, samples).
    pub columns: Vec<(usize, usize, i64, u64, u64, u64)>,
    /// (offset, length, first series, series).
    pub index_pages: Vec<(u64, u64, u64, u64)>,
    /// (offset, length, series).
    pub name_pages: Vec<(u64, u64, u64)>,
}

/// An index page and the file offset of each of its blocks.
struct LoadedPage {
    page: IndexPage,
    block_at: Vec<u64>,
}

/// An open `.metrics` file.
pub struct MetricsFile {
    source: Source,
    name: String,
    len: u64,
    footer: Footer,
    series: Vec<SeriesInfo>,
    v3: Option<V3>,
    open_bytes: u64,
    bytes_read: Cell<u64>,
}

impl MetricsFile {
    /// Opens the file at `path` and reads its directory: every series' key
    /// and index (version 3: the root, every name page and index page).
    ///
    /// Errors: a missing file, I/O errors, and a file that is not a
    /// readable `.metrics` file ([`Error::Truncated`], [`Error::Corrupt`]
    /// naming the part and byte offset).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_file(path, false)
    }

    /// Opens the file at `path` reading only what every query needs: the
    /// footer, the header and (version 3) the root. [`MetricsFile::series`]
    /// stays empty; [`MetricsFile::find`] looks one series up. A version 1
    /// or 2 file has no smaller part to read: its directory is read whole.
    pub fn open_lazy(path: &Path) -> Result<Self> {
        Self::open_file(path, true)
    }

    fn open_file(path: &Path, lazy: bool) -> Result<Self> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingInput {
                    path: path.to_path_buf(),
                    hint: "run `cargo run --release --bin 04_custom_binary` first".into(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Self::from_source(
            Source::File(RefCell::new(file)),
            len,
            path.display().to_string(),
            lazy,
        )
    }

    /// Opens a file held in memory (for tests and tools), as [`MetricsFile::open`].
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Self> {
        let len = bytes.len() as u64;
        Self::from_source(Source::Bytes(bytes), len, name.to_string(), false)
    }

    /// Opens a file held in memory as [`MetricsFile::open_lazy`] does.
    pub fn from_bytes_lazy(bytes: Vec<u8>, name: &str) -> Result<Self> {
        let len = bytes.len() as u64;
        Self::from_source(Source::Bytes(bytes), len, name.to_string(), true)
    }

    fn from_source(source: Source, len: u64, name: String, lazy: bool) -> Result<Self> {
        let mut f = MetricsFile {
            source,
            name,
            len,
            footer: Footer {
                directory_offset: 0,
                directory_len: 0,
                directory_crc: 0,
                series_count: 0,
                block_count: 0,
                version: 0,
            },
            series: Vec::new(),
            v3: None,
            open_bytes: 0,
            bytes_read: Cell::new(0),
        };
        f.load(lazy)?;
        f.open_bytes = f.bytes_read.get();
        f.bytes_read.set(0);
        Ok(f)
    }

    fn corrupt(&self, what: &str, offset: u64, reason: impl Into<String>) -> Error {
        Error::corrupt(format!("{}: {what}", self.name), offset, reason)
    }

    /// Reads `len` bytes at `offset`, refusing ranges outside the file.
    pub(crate) fn read_at(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len);
        let Some(_) = end else {
            return Err(Error::truncated(
                format!("{}: {what}", self.name),
                offset,
                format!(
                    "{len} bytes at byte {offset} run past the end of the {}-byte file",
                    self.len
                ),
            ));
        };
        self.bytes_read.set(self.bytes_read.get() + len);
        match &self.source {
            Source::Bytes(b) => Ok(b[offset as usize..(offset + len) as usize].to_vec()),
            Source::File(file) => {
                let mut buf = vec![0u8; len as usize];
                read_exact_at(&mut file.borrow_mut(), &mut buf, offset)
                    .map_err(|e| Error::io(&self.name, e))?;
                Ok(buf)
            }
        }
    }

    fn load(&mut self, lazy: bool) -> Result<()> {
        if self.len < HEADER_LEN + FOOTER_LEN {
            return Err(Error::truncated(
                &self.name,
                self.len,
                format!(
                    "a .metrics file has at least {} bytes",
                    HEADER_LEN + FOOTER_LEN
                ),
            ));
        }
        // Footer first: it says where everything is.
        let at = self.len - FOOTER_LEN;
        let raw = self.read_at(at, FOOTER_LEN, "footer")?;
        let mut r = ByteReader::at_offset(&raw, at, "footer");
        let footer = Footer {
            directory_offset: r.u64_le()?,
            directory_len: r.u64_le()?,
            directory_crc: r.u32_le()?,
            series_count: r.u32_le()?,
            block_count: r.u32_le()?,
            version: r.u32_le()?,
        };
        let magic = r.bytes(8)?;
        if magic != MAGIC {
            return Err(self.corrupt(
                "footer",
                at + 32,
                "no METRICS! magic at the end: not a .metrics file, or truncated",
            ));
        }
        if !READABLE_VERSIONS.contains(&footer.version) {
            return Err(self.corrupt(
                "footer",
                at + 28,
                format!(
                    "unsupported format version {}, this build reads versions {READABLE_VERSIONS:?} and writes {VERSION}",
                    footer.version
                ),
            ));
        }
        // Header.
        let raw = self.read_at(0, HEADER_LEN, "header")?;
        let mut r = ByteReader::new(&raw, "header");
        r.expect_magic(MAGIC).map_err(|e| e.within(&self.name))?;
        let (version, flags) = (r.u32_le()?, r.u32_le()?);
        if version != footer.version || flags != 0 {
            return Err(self.corrupt(
                "header",
                8,
                format!(
                    "version {version} flags {flags}, expected {} (as in the footer) and 0",
                    footer.version
                ),
            ));
        }
        // Directory.
        let dir_end = footer.directory_offset.checked_add(footer.directory_len);
        if footer.directory_offset < HEADER_LEN || dir_end != Some(at) {
            return Err(self.corrupt(
                "footer",
                at,
                format!(
                    "directory at {} length {} does not end where the footer starts ({at})",
                    footer.directory_offset, footer.directory_len
                ),
            ));
        }
        let part = if footer.version >= 3 {
            "root"
        } else {
            "directory"
        };
        let dir = self.read_at(footer.directory_offset, footer.directory_len, part)?;
        let crc = crc32c::crc32c(&dir);
        if crc != footer.directory_crc {
            return Err(self.corrupt(
                part,
                footer.directory_offset,
                format!(
                    "checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                    footer.directory_crc
                ),
            ));
        }
        self.footer = footer;
        if footer.version >= 3 {
            self.v3 = Some(self.parse_root(&dir, &footer)?);
            if !lazy {
                self.series = self.load_all_series()?;
            }
        } else {
            self.series = self.parse_directory(&dir, &footer)?;
        }
        Ok(())
    }

    /// Parses the version 3 root and checks that the parts it lists tile
    /// the file exactly and agree with the footer.
    fn parse_root(&self, bytes: &[u8], footer: &Footer) -> Result<V3> {
        let what = format!("{}: root", self.name);
        let root = Root::decode(bytes, footer.directory_offset, &what)?;
        let bad = |reason: String| self.corrupt("root", footer.directory_offset, reason);
        let mut at = HEADER_LEN;
        let add = |at: u64, len: u64, part: &str| {
            at.checked_add(len)
                .filter(|&e| e <= footer.directory_offset)
                .ok_or_else(|| bad(format!("{part} runs past the root")))
        };
        let (mut page_data, mut page_series) = (Vec::new(), Vec::new());
        let mut series = 0u64;
        for (i, p) in root.index_pages.iter().enumerate() {
            page_data.push(at);
            page_series.push(series);
            at = add(at, p.data_len, &format!("the blocks of index page {i}"))?;
            series = series.saturating_add(p.series);
        }
        let mut column_at = Vec::with_capacity(root.windows.len());
        for (w, win) in root.windows.iter().enumerate() {
            let mut offsets = Vec::with_capacity(win.columns.len());
            for c in &win.columns {
                offsets.push(at);
                at = add(at, c.length, &format!("shared column of window {w}"))?;
            }
            column_at.push(offsets);
        }
        let mut page_at = Vec::with_capacity(root.index_pages.len());
        for (i, p) in root.index_pages.iter().enumerate() {
            page_at.push(at);
            at = add(at, p.length, &format!("index page {i}"))?;
        }
        let (mut name_at, mut name_series) = (Vec::new(), Vec::new());
        let mut named = 0u64;
        for (i, p) in root.name_pages.iter().enumerate() {
            name_at.push(at);
            name_series.push(named);
            at = add(at, p.length, &format!("name page {i}"))?;
            named = named.saturating_add(p.series);
        }
        if at != footer.directory_offset {
            return Err(bad(format!(
                "the parts end at byte {at}, the root starts at {}",
                footer.directory_offset
            )));
        }
        if series != footer.series_count as u64 || named != series {
            return Err(bad(format!(
                "index pages hold {series} series, name pages {named}, the footer says {}",
                footer.series_count
            )));
        }
        Ok(V3 {
            root,
            page_data,
            page_at,
            page_series,
            column_at,
            name_at,
            name_series,
            pages: RefCell::new(HashMap::new()),
            columns: RefCell::new(HashMap::new()),
            column_parts: RefCell::new(HashMap::new()),
            part_ts: RefCell::new(HashMap::new()),
            found: RefCell::new(BTreeMap::new()),
            names: RefCell::new(HashMap::new()),
        })
    }

    fn v3(&self) -> Result<&V3> {
        self.v3
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument(format!("{} is not a version 3 file", self.name)))
    }

    /// Reads a part and checks the CRC32C in its last 4 bytes; returns the
    /// part without its CRC.
    fn read_checked(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        if len < 4 {
            return Err(self.corrupt(what, offset, format!("{len} bytes cannot hold a CRC32C")));
        }
        let mut raw = self.read_at(offset, len, what)?;
        let body_len = super::crc_body(&raw)
            .map_err(|e| self.corrupt(what, offset, e))?
            .len();
        raw.truncate(body_len);
        Ok(raw)
    }

    /// The keys of name page `p`.
    fn name_page(&self, p: usize) -> Result<Vec<SeriesKey>> {
        let v3 = self.v3()?;
        let entry = &v3.root.name_pages[p];
        let what = format!("name page {p}");
        let body = self.read_checked(v3.name_at[p], entry.length, &what)?;
        let ctx = format!("{}: {what}", self.name);
        let keys = name_page::decode(&body, v3.name_at[p], &ctx, entry.series as usize)?;
        // The root's separators must bracket the page: a lookup relies on it.
        let next = v3
            .root
            .name_pages
            .get(p + 1)
            .and_then(|n| n.first_key.as_ref());
        let starts_ok = entry
            .first_key
            .as_ref()
            .is_none_or(|k| keys.first() >= Some(k));
        let ends_ok = next.is_none_or(|k| keys.last() < Some(k));
        if !starts_ok || !ends_ok {
            return Err(self.corrupt(
                &what,
                v3.name_at[p],
                "its keys fall outside the range the root gives it",
            ));
        }
        Ok(keys)
    }

    /// Index page `p`, read and decoded once.
    fn page(&self, p: usize) -> Result<Rc<LoadedPage>> {
        let v3 = self.v3()?;
        if let Some(page) = v3.pages.borrow().get(&p) {
            return Ok(page.clone());
        }
        let entry =
            v3.root.index_pages.get(p).ok_or_else(|| {
                Error::InvalidArgument(format!("no index page {p} in {}", self.name))
            })?;
        let what = format!("index page {p}");
        let body = self.read_checked(v3.page_at[p], entry.length, &what)?;
        let ctx = format!("{}: {what}", self.name);
        let windows = &v3.root.windows;
        let page = index_page::decode(
            &body,
            v3.page_at[p],
            &ctx,
            PageShape {
                series: entry.series as usize,
                windows: windows.len(),
                quantum: super::root::quantum(v3.root.window_ns),
            },
            |w, c| {
                windows
                    .get(w)
                    .and_then(|win| win.columns.get(c))
                    .map(|col| col.samples as usize)
            },
            |w| v3.root.window_start(w as usize),
        )?;
        let mut block_at = Vec::with_capacity(page.blocks.len());
        let mut at = v3.page_data[p];
        for b in &page.blocks {
            block_at.push(at);
            at = at.saturating_add(b.length);
        }
        if at - v3.page_data[p] != entry.data_len {
            return Err(self.corrupt(
                &what,
                v3.page_at[p],
                format!(
                    "its blocks hold {} bytes, the root says {}",
                    at - v3.page_data[p],
                    entry.data_len
                ),
            ));
        }
        let loaded = Rc::new(LoadedPage { page, block_at });
        v3.pages.borrow_mut().insert(p, loaded.clone());
        Ok(loaded)
    }

    /// The series info of `index`-th series of index page `p`.
    fn page_series_info(&self, p: usize, index: usize, key: SeriesKey) -> Result<SeriesInfo> {
        let lp = self.page(p)?;
        let range = lp.page.series[index].clone();
        let pieces = &lp.page.pieces[range.clone()];
        let mut blocks: Vec<usize> = pieces
            .iter()
            .filter_map(|x| match (x.block, x.values) {
                (Some(b), _) => Some(b as usize),
                (None, ValueSource::Ref(t)) => lp.page.pieces[t as usize].block.map(|b| b as usize),
                _ => None,
            })
            .collect();
        blocks.dedup();
        blocks.sort_unstable();
        blocks.dedup();
        Ok(SeriesInfo {
            key,
            samples: pieces.iter().map(|x| x.n as u64).sum(),
            blocks: pieces.len() as u64,
            data_len: blocks.iter().map(|&b| lp.page.blocks[b].length).sum(),
            loc: SeriesLoc::Page { page: p, index },
        })
    }

    /// Every series of a version 3 file: every name page and index page.
    fn load_all_series(&self) -> Result<Vec<SeriesInfo>> {
        let v3 = self.v3()?;
        let mut keys: Vec<SeriesKey> = Vec::new();
        for p in 0..v3.root.name_pages.len() {
            let page = self.name_page(p)?;
            if let (Some(last), Some(first)) = (keys.last(), page.first()) {
                if last >= first {
                    return Err(self.corrupt(
                        &format!("name page {p}"),
                        v3.name_at[p],
                        "its first key does not follow the previous page's last",
                    ));
                }
            }
            keys.extend(page);
        }
        let mut keys = keys.into_iter();
        let mut out = Vec::with_capacity(keys.len());
        let mut blocks = 0u64;
        for (p, entry) in v3.root.index_pages.iter().enumerate() {
            for index in 0..entry.series as usize {
                let key = keys.next().unwrap_or_default();
                out.push(self.page_series_info(p, index, key)?);
            }
            blocks += self.page(p)?.page.blocks.len() as u64;
        }
        if blocks != self.footer.block_count as u64 {
            return Err(self.corrupt(
                "footer",
                self.len - FOOTER_LEN + 24,
                format!(
                    "the index pages hold {blocks} blocks, the footer says {}",
                    self.footer.block_count
                ),
            ));
        }
        Ok(out)
    }

    /// Looks a series up by its key; returns its id. On a lazily opened
    /// version 3 file this reads one name page and one index page; else it
    /// searches the directory read at open.
    pub fn find(&self, key: &SeriesKey) -> Result<Option<usize>> {
        let Some(v3) = self.v3.as_ref().filter(|_| self.series.is_empty()) else {
            return Ok(self.series.binary_search_by(|s| s.key.cmp(key)).ok());
        };
        let p = v3
            .root
            .name_pages
            .partition_point(|n| n.first_key.as_ref().is_none_or(|k| k <= key));
        if p == 0 {
            return Ok(None);
        }
        let p = p - 1;
        let cached = v3.names.borrow().get(&p).cloned();
        let keys = match cached {
            Some(keys) => keys,
            None => {
                let keys = Rc::new(self.name_page(p)?);
                v3.names.borrow_mut().insert(p, keys.clone());
                keys
            }
        };
        let Ok(i) = keys.binary_search(key) else {
            return Ok(None);
        };
        let id = (v3.name_series[p] + i as u64) as usize;
        if v3.found.borrow().contains_key(&id) {
            return Ok(Some(id));
        }
        let page = v3
            .page_series
            .partition_point(|&first| first as usize <= id)
            - 1;
        let index = id - v3.page_series[page] as usize;
        let info = self.page_series_info(page, index, key.clone())?;
        v3.found.borrow_mut().insert(id, info);
        Ok(Some(id))
    }

    /// Where the parts of a version 3 file are, for `inspect`.
    pub(crate) fn v3_parts(&self) -> Option<V3Parts> {
        let v3 = self.v3.as_ref()?;
        let r = &v3.root;
        Some(V3Parts {
            window_ns: r.window_ns,
            max_samples: r.max_samples,
            columns: r
                .windows
                .iter()
                .enumerate()
                .flat_map(|(w, win)| {
                    win.columns.iter().enumerate().map(move |(c, col)| {
                        (
                            w,
                            c,
                            r.window_start(w),
                            v3.column_at[w][c],
                            col.length,
                            col.samples,
                        )
                    })
                })
                .collect(),
            index_pages: r
                .index_pages
                .iter()
                .enumerate()
                .map(|(p, e)| (v3.page_at[p], e.length, v3.page_series[p], e.series))
                .collect(),
            name_pages: r
                .name_pages
                .iter()
                .enumerate()
                .map(|(p, e)| (v3.name_at[p], e.length, e.series))
                .collect(),
        })
    }

    /// Reads and decodes shared column `column` of window `window` (for
    /// `inspect`); returns its sample count.
    pub(crate) fn check_shared_column(&self, window: usize, column: usize) -> Result<usize> {
        Ok(self.shared_column(window, column)?.len())
    }

    /// What a version 3 piece holds and where, in words (for `inspect`).
    pub(crate) fn describe_piece(&self, meta: &BlockMeta) -> Option<String> {
        let BlockLoc::Piece { page, piece } = meta.loc else {
            return None;
        };
        let lp = self.page(page).ok()?;
        let p = lp.page.pieces.get(piece)?;
        let ts = match p.ts {
            TsSource::Inline => "inline timestamps".to_string(),
            TsSource::Shared { column, start } => format!(
                "timestamps {start}..{} of shared column {column} of window {}",
                start as u64 + p.n as u64,
                p.window
            ),
        };
        let values = match p.values {
            ValueSource::Stored => "stored values".to_string(),
            ValueSource::Constant(v) => format!("constant {v}"),
            ValueSource::Ref(t) => {
                let series = lp
                    .page
                    .series
                    .iter()
                    .position(|r| r.contains(&(t as usize)))?;
                format!(
                    "the values of piece {} of series {}",
                    t as usize - lp.page.series[series].start,
                    self.v3.as_ref()?.page_series[page] as usize + series
                )
            }
        };
        Some(format!("n={}, {ts}, {values}", p.n))
    }

    /// Forgets the shared timestamp columns decoded so far, so that the
    /// next query reads (and counts) the ones it needs: the query engine
    /// calls it before each query. Index pages read at open are kept.
    pub fn forget_columns(&self) {
        if let Some(v3) = &self.v3 {
            v3.columns.borrow_mut().clear();
            v3.column_parts.borrow_mut().clear();
            v3.part_ts.borrow_mut().clear();
        }
    }

    /// The root's entry of shared column `column` of window `window`, and
    /// its offset.
    fn column_entry(&self, window: usize, column: usize) -> Result<(ColumnEntry, u64)> {
        let v3 = self.v3()?;
        let entry = v3
            .root
            .windows
            .get(window)
            .and_then(|w| w.columns.get(column))
            .ok_or_else(|| {
                self.corrupt(
                    "root",
                    self.footer.directory_offset,
                    format!("no shared column {column} in window {window}"),
                )
            })?;
        Ok((*entry, v3.column_at[window][column]))
    }

    /// Samples of shared column `column` of window `window`, read whole
    /// (one read) and decoded once.
    fn shared_column(&self, window: usize, column: usize) -> Result<Rc<Vec<i64>>> {
        let v3 = self.v3()?;
        if let Some(c) = v3.columns.borrow().get(&(window, column)) {
            return Ok(c.clone());
        }
        let (entry, at) = self.column_entry(window, column)?;
        let what = format!("shared timestamp column {column} of window {window}");
        let raw = self.read_at(at, entry.length, &what)?;
        let ts = Rc::new(self.decode_column(window, &entry, at, &raw, &what)?);
        v3.columns.borrow_mut().insert((window, column), ts.clone());
        Ok(ts)
    }

    /// Decodes a whole shared column from its bytes `raw` (CRCs included),
    /// whole or in parts.
    fn decode_column(
        &self,
        window: usize,
        entry: &ColumnEntry,
        at: u64,
        raw: &[u8],
        what: &str,
    ) -> Result<Vec<i64>> {
        let v3 = self.v3()?;
        let ctx = v3.root.window_context(window);
        let samples = entry.samples as usize;
        let mut ts = Vec::with_capacity(samples);
        let what = format!("{}: {what}", self.name);
        if parts::header_len(raw, &what)?.is_some() {
            let q = super::root::quantum(v3.root.window_ns);
            let max_quantum = (v3.root.window_ns / q) as u64 + 1;
            let p = parts::parse(raw, samples, entry.length, max_quantum, at, &what)?;
            let col = parts::Column {
                samples,
                ctx,
                q,
                last: entry.last,
            };
            for (k, &(off, len, _)) in p.parts.iter().enumerate() {
                let part = raw.get(off as usize..(off + len) as usize).ok_or_else(|| {
                    Error::corrupt(&what, at + off, format!("part {k} runs past the column"))
                })?;
                parts::decode_part(&p, &col, k, part, at + off, &what, &mut ts)?;
            }
            return Ok(ts);
        }
        let body = super::crc_body(raw).map_err(|e| Error::corrupt(&what, at, e))?;
        delta::decode_in_context(body, samples, ctx, &mut ts)
            .map_err(|e| e.within(format!("{what} at byte {at}")))?;
        Ok(ts)
    }

    /// Timestamps `start .. start + n` of shared column `column` of window
    /// `window`, or, when the column is in parts and `focus` is given,
    /// only those of the parts whose bounds meet `focus` (a query reads a
    /// part of a large column, not all of it). Returns the position of the
    /// first timestamp returned, counted from `start`.
    fn shared_timestamps(
        &self,
        window: usize,
        column: usize,
        start: usize,
        n: usize,
        focus: Option<(i64, i64)>,
    ) -> Result<(usize, Vec<i64>)> {
        let v3 = self.v3()?;
        let whole = |ts: &[i64]| -> Result<(usize, Vec<i64>)> {
            let slice = ts.get(start..start + n).ok_or_else(|| {
                self.corrupt(
                    &format!("shared timestamp column {column} of window {window}"),
                    v3.column_at[window][column],
                    format!(
                        "samples {start}..{} of a {}-sample column",
                        start + n,
                        ts.len()
                    ),
                )
            })?;
            Ok((0, slice.to_vec()))
        };
        let cached = v3.columns.borrow().get(&(window, column)).cloned();
        if let Some(ts) = cached {
            return whole(&ts);
        }
        let Some((lo, hi)) = focus else {
            return whole(&self.shared_column(window, column)?);
        };
        let Some(p) = self.column_parts(window, column)? else {
            return whole(&self.shared_column(window, column)?);
        };
        let (entry, at) = self.column_entry(window, column)?;
        let samples = entry.samples as usize;
        if start.saturating_add(n) > samples {
            return Err(self.corrupt(
                &format!("shared timestamp column {column} of window {window}"),
                at,
                format!(
                    "samples {start}..{} of a {samples}-sample column",
                    start + n
                ),
            ));
        }
        let start_window = v3.root.window_start(window);
        let q = super::root::quantum(v3.root.window_ns);
        // Parts holding samples start .. start + n whose bounds meet the focus.
        let per = p.per_part.max(1);
        let wanted: Vec<usize> = (start / per..(start + n).div_ceil(per).min(p.parts.len()))
            .filter(|&k| {
                let (a, b) = p.bounds(k, start_window, q, entry.last);
                a <= hi && b >= lo
            })
            .collect();
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
            return Ok((0, Vec::new()));
        };
        let what = format!("shared timestamp column {column} of window {window}");
        let missing: Vec<usize> = (first..=last)
            .filter(|k| !v3.part_ts.borrow().contains_key(&(window, column, *k)))
            .collect();
        if let (Some(&a), Some(&b)) = (missing.first(), missing.last()) {
            // One read for the run of parts not decoded yet.
            let from = p.parts[a].0;
            let to = p.parts[b].0 + p.parts[b].1;
            let raw = self.read_at(at + from, to - from, &what)?;
            let full = format!("{}: {what}", self.name);
            let col = parts::Column {
                samples,
                ctx: v3.root.window_context(window),
                q,
                last: entry.last,
            };
            for k in a..=b {
                let (off, len, _) = p.parts[k];
                let part = &raw[(off - from) as usize..(off - from + len) as usize];
                let mut ts = Vec::with_capacity(p.samples(k, samples));
                parts::decode_part(&p, &col, k, part, at + off, &full, &mut ts)?;
                v3.part_ts
                    .borrow_mut()
                    .insert((window, column, k), Rc::new(ts));
            }
        }
        let (from, to) = ((first * per).max(start), ((last + 1) * per).min(start + n));
        let mut out = Vec::with_capacity(to.saturating_sub(from));
        for k in first..=last {
            let ts = v3
                .part_ts
                .borrow()
                .get(&(window, column, k))
                .cloned()
                .unwrap_or_default();
            let base = k * per;
            let a = from.max(base) - base;
            let b = to.min(base + ts.len()).saturating_sub(base);
            out.extend_from_slice(ts.get(a..b.max(a)).unwrap_or(&[]));
        }
        if out.len() != to.saturating_sub(from) {
            return Err(self.corrupt(
                &what,
                at,
                format!("parts give {} of samples {from}..{to}", out.len()),
            ));
        }
        Ok((from - start, out))
    }

    /// The parts header of a shared column (read once: its first bytes,
    /// then the rest of the header), or `None` when the column is whole,
    /// in which case it is read and decoded whole here.
    fn column_parts(&self, window: usize, column: usize) -> Result<ColumnParts> {
        let v3 = self.v3()?;
        if let Some(p) = v3.column_parts.borrow().get(&(window, column)) {
            return Ok(p.clone());
        }
        let (entry, at) = self.column_entry(window, column)?;
        let what = format!("shared timestamp column {column} of window {window}");
        let full = format!("{}: {what}", self.name);
        let mut head = self.read_at(at, entry.length.min(4), &what)?;
        let found = match parts::header_len(&head, &full)? {
            Some(h) => {
                if h > entry.length || h < head.len() as u64 {
                    return Err(Error::corrupt(
                        &full,
                        at,
                        format!("a header of {h} bytes in a {}-byte column", entry.length),
                    ));
                }
                let rest = self.read_at(at + head.len() as u64, h - head.len() as u64, &what)?;
                head.extend_from_slice(&rest);
                let q = super::root::quantum(v3.root.window_ns);
                let max_quantum = (v3.root.window_ns / q) as u64 + 1;
                Some(Rc::new(parts::parse(
                    &head,
                    entry.samples as usize,
                    entry.length,
                    max_quantum,
                    at,
                    &full,
                )?))
            }
            None => {
                // Whole: read the rest and keep the decoded column.
                let rest = self.read_at(
                    at + head.len() as u64,
                    entry.length - head.len() as u64,
                    &what,
                )?;
                head.extend_from_slice(&rest);
                let ts = Rc::new(self.decode_column(window, &entry, at, &head, &what)?);
                v3.columns.borrow_mut().insert((window, column), ts);
                None
            }
        };
        v3.column_parts
            .borrow_mut()
            .insert((window, column), found.clone());
        Ok(found)
    }

    fn parse_directory(&self, dir: &[u8], footer: &Footer) -> Result<Vec<SeriesInfo>> {
        let what = format!("{}: directory", self.name);
        let mut r = ByteReader::at_offset(dir, footer.directory_offset, &what);
        let n_symbols = r.count(1, "symbol")?;
        let mut symbols = Vec::with_capacity(n_symbols);
        for _ in 0..n_symbols {
            symbols.push(r.string()?.to_string());
        }
        // The smallest entry the writer makes is 6 bytes: metric symbol,
        // label count (0), samples, blocks, data length and list length,
        // one varint byte each.
        let n_series = r.count(6, "series")?;
        if n_series as u64 != footer.series_count as u64 {
            return Err(r.corrupt(format!(
                "{n_series} series, footer says {}",
                footer.series_count
            )));
        }
        let symbol = |r: &mut ByteReader<'_>| -> Result<String> {
            let id = r.varint()?;
            symbols.get(id as usize).cloned().ok_or_else(|| {
                r.corrupt(format!(
                    "symbol {id} out of range ({} symbols)",
                    symbols.len()
                ))
            })
        };
        let mut out: Vec<SeriesInfo> = Vec::with_capacity(n_series);
        let mut blocks_total = 0u64;
        let (mut data_at, mut lengths) = (HEADER_LEN, Vec::with_capacity(n_series));
        for i in 0..n_series {
            let metric = symbol(&mut r)?;
            let n_labels = r.count(2, "label")?;
            let mut labels = Labels::new();
            let mut last: Option<String> = None;
            for _ in 0..n_labels {
                let k = symbol(&mut r)?;
                let v = symbol(&mut r)?;
                if last.as_ref().is_some_and(|l| *l >= k) {
                    return Err(
                        r.corrupt(format!("series {i}: label {k:?} out of order or repeated"))
                    );
                }
                last = Some(k.clone());
                labels.insert(k, v);
            }
            let key = SeriesKey::new(metric, labels);
            if out.last().is_some_and(|p| p.key >= key) {
                return Err(r.corrupt(format!("series {i} ({key}) out of order or repeated")));
            }
            let (samples, blocks, data_len, list_len) =
                (r.varint()?, r.varint()?, r.varint()?, r.varint()?);
            if blocks > samples || (samples > 0) != (blocks > 0) || list_len < 4 {
                return Err(r.corrupt(format!("series {i} ({key}): {blocks} blocks for {samples} samples, list of {list_len} bytes")));
            }
            let data_offset = data_at;
            data_at = data_at
                .checked_add(data_len)
                .filter(|&e| e <= footer.directory_offset)
                .ok_or_else(|| {
                    r.corrupt(format!("series {i} ({key}): data runs past the directory"))
                })?;
            lengths.push(list_len);
            blocks_total += blocks;
            out.push(SeriesInfo {
                key,
                samples,
                blocks,
                data_len,
                loc: SeriesLoc::List {
                    data_offset,
                    list_offset: 0,
                    list_len,
                },
            });
        }
        // The block lists follow the data, one after another, up to the directory.
        let mut list_at = data_at;
        for (info, len) in out.iter_mut().zip(lengths) {
            if let SeriesLoc::List { list_offset, .. } = &mut info.loc {
                *list_offset = list_at;
            }
            list_at = list_at.saturating_add(len);
        }
        if list_at != footer.directory_offset {
            return Err(r.corrupt(format!(
                "data and block lists end at byte {list_at}, the directory starts at {}",
                footer.directory_offset
            )));
        }
        if !r.is_empty() {
            return Err(r.corrupt(format!(
                "{} unexpected bytes after the series table",
                r.remaining()
            )));
        }
        if blocks_total != footer.block_count as u64 {
            return Err(r.corrupt(format!(
                "{blocks_total} blocks listed, footer says {}",
                footer.block_count
            )));
        }
        Ok(out)
    }

    /// The series in the file, in key order.
    pub fn series(&self) -> &[SeriesInfo] {
        &self.series
    }

    /// Indexes of the series that match.
    pub fn select(&self, matcher: &crate::matcher::SeriesMatcher) -> Vec<usize> {
        (0..self.series.len())
            .filter(|&i| matcher.matches(&self.series[i].key))
            .collect()
    }

    /// Size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// An identity of this file's contents, read at open: the CRC32C of
    /// its footer (which holds the CRC32C of the root, whose lengths and
    /// counts follow from every block, column and page) and its length, as
    /// `crc-length` in hex. Two files of different samples share it only
    /// if their roots match byte for byte and their footers collide;
    /// phase 05 records the raw file's, and the query engine reads
    /// rollups only beside the file they were made from.
    pub fn file_id(&self) -> String {
        let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
        self.footer.encode(&mut footer);
        format!("{:08x}-{:x}", crc32c::crc32c(&footer), self.len)
    }

    /// Whether the file holds no series.
    pub fn is_empty(&self) -> bool {
        self.footer.series_count == 0
    }

    /// Number of series in the file (also when opened lazily).
    pub fn series_count(&self) -> usize {
        self.footer.series_count as usize
    }

    /// Bytes read by `open` (footer, header, directory; version 3 opened
    /// lazily: footer, header and root).
    pub fn open_bytes(&self) -> u64 {
        self.open_bytes
    }

    /// Bytes read since `open`.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    /// Bytes of the file that do not grow with the time it covers:
    /// header, name pages and footer (version 3). Blocks, shared
    /// timestamp columns, index pages (a piece per series and window) and
    /// the root (an entry per window) are the rest. Versions 1 and 2 keep
    /// names and index in one directory, counted here whole.
    pub fn fixed_bytes(&self) -> u64 {
        let names = match &self.v3 {
            Some(v3) => v3.root.name_pages.iter().map(|p| p.length).sum(),
            None => self.footer.directory_len,
        };
        HEADER_LEN
            .saturating_add(names)
            .saturating_add(FOOTER_LEN)
            .min(self.len)
    }

    /// The format version of the file.
    pub fn version(&self) -> u32 {
        self.footer.version
    }

    /// Total blocks in the file.
    pub fn block_count(&self) -> u64 {
        self.footer.block_count as u64
    }

    /// What the index describes and a query prunes, in the whole file:
    /// blocks (versions 1, 2) or pieces (version 3; the series read at
    /// open, so 0 on a lazily opened file until it is read).
    pub fn piece_count(&self) -> u64 {
        if self.v3.is_some() {
            self.series.iter().map(|s| s.blocks).sum()
        } else {
            self.block_count()
        }
    }

    /// Offset and length of the directory (version 3: of the root).
    pub fn directory_span(&self) -> (u64, u64) {
        (self.footer.directory_offset, self.footer.directory_len)
    }

    /// The series `series` as the directory (or a lookup) describes it.
    pub fn info(&self, series: usize) -> Result<SeriesInfo> {
        if let Some(s) = self.series.get(series) {
            return Ok(s.clone());
        }
        if let Some(s) = self
            .v3
            .as_ref()
            .and_then(|v| v.found.borrow().get(&series).cloned())
        {
            return Ok(s);
        }
        Err(Error::InvalidArgument(format!(
            "no series {series} in {} ({} series{})",
            self.name,
            self.footer.series_count,
            if self.series.is_empty() && self.footer.series_count > 0 {
                ", opened lazily: find it first"
            } else {
                ""
            }
        )))
    }

    /// The index of `series`: its blocks (versions 1, 2: reads and checks
    /// its block list) or pieces (version 3: from its index page), in time
    /// order.
    pub fn blocks(&self, series: usize) -> Result<Vec<BlockMeta>> {
        let info = self.info(series)?;
        let (data_offset, list_offset, list_len) = match info.loc {
            SeriesLoc::List {
                data_offset,
                list_offset,
                list_len,
            } => (data_offset, list_offset, list_len),
            SeriesLoc::Page { page, index } => return self.pieces(page, index),
        };
        let what = format!("block list of series {series} ({})", info.key);
        let raw = self.read_at(list_offset, list_len, &what)?;
        let (body, tail) = raw.split_at(raw.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let crc = crc32c::crc32c(body);
        if crc != stored {
            return Err(self.corrupt(
                &what,
                list_offset,
                format!("checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"),
            ));
        }
        let ctx = format!("{}: {what}", self.name);
        let mut r = ByteReader::at_offset(body, list_offset, &ctx);
        let mut out = Vec::with_capacity((info.blocks as usize).min(body.len() / 19 + 1));
        let (mut prev_last, mut offset, mut samples) = (0i64, data_offset, 0u64);
        for index in 0..info.blocks as usize {
            let first = prev_last.wrapping_add(r.varint_i64()?);
            let span = r.varint()?;
            let last = first.wrapping_add(span as i64);
            let count = r.varint()?;
            let min = f64::from_bits(r.u64_le()?);
            let max = f64::from_bits(r.u64_le()?);
            let length = r.varint()?;
            if (span as i64) < 0 || last < first || count == 0 || length < 6 {
                return Err(r.corrupt(format!(
                    "entry {index}: impossible block (span {span}, count {count}, length {length})"
                )));
            }
            out.push(BlockMeta {
                index,
                offset,
                length,
                first,
                last,
                count,
                min,
                max,
                loc: BlockLoc::Whole,
            });
            offset = offset
                .checked_add(length)
                .filter(|&e| e <= data_offset + info.data_len)
                .ok_or_else(|| {
                    r.corrupt(format!("entry {index}: block runs past the series' data"))
                })?;
            samples += count;
            prev_last = last;
        }
        if !r.is_empty() || samples != info.samples || offset != data_offset + info.data_len {
            return Err(r.corrupt(format!(
                "entries hold {samples} samples in {} bytes, the directory says {} in {} ({} bytes left over)",
                offset - data_offset,
                info.samples,
                info.data_len,
                r.remaining()
            )));
        }
        Ok(out)
    }

    /// Reads, checks and decodes one block of `series`, appending its samples.
    ///
    /// A series' blocks are read in order: the block's first timestamp
    /// must not come before the last one already in `out` (each block is
    /// checked alone, and the index's time bounds are coarse, so a block
    /// whose checksum was recomputed over other times is caught here).
    pub fn read_block(&self, series: usize, meta: &BlockMeta, out: &mut Series) -> Result<()> {
        let raw = self.read_block_bytes(series, meta)?;
        let before = out.timestamps.len();
        self.decode_block(
            series,
            meta,
            &raw,
            Some(&mut out.timestamps),
            &mut out.values,
        )?;
        self.check_follows(series, meta, &out.timestamps, before)
    }

    /// Err when `ts[at]` (the first sample just appended) comes before
    /// `ts[at - 1]` (the last sample of the series' earlier blocks).
    fn check_follows(&self, series: usize, meta: &BlockMeta, ts: &[i64], at: usize) -> Result<()> {
        match (at.checked_sub(1).and_then(|i| ts.get(i)), ts.get(at)) {
            (Some(prev), Some(first)) if first < prev => Err(Error::Corrupt {
                what: self.block_what(series, meta)?,
                offset: meta.offset,
                reason: format!(
                    "its first timestamp {first} comes before {prev}, the last of the series' earlier blocks"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Like [`MetricsFile::read_block`] but decodes only the values (the
    /// block's CRC still covers its timestamps): for queries that need no
    /// time per row.
    pub fn read_block_values(
        &self,
        series: usize,
        meta: &BlockMeta,
        values: &mut Vec<f64>,
    ) -> Result<()> {
        let raw = self.read_block_bytes(series, meta)?;
        self.decode_block(series, meta, &raw, None, values)
    }

    fn read_block_bytes(&self, series: usize, meta: &BlockMeta) -> Result<Vec<u8>> {
        let what = self.block_what(series, meta)?;
        self.read_at(meta.offset, meta.length, &what)
    }

    /// How errors name a block: its series, key, index and offset
    /// (version 3: the piece, and the block it reads).
    fn block_what(&self, series: usize, meta: &BlockMeta) -> Result<String> {
        let info = self.info(series)?;
        Ok(match meta.loc {
            BlockLoc::Whole => format!(
                "series {series} ({}) block {} at byte {}",
                info.key, meta.index, meta.offset
            ),
            BlockLoc::Piece { .. } => format!(
                "series {series} ({}) piece {} in the block at byte {}",
                info.key, meta.index, meta.offset
            ),
        })
    }

    /// The pieces of the `index`-th series of index page `page`.
    fn pieces(&self, page: usize, index: usize) -> Result<Vec<BlockMeta>> {
        let v3 = self.v3()?;
        let lp = self.page(page)?;
        let p = &lp.page;
        let range = p.series.get(index).cloned().ok_or_else(|| {
            Error::InvalidArgument(format!("no series {index} in index page {page}"))
        })?;
        let mut out = Vec::with_capacity(range.len());
        for (k, i) in range.enumerate() {
            let piece = &p.pieces[i];
            let w = piece.window as usize;
            let window = (v3.root.window_start(w), v3.root.window_end(w));
            // The block this piece reads: its item's, or its target's.
            let block = piece.block.or(match piece.values {
                ValueSource::Ref(t) => p.pieces[t as usize].block,
                _ => None,
            });
            // Bounds on the piece's times: its shared column's (from the
            // root), its block's (shared by the block's items), or both.
            let column = match piece.ts {
                TsSource::Shared { column, .. } => v3
                    .root
                    .windows
                    .get(w)
                    .and_then(|x| x.columns.get(column as usize))
                    .map(|c| (c.first, c.last)),
                TsSource::Inline => None,
            };
            let (offset, length, block_times, (bmin, bmax)) = match block {
                Some(b) => {
                    let e = &p.blocks[b as usize];
                    let times = piece.block.is_some().then_some((e.first, e.last));
                    (lp.block_at[b as usize], e.length, times, (e.min, e.max))
                }
                None => (v3.page_data[page], 0, None, (f64::NAN, f64::NAN)),
            };
            let (first, last) = match (column, block_times) {
                (Some(c), Some(b)) => (c.0.max(b.0), c.1.min(b.1)),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => window,
            };
            let (min, max) = match piece.values {
                ValueSource::Constant(v) => super::writer::min_max(&[v]),
                _ => (bmin, bmax),
            };
            out.push(BlockMeta {
                index: k,
                offset,
                length,
                first,
                last,
                count: piece.n as u64,
                min,
                max,
                loc: BlockLoc::Piece { page, piece: i },
            });
        }
        Ok(out)
    }

    /// Decodes one version 3 piece from the bytes of the block it reads
    /// (`raw`, empty when it reads none).
    #[allow(clippy::too_many_arguments)]
    fn decode_piece(
        &self,
        meta: &BlockMeta,
        page: usize,
        piece: usize,
        raw: &[u8],
        timestamps: Option<&mut Vec<i64>>,
        values: &mut Vec<f64>,
        what: &str,
        focus: Option<(i64, i64)>,
    ) -> Result<()> {
        let bad = |reason: String| self.corrupt(what, meta.offset, reason);
        let v3 = self.v3()?;
        let lp = self.page(page)?;
        let p = &lp.page;
        let me = *p
            .pieces
            .get(piece)
            .ok_or_else(|| bad(format!("no piece {piece} in index page {page}")))?;
        let n = me.n as usize;
        let value_piece = match me.values {
            ValueSource::Ref(t) => Some(t as usize),
            ValueSource::Stored => Some(piece),
            ValueSource::Constant(_) => None,
        };
        let block = me
            .block
            .or_else(|| value_piece.and_then(|t| p.pieces[t].block));
        if raw.len() as u64 != meta.length {
            return Err(bad(format!(
                "{} bytes given for a {}-byte block",
                raw.len(),
                meta.length
            )));
        }
        let (mut item_ts, mut item_values): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        let mut ctx: Option<ColumnContext> = None;
        let mut wanted_ctx = None;
        if let Some(b) = block {
            if raw.len() < 4 {
                return Err(bad(format!("{} bytes cannot hold a block", raw.len())));
            }
            let body = super::crc_body(raw).map_err(bad)?;
            // Walk the block's items up to the ones this piece needs; the
            // whole block must parse.
            let mut r = ByteReader::at_offset(body, meta.offset, what);
            for j in p.block_items(b as usize) {
                let q = &p.pieces[j];
                if q.ts == TsSource::Inline {
                    let len = r.count(1, "timestamp column byte")?;
                    let col = r.bytes(len)?;
                    let c = ctx.unwrap_or_else(|| v3.root.window_context(q.window as usize));
                    if j == piece {
                        item_ts = Some(col);
                        wanted_ctx = Some(c);
                    }
                    let next = delta::read_context(col, q.n as usize, c)
                        .map_err(|e| e.within(what))?
                        .0;
                    ctx = Some(next);
                }
                if q.values == ValueSource::Stored {
                    let len = r.count(1, "value column byte")?;
                    let col = r.bytes(len)?;
                    if Some(j) == value_piece {
                        item_values = Some(col);
                    }
                }
            }
            if !r.is_empty() {
                return Err(bad(format!(
                    "{} unexpected bytes after the block's items",
                    r.remaining()
                )));
            }
        }
        let v0 = values.len();
        match me.values {
            ValueSource::Constant(v) => values.extend(std::iter::repeat_n(v, n)),
            _ => {
                let col = item_values
                    .ok_or_else(|| bad("the block has no value column for this piece".into()))?;
                adaptive::decode(col, n, values).map_err(|e| e.within(what))?;
            }
        }
        if let Some(out) = timestamps {
            let t0 = out.len();
            match me.ts {
                TsSource::Inline => {
                    let (col, c) = item_ts.zip(wanted_ctx).ok_or_else(|| {
                        bad("the block has no timestamp column for this piece".into())
                    })?;
                    delta::decode_in_context(col, n, c, out).map_err(|e| e.within(what))?;
                }
                TsSource::Shared { column, start } => {
                    let (from, ts) = self.shared_timestamps(
                        me.window as usize,
                        column as usize,
                        start as usize,
                        n,
                        focus,
                    )?;
                    // A focused read of a column in parts keeps the
                    // samples of the parts it read.
                    if ts.len() != n {
                        values.truncate(v0 + from + ts.len());
                        values.drain(v0..v0 + from);
                    }
                    out.extend_from_slice(&ts);
                }
            }
            let ts = &out[t0..];
            let inside = |t: &i64| (meta.first..=meta.last).contains(t);
            if !ts.iter().all(inside) || ts.windows(2).any(|w| w[1] < w[0]) {
                return Err(bad(
                    "timestamps outside the index entry's bounds or out of order".into(),
                ));
            }
            let w = me.window as usize;
            let (ws, we) = (v3.root.window_start(w), v3.root.window_end(w));
            if !ts.iter().all(|t| (ws..=we).contains(t)) {
                return Err(bad("timestamps outside the piece's window".into()));
            }
        }
        let (lo, hi) = super::writer::min_max(&values[v0..]);
        let within = |x: f64| x.is_nan() || (x >= meta.min && x <= meta.max);
        if !within(lo) || !within(hi) {
            return Err(bad("values outside the index entry's min/max".into()));
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` in one read (counted), e.g. a run of
    /// adjacent blocks to decode with [`MetricsFile::decode_block`].
    pub fn read_span(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.read_at(offset, len, "span of blocks")
    }

    /// Checks and decodes one block from its bytes `raw` (exactly the
    /// block, as read at `meta.offset`), appending its values and, when
    /// asked, its timestamps.
    pub fn decode_block(
        &self,
        series: usize,
        meta: &BlockMeta,
        raw: &[u8],
        timestamps: Option<&mut Vec<i64>>,
        values: &mut Vec<f64>,
    ) -> Result<()> {
        self.decode_block_within(series, meta, raw, timestamps, values, i64::MIN, i64::MAX)
    }

    /// [`MetricsFile::decode_block`] for a query that needs only the
    /// samples with `lo <= t <= hi`: every one of them is appended, and
    /// others may be left out (a piece on a shared column in parts gives
    /// the samples of the parts that meet `[lo, hi]`, read alone).
    #[allow(clippy::too_many_arguments)]
    pub fn decode_block_within(
        &self,
        series: usize,
        meta: &BlockMeta,
        raw: &[u8],
        mut timestamps: Option<&mut Vec<i64>>,
        values: &mut Vec<f64>,
        lo: i64,
        hi: i64,
    ) -> Result<()> {
        let focus = (lo != i64::MIN || hi != i64::MAX).then_some((lo, hi));
        let (t0, v0) = (timestamps.as_ref().map_or(0, |t| t.len()), values.len());
        // The happy path formats no error context; a failure decodes again
        // with the full context so that the error says where.
        match self.decode_block_in(meta, raw, timestamps.as_deref_mut(), values, None, focus) {
            Ok(()) => Ok(()),
            Err(_) => {
                if let Some(t) = timestamps.as_deref_mut() {
                    t.truncate(t0);
                }
                values.truncate(v0);
                let what = self.block_what(series, meta)?;
                let result = self.decode_block_in(
                    meta,
                    raw,
                    timestamps.as_deref_mut(),
                    values,
                    Some(&what),
                    focus,
                );
                if let Some(t) = timestamps {
                    t.truncate(t0);
                }
                values.truncate(v0);
                result.and(Err(self.corrupt(&what, meta.offset, "cannot be decoded")))
            }
        }
    }

    fn decode_block_in(
        &self,
        meta: &BlockMeta,
        raw: &[u8],
        timestamps: Option<&mut Vec<i64>>,
        values: &mut Vec<f64>,
        what: Option<&str>,
        focus: Option<(i64, i64)>,
    ) -> Result<()> {
        let what = what.unwrap_or("block");
        if let BlockLoc::Piece { page, piece } = meta.loc {
            return self.decode_piece(meta, page, piece, raw, timestamps, values, what, focus);
        }
        if raw.len() as u64 != meta.length || raw.len() < 4 {
            return Err(self.corrupt(
                what,
                meta.offset,
                format!("{} bytes given for a {}-byte block", raw.len(), meta.length),
            ));
        }
        let bad = |reason: String| self.corrupt(what, meta.offset, reason);
        let body = super::crc_body(raw).map_err(bad)?;
        let ctx;
        let ctx_ref = if what == "block" {
            self.name.as_str()
        } else {
            ctx = format!("{}: {what}", self.name);
            ctx.as_str()
        };
        let mut r = ByteReader::at_offset(body, meta.offset, ctx_ref);
        let n = r.varint()?;
        if n != meta.count {
            return Err(bad(format!(
                "holds {n} samples, its index entry says {}",
                meta.count
            )));
        }
        let ts_len = r.count(1, "timestamp column byte")?;
        let ts_bytes = r.bytes(ts_len)?;
        let n = n as usize;
        let v0 = values.len();
        if self.footer.version == 1 {
            xor::decode(r.rest(), n, values).map_err(|e| e.within(ctx_ref))?;
        } else {
            adaptive::decode(r.rest(), n, values).map_err(|e| e.within(ctx_ref))?;
        }
        if let Some(out) = timestamps {
            let t0 = out.len();
            delta::decode(ts_bytes, n, out).map_err(|e| e.within(ctx_ref))?;
            let ts = &out[t0..];
            if ts.first() != Some(&meta.first) || ts.last() != Some(&meta.last) {
                return Err(bad("timestamps disagree with the index entry".into()));
            }
        }
        let (lo, hi) = super::writer::min_max(&values[v0..]);
        if lo.to_bits() != meta.min.to_bits() || hi.to_bits() != meta.max.to_bits() {
            return Err(bad("min/max disagree with the index entry".into()));
        }
        Ok(())
    }

    /// Samples of `series` with `start <= t <= end`, reading only the
    /// blocks that overlap (a block that several of its pieces share is
    /// read once).
    pub fn read_range(&self, series: usize, start: i64, end: i64) -> Result<(Series, ReadStats)> {
        let before = self.bytes_read();
        let blocks = self.blocks(series)?;
        let mut all = Series::new(self.info(series)?.key.clone());
        let mut stats = ReadStats {
            blocks_total: blocks.len() as u64,
            ..ReadStats::default()
        };
        let mut last: Option<(u64, Vec<u8>)> = None;
        for b in blocks.iter().filter(|b| b.overlaps(start, end)) {
            self.read_block_cached(series, b, &mut all, &mut last, (start, end))?;
            stats.blocks_read += 1;
        }
        let mut out = Series::new(all.key.clone());
        for (t, v) in all.timestamps.iter().zip(&all.values) {
            if (start..=end).contains(t) {
                out.push(*t, *v);
            }
        }
        stats.bytes_read = self.bytes_read() - before;
        Ok((out, stats))
    }

    /// [`MetricsFile::read_block`], reusing `last` when it holds the same
    /// block; only the samples in `lo..=hi` are needed (see
    /// [`MetricsFile::decode_block_within`]).
    fn read_block_cached(
        &self,
        series: usize,
        meta: &BlockMeta,
        out: &mut Series,
        last: &mut Option<(u64, Vec<u8>)>,
        (lo, hi): (i64, i64),
    ) -> Result<()> {
        let hit = last
            .as_ref()
            .is_some_and(|(at, raw)| *at == meta.offset && raw.len() as u64 == meta.length);
        if !hit {
            *last = Some((meta.offset, self.read_block_bytes(series, meta)?));
        }
        let raw = last.as_ref().map(|(_, r)| r.as_slice()).unwrap_or(&[]);
        let before = out.timestamps.len();
        self.decode_block_within(
            series,
            meta,
            raw,
            Some(&mut out.timestamps),
            &mut out.values,
            lo,
            hi,
        )?;
        self.check_follows(series, meta, &out.timestamps, before)
    }

    /// Reads every series in full.
    pub fn read_series(&self, series: usize) -> Result<Series> {
        Ok(self.read_range(series, i64::MIN, i64::MAX)?.0)
    }

    /// Reads and checks the whole file: every block list (version 3: every
    /// name and index page, every shared column) and every block. Open has
    /// checked that the parts tile the file.
    pub fn read_all(&self, source: &str) -> Result<Dataset> {
        let lazy_infos;
        let infos: &[SeriesInfo] = if self.series.is_empty() && self.v3.is_some() {
            lazy_infos = self.load_all_series()?;
            if let Some(v3) = &self.v3 {
                let mut found = v3.found.borrow_mut();
                for (i, info) in lazy_infos.iter().enumerate() {
                    found.insert(i, info.clone());
                }
            }
            &lazy_infos
        } else {
            &self.series
        };
        if let Some(v3) = &self.v3 {
            for (w, win) in v3.root.windows.iter().enumerate() {
                for c in 0..win.columns.len() {
                    self.shared_column(w, c)?;
                }
            }
        }
        let mut out = Vec::with_capacity(infos.len());
        let mut last = None;
        for (i, info) in infos.iter().enumerate() {
            let mut s = Series::new(info.key.clone());
            for b in &self.blocks(i)? {
                self.read_block_cached(i, b, &mut s, &mut last, (i64::MIN, i64::MAX))?;
            }
            out.push(s);
        }
        Ok(Dataset {
            source: source.to_string(),
            series: out,
            metadata: Default::default(),
        })
    }
}
