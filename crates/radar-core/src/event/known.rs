//! Where the known properties sit in a properties object, found as the envelope scanner
//! checks the line, and read from there without a second pass: the fast path of
//! [`Event::properties`](super::Event::properties). Anything unusual is left to serde_json.

use std::borrow::Cow;

use super::{RawProperties, Text};

/// Where each known property's value starts in the properties' text (0: absent), as
/// the envelope scanner found them while checking the line (see `crate::scan`): the
/// usual event's properties are then read without scanning the object a second time.
/// Offsets rather than values keep the decoded event small, and it is moved around;
/// 16 bits each, so a known property more than 64 KiB into the object leaves the
/// object to serde_json.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Known([u16; 15]);

/// A known property's place in [`Known`], by name.
#[inline]
pub(super) fn known_index(name: &str) -> Option<usize> {
    Some(match name {
        "seats_used" => 0,
        "seat_limit" => 1,
        "api_calls" => 2,
        "api_limit" => 3,
        "plan" => 4,
        "arr" => 5,
        "contract_end" => 6,
        "customer_since" => 7,
        "active_users_1d" => 8,
        "active_users_30d" => 9,
        "api_calls_period" => 10,
        "features_adopted" => 11,
        "health_score" => 12,
        "churn_risk" => 13,
        "score" => 14,
        _ => return None,
    })
}

/// Checks the object starting at `at` in `text` (its `{`) and finds its known
/// properties: where each value starts, relative to `at`, and the index after the
/// object. `None` when it is not valid JSON, or names a known property twice (a repeat
/// is serde's to judge).
#[inline]
pub(crate) fn locate_properties(text: &str, at: usize) -> Option<(Known, usize)> {
    use crate::scan::Key;
    let b = text.as_bytes();
    let mut known = Known::default();
    let end = crate::scan::object_recognising(text, at, known_key, |key, value_at| {
        let end = crate::scan::value_inline(b, value_at)?;
        let index = match key {
            Key::Known(i) => Some(i),
            Key::Text(key) => known_index(key),
        };
        if let Some(i) = index {
            if known.0[i] != 0 {
                return None;
            }
            known.0[i] = u16::try_from(value_at - at).ok()?;
        }
        Some(end)
    })?;
    Some((known, end))
}

/// A known property written compactly at `at`, its key in quotes and its colon
/// (`"seats_used":`): its place in [`Known`] and the index after the colon. The few names
/// that start with the key's first letter are compared as constants, which costs less
/// than scanning the key for its end and looking it up ([`known_index`], which a unit test
/// holds to the same answers); `None` for anything else, and the key is scanned.
#[inline]
pub(super) fn known_key(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let name =
        |index: usize, quoted: &[u8]| crate::scan::literal(b, at, quoted).map(|end| (index, end));
    match *b.get(at + 1)? {
        b'a' => name(2, b"\"api_calls\":")
            .or_else(|| name(3, b"\"api_limit\":"))
            .or_else(|| name(5, b"\"arr\":"))
            .or_else(|| name(8, b"\"active_users_1d\":"))
            .or_else(|| name(9, b"\"active_users_30d\":"))
            .or_else(|| name(10, b"\"api_calls_period\":")),
        b'c' => name(6, b"\"contract_end\":")
            .or_else(|| name(7, b"\"customer_since\":"))
            .or_else(|| name(13, b"\"churn_risk\":")),
        b'f' => name(11, b"\"features_adopted\":"),
        b'h' => name(12, b"\"health_score\":"),
        b'p' => name(4, b"\"plan\":"),
        b's' => name(0, b"\"seats_used\":")
            .or_else(|| name(1, b"\"seat_limit\":"))
            .or_else(|| name(14, b"\"score\":")),
        _ => None,
    }
}

/// The known properties of `json` (an object) where `known` locates them, when each is
/// written as producers usually write it — integers plain and in range, decimals
/// serde_json reads exactly as [`crate::scan::decimal`] does, strings without escapes,
/// booleans; `None` for anything else (`null`, a wrong type, a number out of range), and
/// serde_json decides, with its reason and message.
#[inline]
pub(super) fn read_known<'a>(json: &'a str, known: &Known) -> Option<RawProperties<'a>> {
    use crate::scan::{decimal, literal, text_at, unsigned};
    let b = json.as_bytes();
    let mut raw = RawProperties::default();
    let small = |at| u32::try_from(unsigned(b, at)?.0).ok();
    let large = |at| Some(unsigned(b, at)?.0);
    let real = |at| Some(decimal(b, at)?.0);
    let string = |at| Some(Text(Cow::Borrowed(text_at(json, at)?.0)));
    for (i, &at) in known.0.iter().enumerate() {
        let at = usize::from(at);
        if at == 0 {
            continue;
        }
        match i {
            0 => raw.seats_used = Some(small(at)?),
            1 => raw.seat_limit = Some(small(at)?),
            2 => raw.api_calls = Some(large(at)?),
            3 => raw.api_limit = Some(large(at)?),
            4 => raw.plan = Some(string(at)?),
            5 => raw.arr = Some(real(at)?),
            6 => raw.contract_end = Some(string(at)?),
            7 => raw.customer_since = Some(string(at)?),
            8 => raw.active_users_1d = Some(small(at)?),
            9 => raw.active_users_30d = Some(small(at)?),
            10 => raw.api_calls_period = Some(large(at)?),
            11 => raw.features_adopted = Some(small(at)?),
            12 => raw.health_score = Some(real(at)?),
            13 => {
                raw.churn_risk = Some(match *b.get(at)? {
                    b't' => literal(b, at, b"true").map(|_| true)?,
                    _ => literal(b, at, b"false").map(|_| false)?,
                })
            }
            _ => raw.score = Some(real(at)?),
        }
    }
    Some(raw)
}

/// The fast path for a whole properties object (see [`read_known`]); `None`: serde's.
#[inline]
pub(super) fn scan_properties(json: &str) -> Option<RawProperties<'_>> {
    let (known, end) = locate_properties(json, 0)?;
    if crate::scan::skip_ws(json.as_bytes(), end) != json.len() {
        return None;
    }
    read_known(json, &known)
}
