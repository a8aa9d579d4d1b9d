//! Phase 02: columnar MessagePack.
//!
//! The same samples, turned sideways: each series' metadata is written once,
//! then its timestamps as one array and its values as another. The file is a
//! MessagePack map (written with `rmp-serde`):
//!
//! ```text
//! {
//!   "format": "squeezed-signals columnar v1",
//!   "source": "generated: ...",
//!   "series_metadata": [ {"metric": "cpu_usage_percent", "labels": {"host": "web-01", ...}}, ... ],
//!   "series_data":     [ {"timestamps": [i64, ...], "values": [f64, ...]}, ... ]
//! }
//! ```
//!
//! MessagePack stores each integer in the smallest of 1, 2, 3, 5 or 9 bytes
//! and each `f64` in 9 bytes (a marker byte plus the raw bits, so NaN payloads
//! and `-0.0` survive). Nanosecond timestamps are large numbers, so they still
//! take 9 bytes each: columns alone remove the repetition, not the width.
//! Phase 03 attacks the width.
//!
//! Like NDJSON, this format has no checksum: a damaged number decodes to a
//! different number. The formats from phase 03 on carry a CRC.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::{read_input, write_atomic};
use crate::model::{Dataset, Labels, Series, SeriesKey};

pub const FILE_NAME: &str = "02_columnar.msgpack";
pub const FORMAT: &str = "squeezed-signals columnar v1";

#[derive(Serialize, Deserialize)]
struct SeriesMeta {
    metric: String,
    labels: Labels,
}

#[derive(Serialize, Deserialize)]
struct SeriesColumns {
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct ColumnarFile {
    format: String,
    source: String,
    series_metadata: Vec<SeriesMeta>,
    series_data: Vec<SeriesColumns>,
}

/// Serializes a dataset as columnar MessagePack.
pub fn encode(dataset: &Dataset) -> Result<Vec<u8>> {
    // Borrowing serializer view, so the columns are not copied.
    #[derive(Serialize)]
    struct MetaRef<'a> {
        metric: &'a str,
        labels: &'a Labels,
    }
    #[derive(Serialize)]
    struct ColumnsRef<'a> {
        timestamps: &'a [i64],
        values: &'a [f64],
    }
    #[derive(Serialize)]
    struct FileRef<'a> {
        format: &'a str,
        source: &'a str,
        series_metadata: Vec<MetaRef<'a>>,
        series_data: Vec<ColumnsRef<'a>>,
    }
    let view = FileRef {
        format: FORMAT,
        source: &dataset.source,
        series_metadata: dataset
            .series
            .iter()
            .map(|s| MetaRef {
                metric: &s.key.metric,
                labels: &s.key.labels,
            })
            .collect(),
        series_data: dataset
            .series
            .iter()
            .map(|s| ColumnsRef {
                timestamps: &s.timestamps,
                values: &s.values,
            })
            .collect(),
    };
    rmp_serde::to_vec_named(&view)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode MessagePack: {e}")))
}

/// Parses columnar MessagePack back into a dataset.
pub fn decode(bytes: &[u8]) -> Result<Dataset> {
    const WHAT: &str = "columnar MessagePack";
    let file: ColumnarFile = rmp_serde::from_slice(bytes)
        .map_err(|e| Error::corrupt(WHAT, 0, format!("not a valid columnar file: {e}")))?;
    if file.format != FORMAT {
        return Err(Error::corrupt(
            WHAT,
            0,
            format!("unknown format {:?}, expected {FORMAT:?}", file.format),
        ));
    }
    if file.series_metadata.len() != file.series_data.len() {
        return Err(Error::corrupt(
            WHAT,
            0,
            format!(
                "{} metadata entries but {} data entries",
                file.series_metadata.len(),
                file.series_data.len()
            ),
        ));
    }
    let mut series = Vec::with_capacity(file.series_data.len());
    for (meta, cols) in file.series_metadata.into_iter().zip(file.series_data) {
        if cols.timestamps.len() != cols.values.len() {
            return Err(Error::corrupt(
                WHAT,
                0,
                format!(
                    "series {}: {} timestamps but {} values",
                    meta.metric,
                    cols.timestamps.len(),
                    cols.values.len()
                ),
            ));
        }
        series.push(Series {
            key: SeriesKey::new(meta.metric, meta.labels),
            timestamps: cols.timestamps,
            values: cols.values,
        });
    }
    Ok(Dataset::new(file.source, series))
}

/// Writes `dataset` to `path` atomically; returns the file size.
pub fn write(dataset: &Dataset, path: &Path) -> Result<u64> {
    write_atomic(path, &encode(dataset)?)
}

/// Reads a columnar file.
pub fn read(path: &Path) -> Result<Dataset> {
    let bytes = read_input(path, "run `cargo run --release --bin 02_columnar` first")?;
    decode(&bytes).map_err(|e| e.within(path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bit_exact() {
        let mut s = Series::new(SeriesKey::new(
            "m",
            Labels::from([("a".into(), "b".into())]),
        ));
        s.push(i64::MIN, f64::from_bits(0x7FF0_0000_0000_0001));
        s.push(i64::MAX, -0.0);
        let d = Dataset::new("t", vec![s]);
        let back = decode(&encode(&d).unwrap()).unwrap();
        assert_eq!(d.bit_diff(&back), None);
    }

    #[test]
    fn truncated_file_is_an_error() {
        let mut s = Series::new(SeriesKey::new("m", Labels::new()));
        s.push(1, 1.0);
        let bytes = encode(&Dataset::new("t", vec![s])).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix {cut}");
        }
    }
}
