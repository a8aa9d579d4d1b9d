//! Files into record batches: CSV files (RFC 4180, read by the `csv`
//! crate: quoted fields, CRLF, a byte-order mark) with a header naming the
//! store's columns in order, and Parquet files of the store's columns. Used
//! by the command line's `ingest` and by ingestion jobs
//! ([`jobs`](super::jobs)). Timestamps are nanoseconds or date-times
//! (`2024-01-02T03:04:05.123Z`, UTC unless an offset is written; an
//! impossible date is an error); numbers are read as Go's `ParseFloat`
//! does (`NaN`, `+Inf`). Errors name the file, the line and the column,
//! and never quote the file's contents.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::schema::{Mode, UTC};

/// Reads a CSV file of the store's columns into batches of `batch_rows`.
///
/// Records are read by the `csv` crate as RFC 4180 says: quoted fields
/// (`"ACME, Inc."`, `""` for a quote), LF or CRLF line ends, blank lines
/// skipped; a UTF-8 byte-order mark (spreadsheets' "CSV UTF-8") is
/// dropped; quoting the RFC does not allow (`"1"2`) is an error
/// (`squeeze::import::rfc4180`). Text fields are kept as written. The header must name the store's columns in order (any letter
/// case, surrounding spaces ignored). Errors name the file and line.
pub fn read_csv(
    path: &Path,
    mode: Mode,
    batch_rows: usize,
    f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    read_csv_as(path, path, mode, batch_rows, f)
}

/// [`read_csv`], naming the file `shown` in errors (a job over HTTP shows
/// its path inside the import directory, not the server's).
pub fn read_csv_as(
    real: &Path,
    path: &Path,
    mode: Mode,
    batch_rows: usize,
    mut f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let file = std::fs::File::open(real).map_err(|e| Error::io(path, e))?;
    let mut input = std::io::BufReader::new(file);
    // Skip a byte-order mark, if any.
    if input
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(b"\xEF\xBB\xBF")
    {
        input.consume(3);
    }
    let mut records = squeeze::import::rfc4180::Records::new(input, false);
    let schema = mode.schema();
    let want: Vec<&str> = crate::schema::column_names(&schema);
    let bad = |line: u64, msg: String| {
        Error::InvalidArgument(format!("{}:{line}: {msg}", path.display()))
    };
    let csv_err = |e: squeeze::import::rfc4180::RecordError| match e.io {
        Some(io) => Error::io(path, io),
        None => bad(e.line, e.reason),
    };
    let mut record = csv::StringRecord::new();
    if !records.read(&mut record).map_err(csv_err)? {
        return Err(bad(1, "empty file, expected a header".into()));
    }
    let got: Vec<String> = record
        .iter()
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    if got != want {
        // Say where, not what: the file's text is never quoted.
        let what = match got.iter().zip(&want).position(|(g, w)| g != w) {
            Some(i) => format!("column {} is not `{}`", i + 1, want[i]),
            None => format!("{} columns", got.len()),
        };
        return Err(bad(
            1,
            format!(
                "the header must be `{}` for {} mode; {what}",
                want.join(","),
                mode.name()
            ),
        ));
    }
    let n = want.len();
    let mut cols = CsvColumns::default();
    while records.read(&mut record).map_err(csv_err)? {
        let lineno = record.position().map_or(0, |p| p.line());
        if record.len() != n {
            return Err(bad(
                lineno,
                format!("{} fields, expected {n}", record.len()),
            ));
        }
        // Text fields are kept as written (RFC 4180: spaces belong to the
        // field); numbers and times are trimmed where they are read.
        let fields: Vec<&str> = record.iter().collect();
        cols.push(&fields, mode).map_err(|m| bad(lineno, m))?;
        if cols.len() == batch_rows {
            let batch = std::mem::take(&mut cols).finish(mode)?;
            if !f(batch)? {
                return Ok(());
            }
        }
    }
    if cols.len() > 0 {
        f(cols.finish(mode)?)?;
    }
    Ok(())
}

#[derive(Default)]
struct CsvColumns {
    ts: Vec<i64>,
    symbol: Vec<String>,
    price: Vec<f64>,
    volume: Vec<f64>,
    side: Vec<String>,
    exchange: Vec<String>,
    trade_id: Vec<i64>,
    flags: Vec<i32>,
}

impl CsvColumns {
    fn len(&self) -> usize {
        self.ts.len()
    }

    fn push(&mut self, f: &[&str], mode: Mode) -> std::result::Result<(), String> {
        // Errors name the column and say what is wrong, never the text.
        let ts = match f[0].trim().parse::<i64>() {
            Ok(v) => v,
            Err(_) => squeeze::time::parse_timestamp(f[0]).map_err(|why| {
                format!(
                    "timestamp: {} (write 2024-01-02T03:04:05Z or integer nanoseconds)",
                    date_reason(&why)
                )
            })?,
        };
        let num = |name: &str, s: &str| {
            let s = s.trim();
            squeeze::import::parse_float(s).ok_or_else(|| {
                if s.parse::<f64>().is_ok() {
                    format!("{name}: out of the range of a 64-bit float")
                } else {
                    format!("{name}: not a number")
                }
            })
        };
        self.ts.push(ts);
        self.symbol.push(f[1].to_string());
        self.price.push(num("price", f[2])?);
        self.volume.push(num("volume", f[3])?);
        if mode == Mode::Trading {
            self.side.push(f[4].to_string());
            self.exchange.push(f[5].to_string());
            self.trade_id.push(
                f[6].trim()
                    .parse()
                    .map_err(|_| "trade_id: not an integer".to_string())?,
            );
            self.flags.push(
                f[7].trim()
                    .parse()
                    .map_err(|_| "flags: not a 32-bit integer".to_string())?,
            );
        }
        Ok(())
    }

    fn finish(self, mode: Mode) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(self.ts).with_timezone(UTC)),
            Arc::new(StringArray::from(self.symbol)),
            Arc::new(Float64Array::from(self.price)),
            Arc::new(Float64Array::from(self.volume)),
        ];
        if mode == Mode::Trading {
            columns.push(Arc::new(StringArray::from(self.side)));
            columns.push(Arc::new(StringArray::from(self.exchange)));
            columns.push(Arc::new(Int64Array::from(self.trade_id)));
            columns.push(Arc::new(Int32Array::from(self.flags)));
        }
        RecordBatch::try_new(mode.schema(), columns).map_err(|e| Error::arrow("reading CSV", e))
    }
}

/// Why a date-time did not parse, without the text: the parser's messages
/// quote the input, so only the field it names (`parameter 'day'`, a word
/// of its own vocabulary) is kept. `2023-02-29` gives "the day is out of
/// range".
fn date_reason(why: &str) -> String {
    let field = why
        .split("parameter '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .filter(|f| f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    match field {
        Some(f) => format!("not a valid date-time: the {f} is out of range"),
        None if why.contains("out of range") => "out of range".to_string(),
        None => "not a date-time".to_string(),
    }
}

/// Reads a `.csv` or a `.parquet` file (by its extension) into batches of
/// `batch_rows`, naming it `shown` in errors while reading `real`; any other
/// extension is [`Error::InvalidArgument`].
pub fn read_file(
    real: &Path,
    shown: &Path,
    mode: Mode,
    batch_rows: usize,
    f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    match shown.extension().and_then(|e| e.to_str()) {
        Some("csv") => read_csv_as(real, shown, mode, batch_rows, f),
        Some("parquet") => read_parquet_as(real, shown, batch_rows, f),
        _ => Err(Error::InvalidArgument(format!(
            "{}: expected a .csv or .parquet file",
            shown.display()
        ))),
    }
}

/// Reads a Parquet file in batches of `batch_rows`.
pub fn read_parquet(
    path: &Path,
    batch_rows: usize,
    f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    read_parquet_as(path, path, batch_rows, f)
}

/// [`read_parquet`], naming the file `path` in errors while reading `real`.
pub fn read_parquet_as(
    real: &Path,
    path: &Path,
    batch_rows: usize,
    mut f: impl FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let file = std::fs::File::open(real).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(batch_rows).build())
        .map_err(|e| Error::parquet(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| Error::arrow(format!("reading {}", path.display()), e))?;
        if !f(batch)? {
            break;
        }
    }
    Ok(())
}

pub fn is_parquet(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "parquet")
}
