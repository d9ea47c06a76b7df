//! One compiled source: a record (value, key, headers) in, a checked event or a
//! rejection out.

use std::borrow::Cow;

use radar_core::event::{Event, Parts, assemble, decode};
use radar_core::time::Millis;
use radar_core::{RejectReason, Rejection};

use crate::framing;
use crate::mapping::{Mapping, MappingError, TypeFrom};
use crate::path::{Captured, Captures, NodeId, PathTrie};
use crate::schemas::{Schema, Schemas};
use crate::spec::{Envelope, Format, Framing, KeyedBy, SourceSpec};
use crate::{Malformed, SchemaError};

/// A Kafka record (or a line of a file) as a source reads it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawRecord<'a> {
    pub value: &'a [u8],
    /// `None` in a file: not checked.
    pub key: Option<&'a [u8]>,
    /// Read only by CloudEvents in binary mode.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The record's own time, for `too_far_in_future`.
    pub time: Option<Millis>,
}

/// A source compiled from its [`SourceSpec`].
#[derive(Debug)]
pub struct Source {
    spec: SourceSpec,
    keyed_by: KeyedBy,
    /// Radar's envelope as it is: decoded by radar-core's own decoder, the mapping unused.
    plain: bool,
    trie: PathTrie,
    mapping: Mapping,
    /// CloudEvents' `data` (in binary mode, the record's value).
    data: Option<NodeId>,
}

impl Source {
    /// Compiles `spec`; `known_type` says whether a name is a Radar type.
    pub fn compile(
        spec: SourceSpec,
        known_type: impl Fn(&str) -> bool,
    ) -> Result<Source, MappingError> {
        let error = |key: &str, message: &str| MappingError {
            key: format!("sources.{}.{key}", spec.name),
            message: message.to_owned(),
        };
        if spec.topics.is_empty() {
            return Err(error("topics", "no topic"));
        }
        match (spec.format, spec.framing) {
            (Format::Avro | Format::Protobuf, Framing::None) => {
                return Err(error(
                    "framing",
                    "Avro and Protobuf records are read in the schema-registry wire format: framing = \"confluent\"",
                ));
            }
            (Format::Avro | Format::Protobuf, _)
                if spec.schema_dir.is_none() && spec.registry_url.is_none() =>
            {
                return Err(error("schema_dir", "no schema_dir and no registry_url"));
            }
            _ => {}
        }
        if spec.envelope == Envelope::Cloudevents && spec.format != Format::Json {
            return Err(error(
                "envelope",
                "CloudEvents are read as JSON (format = \"json\")",
            ));
        }
        let keyed_by = spec.key.unwrap_or(spec.envelope.usual_key());
        let plain = spec.envelope == Envelope::Radar
            && spec.format == Format::Json
            && spec.framing == Framing::None
            && keyed_by == KeyedBy::Account
            && spec.fields.is_empty()
            && spec.properties.is_empty()
            && spec.convert.is_empty()
            && spec.types.is_empty();
        let mut trie = PathTrie::default();
        let mapping = Mapping::compile(&spec, &mut trie, known_type)?;
        let data = trie.child(PathTrie::ROOT, "data");
        Ok(Source {
            spec,
            keyed_by,
            plain,
            trie,
            mapping,
            data,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    pub fn keyed_by(&self) -> KeyedBy {
        self.keyed_by
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub fn trie(&self) -> &PathTrie {
        &self.trie
    }

    /// The writer schema a record needs, when its format has one.
    pub fn schema_id(&self, value: &[u8]) -> Option<u32> {
        match self.spec.format {
            Format::Avro | Format::Protobuf => framing::split(value).ok().map(|(id, _)| id),
            Format::Json => None,
        }
    }

    /// Compiles a writer schema of this source's format against its paths.
    pub fn compile_schema(&self, text: &str) -> Result<Schema, SchemaError> {
        match self.spec.format {
            Format::Avro => crate::avro::AvroPlan::compile(text, &self.trie).map(Schema::Avro),
            Format::Protobuf => {
                crate::protobuf::ProtobufSchema::compile(text, &self.trie).map(Schema::Protobuf)
            }
            Format::Json => Err(SchemaError(
                "a JSON source reads no writer schema".to_owned(),
            )),
        }
    }

    /// The event a record becomes, checked as any event is; a source keyed by account
    /// also checks the record's key is its account.
    #[inline]
    pub fn decode<'a>(
        &'a self,
        schemas: &'a Schemas,
        record: &RawRecord<'a>,
        max_future_skew: Millis,
    ) -> Result<Event<'a>, Rejection> {
        let decoded = if self.plain {
            decode(record.value, record.time, max_future_skew)
        } else {
            self.map(schemas, record)
                .and_then(|(parts, _)| assemble(parts, record.time, max_future_skew))
        };
        match (self.keyed_by, record.key) {
            (KeyedBy::Account, Some(key)) => radar_core::engine::keyed_by_account(decoded, key),
            _ => decoded,
        }
    }

    /// The fields a record maps to, before the checks every event gets, and whether its
    /// type came from the `types` table.
    pub fn map<'a>(
        &'a self,
        schemas: &'a Schemas,
        record: &RawRecord<'a>,
    ) -> Result<(Parts<'a>, TypeFrom), Rejection> {
        let mut captures = Captures::new(self.trie.len());
        self.capture(schemas, record, &mut captures)?;
        self.mapping.resolve(&captures)
    }

    fn capture<'a>(
        &'a self,
        schemas: &'a Schemas,
        record: &RawRecord<'a>,
        captures: &mut Captures<'a>,
    ) -> Result<(), Rejection> {
        let bad = |e: Malformed| Rejection::new(RejectReason::BadFormat, e.0);
        let payload = match self.spec.framing {
            Framing::None => record.value,
            Framing::Confluent => {
                let (id, payload) = framing::split(record.value).map_err(bad)?;
                match (self.spec.format, schemas.get(id)) {
                    (Format::Json, _) => payload,
                    (_, Some(Schema::Avro(plan))) => {
                        return plan.read(payload, captures).map_err(bad);
                    }
                    (_, Some(Schema::Protobuf(schema))) => {
                        return schema.read(payload, captures).map_err(bad);
                    }
                    (_, Some(Schema::Missing) | None) => {
                        return Err(Rejection::new(
                            RejectReason::UnknownSchema,
                            format!("schema id {id} is unknown"),
                        ));
                    }
                }
            }
        };
        let text = simdutf8::basic::from_utf8(payload)
            .map_err(|_| Rejection::new(RejectReason::BadFormat, "not UTF-8"))?;
        if self.spec.envelope == Envelope::Cloudevents && binary_mode(record.headers) {
            return self.capture_binary_mode(text, record.headers, captures);
        }
        crate::json::capture(text, &self.trie, PathTrie::ROOT, captures).map_err(bad)
    }

    /// A CloudEvent in binary mode: each attribute `x` in the header `ce_x`, the value
    /// its `data`.
    fn capture_binary_mode<'a>(
        &self,
        data: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
        captures: &mut Captures<'a>,
    ) -> Result<(), Rejection> {
        for (name, node) in self.trie.children(PathTrie::ROOT) {
            let Some(slot) = self.trie.slot(node) else {
                continue;
            };
            let header = headers.iter().rev().find(|(header, _)| {
                header.len() == name.len() + 3
                    && header.starts_with("ce_")
                    && header[3..].eq_ignore_ascii_case(name)
            });
            if let Some((_, value)) = header {
                let value = std::str::from_utf8(value).map_err(|_| {
                    Rejection::new(
                        RejectReason::BadFormat,
                        format!("header ce_{name} is not UTF-8"),
                    )
                })?;
                captures.set(slot, Captured::Str(Cow::Borrowed(value)));
            }
        }
        match self.data {
            Some(node) if !data.is_empty() => {
                crate::json::capture(data, &self.trie, node, captures)
                    .map_err(|e| Rejection::new(RejectReason::BadFormat, format!("data: {e}")))
            }
            _ => Ok(()),
        }
    }
}

/// CloudEvents' Kafka binding: binary mode carries `ce_specversion` as a header.
fn binary_mode(headers: &[(&str, &[u8])]) -> bool {
    headers.iter().any(|(name, _)| *name == "ce_specversion")
}

#[cfg(test)]
mod tests;

impl Source {
    /// Whether records are read with their headers (CloudEvents in binary mode).
    pub fn reads_headers(&self) -> bool {
        self.spec.envelope == Envelope::Cloudevents
    }

    /// The paths a record gave a value at, for `radar map`'s report of the paths that
    /// never matched; none when the record is not in the source's format.
    pub fn filled<'a>(&'a self, schemas: &'a Schemas, record: &RawRecord<'a>) -> Vec<&'a str> {
        let mut captures = Captures::new(self.trie.len());
        if self.capture(schemas, record, &mut captures).is_err() {
            return Vec::new();
        }
        (0..self.trie.len())
            .filter_map(|slot| u16::try_from(slot).ok())
            .filter(|slot| captures.get(*slot).is_some())
            .map(|slot| self.trie.path(slot))
            .collect()
    }
}
