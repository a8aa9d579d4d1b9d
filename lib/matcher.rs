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
        for cond in split_conditions(body) {
            let cond = cond.trim();
            if cond.is_empty() {
                continue;
            }
            let (name, op, value) = if let Some((n, v)) = cond.split_once("!=") {
                (n, "!=", v)
            } else if let Some((n, v)) = cond.split_once('=') {
                (n, "=", v)
            } else {
                return Err(bad(format!("condition {cond:?} has no = or !=")));
            };
            let name = name.trim();
            let value = value
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| bad(format!("value of {name:?} must be in double quotes")))?;
            if name.is_empty() {
                return Err(bad("empty label name".into()));
            }
            m.labels.push(match op {
                "=" => LabelMatch::Equal(name.into(), value.into()),
                _ => LabelMatch::NotEqual(name.into(), value.into()),
            });
        }
        Ok(m)
    }

    /// Whether `key` satisfies every condition. A missing label equals "".
    pub fn matches(&self, key: &SeriesKey) -> bool {
        if self.metric.as_ref().is_some_and(|m| *m != key.metric) {
            return false;
        }
        self.labels.iter().all(|c| match c {
            LabelMatch::Equal(n, v) => key.labels.get(n).map_or("", String::as_str) == v,
            LabelMatch::NotEqual(n, v) => key.labels.get(n).map_or("", String::as_str) != v,
        })
    }
}

/// Splits at commas outside double quotes.
fn split_conditions(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in body.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&body[start..]);
    out
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
    fn bad_matchers_say_why() {
        for (text, want) in [
            ("cpu{host=a}", "double quotes"),
            ("cpu{host}", "no = or !="),
            ("cpu{host=\"a\"", "inside { }"),
        ] {
            let err = SeriesMatcher::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
