//! Predicates: the WHERE clause bound to columns, evaluated three ways.
//!
//! - Against one series' labels ([`Pred::bind_labels`]): label conditions
//!   become true or false, leaving a residual over time and values.
//! - Against a block's statistics ([`Pred::tri`]): with the block's first and
//!   last timestamp and its min and max value the residual is *never*,
//!   *maybe* or *always* true for the block's rows. *Never* prunes the block
//!   before it is read; *always* skips the row filter.
//! - Against decoded rows ([`Pred::eval_rows`]): a selection mask, one
//!   column at a time.
//!
//! Comparisons follow IEEE 754: every comparison with NaN is false except
//! `!=`, which is true; `NOT` negates. A label a series lacks reads as "".

use super::ast::Cmp;
use crate::model::Labels;

/// A bound predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Pred {
    Const(bool),
    Label {
        name: String,
        op: Cmp,
        value: String,
    },
    LabelIn {
        name: String,
        set: Vec<String>,
        negated: bool,
    },
    Ts {
        op: Cmp,
        value: i64,
    },
    /// A comparison on numeric column `col` (0 is `value` for a metric).
    Num {
        col: usize,
        op: Cmp,
        value: f64,
    },
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
}

/// What a predicate can say about a set of rows from their statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    /// False for every row: skip them.
    Never,
    /// Unknown: look at each row.
    Maybe,
    /// True for every row: take them all.
    Always,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::Never => Tri::Always,
            Tri::Always => Tri::Never,
            Tri::Maybe => Tri::Maybe,
        }
    }
}

fn label<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

impl Pred {
    /// Conjunction, simplified.
    pub fn and(parts: Vec<Pred>) -> Pred {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p {
                Pred::Const(true) => {}
                Pred::Const(false) => return Pred::Const(false),
                Pred::And(inner) => out.extend(inner),
                p => out.push(p),
            }
        }
        match out.len() {
            0 => Pred::Const(true),
            1 => out.pop().unwrap_or(Pred::Const(true)),
            _ => Pred::And(out),
        }
    }

    /// Disjunction, simplified.
    pub fn or(parts: Vec<Pred>) -> Pred {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p {
                Pred::Const(false) => {}
                Pred::Const(true) => return Pred::Const(true),
                Pred::Or(inner) => out.extend(inner),
                p => out.push(p),
            }
        }
        match out.len() {
            0 => Pred::Const(false),
            1 => out.pop().unwrap_or(Pred::Const(false)),
            _ => Pred::Or(out),
        }
    }

    /// Negation, simplified.
    pub fn negate(p: Pred) -> Pred {
        match p {
            Pred::Const(b) => Pred::Const(!b),
            Pred::Not(inner) => *inner,
            p => Pred::Not(Box::new(p)),
        }
    }

    /// Replaces label conditions by their truth for `labels`.
    pub fn bind_labels(&self, labels: &Labels) -> Pred {
        match self {
            Pred::Label { name, op, value } => {
                Pred::Const(op.holds(label(labels, name), value.as_str()))
            }
            Pred::LabelIn { name, set, negated } => {
                let v = label(labels, name);
                Pred::Const(set.iter().any(|s| s == v) != *negated)
            }
            Pred::And(ps) => Pred::and(ps.iter().map(|p| p.bind_labels(labels)).collect()),
            Pred::Or(ps) => Pred::or(ps.iter().map(|p| p.bind_labels(labels)).collect()),
            Pred::Not(p) => Pred::negate(p.bind_labels(labels)),
            other => other.clone(),
        }
    }

    /// The top-level conjuncts that an inverted index can answer: label
    /// equality and `IN`.
    pub fn index_terms(&self) -> Vec<(&str, Vec<&str>)> {
        let parts: Vec<&Pred> = match self {
            Pred::And(ps) => ps.iter().collect(),
            p => vec![p],
        };
        parts
            .into_iter()
            .filter_map(|p| match p {
                Pred::Label {
                    name,
                    op: Cmp::Eq,
                    value,
                } => Some((name.as_str(), vec![value.as_str()])),
                Pred::LabelIn {
                    name,
                    set,
                    negated: false,
                } => Some((name.as_str(), set.iter().map(String::as_str).collect())),
                _ => None,
            })
            .collect()
    }

    /// The smallest `[lo, hi]` that holds every timestamp the predicate can
    /// accept (a sound over-approximation: rows outside it are never true).
    pub fn time_bounds(&self) -> (i64, i64) {
        match self {
            Pred::Const(false) => (i64::MAX, i64::MIN),
            Pred::Ts { op, value } => {
                let v = *value;
                match op {
                    Cmp::Eq => (v, v),
                    Cmp::Lt => (i64::MIN, v.saturating_sub(1)),
                    Cmp::Le => (i64::MIN, v),
                    Cmp::Gt => (v.saturating_add(1), i64::MAX),
                    Cmp::Ge => (v, i64::MAX),
                    Cmp::Ne => (i64::MIN, i64::MAX),
                }
            }
            Pred::And(ps) => ps.iter().fold((i64::MIN, i64::MAX), |(lo, hi), p| {
                let (a, b) = p.time_bounds();
                (lo.max(a), hi.min(b))
            }),
            Pred::Or(ps) => ps.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| {
                let (a, b) = p.time_bounds();
                if a > b {
                    (lo, hi)
                } else {
                    (lo.min(a), hi.max(b))
                }
            }),
            _ => (i64::MIN, i64::MAX),
        }
    }

    /// What the predicate says about rows with timestamps in `ts` and, when
    /// known, values of column 0 in `value` (min, max ignoring NaN; both NaN
    /// when every value is NaN). Labels must be bound first.
    pub fn tri(&self, ts: (i64, i64), value: Option<(f64, f64)>) -> Tri {
        match self {
            Pred::Const(true) => Tri::Always,
            Pred::Const(false) => Tri::Never,
            Pred::Label { .. } | Pred::LabelIn { .. } => Tri::Maybe,
            Pred::Ts { op, value: v } => ts_tri(*op, *v, ts.0, ts.1),
            Pred::Num { col, op, value: v } => match value {
                Some((lo, hi)) if *col == 0 => num_tri(*op, *v, lo, hi),
                _ => Tri::Maybe,
            },
            Pred::And(ps) => {
                let mut out = Tri::Always;
                for p in ps {
                    match p.tri(ts, value) {
                        Tri::Never => return Tri::Never,
                        Tri::Maybe => out = Tri::Maybe,
                        Tri::Always => {}
                    }
                }
                out
            }
            Pred::Or(ps) => {
                let mut out = Tri::Never;
                for p in ps {
                    match p.tri(ts, value) {
                        Tri::Always => return Tri::Always,
                        Tri::Maybe => out = Tri::Maybe,
                        Tri::Never => {}
                    }
                }
                out
            }
            Pred::Not(p) => p.tri(ts, value).not(),
        }
    }

    /// Evaluates the predicate on rows: `out[i]` is set to whether row `i`
    /// passes. `cols` are the numeric columns. Labels must be bound first.
    pub fn eval_rows(&self, ts: &[i64], cols: &[&[f64]], out: &mut Vec<bool>) {
        out.clear();
        out.resize(ts.len(), false);
        self.eval_into(ts, cols, out);
    }

    fn eval_into(&self, ts: &[i64], cols: &[&[f64]], out: &mut [bool]) {
        match self {
            Pred::Const(b) => out.fill(*b),
            // Unbound label conditions cannot be decided per row.
            Pred::Label { .. } | Pred::LabelIn { .. } => out.fill(false),
            Pred::Ts { op, value } => {
                let v = *value;
                for (o, t) in out.iter_mut().zip(ts) {
                    *o = op.holds(t, &v);
                }
            }
            Pred::Num { col, op, value } => match cols.get(*col) {
                Some(c) => {
                    let v = *value;
                    for (o, x) in out.iter_mut().zip(c.iter()) {
                        *o = op.holds(x, &v);
                    }
                }
                None => out.fill(false),
            },
            Pred::And(ps) => {
                out.fill(true);
                let mut tmp = vec![false; out.len()];
                for p in ps {
                    p.eval_into(ts, cols, &mut tmp);
                    for (o, t) in out.iter_mut().zip(&tmp) {
                        *o &= *t;
                    }
                }
            }
            Pred::Or(ps) => {
                out.fill(false);
                let mut tmp = vec![false; out.len()];
                for p in ps {
                    p.eval_into(ts, cols, &mut tmp);
                    for (o, t) in out.iter_mut().zip(&tmp) {
                        *o |= *t;
                    }
                }
            }
            Pred::Not(p) => {
                p.eval_into(ts, cols, out);
                for o in out.iter_mut() {
                    *o = !*o;
                }
            }
        }
    }
}

fn ts_tri(op: Cmp, v: i64, first: i64, last: i64) -> Tri {
    let all = |b: bool| if b { Tri::Always } else { Tri::Never };
    match op {
        Cmp::Eq if v < first || v > last => Tri::Never,
        Cmp::Eq if first == last => Tri::Always,
        Cmp::Ne if v < first || v > last => Tri::Always,
        Cmp::Ne if first == last => Tri::Never,
        Cmp::Eq | Cmp::Ne => Tri::Maybe,
        Cmp::Lt if last < v || first >= v => all(last < v),
        Cmp::Le if last <= v || first > v => all(last <= v),
        Cmp::Gt if first > v || last <= v => all(first > v),
        Cmp::Ge if first >= v || last < v => all(first >= v),
        _ => Tri::Maybe,
    }
}

/// `lo`/`hi` ignore NaN, so a block may hide NaN rows behind them: those
/// make every comparison false but `!=` true. Only *never* is certain for
/// `<`, `<=`, `=`, `>=`, `>`; only *always* for `!=`.
fn num_tri(op: Cmp, v: f64, lo: f64, hi: f64) -> Tri {
    if lo.is_nan() || hi.is_nan() {
        // Every value is NaN.
        return if op == Cmp::Ne {
            Tri::Always
        } else {
            Tri::Never
        };
    }
    let never = match op {
        Cmp::Eq => v.is_nan() || v < lo || v > hi,
        Cmp::Ne => {
            return if v.is_nan() || v < lo || v > hi {
                Tri::Always
            } else {
                Tri::Maybe
            }
        }
        Cmp::Lt => v.is_nan() || lo >= v,
        Cmp::Le => v.is_nan() || lo > v,
        Cmp::Gt => v.is_nan() || hi <= v,
        Cmp::Ge => v.is_nan() || hi < v,
    };
    if never {
        Tri::Never
    } else {
        Tri::Maybe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(op: Cmp, value: i64) -> Pred {
        Pred::Ts { op, value }
    }

    #[test]
    fn time_tri_prunes_and_accepts_whole_blocks() {
        assert_eq!(ts(Cmp::Ge, 100).tri((0, 99), None), Tri::Never);
        assert_eq!(ts(Cmp::Ge, 100).tri((100, 200), None), Tri::Always);
        assert_eq!(ts(Cmp::Ge, 100).tri((50, 150), None), Tri::Maybe);
        assert_eq!(ts(Cmp::Lt, 100).tri((100, 150), None), Tri::Never);
        assert_eq!(ts(Cmp::Ne, 5).tri((5, 5), None), Tri::Never);
        let between = Pred::and(vec![ts(Cmp::Ge, 10), ts(Cmp::Le, 20)]);
        assert_eq!(between.tri((12, 18), None), Tri::Always);
        assert_eq!(between.tri((21, 30), None), Tri::Never);
        assert_eq!(Pred::negate(between).tri((21, 30), None), Tri::Always);
    }

    #[test]
    fn value_tri_is_sound_with_hidden_nan() {
        let gt = Pred::Num {
            col: 0,
            op: Cmp::Gt,
            value: 50.0,
        };
        assert_eq!(gt.tri((0, 1), Some((0.0, 50.0))), Tri::Never);
        // All rows above 50 could still include a NaN row: only maybe.
        assert_eq!(gt.tri((0, 1), Some((60.0, 70.0))), Tri::Maybe);
        assert_eq!(gt.tri((0, 1), Some((f64::NAN, f64::NAN))), Tri::Never);
        let ne = Pred::Num {
            col: 0,
            op: Cmp::Ne,
            value: 5.0,
        };
        assert_eq!(ne.tri((0, 1), Some((f64::NAN, f64::NAN))), Tri::Always);
        assert_eq!(ne.tri((0, 1), Some((6.0, 7.0))), Tri::Always);
        // Soundness against the rows themselves.
        let rows = [f64::NAN, 60.0, 70.0];
        let mut mask = Vec::new();
        gt.eval_rows(&[0, 0, 1], &[&rows], &mut mask);
        assert_eq!(mask, [false, true, true]);
    }

    #[test]
    fn labels_bind_to_constants() {
        let mut l = Labels::new();
        l.insert("host".into(), "a".into());
        let p = Pred::and(vec![
            Pred::Label {
                name: "host".into(),
                op: Cmp::Eq,
                value: "a".into(),
            },
            Pred::LabelIn {
                name: "region".into(),
                set: vec!["".into()],
                negated: false,
            },
            ts(Cmp::Gt, 3),
        ]);
        assert_eq!(p.bind_labels(&l), ts(Cmp::Gt, 3));
        assert_eq!(p.time_bounds(), (4, i64::MAX));
        let or = Pred::or(vec![ts(Cmp::Lt, 0), ts(Cmp::Eq, 10)]);
        assert_eq!(or.time_bounds(), (i64::MIN, 10));
    }
}
