//! Series selectors: `name{label="value",...}`, as the Prometheus text
//! format writes a series.

use crate::model::{Labels, SeriesKey};

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

/// The `series` field of a long CSV: a selector as above, or a name of any
/// characters but `{` and whitespace (`disk.all.read`, as Graphite and PCP
/// write them) with an optional label set. Nothing may follow it.
pub fn parse_series_field(text: &str) -> std::result::Result<SeriesKey, String> {
    let text = text.trim();
    let split = text.find('{').unwrap_or(text.len());
    let (name, rest) = text.split_at(split);
    if name.is_empty() || crate::model::is_legacy_metric_name(name) {
        let (key, rest) = parse_series_selector(text)?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected {rest:?} after it"));
        }
        return Ok(key);
    }
    if name.contains(char::is_whitespace) {
        return Err(format!("name {name:?} holds whitespace"));
    }
    let with_name = format!("x{rest}");
    let (key, after) = parse_series_selector(&with_name)?;
    if !after.trim().is_empty() {
        return Err(format!("unexpected {after:?} after it"));
    }
    Ok(SeriesKey::new(name, key.labels))
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
}
