//! Long CSV: `series,timestamp,value`, one sample a record.
//!
//! This is the layout of the Beringei test set (`ods_0000,1377721380,0.0`)
//! and of the CSVs that Performance Co-Pilot, Graphite or StatsD tools
//! write (`disk.all.read,1604880000,12`). Records are read by the `csv`
//! crate, as RFC 4180 says: fields may be quoted (`"a,b"`, with `""` for a
//! quote), records end in LF or CRLF, empty lines are skipped, and lines
//! starting with `#` are comments; a byte-order mark is dropped before, and
//! quoting the RFC does not allow (`"1"2`) is an error ([`super::rfc4180`]).
//!
//! A first record whose second field does not start with a digit or a sign
//! is a header and is skipped. `series` is a metric name of any characters
//! but `{` (dotted names are kept as they are), optionally followed by a
//! Prometheus label set `name{label="value"}`, or the Prometheus 3 form
//! `{"any name",label="value"}` (quote the field if it holds commas).
//! Timestamps are integers or decimals in the unit given or detected;
//! values are numbers as Go's `ParseFloat` reads them (`NaN`, `+Inf`,
//! `-Infinity` included).

use super::rfc4180::Records;
use super::{
    parse_float, selector::parse_series_field, value_error, DatasetBuilder, TimestampUnit,
};
use crate::error::Result;

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    let mut records = Records::new(text.as_bytes(), true);
    let mut record = ::csv::StringRecord::new();
    let mut first = true;
    loop {
        match records.read(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(builder.error(e.line as usize, e.reason)),
        }
        let line_no = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != 3 {
            return Err(builder.error(
                line_no,
                format!(
                    "expected 3 fields (series,timestamp,value), found {}",
                    record.len()
                ),
            ));
        }
        let (series, ts, value) = (record[0].trim(), record[1].trim(), record[2].trim());
        // A first record whose timestamp is a word is a header; an empty
        // timestamp is a sample without one, not a header.
        if std::mem::take(&mut first)
            && !ts.is_empty()
            && !ts.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
        {
            continue;
        }
        let key = parse_series_field(series)
            .map_err(|e| builder.error(line_no, format!("series {series:?}: {e}")))?;
        let t = if ts.is_empty() {
            builder.missing_timestamp(line_no)?
        } else {
            builder.timestamp(ts, unit, line_no)?
        };
        let v = parse_float(value).ok_or_else(|| builder.error(line_no, value_error(value)))?;
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
    fn crlf_blank_lines_and_comments() {
        let d = run("# exported\r\nseries,timestamp,value\r\n\r\na,1,1\r\n# mid\r\na,2,\"2\"\r\n")
            .unwrap();
        assert_eq!(d.series[0].values, vec![1.0, 2.0]);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, want) in [
            ("a,1,2\nb,2\n", "t.csv:2: expected 3 fields"),
            ("a,1,x\n", "t.csv:1: value \"x\""),
            ("a,1,1\na,zz,1\n", "t.csv:2: timestamp \"zz\""),
            (
                "a,1,1\n\"a,1,1\n",
                "t.csv:2: field 1: a quoted field that never closes",
            ),
            (
                "a,1,\"1\"2\n",
                "t.csv:1: field 3: '2' after the closing quote",
            ),
            ("", "no samples"),
            ("a,1,1e400\n", "t.csv:1: value \"1e400\""),
            ("up,1,1\nup,,2\n", "t.csv:2: sample has no timestamp"),
        ] {
            let err = run(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
