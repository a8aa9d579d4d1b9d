//! Reading a `.metrics` file: open reads the footer, header and directory;
//! queries read one series' block list and only the blocks they need.
//! Every read is counted, so a query can say how many bytes it touched.
//!
//! Nothing read is trusted: every offset and length is checked against the
//! file size before anything is allocated or read, every part's CRC is
//! checked before it is parsed, and decoded blocks are checked against
//! their index entries.

use std::cell::{Cell, RefCell};
use std::fs::File;
#[cfg(not(unix))]
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{Footer, FOOTER_LEN, HEADER_LEN, MAGIC, READABLE_VERSIONS, VERSION};
use crate::bytes::ByteReader;
use crate::codec::{adaptive, delta, xor};
use crate::error::{Error, Result};
use crate::model::{Dataset, Labels, Series, SeriesKey};

/// A series as the directory describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub key: SeriesKey,
    pub samples: u64,
    pub blocks: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub list_offset: u64,
    pub list_len: u64,
}

/// One block as its index entry describes it.
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
    /// Bytes of block lists and blocks read by the query.
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

/// An open `.metrics` file.
pub struct MetricsFile {
    source: Source,
    name: String,
    len: u64,
    footer: Footer,
    series: Vec<SeriesInfo>,
    open_bytes: u64,
    bytes_read: Cell<u64>,
}

impl MetricsFile {
    /// Opens the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
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
        )
    }

    /// Opens a file held in memory (for tests and tools).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Self> {
        let len = bytes.len() as u64;
        Self::from_source(Source::Bytes(bytes), len, name.to_string())
    }

    fn from_source(source: Source, len: u64, name: String) -> Result<Self> {
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
            open_bytes: 0,
            bytes_read: Cell::new(0),
        };
        f.load()?;
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

    fn load(&mut self) -> Result<()> {
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
        let dir = self.read_at(footer.directory_offset, footer.directory_len, "directory")?;
        let crc = crc32c::crc32c(&dir);
        if crc != footer.directory_crc {
            return Err(self.corrupt(
                "directory",
                footer.directory_offset,
                format!(
                    "checksum mismatch: stored {:#010x}, computed {crc:#010x}",
                    footer.directory_crc
                ),
            ));
        }
        self.series = self.parse_directory(&dir, &footer)?;
        self.footer = footer;
        Ok(())
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
                data_offset,
                data_len,
                list_offset: 0,
                list_len,
            });
        }
        // The block lists follow the data, one after another, up to the directory.
        let mut list_at = data_at;
        for (info, len) in out.iter_mut().zip(lengths) {
            info.list_offset = list_at;
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

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Bytes read by `open` (footer, header, directory).
    pub fn open_bytes(&self) -> u64 {
        self.open_bytes
    }

    /// Bytes read since `open`.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    /// The format version of the file.
    pub fn version(&self) -> u32 {
        self.footer.version
    }

    /// Total blocks in the file.
    pub fn block_count(&self) -> u64 {
        self.footer.block_count as u64
    }

    /// Offset and length of the directory.
    pub fn directory_span(&self) -> (u64, u64) {
        (self.footer.directory_offset, self.footer.directory_len)
    }

    fn info(&self, series: usize) -> Result<&SeriesInfo> {
        self.series.get(series).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no series {series} in {} ({} series)",
                self.name,
                self.series.len()
            ))
        })
    }

    /// Reads and checks the block list of `series`.
    pub fn blocks(&self, series: usize) -> Result<Vec<BlockMeta>> {
        let info = self.info(series)?;
        let what = format!("block list of series {series} ({})", info.key);
        let raw = self.read_at(info.list_offset, info.list_len, &what)?;
        let (body, tail) = raw.split_at(raw.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let crc = crc32c::crc32c(body);
        if crc != stored {
            return Err(self.corrupt(
                &what,
                info.list_offset,
                format!("checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"),
            ));
        }
        let ctx = format!("{}: {what}", self.name);
        let mut r = ByteReader::at_offset(body, info.list_offset, &ctx);
        let mut out = Vec::with_capacity((info.blocks as usize).min(body.len() / 19 + 1));
        let (mut prev_last, mut offset, mut samples) = (0i64, info.data_offset, 0u64);
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
            });
            offset = offset
                .checked_add(length)
                .filter(|&e| e <= info.data_offset + info.data_len)
                .ok_or_else(|| {
                    r.corrupt(format!("entry {index}: block runs past the series' data"))
                })?;
            samples += count;
            prev_last = last;
        }
        if !r.is_empty() || samples != info.samples || offset != info.data_offset + info.data_len {
            return Err(r.corrupt(format!(
                "entries hold {samples} samples in {} bytes, the directory says {} in {} ({} bytes left over)",
                offset - info.data_offset,
                info.samples,
                info.data_len,
                r.remaining()
            )));
        }
        Ok(out)
    }

    /// Reads, checks and decodes one block of `series`, appending its samples.
    pub fn read_block(&self, series: usize, meta: &BlockMeta, out: &mut Series) -> Result<()> {
        let raw = self.read_block_bytes(series, meta)?;
        self.decode_block(
            series,
            meta,
            &raw,
            Some(&mut out.timestamps),
            &mut out.values,
        )
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

    /// How errors name a block: its series, key, index and offset.
    fn block_what(&self, series: usize, meta: &BlockMeta) -> Result<String> {
        let info = self.info(series)?;
        Ok(format!(
            "series {series} ({}) block {} at byte {}",
            info.key, meta.index, meta.offset
        ))
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
        mut timestamps: Option<&mut Vec<i64>>,
        values: &mut Vec<f64>,
    ) -> Result<()> {
        let (t0, v0) = (timestamps.as_ref().map_or(0, |t| t.len()), values.len());
        // The happy path formats no error context; a failure decodes again
        // with the full context so that the error says where.
        match self.decode_block_in(meta, raw, timestamps.as_deref_mut(), values, None) {
            Ok(()) => Ok(()),
            Err(_) => {
                if let Some(t) = timestamps.as_deref_mut() {
                    t.truncate(t0);
                }
                values.truncate(v0);
                let what = self.block_what(series, meta)?;
                let result =
                    self.decode_block_in(meta, raw, timestamps.as_deref_mut(), values, Some(&what));
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
    ) -> Result<()> {
        let what = what.unwrap_or("block");
        if raw.len() as u64 != meta.length || raw.len() < 4 {
            return Err(self.corrupt(
                what,
                meta.offset,
                format!("{} bytes given for a {}-byte block", raw.len(), meta.length),
            ));
        }
        let bad = |reason: String| self.corrupt(what, meta.offset, reason);
        let (body, tail) = raw.split_at(raw.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let crc = crc32c::crc32c(body);
        if crc != stored {
            return Err(bad(format!(
                "checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"
            )));
        }
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

    /// Samples of `series` with `start <= t <= end`, reading only the blocks that overlap.
    pub fn read_range(&self, series: usize, start: i64, end: i64) -> Result<(Series, ReadStats)> {
        let before = self.bytes_read();
        let blocks = self.blocks(series)?;
        let mut all = Series::new(self.info(series)?.key.clone());
        let mut stats = ReadStats {
            blocks_total: blocks.len() as u64,
            ..ReadStats::default()
        };
        for b in blocks.iter().filter(|b| b.overlaps(start, end)) {
            self.read_block(series, b, &mut all)?;
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

    /// Reads every series in full.
    pub fn read_series(&self, series: usize) -> Result<Series> {
        Ok(self.read_range(series, i64::MIN, i64::MAX)?.0)
    }

    /// Reads and checks the whole file: every block list and every block.
    /// (Open has checked that data and lists tile the file; each list checks
    /// that its blocks tile their series' data.)
    pub fn read_all(&self, source: &str) -> Result<Dataset> {
        let mut out = Vec::with_capacity(self.series.len());
        for (i, info) in self.series.iter().enumerate() {
            let mut s = Series::new(info.key.clone());
            for b in &self.blocks(i)? {
                self.read_block(i, b, &mut s)?;
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
