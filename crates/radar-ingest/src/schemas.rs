//! The writer schemas a source knows so far, by schema id, compiled against its paths.
//!
//! Reading them (a directory, a registry) is the caller's: this crate does no I/O. A
//! set is cheap to clone (one `Arc` per schema), so the caller can hand each poll round
//! a snapshot and add schemas to the next one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::avro::AvroPlan;
use crate::protobuf::ProtobufSchema;

/// One schema id's writer schema, or the registry's word that there is none.
#[derive(Debug)]
pub enum Schema {
    Avro(AvroPlan),
    Protobuf(ProtobufSchema),
    /// The registry answered that the id does not exist: its records are dead letters
    /// (`unknown_schema`).
    Missing,
}

/// Writer schemas by id.
#[derive(Clone, Debug, Default)]
pub struct Schemas {
    by_id: HashMap<u32, Arc<Schema>>,
}

impl Schemas {
    #[inline]
    pub fn get(&self, id: u32) -> Option<&Schema> {
        self.by_id.get(&id).map(|schema| &**schema)
    }

    /// Whether the id has been settled, as a schema or as missing.
    pub fn knows(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn insert(&mut self, id: u32, schema: Schema) {
        self.by_id.insert(id, Arc::new(schema));
    }

    /// Adds `other`'s schemas of ids this set does not know.
    pub fn add_unknown(&mut self, other: Schemas) {
        for (id, schema) in other.by_id {
            self.by_id.entry(id).or_insert(schema);
        }
    }
}
