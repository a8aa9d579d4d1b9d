//! Variable-length integers (LEB128) and zigzag mapping, for framing.
//!
//! An unsigned integer is written 7 bits at a time, least significant group
//! first; the high bit of each byte says "more bytes follow".
//!
//! ```text
//!   300 = 0b10_0101100  ->  | 1_0101100 | 0_0000010 |  = AC 02
//!         ^ groups of 7      ^ more      ^ last
//! ```
//!
//! Signed integers go through zigzag first so that small magnitudes of either
//! sign become small unsigned numbers: 0, -1, 1, -2, 2 ... map to 0, 1, 2, 3, 4.
//!
//! A `u64` takes 1 to 10 bytes. The reader rejects a truncated varint, an
//! overlong one (more than 10 bytes) and a 10th byte that would overflow.

/// Maps a signed integer to an unsigned one: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ...
#[inline(always)]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline(always)]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends `v` as a LEB128 varint.
#[inline]
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-mapped, as a varint.
#[inline]
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    write_u64(out, zigzag(v));
}

/// Number of bytes `v` takes as a varint.
#[inline]
pub fn len_u64(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one byte.
    (64 - (v | 1).leading_zeros()).div_ceil(7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::ByteReader;
    use crate::error::Error;

    #[test]
    fn golden_bytes() {
        let mut out = Vec::new();
        write_u64(&mut out, 0);
        write_u64(&mut out, 127);
        write_u64(&mut out, 128);
        write_u64(&mut out, 300);
        write_i64(&mut out, -1);
        write_u64(&mut out, u64::MAX);
        assert_eq!(
            out,
            [
                0x00, 0x7F, 0x80, 0x01, 0xAC, 0x02, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0xFF, 0xFF, 0x01
            ]
        );
    }

    #[test]
    fn zigzag_maps_small_magnitudes_to_small_numbers() {
        let pairs = [(0, 0), (-1, 1), (1, 2), (-2, 3), (2, 4)];
        for (s, u) in pairs {
            assert_eq!(zigzag(s), u);
            assert_eq!(unzigzag(u), s);
        }
        for v in [i64::MIN, i64::MAX, i64::MIN + 1] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn len_matches_encoding() {
        for v in [0, 1, 127, 128, 16383, 16384, u64::MAX, 1 << 63] {
            let mut out = Vec::new();
            write_u64(&mut out, v);
            assert_eq!(len_u64(v), out.len(), "{v}");
        }
    }

    #[test]
    fn every_prefix_of_a_varint_is_truncated() {
        let mut out = Vec::new();
        write_u64(&mut out, u64::MAX);
        for cut in 0..out.len() {
            let err = ByteReader::new(&out[..cut], "t").varint().unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{err}");
        }
    }

    #[test]
    fn overlong_and_overflowing_varints_are_corrupt() {
        let overflow = [0xFF; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>();
        assert!(matches!(
            ByteReader::new(&overflow, "t").varint(),
            Err(Error::Corrupt { .. })
        ));
        let overlong = [0x80; 11];
        assert!(ByteReader::new(&overlong, "t").varint().is_err());
    }

    #[test]
    fn count_is_bounded_by_remaining_bytes() {
        let mut out = Vec::new();
        write_u64(&mut out, 1_000_000);
        out.extend_from_slice(&[0; 10]);
        let err = ByteReader::new(&out, "t").count(1, "series").unwrap_err();
        assert!(err.to_string().contains("series count 1000000"), "{err}");
    }
}
