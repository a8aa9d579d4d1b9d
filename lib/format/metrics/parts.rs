//! Shared timestamp columns in parts, so that a query for a few samples
//! reads a part of a large column rather than all of it.
//!
//! A shared column whose encoding is larger than the pieces' byte budget
//! (`BlockOptions::max_bytes`) — trades at random instants, say, at 3 or 4
//! bytes a timestamp — is cut into parts of `per_part` samples, each a
//! timestamp column of its own in the window's context with its own
//! CRC32C, behind a small header that gives each part's length and a lower
//! bound on its first timestamp:
//!
//! ```text
//! | 0x10 | header bytes h, from this marker through its CRC (varint) |
//! | samples a part, P (varint) | part count c (varint) |
//! | per part: bytes, CRC included (varint) |
//! |           first timestamp in quanta after the window start, rounded down,
//! |           from the previous part's (varint) |
//! | CRC32C (u32) of the header before it |
//! | part 0: timestamp column in the window's context | CRC32C | part 1 ... |
//! ```
//!
//! Part `k` holds samples `k·P ..` of the column, `P` of them except the
//! last (`1..=P`); `c = ceil(samples / P)` and `c ≥ 2`. The marker `0x10`
//! is a timestamp-column header with bit 4 set, which a column that is not
//! in parts never has (readers before parts refuse it as "unknown bits").
//! Part `k`'s timestamps lie in `[start + first_k·q, start + (first_{k+1} + 1)·q)`
//! (`q` the window's quantum; the last part: up to the column's bound in
//! the root), so a reader picks the parts a time range needs from the
//! header alone.

use crate::bytes::ByteReader;
use crate::codec::delta::{self, ColumnContext};
use crate::codec::varint::{len_u64, write_u64};
use crate::error::{Error, Result};

/// First byte of a column in parts.
pub(crate) const IN_PARTS: u8 = 0x10;
/// Fewest samples a part holds (below it the parts' own headers and CRCs
/// cost more than a query saves).
const MIN_PART: usize = 16;

/// The header of a column in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts {
    /// Bytes of the header, CRC included (the first part starts there).
    pub header_len: u64,
    /// Samples of every part but the last.
    pub per_part: usize,
    /// Per part: offset in the column, bytes (CRC included), first
    /// timestamp in quanta after the window start, rounded down.
    pub parts: Vec<(u64, u64, u64)>,
}

impl Parts {
    /// Samples of part `k` of a `samples`-sample column.
    pub fn samples(&self, k: usize, samples: usize) -> usize {
        samples.saturating_sub(k * self.per_part).min(self.per_part)
    }

    /// Bounds on the timestamps of part `k`: `[start + first_k·q, next)`
    /// where `next` is the following part's first quantum plus one, the
    /// last part's `last` (the column's bound from the root).
    pub fn bounds(&self, k: usize, start: i64, q: i64, last: i64) -> (i64, i64) {
        let at = |quanta: u64| start as i128 + quanta as i128 * q as i128;
        let clamp = |x: i128| x.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        let lo = self.parts.get(k).map_or(i64::MAX, |p| clamp(at(p.2)));
        let hi = match self.parts.get(k + 1) {
            Some(next) => clamp(at(next.2.saturating_add(1)) - 1).min(last),
            None => last,
        };
        (lo, hi)
    }
}

/// Encodes shared column `ts` in the window's context `ctx`, CRCs
/// included: whole (`| column | CRC32C |`) when that takes at most
/// `max_bytes`, else in parts of about `max_bytes / 2` bytes each. A
/// column whose timestamps go back in time stays whole (its parts'
/// bounds would not hold).
pub(crate) fn encode(ts: &[i64], ctx: ColumnContext, q: i64, max_bytes: usize) -> Vec<u8> {
    let mut whole = Vec::new();
    delta::encode_smallest_in_context(ts, &mut { ctx }, &mut whole);
    let target = (max_bytes / 2).max(1) as u128;
    let per_part = (ts.len() as u128 * target)
        .div_ceil(whole.len().max(1) as u128)
        .max(MIN_PART as u128);
    let sorted = ts.windows(2).all(|w| w[0] <= w[1]);
    if whole.len() <= max_bytes || ts.len() as u128 <= per_part || !sorted {
        let crc = crc32c::crc32c(&whole);
        whole.extend_from_slice(&crc.to_le_bytes());
        return whole;
    }
    let mut body = Vec::new();
    let mut table = Vec::new();
    // per_part < ts.len() here, so it fits a usize.
    let per_part = per_part as usize;
    write_u64(&mut table, per_part as u64);
    write_u64(&mut table, ts.len().div_ceil(per_part) as u64);
    let mut prev = 0;
    for chunk in ts.chunks(per_part) {
        let at = body.len();
        delta::encode_smallest_in_context(chunk, &mut { ctx }, &mut body);
        let crc = crc32c::crc32c(&body[at..]);
        body.extend_from_slice(&crc.to_le_bytes());
        let first = ((chunk[0] as i128 - ctx.first as i128).max(0) / q as i128) as u64;
        write_u64(&mut table, (body.len() - at) as u64);
        write_u64(&mut table, first - prev);
        prev = first;
    }
    // The header's length counts its own varint.
    let mut h = 1 + table.len() + 4 + 1;
    while 1 + len_u64(h as u64) + table.len() + 4 != h {
        h = 1 + len_u64(h as u64) + table.len() + 4;
    }
    let mut out = Vec::with_capacity(h + body.len());
    out.push(IN_PARTS);
    write_u64(&mut out, h as u64);
    out.extend_from_slice(&table);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The header length a column in parts declares, from its first bytes
/// (at most 4 are needed); `None` when the column is not in parts.
pub(crate) fn header_len(prefix: &[u8], what: &str) -> Result<Option<u64>> {
    let mut r = ByteReader::new(prefix, what);
    match r.try_u8() {
        Some(IN_PARTS) => Ok(Some(r.varint()?)),
        _ => Ok(None),
    }
}

/// Parses and checks the header of a column in parts (`header`: its
/// first `header_len` bytes at least) of `samples` samples and
/// `column_len` bytes, at file offset `at`.
///
/// Every part's first quantum must lie inside the window: at most
/// `max_quantum` (the window's length in quanta).
pub(crate) fn parse(
    header: &[u8],
    samples: usize,
    column_len: u64,
    max_quantum: u64,
    at: u64,
    what: &str,
) -> Result<Parts> {
    let mut r = ByteReader::at_offset(header, at, what);
    if r.u8()? != IN_PARTS {
        return Err(r.corrupt("not a column in parts"));
    }
    let h = r.varint()?;
    if h > column_len || h > header.len() as u64 || h < 4 {
        return Err(Error::corrupt(
            what,
            at,
            format!("a header of {h} bytes in a {column_len}-byte column"),
        ));
    }
    let body = super::crc_body(&header[..h as usize])
        .map_err(|e| Error::corrupt(what, at, format!("parts header: {e}")))?;
    let mut r = ByteReader::at_offset(body, at, what);
    r.u8()?;
    r.varint()?;
    let per_part = r.varint()?;
    let count = r.count(2, "part")?;
    if per_part == 0
        || count < 2
        || (count as u64 - 1).saturating_mul(per_part) >= samples as u64
        || (count as u64).saturating_mul(per_part) < samples as u64
    {
        return Err(r.corrupt(format!(
            "{count} parts of {per_part} samples cannot hold a {samples}-sample column"
        )));
    }
    let mut parts = Vec::with_capacity(count);
    let (mut offset, mut first) = (h, 0u64);
    for _ in 0..count {
        let len = r.varint()?;
        first = first
            .checked_add(r.varint()?)
            .filter(|&f| f <= max_quantum)
            .ok_or_else(|| {
                r.corrupt(format!(
                    "a part's first quantum beyond the window's {max_quantum}"
                ))
            })?;
        if len < 5 {
            return Err(r.corrupt(format!("a part of {len} bytes")));
        }
        parts.push((offset, len, first));
        offset = offset.saturating_add(len);
    }
    if !r.is_empty() || offset != column_len {
        return Err(r.corrupt(format!(
            "parts end at byte {offset} of a {column_len}-byte column"
        )));
    }
    Ok(Parts {
        header_len: h,
        per_part: per_part as usize,
        parts,
    })
}

/// What decoding the parts of one column needs besides their bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    /// Samples of the whole column.
    pub samples: usize,
    /// The window's context: its start and base tick.
    pub ctx: ColumnContext,
    /// Nanoseconds of a quantum of the window.
    pub q: i64,
    /// The column's last timestamp bound, from the root.
    pub last: i64,
}

/// Checks and decodes part `k` of `column` (`raw`: its bytes, CRC
/// included, at file offset `at`), appending its timestamps to `out`;
/// they must start in the quantum the header gives and lie inside the
/// part's bounds.
pub(crate) fn decode_part(
    parts: &Parts,
    column: &Column,
    k: usize,
    raw: &[u8],
    at: u64,
    what: &str,
    out: &mut Vec<i64>,
) -> Result<()> {
    let Column {
        samples,
        ctx,
        q,
        last,
    } = *column;
    let bad = |reason: String| Error::corrupt(format!("{what}, part {k}"), at, reason);
    let body = super::crc_body(raw).map_err(bad)?;
    let t0 = out.len();
    delta::decode_in_context(body, parts.samples(k, samples), ctx, out)
        .map_err(|e| e.within(format!("{what}, part {k} at byte {at}")))?;
    let (lo, hi) = parts.bounds(k, ctx.first, q, last);
    let first_q = parts.parts.get(k).map_or(0, |p| p.2);
    let starts = out
        .get(t0)
        .is_some_and(|&t| (t as i128 - ctx.first as i128).max(0) / q as i128 == first_q as i128);
    if !starts || !out[t0..].iter().all(|t| (lo..=hi).contains(t)) {
        out.truncate(t0);
        return Err(bad(format!(
            "timestamps outside the part's bounds {lo}..={hi}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trades(n: usize) -> Vec<i64> {
        let mut t = 1_000_000_000i64;
        (0..n)
            .map(|i| {
                t += 1 + (i as i64 * 2_654_435_761 % 9_000_000_007).abs();
                t
            })
            .collect()
    }

    #[test]
    fn a_large_column_goes_in_parts_and_each_part_reads_alone() {
        let ts = trades(256);
        let ctx = ColumnContext { first: 0, tick: 1 };
        let q = 5_273_438_000;
        let bytes = encode(&ts, ctx, q, 512);
        assert_eq!(bytes[0], IN_PARTS);
        let h = header_len(&bytes[..4], "c").unwrap().unwrap();
        let parts = parse(
            &bytes[..h as usize],
            ts.len(),
            bytes.len() as u64,
            u64::MAX,
            0,
            "c",
        )
        .unwrap();
        assert!(parts.parts.len() >= 3, "{parts:?}");
        let mut all = Vec::new();
        for (k, &(at, len, _)) in parts.parts.iter().enumerate() {
            let mut one = Vec::new();
            let raw = &bytes[at as usize..(at + len) as usize];
            let column = Column {
                samples: ts.len(),
                ctx,
                q,
                last: i64::MAX,
            };
            decode_part(&parts, &column, k, raw, at, "c", &mut one).unwrap();
            let (lo, hi) = parts.bounds(k, 0, q, i64::MAX);
            assert!(one.iter().all(|t| (lo..=hi).contains(t)));
            all.extend(one);
        }
        assert_eq!(all, ts);
    }

    /// A header whose CRC holds but whose first quanta lie beyond the
    /// window is refused, and bounds never overflow.
    #[test]
    fn a_first_quantum_beyond_the_window_is_refused() {
        let forged = |second: u64| {
            let mut table = Vec::new();
            for v in [2u64, 2, 9, 0, 9, second] {
                write_u64(&mut table, v);
            }
            let h = 1 + 1 + table.len() + 4;
            let mut out = vec![IN_PARTS, h as u8];
            out.extend_from_slice(&table);
            let crc = crc32c::crc32c(&out);
            out.extend_from_slice(&crc.to_le_bytes());
            out
        };
        let ok = forged(3);
        let len = ok.len() as u64 + 18;
        assert!(parse(&ok, 4, len, 4097, 0, "c").is_ok());
        let bad = forged(u64::MAX);
        assert!(parse(&bad, 4, len, 4097, 0, "c").is_err());
        assert!(parse(&forged(4098), 4, len, 4097, 0, "c").is_err());
        let p = Parts {
            header_len: 0,
            per_part: 2,
            parts: vec![(0, 9, 0), (9, 9, u64::MAX)],
        };
        assert_eq!(p.bounds(0, i64::MAX, i64::MAX, i64::MAX).1, i64::MAX);
    }

    #[test]
    fn a_small_column_stays_whole() {
        let ts: Vec<i64> = (0..256).map(|i| i * 15_000_000_000).collect();
        let bytes = encode(&ts, ColumnContext::default(), 1, 512);
        assert_ne!(bytes[0], IN_PARTS);
        assert_eq!(header_len(&bytes, "c").unwrap(), None);
    }
}
