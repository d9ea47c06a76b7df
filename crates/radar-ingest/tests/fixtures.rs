//! The records of tests/fixtures/ingest, made by the real libraries of each ecosystem
//! (scripts/make-ingest-fixtures: Segment's and RudderStack's SDKs, the CloudEvents SDK,
//! confluent-kafka's serializers), each decoded and compared with what the generator
//! says it must become, computed from the data it gave the SDKs (not from the bytes).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use radar_core::types::Builtin;
use radar_ingest::record_line::OwnedRecord;
use radar_ingest::{Schemas, Source, SourceSpec, TypeFrom};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ingest")
}

fn source(name: &str) -> Source {
    #[derive(serde::Deserialize)]
    struct File {
        sources: Vec<SourceSpec>,
    }
    let text = std::fs::read_to_string(fixtures().join(format!("{name}.toml"))).unwrap();
    let spec = toml::from_str::<File>(&text).unwrap().sources.remove(0);
    Source::compile(spec, |t| Builtin::ALL.iter().any(|b| b.name() == t)).unwrap()
}

/// The schemas of the source's format in the fixtures' schema directory.
fn schemas(source: &Source, extension: &str) -> Schemas {
    let mut schemas = Schemas::default();
    for entry in std::fs::read_dir(fixtures().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let Ok(id) = stem.to_string_lossy().parse::<u32>() else {
            continue;
        };
        if ext == extension {
            let text = std::fs::read_to_string(&path).unwrap();
            let schema = source
                .compile_schema(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            schemas.insert(id, schema);
        }
    }
    schemas
}

/// What a record became, in the generator's terms.
fn outcome(source: &Source, schemas: &Schemas, record: &OwnedRecord) -> Value {
    let headers = record.header_refs();
    let raw = record.raw(&headers);
    let mapped = source.map(schemas, &raw).and_then(|(parts, from)| {
        radar_core::event::assemble(parts.clone(), None, i64::MAX).map(|_| (parts, from))
    });
    let (parts, from) = match mapped {
        Ok(mapped) => mapped,
        Err(rejection) => return serde_json::json!({ "rejected": rejection.reason.as_str() }),
    };
    let builtin = Builtin::ALL.iter().any(|b| b.name() == parts.event_type);
    if from == TypeFrom::Name && !builtin {
        return serde_json::json!({ "unmapped": parts.event_type });
    }
    // The generator lists every mapped property that had a value.
    let written: Value = serde_json::from_slice(&radar_ingest::envelope::to_json(&parts)).unwrap();
    let mut properties = BTreeMap::new();
    if let Some(Value::Object(map)) = written.get("properties") {
        for (name, value) in map {
            let value = match value
                .as_str()
                .and_then(radar_core::time::parse_date_or_rfc3339)
            {
                Some(millis) if name == "contract_end" || name == "customer_since" => {
                    Value::from(millis)
                }
                _ => value.clone(),
            };
            properties.insert(name.clone(), value);
        }
    }
    serde_json::json!({ "event": {
        "event_id": parts.event_id,
        "type": parts.event_type,
        "account_id": parts.account_id,
        "timestamp_ms": parts.timestamp,
        "user_id": parts.user_id,
        "properties": properties,
    }})
}

fn check(name: &str, schema_extension: Option<&str>) {
    let source = source(name);
    let schemas = schema_extension.map_or_else(Schemas::default, |ext| schemas(&source, ext));
    check_with(name, &source, &schemas);
}

fn check_with(name: &str, source: &Source, schemas: &Schemas) {
    let records =
        std::fs::read_to_string(fixtures().join(format!("{name}.records.jsonl"))).unwrap();
    let expected =
        std::fs::read_to_string(fixtures().join(format!("{name}.expected.jsonl"))).unwrap();
    let (records, expected): (Vec<&str>, Vec<&str>) =
        (records.lines().collect(), expected.lines().collect());
    assert_eq!(
        records.len(),
        expected.len(),
        "{name}: one expectation per record"
    );
    assert!(
        records.len() >= 5,
        "{name}: too few records to mean anything"
    );
    for (n, (line, expected)) in records.iter().zip(expected).enumerate() {
        let record = OwnedRecord::parse(line).unwrap();
        let mut expected: Value = serde_json::from_str(expected).unwrap();
        // The generator lists every mapped property that had a value; Radar reads them
        // only for the built-in types that read them (docs/events.md#event-types).
        if let Some(event) = expected.get_mut("event") {
            let reads = Builtin::ALL
                .iter()
                .any(|b| b.reads_properties() && event["type"] == b.name());
            if !reads {
                event["properties"] = serde_json::json!({});
            }
        }
        let got = outcome(source, schemas, &record);
        assert_eq!(got, expected, "{name} record {}", n + 1);
    }
}

#[test]
fn segment_calls_from_its_python_sdk() {
    check("segment", None);
}

#[test]
fn rudderstack_calls_from_its_python_sdk() {
    check("rudderstack", None);
}

#[test]
fn cloudevents_in_binary_and_structured_mode_from_both_sdk_apis() {
    check("cloudevents", None);
}

#[test]
fn json_schema_records_from_confluent_kafkas_serializer() {
    check("jsonschema", None);
}

#[test]
fn avro_records_of_two_schema_versions_from_confluent_kafkas_serializer() {
    check("avro", Some("avsc"));
}

#[test]
fn protobuf_records_from_confluent_kafkas_serializer() {
    check("protobuf", Some("proto"));
}

#[test]
fn protobuf_records_read_with_the_schema_as_the_registry_stored_it() {
    // confluent-kafka-python registers a serialized FileDescriptorProto (base64), not
    // .proto text: what a registry then serves.
    let source = source("protobuf");
    let stored = std::fs::read_to_string(fixtures().join("schemas/3.registry.txt")).unwrap();
    let mut schemas = Schemas::default();
    schemas.insert(3, source.compile_schema(stored.trim()).unwrap());
    check_with("protobuf", &source, &schemas);
}
