//! Captured values → Radar's fields: the paths of each field and property (the
//! envelope's preset, overridden key by key), their converters, and the table of event
//! names. Compiled once at start, where every name is checked; per record, resolving
//! is a few slot reads.

use std::borrow::Cow;
use std::collections::BTreeMap;

use radar_core::event::{Parts, Properties};
use radar_core::time::{Millis, parse_date_or_rfc3339, parse_rfc3339};
use radar_core::{RejectReason, Rejection};

use crate::path::{Captured, Captures, PathTrie, Slot};
use crate::spec::{Envelope, SourceSpec};

/// Radar's fields, in the order of [`FIELDS`].
const FIELDS: [&str; 6] = [
    "event_id",
    "type",
    "account_id",
    "timestamp",
    "user_id",
    "received_at",
];
const EVENT_ID: usize = 0;
const TYPE: usize = 1;
const ACCOUNT_ID: usize = 2;
const TIMESTAMP: usize = 3;
const USER_ID: usize = 4;
const RECEIVED_AT: usize = 5;

/// How a property is read, by what [`Properties`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    U32,
    U64,
    F64,
    Text,
    Date,
    Bool,
}

/// Every known property, with its kind (docs/events.md#event-types).
const PROPERTIES: [(&str, Kind); 15] = [
    ("seats_used", Kind::U32),
    ("seat_limit", Kind::U32),
    ("api_calls", Kind::U64),
    ("api_limit", Kind::U64),
    ("plan", Kind::Text),
    ("arr", Kind::F64),
    ("contract_end", Kind::Date),
    ("customer_since", Kind::Date),
    ("active_users_1d", Kind::U32),
    ("active_users_30d", Kind::U32),
    ("api_calls_period", Kind::U64),
    ("features_adopted", Kind::U32),
    ("health_score", Kind::F64),
    ("churn_risk", Kind::Bool),
    ("score", Kind::F64),
];

// The indices `u32_slot`, `u64_slot`, `f64_slot` and `CONTRACT_END` use, checked at
// compile time against the names.
const _: () = {
    const fn is(index: usize, name: &str) -> bool {
        let (a, b) = (PROPERTIES[index].0.as_bytes(), name.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    assert!(is(0, "seats_used") && is(1, "seat_limit") && is(2, "api_calls"));
    assert!(is(3, "api_limit") && is(5, "arr") && is(CONTRACT_END, "contract_end"));
    assert!(is(8, "active_users_1d") && is(9, "active_users_30d") && is(10, "api_calls_period"));
    assert!(is(11, "features_adopted") && is(12, "health_score") && is(14, "score"));
};

/// The fixed set of converters (no scripting: docs/events.md#sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converter {
    Rfc3339,
    UnixS,
    UnixMs,
    NumberString,
}

impl Converter {
    const ALL: [(&'static str, Converter); 4] = [
        ("rfc3339", Converter::Rfc3339),
        ("unix_s", Converter::UnixS),
        ("unix_ms", Converter::UnixMs),
        ("number_string", Converter::NumberString),
    ];

    fn is_for_time(self) -> bool {
        !matches!(self, Converter::NumberString)
    }
}

/// A mapping that cannot be compiled: the config key, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct MappingError {
    pub key: String,
    pub message: String,
}

/// Where one field or property is read.
#[derive(Clone, Debug)]
struct Reader {
    slots: Vec<Slot>,
    /// `slots` as [`Captures::mask`] gives them.
    mask: (u128, bool),
    convert: Option<Converter>,
}

impl Reader {
    /// The first non-null value at the reader's paths.
    #[inline]
    fn first<'c, 'a>(&self, captures: &'c Captures<'a>) -> Option<&'c Captured<'a>> {
        if !captures.any(self.mask) {
            return None;
        }
        self.slots
            .iter()
            .filter_map(|slot| captures.get(*slot))
            .find(|value| !matches!(value, Captured::Null))
    }
}

/// Whether the event's type came from the `types` table or was its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeFrom {
    Table,
    Name,
}

/// A compiled mapping.
#[derive(Clone, Debug)]
pub struct Mapping {
    fields: [Option<Reader>; 6],
    properties: Vec<(usize, Reader)>,
    /// Their event names with Radar's types: a dozen or so, found by a linear scan that
    /// compares lengths first (SipHashing the name measured ~400 instructions a record).
    types: Vec<(Box<str>, Box<str>)>,
    /// Paths as the config wrote them, per key, for `radar map`'s report.
    paths: Vec<(String, Slot)>,
}

impl Mapping {
    /// Compiles `spec`'s mapping over its envelope's preset, adding its paths to `trie`.
    /// `known_type` says whether a name is a Radar type (built in or declared).
    pub fn compile(
        spec: &SourceSpec,
        trie: &mut PathTrie,
        known_type: impl Fn(&str) -> bool,
    ) -> Result<Mapping, MappingError> {
        let at = |key: &str| format!("sources.{}.{key}", spec.name);
        let error = |key: &str, message: String| MappingError {
            key: at(key),
            message,
        };
        let mut field_paths: BTreeMap<&str, Vec<String>> = preset_fields(spec.envelope);
        for (field, paths) in &spec.fields {
            if !FIELDS.contains(&field.as_str()) {
                return Err(error(
                    &format!("fields.{field}"),
                    format!("not a Radar field (one of {})", FIELDS.join(", ")),
                ));
            }
            field_paths.insert(field, paths.as_slice().to_vec());
        }
        let mut property_paths: BTreeMap<&str, Vec<String>> = preset_properties(spec.envelope);
        for (property, paths) in &spec.properties {
            if !PROPERTIES.iter().any(|(name, _)| name == property) {
                let known: Vec<&str> = PROPERTIES.iter().map(|(name, _)| *name).collect();
                return Err(error(
                    &format!("properties.{property}"),
                    format!("not a Radar property (one of {})", known.join(", ")),
                ));
            }
            property_paths.insert(property, paths.as_slice().to_vec());
        }
        let mut converters: BTreeMap<&str, Converter> = BTreeMap::new();
        for (name, converter) in &spec.convert {
            let key = format!("convert.{name}");
            let Some((_, converter)) = Converter::ALL.iter().find(|(n, _)| n == converter) else {
                let known: Vec<&str> = Converter::ALL.iter().map(|(n, _)| *n).collect();
                return Err(error(
                    &key,
                    format!(
                        "{converter:?} is not a converter (one of {})",
                        known.join(", ")
                    ),
                ));
            };
            let fits = match name.as_str() {
                "timestamp" | "received_at" => converter.is_for_time(),
                "event_id" | "type" | "account_id" | "user_id" => false,
                property => match PROPERTIES.iter().find(|(n, _)| *n == property) {
                    Some((_, Kind::Date)) => converter.is_for_time(),
                    Some((_, Kind::U32 | Kind::U64 | Kind::F64)) => {
                        *converter == Converter::NumberString
                    }
                    Some(_) => false,
                    None => {
                        return Err(error(&key, "not a Radar field or property".into()));
                    }
                },
            };
            if !fits {
                return Err(error(
                    &key,
                    format!("a {name} cannot be read as {converter:?}"),
                ));
            }
            converters.insert(name, *converter);
        }
        let mut paths = Vec::new();
        let mut reader = |key: String, list: &[String], convert| -> Result<Reader, MappingError> {
            if list.is_empty() {
                return Err(error(&key, "no path".into()));
            }
            let mut slots = Vec::with_capacity(list.len());
            for path in list {
                let slot = trie
                    .insert(path)
                    .ok_or_else(|| error(&key, format!("{path:?} is not a dotted path")))?;
                paths.push((at(&key), slot));
                slots.push(slot);
            }
            Ok(Reader {
                mask: Captures::mask(&slots),
                slots,
                convert,
            })
        };
        let mut fields: [Option<Reader>; 6] = Default::default();
        for (index, field) in FIELDS.iter().enumerate() {
            if let Some(list) = field_paths.get(field) {
                let convert = converters.get(field).copied();
                fields[index] = Some(reader(format!("fields.{field}"), list, convert)?);
            } else if index <= TIMESTAMP {
                return Err(error(
                    &format!("fields.{field}"),
                    format!(
                        "required: the {} envelope does not preset it",
                        spec.envelope.as_str()
                    ),
                ));
            }
        }
        let mut properties = Vec::new();
        for (index, (name, _)) in PROPERTIES.iter().enumerate() {
            if let Some(list) = property_paths.get(name) {
                let convert = converters.get(name).copied();
                properties.push((index, reader(format!("properties.{name}"), list, convert)?));
            }
        }
        let mut types = Vec::new();
        for (theirs, ours) in &spec.types {
            if !known_type(ours) {
                return Err(error(
                    &format!("types.{theirs:?}"),
                    format!("{ours:?} is neither a built-in type nor in engine.custom_types"),
                ));
            }
            types.push((theirs.as_str().into(), ours.as_str().into()));
        }
        Ok(Mapping {
            fields,
            properties,
            types,
            paths,
        })
    }

    /// Every path with the config key that reads it.
    pub fn paths(&self) -> &[(String, Slot)] {
        &self.paths
    }

    /// The event the captured values make, checked only as far as the mapping goes
    /// (`assemble` checks the rest as for any event).
    pub fn resolve<'a>(
        &'a self,
        captures: &Captures<'a>,
    ) -> Result<(Parts<'a>, TypeFrom), Rejection> {
        let account_id = match self.text(ACCOUNT_ID, captures)? {
            Some(account) if !account.is_empty() => account,
            _ => {
                return Err(Rejection::new(
                    RejectReason::NoAccount,
                    "no account id at the source's account_id paths",
                ));
            }
        };
        let event_id = self.text(EVENT_ID, captures)?.unwrap_or_default();
        let name = self.text(TYPE, captures)?.unwrap_or_default();
        let ours = self
            .types
            .iter()
            .find(|(theirs, _)| theirs.len() == name.len() && **theirs == *name);
        let (event_type, from) = match ours {
            Some((_, ours)) => (Cow::Borrowed(&**ours), TypeFrom::Table),
            None => (name, TypeFrom::Name),
        };
        let timestamp = self
            .time(TIMESTAMP, captures)?
            .ok_or_else(|| Rejection::new(RejectReason::MissingField, "timestamp"))?;
        // Read only for the built-in types that read them, as the envelope's are: a
        // property badly typed on any other event is not its business, and an event of
        // a type Radar does not know is `unknown_type`, never a refusal.
        let properties = if self.properties.is_empty() || !reads_properties(&event_type) {
            None
        } else {
            self.properties(captures)?
        };
        Ok((
            Parts {
                event_id,
                event_type,
                account_id,
                timestamp,
                user_id: self.text(USER_ID, captures)?,
                received_at: self.time(RECEIVED_AT, captures)?,
                properties,
            },
            from,
        ))
    }

    fn text<'a>(
        &self,
        field: usize,
        captures: &Captures<'a>,
    ) -> Result<Option<Cow<'a, str>>, Rejection> {
        let Some(value) = self.fields[field].as_ref().and_then(|r| r.first(captures)) else {
            return Ok(None);
        };
        match value {
            // Matched rather than `clone`d: a borrowed text is copied in line, not through
            // `Cow::clone`'s call.
            Captured::Str(Cow::Borrowed(text)) => Ok(Some(Cow::Borrowed(text))),
            Captured::Str(Cow::Owned(text)) => Ok(Some(Cow::Owned(text.clone()))),
            Captured::Int(number) => Ok(Some(Cow::Owned(number.to_string()))),
            _ => Err(Rejection::new(
                RejectReason::WrongType,
                format!("{} must be a string", FIELDS[field]),
            )),
        }
    }

    fn time(&self, field: usize, captures: &Captures<'_>) -> Result<Option<Millis>, Rejection> {
        let Some(reader) = &self.fields[field] else {
            return Ok(None);
        };
        let Some(value) = reader.first(captures) else {
            return Ok(None);
        };
        instant(value, reader.convert, false)
            .map(Some)
            .ok_or_else(|| Rejection::new(RejectReason::BadTimestamp, FIELDS[field]))
    }

    #[cold]
    fn wrong(kind: Kind, name: &str, value: &Captured<'_>) -> Rejection {
        let reason = match (kind, value) {
            (Kind::U32 | Kind::U64, Captured::Int(_)) => RejectReason::OutOfRange,
            (Kind::Date, _) => RejectReason::BadTimestamp,
            _ => RejectReason::WrongType,
        };
        Rejection::new(reason, format!("properties.{name}"))
    }

    fn properties(&self, captures: &Captures<'_>) -> Result<Option<Properties>, Rejection> {
        let mut properties = Properties::default();
        let mut found = false;
        for (index, reader) in &self.properties {
            let Some(value) = reader.first(captures) else {
                continue;
            };
            found = true;
            let (name, kind) = PROPERTIES[*index];
            let wrong = || Self::wrong(kind, name, value);
            let number_string = reader.convert == Some(Converter::NumberString);
            match kind {
                Kind::U32 => {
                    let n = integer(value, number_string).ok_or_else(wrong)?;
                    let n = u32::try_from(n).map_err(|_| wrong())?;
                    *u32_slot(&mut properties, *index) = Some(n);
                }
                Kind::U64 => {
                    let n = integer(value, number_string).ok_or_else(wrong)?;
                    let n = u64::try_from(n).map_err(|_| wrong())?;
                    *u64_slot(&mut properties, *index) = Some(n);
                }
                Kind::F64 => {
                    let n = float(value, number_string).ok_or_else(wrong)?;
                    *f64_slot(&mut properties, *index) = Some(n);
                }
                Kind::Text => match value {
                    Captured::Str(text) => properties.plan = Some(text.as_ref().into()),
                    _ => return Err(wrong()),
                },
                Kind::Date => {
                    let at = instant(value, reader.convert, true).ok_or_else(wrong)?;
                    if *index == CONTRACT_END {
                        properties.contract_end = Some(at);
                    } else {
                        properties.customer_since = Some(at);
                    }
                }
                Kind::Bool => match value {
                    Captured::Bool(b) => properties.churn_risk = Some(*b),
                    _ => return Err(wrong()),
                },
            }
        }
        Ok(found.then_some(properties))
    }
}

// The fields of [`Properties`] by index in [`PROPERTIES`] (a match on the index, where a
// match on the name compared strings per property per record).
const CONTRACT_END: usize = 6;

/// Whether `name` is a built-in type that reads its properties (docs/events.md#event-types).
fn reads_properties(name: &str) -> bool {
    radar_core::types::Builtin::ALL
        .iter()
        .any(|b| b.reads_properties() && b.name().len() == name.len() && b.name() == name)
}

fn u32_slot(p: &mut Properties, index: usize) -> &mut Option<u32> {
    match index {
        0 => &mut p.seats_used,
        1 => &mut p.seat_limit,
        8 => &mut p.active_users_1d,
        9 => &mut p.active_users_30d,
        _ => &mut p.features_adopted,
    }
}

fn u64_slot(p: &mut Properties, index: usize) -> &mut Option<u64> {
    match index {
        2 => &mut p.api_calls,
        3 => &mut p.api_limit,
        _ => &mut p.api_calls_period,
    }
}

fn f64_slot(p: &mut Properties, index: usize) -> &mut Option<f64> {
    match index {
        5 => &mut p.arr,
        12 => &mut p.health_score,
        _ => &mut p.score,
    }
}

/// An integer property: a number, or a number written as a string with `number_string`.
fn integer(value: &Captured<'_>, number_string: bool) -> Option<i64> {
    match value {
        Captured::Int(n) => Some(*n),
        Captured::Str(text) if number_string => text.trim().parse().ok(),
        _ => None,
    }
}

fn float(value: &Captured<'_>, number_string: bool) -> Option<f64> {
    let n = match value {
        Captured::Int(n) => *n as f64,
        Captured::Float(f) => *f,
        Captured::Str(text) if number_string => text.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// An instant: typed as one by the input, an RFC 3339 string (or a plain date where
/// `dates` allows it, as for contract dates), or a number of seconds or milliseconds
/// with `unix_s` / `unix_ms`.
fn instant(value: &Captured<'_>, convert: Option<Converter>, dates: bool) -> Option<Millis> {
    let millis = match (value, convert) {
        (Captured::Millis(at), _) => *at,
        (Captured::Str(text), None | Some(Converter::Rfc3339)) if dates => {
            parse_date_or_rfc3339(text)?
        }
        (Captured::Str(text), None | Some(Converter::Rfc3339)) => parse_rfc3339(text)?,
        (Captured::Int(n), Some(Converter::UnixMs)) => *n,
        (Captured::Int(n), Some(Converter::UnixS)) => n.checked_mul(1000)?,
        (Captured::Float(f), Some(Converter::UnixS)) if f.is_finite() => {
            let ms = (f * 1000.0).round();
            (ms.abs() < 9.0e15).then_some(ms as i64)?
        }
        _ => return None,
    };
    (millis >= 0).then_some(millis)
}

/// The fields an envelope presets (docs/events.md#presets).
fn preset_fields(envelope: Envelope) -> BTreeMap<&'static str, Vec<String>> {
    let list: &[(&str, &[&str])] = match envelope {
        Envelope::Radar => &[
            ("event_id", &["event_id"]),
            ("type", &["type"]),
            ("account_id", &["account_id"]),
            ("timestamp", &["timestamp"]),
            ("user_id", &["user_id"]),
            ("received_at", &["received_at"]),
        ],
        Envelope::Segment => &[
            ("event_id", &["messageId"]),
            ("type", &["event", "type"]),
            ("account_id", &["context.groupId", "groupId"]),
            ("timestamp", &["timestamp"]),
            ("user_id", &["userId", "anonymousId"]),
            ("received_at", &["receivedAt"]),
        ],
        Envelope::Cloudevents => &[
            ("event_id", &["id"]),
            ("type", &["type"]),
            ("account_id", &["accountid", "data.account_id", "subject"]),
            ("timestamp", &["time"]),
            ("user_id", &["data.user_id"]),
        ],
        Envelope::Custom => &[],
    };
    list.iter()
        .map(|(field, paths)| (*field, paths.iter().map(|p| (*p).to_owned()).collect()))
        .collect()
}

/// The property paths an envelope presets: each Radar property under the envelope's
/// properties object(s).
fn preset_properties(envelope: Envelope) -> BTreeMap<&'static str, Vec<String>> {
    let under: &[&str] = match envelope {
        Envelope::Radar => &["properties"],
        Envelope::Segment => &["properties", "traits"],
        Envelope::Cloudevents => &["data"],
        Envelope::Custom => &[],
    };
    if under.is_empty() {
        return BTreeMap::new();
    }
    PROPERTIES
        .iter()
        .map(|(name, _)| (*name, under.iter().map(|u| format!("{u}.{name}")).collect()))
        .collect()
}

#[cfg(test)]
mod tests;
