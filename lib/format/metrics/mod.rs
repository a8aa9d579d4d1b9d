//! Phase 04: the self-contained binary format (`.metrics`), version 3.
//!
//! One file holds everything: samples in checksummed blocks, timestamp
//! columns shared by the series scraped together, an index paged so that a
//! query for one series reads a sliver of it, names compressed in pages,
//! and a small root that says where everything is.
//!
//! ```text
//! offset 0
//! ┌──────────────────────────────────────────────────────────────────────┐
//! │ header (16 B): "METRICS!" | version u32 LE = 3 | flags u32 LE = 0    │
//! ├──────────────────────────────────────────────────────────────────────┤
//! │ blocks, index page by index page: | items... | CRC32C u32 |          │
//! │   item: | inline timestamps (len + column) | stored values (len +    │
//! │         adaptive block) |  (either part only if the piece has it)    │
//! ├──────────────────────────────────────────────────────────────────────┤
//! │ shared timestamp columns, window by window: | column | CRC32C |      │
//! │   (a large one in parts: | header | CRC | part | CRC | part | ... )  │
//! ├──────────────────────────────────────────────────────────────────────┤
//! │ index pages: per run of series, column by column (bit-packed):       │
//! │   pieces per series | window | flags | samples | shared column |     │
//! │   block | constants | references | block lengths, times, min, max |  │
//! │   CRC32C                                                             │
//! ├──────────────────────────────────────────────────────────────────────┤
//! │ name pages: keys front-coded, zstd when smaller | CRC32C             │
//! ├──────────────────────────────────────────────────────────────────────┤
//! │ root: window, windows (base tick, shared columns), index pages,      │
//! │   name pages (separators)                                            │
//! ├──────────────────────────────────────────────────────────────────────┤
//! │ footer (40 B): root offset u64 | root length u64 | root CRC32C u32 | │
//! │   series u32 | blocks u32 | version u32 | "METRICS!"                 │
//! └──────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A series' samples are cut into *pieces*: one aligned window (6 h by
//! default), at most `max_samples` (256), and, when their values are
//! stored, about `max_bytes` (512). A piece's timestamps are a *shared
//! column* of its window (when other series have exactly the same ones) or
//! *inline* in its block; its values are *stored* in its block, a
//! *constant* kept in the index, or a *reference* to an earlier piece with
//! the same bits. The *items* of the pieces of one window share blocks, so
//! thousands of short series do not pay a block each. Offsets are not
//! stored: the regions follow each other and the root gives every length;
//! the reader checks that they tile the file.
//!
//! A reader opens the footer and the root, then, for one series, one name
//! page (to find its key), one index page (its pieces) and the blocks and
//! columns its time range needs ([`MetricsFile::open_lazy`],
//! [`MetricsFile::find`]); the query engine reads every page at open
//! ([`MetricsFile::open`]). Versions 1 and 2 (one block list per series
//! and a directory read whole) are still read; [`encode_v2`] still writes
//! version 2 for side-by-side benches.
//!
//! - `writer.rs`: slices, shared columns, pieces, packing; `writer_v2.rs`.
//! - `index_page.rs`, `name_page.rs`, `root.rs`: the parts' codecs;
//!   `parts.rs`: shared columns in parts.
//! - `reader.rs`: [`MetricsFile`], all versions; `inspect.rs`: [`inspect`].
//!
//! `docs/src/format.md` is the exact specification, with a version table and
//! a worked example.

mod index_page;
mod inspect;
mod name_page;
mod parts;
mod reader;
mod root;
mod writer;
mod writer_v2;

pub use inspect::{inspect, Inspection};
#[cfg(test)]
pub(crate) use reader::SeriesLoc;
pub use reader::{BlockMeta, MetricsFile, ReadStats, SeriesInfo};
pub use writer::{encode, write, BlockOptions, EncodeStats, PAGE_BYTES, PAGE_SHARE};
pub use writer_v2::{encode_v2, v2_options};

/// The magic at both ends of the file.
pub const MAGIC: &[u8; 8] = b"METRICS!";
/// The version this build writes.
pub const VERSION: u32 = 3;
/// The versions this build reads: 1 (Gorilla XOR value columns), 2
/// (adaptive value columns, see [`crate::codec::adaptive`]) and 3 (shared
/// timestamp columns, packed blocks, paged index and names).
pub const READABLE_VERSIONS: [u32; 3] = [1, 2, 3];
/// Bytes of the header.
pub const HEADER_LEN: u64 = 16;
/// Bytes of the footer.
pub const FOOTER_LEN: u64 = 40;
/// File name of the phase 04 artifact in the output directory.
pub const FILE_NAME: &str = "04_custom.metrics";

/// The bytes of `raw` before the CRC32C in its last 4 bytes, or why not
/// (too short, or the CRC does not match), for an error message.
pub(crate) fn crc_body(raw: &[u8]) -> std::result::Result<&[u8], String> {
    let Some(body_len) = raw.len().checked_sub(4) else {
        return Err(format!("{} bytes cannot hold a CRC32C", raw.len()));
    };
    let (body, tail) = raw.split_at(body_len);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let crc = crc32c::crc32c(body);
    if crc != stored {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"
        ));
    }
    Ok(body)
}

/// Footer fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub directory_offset: u64,
    pub directory_len: u64,
    pub directory_crc: u32,
    pub series_count: u32,
    pub block_count: u32,
    pub version: u32,
}

impl Footer {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.directory_offset.to_le_bytes());
        out.extend_from_slice(&self.directory_len.to_le_bytes());
        out.extend_from_slice(&self.directory_crc.to_le_bytes());
        out.extend_from_slice(&self.series_count.to_le_bytes());
        out.extend_from_slice(&self.block_count.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(MAGIC);
    }
}
