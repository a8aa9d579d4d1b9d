//! A checked cursor over untrusted bytes.
//!
//! Every format reader in the library walks its input with a [`ByteReader`].
//! Each read checks the length first and, when the bytes are not there,
//! returns an error naming the structure (`what`), the byte offset and the
//! reason. Nothing here slices without checking, so no input can panic it.

use crate::codec::varint;
use crate::error::{Error, Result};

/// A cursor over `buf` that names what it reads in its errors.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the enclosing file, for error messages.
    base: u64,
    what: &'a str,
}

impl<'a> ByteReader<'a> {
    pub fn new(buf: &'a [u8], what: &'a str) -> Self {
        ByteReader {
            buf,
            pos: 0,
            base: 0,
            what,
        }
    }

    /// A reader whose error offsets are reported relative to a file offset.
    pub fn at_offset(buf: &'a [u8], base: u64, what: &'a str) -> Self {
        ByteReader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn truncated_at(&self, pos: usize, reason: impl Into<String>) -> Error {
        Error::truncated(self.what, self.base + pos as u64, reason)
    }

    pub(crate) fn corrupt_at(&self, pos: usize, reason: impl Into<String>) -> Error {
        Error::corrupt(self.what, self.base + pos as u64, reason)
    }

    /// A corruption error at the current position.
    pub fn corrupt(&self, reason: impl Into<String>) -> Error {
        self.corrupt_at(self.pos, reason)
    }

    #[inline]
    pub(crate) fn try_u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated_at(
                self.pos,
                format!("needed {n} bytes, only {} left", self.remaining()),
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64_le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64_le(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Expects exactly `magic`; otherwise a corruption error naming `expected`.
    pub fn expect_magic(&mut self, magic: &[u8]) -> Result<()> {
        let start = self.pos;
        let got = self.bytes(magic.len())?;
        if got != magic {
            return Err(self.corrupt_at(
                start,
                format!(
                    "bad magic {:?}, expected {:?}",
                    String::from_utf8_lossy(got),
                    String::from_utf8_lossy(magic)
                ),
            ));
        }
        Ok(())
    }

    /// A varint length followed by that many bytes of UTF-8.
    pub fn string(&mut self) -> Result<&'a str> {
        let start = self.pos;
        let n = self.varint()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let b = self.bytes(n)?;
        std::str::from_utf8(b)
            .map_err(|e| self.corrupt_at(start, format!("string is not UTF-8: {e}")))
    }
}

/// LEB128 varints ([`crate::codec::varint`] writes them).
impl ByteReader<'_> {
    /// Reads a LEB128 varint.
    #[inline]
    pub fn varint(&mut self) -> Result<u64> {
        let start = self.position();
        let mut v = 0u64;
        for i in 0..10 {
            let byte = match self.try_u8() {
                Some(b) => b,
                None => return Err(self.truncated_at(start, "varint ends early")),
            };
            if i == 9 && byte > 1 {
                return Err(self.corrupt_at(start, "varint overflows 64 bits"));
            }
            v |= ((byte & 0x7F) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt_at(start, "varint longer than 10 bytes"))
    }

    /// Reads a zigzag varint.
    #[inline]
    pub fn varint_i64(&mut self) -> Result<i64> {
        Ok(varint::unzigzag(self.varint()?))
    }

    /// Reads a varint that counts items of at least `min_bytes` each, and
    /// rejects it if the rest of the input could not hold that many.
    pub fn count(&mut self, min_bytes: u64, what: &str) -> Result<usize> {
        let start = self.position();
        let n = self.varint()?;
        if n.saturating_mul(min_bytes) > self.remaining() as u64 {
            return Err(self.corrupt_at(
                start,
                format!(
                    "{what} count {n} cannot fit in the {} bytes left",
                    self.remaining()
                ),
            ));
        }
        usize::try_from(n)
            .map_err(|_| self.corrupt_at(start, format!("{what} count {n} too large")))
    }
}

/// Appends a varint length and the bytes of `s`.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    varint::write_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked_and_name_the_offset() {
        let mut r = ByteReader::at_offset(&[1, 2, 3], 100, "header");
        assert_eq!(r.u8().unwrap(), 1);
        let err = r.u32_le().unwrap_err();
        assert_eq!(
            err.to_string(),
            "header is truncated at byte 101: needed 4 bytes, only 2 left"
        );
    }

    #[test]
    fn strings_round_trip_and_reject_bad_utf8() {
        let mut out = Vec::new();
        write_string(&mut out, "héllo");
        let mut r = ByteReader::new(&out, "s");
        assert_eq!(r.string().unwrap(), "héllo");
        let bad = [2u8, 0xC3, 0x28];
        assert!(ByteReader::new(&bad, "s").string().is_err());
    }

    #[test]
    fn magic_mismatch_is_corrupt() {
        let err = ByteReader::new(b"NOPE", "file")
            .expect_magic(b"YES!")
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }));
    }
}
