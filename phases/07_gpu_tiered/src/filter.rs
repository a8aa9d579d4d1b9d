//! Query filters: range, equality and IN on any column, combined with AND.
//!
//! A [`Filter`] names a column and a condition on user-facing values; it is
//! bound against the store's schema into a [`Pred`], which is typed (i64 for
//! timestamps and integers, f64, strings) and evaluates three ways: on a whole
//! Arrow batch (a selection mask), on one row of the warm tier's columns, and
//! on min/max statistics (can anything in this file, row group or page
//! match?). Floats compare as IEEE does: NaN satisfies no range, equality or
//! IN, so statistics that ignore NaN never prune a match.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A value in a filter as the user wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v}"),
            Scalar::Str(v) => write!(f, "{v:?}"),
        }
    }
}

/// A condition on one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cond {
    /// `column = value`
    Eq(Scalar),
    /// `column IN (values)`
    In(Vec<Scalar>),
    /// `lo <= column < hi` and friends; either end may be open.
    Range {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gt: Option<Scalar>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gte: Option<Scalar>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lt: Option<Scalar>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lte: Option<Scalar>,
    },
}

/// A condition on a named column.
///
/// As JSON: `{"column": "price", "eq": 5}`, `{"column": "symbol", "in":
/// ["A", "B"]}` or `{"column": "timestamp", "range": {"gte": ..., "lt":
/// ...}}`. Exactly one of `eq`, `in` and `range`; a range has at least one
/// bound, at most one lower (`gt` or `gte`) and one upper (`lt` or `lte`).
/// Any other key, or a second operator, is an error naming it: a filter
/// that silently dropped a condition would widen the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FilterText")]
pub struct Filter {
    pub column: String,
    #[serde(flatten)]
    pub cond: Cond,
}

/// A filter as written, before the one-operator rule is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterText {
    column: String,
    #[serde(default)]
    eq: Option<Scalar>,
    #[serde(default, rename = "in")]
    is_in: Option<Vec<Scalar>>,
    #[serde(default)]
    range: Option<RangeText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeText {
    #[serde(default)]
    gt: Option<Scalar>,
    #[serde(default)]
    gte: Option<Scalar>,
    #[serde(default)]
    lt: Option<Scalar>,
    #[serde(default)]
    lte: Option<Scalar>,
}

impl TryFrom<FilterText> for Filter {
    type Error = String;

    fn try_from(f: FilterText) -> std::result::Result<Filter, String> {
        let column = f.column;
        let cond = match (f.eq, f.is_in, f.range) {
            (Some(v), None, None) => Cond::Eq(v),
            (None, Some(vs), None) => Cond::In(vs),
            (None, None, Some(r)) => {
                if r.gt.is_some() && r.gte.is_some() || r.lt.is_some() && r.lte.is_some() {
                    return Err(format!(
                        "filter on `{column}`: give at most one lower bound (gt or gte) and one upper bound (lt or lte)"
                    ));
                }
                if r.gt.is_none() && r.gte.is_none() && r.lt.is_none() && r.lte.is_none() {
                    return Err(format!(
                        "filter on `{column}`: a range needs a bound (gt, gte, lt or lte)"
                    ));
                }
                Cond::Range {
                    gt: r.gt,
                    gte: r.gte,
                    lt: r.lt,
                    lte: r.lte,
                }
            }
            (None, None, None) => {
                return Err(format!(
                    "filter on `{column}` has no condition: give one of eq, in or range"
                ))
            }
            _ => {
                return Err(format!(
                    "filter on `{column}` has more than one of eq, in and range: give one filter per condition"
                ))
            }
        };
        Ok(Filter { column, cond })
    }
}

impl Filter {
    /// `column = value`.
    pub fn eq(column: &str, v: impl Into<Scalar>) -> Filter {
        Filter {
            column: column.into(),
            cond: Cond::Eq(v.into()),
        }
    }

    /// `column IN (values)`.
    pub fn is_in<V: Into<Scalar>>(column: &str, vs: impl IntoIterator<Item = V>) -> Filter {
        Filter {
            column: column.into(),
            cond: Cond::In(vs.into_iter().map(Into::into).collect()),
        }
    }

    /// `lo <= column < hi` (either side optional).
    pub fn range(column: &str, gte: Option<Scalar>, lt: Option<Scalar>) -> Filter {
        Filter {
            column: column.into(),
            cond: Cond::Range {
                gt: None,
                gte,
                lt,
                lte: None,
            },
        }
    }
}

/// Parses a time as users write it: integer nanoseconds since the Unix
/// epoch, or a UTC time such as `2024-01-01T00:00:00Z` or `2024-01-01`
/// (read by [`parse_time`]). The error says why, without
/// naming where the text came from: the caller adds that.
pub fn parse_time_or_ns(text: &str) -> std::result::Result<i64, String> {
    text.parse::<i64>()
        .or_else(|_| squeeze::time::parse_timestamp(text))
}

impl Filter {
    /// Parses a condition written `column OP value`, OP one of `=`, `>`,
    /// `>=`, `<`, `<=` and ` in ` (values separated by `|`): `side=buy`,
    /// `price>=100`, `exchange in kraken|binance`. The value is read as the
    /// column's type in `schema` (a timestamp as [`parse_time_or_ns`] reads it).
    ///
    /// Errors: [`Error::InvalidArgument`], starting with the text quoted,
    /// for a missing operator, an unknown column, or a value that is not of
    /// the column's type.
    pub fn parse(text: &str, schema: &Schema) -> Result<Filter> {
        let ops = [" in ", ">=", "<=", "=", ">", "<"];
        let (at, op) = ops
            .iter()
            .filter_map(|op| text.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{text:?}: expected `column OP value` with OP one of = > >= < <= in"
                ))
            })?;
        let column = text[..at].trim();
        let value = text[at + op.len()..].trim();
        let field = schema
            .field_with_name(column)
            .map_err(|_| Error::InvalidArgument(format!("{text:?}: unknown column `{column}`")))?;
        let scalar = |v: &str| -> Result<Scalar> {
            let v = v.trim();
            Ok(match field.data_type() {
                DataType::Utf8 => Scalar::Str(v.to_string()),
                DataType::Timestamp(..) => Scalar::Int(parse_time_or_ns(v).map_err(|why| {
                    Error::InvalidArgument(format!(
                        "{text:?}: {why} (write a time such as 2024-01-01T00:00:00Z, or integer nanoseconds)"
                    ))
                })?),
                DataType::Float64 => Scalar::Float(v.parse().map_err(|_| {
                    Error::InvalidArgument(format!("{text:?}: {v:?} is not a number"))
                })?),
                _ => Scalar::Int(v.parse().map_err(|_| {
                    Error::InvalidArgument(format!("{text:?}: {v:?} is not an integer"))
                })?),
            })
        };
        let cond = match op {
            " in " => Cond::In(value.split('|').map(scalar).collect::<Result<_>>()?),
            "=" => Cond::Eq(scalar(value)?),
            _ => {
                let v = Some(scalar(value)?);
                let (mut gt, mut gte, mut lt, mut lte) = (None, None, None, None);
                match op {
                    ">" => gt = v,
                    ">=" => gte = v,
                    "<" => lt = v,
                    _ => lte = v,
                }
                Cond::Range { gt, gte, lt, lte }
            }
        };
        Ok(Filter {
            column: column.to_string(),
            cond,
        })
    }
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}
impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::Str(v.into())
    }
}
impl From<String> for Scalar {
    fn from(v: String) -> Self {
        Scalar::Str(v)
    }
}

/// A bound, typed condition.
#[derive(Clone, Debug, PartialEq)]
pub enum PredKind {
    /// Inclusive i64 range (timestamps, trade ids, flags).
    IntRange(i64, i64),
    IntSet(Vec<i64>),
    /// f64 range; each end `(value, inclusive)`.
    FloatRange(Option<(f64, bool)>, Option<(f64, bool)>),
    FloatSet(Vec<f64>),
    StrRange(Option<(String, bool)>, Option<(String, bool)>),
    /// Sorted, deduplicated.
    StrSet(Vec<String>),
}

/// A condition bound to a column index of the schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Pred {
    pub column: usize,
    pub name: String,
    pub kind: PredKind,
}

/// Min and max of a column chunk, typed like [`PredKind`].
#[derive(Clone, Debug, PartialEq)]
pub enum Stats {
    Int(i64, i64),
    Float(f64, f64),
    Str(String, String),
}

enum ColKind {
    Int,
    Float,
    Str,
}

fn col_kind(dt: &DataType) -> Option<ColKind> {
    match dt {
        DataType::Timestamp(..) | DataType::Int64 | DataType::Int32 => Some(ColKind::Int),
        DataType::Float64 => Some(ColKind::Float),
        DataType::Utf8 => Some(ColKind::Str),
        _ => None,
    }
}

/// Parses `2024-01-02`, `2024-01-02T03:04:05Z` (fractions and offsets
/// allowed; no offset is UTC) as Unix nanoseconds; the error says why not
/// (`2023-02-29`: day out of range).
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    squeeze::time::parse_timestamp(s)
}

fn int_of(column: &str, is_ts: bool, v: &Scalar) -> Result<i64> {
    match v {
        Scalar::Int(i) => Ok(*i),
        Scalar::Str(s) if is_ts => parse_time(s).map_err(|why| {
            Error::InvalidArgument(format!(
                "`{column}`: {why} (use 2024-01-02T03:04:05Z or nanoseconds)"
            ))
        }),
        Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(*f as i64),
        other => Err(Error::InvalidArgument(format!(
            "`{column}` is an integer column; {other} is not an integer"
        ))),
    }
}

fn float_of(column: &str, v: &Scalar) -> Result<f64> {
    match v {
        Scalar::Int(i) => Ok(*i as f64),
        Scalar::Float(f) => Ok(*f),
        Scalar::Str(s) => Err(Error::InvalidArgument(format!(
            "`{column}` is a number column; {s:?} is a string"
        ))),
    }
}

fn str_of(column: &str, v: &Scalar) -> Result<String> {
    match v {
        Scalar::Str(s) => Ok(s.clone()),
        other => Err(Error::InvalidArgument(format!(
            "`{column}` is a string column; {other} is not a string"
        ))),
    }
}

impl Filter {
    /// Binds the filter to `schema`: the column must exist and the values
    /// must fit its type.
    pub fn bind(&self, schema: &Schema) -> Result<Pred> {
        let (column, field) = schema.column_with_name(&self.column).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown column `{}` (columns: {})",
                self.column,
                crate::schema::column_names(schema).join(", ")
            ))
        })?;
        let name = self.column.as_str();
        let is_ts = matches!(field.data_type(), DataType::Timestamp(..));
        let kind = col_kind(field.data_type())
            .ok_or_else(|| Error::InvalidArgument(format!("column `{name}` cannot be filtered")))?;
        let kind = match (&self.cond, kind) {
            (Cond::Eq(v), ColKind::Int) => {
                let v = int_of(name, is_ts, v)?;
                PredKind::IntRange(v, v)
            }
            (Cond::In(vs), ColKind::Int) => {
                let mut set = vs
                    .iter()
                    .map(|v| int_of(name, is_ts, v))
                    .collect::<Result<Vec<_>>>()?;
                set.sort_unstable();
                set.dedup();
                PredKind::IntSet(set)
            }
            (Cond::Eq(v), ColKind::Float) => PredKind::FloatSet(vec![float_of(name, v)?]),
            (Cond::In(vs), ColKind::Float) => PredKind::FloatSet(
                vs.iter()
                    .map(|v| float_of(name, v))
                    .collect::<Result<Vec<_>>>()?,
            ),
            (Cond::Eq(v), ColKind::Str) => PredKind::StrSet(vec![str_of(name, v)?]),
            (Cond::In(vs), ColKind::Str) => {
                let mut set = vs
                    .iter()
                    .map(|v| str_of(name, v))
                    .collect::<Result<Vec<_>>>()?;
                set.sort();
                set.dedup();
                PredKind::StrSet(set)
            }
            (Cond::Range { gt, gte, lt, lte }, kind) => {
                if gt.is_some() && gte.is_some() || lt.is_some() && lte.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "`{name}`: give at most one lower bound (gt or gte) and one upper bound (lt or lte)"
                    )));
                }
                let lo = gt
                    .as_ref()
                    .map(|v| (v, false))
                    .or(gte.as_ref().map(|v| (v, true)));
                let hi = lt
                    .as_ref()
                    .map(|v| (v, false))
                    .or(lte.as_ref().map(|v| (v, true)));
                match kind {
                    ColKind::Int => {
                        let lo = match lo {
                            None => i64::MIN,
                            Some((v, incl)) => {
                                let v = int_of(name, is_ts, v)?;
                                if incl {
                                    v
                                } else {
                                    v.saturating_add(1)
                                }
                            }
                        };
                        let hi = match hi {
                            None => i64::MAX,
                            Some((v, incl)) => {
                                let v = int_of(name, is_ts, v)?;
                                if incl {
                                    v
                                } else {
                                    v.saturating_sub(1)
                                }
                            }
                        };
                        PredKind::IntRange(lo, hi)
                    }
                    ColKind::Float => PredKind::FloatRange(
                        lo.map(|(v, i)| float_of(name, v).map(|v| (v, i)))
                            .transpose()?,
                        hi.map(|(v, i)| float_of(name, v).map(|v| (v, i)))
                            .transpose()?,
                    ),
                    ColKind::Str => PredKind::StrRange(
                        lo.map(|(v, i)| str_of(name, v).map(|v| (v, i)))
                            .transpose()?,
                        hi.map(|(v, i)| str_of(name, v).map(|v| (v, i)))
                            .transpose()?,
                    ),
                }
            }
        };
        Ok(Pred {
            column,
            name: name.to_string(),
            kind,
        })
    }
}

/// Binds every filter.
pub fn bind_all(filters: &[Filter], schema: &Schema) -> Result<Vec<Pred>> {
    filters.iter().map(|f| f.bind(schema)).collect()
}

fn float_in_range(v: f64, lo: &Option<(f64, bool)>, hi: &Option<(f64, bool)>) -> bool {
    let lo_ok = match lo {
        None => !v.is_nan(),
        Some((l, true)) => v >= *l,
        Some((l, false)) => v > *l,
    };
    let hi_ok = match hi {
        None => true,
        Some((h, true)) => v <= *h,
        Some((h, false)) => v < *h,
    };
    lo_ok && hi_ok
}

fn str_in_range(v: &str, lo: &Option<(String, bool)>, hi: &Option<(String, bool)>) -> bool {
    let lo_ok = match lo {
        None => true,
        Some((l, true)) => v >= l.as_str(),
        Some((l, false)) => v > l.as_str(),
    };
    let hi_ok = match hi {
        None => true,
        Some((h, true)) => v <= h.as_str(),
        Some((h, false)) => v < h.as_str(),
    };
    lo_ok && hi_ok
}

impl PredKind {
    /// Does an integer satisfy it?
    #[inline]
    pub fn int(&self, v: i64) -> bool {
        match self {
            PredKind::IntRange(lo, hi) => *lo <= v && v <= *hi,
            PredKind::IntSet(set) => set.binary_search(&v).is_ok(),
            _ => false,
        }
    }

    /// Does a float satisfy it? (IEEE: NaN never does.)
    #[inline]
    pub fn float(&self, v: f64) -> bool {
        match self {
            PredKind::FloatRange(lo, hi) => float_in_range(v, lo, hi),
            PredKind::FloatSet(set) => set.contains(&v),
            _ => false,
        }
    }

    /// Does a string satisfy it?
    #[inline]
    pub fn str(&self, v: &str) -> bool {
        match self {
            PredKind::StrRange(lo, hi) => str_in_range(v, lo, hi),
            PredKind::StrSet(set) => set.binary_search_by(|s| s.as_str().cmp(v)).is_ok(),
            _ => false,
        }
    }

    /// Can a chunk whose non-NaN values lie in `stats` hold a match?
    pub fn may_match(&self, stats: &Stats) -> bool {
        match (self, stats) {
            (PredKind::IntRange(lo, hi), Stats::Int(min, max)) => lo <= max && min <= hi,
            (PredKind::IntSet(set), Stats::Int(min, max)) => {
                set.iter().any(|v| min <= v && v <= max)
            }
            (PredKind::FloatRange(lo, hi), Stats::Float(min, max)) => {
                let lo_ok = match lo {
                    None => true,
                    Some((l, true)) => *max >= *l,
                    Some((l, false)) => *max > *l,
                };
                let hi_ok = match hi {
                    None => true,
                    Some((h, true)) => *min <= *h,
                    Some((h, false)) => *min < *h,
                };
                lo_ok && hi_ok
            }
            (PredKind::FloatSet(set), Stats::Float(min, max)) => {
                set.iter().any(|v| *min <= *v && *v <= *max)
            }
            (PredKind::StrRange(lo, hi), Stats::Str(min, max)) => {
                let lo_ok = match lo {
                    None => true,
                    Some((l, true)) => max >= l,
                    Some((l, false)) => max > l,
                };
                let hi_ok = match hi {
                    None => true,
                    Some((h, true)) => min <= h,
                    Some((h, false)) => min < h,
                };
                lo_ok && hi_ok
            }
            (PredKind::StrSet(set), Stats::Str(min, max)) => {
                set.iter().any(|v| min <= v && v <= max)
            }
            // Statistics of another type than the predicate: cannot prune.
            _ => true,
        }
    }

    /// The inclusive time window this predicate allows (for timestamps).
    pub fn int_bounds(&self) -> Option<(i64, i64)> {
        match self {
            PredKind::IntRange(lo, hi) => Some((*lo, *hi)),
            PredKind::IntSet(set) => Some((*set.first()?, *set.last()?)),
            _ => None,
        }
    }
}

impl Pred {
    /// The rows of `column` that satisfy the predicate.
    pub fn eval_array(&self, column: &ArrayRef) -> Result<BooleanArray> {
        let k = &self.kind;
        let mask: BooleanArray = match column.data_type() {
            DataType::Timestamp(..) => column
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .iter()
                .map(|&v| Some(k.int(v)))
                .collect(),
            DataType::Int64 => column
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&v| Some(k.int(v)))
                .collect(),
            DataType::Int32 => column
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&v| Some(k.int(v as i64)))
                .collect(),
            DataType::Float64 => column
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|&v| Some(k.float(v)))
                .collect(),
            DataType::Utf8 => column
                .as_string::<i32>()
                .iter()
                .map(|v| Some(v.is_some_and(|v| k.str(v))))
                .collect(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "column `{}` of type {other} cannot be filtered",
                    self.name
                )))
            }
        };
        Ok(mask)
    }
}

/// The rows of `batch` (with the store's full schema, or a projection that
/// keeps column positions named in `preds` by name) that satisfy every
/// predicate; `None` when there are no predicates.
pub fn eval_batch(preds: &[Pred], batch: &RecordBatch) -> Result<Option<BooleanArray>> {
    let mut mask: Option<BooleanArray> = None;
    for p in preds {
        let col = batch.column_by_name(&p.name).ok_or_else(|| {
            Error::InvalidArgument(format!("column `{}` missing from a batch", p.name))
        })?;
        let m = p.eval_array(col)?;
        mask = Some(match mask {
            None => m,
            Some(prev) => arrow_arith_and(&prev, &m),
        });
    }
    Ok(mask)
}

fn arrow_arith_and(a: &BooleanArray, b: &BooleanArray) -> BooleanArray {
    // Neither mask has nulls: combine the value bits.
    BooleanArray::new(a.values() & b.values(), None)
}

/// Keeps the rows of `batch` that satisfy every predicate.
pub fn filter_batch(preds: &[Pred], batch: &RecordBatch) -> Result<RecordBatch> {
    match eval_batch(preds, batch)? {
        None => Ok(batch.clone()),
        Some(mask) if mask.true_count() == batch.num_rows() => Ok(batch.clone()),
        Some(mask) => arrow_select::filter::filter_record_batch(batch, &mask)
            .map_err(|e| Error::arrow("filtering a batch", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Mode;

    fn bind(f: Filter) -> Result<Pred> {
        f.bind(&Mode::Trading.schema())
    }

    fn parse(text: &str) -> std::result::Result<Filter, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_filter_reads_each_operator() {
        assert_eq!(
            parse(r#"{"column": "price", "eq": 5}"#).unwrap(),
            Filter::eq("price", 5)
        );
        assert_eq!(
            parse(r#"{"column": "symbol", "in": ["A", "B"]}"#).unwrap(),
            Filter::is_in("symbol", ["A", "B"])
        );
        assert_eq!(
            parse(r#"{"column": "price", "range": {"gte": 1, "lt": 2}}"#).unwrap(),
            Filter::range("price", Some(Scalar::Int(1)), Some(Scalar::Int(2)))
        );
        // What it writes, it reads.
        let f = Filter::range("price", Some(Scalar::Int(1)), None);
        assert_eq!(parse(&serde_json::to_string(&f).unwrap()).unwrap(), f);
    }

    #[test]
    fn an_unknown_key_in_a_filter_is_an_error_naming_it() {
        let e = parse(r#"{"column": "price", "lt_typo": 5}"#).unwrap_err();
        assert!(e.contains("unknown field `lt_typo`"), "{e}");
        let e = parse(r#"{"column": "price", "range": {"lt_typo": 5}}"#).unwrap_err();
        assert!(e.contains("unknown field `lt_typo`"), "{e}");
        let e = parse(r#"{"column": "price", "range": {"lt": 5}, "lt_typo": 5}"#).unwrap_err();
        assert!(e.contains("unknown field `lt_typo`"), "{e}");
    }

    #[test]
    fn a_filter_has_exactly_one_operator() {
        let e = parse(r#"{"column": "price", "eq": 5, "in": [6]}"#).unwrap_err();
        assert!(e.contains("more than one of eq, in and range"), "{e}");
        let e = parse(r#"{"column": "price", "eq": 5, "range": {"lt": 6}}"#).unwrap_err();
        assert!(e.contains("more than one"), "{e}");
        let e = parse(r#"{"column": "price"}"#).unwrap_err();
        assert!(e.contains("no condition"), "{e}");
        let e = parse(r#"{"column": "price", "range": {}}"#).unwrap_err();
        assert!(e.contains("needs a bound"), "{e}");
        let e = parse(r#"{"column": "price", "range": {"gt": 1, "gte": 2}}"#).unwrap_err();
        assert!(e.contains("at most one lower bound"), "{e}");
    }

    #[test]
    fn ranges_bind_to_inclusive_integer_bounds() {
        let p = bind(Filter {
            column: "timestamp".into(),
            cond: Cond::Range {
                gt: Some(Scalar::Int(10)),
                gte: None,
                lt: Some(Scalar::Int(20)),
                lte: None,
            },
        })
        .unwrap();
        assert_eq!(p.kind, PredKind::IntRange(11, 19));
        assert!(p.kind.int(11) && p.kind.int(19) && !p.kind.int(10) && !p.kind.int(20));
    }

    #[test]
    fn timestamps_accept_utc_strings() {
        let p = bind(Filter::eq("timestamp", "1970-01-01T00:00:01Z")).unwrap();
        assert_eq!(p.kind, PredKind::IntRange(1_000_000_000, 1_000_000_000));
        let e = bind(Filter::eq("timestamp", "yesterday")).unwrap_err();
        assert!(e.to_string().contains("not a date-time"), "{e}");
        // No roll-over into March: 2023 is not a leap year.
        let e = bind(Filter::eq("timestamp", "2023-02-29")).unwrap_err();
        assert!(e.to_string().contains("`timestamp`: \"2023-02-29\""), "{e}");
        assert!(e.to_string().contains("day"), "{e}");
    }

    #[test]
    fn wrong_types_and_unknown_columns_are_named() {
        let e = bind(Filter::eq("price", "cheap")).unwrap_err();
        assert!(e.to_string().contains("`price`"), "{e}");
        let e = bind(Filter::eq("colour", "red")).unwrap_err();
        assert!(e.to_string().contains("unknown column `colour`"), "{e}");
    }

    #[test]
    fn nan_matches_nothing_and_stats_never_prune_a_match() {
        let p = bind(Filter::range("price", Some(Scalar::Float(1.0)), None)).unwrap();
        assert!(!p.kind.float(f64::NAN));
        assert!(p.kind.float(f64::INFINITY));
        assert!(p.kind.may_match(&Stats::Float(0.0, 1.0)));
        assert!(!p.kind.may_match(&Stats::Float(-5.0, 0.5)));
        let p = bind(Filter::eq("price", 0.0)).unwrap();
        assert!(p.kind.float(-0.0));
        assert!(p.kind.may_match(&Stats::Float(-0.0, -0.0)));
    }

    #[test]
    fn string_sets_and_ranges() {
        let p = bind(Filter::is_in("symbol", ["B", "A", "B"])).unwrap();
        assert_eq!(p.kind, PredKind::StrSet(vec!["A".into(), "B".into()]));
        assert!(p.kind.str("A") && !p.kind.str("C"));
        assert!(!p.kind.may_match(&Stats::Str("C".into(), "Z".into())));
        assert!(p.kind.may_match(&Stats::Str("AA".into(), "C".into())));
    }

    #[test]
    fn conditions_as_the_command_line_writes_them() {
        let schema = Mode::Trading.schema();
        let p = |t: &str| Filter::parse(t, &schema);
        assert_eq!(p("side=buy").unwrap(), Filter::eq("side", "buy"));
        assert_eq!(
            p(" price >= 100 ").unwrap(),
            Filter::range("price", Some(Scalar::Float(100.0)), None)
        );
        assert_eq!(
            p("trade_id<5").unwrap().cond,
            Cond::Range {
                gt: None,
                gte: None,
                lt: Some(Scalar::Int(5)),
                lte: None
            }
        );
        assert_eq!(
            p("price>1.5").unwrap().cond,
            Cond::Range {
                gt: Some(Scalar::Float(1.5)),
                gte: None,
                lt: None,
                lte: None
            }
        );
        assert_eq!(
            p("flags<=2").unwrap().cond,
            Cond::Range {
                gt: None,
                gte: None,
                lt: None,
                lte: Some(Scalar::Int(2))
            }
        );
        assert_eq!(
            p("exchange in kraken|binance").unwrap(),
            Filter::is_in("exchange", ["kraken", "binance"])
        );
        // Times as date-times or nanoseconds, the same instant.
        assert_eq!(
            p("timestamp>=2024-01-01T00:00:00Z").unwrap(),
            p("timestamp>=1704067200000000000").unwrap()
        );
        // The earliest operator wins, the longest at a place: `<=` not `<`.
        assert_eq!(p("symbol=a<=b").unwrap(), Filter::eq("symbol", "a<=b"));
    }

    #[test]
    fn a_bad_condition_says_what_and_quotes_it() {
        let schema = Mode::Trading.schema();
        let err = |t: &str| Filter::parse(t, &schema).unwrap_err().to_string();
        assert!(
            err("price").contains("expected `column OP value`"),
            "{}",
            err("price")
        );
        assert!(err("colour=red").contains("unknown column `colour`"));
        assert!(err("price>=cheap").contains("\"cheap\" is not a number"));
        assert!(err("trade_id=1.5").contains("is not an integer"));
        assert!(err("price in 1|x").contains("\"x\" is not a number"));
        let e = err("timestamp>=yesterday");
        assert!(e.contains("\"timestamp>=yesterday\": \"yesterday\""), "{e}");
        assert!(e.contains("write a time such as"), "{e}");
    }
}
