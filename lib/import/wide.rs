//! Wide CSV: one row per event, a timestamp, a symbol and numeric columns.
//!
//! ```text
//! timestamp,symbol,price,size,side
//! 2024-01-02T14:30:00.123Z,AAPL,185.64,100,buy
//! "2024-01-02T14:30:00.125Z","ACME, Inc.","370.10",25,sell
//! ```
//!
//! This is how trades and OHLCV bars usually come (`date,symbol,open,high,
//! low,close,volume`), from exchanges, brokers and spreadsheets. Records
//! are read by the `csv` crate, as RFC 4180 says (quoted fields with
//! commas, `""` for a quote, LF or CRLF); a byte-order mark, which
//! spreadsheets write at the start of "CSV UTF-8", is dropped. The header
//! is required. The timestamp column is the one named `timestamp`, `time`,
//! `ts`, `date` or `datetime`; the symbol column `symbol` or `ticker` (in
//! any letter case). Every other column becomes one series per symbol,
//! named exactly as its header says (trimmed; two columns of one name are
//! an error) and labelled `symbol="..."` with the symbol as written
//! (spaces are part of a field in RFC 4180). Lines starting with `#` are
//! comments; quoting the RFC does not allow is an error. Values are numbers (Go's `ParseFloat` spellings);
//! `buy`/`b` and `sell`/`s` (any case) are +1 and -1; an empty field is a
//! missing sample. Timestamps are integers (in the unit given or detected)
//! or dates and date-times (RFC 3339 / ISO 8601, UTC unless an offset is
//! written; in a column named `date`, 8 digits are an ISO 8601 basic date,
//! `20240102`); an impossible date (`2023-02-29`) is an error naming the
//! column.

use super::rfc4180::Records;
use super::{parse_float, value_error, DatasetBuilder, TimestampUnit};
use crate::error::Result;
use crate::model::{Labels, SeriesKey};

const TIMESTAMP_COLUMNS: [&str; 5] = ["timestamp", "time", "ts", "date", "datetime"];
const SYMBOL_COLUMNS: [&str; 2] = ["symbol", "ticker"];

/// The first record of `text` (its header), if it reads as CSV.
fn header(text: &str) -> Option<::csv::StringRecord> {
    let mut record = ::csv::StringRecord::new();
    match Records::new(text.as_bytes(), true).read(&mut record) {
        Ok(true) => Some(record),
        _ => None,
    }
}

/// Whether a file's header looks like a wide file (it names a symbol column).
pub fn looks_wide(text: &str) -> bool {
    header(text).is_some_and(|h| {
        h.iter()
            .any(|c| SYMBOL_COLUMNS.contains(&c.trim().to_ascii_lowercase().as_str()))
    })
}

fn value(field: &str) -> Option<f64> {
    match field.to_ascii_lowercase().as_str() {
        "buy" | "b" => Some(1.0),
        "sell" | "s" => Some(-1.0),
        _ => parse_float(field),
    }
}

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    let mut records = Records::new(text.as_bytes(), true);
    let mut record = ::csv::StringRecord::new();
    fn next(
        records: &mut Records<&[u8]>,
        record: &mut ::csv::StringRecord,
        builder: &DatasetBuilder,
    ) -> Result<bool> {
        records
            .read(record)
            .map_err(|e| builder.error(e.line as usize, e.reason))
    }
    if !next(&mut records, &mut record, builder)? {
        return Ok(());
    }
    let header_line = record.position().map_or(1, |p| p.line() as usize);
    let columns: Vec<String> = record.iter().map(|c| c.trim().to_string()).collect();
    let find = |names: &[&str]| {
        columns
            .iter()
            .position(|c| names.contains(&c.to_ascii_lowercase().as_str()))
    };
    let ts_col = find(&TIMESTAMP_COLUMNS).ok_or_else(|| {
        builder.error(
            header_line,
            "no timestamp column (timestamp, time, ts, date or datetime)",
        )
    })?;
    let sym_col = find(&SYMBOL_COLUMNS)
        .ok_or_else(|| builder.error(header_line, "no symbol column (symbol or ticker)"))?;
    let fields: Vec<usize> = (0..columns.len())
        .filter(|&i| i != ts_col && i != sym_col)
        .collect();
    if fields.is_empty() {
        return Err(builder.error(
            header_line,
            "no value columns besides the timestamp and the symbol",
        ));
    }
    for (n, &i) in fields.iter().enumerate() {
        if columns[i].is_empty() {
            return Err(builder.error(header_line, format!("column {} has no name", i + 1)));
        }
        if let Some(&j) = fields[..n].iter().find(|&&j| columns[j] == columns[i]) {
            return Err(builder.error(
                header_line,
                format!(
                    "columns {} and {} are both named {:?}: one series each cannot share a name",
                    j + 1,
                    i + 1,
                    columns[i]
                ),
            ));
        }
    }
    // A `date` column of 8 digits is an ISO 8601 basic date (20240102), as
    // market data writes it, not 20 million seconds after 1970.
    let basic_dates = columns[ts_col].eq_ignore_ascii_case("date");
    while next(&mut records, &mut record, builder)? {
        let line_no = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != columns.len() {
            return Err(builder.error(
                line_no,
                format!("{} fields, the header has {}", record.len(), columns.len()),
            ));
        }
        let ts = record[ts_col].trim();
        let digits = ts.strip_prefix('-').unwrap_or(ts);
        let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let basic_date = basic_dates && ts.len() == 8 && ts.bytes().all(|b| b.is_ascii_digit());
        let t = if ts.is_empty() {
            builder.missing_timestamp(line_no)?
        } else if numeric && !basic_date {
            builder.timestamp(ts, unit, line_no)?
        } else {
            crate::time::parse_timestamp(ts)
                .map_err(|why| builder.error(line_no, format!("{}: {why}", columns[ts_col])))?
        };
        // Text is kept as written: RFC 4180 makes spaces part of a field.
        let symbol = &record[sym_col];
        if symbol.trim().is_empty() {
            return Err(builder.error(line_no, "empty symbol"));
        }
        let labels = Labels::from([("symbol".to_string(), symbol.to_string())]);
        for &col in &fields {
            let cell = record[col].trim();
            if cell.is_empty() {
                continue;
            }
            let v = value(cell).ok_or_else(|| {
                builder.error(line_no, format!("{}: {}", columns[col], value_error(cell)))
            })?;
            builder.push(
                SeriesKey::new(columns[col].clone(), labels.clone()),
                t,
                v,
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
        let mut b = DatasetBuilder::new(Path::new("trades.csv"), &ImportOptions::default());
        parse(text, TimestampUnit::Auto, &mut b)?;
        Ok(b.finish("t".into())?.0)
    }

    #[test]
    fn trades_become_series_per_symbol_and_column() {
        let d = run(concat!(
            "timestamp,symbol,price,size,side\n",
            "2024-01-02T14:30:00.123Z,AAPL,185.64,100,buy\n",
            "2024-01-02T14:30:00.125Z,MSFT,370.10,25,SELL\n",
            "2024-01-02T14:30:01Z,AAPL,185.65,,b\n",
        ))
        .unwrap();
        let names: Vec<_> = d.series.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(names.len(), 6);
        assert!(names.contains(&"price{symbol=\"AAPL\"}".to_string()));
        let size = d
            .series
            .iter()
            .find(|s| s.key.metric == "size" && s.key.labels["symbol"] == "AAPL")
            .unwrap();
        assert_eq!(size.len(), 1, "the empty size is a missing sample");
        let side = d
            .series
            .iter()
            .find(|s| s.key.metric == "side" && s.key.labels["symbol"] == "MSFT")
            .unwrap();
        assert_eq!(side.values, vec![-1.0]);
    }

    #[test]
    fn ohlcv_bars_with_dates_and_integer_timestamps() {
        let d = run("date,ticker,Open,High,Low,Close,Volume\n2024-01-02,SPY,472.16,473.67,470.49,472.65,123623700\n").unwrap();
        assert_eq!(d.series.len(), 5);
        assert_eq!(d.series[0].timestamps[0], 1_704_153_600_000_000_000);
        let d = run("ts,symbol,close\n1704153600,SPY,1.5\n").unwrap();
        assert_eq!(d.series[0].timestamps[0], 1_704_153_600_000_000_000);
    }

    #[test]
    fn malformed_rows_name_the_line() {
        for (text, want) in [
            ("symbol,price\nA,1\n", "no timestamp column"),
            ("time,price\n1,2\n", "no symbol column"),
            ("time,symbol,price\n1,A\n", "trades.csv:2: 2 fields"),
            (
                "time,symbol,price\n1,A,abc\n",
                "trades.csv:2: price: value \"abc\" is not a number",
            ),
            (
                "time,symbol,price\nnoon,A,1\n",
                "trades.csv:2: time: \"noon\" is not a date-time",
            ),
        ] {
            let err = run(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn header_detection() {
        assert!(looks_wide("timestamp,symbol,price"));
        assert!(looks_wide("Date,Ticker,Close"));
        assert!(looks_wide("\"timestamp\",\"symbol\",\"price\"\r\n"));
        assert!(!looks_wide("series,timestamp,value"));
    }

    #[test]
    fn quoted_fields_follow_rfc_4180() {
        let d = run(concat!(
            "timestamp,symbol,price,size\r\n",
            "\"2024-01-02T14:30:00Z\",\"ACME, Inc.\",\"10.5\",100\r\n",
            "2024-01-02T14:30:01Z,\"Q \"\"Quote\"\" Co\",11,\"\"\r\n",
        ))
        .unwrap();
        let price = |sym: &str| {
            d.series
                .iter()
                .find(|s| s.key.metric == "price" && s.key.labels["symbol"] == sym)
                .unwrap()
                .clone()
        };
        assert_eq!(price("ACME, Inc.").values, vec![10.5]);
        assert_eq!(
            price("ACME, Inc.").timestamps,
            vec![1_704_205_800_000_000_000]
        );
        assert_eq!(price("Q \"Quote\" Co").values, vec![11.0]);
        assert_eq!(
            d.series.len(),
            3,
            "the empty quoted size is a missing sample"
        );
    }

    #[test]
    fn comments_duplicate_columns_basic_dates_and_spaces() {
        let d = run("# exported by a broker\ndate,symbol,close\n# a comment\n20240102, SPY ,1\n")
            .unwrap();
        assert_eq!(d.series[0].key.labels["symbol"], " SPY ");
        assert_eq!(d.series[0].timestamps, vec![1_704_153_600_000_000_000]);
        let err = run("timestamp,symbol,price,price\n1,A,1,2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trades.csv:1: columns 3 and 4 are both named \"price\""),
            "{err}"
        );
        let err = run("time,symbol,p\n1,\"AC\"ME,1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trades.csv:2: field 2: 'M' after the closing quote"),
            "{err}"
        );
        // Outside a `date` column, 8 digits are a Unix time.
        let d = run("ts,symbol,p\n20240102,A,1\n").unwrap();
        assert_eq!(d.series[0].timestamps, vec![20_240_102_000_000_000]);
    }

    #[test]
    fn column_names_are_kept_as_written() {
        let d = run("Date,Ticker,Adj Close,vol.24h\n2024-01-02,SPY,1,2\n").unwrap();
        let names: Vec<_> = d.series.iter().map(|s| s.key.metric.as_str()).collect();
        assert_eq!(names, vec!["Adj Close", "vol.24h"]);
    }

    #[test]
    fn impossible_dates_are_errors_naming_the_column() {
        let err = run("date,symbol,close\n2023-02-29,SPY,1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("trades.csv:2: date: \"2023-02-29\""), "{err}");
        assert!(err.contains("day"), "{err}");
        let d = run("date,symbol,close\n2024-02-29,SPY,1\n").unwrap();
        assert_eq!(d.series[0].timestamps, vec![1_709_164_800_000_000_000]);
    }
}
