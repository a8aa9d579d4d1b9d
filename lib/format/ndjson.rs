//! Phase 01: NDJSON, one JSON object per sample, one sample per line.
//!
//! ```text
//! {"timestamp":1704067200003000000,"metric_name":"cpu_usage_percent","value":37.42,"labels":{"host":"web-01","region":"eu-west-1"}}
//! ```
//!
//! Lines are written in time order across all series (a k-way merge), the
//! way a log of scrapes would arrive. Every line repeats the field names, the
//! metric name and every label: that repetition is what later phases remove.
//!
//! # Numbers that JSON cannot write
//!
//! JSON has no literal for NaN or infinity, and a NaN has 2^52 - 1 possible
//! payloads. To keep the round trip bit-exact, `value` is:
//!
//! | value | written as |
//! |-------|------------|
//! | finite (incl. `-0.0`, subnormals) | a JSON number, shortest form that parses back to the same bits (`-0.0`, `37.42`, `5e-324`) |
//! | `+inf` / `-inf` | the string `"+Inf"` / `"-Inf"` (Prometheus spelling) |
//! | the canonical NaN (`0x7ff8000000000000`) | the string `"NaN"` |
//! | any other NaN | the string `"NaN(0x7ff0000000000001)"`, its bits in hex |
//!
//! The reader accepts exactly these, plus integers (for hand-written files)
//! when they convert to `f64` exactly.

use std::borrow::Cow;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::path::Path;

use indicatif::ProgressBar;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::files::AtomicFile;
use crate::model::{Dataset, Labels, Series, SeriesKey};

pub const FILE_NAME: &str = "01_metrics.ndjson";

const CANONICAL_NAN: u64 = 0x7FF8_0000_0000_0000;

/// Writes `value` as the JSON token described in the module docs.
pub fn write_value(out: &mut Vec<u8>, value: f64, ryu_buf: &mut ryu::Buffer) {
    if value.is_finite() {
        out.extend_from_slice(ryu_buf.format_finite(value).as_bytes());
    } else if value == f64::INFINITY {
        out.extend_from_slice(b"\"+Inf\"");
    } else if value == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Inf\"");
    } else if value.to_bits() == CANONICAL_NAN {
        out.extend_from_slice(b"\"NaN\"");
    } else {
        out.extend_from_slice(format!("\"NaN({:#018x})\"", value.to_bits()).as_bytes());
    }
}

/// Parses the string form of a non-finite value.
pub fn parse_special(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::from_bits(CANONICAL_NAN)),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            let hex = s.strip_prefix("NaN(0x")?.strip_suffix(')')?;
            let bits = u64::from_str_radix(hex, 16).ok()?;
            let v = f64::from_bits(bits);
            v.is_nan().then_some(v)
        }
    }
}

/// The two constant parts of every line of one series, rendered once.
struct LineParts {
    /// `,"metric_name":"...","value":`
    middle: Vec<u8>,
    /// `,"labels":{...}}\n`
    tail: Vec<u8>,
}

impl LineParts {
    fn new(key: &SeriesKey) -> Result<Self> {
        let json = |e: serde_json::Error| {
            Error::InvalidArgument(format!("cannot write {key} as JSON: {e}"))
        };
        let mut middle = b",\"metric_name\":".to_vec();
        serde_json::to_writer(&mut middle, &key.metric).map_err(json)?;
        middle.extend_from_slice(b",\"value\":");
        let mut tail = b",\"labels\":".to_vec();
        serde_json::to_writer(&mut tail, &key.labels).map_err(json)?;
        tail.extend_from_slice(b"}\n");
        Ok(LineParts { middle, tail })
    }
}

/// Writes every sample of `dataset` as one NDJSON line, merged by time.
pub fn write(dataset: &Dataset, path: &Path, progress: &ProgressBar) -> Result<u64> {
    let parts = dataset
        .series
        .iter()
        .map(|s| LineParts::new(&s.key))
        .collect::<Result<Vec<_>>>()?;
    let mut file = AtomicFile::create(path)?;
    let mut line = Vec::with_capacity(256);
    let mut ryu_buf = ryu::Buffer::new();
    let mut itoa_buf = itoa::Buffer::new();
    // Min-heap of (next timestamp, series index) for the k-way merge.
    let mut heap: BinaryHeap<std::cmp::Reverse<(i64, usize)>> = dataset
        .series
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.timestamps.first().map(|&t| std::cmp::Reverse((t, i))))
        .collect();
    let mut next = vec![0usize; dataset.series.len()];
    let mut written = 0u64;
    while let Some(std::cmp::Reverse((t, i))) = heap.pop() {
        let s = &dataset.series[i];
        let j = next[i];
        line.clear();
        line.extend_from_slice(b"{\"timestamp\":");
        line.extend_from_slice(itoa_buf.format(t).as_bytes());
        line.extend_from_slice(&parts[i].middle);
        write_value(&mut line, s.values[j], &mut ryu_buf);
        line.extend_from_slice(&parts[i].tail);
        file.write_all(&line)?;
        next[i] = j + 1;
        if let Some(&t2) = s.timestamps.get(j + 1) {
            heap.push(std::cmp::Reverse((t2, i)));
        }
        written += 1;
        if written % 65_536 == 0 {
            progress.inc(65_536);
        }
    }
    progress.inc(written % 65_536);
    file.commit()
}

/// Bytes of the NDJSON file that are not timestamp or value text: field
/// names, the metric name, labels and punctuation, repeated on every line.
pub fn repeated_bytes(dataset: &Dataset) -> u64 {
    dataset
        .series
        .iter()
        .map(|s| {
            let per_line = LineParts::new(&s.key)
                .map(|p| b"{\"timestamp\":".len() + p.middle.len() + p.tail.len())
                .unwrap_or(0);
            per_line as u64 * s.len() as u64
        })
        .sum()
}

/// A sample value as read from JSON.
struct JsonValue(f64);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"+Inf\", \"-Inf\" or \"NaN(0x...)\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<JsonValue, E> {
                Ok(JsonValue(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<JsonValue, E> {
                let f = v as f64;
                if f as i64 != v || (v == i64::MAX) {
                    return Err(E::custom(format!("integer {v} has no exact f64")));
                }
                Ok(JsonValue(f))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<JsonValue, E> {
                let f = v as f64;
                if f as u64 != v || v == u64::MAX {
                    return Err(E::custom(format!("integer {v} has no exact f64")));
                }
                Ok(JsonValue(f))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<JsonValue, E> {
                parse_special(s).map(JsonValue).ok_or_else(|| {
                    E::custom(format!("{s:?} is not a number or a known special value"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Labels as borrowed pairs, in file order.
struct RowLabels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RowLabels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RowLabels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string labels")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RowLabels<'a>, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<BorrowedStr<'a>, BorrowedStr<'a>>()? {
                    pairs.push((k.0, v.0));
                }
                Ok(RowLabels(pairs))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A string borrowed from the input when it has no escapes, owned otherwise.
/// (A plain `Cow<str>` field always allocates under serde's derive.)
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BorrowedStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<BorrowedStr<'a>, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<BorrowedStr<'a>, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row<'a> {
    timestamp: i64,
    #[serde(borrow)]
    metric_name: BorrowedStr<'a>,
    value: JsonValue,
    #[serde(borrow)]
    labels: RowLabels<'a>,
}

fn key_hash(metric: &str, labels: &[(Cow<'_, str>, Cow<'_, str>)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    metric.hash(&mut h);
    for (k, v) in labels {
        k.as_ref().hash(&mut h);
        v.as_ref().hash(&mut h);
    }
    h.finish()
}

fn key_matches(key: &SeriesKey, metric: &str, labels: &[(Cow<'_, str>, Cow<'_, str>)]) -> bool {
    key.metric == metric
        && key.labels.len() == labels.len()
        && key
            .labels
            .iter()
            .zip(labels)
            .all(|((k, v), (k2, v2))| k == k2 && v == v2)
}

/// Reads an NDJSON file back into a dataset (series regrouped and sorted by key).
pub fn read(path: &Path, source: &str, progress: &ProgressBar) -> Result<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut series: Vec<Series> = Vec::new();
    let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut line = String::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line_no % 65_536 == 0 {
            progress.inc(65_536);
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        let parse_err = |reason: String| Error::Parse {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let row: Row = serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let mut labels = row.labels.0;
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        if labels.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(parse_err("a label name appears twice".into()));
        }
        let metric = row.metric_name.0;
        let h = key_hash(&metric, &labels);
        let slot = index.entry(h).or_default();
        let found = slot
            .iter()
            .copied()
            .find(|&i| key_matches(&series[i].key, &metric, &labels));
        let i = match found {
            Some(i) => i,
            None => {
                let key = SeriesKey::new(
                    metric.into_owned(),
                    labels
                        .into_iter()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect::<Labels>(),
                );
                series.push(Series::new(key));
                slot.push(series.len() - 1);
                series.len() - 1
            }
        };
        series[i].push(row.timestamp, row.value.0);
    }
    // An empty file is what the writer makes of a dataset without samples.
    Ok(Dataset::new(source, series))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_line_for_test(value: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, value, &mut ryu::Buffer::new());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn special_values_have_documented_spellings() {
        assert_eq!(write_line_for_test(f64::NAN), "\"NaN\"");
        assert_eq!(write_line_for_test(f64::INFINITY), "\"+Inf\"");
        assert_eq!(write_line_for_test(f64::NEG_INFINITY), "\"-Inf\"");
        assert_eq!(write_line_for_test(-0.0), "-0.0");
        assert_eq!(
            write_line_for_test(f64::from_bits(0x7FF0_0000_0000_0001)),
            "\"NaN(0x7ff0000000000001)\""
        );
        assert_eq!(write_line_for_test(37.42), "37.42");
    }

    #[test]
    fn parse_special_refuses_non_nan_bits() {
        assert!(parse_special("NaN(0x3ff0000000000000)").is_none());
        assert!(parse_special("nan").is_none());
        assert_eq!(
            parse_special("NaN(0xfff8000000000001)").map(f64::to_bits),
            Some(0xFFF8_0000_0000_0001)
        );
    }

    #[test]
    fn file_round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ndjson");
        let mut a = Series::new(SeriesKey::new(
            "cpu",
            Labels::from([("h".into(), "x\"y".into())]),
        ));
        for (i, v) in [
            0.1,
            -0.0,
            f64::NAN,
            f64::from_bits(0xFFF0_0000_0000_0002),
            5e-324,
            f64::MAX,
        ]
        .into_iter()
        .enumerate()
        {
            a.push(i as i64 * 10, v);
        }
        let mut b = Series::new(SeriesKey::new("up", Labels::new()));
        b.push(5, 1.0);
        b.push(5, 0.0);
        let d = Dataset::new("t", vec![a, b]);
        write(&d, &path, &ProgressBar::hidden()).unwrap();
        let back = read(&path, "t", &ProgressBar::hidden()).unwrap();
        assert_eq!(d.bit_diff(&back), None);
    }

    #[test]
    fn malformed_line_names_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ndjson");
        std::fs::write(
            &path,
            "{\"timestamp\":1,\"metric_name\":\"a\",\"value\":1.0,\"labels\":{}}\n{\"timestamp\":\"x\"}\n",
        )
        .unwrap();
        let err = read(&path, "t", &ProgressBar::hidden()).unwrap_err();
        assert!(err.to_string().contains(":2:"), "{err}");
    }
}
