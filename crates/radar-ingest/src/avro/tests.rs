//! Unit tests of the Avro plan: each type, unions, maps, nested and named records, logical
//! types, and broken data.

use std::borrow::Cow;
use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use super::{AvroPlan, MAX_DEPTH};
use crate::Malformed;
use crate::path::{Captured, Captures, PathTrie};

pub(super) fn trie(paths: &[&str]) -> PathTrie {
    let mut trie = PathTrie::default();
    for path in paths {
        trie.insert(path).unwrap();
    }
    trie
}

/// A captured value detached from the plan and the datum, to compare after both are gone.
pub(super) fn owned(value: &Captured<'_>) -> Captured<'static> {
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

/// The captures of `datum` at `paths`, in the order of `paths`.
pub(super) fn read(
    schema: &str,
    paths: &[&str],
    datum: &[u8],
) -> Result<Vec<Option<Captured<'static>>>, Malformed> {
    let trie = trie(paths);
    let plan = AvroPlan::compile(schema, &trie).unwrap();
    let mut captures = Captures::new(trie.len());
    plan.read(datum, &mut captures)?;
    Ok((0..trie.len())
        .map(|slot| captures.get(slot as u16).map(owned))
        .collect())
}

pub(super) fn encode(schema: &str, value: Value) -> Vec<u8> {
    let schema = Schema::parse_str(schema).unwrap();
    GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap()
}

pub(super) fn s(text: &str) -> Option<Captured<'static>> {
    Some(Captured::Str(Cow::Owned(text.into())))
}

pub(super) const EVENT: &str = r#"{"type": "record", "name": "Event", "namespace": "acme", "fields": [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "int"},
    {"name": "big", "type": "long"},
    {"name": "ratio", "type": "float"},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "nothing", "type": "null"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}},
    {"name": "raw", "type": "bytes"},
    {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "context", "type": {"type": "map", "values": "string"}},
    {"name": "props", "type": {"type": "record", "name": "Props", "fields": [
        {"name": "seats", "type": "long"},
        {"name": "plan", "type": ["null", "string"]}
    ]}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
]}"#;

pub(super) fn event() -> Value {
    Value::Record(vec![
        ("id".into(), Value::String("e-1".into())),
        ("n".into(), Value::Int(-7)),
        ("big".into(), Value::Long(1 << 40)),
        ("ratio".into(), Value::Float(0.5)),
        ("score".into(), Value::Double(-2.25)),
        ("ok".into(), Value::Boolean(true)),
        ("nothing".into(), Value::Null),
        ("kind".into(), Value::Enum(2, "C".into())),
        ("raw".into(), Value::Bytes(vec![1, 2, 3])),
        ("hash".into(), Value::Fixed(4, vec![9, 9, 9, 9])),
        (
            "tags".into(),
            Value::Array(vec![Value::String("x".into()), Value::String("y".into())]),
        ),
        (
            "context".into(),
            Value::Map(HashMap::from([
                ("ip".to_string(), Value::String("10.0.0.1".into())),
                ("groupId".to_string(), Value::String("g-9".into())),
                ("locale".to_string(), Value::String("fr".into())),
            ])),
        ),
        (
            "props".into(),
            Value::Record(vec![
                ("seats".into(), Value::Long(12)),
                (
                    "plan".into(),
                    Value::Union(1, Box::new(Value::String("pro".into()))),
                ),
            ]),
        ),
        ("at".into(), Value::TimestampMillis(1_767_225_600_000)),
    ])
}

#[test]
fn every_type_is_captured_as_its_value() {
    let datum = encode(EVENT, event());
    let paths = [
        "id", "n", "big", "ratio", "score", "ok", "nothing", "kind", "raw", "hash", "tags",
        "context", "props", "at",
    ];
    assert_eq!(
        read(EVENT, &paths, &datum).unwrap(),
        vec![
            s("e-1"),
            Some(Captured::Int(-7)),
            Some(Captured::Int(1 << 40)),
            Some(Captured::Float(0.5)),
            Some(Captured::Float(-2.25)),
            Some(Captured::Bool(true)),
            None,
            s("C"),
            Some(Captured::Other),
            Some(Captured::Other),
            Some(Captured::Other),
            Some(Captured::Other),
            Some(Captured::Other),
            Some(Captured::Millis(1_767_225_600_000)),
        ]
    );
}

#[test]
fn nested_records_maps_and_unions_are_descended() {
    let datum = encode(EVENT, event());
    let paths = [
        "props.seats",
        "props.plan",
        "context.ip",
        "context.groupId",
        "context.missing",
        "props",
        "tags.0",
        "id.x",
        "absent",
    ];
    assert_eq!(
        read(EVENT, &paths, &datum).unwrap(),
        vec![
            Some(Captured::Int(12)),
            s("pro"),
            s("10.0.0.1"),
            s("g-9"),
            None,
            Some(Captured::Other),
            None,
            None,
            None,
        ]
    );
    // No paths at all: the datum is still checked whole.
    assert_eq!(read(EVENT, &[], &datum).unwrap(), vec![]);
}

#[test]
fn unions_follow_the_branch_written() {
    let schema = r#"{"type": "record", "name": "U", "fields": [
        {"name": "u", "type": ["null", "string", "long",
            {"type": "record", "name": "In", "fields": [{"name": "x", "type": "int"}]}]}
    ]}"#;
    let paths = ["u", "u.x"];
    let with = |index: u32, value: Value| {
        let datum = encode(
            schema,
            Value::Record(vec![("u".into(), Value::Union(index, Box::new(value)))]),
        );
        read(schema, &paths, &datum).unwrap()
    };
    assert_eq!(with(0, Value::Null), vec![None, None], "null is no value");
    assert_eq!(with(1, Value::String("s".into())), vec![s("s"), None]);
    assert_eq!(
        with(2, Value::Long(-3)),
        vec![Some(Captured::Int(-3)), None]
    );
    let inner = Value::Record(vec![("x".into(), Value::Int(5))]);
    assert_eq!(
        with(3, inner),
        vec![Some(Captured::Other), Some(Captured::Int(5))]
    );
    // Branch 4 does not exist, nor does -1 (zig-zag 0x01).
    assert!(read(schema, &paths, &[8]).is_err());
    assert!(read(schema, &paths, &[1]).is_err());
}

#[test]
fn map_blocks_with_byte_sizes_and_repeated_keys() {
    let schema = r#"{"type": "record", "name": "M", "fields": [
        {"name": "m", "type": {"type": "map", "values": "long"}},
        {"name": "after", "type": "int"}
    ]}"#;
    // Block of -2 items (zig-zag 3) with byte size 8 (zig-zag 16): "a"→1, "b"→2; then a
    // block of 1: "a"→3 (the last wins); then the end; then `after` = 4.
    let datum = [3, 16, 2, b'a', 2, 2, b'b', 4, 2, 2, b'a', 6, 0, 8];
    assert_eq!(
        read(schema, &["m.a", "m.b", "m.c", "after"], &datum).unwrap(),
        vec![
            Some(Captured::Int(3)),
            Some(Captured::Int(2)),
            None,
            Some(Captured::Int(4))
        ]
    );
    assert_eq!(
        read(schema, &["after"], &datum).unwrap(),
        vec![Some(Captured::Int(4))]
    );
    // A count far beyond the bytes left.
    assert!(read(schema, &["m.a"], &[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
    assert!(read(schema, &["after"], &[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
}

#[test]
fn named_types_are_shared_and_may_recurse() {
    let schema = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "long"},
        {"name": "same", "type": ["null", {"type": "record", "name": "Leaf",
            "fields": [{"name": "k", "type": "string"}]}]},
        {"name": "again", "type": "Leaf"},
        {"name": "next", "type": ["null", "Node"]}
    ]}"#;
    let leaf = |k: &str| Value::Record(vec![("k".into(), Value::String(k.into()))]);
    let node = |value: i64, next: Value| {
        Value::Record(vec![
            ("value".into(), Value::Long(value)),
            ("same".into(), Value::Union(1, Box::new(leaf("s")))),
            ("again".into(), leaf("a")),
            ("next".into(), next),
        ])
    };
    let mut list = Value::Union(0, Box::new(Value::Null));
    for value in (0..5).rev() {
        list = Value::Union(1, Box::new(node(value, list)));
    }
    let Value::Union(_, head) = list else {
        unreachable!()
    };
    let datum = encode(schema, *head);
    let paths = [
        "value",
        "again.k",
        "same.k",
        "next.value",
        "next.next.again.k",
        "next.next.next.next.next",
    ];
    assert_eq!(
        read(schema, &paths, &datum).unwrap(),
        vec![
            Some(Captured::Int(0)),
            s("a"),
            s("s"),
            Some(Captured::Int(1)),
            s("a"),
            None,
        ]
    );

    // A list deeper than the bound is refused, not a stack overflow. Written by hand:
    // apache-avro's own encoder recurses too deep for a test thread's stack.
    let list = |records: u32| {
        let mut deep = Vec::new();
        for level in 1..=records {
            // value 0, same = branch 1 "s", again = "a", next = branch 1 (the last: null).
            deep.extend([0, 2, 2, b's', 2, b'a']);
            deep.push(if level == records { 0 } else { 2 });
        }
        deep
    };
    // The deepest value is a `Leaf` inside the last `Node`: one level more.
    assert!(read(schema, &["value"], &list(MAX_DEPTH - 1)).is_ok());
    let refused = read(schema, &["value"], &list(MAX_DEPTH)).unwrap_err();
    assert!(refused.0.contains("deep"));
}

#[test]
fn references_resolve_through_namespaces() {
    let schema = r#"{"type": "record", "name": "Outer", "namespace": "acme", "fields": [
        {"name": "a", "type": {"type": "record", "name": "Leaf", "fields": [
            {"name": "k", "type": {"type": "enum", "name": "K", "namespace": "other", "symbols": ["X", "Y"]}}
        ]}},
        {"name": "b", "type": "Leaf"},
        {"name": "c", "type": "acme.Leaf"},
        {"name": "d", "type": "other.K"}
    ]}"#;
    // a.k = Y, b.k = X, c.k = Y, d = X.
    let datum = [2, 0, 2, 0];
    assert_eq!(
        read(schema, &["a.k", "b.k", "c.k", "d", "b"], &datum).unwrap(),
        vec![s("Y"), s("X"), s("Y"), s("X"), Some(Captured::Other)]
    );
    assert!(read(schema, &["a.k"], &datum[..3]).is_err());
}

#[test]
fn logical_types() {
    let schema = r#"{"type": "record", "name": "L", "fields": [
        {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}}
    ]}"#;
    let mut datum = Vec::new();
    for long in [-1_500i64, -1_500_001, -2, 1_000] {
        datum.extend(encode(r#""long""#, Value::Long(long)));
    }
    let uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    datum.extend(encode(r#""string""#, Value::String(uuid.into())));
    datum.extend([4, 0x04, 0xd2]);
    assert_eq!(
        read(schema, &["ms", "us", "day", "tod", "id", "amount"], &datum).unwrap(),
        vec![
            Some(Captured::Millis(-1_500)),
            Some(Captured::Millis(-1_501)),
            Some(Captured::Millis(-2 * 86_400_000)),
            Some(Captured::Int(1_000)),
            s(uuid),
            Some(Captured::Other),
        ]
    );
}

#[test]
fn broken_data_is_malformed() {
    let datum = encode(EVENT, event());
    let paths = ["id", "props.plan", "context.ip", "at"];
    // Every strict prefix is truncated (the last field is not zero-sized).
    for end in 0..datum.len() {
        assert!(
            read(EVENT, &paths, &datum[..end]).is_err(),
            "prefix of {end}"
        );
        assert!(read(EVENT, &[], &datum[..end]).is_err(), "prefix of {end}");
    }
    let mut trailing = datum.clone();
    trailing.push(0);
    assert!(
        read(EVENT, &paths, &trailing)
            .unwrap_err()
            .0
            .contains("trailing")
    );

    let one = |ty: &str, datum: &[u8]| {
        let schema = format!(
            r#"{{"type": "record", "name": "R", "fields": [{{"name": "v", "type": {ty}}}]}}"#
        );
        read(&schema, &["v"], datum)
    };
    assert!(one(r#""string""#, &[4, 0xc3, 0x28]).is_err(), "not UTF-8");
    assert!(one(r#""string""#, &[3, b'a']).is_err(), "negative length");
    // Long strings take the other UTF-8 check: valid, then invalid at the end.
    let mut long = vec![80];
    long.extend("é".repeat(20).as_bytes());
    assert_eq!(one(r#""string""#, &long).unwrap(), vec![s(&"é".repeat(20))]);
    long[40] = 0xff;
    assert!(one(r#""string""#, &long).is_err(), "not UTF-8, long");
    assert!(one(r#""boolean""#, &[2]).is_err());
    assert!(one(r#""long""#, &[0xff; 11]).is_err(), "varint too long");
    assert!(
        one(r#""int""#, &[0x80, 0x80, 0x80, 0x80, 0x10]).is_err(),
        "int past 32 bits"
    );
    let kind = r#"{"type": "enum", "name": "K", "symbols": ["A"]}"#;
    assert!(one(kind, &[2]).is_err(), "enum index 1 of 1");
    let day = r#"{"type": "int", "logicalType": "date"}"#;
    assert_eq!(
        one(day, &[0xfe, 0xff, 0xff, 0xff, 0x0f]).unwrap(),
        vec![Some(Captured::Millis(i64::from(i32::MAX) * 86_400_000))]
    );
}

#[test]
fn huge_counts_of_empty_items_do_not_spin() {
    let schema = r#"{"type": "record", "name": "R", "fields": [
        {"name": "a", "type": {"type": "array", "items": "null"}},
        {"name": "v", "type": "int"}
    ]}"#;
    // 2^62 nulls, then the end, then v = 1.
    let datum = [
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 2,
    ];
    assert_eq!(
        read(schema, &["v", "a"], &datum).unwrap(),
        vec![Some(Captured::Int(1)), Some(Captured::Other)]
    );
}

#[test]
fn evolved_schemas_agree_on_common_paths() {
    let v1 = r#"{"type": "record", "name": "E", "fields": [
        {"name": "id", "type": "string"},
        {"name": "props", "type": {"type": "map", "values": "long"}}
    ]}"#;
    let v2 = r#"{"type": "record", "name": "E", "fields": [
        {"name": "id", "type": "string"},
        {"name": "added", "type": ["null", "string"], "default": null},
        {"name": "props", "type": {"type": "map", "values": "long"}}
    ]}"#;
    let props = Value::Map(HashMap::from([("seats".to_string(), Value::Long(3))]));
    let one = encode(
        v1,
        Value::Record(vec![
            ("id".into(), Value::String("x".into())),
            ("props".into(), props.clone()),
        ]),
    );
    let two = encode(
        v2,
        Value::Record(vec![
            ("id".into(), Value::String("x".into())),
            (
                "added".into(),
                Value::Union(1, Box::new(Value::String("new".into()))),
            ),
            ("props".into(), props),
        ]),
    );
    let paths = ["id", "props.seats"];
    assert_eq!(
        read(v1, &paths, &one).unwrap(),
        read(v2, &paths, &two).unwrap()
    );
    assert_eq!(read(v2, &["added"], &two).unwrap(), vec![s("new")]);
    // Read with the wrong writer schema, v1's bytes are not v2's.
    assert!(
        read(v2, &paths, &one).is_err()
            || read(v2, &paths, &one).unwrap() != read(v1, &paths, &one).unwrap()
    );
}

#[test]
fn unusable_schemas_are_schema_errors() {
    let trie = trie(&["a"]);
    assert!(AvroPlan::compile("not json", &trie).is_err());
    assert!(
        AvroPlan::compile(
            r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Nope"}]}"#,
            &trie
        )
        .is_err()
    );
    // A top-level scalar is a datum too: the root path is never a slot, so it is skipped.
    let plan = AvroPlan::compile(r#""string""#, &trie).unwrap();
    let mut captures = Captures::new(1);
    assert!(plan.read(&[2, b'a'], &mut captures).is_ok());
    assert_eq!(captures.get(0), None);
}
