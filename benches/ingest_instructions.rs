//! Instructions per record to decode and map the events teams already have, counted by
//! callgrind like `benches/instructions.rs` (`scripts/bench-instructions` runs both).
//!
//! The input: the first 100,000 lines of `radar generate --accounts 100000 --events
//! 1000000 --seed 7`, written as Segment track calls (~850 bytes each, with the context
//! an SDK adds) and as Avro records in the schema-registry wire format
//! (`radar_gen::formats`), generated before anything is measured.
//!
//! - `segment`: `Source::decode` of each call (envelope `segment`, a `types` table)
//!   and the event's properties;
//! - `avro`: the same for each Avro record (envelope `custom`, every property mapped).
//!
//! Run by hand: `cargo bench -p radar-ingest --bench ingest_instructions -- segment`.

use std::hint::black_box;

use radar_gen::formats::{self, Format};
use radar_ingest::{RawRecord, Schemas, Source, SourceSpec};

const EVENTS: usize = 100_000;

fn lines() -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: 100_000,
        events: 1_000_000,
        seed: 7,
        ..Default::default()
    };
    radar_gen::Generator::new(opts)
        .expect("valid generator options")
        .take(EVENTS)
        .collect()
}

fn source(format: Format) -> Source {
    #[derive(serde::Deserialize)]
    struct File {
        sources: Vec<SourceSpec>,
    }
    let toml_text = formats::source_toml(format, "events", "schemas");
    let mut file: File = toml::from_str(&toml_text).expect("the generator's mapping");
    let builtin = |name: &str| {
        radar_core::types::Builtin::ALL
            .iter()
            .any(|b| b.name() == name)
    };
    Source::compile(file.sources.remove(0), builtin).expect("a valid mapping")
}

#[inline(never)]
fn measured_ingest(source: &Source, schemas: &Schemas, records: &[Vec<u8>]) -> usize {
    let mut accepted = 0;
    for value in records {
        let record = RawRecord {
            value,
            ..RawRecord::default()
        };
        if let Ok(event) = source.decode(schemas, &record, i64::MAX) {
            accepted += usize::from(black_box(event.properties()).is_ok());
        }
    }
    accepted
}

fn main() {
    let measure = std::env::args().nth(1).unwrap_or_else(|| "segment".into());
    let lines = lines();
    let (source, records, schemas) = match measure.as_str() {
        "segment" => {
            let records: Vec<Vec<u8>> = lines
                .iter()
                .filter_map(|l| formats::segment(l))
                .map(String::into_bytes)
                .collect();
            (source(Format::Segment), records, Schemas::default())
        }
        "avro" => {
            let schema = apache_avro::Schema::parse_str(formats::AVRO_SCHEMA).expect("schema");
            let records: Vec<Vec<u8>> = lines
                .iter()
                .filter_map(|l| formats::avro(&schema, l))
                .collect();
            let source = source(Format::Avro);
            let mut schemas = Schemas::default();
            let plan = source
                .compile_schema(formats::AVRO_SCHEMA)
                .expect("the generator's schema compiles");
            schemas.insert(formats::AVRO_SCHEMA_ID, plan);
            (source, records, schemas)
        }
        other => panic!("unknown measure {other:?}: segment or avro"),
    };
    let bytes: usize = records.iter().map(Vec::len).sum();
    let accepted = measured_ingest(&source, &schemas, &records);
    println!(
        "{measure}: {} records, {} bytes on average, {accepted} accepted",
        records.len(),
        bytes / records.len().max(1)
    );
}
