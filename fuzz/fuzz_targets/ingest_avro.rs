//! Any bytes as an Avro datum read through a compiled plan (every type: unions, maps,
//! arrays, nested and recursive records, enums, fixed, logical types): captures or
//! `Malformed`, never a panic, a hang or an allocation sized by the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use radar_ingest::avro::AvroPlan;
use radar_ingest::path::{Captures, PathTrie};

const SCHEMA: &str = r#"{"type": "record", "name": "Event", "fields": [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "int"},
    {"name": "ratio", "type": "float"},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
    {"name": "raw", "type": "bytes"},
    {"name": "tags", "type": {"type": "array", "items": ["null", "string", "Kind"]}},
    {"name": "empty", "type": {"type": "array", "items": "null"}},
    {"name": "context", "type": {"type": "map", "values": ["null", "string", "long"]}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tree", "type": ["null", {"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "long"},
        {"name": "children", "type": {"type": "array", "items": "Node"}},
        {"name": "next", "type": ["null", "Node"]}
    ]}]}
]}"#;

const PATHS: [&str; 12] = [
    "id", "n", "ratio", "ok", "kind", "tags", "context.ip", "context.n", "at", "day",
    "tree.v", "tree.next.next.v",
];

fuzz_target!(|data: &[u8]| {
    static PLAN: OnceLock<(PathTrie, AvroPlan)> = OnceLock::new();
    let (trie, plan) = PLAN.get_or_init(|| {
        let mut trie = PathTrie::default();
        for path in PATHS {
            trie.insert(path).expect("a valid path");
        }
        let plan = AvroPlan::compile(SCHEMA, &trie).expect("the schema compiles");
        (trie, plan)
    });
    let mut captures = Captures::new(trie.len());
    let _ = plan.read(data, &mut captures);
});
