//! Gorilla XOR coding of `f64` values (Pelkonen et al., VLDB 2015, §4.1.2).
//!
//! Consecutive values of a metric share sign, exponent and the top of the
//! mantissa, so `bits(v[i]) ^ bits(v[i-1])` is mostly zeros: a run of leading
//! zeros, a short *meaningful* middle, a run of trailing zeros. Gorilla stores
//! only the middle.
//!
//! ```text
//!   24.0  = 0x4038000000000000
//!   24.5  = 0x4038800000000000
//!   xor   = 0x0000800000000000  -> 16 leading zeros, 1 meaningful bit, 47 trailing
//! ```
//!
//! # Bit layout
//!
//! The first value is stored raw in 64 bits. Every later value is one of:
//!
//! | control | then | meaning |
//! |---------|------|---------|
//! | `0`     | –    | same value as the previous one (xor is zero) |
//! | `10`    | `len` meaningful bits | xor fits inside the previous window (same leading/length) |
//! | `11`    | 5 bits leading zeros, 6 bits `len - 1`, `len` bits | a new window |
//!
//! Leading zeros are capped at 31 so they fit in 5 bits (a value with more is
//! stored with a wider window). The count of values is not stored here; the
//! container stores it once per series. Every `f64` bit pattern round-trips,
//! NaN payloads and `-0.0` included, because only bits are compared.

use crate::codec::bits::{BitReader, BitWriter};
use crate::codec::delta::finish_bits;
use crate::error::{Error, Result};

/// Encodes `values` into a Gorilla XOR bit stream appended to `out`.
pub fn encode(values: &[f64], out: &mut Vec<u8>) {
    out.reserve(values.len() * 2);
    let mut w = BitWriter::append_to(std::mem::take(out));
    let Some(&first) = values.first() else {
        *out = w.finish();
        return;
    };
    let mut prev = first.to_bits();
    w.write_bits(prev, 64);
    // No window yet: 64 leading + 0 meaningful forces the first non-zero xor into `11`.
    let (mut lead, mut len) = (64u32, 0u32);
    for &v in &values[1..] {
        let bits = v.to_bits();
        let xor = bits ^ prev;
        prev = bits;
        if xor == 0 {
            w.write_bits(0b0, 1);
            continue;
        }
        let l = xor.leading_zeros().min(31);
        let t = xor.trailing_zeros();
        if len > 0 && l >= lead && t >= 64 - lead - len {
            // `10`: reuse the window, write its `len` bits (in one write when they fit).
            let bits = xor >> (64 - lead - len);
            if len <= 62 {
                w.write_bits((0b10 << len) | bits, 2 + len);
            } else {
                w.write_bits(0b10, 2);
                w.write_bits(bits, len);
            }
        } else {
            // `11`: a new window of `l` leading zeros and `m` meaningful bits.
            let m = 64 - l - t;
            let header = (0b11 << 11) | ((l as u64) << 6) | (m - 1) as u64;
            if m <= 51 {
                w.write_bits((header << m) | (xor >> t), 13 + m);
            } else {
                w.write_bits(header, 13);
                w.write_bits(xor >> t, m);
            }
            (lead, len) = (l, m);
        }
    }
    *out = w.finish();
}

/// Decodes exactly `n` values from `payload`, appending them to `out`.
pub fn decode(payload: &[u8], n: usize, out: &mut Vec<f64>) -> Result<()> {
    let mut r = BitReader::new(payload);
    if n == 0 {
        return finish_bits(&mut r, 0);
    }
    // Every value after the first takes at least one bit: refuse counts the
    // payload cannot hold before allocating for them.
    if (n as u64 - 1).saturating_add(64) > r.remaining() {
        return Err(Error::truncated(
            "value column",
            payload.len() as u64,
            format!("{n} values cannot fit in {} bits", r.remaining()),
        ));
    }
    out.reserve(n);
    let mut prev = r.read_bits(64)?;
    out.push(f64::from_bits(prev));
    let (mut lead, mut len) = (0u32, 0u32);
    for _ in 1..n {
        // One 13-bit peek holds the control bits and a new window's header.
        let p = r.peek_bits(13);
        if p >> 12 == 0 {
            r.skip(1)?;
        } else if p >> 11 == 0b10 {
            if len == 0 {
                return Err(Error::corrupt(
                    "value column",
                    r.position() / 8,
                    "window reused before any window was set",
                ));
            }
            let bits = if len <= 11 {
                // The window's bits are already in the peek.
                r.skip(2 + len)?;
                (p >> (11 - len)) & ((1 << len) - 1)
            } else {
                r.skip(2)?;
                r.read_bits(len)?
            };
            prev ^= bits << (64 - lead - len);
        } else {
            r.skip(13)?;
            let l = ((p >> 6) & 0x1F) as u32;
            let m = (p & 0x3F) as u32 + 1;
            if l + m > 64 {
                return Err(Error::corrupt(
                    "value column",
                    r.position() / 8,
                    format!("window of {l} leading zeros and {m} bits exceeds 64 bits"),
                ));
            }
            (lead, len) = (l, m);
            prev ^= r.read_bits(m)? << (64 - l - m);
        }
        out.push(f64::from_bits(prev));
    }
    finish_bits(&mut r, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(values, &mut out);
        out
    }

    fn round_trip(values: &[f64]) -> Vec<u8> {
        let bytes = enc(values);
        let mut back = Vec::new();
        decode(&bytes, values.len(), &mut back).unwrap();
        let a: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let b: Vec<u64> = back.iter().map(|v| v.to_bits()).collect();
        assert_eq!(a, b);
        bytes
    }

    #[test]
    fn golden_bytes() {
        let bytes = round_trip(&[24.0, 24.0, 24.5, 25.0]);
        // 64 bits of 24.0
        // | 0                          24.0 again
        // | 11 10000 000000 1          24.5: xor has 16 leading zeros, 1 meaningful bit
        // | 11 01111 000001 11         25.0: 15 leading zeros, 2 meaningful bits
        // | 00                         padding
        assert_eq!(
            bytes,
            [0x40, 0x38, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x03, 0xBC, 0x1C]
        );
    }

    #[test]
    fn special_values_survive_bit_exactly() {
        round_trip(&[
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001),
            f64::from_bits(0xFFF8_DEAD_BEEF_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE / 2.0,
            f64::MAX,
            f64::MIN,
        ]);
        round_trip(&[]);
        round_trip(&[1.5]);
    }

    #[test]
    fn constant_series_costs_one_bit_per_value() {
        let bytes = round_trip(&[7.25; 801]);
        assert_eq!(bytes.len(), 8 + 800 / 8);
    }

    #[test]
    fn every_prefix_is_an_error() {
        let values = [1.0, 1.5, 1.5, -2.25, 100.125, f64::NAN, 3.0];
        let bytes = enc(&values);
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], values.len(), &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn impossible_count_is_refused_before_allocating() {
        let bytes = enc(&[1.0, 2.0]);
        let err = decode(&bytes, usize::MAX / 2, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
    }
}
