//! Series selectors: how the Prometheus text formats write one series.
//!
//! ```text
//! http_requests_total{method="post",code="200"}     a classic name, then labels
//! {"disk.all.read",host="a","k8s.pod"="web-1"}      Prometheus 3: a UTF-8 name,
//!                                                   quoted, first inside the braces
//! ```
//!
//! The grammar (Prometheus "Exposition formats", OpenMetrics 1.0 with the
//! UTF-8 quoting of Prometheus 3):
//!
//! ```text
//! selector  = name [ "{" [ pairs ] "}" ] | "{" quoted [ "," [ pairs ] ] "}"
//! pairs     = pair { "," pair } [ "," ]          (OpenMetrics: no trailing ",")
//! pair      = label "=" quoted
//! name      = [a-zA-Z_:][a-zA-Z0-9_:]*           (unquoted metric name)
//! label     = [a-zA-Z_][a-zA-Z0-9_]* | quoted    (any non-empty UTF-8 when quoted)
//! quoted    = '"' { char | "\\" | "\"" | "\n" } '"'
//! ```
//!
//! In quoted strings `\\`, `\"` and `\n` are escapes; a backslash before any
//! other character stands for itself (`\d` is the two characters `\d`), as
//! Prometheus reads it and as the OpenMetrics ABNF says (`BS normal-char`).
//! In the Prometheus text format blanks (spaces, tabs) may separate any two
//! tokens; OpenMetrics allows none inside a selector.
//!
//! Two entry points: [`parse_series_selector`] is that strict grammar (the
//! Prometheus text format's); [`parse_series_field`] is what a CSV `series`
//! field may hold: the same, or a bare name outside the classic alphabet
//! (`disk.all.read`, `kernel.percpu.cpu.user{instance="cpu0"}`) as Graphite,
//! PCP and StatsD write them. Both read back what [`SeriesKey`]'s `Display`
//! writes.

use crate::model::{is_legacy_label_name, is_legacy_metric_name, Labels, SeriesKey};

/// Which spelling rules a selector follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Prometheus text format 0.0.4: blanks may separate tokens, a trailing
    /// comma is allowed.
    Text,
    /// OpenMetrics 1.0: no blanks, no trailing comma.
    OpenMetrics,
}

impl Dialect {
    fn blanks(self) -> bool {
        self == Dialect::Text
    }
}

/// Parses a Prometheus series selector `name{k="v",...}`, `{"utf-8 name",k="v"}`
/// or a bare `name` at the start of `text`, returning the key and the rest
/// of the input after it (blanks after a bare name are left in the rest).
pub fn parse_series_selector(text: &str) -> std::result::Result<(SeriesKey, &str), String> {
    parse_selector(text, Dialect::Text)
}

/// Parses a whole CSV `series` field: a selector as
/// [`parse_series_selector`] reads it, or a bare name outside the classic
/// alphabet: everything before the first `{`, without whitespace, is the
/// name (`disk.all.read`, `kernel.percpu.cpu.user{instance="cpu0"}`).
/// Nothing may follow the selector (whitespace around the field is
/// ignored).
pub fn parse_series_field(text: &str) -> std::result::Result<SeriesKey, String> {
    let text = text.trim();
    let (key, rest) = if text.starts_with('{') {
        parse_selector(text, Dialect::Text)?
    } else {
        let end = text.find('{').unwrap_or(text.len());
        let name = &text[..end];
        if name.is_empty() {
            return Err("missing metric name".into());
        }
        if let Some(c) = name.chars().find(|c| c.is_whitespace()) {
            return Err(format!(
                "metric name {name:?} contains whitespace ({c:?}); a name with spaces \
                 must be quoted inside the braces: {{\"{}\"}}",
                name.escape_debug()
            ));
        }
        let mut cursor = Cursor::new(text, end, Dialect::Text);
        let labels = if cursor.peek() == Some('{') {
            let (quoted, labels) = cursor.braces(true)?;
            if quoted.is_some() {
                return Err(format!(
                    "metric name given twice: {name:?} and a quoted one"
                ));
            }
            labels
        } else {
            Labels::new()
        };
        (SeriesKey::new(name, labels), cursor.rest())
    };
    if !rest.is_empty() {
        return Err(format!("unexpected {rest:?} after the series"));
    }
    Ok(key)
}

/// Parses a selector in `dialect` at the start of `text`; returns the key
/// and the rest of `text`.
pub(crate) fn parse_selector(
    text: &str,
    dialect: Dialect,
) -> std::result::Result<(SeriesKey, &str), String> {
    let mut cursor = Cursor::new(text, 0, dialect);
    let name = match cursor.peek() {
        None => return Err("missing metric name".into()),
        Some('{') => None,
        Some('"') => {
            return Err(
                "a quoted metric name goes first inside the braces: {\"name\",label=\"value\"}"
                    .into(),
            )
        }
        Some(_) => {
            let word = cursor.word(|c| c == '{' || is_blank(c));
            if !is_legacy_metric_name(word) {
                return Err(invalid_name("metric name", word));
            }
            Some(word.to_string())
        }
    };
    let after_name = cursor.pos;
    if name.is_some() && dialect.blanks() {
        cursor.skip_blanks();
    }
    if cursor.peek() != Some('{') {
        let key = SeriesKey::new(name.unwrap_or_default(), Labels::new());
        return Ok((key, &text[after_name..]));
    }
    let (quoted, labels) = cursor.braces(true)?;
    let name = match (name, quoted) {
        (Some(_), Some(q)) => return Err(format!("metric name given twice (also {q:?})")),
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => {
            return Err(
                "missing metric name (a selector starting with '{' needs a quoted name first: \
                 {\"name\",label=\"value\"})"
                    .into(),
            )
        }
    };
    Ok((SeriesKey::new(name, labels), cursor.rest()))
}

/// Parses an OpenMetrics exemplar's label set (`{trace_id="abc"}`, no
/// metric name) at the start of `text`; returns it and the rest.
pub(crate) fn parse_label_set(
    text: &str,
    dialect: Dialect,
) -> std::result::Result<(Labels, &str), String> {
    let mut cursor = Cursor::new(text, 0, dialect);
    if cursor.peek() != Some('{') {
        return Err("expected a label set in braces".into());
    }
    let (_, labels) = cursor.braces(false)?;
    Ok((labels, cursor.rest()))
}

/// A blank, as the Prometheus text format counts them.
pub(crate) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Reads a metric name as a `# HELP`/`# TYPE`/`# UNIT` line writes it: a
/// classic name up to a blank (or the end), or a quoted one. Returns the
/// name and the rest after it.
pub(crate) fn parse_metadata_name(text: &str) -> std::result::Result<(String, &str), String> {
    let mut cursor = Cursor::new(text, 0, Dialect::OpenMetrics);
    match cursor.peek() {
        None => Err("missing metric name".into()),
        Some('"') => {
            let name = cursor.quoted()?;
            if name.is_empty() {
                return Err("empty metric name".into());
            }
            Ok((name, cursor.rest()))
        }
        Some(_) => {
            let word = cursor.word(is_blank);
            if !is_legacy_metric_name(word) {
                return Err(invalid_name("metric name", word));
            }
            Ok((word.to_string(), cursor.rest()))
        }
    }
}

/// Undoes the escapes of a quoted string or of OpenMetrics HELP text:
/// `\\`, `\"` and `\n`; a backslash before anything else stands for itself.
pub(crate) fn unescape(raw: &str, escapes_quote: bool) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if escapes_quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn invalid_name(what: &str, word: &str) -> String {
    let hint = if what == "metric name" {
        format!(
            "a {what} outside [a-zA-Z_:][a-zA-Z0-9_:]* must be quoted, first inside the braces: \
             {{\"{}\"}}",
            word.escape_debug()
        )
    } else {
        format!(
            "a {what} outside [a-zA-Z_][a-zA-Z0-9_]* must be quoted: \"{}\"=\"value\"",
            word.escape_debug()
        )
    };
    if word.is_empty() {
        format!("missing {what}")
    } else {
        format!("invalid {what} {word:?} ({hint})")
    }
}

/// A position in the text being parsed. Every token boundary is at an ASCII
/// character, so slicing at `pos` is always on a char boundary.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    dialect: Dialect,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, pos: usize, dialect: Dialect) -> Self {
        Cursor { text, pos, dialect }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn skip_blanks(&mut self) {
        if self.dialect.blanks() {
            while self.peek().is_some_and(is_blank) {
                self.pos += 1;
            }
        }
    }

    /// Consumes characters up to (not including) the first one for which
    /// `stop` holds, or to the end.
    fn word(&mut self, stop: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let end = rest.find(stop).unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    /// A quoted string, unescaped; the cursor is on its opening quote.
    fn quoted(&mut self) -> std::result::Result<String, String> {
        let start = self.pos;
        self.bump();
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "unterminated quoted string {:?}",
                        &self.text[start..]
                    ))
                }
                Some('"') => {
                    self.bump();
                    return Ok(unescape(&self.text[start + 1..self.pos - 1], true));
                }
                Some('\\') => {
                    self.bump();
                    if self.peek().is_none() {
                        continue; // reported as unterminated
                    }
                    self.bump();
                }
                Some('\n') => {
                    return Err("a line feed inside a quoted string must be written \\n".into())
                }
                Some(_) => self.bump(),
            }
        }
    }

    /// An unquoted label name (a quoted one is read by [`Self::quoted`]).
    fn label_name(&mut self) -> std::result::Result<String, String> {
        let word = self.word(|c| matches!(c, '=' | ',' | '}' | '"' | '{') || is_blank(c));
        if !is_legacy_label_name(word) {
            return Err(invalid_name("label name", word));
        }
        Ok(word.to_string())
    }

    /// `{ ... }`: the label pairs and, when `allow_name`, a quoted metric
    /// name first. The cursor is on the `{`.
    fn braces(
        &mut self,
        allow_name: bool,
    ) -> std::result::Result<(Option<String>, Labels), String> {
        self.bump();
        self.skip_blanks();
        let mut name = None;
        let mut labels = Labels::new();
        let mut first = true;
        let mut after_comma = false;
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Err("label set not closed by '}'".into()),
                Some('}') => {
                    if after_comma && self.dialect == Dialect::OpenMetrics {
                        return Err(
                            "trailing comma before '}' (OpenMetrics allows none)".to_string()
                        );
                    }
                    self.bump();
                    return Ok((name, labels));
                }
                Some(',') => {
                    return Err(if first {
                        "a comma right after '{'".into()
                    } else {
                        "two commas in a row".into()
                    })
                }
                Some(_) => {}
            }
            let quoted_start = self.peek() == Some('"');
            let label = if quoted_start {
                self.quoted()?
            } else {
                self.label_name()?
            };
            self.skip_blanks();
            if quoted_start && matches!(self.peek(), Some(',') | Some('}')) {
                // A quoted string without `=`: the metric name.
                if label.is_empty() {
                    return Err("missing metric name (\"\" is empty)".into());
                }
                if !allow_name {
                    return Err(format!(
                        "{label:?}: a metric name is not allowed here (expected label=\"value\")"
                    ));
                }
                if !first {
                    return Err(format!(
                        "quoted metric name {label:?} must come first inside the braces"
                    ));
                }
                name = Some(label);
            } else {
                if self.peek() != Some('=') {
                    return Err(match self.peek() {
                        None => "label set not closed by '}'".to_string(),
                        Some(c) => format!("expected '=' after label name {label:?}, found {c:?}"),
                    });
                }
                if label.is_empty() {
                    return Err("empty label name".into());
                }
                self.bump();
                self.skip_blanks();
                if self.peek() != Some('"') {
                    return Err(format!("label {label:?}: value must be in double quotes"));
                }
                let value = self.quoted()?;
                if label == "__name__" {
                    return Err(
                        "label \"__name__\" is the metric name: write it as the name".to_string(),
                    );
                }
                if labels.contains_key(&label) {
                    return Err(format!("label {label:?} appears twice"));
                }
                labels.insert(label, value);
                self.skip_blanks();
            }
            first = false;
            match self.peek() {
                Some(',') => {
                    self.bump();
                    after_comma = true;
                    self.skip_blanks();
                    if self.peek() == Some(',') {
                        return Err("two commas in a row".into());
                    }
                }
                Some('}') => after_comma = false,
                None => return Err("label set not closed by '}'".into()),
                Some(c) => {
                    return Err(format!(
                        "expected ',' or '}}' in the label set, found {c:?}"
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::new(
            name,
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn selector_parses_labels_and_escapes() {
        let (k, rest) =
            parse_series_selector(r#"http_total{code="200",path="/a\"b\\c\nd",} 5"#).unwrap();
        assert_eq!(
            k,
            key("http_total", &[("code", "200"), ("path", "/a\"b\\c\nd")])
        );
        assert_eq!(rest, " 5");
        let (k, rest) = parse_series_selector("up").unwrap();
        assert_eq!((k, rest), (key("up", &[]), ""));
        let (k, rest) = parse_series_selector("up 1").unwrap();
        assert_eq!((k, rest), (key("up", &[]), " 1"));
        let (k, _) = parse_series_selector("m{}").unwrap();
        assert_eq!(k, key("m", &[]));
    }

    #[test]
    fn selector_keeps_unknown_escapes_literally() {
        let (k, _) = parse_series_selector(r#"m{a="C:\DIR\d",b="\t"}"#).unwrap();
        assert_eq!(k.labels["a"], r"C:\DIR\d");
        assert_eq!(k.labels["b"], r"\t");
    }

    #[test]
    fn selector_reads_utf8_names() {
        let (k, rest) = parse_series_selector(r#"{"disk.all.read", host="a"} 5"#).unwrap();
        assert_eq!(k, key("disk.all.read", &[("host", "a")]));
        assert_eq!(rest, " 5");
        let (k, _) = parse_series_selector(r#"{"my.metric"}"#).unwrap();
        assert_eq!(k, key("my.metric", &[]));
        let (k, _) = parse_series_selector(r#"m{"my.label"="x","ü"=""}"#).unwrap();
        assert_eq!(k, key("m", &[("my.label", "x"), ("ü", "")]));
        // Quoting a classic name is allowed too.
        let (k, _) = parse_series_selector(r#"{"up",}"#).unwrap();
        assert_eq!(k, key("up", &[]));
    }

    #[test]
    fn selector_allows_blanks_between_tokens_in_the_text_format() {
        let (k, rest) = parse_series_selector("m \t{ a = \"1\" ,\tb=\"2\" , } 7").unwrap();
        assert_eq!(k, key("m", &[("a", "1"), ("b", "2")]));
        assert_eq!(rest, " 7");
        let err = parse_selector("m {a=\"1\"} 7", Dialect::OpenMetrics);
        assert_eq!(
            err.unwrap().1,
            " {a=\"1\"} 7",
            "OpenMetrics: the selector ends at the blank"
        );
        assert!(parse_selector("m{a=\"1\", b=\"2\"} 7", Dialect::OpenMetrics).is_err());
        assert!(parse_selector("m{a=\"1\",} 7", Dialect::OpenMetrics).is_err());
    }

    #[test]
    fn selector_errors_say_why() {
        for (text, want) in [
            ("", "missing metric name"),
            ("{a=\"b\"} 1", "missing metric name"),
            ("{} 1", "missing metric name"),
            ("m{a=b} 1", "double quotes"),
            (
                "m{a=\"b\" 1",
                "expected ',' or '}' in the label set, found '1'",
            ),
            ("m{a=\"b\"", "not closed by '}'"),
            ("m{a=\"b} 1", "unterminated"),
            ("m{a='b'} 1", "double quotes"),
            ("m{a} 1", "expected '='"),
            ("m{a\"v\"} 1", "expected '=' after label name \"a\""),
            ("m{a=\"1\"b=\"2\"} 1", "expected ',' or '}'"),
            ("m{a=\"1\",,b=\"2\"} 1", "two commas"),
            ("m{,} 1", "comma right after"),
            ("m{a=\"1\",a=\"2\"} 1", "twice"),
            ("m{1=\"1\"} 1", "invalid label name \"1\""),
            ("m{a.b=\"1\"} 1", "must be quoted"),
            ("m{\"\"=\"1\"} 1", "empty label name"),
            ("9m 1", "invalid metric name \"9m\""),
            ("a.b 1", "invalid metric name \"a.b\""),
            ("a-b 1", "invalid metric name"),
            ("\"m\" 1", "goes first inside the braces"),
            ("m{\"n\"} 1", "given twice"),
            ("{a=\"b\",\"n\"} 1", "must come first"),
            ("{\"\"} 1", "missing metric name"),
            ("m{__name__=\"x\"} 1", "__name__"),
        ] {
            let err = parse_series_selector(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn field_takes_bare_names_outside_the_classic_alphabet() {
        assert_eq!(
            parse_series_field("disk.all.read").unwrap(),
            key("disk.all.read", &[])
        );
        assert_eq!(
            parse_series_field(r#"kernel.percpu.cpu.user{instance="cpu0"}"#).unwrap(),
            key("kernel.percpu.cpu.user", &[("instance", "cpu0")])
        );
        assert_eq!(
            parse_series_field("ods_0000").unwrap(),
            key("ods_0000", &[])
        );
        assert_eq!(
            parse_series_field(r#"{"disk.all.read",host="a"}"#).unwrap(),
            key("disk.all.read", &[("host", "a")])
        );
        for (text, want) in [
            ("", "missing metric name"),
            ("a b", "whitespace"),
            ("up{a=\"1\"} 5", "unexpected \" 5\""),
            ("up 5", "whitespace"),
            ("up{} 5", "unexpected \" 5\""),
            ("a.b{\"c\"}", "given twice"),
            ("a.b{x=\"1\"", "not closed"),
        ] {
            let err = parse_series_field(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn metadata_names_and_help_escapes() {
        assert_eq!(
            parse_metadata_name("\"disk.all.read\" counter").unwrap(),
            ("disk.all.read".to_string(), " counter")
        );
        assert_eq!(
            parse_metadata_name("up gauge").unwrap(),
            ("up".to_string(), " gauge")
        );
        assert!(parse_metadata_name("a.b gauge").is_err());
        assert!(parse_metadata_name("\"\" gauge").is_err());
        assert_eq!(unescape(r#"a\\b\nc\"d\te\"#, true), "a\\b\nc\"d\\te\\");
        assert_eq!(unescape(r#"a\"b"#, false), "a\\\"b");
    }

    /// Names and values with every character the quoting must survive.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_:][a-zA-Z0-9_:]{0,6}",
            "[a-z\"\\\\\n{},= \t.é☃\r\u{0}]{1,8}",
            any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        ]
    }

    proptest! {
        #[test]
        fn display_reads_back_with_both_parsers(
            name in text(),
            labels in proptest::collection::btree_map(
                text().prop_filter("not __name__", |s| s != "__name__"),
                prop_oneof![Just(String::new()), any::<String>(), text()],
                0..4,
            ),
        ) {
            let key = SeriesKey::new(name, labels);
            let shown = key.to_string();
            let (back, rest) = parse_series_selector(&shown)
                .map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
            prop_assert_eq!(&back, &key);
            prop_assert_eq!(rest, "");
            let field = parse_series_field(&shown)
                .map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
            prop_assert_eq!(field, key);
        }

        #[test]
        fn selector_never_panics(text in any::<String>()) {
            let _ = parse_series_selector(&text);
            let _ = parse_series_field(&text);
            let _ = parse_selector(&text, Dialect::OpenMetrics);
            let _ = parse_label_set(&text, Dialect::OpenMetrics);
            let _ = parse_metadata_name(&text);
        }
    }
}
