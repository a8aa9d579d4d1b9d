//! A dump of a `.metrics` file: every part with its offset, length, the hex
//! of its first bytes and its decoded fields, so the layout can be seen.

use std::fmt::Write as _;

use super::reader::SeriesLoc;
use super::{MetricsFile, FOOTER_LEN, HEADER_LEN};
use crate::bytes::ByteReader;
use crate::error::Result;
use crate::time::format_timestamp;

fn hex(bytes: &[u8], max: usize) -> String {
    let mut s: String = bytes
        .iter()
        .take(max)
        .map(|b| format!("{b:02x} "))
        .collect();
    if bytes.len() > max {
        s.push('…');
    }
    s.trim_end().to_string()
}

/// What [`inspect`] found: the dump, and the blocks that failed a check.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub text: String,
    /// One line per block (or block list) whose checksum or decoding failed.
    pub failures: Vec<String>,
}

/// A block's checksum and layout, decoded as a read would: `Ok` only if
/// its CRC32C matches and it decodes to the sample count its entry says.
fn block_verdict(
    file: &MetricsFile,
    series: usize,
    meta: &super::BlockMeta,
    raw: &[u8],
) -> Result<()> {
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    file.decode_block(series, meta, raw, Some(&mut ts), &mut vs)
}

/// `timestamps N B (scheme), values M B (scheme)` of a block, or `None` if
/// its lengths do not add up.
fn block_layout(file: &MetricsFile, raw: &[u8]) -> Option<String> {
    let mut r = ByteReader::new(raw, "block");
    r.varint().ok()?;
    let ts_len = usize::try_from(r.varint().ok()?).ok()?;
    let ts_at = r.position();
    let val_at = ts_at.checked_add(ts_len)?;
    let val_len = raw.len().checked_sub(val_at)?.checked_sub(4)?;
    let ts_scheme = raw.get(ts_at).copied().unwrap_or(0);
    let values = if file.version() == 1 {
        "Gorilla XOR".to_string()
    } else {
        crate::format::adaptive::value_scheme_name(raw.get(val_at).copied().unwrap_or(255) as usize)
            .to_string()
    };
    Some(format!(
        "timestamps {ts_len} B ({}), values {val_len} B ({values})",
        crate::format::gorilla::scheme_name(ts_scheme as usize)
    ))
}

/// Renders the dump. `max_blocks` limits the blocks *shown* per series
/// (version 3: per index page); every block is checked.
///
/// Errors: a part that cannot be read at all (the footer, the header, an
/// index page); a block that fails its check is reported in the dump and
/// in [`Inspection::failures`] instead.
pub fn inspect(file: &MetricsFile, max_blocks: usize) -> Result<Inspection> {
    if file.version() >= 3 {
        return inspect_v3(file, max_blocks);
    }
    let mut o = String::new();
    let len = file.len();
    let _ = writeln!(
        o,
        "file: {len} bytes, {} series, {} blocks",
        file.series().len(),
        file.block_count()
    );

    header_lines(file, &mut o)?;

    let _ = writeln!(o, "\ndata: blocks, series by series");
    // Every block is checked (CRC32C, then decoded), shown or not; the
    // verdicts printed are the results of those checks.
    let (mut checked, mut bad) = (0u64, Vec::new());
    for (i, s) in file.series().iter().enumerate() {
        let _ = writeln!(
            o,
            "  series {i}: {}  ({} samples, {} blocks)",
            s.key, s.samples, s.blocks
        );
        let blocks = match file.blocks(i) {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(o, "{:27}block list unreadable: {e}", "");
                bad.push(format!("series {i}: block list: {e}"));
                continue;
            }
        };
        for b in &blocks {
            let raw = file.read_at(b.offset, b.length, "block")?;
            checked += 1;
            let verdict = block_verdict(file, i, b, &raw);
            if let Err(e) = &verdict {
                bad.push(format!("series {i} block {}: {e}", b.index));
            }
            if b.index >= max_blocks {
                continue;
            }
            let _ = writeln!(
                o,
                "@{:<8} {:>6} B  block {:<4} {}",
                b.offset,
                b.length,
                b.index,
                hex(&raw, 12)
            );
            let _ = writeln!(
                o,
                "{:27}n={} {} .. {}  min={} max={}",
                "",
                b.count,
                format_timestamp(b.first),
                format_timestamp(b.last),
                b.min,
                b.max
            );
            let layout = block_layout(file, &raw).unwrap_or_else(|| "layout unreadable".into());
            let verdict = match &verdict {
                Ok(()) => "CRC32C ok, decodes".to_string(),
                Err(e) => format!("FAILED: {e}"),
            };
            let _ = writeln!(o, "{:27}{layout}, {verdict}", "");
        }
        if s.blocks as usize > max_blocks {
            let _ = writeln!(
                o,
                "{:27}… {} more blocks (checked, not shown)",
                "",
                s.blocks as usize - max_blocks
            );
        }
    }
    let _ = writeln!(
        o,
        "\nchecked {checked} blocks: {}",
        if bad.is_empty() {
            "every CRC32C matches and every block decodes".to_string()
        } else {
            format!("{} FAILED", bad.len())
        }
    );
    for b in &bad {
        let _ = writeln!(o, "  FAILED {b}");
    }

    let _ = writeln!(o, "\nblock lists: one per series, entries + CRC32C");
    for (i, s) in file.series().iter().enumerate() {
        let SeriesLoc::List {
            list_offset,
            list_len,
            ..
        } = s.loc
        else {
            continue;
        };
        let raw = file.read_at(list_offset, list_len, "block list")?;
        let _ = writeln!(
            o,
            "@{:<8} {:>6} B  list {:<5} {}  ({} entries, ~{:.1} B each)",
            list_offset,
            list_len,
            i,
            hex(&raw, 12),
            s.blocks,
            (list_len - 4) as f64 / s.blocks.max(1) as f64
        );
    }

    let (dir_at, dir_len) = file.directory_span();
    let dir = file.read_at(dir_at, dir_len, "directory")?;
    let mut r = ByteReader::new(&dir, "directory");
    let n_symbols = r.varint()?;
    let mut symbols = Vec::new();
    for _ in 0..n_symbols {
        symbols.push(r.string()?.to_string());
    }
    let symbol_bytes = r.position();
    let _ = writeln!(
        o,
        "\n@{dir_at:<8} {dir_len:>6} B  directory  {}",
        hex(&dir, 12)
    );
    let shown: Vec<String> = symbols.iter().take(12).map(|s| format!("{s:?}")).collect();
    let _ = writeln!(
        o,
        "{:27}{n_symbols} symbols in {symbol_bytes} B: {}{}",
        "",
        shown.join(", "),
        if symbols.len() > 12 { ", …" } else { "" }
    );
    let _ = writeln!(
        o,
        "{:27}{} series in {} B (symbol ids, counts, lengths)",
        "",
        file.series().len(),
        dir_len - symbol_bytes as u64
    );

    footer_lines(file, len, "directory", &mut o)?;
    Ok(Inspection {
        text: o,
        failures: bad,
    })
}

/// The version 3 dump: blocks index page by index page (with the pieces
/// that read each), the shared columns, the index and name pages, the
/// root and the footer.
fn inspect_v3(file: &MetricsFile, max_blocks: usize) -> Result<Inspection> {
    let mut o = String::new();
    let len = file.len();
    let Some(parts) = file.v3_parts() else {
        return Ok(Inspection {
            text: o,
            failures: Vec::new(),
        });
    };
    let pieces: u64 = file.series().iter().map(|s| s.blocks).sum();
    let _ = writeln!(
        o,
        "file: {len} bytes, {} series, {} pieces in {} blocks, version {}",
        file.series().len(),
        pieces,
        file.block_count(),
        file.version()
    );
    header_lines(file, &mut o)?;

    // Every piece of every series is decoded, as a read would; a block's
    // verdict is that of the pieces that read it.
    let _ = writeln!(o, "\ndata: blocks, index page by index page");
    let mut bad: Vec<String> = Vec::new();
    let mut checked = 0u64;
    let mut raw_of: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    for (p, &(_, _, first_series, series)) in parts.index_pages.iter().enumerate() {
        let _ = writeln!(
            o,
            "  index page {p}: series {}..{}",
            first_series,
            first_series + series
        );
        // Block offset -> (length, bounds, the pieces reading it, verdict).
        let mut by_block: std::collections::BTreeMap<
            u64,
            (super::BlockMeta, Vec<String>, Result<()>),
        > = Default::default();
        for id in first_series as usize..(first_series + series) as usize {
            let metas = match file.blocks(id) {
                Ok(m) => m,
                Err(e) => {
                    bad.push(format!("series {id}: index: {e}"));
                    continue;
                }
            };
            for m in &metas {
                if m.length == 0 {
                    let (mut ts, mut vs) = (Vec::new(), Vec::new());
                    if let Err(e) = file.decode_block(id, m, &[], Some(&mut ts), &mut vs) {
                        bad.push(format!("series {id} piece {}: {e}", m.index));
                    }
                    continue;
                }
                if let std::collections::btree_map::Entry::Vacant(v) = raw_of.entry(m.offset) {
                    v.insert(file.read_at(m.offset, m.length, "block")?);
                }
                let raw = &raw_of[&m.offset];
                let (mut ts, mut vs) = (Vec::new(), Vec::new());
                let verdict = file.decode_block(id, m, raw, Some(&mut ts), &mut vs);
                let key = file
                    .series()
                    .get(id)
                    .map(|s| s.key.to_string())
                    .unwrap_or_default();
                let entry = by_block
                    .entry(m.offset)
                    .or_insert_with(|| (*m, Vec::new(), Ok(())));
                let values = if m.min.is_nan() && m.max.is_nan() {
                    "no values bound".to_string()
                } else {
                    format!("values {} ..= {}", m.min, m.max)
                };
                entry.1.push(format!(
                    "series {id} {key} piece {}: {} .. {}, {values}; {}",
                    m.index,
                    format_timestamp(m.first),
                    format_timestamp(m.last),
                    file.describe_piece(m).unwrap_or_default()
                ));
                if let Err(e) = verdict {
                    if entry.2.is_ok() {
                        entry.2 = Err(e);
                    }
                }
            }
        }
        for (k, (at, (m, readers, verdict))) in by_block.iter().enumerate() {
            checked += 1;
            if let Err(e) = verdict {
                bad.push(format!("block at byte {at}: {e}"));
            }
            if k >= max_blocks {
                continue;
            }
            let raw = &raw_of[at];
            let _ = writeln!(
                o,
                "@{:<8} {:>6} B  block {:<4} {}",
                at,
                m.length,
                k,
                hex(raw, 12)
            );
            let _ = writeln!(
                o,
                "{:27}read by {} piece(s) (bounds rounded outward):",
                "",
                readers.len()
            );
            for r in readers.iter().take(4) {
                let _ = writeln!(o, "{:27}  {r}", "");
            }
            if readers.len() > 4 {
                let _ = writeln!(o, "{:27}  … {} more", "", readers.len() - 4);
            }
            let verdict = match verdict {
                Ok(()) => "CRC32C ok, decodes".to_string(),
                Err(e) => format!("FAILED: {e}"),
            };
            let _ = writeln!(o, "{:27}{verdict}", "");
        }
        if by_block.len() > max_blocks {
            let _ = writeln!(
                o,
                "{:27}… {} more blocks (checked, not shown)",
                "",
                by_block.len() - max_blocks
            );
        }
    }
    let _ = writeln!(
        o,
        "\nchecked {checked} blocks: {}",
        if bad.is_empty() {
            "every CRC32C matches and every block decodes".to_string()
        } else {
            format!("{} FAILED", bad.len())
        }
    );
    for b in &bad {
        let _ = writeln!(o, "  FAILED {b}");
    }

    let _ = writeln!(
        o,
        "\nshared timestamp columns: {} (each stored once, read by every series scraped with it)",
        parts.columns.len()
    );
    for (k, &(w, c, start, at, length, samples)) in parts.columns.iter().enumerate() {
        let verdict = match file.check_shared_column(w, c) {
            Ok(_) => "CRC32C ok, decodes".to_string(),
            Err(e) => {
                bad.push(format!("shared column {c} of window {w}: {e}"));
                format!("FAILED: {e}")
            }
        };
        if k >= max_blocks.max(8) {
            continue;
        }
        let raw = file.read_at(at, length, "shared column")?;
        let parts = match super::parts::header_len(&raw, "shared column") {
            Ok(Some(_)) => super::parts::parse(
                &raw,
                samples as usize,
                length,
                u64::MAX,
                at,
                "shared column",
            )
            .ok(),
            _ => None,
        };
        let in_parts = if parts.is_some() { ", in parts" } else { "" };
        let _ = writeln!(
            o,
            "@{at:<8} {length:>6} B  column {c} of window {w} ({})  {}  {samples} samples{in_parts}, {verdict}",
            format_timestamp(start),
            hex(&raw, 8)
        );
        if let Some(p) = parts {
            let _ = writeln!(
                o,
                "{:27}header {} B (P = {} samples a part), parts:{}",
                "",
                p.header_len,
                p.per_part,
                p.parts
                    .iter()
                    .map(|&(off, len, first)| format!(
                        " @{} {len} B (from quantum {first})",
                        at + off
                    ))
                    .collect::<String>()
            );
        }
    }
    if parts.columns.len() > max_blocks.max(8) {
        let _ = writeln!(
            o,
            "{:27}… {} more columns (checked, not shown)",
            "",
            parts.columns.len() - max_blocks.max(8)
        );
    }

    let _ = writeln!(o, "\nindex pages: per piece its window, samples, where its timestamps and values are; per block its length, times, min and max (columns bit-packed) + CRC32C");
    for (p, &(at, length, first, series)) in parts.index_pages.iter().enumerate() {
        let raw = file.read_at(at, length, "index page")?;
        let pcs: u64 = file
            .series()
            .iter()
            .skip(first as usize)
            .take(series as usize)
            .map(|s| s.blocks)
            .sum();
        let _ = writeln!(
            o,
            "@{at:<8} {length:>6} B  index page {p:<3} {}  ({series} series, {pcs} pieces: {:.1} B a piece)",
            hex(&raw, 8),
            length as f64 / pcs.max(1) as f64
        );
    }
    let _ = writeln!(o, "\nname pages: keys front-coded (the prefix shared with the key before), zstd when smaller, + CRC32C");
    let mut symbols_shown = false;
    for (p, (at, length, series)) in parts.name_pages.iter().enumerate() {
        let raw = file.read_at(*at, *length, "name page")?;
        let coding = match raw.first() {
            Some(0) => "front-coded",
            Some(1) => "front-coded + zstd",
            _ => "unknown coding",
        };
        let _ = writeln!(
            o,
            "@{at:<8} {length:>6} B  name page {p:<4} {}  ({series} keys, {coding}, {:.1} B a key)",
            hex(&raw, 8),
            *length as f64 / (*series).max(1) as f64
        );
        if !symbols_shown {
            let shown: Vec<String> = file
                .series()
                .iter()
                .take(6)
                .map(|s| s.key.to_string())
                .collect();
            let _ = writeln!(
                o,
                "{:27}keys: {}{}",
                "",
                shown.join(", "),
                if file.series().len() > 6 { ", …" } else { "" }
            );
            symbols_shown = true;
        }
    }
    let (root_at, root_len) = file.directory_span();
    let root = file.read_at(root_at, root_len, "root")?;
    let _ = writeln!(
        o,
        "\n@{root_at:<8} {root_len:>6} B  root       {}",
        hex(&root, 12)
    );
    let _ = writeln!(
        o,
        "{:27}windows of {}, at most {} samples a piece; {} shared columns, {} index pages, {} name pages",
        "",
        crate::time::format_duration(parts.window_ns),
        parts.max_samples,
        parts.columns.len(),
        parts.index_pages.len(),
        parts.name_pages.len()
    );
    footer_lines(file, len, "root", &mut o)?;
    Ok(Inspection {
        text: o,
        failures: bad,
    })
}

/// The header's bytes and fields: magic, version, flags.
fn header_lines(file: &MetricsFile, o: &mut String) -> Result<()> {
    let header = file.read_at(0, HEADER_LEN, "header")?;
    let _ = writeln!(
        o,
        "\n@{:<8} {:>6} B  header     {}",
        0,
        HEADER_LEN,
        hex(&header, 16)
    );
    let _ = writeln!(
        o,
        "{:27}magic {:?}, version {}, flags {}",
        "",
        String::from_utf8_lossy(&header[..8]),
        u32::from_le_bytes([header[8], header[9], header[10], header[11]]),
        u32::from_le_bytes([header[12], header[13], header[14], header[15]])
    );
    Ok(())
}

/// The footer's bytes and fields; `points_to` names the part its first
/// offset and length locate (the directory in versions 1 and 2, the root
/// in version 3).
fn footer_lines(file: &MetricsFile, len: u64, points_to: &str, o: &mut String) -> Result<()> {
    let at = len - FOOTER_LEN;
    let footer = file.read_at(at, FOOTER_LEN, "footer")?;
    let mut r = ByteReader::new(&footer, "footer");
    let _ = writeln!(
        o,
        "\n@{at:<8} {FOOTER_LEN:>6} B  footer     {}",
        hex(&footer, 16)
    );
    let _ = writeln!(
        o,
        "{:27}{points_to} offset {}, length {}, CRC32C {:#010x}, {} series, {} blocks, version {}, magic {:?}",
        "",
        r.u64_le()?,
        r.u64_le()?,
        r.u32_le()?,
        r.u32_le()?,
        r.u32_le()?,
        r.u32_le()?,
        String::from_utf8_lossy(r.rest())
    );
    Ok(())
}
