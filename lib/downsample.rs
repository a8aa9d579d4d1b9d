//! Downsampling: rollups of raw samples into fixed time buckets.
//!
//! For every series and every resolution (1 m, 5 m, 15 m, 1 h) the samples
//! are grouped into buckets aligned to the resolution (`t.div_euclid(res)`),
//! and each bucket becomes one sample of several rollup series, named
//! `{metric}_{aggregate}_{resolution}` with the raw series' labels:
//!
//! | kind | aggregates | why |
//! |------|------------|-----|
//! | gauge | `avg`, `min`, `max`, `p95`, `p99`, `count`, `sum` | `count` and `sum` make averages compose: the average over an hour is Σsum / Σcount of its buckets, exactly |
//! | counter (declared `counter` by the source's `# TYPE`, else named `*_total`) | `last`, `increase`, `count` | a counter's average means nothing; its increase does. A drop between two instants is a reset: the increase after it is the new value (a second sample at the same instant is a duplicate, not a reset) |
//!
//! NaN samples are left out of every aggregate (and of `count`). Percentiles
//! use the nearest-rank method. Rollups are lossy: [`measure_loss`] says by
//! how much, against the raw samples.

use crate::model::{Dataset, Series, SeriesKey};
use crate::time::NANOS_PER_SECOND;

/// A rollup resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub name: &'static str,
    pub ns: i64,
}

/// The resolutions phase 05 writes.
pub const RESOLUTIONS: [Resolution; 4] = [
    Resolution {
        name: "1m",
        ns: 60 * NANOS_PER_SECOND,
    },
    Resolution {
        name: "5m",
        ns: 300 * NANOS_PER_SECOND,
    },
    Resolution {
        name: "15m",
        ns: 900 * NANOS_PER_SECOND,
    },
    Resolution {
        name: "1h",
        ns: 3600 * NANOS_PER_SECOND,
    },
];

/// Nearest-rank percentile of sorted, NaN-free values (`q` in 0..=1).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The aggregates of one bucket of a gauge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeBucket {
    pub start: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub p95: f64,
    pub p99: f64,
}

impl GaugeBucket {
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// The aggregates of one bucket of a counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterBucket {
    pub start: i64,
    pub count: u64,
    pub last: f64,
    /// Increase since the previous sample before this bucket, across resets.
    pub increase: f64,
}

/// Consecutive runs of samples that fall in the same bucket: `(bucket start, range)`.
fn buckets(ts: &[i64], res: i64) -> Vec<(i64, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ts.len() {
        let b = ts[i].div_euclid(res);
        let mut j = i + 1;
        while j < ts.len() && ts[j].div_euclid(res) == b {
            j += 1;
        }
        out.push((b.saturating_mul(res), i..j));
        i = j;
    }
    out
}

/// Rolls a gauge up; buckets with only NaN samples are left out.
pub fn rollup_gauge(s: &Series, res: i64) -> Vec<GaugeBucket> {
    let mut out = Vec::new();
    let mut sorted = Vec::new();
    for (start, range) in buckets(&s.timestamps, res) {
        sorted.clear();
        sorted.extend(s.values[range].iter().copied().filter(|v| !v.is_nan()));
        if sorted.is_empty() {
            continue;
        }
        sorted.sort_by(f64::total_cmp);
        out.push(GaugeBucket {
            start,
            count: sorted.len() as u64,
            sum: sorted.iter().sum(),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            p95: percentile(&sorted, 0.95),
            p99: percentile(&sorted, 0.99),
        });
    }
    out
}

/// Rolls a counter up: last value and increase across resets.
///
/// A drop between two samples is a reset (the increase after it is the new
/// value), but only between two *instants*: a sample at the same timestamp
/// as the one before it is a duplicate, not a later reading, and is left
/// out (the first one stands, as Prometheus' storage keeps the first of
/// two samples at one timestamp). The importers refuse conflicting
/// duplicates unless told which to keep, so this only matters for data
/// built in code.
pub fn rollup_counter(s: &Series, res: i64) -> Vec<CounterBucket> {
    let mut out = Vec::new();
    let mut prev: Option<(i64, f64)> = None;
    for (start, range) in buckets(&s.timestamps, res) {
        let (mut increase, mut count, mut last) = (0.0, 0u64, f64::NAN);
        let samples = s.timestamps[range.clone()].iter().zip(&s.values[range]);
        for (&t, &v) in samples.filter(|(_, v)| !v.is_nan()) {
            if let Some((pt, p)) = prev {
                if pt == t {
                    continue;
                }
                increase += if v >= p { v - p } else { v };
            }
            prev = Some((t, v));
            last = v;
            count += 1;
        }
        if count > 0 {
            out.push(CounterBucket {
                start,
                count,
                last,
                increase,
            });
        }
    }
    out
}

fn rollup_series(
    key: &SeriesKey,
    aggregate: &str,
    res: &Resolution,
    points: impl Iterator<Item = (i64, f64)>,
) -> Series {
    let mut s = Series::new(SeriesKey::new(
        format!("{}_{aggregate}_{}", key.metric, res.name),
        key.labels.clone(),
    ));
    for (t, v) in points {
        s.push(t, v);
    }
    s
}

/// What a gauge keeps per bucket, one rollup series each.
pub const GAUGE_AGGREGATES: [&str; 7] = ["avg", "min", "max", "p95", "p99", "count", "sum"];

/// What a counter keeps per bucket, one rollup series each.
pub const COUNTER_AGGREGATES: [&str; 3] = ["last", "increase", "count"];

/// Every rollup series of `dataset` at one resolution: one per aggregate of
/// [`GAUGE_AGGREGATES`] for a gauge, of [`COUNTER_AGGREGATES`] for a counter.
pub fn rollup(dataset: &Dataset, res: &Resolution) -> Dataset {
    let mut out = Vec::new();
    for s in &dataset.series {
        if dataset.is_counter(&s.key.metric) {
            let b = rollup_counter(s, res.ns);
            out.push(rollup_series(
                &s.key,
                "last",
                res,
                b.iter().map(|b| (b.start, b.last)),
            ));
            out.push(rollup_series(
                &s.key,
                "increase",
                res,
                b.iter().map(|b| (b.start, b.increase)),
            ));
            out.push(rollup_series(
                &s.key,
                "count",
                res,
                b.iter().map(|b| (b.start, b.count as f64)),
            ));
        } else {
            let b = rollup_gauge(s, res.ns);
            let col = |f: fn(&GaugeBucket) -> f64| b.iter().map(move |x| (x.start, f(x)));
            out.push(rollup_series(&s.key, "avg", res, col(GaugeBucket::avg)));
            out.push(rollup_series(&s.key, "min", res, col(|x| x.min)));
            out.push(rollup_series(&s.key, "max", res, col(|x| x.max)));
            out.push(rollup_series(&s.key, "p95", res, col(|x| x.p95)));
            out.push(rollup_series(&s.key, "p99", res, col(|x| x.p99)));
            out.push(rollup_series(&s.key, "count", res, col(|x| x.count as f64)));
            out.push(rollup_series(&s.key, "sum", res, col(|x| x.sum)));
        }
    }
    Dataset::new(format!("{} (rollups {})", dataset.source, res.name), out)
}

/// How far hourly answers computed from rollups are from the raw truth,
/// as mean relative errors over every (gauge series, hour) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Loss {
    /// Hours compared.
    pub hours: u64,
    /// Hourly average as Σsum / Σcount of the buckets (composes exactly).
    pub avg_from_sum_count: f64,
    /// Hourly average as the mean of the bucket averages (the naive way).
    pub avg_of_avgs: f64,
    /// Hourly p99 as the largest bucket p99 (an upper estimate).
    pub p99_max_of_buckets: f64,
    /// Hourly p99 as the count-weighted mean of bucket p99s.
    pub p99_weighted_mean: f64,
    /// Hourly increase of counters as the sum of bucket increases.
    pub counter_increase: f64,
}

fn rel_err(estimate: f64, truth: f64) -> f64 {
    if estimate == truth {
        0.0
    } else {
        (estimate - truth).abs() / truth.abs().max(f64::MIN_POSITIVE)
    }
}

/// Compares hourly averages, p99s and counter increases computed from
/// `res` rollups with the same computed from the raw samples.
pub fn measure_loss(raw: &Dataset, res: &Resolution) -> Loss {
    const HOUR: i64 = 3600 * NANOS_PER_SECOND;
    let (mut n, mut nc) = (0u64, 0u64);
    let mut sums = [0.0f64; 5];
    for s in &raw.series {
        if raw.is_counter(&s.key.metric) {
            let hourly = rollup_counter(s, HOUR);
            let fine = rollup_counter(s, res.ns);
            let mut j = 0;
            for h in &hourly {
                let mut inc = 0.0;
                while j < fine.len() && fine[j].start < h.start + HOUR {
                    inc += fine[j].increase;
                    j += 1;
                }
                if h.increase != 0.0 {
                    sums[4] += rel_err(inc, h.increase);
                    nc += 1;
                }
            }
            continue;
        }
        let truth = rollup_gauge(s, HOUR);
        let fine = rollup_gauge(s, res.ns);
        let mut j = 0;
        for h in &truth {
            while j < fine.len() && fine[j].start < h.start {
                j += 1;
            }
            let k = fine[j..]
                .iter()
                .take_while(|b| b.start < h.start + HOUR)
                .count();
            let part = &fine[j..j + k];
            if part.is_empty() || h.avg() == 0.0 {
                continue;
            }
            let count: u64 = part.iter().map(|b| b.count).sum();
            let sum: f64 = part.iter().map(|b| b.sum).sum();
            let avg_of_avgs = part.iter().map(GaugeBucket::avg).sum::<f64>() / k as f64;
            let p99_max = part.iter().map(|b| b.p99).fold(f64::MIN, f64::max);
            let p99_w = part.iter().map(|b| b.p99 * b.count as f64).sum::<f64>() / count as f64;
            sums[0] += rel_err(sum / count as f64, h.avg());
            sums[1] += rel_err(avg_of_avgs, h.avg());
            sums[2] += rel_err(p99_max, h.p99);
            sums[3] += rel_err(p99_w, h.p99);
            n += 1;
        }
    }
    let mean = |x: f64, k: u64| if k == 0 { 0.0 } else { x / k as f64 };
    Loss {
        hours: n,
        avg_from_sum_count: mean(sums[0], n),
        avg_of_avgs: mean(sums[1], n),
        p99_max_of_buckets: mean(sums[2], n),
        p99_weighted_mean: mean(sums[3], n),
        counter_increase: mean(sums[4], nc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    const S: i64 = NANOS_PER_SECOND;

    fn series(metric: &str, points: &[(i64, f64)]) -> Series {
        let mut s = Series::new(SeriesKey::new(
            metric,
            Labels::from([("host".into(), "a".into())]),
        ));
        for &(t, v) in points {
            s.push(t * S, v);
        }
        s
    }

    #[test]
    fn rollup_series_are_the_listed_aggregates() {
        let d = Dataset::new(
            "t",
            vec![
                series("cpu", &[(0, 1.0), (30, 2.0)]),
                series("requests_total", &[(0, 1.0), (30, 3.0)]),
            ],
        );
        let mut names: Vec<String> = rollup(&d, &RESOLUTIONS[0])
            .series
            .iter()
            .map(|s| s.key.metric.clone())
            .collect();
        let mut want: Vec<String> = GAUGE_AGGREGATES
            .iter()
            .map(|a| format!("cpu_{a}_1m"))
            .chain(
                COUNTER_AGGREGATES
                    .iter()
                    .map(|a| format!("requests_total_{a}_1m")),
            )
            .collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn gauge_buckets_are_aligned_and_skip_nan() {
        let s = series(
            "cpu",
            &[
                (59, 1.0),
                (60, 2.0),
                (61, f64::NAN),
                (119, 4.0),
                (180, f64::NAN),
            ],
        );
        let b = rollup_gauge(&s, 60 * S);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].start, b[0].count, b[0].sum), (0, 1, 1.0));
        assert_eq!(
            (b[1].start, b[1].count, b[1].min, b[1].max),
            (60 * S, 2, 2.0, 4.0)
        );
        assert_eq!(b[1].avg(), 3.0);
    }

    #[test]
    fn counter_increase_crosses_resets_and_bucket_edges() {
        let s = series("req_total", &[(0, 10.0), (30, 15.0), (70, 3.0), (90, 8.0)]);
        let b = rollup_counter(&s, 60 * S);
        assert_eq!(b[0].increase, 5.0);
        // reset to 3 counts as +3, then +5
        assert_eq!(b[1].increase, 8.0);
        assert_eq!(b[1].last, 8.0);
    }

    #[test]
    fn a_lower_duplicate_at_one_instant_is_not_a_reset() {
        // Scraped twice at 0 s (100, then 90), then 101 at 15 s: the counter
        // went up by 1, it did not reset.
        let s = series("c_total", &[(0, 100.0), (0, 90.0), (15, 101.0)]);
        for res in [60 * S, S] {
            let b = rollup_counter(&s, res);
            let total: f64 = b.iter().map(|b| b.increase).sum();
            assert_eq!(total, 1.0, "resolution {res}");
        }
        // A real drop between instants still is one.
        let s = series("c_total", &[(0, 100.0), (15, 90.0), (30, 101.0)]);
        let total: f64 = rollup_counter(&s, 60 * S).iter().map(|b| b.increase).sum();
        assert_eq!(total, 101.0);
    }

    #[test]
    fn declared_types_decide_the_rollup_kind() {
        use crate::model::{MetricKind, MetricMeta};
        let d = Dataset::new(
            "t",
            vec![
                series("requests", &[(0, 1.0), (400, 2.0)]),
                series("temperature_total", &[(0, 1.0), (400, 2.0)]),
            ],
        )
        .with_metadata(std::collections::BTreeMap::from([
            ("requests".into(), MetricMeta::of_kind(MetricKind::Counter)),
            (
                "temperature_total".into(),
                MetricMeta::of_kind(MetricKind::Gauge),
            ),
        ]));
        let r = rollup(&d, &RESOLUTIONS[1]);
        let names: Vec<_> = r.series.iter().map(|s| s.key.metric.as_str()).collect();
        assert!(names.contains(&"requests_increase_5m"), "{names:?}");
        assert!(names.contains(&"temperature_total_avg_5m"), "{names:?}");
        assert!(
            !names.contains(&"temperature_total_increase_5m"),
            "{names:?}"
        );
    }

    #[test]
    fn rollup_names_and_kinds() {
        let d = Dataset::new(
            "t",
            vec![
                series("cpu_usage", &[(0, 1.0), (400, 3.0)]),
                series("req_total", &[(0, 1.0), (400, 2.0)]),
            ],
        );
        let r = rollup(&d, &RESOLUTIONS[1]);
        let names: Vec<_> = r.series.iter().map(|s| s.key.metric.as_str()).collect();
        for want in [
            "cpu_usage_avg_5m",
            "cpu_usage_p99_5m",
            "cpu_usage_sum_5m",
            "req_total_increase_5m",
            "req_total_last_5m",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(
            !names.contains(&"req_total_avg_5m"),
            "counters are not averaged"
        );
    }

    #[test]
    fn averages_compose_exactly_but_avg_of_avgs_does_not() {
        // Uneven counts per 5-minute bucket within one hour.
        let mut pts: Vec<(i64, f64)> = (0..20).map(|i| (i * 15, (i % 7) as f64)).collect();
        pts.extend((0..3).map(|i| (2000 + i * 15, 100.0)));
        let d = Dataset::new("t", vec![series("g", &pts)]);
        let loss = measure_loss(&d, &RESOLUTIONS[1]);
        assert_eq!(loss.hours, 1);
        assert!(loss.avg_from_sum_count < 1e-12, "{loss:?}");
        assert!(loss.avg_of_avgs > 0.1, "{loss:?}");
        // At one-hour resolution nothing is lost.
        let exact = measure_loss(&d, &RESOLUTIONS[3]);
        assert_eq!((exact.avg_of_avgs, exact.p99_max_of_buckets), (0.0, 0.0));
    }
}
