//! Protobuf writer schemas, read at run time.
//!
//! The schema is what the registry holds: `.proto` source (compiled here by `protox`, no
//! `protoc`; the well-known `google/protobuf/*.proto` imports resolve from memory) or the
//! base64 of a serialized `FileDescriptorProto` (what confluent-kafka-python registers, and
//! what the registry returns with `?format=serialized`). Either way `protox` checks and
//! links it into a `prost_reflect` pool.
//!
//! A payload is the Confluent message indexes, then the message: the indexes pick the
//! message type (a top-level message by index, then nested ones within it). Correctness
//! first: the message is decoded whole by `prost_reflect::DynamicMessage` (which bounds
//! recursion and checks every length), then the mapped paths are looked up in it.
//!
//! Paths: fields by name; nested messages descend; `map<string, V>` keys are segments
//! (integer and bool keys too, as their text);
//! repeated fields and maps at a path end capture `Other`. `google.protobuf.Timestamp` is
//! an instant ([`Captured::Millis`]) and the wrapper types are their value. Fields without
//! presence (proto3 scalars) read as their default when absent, as protobuf defines them;
//! fields with presence (messages, `optional`, oneof members, proto2) capture nothing when
//! absent.

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost_reflect::prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::path::{Captured, Captures, NodeId, PathTrie};
use crate::{Malformed, SchemaError};

/// The file name given to a schema that has none (the source form never has one).
const SCHEMA_FILE: &str = "schema.proto";

/// How many message indexes a payload may give: nesting deeper than this is not a schema
/// anyone registers, and it bounds the work before the message.
const MAX_INDEXES: usize = 32;

/// A writer schema (one file, all its messages), read against the mapping's paths.
#[derive(Debug)]
pub struct ProtobufSchema {
    /// The file's top-level messages, in declaration order: the first message index.
    messages: Vec<MessageDescriptor>,
    paths: PathTrie,
}

/// The one schema file, from memory.
struct SchemaFile(File);

impl FileResolver for SchemaFile {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.0.name() {
            Ok(self.0.clone())
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

impl ProtobufSchema {
    /// Compiles the schema as a `.proto` file or the registry gives it.
    pub fn compile(schema: &str, paths: &PathTrie) -> Result<ProtobufSchema, SchemaError> {
        let file = match serialized(schema) {
            Some(mut descriptor) => {
                if descriptor.name().is_empty() {
                    descriptor.name = Some(SCHEMA_FILE.into());
                }
                File::from_file_descriptor_proto(descriptor)
            }
            None => File::from_source(SCHEMA_FILE, schema)
                .map_err(|error| SchemaError(format!("not a usable .proto schema: {error}")))?,
        };
        let name = file.name().to_string();
        let mut resolver = ChainFileResolver::new();
        resolver.add(SchemaFile(file));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler
            .open_file(&name)
            .map_err(|error| SchemaError(format!("not a usable Protobuf schema: {error}")))?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(&name)
            .ok_or_else(|| SchemaError(format!("the Protobuf schema file {name} is missing")))?;
        let messages: Vec<_> = file.messages().collect();
        if messages.is_empty() {
            return Err(SchemaError("the Protobuf schema has no message".into()));
        }
        Ok(ProtobufSchema {
            messages,
            paths: paths.clone(),
        })
    }

    /// Reads one payload (after the schema id: the message indexes, then the message).
    pub fn read<'a>(
        &'a self,
        payload: &'a [u8],
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        let (descriptor, message) = self.message_type(payload)?;
        let message = DynamicMessage::decode(descriptor, message).map_err(|error| {
            Malformed(format!("not a Protobuf message of its schema: {error}").into())
        })?;
        self.capture_message(&message, PathTrie::ROOT, captures)
    }

    /// The message type the indexes select, and the message bytes after them.
    fn message_type<'a>(
        &self,
        payload: &'a [u8],
    ) -> Result<(MessageDescriptor, &'a [u8]), Malformed> {
        let beyond = || Malformed::new("Protobuf message index beyond the schema's messages");
        let mut input = payload;
        let count = zigzag(&mut input)?;
        let count = usize::try_from(count)
            .ok()
            .filter(|count| *count <= MAX_INDEXES)
            .ok_or(Malformed::new("Protobuf message index count out of range"))?;
        // `[0]`, the first message, is written as the count 0 alone.
        let mut current = self.messages.first().cloned().ok_or_else(beyond)?;
        for position in 0..count {
            let index = usize::try_from(zigzag(&mut input)?)
                .map_err(|_| Malformed::new("negative Protobuf message index"))?;
            let found = if position == 0 {
                self.messages.get(index).cloned()
            } else {
                current.child_messages().nth(index)
            };
            current = found.ok_or_else(beyond)?;
        }
        Ok((current, input))
    }

    /// Captures the paths below `node` in `message`.
    fn capture_message<'a>(
        &self,
        message: &DynamicMessage,
        node: NodeId,
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        let descriptor = message.descriptor();
        for (name, child) in self.paths.children(node) {
            let Some(field) = descriptor.get_field_by_name(name) else {
                continue;
            };
            if field.supports_presence() && !message.has_field(&field) {
                continue;
            }
            let value = message.get_field(&field);
            self.capture_field(&field, &value, child, captures)?;
        }
        Ok(())
    }

    /// Captures a field's value at `node` and the paths below it.
    fn capture_field<'a>(
        &self,
        field: &FieldDescriptor,
        value: &Value,
        node: NodeId,
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        if field.is_map() {
            if let Some(slot) = self.paths.slot(node) {
                captures.set(slot, Captured::Other);
            }
            let (Value::Map(entries), Kind::Message(entry)) = (value, field.kind()) else {
                return Ok(());
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            for (segment, child) in self.paths.children(node) {
                let value = map_key(&key_kind, segment).and_then(|key| entries.get(&key));
                if let Some(value) = value {
                    self.capture_value(&value_kind, value, child, captures)?;
                }
            }
            return Ok(());
        }
        if field.is_list() {
            if let Some(slot) = self.paths.slot(node) {
                captures.set(slot, Captured::Other);
            }
            return Ok(());
        }
        self.capture_value(&field.kind(), value, node, captures)
    }

    /// Captures a singular value of `kind` at `node`, and descends into a message.
    fn capture_value<'a>(
        &self,
        kind: &Kind,
        value: &Value,
        node: NodeId,
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        if let Value::Message(message) = value {
            if let Some(slot) = self.paths.slot(node) {
                captures.set(slot, well_known(message)?.unwrap_or(Captured::Other));
            }
            return self.capture_message(message, node, captures);
        }
        if let Some(slot) = self.paths.slot(node) {
            captures.set(slot, scalar(kind, value));
        }
        Ok(())
    }
}

/// A path segment as a key of a map with keys of `kind`: `map<string, V>` as written,
/// integer and bool keys as their decimal or `true`/`false` text; `None` if it cannot be one.
fn map_key(kind: &Kind, segment: &str) -> Option<MapKey> {
    Some(match kind {
        Kind::String => MapKey::String(segment.to_string()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(segment.parse().ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(segment.parse().ok()?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(segment.parse().ok()?),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(segment.parse().ok()?),
        Kind::Bool => MapKey::Bool(segment.parse().ok()?),
        _ => return None,
    })
}

/// The registry's serialized form: base64 of a `FileDescriptorProto`. `.proto` source is
/// never valid base64 (it has spaces, braces and semicolons), so a successful decode decides.
fn serialized(schema: &str) -> Option<FileDescriptorProto> {
    let compact: String = schema.split_whitespace().collect();
    let bytes = STANDARD.decode(compact).ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// A Confluent message index: a zig-zag varint (as Avro's, from Confluent's `ByteUtils`),
/// at most 5 bytes since the Java side writes 32-bit ints.
fn zigzag(input: &mut &[u8]) -> Result<i64, Malformed> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *input = input.get(i + 1..).unwrap_or_default();
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(Malformed::new(
        "Protobuf message indexes truncated or too long",
    ))
}

/// `google.protobuf.Timestamp` as milliseconds, the wrappers as their value; `None` for
/// any other message.
fn well_known(message: &DynamicMessage) -> Result<Option<Captured<'static>>, Malformed> {
    let descriptor = message.descriptor();
    let name = descriptor.full_name();
    let field = |name: &str| {
        let field = descriptor.get_field_by_name(name)?;
        Some((message.get_field(&field).into_owned(), field))
    };
    match name {
        "google.protobuf.Timestamp" => {
            let seconds = field("seconds").and_then(|(value, _)| value.as_i64());
            let nanos = field("nanos").and_then(|(value, _)| value.as_i32());
            let (Some(seconds), Some(nanos)) = (seconds, nanos) else {
                return Ok(None);
            };
            let millis = seconds
                .checked_mul(1000)
                .and_then(|millis| millis.checked_add(i64::from(nanos / 1_000_000)))
                .ok_or(Malformed::new("Protobuf Timestamp out of range"))?;
            Ok(Some(Captured::Millis(millis)))
        }
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => {
            Ok(field("value").map(|(value, field)| scalar(&field.kind(), &value)))
        }
        _ => Ok(None),
    }
}

/// A scalar as the mapping sees it.
fn scalar(kind: &Kind, value: &Value) -> Captured<'static> {
    match value {
        Value::Bool(b) => Captured::Bool(*b),
        Value::I32(i) => Captured::Int(i64::from(*i)),
        Value::I64(i) => Captured::Int(*i),
        Value::U32(u) => Captured::Int(i64::from(*u)),
        Value::U64(u) => match i64::try_from(*u) {
            Ok(i) => Captured::Int(i),
            Err(_) => Captured::Float(*u as f64),
        },
        Value::F32(f) => Captured::Float(f64::from(*f)),
        Value::F64(f) => Captured::Float(*f),
        Value::String(text) => Captured::Str(Cow::Owned(text.clone())),
        Value::EnumNumber(number) => match kind
            .as_enum()
            .and_then(|enumeration| enumeration.get_value(*number))
        {
            Some(value) => Captured::Str(Cow::Owned(value.name().to_string())),
            None => Captured::Int(i64::from(*number)),
        },
        Value::Bytes(_) | Value::Message(_) | Value::List(_) | Value::Map(_) => Captured::Other,
    }
}
