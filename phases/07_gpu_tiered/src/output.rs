//! Rendering result rows as text and JSON (the command line and the HTTP API
//! share it). Timestamps print as UTC with all nine fractional digits;
//! floats print in their shortest round-trip form.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde_json::{Map, Value};

/// UTC nanoseconds as `2024-01-01T00:00:00.123456789Z`.
pub fn fmt_ns(ns: i64) -> String {
    let base = squeeze::time::format_timestamp(ns);
    // format_timestamp prints milliseconds; keep its date and time, then all
    // nine digits.
    format!(
        "{}{:09}Z",
        base.get(..20).unwrap_or(&base),
        ns.rem_euclid(1_000_000_000)
    )
}

/// A value of `col` at `row` as text.
pub fn cell(col: &dyn Array, row: usize) -> String {
    match col.data_type() {
        DataType::Timestamp(..) => fmt_ns(col.as_primitive::<TimestampNanosecondType>().value(row)),
        DataType::Utf8 => col.as_string::<i32>().value(row).to_string(),
        DataType::Float64 => {
            let mut s = format!("{:?}", col.as_primitive::<Float64Type>().value(row));
            if s.ends_with(".0") {
                s.truncate(s.len() - 2);
            }
            s
        }
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).to_string(),
        _ => String::new(),
    }
}

/// A value of `col` at `row` as JSON: numbers as numbers (non-finite floats
/// as null, JSON has no NaN), timestamps and strings as strings.
pub fn json_value(col: &dyn Array, row: usize) -> Value {
    match col.data_type() {
        DataType::Float64 => {
            serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(row))
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).into(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).into(),
        _ => cell(col, row).into(),
    }
}

/// Row `row` of `batch` as a JSON object.
pub fn json_row(batch: &RecordBatch, row: usize) -> Map<String, Value> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().clone(), json_value(c.as_ref(), row)))
        .collect()
}

/// Appends every row of `batch` to `out` as NDJSON.
pub fn ndjson(batch: &RecordBatch, out: &mut Vec<u8>) {
    for r in 0..batch.num_rows() {
        // Serializing a map of plain values cannot fail.
        if serde_json::to_writer(&mut *out, &Value::Object(json_row(batch, r))).is_ok() {
            out.push(b'\n');
        }
    }
}
