//! The time-series table functions, as pure functions over columns.
//!
//! Each takes one series' timestamps and values (sorted by time) and
//! returns the output timestamps and numeric columns.

use super::plan::{RollFn, Window};

/// Output of a table function for one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    pub ts: Vec<i64>,
    pub cols: Vec<Vec<f64>>,
}

/// Start of the bucket of width `w` that holds `t` (aligned to the epoch).
pub fn bucket_start(t: i64, w: i64) -> i64 {
    t.div_euclid(w).saturating_mul(w)
}

/// OHLCV bars of width `bar`: open, high, low, close of `price`, then the
/// sum of `volume` samples in the bar (when given), then the trade count.
/// High and low ignore NaN prices (NaN only if every price is NaN).
pub fn ohlcv(ts: &[i64], price: &[f64], volume: Option<(&[i64], &[f64])>, bar: i64) -> Columns {
    let width = if volume.is_some() { 6 } else { 5 };
    let mut out = Columns {
        ts: Vec::new(),
        cols: vec![Vec::new(); width],
    };
    let mut vi = 0usize;
    let mut i = 0usize;
    while i < ts.len() {
        let start = bucket_start(ts[i], bar);
        let mut j = i;
        while j < ts.len() && bucket_start(ts[j], bar) == start {
            j += 1;
        }
        let p = &price[i..j];
        let (mut hi, mut lo) = (f64::NAN, f64::NAN);
        for &x in p {
            hi = hi.max(x);
            lo = lo.min(x);
        }
        out.ts.push(start);
        out.cols[0].push(p[0]);
        out.cols[1].push(hi);
        out.cols[2].push(lo);
        out.cols[3].push(p[p.len() - 1]);
        if let Some((vts, vv)) = volume {
            // Volume samples in [start, start + bar).
            while vi < vts.len() && vts[vi] < start {
                vi += 1;
            }
            let mut sum = 0.0;
            while vi < vts.len() && bucket_start(vts[vi], bar) == start {
                sum += vv[vi];
                vi += 1;
            }
            out.cols[4].push(sum);
        }
        out.cols[width - 1].push((j - i) as f64);
        i = j;
    }
    out
}

/// Each sample with a rolling statistic of its window (the window ends at
/// and includes the sample). Windows holding a NaN give NaN for mean, std
/// and sum; min and max ignore NaN; `std` is the sample standard deviation
/// (NaN for fewer than two samples).
pub fn rolling(ts: &[i64], values: &[f64], func: RollFn, window: Window) -> Columns {
    let n = ts.len();
    let mut out = Vec::with_capacity(n);
    let mut start = 0usize;
    for i in 0..n {
        start = match window {
            Window::Count(k) => (i + 1).saturating_sub(k),
            Window::Duration(d) => {
                let from = ts[i].saturating_sub(d);
                let mut s = start;
                while s < i && ts[s] <= from {
                    s += 1;
                }
                s
            }
        };
        out.push(window_stat(&values[start..=i], func));
    }
    Columns {
        ts: ts.to_vec(),
        cols: vec![values.to_vec(), out],
    }
}

/// One window's statistic. Windows are recomputed from their values: exact
/// (no running-sum drift), O(n * window) in the worst case.
fn window_stat(w: &[f64], func: RollFn) -> f64 {
    let n = w.len() as f64;
    match func {
        RollFn::Count => n,
        RollFn::Sum => w.iter().sum(),
        RollFn::Mean => w.iter().sum::<f64>() / n,
        RollFn::Min => w.iter().fold(f64::NAN, |a, &b| a.min(b)),
        RollFn::Max => w.iter().fold(f64::NAN, |a, &b| a.max(b)),
        RollFn::Std => {
            if w.len() < 2 {
                return f64::NAN;
            }
            let mean = w.iter().sum::<f64>() / n;
            let ss: f64 = w.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1.0)).sqrt()
        }
    }
}

/// As-of join: for each left sample, the latest right sample at or before
/// it, no older than `tolerance`. Left samples without one are dropped
/// (an inner as-of join). Columns: the left value, the right value.
pub fn asof(lts: &[i64], lv: &[f64], rts: &[i64], rv: &[f64], tolerance: i64) -> Columns {
    let mut out = Columns {
        ts: Vec::new(),
        cols: vec![Vec::new(), Vec::new()],
    };
    let mut j = 0usize;
    for (&t, &v) in lts.iter().zip(lv) {
        while j < rts.len() && rts[j] <= t {
            j += 1;
        }
        if j == 0 {
            continue;
        }
        let (rt, r) = (rts[j - 1], rv[j - 1]);
        if t.saturating_sub(rt) <= tolerance {
            out.ts.push(t);
            out.cols[0].push(v);
            out.cols[1].push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ohlcv_bars_from_trades() {
        let ts = [0, 10, 59, 60, 61, 200];
        let price = [10.0, 12.0, 9.0, 11.0, 11.5, 20.0];
        let vts = ts;
        let vol = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let c = ohlcv(&ts, &price, Some((&vts, &vol)), 60);
        assert_eq!(c.ts, [0, 60, 180]);
        assert_eq!(c.cols[0], [10.0, 11.0, 20.0]); // open
        assert_eq!(c.cols[1], [12.0, 11.5, 20.0]); // high
        assert_eq!(c.cols[2], [9.0, 11.0, 20.0]); // low
        assert_eq!(c.cols[3], [9.0, 11.5, 20.0]); // close
        assert_eq!(c.cols[4], [6.0, 9.0, 6.0]); // volume
        assert_eq!(c.cols[5], [3.0, 2.0, 1.0]); // trades
    }

    #[test]
    fn rolling_by_count_and_duration() {
        let ts = [0, 1, 2, 10, 11];
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        let c = rolling(&ts, &v, RollFn::Mean, Window::Count(2));
        assert_eq!(c.cols[1], [1.0, 1.5, 2.5, 3.5, 4.5]);
        let c = rolling(&ts, &v, RollFn::Sum, Window::Duration(2));
        // (t-2, t]: {0}, {0,1}, {1,2}, {10}, {10,11}
        assert_eq!(c.cols[1], [1.0, 3.0, 5.0, 4.0, 9.0]);
        let c = rolling(&ts, &v, RollFn::Max, Window::Count(3));
        assert_eq!(c.cols[1], [1.0, 2.0, 3.0, 4.0, 5.0]);
        let c = rolling(&ts, &v, RollFn::Std, Window::Count(2));
        assert!(c.cols[1][0].is_nan());
        assert!((c.cols[1][1] - 0.5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn asof_takes_latest_within_tolerance() {
        let c = asof(
            &[5, 10, 20, 30],
            &[1.0, 2.0, 3.0, 4.0],
            &[4, 10, 12],
            &[7.0, 8.0, 9.0],
            5,
        );
        // 5 -> 4 (7), 10 -> 10 (8), 20 -> 12 is 8 old: dropped, 30 dropped.
        assert_eq!(c.ts, [5, 10]);
        assert_eq!(c.cols[1], [7.0, 8.0]);
    }
}
