//! Aggregates answered from phase 05's rollups instead of raw samples.
//!
//! A query such as
//!
//! ```sql
//! SELECT time_bucket('1h', ts) AS h, avg(value), max(value), count(*)
//! FROM cpu WHERE host = 'a' AND ts >= '2024-01-01' AND ts < '2024-01-31'
//! GROUP BY h
//! ```
//!
//! needs, per series and hour, only the count, sum and maximum of the
//! samples: exactly what a gauge's rollup buckets keep
//! ([`crate::downsample`]). When every rollup bucket falls wholly inside one
//! of the query's buckets and wholly inside or outside its time range, the
//! answer built from the buckets is the raw answer: `count`, `min` and
//! `max` bit for bit, `sum` and `avg` up to floating-point rounding (the
//! buckets' sums are added instead of the samples; a relative 1e-12).
//!
//! A series is answered from the *coarsest* rollup file for which
//!
//! 1. the resolution divides the query's bucket width (or there is no
//!    bucket: one answer over the range),
//! 2. the series' time condition is one range (time comparisons joined
//!    by `AND`) that whole buckets of the resolution cover, or failing
//!    that in any file, that holds at least one whole bucket: the parts of
//!    the range outside the whole buckets (its edges) are read raw, and
//! 3. the file holds the series' count (counters have none; phase 05
//!    skips constant series and series whose rollups would not shrink them).
//!
//! Any other series of the query, and the edges, are read raw, and the
//! two kinds of answer are merged per group. Percentiles, `first`, `last`, `stddev`, `twap`,
//! conditions on values and grouping by exact timestamp need the samples:
//! such a query reads raw data only, and `EXPLAIN` says why.
//!
//! Rollups are used only when they describe the file queried: the course's
//! report entries beside the file say which dataset phases 04 and 05
//! measured and how large each file was ([`Rollups::beside`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::pred::Pred;
use crate::downsample::{rollup_key, Resolution, GAUGE_NANS, RESOLUTIONS};
use crate::error::{Error, Result};
use crate::format::metrics::MetricsFile;
use crate::model::SeriesKey;
use crate::report::ReportEntry;

/// One rollup file of phase 05.
pub struct RollupFile {
    pub res: Resolution,
    pub path: PathBuf,
    pub file: MetricsFile,
}

impl RollupFile {
    /// The file's name, as `EXPLAIN` shows it.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// The rollup files that describe one raw file, coarsest first.
#[derive(Default)]
pub struct Rollups {
    pub files: Vec<RollupFile>,
    /// Why there are none (or fewer than phase 05 writes), for `EXPLAIN`.
    pub note: Option<String>,
}

/// Where one series' answer comes from ([`Rollups::choose`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Index of the rollup file in [`Rollups::files`].
    pub file: usize,
    /// The series' rollup ids in it (see [`Rollups::choose`]).
    ids: [Option<usize>; 7],
    /// The time range its buckets answer, `[lo, hi]` on bucket boundaries.
    pub range: (i64, i64),
    /// The parts of the query's range outside it, `[lo, hi]` each, read raw.
    pub edges: Vec<(i64, i64)>,
}

/// What one rollup bucket says about the raw samples in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partial {
    /// Start of the rollup bucket, ns.
    pub start: i64,
    /// Samples that are not NaN, and NaN samples.
    pub count: u64,
    pub nans: u64,
    /// Sum, smallest and largest of the samples that are not NaN
    /// (`min` and `max` mean nothing when `count` is 0).
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Rollups {
    /// The rollups phase 05 wrote beside `raw_path`, if the course's report
    /// entries there show they were made from the same dataset as the raw
    /// file and are the files measured then (same sizes and file ids,
    /// `MetricsFile::file_id`, of the rollups and of the raw file they
    /// were made from). Anything else
    /// (no report, another dataset, a file rewritten since) leaves the
    /// rollup unused, with a note saying why; a rollup file that cannot be
    /// opened is an error, as the raw file's would be.
    pub fn beside(raw_path: &Path, raw: &MetricsFile) -> Result<Rollups> {
        let dir = raw_path.parent().unwrap_or(Path::new("."));
        let none = |why: String| {
            Ok(Rollups {
                files: Vec::new(),
                note: Some(why),
            })
        };
        let raw_name = raw_path.file_name();
        let raw_entry = match ReportEntry::load(dir, "04") {
            Ok(Some(e)) => e,
            Ok(None) => return none("no phase 04 report entry beside the file".into()),
            Err(e) => return none(format!("the phase 04 report entry is unreadable: {e}")),
        };
        if Path::new(&raw_entry.artifact).file_name() != raw_name || raw_entry.bytes != raw.len() {
            return none(format!(
                "the phase 04 report entry describes {} ({} bytes), not this file ({} bytes)",
                raw_entry.artifact,
                raw_entry.bytes,
                raw.len()
            ));
        }
        if raw_entry.file_id.as_deref() != Some(raw.file_id().as_str()) {
            return none(format!(
                "the phase 04 report entry describes {} as file {}, this file is {} (rerun phases 04 and 05)",
                raw_entry.artifact,
                raw_entry.file_id.as_deref().unwrap_or("(not recorded)"),
                raw.file_id()
            ));
        }
        let mut files = Vec::new();
        let mut stale = Vec::new();
        for (k, res) in RESOLUTIONS.iter().enumerate() {
            let path = dir.join(crate::course::downsampling::file_name(res.name));
            let entry = match ReportEntry::load(dir, &format!("05.{}", k + 1)) {
                Ok(Some(e)) => e,
                _ => continue,
            };
            let len = std::fs::metadata(&path).map(|m| m.len()).ok();
            if entry.dataset != raw_entry.dataset
                || Path::new(&entry.artifact).file_name() != path.file_name()
                || len != Some(entry.bytes)
                || entry.source_file_id != raw_entry.file_id
            {
                stale.push(res.name);
                continue;
            }
            let file = MetricsFile::open_lazy(&path)?;
            // The file is the one phase 05 wrote and measured.
            if entry.file_id.as_deref() != Some(file.file_id().as_str()) {
                stale.push(res.name);
                continue;
            }
            files.push(RollupFile {
                res: *res,
                path,
                file,
            });
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.res.ns));
        let note = if files.is_empty() && stale.is_empty() {
            Some("phase 05 has not rolled this file up".into())
        } else if !stale.is_empty() {
            Some(format!(
                "{} rollups describe another dataset or were rewritten since: not used",
                stale.join(", ")
            ))
        } else {
            None
        };
        Ok(Rollups { files, note })
    }

    /// Bytes read by opening the files.
    pub fn open_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.file.open_bytes()).sum()
    }

    /// Bytes read from the files so far.
    pub fn bytes_read(&self) -> u64 {
        self.files.iter().map(|f| f.file.bytes_read()).sum()
    }

    /// Forgets cached timestamp columns (each query counts what it reads).
    pub fn forget_columns(&self) {
        for f in &self.files {
            f.file.forget_columns();
        }
    }

    /// The file that answers for `key` under `pred` (its labels bound)
    /// with query buckets of `width` ns (`None`: one bucket): of the files
    /// whose resolution divides `width` and that hold the series, the
    /// coarsest whose bucket boundaries hold the time range, else the
    /// coarsest with at least one whole bucket inside it, the rest of the
    /// range (its edges) being read raw.
    pub fn choose(
        &self,
        key: &SeriesKey,
        pred: &Pred,
        width: Option<i64>,
    ) -> Result<Option<Choice>> {
        let Some((lo, hi)) = interval(pred) else {
            return Ok(None);
        };
        let mut with_edges = None;
        for (k, f) in self.files.iter().enumerate() {
            let r = f.res.ns;
            if width.is_some_and(|w| w % r != 0) {
                continue;
            }
            let Some(inner) = inner_range(lo, hi, r) else {
                continue;
            };
            let edged = inner != (lo, hi);
            if edged && with_edges.is_some() {
                continue;
            }
            let Some(ids) = self.ids(k, key)? else {
                continue;
            };
            let choice = Choice {
                file: k,
                ids,
                range: inner,
                edges: edges(lo, hi, inner),
            };
            if !edged {
                return Ok(Some(choice));
            }
            with_edges = Some(choice);
        }
        Ok(with_edges)
    }

    /// The series' ids in file `k`: `count`, `sum`, `max`, then the
    /// optional `p99`, `p95`, `min`, `nans` (`None` if it has no count).
    fn ids(&self, k: usize, key: &SeriesKey) -> Result<Option<[Option<usize>; 7]>> {
        let Some(f) = self.files.get(k) else {
            return Ok(None);
        };
        let find = |agg: &str| f.file.find(&rollup_key(key, agg, &f.res));
        let Some(count) = find("count")? else {
            return Ok(None);
        };
        let mut ids = [Some(count), None, None, None, None, None, None];
        for (i, agg) in ["sum", "max", "p99", "p95", "min", GAUGE_NANS]
            .iter()
            .enumerate()
        {
            ids[i + 1] = find(agg)?;
        }
        if ids[1].is_none() || ids[2].is_none() {
            return Err(Error::corrupt(
                f.path.display().to_string(),
                0,
                format!("the rollups of {key} have a count but no sum or max"),
            ));
        }
        Ok(Some(ids))
    }

    /// The buckets of one series in the range [`Rollups::choose`] gave,
    /// rebuilt from the file's columns; `with_min` reads the columns that
    /// `min` falls back through.
    pub fn read(&self, choice: &Choice, with_min: bool) -> Result<Vec<Partial>> {
        let (lo, hi) = choice.range;
        let ids = &choice.ids;
        let Some(f) = self.files.get(choice.file) else {
            return Ok(Vec::new());
        };
        let read = |id: Option<usize>| -> Result<Option<crate::model::Series>> {
            id.map(|id| f.file.read_range(id, lo, hi).map(|r| r.0))
                .transpose()
        };
        let get = |s: &Option<crate::model::Series>, t: i64| {
            s.as_ref().and_then(|s| {
                s.timestamps
                    .binary_search(&t)
                    .ok()
                    .and_then(|i| s.values.get(i).copied())
            })
        };
        let (count, sum, max) = (read(ids[0])?, read(ids[1])?, read(ids[2])?);
        let (p99, p95, min) = if with_min {
            (read(ids[3])?, read(ids[4])?, read(ids[5])?)
        } else {
            (None, None, None)
        };
        let nans = read(ids[6])?;
        let mut out: BTreeMap<i64, Partial> = BTreeMap::new();
        let corrupt = |what: &str, t: i64| {
            Error::corrupt(
                f.path.display().to_string(),
                0,
                format!("rollup bucket at {t} ns has a count but no {what}"),
            )
        };
        if let Some(c) = &count {
            for (&t, &n) in c.timestamps.iter().zip(&c.values) {
                let max_v = get(&max, t).ok_or_else(|| corrupt("max", t))?;
                let min_v = if with_min {
                    let p99 = get(&p99, t).unwrap_or(max_v);
                    let p95 = get(&p95, t).unwrap_or(p99);
                    get(&min, t).unwrap_or(p95)
                } else {
                    f64::NAN
                };
                out.insert(
                    t,
                    Partial {
                        start: t,
                        count: counted(n).ok_or_else(|| corrupt("whole count", t))?,
                        nans: 0,
                        sum: get(&sum, t).ok_or_else(|| corrupt("sum", t))?,
                        min: min_v,
                        max: max_v,
                    },
                );
            }
        }
        if let Some(s) = &nans {
            for (&t, &n) in s.timestamps.iter().zip(&s.values) {
                let n = counted(n).ok_or_else(|| corrupt("whole NaN count", t))?;
                out.entry(t)
                    .or_insert(Partial {
                        start: t,
                        count: 0,
                        nans: 0,
                        sum: 0.0,
                        min: f64::NAN,
                        max: f64::NAN,
                    })
                    .nans = n;
            }
        }
        Ok(out.into_values().collect())
    }
}

/// A stored count as an integer (`None` if it is not a whole number ≥ 0).
fn counted(x: f64) -> Option<u64> {
    (x >= 0.0 && x.fract() == 0.0 && x < u64::MAX as f64).then_some(x as u64)
}

/// The one time range `[lo, hi]` a bound predicate accepts, when it is a
/// conjunction of time comparisons (or true); `None` for anything else
/// (conditions on values, `OR`, `NOT`, `!=`).
pub fn interval(p: &Pred) -> Option<(i64, i64)> {
    match p {
        Pred::Const(true) => Some((i64::MIN, i64::MAX)),
        Pred::Ts { op, .. } if *op != super::ast::Cmp::Ne => Some(p.time_bounds()),
        Pred::And(ps) => ps.iter().try_fold((i64::MIN, i64::MAX), |(lo, hi), p| {
            let (a, b) = interval(p)?;
            Some((lo.max(a), hi.min(b)))
        }),
        _ => None,
    }
}

/// The parts of `[lo, hi]` before and after `inner` (which it holds).
fn edges(lo: i64, hi: i64, inner: (i64, i64)) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if inner.0 > lo {
        out.push((lo, inner.0 - 1));
    }
    if inner.1 < hi {
        out.push((inner.1 + 1, hi));
    }
    out
}

/// The largest `[a, b]` inside `[lo, hi]` made of whole buckets of `r` ns
/// (an open end stays open); `None` when no whole bucket fits.
pub fn inner_range(lo: i64, hi: i64, r: i64) -> Option<(i64, i64)> {
    let (r128, lo128, hi128) = (r as i128, lo as i128, hi as i128);
    let a = if lo == i64::MIN {
        lo128
    } else {
        (lo128 + r128 - 1).div_euclid(r128) * r128
    };
    // One past the last sample a whole bucket may hold.
    let b = if hi == i64::MAX {
        hi128
    } else {
        (hi128 + 1).div_euclid(r128) * r128 - 1
    };
    (a <= b && a >= i64::MIN as i128 && b <= i64::MAX as i128).then_some((a as i64, b as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::ast::Cmp;

    #[test]
    fn intervals_are_conjunctions_of_time_comparisons() {
        let ge = Pred::Ts {
            op: Cmp::Ge,
            value: 3600,
        };
        let lt = Pred::Ts {
            op: Cmp::Lt,
            value: 7200,
        };
        assert_eq!(interval(&Pred::Const(true)), Some((i64::MIN, i64::MAX)));
        assert_eq!(
            interval(&Pred::And(vec![ge.clone(), lt.clone()])),
            Some((3600, 7199))
        );
        assert_eq!(interval(&Pred::Or(vec![ge.clone(), lt.clone()])), None);
        let value = Pred::Num {
            col: 0,
            op: Cmp::Gt,
            value: 1.0,
        };
        assert_eq!(interval(&Pred::And(vec![ge, value])), None);
        assert_eq!(
            interval(&Pred::Ts {
                op: Cmp::Ne,
                value: 5
            }),
            None
        );
    }

    #[test]
    fn the_inner_range_is_whole_buckets_and_open_ends_stay_open() {
        assert_eq!(inner_range(0, 59, 60), Some((0, 59)));
        assert_eq!(inner_range(1, 179, 60), Some((60, 179)));
        assert_eq!(inner_range(1, 178, 60), Some((60, 119)));
        assert_eq!(inner_range(1, 118, 60), None);
        assert_eq!(inner_range(-61, -1, 60), Some((-60, -1)));
        assert_eq!(inner_range(i64::MIN, 130, 60), Some((i64::MIN, 119)));
        assert_eq!(inner_range(5, i64::MAX, 60), Some((60, i64::MAX)));
        assert_eq!(
            inner_range(i64::MIN, i64::MAX, 60),
            Some((i64::MIN, i64::MAX))
        );
        assert_eq!(inner_range(10, 5, 60), None);
        assert_eq!(edges(1, 178, (60, 119)), vec![(1, 59), (120, 178)]);
        assert_eq!(edges(i64::MIN, 130, (i64::MIN, 119)), vec![(120, 130)]);
        assert_eq!(edges(0, 59, (0, 59)), vec![]);
    }
}
