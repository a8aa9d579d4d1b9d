//! Version 3 name pages: the series keys of a run of series, front-coded,
//! then compressed with zstd when that is smaller.
//!
//! A key is serialized as everywhere in the course (metric string, label
//! count, then name and value strings; see [`crate::format::write_key`]).
//! Sorted keys share long prefixes (`{"disk.dev.read",instance="sda"}`,
//! `{"disk.dev.read",instance="sdb"}`), so each is stored as the length of
//! the prefix it shares with the key before it and the rest:
//!
//! ```text
//! raw page := per key: | shared prefix (varint) | suffix length (varint) | suffix |
//! page     := | 0 | raw page | CRC32C u32 |                          (stored as is)
//!           | | 1 | raw length (varint) | zstd frame of the raw page | CRC32C u32 |
//! ```
//!
//! Q: Why zstd here, when the numbers are coded by hand?
//! A: Keys are text with structure across many keys (the same instance
//! list under every metric of a family), which a general-purpose
//! compressor finds and a hand-written one would have to reinvent. Front
//! coding first makes each key short; zstd then finds the repeats.

use crate::bytes::ByteReader;
use crate::codec::varint::write_u64;
use crate::error::{Error, Result};
use crate::format::{read_key, write_key};
use crate::model::SeriesKey;

/// The reader refuses a page that claims more raw bytes than this.
pub(crate) const MAX_RAW_BYTES: u64 = 1 << 28;
/// zstd level of name pages.
const LEVEL: i32 = 19;

/// The serialized key.
pub(crate) fn key_bytes(key: &SeriesKey) -> Vec<u8> {
    let mut out = Vec::new();
    write_key(&mut out, key);
    out
}

/// Front-codes `keys` (sorted) into `out`.
pub(crate) fn front_code(keys: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut prev: &[u8] = &[];
    for k in keys {
        let shared = prev.iter().zip(k).take_while(|(a, b)| a == b).count();
        write_u64(out, shared as u64);
        write_u64(out, (k.len() - shared) as u64);
        out.extend_from_slice(&k[shared..]);
        prev = k;
    }
}

/// Encodes a page of serialized keys.
pub(crate) fn encode(keys: &[Vec<u8>]) -> Vec<u8> {
    let mut raw = Vec::new();
    front_code(keys, &mut raw);
    let mut out = vec![0u8];
    out.extend_from_slice(&raw);
    if let Ok(z) = zstd::bulk::compress(&raw, LEVEL) {
        let mut packed = vec![1u8];
        write_u64(&mut packed, raw.len() as u64);
        packed.extend_from_slice(&z);
        if packed.len() < out.len() {
            out = packed;
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a page (`body`: without its CRC, already checked) of exactly
/// `count` keys, each greater than the one before.
pub(crate) fn decode(body: &[u8], at: u64, what: &str, count: usize) -> Result<Vec<SeriesKey>> {
    let mut r = ByteReader::at_offset(body, at, what);
    let raw: Vec<u8> = match r.u8()? {
        0 => r.rest().to_vec(),
        1 => {
            let len = r.varint()?;
            if len > MAX_RAW_BYTES {
                return Err(r.corrupt(format!(
                    "{len} bytes of keys, more than the {MAX_RAW_BYTES} a page may hold"
                )));
            }
            let mut out = Vec::new();
            let mut dec = zstd::stream::read::Decoder::new(r.rest())
                .map_err(|e| r.corrupt(format!("zstd: {e}")))?;
            use std::io::Read;
            (&mut dec)
                .take(len + 1)
                .read_to_end(&mut out)
                .map_err(|e| r.corrupt(format!("zstd: {e}")))?;
            if out.len() as u64 != len {
                return Err(r.corrupt(format!(
                    "{} bytes of keys decompressed, the page says {len}",
                    out.len()
                )));
            }
            out
        }
        e => return Err(r.corrupt(format!("unknown key encoding {e}"))),
    };
    let mut kr = ByteReader::new(&raw, "keys");
    // A key takes at least 4 raw bytes: prefix, suffix length, and at least
    // the metric length and label count in full or shared.
    if count > raw.len() / 2 + 1 {
        return Err(r.corrupt(format!("{count} keys cannot fit in {} bytes", raw.len())));
    }
    let mut keys: Vec<SeriesKey> = Vec::with_capacity(count);
    let mut prev: Vec<u8> = Vec::new();
    for i in 0..count {
        let shared = kr.varint().map_err(|e| e.within(what))?;
        let len = kr.count(1, "key byte").map_err(|e| e.within(what))?;
        if shared > prev.len() as u64 {
            return Err(Error::corrupt(
                what,
                at,
                format!(
                    "key {i} shares {shared} bytes with a {}-byte key",
                    prev.len()
                ),
            ));
        }
        prev.truncate(shared as usize);
        prev.extend_from_slice(kr.bytes(len).map_err(|e| e.within(what))?);
        let mut one = ByteReader::new(&prev, "key");
        let key = read_key(&mut one).map_err(|e| e.within(format!("{what}: key {i}")))?;
        if !one.is_empty() {
            return Err(Error::corrupt(
                what,
                at,
                format!("key {i} has trailing bytes"),
            ));
        }
        if keys.last().is_some_and(|p| *p >= key) {
            return Err(Error::corrupt(
                what,
                at,
                format!("key {i} ({key}) out of order or repeated"),
            ));
        }
        keys.push(key);
    }
    if !kr.is_empty() {
        return Err(Error::corrupt(
            what,
            at,
            format!("{} bytes after the last key", kr.remaining()),
        ));
    }
    Ok(keys)
}
