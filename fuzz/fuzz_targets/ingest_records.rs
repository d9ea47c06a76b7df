//! Any bytes as a record of each JSON source (Segment, CloudEvents in both modes, a
//! custom mapping with converters) and of a Protobuf source: a checked event or a
//! rejection with its reason, never a panic. The JSON walk skips what no path reads, so
//! this is where its skipping meets bytes no SDK would write.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use radar_ingest::{RawRecord, Schemas, Source, SourceSpec};

const SOURCES: &str = r#"
[[sources]]
name = "segment"
topics = ["t"]
envelope = "segment"
[sources.convert]
seat_limit = "number_string"
[sources.types]
"Seat Limit Near" = "seat_threshold_90pct"

[[sources]]
name = "cloudevents"
topics = ["t"]
envelope = "cloudevents"

[[sources]]
name = "custom"
topics = ["t"]
envelope = "custom"
[sources.fields]
event_id = "a.id"
type = ["a.kind", "kind"]
account_id = ["a.b.account", "account"]
timestamp = "at"
[sources.convert]
timestamp = "unix_ms"
contract_end = "unix_s"
[sources.properties]
seats_used = "p.seats"
contract_end = "p.end"

[[sources]]
name = "protobuf"
topics = ["t"]
format = "protobuf"
framing = "confluent"
envelope = "custom"
schema_dir = "unused"
[sources.fields]
event_id = "id"
type = "name"
account_id = "account"
timestamp = "at"
[sources.properties]
seats_used = "props.seats"
"#;

const PROTO: &str = r#"syntax = "proto3";
import "google/protobuf/timestamp.proto";
message Props { optional int32 seats = 1; map<string, string> extra = 2; }
message Event {
  string id = 1; string name = 2; string account = 3;
  google.protobuf.Timestamp at = 4; Props props = 5; repeated string tags = 6;
}
"#;

fuzz_target!(|data: &[u8]| {
    static COMPILED: OnceLock<Vec<(Source, Schemas)>> = OnceLock::new();
    let sources = COMPILED.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct File {
            sources: Vec<SourceSpec>,
        }
        let file: File = toml::from_str(SOURCES).expect("the sources");
        file.sources
            .into_iter()
            .map(|spec| {
                let source = Source::compile(spec, |_| true).expect("a valid mapping");
                let mut schemas = Schemas::default();
                if source.schema_id(&[0, 0, 0, 0, 1]).is_some() {
                    schemas.insert(1, source.compile_schema(PROTO).expect("the schema"));
                }
                (source, schemas)
            })
            .collect()
    });
    // The first byte picks binary mode (headers from the data) for CloudEvents.
    let headers: &[(&str, &[u8])] = match data.first() {
        Some(b) if b % 2 == 0 => &[("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_type", b"t")],
        _ => &[],
    };
    for (source, schemas) in sources {
        let record = RawRecord {
            value: data,
            key: Some(b"acme"),
            headers,
            time: Some(0),
        };
        if let Ok(event) = source.decode(schemas, &record, i64::MAX) {
            let _ = event.properties();
        }
    }
});
