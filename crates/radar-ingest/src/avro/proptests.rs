//! The plan held equal to apache-avro: random schemas, random values written with
//! apache-avro, read back both by apache-avro (into a `Value`, looked up by path here) and by
//! the plan; and random or damaged bytes never panic.

use std::borrow::Cow;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use serde_json::json;

use super::AvroPlan;
use super::tests::{owned, trie};
use crate::path::{Captured, Captures};

/// A writer type; records' fields are `f0`, `f1`… and maps' keys are drawn from `k0`–`k2`,
/// so that the paths drawn from the schema meet the data.
#[derive(Clone, Debug)]
enum T {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    Str,
    Bytes,
    Enum(u32),
    Fixed(usize),
    TimestampMillis,
    TimestampMicros,
    Date,
    Array(Box<T>),
    Map(Box<T>),
    Record(Vec<T>),
    /// Always with a null branch, as optional fields are written.
    Union(Vec<T>),
}

fn ty() -> impl Strategy<Value = T> {
    let leaf = prop_oneof![
        Just(T::Null),
        Just(T::Bool),
        Just(T::Int),
        Just(T::Long),
        Just(T::Float),
        Just(T::Double),
        Just(T::Str),
        Just(T::Bytes),
        (1u32..4).prop_map(T::Enum),
        (0usize..5).prop_map(T::Fixed),
        Just(T::TimestampMillis),
        Just(T::TimestampMicros),
        Just(T::Date),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| T::Array(Box::new(t))),
            inner.clone().prop_map(|t| T::Map(Box::new(t))),
            vec(inner.clone(), 0..5).prop_map(T::Record),
            (inner, any::<bool>()).prop_map(|(t, first)| match t {
                T::Null | T::Union(_) => t,
                // A second primitive branch beside the null one sometimes.
                T::Str => T::Union(vec![T::Null, T::Str, T::Long]),
                t if first => T::Union(vec![T::Null, t]),
                t => T::Union(vec![t, T::Null]),
            }),
        ]
    })
}

/// The schema's JSON; named types get fresh names from `names`.
fn json(t: &T, names: &mut u32) -> serde_json::Value {
    let mut fresh = |prefix: &str| {
        *names += 1;
        format!("{prefix}{names}")
    };
    match t {
        T::Null => json!("null"),
        T::Bool => json!("boolean"),
        T::Int => json!("int"),
        T::Long => json!("long"),
        T::Float => json!("float"),
        T::Double => json!("double"),
        T::Str => json!("string"),
        T::Bytes => json!("bytes"),
        T::Enum(n) => {
            let symbols: Vec<String> = (0..*n).map(|i| format!("S{i}")).collect();
            json!({"type": "enum", "name": fresh("E"), "symbols": symbols})
        }
        T::Fixed(size) => json!({"type": "fixed", "name": fresh("X"), "size": size}),
        T::TimestampMillis => json!({"type": "long", "logicalType": "timestamp-millis"}),
        T::TimestampMicros => json!({"type": "long", "logicalType": "timestamp-micros"}),
        T::Date => json!({"type": "int", "logicalType": "date"}),
        T::Array(items) => json!({"type": "array", "items": json(items, names)}),
        T::Map(values) => json!({"type": "map", "values": json(values, names)}),
        T::Record(fields) => {
            let name = fresh("R");
            let fields: Vec<_> = fields
                .iter()
                .enumerate()
                .map(|(i, field)| json!({"name": format!("f{i}"), "type": json(field, names)}))
                .collect();
            json!({"type": "record", "name": name, "fields": fields})
        }
        T::Union(branches) => branches.iter().map(|b| json(b, names)).collect(),
    }
}

fn value(t: &T) -> BoxedStrategy<Value> {
    match t {
        T::Null => Just(Value::Null).boxed(),
        T::Bool => any::<bool>().prop_map(Value::Boolean).boxed(),
        T::Int => any::<i32>().prop_map(Value::Int).boxed(),
        T::Long => any::<i64>().prop_map(Value::Long).boxed(),
        T::Float => (-1e6f32..1e6).prop_map(Value::Float).boxed(),
        T::Double => (-1e15f64..1e15).prop_map(Value::Double).boxed(),
        T::Str => "[a-z\u{e9}\u{1F600}]{0,6}".prop_map(Value::String).boxed(),
        T::Bytes => vec(any::<u8>(), 0..6).prop_map(Value::Bytes).boxed(),
        T::Enum(n) => (0..*n)
            .prop_map(|i| Value::Enum(i, format!("S{i}")))
            .boxed(),
        T::Fixed(size) => {
            let size = *size;
            vec(any::<u8>(), size)
                .prop_map(move |bytes| Value::Fixed(size, bytes))
                .boxed()
        }
        T::TimestampMillis => any::<i64>().prop_map(Value::TimestampMillis).boxed(),
        T::TimestampMicros => any::<i64>().prop_map(Value::TimestampMicros).boxed(),
        T::Date => any::<i32>().prop_map(Value::Date).boxed(),
        T::Array(items) => vec(value(items), 0..4).prop_map(Value::Array).boxed(),
        T::Map(values) => hash_map("k[0-2]", value(values), 0..3)
            .prop_map(Value::Map)
            .boxed(),
        T::Record(fields) => fields
            .iter()
            .enumerate()
            .map(|(i, field)| value(field).prop_map(move |v| (format!("f{i}"), v)))
            .collect::<Vec<_>>()
            .prop_map(Value::Record)
            .boxed(),
        T::Union(branches) => {
            let branches: Vec<_> = branches
                .iter()
                .enumerate()
                .map(|(i, branch)| {
                    let index = i as u32;
                    value(branch).prop_map(move |v| Value::Union(index, Box::new(v)))
                })
                .collect();
            proptest::strategy::Union::new(branches).boxed()
        }
    }
}

/// Every path the schema has (fields, map keys, through unions), plus some it does not.
fn paths(t: &T, prefix: &str, out: &mut Vec<String>) {
    let mut below = |segment: &str, t: &T| {
        let path = if prefix.is_empty() {
            segment.to_string()
        } else {
            format!("{prefix}.{segment}")
        };
        out.push(path.clone());
        paths(t, &path, out);
        out.push(format!("{path}.k9"));
    };
    match t {
        T::Record(fields) => {
            for (i, field) in fields.iter().enumerate() {
                below(&format!("f{i}"), field);
            }
            below("f9", &T::Null);
        }
        T::Map(values) => {
            for key in ["k0", "k1", "k2"] {
                below(key, values);
            }
        }
        T::Union(branches) => branches.iter().for_each(|b| paths(b, prefix, out)),
        _ => {}
    }
}

/// What the plan must capture at `path` in apache-avro's `Value`.
fn lookup(value: &Value, path: &[&str]) -> Option<Captured<'static>> {
    if let Value::Union(_, inner) = value {
        return lookup(inner, path);
    }
    let Some((first, rest)) = path.split_first() else {
        return Some(match value {
            // Null is no value (see `Step::Capture`).
            Value::Null => return None,
            Value::Boolean(b) => Captured::Bool(*b),
            Value::Int(i) => Captured::Int(i64::from(*i)),
            Value::Long(l) => Captured::Int(*l),
            Value::Float(f) => Captured::Float(f64::from(*f)),
            Value::Double(d) => Captured::Float(*d),
            Value::String(s) | Value::Enum(_, s) => Captured::Str(Cow::Owned(s.clone())),
            Value::TimestampMillis(ms) => Captured::Millis(*ms),
            Value::TimestampMicros(us) => Captured::Millis(us.div_euclid(1000)),
            Value::Date(days) => Captured::Millis(i64::from(*days) * 86_400_000),
            _ => Captured::Other,
        });
    };
    match value {
        Value::Record(fields) => {
            let (_, field) = fields.iter().find(|(name, _)| name == first)?;
            lookup(field, rest)
        }
        Value::Map(entries) => lookup(entries.get(*first)?, rest),
        _ => None,
    }
}

fn case() -> impl Strategy<Value = (T, Value, Vec<bool>, Vec<u8>)> {
    vec(ty(), 1..8).prop_map(T::Record).prop_flat_map(|root| {
        let mut all = Vec::new();
        paths(&root, "", &mut all);
        (
            value(&root),
            vec(any::<bool>(), all.len()),
            vec(any::<u8>(), 0..64),
            Just(root),
        )
            .prop_map(|(value, chosen, noise, root)| (root, value, chosen, noise))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_plan_captures_what_apache_avro_reads(
        (root, value, chosen, noise) in case(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let schema_json = json(&root, &mut 0).to_string();
        let schema = Schema::parse_str(&schema_json).unwrap();
        let datum = GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let read_back = GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut &datum[..])
            .unwrap();

        let mut all = Vec::new();
        paths(&root, "", &mut all);
        let chosen: Vec<&str> = all
            .iter()
            .zip(&chosen)
            .filter(|(_, chosen)| **chosen)
            .map(|(path, _)| path.as_str())
            .collect();
        let trie = trie(&chosen);
        let plan = AvroPlan::compile(&schema_json, &trie).unwrap();
        let mut captures = Captures::new(trie.len());
        plan.read(&datum, &mut captures).unwrap();
        for slot in 0..trie.len() as u16 {
            let path = trie.path(slot);
            let segments: Vec<&str> = path.split('.').collect();
            let expected = lookup(&read_back, &segments);
            prop_assert_eq!(captures.get(slot).map(owned), expected, "path {}", path);
        }

        // Damaged data: cut short, one byte changed, random bytes, appended bytes.
        // Errors are fine; panics are not.
        let reads = |bytes: &[u8]| plan.read(bytes, &mut Captures::new(trie.len())).is_ok();
        reads(&datum[..cut.index(datum.len() + 1)]);
        if !datum.is_empty() {
            let mut flipped = datum.clone();
            flipped[flip.0.index(datum.len())] ^= flip.1;
            reads(&flipped);
        }
        reads(&noise);
        let mut longer = datum.clone();
        longer.extend(&noise);
        prop_assert_eq!(reads(&longer), noise.is_empty());
    }

    #[test]
    fn any_bytes_on_a_fixed_plan_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let trie = trie(&["id", "props.seats", "props.plan", "context.ip", "kind", "at", "tags"]);
        let plan = AvroPlan::compile(super::tests::EVENT, &trie).unwrap();
        let mut captures = Captures::new(trie.len());
        let _ = plan.read(&bytes, &mut captures);
    }
}
