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

/// Parses a date or date-time into Unix nanoseconds, with `jiff`'s
/// implementation of RFC 3339 / ISO 8601 (the Temporal grammar):
/// `2024-01-02`, `2024-01-02T09:30:00Z`, `2024-01-02 09:30:00.123456`,
/// `2024-01-02T10:30:00+01:00`. A time without an offset is UTC; an offset
/// is applied. Calendar errors are errors, never a roll-over:
/// `2023-02-29` says that day 29 is out of range for that month.
///
/// Errors: a one-line reason (the caller names the field); also for an
/// instant outside the `i64` nanosecond range (1677-09-21 to 2262-04-11)
/// and for a time zone name (`[Europe/Paris]`), which is refused: only
/// offsets are taken, so the result never depends on a time zone database.
pub fn parse_timestamp(text: &str) -> std::result::Result<i64, String> {
    use jiff::fmt::temporal::Pieces;
    let t = text.trim();
    let pieces = Pieces::parse(t).map_err(|e| format!("{t:?} is not a date-time: {e}"))?;
    if pieces.time_zone_annotation().is_some() {
        return Err(format!(
            "{t:?}: time zone names are not supported, write an offset (Z or +01:00)"
        ));
    }
    // A leap second (23:59:60) has no Unix time; jiff would read it as :59.
    if let Some(rest) = t.get(10..) {
        let seconds = rest
            .find(':')
            .and_then(|i| rest[i + 1..].find(':').map(|j| i + 1 + j + 1))
            .and_then(|k| rest.get(k..k + 2));
        if seconds == Some("60") {
            return Err(format!(
                "{t:?}: a leap second (:60) has no Unix time; write :59.999999999 or the next second"
            ));
        }
    }
    let time = pieces.time().unwrap_or(jiff::civil::Time::midnight());
    let datetime = jiff::civil::DateTime::from_parts(pieces.date(), time);
    let offset = pieces
        .offset()
        .map_or(jiff::tz::Offset::UTC, |o| o.to_numeric_offset());
    if offset.seconds().unsigned_abs() >= 24 * 3600 {
        return Err(format!(
            "{t:?}: offset {offset} is not an offset of RFC 3339 (hours 00 to 23)"
        ));
    }
    let instant = offset
        .to_timestamp(datetime)
        .map_err(|e| format!("{t:?} is out of range: {e}"))?;
    i64::try_from(instant.as_nanosecond()).map_err(|_| {
        format!("{t:?} is out of range (nanoseconds since 1970 must fit in 64 bits: 1677-09-21 to 2262-04-11)")
    })
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic
/// Gregorian calendar: Howard Hinnant's days-to-civil algorithm
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
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
        assert_eq!(parse_timestamp("2024-01-02"), Ok(day));
        assert_eq!(
            parse_timestamp("2024-01-02T09:30:00Z"),
            Ok(day + 34_200 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_timestamp("2024-01-02 09:30:00.25"),
            Ok(day + 34_200 * NANOS_PER_SECOND + 250_000_000)
        );
        assert_eq!(
            parse_timestamp("1969-12-31T23:59:59+00:00"),
            Ok(-NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_timestamp("2024-01-02T11:30:00+02:00"),
            Ok(day + 34_200 * NANOS_PER_SECOND)
        );
        assert_eq!(
            parse_timestamp("2024-02-29"),
            Ok(day + 58 * 86_400 * NANOS_PER_SECOND)
        );
        for (bad, why) in [
            ("2023-02-29", "day"),
            ("2100-02-29", "day"),
            ("2024-04-31", "day"),
            ("2024-13-01", "month"),
            ("2024-01-02T25:00:00", "hour"),
            ("2024-01-02T09:30:00[Europe/Paris]", "time zone names"),
            ("yesterday", "not a date-time"),
            ("2024-01", "not a date-time"),
            ("2262-04-12", "out of range"),
            ("1677-09-20T00:00:00Z", "out of range"),
            ("2016-12-31T23:59:60Z", "leap second"),
            ("2024-01-01T00:00:00+25:00", "RFC 3339"),
        ] {
            let err = parse_timestamp(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for ns in [
            0,
            day,
            -86_400 * NANOS_PER_SECOND * 400,
            i64::MIN + 999_999,
            i64::MAX,
        ] {
            let ms = ns.div_euclid(1_000_000) * 1_000_000;
            assert_eq!(parse_timestamp(&format_timestamp(ns)), Ok(ms));
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
