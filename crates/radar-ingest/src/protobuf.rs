//! Protobuf writer schemas, read at run time.

use crate::path::{Captures, PathTrie};
use crate::{Malformed, SchemaError};

/// A writer schema (one file, all its messages), read against the mapping's paths.
#[derive(Debug)]
pub struct ProtobufSchema {}

impl ProtobufSchema {
    /// Compiles the schema as a `.proto` file or the registry gives it.
    pub fn compile(schema: &str, paths: &PathTrie) -> Result<ProtobufSchema, SchemaError> {
        let _ = (schema, paths);
        Err(SchemaError("Protobuf is not supported yet".into()))
    }

    /// Reads one payload (after the schema id: the message indexes, then the message).
    pub fn read<'a>(
        &'a self,
        payload: &'a [u8],
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        let _ = (payload, captures);
        Err(Malformed::new("Protobuf is not supported yet"))
    }
}
