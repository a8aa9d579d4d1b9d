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
pub mod rfc4180;
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
    /// Prometheus text exposition format (or OpenMetrics, when it ends in `# EOF`).
    Prometheus,
    /// OpenMetrics 1.0 text: must end in `# EOF`; timestamps in seconds.
    #[value(name = "openmetrics")]
    OpenMetrics,
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
            "prom" => Some(Self::Prometheus),
            "om" | "openmetrics" => Some(Self::OpenMetrics),
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
    let known = options
        .format
        .or_else(|| ImportFormat::from_extension(path));
    let format = known.unwrap_or_else(|| sniff(text));
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
    let parsed = match format {
        ImportFormat::Csv => csv::parse(text, options.timestamp_unit, &mut builder),
        ImportFormat::Prometheus => prometheus::parse(text, options.timestamp_unit, &mut builder),
        ImportFormat::OpenMetrics => {
            prometheus::parse_openmetrics(text, options.timestamp_unit, &mut builder)
        }
        ImportFormat::Influx => influx::parse(text, options.timestamp_unit, &mut builder),
        ImportFormat::Wide => wide::parse(text, options.timestamp_unit, &mut builder),
    };
    // A guessed format that does not read: say it was a guess.
    match (parsed, known) {
        (Err(Error::Parse { path, line, reason }), None) => {
            return Err(Error::Parse {
                path,
                line,
                reason: format!(
                    "{reason} (read as {} by a guess from its first line: name the file \
                     .csv, .prom, .om or .lp, or pass --format)",
                    format!("{format:?}").to_lowercase()
                ),
            })
        }
        (other, _) => other?,
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
    if first.starts_with('"') {
        ImportFormat::Csv
    } else if first.starts_with('{') || first.contains('{') && first.contains('}') {
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

    /// An error for line `line` of the file being imported (0: the whole
    /// file). A reason longer than a screen (it may quote a huge input
    /// line) is cut.
    pub fn error(&self, line: usize, reason: impl Into<String>) -> Error {
        const MAX: usize = 400;
        let mut reason = reason.into();
        if reason.chars().count() > MAX {
            reason = reason.chars().take(MAX).collect::<String>() + "…";
        }
        Error::Parse {
            path: self.path.clone(),
            line: line as u64,
            reason,
        }
    }

    /// Adds one sample read at `line`. A label with an empty value is the
    /// same as no label (as Prometheus has it): it is left out of the key,
    /// so `up` and `up{job=""}` are one series.
    pub fn push(&mut self, mut key: SeriesKey, timestamp: i64, value: f64, line: usize) {
        key.labels.retain(|_, v| !v.is_empty());
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
        let scale = match (self.unit, unit.nanos()) {
            (_, Some(n)) => n,
            (Some(n), None) => n,
            (None, None) => {
                let int = token.trim_start_matches(['-', '+']);
                let int = int.split_once('.').map_or(int, |(i, _)| i);
                let magnitude = int.parse::<u128>().unwrap_or(u128::MAX);
                TimestampUnit::detect(magnitude).nanos().unwrap_or(1)
            }
        };
        let ns = decimal_to_nanos(token, scale).map_err(|why| {
            let unit = match scale {
                1 => "ns",
                1_000 => "us",
                1_000_000 => "ms",
                _ => "s",
            };
            self.error(
                line,
                format!("timestamp {} {why} (read as {unit})", abbreviate(token)),
            )
        })?;
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
            return Err(self.error(
                0,
                "no samples found (the file is empty, holds only comments, or no numeric values)",
            ));
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

/// Converts a decimal number of units of `scale` nanoseconds (`-1.5` with
/// scale 10^9 is -1,500,000,000 ns) exactly, with checked arithmetic.
///
/// Errors (a reason to follow the token): not a number; finer than a
/// nanosecond; outside the `i64` nanosecond range (1677-09-21 to
/// 2262-04-11).
pub fn decimal_to_nanos(token: &str, scale: i64) -> std::result::Result<i64, String> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token.strip_prefix('+').unwrap_or(token)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return Err("is not a number".into());
    }
    let out_of_range = || {
        "is out of range (nanoseconds since 1970 must fit in 64 bits: 1677-09-21 to 2262-04-11)"
            .to_string()
    };
    let int = int.trim_start_matches('0');
    let whole: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| out_of_range())?
    };
    // Fractional digits beyond nanosecond resolution are refused, not rounded.
    let mut frac_ns: u128 = 0;
    let mut place = scale as u128;
    for b in frac.bytes() {
        place /= 10;
        let d = (b - b'0') as u128;
        if place == 0 {
            if d != 0 {
                return Err("is finer than a nanosecond".into());
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
    ns.and_then(|n| i64::try_from(n).ok())
        .ok_or_else(out_of_range)
}

/// `token` quoted for an error message, cut after 40 characters.
pub fn abbreviate(token: &str) -> String {
    if token.chars().count() <= 40 {
        format!("{token:?}")
    } else {
        format!("{:?}…", token.chars().take(40).collect::<String>())
    }
}

/// Why `token` is not a sample value: out of range, or not a number.
pub fn value_error(token: &str) -> String {
    let looks_numeric = token
        .trim_start_matches(['+', '-'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && token.parse::<f64>().is_ok();
    if looks_numeric {
        format!(
            "value {} is out of the range of a 64-bit float",
            abbreviate(token)
        )
    } else {
        format!("value {} is not a number", abbreviate(token))
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
    // Far beyond any double either way; keeps the arithmetic below in range.
    let exp = exp.clamp(-1 << 40, 1 << 40);
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
                e2 = e2.saturating_sub(4);
            }
        } else {
            sticky |= d != 0;
            if !is_frac {
                e2 = e2.saturating_add(4);
            }
        }
    }
    if m == 0 {
        return Some(0.0);
    }
    // Value = m * 2^e2 (+ sticky). Normalize so that bit 63 is set.
    let lead = m.leading_zeros() as i64;
    m <<= lead;
    e2 = e2.saturating_sub(lead);
    // The value is m / 2^63 * 2^(e2 + 63); its unbiased exponent:
    let unbiased = e2.saturating_add(63);
    if unbiased > 1023 {
        return None;
    }
    // Bits to drop from the 64-bit m: 11 for a normal number, more below 2^-1022.
    let shift = if unbiased >= -1022 {
        11
    } else {
        (-1011i64).saturating_sub(unbiased)
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
    fn parse_float_takes_go_spellings() {
        for t in ["NaN", "nan", "nAn", "NAN"] {
            assert!(parse_float(t).unwrap().is_nan(), "{t}");
        }
        for t in [
            "+Inf",
            "Inf",
            "inf",
            "INF",
            "+inf",
            "Infinity",
            "+infinity",
            "INFINITY",
        ] {
            assert_eq!(parse_float(t), Some(f64::INFINITY), "{t}");
        }
        for t in ["-Inf", "-inf", "-Infinity", "-INFINITY"] {
            assert_eq!(parse_float(t), Some(f64::NEG_INFINITY), "{t}");
        }
        for (t, v) in [
            ("1e3", 1000.0),
            ("-0.5", -0.5),
            (".5", 0.5),
            ("1.", 1.0),
            ("+1", 1.0),
            ("6.02E23", 6.02e23),
            ("1e-400", 0.0),
            ("0x1p-2", 0.25),
            ("0x1.8p1", 3.0),
            ("-0X1P+0", -1.0),
            ("0x.8p1", 1.0),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("0x1p-1074", 5e-324),
        ] {
            assert_eq!(parse_float(t).map(f64::to_bits), Some(v.to_bits()), "{t}");
        }
        assert_eq!(
            parse_float("-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        for t in [
            "x",
            "",
            "+",
            "-",
            "1e400",
            "-1e400",
            "+NaN",
            "-nan",
            "infinite",
            "0x1",
            "0x1p",
            "0xp1",
            "1_000",
            " 1",
            "1 ",
            "0x1p1024",
            "0x1.fffffffffffff8p1023",
            "1e",
            "--1",
            "1.2.3",
        ] {
            assert_eq!(parse_float(t).map(f64::to_bits), None, "{t:?}");
        }
    }

    #[test]
    fn hex_floats_round_to_nearest_even() {
        let one_ulp = f64::from_bits(1f64.to_bits() + 1);
        let two_ulp = f64::from_bits(1f64.to_bits() + 2);
        for (t, v) in [
            ("0x1.00000000000008p0", 1.0),      // half an ulp: ties to even (down)
            ("0x1.00000000000018p0", two_ulp),  // half an ulp above odd: up
            ("0x1.000000000000081p0", one_ulp), // above half: up
            ("0x1.0000000000000800000000001p0", one_ulp), // half plus a far digit: up
            ("0x1.00000000000007ffffffffffp0", 1.0), // below half: down
            ("0x1p-1075", 0.0),                 // half the smallest subnormal: even
            ("0x1.8p-1075", 5e-324),            // above half of it: up
            ("0x1p-1080", 0.0),
            ("0x0.0000000000001p-1022", 5e-324),
            ("0x1.ffffffffffffffp-1023", f64::MIN_POSITIVE), // rounds into the normals
        ] {
            assert_eq!(parse_float(t).map(f64::to_bits), Some(v.to_bits()), "{t}");
        }
    }

    /// `%a`-style spelling of a finite double (as C's printf writes it).
    fn hex_of(v: f64) -> String {
        let bits = v.to_bits();
        let sign = if bits >> 63 == 1 { "-" } else { "" };
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        if exp == 0 {
            format!("{sign}0x0.{frac:013x}p-1022")
        } else {
            format!("{sign}0x1.{frac:013x}p{}", exp - 1023)
        }
    }

    proptest::proptest! {
        #[test]
        fn every_finite_double_reads_back_from_decimal_and_hex(bits in proptest::prelude::any::<u64>()) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            let hex = hex_of(v);
            proptest::prop_assert_eq!(parse_float(&hex).map(f64::to_bits), Some(bits), "{}", hex);
            let dec = format!("{v:e}");
            proptest::prop_assert_eq!(parse_float(&dec).map(f64::to_bits), Some(bits), "{}", dec);
        }

        #[test]
        fn parse_float_never_panics(text in "\\PC{0,30}") {
            let _ = parse_float(&text);
        }
    }

    #[test]
    fn sniffing_the_format() {
        for (first, want) in [
            ("ods_0000,1377721380,0.0", ImportFormat::Csv),
            ("\"cpu{host=\"\"a\"\"}\",1,2", ImportFormat::Csv),
            ("cpu,host=a v=1 1", ImportFormat::Influx),
            ("up 1 2", ImportFormat::Prometheus),
            ("{\"a.b\"} 1 2", ImportFormat::Prometheus),
            ("m{a=\"b\"} 1 2", ImportFormat::Prometheus),
        ] {
            assert_eq!(sniff(&format!("# c\n\n{first}\n")), want, "{first}");
        }
    }

    #[test]
    fn conflicting_duplicates_name_both_lines_and_identical_ones_vanish() {
        let key = || SeriesKey::new("c_total", Default::default());
        let build = |policy: DuplicatePolicy| {
            let options = ImportOptions {
                duplicates: policy,
                ..ImportOptions::default()
            };
            let mut b = DatasetBuilder::new(Path::new("d.prom"), &options);
            b.push(key(), 10, 1.0, 1);
            b.push(key(), 5, 7.0, 2);
            b.push(key(), 10, 1.0, 3); // identical to line 1
            b.push(key(), 10, 2.0, 4); // conflicts with line 1
            b.push(key(), 20, 3.0, 5);
            b.finish("t".into())
        };
        let err = build(DuplicatePolicy::Error).unwrap_err().to_string();
        assert!(
            err.starts_with("d.prom:4: c_total: value 2 conflicts with value 1 at line 1"),
            "{err}"
        );
        assert!(err.contains("--duplicates first"), "{err}");
        let (d, summary) = build(DuplicatePolicy::First).unwrap();
        assert_eq!(d.series[0].timestamps, vec![5, 10, 20]);
        assert_eq!(d.series[0].values, vec![7.0, 1.0, 3.0]);
        assert_eq!(summary.conflicting_duplicates, 2);
        let (d, _) = build(DuplicatePolicy::Last).unwrap();
        assert_eq!(d.series[0].values, vec![7.0, 2.0, 3.0]);
        // NaN duplicates are identical when their bits are.
        let mut b = DatasetBuilder::new(Path::new("n.prom"), &ImportOptions::default());
        b.push(key(), 1, f64::NAN, 1);
        b.push(key(), 1, f64::NAN, 2);
        let (d, summary) = b.finish("t".into()).unwrap();
        assert_eq!(d.series[0].len(), 1);
        assert_eq!(summary.identical_duplicates, 1);
    }

    #[test]
    fn missing_timestamps_take_the_default_or_say_how() {
        let mut b = DatasetBuilder::new(Path::new("s.prom"), &ImportOptions::default());
        let err = b.missing_timestamp(3).unwrap_err().to_string();
        assert!(
            err.contains("s.prom:3:") && err.contains("--default-timestamp"),
            "{err}"
        );
        let options = ImportOptions {
            default_timestamp: Some(42),
            ..ImportOptions::default()
        };
        let mut b = DatasetBuilder::new(Path::new("s.prom"), &options);
        assert_eq!(b.missing_timestamp(3).unwrap(), 42);
    }

    #[test]
    fn timestamps_never_wrap() {
        let mut b = DatasetBuilder::new(Path::new("x"), &ImportOptions::default());
        for (token, unit) in [
            ("340282366920938463463374607431769", TimestampUnit::Millis),
            (
                "340282366920938463463374607431768211456",
                TimestampUnit::Nanos,
            ),
            ("9223372036854775808", TimestampUnit::Nanos),
            ("-9223372036854775809", TimestampUnit::Nanos),
            ("9223372037", TimestampUnit::Seconds),
            ("9223372036854776", TimestampUnit::Millis),
        ] {
            let err = b.timestamp(token, unit, 7).unwrap_err().to_string();
            assert!(
                err.contains("x:7: timestamp") && err.contains("out of range"),
                "{token}: {err}"
            );
        }
        assert_eq!(
            b.timestamp("-9223372036854775808", TimestampUnit::Nanos, 1)
                .unwrap(),
            i64::MIN
        );
        assert_eq!(
            b.timestamp("9223372036854775807", TimestampUnit::Nanos, 1)
                .unwrap(),
            i64::MAX
        );
        assert_eq!(
            b.timestamp("-1.5", TimestampUnit::Seconds, 1).unwrap(),
            -1_500_000_000
        );
    }
}
