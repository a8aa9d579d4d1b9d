//! Wide CSV: one row per event, a timestamp, a symbol and numeric columns.
//!
//! ```text
//! timestamp,symbol,price,size,side
//! 2024-01-02T14:30:00.123Z,AAPL,185.64,100,buy
//! 2024-01-02T14:30:00.125Z,MSFT,370.10,25,sell
//! ```
//!
//! This is how trades and OHLCV bars usually come (`date,symbol,open,high,
//! low,close,volume`). The header is required. The timestamp column is the
//! one named `timestamp`, `time`, `ts`, `date` or `datetime`; the symbol
//! column `symbol` or `ticker`. Every other column becomes one series per
//! symbol, named after the column (lowercased, other characters as `_`) and
//! labelled `symbol="..."`. Values are numbers; `buy`/`b` and `sell`/`s`
//! (any case) are +1 and -1; an empty field is a missing sample. Timestamps
//! are integers (in the unit given or detected) or UTC dates and date-times.

use super::{parse_float, DatasetBuilder, TimestampUnit};
use crate::error::Result;
use crate::model::{Labels, SeriesKey};

/// Whether a header row looks like a wide file (it names a symbol column).
pub fn looks_wide(text: &str) -> bool {
    let header = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    header.split(',').any(|c| {
        matches!(
            c.trim().trim_matches('"').to_ascii_lowercase().as_str(),
            "symbol" | "ticker"
        )
    })
}

fn metric_name(column: &str) -> String {
    let mut name: String = column
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

fn value(field: &str) -> Option<f64> {
    match field.to_ascii_lowercase().as_str() {
        "buy" | "b" => Some(1.0),
        "sell" | "s" => Some(-1.0),
        _ => parse_float(field),
    }
}

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((header_no, header)) = lines.next() else {
        return Ok(());
    };
    let columns: Vec<&str> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    let find = |names: &[&str]| {
        columns
            .iter()
            .position(|c| names.contains(&c.to_ascii_lowercase().as_str()))
    };
    let ts_col = find(&["timestamp", "time", "ts", "date", "datetime"]).ok_or_else(|| {
        builder.error(
            header_no + 1,
            "no timestamp column (timestamp, time, ts, date or datetime)",
        )
    })?;
    let sym_col = find(&["symbol", "ticker"])
        .ok_or_else(|| builder.error(header_no + 1, "no symbol column (symbol or ticker)"))?;
    let fields: Vec<(usize, String)> = columns
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != ts_col && i != sym_col)
        .map(|(i, c)| (i, metric_name(c)))
        .collect();
    if fields.is_empty() {
        return Err(builder.error(
            header_no + 1,
            "no value columns besides the timestamp and the symbol",
        ));
    }
    for (i, line) in lines {
        let line_no = i + 1;
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(builder.error(
                line_no,
                format!("{} fields, the header has {}", cells.len(), columns.len()),
            ));
        }
        let ts = cells[ts_col];
        let digits = ts.strip_prefix('-').unwrap_or(ts);
        let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let t = if numeric {
            builder.timestamp(ts, unit, line_no)?
        } else {
            crate::time::parse_timestamp(ts)
                .map_err(|why| builder.error(line_no, format!("{}: {why}", columns[ts_col])))?
        };
        let symbol = cells[sym_col].trim_matches('"');
        if symbol.is_empty() {
            return Err(builder.error(line_no, "empty symbol"));
        }
        let labels = Labels::from([("symbol".to_string(), symbol.to_string())]);
        for (col, metric) in &fields {
            let cell = cells[*col];
            if cell.is_empty() {
                continue;
            }
            let v = value(cell).ok_or_else(|| {
                builder.error(
                    line_no,
                    format!("{}: {cell:?} is not a number", columns[*col]),
                )
            })?;
            builder.push(
                SeriesKey::new(metric.clone(), labels.clone()),
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
                "trades.csv:2: price: \"abc\"",
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
        assert!(!looks_wide("series,timestamp,value"));
    }
}
