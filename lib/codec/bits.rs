//! Bit I/O: the one bit writer and bit reader of the library.
//!
//! Gorilla-style codecs emit fields of 1 to 64 bits that do not line up with
//! bytes. [`BitWriter`] packs them most-significant-bit first into a `u64`
//! accumulator and spills whole words as big-endian bytes; [`BitReader`] reads
//! them back with one unaligned 8-byte load per field.
//!
//! ```text
//! write_bits(0b1, 1); write_bits(0b10, 2); write_bits(0x3F, 7)
//!
//!   bit:   0 1 2 3 4 5 6 7 | 8 9 ...
//!   byte0: 1 1 0 0 1 1 1 1 | byte1: 1 1 0 0 0 0 0 0   (last byte zero-padded)
//! ```
//!
//! Q: Why not `bitvec`, which the design card names?
//! A: `bitvec` is general (any order, any storage) and pays for it per bit.
//! Codecs here always write MSB-first fields of up to 64 bits, so a `u64`
//! accumulator does one shift-or per field instead of a loop per bit. The
//! `bits` criterion bench (`cargo bench --bench bits`) runs both on the same
//! Gorilla-shaped field stream; see `docs/src/03-compressed.md` for the
//! measured numbers.
//!
//! The reader never trusts its input: every read checks that the bits exist
//! and returns [`Error::Truncated`] when they do not.

use crate::error::{Error, Result};

/// Packs fields of 0..=64 bits, MSB first, into bytes.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    out: Vec<u8>,
    /// Pending bits, right-aligned; `filled` of them are valid.
    acc: u64,
    filled: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(bytes),
            acc: 0,
            filled: 0,
        }
    }

    /// A writer that appends to the bytes already in `out`.
    pub fn append_to(out: Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            filled: 0,
        }
    }

    /// Appends the low `n` bits of `value` (`n <= 64`), most significant first.
    #[inline]
    pub fn write_bits(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64, "write_bits: n = {n} > 64");
        if n == 0 {
            return;
        }
        let value = if n < 64 {
            value & ((1u64 << n) - 1)
        } else {
            value
        };
        let free = 64 - self.filled;
        if n < free {
            self.acc = (self.acc << n) | value;
            self.filled += n;
        } else {
            // Fill the word with the top `free` bits of the field, spill it,
            // keep the remaining `rest` bits.
            let rest = n - free;
            let head = value >> rest;
            self.acc = if free == 64 {
                head
            } else {
                (self.acc << free) | head
            };
            self.out.extend_from_slice(&self.acc.to_be_bytes());
            self.acc = if rest == 0 {
                0
            } else {
                value & ((1u64 << rest) - 1)
            };
            self.filled = rest;
        }
    }

    /// Appends one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(bit as u64, 1);
    }

    /// Number of bits written so far.
    pub fn bit_len(&self) -> u64 {
        self.out.len() as u64 * 8 + self.filled as u64
    }

    /// Flushes the pending bits (zero-padded to a byte) and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            let word = self.acc << (64 - self.filled);
            let bytes = self.filled.div_ceil(8) as usize;
            self.out.extend_from_slice(&word.to_be_bytes()[..bytes]);
        }
        self.out
    }
}

/// Reads fields written by [`BitWriter`], checking every read against the end.
///
/// Q: Why a cache word instead of indexing the byte slice on every read?
/// A: A read then costs a shift and a subtraction. Upcoming bits sit
/// left-aligned in `cache`; a refill tops it up with one unaligned 8-byte
/// load (byte by byte only in the last 8 bytes of the input), and one refill
/// serves several fields. Short streams, such as the 25-sample series of the
/// Beringei set, stay on the fast path too.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    buf: &'a [u8],
    /// Next byte of `buf` to load into the cache.
    next: usize,
    /// Upcoming bits, left-aligned; bits below the `avail` valid ones are zero.
    cache: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over all bits of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BitReader {
            buf,
            next: 0,
            cache: 0,
            avail: 0,
        }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> u64 {
        self.next as u64 * 8 - self.avail as u64
    }

    /// Bits left.
    pub fn remaining(&self) -> u64 {
        (self.buf.len() - self.next) as u64 * 8 + self.avail as u64
    }

    /// Bytes touched so far (the reader's position rounded up to a byte).
    pub fn bytes_consumed(&self) -> usize {
        self.position().div_ceil(8) as usize
    }

    /// Tops the cache up to at least 57 valid bits, or to the end of the input.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(b) = self.buf.get(self.next..self.next + 8) {
            let word = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            self.cache |= word >> self.avail;
            let bytes = (63 - self.avail) >> 3;
            self.next += bytes as usize;
            self.avail += bytes * 8;
            // Bits of the word past the bytes taken must not stay in the cache.
            self.cache &= !(u64::MAX.checked_shr(self.avail).unwrap_or(0));
        } else {
            while self.avail <= 56 && self.next < self.buf.len() {
                self.cache |= (self.buf[self.next] as u64) << (56 - self.avail);
                self.next += 1;
                self.avail += 8;
            }
        }
    }

    /// The next `n` bits (`1..=56`) without consuming them; zeros past the end.
    #[inline(always)]
    pub fn peek_bits(&mut self, n: u32) -> u64 {
        debug_assert!((1..=56).contains(&n));
        if self.avail < n {
            self.refill();
        }
        self.cache >> (64 - n)
    }

    /// Consumes `n` bits (`0..=56`) that the caller has peeked.
    #[inline(always)]
    pub fn skip(&mut self, n: u32) -> Result<()> {
        if self.avail < n {
            self.refill();
            if self.avail < n {
                return Err(self.short(n));
            }
        }
        self.cache = self.cache.checked_shl(n).unwrap_or(0);
        self.avail -= n;
        Ok(())
    }

    /// Reads `n` bits (`0..=64`).
    #[inline(always)]
    pub fn read_bits(&mut self, n: u32) -> Result<u64> {
        if n > 56 {
            let hi = self.read_bits(32)?;
            let lo = self.read_bits(n - 32)?;
            return Ok((hi << (n - 32)) | lo);
        }
        if self.avail < n {
            self.refill();
            if self.avail < n {
                return Err(self.short(n));
            }
        }
        // `n <= 56`, so neither shift can reach 64 except for `n == 0`.
        let v = self.cache.checked_shr(64 - n).unwrap_or(0);
        self.cache <<= n;
        self.avail -= n;
        Ok(v)
    }

    /// Reads one bit.
    #[inline(always)]
    pub fn read_bit(&mut self) -> Result<bool> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Counts up to `max` leading one bits and consumes them plus the
    /// terminating zero (if fewer than `max` ones). Used for unary control codes.
    #[inline(always)]
    pub fn read_unary(&mut self, max: u32) -> Result<u32> {
        debug_assert!((1..=8).contains(&max));
        let peek = self.peek_bits(max) << (64 - max);
        let ones = (!peek).leading_zeros().min(max);
        let used = if ones < max { ones + 1 } else { max };
        self.skip(used)?;
        Ok(ones)
    }

    fn short(&self, n: u32) -> Error {
        Error::truncated(
            "bit stream",
            self.position() / 8,
            format!(
                "needed {n} bits at bit {}, only {} left",
                self.position(),
                self.remaining()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bits_packs_msb_first() {
        let mut w = BitWriter::new();
        w.write_bits(0b1, 1);
        w.write_bits(0b10, 2);
        w.write_bits(0x3F, 7);
        assert_eq!(w.bit_len(), 10);
        assert_eq!(w.finish(), vec![0b1100_1111, 0b1100_0000]);
    }

    #[test]
    fn write_bits_masks_high_garbage() {
        let mut w = BitWriter::new();
        w.write_bits(u64::MAX, 3);
        assert_eq!(w.finish(), vec![0b1110_0000]);
    }

    #[test]
    fn round_trip_across_word_boundaries() {
        let fields: Vec<(u64, u32)> = (0..200u64)
            .map(|i| {
                let n = (i * 7 % 65) as u32;
                let v = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                (if n == 64 { v } else { v & ((1u64 << n) - 1) }, n)
            })
            .collect();
        let mut w = BitWriter::new();
        for &(v, n) in &fields {
            w.write_bits(v, n);
        }
        let total = w.bit_len();
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &fields {
            assert_eq!(r.read_bits(n).unwrap(), v, "field of {n} bits");
        }
        assert_eq!(r.position(), total);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xFF]);
        assert_eq!(r.read_bits(5).unwrap(), 0b11111);
        let err = r.read_bits(4).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        assert_eq!(r.read_bits(3).unwrap(), 0b111);
        assert!(r.read_bit().is_err());
    }

    #[test]
    fn read_unary_counts_ones_up_to_max() {
        // 0 | 10 | 110 | 1111 ...
        let mut w = BitWriter::new();
        w.write_bits(0b0, 1);
        w.write_bits(0b10, 2);
        w.write_bits(0b110, 3);
        w.write_bits(0b1111, 4);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_unary(4).unwrap(), 0);
        assert_eq!(r.read_unary(4).unwrap(), 1);
        assert_eq!(r.read_unary(4).unwrap(), 2);
        assert_eq!(r.read_unary(4).unwrap(), 4);
        assert_eq!(r.position(), 10);
    }

    #[test]
    fn sixty_four_bit_fields_survive() {
        let mut w = BitWriter::new();
        w.write_bits(1, 3);
        w.write_bits(0xDEAD_BEEF_CAFE_F00D, 64);
        w.write_bits(u64::MAX, 64);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read_bits(3).unwrap(), 1);
        assert_eq!(r.read_bits(64).unwrap(), 0xDEAD_BEEF_CAFE_F00D);
        assert_eq!(r.read_bits(64).unwrap(), u64::MAX);
    }
}
