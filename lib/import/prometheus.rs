//! The Prometheus text exposition format, and OpenMetrics text.
//!
//! ```text
//! # HELP http_requests_total The total number of HTTP requests.
//! # TYPE http_requests_total counter
//! http_requests_total{method="post",code="200"} 1027 1395066363000
//! http_requests_total{method="post",code="200"} 1043 1395066378000
//! ```
//!
//! Comment lines (`# HELP`, `# TYPE`, `# EOF`) are skipped. Every sample must
//! carry a timestamp: a file of several scrapes is only meaningful with them.
//! Prometheus text timestamps are integer milliseconds; OpenMetrics (a file
//! that ends with `# EOF`) uses seconds, possibly with decimals. An explicit
//! `--timestamp-unit` overrides both.

use super::{parse_float, parse_series_selector, DatasetBuilder, TimestampUnit};
use crate::error::Result;

pub fn parse(text: &str, unit: TimestampUnit, builder: &mut DatasetBuilder) -> Result<()> {
    let openmetrics = text.lines().any(|l| l.trim() == "# EOF");
    let unit = match unit {
        TimestampUnit::Auto if openmetrics => TimestampUnit::Seconds,
        TimestampUnit::Auto => TimestampUnit::Millis,
        other => other,
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = parse_series_selector(line).map_err(|e| builder.error(line_no, e))?;
        let mut tokens = rest.split_whitespace();
        let value = tokens
            .next()
            .ok_or_else(|| builder.error(line_no, format!("{}: missing value", key.metric)))?;
        let v = parse_float(value)
            .ok_or_else(|| builder.error(line_no, format!("value {value:?} is not a number")))?;
        let ts = tokens.next().ok_or_else(|| {
            builder.error(
                line_no,
                "sample has no timestamp (each sample needs one to place it in time)",
            )
        })?;
        if let Some(extra) = tokens.next() {
            return Err(builder.error(line_no, format!("unexpected {extra:?} after the timestamp")));
        }
        let t = builder.timestamp(ts, unit, line_no)?;
        builder.push(key, t, v, line_no);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ImportOptions;
    use std::path::Path;

    fn run(text: &str) -> Result<crate::Dataset> {
        let mut b = DatasetBuilder::new(Path::new("m.prom"), &ImportOptions::default());
        parse(text, TimestampUnit::Auto, &mut b)?;
        Ok(b.finish("t".into())?.0)
    }

    #[test]
    fn reads_several_scrapes() {
        let d = run(concat!(
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
    }

    #[test]
    fn openmetrics_timestamps_are_seconds() {
        let d = run("temp{room=\"a\"} 21.5 1700000000.250\n# EOF\n").unwrap();
        assert_eq!(d.series[0].timestamps[0], 1_700_000_000_250_000_000);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, want) in [
            ("up 1\n", "m.prom:1: sample has no timestamp"),
            ("up 1 5\nup x 6\n", "m.prom:2: value \"x\""),
            ("up{a=\"b\" 1 5\n", "m.prom:1: "),
            ("up 1 5 6\n", "unexpected \"6\""),
            ("# only comments\n", "no samples"),
        ] {
            let err = run(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
