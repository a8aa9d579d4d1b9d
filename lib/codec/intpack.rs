//! Bit-packed integers: frame of reference, or deltas with a frame of reference.
//!
//! A block of `i64`s whose spread is small is stored as a base plus a fixed
//! number of bits per value. Two modes, whichever is smaller:
//!
//! ```text
//! mode 0, frame of reference:  | 0 | base: zigzag varint | width u8 | n × width bits: k - base |
//! mode 1, deltas:              | 1 | first: zigzag varint | base: zigzag varint | width u8 |
//!                              | (n - 1) × width bits: (k[i] - k[i-1]) - base |
//! ```
//!
//! `3742, 3750, 3739` (a CPU % with two decimals, scaled by 100): frame of
//! reference stores base 3739 and 4 bits each (3, 11, 0); deltas store
//! 3742, base -11 and 5 bits each (19, 0). A counter (`1000, 1040, 1085`)
//! packs best as deltas.
//!
//! Values must stay within ±(2^62 − 1) so that every difference of two
//! values fits an `i64`; spans are computed modulo 2^64, so every packed
//! field fits 64 bits. `n` is not stored.

use crate::bytes::ByteReader;
use crate::codec::bits::{BitReader, BitWriter};
use crate::codec::varint::{len_u64, write_i64, zigzag};
use crate::error::{Error, Result};

/// The largest magnitude this codec accepts.
pub const LIMIT: i64 = (1 << 62) - 1;

fn width(span: u64) -> u32 {
    64 - span.leading_zeros()
}

/// What [`encode`] will write for some integers: the size, the mode, and
/// the base and width it packs with (from one pass over them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Encoded size in bytes.
    pub size: usize,
    /// 0: frame of reference over the values; 1: over their deltas.
    pub mode: u8,
    /// Mode 0: the smallest value; mode 1: the smallest delta.
    base: i64,
    /// Bits a packed value.
    width: u32,
}

/// The encoded size in bytes and the mode that gives it.
pub fn plan(ks: &[i64]) -> (usize, u8) {
    let p = plan_full(ks);
    (p.size, p.mode)
}

/// [`plan`] with the base and width, for [`encode_planned`].
pub fn plan_full(ks: &[i64]) -> Plan {
    let Some(&first) = ks.first() else {
        return Plan {
            size: 2 + 1,
            mode: 0,
            base: 0,
            width: 0,
        };
    };
    let (mut lo, mut hi) = (first, first);
    let (mut dlo, mut dhi) = (i64::MAX, i64::MIN);
    let mut prev = first;
    for &k in &ks[1..] {
        // Wrapping, as the decoder adds them back: integers may reach
        // ±2^62 (LIMIT as f64 rounds up to it), whose difference is 2^63.
        let d = k.wrapping_sub(prev);
        dlo = dlo.min(d);
        dhi = dhi.max(d);
        lo = lo.min(k);
        hi = hi.max(k);
        prev = k;
    }
    let for_width = width(hi.wrapping_sub(lo) as u64);
    let for_bits = for_width as usize * ks.len();
    let for_size = 1 + len_u64(zigzag(lo)) + 1 + for_bits.div_ceil(8);
    let packed_for = Plan {
        size: for_size,
        mode: 0,
        base: lo,
        width: for_width,
    };
    if ks.len() < 2 {
        return packed_for;
    }
    let d_width = width(dhi.wrapping_sub(dlo) as u64);
    let d_bits = d_width as usize * (ks.len() - 1);
    let d_size = 1 + len_u64(zigzag(first)) + len_u64(zigzag(dlo)) + 1 + d_bits.div_ceil(8);
    if d_size < for_size {
        Plan {
            size: d_size,
            mode: 1,
            base: dlo,
            width: d_width,
        }
    } else {
        packed_for
    }
}

/// Appends `ks` (each within ±[`LIMIT`]) in the smaller mode.
pub fn encode(ks: &[i64], out: &mut Vec<u8>) {
    encode_planned(ks, &plan_full(ks), out)
}

/// Appends `ks` as `plan` (which must be [`plan_full`] of `ks`) says:
/// exactly `plan.size` bytes.
pub fn encode_planned(ks: &[i64], plan: &Plan, out: &mut Vec<u8>) {
    let (base, w) = (plan.base, plan.width);
    out.push(plan.mode);
    if plan.mode == 0 {
        write_i64(out, base);
        out.push(w as u8);
        let mut bw = BitWriter::append_to(std::mem::take(out));
        for &k in ks {
            bw.write_bits(k.wrapping_sub(base) as u64, w);
        }
        *out = bw.finish();
    } else {
        write_i64(out, ks.first().copied().unwrap_or(0));
        write_i64(out, base);
        out.push(w as u8);
        let mut bw = BitWriter::append_to(std::mem::take(out));
        for d in ks.windows(2).map(|w| w[1].wrapping_sub(w[0])) {
            bw.write_bits(d.wrapping_sub(base) as u64, w);
        }
        *out = bw.finish();
    }
}

/// Decodes exactly `n` integers from all of `payload`, calling `sink` on each.
#[inline]
pub fn decode(payload: &[u8], n: usize, mut sink: impl FnMut(i64)) -> Result<()> {
    let mut r = ByteReader::new(payload, "packed integers");
    let mode = r.u8()?;
    let (base, first) = match mode {
        0 => (r.varint_i64()?, None),
        1 => {
            let first = r.varint_i64()?;
            (r.varint_i64()?, Some(first))
        }
        m => return Err(r.corrupt(format!("unknown integer packing mode {m}"))),
    };
    let w = r.u8()? as u32;
    if w > 64 {
        return Err(r.corrupt(format!("bit width {w} exceeds 64")));
    }
    let packed = n.saturating_sub(first.is_some() as usize);
    let bits = r.rest();
    if (packed as u64).saturating_mul(w as u64) > bits.len() as u64 * 8 {
        return Err(Error::truncated(
            "packed integers",
            payload.len() as u64,
            format!(
                "{packed} values of {w} bits do not fit in {} bytes",
                bits.len()
            ),
        ));
    }
    if n == 0 {
        return crate::codec::delta::finish_bits(&mut BitReader::new(bits), 0);
    }
    let mut br = BitReader::new(bits);
    if w == 0 {
        // Nothing packed: a constant (frame of reference) or a constant step.
        let mut k = first.unwrap_or(base);
        sink(k);
        for _ in 1..n {
            k = if first.is_some() {
                k.wrapping_add(base)
            } else {
                k
            };
            sink(k);
        }
        return crate::codec::delta::finish_bits(&mut br, payload.len() - bits.len());
    }
    match first {
        None => {
            for _ in 0..n {
                sink(base.wrapping_add(br.read_bits(w)? as i64));
            }
        }
        Some(mut k) => {
            sink(k);
            for _ in 1..n {
                k = k.wrapping_add(base.wrapping_add(br.read_bits(w)? as i64));
                sink(k);
            }
        }
    }
    crate::codec::delta::finish_bits(&mut br, payload.len() - bits.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ks: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(ks, &mut out);
        assert_eq!(out.len(), plan(ks).0, "plan predicts the size");
        let mut back = Vec::new();
        decode(&out, ks.len(), |k| back.push(k)).unwrap();
        assert_eq!(back, ks);
        out
    }

    /// The decimal search lets k reach ±2^62 (`LIMIT as f64` rounds up to
    /// it): deltas of 2^63 wrap, in the encoder as in the decoder (a debug
    /// build overflowed here; found by a break test).
    #[test]
    fn integers_at_plus_and_minus_2_pow_62_round_trip() {
        let edge = 1i64 << 62;
        round_trip(&[-edge, edge]);
        round_trip(&[edge, -edge, edge, -edge, 0, i64::MAX, i64::MIN]);
    }

    #[test]
    fn golden_bytes_frame_of_reference() {
        // base 3739 (zigzag 7478 = b6 3a), width 4, fields 3, 11, 0 -> 0011 1011 0000
        assert_eq!(
            round_trip(&[3742, 3750, 3739]),
            [0x00, 0xB6, 0x3A, 0x04, 0x3B, 0x00]
        );
    }

    #[test]
    fn golden_bytes_deltas() {
        // first 1000 (d0 0f), base 40 (50), width 3: 0, 5 -> 000 101
        assert_eq!(
            round_trip(&[1000, 1040, 1085]),
            [0x01, 0xD0, 0x0F, 0x50, 0x03, 0x14]
        );
    }

    #[test]
    fn edges_round_trip() {
        round_trip(&[]);
        round_trip(&[5]);
        round_trip(&[7, 7, 7, 7]);
        round_trip(&[LIMIT, -LIMIT, LIMIT, 0, -LIMIT]);
        round_trip(&[-3, 1 << 53, (1 << 53) + 1]);
    }

    #[test]
    fn every_prefix_is_an_error() {
        let mut out = Vec::new();
        encode(&[3742, 3750, 3739, 3800, 3701], &mut out);
        for cut in 0..out.len() {
            assert!(decode(&out[..cut], 5, |_| {}).is_err(), "cut {cut}");
        }
    }
}
