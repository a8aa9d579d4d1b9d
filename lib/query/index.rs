//! The inverted label index: built once from a file's directory.
//!
//! For every metric the ids of its series, and for every `(label, value)`
//! pair the ids of the series that carry it, as sorted lists. A query with
//! `region = 'eu-west-1' AND job IN ('api', 'db')` intersects three short
//! lists instead of testing every series. (The time index is the per-series
//! block list of the file: sorted by time, with each block's first and last
//! timestamp, it is read only for the series the label index chose.)

use std::collections::{BTreeMap, BTreeSet};

use crate::format::metrics::SeriesInfo;

/// Series ids by metric and by label pair.
#[derive(Debug, Clone, Default)]
pub struct LabelIndex {
    metrics: BTreeMap<String, Vec<usize>>,
    postings: BTreeMap<(String, String), Vec<usize>>,
    /// Label names per metric.
    names: BTreeMap<String, BTreeSet<String>>,
}

impl LabelIndex {
    /// Indexes the series of a directory (ids are positions in `series`).
    pub fn build(series: &[SeriesInfo]) -> Self {
        let mut idx = LabelIndex::default();
        for (id, s) in series.iter().enumerate() {
            idx.metrics
                .entry(s.key.metric.clone())
                .or_default()
                .push(id);
            let names = idx.names.entry(s.key.metric.clone()).or_default();
            for (k, v) in &s.key.labels {
                names.insert(k.clone());
                idx.postings
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .push(id);
            }
        }
        idx
    }

    /// The series of `metric`, sorted; `None` if the file has no such metric.
    pub fn metric(&self, metric: &str) -> Option<&[usize]> {
        self.metrics.get(metric).map(Vec::as_slice)
    }

    /// Every metric name, sorted.
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        self.metrics.keys().map(String::as_str)
    }

    /// Label names carried by some series of `metric`.
    pub fn label_names(&self, metric: &str) -> BTreeSet<String> {
        self.names.get(metric).cloned().unwrap_or_default()
    }

    /// Series carrying `name = value` (sorted). An empty value also matches
    /// series without the label, which `all` must list.
    pub fn lookup(&self, name: &str, value: &str, all: &[usize]) -> Vec<usize> {
        if value.is_empty() {
            // Series lacking the label read it as "": the complement of
            // every series that has it with a non-empty value.
            let has: BTreeSet<usize> = self
                .postings
                .range((name.to_string(), String::new())..)
                .take_while(|((k, _), _)| k == name)
                .filter(|((_, v), _)| !v.is_empty())
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            return all.iter().copied().filter(|i| !has.contains(i)).collect();
        }
        self.postings
            .get(&(name.to_string(), value.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Intersection of two sorted id lists.
pub fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Union of sorted id lists.
pub fn union(lists: Vec<Vec<usize>>) -> Vec<usize> {
    let mut out: Vec<usize> = lists.into_iter().flatten().collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, SeriesKey};

    fn info(metric: &str, labels: &[(&str, &str)]) -> SeriesInfo {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SeriesInfo {
            key: SeriesKey::new(metric, labels),
            samples: 1,
            blocks: 1,
            data_len: 0,
            loc: crate::format::metrics::SeriesLoc::Page { page: 0, index: 0 },
        }
    }

    #[test]
    fn postings_and_missing_labels() {
        let series = [
            info("cpu", &[("host", "a"), ("region", "eu")]),
            info("cpu", &[("host", "b"), ("region", "us")]),
            info("cpu", &[("host", "c")]),
            info("mem", &[("host", "a")]),
        ];
        let idx = LabelIndex::build(&series);
        let cpu = idx.metric("cpu").unwrap();
        assert_eq!(cpu, [0, 1, 2]);
        assert_eq!(intersect(cpu, &idx.lookup("host", "a", cpu)), [0]);
        assert_eq!(idx.lookup("region", "", cpu), [2]);
        assert_eq!(
            union(vec![
                idx.lookup("region", "eu", cpu),
                idx.lookup("host", "c", cpu)
            ]),
            [0, 2]
        );
        assert!(idx.metric("disk").is_none());
        assert_eq!(idx.label_names("cpu").len(), 2);
    }
}
