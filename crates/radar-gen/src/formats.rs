//! The generated events in the shapes teams already have (docs/events.md#sources):
//! Segment track calls, structured CloudEvents, and Avro in the schema-registry wire
//! format. For `radar demo --source` and the ingest benchmarks; [`source_toml`] is the
//! `[[sources]]` entry that maps each back onto the same Radar event.

use apache_avro::types::Value as Avro;
use serde_json::{Map, Value, json};

/// The Avro writer schema of [`avro`]'s records.
pub const AVRO_SCHEMA: &str = include_str!("formats/event.avsc");
/// The schema id [`avro`] writes in each record's header.
pub const AVRO_SCHEMA_ID: u32 = 1;

/// A shape of the generated events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Segment,
    Cloudevents,
    Avro,
}

/// Segment's names for Radar's types, as a product's tracking plan would call them.
const SEGMENT_NAMES: [(&str, &str); 15] = [
    ("seat_threshold_90pct", "Seat Limit Near"),
    ("feature_limit_hit", "Feature Limit Hit"),
    ("team_invite_sent", "Teammate Invited"),
    ("api_tier_exceeded", "API Limit Exceeded"),
    ("premium_feature_attempted", "Premium Feature Attempted"),
    ("entitlement_updated", "Plan Changed"),
    ("usage_snapshot", "Usage Snapshot"),
    ("health_updated", "Health Updated"),
    ("user_login", "Signed In"),
    ("qbr_completed", "QBR Completed"),
    ("payment_failed", "Payment Failed"),
    ("payment_recovered", "Payment Recovered"),
    ("expansion_closed", "Expansion Closed"),
    ("nps_submitted", "NPS Submitted"),
    ("page_viewed", "Page Viewed"),
];

fn parse(line: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(line).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn text<'m>(event: &'m Map<String, Value>, field: &str) -> Option<&'m str> {
    event.get(field)?.as_str()
}

/// A Radar envelope line as a Segment track call (~850 bytes, with the context an SDK
/// adds); `None` for a line that is not an object.
pub fn segment(line: &str) -> Option<String> {
    let event = parse(line)?;
    let kind = text(&event, "type").unwrap_or("");
    let name = SEGMENT_NAMES
        .iter()
        .find(|(ours, _)| *ours == kind)
        .map_or(kind, |(_, theirs)| theirs);
    let timestamp = text(&event, "timestamp").map(|t| t.replace('Z', "+00:00"));
    let mut properties = event
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    properties.insert("planTier".into(), json!("growth"));
    properties.insert("experiment".into(), json!({"id": "exp-42", "variant": "B"}));
    let call = json!({
        "anonymousId": null,
        "context": {
            "ip": "203.0.113.11",
            "library": {"name": "analytics-python", "version": "2.4.0"},
            "locale": "en-US",
            "os": {"name": "macOS", "version": "14.4.1"},
            "page": {
                "path": "/settings/members",
                "referrer": "https://app.example.com/dashboard",
                "title": "Example App",
                "url": "https://app.example.com/settings/members"
            },
            "groupId": event.get("account_id"),
            "screen": {"density": 2, "height": 1117, "width": 1728},
            "timezone": "Europe/Berlin",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.1 Safari/537.36"
        },
        "event": name,
        "integrations": {},
        "messageId": event.get("event_id"),
        "properties": properties,
        "timestamp": timestamp,
        "type": "track",
        "userId": event.get("user_id").cloned().unwrap_or(json!("u_0")),
    });
    Some(call.to_string())
}

/// A Radar envelope line as a CloudEvent in structured mode.
pub fn cloudevents(line: &str) -> Option<String> {
    let event = parse(line)?;
    let mut data = event
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(user) = event.get("user_id") {
        data.insert("user_id".into(), user.clone());
    }
    let cloud_event = json!({
        "specversion": "1.0",
        "id": event.get("event_id"),
        "source": "/radar-gen",
        "type": event.get("type"),
        "time": event.get("timestamp"),
        "accountid": event.get("account_id"),
        "datacontenttype": "application/json",
        "data": data,
    });
    Some(cloud_event.to_string())
}

/// A Radar envelope line as an Avro record of [`AVRO_SCHEMA`] in the schema-registry
/// wire format; `None` for a line the schema cannot hold (a malformed one).
pub fn avro(schema: &apache_avro::Schema, line: &str) -> Option<Vec<u8>> {
    let event = parse(line)?;
    let props = event.get("properties").and_then(Value::as_object);
    let prop = |name: &str| props.and_then(|p| p.get(name));
    let optional = |value: Option<Avro>| match value {
        Some(v) => Avro::Union(1, Box::new(v)),
        None => Avro::Union(0, Box::new(Avro::Null)),
    };
    let int = |name: &str| {
        optional(
            prop(name)
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .map(Avro::Int),
        )
    };
    let long = |name: &str| optional(prop(name).and_then(Value::as_i64).map(Avro::Long));
    let double = |name: &str| optional(prop(name).and_then(Value::as_f64).map(Avro::Double));
    let string = |name: &str| {
        optional(
            prop(name)
                .and_then(Value::as_str)
                .map(|s| Avro::String(s.to_owned())),
        )
    };
    let timestamp = text(&event, "timestamp")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())?
        .timestamp_millis();
    let owned = |field: &str| text(&event, field).map(|s| Avro::String(s.to_owned()));
    let record = Avro::Record(vec![
        ("id".into(), owned("event_id")?),
        ("name".into(), owned("type")?),
        ("account".into(), optional(owned("account_id"))),
        ("user".into(), optional(owned("user_id"))),
        ("occurred_at".into(), Avro::TimestampMillis(timestamp)),
        ("source".into(), Avro::Enum(1, "server".into())),
        (
            "context".into(),
            Avro::Map(
                [
                    ("ip".to_owned(), Avro::String("203.0.113.11".into())),
                    ("locale".to_owned(), Avro::String("en-US".into())),
                ]
                .into_iter()
                .collect(),
            ),
        ),
        (
            "tags".into(),
            Avro::Array(vec![Avro::String("generated".into())]),
        ),
        (
            "props".into(),
            Avro::Record(vec![
                ("seats_used".into(), int("seats_used")),
                ("seat_limit".into(), int("seat_limit")),
                ("api_calls".into(), long("api_calls")),
                ("api_limit".into(), long("api_limit")),
                ("plan".into(), string("plan")),
                ("arr".into(), double("arr")),
                ("contract_end".into(), string("contract_end")),
                ("customer_since".into(), string("customer_since")),
                ("active_users_1d".into(), int("active_users_1d")),
                ("active_users_30d".into(), int("active_users_30d")),
                ("api_calls_period".into(), long("api_calls_period")),
                ("features_adopted".into(), int("features_adopted")),
                ("health_score".into(), double("health_score")),
                (
                    "churn_risk".into(),
                    optional(
                        prop("churn_risk")
                            .and_then(Value::as_bool)
                            .map(Avro::Boolean),
                    ),
                ),
                ("score".into(), double("score")),
                ("feature".into(), string("feature")),
            ]),
        ),
        ("trace".into(), Avro::Fixed(16, vec![7; 16])),
    ]);
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .ok()?
        .write_value_to_vec(record)
        .ok()?;
    let mut framed = Vec::with_capacity(5 + datum.len());
    framed.push(0);
    framed.extend_from_slice(&AVRO_SCHEMA_ID.to_be_bytes());
    framed.extend_from_slice(&datum);
    Some(framed)
}

/// The `[[sources]]` entry (TOML) that reads `format` from `topic` back onto Radar's
/// events; Avro's writer schema is `<schema_dir>/1.avsc` ([`AVRO_SCHEMA`]).
pub fn source_toml(format: Format, topic: &str, schema_dir: &str) -> String {
    match format {
        Format::Segment => {
            let mut toml = format!(
                "[[sources]]\nname = \"segment\"\ntopics = [\"{topic}\"]\nenvelope = \"segment\"\nkey = \"user\"\n\n[sources.types]\n"
            );
            for (ours, theirs) in &SEGMENT_NAMES[..SEGMENT_NAMES.len() - 1] {
                toml.push_str(&format!("\"{theirs}\" = \"{ours}\"\n"));
            }
            toml
        }
        Format::Cloudevents => format!(
            "[[sources]]\nname = \"cloudevents\"\ntopics = [\"{topic}\"]\nenvelope = \"cloudevents\"\nkey = \"account\"\n"
        ),
        Format::Avro => {
            let mut toml = format!(
                "[[sources]]\nname = \"avro\"\ntopics = [\"{topic}\"]\nformat = \"avro\"\nframing = \"confluent\"\nenvelope = \"custom\"\nkey = \"account\"\nschema_dir = \"{schema_dir}\"\n\n[sources.fields]\nevent_id = \"id\"\ntype = \"name\"\naccount_id = \"account\"\ntimestamp = \"occurred_at\"\nuser_id = \"user\"\n\n[sources.properties]\n"
            );
            for name in [
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
            ] {
                toml.push_str(&format!("{name} = \"props.{name}\"\n"));
            }
            toml
        }
    }
}
