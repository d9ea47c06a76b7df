//! Radar's ingest: the events teams already have, mapped onto Radar's events.
//!
//! Pure, like radar-core: bytes (and headers) in, a checked [`radar_core::event::Event`]
//! or a reason out; no I/O, no clock. Where a writer schema is needed and not known, the
//! source says which one ([`source::Source::schema_id`]) and the caller fetches it.
//!
//! Modules:
//! - [`spec`]: a `[[sources]]` entry as written in the config;
//! - [`path`]: dotted paths compiled into a trie, and the values captured at them;
//! - [`json`]: one pass over a JSON value capturing the mapped paths, skipping the rest;
//! - [`avro`] and [`protobuf`]: writer schemas compiled into plans over the same paths;
//! - [`framing`]: the Confluent schema-registry wire format;
//! - [`envelope`]: a mapped event written in Radar's own envelope;
//! - [`mapping`]: captured values → Radar's fields, converters, types;
//! - [`schemas`]: the writer schemas known so far, by id;
//! - [`source`]: one compiled source: record → event;
//! - [`record_line`]: Kafka records kept one per line in a file.

pub mod avro;
pub mod envelope;
pub mod framing;
pub mod json;
pub mod mapping;
pub mod path;
pub mod protobuf;
pub mod record_line;
pub mod schemas;
pub mod source;
pub mod spec;

use std::borrow::Cow;

/// A record that is not what its source's format says: the dead-letter reason
/// `bad_format`, with a short detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub Cow<'static, str>);

impl Malformed {
    pub fn new(detail: impl Into<Cow<'static, str>>) -> Self {
        Malformed(detail.into())
    }
}

/// A writer schema that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

pub use mapping::{Mapping, MappingError, TypeFrom};
pub use path::{Captured, Captures, PathTrie};
pub use schemas::{Schema, Schemas};
pub use source::{RawRecord, Source};
pub use spec::SourceSpec;
