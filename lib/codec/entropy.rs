//! Entropy-coded integers: bins chosen by dynamic programming, bin numbers
//! coded with [`crate::codec::ans`], offsets within a bin as plain bits.
//!
//! After pco (Martin Loncaric, "pcodec", 2023): an integer (a *latent*,
//! here any `u64`) is coded as the bin it falls in plus its offset from the
//! bin's lower bound. A bin is a range `lower .. lower + 2^bits`; frequent
//! narrow bins get short ANS codes, and the offset costs `bits` raw bits.
//!
//! Why it beats fixed-width packing: deltas of a temperature in tenths of a
//! degree are mostly -2..=2 but now and then ±40. Frame-of-reference
//! packing pays the widest value's 7 bits for *every* value. Here the five
//! common values are five bins of width 1 (0 offset bits) with codes of
//! about 1.5 to 3 bits, and the rare large ones share a wide bin whose
//! code is long but rarely used: about 2.5 bits a value instead of 7.
//!
//! Choosing bins: the sorted latents are cut into at most [`PREBINS`]
//! *pre-bins* (each distinct value when there are few, else equal-count
//! ranges); then a dynamic program over consecutive pre-bins finds the
//! merge that minimises the estimated size
//!
//! ```text
//! sum over bins of  META_BITS + count × (log2(n / count) + bits(upper - lower))
//! ```
//!
//! as pco's `optimize_bins` does. One bin means no ANS at all: the stream
//! is plain frame-of-reference bit packing.
//!
//! # Layout
//!
//! ```text
//! | bins - 1 (varint) | table log (u8), only with 2+ bins |
//! | per bin: lower (varint; after the first, minus the previous lower, > 0) |
//! |          offset bits (u8, <= 64) | weight - 1 (varint), only with 2+ bins |
//! | bit stream: 4 final ANS states (log bits each), only with 2+ bins;     |
//! |             per value: its offset (bin's bits), then its ANS bits      |
//! ```
//!
//! The weights sum to `2^log`. The count of values is not stored. A decoder
//! checks every field, that each value's bits exist, that the four states
//! end at slot 0 and that nothing but zero padding follows.

use crate::bytes::ByteReader;
use crate::codec::ans::{self, DecodeSlot, STATES};
use crate::codec::bits::{BitReader, BitWriter};
use crate::codec::varint::{len_u64, write_u64};
use crate::error::{Error, Result};

/// The most pre-bins the dynamic program merges.
pub const PREBINS: usize = 256;
/// The largest table the encoder picks (the decoder accepts up to [`ans::MAX_LOG`]).
pub const ENCODE_MAX_LOG: u32 = 11;
/// Estimated header bits of one bin (lower, offset bits, weight).
const META_BITS: f32 = 32.0;

/// One bin: values `lower ..= lower + (2^bits - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bin {
    pub lower: u64,
    pub bits: u32,
    pub count: u64,
}

fn width(span: u64) -> u32 {
    64 - span.leading_zeros()
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

/// Distinct values or equal-count ranges of `sorted`: `(lo, hi, count)`.
fn prebins(sorted: &[u64]) -> Vec<(u64, u64, u64)> {
    let mut runs: Vec<(u64, u64, u64)> = Vec::new();
    for &v in sorted {
        match runs.last_mut() {
            Some(r) if r.1 == v => r.2 += 1,
            _ => {
                if runs.len() == PREBINS {
                    runs.clear();
                    break;
                }
                runs.push((v, v, 1));
            }
        }
    }
    if !runs.is_empty() || sorted.is_empty() {
        return runs;
    }
    let n = sorted.len();
    let target = n.div_ceil(PREBINS / 2);
    let mut i = 0;
    while i < n {
        let mut end = (i + target).min(n);
        while end < n && sorted[end] == sorted[end - 1] {
            end += 1;
        }
        runs.push((sorted[i], sorted[end - 1], (end - i) as u64));
        i = end;
    }
    runs
}

/// The bins that minimise the estimated size of `latents`.
pub fn choose_bins(latents: &[u64]) -> Vec<Bin> {
    let mut sorted = latents.to_vec();
    sorted.sort_unstable();
    let pre = prebins(&sorted);
    if pre.len() <= 1 {
        let (lo, hi) = (
            sorted.first().copied().unwrap_or(0),
            sorted.last().copied().unwrap_or(0),
        );
        return vec![Bin {
            lower: lo,
            bits: width(hi - lo),
            count: latents.len() as u64,
        }];
    }
    let n = latents.len() as f32;
    let log_n = n.log2();
    // best[i]: the cheapest binning of pre-bins 0..i; from[i]: where its last bin starts.
    let b = pre.len();
    let mut best = vec![f32::INFINITY; b + 1];
    let mut from = vec![0usize; b + 1];
    best[0] = 0.0;
    for i in 1..=b {
        let hi = pre[i - 1].1;
        let mut count = 0u64;
        for j in (0..i).rev() {
            count += pre[j].2;
            let c = count as f32;
            let cost = best[j] + META_BITS + c * (log_n - c.log2() + width(hi - pre[j].0) as f32);
            if cost < best[i] {
                best[i] = cost;
                from[i] = j;
            }
        }
    }
    let mut bins = Vec::new();
    let mut i = b;
    while i > 0 {
        let j = from[i];
        let lower = pre[j].0;
        bins.push(Bin {
            lower,
            bits: width(pre[i - 1].1 - lower),
            count: pre[j..i].iter().map(|p| p.2).sum(),
        });
        i = j;
    }
    bins.reverse();
    bins
}

/// The table log for `bins` bins over `n` values.
fn table_log(bins: usize, n: usize) -> u32 {
    let floor_log_n = usize::BITS - 1 - n.max(1).leading_zeros();
    ceil_log2(bins).max(floor_log_n.saturating_sub(1).min(ENCODE_MAX_LOG))
}

/// Appends `latents` coded with the bins [`choose_bins`] picks.
pub fn encode(latents: &[u64], out: &mut Vec<u8>) {
    encode_with(latents, &choose_bins(latents), out)
}

/// Appends `latents` coded with `bins` (sorted, disjoint, covering every latent).
pub fn encode_with(latents: &[u64], bins: &[Bin], out: &mut Vec<u8>) {
    write_u64(out, bins.len() as u64 - 1);
    if bins.len() == 1 {
        let bin = bins[0];
        write_u64(out, bin.lower);
        out.push(bin.bits as u8);
        let mut w = BitWriter::append_to(std::mem::take(out));
        for &v in latents {
            w.write_bits(v - bin.lower, bin.bits);
        }
        *out = w.finish();
        return;
    }
    let log = table_log(bins.len(), latents.len());
    let counts: Vec<u64> = bins.iter().map(|b| b.count).collect();
    let weights = ans::quantize(&counts, log);
    out.push(log as u8);
    let mut prev = 0;
    for (i, (bin, &w)) in bins.iter().zip(&weights).enumerate() {
        write_u64(out, if i == 0 { bin.lower } else { bin.lower - prev });
        prev = bin.lower;
        out.push(bin.bits as u8);
        write_u64(out, w as u64 - 1);
    }
    let symbols = bin_indices(latents, bins);
    let enc = ans::Encoder::new(&weights, log).expect("quantize gives valid weights");
    let mut transitions = Vec::new();
    let finals = enc.encode(&symbols, &mut transitions);
    let mut w = BitWriter::append_to(std::mem::take(out));
    for f in finals {
        w.write_bits(f as u64, log);
    }
    for ((&v, &s), &(t, tn)) in latents.iter().zip(&symbols).zip(&transitions) {
        let bin = bins[s as usize];
        w.write_bits(v - bin.lower, bin.bits);
        w.write_bits(t as u64, tn as u32);
    }
    *out = w.finish();
}

/// The bin of each latent: a direct table over a small range, else a binary search.
fn bin_indices(latents: &[u64], bins: &[Bin]) -> Vec<u16> {
    let lo = bins[0].lower;
    let last = bins[bins.len() - 1];
    let span = (last.lower - lo).saturating_add(1);
    if span <= 4 * latents.len() as u64 + 64 {
        let mut of = vec![0u16; span as usize];
        for (i, pair) in bins.windows(2).enumerate() {
            let from = (pair[0].lower - lo) as usize;
            let to = (pair[1].lower - lo) as usize;
            of[from..to].fill(i as u16);
        }
        let at = (last.lower - lo) as usize;
        of[at] = (bins.len() - 1) as u16;
        latents
            .iter()
            .map(|&v| of[((v - lo).min(span - 1)) as usize])
            .collect()
    } else {
        latents
            .iter()
            .map(|&v| (bins.partition_point(|b| b.lower <= v) - 1) as u16)
            .collect()
    }
}

/// One decode-table slot with its bin folded in.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    lower: u64,
    offset_bits: u8,
    ans_bits: u8,
    next: u16,
}

/// Decodes exactly `n` latents from all of `payload`, calling `sink` on each.
#[inline]
pub fn decode(payload: &[u8], n: usize, mut sink: impl FnMut(u64)) -> Result<()> {
    let mut r = ByteReader::new(payload, "entropy-coded integers");
    let bins = r.varint()?;
    if bins >= 1 << ans::MAX_LOG {
        return Err(r.corrupt(format!("{} bins, at most {}", bins + 1, 1 << ans::MAX_LOG)));
    }
    let bins = bins as usize + 1;
    if bins == 1 {
        let lower = r.varint()?;
        let bits = r.u8()? as u32;
        if bits > 64 {
            return Err(r.corrupt(format!("offset width {bits} exceeds 64")));
        }
        let at = r.position();
        let stream = r.rest();
        if (n as u64).saturating_mul(bits as u64) > stream.len() as u64 * 8 {
            return Err(Error::truncated(
                "entropy-coded integers",
                payload.len() as u64,
                format!(
                    "{n} values of {bits} bits do not fit in {} bytes",
                    stream.len()
                ),
            ));
        }
        let mut br = BitReader::new(stream);
        for _ in 0..n {
            sink(lower.wrapping_add(br.read_bits(bits)?));
        }
        return crate::codec::delta::finish_bits(&mut br, at);
    }
    let log = r.u8()? as u32;
    if log > ans::MAX_LOG || bins > 1 << log {
        return Err(r.corrupt(format!("table log {log} for {bins} bins")));
    }
    let mut lowers = Vec::with_capacity(bins);
    let mut widths = Vec::with_capacity(bins);
    let mut weights = Vec::with_capacity(bins);
    let mut prev: u64 = 0;
    for i in 0..bins {
        let d = r.varint()?;
        let lower = if i == 0 {
            d
        } else if d == 0 {
            return Err(r.corrupt(format!("bin {i} does not start above bin {}", i - 1)));
        } else {
            prev.checked_add(d)
                .ok_or_else(|| r.corrupt(format!("bin {i} starts beyond 2^64")))?
        };
        prev = lower;
        let bits = r.u8()?;
        if bits > 64 {
            return Err(r.corrupt(format!("bin {i}: offset width {bits} exceeds 64")));
        }
        let w = r.varint()?;
        if w >= 1 << log {
            return Err(r.corrupt(format!("bin {i}: weight {} above the table size", w + 1)));
        }
        lowers.push(lower);
        widths.push(bits);
        weights.push(w as u32 + 1);
    }
    let at = r.position();
    let table = ans::decode_table(&weights, log).map_err(|e| e.within("entropy-coded integers"))?;
    let slots: Vec<Slot> = table
        .iter()
        .map(|&DecodeSlot { symbol, bits, base }| Slot {
            lower: lowers[symbol as usize],
            offset_bits: widths[symbol as usize],
            ans_bits: bits,
            next: base,
        })
        .collect();
    let mut br = BitReader::new(r.rest());
    let mut x = [0usize; STATES];
    for s in &mut x {
        *s = br.read_bits(log)? as usize;
    }
    // Q: Why four named states and a chunked loop?
    // A: Each value needs a table look-up that depends on the previous
    // value *of the same state*. With four states the CPU works on four
    // independent chains at once.
    let [mut s0, mut s1, mut s2, mut s3] = x;
    let mut step = |s: &mut usize| -> Result<u64> {
        let slot = slots[*s];
        let (ob, ab) = (slot.offset_bits as u32, slot.ans_bits as u32);
        let (offset, t) = if ob + ab <= 56 {
            let v = br.read_bits(ob + ab)?;
            (v >> ab, v & ((1u64 << ab) - 1))
        } else {
            (br.read_bits(ob)?, br.read_bits(ab)?)
        };
        *s = slot.next as usize + t as usize;
        Ok(slot.lower.wrapping_add(offset))
    };
    for _ in 0..n / STATES {
        sink(step(&mut s0)?);
        sink(step(&mut s1)?);
        sink(step(&mut s2)?);
        sink(step(&mut s3)?);
    }
    let rest = n % STATES;
    for (i, s) in [&mut s0, &mut s1, &mut s2].into_iter().enumerate() {
        if i < rest {
            sink(step(s)?);
        }
    }
    if [s0, s1, s2, s3] != [0; STATES] {
        return Err(Error::corrupt(
            "entropy-coded integers",
            (at as u64) + br.position() / 8,
            format!("ANS states end at {:?}, not at slot 0", [s0, s1, s2, s3]),
        ));
    }
    crate::codec::delta::finish_bits(&mut br, at)
}

/// The exact encoded size of `latents` with `bins`, in bytes, without encoding.
pub fn size_with(latents: &[u64], bins: &[Bin]) -> usize {
    let mut header = len_u64(bins.len() as u64 - 1);
    if bins.len() == 1 {
        let bits = bins[0].bits as usize * latents.len();
        return header + len_u64(bins[0].lower) + 1 + bits.div_ceil(8);
    }
    let mut buf = Vec::new();
    encode_with(latents, bins, &mut buf);
    header = buf.len();
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(latents: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(latents, &mut out);
        let mut back = Vec::with_capacity(latents.len());
        decode(&out, latents.len(), |v| back.push(v)).unwrap();
        assert_eq!(back, latents);
        out
    }

    #[test]
    fn golden_bytes_one_bin_is_frame_of_reference() {
        // 1 bin (0), lower 10 (0a), 2 bits; 10, 12, 11 -> 00 10 01 -> 0010 0100
        assert_eq!(round_trip(&[10, 12, 11]), [0x00, 0x0A, 0x02, 0x24]);
    }

    #[test]
    fn golden_bytes_two_bins() {
        // Nine 7s and one 1000: 2 bins (01), table log 2 (02);
        // bin 7 (07), 0 bits (00), weight 3 (02); bin 7 + 993 (e1 07), 0 bits,
        // weight 1 (00); then the final states 0, 1, 2, 2 (0001 1010) and
        // the transition bits (01, then zero padding).
        let mut v = vec![7u64; 9];
        v.push(1000);
        let out = round_trip(&v);
        assert_eq!(
            out,
            [0x01, 0x02, 0x07, 0x00, 0x02, 0xE1, 0x07, 0x00, 0x00, 0x1A, 0x40]
        );
    }

    #[test]
    fn skewed_deltas_beat_fixed_width() {
        // Mostly -2..=2, sometimes ±40: 7 bits each fixed-width.
        let v: Vec<u64> = (0..4096u64)
            .map(|i| {
                let d: i64 = if i % 97 == 0 {
                    40
                } else {
                    (i * 7 % 5) as i64 - 2
                };
                (d + 64) as u64
            })
            .collect();
        let bytes = round_trip(&v).len();
        let fixed = 4096 * 7 / 8;
        assert!(bytes * 2 < fixed, "{bytes} bytes vs {fixed} fixed-width");
    }

    #[test]
    fn edges_round_trip() {
        round_trip(&[]);
        round_trip(&[0]);
        round_trip(&[u64::MAX]);
        round_trip(&[0, u64::MAX]);
        round_trip(&[u64::MAX, 0, u64::MAX - 1, 1, 1 << 63]);
        round_trip(
            &(0..5000)
                .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect::<Vec<_>>(),
        );
        round_trip(&(0..300).map(|i| i as u64 % 7).collect::<Vec<_>>());
        round_trip(&(0..3000).map(|i| i as u64).collect::<Vec<_>>());
    }

    #[test]
    fn every_prefix_is_an_error() {
        let v: Vec<u64> = (0..300u64)
            .map(|i| (i * i) % 23 + (i % 50 == 0) as u64 * 5000)
            .collect();
        let out = round_trip(&v);
        for cut in 0..out.len() {
            assert!(decode(&out[..cut], v.len(), |_| {}).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn size_with_is_exact() {
        for v in [
            vec![1u64, 2, 3],
            (0..999u64).map(|i| i % 13 * 1000).collect(),
        ] {
            let bins = choose_bins(&v);
            let mut out = Vec::new();
            encode_with(&v, &bins, &mut out);
            assert_eq!(size_with(&v, &bins), out.len());
        }
    }
}
