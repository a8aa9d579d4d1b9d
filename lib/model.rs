//! The data model shared by every phase.
//!
//! A **sample** is `(timestamp, value)`: an `i64` count of nanoseconds since the
//! Unix epoch (UTC) and an `f64`. A **series** is a metric name plus a sorted
//! label set, with its samples in time order. The canonical **dataset** is a
//! list of series sorted by their key.
//!
//! Samples are stored column-wise even in memory (`timestamps` and `values`
//! side by side), because that is what every later phase wants to read.
//!
//! Equality here is *bit* equality: two values are equal when their
//! `f64::to_bits` are equal, so NaN payloads, `-0.0` and `±inf` count.

use std::collections::BTreeMap;
use std::fmt;

/// A label set: label names to values, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// What identifies a series: metric name plus labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub metric: String,
    pub labels: Labels,
}

impl SeriesKey {
    pub fn new(metric: impl Into<String>, labels: Labels) -> Self {
        SeriesKey {
            metric: metric.into(),
            labels,
        }
    }
}

/// Whether `name` is a metric name of the classic Prometheus alphabet
/// (`[a-zA-Z_:][a-zA-Z0-9_:]*`), which the text format writes unquoted.
pub fn is_legacy_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
        })
}

/// Whether `name` is a label name of the classic Prometheus alphabet
/// (`[a-zA-Z_][a-zA-Z0-9_]*`), which the text format writes unquoted.
pub fn is_legacy_label_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()))
}

/// Writes `text` in double quotes with the Prometheus text format's three
/// escapes: `\\`, `\"` and `\n`; every other character is itself.
pub fn write_quoted(f: &mut impl fmt::Write, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for SeriesKey {
    /// The Prometheus text format's selector, as Prometheus 3 writes it:
    /// `cpu_usage_percent{host="web-01",region="eu-west"}`; a name outside
    /// the classic alphabet is quoted inside the braces
    /// (`{"disk.all.read",host="a"}`), a label name likewise
    /// (`{"k8s.pod"="x"}`). Label values escape `\`, `"` and newline.
    /// [`crate::import::parse_series_selector`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let legacy = is_legacy_metric_name(&self.metric);
        if legacy {
            f.write_str(&self.metric)?;
            if self.labels.is_empty() {
                return Ok(());
            }
            f.write_char('{')?;
        } else {
            f.write_char('{')?;
            write_quoted(f, &self.metric)?;
        }
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 || !legacy {
                f.write_char(',')?;
            }
            if is_legacy_label_name(k) {
                f.write_str(k)?;
            } else {
                write_quoted(f, k)?;
            }
            f.write_char('=')?;
            write_quoted(f, v)?;
        }
        f.write_char('}')
    }
}

/// Whether a metric counts up (and may reset) or goes up and down.
/// It decides how phase 05 rolls a series up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKind {
    /// Not declared: the `_total` suffix decides (Prometheus' naming convention).
    Unknown,
    Gauge,
    Counter,
}

impl MetricKind {
    /// The byte that stands for it in files.
    pub fn code(self) -> u8 {
        match self {
            MetricKind::Unknown => 0,
            MetricKind::Gauge => 1,
            MetricKind::Counter => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => MetricKind::Unknown,
            1 => MetricKind::Gauge,
            2 => MetricKind::Counter,
            _ => return None,
        })
    }
}

/// What a source said about one metric name besides its samples: the
/// Prometheus/OpenMetrics `# TYPE` (resolved to what the samples of that
/// name are: a histogram's `_bucket`, `_count` and `_sum` are counters),
/// `# UNIT` and `# HELP`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricMeta {
    pub kind: Option<MetricKind>,
    pub unit: String,
    pub help: String,
}

impl MetricMeta {
    /// Metadata that declares only a kind.
    pub fn of_kind(kind: MetricKind) -> Self {
        MetricMeta {
            kind: Some(kind),
            ..MetricMeta::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kind.is_none_or(|k| k == MetricKind::Unknown)
            && self.unit.is_empty()
            && self.help.is_empty()
    }
}

/// One series: its key and its samples as two equally long columns.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub key: SeriesKey,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

impl Default for SeriesKey {
    fn default() -> Self {
        SeriesKey::new("", Labels::new())
    }
}

impl Series {
    pub fn new(key: SeriesKey) -> Self {
        Series {
            key,
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn push(&mut self, timestamp: i64, value: f64) {
        self.timestamps.push(timestamp);
        self.values.push(value);
    }

    /// Sorts samples by timestamp, keeping the input order of equal timestamps.
    pub fn sort_by_time(&mut self) {
        if self.timestamps.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.timestamps[i]);
        self.timestamps = order.iter().map(|&i| self.timestamps[i]).collect();
        self.values = order.iter().map(|&i| self.values[i]).collect();
    }

    /// Compares two series bit-exactly; on a difference says where it is.
    pub fn bit_diff(&self, other: &Series) -> Option<String> {
        if self.key != other.key {
            return Some(format!("series key {} != {}", self.key, other.key));
        }
        if self.len() != other.len() || self.values.len() != other.values.len() {
            return Some(format!(
                "series {}: {} samples != {}",
                self.key,
                self.len(),
                other.len()
            ));
        }
        for i in 0..self.len() {
            let (a, b) = (self.values[i], other.values[i]);
            if self.timestamps[i] != other.timestamps[i] || a.to_bits() != b.to_bits() {
                return Some(format!(
                    "series {} sample {i}: ({}, {a:?} bits {:#018x}) != ({}, {b:?} bits {:#018x})",
                    self.key,
                    self.timestamps[i],
                    a.to_bits(),
                    other.timestamps[i],
                    b.to_bits()
                ));
            }
        }
        None
    }
}

/// The canonical dataset: series sorted by key, plus a line saying where it came from.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Provenance, e.g. `generated: profile=observability seed=42` or `imported: data.csv`.
    pub source: String,
    pub series: Vec<Series>,
    /// Declared types, units and help texts, by metric name (empty for
    /// generated data and for formats that carry none).
    pub metadata: BTreeMap<String, MetricMeta>,
}

impl Dataset {
    pub fn new(source: impl Into<String>, mut series: Vec<Series>) -> Self {
        series.sort_by(|a, b| a.key.cmp(&b.key));
        Dataset {
            source: source.into(),
            series,
            metadata: BTreeMap::new(),
        }
    }

    /// The same dataset with `metadata` (entries with nothing in them are dropped).
    pub fn with_metadata(mut self, mut metadata: BTreeMap<String, MetricMeta>) -> Self {
        metadata.retain(|_, m| !m.is_empty());
        self.metadata = metadata;
        self
    }

    /// Whether samples of `metric` are a counter's: its declared type when
    /// one was given, else Prometheus' naming convention (`_total`).
    pub fn is_counter(&self, metric: &str) -> bool {
        match self.metadata.get(metric).and_then(|m| m.kind) {
            Some(MetricKind::Counter) => true,
            Some(MetricKind::Gauge) => false,
            Some(MetricKind::Unknown) | None => metric.ends_with("_total"),
        }
    }

    /// Total number of samples over all series.
    pub fn sample_count(&self) -> u64 {
        self.series.iter().map(|s| s.len() as u64).sum()
    }

    /// Earliest and latest timestamp, if any sample exists.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut range: Option<(i64, i64)> = None;
        for s in &self.series {
            if let (Some(&first), Some(&last)) = (s.timestamps.first(), s.timestamps.last()) {
                range = Some(match range {
                    None => (first, last),
                    Some((lo, hi)) => (lo.min(first), hi.max(last)),
                });
            }
        }
        range
    }

    /// Compares two datasets bit-exactly (series keys, order, timestamps, value bits).
    pub fn bit_diff(&self, other: &Dataset) -> Option<String> {
        if self.series.len() != other.series.len() {
            return Some(format!(
                "{} series != {} series",
                self.series.len(),
                other.series.len()
            ));
        }
        self.series
            .iter()
            .zip(&other.series)
            .find_map(|(a, b)| a.bit_diff(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(m: &str) -> SeriesKey {
        SeriesKey::new(m, Labels::from([("host".into(), "a".into())]))
    }

    #[test]
    fn bit_diff_sees_negative_zero_and_nan_payloads() {
        let mut a = Series::new(key("m"));
        a.push(1, 0.0);
        let mut b = a.clone();
        assert!(a.bit_diff(&b).is_none());
        b.values[0] = -0.0;
        assert!(a.bit_diff(&b).is_some());
        a.values[0] = f64::from_bits(0x7ff8_0000_0000_0001);
        b.values[0] = f64::NAN;
        assert!(a.bit_diff(&b).is_some());
    }

    #[test]
    fn sort_by_time_is_stable_for_equal_timestamps() {
        let mut s = Series::new(key("m"));
        s.push(5, 1.0);
        s.push(3, 2.0);
        s.push(5, 3.0);
        s.sort_by_time();
        assert_eq!(s.timestamps, vec![3, 5, 5]);
        assert_eq!(s.values, vec![2.0, 1.0, 3.0]);
    }

    #[test]
    fn dataset_sorts_series_by_key_and_counts() {
        let mut b = Series::new(key("b"));
        b.push(10, 1.0);
        let mut a = Series::new(key("a"));
        a.push(20, 1.0);
        a.push(30, 1.0);
        let d = Dataset::new("t", vec![b, a]);
        assert_eq!(d.series[0].key.metric, "a");
        assert_eq!(d.sample_count(), 3);
        assert_eq!(d.time_range(), Some((10, 30)));
    }

    #[test]
    fn key_display_is_prometheus_style() {
        assert_eq!(key("cpu").to_string(), "cpu{host=\"a\"}");
        assert_eq!(SeriesKey::new("up", Labels::new()).to_string(), "up");
        let odd = SeriesKey::new(
            "disk.all.read",
            Labels::from([
                ("k8s.pod".into(), "a\"b\\c\nd".into()),
                ("host".into(), "é".into()),
            ]),
        );
        assert_eq!(
            odd.to_string(),
            r#"{"disk.all.read",host="é","k8s.pod"="a\"b\\c\nd"}"#
        );
        assert_eq!(
            SeriesKey::new("9lives", Labels::new()).to_string(),
            r#"{"9lives"}"#
        );
    }

    #[test]
    fn declared_kind_beats_the_naming_convention() {
        let d = Dataset::new("t", vec![]).with_metadata(BTreeMap::from([
            ("requests".into(), MetricMeta::of_kind(MetricKind::Counter)),
            (
                "temperature_total".into(),
                MetricMeta::of_kind(MetricKind::Gauge),
            ),
            ("empty".to_string(), MetricMeta::default()),
        ]));
        assert!(d.is_counter("requests"));
        assert!(!d.is_counter("temperature_total"));
        assert!(d.is_counter("other_total"));
        assert!(!d.is_counter("other"));
        assert_eq!(d.metadata.len(), 2, "empty entries are dropped");
    }
}
