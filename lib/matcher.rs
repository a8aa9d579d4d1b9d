//! Series matchers: which series a query wants.
//!
//! A matcher is written like a Prometheus selector, without regexes:
//!
//! ```text
//! cpu_usage_percent                       every series of that metric
//! cpu_usage_percent{region="eu-west-1"}   ... whose region is eu-west-1
//! {job="api",host!="api-01"}              any metric, job api, host not api-01
//! ```

use crate::error::{Error, Result};
use crate::model::SeriesKey;

/// One label condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelMatch {
    Equal(String, String),
    NotEqual(String, String),
}

/// A metric name (optional) and label conditions, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesMatcher {
    pub metric: Option<String>,
    pub labels: Vec<LabelMatch>,
}

impl SeriesMatcher {
    /// Matches every series.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses `metric{name="value",name!="value"}`; both parts are optional.
    /// Names outside the classic alphabet are written as Prometheus 3
    /// writes them, quoted inside the braces: `{"disk.all.read",host="a"}`,
    /// `{"k8s.pod"="x"}`; a bare dotted name (`disk.all.read{host="a"}`) is
    /// taken too. Values are double-quoted with the escapes `\\`, `\"` and
    /// `\n`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidArgument(format!("matcher {text:?}: {why}"));
        let text = text.trim();
        let (metric, rest) = match text.find('{') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let metric = metric.trim();
        let mut m = SeriesMatcher {
            metric: (!metric.is_empty()).then(|| metric.to_string()),
            labels: Vec::new(),
        };
        if rest.is_empty() {
            return Ok(m);
        }
        let body = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| bad("label conditions must be inside { }".into()))?;
        let mut cur = Cursor { rest: body };
        let mut first = true;
        loop {
            cur.skip_blanks();
            if cur.rest.is_empty() {
                break;
            }
            let name = if cur.rest.starts_with('"') {
                cur.quoted().map_err(bad)?
            } else {
                let end = cur
                    .rest
                    .find(|c: char| c == '=' || c == '!' || c == ',' || c.is_whitespace())
                    .unwrap_or(cur.rest.len());
                let (name, after) = cur.rest.split_at(end);
                cur.rest = after;
                name.to_string()
            };
            cur.skip_blanks();
            let op = if let Some(r) = cur.rest.strip_prefix("!=") {
                cur.rest = r;
                Some(false)
            } else if let Some(r) = cur.rest.strip_prefix('=') {
                cur.rest = r;
                Some(true)
            } else {
                None
            };
            match op {
                // A quoted name on its own, first: the metric name.
                None if first && m.metric.is_none() && body.trim_start().starts_with('"') => {
                    m.metric = Some(name);
                }
                None => return Err(bad(format!("condition {name:?} has no = or !="))),
                Some(equal) => {
                    if name.is_empty() {
                        return Err(bad("empty label name".into()));
                    }
                    cur.skip_blanks();
                    if !cur.rest.starts_with('"') {
                        return Err(bad(format!("value of {name:?} must be in double quotes")));
                    }
                    let value = cur.quoted().map_err(bad)?;
                    m.labels.push(if equal {
                        LabelMatch::Equal(name, value)
                    } else {
                        LabelMatch::NotEqual(name, value)
                    });
                }
            }
            first = false;
            cur.skip_blanks();
            match cur.rest.strip_prefix(',') {
                Some(r) => cur.rest = r,
                None if cur.rest.is_empty() => break,
                None => return Err(bad(format!("expected , or }} before {:?}", cur.rest))),
            }
        }
        Ok(m)
    }

    /// Whether `key` satisfies every condition. A missing label equals "";
    /// `__name__` is the metric name, as in Prometheus.
    pub fn matches(&self, key: &SeriesKey) -> bool {
        if self.metric.as_ref().is_some_and(|m| *m != key.metric) {
            return false;
        }
        let get = |n: &str| {
            if n == "__name__" {
                key.metric.as_str()
            } else {
                key.labels.get(n).map_or("", String::as_str)
            }
        };
        self.labels.iter().all(|c| match c {
            LabelMatch::Equal(n, v) => get(n) == v,
            LabelMatch::NotEqual(n, v) => get(n) != v,
        })
    }
}

/// What is left of a matcher's `{ }` body.
struct Cursor<'a> {
    rest: &'a str,
}

impl Cursor<'_> {
    fn skip_blanks(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// A double-quoted string with `\\`, `\"` and `\n` escapes (any other
    /// backslash is kept, as Prometheus does).
    fn quoted(&mut self) -> std::result::Result<String, String> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => out.push(c),
                    Some((_, c)) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(format!("unterminated string {:?}", self.rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn key() -> SeriesKey {
        SeriesKey::new(
            "cpu",
            Labels::from([
                ("host".into(), "a,b".into()),
                ("region".into(), "eu".into()),
            ]),
        )
    }

    #[test]
    fn matches_metric_and_labels() {
        assert!(SeriesMatcher::parse("cpu").unwrap().matches(&key()));
        assert!(!SeriesMatcher::parse("mem").unwrap().matches(&key()));
        assert!(SeriesMatcher::parse("{region=\"eu\"}")
            .unwrap()
            .matches(&key()));
        assert!(SeriesMatcher::parse("cpu{host=\"a,b\",region!=\"us\"}")
            .unwrap()
            .matches(&key()));
        assert!(!SeriesMatcher::parse("cpu{region!=\"eu\"}")
            .unwrap()
            .matches(&key()));
        assert!(SeriesMatcher::parse("cpu{zone=\"\"}")
            .unwrap()
            .matches(&key()));
        assert!(SeriesMatcher::all().matches(&key()));
    }

    #[test]
    fn quoted_names_and_escaped_values() {
        let odd = SeriesKey::new(
            "disk.all.read",
            Labels::from([
                ("k8s.pod".into(), "a\"b,c!=d".into()),
                ("host".into(), "x".into()),
            ]),
        );
        for text in [
            "{\"disk.all.read\"}",
            "{\"disk.all.read\", host=\"x\"}",
            "disk.all.read{\"k8s.pod\"=\"a\\\"b,c!=d\"}",
            "{\"k8s.pod\" != \"zz\", host = \"x\"}",
        ] {
            let m = SeriesMatcher::parse(text).unwrap();
            assert!(m.matches(&odd), "{text}: {m:?}");
        }
        assert!(SeriesMatcher::parse("{__name__=\"disk.all.read\"}")
            .unwrap()
            .matches(&odd));
        // Every key's own display is a matcher for it.
        assert!(SeriesMatcher::parse(&odd.to_string())
            .unwrap()
            .matches(&odd));
        assert!(SeriesMatcher::parse(&key().to_string())
            .unwrap()
            .matches(&key()));
        assert!(!SeriesMatcher::parse("{\"disk.all.write\"}")
            .unwrap()
            .matches(&odd));
    }

    #[test]
    fn bad_matchers_say_why() {
        for (text, want) in [
            ("cpu{host=a}", "double quotes"),
            ("cpu{host}", "no = or !="),
            ("cpu{host=\"a\"", "inside { }"),
            ("cpu{host=\"a\" zone=\"b\"}", "expected ,"),
            ("cpu{host=\"a}", "unterminated"),
            ("{\"a\",\"b\"}", "no = or !="),
        ] {
            let err = SeriesMatcher::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
