//! Materialised bars: OHLCV per symbol at fixed timeframes, computed from
//! the trades of each migration and kept in the catalog for fast "newest N
//! bars" lookups.
//!
//! A bar is kept as its exact [`Partial`] (counts, first and last trade,
//! minima and maxima, the exact sums of prices and volumes), so that a
//! bucket whose trades arrive over several migrations, or partly still in
//! memory, merges into the same bits as a bar computed from all its trades
//! at once. Buckets are aligned to the Unix epoch (a 1-hour bar starts on
//! the hour, UTC), so every timeframe divides the next and a day.
//!
//! The catalog keeps the newest [`ColdConfig::bars_kept`](crate::config::ColdConfig)
//! buckets per (symbol, timeframe) and, once it has dropped older ones,
//! the bucket from which its window is complete: older trades arriving
//! later are not added to a window that no longer holds their bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::RecordBatch;

use crate::agg::{Bar, Partial};
use crate::error::{Error, Result};

/// A bar length the store materialises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timeframe {
    /// Its length in seconds.
    pub seconds: i64,
}

/// The timeframes every migration materialises, finest first; each divides
/// the next.
pub const TIMEFRAMES: [Timeframe; 4] = [
    Timeframe { seconds: 60 },
    Timeframe { seconds: 300 },
    Timeframe { seconds: 3_600 },
    Timeframe { seconds: 86_400 },
];

impl Timeframe {
    /// Its length in nanoseconds.
    pub fn nanos(self) -> i64 {
        self.seconds * 1_000_000_000
    }

    /// Its name: `1m`, `5m`, `1h` or `1d`.
    pub fn name(self) -> String {
        match self.seconds {
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3_600 == 0 => format!("{}h", s / 3_600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }

    /// Parses a name of [`TIMEFRAMES`] (`1m`, `5m`, `1h`, `1d`, or the same
    /// length written otherwise, such as `60m`); any other length is an
    /// error that lists them.
    pub fn parse(s: &str) -> Result<Timeframe> {
        let t = s.trim();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let scale = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => 0,
        };
        let seconds = num.parse::<i64>().ok().and_then(|n| n.checked_mul(scale));
        match seconds {
            Some(seconds) if TIMEFRAMES.iter().any(|t| t.seconds == seconds) => {
                Ok(Timeframe { seconds })
            }
            _ => Err(Error::InvalidArgument(format!(
                "timeframe {s:?}: materialised bars exist for {}",
                TIMEFRAMES.map(|t| t.name()).join(", ")
            ))),
        }
    }

    /// The start of the bucket holding `ts` (ns).
    pub fn bucket(self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.nanos())
    }

    /// The span of one stored page of bars (ns): an hour of 1-minute bars,
    /// four hours of 5-minute ones, a day of hourly ones, one daily bar.
    /// Every span divides a UTC day, so retention (by day) never cuts one.
    pub fn page_nanos(self) -> i64 {
        let seconds = match self.seconds {
            s if s < 300 => 3_600,
            s if s < 3_600 => 14_400,
            s => s.max(86_400),
        };
        seconds * 1_000_000_000
    }

    /// Bars in a full page.
    pub fn page_bars(self) -> usize {
        (self.page_nanos() / self.nanos()) as usize
    }

    /// The start of the page holding `ts` (ns).
    pub fn page(self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.page_nanos())
    }
}

/// What one migration adds to the catalog's bars: per (symbol, timeframe),
/// the partials of the newest buckets it touched (whole pages, at least the
/// newest `keep`), and the floor below which it dropped buckets (a page
/// start: the window cannot be complete below it).
#[derive(Debug, Default)]
pub struct BarsUpdate {
    pub keys: BTreeMap<(Arc<str>, Timeframe), KeyUpdate>,
}

/// One (symbol, timeframe)'s share of a [`BarsUpdate`].
#[derive(Debug, Default)]
pub struct KeyUpdate {
    /// Bucket start (ns) to partial: at least the newest `keep` of them.
    pub buckets: BTreeMap<i64, Box<Partial>>,
    /// Set when older buckets were dropped: the start of the oldest page
    /// kept.
    pub floor: Option<i64>,
}

impl BarsUpdate {
    /// Rows it would write.
    pub fn len(&self) -> usize {
        self.keys.values().map(|k| k.buckets.len()).sum()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds a [`BarsUpdate`] from batches of trades (`[timestamp, symbol,
/// price, volume, ...]`, the store's first four columns). Rows may come in
/// any order; rows sorted by symbol then time (as the migration sorts each
/// day) are folded in one pass with one bar open per timeframe: a row goes
/// into the finest timeframe's open bar, and a finished bar is merged into
/// the next timeframe's open one, so each row is added once, not once per
/// timeframe.
pub struct BarsBuilder {
    keep: usize,
    update: BarsUpdate,
    /// Names shared by every bar of a symbol.
    names: HashMap<String, Arc<str>>,
    /// The open bar of each timeframe.
    open: [Option<OpenBar>; TIMEFRAMES.len()],
}

/// A bar still gathering rows: (symbol, bucket start, partial).
type OpenBar = (Arc<str>, i64, Box<Partial>);

impl BarsBuilder {
    /// A builder that keeps at most `keep` (>= 1) buckets per key.
    pub fn new(keep: usize) -> BarsBuilder {
        BarsBuilder {
            keep: keep.max(1),
            update: BarsUpdate::default(),
            names: HashMap::new(),
            open: Default::default(),
        }
    }

    /// Folds every row of `batch`.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let (ts, sym, price, volume) = columns(batch)?;
        let finest = TIMEFRAMES[0];
        for row in 0..batch.num_rows() {
            let bucket = finest.bucket(ts[row]);
            let same =
                matches!(&self.open[0], Some((s, b, _)) if *b == bucket && **s == *sym.value(row));
            if !same {
                self.close(0);
                let name = self.name(sym.value(row));
                self.open[0] = Some((name, bucket, Box::default()));
            }
            if let Some((_, _, p)) = &mut self.open[0] {
                p.add(ts[row], price[row], volume[row]);
            }
        }
        // The next batch may hold another day: every open bar is kept.
        for level in 0..TIMEFRAMES.len() {
            self.close(level);
        }
        Ok(())
    }

    fn name(&mut self, symbol: &str) -> Arc<str> {
        match self.names.get(symbol) {
            Some(n) => n.clone(),
            None => {
                let n: Arc<str> = Arc::from(symbol);
                self.names.insert(symbol.to_string(), n.clone());
                n
            }
        }
    }

    /// Closes the open bar of `level`: merges it into the next level's open
    /// bar (opening that one if it is another bucket), then keeps it.
    fn close(&mut self, level: usize) {
        let Some((name, bucket, p)) = self.open[level].take() else {
            return;
        };
        if let Some(tf) = TIMEFRAMES.get(level + 1) {
            let up = tf.bucket(bucket);
            let same = matches!(&self.open[level + 1], Some((s, b, _)) if *b == up && Arc::ptr_eq(s, &name));
            if !same {
                self.close(level + 1);
                self.open[level + 1] = Some((name.clone(), up, Box::default()));
            }
            if let Some((_, _, q)) = &mut self.open[level + 1] {
                q.merge(&p);
            }
        }
        self.keep(name, TIMEFRAMES[level], bucket, p);
    }

    /// Adds a finished bar to its key's buckets, newest `keep` kept.
    fn keep(&mut self, name: Arc<str>, tf: Timeframe, bucket: i64, p: Box<Partial>) {
        let key = self.update.keys.entry((name, tf)).or_default();
        if key.floor.is_some_and(|f| bucket < f) {
            return;
        }
        match key.buckets.get_mut(&bucket) {
            Some(q) => q.merge(&p),
            None => {
                key.buckets.insert(bucket, p);
            }
        }
        // Whole pages are kept: those holding the newest `keep` buckets
        // (trimmed once a page's worth more has gathered).
        if key.buckets.len() > self.keep + tf.page_bars() {
            if let Some(&kth) = key.buckets.keys().rev().nth(self.keep - 1) {
                let page = tf.page(kth);
                key.buckets = key.buckets.split_off(&page);
                key.floor = Some(page);
            }
        }
    }

    /// What was built.
    pub fn finish(mut self) -> BarsUpdate {
        for level in 0..TIMEFRAMES.len() {
            self.close(level);
        }
        self.update
    }
}

/// The timestamp, symbol, price and volume columns of a batch of the
/// store's schema; any other shape is an error, never a panic.
type Columns<'a> = (
    &'a [i64],
    &'a arrow_array::StringArray,
    &'a [f64],
    &'a [f64],
);

fn columns(b: &RecordBatch) -> Result<Columns<'_>> {
    let bad = || {
        Error::InvalidArgument(
            "bars need timestamp (ns), symbol (UTF-8), price and volume (f64) columns".into(),
        )
    };
    if b.num_columns() < 4 {
        return Err(bad());
    }
    let ts = b.column(0).as_primitive_opt::<TimestampNanosecondType>();
    let sym = b.column(1).as_string_opt::<i32>();
    let price = b.column(2).as_primitive_opt::<Float64Type>();
    let volume = b.column(3).as_primitive_opt::<Float64Type>();
    match (ts, sym, price, volume) {
        (Some(t), Some(s), Some(p), Some(v)) => Ok((t.values(), s, p.values(), v.values())),
        _ => Err(bad()),
    }
}

/// Folds rows of one symbol (`[timestamp, symbol, price, volume, ...]`)
/// into partials by `tf` bucket start; rows before `from` are skipped.
pub fn fold_aligned(
    into: &mut BTreeMap<i64, Partial>,
    tf: Timeframe,
    from: i64,
    batches: &[RecordBatch],
) -> Result<()> {
    for b in batches {
        let (ts, _, price, volume) = columns(b)?;
        for row in 0..b.num_rows() {
            if ts[row] >= from {
                into.entry(tf.bucket(ts[row]))
                    .or_default()
                    .add(ts[row], price[row], volume[row]);
            }
        }
    }
    Ok(())
}

/// The newest `limit` bars of `partials`, oldest first.
pub fn newest(symbol: &Arc<str>, partials: &BTreeMap<i64, Partial>, limit: usize) -> Vec<Bar> {
    let mut out: Vec<Bar> = partials
        .iter()
        .rev()
        .filter(|(_, p)| p.count > 0)
        .take(limit)
        .map(|(&t, p)| p.bar(symbol.clone(), t))
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray, TimestampNanosecondArray};
    use proptest::prelude::*;

    fn batch(rows: &[(i64, &str, f64, f64)]) -> RecordBatch {
        let schema = crate::schema::Mode::Simple.schema();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampNanosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn timeframes_parse_and_name() {
        for tf in TIMEFRAMES {
            assert_eq!(Timeframe::parse(&tf.name()).unwrap(), tf);
        }
        assert_eq!(Timeframe::parse("60m").unwrap().seconds, 3600);
        for bad in ["", "2h", "1x", "h", "99999999999999999999d", "-1h"] {
            let e = Timeframe::parse(bad).unwrap_err().to_string();
            assert!(e.contains("1m, 5m, 1h, 1d"), "{bad}: {e}");
        }
        let h = Timeframe::parse("1h").unwrap();
        assert_eq!(h.bucket(3_600_000_000_000 + 5), 3_600_000_000_000);
        assert_eq!(h.bucket(-1), -3_600_000_000_000);
    }

    #[test]
    fn batches_of_another_shape_are_an_error_not_a_panic() {
        let b = RecordBatch::try_from_iter([
            (
                "timestamp",
                Arc::new(Float64Array::from(vec![1.0])) as arrow_array::ArrayRef,
            ),
            ("symbol", Arc::new(StringArray::from(vec!["A"]))),
            ("price", Arc::new(Float64Array::from(vec![1.0]))),
            ("volume", Arc::new(Float64Array::from(vec![1.0]))),
        ])
        .unwrap();
        assert!(BarsBuilder::new(5).add(&b).is_err());
        assert!(fold_aligned(
            &mut BTreeMap::new(),
            TIMEFRAMES[0],
            0,
            std::slice::from_ref(&b)
        )
        .is_err());
        assert!(BarsBuilder::new(5)
            .add(&b.project(&[1, 2]).unwrap())
            .is_err());
    }

    proptest! {
        /// Whatever the row order and batch split, the builder's buckets
        /// are the bars of the rows: all of them, or with a small `keep`
        /// whole pages holding at least the newest `keep`, the floor at the
        /// oldest kept page's start.
        #[test]
        fn builder_matches_a_fold_of_the_rows(
            rows in proptest::collection::vec(
                (0i64..3 * 86_400_000_000_000, 0usize..3, -10.0f64..10.0, 0.0f64..5.0), 1..300),
            keep in 1usize..40,
            cut in 0usize..300,
        ) {
            let names = ["A", "B", "C"];
            let rows: Vec<(i64, &str, f64, f64)> =
                rows.iter().map(|&(t, s, p, v)| (t, names[s], p, v)).collect();
            let mut b = BarsBuilder::new(keep);
            let cut = cut.min(rows.len());
            b.add(&batch(&rows[..cut]))?;
            b.add(&batch(&rows[cut..]))?;
            let update = b.finish();
            for tf in TIMEFRAMES {
                for name in names {
                    let mine: Vec<_> = rows.iter().filter(|r| r.1 == name).copied().collect();
                    let mut want = BTreeMap::new();
                    fold_aligned(&mut want, tf, i64::MIN, &[batch(&mine)])?;
                    let Some(k) = update.keys.get(&(Arc::from(name), tf)) else {
                        prop_assert!(want.is_empty());
                        continue;
                    };
                    if let Some(f) = k.floor {
                        prop_assert_eq!(tf.page(f), f);
                        want = want.split_off(&f);
                        prop_assert!(k.buckets.len() >= keep);
                    }
                    let got: BTreeMap<i64, Partial> =
                        k.buckets.iter().map(|(t, p)| (*t, (**p).clone())).collect();
                    prop_assert_eq!(&got, &want);
                }
            }
        }
    }
}
