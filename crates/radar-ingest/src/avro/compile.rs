//! Writer schema → [`AvroPlan`]: `apache-avro` parses, this walks its [`Schema`] once
//! against the trie.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};

use super::{AvroPlan, Read, Step, Ty, TyId};
use crate::SchemaError;
use crate::path::{NodeId, PathTrie};

pub(super) fn compile(schema: &str, paths: &PathTrie) -> Result<AvroPlan, SchemaError> {
    let parsed = Schema::parse_str(schema)
        .map_err(|error| SchemaError(format!("not a usable Avro schema: {error}")))?;
    let mut names = HashMap::new();
    collect_names(&parsed, &mut names);
    let mut compiler = Compiler {
        names,
        types: Vec::new(),
        records: HashMap::new(),
    };
    let root = compiler.step(&parsed, PathTrie::ROOT, paths)?;
    let zero_sized = zero_sized(&compiler.types);
    Ok(AvroPlan {
        types: compiler.types,
        zero_sized,
        root,
    })
}

/// Every named type's definition: a later use of the name is a [`Schema::Ref`].
fn collect_names<'s>(schema: &'s Schema, names: &mut HashMap<Name, &'s Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.clone(), schema);
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(enumeration) => {
            names.insert(enumeration.name.clone(), schema);
        }
        Schema::Fixed(fixed) | Schema::Duration(fixed) => {
            names.insert(fixed.name.clone(), schema);
        }
        Schema::Decimal(decimal) => {
            if let InnerDecimalSchema::Fixed(fixed) = &decimal.inner {
                names.insert(fixed.name.clone(), schema);
            }
        }
        Schema::Uuid(UuidSchema::Fixed(fixed)) => {
            names.insert(fixed.name.clone(), schema);
        }
        Schema::Array(array) => collect_names(&array.items, names),
        Schema::Map(map) => collect_names(&map.types, names),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_names(variant, names);
            }
        }
        _ => {}
    }
}

struct Compiler<'s> {
    names: HashMap<Name, &'s Schema>,
    types: Vec<Ty>,
    /// Records already laid out, by name: a record used twice (or inside itself) is one [`Ty`].
    records: HashMap<Name, TyId>,
}

impl<'s> Compiler<'s> {
    fn resolve(&self, schema: &'s Schema) -> Result<&'s Schema, SchemaError> {
        match schema {
            Schema::Ref { name } => self.names.get(name).copied().ok_or_else(|| {
                SchemaError(format!("Avro type {} is not defined", name.fullname(None)))
            }),
            _ => Ok(schema),
        }
    }

    fn push(&mut self, ty: Ty) -> Result<TyId, SchemaError> {
        let id = TyId::try_from(self.types.len())
            .map_err(|_| SchemaError("Avro schema too large".into()))?;
        self.types.push(ty);
        Ok(id)
    }

    /// The layout of `schema`, for skipping its values.
    fn ty(&mut self, schema: &'s Schema) -> Result<TyId, SchemaError> {
        let schema = self.resolve(schema)?;
        let ty = match schema {
            Schema::Null => Ty::Fixed(0),
            Schema::Boolean => Ty::Fixed(1),
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Ty::Varint,
            Schema::Float => Ty::Fixed(4),
            Schema::Double => Ty::Fixed(8),
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => Ty::Len,
            Schema::Decimal(decimal) => match &decimal.inner {
                InnerDecimalSchema::Bytes => Ty::Len,
                InnerDecimalSchema::Fixed(fixed) => Ty::Fixed(fixed.size),
            },
            Schema::Fixed(fixed)
            | Schema::Duration(fixed)
            | Schema::Uuid(UuidSchema::Fixed(fixed)) => Ty::Fixed(fixed.size),
            Schema::Array(array) => {
                let items = self.ty(&array.items)?;
                Ty::Array(items)
            }
            Schema::Map(map) => {
                let values = self.ty(&map.types)?;
                Ty::Map(values)
            }
            Schema::Union(union) => Ty::Union(
                union
                    .variants()
                    .iter()
                    .map(|variant| self.ty(variant))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Record(record) => {
                if let Some(id) = self.records.get(&record.name) {
                    return Ok(*id);
                }
                // Registered before its fields, so a field of the record's own type finds it.
                let id = self.push(Ty::Record(Box::default()))?;
                self.records.insert(record.name.clone(), id);
                let fields = record
                    .fields
                    .iter()
                    .map(|field| self.ty(&field.schema))
                    .collect::<Result<_, _>>()?;
                self.types[id as usize] = Ty::Record(fields);
                return Ok(id);
            }
            Schema::Ref { .. } => {
                return Err(SchemaError("an Avro reference to a reference".into()));
            }
        };
        self.push(ty)
    }

    /// The step that skips a value of `schema`: the fixed-size and length-prefixed ones are
    /// steps of their own, skipped in the record's loop without a call.
    /// An optional field's union becomes a union of such steps, so skipping it is no call
    /// either.
    fn skip(&mut self, schema: &'s Schema) -> Result<Step, SchemaError> {
        if let Schema::Union(union) = self.resolve(schema)? {
            return Ok(Step::Union {
                branches: union
                    .variants()
                    .iter()
                    .map(|variant| self.skip(variant))
                    .collect::<Result<_, _>>()?,
            });
        }
        let ty = self.ty(schema)?;
        Ok(match self.types[ty as usize] {
            Ty::Varint => Step::SkipVarint,
            Ty::Len => Step::SkipLen,
            Ty::Fixed(size) => Step::SkipFixed(size),
            _ => Step::Skip(ty),
        })
    }

    /// What to do with a value of `schema` at `node`. Terminates on recursive schemas: a
    /// record or a map only recurses into deeper trie nodes, and a union's branches are not
    /// unions.
    fn step(
        &mut self,
        schema: &'s Schema,
        node: NodeId,
        paths: &PathTrie,
    ) -> Result<Step, SchemaError> {
        let schema = self.resolve(schema)?;
        let slot = paths.slot(node);
        let below = paths.has_children(node);
        if slot.is_none() && !below {
            return self.skip(schema);
        }
        match schema {
            Schema::Union(union) => Ok(Step::Union {
                branches: union
                    .variants()
                    .iter()
                    .map(|variant| self.step(variant, node, paths))
                    .collect::<Result<_, _>>()?,
            }),
            Schema::Record(record) if below => Ok(Step::Record {
                slot,
                fields: record
                    .fields
                    .iter()
                    .map(|field| match paths.child(node, &field.name) {
                        Some(child) => self.step(&field.schema, child, paths),
                        None => self.skip(&field.schema),
                    })
                    .collect::<Result<_, _>>()?,
            }),
            Schema::Map(map) if below => Ok(Step::Map {
                slot,
                keys: paths
                    .children(node)
                    .map(|(key, child)| Ok((key.into(), self.step(&map.types, child, paths)?)))
                    .collect::<Result<_, SchemaError>>()?,
                values: self.ty(&map.types)?,
            }),
            _ => match (slot, read(schema)) {
                (Some(slot), Some(read)) => Ok(Step::Capture { slot, read }),
                (Some(slot), None) => Ok(Step::Other {
                    slot,
                    ty: self.ty(schema)?,
                }),
                (None, _) => self.skip(schema),
            },
        }
    }
}

/// How a scalar of `schema` is captured; `None` for what is captured as `Other`.
fn read(schema: &Schema) -> Option<Read> {
    Some(match schema {
        Schema::Null => Read::Null,
        Schema::Boolean => Read::Bool,
        Schema::Int | Schema::TimeMillis => Read::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Read::Long,
        Schema::Float => Read::Float,
        Schema::Double => Read::Double,
        Schema::String | Schema::Uuid(UuidSchema::String) => Read::Str,
        Schema::Enum(enumeration) => Read::Enum(
            enumeration
                .symbols
                .iter()
                .map(|symbol| symbol.as_str().into())
                .collect(),
        ),
        Schema::TimestampMillis => Read::TimestampMillis,
        Schema::TimestampMicros => Read::TimestampMicros,
        Schema::Date => Read::Date,
        _ => return None,
    })
}

/// Which types' values take no bytes: null, empty fixed, records of those. A fixpoint from
/// "every record is empty" down, so recursive records settle.
fn zero_sized(types: &[Ty]) -> Vec<bool> {
    let mut zero: Vec<bool> = types
        .iter()
        .map(|ty| matches!(ty, Ty::Fixed(0) | Ty::Record(_)))
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (id, ty) in types.iter().enumerate() {
            if let Ty::Record(fields) = ty {
                let all = fields.iter().all(|field| zero[*field as usize]);
                if zero[id] && !all {
                    zero[id] = false;
                    changed = true;
                }
            }
        }
    }
    zero
}
