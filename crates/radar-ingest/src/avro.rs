//! Avro writer schemas compiled into plans over a mapping's paths.

use crate::path::{Captures, PathTrie};
use crate::{Malformed, SchemaError};

/// A writer schema compiled against the mapping's paths: reads a datum once, capturing
/// the mapped fields and skipping the rest.
#[derive(Debug)]
pub struct AvroPlan {}

impl AvroPlan {
    /// Compiles the writer schema (Avro's JSON form, as `<id>.avsc` or the registry gives it).
    pub fn compile(schema: &str, paths: &PathTrie) -> Result<AvroPlan, SchemaError> {
        let _ = (schema, paths);
        Err(SchemaError("Avro is not supported yet".into()))
    }

    /// Reads one datum (the payload after the framing), capturing the mapped fields.
    pub fn read<'a>(
        &'a self,
        datum: &'a [u8],
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        let _ = (datum, captures);
        Err(Malformed::new("Avro is not supported yet"))
    }
}
