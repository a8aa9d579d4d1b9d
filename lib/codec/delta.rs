//! Timestamp coding: delta, delta-of-delta, tick scaling, and two ways to
//! store the delta-of-deltas (Gorilla's bit buckets, or zigzag varints with
//! zero runs collapsed).
//!
//! Scrape timestamps are nearly regular: `t, t+15s, t+30s ± a few ms ...`.
//! Their deltas are nearly constant and their delta-of-deltas are tiny.
//!
//! ```text
//!   timestamps      1000 16003 31001 46001 61002
//!   deltas               15003 14998 15000 15001
//!   delta-of-deltas            -5     2     1
//! ```
//!
//! **Tick scaling.** Timestamps are nanoseconds, but scrapers stamp them in
//! milliseconds, so every delta is a multiple of 1,000,000. The encoder finds
//! the greatest common divisor of all deltas (the *tick*) and codes deltas in
//! ticks: a jitter of 3 ms is the number 3, not 3,000,000.
//!
//! # Column layout
//!
//! ```text
//! | scheme (1B) | first timestamp (zigzag varint) | tick (varint) | first delta in ticks (zigzag varint) | dods ... |
//!                 ^ present if n >= 1                ^ both present if n >= 2                          ^ n-2 of them
//! ```
//!
//! `scheme` 0, **Gorilla buckets** (the paper's table, with a 64-bit escape
//! because nanosecond timestamps need more than the paper's 32 bits):
//!
//! | control | payload | delta-of-delta range |
//! |---------|---------|----------------------|
//! | `0`     | –       | 0                    |
//! | `10`    | 7 bits  | -63 ..= 64           |
//! | `110`   | 9 bits  | -255 ..= 256         |
//! | `1110`  | 12 bits | -2047 ..= 2048       |
//! | `1111`  | 64 bits | anything             |
//!
//! A bucket of `k` bits stores `dod + (2^(k-1) - 1)`, a number in `0..2^k`.
//!
//! `scheme` 1, **varint + zero runs**: the dods as zigzag varints with runs of
//! zeros collapsed (see [`crate::codec::rle`]).
//!
//! The number of timestamps `n` is not stored here: the container stores it
//! once per series and hands it to [`decode`]. All arithmetic wraps, so any
//! `i64` sequence (decreasing, `i64::MIN..=i64::MAX`) round-trips.

use crate::bytes::ByteReader;
use crate::codec::bits::{BitReader, BitWriter};
use crate::codec::rle;
use crate::codec::varint::{len_u64, write_i64, write_u64};
use crate::error::Result;

/// How the delta-of-deltas are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimestampScheme {
    /// Gorilla's bucketed bit codes.
    GorillaBuckets = 0,
    /// Zigzag varints with zero runs collapsed.
    VarintZeroRuns = 1,
}

impl TimestampScheme {
    pub const ALL: [TimestampScheme; 2] = [Self::GorillaBuckets, Self::VarintZeroRuns];

    pub fn name(self) -> &'static str {
        match self {
            Self::GorillaBuckets => "gorilla-buckets",
            Self::VarintZeroRuns => "varint+zero-runs",
        }
    }
}

/// Successive differences `t[i] - t[i-1]` (wrapping), one fewer than the input.
pub fn deltas(ts: &[i64]) -> impl Iterator<Item = i64> + '_ {
    ts.windows(2).map(|w| w[1].wrapping_sub(w[0]))
}

/// The greatest common divisor of all deltas, or 1 when there is none worth
/// using (fewer than two samples, all deltas zero, or a delta that overflows).
pub fn tick(ts: &[i64]) -> u64 {
    let mut g: u64 = 0;
    let mut prev: Option<i64> = None;
    for w in ts.windows(2) {
        let Some(d) = w[1].checked_sub(w[0]) else {
            return 1;
        };
        // Most deltas repeat the previous one: nothing new to divide by.
        if prev == Some(d) {
            continue;
        }
        prev = Some(d);
        g = gcd(g, d.unsigned_abs());
        if g == 1 {
            return 1;
        }
    }
    g.max(1)
}

/// Euclid's GCD. When the running GCD already divides the new delta (the
/// common case) this is a single remainder.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Divides exact multiples of a divisor without a hardware division.
///
/// Q: Why not `d / tick`?
/// A: A 64-bit `idiv` costs tens of cycles, more than coding the sample.
/// Every delta is a multiple of the tick `2^k * o` (o odd), so `d >> k` is an
/// exact multiple of `o`, and multiplying by the inverse of `o` modulo 2^64
/// gives the quotient exactly, in one multiply.
#[derive(Debug, Clone, Copy)]
struct ExactDivisor {
    shift: u32,
    inverse: u64,
}

impl ExactDivisor {
    fn new(divisor: u64) -> Self {
        let divisor = divisor.max(1);
        let shift = divisor.trailing_zeros();
        let odd = divisor >> shift;
        // Newton's iteration: each step doubles the correct low bits (3, 6, ... 96).
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        ExactDivisor { shift, inverse }
    }

    #[inline(always)]
    fn divide(self, multiple: i64) -> i64 {
        ((multiple >> self.shift) as u64).wrapping_mul(self.inverse) as i64
    }
}

/// Deltas divided by `tick` (exact when `tick` came from [`tick`]).
fn scaled_deltas(ts: &[i64], tick: u64) -> impl Iterator<Item = i64> + '_ {
    let div = ExactDivisor::new(tick);
    deltas(ts).map(move |d| div.divide(d))
}

/// Delta-of-deltas of the scaled deltas, starting with the second delta.
pub fn scaled_dods(ts: &[i64], tick: u64) -> impl Iterator<Item = i64> + '_ {
    let mut prev: Option<i64> = None;
    scaled_deltas(ts, tick).filter_map(move |d| {
        let out = prev.map(|p| d.wrapping_sub(p));
        prev = Some(d);
        out
    })
}

/// Encodes `ts` with `scheme`, appending the column to `out`.
pub fn encode(ts: &[i64], scheme: TimestampScheme, out: &mut Vec<u8>) {
    out.push(scheme as u8);
    let Some(&first) = ts.first() else { return };
    write_i64(out, first);
    if ts.len() < 2 {
        return;
    }
    let tick = tick(ts);
    write_u64(out, tick);
    write_stream(ts, tick, scheme, out);
}

/// The first delta in ticks, then the delta-of-deltas in `scheme`.
fn write_stream(ts: &[i64], tick: u64, scheme: TimestampScheme, out: &mut Vec<u8>) {
    write_i64(out, scaled_deltas(ts, tick).next().unwrap_or(0));
    match scheme {
        TimestampScheme::GorillaBuckets => {
            let mut w = BitWriter::append_to(std::mem::take(out));
            for dod in scaled_dods(ts, tick) {
                write_bucket(&mut w, dod);
            }
            *out = w.finish();
        }
        TimestampScheme::VarintZeroRuns => rle::encode_zero_runs(scaled_dods(ts, tick), out),
    }
}

/// What a container remembers from the previous timestamp column, so the
/// next one can be stored relative to it (see [`encode_in_context`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnContext {
    /// First timestamp of the previous non-empty column.
    pub first: i64,
    /// Tick of the previous column of two or more timestamps (0 at the start).
    pub tick: u64,
}

/// Encodes a column relative to the previous one, for containers that hold
/// many columns (thousands of short series repeat the same tick and start
/// close together). Layout:
///
/// ```text
/// | header u8: scheme (bits 0-1), "first in ticks" (bit 2), "tick as a multiple" (bit 3) |
/// | tick XOR previous tick, or with bit 3 tick / previous tick (varint) | n >= 2
/// | first - previous first, in ticks if bit 2 (zigzag varint) | n >= 1
/// | first delta in ticks, delta-of-deltas (as in `encode`)    | n >= 2
/// ```
///
/// A tick that is a multiple of the previous one (240 s after 60 s) is
/// stored as the factor when that is shorter than the XOR. A one-timestamp
/// column uses the previous tick for its first timestamp.
pub fn encode_in_context(
    ts: &[i64],
    ctx: &mut ColumnContext,
    scheme: TimestampScheme,
    out: &mut Vec<u8>,
) {
    let Some(&first) = ts.first() else {
        out.push(scheme as u8);
        return;
    };
    let tick = if ts.len() >= 2 {
        tick(ts)
    } else {
        ctx.tick.max(1)
    };
    let q = first.wrapping_sub(ctx.first) as i128;
    let in_ticks = tick > 1 && tick <= i64::MAX as u64 && q % tick as i128 == 0;
    let xor = tick ^ ctx.tick;
    let factor = (ts.len() >= 2 && ctx.tick > 1 && tick % ctx.tick == 0)
        .then(|| tick / ctx.tick)
        .filter(|&f| len_u64(f) < len_u64(xor));
    out.push(scheme as u8 | (u8::from(in_ticks) << 2) | (u8::from(factor.is_some()) << 3));
    if ts.len() >= 2 {
        write_u64(out, factor.unwrap_or(xor));
    }
    write_i64(
        out,
        if in_ticks {
            (q / tick as i128) as i64
        } else {
            q as i64
        },
    );
    if ts.len() >= 2 {
        write_stream(ts, tick, scheme, out);
        ctx.tick = tick;
    }
    ctx.first = first;
}

/// Encodes in context with every scheme and keeps the smallest.
pub fn encode_smallest_in_context(
    ts: &[i64],
    ctx: &mut ColumnContext,
    out: &mut Vec<u8>,
) -> TimestampScheme {
    let mut best: Option<(TimestampScheme, Vec<u8>, ColumnContext)> = None;
    for scheme in TimestampScheme::ALL {
        let (mut buf, mut c) = (Vec::new(), *ctx);
        encode_in_context(ts, &mut c, scheme, &mut buf);
        if best.as_ref().is_none_or(|(_, b, _)| buf.len() < b.len()) {
            best = Some((scheme, buf, c));
        }
    }
    match best {
        Some((scheme, bytes, c)) => {
            out.extend_from_slice(&bytes);
            *ctx = c;
            scheme
        }
        None => TimestampScheme::VarintZeroRuns,
    }
}

/// Encodes with every scheme and keeps the smallest.
pub fn encode_smallest(ts: &[i64], out: &mut Vec<u8>) -> TimestampScheme {
    let mut best: Option<(TimestampScheme, Vec<u8>)> = None;
    for scheme in TimestampScheme::ALL {
        let mut buf = Vec::new();
        encode(ts, scheme, &mut buf);
        if best.as_ref().is_none_or(|(_, b)| buf.len() < b.len()) {
            best = Some((scheme, buf));
        }
    }
    let (scheme, bytes) = best.unwrap_or((TimestampScheme::VarintZeroRuns, vec![1]));
    out.extend_from_slice(&bytes);
    scheme
}

#[inline(always)]
fn write_bucket(w: &mut BitWriter, dod: i64) {
    match dod {
        0 => w.write_bits(0b0, 1),
        -63..=64 => w.write_bits((0b10 << 7) | (dod + 63) as u64, 9),
        -255..=256 => w.write_bits((0b110 << 9) | (dod + 255) as u64, 12),
        -2047..=2048 => w.write_bits((0b1110 << 12) | (dod + 2047) as u64, 16),
        _ => {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }
}

/// Reads one bucket. One 16-bit peek holds the control code and, for the
/// three small buckets, the payload too, so most dods cost one peek and one skip.
#[inline(always)]
fn read_bucket(r: &mut BitReader<'_>) -> Result<i64> {
    let p = r.peek_bits(16) as i64;
    if p >> 15 == 0 {
        r.skip(1)?;
        Ok(0)
    } else if p >> 14 == 0b10 {
        r.skip(9)?;
        Ok(((p >> 7) & 0x7F) - 63)
    } else if p >> 13 == 0b110 {
        r.skip(12)?;
        Ok(((p >> 4) & 0x1FF) - 255)
    } else if p >> 12 == 0b1110 {
        r.skip(16)?;
        Ok((p & 0xFFF) - 2047)
    } else {
        r.skip(4)?;
        Ok(r.read_bits(64)? as i64)
    }
}

/// Decodes a column of exactly `n` timestamps from the whole of `payload`,
/// appending them to `out`. Trailing bytes are an error.
pub fn decode(payload: &[u8], n: usize, out: &mut Vec<i64>) -> Result<()> {
    let mut r = ByteReader::new(payload, "timestamp column");
    let tag = r.u8()?;
    let scheme = parse_scheme(&mut r, tag)?;
    if n == 0 {
        return finish_bytes(&r);
    }
    let t = r.varint_i64()?;
    if n == 1 {
        out.push(t);
        return finish_bytes(&r);
    }
    let tick = r.varint()?;
    read_stream(r, payload.len(), n, t, tick, scheme, out)
}

fn parse_scheme(r: &mut ByteReader<'_>, tag: u8) -> Result<TimestampScheme> {
    match tag {
        0 => Ok(TimestampScheme::GorillaBuckets),
        1 => Ok(TimestampScheme::VarintZeroRuns),
        other => Err(r.corrupt(format!("unknown timestamp scheme {other}"))),
    }
}

/// Reads a column's header in context: its scheme, tick and first
/// timestamp, and the context after it. Used to walk many columns without
/// decoding them.
pub fn read_context(
    payload: &[u8],
    n: usize,
    ctx: ColumnContext,
) -> Result<(ColumnContext, ByteReader<'_>, TimestampScheme, u64)> {
    let mut r = ByteReader::new(payload, "timestamp column");
    let header = r.u8()?;
    if header & !0b1111 != 0 {
        return Err(r.corrupt(format!(
            "timestamp column header {header:#04x} has unknown bits"
        )));
    }
    let scheme = parse_scheme(&mut r, header & 0b11)?;
    let in_ticks = header & 0b100 != 0;
    let multiple = header & 0b1000 != 0;
    if (n == 0 && in_ticks) || (n < 2 && multiple) {
        return Err(r.corrupt(format!(
            "a column of {n} timestamps with header {header:#04x}"
        )));
    }
    if n == 0 {
        return Ok((ctx, r, scheme, ctx.tick));
    }
    let tick = if n >= 2 {
        let code = r.varint()?;
        if multiple {
            code.checked_mul(ctx.tick)
                .ok_or_else(|| r.corrupt(format!("tick {code} × {} overflows", ctx.tick)))?
        } else {
            code ^ ctx.tick
        }
    } else {
        ctx.tick.max(1)
    };
    if tick == 0 {
        return Err(r.corrupt("tick is zero"));
    }
    let code = r.varint_i64()?;
    let first = if in_ticks {
        ctx.first.wrapping_add(code.wrapping_mul(tick as i64))
    } else {
        ctx.first.wrapping_add(code)
    };
    let next = ColumnContext {
        first,
        tick: if n >= 2 { tick } else { ctx.tick },
    };
    Ok((next, r, scheme, tick))
}

/// Decodes a column written by [`encode_in_context`] with the same context,
/// appending its `n` timestamps to `out`; returns the context after it.
pub fn decode_in_context(
    payload: &[u8],
    n: usize,
    ctx: ColumnContext,
    out: &mut Vec<i64>,
) -> Result<ColumnContext> {
    let (next, r, scheme, tick) = read_context(payload, n, ctx)?;
    match n {
        0 => finish_bytes(&r)?,
        1 => {
            out.push(next.first);
            finish_bytes(&r)?
        }
        _ => read_stream(r, payload.len(), n, next.first, tick, scheme, out)?,
    }
    Ok(next)
}

/// Pushes `t0` and the `n - 1` timestamps after it, read from the first
/// delta and the delta-of-deltas that follow in `r`.
fn read_stream(
    mut r: ByteReader<'_>,
    payload_len: usize,
    n: usize,
    t0: i64,
    tick: u64,
    scheme: TimestampScheme,
    out: &mut Vec<i64>,
) -> Result<()> {
    if tick == 0 {
        return Err(r.corrupt("tick is zero"));
    }
    let tick = tick as i64;
    let mut t = t0;
    out.reserve(n.min(payload_len * 8 + 2));
    out.push(t);
    let mut delta = r.varint_i64()?;
    t = t.wrapping_add(delta.wrapping_mul(tick));
    out.push(t);
    let dods = n - 2;
    match scheme {
        TimestampScheme::GorillaBuckets => {
            let bits = r.rest();
            let mut br = BitReader::new(bits);
            if dods as u64 > br.remaining() {
                return Err(crate::error::Error::truncated(
                    "timestamp column",
                    payload_len as u64,
                    format!(
                        "{dods} delta-of-deltas cannot fit in {} bits",
                        br.remaining()
                    ),
                ));
            }
            for _ in 0..dods {
                delta = delta.wrapping_add(read_bucket(&mut br)?);
                t = t.wrapping_add(delta.wrapping_mul(tick));
                out.push(t);
            }
            finish_bits(&mut br, payload_len - bits.len())
        }
        TimestampScheme::VarintZeroRuns => {
            rle::decode_zero_runs(&mut r, dods, |dod| {
                delta = delta.wrapping_add(dod);
                t = t.wrapping_add(delta.wrapping_mul(tick));
                out.push(t);
            })?;
            finish_bytes(&r)
        }
    }
}

/// A byte-oriented stream must end exactly where its last value ends.
pub(crate) fn finish_bytes(r: &ByteReader<'_>) -> Result<()> {
    if !r.is_empty() {
        return Err(r.corrupt(format!("{} unexpected trailing bytes", r.remaining())));
    }
    Ok(())
}

/// A bit stream may end with at most 7 zero bits of padding.
pub(crate) fn finish_bits(r: &mut BitReader<'_>, base: usize) -> Result<()> {
    let left = r.remaining();
    let padding_ok = left < 8 && (left == 0 || r.peek_bits(left as u32) == 0);
    if !padding_ok {
        return Err(crate::error::Error::corrupt(
            "bit stream",
            (base + r.bytes_consumed()) as u64,
            format!("{left} unexpected trailing bits"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn scrape_times() -> Vec<i64> {
        let base = 1_700_000_000_000 * MS;
        [0, 15_003, 30_001, 45_001, 60_002, 75_002, 90_002]
            .iter()
            .map(|ms| base + ms * MS)
            .collect()
    }

    fn round_trip(ts: &[i64], scheme: TimestampScheme) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(ts, scheme, &mut buf);
        let mut back = Vec::new();
        decode(&buf, ts.len(), &mut back).unwrap();
        assert_eq!(back, ts, "{scheme:?}");
        buf
    }

    #[test]
    fn exact_divisor_matches_division() {
        for tick in [1u64, 2, 3, 7, 60, 1_000_000, 15_000_000_000, (1 << 40) + 1] {
            let div = ExactDivisor::new(tick);
            for q in [
                0i64,
                1,
                -1,
                12345,
                -98765,
                i64::MAX / tick as i64,
                i64::MIN / tick as i64,
            ] {
                assert_eq!(div.divide(q * tick as i64), q, "{q} * {tick}");
            }
        }
    }

    #[test]
    fn gcd_matches_euclid() {
        for (a, b, g) in [
            (0, 0, 0),
            (0, 5, 5),
            (12, 18, 6),
            (1 << 40, 3 << 20, 1 << 20),
            (17, 5, 1),
        ] {
            assert_eq!(gcd(a, b), g);
        }
    }

    #[test]
    fn tick_finds_milliseconds() {
        assert_eq!(tick(&scrape_times()), MS as u64);
        assert_eq!(tick(&[5]), 1);
        assert_eq!(tick(&[5, 5, 5]), 1);
        assert_eq!(tick(&[i64::MIN, i64::MAX]), 1);
        assert_eq!(tick(&[0, 30, 90, 60]), 30);
    }

    #[test]
    fn golden_bytes_gorilla_buckets() {
        let bytes = round_trip(
            &[1000, 1060, 1120, 1185, 1240],
            TimestampScheme::GorillaBuckets,
        );
        // scheme 0 | first ts 1000 zigzag=2000 -> D0 0F | tick 5 | first delta 60/5=12 -> 18
        // dods in ticks: 0, +1, -2 -> bits 0 | 10 1000000 | 10 0111101 | pad
        assert_eq!(bytes, [0x00, 0xD0, 0x0F, 0x05, 0x18, 0x50, 0x27, 0xA0]);
    }

    #[test]
    fn golden_bytes_varint_zero_runs() {
        let bytes = round_trip(&[10, 20, 30, 40, 50, 61], TimestampScheme::VarintZeroRuns);
        // scheme 1 | first 10 -> 14 | tick 1 | delta 10 -> 14 | run of 3 zeros: 07 | +1: 04
        assert_eq!(bytes, [0x01, 0x14, 0x01, 0x14, 0x07, 0x04]);
    }

    #[test]
    fn both_schemes_round_trip_edge_cases() {
        let cases: Vec<Vec<i64>> = vec![
            vec![],
            vec![42],
            vec![i64::MIN, i64::MAX, i64::MIN, 0],
            vec![5, 5, 5, 5],
            vec![100, 90, 80, 85, -3],
            scrape_times(),
        ];
        for ts in &cases {
            for scheme in TimestampScheme::ALL {
                round_trip(ts, scheme);
            }
        }
    }

    #[test]
    fn every_prefix_is_an_error() {
        for scheme in TimestampScheme::ALL {
            let ts = scrape_times();
            let mut buf = Vec::new();
            encode(&ts, scheme, &mut buf);
            for cut in 0..buf.len() {
                let mut out = Vec::new();
                assert!(
                    decode(&buf[..cut], ts.len(), &mut out).is_err(),
                    "{scheme:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        for scheme in TimestampScheme::ALL {
            let mut buf = Vec::new();
            encode(&scrape_times(), scheme, &mut buf);
            buf.push(0xFF);
            assert!(decode(&buf, 7, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn in_context_ticks_that_are_multiples_cost_their_factor() {
        let s = 1_000_000_000i64;
        let ctx = ColumnContext {
            first: 0,
            tick: 60 * s as u64,
        };
        for step in [60 * s, 240 * s, 90 * s, 30 * s] {
            let ts: Vec<i64> = (0..5).map(|i| 600 * s + i * step).collect();
            let (mut c, mut out) = (ctx, Vec::new());
            encode_in_context(&ts, &mut c, TimestampScheme::VarintZeroRuns, &mut out);
            let multiple = step % (60 * s) == 0 && step != 60 * s;
            assert_eq!(out[0] & 0b1000 != 0, multiple, "{step}: {out:02x?}");
            if multiple {
                assert_eq!(out[1] as i64, step / (60 * s), "the factor, one byte");
            }
            let mut back = Vec::new();
            assert_eq!(decode_in_context(&out, 5, ctx, &mut back).unwrap(), c);
            assert_eq!(back, ts);
        }
        // The flag on a column too short to have a tick is corrupt.
        assert!(decode_in_context(&[0b1001, 0], 1, ctx, &mut Vec::new()).is_err());
    }

    #[test]
    fn smallest_picks_zero_runs_for_regular_data() {
        let ts: Vec<i64> = (0..1000).map(|i| i * 60).collect();
        let mut out = Vec::new();
        assert_eq!(
            encode_smallest(&ts, &mut out),
            TimestampScheme::VarintZeroRuns
        );
    }
}
