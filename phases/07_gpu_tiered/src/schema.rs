//! The trading schema: four columns (simple mode) or eight (trading mode).
//!
//! Every batch the engine accepts is checked against it before a byte reaches
//! the write-ahead log: column names, order and types, no nulls, UTC
//! nanosecond timestamps inside the supported range.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The time zone every timestamp carries.
pub const UTC: &str = "UTC";

/// Earliest accepted timestamp: 1970-01-01T00:00:00Z.
pub const MIN_TS: i64 = 0;
/// First rejected timestamp: 2200-01-01T00:00:00Z (far enough, and leaves
/// room for arithmetic on i64 nanoseconds).
pub const MAX_TS: i64 = 7_258_118_400_000_000_000;

/// Which columns a store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// timestamp, symbol, price, volume.
    Simple,
    /// The four above plus side, exchange, trade_id, flags.
    Trading,
}

impl Mode {
    /// Its name as written in configuration and the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Trading => "trading",
        }
    }

    /// Parses a name written by [`Mode::name`].
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "simple" => Some(Mode::Simple),
            "trading" => Some(Mode::Trading),
            _ => None,
        }
    }

    /// The Arrow schema of the mode.
    pub fn schema(self) -> SchemaRef {
        let mut fields = vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
                false,
            ),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
            Field::new("volume", DataType::Float64, false),
        ];
        if self == Mode::Trading {
            fields.extend([
                Field::new("side", DataType::Utf8, false),
                Field::new("exchange", DataType::Utf8, false),
                Field::new("trade_id", DataType::Int64, false),
                Field::new("flags", DataType::Int32, false),
            ]);
        }
        Arc::new(Schema::new(fields))
    }
}

/// Checks that `batch` fits `mode`: same column names, order and types (a
/// nullable field is accepted if it holds no nulls), timestamps in range.
/// The error names the column, and the row for a bad value.
pub fn validate(mode: Mode, batch: &RecordBatch) -> Result<()> {
    let want = mode.schema();
    let got = batch.schema();
    if got.fields().len() != want.fields().len() {
        let names: Vec<&str> = got.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(Error::Schema(format!(
            "expected {} columns for {} mode ({}), got {} ({})",
            want.fields().len(),
            mode.name(),
            column_names(&want).join(", "),
            names.len(),
            names.join(", ")
        )));
    }
    for (i, (w, g)) in want.fields().iter().zip(got.fields()).enumerate() {
        if w.name() != g.name() {
            return Err(Error::Schema(format!(
                "column {i} is named `{}`, expected `{}`",
                g.name(),
                w.name()
            )));
        }
        if w.data_type() != g.data_type() {
            let hint = match (w.data_type(), g.data_type()) {
                (DataType::Timestamp(..), DataType::Timestamp(unit, tz)) => format!(
                    " (timestamps must be nanoseconds in UTC; this one is {unit:?} in {})",
                    tz.as_deref().unwrap_or("no time zone")
                ),
                _ => String::new(),
            };
            return Err(Error::Schema(format!(
                "column `{}` has type {}, expected {}{hint}",
                g.name(),
                g.data_type(),
                w.data_type()
            )));
        }
        let column = batch.column(i);
        if column.null_count() > 0 {
            let row = (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0);
            return Err(Error::Schema(format!(
                "column `{}` has a null at row {row}; every column is required",
                g.name()
            )));
        }
    }
    let ts = batch.column(0).as_primitive::<TimestampNanosecondType>();
    if let Some((row, &t)) = ts
        .values()
        .iter()
        .enumerate()
        .find(|(_, &t)| !(MIN_TS..MAX_TS).contains(&t))
    {
        return Err(Error::Schema(format!(
            "timestamp {t} at row {row} is out of range (accepted: 1970-01-01 to 2200-01-01 UTC, in nanoseconds)"
        )));
    }
    Ok(())
}

/// Returns `batch` with the mode's exact schema (drops field metadata and
/// nullability differences) after [`validate`] passed.
pub fn conform(mode: Mode, batch: &RecordBatch) -> Result<RecordBatch> {
    RecordBatch::try_new(mode.schema(), batch.columns().to_vec())
        .map_err(|e| Error::arrow("conforming a batch to the store schema", e))
}

/// The column names of a schema.
pub fn column_names(schema: &Schema) -> Vec<&str> {
    schema.fields().iter().map(|f| f.name().as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray, TimestampNanosecondArray};

    fn batch(ts: Vec<i64>, tz: Option<&str>) -> RecordBatch {
        let n = ts.len();
        let ts = TimestampNanosecondArray::from(ts).with_timezone_opt(tz.map(|s| s.to_string()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", ts.data_type().clone(), false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
            Field::new("volume", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(ts),
                Arc::new(StringArray::from(vec!["A"; n])),
                Arc::new(Float64Array::from(vec![1.0; n])),
                Arc::new(Float64Array::from(vec![2.0; n])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn accepts_utc_nanoseconds() {
        validate(Mode::Simple, &batch(vec![1, 2], Some("UTC"))).unwrap();
    }

    #[test]
    fn refuses_other_time_zones_and_naive_timestamps() {
        let e = validate(Mode::Simple, &batch(vec![1], Some("+01:00"))).unwrap_err();
        assert!(e.to_string().contains("UTC"), "{e}");
        let e = validate(Mode::Simple, &batch(vec![1], None)).unwrap_err();
        assert!(e.to_string().contains("no time zone"), "{e}");
    }

    #[test]
    fn refuses_out_of_range_timestamps_naming_the_row() {
        let e = validate(Mode::Simple, &batch(vec![5, -1], Some("UTC"))).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        let e = validate(Mode::Simple, &batch(vec![MAX_TS], Some("UTC"))).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn refuses_wrong_column_count_for_the_mode() {
        let e = validate(Mode::Trading, &batch(vec![1], Some("UTC"))).unwrap_err();
        assert!(e.to_string().contains("expected 8 columns"), "{e}");
    }
}
