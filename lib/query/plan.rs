//! Binding: names in the query resolved against the file, functions
//! checked, the WHERE clause turned into a [`Pred`], the select list into
//! either a row projection or a grouped aggregation.

use std::collections::BTreeSet;

use super::ast::{Cmp, Explain, Expr, From, Item, Lit, Pos, Query};
use super::index::LabelIndex;
use super::pred::Pred;
use crate::error::{Error, Result};
use crate::time::{parse_duration, parse_timestamp};

/// A per-row value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Ts,
    Label(String),
    /// Numeric column by position.
    Num(usize),
    /// `time_bucket(width, ts)`: the start of the bucket holding the row.
    Bucket(i64),
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Stddev,
    /// Linear interpolation between closest ranks, `p` in [0, 1].
    Percentile(f64),
    /// Time-weighted average: each sample weighs until the next one.
    Twap,
}

/// One aggregate of the select list.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    pub func: AggFn,
    /// The numeric column it reads (ignored by `count`).
    pub col: usize,
}

/// A grouping key.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupKey {
    Label(String),
    /// Bucket width in ns (1 groups by exact timestamp).
    Bucket(i64),
}

/// Rolling-window functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollFn {
    Mean,
    Std,
    Min,
    Max,
    Sum,
    Count,
}

/// A rolling window: the last `n` samples, or the samples in `(t - d, t]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Count(usize),
    Duration(i64),
}

/// Where rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Metric(String),
    Ohlcv {
        price: String,
        volume: Option<String>,
        bar: i64,
    },
    Rolling {
        metric: String,
        func: RollFn,
        window: Window,
    },
    Asof {
        left: String,
        right: String,
        tolerance: i64,
    },
}

impl SourceSpec {
    /// The metric whose series the label index selects.
    pub fn driver(&self) -> &str {
        match self {
            SourceSpec::Metric(m) => m,
            SourceSpec::Ohlcv { price, .. } => price,
            SourceSpec::Rolling { metric, .. } => metric,
            SourceSpec::Asof { left, .. } => left,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Metric(m) => format!("scan of metric {m}"),
            SourceSpec::Ohlcv { price, volume, bar } => format!(
                "ohlcv bars of {} from {price}{}",
                crate::time::format_duration(*bar),
                volume
                    .as_ref()
                    .map(|v| format!(" with volume from {v}"))
                    .unwrap_or_default()
            ),
            SourceSpec::Rolling {
                metric,
                func,
                window,
            } => format!(
                "rolling {func:?} over {} of {metric}",
                match window {
                    Window::Count(n) => format!("{n} samples"),
                    Window::Duration(d) => crate::time::format_duration(*d),
                }
            )
            .to_lowercase(),
            SourceSpec::Asof {
                left,
                right,
                tolerance,
            } => format!(
                "as-of join of {left} with {right} (tolerance {})",
                crate::time::format_duration(*tolerance)
            ),
        }
    }
}

/// The columns a source offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    pub labels: BTreeSet<String>,
    pub nums: Vec<String>,
}

/// What the query computes from the rows that pass the filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Rows: one output per selected scalar; order keys may be unselected.
    Rows {
        outs: Vec<Scalar>,
        order: Vec<(Scalar, bool)>,
    },
    /// Groups: a full row is the keys then the aggregates; `outs` and
    /// `order` index into it.
    Agg {
        keys: Vec<GroupKey>,
        aggs: Vec<AggSpec>,
        outs: Vec<usize>,
        order: Vec<(usize, bool)>,
    },
}

/// A bound query.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub explain: Option<Explain>,
    pub source: SourceSpec,
    pub schema: Schema,
    pub pred: Pred,
    pub shape: Shape,
    pub columns: Vec<String>,
    pub limit: Option<u64>,
}

/// Names accepted for the timestamp column.
pub const TIME_NAMES: [&str; 3] = ["ts", "time", "timestamp"];

fn err(msg: impl Into<String>) -> Error {
    Error::Query(msg.into())
}

fn lit_str(l: &Lit) -> &str {
    match l {
        Lit::Num(s) | Lit::Str(s) => s,
    }
}

fn need_metric(index: &LabelIndex, name: &str, pos: Pos) -> Result<()> {
    if index.metric(name).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = index.metrics().collect();
    Err(err(format!(
        "unknown metric `{name}`{pos}; the file has: {}",
        known.join(", ")
    )))
}

fn duration_arg(l: &Lit, what: &str, fname: &str) -> Result<i64> {
    let d = parse_duration(lit_str(l)).map_err(|e| err(format!("{fname}(): {what}: {e}")))?;
    if d <= 0 {
        return Err(err(format!("{fname}(): {what} must be positive")));
    }
    Ok(d)
}

fn bind_source(from: &From, index: &LabelIndex) -> Result<(SourceSpec, Schema)> {
    let value = || vec!["value".to_string()];
    match from {
        From::Metric { name, pos } => {
            need_metric(index, name, *pos)?;
            Ok((
                SourceSpec::Metric(name.clone()),
                Schema {
                    labels: index.label_names(name),
                    nums: value(),
                },
            ))
        }
        From::Function { name, args, pos } => {
            let arity = |lo: usize, hi: usize, usage: &str| -> Result<()> {
                if args.len() < lo || args.len() > hi {
                    Err(err(format!(
                        "{name}() takes {usage}{pos}, got {} arguments",
                        args.len()
                    )))
                } else {
                    Ok(())
                }
            };
            match name.as_str() {
                "ohlcv" => {
                    arity(2, 3, "(price_metric, 'bar size'[, volume_metric])")?;
                    let price = lit_str(&args[0]).to_string();
                    need_metric(index, &price, *pos)?;
                    let bar = duration_arg(&args[1], "bar size", name)?;
                    let volume = match args.get(2) {
                        Some(v) => Some(lit_str(v).to_string()),
                        None => price
                            .strip_suffix("_price")
                            .map(|p| format!("{p}_size"))
                            .filter(|v| index.metric(v).is_some()),
                    };
                    if let Some(v) = &volume {
                        need_metric(index, v, *pos)?;
                    }
                    let mut nums: Vec<String> =
                        ["open", "high", "low", "close"].map(String::from).to_vec();
                    if volume.is_some() {
                        nums.push("volume".into());
                    }
                    nums.push("trades".into());
                    Ok((
                        SourceSpec::Ohlcv {
                            price: price.clone(),
                            volume,
                            bar,
                        },
                        Schema {
                            labels: index.label_names(&price),
                            nums,
                        },
                    ))
                }
                "rolling" => {
                    arity(3, 3, "(metric, 'mean|std|min|max|sum|count', window)")?;
                    let metric = lit_str(&args[0]).to_string();
                    need_metric(index, &metric, *pos)?;
                    let func = match lit_str(&args[1]).to_ascii_lowercase().as_str() {
                        "mean" | "avg" => RollFn::Mean,
                        "std" | "stddev" => RollFn::Std,
                        "min" => RollFn::Min,
                        "max" => RollFn::Max,
                        "sum" => RollFn::Sum,
                        "count" => RollFn::Count,
                        other => {
                            return Err(err(format!(
                                "rolling(): unknown function '{other}' (use mean, std, min, max, sum or count)"
                            )))
                        }
                    };
                    let window = match &args[2] {
                        Lit::Num(n) => match n.parse::<usize>() {
                            Ok(n) if n > 0 => Window::Count(n),
                            _ => {
                                return Err(err(format!(
                                    "rolling(): window {n} must be a positive whole number of samples or a duration like '5m'"
                                )))
                            }
                        },
                        Lit::Str(s) => Window::Duration(duration_arg(
                            &Lit::Str(s.clone()),
                            "window",
                            name,
                        )?),
                    };
                    Ok((
                        SourceSpec::Rolling {
                            metric: metric.clone(),
                            func,
                            window,
                        },
                        Schema {
                            labels: index.label_names(&metric),
                            nums: vec!["value".into(), "rolling".into()],
                        },
                    ))
                }
                "asof_join" => {
                    arity(3, 3, "(left_metric, right_metric, 'tolerance')")?;
                    let left = lit_str(&args[0]).to_string();
                    let right = lit_str(&args[1]).to_string();
                    need_metric(index, &left, *pos)?;
                    need_metric(index, &right, *pos)?;
                    let tolerance = parse_duration(lit_str(&args[2]))
                        .map_err(|e| err(format!("asof_join(): tolerance: {e}")))?;
                    Ok((
                        SourceSpec::Asof {
                            left: left.clone(),
                            right,
                            tolerance,
                        },
                        Schema {
                            labels: index.label_names(&left),
                            nums: vec!["value".into(), "right".into()],
                        },
                    ))
                }
                other => Err(err(format!(
                    "unknown table function `{other}`{pos}; there are ohlcv, rolling and asof_join"
                ))),
            }
        }
    }
}

struct Binder<'a> {
    schema: &'a Schema,
    source: &'a str,
}

impl Binder<'_> {
    fn columns_hint(&self) -> String {
        let mut all = vec!["ts".to_string()];
        all.extend(self.schema.labels.iter().cloned());
        all.extend(self.schema.nums.iter().cloned());
        all.join(", ")
    }

    fn column(&self, name: &str, pos: Pos) -> Result<Scalar> {
        if TIME_NAMES.contains(&name) {
            return Ok(Scalar::Ts);
        }
        if let Some(i) = self.schema.nums.iter().position(|n| n == name) {
            return Ok(Scalar::Num(i));
        }
        if self.schema.labels.contains(name) {
            return Ok(Scalar::Label(name.to_string()));
        }
        if let Some(label) = name.strip_prefix(crate::query::ast::LABEL_PREFIX) {
            if self.schema.labels.contains(label) {
                return Ok(Scalar::Label(label.to_string()));
            }
        }
        Err(err(format!(
            "unknown column `{name}`{pos}; {} has: {}",
            self.source,
            self.columns_hint()
        )))
    }

    /// A scalar select-list or ORDER BY expression.
    fn scalar(&self, e: &Expr) -> Result<Scalar> {
        match e {
            Expr::Column(c, pos) => self.column(c, *pos),
            Expr::Call {
                name, args, pos, ..
            } if name == "time_bucket" => match args.as_slice() {
                [Expr::Lit(width, _), col] => {
                    if self.scalar(col)? != Scalar::Ts {
                        return Err(err(format!(
                            "time_bucket(){pos}: the second argument must be ts"
                        )));
                    }
                    Ok(Scalar::Bucket(duration_arg(width, "bucket width", name)?))
                }
                _ => Err(err(format!(
                    "time_bucket(){pos} takes ('width', ts), e.g. time_bucket('5m', ts)"
                ))),
            },
            Expr::Call { name, pos, .. } if agg_name(name) => Err(err(format!(
                "aggregate {name}(){pos} in a query without GROUP BY or other aggregates"
            ))),
            Expr::Call { name, pos, .. } => Err(err(format!(
                "unknown function `{name}`{pos}; scalar functions: time_bucket; aggregates: {}",
                AGG_NAMES.join(", ")
            ))),
            Expr::Lit(_, pos) => Err(Error::Unsupported(format!("a literal as a column{pos}"))),
            other => Err(Error::Unsupported(format!(
                "the expression `{other}` as a column{}",
                other.pos()
            ))),
        }
    }

    /// The WHERE clause.
    fn pred(&self, e: &Expr) -> Result<Pred> {
        Ok(match e {
            Expr::And(a, b) => Pred::and(vec![self.pred(a)?, self.pred(b)?]),
            Expr::Or(a, b) => Pred::or(vec![self.pred(a)?, self.pred(b)?]),
            Expr::Not(a) => Pred::negate(self.pred(a)?),
            Expr::Cmp(op, a, b) => match (a.as_ref(), b.as_ref()) {
                (col, Expr::Lit(l, lp)) => self.compare(col, *op, l, *lp)?,
                (Expr::Lit(l, lp), col) => self.compare(col, op.flip(), l, *lp)?,
                _ => {
                    return Err(Error::Unsupported(format!(
                        "comparing two columns{} (compare a column with a literal)",
                        e.pos()
                    )))
                }
            },
            Expr::In {
                expr,
                list,
                negated,
            } => {
                let mut lits = Vec::with_capacity(list.len());
                for item in list {
                    match item {
                        Expr::Lit(l, p) => lits.push((l, *p)),
                        other => {
                            return Err(Error::Unsupported(format!(
                                "IN with a non-literal `{other}`{}",
                                other.pos()
                            )))
                        }
                    }
                }
                match self.scalar(expr)? {
                    Scalar::Label(name) => Pred::LabelIn {
                        name,
                        set: lits.iter().map(|(l, _)| lit_str(l).to_string()).collect(),
                        negated: *negated,
                    },
                    _ => {
                        let mut any = Vec::with_capacity(lits.len());
                        for (l, p) in lits {
                            any.push(self.compare(expr, Cmp::Eq, l, p)?);
                        }
                        let p = Pred::or(any);
                        if *negated {
                            Pred::negate(p)
                        } else {
                            p
                        }
                    }
                }
            }
            Expr::Lit(l, pos) => {
                return Err(err(format!(
                    "the literal {l}{pos} is not a condition (write column = {l})"
                )))
            }
            Expr::Column(c, pos) => {
                return Err(err(format!(
                    "the column `{c}`{pos} is not a condition (compare it with a literal)"
                )))
            }
            Expr::Call { name, pos, .. } => {
                return Err(Error::Unsupported(format!(
                    "the function call {name}(){pos} in WHERE"
                )))
            }
        })
    }

    fn compare(&self, col: &Expr, op: Cmp, lit: &Lit, pos: Pos) -> Result<Pred> {
        Ok(match self.scalar(col)? {
            Scalar::Label(name) => Pred::Label {
                name,
                op,
                value: lit_str(lit).to_string(),
            },
            Scalar::Ts => Pred::Ts {
                op,
                value: timestamp_lit(lit, pos)?,
            },
            Scalar::Num(c) => Pred::Num {
                col: c,
                op,
                value: number_lit(lit, &self.schema.nums[c], pos)?,
            },
            Scalar::Bucket(_) => {
                return Err(Error::Unsupported(format!(
                    "time_bucket() in WHERE{pos} (filter on ts)"
                )))
            }
        })
    }
}

fn timestamp_lit(l: &Lit, pos: Pos) -> Result<i64> {
    match l {
        Lit::Str(s) => parse_timestamp(s).map_err(|why| {
            err(format!(
                "time literal '{s}'{pos}: {why} (write '2024-01-01T00:00:00Z' or '2024-01-01')"
            ))
        }),
        Lit::Num(n) => n.parse::<i64>().map_err(|_| {
            err(format!(
                "{n}{pos} is not a timestamp (nanoseconds since 1970 as a whole number, or a quoted date)"
            ))
        }),
    }
}

fn number_lit(l: &Lit, col: &str, pos: Pos) -> Result<f64> {
    let text = lit_str(l);
    let parsed = match text.trim() {
        "NaN" | "nan" => Some(f64::NAN),
        "inf" | "+inf" | "Inf" | "+Inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-Inf" | "-infinity" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok(),
    };
    parsed.ok_or_else(|| err(format!("{l}{pos} is not a number; `{col}` is numeric")))
}

const AGG_NAMES: [&str; 12] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "stddev",
    "percentile",
    "median",
    "twap",
    "mean",
];

fn agg_name(name: &str) -> bool {
    AGG_NAMES.contains(&name)
}

fn contains_agg(e: &Expr) -> bool {
    match e {
        Expr::Call { name, args, .. } => agg_name(name) || args.iter().any(contains_agg),
        Expr::Cmp(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => contains_agg(a) || contains_agg(b),
        Expr::Not(a) => contains_agg(a),
        Expr::In { expr, list, .. } => contains_agg(expr) || list.iter().any(contains_agg),
        Expr::Column(..) | Expr::Lit(..) => false,
    }
}

/// Binds a parsed query to the file's index.
pub fn bind(q: &Query, index: &LabelIndex) -> Result<Plan> {
    let (source, schema) = bind_source(&q.from, index)?;
    let source_name = match &q.from {
        From::Metric { name, .. } => name.clone(),
        From::Function { name, .. } => format!("{name}()"),
    };
    let b = Binder {
        schema: &schema,
        source: &source_name,
    };
    let pred = match &q.filter {
        Some(e) => {
            if contains_agg(e) {
                return Err(err(format!(
                    "aggregates are not allowed in WHERE{}",
                    e.pos()
                )));
            }
            b.pred(e)?
        }
        None => Pred::Const(true),
    };
    // Expand `*` and name every output column.
    let mut items: Vec<(Expr, String)> = Vec::new();
    for item in &q.items {
        match item {
            Item::Wildcard => {
                items.push((Expr::Column("ts".into(), Pos::default()), "ts".into()));
                for l in &schema.labels {
                    // A label named like a sample column is shown as `labels.x`.
                    let name = if TIME_NAMES.contains(&l.as_str()) || schema.nums.contains(l) {
                        format!("{}{l}", crate::query::ast::LABEL_PREFIX)
                    } else {
                        l.clone()
                    };
                    items.push((Expr::Column(name.clone(), Pos::default()), name));
                }
                for n in &schema.nums {
                    items.push((Expr::Column(n.clone(), Pos::default()), n.clone()));
                }
            }
            Item::Expr { expr, alias } => {
                let name = alias.clone().unwrap_or_else(|| expr.to_string());
                items.push((expr.clone(), name));
            }
        }
    }
    let columns: Vec<String> = items.iter().map(|(_, n)| n.clone()).collect();
    // An alias, a position or the expression itself.
    let resolve = |e: &Expr| -> Result<Expr> {
        match e {
            Expr::Column(c, _) => {
                if let Some((expr, _)) = items.iter().find(|(_, n)| n == c) {
                    if !matches!(expr, Expr::Column(x, _) if x == c) {
                        return Ok(expr.clone());
                    }
                }
                Ok(e.clone())
            }
            Expr::Lit(Lit::Num(n), pos) => match n.parse::<usize>() {
                Ok(i) if (1..=items.len()).contains(&i) => Ok(items[i - 1].0.clone()),
                _ => Err(err(format!(
                    "position {n}{pos} does not name a column of the select list (1..={})",
                    items.len()
                ))),
            },
            other => Ok(other.clone()),
        }
    };
    let aggregate = !q.group_by.is_empty() || items.iter().any(|(e, _)| contains_agg(e));
    let shape = if !aggregate {
        let outs = items
            .iter()
            .map(|(e, _)| b.scalar(e))
            .collect::<Result<Vec<_>>>()?;
        let mut order = Vec::new();
        for (e, desc) in &q.order_by {
            order.push((b.scalar(&resolve(e)?)?, *desc));
        }
        Shape::Rows { outs, order }
    } else {
        let mut group_exprs = Vec::new();
        let mut keys = Vec::new();
        for g in &q.group_by {
            let g = resolve(g)?;
            if contains_agg(&g) {
                return Err(err(format!(
                    "aggregates are not allowed in GROUP BY{}",
                    g.pos()
                )));
            }
            keys.push(match b.scalar(&g)? {
                Scalar::Label(l) => GroupKey::Label(l),
                Scalar::Ts => GroupKey::Bucket(1),
                Scalar::Bucket(w) => GroupKey::Bucket(w),
                Scalar::Num(_) => {
                    return Err(Error::Unsupported(format!(
                        "GROUP BY a numeric column `{g}`{} (group by labels and time buckets)",
                        g.pos()
                    )))
                }
            });
            group_exprs.push(g);
        }
        if keys
            .iter()
            .filter(|k| matches!(k, GroupKey::Bucket(_)))
            .count()
            > 1
        {
            return Err(Error::Unsupported(
                "more than one time bucket in GROUP BY".into(),
            ));
        }
        let mut aggs: Vec<AggSpec> = Vec::new();
        let mut agg_exprs: Vec<Expr> = Vec::new();
        let mut place = |e: &Expr, aggs: &mut Vec<AggSpec>| -> Result<usize> {
            if let Some(i) = group_exprs.iter().position(|g| g == e) {
                return Ok(i);
            }
            if let Some(i) = agg_exprs.iter().position(|a| a == e) {
                return Ok(group_exprs.len() + i);
            }
            match e {
                Expr::Call {
                    name,
                    args,
                    star,
                    pos,
                } if agg_name(name) => {
                    aggs.push(b.agg(name, args, *star, *pos)?);
                    agg_exprs.push(e.clone());
                    Ok(group_exprs.len() + agg_exprs.len() - 1)
                }
                Expr::Call { name, pos, .. } if name != "time_bucket" => Err(err(format!(
                    "unknown function `{name}`{pos}; scalar functions: time_bucket; aggregates: {}",
                    AGG_NAMES.join(", ")
                ))),
                other => Err(err(format!(
                    "`{other}`{} must appear in GROUP BY or inside an aggregate",
                    other.pos()
                ))),
            }
        };
        let mut outs = Vec::new();
        for (e, _) in &items {
            outs.push(place(e, &mut aggs)?);
        }
        let mut order = Vec::new();
        for (e, desc) in &q.order_by {
            order.push((place(&resolve(e)?, &mut aggs)?, *desc));
        }
        Shape::Agg {
            keys,
            aggs,
            outs,
            order,
        }
    };
    Ok(Plan {
        explain: q.explain,
        source,
        schema,
        pred,
        shape,
        columns,
        limit: q.limit,
    })
}

impl Binder<'_> {
    fn agg(&self, name: &str, args: &[Expr], star: bool, pos: Pos) -> Result<AggSpec> {
        let col = |e: &Expr| -> Result<usize> {
            match self.scalar(e)? {
                Scalar::Num(i) => Ok(i),
                _ => Err(err(format!(
                    "{name}(){pos} needs a numeric column ({}), not `{e}`",
                    self.schema.nums.join(", ")
                ))),
            }
        };
        let one = || -> Result<usize> {
            match args {
                [a] if !star => col(a),
                _ => Err(err(format!("{name}(){pos} takes one numeric column"))),
            }
        };
        let func = match name {
            "count" => {
                return match args {
                    [] if star => Ok(AggSpec {
                        func: AggFn::Count,
                        col: 0,
                    }),
                    [a] => {
                        // count(label) counts rows like count(*).
                        let c = match self.scalar(a)? {
                            Scalar::Num(i) => i,
                            _ => 0,
                        };
                        Ok(AggSpec {
                            func: AggFn::Count,
                            col: c,
                        })
                    }
                    _ => Err(err(format!("count(){pos} takes * or one column"))),
                };
            }
            "sum" => AggFn::Sum,
            "avg" | "mean" => AggFn::Avg,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "first" => AggFn::First,
            "last" => AggFn::Last,
            "stddev" => AggFn::Stddev,
            "twap" => AggFn::Twap,
            "median" => AggFn::Percentile(0.5),
            "percentile" => {
                let (c, p) = match args {
                    [c, Expr::Lit(Lit::Num(p), _)] => (c, p),
                    _ => {
                        return Err(err(format!(
                        "percentile(){pos} takes (column, fraction), e.g. percentile(value, 0.99)"
                    )))
                    }
                };
                let p: f64 = p.parse().unwrap_or(f64::NAN);
                if !(0.0..=1.0).contains(&p) {
                    return Err(err(format!(
                        "percentile(){pos}: the fraction must be between 0 and 1"
                    )));
                }
                return Ok(AggSpec {
                    func: AggFn::Percentile(p),
                    col: col(c)?,
                });
            }
            _ => {
                return Err(err(format!("unknown aggregate `{name}`{pos}")));
            }
        };
        Ok(AggSpec { func, col: one()? })
    }
}
