//! InfluxDB line protocol, read by InfluxData's own parser
//! (the `influxdb-line-protocol` crate, from InfluxDB IOx).
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! cpu,host=web-01,region=eu usage_user=12.5,usage_system=3.25,procs=153i 1700000000000000000
//! disk,path=C:\data used=1 1704067200000000000
//! ```
//!
//! Escapes are exactly those of InfluxData's line-protocol reference, as
//! its parser applies them: a backslash escapes a comma or a space in a
//! measurement, a comma, `=` or space in tag keys, tag values and field
//! keys, and a quote or backslash in string field values; a backslash
//! before any other character is a literal backslash (`C:\data` stays
//! `C:\data`). Lines starting with `#` are comments.
//!
//! Each numeric field becomes one series named `measurement_field`,
//! labelled with the tags (two measurement/field pairs that would make one
//! name, `cpu_usage idle` and `cpu usage_idle`, are an error). Floats, integers (`12i`) and unsigned integers
//! (`12u`) are numeric (integers beyond 2^53 are rounded to the nearest
//! `f64`); strings and booleans are skipped. Timestamps are nanoseconds
//! unless `--timestamp-unit` says otherwise; a line without one takes
//! `--default-timestamp` (InfluxDB would use its clock) or is an error.

use std::panic::{catch_unwind, AssertUnwindSafe};

use influxdb_line_protocol::{split_lines, FieldValue, ParsedLine};

use super::{DatasetBuilder, TimestampUnit};
use crate::error::Result;
use crate::model::{Labels, SeriesKey};

/// Parses one line with InfluxData's parser; a panic inside it (on bytes it
/// was never meant to see) becomes an error, not an abort.
fn parse_line(line: &str) -> std::result::Result<Option<ParsedLine<'_>>, String> {
    match catch_unwind(AssertUnwindSafe(|| {
        influxdb_line_protocol::parse_lines(line).next()
    })) {
        Ok(None) => Ok(None),
        Ok(Some(Ok(parsed))) => Ok(Some(parsed)),
        Ok(Some(Err(e))) => Err(format!("not valid line protocol: {e}")),
        Err(_) => Err("the line-protocol parser failed on this line".into()),
    }
}

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    let unit = match unit {
        TimestampUnit::Auto => TimestampUnit::Nanos,
        other => other,
    };
    // `cpu_usage idle=1` and `cpu usage_idle=2` would both be the series
    // `cpu_usage_idle`: which measurement and field made each name.
    let mut origin: std::collections::HashMap<String, (String, String, usize)> =
        std::collections::HashMap::new();
    let base = text.as_ptr() as usize;
    let (mut counted_to, mut line_no) = (0usize, 1usize);
    for line in split_lines(text) {
        // Line number of this line's first byte (a string field may hold newlines).
        let offset = line.as_ptr() as usize - base;
        line_no += text.as_bytes()[counted_to..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = offset;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let parsed = match parse_line(line) {
            Ok(Some(p)) => p,
            Ok(None) => continue, // blank or comment
            Err(why) => return Err(builder.error(line_no, why)),
        };
        let measurement = parsed.series.measurement.as_str();
        let mut labels = Labels::new();
        for (k, v) in parsed.series.tag_set.iter().flatten() {
            if labels
                .insert(k.as_str().to_string(), v.as_str().to_string())
                .is_some()
            {
                return Err(builder.error(line_no, format!("tag {:?} appears twice", k.as_str())));
            }
        }
        let t = match parsed.timestamp {
            Some(t) => builder.scale_timestamp(t, unit, line_no)?,
            None => builder.missing_timestamp(line_no)?,
        };
        let mut seen = std::collections::HashSet::new();
        for (k, v) in &parsed.field_set {
            if !seen.insert(k.as_str()) {
                return Err(builder.error(line_no, format!("field {:?} appears twice", k.as_str())));
            }
            let value = match v {
                // The parser reads `1e400` as infinity; InfluxDB (Go's
                // ParseFloat) refuses it as out of range, and so do we.
                FieldValue::F64(x) if !x.is_finite() => {
                    return Err(builder.error(
                        line_no,
                        format!(
                            "field {:?}: value is out of the range of a 64-bit float",
                            k.as_str()
                        ),
                    ))
                }
                FieldValue::F64(x) => *x,
                FieldValue::I64(x) => *x as f64,
                FieldValue::U64(x) => *x as f64,
                FieldValue::String(_) | FieldValue::Boolean(_) => continue,
            };
            let name = format!("{measurement}_{}", k.as_str());
            match origin.get(&name) {
                Some((m, f, first)) if m != measurement => {
                    return Err(builder.error(
                        line_no,
                        format!(
                            "measurement {measurement:?} field {:?} and measurement {m:?} field \
                             {f:?} (line {first}) would both be the series {name:?}",
                            k.as_str()
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    origin.insert(
                        name.clone(),
                        (measurement.to_string(), k.as_str().to_string(), line_no),
                    );
                }
            }
            let key = SeriesKey::new(name, labels.clone());
            builder.push(key, t, value, line_no);
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

    fn keys(d: &crate::Dataset) -> Vec<(String, Vec<(String, String)>)> {
        d.series
            .iter()
            .map(|s| {
                (
                    s.key.metric.clone(),
                    s.key.labels.clone().into_iter().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn each_numeric_field_is_a_series() {
        let d = run(concat!(
            "cpu,host=web-01,region=eu usage_user=12.5,procs=153i,state=\"ok\",alive=t 1700000000000000000\n",
            "cpu,region=eu,host=web-01 usage_user=13,procs=150i 1700000015000000000\n",
            "weird\\ name,tag\\,x=a\\ b value=1u 5\n",
        ))
        .unwrap();
        let host = vec![
            ("host".to_string(), "web-01".to_string()),
            ("region".to_string(), "eu".to_string()),
        ];
        assert_eq!(
            keys(&d),
            vec![
                ("cpu_procs".to_string(), host.clone()),
                ("cpu_usage_user".to_string(), host),
                (
                    "weird name_value".to_string(),
                    vec![("tag,x".to_string(), "a b".to_string())]
                ),
            ]
        );
        assert_eq!(d.series[1].values, vec![12.5, 13.0]);
        assert_eq!(d.series[1].timestamps[1], 1_700_000_015_000_000_000);
    }

    #[test]
    fn escapes_follow_the_line_protocol_reference() {
        // A backslash before anything but the escapable characters is literal.
        let d = run("disk,path=C:\\data used=1 1704067200000000000\n").unwrap();
        assert_eq!(d.series[0].key.labels["path"], "C:\\data");
        let d = run(concat!(
            "m\\,x\\ y,k\\=1=v\\,2\\=3\\ 4,dir=a\\b\\\\c f\\ 1=2,s=\"q\\\"\\\\\" 7\n",
            "h\\\"i v=1 8\n",
        ))
        .unwrap();
        assert_eq!(
            keys(&d),
            vec![
                ("h\\\"i_v".to_string(), vec![]),
                (
                    "m,x y_f 1".to_string(),
                    vec![
                        ("dir".to_string(), "a\\b\\c".to_string()),
                        ("k=1".to_string(), "v,2=3 4".to_string()),
                    ]
                ),
            ]
        );
    }

    #[test]
    fn a_string_field_may_hold_newlines_and_line_numbers_stay_right() {
        let d = run("log msg=\"a\nb\",v=1 1\n\ncpu v=2 2\n").unwrap();
        assert_eq!(d.series.len(), 2);
        let err = run("log msg=\"a\nb\",v=1 1\n\ncpu v=x 2\n").unwrap_err();
        assert!(err.to_string().contains("m.lp:4:"), "{err}");
    }

    #[test]
    fn label_free_series_and_timestamps_in_range() {
        let d = run("cpu v=1 1704067200000000000\n").unwrap();
        assert!(d.series[0].key.labels.is_empty());
        let mut b = DatasetBuilder::new(Path::new("m.lp"), &ImportOptions::default());
        let err = parse("cpu v=1 9000000000000\n", TimestampUnit::Seconds, &mut b).unwrap_err();
        assert!(err.to_string().contains("m.lp:1: timestamp"), "{err}");
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, want) in [
            ("cpu value=1\n", "m.lp:1: sample has no timestamp"),
            ("cpu value=1 1\ncpu value=abc 2\n", "m.lp:2: "),
            ("cpu,host value=1 1\n", "m.lp:1: "),
            ("cpu value=1 x\n", "m.lp:1: "),
            ("cpu nofield 1\n", "m.lp:1: "),
            ("cpu,a=1,a=2 v=1 1\n", "m.lp:1: "),
            ("cpu v=1,v=2 1\n", "m.lp:1: field \"v\" appears twice"),
            (
                "cpu_usage idle=1 1\ncpu usage_idle=2 2\n",
                "m.lp:2: measurement \"cpu\" field \"usage_idle\" and measurement \"cpu_usage\" field \"idle\" (line 1) would both be the series \"cpu_usage_idle\"",
            ),
            ("cpu v=inf 1\n", "m.lp:1: not valid line protocol"),
            (
                "cpu v=1e400 1\n",
                "m.lp:1: field \"v\": value is out of the range",
            ),
            (
                "cpu v=-1e400 1\n",
                "m.lp:1: field \"v\": value is out of the range",
            ),
        ] {
            let err = run(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn no_panic_on_arbitrary_text() {
        for text in [
            "\\",
            "a\\",
            "a b\\",
            "=",
            ",",
            "a,=b c=1",
            "a c=\"",
            "\u{0}\n\\\n\"",
            "a c=1 1 2",
        ] {
            let _ = run(text);
        }
    }
}
