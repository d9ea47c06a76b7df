//! Protobuf schemas in both registry forms, message indexes, and the captured values.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use prost_reflect::prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};
use protox::file::{ChainFileResolver, File, GoogleFileResolver};

use super::{ProtobufSchema, SchemaFile};
use crate::path::{Captured, Captures, PathTrie};

const PROTO: &str = r#"
syntax = "proto3";
package acme.events;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Signup {
  string id = 1;
  int64 seats = 2;
  Plan plan = 3;
  google.protobuf.Timestamp at = 4;
  map<string, string> context = 5;
  repeated string tags = 6;
  Props props = 7;
  optional string coupon = 8;
  google.protobuf.StringValue source = 9;
  bytes raw = 10;
  uint64 big = 11;
  float ratio = 12;
  bool trial = 13;
  sint32 delta = 14;
  map<string, Props> by_team = 15;
  map<int32, string> by_code = 16;

  message Props {
    int32 level = 1;
    string name = 2;
  }
  enum Plan {
    FREE = 0;
    PRO = 1;
  }
}

message Churn {
  string account = 1;
  double score = 2;

  message Reason {
    string code = 1;
    fixed64 weight = 2;
  }
}
"#;

fn trie(paths: &[&str]) -> PathTrie {
    let mut trie = PathTrie::default();
    for path in paths {
        trie.insert(path).unwrap();
    }
    trie
}

/// The same schema through `protox`, to write test messages with.
fn pool() -> DescriptorPool {
    let mut resolver = ChainFileResolver::new();
    resolver.add(SchemaFile(
        File::from_source("events.proto", PROTO).unwrap(),
    ));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.open_file("events.proto").unwrap();
    compiler.descriptor_pool()
}

fn message(pool: &DescriptorPool, name: &str, fields: Vec<(&str, Value)>) -> DynamicMessage {
    let mut message = DynamicMessage::new(pool.get_message_by_name(name).unwrap());
    for (field, value) in fields {
        message.set_field_by_name(field, value);
    }
    message
}

fn text(s: &str) -> Value {
    Value::String(s.into())
}

fn signup(pool: &DescriptorPool) -> DynamicMessage {
    let at = message(
        pool,
        "google.protobuf.Timestamp",
        vec![
            ("seconds", Value::I64(1_767_225_600)),
            ("nanos", Value::I32(250_999_999)),
        ],
    );
    let props = message(
        pool,
        "acme.events.Signup.Props",
        vec![("level", Value::I32(-3)), ("name", text("p"))],
    );
    let team = message(
        pool,
        "acme.events.Signup.Props",
        vec![("level", Value::I32(9))],
    );
    let source = message(
        pool,
        "google.protobuf.StringValue",
        vec![("value", text("ads"))],
    );
    message(
        pool,
        "acme.events.Signup",
        vec![
            ("id", text("s-1")),
            ("seats", Value::I64(12)),
            ("plan", Value::EnumNumber(1)),
            ("at", Value::Message(at)),
            (
                "context",
                Value::Map(HashMap::from([
                    (MapKey::String("ip".into()), text("10.0.0.1")),
                    (MapKey::String("groupId".into()), text("g-1")),
                ])),
            ),
            ("tags", Value::List(vec![text("a")])),
            ("props", Value::Message(props)),
            ("coupon", text("")),
            ("source", Value::Message(source)),
            ("raw", Value::Bytes(vec![1, 2].into())),
            ("big", Value::U64(u64::MAX)),
            ("ratio", Value::F32(0.5)),
            ("trial", Value::Bool(true)),
            ("delta", Value::I32(-5)),
            (
                "by_team",
                Value::Map(HashMap::from([(
                    MapKey::String("red".into()),
                    Value::Message(team),
                )])),
            ),
            (
                "by_code",
                Value::Map(HashMap::from([(MapKey::I32(-4), text("minus four"))])),
            ),
        ],
    )
}

fn framed(indexes: &[u8], message: &DynamicMessage) -> Vec<u8> {
    let mut payload = indexes.to_vec();
    payload.extend(message.encode_to_vec());
    payload
}

/// The captures of `payload` at `paths`, in the order of `paths`.
fn read(
    schema: &ProtobufSchema,
    trie: &PathTrie,
    payload: &[u8],
) -> Result<Vec<Option<Captured<'static>>>, crate::Malformed> {
    let mut captures = Captures::new(trie.len());
    schema.read(payload, &mut captures)?;
    Ok((0..trie.len() as u16)
        .map(|slot| captures.get(slot).map(owned))
        .collect())
}

fn owned(value: &Captured<'_>) -> Captured<'static> {
    match value {
        Captured::Str(text) => Captured::Str(Cow::Owned(text.to_string())),
        Captured::Null => Captured::Null,
        Captured::Bool(b) => Captured::Bool(*b),
        Captured::Int(i) => Captured::Int(*i),
        Captured::Float(f) => Captured::Float(*f),
        Captured::Millis(m) => Captured::Millis(*m),
        Captured::Other => Captured::Other,
    }
}

fn s(text: &str) -> Option<Captured<'static>> {
    Some(Captured::Str(Cow::Owned(text.into())))
}

const SIGNUP_PATHS: [&str; 21] = [
    "id",
    "seats",
    "plan",
    "at",
    "context.ip",
    "context.groupId",
    "context.nope",
    "context",
    "tags",
    "props.level",
    "props.name",
    "coupon",
    "source",
    "raw",
    "big",
    "ratio",
    "trial",
    "delta",
    "by_team.red.level",
    "by_code.-4",
    "by_code.x",
];

fn signup_captures() -> Vec<Option<Captured<'static>>> {
    vec![
        s("s-1"),
        Some(Captured::Int(12)),
        s("PRO"),
        Some(Captured::Millis(1_767_225_600_250)),
        s("10.0.0.1"),
        s("g-1"),
        None,
        Some(Captured::Other),
        Some(Captured::Other),
        Some(Captured::Int(-3)),
        s("p"),
        s(""),
        s("ads"),
        Some(Captured::Other),
        Some(Captured::Float(u64::MAX as f64)),
        Some(Captured::Float(0.5)),
        Some(Captured::Bool(true)),
        Some(Captured::Int(-5)),
        Some(Captured::Int(9)),
        s("minus four"),
        None,
    ]
}

#[test]
fn the_first_message_by_the_short_index() {
    let pool = pool();
    let trie = trie(&SIGNUP_PATHS);
    let schema = ProtobufSchema::compile(PROTO, &trie).unwrap();
    let signup = signup(&pool);
    assert_eq!(
        read(&schema, &trie, &framed(&[0], &signup)).unwrap(),
        signup_captures()
    );
    // The same index written in full: one index, 0.
    assert_eq!(
        read(&schema, &trie, &framed(&[2, 0], &signup)).unwrap(),
        signup_captures()
    );
}

#[test]
fn other_and_nested_messages_by_their_indexes() {
    let pool = pool();
    let trie = trie(&["account", "score", "code", "weight"]);
    let schema = ProtobufSchema::compile(PROTO, &trie).unwrap();
    let churn = message(
        &pool,
        "acme.events.Churn",
        vec![("account", text("a-1")), ("score", Value::F64(0.25))],
    );
    assert_eq!(
        read(&schema, &trie, &framed(&[2, 2], &churn)).unwrap(),
        vec![s("a-1"), Some(Captured::Float(0.25)), None, None]
    );
    let reason = message(
        &pool,
        "acme.events.Churn.Reason",
        vec![("code", text("price")), ("weight", Value::U64(7))],
    );
    // [1, 0]: the first message nested in the second.
    assert_eq!(
        read(&schema, &trie, &framed(&[4, 2, 0], &reason)).unwrap(),
        vec![None, None, s("price"), Some(Captured::Int(7))]
    );
}

#[test]
fn absent_fields_are_defaults_without_presence_and_nothing_with_it() {
    let pool = pool();
    let trie = trie(&SIGNUP_PATHS);
    let schema = ProtobufSchema::compile(PROTO, &trie).unwrap();
    let empty = message(&pool, "acme.events.Signup", vec![]);
    let captured = read(&schema, &trie, &framed(&[0], &empty)).unwrap();
    assert_eq!(
        captured,
        vec![
            s(""),
            Some(Captured::Int(0)),
            s("FREE"),
            None,
            None,
            None,
            None,
            Some(Captured::Other),
            Some(Captured::Other),
            None,
            None,
            None,
            None,
            Some(Captured::Other),
            Some(Captured::Int(0)),
            Some(Captured::Float(0.0)),
            Some(Captured::Bool(false)),
            Some(Captured::Int(0)),
            None,
            None,
            None,
        ]
    );
    // An enum number without a name is its number.
    let unknown = message(
        &pool,
        "acme.events.Signup",
        vec![("plan", Value::EnumNumber(7))],
    );
    let captured = read(&schema, &trie, &framed(&[0], &unknown)).unwrap();
    assert_eq!(captured[2], Some(Captured::Int(7)));
}

#[test]
fn the_serialized_descriptor_form() {
    let pool = pool();
    let file = pool.get_file_by_name("events.proto").unwrap();
    let serialized = STANDARD.encode(file.file_descriptor_proto().encode_to_vec());
    let trie = trie(&SIGNUP_PATHS);
    let schema = ProtobufSchema::compile(&serialized, &trie).unwrap();
    let signup = signup(&pool);
    assert_eq!(
        read(&schema, &trie, &framed(&[0], &signup)).unwrap(),
        signup_captures()
    );
    // Wrapped over lines, as some tools print base64.
    let wrapped: String = serialized
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
        .collect();
    assert!(ProtobufSchema::compile(&wrapped, &trie).is_ok());
}

#[test]
fn bad_indexes_and_bytes_are_malformed() {
    let pool = pool();
    let trie = trie(&SIGNUP_PATHS);
    let schema = ProtobufSchema::compile(PROTO, &trie).unwrap();
    let signup = framed(&[0], &signup(&pool));
    let mut captures = Captures::new(trie.len());
    for indexes in [
        &[][..],    // nothing at all
        &[1],       // a count of -1
        &[2, 4],    // [2]: there are two top-level messages
        &[2, 1],    // [-1]
        &[4, 2, 4], // [1, 2]: Churn has one nested message
        &[0x82],    // a truncated varint
        &[0xff; 6], // a varint too long
        &[0x7e],    // a count of 63
    ] {
        let mut payload = indexes.to_vec();
        payload.extend(&signup[1..]);
        if !indexes.is_empty() {
            let refused = schema
                .read(&payload, &mut Captures::new(trie.len()))
                .is_err();
            assert!(refused, "{indexes:?}");
        }
    }
    assert!(schema.read(&[], &mut captures).is_err());
    // Truncated messages: the last field cut short.
    let mut cut = 0;
    for end in 1..signup.len() {
        if schema.read(&signup[..end], &mut captures).is_err() {
            cut += 1;
        }
    }
    assert!(
        cut > signup.len() / 2,
        "{cut} of {} prefixes refused",
        signup.len()
    );
    // A length beyond the bytes, and invalid UTF-8 in a string.
    assert!(schema.read(&[0, 0x0a, 0x05, b'a'], &mut captures).is_err());
    assert!(
        schema
            .read(&[0, 0x0a, 0x02, 0xc3, 0x28], &mut captures)
            .is_err()
    );
}

#[test]
fn unusable_schemas_are_schema_errors() {
    let trie = trie(&["a"]);
    assert!(ProtobufSchema::compile("message {", &trie).is_err());
    assert!(ProtobufSchema::compile(r#"syntax = "proto3"; import "other.proto";"#, &trie).is_err());
    assert!(ProtobufSchema::compile(r#"syntax = "proto3";"#, &trie).is_err());
    assert!(ProtobufSchema::compile("", &trie).is_err());
}

proptest! {
    #[test]
    fn any_payload_never_panics(
        indexes in prop::collection::vec(any::<u8>(), 0..4),
        bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        thread_local! {
            static SCHEMA: (PathTrie, ProtobufSchema) = {
                let trie = trie(&SIGNUP_PATHS);
                let schema = ProtobufSchema::compile(PROTO, &trie).unwrap();
                (trie, schema)
            };
        }
        SCHEMA.with(|(trie, schema)| {
            let mut payload = indexes.clone();
            payload.extend(&bytes);
            let _ = schema.read(&payload, &mut Captures::new(trie.len()));
            // The first message with random bytes.
            let mut first = vec![0];
            first.extend(&bytes);
            let _ = schema.read(&first, &mut Captures::new(trie.len()));
        });
    }
}
