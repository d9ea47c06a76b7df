//! Event time: milliseconds since the Unix epoch, parsed from RFC 3339.
//!
//! The core never reads a clock; every "now" is an event's own timestamp.

use chrono::{DateTime, NaiveDate, SecondsFormat};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const HOUR: Millis = 3_600 * SECOND;
pub const DAY: Millis = 24 * HOUR;

/// Parses an RFC 3339 timestamp (`2026-03-01T12:00:00Z`, offsets and fractions allowed).
/// Instants before the epoch are refused: window buckets are unsigned.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let millis = DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis();
    (millis >= 0).then_some(millis)
}

/// Parses an RFC 3339 timestamp or a plain `YYYY-MM-DD` date (midnight UTC), the form
/// contract dates usually take in billing systems.
pub fn parse_date_or_rfc3339(text: &str) -> Option<Millis> {
    if text.len() == 10 {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        let millis = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
        return (millis >= 0).then_some(millis);
    }
    parse_rfc3339(text)
}

/// Formats as RFC 3339 in UTC with millisecond precision, e.g. `2026-03-01T12:00:00.000Z`.
pub fn format_rfc3339(millis: Millis) -> String {
    DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| millis.to_string())
}

/// Whole and fractional days from `from` to `to` (negative when `to` is earlier).
pub fn days_between(from: Millis, to: Millis) -> f64 {
    const PER_MILLI: f64 = 1.0 / DAY as f64;
    (to - from) as f64 * PER_MILLI
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:01.5+01:00"), Some(1_500));
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn dates_are_midnight_utc() {
        assert_eq!(parse_date_or_rfc3339("1970-01-02"), Some(DAY));
        assert_eq!(parse_date_or_rfc3339("1970-13-02"), None);
    }

    #[test]
    fn formats_round_trip() {
        let t = parse_rfc3339("2026-03-01T12:00:00.250Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-03-01T12:00:00.250Z");
        assert_eq!(days_between(0, DAY + DAY / 2), 1.5);
    }
}
