//! The Prometheus text exposition format 0.0.4, and OpenMetrics 1.0 text,
//! both with Prometheus 3's quoted UTF-8 names.
//!
//! ```text
//! # HELP http_requests_total The total number of HTTP requests.      Prometheus text 0.0.4
//! # TYPE http_requests_total counter
//! http_requests_total{method="post",code="200"} 1027 1395066363000   ms since 1970
//! {"disk.all.read",host="a"} 5 1395066363000                         a UTF-8 name
//!
//! # TYPE http_requests counter                                        OpenMetrics 1.0
//! # UNIT ... / # HELP ...
//! http_requests_total{code="200"} 5 1704067200 # {trace_id="abc"} 1 1704067199.5
//! # EOF                                                               seconds; an exemplar
//! ```
//!
//! **Which format.** A file with a line that is exactly `# EOF` is
//! OpenMetrics, and that line must be its last (one `\n` may follow);
//! any other file is the Prometheus text format. Timestamps are integer
//! milliseconds (an `int64`, as Go's `ParseInt` reads it) in the text
//! format, and seconds (`1520879607.789`, `1.5e3`) in OpenMetrics, unless
//! `--timestamp-unit` says otherwise. A timestamp is never converted here:
//! exponents are only rewritten digit for digit (`1.5e3` → `1500`) and the
//! [`DatasetBuilder`] converts with checked arithmetic. Values are read by
//! [`parse_float`] (Go's `ParseFloat`), except that, as in Prometheus,
//! hexadecimal floats and `_` separators are refused. A sample written
//! without a timestamp takes `--default-timestamp` (or is an error that
//! says so).
//!
//! **What is checked** (each rule is a test below):
//!
//! | rule | text 0.0.4 | OpenMetrics |
//! |------|:---:|:---:|
//! | selector grammar (see [`super::selector`]); blanks between tokens | yes | no blanks |
//! | `# TYPE`/`# HELP` at most once per name, TYPE before the name's samples | yes | yes (and `# UNIT`) |
//! | a family's lines together; a metric's and a point's samples together, in time order | no[^1] | yes |
//! | one name in one family only (`a_created` gauge vs counter `a`) | yes | yes |
//! | histogram: `le` label, increasing `le`, a `+Inf` bucket equal to `_count` | yes | yes |
//! | histogram: cumulative integer buckets, `_sum` iff `_count`, no negative counts | no | yes |
//! | summary: `quantile` label in \[0, 1\] | yes (increasing) | yes |
//! | counters, infos and statesets: values that their type allows | no | yes |
//! | exemplars: only on `_total` and `_bucket`, well formed, ≤ 128 characters | — | yes |
//!
//! [^1]: The 0.0.4 page asks for it, but Prometheus does not check it, and a
//! file of several scrapes is naturally several scrapes one after another.
//!
//! **Types.** Every `# TYPE` resolves to a [`MetricKind`] for each sample
//! name of its family, recorded with [`DatasetBuilder::declare`] together
//! with the family's HELP (unescaped) and UNIT: a counter's samples
//! (`x_total` in OpenMetrics, `x` itself in 0.0.4) and a histogram's or
//! summary's `_bucket`, `_count` and `_sum` are counters; `_created`,
//! gauges, gauge histograms, infos, statesets and summary quantiles are
//! gauges; `untyped`/`unknown` stays unknown. Exemplars are checked and
//! dropped. Names are kept exactly as written.

use std::collections::{HashMap, HashSet};

use super::selector::{
    is_blank, parse_label_set, parse_metadata_name, parse_selector, unescape, Dialect,
};
use super::{parse_float, DatasetBuilder, TimestampUnit};
use crate::error::{Error, Result};
use crate::model::{Labels, MetricKind, MetricMeta, SeriesKey};

/// Reads a Prometheus text or OpenMetrics file into `builder`.
pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    parse_as(text, unit, builder, false)
}

/// Reads a file that must be OpenMetrics (a `.om` file, or
/// `--format openmetrics`): without its `# EOF` line it is refused, not
/// read as the text format (whose timestamps are milliseconds, not seconds).
pub fn parse_openmetrics(
    text: &str,
    unit: TimestampUnit,
    builder: &mut DatasetBuilder,
) -> Result<()> {
    parse_as(text, unit, builder, true)
}

fn parse_as(
    text: &str,
    unit: TimestampUnit,
    builder: &mut DatasetBuilder,
    require_openmetrics: bool,
) -> Result<()> {
    let eof = find_eof(text);
    if require_openmetrics && eof.is_none() {
        let lines = text.lines().count().max(1);
        return Err(builder.error(
            lines,
            "an OpenMetrics exposition ends with a \"# EOF\" line and this one has none \
             (cut short? for the Prometheus text format, name the file .prom or pass \
             --format prometheus)",
        ));
    }
    let format = if eof.is_some() {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let unit = match (unit, format) {
        (TimestampUnit::Auto, Format::Text) => TimestampUnit::Millis,
        (TimestampUnit::Auto, Format::OpenMetrics) => TimestampUnit::Seconds,
        (unit, _) => unit,
    };
    let body = match eof {
        Some(eof) => {
            if !matches!(&text[eof.end..], "" | "\n") {
                return Err(builder.error(
                    eof.line + 1,
                    "text after \"# EOF\": an OpenMetrics exposition (a file with a \"# EOF\" \
                     line) ends there (several expositions concatenated?)",
                ));
            }
            &text[..eof.start]
        }
        None => text,
    };
    let mut reader = Reader::new(format, unit, builder);
    // An OpenMetrics body ends with the `\n` before `# EOF`: that is no
    // empty line.
    for (i, line) in body.split_terminator('\n').enumerate() {
        reader
            .line(i + 1, line)
            .map_err(|e| crlf_hint(e, i + 1, line))?;
    }
    reader.finish()
}

/// Where the `# EOF` line is: its number and byte range.
struct Eof {
    line: usize,
    start: usize,
    end: usize,
}

fn find_eof(text: &str) -> Option<Eof> {
    let mut start = 0;
    for (i, line) in text.split('\n').enumerate() {
        if line == "# EOF" {
            return Some(Eof {
                line: i + 1,
                start,
                end: start + line.len(),
            });
        }
        start += line.len() + 1;
    }
    None
}

/// Adds a hint to an error about a line that ends with a carriage return.
fn crlf_hint(e: Error, line_no: usize, text: &str) -> Error {
    match e {
        Error::Parse { path, line, reason } if line == line_no as u64 && text.ends_with('\r') => {
            Error::Parse {
                path,
                line,
                reason: format!(
                    "{reason} (the line ends with a carriage return: these formats end lines \
                     with \\n only; convert CRLF line endings)"
                ),
            }
        }
        other => other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Prometheus text exposition format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// A metric family's type, as a `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    StateSet,
    Info,
    Summary,
    /// `untyped` (text format), `unknown` (OpenMetrics), or no TYPE line.
    Unknown,
}

/// What one sample of a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    /// The value of a gauge, an unknown, or (text format) a counter.
    Value,
    /// An OpenMetrics counter's `_total`.
    Total,
    /// `_created`: a start time in seconds.
    Created,
    Bucket,
    Count,
    Sum,
    GCount,
    GSum,
    /// A summary's `x{quantile="0.5"}`.
    Quantile,
    /// An info's `x_info`.
    Info,
    /// A stateset's `x{x="state"}`.
    State,
}

impl FamilyType {
    fn parse(word: &str, format: Format) -> Option<Self> {
        use FamilyType::*;
        Some(match (word, format) {
            ("counter", _) => Counter,
            ("gauge", _) => Gauge,
            ("histogram", _) => Histogram,
            ("summary", _) => Summary,
            ("untyped", Format::Text) => Unknown,
            ("unknown", Format::OpenMetrics) => Unknown,
            ("gaugehistogram", Format::OpenMetrics) => GaugeHistogram,
            ("stateset", Format::OpenMetrics) => StateSet,
            ("info", Format::OpenMetrics) => Info,
            _ => return None,
        })
    }

    /// The type's word with its article: "a counter", "an info".
    fn named(self, format: Format) -> String {
        let word = self.word(format);
        let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {word}")
    }

    fn word(self, format: Format) -> &'static str {
        use FamilyType::*;
        match self {
            Counter => "counter",
            Gauge => "gauge",
            Histogram => "histogram",
            GaugeHistogram => "gaugehistogram",
            StateSet => "stateset",
            Info => "info",
            Summary => "summary",
            Unknown if format == Format::Text => "untyped",
            Unknown => "unknown",
        }
    }

    /// The suffixes of the sample names of a family of this type (`""`:
    /// the family's name itself), with the role of each.
    fn suffixes(self, format: Format) -> &'static [(&'static str, Role)] {
        use FamilyType as T;
        use Format::{OpenMetrics, Text};
        use Role::*;
        match (self, format) {
            (T::Counter, Text) => &[("", Value)],
            (T::Counter, OpenMetrics) => &[("_total", Total), ("_created", Created)],
            (T::Gauge | T::Unknown, _) => &[("", Value)],
            (T::Histogram, Text) => &[("_bucket", Bucket), ("_count", Count), ("_sum", Sum)],
            (T::Histogram, OpenMetrics) => &[
                ("_bucket", Bucket),
                ("_count", Count),
                ("_sum", Sum),
                ("_created", Created),
            ],
            (T::GaugeHistogram, _) => &[("_bucket", Bucket), ("_gcount", GCount), ("_gsum", GSum)],
            (T::Summary, Text) => &[("", Quantile), ("_count", Count), ("_sum", Sum)],
            (T::Summary, OpenMetrics) => &[
                ("", Quantile),
                ("_count", Count),
                ("_sum", Sum),
                ("_created", Created),
            ],
            (T::StateSet, _) => &[("", State)],
            (T::Info, _) => &[("_info", Info)],
        }
    }

    /// The role of sample `sample` in a family `family` of this type.
    fn role(self, format: Format, family: &str, sample: &str) -> Option<Role> {
        self.suffixes(format)
            .iter()
            .find(|(suffix, _)| sample.strip_suffix(suffix) == Some(family))
            .map(|&(_, role)| role)
    }

    /// The sample names of a family `family` of this type.
    fn sample_names(self, format: Format, family: &str) -> Vec<String> {
        self.suffixes(format)
            .iter()
            .map(|(suffix, _)| format!("{family}{suffix}"))
            .collect()
    }

    /// Whether the samples in `role` count up (phase 05 rolls them up as counters).
    fn kind(self, role: Role) -> MetricKind {
        use FamilyType as T;
        match role {
            Role::Value => match self {
                T::Counter => MetricKind::Counter,
                T::Unknown => MetricKind::Unknown,
                _ => MetricKind::Gauge,
            },
            Role::Total | Role::Count | Role::Sum => MetricKind::Counter,
            Role::Bucket if self == T::Histogram => MetricKind::Counter,
            Role::Bucket
            | Role::Created
            | Role::GCount
            | Role::GSum
            | Role::Quantile
            | Role::Info
            | Role::State => MetricKind::Gauge,
        }
    }
}

/// One metric family: a name, its metadata, and the point being read.
struct Family {
    name: String,
    /// Where the family began (its first metadata line or sample).
    line: usize,
    ty: FamilyType,
    type_line: Option<usize>,
    help: Option<(String, usize)>,
    unit: Option<(String, usize)>,
    first_sample: Option<usize>,
    /// The MetricPoint being read (histograms and summaries; every type in
    /// OpenMetrics, for the ordering rules).
    point: Option<Point>,
    /// Where the metric (label set) of `point` began.
    metric_line: usize,
    /// OpenMetrics: metrics (label sets without `le`/`quantile`) already
    /// complete, with the line where each began.
    done: HashMap<Labels, usize>,
}

/// The samples of one MetricPoint: one metric at one timestamp.
struct Point {
    group: Labels,
    timestamp: Option<i64>,
    line: usize,
    /// Samples seen (role and `le`/`quantile`/state label): a repeat starts
    /// the next point.
    seen: HashSet<(Role, String)>,
    buckets: Vec<Bucket>,
    count: Option<(f64, usize)>,
    sum: Option<(f64, usize)>,
    quantiles: Vec<(f64, usize)>,
}

struct Bucket {
    le: f64,
    value: f64,
    line: usize,
}

/// What is known about a sample name once its first sample is read.
struct SampleName {
    family: Option<usize>,
    role: Role,
    line: usize,
}

/// The state of one file being read.
struct Reader<'b> {
    format: Format,
    unit: TimestampUnit,
    builder: &'b mut DatasetBuilder,
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
    /// Every sample name a family may write, and that family.
    claims: HashMap<String, usize>,
    samples: HashMap<String, SampleName>,
    /// OpenMetrics: the family whose lines are being read.
    current: Option<usize>,
}

impl<'b> Reader<'b> {
    fn new(format: Format, unit: TimestampUnit, builder: &'b mut DatasetBuilder) -> Self {
        Reader {
            format,
            unit,
            builder,
            families: Vec::new(),
            by_name: HashMap::new(),
            claims: HashMap::new(),
            samples: HashMap::new(),
            current: None,
        }
    }

    fn fail<T>(&self, line: usize, reason: impl Into<String>) -> Result<T> {
        Err(self.builder.error(line, reason))
    }

    fn line(&mut self, no: usize, line: &str) -> Result<()> {
        match self.format {
            Format::Text => {
                let content = line.trim_start_matches(is_blank);
                if content.trim_end_matches(is_blank).is_empty() {
                    return Ok(()); // empty lines are ignored
                }
                match content.strip_prefix('#') {
                    Some(comment) => self.text_comment(no, comment),
                    None => self.text_sample(no, content),
                }
            }
            Format::OpenMetrics => {
                if line.is_empty() {
                    return self.fail(no, "empty line (OpenMetrics has none before # EOF)");
                }
                if line.starts_with(is_blank) {
                    return self.fail(no, "a line must not start with a blank in OpenMetrics");
                }
                if line.starts_with('#') {
                    self.om_metadata(no, line)
                } else {
                    self.om_sample(no, line)
                }
            }
        }
    }

    // ---- the text format ---------------------------------------------------

    /// `# HELP name text`, `# TYPE name type`, or any other comment (ignored).
    fn text_comment(&mut self, no: usize, comment: &str) -> Result<()> {
        if !comment.starts_with(is_blank) {
            return Ok(()); // `#HELP` or `#x`: a comment
        }
        let comment = comment.trim_start_matches(is_blank);
        let end = comment.find(is_blank).unwrap_or(comment.len());
        let (keyword, rest) = comment.split_at(end);
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        let rest = rest.trim_start_matches(is_blank);
        if rest.is_empty() {
            return self.fail(no, format!("# {keyword} needs a metric name"));
        }
        let (name, after) = parse_metadata_name(rest)
            .map_err(|e| self.builder.error(no, format!("# {keyword}: {e}")))?;
        if !after.is_empty() && !after.starts_with(is_blank) {
            return self.fail(
                no,
                format!("# {keyword} {name}: unexpected {after:?} after the metric name"),
            );
        }
        if keyword == "HELP" {
            // The text is all after the one blank that ends the name.
            let text = after.get(1..).unwrap_or("");
            return self.set_help(no, &name, unescape(text, false));
        }
        let word = after.trim_matches(is_blank);
        if word.is_empty() {
            return self.fail(
                no,
                format!(
                    "# TYPE {name} needs a type (counter, gauge, histogram, summary or untyped)"
                ),
            );
        }
        if word.contains(is_blank) {
            return self.fail(
                no,
                format!("# TYPE {name}: exactly two tokens follow TYPE; found {word:?}"),
            );
        }
        let Some(ty) = FamilyType::parse(word, Format::Text) else {
            return self.fail(
                no,
                format!(
                    "# TYPE {name}: unknown type {word:?} (the text format has counter, gauge, \
                     histogram, summary and untyped)"
                ),
            );
        };
        self.set_type(no, &name, ty)
    }

    fn text_sample(&mut self, no: usize, content: &str) -> Result<()> {
        let (key, rest) =
            parse_selector(content, Dialect::Text).map_err(|e| self.builder.error(no, e))?;
        let mut tokens = rest.split(is_blank).filter(|t| !t.is_empty());
        let Some(value) = tokens.next() else {
            return self.fail(no, format!("{key}: missing value"));
        };
        let value = sample_value(value).map_err(|e| self.builder.error(no, e))?;
        let timestamp = tokens.next();
        if let Some(extra) = tokens.next() {
            return self.fail(no, format!("unexpected {extra:?} after the timestamp"));
        }
        self.sample(no, key, value, timestamp, None)
    }

    // ---- OpenMetrics -------------------------------------------------------

    /// `# TYPE name type`, `# UNIT name unit`, `# HELP name text`: one
    /// space between fields, nothing else may start with `#`.
    fn om_metadata(&mut self, no: usize, line: &str) -> Result<()> {
        let found = ["TYPE", "UNIT", "HELP"].into_iter().find_map(|keyword| {
            line.strip_prefix("# ")
                .and_then(|l| l.strip_prefix(keyword))
                .and_then(|l| l.strip_prefix(' '))
                .map(|rest| (keyword, rest))
        });
        let Some((keyword, rest)) = found else {
            for keyword in ["TYPE", "UNIT", "HELP", "EOF"] {
                if line.starts_with(&format!("# {keyword}")) {
                    return self.fail(
                        no,
                        match keyword {
                            "EOF" => "the end line must be exactly \"# EOF\"".to_string(),
                            _ => format!(
                                "# {keyword} must be followed by one space and a metric name"
                            ),
                        },
                    );
                }
            }
            return self.fail(
                no,
                "OpenMetrics has no comments: a line starting with '#' must be # TYPE, \
                 # UNIT, # HELP or # EOF",
            );
        };
        let (name, after) = parse_metadata_name(rest)
            .map_err(|e| self.builder.error(no, format!("# {keyword}: {e}")))?;
        let what = match keyword {
            "TYPE" => "a type",
            "UNIT" => "a unit (possibly empty)",
            _ => "a help text (possibly empty)",
        };
        let Some(value) = after.strip_prefix(' ') else {
            return self.fail(
                no,
                format!("# {keyword} {name}: one space and {what} must follow the name"),
            );
        };
        match keyword {
            "TYPE" => {
                let Some(ty) = FamilyType::parse(value, Format::OpenMetrics) else {
                    return self.fail(
                        no,
                        format!(
                            "# TYPE {name}: unknown type {value:?} (OpenMetrics has counter, \
                             gauge, histogram, gaugehistogram, stateset, info, summary and \
                             unknown)"
                        ),
                    );
                };
                self.set_type(no, &name, ty)
            }
            "UNIT" => {
                if !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                {
                    return self.fail(
                        no,
                        format!("# UNIT {name}: invalid unit {value:?} ([a-zA-Z0-9_:]*)"),
                    );
                }
                self.set_unit(no, &name, value)
            }
            _ => self.set_help(no, &name, unescape(value, true)),
        }
    }

    /// `name{labels} value [timestamp] [# {labels} value [timestamp]]`,
    /// one space between fields.
    fn om_sample(&mut self, no: usize, line: &str) -> Result<()> {
        let (key, rest) =
            parse_selector(line, Dialect::OpenMetrics).map_err(|e| self.builder.error(no, e))?;
        let Some(rest) = rest.strip_prefix(' ') else {
            return self.fail(
                no,
                if rest.is_empty() {
                    format!("{key}: missing value")
                } else {
                    format!("{key}: expected one space after the series, found {rest:?}")
                },
            );
        };
        let (value, rest) = field(rest);
        if value.is_empty() {
            return self.fail(
                no,
                format!("{key}: missing value (exactly one space separates the fields)"),
            );
        }
        let value = sample_value(value).map_err(|e| self.builder.error(no, e))?;
        let mut timestamp = None;
        let mut exemplar = None;
        if let Some(rest) = rest {
            if let Some(ex) = rest.strip_prefix("# ") {
                exemplar = Some(ex);
            } else {
                let (ts, rest) = field(rest);
                if ts.is_empty() {
                    return self.fail(no, format!("{key}: a blank too many after the value"));
                }
                if plain_decimal(ts).is_none() {
                    return self.fail(no, format!("timestamp {ts:?} is not a number"));
                }
                timestamp = Some(ts);
                if let Some(rest) = rest {
                    match rest.strip_prefix("# ") {
                        Some(ex) => exemplar = Some(ex),
                        None if rest.is_empty() => {
                            return self.fail(no, format!("{key}: a blank after the timestamp"))
                        }
                        None => {
                            return self.fail(
                                no,
                                format!("{key}: unexpected {rest:?} after the timestamp"),
                            )
                        }
                    }
                }
            }
        }
        if let Some(ex) = exemplar {
            check_exemplar(ex)
                .map_err(|e| self.builder.error(no, format!("{key}: exemplar {e}")))?;
        }
        self.sample(no, key, value, timestamp, exemplar)
    }

    // ---- metadata ----------------------------------------------------------

    /// The family a metadata line for `name` is about: in the text format the
    /// one of that name (made on first use); in OpenMetrics the current one
    /// if it has that name and no samples yet, else a new one.
    fn metadata_family(&mut self, no: usize, name: &str, keyword: &str) -> Result<usize> {
        if self.format == Format::OpenMetrics {
            if let Some(c) = self.current {
                if self.families[c].name == name {
                    if let Some(first) = self.families[c].first_sample {
                        return self.fail(
                            no,
                            format!(
                                "# {keyword} {name} comes after the family's samples (line \
                                 {first}): metadata comes first"
                            ),
                        );
                    }
                    return Ok(c);
                }
            }
            self.close_current()?;
            if let Some(&f) = self.by_name.get(name) {
                return self.fail(
                    no,
                    format!(
                        "metric family {name} appeared before (line {}): OpenMetrics families \
                         must not be interleaved, and each metadata line comes once",
                        self.families[f].line
                    ),
                );
            }
            let f = self.new_family(no, name)?;
            self.current = Some(f);
            return Ok(f);
        }
        match self.by_name.get(name) {
            Some(&f) => Ok(f),
            None => self.new_family(no, name),
        }
    }

    fn new_family(&mut self, no: usize, name: &str) -> Result<usize> {
        if let Some(&other) = self.claims.get(name) {
            let o = &self.families[other];
            return self.fail(
                no,
                format!(
                    "{name} is a sample name of the {} {} (line {}): it cannot be a metric \
                     family of its own",
                    o.ty.word(self.format),
                    o.name,
                    o.line
                ),
            );
        }
        let id = self.families.len();
        self.families.push(Family {
            name: name.to_string(),
            line: no,
            ty: FamilyType::Unknown,
            type_line: None,
            help: None,
            unit: None,
            first_sample: None,
            point: None,
            metric_line: no,
            done: HashMap::new(),
        });
        self.by_name.insert(name.to_string(), id);
        self.claims.insert(name.to_string(), id);
        // Text format: an untyped sample of this name read before now has
        // its family (and HELP) after all.
        if let Some(s) = self.samples.get_mut(name) {
            if s.family.is_none() {
                s.family = Some(id);
            }
        }
        Ok(id)
    }

    fn set_type(&mut self, no: usize, name: &str, ty: FamilyType) -> Result<()> {
        let f = self.metadata_family(no, name, "TYPE")?;
        let format = self.format;
        let fam = &self.families[f];
        // Scrapes appended one after another repeat their metadata: the
        // text format takes the same TYPE again (OpenMetrics, one
        // exposition, does not).
        if format == Format::Text && fam.type_line.is_some() && fam.ty == ty {
            return Ok(());
        }
        if let Some(first) = fam.type_line {
            return self.fail(
                no,
                format!("a second TYPE line for {name} (the first is at line {first})"),
            );
        }
        if let Some(first) = fam.first_sample {
            return self.fail(
                no,
                format!("# TYPE {name} comes after its samples (line {first}): TYPE comes first"),
            );
        }
        if let Some((unit, _)) = &fam.unit {
            if !unit.is_empty() && matches!(ty, FamilyType::Info | FamilyType::StateSet) {
                return self.fail(
                    no,
                    format!("{name}: {} has no unit (UNIT {unit})", ty.named(format)),
                );
            }
        }
        let names = ty.sample_names(format, name);
        for sample in &names {
            if let Some(other) = self.claims.get(sample).filter(|&&o| o != f) {
                let o = &self.families[*other];
                return self.fail(
                    no,
                    format!(
                        "# TYPE {name} {}: its sample name {sample} is already the {} {} \
                         (line {})",
                        ty.word(format),
                        o.ty.word(format),
                        o.name,
                        o.line
                    ),
                );
            }
            if let Some(s) = self.samples.get(sample) {
                return self.fail(
                    no,
                    format!(
                        "# TYPE {name} comes after its sample {sample} (line {}): TYPE comes first",
                        s.line
                    ),
                );
            }
        }
        self.claims.retain(|_, owner| *owner != f);
        for sample in names {
            self.claims.insert(sample, f);
        }
        let fam = &mut self.families[f];
        fam.ty = ty;
        fam.type_line = Some(no);
        Ok(())
    }

    fn set_help(&mut self, no: usize, name: &str, help: String) -> Result<()> {
        let f = self.metadata_family(no, name, "HELP")?;
        if let Some((first_help, first)) = &self.families[f].help {
            if self.format == Format::Text && *first_help == help {
                return Ok(());
            }
            let first = *first;
            return self.fail(
                no,
                format!("a second HELP line for {name} (the first is at line {first})"),
            );
        }
        self.families[f].help = Some((help, no));
        Ok(())
    }

    fn set_unit(&mut self, no: usize, name: &str, unit: &str) -> Result<()> {
        let f = self.metadata_family(no, name, "UNIT")?;
        let fam = &self.families[f];
        if let Some((_, first)) = fam.unit {
            return self.fail(
                no,
                format!("a second UNIT line for {name} (the first is at line {first})"),
            );
        }
        if !unit.is_empty() {
            if !name.ends_with(&format!("_{unit}")) {
                return self.fail(
                    no,
                    format!("# UNIT {name} {unit}: the family's name must end with _{unit}"),
                );
            }
            if matches!(fam.ty, FamilyType::Info | FamilyType::StateSet) {
                return self.fail(
                    no,
                    format!("{name}: {} has no unit", fam.ty.named(self.format)),
                );
            }
        }
        self.families[f].unit = Some((unit.to_string(), no));
        Ok(())
    }

    // ---- samples -----------------------------------------------------------

    /// The family and role of a sample named `name`.
    fn resolve(&mut self, no: usize, name: &str) -> Result<(Option<usize>, Role)> {
        if let Some(s) = self.samples.get(name) {
            if self.format == Format::OpenMetrics && s.family != self.current {
                let f = s
                    .family
                    .map(|f| self.families[f].name.as_str())
                    .unwrap_or(name);
                return self.fail(
                    no,
                    format!(
                        "{name}: the family {f} (its first sample is at line {}) was interrupted \
                         by another: OpenMetrics families must not be interleaved",
                        s.line
                    ),
                );
            }
            return Ok((s.family, s.role));
        }
        let (family, role) = match self.format {
            Format::Text => match self.claims.get(name) {
                Some(&f) => {
                    let fam = &self.families[f];
                    let role = fam.ty.role(self.format, &fam.name, name);
                    (Some(f), role.unwrap_or(Role::Value))
                }
                None => match self.by_name.get(name) {
                    Some(&f) => return self.fail(no, self.not_a_sample_of(name, f)),
                    None => (None, Role::Value),
                },
            },
            Format::OpenMetrics => {
                let in_current = self.current.and_then(|c| {
                    let fam = &self.families[c];
                    fam.ty.role(self.format, &fam.name, name).map(|r| (c, r))
                });
                match in_current {
                    Some((c, role)) => (Some(c), role),
                    None => {
                        if let Some(&f) = self.claims.get(name) {
                            let fam = &self.families[f];
                            return self.fail(
                                no,
                                format!(
                                    "{name} belongs to the family {} (line {}), which other \
                                     lines interrupted: OpenMetrics families must not be \
                                     interleaved",
                                    fam.name, fam.line
                                ),
                            );
                        }
                        if let Some(&f) = self.by_name.get(name) {
                            return self.fail(no, self.not_a_sample_of(name, f));
                        }
                        self.close_current()?;
                        let f = self.new_family(no, name)?;
                        self.current = Some(f);
                        (Some(f), Role::Value)
                    }
                }
            }
        };
        self.samples.insert(
            name.to_string(),
            SampleName {
                family,
                role,
                line: no,
            },
        );
        Ok((family, role))
    }

    fn not_a_sample_of(&self, name: &str, f: usize) -> String {
        let fam = &self.families[f];
        format!(
            "{name} is declared {} (line {}), whose samples are named {}",
            fam.ty.named(self.format),
            fam.type_line.unwrap_or(fam.line),
            fam.ty.sample_names(self.format, &fam.name).join(", ")
        )
    }

    fn timestamp(&mut self, no: usize, token: &str) -> Result<i64> {
        match self.format {
            Format::Text => {
                let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return self.fail(
                        no,
                        if plain_decimal(token).is_some() {
                            format!(
                                "timestamp {token:?}: the Prometheus text format takes integer \
                                 milliseconds (decimal seconds are OpenMetrics, a file that ends \
                                 with # EOF)"
                            )
                        } else {
                            format!("timestamp {token:?} is not an integer")
                        },
                    );
                }
                self.builder.timestamp(token, self.unit, no)
            }
            Format::OpenMetrics => {
                let Some(plain) = plain_decimal(token) else {
                    return self.fail(no, format!("timestamp {token:?} is not a number"));
                };
                self.builder
                    .timestamp(&plain, self.unit, no)
                    .map_err(|e| match e {
                        Error::Parse { path, line, reason } if plain != token => Error::Parse {
                            path,
                            line,
                            reason: reason
                                .replace(&super::abbreviate(&plain), &super::abbreviate(token)),
                        },
                        other => other,
                    })
            }
        }
    }

    fn sample(
        &mut self,
        no: usize,
        key: SeriesKey,
        value: f64,
        timestamp: Option<&str>,
        exemplar: Option<&str>,
    ) -> Result<()> {
        let (family, role) = self.resolve(no, &key.metric)?;
        let written = match timestamp {
            Some(token) => Some(self.timestamp(no, token)?),
            None => None,
        };
        let at = match written {
            Some(t) => t,
            None => self.builder.missing_timestamp(no)?,
        };
        if let Some(f) = family {
            self.families[f].first_sample.get_or_insert(no);
            self.check(no, f, role, &key, value, written, exemplar.is_some())?;
        }
        self.builder.push(key, at, value, no);
        Ok(())
    }

    /// The rules of the sample's type, and its place among the family's
    /// points.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        no: usize,
        f: usize,
        role: Role,
        key: &SeriesKey,
        value: f64,
        timestamp: Option<i64>,
        exemplar: bool,
    ) -> Result<()> {
        let bound = self.check_sample(no, f, role, key, value, exemplar)?;
        let ty = self.families[f].ty;
        let om = self.format == Format::OpenMetrics;
        if !om
            && !matches!(
                ty,
                FamilyType::Histogram | FamilyType::GaugeHistogram | FamilyType::Summary
            )
        {
            return Ok(());
        }
        // The metric is the label set without the label that tells the
        // samples of one point apart.
        let mut group = key.labels.clone();
        let apart = match role {
            Role::Bucket => group.remove("le"),
            Role::Quantile => group.remove("quantile"),
            Role::State => group.remove(&self.families[f].name),
            _ => None,
        };
        let id = (role, apart.unwrap_or_default());
        let same_point = self.families[f]
            .point
            .as_ref()
            .is_some_and(|p| p.group == group && p.timestamp == timestamp && !p.seen.contains(&id));
        if !same_point {
            if let Some(p) = self.families[f].point.take() {
                self.check_point(f, &p)?;
                if p.group == group {
                    if om {
                        self.check_next_point(no, key, &p, timestamp)?;
                    }
                } else {
                    let fam = &mut self.families[f];
                    if om {
                        fam.done.insert(p.group, fam.metric_line);
                        if let Some(&began) = fam.done.get(&group) {
                            return self.fail(
                                no,
                                format!(
                                    "{key}: the samples of this metric began at line {began} and \
                                     were interrupted by another metric: OpenMetrics metrics must \
                                     not be interleaved"
                                ),
                            );
                        }
                    }
                    fam.metric_line = no;
                }
            } else {
                self.families[f].metric_line = no;
            }
            self.families[f].point = Some(Point {
                group,
                timestamp,
                line: no,
                seen: HashSet::new(),
                buckets: Vec::new(),
                count: None,
                sum: None,
                quantiles: Vec::new(),
            });
        }
        if let Some(p) = self.families[f].point.as_mut() {
            p.seen.insert(id);
            match role {
                Role::Bucket => p.buckets.push(Bucket {
                    le: bound,
                    value,
                    line: no,
                }),
                Role::Count | Role::GCount => p.count = Some((value, no)),
                Role::Sum | Role::GSum => p.sum = Some((value, no)),
                Role::Quantile => p.quantiles.push((bound, no)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The rules for one sample on its own: exemplars, values, and the
    /// labels its role needs. Returns the bucket's `le` or the quantile.
    fn check_sample(
        &self,
        no: usize,
        f: usize,
        role: Role,
        key: &SeriesKey,
        value: f64,
        exemplar: bool,
    ) -> Result<f64> {
        use FamilyType as T;
        let (ty, family) = (self.families[f].ty, &self.families[f].name);
        // Exemplars belong on counters' _total and histograms' _bucket
        // samples; a family without a TYPE line may be either (Prometheus
        // takes exemplars on any sample), so only a declared type that
        // cannot carry them refuses one.
        if exemplar
            && !matches!(
                (ty, role),
                (T::Counter, Role::Total)
                    | (T::Histogram | T::GaugeHistogram, Role::Bucket)
                    | (T::Unknown, _)
            )
        {
            return self.fail(
                no,
                format!(
                    "{key}: exemplars are allowed only on a counter's _total and a histogram's \
                     _bucket samples (this is a sample of the {} {family})",
                    ty.word(self.format)
                ),
            );
        }
        let om = self.format == Format::OpenMetrics;
        if om {
            if let Err(why) = om_value_rule(ty, role, value) {
                return self.fail(no, format!("{key}: {why}"));
            }
        }
        match role {
            Role::Bucket => {
                let Some(le) = key.labels.get("le") else {
                    return self.fail(no, format!("{key}: a histogram bucket needs an le label"));
                };
                let bound = sample_value(le).ok().filter(|b| !b.is_nan());
                let Some(bound) = bound else {
                    return self.fail(no, format!("{key}: le={le:?} is not a number"));
                };
                if om && bound == f64::INFINITY && le != "+Inf" {
                    return self.fail(no, format!("{key}: the +Inf bucket is written le=\"+Inf\""));
                }
                Ok(bound)
            }
            Role::Quantile => {
                let Some(q) = key.labels.get("quantile") else {
                    return self.fail(
                        no,
                        format!(
                            "{key}: the samples named {family} of a summary are quantiles and \
                             need a quantile label"
                        ),
                    );
                };
                let quantile = sample_value(q).ok().filter(|q| (0.0..=1.0).contains(q));
                let Some(quantile) = quantile else {
                    return self.fail(
                        no,
                        format!("{key}: quantile={q:?} is not a number from 0 to 1"),
                    );
                };
                Ok(quantile)
            }
            Role::State if !key.labels.contains_key(family) => self.fail(
                no,
                format!("{key}: a stateset's samples need a label named {family}"),
            ),
            _ => Ok(0.0),
        }
    }

    /// OpenMetrics: a metric's next point comes later in time, and either
    /// every point of the metric has a timestamp or none has (and then
    /// there is only one).
    fn check_next_point(
        &self,
        no: usize,
        key: &SeriesKey,
        previous: &Point,
        timestamp: Option<i64>,
    ) -> Result<()> {
        let why = match (previous.timestamp, timestamp) {
            (Some(a), Some(b)) if b < a => "its timestamp is before that of the point before it: \
                                            a metric's points must be in time order"
                .to_string(),
            (None, None) => format!(
                "the same metric again (line {}) without timestamps",
                previous.line
            ),
            (Some(_), None) | (None, Some(_)) => {
                "some samples of this metric have timestamps and some do not".to_string()
            }
            _ => return Ok(()),
        };
        self.fail(no, format!("{key}: {why}"))
    }

    /// The rules for a complete histogram or summary point.
    fn check_point(&self, f: usize, p: &Point) -> Result<()> {
        use FamilyType as T;
        let (ty, family) = (self.families[f].ty, &self.families[f].name);
        let om = self.format == Format::OpenMetrics;
        match ty {
            T::Histogram | T::GaugeHistogram => {
                if p.buckets.is_empty() && p.count.is_none() && p.sum.is_none() {
                    return Ok(()); // only `_created`
                }
                for w in p.buckets.windows(2) {
                    if w[1].le <= w[0].le {
                        return self.fail(
                            w[1].line,
                            format!(
                                "{family}: bucket le={} after le={}: buckets must be in \
                                 increasing order of le",
                                w[1].le, w[0].le
                            ),
                        );
                    }
                    if om && w[1].value < w[0].value {
                        return self.fail(
                            w[1].line,
                            format!(
                                "{family}: bucket le={} holds {} but le={} holds {}: buckets \
                                 are cumulative",
                                w[1].le, w[1].value, w[0].le, w[0].value
                            ),
                        );
                    }
                }
                let Some(inf) = p.buckets.last().filter(|b| b.le == f64::INFINITY) else {
                    return self.fail(
                        p.line,
                        format!(
                            "{family}: the histogram point that starts here has no le=\"+Inf\" \
                             bucket"
                        ),
                    );
                };
                let (count, sum) = match ty {
                    T::Histogram => ("_count", "_sum"),
                    _ => ("_gcount", "_gsum"),
                };
                if let Some((c, line)) = p.count {
                    if c.to_bits() != inf.value.to_bits() && c != inf.value {
                        return self.fail(
                            line,
                            format!(
                                "{family}{count} is {c} but its +Inf bucket (line {}) is {}: \
                                 they must be equal",
                                inf.line, inf.value
                            ),
                        );
                    }
                }
                if om && p.count.is_some() != p.sum.is_some() {
                    let (have, missing, line) = match (p.count, p.sum) {
                        (Some((_, l)), None) => (count, sum, l),
                        (None, Some((_, l))) => (sum, count, l),
                        _ => (count, sum, p.line),
                    };
                    return self.fail(
                        line,
                        format!("{family}{have} without {family}{missing}: they come together"),
                    );
                }
                let negative = p.buckets.iter().any(|b| b.le < 0.0);
                if let (true, Some((s, line))) = (om, p.sum) {
                    if ty == T::Histogram && negative {
                        return self.fail(
                            line,
                            format!(
                                "{family}: a histogram with negative buckets has no _sum \
                                 (it would not be a counter)"
                            ),
                        );
                    }
                    if ty == T::GaugeHistogram && s < 0.0 && !negative {
                        return self.fail(
                            line,
                            format!("{family}_gsum is {s}, but no bucket is negative"),
                        );
                    }
                }
            }
            T::Summary if !om => {
                for w in p.quantiles.windows(2) {
                    if w[1].0 <= w[0].0 {
                        return self.fail(
                            w[1].1,
                            format!(
                                "{family}: quantile {} after {}: quantiles must be in \
                                 increasing order",
                                w[1].0, w[0].0
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// OpenMetrics: the current family is complete.
    fn close_current(&mut self) -> Result<()> {
        if let Some(c) = self.current.take() {
            if let Some(p) = self.families[c].point.take() {
                self.check_point(c, &p)?;
            }
        }
        Ok(())
    }

    /// Checks the last points and records the metadata of every sample name.
    fn finish(mut self) -> Result<()> {
        self.close_current()?;
        for f in 0..self.families.len() {
            if let Some(p) = self.families[f].point.take() {
                self.check_point(f, &p)?;
            }
        }
        let mut names: Vec<(&String, &SampleName)> = self.samples.iter().collect();
        names.sort_by_key(|(_, s)| s.line);
        for (name, s) in names {
            let Some(f) = s.family else { continue };
            let fam = &self.families[f];
            let meta = MetricMeta {
                kind: Some(fam.ty.kind(s.role)),
                unit: fam.unit.as_ref().map(|u| u.0.clone()).unwrap_or_default(),
                help: fam.help.as_ref().map(|h| h.0.clone()).unwrap_or_default(),
            };
            self.builder.declare(s.line, name, meta)?;
        }
        Ok(())
    }
}

/// Splits at the first space: the field before it, and the rest after it
/// (`None` when there is no space).
fn field(text: &str) -> (&str, Option<&str>) {
    match text.split_once(' ') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    }
}

/// A sample value: Go's `ParseFloat` ([`parse_float`]), without the
/// hexadecimal floats and `_` digit separators Prometheus refuses.
fn sample_value(token: &str) -> std::result::Result<f64, String> {
    if token.contains(['p', 'P', '_']) {
        return Err(format!(
            "value {token:?} is not a number (hexadecimal floats and '_' are not part of the format)"
        ));
    }
    match parse_float(token) {
        Some(v) => Ok(v),
        None if token.parse::<f64>().is_ok_and(f64::is_infinite) => Err(format!(
            "value {token:?} is out of the range of a 64-bit float"
        )),
        None => Err(format!("value {token:?} is not a number")),
    }
}

/// What OpenMetrics allows as a value for each kind of sample.
fn om_value_rule(ty: FamilyType, role: Role, v: f64) -> std::result::Result<(), String> {
    use FamilyType as T;
    let whole = v.is_finite() && v.fract() == 0.0;
    let what = match (ty, role) {
        (T::Counter, Role::Total) => "a counter's total",
        (T::Histogram, Role::Bucket | Role::Count | Role::Sum) => {
            "a histogram's buckets, count and sum"
        }
        (T::GaugeHistogram, Role::Bucket | Role::GCount) => "a gauge histogram's buckets and count",
        (T::GaugeHistogram, Role::GSum) => {
            return if v.is_nan() {
                Err("a gauge histogram's _gsum must not be NaN".into())
            } else {
                Ok(())
            };
        }
        (T::Summary, Role::Count | Role::Sum) => "a summary's count and sum",
        (T::Summary, Role::Quantile) => {
            return if v < 0.0 {
                Err(format!(
                    "a quantile's value must not be negative (it is {v})"
                ))
            } else {
                Ok(())
            };
        }
        (T::Info, Role::Info) => {
            return if v == 1.0 {
                Ok(())
            } else {
                Err(format!("an info's value is always 1 (it is {v})"))
            };
        }
        (T::StateSet, Role::State) => {
            return if v == 0.0 || v == 1.0 {
                Ok(())
            } else {
                Err(format!("a state's value is 0 or 1 (it is {v})"))
            };
        }
        _ => return Ok(()),
    };
    if v.is_nan() || v < 0.0 {
        return Err(format!("{what} must not be NaN or negative (it is {v})"));
    }
    let integral = matches!(role, Role::Bucket | Role::Count | Role::GCount);
    if integral && !whole {
        return Err(format!("{what}: counts are integers (it is {v})"));
    }
    Ok(())
}

/// An exemplar after ` # `: `{labels} value [timestamp]`, well formed and
/// at most 128 characters of label names and values.
fn check_exemplar(text: &str) -> std::result::Result<(), String> {
    if !text.starts_with('{') {
        return Err("must be written ` # {labels} value [timestamp]`".into());
    }
    let (labels, rest) = parse_label_set(text, Dialect::OpenMetrics)?;
    let length: usize = labels
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if length > 128 {
        return Err(format!(
            "labels are {length} characters long; OpenMetrics allows 128"
        ));
    }
    let Some(rest) = rest.strip_prefix(' ') else {
        return Err("needs one space and a value after its labels".into());
    };
    let (value, rest) = field(rest);
    if value.is_empty() {
        return Err("needs a value after its labels".into());
    }
    sample_value(value)?;
    if let Some(ts) = rest {
        if ts.is_empty() || ts.contains(' ') {
            return Err(format!("unexpected {ts:?} after its value"));
        }
        let finite = ts.parse::<f64>().is_ok_and(f64::is_finite);
        if plain_decimal(ts).is_none() || !finite {
            return Err(format!("timestamp {ts:?} is not a number"));
        }
    }
    Ok(())
}

/// An OpenMetrics `realnumber` timestamp (`1520879607.789`, `-1`, `.5`,
/// `1.5e3`) written as a plain decimal (`1500`), digit for digit, so that
/// the builder converts it exactly; `None` when it is not a realnumber
/// (`NaN`, `Inf`, `0x1p-3`, `1_2`).
fn plain_decimal(token: &str) -> Option<String> {
    let (negative, body) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) || int.len() + frac.len() == 0 {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let (negative, magnitude) = match e.as_bytes().first()? {
                b'-' => (true, &e[1..]),
                b'+' => (false, &e[1..]),
                _ => (false, e),
            };
            if magnitude.is_empty() || !digits(magnitude) {
                return None;
            }
            // Beyond ±1000 every nonzero mantissa is out of range (or finer
            // than a nanosecond) anyway; clamping keeps the string short.
            let magnitude = magnitude.trim_start_matches('0');
            let m = if magnitude.len() > 4 {
                1000
            } else {
                magnitude.parse::<i64>().unwrap_or(0).min(1000)
            };
            if negative {
                -m
            } else {
                m
            }
        }
    };
    let all = format!("{int}{frac}");
    let len = all.len() as i64;
    let point = int.len() as i64 + exponent;
    let (whole, fraction) = if point <= 0 {
        (
            "0".to_string(),
            format!("{}{all}", "0".repeat((-point) as usize)),
        )
    } else if point >= len {
        (
            format!("{all}{}", "0".repeat((point - len) as usize)),
            String::new(),
        )
    } else {
        (
            all[..point as usize].to_string(),
            all[point as usize..].to_string(),
        )
    };
    let mut out = String::with_capacity(whole.len() + fraction.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(&whole);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ImportOptions;
    use crate::model::Dataset;
    use std::path::Path;

    /// 2024-01-01T00:00:00Z, given to samples written without a timestamp.
    const DEFAULT_NS: i64 = 1_704_067_200_000_000_000;

    fn import_with(text: &str, options: ImportOptions) -> Result<Dataset> {
        let mut b = DatasetBuilder::new(Path::new("m.prom"), &options);
        parse(text, options.timestamp_unit, &mut b)?;
        Ok(b.finish("t".into())?.0)
    }

    fn import(text: &str) -> Result<Dataset> {
        import_with(text, ImportOptions::default())
    }

    /// Imports with `--default-timestamp`, as a live scrape needs.
    fn scrape(text: &str) -> Result<Dataset> {
        import_with(
            text,
            ImportOptions {
                default_timestamp: Some(DEFAULT_NS),
                ..ImportOptions::default()
            },
        )
    }

    /// Parses only (no `finish`): for files with metadata and no samples.
    fn check_syntax(text: &str) -> Result<()> {
        let options = ImportOptions {
            default_timestamp: Some(DEFAULT_NS),
            ..ImportOptions::default()
        };
        let mut b = DatasetBuilder::new(Path::new("m.prom"), &options);
        parse(text, TimestampUnit::Auto, &mut b)
    }

    fn series<'d>(d: &'d Dataset, key: &str) -> &'d crate::model::Series {
        d.series
            .iter()
            .find(|s| s.key.to_string() == key)
            .unwrap_or_else(|| panic!("no series {key} in {:?}", keys(d)))
    }

    fn keys(d: &Dataset) -> Vec<String> {
        d.series.iter().map(|s| s.key.to_string()).collect()
    }

    fn kind(d: &Dataset, metric: &str) -> Option<MetricKind> {
        d.metadata.get(metric).and_then(|m| m.kind)
    }

    #[track_caller]
    fn assert_error(result: Result<impl std::fmt::Debug>, want: &str) {
        let err = result.expect_err(want).to_string();
        assert!(err.contains(want), "want {want:?} in: {err}");
    }

    // ---- the text format ---------------------------------------------------

    #[test]
    fn reads_several_scrapes() {
        let d = import(concat!(
            "# HELP http_requests_total Total requests.\n",
            "# TYPE http_requests_total counter\n",
            "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n",
            "up 1 1395066363000\n",
            "http_requests_total{code=\"200\",method=\"post\"} 1043 1395066378000\n",
            "up NaN 1395066378000\n",
        ))
        .unwrap();
        assert_eq!(d.series.len(), 2);
        let http = &d.series[0];
        assert_eq!(http.values, vec![1027.0, 1043.0]);
        assert_eq!(http.timestamps[1], 1_395_066_378_000_000_000);
        assert!(d.series[1].values[1].is_nan());
        assert_eq!(kind(&d, "http_requests_total"), Some(MetricKind::Counter));
        assert_eq!(d.metadata["http_requests_total"].help, "Total requests.");
    }

    #[test]
    fn the_scrapes_fixture_imports() {
        let d = import(include_str!("../../tests/fixtures/scrapes.prom")).unwrap();
        assert_eq!(d.series.len(), 5);
        assert_eq!(d.sample_count(), 15);
        assert_eq!(
            kind(&d, "process_resident_memory_bytes"),
            Some(MetricKind::Gauge)
        );
    }

    #[test]
    fn the_example_of_the_exposition_formats_page_imports() {
        let text = include_str!("../../tests/fixtures/prometheus/exposition-formats.prom");
        let d = scrape(text).unwrap();
        assert_eq!(d.series.len(), 21);
        let s = series(&d, r#"http_requests_total{code="400",method="post"}"#);
        assert_eq!(
            (s.timestamps[0], s.values[0]),
            (1_395_066_363_000_000_000, 3.0)
        );
        let s = series(
            &d,
            r#"msdos_file_access_time_seconds{error="Cannot find file:\n\"FILE.TXT\"",path="C:\\DIR\\FILE.TXT"}"#,
        );
        assert_eq!(s.key.labels["path"], r"C:\DIR\FILE.TXT");
        assert_eq!(s.key.labels["error"], "Cannot find file:\n\"FILE.TXT\"");
        assert_eq!((s.timestamps[0], s.values[0]), (DEFAULT_NS, 1.458255915e9));
        let s = series(&d, r#"{"my.dotted.metric","error.message"="Not Found"}"#);
        assert_eq!(s.values, vec![1.0]);
        let s = series(&d, r#"something_weird{problem="division by zero"}"#);
        assert_eq!(s.timestamps, vec![-3_982_045_000_000]);
        assert_eq!(s.values, vec![f64::INFINITY]);
        let s = series(&d, r#"http_request_duration_seconds_bucket{le="+Inf"}"#);
        assert_eq!(s.values, vec![144320.0]);
        for (metric, k) in [
            ("http_requests_total", MetricKind::Counter),
            ("http_request_duration_seconds_bucket", MetricKind::Counter),
            ("http_request_duration_seconds_sum", MetricKind::Counter),
            ("http_request_duration_seconds_count", MetricKind::Counter),
            ("rpc_duration_seconds", MetricKind::Gauge),
            ("rpc_duration_seconds_sum", MetricKind::Counter),
            ("rpc_duration_seconds_count", MetricKind::Counter),
        ] {
            assert_eq!(kind(&d, metric), Some(k), "{metric}");
        }
        assert_eq!(
            d.metadata["http_request_duration_seconds_bucket"].help,
            "A histogram of the request duration."
        );
        assert!(
            !d.metadata.contains_key("something_weird"),
            "untyped, no help"
        );
        // As printed on the page, the UTF-8 line has no value.
        let printed = text.replace("\"Not Found\"} 1\n", "\"Not Found\"}\n");
        assert_error(
            scrape(&printed),
            "m.prom:10: {\"my.dotted.metric\",\"error.message\"=\"Not Found\"}: missing value",
        );
    }

    #[test]
    fn help_text_unescapes_backslash_and_newline_only() {
        let d = import(concat!(
            "# HELP x a\\\\b\\nc\\\"d\\te \n",
            "# TYPE x gauge\n",
            "x -Inf 1\n",
        ))
        .unwrap();
        assert_eq!(d.metadata["x"].help, "a\\b\nc\\\"d\\te ");
        assert_eq!(d.series[0].values, vec![f64::NEG_INFINITY]);
        // The text is all after the blank that ends the name.
        let d = import("#\tHELP\tx\t  two  \nx 1 1\n").unwrap();
        assert_eq!(d.metadata["x"].help, "  two  ");
        let d = import("# HELP x\nx 1 1\n").unwrap();
        assert!(!d.metadata.contains_key("x"), "an empty HELP is no help");
    }

    #[test]
    fn blanks_separate_tokens_anywhere_in_the_text_format() {
        let d = import(" \t m \t{ a = \"1\" ,\tb=\"\" , }\t 5 \t 7 \t\n").unwrap();
        // An empty label value is no label, as in Prometheus.
        let s = series(&d, r#"m{a="1"}"#);
        assert_eq!((s.timestamps[0], s.values[0]), (7_000_000, 5.0));
        let d = import("m{a=\"1\"}5 7\n").unwrap();
        assert_eq!(d.series[0].values, vec![5.0]);
    }

    #[test]
    fn comments_and_empty_lines_are_ignored() {
        let d =
            import("# a comment\n#HELP x not metadata\n\n   \n# EOF is not alone here\nx 1 2\n")
                .unwrap();
        assert_eq!(d.series.len(), 1);
        assert!(d.metadata.is_empty());
    }

    #[test]
    fn a_missing_last_newline_is_accepted() {
        assert_eq!(import("x 1 2").unwrap().series.len(), 1);
    }

    #[test]
    fn utf8_names_are_kept_exactly() {
        let d = import(concat!(
            "# TYPE \"disk.all.read\" counter\n",
            "# HELP \"disk.all.read\" Bytes read, by \"host\".\n",
            "{\"disk.all.read\", host=\"a\"} 5 1704067200000\n",
            "{\"disk.all.read\",host=\"b\",\"k8s.pod\"=\"x\"} 6 1704067200000\n",
            "m{\"my.label\"=\"x\",\"ü ñ\"=\"\"} 1 1704067200000\n",
        ))
        .unwrap();
        let s = series(&d, r#"{"disk.all.read",host="a"}"#);
        assert_eq!(s.key.metric, "disk.all.read");
        assert_eq!((s.timestamps[0], s.values[0]), (DEFAULT_NS, 5.0));
        series(&d, r#"{"disk.all.read",host="b","k8s.pod"="x"}"#);
        let s = series(&d, r#"m{"my.label"="x"}"#);
        assert!(
            !s.key.labels.contains_key("ü ñ"),
            "an empty value is no label"
        );
        assert_eq!(kind(&d, "disk.all.read"), Some(MetricKind::Counter));
        assert_eq!(d.metadata["disk.all.read"].help, "Bytes read, by \"host\".");
    }

    #[test]
    fn text_format_metadata_rules() {
        for (text, want) in [
            ("# TYPE x gauge\n# TYPE x counter\nx 1 1\n", "m.prom:2: a second TYPE line for x (the first is at line 1)"),
            ("# HELP x a\n# HELP x b\nx 1 1\n", "m.prom:2: a second HELP line for x"),
            ("x 1 1\n# TYPE x gauge\n", "m.prom:2: # TYPE x comes after its sample x (line 1)"),
            ("x_sum 1 1\n# TYPE x summary\n", "m.prom:2: # TYPE x comes after its sample x_sum (line 1)"),
            ("# HELP x h\nx 1 1\n# TYPE x gauge\n", "m.prom:3: # TYPE x comes after its samples (line 2)"),
            ("# TYPE x counter extra\n", "m.prom:1: # TYPE x: exactly two tokens"),
            ("# TYPE x\n", "m.prom:1: # TYPE x needs a type"),
            ("# TYPE x gaugehistogram\n", "unknown type \"gaugehistogram\""),
            ("# TYPE x Counter\n", "unknown type \"Counter\""),
            ("# HELP\n", "m.prom:1: # HELP needs a metric name"),
            ("# TYPE  \n", "# TYPE needs a metric name"),
            ("# HELP a.b text\n", "invalid metric name \"a.b\""),
            ("# TYPE \"a\"b gauge\n", "unexpected \"b gauge\" after the metric name"),
            ("# TYPE x histogram\nx 1 1\n", "m.prom:2: x is declared a histogram (line 1), whose samples are named x_bucket, x_count, x_sum"),
            ("# TYPE x histogram\n# TYPE x_count counter\n", "m.prom:2: x_count is a sample name of the histogram x (line 1)"),
            ("# TYPE x_count counter\n# TYPE x histogram\n", "m.prom:2: # TYPE x histogram: its sample name x_count is already the counter x_count"),
        ] {
            assert_error(import(text), want);
        }
        // Scrapes appended to one file repeat their metadata: the same TYPE
        // and HELP again are fine in the text format, also after samples.
        let d =
            import("# HELP x a\n# TYPE x counter\nx 1 1\n# HELP x a\n# TYPE x counter\nx 2 2\n")
                .unwrap();
        assert_eq!(d.series[0].values, vec![1.0, 2.0]);
        assert_eq!(kind(&d, "x"), Some(MetricKind::Counter));
        // An exemplar on a family without a TYPE line (OpenMetrics `unknown`) is
        // taken, as Prometheus takes it; the sample stays.
        let d = import("http_requests_total{code=\"200\"} 5 1704067200 # {trace_id=\"abc\"} 1 1704067199\n# EOF\n").unwrap();
        assert_eq!(d.series[0].values, vec![5.0]);
        assert_error(
            import("# TYPE a gauge\na 1 1 # {a=\"b\"} 1\n# EOF\n"),
            "exemplars are allowed only",
        );
        // One TYPE for two families that could clash is fine in order.
        import("# TYPE x summary\n# TYPE y counter\nx_sum 1 1\nx_count 1 1\ny 1 1\n").unwrap();
    }

    #[test]
    fn text_format_sample_syntax_errors_name_the_line() {
        for (text, want) in [
            ("up 1 5\nup x 6\n", "m.prom:2: value \"x\" is not a number"),
            ("up{a=\"b\" 1 5\n", "m.prom:1: expected ',' or '}' in the label set, found '1'"),
            ("up 1 5 6\n", "m.prom:1: unexpected \"6\" after the timestamp"),
            ("up 1 5 # {a=\"b\"} 1\n", "unexpected \"#\" after the timestamp"),
            ("up\n", "m.prom:1: up: missing value"),
            ("m{a=\"1\",a=\"2\"} 1 1\n", "m.prom:1: label \"a\" appears twice"),
            ("m{a=\"1\",a=\"1\"} 1 1\n", "label \"a\" appears twice"),
            ("m{a=\"1\" b=\"2\"} 1 1\n", "expected ',' or '}'"),
            ("m{a=\"1\",,} 1 1\n", "two commas"),
            ("m{a=\"\\x\"} 1 1 1\n", "unexpected \"1\""),
            ("a.b 1 1\n", "invalid metric name \"a.b\""),
            ("up 0x1p-3 1\n", "value \"0x1p-3\" is not a number"),
            ("up 1_000 1\n", "value \"1_000\" is not a number"),
            ("up 1e400 1\n", "m.prom:1: value \"1e400\" is out of the range of a 64-bit float"),
            ("up +NaN 1\n", "value \"+NaN\" is not a number"),
            ("up 1 1.5\n", "m.prom:1: timestamp \"1.5\": the Prometheus text format takes integer milliseconds"),
            ("up 1 1e3\n", "timestamp \"1e3\": the Prometheus text format takes integer"),
            ("up 1 x\n", "timestamp \"x\" is not an integer"),
            ("up 1 0x10\n", "timestamp \"0x10\" is not an integer"),
            ("m 1 340282366920938463463374607431769\n", "m.prom:1: timestamp \"340282366920938463463374607431769\" is out of range"),
            ("m 1 9223372036854776\n", "m.prom:1: timestamp \"9223372036854776\" is out of range"),
        ] {
            assert_error(import(text), want);
        }
    }

    #[test]
    fn a_carriage_return_gets_a_hint() {
        assert_error(
            import("up 1 5\r\nup 2 6\r\n"),
            "m.prom:1: timestamp \"5\\r\" is not an integer (the line ends with a carriage return",
        );
        // In a label value it is just a character.
        let d = import("m{a=\"x\ry\"} 1 5\n").unwrap();
        assert_eq!(d.series[0].key.labels["a"], "x\ry");
    }

    #[test]
    fn values_follow_go_parse_float() {
        let d = import(concat!(
            "a NaN 1\nb +Inf 1\nc -Inf 1\nd Inf 1\ne -Infinity 1\nf inf 1\ng nan 1\n",
            "h 1e3 1\ni -0 1\nj .5 1\nk 1. 1\nl 00001.50 1\n",
        ))
        .unwrap();
        let v = |k: &str| series(&d, k).values[0];
        assert!(v("a").is_nan() && v("g").is_nan());
        assert_eq!(v("b"), f64::INFINITY);
        assert_eq!(v("d"), f64::INFINITY);
        assert_eq!(v("f"), f64::INFINITY);
        assert_eq!(v("c"), f64::NEG_INFINITY);
        assert_eq!(v("e"), f64::NEG_INFINITY);
        assert_eq!(v("h"), 1000.0);
        assert_eq!(v("i").to_bits(), (-0.0f64).to_bits());
        assert_eq!((v("j"), v("k"), v("l")), (0.5, 1.0, 1.5));
    }

    #[test]
    fn text_timestamps_are_signed_integer_milliseconds() {
        let d = import("a 1 +5\nb 1 -5\nc 1 0\n").unwrap();
        assert_eq!(series(&d, "a").timestamps, vec![5_000_000]);
        assert_eq!(series(&d, "b").timestamps, vec![-5_000_000]);
        let d = import_with(
            "a 1 1700000000\n",
            ImportOptions {
                timestamp_unit: TimestampUnit::Seconds,
                ..ImportOptions::default()
            },
        )
        .unwrap();
        assert_eq!(d.series[0].timestamps, vec![1_700_000_000_000_000_000]);
    }

    #[test]
    fn a_sample_without_timestamp_needs_the_default() {
        assert_error(
            import("up 1\n"),
            "m.prom:1: sample has no timestamp (a live scrape has none: pass --default-timestamp",
        );
        assert_error(import("up 1\n# EOF\n"), "m.prom:1: sample has no timestamp");
        let d = scrape("up 1\n").unwrap();
        assert_eq!(d.series[0].timestamps, vec![DEFAULT_NS]);
    }

    #[test]
    fn text_format_histograms_and_summaries_are_checked() {
        for (text, want) in [
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1 1\nh_count 1 1\n",
                "m.prom:2: h: the histogram point that starts here has no le=\"+Inf\" bucket",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2 1\nh_count 3 1\n",
                "m.prom:3: h_count is 3 but its +Inf bucket (line 2) is 2",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"2\"} 1 1\nh_bucket{le=\"1\"} 1 1\nh_bucket{le=\"+Inf\"} 1 1\n",
                "m.prom:3: h: bucket le=1 after le=2",
            ),
            ("# TYPE h histogram\nh_bucket 1 1\n", "m.prom:2: h_bucket: a histogram bucket needs an le label"),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1 1\n", "le=\"x\" is not a number"),
            ("# TYPE s summary\ns 1 1\n", "m.prom:2: s: the samples named s of a summary are quantiles"),
            ("# TYPE s summary\ns{quantile=\"2\"} 1 1\n", "quantile=\"2\" is not a number from 0 to 1"),
            (
                "# TYPE s summary\ns{quantile=\"0.9\"} 1 1\ns{quantile=\"0.5\"} 1 1\n",
                "m.prom:3: s: quantile 0.5 after 0.9",
            ),
        ] {
            assert_error(import(text), want);
        }
        // Several scrapes, one after another: each scrape's histogram is one point.
        let d = import(concat!(
            "# TYPE h histogram\n",
            "h_bucket{le=\"1\"} 1 1000\nh_bucket{le=\"+Inf\"} 2 1000\nh_count 2 1000\nh_sum 3 1000\n",
            "up 1 1000\n",
            "h_bucket{le=\"1\"} 1 2000\nh_bucket{le=\"+Inf\"} 5 2000\nh_count 5 2000\nh_sum 9 2000\n",
            "up 1 2000\n",
        ))
        .unwrap();
        assert_eq!(series(&d, "h_count").values, vec![2.0, 5.0]);
        // In the text format a NaN count equals a NaN +Inf bucket.
        import("# TYPE h histogram\nh_bucket{le=\"+Inf\"} NaN 1\nh_count NaN 1\n").unwrap();
    }

    // ---- OpenMetrics -------------------------------------------------------

    #[test]
    fn openmetrics_timestamps_are_seconds() {
        let d = import("temp{room=\"a\"} 21.5 1700000000.250\n# EOF\n").unwrap();
        assert_eq!(d.series[0].timestamps[0], 1_700_000_000_250_000_000);
        let d = import("a 1 1.5e3\nb 1 -1\nc 1 .5\nd 1 000\ne 1 1E-9\nf 1 +2\n# EOF").unwrap();
        assert_eq!(series(&d, "a").timestamps, vec![1_500_000_000_000]);
        assert_eq!(series(&d, "b").timestamps, vec![-1_000_000_000]);
        assert_eq!(series(&d, "c").timestamps, vec![500_000_000]);
        assert_eq!(series(&d, "d").timestamps, vec![0]);
        assert_eq!(series(&d, "e").timestamps, vec![1]);
        assert_eq!(series(&d, "f").timestamps, vec![2_000_000_000]);
        for (text, want) in [
            (
                "a 1 NaN\n# EOF\n",
                "m.prom:1: timestamp \"NaN\" is not a number",
            ),
            ("a 1 +Inf\n# EOF\n", "timestamp \"+Inf\" is not a number"),
            (
                "a 1 1e400\n# EOF\n",
                "m.prom:1: timestamp \"1e400\" is out of range",
            ),
            (
                "a 1 1e-10\n# EOF\n",
                "m.prom:1: timestamp \"1e-10\" is finer than a nanosecond",
            ),
            ("a 1 12345678901234567890.1\n# EOF\n", "is out of range"),
            (
                "m 1 340282366920938463463374607431769\n# EOF\n",
                "m.prom:1: timestamp \"340282366920938463463374607431769\" is out of range",
            ),
        ] {
            assert_error(import(text), want);
        }
    }

    #[test]
    fn an_exemplar_is_checked_and_dropped() {
        let d = import(concat!(
            "# TYPE http_requests counter\n",
            "http_requests_total{code=\"200\"} 5 1704067200 # {trace_id=\"abc\"} 1 1704067199\n",
            "# EOF\n",
        ))
        .unwrap();
        assert_eq!(d.series.len(), 1);
        let s = &d.series[0];
        assert_eq!(s.key.to_string(), r#"http_requests_total{code="200"}"#);
        assert_eq!(
            (s.timestamps.clone(), s.values.clone()),
            (vec![DEFAULT_NS], vec![5.0])
        );
        assert_eq!(kind(&d, "http_requests_total"), Some(MetricKind::Counter));
        for (line, want) in [
            (
                "5 1 # {trace_id=\"abc\"}",
                "m.prom:2: http_requests_total{code=\"200\"}: exemplar needs one space and a value",
            ),
            (
                "5 1 # {trace_id=\"abc\"} x",
                "exemplar value \"x\" is not a number",
            ),
            (
                "5 1 # {trace_id=\"abc\"} 1 NaN",
                "exemplar timestamp \"NaN\" is not a number",
            ),
            (
                "5 1 # {trace_id=\"abc\"} 1 Inf",
                "exemplar timestamp \"Inf\"",
            ),
            (
                "5 1 # {trace_id=\"abc\"} 1 -Inf",
                "exemplar timestamp \"-Inf\"",
            ),
            (
                "5 1 # {trace_id=\"abc\"} 1 1 1",
                "exemplar unexpected \"1 1\"",
            ),
            (
                "5 1 # {trace_id=abc} 1",
                "exemplar label \"trace_id\": value must be in double quotes",
            ),
            (
                "5 1 # trace_id=\"abc\" 1",
                "exemplar must be written ` # {labels} value [timestamp]`",
            ),
            ("5 1 # {\"name\"} 1", "a metric name is not allowed here"),
            ("5 1 #{} 1", "unexpected \"#{} 1\" after the timestamp"),
        ] {
            let text = format!(
                "# TYPE http_requests counter\nhttp_requests_total{{code=\"200\"}} {line}\n# EOF\n"
            );
            assert_error(import(&text), want);
        }
    }

    #[test]
    fn exemplar_labels_are_at_most_128_characters() {
        let ok = format!(
            "# TYPE a histogram\na_bucket{{le=\"+Inf\"}} 1 # {{a=\"☃{}\"}} 1 1\n# EOF\n",
            "7".repeat(126)
        );
        check_syntax(&ok).unwrap();
        let long = ok.replace("☃", "☃☃");
        assert_error(
            check_syntax(&long),
            "exemplar labels are 129 characters long",
        );
        // Combining marks count as the code points they are.
        let marks = format!(
            "# TYPE a counter\na_total 1 # {{a=\"{}\"}} 1\n# EOF\n",
            "e\u{301}".repeat(64)
        );
        assert_error(
            check_syntax(&marks),
            "exemplar labels are 129 characters long",
        );
    }

    #[test]
    fn eof_must_be_the_last_line() {
        scrape("a 1\n# EOF").unwrap();
        scrape("a 1\n# EOF\n").unwrap();
        for (text, want) in [
            ("a 1\n# EOF\n\n", "m.prom:3: text after \"# EOF\""),
            ("a 1\n# EOF\nb 2\n", "m.prom:3: text after \"# EOF\""),
            (
                "a 1\n# EOF\na 1\n# EOF\n",
                "m.prom:3: text after \"# EOF\": an OpenMetrics exposition",
            ),
            ("a 1\n\n# EOF\n", "m.prom:2: empty line"),
            (
                "a 1\n# EOF \nb 1\n# EOF\n",
                "m.prom:2: the end line must be exactly \"# EOF\"",
            ),
        ] {
            assert_error(scrape(text), want);
        }
    }

    #[test]
    fn openmetrics_types_resolve_per_sample_name() {
        let d = scrape(concat!(
            "# TYPE c counter\n# UNIT c \n# HELP c A \\\"counter\\\".\nc_total 1\nc_created 1.7e9\n",
            "# TYPE g_seconds gauge\n# UNIT g_seconds seconds\ng_seconds 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\nh_created 1\n",
            "# TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 1\ngh_gcount 1\ngh_gsum 1\n",
            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_count 1\ns_sum 1\ns_created 1\n",
            "# TYPE i info\ni_info{v=\"1\"} 1\n",
            "# TYPE st stateset\nst{st=\"a\"} 1\n",
            "# TYPE u unknown\n# HELP u Who knows.\nu 1\n",
            "plain 1\n",
            "# EOF\n",
        ))
        .unwrap();
        use MetricKind::*;
        for (metric, k) in [
            ("c_total", Counter),
            ("c_created", Gauge),
            ("g_seconds", Gauge),
            ("h_bucket", Counter),
            ("h_count", Counter),
            ("h_sum", Counter),
            ("h_created", Gauge),
            ("gh_bucket", Gauge),
            ("gh_gcount", Gauge),
            ("gh_gsum", Gauge),
            ("s", Gauge),
            ("s_count", Counter),
            ("s_sum", Counter),
            ("s_created", Gauge),
            ("i_info", Gauge),
            ("st", Gauge),
            ("u", Unknown),
        ] {
            assert_eq!(kind(&d, metric), Some(k), "{metric}");
        }
        assert!(!d.metadata.contains_key("plain"));
        assert_eq!(d.metadata["c_total"].help, "A \"counter\".");
        assert_eq!(d.metadata["c_created"].help, "A \"counter\".");
        assert_eq!(d.metadata["c_total"].unit, "");
        assert_eq!(d.metadata["g_seconds"].unit, "seconds");
        assert_eq!(d.metadata["u"].help, "Who knows.");
        assert!(d.is_counter("c_total") && !d.is_counter("c_created"));
    }

    #[test]
    fn openmetrics_utf8_names() {
        let d = scrape(concat!(
            "# TYPE \"process.cpu_seconds\" counter\n",
            "# UNIT \"process.cpu_seconds\" seconds\n",
            "# HELP \"process.cpu_seconds\" CPU time.\n",
            "{\"process.cpu_seconds_total\",\"node.name\"=\"my_node\"} 4.2e6\n",
            "# EOF\n",
        ))
        .unwrap();
        let s = series(&d, r#"{"process.cpu_seconds_total","node.name"="my_node"}"#);
        assert_eq!(s.values, vec![4.2e6]);
        assert_eq!(
            kind(&d, "process.cpu_seconds_total"),
            Some(MetricKind::Counter)
        );
        assert_eq!(d.metadata["process.cpu_seconds_total"].unit, "seconds");
        // OpenMetrics 1.0: an underscore and the unit end the name.
        assert_error(
            check_syntax("# TYPE \"a.seconds\" gauge\n# UNIT \"a.seconds\" seconds\n# EOF\n"),
            "must end with _seconds",
        );
    }

    #[test]
    fn openmetrics_label_values_keep_unknown_escapes() {
        // The OpenMetrics ABNF: escaped-char =/ BS normal-char; the
        // conformance suite's "escaping" case keeps `\z` as it is.
        let d = scrape(concat!(
            "# TYPE a counter\n# HELP a he\\n\\\\l\\tp\n",
            "a_total{foo=\"b\\\"a\\nr\"} 1\na_total{foo=\"b\\\\a\\z\"} 2\n# EOF\n",
        ))
        .unwrap();
        series(&d, "a_total{foo=\"b\\\"a\\nr\"}");
        let s = series(&d, "a_total{foo=\"b\\\\a\\\\z\"}");
        assert_eq!(s.key.labels["foo"], "b\\a\\z");
        assert_eq!(d.metadata["a_total"].help, "he\n\\l\\tp");
    }

    /// The examples of the OpenMetrics 1.0 specification, each with `# EOF`.
    #[test]
    fn the_examples_of_the_openmetrics_specification_import() {
        let spec = include_str!("../../tests/fixtures/prometheus/openmetrics-spec.om");
        let d = scrape(spec).unwrap();
        assert_eq!(d.series.len(), 8);
        let s = series(
            &d,
            r#"acme_http_router_request_seconds_count{method="GET",path="/api/v1"}"#,
        );
        assert_eq!(s.values, vec![807283.0]);
        assert_eq!(
            kind(&d, "acme_http_router_request_seconds_count"),
            Some(MetricKind::Counter)
        );
        assert_eq!(
            d.metadata["acme_http_router_request_seconds_sum"].unit,
            "seconds"
        );
        assert_eq!(
            kind(&d, "process_cpu_seconds_total"),
            Some(MetricKind::Counter)
        );
        let good = [
            "# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n",
            "# TYPE foo_seconds counter\n",
            "# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds Some text and \\n some \\\" escaping\n",
            "bar_seconds_count 0\n",
            "bar_seconds_count{} 0\n",
            "bar_seconds_count{a=\"x\",b=\"escaping\\\" example \\n \"} 0\n",
            "# TYPE foo_seconds summary\n# UNIT foo_seconds seconds\nfoo_seconds_count{a=\"bb\"} 0 123\nfoo_seconds_sum{a=\"bb\"} 0 123\nfoo_seconds_count{a=\"bb\"} 0 456\nfoo_seconds_sum{a=\"bb\"} 0 456\nfoo_seconds_count{a=\"ccc\"} 0 123\nfoo_seconds_sum{a=\"ccc\"} 0 123\nfoo_seconds_count{a=\"ccc\"} 0 456\nfoo_seconds_sum{a=\"ccc\"} 0 456\n",
            "# TYPE foo gauge\nfoo 17.0\n",
            "# TYPE foo gauge\nfoo{a=\"bb\"} 17.0\nfoo{a=\"ccc\"} 17.0\n",
            "# TYPE foo gauge\n",
            "# TYPE foo gauge\nfoo{a=\"b\"} 17.0 1520879607.789\n",
            "# TYPE foo gauge\nfoo 17.0 1520879607.789\n",
            "# TYPE foo gauge\nfoo 17.0 123\nfoo 18.0 456\n",
            "# TYPE foo counter\nfoo_total 17.0\n",
            "# TYPE foo counter\nfoo_total 17.0 1520879607.789\n",
            "# TYPE foo counter\nfoo_total 17.0\nfoo_created 1520430000.123\n",
            "# TYPE foo counter\nfoo_total 17.0 1520879607.789\nfoo_created 1520430000.123 1520879607.789\n",
            "# TYPE foo stateset\nfoo{foo=\"a\"} 0\nfoo{foo=\"bb\"} 1\nfoo{foo=\"ccc\"} 0\n",
            "# TYPE foo stateset\nfoo{entity=\"controller\",foo=\"a\"} 1.0\nfoo{entity=\"controller\",foo=\"bb\"} 0.0\nfoo{entity=\"controller\",foo=\"ccc\"} 0.0\nfoo{entity=\"replica\",foo=\"a\"} 1.0\nfoo{entity=\"replica\",foo=\"bb\"} 0.0\nfoo{entity=\"replica\",foo=\"ccc\"} 1.0\n",
            "# TYPE foo info\nfoo_info{name=\"pretty name\",version=\"8.2.7\"} 1\n",
            "# TYPE foo info\nfoo_info{entity=\"controller\",name=\"pretty name\",version=\"8.2.7\"} 1.0\nfoo_info{entity=\"replica\",name=\"prettier name\",version=\"8.1.9\"} 1.0\n",
            "# TYPE foo summary\nfoo_count 17.0\nfoo_sum 324789.3\nfoo_created 1520430000.123\n",
            "# TYPE foo summary\nfoo{quantile=\"0.95\"} 123.7\nfoo{quantile=\"0.99\"} 150.0\n",
            "# TYPE foo histogram\nfoo_bucket{le=\"0.0\"} 0\nfoo_bucket{le=\"1e-05\"} 0\nfoo_bucket{le=\"0.0001\"} 5\nfoo_bucket{le=\"0.1\"} 8\nfoo_bucket{le=\"1.0\"} 10\nfoo_bucket{le=\"10.0\"} 11\nfoo_bucket{le=\"100000.0\"} 11\nfoo_bucket{le=\"1e+06\"} 15\nfoo_bucket{le=\"1e+23\"} 16\nfoo_bucket{le=\"1.1e+23\"} 17\nfoo_bucket{le=\"+Inf\"} 17\nfoo_count 17\nfoo_sum 324789.3\nfoo_created 1520430000.123\n",
            "# TYPE foo gaugehistogram\nfoo_bucket{le=\"0.01\"} 20.0\nfoo_bucket{le=\"0.1\"} 25.0\nfoo_bucket{le=\"1\"} 34.0\nfoo_bucket{le=\"10\"} 34.0\nfoo_bucket{le=\"+Inf\"} 42.0\nfoo_gcount 42.0\nfoo_gsum 3289.3\n",
            "# TYPE foo unknown\nfoo 42.23\n",
            "# TYPE target info\n# HELP target Target metadata\ntarget_info{env=\"prod\",hostname=\"myhost\",datacenter=\"sdc\",region=\"europe\",owner=\"frontend\"} 1\n",
            "# HELP my_counter Good increment example\n# TYPE my_counter counter\nmy_counter_total 1\n",
            "# HELP my_counter Bad increment example\n# TYPE my_counter counter\nmy_counter_total 1 123\n",
            "# HELP my_counter Good increment example\n# TYPE my_counter counter\nmy_counter_total 1\n# HELP my_counter_last_increment_timestamp_seconds When my_counter was last incremented\n# TYPE my_counter_last_increment_timestamp_seconds gauge\n# UNIT my_counter_last_increment_timestamp_seconds seconds\nmy_counter_last_increment_timestamp_seconds 123\n",
            "# TYPE my_boot_time_seconds gauge\n# HELP my_boot_time_seconds Boot time of the machine\n# UNIT my_boot_time_seconds seconds\nmy_boot_time_seconds 1256060124\n",
            "# HELP acme_notifications_queue_capacity The capacity of the notifications queue.\n# TYPE acme_notifications_queue_capacity gauge\nacme_notifications_queue_capacity 10000\n# HELP acme_notifications_queue_length The number of notifications in the queue.\n# TYPE acme_notifications_queue_length gauge\nacme_notifications_queue_length 42\n",
            "wrong_metric{label=\"a\"} 1\nwrong_metric{label=\"b\"} 6\nwrong_metric{label=\"total\"} 7\n",
        ];
        for example in good {
            let text = format!("{example}# EOF\n");
            check_syntax(&text).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        let d = scrape("# TYPE foo counter\nfoo_total 17.0 1520879607.789\nfoo_created 1520430000.123 1520879607.789\n# EOF\n").unwrap();
        let s = series(&d, "foo_created");
        assert_eq!(
            (s.timestamps[0], s.values[0]),
            (1_520_879_607_789_000_000, 1520430000.123)
        );
        // The examples the specification calls invalid.
        for (example, want) in [
            ("# TYPE foo counter\n# UNIT foo seconds\n", "m.prom:2: # UNIT foo seconds: the family's name must end with _seconds"),
            (
                "# TYPE foo_seconds summary\n# UNIT foo_seconds seconds\nfoo_seconds_count{a=\"bb\"} 0 123\nfoo_seconds_count{a=\"ccc\"} 0 123\nfoo_seconds_count{a=\"bb\"} 0 456\nfoo_seconds_count{a=\"ccc\"} 0 456\n",
                "m.prom:5: foo_seconds_count{a=\"bb\"}: the samples of this metric began at line 3 and were interrupted",
            ),
            (
                "# TYPE foo_seconds summary\n# UNIT foo_seconds seconds\nfoo_seconds_count{a=\"bb\"} 0 123\nfoo_seconds_count{a=\"bb\"} 0 456\nfoo_seconds_sum{a=\"bb\"} 0 123\nfoo_seconds_sum{a=\"bb\"} 0 456\n",
                "m.prom:5: foo_seconds_sum{a=\"bb\"}: its timestamp is before that of the point before it",
            ),
        ] {
            assert_error(check_syntax(&format!("{example}# EOF\n")), want);
        }
        // The exemplar example has two spaces before the value of
        // foo_created, which the ABNF (one SP) refuses.
        let exemplars = "# TYPE foo histogram\nfoo_bucket{le=\"0.01\"} 0\nfoo_bucket{le=\"0.1\"} 8 # {} 0.054\nfoo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\nfoo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789\nfoo_bucket{le=\"+Inf\"} 17\nfoo_count 17\nfoo_sum 324789.3\nfoo_created  1520430000.123\n# EOF\n";
        assert_error(
            check_syntax(exemplars),
            "m.prom:9: foo_created: missing value (exactly one space",
        );
        check_syntax(&exemplars.replace("created  ", "created ")).unwrap();
    }

    /// Inputs in the manner of the OpenMetrics parser conformance suite
    /// (`tests/testdata/parsers` of OpenObservability/OpenMetrics and the
    /// Python client's test_parser.py), written for this test.
    #[test]
    fn openmetrics_conformance_good_inputs_are_accepted() {
        let good = [
            "# TYPE a counter\n# HELP a help\na_total 1\n# EOF\n",
            "# TYPE a counter\n# HELP a help\na_total 9223372036854775808\n# EOF\n",
            "# TYPE a gauge\n# HELP a help\na 1.2\n# EOF\n",
            "# TYPE a gauge\n# HELP a help\na 0000000000000000000000000000000000000000001\n# EOF\n",
            "# TYPE a gauge\n# HELP a help\na 0000000000000000000000000000000000000000001.2e-1\n# EOF\n",
            "# TYPE a gauge\n# HELP a help\na NaN\n# EOF\n",
            "# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n# HELP a_seconds help\na_seconds 1\n# EOF\n",
            "# TYPE a summary\n# HELP a help\na_count 1\na_sum 2\n# EOF\n",
            "# TYPE a summary\n# HELP a help\na_count 1\na_sum 2\na{quantile=\"0.5\"} 0.7\na{quantile=\"1\"} 0.8\n# EOF\n",
            "# TYPE a histogram\n# HELP a help\na_bucket{le=\"1.0\"} 0\na_bucket{le=\"+Inf\"} 3\na_count 3\na_sum 2\n# EOF\n",
            "# TYPE a histogram\n# HELP a help\na_bucket{le=\"1.0\"} 0.0\na_bucket{le=\"+Inf\"} 3.0\na_count 3.0\na_sum 2.0\n# EOF\n",
            "# TYPE a histogram\n# HELP a help\na_bucket{le=\"0\"} 0\na_bucket{le=\"0.00000000001\"} 0\na_bucket{le=\"1e-04\"} 0\na_bucket{le=\"1.1e-4\"} 0\na_bucket{le=\"1\"} 0\na_bucket{le=\"1e+05\"} 0\na_bucket{le=\"100000000000.0\"} 0\na_bucket{le=\"+Inf\"} 3\na_count 3\na_sum 2\n# EOF\n",
            "# TYPE a histogram\n# HELP a help\na_bucket{le=\"-1.0\"} 0\na_bucket{le=\"1.0\"} 1\na_bucket{le=\"+Inf\"} 3\n# EOF\n",
            "# TYPE a histogram\n# HELP a help\na_bucket{le=\"1.0\"} 0 # {a=\"b\"} 0.5\na_bucket{le=\"2.0\"} 2 # {a=\"c\"} 0.5\na_bucket{le=\"+Inf\"} 3 # {a=\"d\"} 4 123\n# EOF\n",
            "# TYPE a gaugehistogram\n# HELP a help\na_bucket{le=\"1.0\"} 0\na_bucket{le=\"+Inf\"} 3\na_gcount 3\na_gsum 2\n# EOF\n",
            "# TYPE a gaugehistogram\n# HELP a help\na_bucket{le=\"-1.0\"} 1\na_bucket{le=\"1.0\"} 2\na_bucket{le=\"+Inf\"} 3\na_gcount 3\na_gsum -5\n# EOF\n",
            "# TYPE a gaugehistogram\n# HELP a help\na_bucket{le=\"1.0\"} 0 123 # {a=\"b\"} 0.5\na_bucket{le=\"2.0\"} 2 123 # {a=\"c\"} 0.5\na_bucket{le=\"+Inf\"} 3 123 # {a=\"d\"} 4 123\n# EOF\n",
            "# TYPE a counter\n# HELP a help\na_total 0 123 # {a=\"b\"} 0.5\n# EOF\n",
            "# TYPE a counter\n# HELP a help\na_total{} 0 123 # {a=\"b\"} 0.5\n# EOF\n",
            "# TYPE a info\n# HELP a help\na_info{foo=\"bar\"} 1\n# EOF\n",
            "# TYPE a info\n# HELP a help\na_info{a=\"1\",foo=\"bar\"} 1 1\na_info{a=\"2\",foo=\"bar\"} 1 0\n# EOF\n",
            "# TYPE a stateset\n# HELP a help\na{a=\"bar\"} 0\na{a=\"foo\"} 1.0\n# EOF\n",
            "a 1\n# EOF\n",
            "# HELP a \n# UNIT a \n# EOF\n",
            "# HELP redis_connected_clients Redis connected clients\n# TYPE redis_connected_clients unknown\nredis_connected_clients{instance=\"rough-snowflake-web\",port=\"6380\"} 10.0\nredis_connected_clients{instance=\"rough-snowflake-web\",port=\"6381\"} 12.0\n# EOF\n",
            "# HELP a help\n# TYPE a counter\na_total 1\n# EOF\n",
            "# TYPE a counter\n# HELP a help\na_total{foo=\"bar\",bar=\"b{a}z\"} 1\n# EOF\n",
            "# TYPE a counter\n# HELP a \na_total 1\n# EOF\n",
            "# TYPE a gauge\n# HELP a help\na{foo=\"bar\"} +Inf\na{foo=\"baz\"} -Inf\n# EOF\n",
            "a NaN\n# EOF\n",
            "# TYPE a gauge\n# HELP a help\na 1\n# EOF",
            "# TYPE a counter\n# HELP a help\na_total{foo=\"bar\"} 1\na_total{foo=\"\"} 2\n# EOF\n",
            "# TYPE a counter\n# HELP a he\\\\n\\\\\\\\l\\\\tp\na_total{foo=\"b\\\"a\\nr # \"} 3\na_total{foo=\"b\\\\a\\z # \"} 4\n# EOF\n",
            "# TYPE a counter\n# HELP a he\u{0}lp\n# EOF\n",
            "# TYPE a counter\n# HELP a help\na_total{foo=\"1\"} 1 000\na_total{foo=\"2\"} 1 0.0\na_total{foo=\"3\"} 1 1.1\na_total{foo=\"5\"} 1 1.5e3\n# TYPE b counter\n# HELP b help\nb_total 2 1234567890\n# EOF\n",
            "# TYPE a counter\n# HELP a help\na_total{foo=\"foo # bar\"} 1\na_total{foo=\"} foo # bar # \"} 1\n# EOF\n",
            "# TYPE a histogram\n# HELP a help\na_bucket{le=\"1.0\",foo=\"bar # \"} 0 # {a=\"b\",foo=\"bar # bar\"} 0.5\na_bucket{le=\"2.0\",foo=\"bar # \"} 2 # {a=\"c\",foo=\"bar # bar\"} 0.5\na_bucket{le=\"+Inf\",foo=\"bar # \"} 3 # {a=\"d\",foo=\"bar # bar\"} 4\n# EOF\n",
            "# HELP foo histogram Testing histogram buckets\n# TYPE foo histogram\nfoo_bucket{le=\"0.0\"} 0.0\nfoo_bucket{le=\"1e-05\"} 0.0\nfoo_bucket{le=\"+Inf\"} 17.0\nfoo_count 17.0\nfoo_sum 324789.3\nfoo_created 1.520430000123e+09\n# HELP bar histogram Testing with labels\n# TYPE bar histogram\nbar_bucket{a=\"b\",le=\"+Inf\"} 0.0\nbar_bucket{a=\"c\",le=\"+Inf\"} 0.0\n# EOF\n",
        ];
        for text in good {
            check_syntax(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        // Label and HELP escapes: (written, read).
        for (written, read) in [
            ("foo", "foo"),
            ("\\foo", "\\foo"),
            ("\\\\foo", "\\foo"),
            ("foo\\\\", "foo\\"),
            ("\\\\", "\\"),
            ("\\n", "\n"),
            ("\\\\n", "\\n"),
            ("\\\\\\n", "\\\n"),
            ("\\\"", "\""),
            ("\\\\\\\"", "\\\""),
        ] {
            let text = format!("# TYPE a counter\n# HELP a {written}\na_total{{foo=\"{written}\",bar=\"baz\"}} 1\n# EOF\n");
            let d = scrape(&text).unwrap();
            assert_eq!(d.series[0].key.labels["foo"], read, "{written}");
            assert_eq!(d.metadata["a_total"].help, read, "{written}");
        }
        let d = scrape("# TYPE a counter\n# HELP a foo\\\n# HELP b \\\\\"\na_total 1\n# EOF\n");
        assert!(d.is_err(), "two families interleave: a, b, then a_total");
        let d = scrape("# HELP b \\\\\"\n# TYPE a counter\n# HELP a foo\\\na_total 1\n# EOF\n")
            .unwrap();
        assert_eq!(d.metadata["a_total"].help, "foo\\");
    }

    #[test]
    fn openmetrics_conformance_bad_inputs_are_rejected() {
        let long = format!("{{a=\"{}\"}}", "2".repeat(128));
        let bad: Vec<(String, &str)> = [
            // Text after EOF.
            ("a 1\n# EOF\nblah", "text after \"# EOF\""),
            // Blank line.
            ("a 1\n\n# EOF\n", "empty line"),
            // Missing or wrong quotes on label value.
            ("a{a=1} 1\n# EOF\n", "value must be in double quotes"),
            ("a{a=\"1} 1\n# EOF\n", "unterminated"),
            ("a{a='1'} 1\n# EOF\n", "value must be in double quotes"),
            // Missing equal or label value.
            ("a{a} 1\n# EOF\n", "expected '='"),
            ("a{a\"value\"} 1\n# EOF\n", "expected '='"),
            ("a{a\"\"} 1\n# EOF\n", "expected '='"),
            ("a{a=} 1\n# EOF\n", "value must be in double quotes"),
            ("a{a=\"} 1\n# EOF\n", "unterminated"),
            // Missing or extra commas.
            ("a{a=\"1\"b=\"2\"} 1\n# EOF\n", "expected ',' or '}'"),
            ("a{a=\"1\",,b=\"2\"} 1\n# EOF\n", "two commas"),
            ("a{a=\"1\",b=\"2\",} 1\n# EOF\n", "trailing comma"),
            // Invalid labels.
            ("a{1=\"1\"} 1\n# EOF\n", "invalid label name \"1\""),
            ("a{1=\"1\"}1\n# EOF\n", "invalid label name \"1\""),
            ("a{a=\"1\",a=\"1\"} 1\n# EOF\n", "appears twice"),
            ("a{a=\"1\"b} 1\n# EOF\n", "expected ',' or '}'"),
            ("a{1=\" # \"} 1\n# EOF\n", "invalid label name"),
            ("a{a=\" # \",a=\" # \"} 1\n# EOF\n", "appears twice"),
            ("a{a=\" # \"}1\n# EOF\n", "expected one space after the series"),
            ("a{a=\" # \",b=}1\n# EOF\n", "value must be in double quotes"),
            ("a{a=\" # \"b}1\n# EOF\n", "expected ',' or '}'"),
            // Missing value.
            ("a\n# EOF\n", "missing value"),
            ("a \n# EOF\n", "missing value"),
            // Bad HELP.
            ("# HELP\n# EOF\n", "# HELP must be followed by one space"),
            ("# HELP \n# EOF\n", "missing metric name"),
            ("# HELP a\n# EOF\n", "one space and a help text"),
            ("# HELP a\t\n# EOF\n", "one space and a help text"),
            (" # HELP a meh\n# EOF\n", "must not start with a blank"),
            // Bad TYPE.
            ("# TYPE\n# EOF\n", "# TYPE must be followed"),
            ("# TYPE \n# EOF\n", "missing metric name"),
            ("# TYPE a\n# EOF\n", "one space and a type"),
            ("# TYPE a\t\n# EOF\n", "one space and a type"),
            ("# TYPE a meh\n# EOF\n", "unknown type \"meh\""),
            ("# TYPE a meh \n# EOF\n", "unknown type \"meh \""),
            ("# TYPE a gauge \n# EOF\n", "unknown type \"gauge \""),
            ("# TYPE a untyped\n# EOF\n", "unknown type \"untyped\""),
            // Bad UNIT.
            ("# UNIT\n# EOF\n", "# UNIT must be followed"),
            ("# UNIT \n# EOF\n", "missing metric name"),
            ("# UNIT a\n# EOF\n", "one space and a unit"),
            ("# UNIT a\t\n# EOF\n", "one space and a unit"),
            ("# UNIT a seconds\n# EOF\n", "must end with _seconds"),
            ("# UNIT a_seconds seconds \n# EOF\n", "invalid unit \"seconds \""),
            ("# TYPE x_u info\n# UNIT x_u u\n# EOF\n", "an info has no unit"),
            ("# TYPE x_u stateset\n# UNIT x_u u\n# EOF\n", "a stateset has no unit"),
            ("# UNIT x_u u\n# TYPE x_u info\n# EOF\n", "an info has no unit"),
            // Metadata in the wrong place.
            ("# HELP a x\na 1\n# TYPE a gauge\n# EOF\n", "m.prom:3: # TYPE a comes after the family's samples (line 2)"),
            ("# TYPE a gauge\na 1\n# HELP a gauge\n# EOF\n", "# HELP a comes after the family's samples"),
            ("# TYPE a_s gauge\na_s 1\n# UNIT a_s s\n# EOF\n", "# UNIT a_s comes after the family's samples"),
            // Repeated metadata.
            ("# HELP a \n# HELP a \n# EOF\n", "a second HELP line for a"),
            ("# HELP a x\n# HELP a x\n# EOF\n", "a second HELP line for a"),
            ("# TYPE a unknown\n# TYPE a unknown\n# EOF\n", "a second TYPE line for a"),
            ("# UNIT a_s s\n# UNIT a_s s\n# EOF\n", "a second UNIT line for a_s"),
            // Bad metadata.
            ("# FOO a x\n# EOF\n", "OpenMetrics has no comments"),
            ("#a_sum 0\n# EOF\n", "OpenMetrics has no comments"),
            // Bad metric names.
            ("0a 1\n# EOF\n", "invalid metric name \"0a\""),
            ("a.b 1\n# EOF\n", "invalid metric name \"a.b\""),
            ("a-b 1\n# EOF\n", "invalid metric name \"a-b\""),
            // Bad values.
            ("a a\n# EOF\n", "value \"a\" is not a number"),
            ("a  1\n# EOF\n", "missing value"),
            ("a 1\t\n# EOF\n", "value \"1\\t\" is not a number"),
            ("a 1 \n# EOF\n", "a blank too many"),
            ("a 1_2\n# EOF\n", "value \"1_2\""),
            ("a 0x1p-3\n# EOF\n", "value \"0x1p-3\""),
            ("a 0x1P-3\n# EOF\n", "value \"0x1P-3\""),
            ("a 0b1\n# EOF\n", "value \"0b1\""),
            ("a 0B1\n# EOF\n", "value \"0B1\""),
            ("a 0x1\n# EOF\n", "value \"0x1\""),
            ("a 0X1\n# EOF\n", "value \"0X1\""),
            ("a 0o1\n# EOF\n", "value \"0o1\""),
            ("a 0O1\n# EOF\n", "value \"0O1\""),
            // Bad timestamps.
            ("a 1 z\n# EOF\n", "timestamp \"z\""),
            ("a 1 1z\n# EOF\n", "timestamp \"1z\""),
            ("a 1 1_2\n# EOF\n", "timestamp \"1_2\""),
            ("a 1 1.1.1\n# EOF\n", "timestamp \"1.1.1\""),
            ("a 1 NaN\n# EOF\n", "timestamp \"NaN\""),
            ("a 1 Inf\n# EOF\n", "timestamp \"Inf\""),
            ("a 1 +Inf\n# EOF\n", "timestamp \"+Inf\""),
            ("a 1 -Inf\n# EOF\n", "timestamp \"-Inf\""),
            ("a 1 0x1p-3\n# EOF\n", "timestamp \"0x1p-3\""),
            // Bad exemplars.
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 #\n# EOF\n", "timestamp \"#\""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1# {} 1\n# EOF\n", "value \"1#\""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 #{} 1\n# EOF\n", "timestamp \"#{}\""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 # {}1\n# EOF\n", "exemplar needs one space"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 # {} 1 \n# EOF\n", "exemplar unexpected \"\""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 # {} 1 1 \n# EOF\n", "exemplar unexpected \"1 \""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 # {} 0x1p-3\n# EOF\n", "exemplar value \"0x1p-3\""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1 # {} 1 0x1p-3\n# EOF\n", "exemplar timestamp \"0x1p-3\""),
            ("# TYPE a counter\na_total 1 1 # {id=\"a\"}  \n# EOF\n", "exemplar needs a value"),
            ("# TYPE a counter\na_total 1 1 # id=\"a\"} 1\n# EOF\n", "exemplar must be written"),
            ("# TYPE a counter\na_total 1 1 #id=\" # \"} 1\n# EOF\n", "unexpected \"#id"),
            ("# TYPE a counter\na_total 1 1 id=\" # \"} 1\n# EOF\n", "unexpected \"id="),
            ("# TYPE a counter\na_total 1 # {a=\"b\"} 0.5 NaN\n# EOF", "exemplar timestamp \"NaN\""),
            ("# TYPE a counter\na_total 1 # {a=\"b\"} 0.5 Inf\n# EOF", "exemplar timestamp \"Inf\""),
            ("# TYPE a counter\na_total 1 # {a=\"b\"} 0.5 -Inf\n# EOF", "exemplar timestamp \"-Inf\""),
            // Exemplars on samples and types that have none.
            ("# TYPE a histogram\na_sum 1 # {a=\"b\"} 0.5\n# EOF\n", "exemplars are allowed only"),
            ("# TYPE a gaugehistogram\na_gsum 1 # {a=\"b\"} 0.5\n# EOF\n", "exemplars are allowed only"),
            ("# TYPE a_bucket gauge\na_bucket 1 # {a=\"b\"} 0.5\n# EOF\n", "exemplars are allowed only"),
            ("# TYPE a counter\na_created 1 # {a=\"b\"} 0.5\n# EOF\n", "exemplars are allowed only"),
            ("# TYPE a gauge\na 1 # {a=\"b\"} 1\n# EOF\n", "exemplars are allowed only"),
            ("# TYPE a info\na_info 1 # {a=\"b\"} 1\n# EOF\n", "exemplars are allowed only"),
            ("# TYPE a stateset\na{a=\"b\"} 1 # {c=\"d\"} 1\n# EOF\n", "exemplars are allowed only"),
            // Bad stateset and info values.
            ("# TYPE a stateset\na 2\n# EOF\n", "a state's value is 0 or 1"),
            ("# TYPE a info\na 2\n# EOF\n", "a is declared an info"),
            ("# TYPE a stateset\na 2.0\n# EOF\n", "a state's value is 0 or 1"),
            ("# TYPE a info\na 2.0\n# EOF\n", "a is declared an info"),
            ("# TYPE a info\na_info{foo=\"bar\"} 2\n# EOF\n", "an info's value is always 1"),
            ("# TYPE a stateset\na{a=\"bar\"} 2\n# EOF\n", "a state's value is 0 or 1"),
            // Missing or invalid labels for a type.
            ("# TYPE a summary\na 0\n# EOF\n", "need a quantile label"),
            ("# TYPE a summary\na{quantile=\"-1\"} 0\n# EOF\n", "quantile=\"-1\" is not a number from 0 to 1"),
            ("# TYPE a summary\na{quantile=\"foo\"} 0\n# EOF\n", "quantile=\"foo\""),
            ("# TYPE a summary\na{quantile=\"1.01\"} 0\n# EOF\n", "quantile=\"1.01\""),
            ("# TYPE a summary\na{quantile=\"NaN\"} 0\n# EOF\n", "quantile=\"NaN\""),
            ("# TYPE a histogram\na_bucket 0\n# EOF\n", "needs an le label"),
            ("# TYPE a gaugehistogram\na_bucket 0\n# EOF\n", "needs an le label"),
            ("# TYPE a stateset\na 0\n# EOF\n", "need a label named a"),
            // Bad counter values.
            ("# TYPE a counter\na_total NaN\n# EOF\n", "a counter's total must not be NaN or negative"),
            ("# TYPE a counter\na_total -1\n# EOF\n", "a counter's total must not be NaN or negative"),
            ("# TYPE a histogram\na_sum NaN\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_count NaN\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} NaN\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_sum -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_count -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_bucket{le=\"-1.0\"} 1\na_bucket{le=\"+Inf\"} 2\na_sum -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a histogram\na_bucket{le=\"-1.0\"} 1\na_bucket{le=\"+Inf\"} 2\na_sum 1\n# EOF\n", "a_sum without a_count"),
            ("# TYPE a histogram\na_bucket{le=\"-1.0\"} 1\na_bucket{le=\"+Inf\"} 2\na_count 2\na_sum 1\n# EOF\n", "a histogram with negative buckets has no _sum"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0.5\n# EOF\n", "counts are integers"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0.5\na_count 0.5\na_sum 0\n# EOF\n", "counts are integers"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} NaN\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} -1\na_gcount -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gsum -1\n# EOF\n", "a_gsum without a_gcount"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gsum NaN\n# EOF\n", "_gsum must not be NaN"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 0.5\n# EOF\n", "counts are integers"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 0.5\na_gsum 0.5\na_gcount 0\n# EOF\n", "counts are integers"),
            ("# TYPE a summary\na_sum NaN\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a summary\na_count NaN\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a summary\na_sum -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a summary\na_count -1\n# EOF\n", "must not be NaN or negative"),
            ("# TYPE a summary\na_count 0.5\n# EOF\n", "counts are integers"),
            ("# TYPE a summary\na{quantile=\"0.5\"} -1\n# EOF\n", "a quantile's value must not be negative"),
            // Bad histograms.
            ("# TYPE a histogram\na_sum 1\n# EOF\n", "no le=\"+Inf\" bucket"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0\na_sum 0\n# EOF\n", "a_sum without a_count"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0\na_count 0\n# EOF\n", "a_count without a_sum"),
            ("# TYPE a histogram\na_bucket{le=\"-1\"} 0\na_bucket{le=\"+Inf\"} 0\na_sum 0\na_count 0\n# EOF\n", "negative buckets has no _sum"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0\n#a_sum 0\n# EOF\n", "OpenMetrics has no comments"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0\n#a_count 0\n# EOF\n", "OpenMetrics has no comments"),
            ("# TYPE a gaugehistogram\na_gsum 1\n# EOF\n", "no le=\"+Inf\" bucket"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 0\na_gsum 0\n# EOF\n", "a_gsum without a_gcount"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 0\na_gcount 0\n# EOF\n", "a_gcount without a_gsum"),
            ("# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gsum -1\na_gcount 1\n# EOF\n", "a_gsum is -1, but no bucket is negative"),
            ("# TYPE a histogram\na_count 1\na_bucket{le=\"+Inf\"} 0\n# EOF\n", "a_count is 1 but its +Inf bucket"),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 0\na_count 1\n# EOF\n", "a_count is 1 but its +Inf bucket"),
            ("# TYPE a histogram\na_bucket{le=\"+INF\"} 0\n# EOF\n", "the +Inf bucket is written le=\"+Inf\""),
            ("# TYPE a histogram\na_bucket{le=\"2\"} 0\na_bucket{le=\"1\"} 0\na_bucket{le=\"+Inf\"} 0\n# EOF\n", "bucket le=1 after le=2"),
            ("# TYPE a histogram\na_bucket{le=\"1\"} 1\na_bucket{le=\"2\"} 1\na_bucket{le=\"+Inf\"} 0\n# EOF\n", "buckets are cumulative"),
            ("# TYPE a histogram\na_bucket{le=\"1\"} 1\na_bucket{le=\"1.0\"} 1\na_bucket{le=\"+Inf\"} 1\n# EOF\n", "bucket le=1 after le=1"),
            // Bad grouping or ordering.
            ("# TYPE a histogram\na_sum{a=\"1\"} 0\na_sum{a=\"2\"} 0\na_count{a=\"1\"} 0\n# EOF\n", "m.prom:2: a: the histogram point that starts here has no le=\"+Inf\" bucket"),
            ("# TYPE a histogram\na_bucket{a=\"1\",le=\"1\"} 0\na_bucket{a=\"2\",le=\"+Inf\"\"} 0\na_bucket{a=\"1\",le=\"+Inf\"} 0\n# EOF\n", "expected ',' or '}'"),
            ("# TYPE a gaugehistogram\na_gsum{a=\"1\"} 0\na_gsum{a=\"2\"} 0\na_gcount{a=\"1\"} 0\n# EOF\n", "no le=\"+Inf\" bucket"),
            ("# TYPE a summary\nquantile{quantile=\"0\"} 0\na_sum{a=\"1\"} 0\nquantile{quantile=\"1\"} 0\n# EOF\n", "m.prom:3: a_sum belongs to the family a (line 1), which other lines interrupted"),
            ("# TYPE a gauge\na 0 -1\na 0 -2\n# EOF\n", "m.prom:3: a: its timestamp is before"),
            ("# TYPE a gauge\na 0 -1\na 0 -1.1\n# EOF\n", "its timestamp is before"),
            ("# TYPE a gauge\na 0 1\na 0 -1\n# EOF\n", "its timestamp is before"),
            ("# TYPE a gauge\na 0 1.1\na 0 1\n# EOF\n", "its timestamp is before"),
            ("# TYPE a gauge\na 0 1\na 0 0\n# EOF\n", "its timestamp is before"),
            ("# TYPE a gauge\na 0\na 0 0\n# EOF\n", "some samples of this metric have timestamps and some do not"),
            ("# TYPE a gauge\na 0 0\na 0\n# EOF\n", "some samples of this metric have timestamps and some do not"),
            ("# TYPE a gauge\na 0\na 1\n# EOF\n", "the same metric again (line 2) without timestamps"),
            ("a 1\nb 1\na 1\n# EOF\n", "m.prom:3: a: the family a (its first sample is at line 1) was interrupted"),
            ("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\n# EOF\n", "m.prom:5: metric family a appeared before (line 1)"),
            // Clashing names.
            ("# TYPE a counter\n# TYPE a counter\n# EOF\n", "a second TYPE line for a"),
            ("# TYPE a info\n# TYPE a counter\n# EOF\n", "a second TYPE line for a"),
            ("# TYPE a_created gauge\n# TYPE a counter\n# EOF\n", "its sample name a_created is already the gauge a_created"),
            ("# TYPE a counter\n# TYPE a_created gauge\n# EOF\n", "a_created is a sample name of the counter a"),
            ("# TYPE a counter\na 1\n# EOF\n", "a is declared a counter (line 1), whose samples are named a_total, a_created"),
            // Exemplar size.
            ("# TYPE a counter\n# HELP a help\na_total{foo=\"bar\"} 1 # {a=\"LONG\"} 1\n# EOF\n", "exemplar labels are 129 characters long"),
        ]
        .into_iter()
        .map(|(t, w)| (t.replace("{a=\"LONG\"}", &long), w))
        .collect();
        for (text, want) in &bad {
            assert_error(check_syntax(text), want);
        }
    }

    #[test]
    fn what_cannot_tell_openmetrics_from_the_text_format() {
        // Without an exact "# EOF" line a file is the text format: the
        // suite's "no EOF" and "# EOFblah" cases read as such.
        check_syntax("a 1\n# EOFblah").unwrap();
        check_syntax("# TYPE a counter\na 1\n").unwrap();
        // An empty file has no samples.
        assert_error(scrape(""), "no samples found");
    }

    // ---- never panic -------------------------------------------------------

    use proptest::prelude::*;

    fn valid_files() -> Vec<String> {
        let mut files = vec![
            include_str!("../../tests/fixtures/prometheus/exposition-formats.prom").to_string(),
            include_str!("../../tests/fixtures/prometheus/openmetrics-spec.om").to_string(),
            "# TYPE a histogram\na_bucket{le=\"1.0\"} 0 # {a=\"b\"} 0.5\na_bucket{le=\"+Inf\"} 3 1.5 # {a=\"d\"} 4 123\na_count 3 1.5\na_sum 2 1.5\n# TYPE \"x.y\" summary\n{\"x.y\",\"q.r\"=\"1\",quantile=\"0.5\"} 1 2\n# EOF\n".to_string(),
        ];
        files.push(files[0].replace('\n', "\r\n"));
        files
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = check_syntax(&text);
            let _ = import(&text);
        }

        #[test]
        fn lines_from_the_grammar_never_panic(
            lines in proptest::collection::vec(
                "[#a-z_{}=\",. \t\\\\0-9eE+-]{0,30}|# (TYPE|HELP|UNIT) [a-z_\"]{1,6} [a-z_ ]{0,10}|# EOF",
                0..8,
            ),
        ) {
            let text = lines.join("\n");
            let _ = check_syntax(&text);
            let _ = scrape(&text);
        }

        #[test]
        fn mutated_valid_files_never_panic(
            file in 0..4usize,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<char>()), 1..6),
        ) {
            let mut chars: Vec<char> = valid_files()[file].chars().collect();
            for (at, op, c) in edits {
                let i = at.index(chars.len() + 1);
                match op {
                    0 if i < chars.len() => { chars.remove(i); }
                    1 => chars.insert(i, c),
                    _ if i < chars.len() => chars[i] = c,
                    _ => {}
                }
            }
            let text: String = chars.into_iter().collect();
            let _ = check_syntax(&text);
            let _ = scrape(&text);
        }
    }
}
