//! A dump of a `.metrics` file: every part with its offset, length, the hex
//! of its first bytes and its decoded fields, so the layout can be seen.

use std::fmt::Write as _;

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
        crate::format::compressed::scheme_name(ts_scheme as usize)
    ))
}

/// Renders the dump. `max_blocks` limits the blocks *shown* per series;
/// every block is checked.
pub fn inspect(file: &MetricsFile, max_blocks: usize) -> Result<Inspection> {
    let mut o = String::new();
    let len = file.len();
    let _ = writeln!(
        o,
        "file: {len} bytes, {} series, {} blocks",
        file.series().len(),
        file.block_count()
    );

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
        let raw = file.read_at(s.list_offset, s.list_len, "block list")?;
        let _ = writeln!(
            o,
            "@{:<8} {:>6} B  list {:<5} {}  ({} entries, ~{:.1} B each)",
            s.list_offset,
            s.list_len,
            i,
            hex(&raw, 12),
            s.blocks,
            (s.list_len - 4) as f64 / s.blocks.max(1) as f64
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
        "{:27}directory offset {}, length {}, CRC32C {:#010x}, {} series, {} blocks, version {}, magic {:?}",
        "",
        r.u64_le()?,
        r.u64_le()?,
        r.u32_le()?,
        r.u32_le()?,
        r.u32_le()?,
        r.u32_le()?,
        String::from_utf8_lossy(r.rest())
    );
    Ok(Inspection {
        text: o,
        failures: bad,
    })
}
