//! Phase 04: the self-contained binary format (`.metrics`).
//!
//! One file holds everything: a header, compressed data in blocks, an index
//! and a fixed-size footer. A reader seeks to the footer, reads the
//! directory (names and labels, stored once in a symbol table), then reads
//! only the block list of the series it wants and only the blocks that
//! overlap its time range. Every part carries a CRC32C.
//!
//! ```text
//! offset 0
//! ┌──────────────────────────────────────────────────────────────────┐
//! │ header (16 B): "METRICS!" | version u32 LE | flags u32 LE = 0    │
//! ├──────────────────────────────────────────────────────────────────┤
//! │ data: the blocks of series 0, then of series 1, ...              │
//! │   block: | n (varint) | ts column length (varint) | ts column |  │
//! │          | value column | CRC32C of the block (u32 LE) |         │
//! │   value column: version 2, an adaptive block (scheme tag, then   │
//! │   its payload); version 1, a Gorilla XOR bit stream              │
//! ├──────────────────────────────────────────────────────────────────┤
//! │ block lists: one per series, each | entries... | CRC32C u32 |    │
//! │   entry: | first ts (zigzag varint, delta to previous entry's    │
//! │            last ts, or to 0) | last - first (varint) |           │
//! │          | sample count (varint) | min f64 LE | max f64 LE |    │
//! │          | block length (varint) |                               │
//! ├──────────────────────────────────────────────────────────────────┤
//! │ directory:                                                       │
//! │   | symbol count (varint) | symbols (varint length + UTF-8)... | │
//! │   | series count (varint) |                                      │
//! │   per series: | metric symbol | label count | (name, value)     │
//! │     symbols... | sample count | block count | data length |      │
//! │     list length |                        (all varints)           │
//! ├──────────────────────────────────────────────────────────────────┤
//! │ footer (40 B): directory offset u64 | directory length u64 |     │
//! │   directory CRC32C u32 | series count u32 | block count u32 |    │
//! │   version u32 | "METRICS!"                                       │
//! └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Blocks hold one series' samples within one aligned time window (2 h by
//! default) and at most a bounded number of samples; timestamps and values
//! are coded as in phase 03 (see [`crate::codec::delta`] and
//! [`crate::codec::xor`]). Offsets are not stored: series' data regions
//! follow each other from byte 16, their block lists follow each other
//! after the data, and a block's offset is its series' data offset plus the
//! lengths of the entries before it. The reader checks that these regions
//! tile the file exactly. `min` and `max` ignore NaN (both are NaN only if
//! every value is).
//!
//! Why block lists apart from the directory? A one-series query then reads
//! the directory (a few hundred bytes per series), one list (about 30 bytes
//! per block) and its blocks, not every block entry of the file. Each list
//! has its own CRC so it can be trusted without reading the others.
//!
//! `docs/src/format.md` is the exact specification with a version table.

mod inspect;
mod reader;
mod writer;

pub use inspect::{inspect, Inspection};
pub use reader::{BlockMeta, MetricsFile, ReadStats, SeriesInfo};
pub use writer::{encode, write, BlockOptions, EncodeStats};

/// The magic at both ends of the file.
pub const MAGIC: &[u8; 8] = b"METRICS!";
/// The version this build writes.
pub const VERSION: u32 = 2;
/// The versions this build reads: 1 (Gorilla XOR value columns) and 2
/// (adaptive value columns, see [`crate::codec::adaptive`]).
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];
/// Bytes of the header.
pub const HEADER_LEN: u64 = 16;
/// Bytes of the footer.
pub const FOOTER_LEN: u64 = 40;
/// File name of the phase 04 artifact in the output directory.
pub const FILE_NAME: &str = "04_custom.metrics";

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
