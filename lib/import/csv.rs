//! Long CSV: `series,timestamp,value`, one sample a line.
//!
//! This is the layout of the Beringei test set (`ods_0000,1377721380,0.0`).
//! A first line that does not start with a number in its second field is a
//! header and is skipped. `series` is a metric name, or a Prometheus selector
//! `name{label="value"}` (quote the field, CSV-style, if it holds commas).
//! Timestamps are integers (or decimals) in the unit given or detected.

use super::{parse_float, selector::parse_series_field, DatasetBuilder, TimestampUnit};
use crate::error::Result;

/// Splits one CSV line into fields, honouring double quotes (`""` is a quote).
fn split_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::with_capacity(3);
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            ',' if !quoted => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_fields(line).map_err(|e| builder.error(line_no, e))?;
        if fields.len() != 3 {
            return Err(builder.error(
                line_no,
                format!(
                    "expected 3 fields (series,timestamp,value), found {}",
                    fields.len()
                ),
            ));
        }
        let (series, ts, value) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if line_no == 1 && !ts.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            continue; // header
        }
        let key = parse_series_field(series)
            .map_err(|e| builder.error(line_no, format!("series {series:?}: {e}")))?;
        let t = builder.timestamp(ts, unit, line_no)?;
        let v = parse_float(value)
            .ok_or_else(|| builder.error(line_no, format!("value {value:?} is not a number")))?;
        builder.push(key, t, v, line_no);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ImportOptions;
    use std::path::Path;

    fn run(text: &str) -> Result<crate::Dataset> {
        let mut b = DatasetBuilder::new(Path::new("t.csv"), &ImportOptions::default());
        parse(text, TimestampUnit::Auto, &mut b)?;
        Ok(b.finish("t".into())?.0)
    }

    #[test]
    fn reads_beringei_layout_with_header() {
        let d = run("series,timestamp,value\nods_1,1377721440,2.5\nods_1,1377721380,1.0\nods_0,1377721380,0.0\n").unwrap();
        assert_eq!(d.series.len(), 2);
        assert_eq!(d.series[1].key.metric, "ods_1");
        assert_eq!(
            d.series[1].timestamps,
            vec![1_377_721_380_000_000_000, 1_377_721_440_000_000_000]
        );
        assert_eq!(d.series[1].values, vec![1.0, 2.5]);
    }

    #[test]
    fn quoted_selectors_carry_labels() {
        let d = run("\"cpu{host=\"\"a\"\",core=\"\"0\"\"}\",1700000000000,3.5\n").unwrap();
        assert_eq!(d.series[0].key.labels["host"], "a");
        assert_eq!(d.series[0].timestamps[0], 1_700_000_000_000_000_000);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, want) in [
            ("a,1,2\nb,2\n", "t.csv:2: expected 3 fields"),
            ("a,1,x\n", "t.csv:1: value \"x\""),
            ("a,1,1\na,zz,1\n", "t.csv:2: timestamp \"zz\""),
            ("\"a,1,1\n", "unterminated"),
            ("", "no samples"),
        ] {
            let err = run(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
