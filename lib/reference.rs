//! Reference points: general-purpose and peer compressors run on the same
//! samples in the same run, so the course's own codecs can be judged.
//!
//! | reference | what it compresses |
//! |-----------|--------------------|
//! | zstd -3, zstd -19 | the raw columnar bytes: per series, its timestamps as `i64` LE then its values as `f64` LE, series after series |
//! | pco, concatenated columns | as a column store holds it: every series' timestamps in one `i64` column and every value in one `f64` column (series after series), each one pco stream at the default level, plus the series column: the keys and their sample counts, zstd -19 |
//! | pco, per series | per series, the timestamp column and the value column, each its own pco stream |
//! | tsz | per series, Gorilla as implemented by the `tsz` crate (timestamps given in the series' tick, as it needs a 14-bit first delta) |
//! | zstd -19 of the input text | the dataset as the CSV a user would have (`series,timestamp_ns,value`, one sample a line, series after series, shortest round-trip values): the first thing a user would try |
//!
//! Each is decompressed and compared with the input bit for bit; a row is
//! `verified` only if every series came back exact. (The input text is
//! verified as text: it prints NaN payloads as `NaN`, as any CSV would.)
//!
//! zstd -19 compresses a few MB/s on one core (text about 2 MB/s), so
//! [`References::Auto`] skips it above [`ZSTD19_AUTO_LIMIT`] bytes of
//! columnar data and [`TEXT19_AUTO_LIMIT`] bytes of text (and says so):
//! the default run stays under a second.

use std::time::Instant;

use crate::codec::delta;
use crate::model::Dataset;

/// Which references to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum References {
    /// All, except zstd -19 above `ZSTD19_AUTO_LIMIT` bytes of columnar data
    /// or `TEXT19_AUTO_LIMIT` bytes of text.
    #[default]
    Auto,
    /// All of them, whatever the size.
    All,
    /// None.
    None,
}

/// Above this many columnar bytes (64 MiB), `Auto` skips zstd -19.
pub const ZSTD19_AUTO_LIMIT: usize = 64 << 20;
/// Above this many bytes of input text (1 MiB), `Auto` skips zstd -19 of it.
pub const TEXT19_AUTO_LIMIT: usize = 1 << 20;

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

fn zstd_level(raw: &[u8], level: i32) -> Reference {
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
    Reference {
        name,
        bytes: packed.as_ref().map(|p| p.len() as u64).unwrap_or(0),
        encode_ms,
        decode_ms,
        verified: back.as_deref() == Some(raw),
        note: packed.err().map(|e| e.to_string()),
    }
}

/// The dataset as CSV text, the way a user would hold it before any of
/// this course: `series,timestamp_ns,value` lines, series after series,
/// values in their shortest round-trip form (NaN, +Inf, -Inf as words).
pub fn input_text(d: &Dataset) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(d.sample_count() as usize * 48);
    out.extend_from_slice(b"series,timestamp,value\n");
    let mut float = ryu::Buffer::new();
    let mut int = itoa::Buffer::new();
    for s in &d.series {
        let key = s.key.to_string();
        let key = if key.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", key.replace('"', "\"\""))
        } else {
            key
        };
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            out.extend_from_slice(key.as_bytes());
            out.push(b',');
            out.extend_from_slice(int.format(*t).as_bytes());
            out.push(b',');
            let text = if v.is_nan() {
                "NaN"
            } else if v.is_infinite() {
                if *v > 0.0 {
                    "+Inf"
                } else {
                    "-Inf"
                }
            } else {
                float.format_finite(*v)
            };
            let _ = out.write_all(text.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

fn zstd_text(text: &[u8]) -> Reference {
    let mut r = zstd_level(text, 19);
    r.name = "zstd -19 (the input text, CSV)".into();
    r
}

/// The series column a column store keeps beside its numeric columns:
/// every key (its text) and its sample count, zstd -19.
fn series_column(d: &Dataset) -> Vec<u8> {
    let mut raw = Vec::new();
    for s in &d.series {
        raw.extend_from_slice(s.key.to_string().as_bytes());
        raw.push(b'\n');
        crate::codec::varint::write_u64(&mut raw, s.len() as u64);
    }
    zstd::bulk::compress(&raw, 19).unwrap_or(raw)
}

/// pco as a column store uses it: one stream of every timestamp and one of
/// every value, series after series, plus the series column.
fn pco_concatenated(d: &Dataset) -> Reference {
    let level = pco::DEFAULT_COMPRESSION_LEVEL;
    let ts: Vec<i64> = d
        .series
        .iter()
        .flat_map(|s| s.timestamps.iter().copied())
        .collect();
    let vs: Vec<f64> = d
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .collect();
    let start = Instant::now();
    let packed = (
        pco::standalone::simpler_compress(&ts, level),
        pco::standalone::simpler_compress(&vs, level),
    );
    let keys = series_column(d);
    let encode_ms = ms(start);
    let start = Instant::now();
    let (bytes, verified, note) = match packed {
        (Ok(t), Ok(v)) => {
            let tb: Option<Vec<i64>> = pco::standalone::simple_decompress(&t).ok();
            let vb: Option<Vec<f64>> = pco::standalone::simple_decompress(&v).ok();
            let same = tb.as_ref() == Some(&ts)
                && vb.is_some_and(|vb| {
                    vb.len() == vs.len()
                        && vb.iter().zip(&vs).all(|(a, b)| a.to_bits() == b.to_bits())
                });
            ((t.len() + v.len() + keys.len()) as u64, same, None)
        }
        (Err(e), _) | (_, Err(e)) => (0, false, Some(e.to_string())),
    };
    Reference {
        name: format!(
            "pco level {level} (concatenated columns + series keys, {} B of them)",
            keys.len()
        ),
        bytes,
        encode_ms,
        decode_ms: ms(start),
        verified,
        note,
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
        name: format!("pco level {level} (per series)"),
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

/// A zstd -19 that `Auto` skipped: no size, and why.
fn skipped(name: &str, what: &str, len: usize, limit: usize) -> Reference {
    Reference {
        name: name.into(),
        bytes: 0,
        encode_ms: 0.0,
        decode_ms: 0.0,
        verified: false,
        note: Some(format!(
            "skipped: {:.1} MiB of {what} is above the {} MiB limit (--references all runs it)",
            len as f64 / (1 << 20) as f64,
            limit >> 20
        )),
    }
}

/// The references `which` selects, measured on `d`, in the order of the
/// table above. A skipped one comes back with 0 bytes, unverified, and a
/// note saying why.
pub fn measure(d: &Dataset, which: References) -> Vec<Reference> {
    if which == References::None {
        return Vec::new();
    }
    // The text is built only when it will be compressed: at ~40 bytes a
    // sample it is the largest thing here.
    let text_estimate = d.sample_count() as usize * 40;
    let text19 = if which == References::Auto && text_estimate > TEXT19_AUTO_LIMIT {
        skipped(
            "zstd -19 (the input text, CSV)",
            "text (about 40 B a sample)",
            text_estimate,
            TEXT19_AUTO_LIMIT,
        )
    } else {
        zstd_text(&input_text(d))
    };
    let raw = columnar_bytes(d);
    let zstd19 = if which == References::Auto && raw.len() > ZSTD19_AUTO_LIMIT {
        skipped(
            "zstd -19 (columnar bytes)",
            "columnar bytes",
            raw.len(),
            ZSTD19_AUTO_LIMIT,
        )
    } else {
        zstd_level(&raw, 19)
    };
    let zstd3 = zstd_level(&raw, 3);
    drop(raw);
    vec![zstd3, zstd19, pco_concatenated(d), pco(d), tsz(d), text19]
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
        let all = measure(&d, References::Auto);
        assert_eq!(all.len(), 6);
        assert!(d.sample_count() as usize * 40 < TEXT19_AUTO_LIMIT);
        for r in all {
            assert!(r.verified, "{r:?}");
            assert!(r.bytes > 0 && r.bytes < 600 * 40, "{r:?}");
        }
    }

    #[test]
    fn tsz_input_refuses_what_tsz_cannot_hold() {
        assert!(tsz_input(&[0, 60, 120]).is_some());
        assert!(tsz_input(&[0, 1 << 20, (1 << 20) + 1]).is_none());
        assert!(tsz_input(&[10, 5]).is_none());
    }
}
