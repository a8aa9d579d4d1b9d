//! Run-length coding of zero runs in a stream of signed integers.
//!
//! Regular timestamps give long runs of zero delta-of-deltas. This codec
//! writes a stream of varint *tokens*; the low bit of each token says what it
//! is:
//!
//! | token | meaning |
//! |-------|---------|
//! | `zigzag(v) << 1` (low bit 0) | one non-zero integer `v` |
//! | `run << 1 \| 1` (low bit 1), `run >= 1` | `run` zeros |
//! | `1` (a run of 0, otherwise meaningless), then a varint `zigzag(v)` | one integer too large for a shifted token (`zigzag(v) >= 2^63`) |
//!
//! ```text
//!   input:   5  0 0 0 0 0 0  -1  0
//!   tokens: |14| 0D         |02| 03|
//!            ^ zigzag(5)=10, shifted: 20
//!               ^ run of 6: 6<<1|1 = 13
//!                            ^ zigzag(-1)=1, shifted: 2
//!                                ^ run of 1: 3
//! ```
//!
//! A lone zero costs one byte, like any small integer, so collapsing runs
//! never costs more than writing each integer as a varint, except for the
//! one bit the flag takes from each token.
//!
//! The decoder is told how many integers to produce and rejects a run that
//! would overshoot it, so a corrupt run length cannot blow up memory.

use crate::bytes::ByteReader;
use crate::codec::varint::{unzigzag, write_u64, zigzag};
use crate::error::Result;

/// Appends `values` as tokens with zero runs collapsed.
pub fn encode_zero_runs(values: impl IntoIterator<Item = i64>, out: &mut Vec<u8>) {
    let mut run = 0u64;
    for v in values {
        if v == 0 {
            run += 1;
            continue;
        }
        if run > 0 {
            write_u64(out, (run << 1) | 1);
            run = 0;
        }
        let z = zigzag(v);
        if z < 1 << 63 {
            write_u64(out, z << 1);
        } else {
            write_u64(out, 1);
            write_u64(out, z);
        }
    }
    if run > 0 {
        write_u64(out, (run << 1) | 1);
    }
}

/// Reads exactly `n` integers written by [`encode_zero_runs`], calling `sink` on each.
#[inline]
pub fn decode_zero_runs(r: &mut ByteReader<'_>, n: usize, mut sink: impl FnMut(i64)) -> Result<()> {
    let mut produced = 0usize;
    while produced < n {
        let start = r.position();
        let token = r.varint()?;
        if token & 1 == 0 {
            sink(unzigzag(token >> 1));
            produced += 1;
        } else if token == 1 {
            sink(unzigzag(r.varint()?));
            produced += 1;
        } else {
            let run = token >> 1;
            let left = (n - produced) as u64;
            if run > left {
                return Err(r.corrupt(format!(
                    "zero run of {run} at byte {start} where only {left} values remain"
                )));
            }
            for _ in 0..run {
                sink(0);
            }
            produced += run as usize;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn golden_bytes() {
        let mut out = Vec::new();
        encode_zero_runs([5, 0, 0, 0, 0, 0, 0, -1, 0], &mut out);
        assert_eq!(out, [0x14, 0x0D, 0x02, 0x03]);
    }

    #[test]
    fn round_trip_including_huge_values() {
        let input = vec![
            0,
            0,
            3,
            -7,
            0,
            i64::MIN,
            i64::MAX,
            1 << 62,
            -(1 << 62) - 1,
            0,
            0,
            0,
        ];
        let mut out = Vec::new();
        encode_zero_runs(input.iter().copied(), &mut out);
        let mut back = Vec::new();
        decode_zero_runs(&mut ByteReader::new(&out, "t"), input.len(), |v| {
            back.push(v)
        })
        .unwrap();
        assert_eq!(back, input);
    }

    #[test]
    fn a_lone_zero_costs_one_byte() {
        let mut out = Vec::new();
        encode_zero_runs([0], &mut out);
        assert_eq!(out, [0x03]);
    }

    #[test]
    fn overshooting_run_is_corrupt() {
        let bytes = [0x0B]; // run of 5
        let err = decode_zero_runs(&mut ByteReader::new(&bytes, "t"), 3, |_| {}).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn every_prefix_is_an_error() {
        let input = [1, 0, 0, 0, 2, 0, i64::MIN];
        let mut out = Vec::new();
        encode_zero_runs(input, &mut out);
        for cut in 0..out.len() {
            assert!(
                decode_zero_runs(&mut ByteReader::new(&out[..cut], "t"), input.len(), |_| {})
                    .is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
    }
}
