//! Importing real metrics instead of generated ones.
//!
//! Three text formats are read, each into the canonical [`Dataset`]:
//!
//! | format | a line looks like | one series is |
//! |--------|-------------------|---------------|
//! | [`csv`] | `ods_0000,1377721380,0.0` (`series,timestamp,value`) | one `series` value; `name{k="v"}` is parsed into name and labels |
//! | [`prometheus`] | `http_requests_total{code="200"} 1027 1395066363000` | metric name + labels |
//! | [`influx`] | `cpu,host=a usage_idle=93.2,usage_user=4i 1700000000000000000` | `measurement_field` + tags, per numeric field |
//! | [`wide`] | `2024-01-02T14:30:00Z,AAPL,185.64,100,buy` (header `timestamp,symbol,price,size,side`) | a column + `symbol`, per value column: trades, OHLCV bars |
//!
//! Samples are grouped by series and sorted by time (stable, so duplicates
//! keep their file order). Any line that cannot be read stops the import with
//! an error naming the file, the line number and the reason.

pub mod csv;
pub mod influx;
pub mod prometheus;
pub mod wide;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Dataset, Labels, Series, SeriesKey};

/// Which text format an input file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// Long CSV: `series,timestamp,value`.
    Csv,
    /// Prometheus text exposition format (or OpenMetrics) with timestamps.
    Prometheus,
    /// InfluxDB line protocol.
    Influx,
    /// Wide CSV with a header: timestamp, symbol, value columns (trades, OHLCV bars).
    Wide,
}

impl ImportFormat {
    /// Guesses the format from the file extension.
    pub fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "prom" | "om" | "openmetrics" => Some(Self::Prometheus),
            "lp" | "influx" | "line" => Some(Self::Influx),
            _ => None,
        }
    }
}

/// The unit of integer timestamps in an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimestampUnit {
    /// Decide from the magnitude of the first timestamp.
    Auto,
    #[value(name = "s")]
    Seconds,
    #[value(name = "ms")]
    Millis,
    #[value(name = "us")]
    Micros,
    #[value(name = "ns")]
    Nanos,
}

impl TimestampUnit {
    /// Nanoseconds per unit (`Auto` has none).
    pub fn nanos(self) -> Option<i64> {
        match self {
            Self::Auto => None,
            Self::Seconds => Some(1_000_000_000),
            Self::Millis => Some(1_000_000),
            Self::Micros => Some(1_000),
            Self::Nanos => Some(1),
        }
    }

    /// The unit a Unix timestamp of this magnitude is most likely in
    /// (seconds until the year 5138, then ms, us, ns).
    pub fn detect(magnitude: u128) -> Self {
        match magnitude {
            m if m < 100_000_000_000 => Self::Seconds,
            m if m < 100_000_000_000_000 => Self::Millis,
            m if m < 100_000_000_000_000_000 => Self::Micros,
            _ => Self::Nanos,
        }
    }
}

/// Options for an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// `None`: guess from the extension, then from the content.
    pub format: Option<ImportFormat>,
    pub timestamp_unit: TimestampUnit,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: None,
            timestamp_unit: TimestampUnit::Auto,
        }
    }
}

/// Reads `path` into a dataset.
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64,
        reason: format!("not UTF-8 text: {e}"),
    })?;
    let format = options
        .format
        .or_else(|| ImportFormat::from_extension(path))
        .unwrap_or_else(|| sniff(text));
    // A .csv whose header names a symbol column is a wide file, unless told otherwise.
    let header = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let format = match (options.format, format) {
        (None, ImportFormat::Csv) if wide::looks_wide(header) => ImportFormat::Wide,
        (_, f) => f,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = format!("imported: {name} ({format:?})").to_lowercase();
    let mut builder = DatasetBuilder::new(path);
    match format {
        ImportFormat::Csv => csv::parse(text, options.timestamp_unit, &mut builder)?,
        ImportFormat::Prometheus => prometheus::parse(text, options.timestamp_unit, &mut builder)?,
        ImportFormat::Influx => influx::parse(text, options.timestamp_unit, &mut builder)?,
        ImportFormat::Wide => wide::parse(text, options.timestamp_unit, &mut builder)?,
    }
    builder.finish(source)
}

/// Guesses a format from the first non-comment line.
fn sniff(text: &str) -> ImportFormat {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    if first.contains('=') && !first.contains('{') {
        ImportFormat::Influx
    } else if first.contains(',') && !first.contains(' ') {
        ImportFormat::Csv
    } else {
        ImportFormat::Prometheus
    }
}

/// Groups parsed samples into series.
pub struct DatasetBuilder {
    path: PathBuf,
    index: HashMap<SeriesKey, usize>,
    series: Vec<Series>,
    /// Unit chosen for timestamps (set by the first timestamp when `Auto`).
    unit: Option<i64>,
}

impl DatasetBuilder {
    pub fn new(path: &Path) -> Self {
        DatasetBuilder {
            path: path.to_path_buf(),
            index: HashMap::new(),
            series: Vec::new(),
            unit: None,
        }
    }

    /// An error for line `line` of the file being imported.
    pub fn error(&self, line: usize, reason: impl Into<String>) -> Error {
        Error::Parse {
            path: self.path.clone(),
            line: line as u64,
            reason: reason.into(),
        }
    }

    /// Adds one sample.
    pub fn push(&mut self, key: SeriesKey, timestamp: i64, value: f64) {
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.series.push(Series::new(key.clone()));
                self.index.insert(key, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        self.series[i].push(timestamp, value);
    }

    /// Converts a timestamp token to nanoseconds. `Auto` fixes the unit from
    /// the first timestamp of the file, so one file never mixes units.
    pub fn timestamp(&mut self, token: &str, unit: TimestampUnit, line: usize) -> Result<i64> {
        let (negative, digits) = match token.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, token),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) {
            return Err(self.error(line, format!("timestamp {token:?} is not a number")));
        }
        let whole: u128 = int
            .parse()
            .map_err(|_| self.error(line, format!("timestamp {token:?} is out of range")))?;
        let scale = match (self.unit, unit.nanos()) {
            (_, Some(n)) => n,
            (Some(n), None) => n,
            (None, None) => {
                let n = TimestampUnit::detect(whole).nanos().unwrap_or(1);
                self.unit = Some(n);
                n
            }
        };
        self.unit = Some(scale);
        // Fractional digits beyond nanosecond resolution are refused, not rounded.
        let mut frac_ns: u128 = 0;
        let mut place = scale as u128;
        for b in frac.bytes() {
            place /= 10;
            let d = (b - b'0') as u128;
            if place == 0 {
                if d != 0 {
                    return Err(self.error(
                        line,
                        format!("timestamp {token:?} is finer than a nanosecond"),
                    ));
                }
                continue;
            }
            frac_ns += d * place;
        }
        let ns = whole * scale as u128 + frac_ns;
        let ns = i64::try_from(ns).map_err(|_| {
            self.error(
                line,
                format!("timestamp {token:?} overflows i64 nanoseconds"),
            )
        })?;
        Ok(if negative { -ns } else { ns })
    }

    /// Sorts every series by time and returns the dataset.
    pub fn finish(mut self, source: String) -> Result<Dataset> {
        if self.series.is_empty() {
            return Err(self.error(0, "no samples found (empty file or only comments)"));
        }
        for s in &mut self.series {
            s.sort_by_time();
        }
        Ok(Dataset::new(source, self.series))
    }
}

/// Parses a float the way Go's `strconv.ParseFloat` (and so Prometheus) does,
/// including `NaN`, `+Inf`, `-Inf` and `Inf`.
pub fn parse_float(token: &str) -> Option<f64> {
    match token {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

/// Parses a Prometheus series selector `name{k="v",...}` (or a bare `name`),
/// returning the key and the rest of the input after it.
pub fn parse_series_selector(text: &str) -> std::result::Result<(SeriesKey, &str), String> {
    let end = text
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(text.len());
    let name = &text[..end];
    if name.is_empty() {
        return Err("missing metric name".into());
    }
    if !name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    }) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = Labels::new();
    let mut rest = &text[end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            // Skip separators and spaces.
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c == ' ' {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.peek() {
                None => return Err("unterminated label set: missing '}'".into()),
                Some(&(i, '}')) => {
                    rest = &body[i + 1..];
                    break;
                }
                _ => {}
            }
            let start = chars.peek().map(|&(i, _)| i).unwrap_or(body.len());
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or("label set not closed by '}' (or a label without '=')")?;
            let lname = body[start..eq].trim();
            if lname.is_empty() || !lname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid label name {lname:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {lname:?}: value must be in double quotes"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        other => {
                            return Err(format!(
                                "label {lname:?}: bad escape \\{}",
                                other.unwrap_or(' ')
                            ))
                        }
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("label {lname:?}: unterminated value"));
            }
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("label {lname:?} appears twice"));
            }
        }
    }
    Ok((SeriesKey::new(name, labels), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parses_labels_and_escapes() {
        let (k, rest) =
            parse_series_selector(r#"http_total{code="200",path="/a\"b\\c",} 5"#).unwrap();
        assert_eq!(k.metric, "http_total");
        assert_eq!(k.labels["code"], "200");
        assert_eq!(k.labels["path"], "/a\"b\\c");
        assert_eq!(rest, " 5");
        let (k, _) = parse_series_selector("up").unwrap();
        assert!(k.labels.is_empty());
    }

    #[test]
    fn selector_errors_say_why() {
        for (text, want) in [
            ("{a=\"b\"} 1", "missing metric name"),
            ("m{a=b} 1", "double quotes"),
            ("m{a=\"b\" 1", "not closed by '}'"),
            ("m{a=\"1\",a=\"2\"} 1", "twice"),
            ("9m 1", "invalid metric name"),
        ] {
            let err = parse_series_selector(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn timestamp_units_are_detected_once_per_file() {
        let mut b = DatasetBuilder::new(Path::new("x"));
        assert_eq!(
            b.timestamp("1377721380", TimestampUnit::Auto, 1).unwrap(),
            1_377_721_380_000_000_000
        );
        // Same file, later line: still seconds.
        assert_eq!(
            b.timestamp("60", TimestampUnit::Auto, 2).unwrap(),
            60_000_000_000
        );
        let mut b = DatasetBuilder::new(Path::new("x"));
        assert_eq!(
            b.timestamp("1700000000123", TimestampUnit::Auto, 1)
                .unwrap(),
            1_700_000_000_123_000_000
        );
        assert_eq!(
            b.timestamp("1.5", TimestampUnit::Seconds, 1).unwrap(),
            1_500_000_000
        );
        assert!(b
            .timestamp("1.0000000001", TimestampUnit::Seconds, 1)
            .is_err());
        assert!(b.timestamp("abc", TimestampUnit::Seconds, 1).is_err());
        assert!(b
            .timestamp("99999999999999999999", TimestampUnit::Seconds, 1)
            .is_err());
    }

    #[test]
    fn parse_float_accepts_prometheus_specials() {
        assert!(parse_float("NaN").unwrap().is_nan());
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("x"), None);
    }
}
