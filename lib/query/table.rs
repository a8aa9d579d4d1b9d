//! Query results: typed cells, and their rendering as a table, CSV or JSON.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::time::NANOS_PER_SECOND;

/// One cell of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    /// Unix nanoseconds, shown as an RFC 3339 UTC timestamp.
    Time(i64),
}

impl Value {
    /// A total order for ORDER BY: NULL first, numbers by value (NaN after
    /// every number), text by bytes, then by kind.
    pub fn order(&self, other: &Value) -> Ordering {
        use Value::*;
        fn rank(v: &Value) -> u8 {
            match v {
                Null => 0,
                Int(_) | Float(_) => 1,
                Time(_) => 2,
                Text(_) => 3,
            }
        }
        match (self, other) {
            (Int(a), Int(b)) | (Time(a), Time(b)) => a.cmp(b),
            (Text(a), Text(b)) => a.cmp(b),
            (Int(_) | Float(_), Int(_) | Float(_)) => {
                let (a, b) = (self.as_f64(), other.as_f64());
                match (a.is_nan(), b.is_nan()) {
                    (false, false) => a.total_cmp(&b),
                    (x, y) => x.cmp(&y),
                }
            }
            _ => rank(self).cmp(&rank(other)),
        }
    }

    fn as_f64(&self) -> f64 {
        match self {
            Value::Int(i) | Value::Time(i) => *i as f64,
            Value::Float(f) => *f,
            _ => f64::NAN,
        }
    }

    /// The cell as text: floats in their shortest round-trip form.
    pub fn render(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Text(s) => s.clone(),
            Value::Time(t) => format_time(*t),
        }
    }

    fn json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) if f.is_finite() => out.push_str(&format_float(*f)),
            // JSON has no NaN or infinity: write them as strings, like phase 01.
            Value::Float(f) => {
                let _ = write!(out, "\"{}\"", format_float(*f));
            }
            Value::Text(s) => json_string(s, out),
            Value::Time(t) => json_string(&format_time(*t), out),
        }
    }
}

/// Shortest text that parses back to the same float; NaN, +Inf, -Inf.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        let mut b = ryu::Buffer::new();
        let s = b.format_finite(f);
        s.strip_suffix(".0").unwrap_or(s).to_string()
    }
}

/// RFC 3339 UTC with milliseconds, or nanoseconds when the time needs them.
pub fn format_time(ns: i64) -> String {
    let ms = crate::time::format_timestamp(ns);
    let sub = ns.rem_euclid(NANOS_PER_SECOND);
    if sub % 1_000_000 == 0 {
        ms
    } else {
        format!("{}{:09}Z", &ms[..ms.len() - 4], sub)
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A result: named columns and rows of cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// How a result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table with borders, for people.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON object per row (NDJSON).
    Json,
}

impl Table {
    /// Renders in `format`.
    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Table => self.pretty(),
            OutputFormat::Csv => self.csv(),
            OutputFormat::Json => self.json(),
        }
    }

    /// A comfy-table with right-aligned numbers.
    pub fn pretty(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(self.columns.clone());
        for row in &self.rows {
            t.add_row(row.iter().map(|v| {
                let cell = comfy_table::Cell::new(v.render());
                if matches!(v, Value::Int(_) | Value::Float(_)) {
                    cell.set_alignment(comfy_table::CellAlignment::Right)
                } else {
                    cell
                }
            }));
        }
        t.to_string()
    }

    /// CSV: a header line, then one line per row; fields with commas,
    /// quotes or line breaks are quoted.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let field = |s: &str, out: &mut String| {
            if s.contains([',', '"', '\n', '\r']) {
                out.push('"');
                out.push_str(&s.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(s);
            }
        };
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(c, &mut out);
        }
        out.push('\n');
        for row in &self.rows {
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                field(&v.render(), &mut out);
            }
            out.push('\n');
        }
        out
    }

    /// NDJSON: one object per row, keys in column order.
    pub fn json(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            out.push('{');
            for (i, (c, v)) in self.columns.iter().zip(row).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(c, &mut out);
                out.push(':');
                v.json(&mut out);
            }
            out.push_str("}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            columns: vec!["t".into(), "host".into(), "v".into(), "n".into()],
            rows: vec![
                vec![
                    Value::Time(1_704_067_200_000_000_000),
                    Value::Text("a,\"b\"".into()),
                    Value::Float(f64::NAN),
                    Value::Int(3),
                ],
                vec![
                    Value::Time(1_704_067_200_000_000_001),
                    Value::Text("c".into()),
                    Value::Float(0.1),
                    Value::Null,
                ],
            ],
        }
    }

    #[test]
    fn csv_quotes_and_keeps_precision() {
        assert_eq!(
            sample().csv(),
            "t,host,v,n\n2024-01-01T00:00:00.000Z,\"a,\"\"b\"\"\",NaN,3\n\
             2024-01-01T00:00:00.000000001Z,c,0.1,\n"
        );
    }

    #[test]
    fn json_is_one_valid_object_per_row() {
        let text = sample().json();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.get("host").is_some());
        }
        assert!(text.contains("\"v\":\"NaN\""), "{text}");
        assert!(text.contains("\"n\":null"), "{text}");
    }

    #[test]
    fn order_puts_nan_after_numbers_and_null_first() {
        let mut v = [
            Value::Float(f64::NAN),
            Value::Float(2.0),
            Value::Null,
            Value::Int(1),
            Value::Float(-0.0),
        ];
        v.sort_by(Value::order);
        let shown: Vec<String> = v.iter().map(Value::render).collect();
        assert_eq!(shown, ["", "-0", "1", "2", "NaN"]);
    }
}
