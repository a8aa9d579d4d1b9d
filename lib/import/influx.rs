//! InfluxDB line protocol.
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! cpu,host=web-01,region=eu usage_user=12.5,usage_system=3.25,procs=153i 1700000000000000000
//! ```
//!
//! Each numeric field becomes one series named `measurement_field`, labelled
//! with the tags. Floats, integers (`12i`) and unsigned integers (`12u`) are
//! numeric (integers beyond 2^53 are rounded to the nearest `f64`); strings
//! and booleans are skipped. Backslash escapes commas, spaces and `=` in names
//! and tags. Timestamps are nanoseconds unless `--timestamp-unit` says
//! otherwise; a line without one is an error.

use super::{DatasetBuilder, TimestampUnit};
use crate::error::Result;
use crate::model::{Labels, SeriesKey};

/// Splits at unescaped `sep` outside double quotes, and unescapes `\x`.
fn split_unescaped(text: &str, sep: char, keep_quotes: bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if keep_quotes && quoted {
                        cur.push('\\');
                    }
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                if keep_quotes {
                    cur.push(c);
                }
            }
            c if c == sep && !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Splits a line into its three space-separated sections, respecting escapes and quotes.
fn sections(line: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(3);
    let bytes = line.as_bytes();
    let (mut start, mut quoted, mut i) = (0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            b' ' if !quoted => {
                if i > start {
                    out.push(&line[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < line.len() {
        out.push(&line[start..]);
    }
    out
}

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    let unit = match unit {
        TimestampUnit::Auto => TimestampUnit::Nanos,
        other => other,
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts = sections(line);
        let (series, fields, ts) = match parts.as_slice() {
            [s, f, t] => (*s, *f, *t),
            [_, _] => return Err(builder.error(line_no, "line has no timestamp")),
            _ => {
                return Err(builder.error(
                    line_no,
                    "expected `measurement[,tags] fields timestamp` separated by spaces",
                ))
            }
        };
        let mut name_tags = split_unescaped(series, ',', false).into_iter();
        let measurement = name_tags.next().unwrap_or_default();
        if measurement.is_empty() {
            return Err(builder.error(line_no, "missing measurement name"));
        }
        let mut labels = Labels::new();
        for tag in name_tags {
            let kv = split_unescaped(&tag, '=', false);
            match kv.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => {
                    if labels.insert(k.clone(), v.clone()).is_some() {
                        return Err(builder.error(line_no, format!("tag {k:?} appears twice")));
                    }
                }
                _ => return Err(builder.error(line_no, format!("tag {tag:?} is not key=value"))),
            }
        }
        let t = builder.timestamp(ts, unit, line_no)?;
        for field in split_unescaped(fields, ',', true) {
            let Some((k, v)) = field.split_once('=') else {
                return Err(builder.error(line_no, format!("field {field:?} is not key=value")));
            };
            if k.is_empty() {
                return Err(builder.error(line_no, "field with an empty name"));
            }
            let value = if v.starts_with('"') {
                if v.len() < 2 || !v.ends_with('"') {
                    return Err(builder.error(line_no, format!("field {k:?}: unterminated string")));
                }
                continue;
            } else if matches!(
                v,
                "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE"
            ) {
                continue;
            } else if let Some(int) = v.strip_suffix('i') {
                int.parse::<i64>().map(|x| x as f64).ok()
            } else if let Some(uint) = v.strip_suffix('u') {
                uint.parse::<u64>().map(|x| x as f64).ok()
            } else {
                v.parse::<f64>().ok().filter(|x| x.is_finite())
            };
            let value = value.ok_or_else(|| {
                builder.error(line_no, format!("field {k:?}: value {v:?} is not a number"))
            })?;
            builder.push(
                SeriesKey::new(format!("{measurement}_{k}"), labels.clone()),
                t,
                value,
                line_no,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ImportOptions;
    use std::path::Path;

    fn run(text: &str) -> Result<crate::Dataset> {
        let mut b = DatasetBuilder::new(Path::new("m.lp"), &ImportOptions::default());
        parse(text, TimestampUnit::Auto, &mut b)?;
        Ok(b.finish("t".into())?.0)
    }

    #[test]
    fn each_numeric_field_is_a_series() {
        let d = run(concat!(
            "cpu,host=web-01,region=eu usage_user=12.5,procs=153i,state=\"ok\",alive=t 1700000000000000000\n",
            "cpu,region=eu,host=web-01 usage_user=13,procs=150i 1700000015000000000\n",
            "weird\\ name,tag\\,x=a\\ b value=1u 5\n",
        ))
        .unwrap();
        let names: Vec<_> = d.series.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(
            names,
            vec![
                "cpu_procs{host=\"web-01\",region=\"eu\"}",
                "cpu_usage_user{host=\"web-01\",region=\"eu\"}",
                "weird name_value{tag,x=\"a b\"}",
            ]
        );
        assert_eq!(d.series[1].values, vec![12.5, 13.0]);
        assert_eq!(d.series[1].timestamps[1], 1_700_000_015_000_000_000);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, want) in [
            ("cpu value=1\n", "m.lp:1: line has no timestamp"),
            (
                "cpu value=1 1\ncpu value=abc 2\n",
                "m.lp:2: field \"value\"",
            ),
            ("cpu,host value=1 1\n", "tag \"host\" is not key=value"),
            ("cpu value=1 x\n", "timestamp \"x\""),
            ("cpu nofield 1\n", "is not key=value"),
        ] {
            let err = run(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
