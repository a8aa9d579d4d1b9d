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
pub mod selector;
pub mod wide;

pub use selector::parse_series_selector;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Dataset, MetricMeta, Series, SeriesKey};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimestampUnit {
    /// Decide from the magnitude of the first timestamp.
    #[default]
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

/// What to do with two samples of one series at the same timestamp whose
/// values differ (identical duplicates are always dropped, keeping one).
///
/// Prometheus refuses such a sample ("duplicate sample for timestamp");
/// so does the import by default, naming both lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DuplicatePolicy {
    /// Stop with an error naming both lines.
    #[default]
    Error,
    /// Keep the sample that comes first in the file.
    First,
    /// Keep the sample that comes last in the file.
    Last,
}

/// Options for an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `None`: guess from the extension, then from the content.
    pub format: Option<ImportFormat>,
    pub timestamp_unit: TimestampUnit,
    /// Conflicting samples at one timestamp.
    pub duplicates: DuplicatePolicy,
    /// Unix nanoseconds given to samples written without a timestamp (a
    /// live scrape of an exporter); `None` makes such a sample an error.
    pub default_timestamp: Option<i64>,
}

/// What an import did besides reading samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Samples dropped because an identical one (same series, timestamp and
    /// value bits) came before.
    pub identical_duplicates: u64,
    /// Samples dropped by `--duplicates first|last`.
    pub conflicting_duplicates: u64,
    /// Samples that took `--default-timestamp`.
    pub defaulted_timestamps: u64,
}

/// Reads `path` into a dataset.
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<Dataset> {
    Ok(import_file_summary(path, options)?.0)
}

/// Reads `path` into a dataset, and says what was dropped or defaulted.
pub fn import_file_summary(
    path: &Path,
    options: &ImportOptions,
) -> Result<(Dataset, ImportSummary)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    import_bytes(path, &bytes, options)
}

/// Reads the bytes of a file named `path` (the name is used for the format
/// guess and in errors).
pub fn import_bytes(
    path: &Path,
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<(Dataset, ImportSummary)> {
    // A byte-order mark (spreadsheets' "CSV UTF-8") is not content.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse {
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
    let format = match (options.format, format) {
        (None, ImportFormat::Csv) if wide::looks_wide(text) => ImportFormat::Wide,
        (_, f) => f,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = format!("imported: {name} ({format:?})").to_lowercase();
    let mut builder = DatasetBuilder::new(path, options);
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
    if first.starts_with('{') || first.contains("{") && first.contains('}') {
        ImportFormat::Prometheus
    } else if first.contains('=') {
        ImportFormat::Influx
    } else if first.contains(',') && !first.contains(' ') {
        ImportFormat::Csv
    } else {
        ImportFormat::Prometheus
    }
}

/// Groups parsed samples into series, remembering the line of each sample
/// so that conflicting duplicates can be named.
pub struct DatasetBuilder {
    path: PathBuf,
    index: HashMap<SeriesKey, usize>,
    series: Vec<Series>,
    /// Line number of every sample, parallel to `series[i].timestamps`.
    lines: Vec<Vec<u64>>,
    metadata: BTreeMap<String, MetricMeta>,
    /// Unit chosen for timestamps (set by the first timestamp when `Auto`).
    unit: Option<i64>,
    duplicates: DuplicatePolicy,
    default_timestamp: Option<i64>,
    summary: ImportSummary,
}

impl DatasetBuilder {
    pub fn new(path: &Path, options: &ImportOptions) -> Self {
        DatasetBuilder {
            path: path.to_path_buf(),
            index: HashMap::new(),
            series: Vec::new(),
            lines: Vec::new(),
            metadata: BTreeMap::new(),
            unit: None,
            duplicates: options.duplicates,
            default_timestamp: options.default_timestamp,
            summary: ImportSummary::default(),
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

    /// Adds one sample read at `line`.
    pub fn push(&mut self, key: SeriesKey, timestamp: i64, value: f64, line: usize) {
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.series.push(Series::new(key.clone()));
                self.lines.push(Vec::new());
                self.index.insert(key, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        self.series[i].push(timestamp, value);
        self.lines[i].push(line as u64);
    }

    /// The timestamp of a sample written without one at `line`:
    /// `--default-timestamp` when given, else an error that says it exists.
    pub fn missing_timestamp(&mut self, line: usize) -> Result<i64> {
        match self.default_timestamp {
            Some(t) => {
                self.summary.defaulted_timestamps += 1;
                Ok(t)
            }
            None => Err(self.error(
                line,
                "sample has no timestamp (a live scrape has none: pass \
                 --default-timestamp TIME, e.g. --default-timestamp now, to give them one)",
            )),
        }
    }

    /// Records what the file declares about `metric` (merged with what was
    /// declared before; a second, different declaration of the same field
    /// is an error).
    pub fn declare(&mut self, line: usize, metric: &str, meta: MetricMeta) -> Result<()> {
        let entry = self.metadata.entry(metric.to_string()).or_default();
        let mut clash = None;
        if let Some(kind) = meta.kind {
            if entry.kind.is_some_and(|k| k != kind) {
                clash = Some("TYPE");
            }
            entry.kind = Some(kind);
        }
        for (have, new, what) in [
            (&mut entry.unit, meta.unit, "UNIT"),
            (&mut entry.help, meta.help, "HELP"),
        ] {
            if !new.is_empty() {
                if !have.is_empty() && *have != new {
                    clash = clash.or(Some(what));
                }
                *have = new;
            }
        }
        match clash {
            Some(what) => Err(self.error(line, format!("{metric}: a second, different {what}"))),
            None => Ok(()),
        }
    }

    /// Converts a timestamp token (an integer or a decimal, in `unit`) to
    /// nanoseconds, with checked arithmetic: a time outside the `i64`
    /// nanosecond range (1677-09-21 to 2262-04-11) is an error naming the
    /// line. `Auto` fixes the unit from the first timestamp of the file, so
    /// one file never mixes units.
    pub fn timestamp(&mut self, token: &str, unit: TimestampUnit, line: usize) -> Result<i64> {
        let (negative, digits) = match token.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, token.strip_prefix('+').unwrap_or(token)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) {
            return Err(self.error(line, format!("timestamp {token:?} is not a number")));
        }
        let out_of_range = || {
            self.error(
                line,
                format!(
                    "timestamp {token:?} is out of range (nanoseconds since 1970 must fit \
                     in 64 bits: 1677-09-21 to 2262-04-11)"
                ),
            )
        };
        let whole: u128 = int.parse().map_err(|_| out_of_range())?;
        let scale = match (self.unit, unit.nanos()) {
            (_, Some(n)) => n,
            (Some(n), None) => n,
            (None, None) => TimestampUnit::detect(whole).nanos().unwrap_or(1),
        };
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
        let ns = whole
            .checked_mul(scale as u128)
            .and_then(|n| n.checked_add(frac_ns))
            .ok_or_else(out_of_range)?;
        let ns = if negative {
            0i128.checked_sub_unsigned(ns)
        } else {
            i128::try_from(ns).ok()
        };
        let ns = ns
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(out_of_range)?;
        self.unit = Some(scale);
        Ok(ns)
    }

    /// Scales an integer timestamp in `unit` (given by a parser that read
    /// the digits itself) to nanoseconds, checked like [`Self::timestamp`].
    pub fn scale_timestamp(&mut self, value: i64, unit: TimestampUnit, line: usize) -> Result<i64> {
        self.timestamp(&value.to_string(), unit, line)
    }

    /// Sorts every series by time, applies the duplicate policy and returns
    /// the dataset.
    pub fn finish(mut self, source: String) -> Result<(Dataset, ImportSummary)> {
        if self.series.is_empty() {
            return Err(self.error(0, "no samples found (empty file or only comments)"));
        }
        // The conflict found first in the file is the one reported.
        let mut conflict: Option<(u64, String)> = None;
        for (s, lines) in self.series.iter_mut().zip(&mut self.lines) {
            sort_with_lines(s, lines);
            let n = s.len();
            let (mut ts, mut vs, mut ls) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let mut i = 0;
            while i < n {
                let mut j = i + 1;
                while j < n && s.timestamps[j] == s.timestamps[i] {
                    j += 1;
                }
                let run = i..j;
                let first_bits = s.values[i].to_bits();
                let keep = if s.values[run.clone()]
                    .iter()
                    .all(|v| v.to_bits() == first_bits)
                {
                    self.summary.identical_duplicates += (j - i - 1) as u64;
                    i
                } else {
                    self.summary.conflicting_duplicates += (j - i - 1) as u64;
                    match self.duplicates {
                        DuplicatePolicy::First => i,
                        DuplicatePolicy::Last => j - 1,
                        DuplicatePolicy::Error => {
                            let k = (i + 1..j)
                                .find(|&k| s.values[k].to_bits() != first_bits)
                                .unwrap_or(i + 1);
                            if conflict.as_ref().is_none_or(|(l, _)| lines[k] < *l) {
                                conflict = Some((
                                    lines[k],
                                    format!(
                                        "{}: value {} conflicts with value {} at line {} for the same \
                                         timestamp {} ({}); pass --duplicates first or --duplicates \
                                         last to keep one",
                                        s.key,
                                        value_text(s.values[k]),
                                        value_text(s.values[i]),
                                        lines[i],
                                        s.timestamps[i],
                                        crate::time::format_timestamp(s.timestamps[i]),
                                    ),
                                ));
                            }
                            i
                        }
                    }
                };
                ts.push(s.timestamps[keep]);
                vs.push(s.values[keep]);
                ls.push(lines[keep]);
                i = j;
            }
            s.timestamps = ts;
            s.values = vs;
            *lines = ls;
        }
        if let Some((line, reason)) = conflict {
            return Err(self.error(line as usize, reason));
        }
        let dataset = Dataset::new(source, self.series).with_metadata(self.metadata);
        Ok((dataset, self.summary))
    }
}

/// A value as the text formats write it (`NaN`, `+Inf`, shortest decimal).
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// Sorts a series by time, stably (equal timestamps keep their file
/// order), carrying each sample's line number along.
fn sort_with_lines(s: &mut Series, lines: &mut Vec<u64>) {
    if s.timestamps.windows(2).all(|w| w[0] <= w[1]) {
        return;
    }
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by_key(|&i| s.timestamps[i]);
    s.timestamps = order.iter().map(|&i| s.timestamps[i]).collect();
    s.values = order.iter().map(|&i| s.values[i]).collect();
    *lines = order.iter().map(|&i| lines[i]).collect();
}

/// Parses a number the way Go's `strconv.ParseFloat(s, 64)` does, which is
/// how Prometheus, its exporters and most monitoring tools read and write
/// sample values:
/// - decimal (`1`, `-0.5`, `.5`, `1.`, `6.02e23`), correctly rounded;
/// - hexadecimal with a binary exponent (`0x1.8p1` = 3.0), as C99 `%a` writes;
/// - `Inf`, `Infinity` with an optional sign, and `NaN` without one, in any
///   letter case;
/// - a finite spelling whose value is beyond `f64` (`1e400`) is refused,
///   as Go reports it (`ErrRange`); one below the smallest subnormal
///   rounds to zero, as in Go.
///
/// `NaN` is the canonical quiet NaN (`0x7ff8000000000001` is Prometheus'
/// stale marker; it has no text spelling, so it cannot come from text).
pub fn parse_float(token: &str) -> Option<f64> {
    let (negative, body) = match token.as_bytes().first()? {
        b'+' => (false, &token[1..]),
        b'-' => (true, &token[1..]),
        _ => (false, token),
    };
    let sign = |v: f64| if negative { -v } else { v };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(sign(f64::INFINITY));
    }
    if body.eq_ignore_ascii_case("nan") {
        return (body.len() == token.len()).then_some(f64::NAN);
    }
    if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        return parse_hex_float(&body[2..]).map(sign);
    }
    // Rust's parser takes the same decimal syntax, but also the words
    // handled above: only digits, '.', an exponent and its sign get here.
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    body.parse::<f64>().ok().filter(|v| v.is_finite()).map(sign)
}

/// The part of a hexadecimal float after `0x`: hex digits with an optional
/// point, then a mandatory `p` and a decimal exponent of two. Rounds to
/// nearest, ties to even, into normal or subnormal `f64`.
fn parse_hex_float(text: &str) -> Option<f64> {
    let (mantissa, exp) = text.split_once(['p', 'P'])?;
    let exp: i64 = match exp.strip_prefix('+') {
        Some(e) if !e.starts_with('-') => e.parse().ok()?,
        _ => exp.parse().ok()?,
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // Gather the significant bits into a u64, with a sticky bit for the rest.
    let (mut m, mut e2, mut sticky) = (0u64, exp, false);
    for (i, c) in int.chars().chain(frac.chars()).enumerate() {
        let d = c.to_digit(16)? as u64;
        let is_frac = i >= int.len();
        if m >> 60 == 0 {
            m = (m << 4) | d;
            if is_frac {
                e2 = e2.checked_sub(4)?;
            }
        } else {
            sticky |= d != 0;
            if !is_frac {
                e2 = e2.checked_add(4)?;
            }
        }
    }
    if m == 0 {
        return Some(0.0);
    }
    // Value = m * 2^e2 (+ sticky). Normalize so that bit 63 is set.
    let lead = m.leading_zeros() as i64;
    m <<= lead;
    e2 -= lead;
    // The value is m / 2^63 * 2^(e2 + 63); its unbiased exponent:
    let unbiased = e2 + 63;
    if unbiased > 1023 {
        return None;
    }
    // Bits to drop from the 64-bit m: 11 for a normal number, more below 2^-1022.
    let shift = if unbiased >= -1022 {
        11
    } else {
        11 + (-1022 - unbiased)
    };
    if shift > 64 {
        return Some(0.0);
    }
    let kept = if shift == 64 { 0 } else { m >> shift };
    let rest_mask = if shift == 64 {
        u64::MAX
    } else {
        (1u64 << shift) - 1
    };
    let rest = m & rest_mask;
    let half = 1u64 << (shift - 1);
    let round_up = rest > half || (rest == half && (sticky || kept & 1 == 1));
    let mut kept = kept + u64::from(round_up);
    let mut biased = if unbiased >= -1022 {
        unbiased + 1023
    } else {
        0
    };
    if biased > 0 {
        // kept has 53 bits (or 54 after rounding up): 1.fraction.
        if kept >> 53 != 0 {
            kept >>= 1;
            biased += 1;
        }
        if biased >= 2047 {
            return None;
        }
        Some(f64::from_bits(
            ((biased as u64) << 52) | (kept & ((1u64 << 52) - 1)),
        ))
    } else {
        // Subnormal: kept is the fraction; rounding up may reach the smallest normal.
        Some(f64::from_bits(kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_units_are_detected_once_per_file() {
        let mut b = DatasetBuilder::new(Path::new("x"), &ImportOptions::default());
        assert_eq!(
            b.timestamp("1377721380", TimestampUnit::Auto, 1).unwrap(),
            1_377_721_380_000_000_000
        );
        // Same file, later line: still seconds.
        assert_eq!(
            b.timestamp("60", TimestampUnit::Auto, 2).unwrap(),
            60_000_000_000
        );
        let mut b = DatasetBuilder::new(Path::new("x"), &ImportOptions::default());
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
