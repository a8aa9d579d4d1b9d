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

impl fmt::Display for SeriesKey {
    /// Prometheus style: `cpu_usage_percent{host="web-01",region="eu-west"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
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
}

impl Dataset {
    pub fn new(source: impl Into<String>, mut series: Vec<Series>) -> Self {
        series.sort_by(|a, b| a.key.cmp(&b.key));
        Dataset {
            source: source.into(),
            series,
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
    }
}
