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
    let mut s = String::with_capacity(30);
    write_ns(&mut s, ns);
    s
}

/// Appends [`fmt_ns`]'s text to `out` without allocating: every `i64`
/// falls in years 1677 to 2262, so the fields have fixed widths.
pub fn write_ns(out: &mut String, ns: i64) {
    const NS: i64 = 1_000_000_000;
    let secs = ns.div_euclid(NS);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = squeeze::time::civil_from_days(days);
    let mut buf = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y.clamp(0, 9999) as u64);
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(d));
    put(11, 2, (rem / 3600) as u64);
    put(14, 2, (rem % 3600 / 60) as u64);
    put(17, 2, (rem % 60) as u64);
    put(20, 9, ns.rem_euclid(NS) as u64);
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The text the previous formatter made: the shared library's
    /// millisecond timestamp, cut after the seconds, then nine digits.
    fn reference(ns: i64) -> String {
        let base = squeeze::time::format_timestamp(ns);
        format!("{}{:09}Z", &base[..20], ns.rem_euclid(1_000_000_000))
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_and_around_the_epoch() {
        for ns in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            951_782_400_000_000_000,
            i64::MAX,
        ] {
            assert_eq!(fmt_ns(ns), reference(ns), "{ns}");
        }
        assert_eq!(fmt_ns(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(fmt_ns(i64::MAX), "2262-04-11T23:47:16.854775807Z");
    }

    proptest! {
        #[test]
        fn write_ns_equals_the_reference(ns in any::<i64>(), prefix in "[a-z]{0,3}") {
            let mut out = prefix.clone();
            write_ns(&mut out, ns);
            prop_assert_eq!(out, format!("{prefix}{}", reference(ns)));
        }
    }
}
