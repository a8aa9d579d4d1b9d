//! Durations and timestamps as people write them.

use crate::error::{Error, Result};

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Parses a duration like `15s`, `5ms`, `250us`, `100ns`, `1m`, `1h`, `1d`
/// (a bare number is seconds) into nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "" | "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        other => {
            return Err(Error::InvalidArgument(format!(
                "duration {text:?}: unknown unit {other:?} (use ns, us, ms, s, m, h or d)"
            )))
        }
    };
    let n: f64 = num.parse().map_err(|_| {
        Error::InvalidArgument(format!("duration {text:?}: {num:?} is not a number"))
    })?;
    let ns = n * scale;
    if !(0.0..=i64::MAX as f64).contains(&ns) {
        return Err(Error::InvalidArgument(format!(
            "duration {text:?} is out of range"
        )));
    }
    Ok(ns.round() as i64)
}

/// Formats nanoseconds as a short duration (`15s`, `1.5ms`, `2h`).
pub fn format_duration(ns: i64) -> String {
    let units = [
        (86_400e9, "d"),
        (3_600e9, "h"),
        (60e9, "m"),
        (1e9, "s"),
        (1e6, "ms"),
        (1e3, "us"),
    ];
    let v = ns as f64;
    for (scale, unit) in units {
        if v.abs() >= scale {
            let x = v / scale;
            return if (x - x.round()).abs() < 1e-9 {
                format!("{}{unit}", x.round())
            } else {
                format!("{x:.1}{unit}")
            };
        }
    }
    format!("{ns}ns")
}

/// Formats Unix nanoseconds as an RFC 3339 UTC timestamp with milliseconds.
pub fn format_timestamp(ns: i64) -> String {
    let secs = ns.div_euclid(NANOS_PER_SECOND);
    let millis = ns.rem_euclid(NANOS_PER_SECOND) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a UTC date or date-time into Unix nanoseconds: `2024-01-02`,
/// `2024-01-02T09:30:00Z`, `2024-01-02 09:30:00.123456`, with an optional
/// `Z` or `+00:00` (other offsets are refused: timestamps are UTC).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .unwrap_or(t);
    let (date, time) = match t.find(['T', ' ']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<u32>().ok()?,
        d.next()?.parse::<u32>().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut secs = days_from_civil(y, m, day).checked_mul(86_400)?;
    let mut nanos = 0i64;
    if let Some(time) = time {
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut p = hms.split(':');
        let (h, mi, s) = (
            p.next()?.parse::<i64>().ok()?,
            p.next()?.parse::<i64>().ok()?,
            p.next().unwrap_or("0").parse::<i64>().ok()?,
        );
        if p.next().is_some()
            || h > 23
            || mi > 59
            || s > 60
            || frac.len() > 9
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        secs = secs.checked_add(h * 3600 + mi * 60 + s)?;
        if !frac.is_empty() {
            nanos = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
        }
    }
    secs.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_durations() {
        assert_eq!(parse_duration("15s").unwrap(), 15 * NANOS_PER_SECOND);
        assert_eq!(parse_duration("5ms").unwrap(), 5_000_000);
        assert_eq!(parse_duration("1.5m").unwrap(), 90 * NANOS_PER_SECOND);
        assert_eq!(parse_duration("30").unwrap(), 30 * NANOS_PER_SECOND);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn parses_utc_dates_and_times() {
        let day = 1_704_153_600 * NANOS_PER_SECOND; // 2024-01-02
        assert_eq!(parse_timestamp("2024-01-02"), Some(day));
        assert_eq!(
            parse_timestamp("2024-01-02T09:30:00Z"),
            Some(day + 34_200 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_timestamp("2024-01-02 09:30:00.25"),
            Some(day + 34_200 * NANOS_PER_SECOND + 250_000_000)
        );
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59+00:00"),
            Some(-NANOS_PER_SECOND)
        );
        for bad in [
            "2024-13-01",
            "2024-01-02T25:00:00",
            "2024-01-02T09:30:00+02:00",
            "yesterday",
            "2024-01",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        for ns in [0, day, -86_400 * NANOS_PER_SECOND * 400] {
            assert_eq!(parse_timestamp(&format_timestamp(ns)), Some(ns));
        }
    }

    #[test]
    fn formats_durations_and_timestamps() {
        assert_eq!(format_duration(15 * NANOS_PER_SECOND), "15s");
        assert_eq!(format_duration(1_500_000), "1.5ms");
        assert_eq!(
            format_timestamp(1_704_067_200 * NANOS_PER_SECOND),
            "2024-01-01T00:00:00.000Z"
        );
        assert_eq!(format_timestamp(-1_000_000), "1969-12-31T23:59:59.999Z");
    }
}
