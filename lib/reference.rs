//! Reference points: general-purpose and peer compressors run on the same
//! samples in the same run, so the course's own codecs can be judged.
//!
//! | reference | what it compresses |
//! |-----------|--------------------|
//! | zstd -3, zstd -19 | the raw columnar bytes: per series, its timestamps as `i64` LE then its values as `f64` LE, series after series |
//! | pco | per series, the timestamp column and the value column, each with `pco`'s default level |
//! | tsz | per series, Gorilla as implemented by the `tsz` crate (timestamps given in the series' tick, as it needs a 14-bit first delta) |
//!
//! Each is decompressed and compared with the input bit for bit; a row is
//! `verified` only if every series came back exact.
//!
//! zstd -19 compresses a few MB/s on one core, so [`References::Auto`]
//! skips it above [`ZSTD19_AUTO_LIMIT`] bytes of columnar data (and says so).

use std::time::Instant;

use crate::codec::delta;
use crate::model::Dataset;

/// Which references to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum References {
    /// All, except zstd -19 above `ZSTD19_AUTO_LIMIT` bytes of columnar data.
    #[default]
    Auto,
    /// All of them, whatever the size.
    All,
    /// None.
    None,
}

/// Above this many columnar bytes (64 MiB), `Auto` skips zstd -19.
pub const ZSTD19_AUTO_LIMIT: usize = 64 << 20;

/// One reference measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub name: String,
    pub bytes: u64,
    pub encode_ms: f64,
    pub decode_ms: f64,
    pub verified: bool,
    /// Why it could not run on some series, if so.
    pub note: Option<String>,
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// The raw columnar bytes zstd compresses.
pub fn columnar_bytes(d: &Dataset) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.sample_count() as usize * 16);
    for s in &d.series {
        for t in &s.timestamps {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in &s.values {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    out
}

fn zstd_level(d: &Dataset, raw: &[u8], level: i32) -> Reference {
    let name = format!("zstd -{level} (columnar bytes)");
    let start = Instant::now();
    let packed = zstd::bulk::compress(raw, level);
    let encode_ms = ms(start);
    let start = Instant::now();
    let back = packed
        .as_ref()
        .ok()
        .and_then(|p| zstd::bulk::decompress(p, raw.len()).ok());
    let decode_ms = ms(start);
    let _ = d;
    Reference {
        name,
        bytes: packed.as_ref().map(|p| p.len() as u64).unwrap_or(0),
        encode_ms,
        decode_ms,
        verified: back.as_deref() == Some(raw),
        note: packed.err().map(|e| e.to_string()),
    }
}

fn pco(d: &Dataset) -> Reference {
    let level = pco::DEFAULT_COMPRESSION_LEVEL;
    let start = Instant::now();
    let mut blobs = Vec::with_capacity(d.series.len());
    let mut note = None;
    for s in &d.series {
        match (
            pco::standalone::simpler_compress(&s.timestamps, level),
            pco::standalone::simpler_compress(&s.values, level),
        ) {
            (Ok(t), Ok(v)) => blobs.push((t, v)),
            (Err(e), _) | (_, Err(e)) => {
                note = Some(e.to_string());
                break;
            }
        }
    }
    let encode_ms = ms(start);
    let start = Instant::now();
    let mut verified = note.is_none();
    for (s, (t, v)) in d.series.iter().zip(&blobs) {
        let ts: Option<Vec<i64>> = pco::standalone::simple_decompress(t).ok();
        let vs: Option<Vec<f64>> = pco::standalone::simple_decompress(v).ok();
        let same_values = vs.is_some_and(|vs| {
            vs.len() == s.values.len()
                && vs
                    .iter()
                    .zip(&s.values)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
        });
        verified &= ts.as_ref() == Some(&s.timestamps) && same_values;
    }
    Reference {
        name: format!("pco level {level} (per column)"),
        bytes: blobs.iter().map(|(t, v)| (t.len() + v.len()) as u64).sum(),
        encode_ms,
        decode_ms: ms(start),
        verified,
        note,
    }
}

/// A series as tsz can take it: u64 times in ticks from the first sample,
/// or `None` if they do not fit tsz's 14-bit first delta and 32-bit dods.
fn tsz_input(ts: &[i64]) -> Option<Vec<u64>> {
    if ts.windows(2).any(|w| w[1] < w[0]) {
        return None;
    }
    let tick = delta::tick(ts) as i128;
    let t0 = *ts.first()? as i128;
    let scaled: Vec<u64> = ts
        .iter()
        .map(|&t| u64::try_from((t as i128 - t0) / tick + 1).ok())
        .collect::<Option<_>>()?;
    let first_ok = scaled.get(1).is_none_or(|&t| t - 1 < 1 << 14);
    let dods_ok = scaled
        .windows(3)
        .all(|w| i32::try_from((w[2] - w[1]) as i128 - (w[1] - w[0]) as i128).is_ok());
    (first_ok && dods_ok).then_some(scaled)
}

fn tsz(d: &Dataset) -> Reference {
    use tsz::stream::{BufferedReader, BufferedWriter};
    use tsz::{DataPoint, Decode, Encode, StdDecoder, StdEncoder};
    let inputs: Vec<Option<Vec<u64>>> = d.series.iter().map(|s| tsz_input(&s.timestamps)).collect();
    let skipped = inputs
        .iter()
        .zip(&d.series)
        .filter(|(i, s)| i.is_none() && !s.is_empty())
        .count();
    let start = Instant::now();
    let blobs: Vec<Option<Box<[u8]>>> = inputs
        .iter()
        .zip(&d.series)
        .map(|(ts, s)| {
            let ts = ts.as_ref()?;
            let mut e = StdEncoder::new(0, BufferedWriter::new());
            for (&t, &v) in ts.iter().zip(&s.values) {
                e.encode(DataPoint::new(t, v));
            }
            Some(e.close())
        })
        .collect();
    let encode_ms = ms(start);
    let start = Instant::now();
    let mut verified = skipped == 0;
    for ((blob, ts), s) in blobs.iter().zip(&inputs).zip(&d.series) {
        let (Some(blob), Some(ts)) = (blob, ts) else {
            continue;
        };
        let mut dec = StdDecoder::new(BufferedReader::new(blob.clone()));
        let mut n = 0;
        while let Ok(p) = dec.next() {
            verified &= n < ts.len()
                && p.get_time() == ts[n]
                && p.get_value().to_bits() == s.values[n].to_bits();
            n += 1;
        }
        verified &= n == ts.len();
    }
    Reference {
        name: "tsz (Gorilla crate)".into(),
        bytes: blobs.iter().flatten().map(|b| b.len() as u64).sum(),
        encode_ms,
        decode_ms: ms(start),
        verified,
        note: (skipped > 0)
            .then(|| format!("{skipped} series left out: timestamps tsz cannot represent")),
    }
}

/// The references `which` selects, measured on `d`. A skipped one comes
/// back with 0 bytes, unverified, and a note saying why.
pub fn measure(d: &Dataset, which: References) -> Vec<Reference> {
    if which == References::None {
        return Vec::new();
    }
    let raw = columnar_bytes(d);
    let zstd19 = if which == References::Auto && raw.len() > ZSTD19_AUTO_LIMIT {
        Reference {
            name: "zstd -19 (columnar bytes)".into(),
            bytes: 0,
            encode_ms: 0.0,
            decode_ms: 0.0,
            verified: false,
            note: Some(format!(
                "skipped: {} MiB of columnar bytes is above the {} MiB limit (--references all runs it)",
                raw.len() >> 20,
                ZSTD19_AUTO_LIMIT >> 20
            )),
        }
    } else {
        zstd_level(d, &raw, 19)
    };
    vec![zstd_level(d, &raw, 3), zstd19, pco(d), tsz(d)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GenerateConfig};

    #[test]
    fn every_reference_round_trips_generated_data() {
        let d = generate(&GenerateConfig {
            series: 6,
            points: 600,
            ..GenerateConfig::default()
        })
        .unwrap();
        assert!(measure(&d, References::None).is_empty());
        for r in measure(&d, References::Auto) {
            assert!(r.verified, "{r:?}");
            assert!(r.bytes > 0 && r.bytes < 600 * 16, "{r:?}");
        }
    }

    #[test]
    fn tsz_input_refuses_what_tsz_cannot_hold() {
        assert!(tsz_input(&[0, 60, 120]).is_some());
        assert!(tsz_input(&[0, 1 << 20, (1 << 20) + 1]).is_none());
        assert!(tsz_input(&[10, 5]).is_none());
    }
}
