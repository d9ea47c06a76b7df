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

mod known;

pub(crate) use known::{Known, locate_properties};
use known::{read_known, scan_properties};

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
    /// Not what its source's format says (radar-ingest): not JSON, a bad schema-registry
    /// header, a datum its writer schema does not read.
    BadFormat,
    /// A schema id the registry says does not exist.
    UnknownSchema,
    /// None of the source's account paths gave an account id.
    NoAccount,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::InvalidJson,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::FieldTooLong,
        RejectReason::BadTimestamp,
        RejectReason::TooFarInFuture,
        RejectReason::OutOfRange,
        RejectReason::KeyMismatch,
        RejectReason::BadFormat,
        RejectReason::UnknownSchema,
        RejectReason::NoAccount,
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
            RejectReason::BadFormat => "bad_format",
            RejectReason::UnknownSchema => "unknown_schema",
            RejectReason::NoAccount => "no_account",
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
    pub fn new(reason: RejectReason, detail: impl Into<Cow<'static, str>>) -> Self {
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
    properties: PropertiesFrom<'a>,
}

/// Where an event's properties come from.
#[derive(Debug, Clone)]
enum PropertiesFrom<'a> {
    /// The properties object's JSON text, parsed only by [`Event::properties`], and where
    /// the known properties are in it when the envelope scanner found them while
    /// checking the line.
    Json(&'a str, Option<Known>),
    /// Read by a source's mapping ([`assemble`]); boxed, so that the usual event stays
    /// small.
    Mapped(Box<Properties>),
    None,
}

/// An event's fields as a source's mapping found them (radar-ingest), for [`assemble`]
/// to check as [`decode`] checks the envelope's.
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub account_id: Cow<'a, str>,
    pub timestamp: Millis,
    pub user_id: Option<Cow<'a, str>>,
    pub received_at: Option<Millis>,
    /// `None` when the mapping found no property at all.
    pub properties: Option<Properties>,
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
    within(event_type.len(), MAX_TEXT_LEN, "type")?;
    let account_id = required_id(raw.account_id, "account_id")?;
    let timestamp = required(raw.timestamp, "timestamp")?;
    let timestamp = parse_rfc3339(&timestamp)
        .ok_or_else(|| Rejection::new(RejectReason::BadTimestamp, "timestamp"))?;
    if let Some(user_id) = &raw.user_id {
        within(user_id.len(), MAX_TEXT_LEN, "user_id")?;
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
    not_too_far(timestamp, reference, max_future_skew)?;
    let properties = match raw.properties.map(|p| p.0) {
        Some(json) if !json.starts_with('{') => {
            return Err(Rejection::new(
                RejectReason::WrongType,
                "properties must be an object",
            ));
        }
        Some(json) => PropertiesFrom::Json(json, known),
        None => PropertiesFrom::None,
    };
    Ok(Event {
        event_id,
        event_type,
        account_id,
        timestamp,
        properties,
    })
}

/// Checks the fields a source's mapping found as [`decode`] checks the envelope's, in
/// the same order, and gives the event; its properties are checked when read
/// ([`Event::properties`]), as the envelope's are.
pub fn assemble(
    parts: Parts<'_>,
    record_time: Option<Millis>,
    max_future_skew: Millis,
) -> Result<Event<'_>, Rejection> {
    let event_id = present(parts.event_id, "event_id")?;
    within(event_id.len(), MAX_ID_LEN, "event_id")?;
    let event_type = present(parts.event_type, "type")?;
    within(event_type.len(), MAX_TEXT_LEN, "type")?;
    let account_id = present(parts.account_id, "account_id")?;
    within(account_id.len(), MAX_ID_LEN, "account_id")?;
    // Before the epoch: what `parse_rfc3339` refuses in the envelope.
    if parts.timestamp < 0 {
        return Err(Rejection::new(RejectReason::BadTimestamp, "timestamp"));
    }
    if let Some(user_id) = &parts.user_id {
        within(user_id.len(), MAX_TEXT_LEN, "user_id")?;
    }
    not_too_far(
        parts.timestamp,
        record_time.or(parts.received_at),
        max_future_skew,
    )?;
    Ok(Event {
        event_id,
        event_type,
        account_id,
        timestamp: parts.timestamp,
        properties: match parts.properties {
            Some(properties) => PropertiesFrom::Mapped(Box::new(properties)),
            None => PropertiesFrom::None,
        },
    })
}

/// `missing_field` when empty.
fn present<'a>(value: Cow<'a, str>, field: &'static str) -> Result<Cow<'a, str>, Rejection> {
    if value.is_empty() {
        return Err(Rejection::new(RejectReason::MissingField, field));
    }
    Ok(value)
}

/// `field_too_long` past `max` bytes.
fn within(len: usize, max: usize, field: &'static str) -> Result<(), Rejection> {
    if len > max {
        return Err(Rejection::new(RejectReason::FieldTooLong, field));
    }
    Ok(())
}

/// `too_far_in_future`: an event time more than `max_future_skew` after `reference`
/// (the record's time, else the event's `received_at`; without both, no check).
fn not_too_far(
    timestamp: Millis,
    reference: Option<Millis>,
    max_future_skew: Millis,
) -> Result<(), Rejection> {
    match reference {
        Some(reference) if timestamp > reference.saturating_add(max_future_skew) => {
            Err(Rejection::new(RejectReason::TooFarInFuture, "timestamp"))
        }
        _ => Ok(()),
    }
}

impl Event<'_> {
    /// The known properties, checked: types, lengths, ranges and dates.
    pub fn properties(&self) -> Result<Properties, Rejection> {
        let (json, known) = match &self.properties {
            PropertiesFrom::Json(json, known) => (*json, known),
            PropertiesFrom::Mapped(properties) => {
                let p = &**properties;
                in_bounds(
                    p.plan.as_ref().map(|plan| plan.len()),
                    p.health_score,
                    p.score,
                    p.arr,
                )?;
                return Ok(p.clone());
            }
            PropertiesFrom::None => return properties(&RawProperties::default()),
        };
        let fast = match known {
            Some(known) => read_known(json, known),
            None => scan_properties(json),
        };
        match fast {
            Some(raw) => properties(&raw),
            None => properties(&serde_json::from_str(json).map_err(json_rejection)?),
        }
    }
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
    within(value.len(), MAX_ID_LEN, field)?;
    Ok(value)
}

fn properties(raw: &RawProperties<'_>) -> Result<Properties, Rejection> {
    in_bounds(
        raw.plan.as_ref().map(Text::len),
        raw.health_score,
        raw.score,
        raw.arr,
    )?;
    Ok(Properties {
        seats_used: raw.seats_used,
        seat_limit: raw.seat_limit,
        api_calls: raw.api_calls,
        api_limit: raw.api_limit,
        plan: raw.plan.as_ref().map(|p| p.0.as_ref().into()),
        arr: raw.arr,
        contract_end: date(raw.contract_end.as_ref(), "properties.contract_end")?,
        customer_since: date(raw.customer_since.as_ref(), "properties.customer_since")?,
        active_users_1d: raw.active_users_1d,
        active_users_30d: raw.active_users_30d,
        api_calls_period: raw.api_calls_period,
        features_adopted: raw.features_adopted,
        health_score: raw.health_score,
        churn_risk: raw.churn_risk,
        score: raw.score,
    })
}

/// The bounds every reader of properties holds them to, whichever way they were read:
/// the length of `plan`, the ranges of scores and ARR.
fn in_bounds(
    plan_len: Option<usize>,
    health_score: Option<f64>,
    score: Option<f64>,
    arr: Option<f64>,
) -> Result<(), Rejection> {
    if let Some(len) = plan_len {
        within(len, MAX_TEXT_LEN, "properties.plan")?;
    }
    in_range(health_score, 0.0, 100.0, "properties.health_score")?;
    in_range(score, 0.0, 10.0, "properties.score")?;
    in_range(arr, 0.0, f64::MAX, "properties.arr")?;
    Ok(())
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
mod tests;
