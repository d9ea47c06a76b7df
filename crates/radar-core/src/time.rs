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
    let millis = match parse_utc_fast(text.as_bytes()) {
        Some(millis) => millis,
        None => DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis(),
    };
    (millis >= 0).then_some(millis)
}

/// The shape nearly every producer sends, `YYYY-MM-DDTHH:MM:SS[.fff…]Z` (or `+00:00`,
/// as Segment's and RudderStack's SDKs write UTC), parsed in a few nanoseconds on the hot
/// path; anything else (other offsets, leap seconds, odd forms) returns `None` and goes
/// to chrono's full parser. A property test checks both agree.
fn parse_utc_fast(b: &[u8]) -> Option<Millis> {
    fn digits(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    let b = match b {
        [body @ .., b'Z' | b'z'] | [body @ .., b'+', b'0', b'0', b':', b'0', b'0'] => body,
        _ => return None,
    };
    if b.len() < 19 || b[16] != b':' {
        return None;
    }
    // `YYYY-MM-` and `DDTHH:MM` read as two words, their digits checked and converted
    // eight bytes at a time (see [`Word`]); the seconds are two bytes after them.
    let front = Word::new(&b[0..8], *b"0000-00-", 0)?;
    let back = Word::new(&b[8..16], *b"00t00:00", 0x20 << 16)?;
    let (year, month) = (front.pair(0) * 100 + front.pair(2), front.pair(5));
    let (day, hour, minute) = (back.pair(0), back.pair(3), back.pair(6));
    let second = match (b[17].wrapping_sub(b'0'), b[18].wrapping_sub(b'0')) {
        (tens @ 0..=9, units @ 0..=9) => i64::from(tens * 10 + units),
        _ => return None,
    };
    let millis = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if !fraction.is_empty() && fraction.len() <= 9 => {
            let mut padded = [b'0'; 3];
            let kept = fraction.len().min(3);
            padded[..kept].copy_from_slice(&fraction[..kept]);
            digits(fraction)?;
            digits(&padded)?
        }
        _ => return None,
    };
    // The years events carry come from a table; any other year is computed.
    let table = usize::try_from(year - TABLE_FROM)
        .ok()
        .and_then(|i| Some((YEAR_STARTS.get(i)?, YEAR_STARTS.get(i + 1)?)));
    let leap = match table {
        Some((start, next)) => next - start == 366,
        None => (year % 4 == 0 && year % 100 != 0) || year % 400 == 0,
    };
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = match table {
        Some((&start, _)) => {
            let before_month = MONTH_STARTS[(month - 1) as usize] + i64::from(leap && month > 2);
            i64::from(start) + before_month + day - 1
        }
        None => days_from_civil(year, month, day),
    };
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis)
}

/// Eight bytes of a timestamp as a little-endian word whose digits are checked all at
/// once: where `shape` has a `0` the byte must be an ASCII digit, anywhere else it must
/// equal `shape`'s byte once `fold` is ORed into the word (0x20 in a letter's lane takes
/// either case).
/// Once checked, each byte holds its digit's value.
struct Word(u64);

impl Word {
    fn new(bytes: &[u8], shape: [u8; 8], fold: u64) -> Option<Word> {
        const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
        const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
        let word = u64::from_le_bytes(bytes.try_into().ok()?) | fold;
        // 0xFF in each lane that is not a digit's: constant once inlined.
        let separators = (0..8)
            .filter(|&lane| shape[lane] != b'0')
            .fold(0u64, |mask, lane| mask | 0xFF << (8 * lane));
        let shape = u64::from_le_bytes(shape);
        if (word ^ shape) & separators != 0 {
            return None;
        }
        // Separators read as `0`; a byte is a digit when its high nibble is 3 and adding
        // 6 to it does not carry out of the low nibble (no carry crosses bytes then).
        let digits = (word & !separators) | (ZEROS & separators);
        if digits & HIGH != ZEROS & HIGH || (digits + 0x0606_0606_0606_0606) & HIGH != ZEROS & HIGH
        {
            return None;
        }
        Some(Word(digits - ZEROS))
    }

    /// The two-digit number written in `lane` and the next: each lane of `10 × word +
    /// (word >> 8)` holds its digit's tens plus the next lane's units, at most 99, so no
    /// lane carries into another.
    fn pair(&self, lane: u32) -> i64 {
        let pairs = self.0 * 10 + (self.0 >> 8);
        ((pairs >> (8 * lane)) & 0xFF) as i64
    }
}

/// The first year in [`YEAR_STARTS`].
const TABLE_FROM: i64 = 1970;

/// Days from the epoch to January 1st of each year from 1970 to 2200: a lookup instead
/// of the divisions of the civil calendar, for the years events carry.
const YEAR_STARTS: [i32; 231] = {
    let mut starts = [0; 231];
    let mut i = 1;
    while i < starts.len() {
        let year = TABLE_FROM + i as i64 - 1;
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        starts[i] = starts[i - 1] + if leap { 366 } else { 365 };
        i += 1;
    }
    starts
};

/// Days before each month in a common year.
const MONTH_STARTS: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// Days from the epoch to a valid date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
/// Saturating: a restored state may hold any instant (the restore fuzz target found one
/// whose difference overflowed).
pub fn days_between(from: Millis, to: Millis) -> f64 {
    const PER_MILLI: f64 = 1.0 / DAY as f64;
    to.saturating_sub(from) as f64 * PER_MILLI
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

    proptest::proptest! {
        /// The fast path agrees with chrono on every instant, with and without fractions.
        #[test]
        fn the_fast_path_agrees_with_chrono(millis in 0i64..253_402_300_799_999, digits in 0usize..10) {
            let t = DateTime::from_timestamp_millis(millis).unwrap();
            let text = match digits {
                0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                3 => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                6 => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                5 => t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
                _ => t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string(),
            };
            let chrono = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_millis();
            proptest::prop_assert_eq!(parse_utc_fast(text.as_bytes()), Some(chrono));
        }

        /// The fast path never disagrees with chrono when it answers. The fields are drawn
        /// around their valid ranges (month 0–13, day 0–32, hour 0–25, a leap second,
        /// Feb 29 of non-leap years, 0–10 fraction digits, every separator and zone
        /// letter), so most inputs reach the comparison and the edges are all tried.
        #[test]
        fn the_fast_path_never_accepts_what_chrono_refuses(
            year in 1970u32..2200,
            month in 0u32..14,
            day in 0u32..33,
            hour in 0u32..26,
            minute in 0u32..62,
            second in 0u32..62,
            fraction in proptest::option::of("[0-9]{0,10}"),
            separator in "[Tt ]",
            zone in "[Zz]?|[+-]0[01]:00",
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            if let Some(fast) = parse_utc_fast(text.as_bytes()) {
                let chrono = DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis());
                proptest::prop_assert_eq!(Ok(fast), chrono);
            }
        }
    }

    /// Every byte value in every place of a valid timestamp, with and without a
    /// fraction: the fast path answers only where chrono agrees, and only for digits,
    /// the separators and the zone letter in their places.
    #[test]
    fn the_fast_path_refuses_any_other_byte_in_any_place() {
        let mut answered = 0;
        for valid in [
            "2026-03-01T12:34:56Z",
            "2026-03-01T12:34:56.789Z",
            "2026-03-01T12:34:56.789+00:00",
        ] {
            for place in 0..valid.len() {
                for byte in 0..=u8::MAX {
                    let mut text = valid.as_bytes().to_vec();
                    text[place] = byte;
                    let Some(fast) = parse_utc_fast(&text) else {
                        assert_ne!(byte, valid.as_bytes()[place], "{valid} refused");
                        continue;
                    };
                    answered += 1;
                    let chrono = std::str::from_utf8(&text)
                        .ok()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                    assert_eq!(
                        chrono.map(|t| t.timestamp_millis()),
                        Some(fast),
                        "{}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
        // Every byte that keeps a valid timestamp: per place of the first, 10 for each
        // year digit, 1+9 for the month, 4+9 for the day (March), 3+10 hours, 6+10
        // minutes, 6+10 seconds, 2 for `T`/`t`, 2 for `Z`/`z`, 1 per other separator:
        // 116; the second adds `.` and 30 fraction digits: 147; the third has `+00:00`,
        // one byte each, for the zone letter's two: 151.
        assert_eq!(answered, 116 + 147 + 151);
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
        assert!(
            days_between(i64::MAX, i64::MIN) < -1e11,
            "saturates, never overflows"
        );
    }
}
