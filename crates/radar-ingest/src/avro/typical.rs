//! A typical event (20 fields, 7 mapped), checked, and the loop callgrind counts to
//! measure a read:
//!
//! ```text
//! cargo test --release -p radar-ingest --no-run
//! AVRO_READS=1000 valgrind --tool=callgrind --toggle-collect='*measured_avro_read*' \
//!     target/release/deps/radar_ingest-<hash> --ignored --exact \
//!     avro::typical::instructions_per_typical_event
//! ```
//!
//! (then again with 2000 reads: the difference over 1000 is the cost of one read).

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::types::Value;

use super::AvroPlan;
use super::tests::{encode, read, s, trie};
use crate::path::{Captured, Captures};

/// A typical event: 20 fields, 7 of them mapped.
const TYPICAL: &str = r#"{"type": "record", "name": "Track", "fields": [
    {"name": "messageId", "type": "string"},
    {"name": "type", "type": {"type": "enum", "name": "Type", "symbols": ["track", "identify", "group"]}},
    {"name": "event", "type": "string"},
    {"name": "userId", "type": ["null", "string"]},
    {"name": "anonymousId", "type": ["null", "string"]},
    {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "sentAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "receivedAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "context", "type": {"type": "map", "values": "string"}},
    {"name": "properties", "type": {"type": "record", "name": "Props", "fields": [
        {"name": "plan", "type": "string"},
        {"name": "seats", "type": "long"},
        {"name": "price", "type": "double"},
        {"name": "trial", "type": "boolean"}
    ]}},
    {"name": "libraryName", "type": "string"},
    {"name": "libraryVersion", "type": "string"},
    {"name": "channel", "type": "string"},
    {"name": "version", "type": "int"},
    {"name": "writeKey", "type": "string"},
    {"name": "ip", "type": "string"},
    {"name": "userAgent", "type": "string"},
    {"name": "locale", "type": "string"},
    {"name": "referrer", "type": ["null", "string"]},
    {"name": "sessionId", "type": "long"}
]}"#;

fn typical() -> Value {
    let text = |s: &str| Value::String(s.into());
    let some = |s: &str| Value::Union(1, Box::new(Value::String(s.into())));
    Value::Record(vec![
        ("messageId".into(), text("ajs-next-1767225600000-4b2a9c1e")),
        ("type".into(), Value::Enum(0, "track".into())),
        ("event".into(), text("Seat Added")),
        ("userId".into(), some("user_83741")),
        (
            "anonymousId".into(),
            some("5f2b8a7e-1c3d-4e5f-9a8b-7c6d5e4f3a2b"),
        ),
        (
            "timestamp".into(),
            Value::TimestampMillis(1_767_225_600_000),
        ),
        ("sentAt".into(), Value::TimestampMillis(1_767_225_600_120)),
        (
            "receivedAt".into(),
            Value::TimestampMillis(1_767_225_600_250),
        ),
        (
            "context".into(),
            Value::Map(HashMap::from([
                ("groupId".to_string(), text("acct_2291")),
                ("ip".to_string(), text("203.0.113.7")),
                ("timezone".to_string(), text("Europe/Paris")),
            ])),
        ),
        (
            "properties".into(),
            Value::Record(vec![
                ("plan".into(), text("business")),
                ("seats".into(), Value::Long(25)),
                ("price".into(), Value::Double(49.5)),
                ("trial".into(), Value::Boolean(false)),
            ]),
        ),
        ("libraryName".into(), text("analytics.js")),
        ("libraryVersion".into(), text("4.1.0")),
        ("channel".into(), text("client")),
        ("version".into(), Value::Int(2)),
        ("writeKey".into(), text("wk_9f8e7d6c5b4a")),
        ("ip".into(), text("203.0.113.7")),
        (
            "userAgent".into(),
            text("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
        ),
        ("locale".into(), text("fr-FR")),
        ("referrer".into(), Value::Union(0, Box::new(Value::Null))),
        ("sessionId".into(), Value::Long(1_767_225_000)),
    ])
}

const TYPICAL_PATHS: [&str; 7] = [
    "event",
    "userId",
    "timestamp",
    "context.groupId",
    "properties.plan",
    "properties.seats",
    "type",
];

#[test]
fn a_typical_event() {
    let datum = encode(TYPICAL, typical());
    assert_eq!(
        read(TYPICAL, &TYPICAL_PATHS, &datum).unwrap(),
        vec![
            s("Seat Added"),
            s("user_83741"),
            Some(Captured::Millis(1_767_225_600_000)),
            s("acct_2291"),
            s("business"),
            Some(Captured::Int(25)),
            s("track"),
        ]
    );
}

/// What callgrind counts (`--toggle-collect='*measured_avro_read*'`): one read of the
/// typical event, through the plan or, with `apache`, into apache-avro's `Value`. The
/// captures are made by the caller, outside the count.
#[inline(never)]
fn measured_avro_read<'a>(
    plan: &'a AvroPlan,
    schema: &Schema,
    datum: &'a [u8],
    captures: &mut Captures<'a>,
    apache: bool,
) {
    if apache {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .unwrap();
        std::hint::black_box(reader.read_value(&mut &datum[..]).unwrap());
    } else {
        plan.read(datum, captures).unwrap();
    }
}

/// Not a check: what `valgrind --tool=callgrind` runs to count instructions per read
/// (`AVRO_READS` reads; `AVRO_APACHE` set: apache-avro's instead).
#[test]
#[ignore = "run under callgrind, in release"]
fn instructions_per_typical_event() {
    let reads = std::env::var("AVRO_READS")
        .ok()
        .and_then(|reads| reads.parse().ok())
        .unwrap_or(1);
    let apache = std::env::var_os("AVRO_APACHE").is_some();
    let datum = encode(TYPICAL, typical());
    let trie = trie(&TYPICAL_PATHS);
    let plan = AvroPlan::compile(TYPICAL, &trie).unwrap();
    let schema = Schema::parse_str(TYPICAL).unwrap();
    for _ in 0..reads {
        let mut captures = Captures::new(TYPICAL_PATHS.len());
        let datum = std::hint::black_box(&datum[..]);
        measured_avro_read(&plan, &schema, datum, &mut captures, apache);
        std::hint::black_box(&captures);
    }
}
