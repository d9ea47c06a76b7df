//! The event envelope and its decoding from JSON bytes.
//!
//! Decoding borrows strings from the input wherever JSON allows it, so the hot path
//! allocates nothing for a well-formed event. Every refusal carries a [`RejectReason`];
//! an unknown `type` is not a refusal (see [`crate::types`]). [`decode`] checks the
//! envelope; the properties are parsed only for the built-in types that read them
//! ([`Event::properties`]), so the properties of unknown and declared types are never
//! judged, and events without properties to read skip that work.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::time::{Millis, parse_date_or_rfc3339, parse_rfc3339};

/// Longest accepted `event_id` and `account_id`, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted `type`, `user_id` and `plan` (the free text Radar reads; other text
/// properties are not read, so not judged), in bytes; also the longest custom type name.
pub const MAX_TEXT_LEN: usize = 256;

/// Why an event was refused; the label of `radar_events_rejected_total{reason}` and of
/// the dead-letter header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    InvalidJson,
    MissingField,
    WrongType,
    FieldTooLong,
    BadTimestamp,
    TooFarInFuture,
    OutOfRange,
    /// The Kafka record's key is not the event's `account_id` (or it has none): the
    /// account's events could be spread over partitions, out of order.
    KeyMismatch,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        RejectReason::InvalidJson,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::FieldTooLong,
        RejectReason::BadTimestamp,
        RejectReason::TooFarInFuture,
        RejectReason::OutOfRange,
        RejectReason::KeyMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::FieldTooLong => "field_too_long",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::TooFarInFuture => "too_far_in_future",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::KeyMismatch => "key_mismatch",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A refused event: the reason, and a short human detail (field name or parser message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: Cow<'static, str>,
}

impl Rejection {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// A decoded event. Strings borrow from the input bytes unless JSON escapes forced a copy.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub account_id: Cow<'a, str>,
    pub timestamp: Millis,
    /// The properties object's JSON text, parsed only by [`Event::properties`].
    properties: Option<&'a str>,
    /// Where the known properties are in `properties`, when the envelope scanner found
    /// them while checking the line.
    known: Option<Known>,
}

/// The known properties of every built-in type, flattened; unknown properties are ignored.
/// Each known name has one type whatever the event type, so `"seat_limit": "10"` is a
/// `wrong_type` anywhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties {
    pub seats_used: Option<u32>,
    pub seat_limit: Option<u32>,
    pub api_calls: Option<u64>,
    pub api_limit: Option<u64>,
    pub plan: Option<compact_str::CompactString>,
    pub arr: Option<f64>,
    pub contract_end: Option<Millis>,
    pub customer_since: Option<Millis>,
    pub active_users_1d: Option<u32>,
    pub active_users_30d: Option<u32>,
    pub api_calls_period: Option<u64>,
    pub features_adopted: Option<u32>,
    pub health_score: Option<f64>,
    pub churn_risk: Option<bool>,
    pub score: Option<f64>,
}

/// A JSON string that borrows from the input unless it has escapes. (serde's own `Cow`
/// impl always copies when wrapped in an `Option`.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit(std::marker::PhantomData))
    }
}

impl<'a> Text<'a> {
    fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<Text<'a>>,
    #[serde(borrow, default)]
    account_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    received_at: Option<Text<'a>>,
    #[serde(borrow, default)]
    properties: Option<RawJson<'a>>,
}

/// A JSON value's text, borrowed from the line (serde_json checks its syntax as it
/// passes it).
struct RawJson<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(|raw| RawJson(raw.get()))
    }
}

impl<'a> From<crate::scan::Envelope<'a>> for RawEvent<'a> {
    fn from(e: crate::scan::Envelope<'a>) -> RawEvent<'a> {
        let text = |v: Option<&'a str>| v.map(|v| Text(Cow::Borrowed(v)));
        RawEvent {
            event_id: text(e.event_id),
            event_type: text(e.event_type),
            account_id: text(e.account_id),
            timestamp: text(e.timestamp),
            user_id: text(e.user_id),
            received_at: text(e.received_at),
            properties: e.properties.map(RawJson),
        }
    }
}

#[derive(Deserialize, Default)]
struct RawProperties<'a> {
    #[serde(default)]
    seats_used: Option<u32>,
    #[serde(default)]
    seat_limit: Option<u32>,
    #[serde(default)]
    api_calls: Option<u64>,
    #[serde(default)]
    api_limit: Option<u64>,
    #[serde(borrow, default)]
    plan: Option<Text<'a>>,
    #[serde(default)]
    arr: Option<f64>,
    #[serde(borrow, default)]
    contract_end: Option<Text<'a>>,
    #[serde(borrow, default)]
    customer_since: Option<Text<'a>>,
    #[serde(default)]
    active_users_1d: Option<u32>,
    #[serde(default)]
    active_users_30d: Option<u32>,
    #[serde(default)]
    api_calls_period: Option<u64>,
    #[serde(default)]
    features_adopted: Option<u32>,
    #[serde(default)]
    health_score: Option<f64>,
    #[serde(default)]
    churn_risk: Option<bool>,
    #[serde(default)]
    score: Option<f64>,
}

/// Decodes one event from its JSON bytes.
///
/// `record_time` is the Kafka record's own timestamp when there is one; an event stamped
/// more than `max_future_skew` after it is refused (`too_far_in_future`). Without it, the
/// event's optional `received_at` plays that part (replay); without both the check is
/// skipped.
pub fn decode(
    bytes: &[u8],
    record_time: Option<Millis>,
    max_future_skew: Millis,
) -> Result<Event<'_>, Rejection> {
    // One UTF-8 check of the whole line (SIMD), then a `&str` parse that need not re-check
    // every string it borrows. Invalid UTF-8 is not JSON (RFC 8259); the standard library
    // then says where.
    let text = simdutf8::basic::from_utf8(bytes)
        .or_else(|_| std::str::from_utf8(bytes))
        .map_err(|e| Rejection::new(RejectReason::InvalidJson, format!("not UTF-8: {e}")))?;
    // The scanner reads the usual line in one pass; anything else, every rejection
    // included, is serde_json's (see `crate::scan`).
    let (raw, known) = match crate::scan::scan(text) {
        Some(mut envelope) => {
            let known = envelope.known.take();
            (RawEvent::from(envelope), known)
        }
        None => (
            serde_json::from_str::<RawEvent<'_>>(text).map_err(json_rejection)?,
            None,
        ),
    };
    let event_id = required_id(raw.event_id, "event_id")?;
    let event_type = required(raw.event_type, "type")?;
    if event_type.len() > MAX_TEXT_LEN {
        return Err(Rejection::new(RejectReason::FieldTooLong, "type"));
    }
    let account_id = required_id(raw.account_id, "account_id")?;
    let timestamp = required(raw.timestamp, "timestamp")?;
    let timestamp = parse_rfc3339(&timestamp)
        .ok_or_else(|| Rejection::new(RejectReason::BadTimestamp, "timestamp"))?;
    if raw.user_id.as_ref().is_some_and(|u| u.len() > MAX_TEXT_LEN) {
        return Err(Rejection::new(RejectReason::FieldTooLong, "user_id"));
    }
    // `received_at` stands in for the record time only where there is none (replay).
    let reference = match (record_time, raw.received_at) {
        (Some(record), _) => Some(record),
        (None, Some(Text(text))) => Some(
            parse_rfc3339(&text)
                .ok_or_else(|| Rejection::new(RejectReason::BadTimestamp, "received_at"))?,
        ),
        (None, None) => None,
    };
    if let Some(reference) = reference
        && timestamp > reference.saturating_add(max_future_skew)
    {
        return Err(Rejection::new(RejectReason::TooFarInFuture, "timestamp"));
    }
    let properties = raw.properties.map(|p| p.0);
    if properties.is_some_and(|p| !p.starts_with('{')) {
        return Err(Rejection::new(
            RejectReason::WrongType,
            "properties must be an object",
        ));
    }
    Ok(Event {
        event_id,
        event_type,
        account_id,
        timestamp,
        properties,
        known,
    })
}

impl Event<'_> {
    /// The known properties, checked: types, lengths, ranges and dates.
    pub fn properties(&self) -> Result<Properties, Rejection> {
        let Some(json) = self.properties else {
            return properties(&RawProperties::default());
        };
        let fast = match &self.known {
            Some(known) => read_known(json, known),
            None => scan_properties(json),
        };
        match fast {
            Some(raw) => properties(&raw),
            None => properties(&serde_json::from_str(json).map_err(json_rejection)?),
        }
    }
}

/// Where each known property's value starts in the properties' text (0: absent), as
/// the envelope scanner found them while checking the line (see `crate::scan`): the
/// usual event's properties are then read without scanning the object a second time.
/// Offsets rather than values keep the decoded event small, and it is moved around;
/// 16 bits each, so a known property more than 64 KiB into the object leaves the
/// object to serde_json.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Known([u16; 15]);

/// A known property's place in [`Known`], by name.
fn known_index(name: &str) -> Option<usize> {
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
fn known_key(b: &[u8], at: usize) -> Option<(usize, usize)> {
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
fn read_known<'a>(json: &'a str, known: &Known) -> Option<RawProperties<'a>> {
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
fn scan_properties(json: &str) -> Option<RawProperties<'_>> {
    let (known, end) = locate_properties(json, 0)?;
    if crate::scan::skip_ws(json.as_bytes(), end) != json.len() {
        return None;
    }
    read_known(json, &known)
}

fn json_rejection(err: serde_json::Error) -> Rejection {
    let message = err.to_string();
    let reason = match err.classify() {
        // serde says "invalid value" for a number of the right kind out of its type's
        // range, e.g. a negative `seats_used`.
        serde_json::error::Category::Data if message.starts_with("invalid value") => {
            RejectReason::OutOfRange
        }
        serde_json::error::Category::Data => RejectReason::WrongType,
        _ => RejectReason::InvalidJson,
    };
    Rejection::new(reason, message)
}

fn required<'a>(value: Option<Text<'a>>, field: &'static str) -> Result<Cow<'a, str>, Rejection> {
    match value {
        Some(Text(v)) if !v.is_empty() => Ok(v),
        _ => Err(Rejection::new(RejectReason::MissingField, field)),
    }
}

fn required_id<'a>(
    value: Option<Text<'a>>,
    field: &'static str,
) -> Result<Cow<'a, str>, Rejection> {
    let value = required(value, field)?;
    if value.len() > MAX_ID_LEN {
        return Err(Rejection::new(RejectReason::FieldTooLong, field));
    }
    Ok(value)
}

fn properties(raw: &RawProperties<'_>) -> Result<Properties, Rejection> {
    if raw.plan.as_ref().is_some_and(|t| t.len() > MAX_TEXT_LEN) {
        return Err(Rejection::new(
            RejectReason::FieldTooLong,
            "properties.plan",
        ));
    }
    let health_score = in_range(raw.health_score, 0.0, 100.0, "properties.health_score")?;
    let score = in_range(raw.score, 0.0, 10.0, "properties.score")?;
    let arr = in_range(raw.arr, 0.0, f64::MAX, "properties.arr")?;
    Ok(Properties {
        seats_used: raw.seats_used,
        seat_limit: raw.seat_limit,
        api_calls: raw.api_calls,
        api_limit: raw.api_limit,
        plan: raw.plan.as_ref().map(|p| p.0.as_ref().into()),
        arr,
        contract_end: date(raw.contract_end.as_ref(), "properties.contract_end")?,
        customer_since: date(raw.customer_since.as_ref(), "properties.customer_since")?,
        active_users_1d: raw.active_users_1d,
        active_users_30d: raw.active_users_30d,
        api_calls_period: raw.api_calls_period,
        features_adopted: raw.features_adopted,
        health_score,
        churn_risk: raw.churn_risk,
        score,
    })
}

fn in_range(
    value: Option<f64>,
    min: f64,
    max: f64,
    field: &'static str,
) -> Result<Option<f64>, Rejection> {
    match value {
        Some(v) if !(v.is_finite() && v >= min && v <= max) => {
            Err(Rejection::new(RejectReason::OutOfRange, field))
        }
        other => Ok(other),
    }
}

fn date(value: Option<&Text<'_>>, field: &'static str) -> Result<Option<Millis>, Rejection> {
    match value {
        None => Ok(None),
        Some(text) => parse_date_or_rfc3339(&text.0)
            .map(Some)
            .ok_or_else(|| Rejection::new(RejectReason::BadTimestamp, field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::HOUR;

    /// The known properties' names.
    const PROPERTY_NAMES: [&str; 15] = [
        "seats_used",
        "seat_limit",
        "api_calls",
        "api_limit",
        "plan",
        "arr",
        "contract_end",
        "customer_since",
        "active_users_1d",
        "active_users_30d",
        "api_calls_period",
        "features_adopted",
        "health_score",
        "churn_risk",
        "score",
    ];

    /// The reason a line is refused, by the envelope check or by its properties.
    fn reason(line: &str) -> RejectReason {
        match decode(line.as_bytes(), None, HOUR) {
            Err(rejection) => rejection.reason,
            Ok(event) => event.properties().unwrap_err().reason,
        }
    }

    const OK: &str = r#"{"event_id":"e1","type":"feature_limit_hit","account_id":"acme","timestamp":"2026-03-01T00:00:00Z","properties":{"feature":"sso","limit":3,"extra":{"x":[1]}}}"#;

    #[test]
    fn decodes_and_borrows() {
        let event = decode(OK.as_bytes(), None, HOUR).unwrap();
        assert_eq!(event.event_id, "e1");
        assert!(matches!(event.account_id, Cow::Borrowed(_)));
        assert_eq!(event.event_type, "feature_limit_hit");
        assert_eq!(
            event.timestamp,
            parse_rfc3339("2026-03-01T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let line = r#"{"event_id":"e\"1","type":"user_login","account_id":"a\u00e9","timestamp":"2026-03-01T00:00:00Z"}"#;
        let event = decode(line.as_bytes(), None, HOUR).unwrap();
        assert_eq!(event.event_id, "e\"1");
        assert_eq!(event.account_id, "aé");
    }

    #[test]
    fn every_rejection_has_its_reason() {
        assert_eq!(reason("{not json"), RejectReason::InvalidJson);
        assert_eq!(reason(""), RejectReason::InvalidJson);
        assert_eq!(
            reason(r#"{"type":"x"} trailing"#),
            RejectReason::InvalidJson
        );
        assert_eq!(
            reason(r#"{"type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(
                r#"{"event_id":"","type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#
            ),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(
                r#"{"event_id":7,"type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#
            ),
            RejectReason::WrongType
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","type":"usage_snapshot","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"seats_used":"9"}}"#
            ),
            RejectReason::WrongType
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            reason(&format!(
                r#"{{"event_id":"e","type":"user_login","account_id":"{long}","timestamp":"2026-03-01T00:00:00Z"}}"#
            )),
            RejectReason::FieldTooLong
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"March 1st"}"#
            ),
            RejectReason::BadTimestamp
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"2026-03-01T02:00:01Z","received_at":"2026-03-01T01:00:00Z"}"#
            ),
            RejectReason::TooFarInFuture
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","type":"health_updated","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"health_score":101}}"#
            ),
            RejectReason::OutOfRange
        );
    }

    #[test]
    fn invalid_utf8_is_refused_saying_where() {
        let mut bytes = OK.as_bytes().to_vec();
        let at = OK.find("acme").unwrap();
        bytes[at] = 0xff;
        let rejection = decode(&bytes, None, HOUR).unwrap_err();
        assert_eq!(rejection.reason, RejectReason::InvalidJson);
        assert!(
            rejection.detail.contains(&format!(
                "invalid utf-8 sequence of 1 bytes from index {at}"
            )),
            "{}",
            rejection.detail
        );
    }

    proptest::proptest! {
        /// Whatever the bytes, decoding answers (an event or a reason) and never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&bytes, Some(0), HOUR);
        }

        /// Corrupting a valid event anywhere still gets an answer, never a panic.
        #[test]
        fn mutated_events_never_panic(at in 0usize..OK.len(), byte in proptest::prelude::any::<u8>(), cut in 0usize..OK.len()) {
            let mut bytes = OK.as_bytes().to_vec();
            bytes[at] = byte;
            let _ = decode(&bytes, None, HOUR);
            let _ = decode(&OK.as_bytes()[..cut], None, HOUR);
        }
    }

    #[test]
    fn properties_are_judged_only_when_read() {
        // Envelope fine, properties of the wrong shape: decoding succeeds, reading fails.
        let line = r#"{"event_id":"e","type":"page_viewed","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"score":42,"plan":3}}"#;
        let event = decode(line.as_bytes(), None, HOUR).unwrap();
        assert_eq!(
            event.properties().unwrap_err().reason,
            RejectReason::WrongType
        );
        let negative = r#"{"event_id":"e","type":"usage_snapshot","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"seats_used":-1}}"#;
        assert_eq!(reason(negative), RejectReason::OutOfRange);
        let not_object = r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":[1]}"#;
        assert_eq!(reason(not_object), RejectReason::WrongType);
    }

    /// Every known name is recognised where it starts, as [`known_index`] places it, and
    /// nothing else is: not a longer or shorter name, not one with a space before its colon.
    #[test]
    fn known_keys_are_recognised_as_known_index_places_them() {
        for name in PROPERTY_NAMES {
            let index = known_index(name).unwrap();
            let text = format!("\"{name}\":1");
            assert_eq!(known_key(text.as_bytes(), 0), Some((index, text.len() - 1)));
            for other in [format!("\"{name}s\":1"), format!("\"{name}\" :1")] {
                assert_eq!(known_key(other.as_bytes(), 0), None, "{other}");
            }
            let shorter = &name[..name.len() - 1];
            let text = format!("\"{shorter}\":1");
            assert_eq!(
                known_key(text.as_bytes(), 0),
                known_index(shorter).map(|i| (i, text.len() - 1))
            );
        }
        assert_eq!(
            (0..15)
                .map(|i| PROPERTY_NAMES
                    .iter()
                    .filter(|n| known_index(n) == Some(i))
                    .count())
                .collect::<Vec<_>>(),
            vec![1; 15],
            "one name per place"
        );
    }

    #[test]
    fn a_known_property_far_into_the_object_is_still_read() {
        // Beyond the 16-bit offsets of `Known`: serde_json reads it instead.
        let padding = "x".repeat(70_000);
        let line = format!(
            r#"{{"event_id":"e","type":"usage_snapshot","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{{"note":"{padding}","seats_used":9,"seat_limit":10}}}}"#
        );
        let event = decode(line.as_bytes(), None, HOUR).unwrap();
        assert!(event.known.is_none());
        let properties = event.properties().unwrap();
        assert_eq!(properties.seats_used, Some(9));
        assert_eq!(properties.seat_limit, Some(10));
    }

    #[test]
    fn record_time_wins_over_received_at() {
        let line = r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"2026-03-01T02:00:00Z","received_at":"2026-03-01T00:00:00Z"}"#;
        let record = parse_rfc3339("2026-03-01T01:30:00Z");
        assert!(decode(line.as_bytes(), record, HOUR).is_ok());
        assert_eq!(
            decode(line.as_bytes(), None, HOUR).unwrap_err().reason,
            RejectReason::TooFarInFuture
        );
    }

    #[test]
    fn contract_dates_accept_plain_dates() {
        let line = r#"{"event_id":"e","type":"entitlement_updated","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"contract_end":"2026-06-01","plan":"growth"}}"#;
        let event = decode(line.as_bytes(), None, HOUR).unwrap();
        assert_eq!(
            event.properties().unwrap().contract_end,
            parse_rfc3339("2026-06-01T00:00:00Z")
        );
        assert_eq!(event.properties().unwrap().plan.as_deref(), Some("growth"));
    }

    mod scanner {
        use super::*;
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;

        /// JSON-ish text: valid values mostly, with escapes, control characters, bad
        /// numbers and bad literals among them.
        fn value() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                12 => "\"[a-zé0-9 _:.-]{0,12}\"",
                1 => "\"[a-z]{0,3}(\\\\[\"nt/u]|\\\\u00e9|\t)?[a-z]{0,3}\"",
                6 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
                1 => "[-0-9.eE+]{1,5}",
                2 => Just("true".to_owned()),
                2 => Just("false".to_owned()),
                2 => Just("null".to_owned()),
                1 => Just("tru".to_owned()),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    proptest::collection::vec(("[a-z_]{1,6}", inner), 0..4).prop_map(|members| {
                        let members: Vec<String> = members
                            .iter()
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            })
        }

        /// A member: an envelope field with (mostly) a string, `properties` with (mostly) an
        /// object, or another key with any value; now and then an escaped key.
        fn member() -> impl Strategy<Value = (String, String)> {
            let known = prop_oneof![
                Just("event_id"),
                Just("type"),
                Just("account_id"),
                Just("timestamp"),
                Just("user_id"),
                Just("received_at"),
            ];
            let text = "\"[a-zA-Z0-9 _:.-]{0,16}\"";
            let object = proptest::collection::vec(("[a-z_]{1,6}", value()), 0..4).prop_map(|m| {
                let m: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", m.join(","))
            });
            prop_oneof![
                6 => (known.clone(), text).prop_map(|(k, v)| (k.to_owned(), v)),
                1 => (known, value()).prop_map(|(k, v)| (k.to_owned(), v)),
                3 => object.prop_map(|v| ("properties".to_owned(), v)),
                3 => properties_object().prop_map(|v| ("properties".to_owned(), v)),
                1 => value().prop_map(|v| ("properties".to_owned(), v)),
                4 => ("[a-z_]{1,8}", value()),
                1 => value().prop_map(|v| ("event\\u005fid".to_owned(), v)),
            ]
        }

        /// An envelope-like object, sometimes cut short or followed by junk.
        fn line() -> impl Strategy<Value = String> {
            (
                proptest::collection::vec((member(), "[ \t]{0,2}"), 0..6),
                0usize..10,
                any::<prop::sample::Index>(),
                prop_oneof![8 => Just(String::new()), 1 => Just(" ".to_owned()), 1 => Just("x".to_owned())],
            )
                .prop_map(|(members, cut, at, tail)| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|((k, v), ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                        .collect();
                    let mut text = format!("{{{}}}{tail}", members.join(","));
                    if cut == 0 {
                        let at = at.index(text.len() + 1);
                        while !text.is_char_boundary(at.min(text.len())) {
                            text.pop();
                        }
                        text.truncate(at.min(text.len()));
                    }
                    text
                })
        }

        type Fields = Vec<Option<String>>;

        fn fields(raw: RawEvent<'_>) -> Fields {
            let text = |t: Option<Text<'_>>| t.map(|t| t.0.into_owned());
            vec![
                text(raw.event_id),
                text(raw.event_type),
                text(raw.account_id),
                text(raw.timestamp),
                text(raw.user_id),
                text(raw.received_at),
                raw.properties.map(|p| p.0.to_owned()),
            ]
        }

        /// Whatever the scanner accepts, serde_json accepts with the same fields: the fast
        /// path never changes what an event decodes to, or whether it is refused. Drawn
        /// by hand from the strategy so the test also checks that a good share of the
        /// lines reach the comparison.
        #[test]
        fn the_scanner_agrees_with_serde_json_whenever_it_answers() {
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let strategy = line();
            let (mut answered, mut read, draws) = (0, 0, 4_000);
            for _ in 0..draws {
                let text = strategy.new_tree(&mut runner).unwrap().current();
                if let Some(mut envelope) = crate::scan::scan(&text) {
                    answered += 1;
                    let serde = serde_json::from_str::<RawEvent<'_>>(&text).unwrap_or_else(|e| {
                        panic!("serde refuses what the scanner took: {text}: {e}")
                    });
                    // Known properties read on the way are those serde reads from the
                    // properties' text.
                    if let (Some(known), Some(json)) = (envelope.known.take(), &serde.properties)
                        && let Some(fast) = read_known(json.0, &known)
                    {
                        read += 1;
                        let by_serde = serde_json::from_str::<RawProperties<'_>>(json.0)
                            .unwrap_or_else(|e| panic!("serde refuses what was read: {text}: {e}"));
                        assert_eq!(properties(&fast), properties(&by_serde), "{text}");
                    }
                    assert_eq!(fields(RawEvent::from(envelope)), fields(serde), "{text}");
                }
            }
            assert!(
                answered * 5 > draws,
                "only {answered} of {draws} lines reached the comparison"
            );
            assert!(
                read * 20 > draws,
                "only {read} of {draws} lines had their known properties read"
            );
        }

        /// A properties object: known and other names, values of every kind and range.
        fn properties_object() -> impl Strategy<Value = String> {
            let name = prop_oneof![
                6 => proptest::sample::select(PROPERTY_NAMES.to_vec()).prop_map(str::to_owned),
                1 => "[a-z_]{1,8}",
            ];
            let number = prop_oneof![
                4 => "(0|[1-9][0-9]{0,9})",
                1 => "[1-9][0-9]{10,21}",
                1 => "-(0|[1-9][0-9]{0,3})",
                3 => "-?(0|[1-9][0-9]{0,8})\\.[0-9]{1,8}",
                1 => "-?[1-9]\\.[0-9]{1,3}[eE][+-]?[0-9]{1,3}",
                1 => "[0-9]{16,18}\\.[0-9]{1,4}",
            ];
            let member_value = prop_oneof![
                6 => number,
                2 => "\"[a-z0-9:T-]{0,24}\"",
                1 => Just("\"2026-03-01T00:00:00Z\"".to_owned()),
                1 => Just("true".to_owned()),
                1 => Just("false".to_owned()),
                1 => Just("null".to_owned()),
                1 => value(),
            ];
            // Whitespace, sometimes, around each key, colon and value: a value is then
            // found after it and read back from where it starts.
            let space = || prop_oneof![3 => Just(String::new()), 1 => "[ \t\n\r]{1,2}"];
            let member = (space(), name, space(), space(), member_value, space());
            proptest::collection::vec(member, 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .iter()
                    .map(|(a, k, b, c, v, d)| format!("{a}\"{k}\"{b}:{c}{v}{d}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            })
        }

        /// Whatever the properties scanner reads, serde_json reads the same: the same
        /// properties, or the same rejection; and most objects reach the comparison.
        #[test]
        fn the_properties_scanner_agrees_with_serde_json_whenever_it_answers() {
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let strategy = properties_object();
            let (mut answered, draws) = (0, 4_000);
            for _ in 0..draws {
                let text = strategy.new_tree(&mut runner).unwrap().current();
                if let Some(scanned) = scan_properties(&text) {
                    answered += 1;
                    let serde =
                        serde_json::from_str::<RawProperties<'_>>(&text).unwrap_or_else(|e| {
                            panic!("serde refuses what the scanner took: {text}: {e}")
                        });
                    assert_eq!(properties(&scanned), properties(&serde), "{text}");
                }
            }
            assert!(
                answered * 5 > draws,
                "only {answered} of {draws} objects reached the comparison"
            );
        }

        /// Generated lines, malformed ones included, all decode to the same as by serde.
        #[test]
        fn the_generated_stream_takes_the_fast_path_and_decodes_the_same() {
            let lines = [
                r#"{"event_id":"evt_1","type":"usage_snapshot","account_id":"acct_000001","timestamp":"2026-01-01T00:00:00Z","user_id":"u_3","properties":{"seats_used":9,"active_users_30d":9,"active_users_1d":2,"api_calls_period":5120,"features_adopted":4}}"#,
                r#"{"event_id":"evt_2","type":"user_login","account_id":"acct_000002","timestamp":"2026-01-01T00:00:01Z","user_id":"u_0"}"#,
            ];
            for line in lines {
                let envelope = crate::scan::scan(line).expect("the usual line is scanned");
                let serde = serde_json::from_str::<RawEvent<'_>>(line).unwrap();
                assert_eq!(fields(RawEvent::from(envelope)), fields(serde));
            }
        }
    }
}
