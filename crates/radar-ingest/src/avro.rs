//! Avro writer schemas compiled into plans over a mapping's paths.
//!
//! `apache-avro` parses the writer schema, once; reading a datum through its `Value` costs
//! tens of thousands of instructions for a typical event, most of it building values nobody
//! maps. So the schema is compiled ([`compile`]) into a plan of our own: for each value the
//! mapping reaches, a [`Step`] that reads it into a slot or descends into it with the trie
//! node's sub-plan, and for everything else a step or a [`Ty`] that skips it (a length read
//! and a bounds check for a string). Reading a datum allocates nothing and looks nothing up
//! by name. On the typical event of `avro/typical.rs` (20 fields, a 3-key map, a 4-field
//! record; 7 paths) callgrind counts ~2,670 instructions per read, against ~34,000 for
//! apache-avro's reader into a `Value`; ~440 of them check the 4 captured strings' UTF-8.
//!
//! Paths: record fields by name; a union is transparent (the path goes on into the branch
//! actually written; its null branch captures nothing); a map's keys are path segments;
//! arrays are never descended.
//!
//! Hostile bytes: every read is bounds-checked, every length checked against what is left
//! (never used to pre-allocate), and nesting is bounded at run time by [`MAX_DEPTH`] records,
//! arrays and maps. The bound is at run time rather than a compile-time refusal of recursive
//! schemas because recursive schemas (a tree of `["null", "Node"]` children) are legitimate
//! and their data is finite: only data nested deeper than the bound is refused.

mod compile;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod typical;

use std::borrow::Cow;

use crate::path::{Captured, Captures, PathTrie, Slot};
use crate::{Malformed, SchemaError};

/// How many records, arrays and maps a datum may nest: deeper is [`Malformed`], which keeps
/// the reader's recursion (and so its stack) bounded whatever the schema and the bytes.
pub const MAX_DEPTH: u32 = 64;

/// The index of a [`Ty`] in a plan.
type TyId = u32;

/// How a value of one writer type is laid out: all that skipping it needs. Named types
/// appear once, so recursive types are finite here.
#[derive(Debug)]
enum Ty {
    /// int, long, enum: one zig-zag varint.
    Varint,
    /// string, bytes: a long length, then the bytes.
    Len,
    /// null (0 bytes), boolean (1), float (4), double (8), fixed.
    Fixed(usize),
    Record(Box<[TyId]>),
    Union(Box<[TyId]>),
    Array(TyId),
    Map(TyId),
}

/// How a captured scalar is read.
#[derive(Debug)]
enum Read {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    Str,
    /// The symbols, borrowed by the captures: no allocation per datum.
    Enum(Box<[Box<str>]>),
    TimestampMillis,
    TimestampMicros,
    Date,
}

/// What to do with one value at one trie node.
#[derive(Debug)]
enum Step {
    /// No path reaches the value: skip a varint (int, long, enum)…
    SkipVarint,
    /// … a string or bytes…
    SkipLen,
    /// … a fixed-size value (null, boolean, float, double, fixed)…
    SkipFixed(usize),
    /// … or a record, union, array or map.
    Skip(TyId),
    /// A path ends at a scalar: read it into the slot.
    Capture { slot: Slot, read: Read },
    /// A path ends at a value that is not a scalar (bytes, fixed, array, record or map
    /// with no path below): skip it and capture [`Captured::Other`].
    Other { slot: Slot, ty: TyId },
    /// Paths go into a record: one step per field, in the writer's order.
    Record {
        slot: Option<Slot>,
        fields: Box<[Step]>,
    },
    /// The step for each branch, at the same node.
    Union { branches: Box<[Step]> },
    /// Paths go into a map: the mapped keys with their steps; other keys' values are skipped.
    Map {
        slot: Option<Slot>,
        keys: Box<[(Box<str>, Step)]>,
        values: TyId,
    },
}

/// Why a datum is malformed, in one byte: the reader's results stay in registers, and
/// only the public [`AvroPlan::read`] turns one into a [`Malformed`] with its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    Truncated,
    VarintTooLong,
    NegativeLength,
    BlockCount,
    UnionIndex,
    EnumIndex,
    Boolean,
    IntRange,
    Utf8,
    Date,
    Deep,
}

impl From<Bad> for Malformed {
    fn from(bad: Bad) -> Self {
        Malformed::new(match bad {
            Bad::Truncated => "Avro datum truncated",
            Bad::VarintTooLong => "Avro varint longer than 10 bytes",
            Bad::NegativeLength => "Avro negative length",
            Bad::BlockCount => "Avro block count beyond the datum",
            Bad::UnionIndex => "Avro union branch index out of range",
            Bad::EnumIndex => "Avro enum index out of range",
            Bad::Boolean => "Avro boolean neither 0 nor 1",
            Bad::IntRange => "Avro int out of range",
            Bad::Utf8 => "Avro string not UTF-8",
            Bad::Date => "Avro date out of range",
            Bad::Deep => "Avro datum nested too deep",
        })
    }
}

/// A writer schema compiled against the mapping's paths: reads a datum once, capturing
/// the mapped fields and skipping the rest.
#[derive(Debug)]
pub struct AvroPlan {
    types: Vec<Ty>,
    /// Per type, whether its values take no bytes at all (null, empty records): an array
    /// of those is not walked item by item, since its count is not bounded by the input.
    zero_sized: Vec<bool>,
    root: Step,
}

impl AvroPlan {
    /// Compiles the writer schema (Avro's JSON form, as `<id>.avsc` or the registry gives it).
    pub fn compile(schema: &str, paths: &PathTrie) -> Result<AvroPlan, SchemaError> {
        compile::compile(schema, paths)
    }

    /// Reads one datum (the payload after the framing), capturing the mapped fields.
    /// Bytes left after the datum are [`Malformed`]: a datum is all of the payload.
    pub fn read<'a>(
        &'a self,
        datum: &'a [u8],
        captures: &mut Captures<'a>,
    ) -> Result<(), Malformed> {
        let mut input = datum;
        self.step(&self.root, &mut input, captures, 0)
            .map_err(Malformed::from)?;
        if input.is_empty() {
            Ok(())
        } else {
            Err(Malformed::new("trailing bytes after the Avro datum"))
        }
    }

    /// One step, the frequent ones without a call: skipping or capturing a scalar, and
    /// a union of those (an optional field). A typical event is mostly these.
    #[inline(always)]
    fn step<'a>(
        &'a self,
        step: &'a Step,
        input: &mut &'a [u8],
        captures: &mut Captures<'a>,
        depth: u32,
    ) -> Result<(), Bad> {
        match step {
            Step::Union { branches } => {
                let branch = branch(branches, input)?;
                self.leaf(branch, input, captures, depth)
            }
            Step::Skip(ty) => self.skip(*ty, input, depth),
            _ => self.leaf(step, input, captures, depth),
        }
    }

    /// A scalar step inline; any other through [`Self::run`].
    #[inline(always)]
    fn leaf<'a>(
        &'a self,
        step: &'a Step,
        input: &mut &'a [u8],
        captures: &mut Captures<'a>,
        depth: u32,
    ) -> Result<(), Bad> {
        match step {
            Step::SkipVarint => skip_varint(input),
            Step::SkipLen => bytes(input).map(drop),
            Step::SkipFixed(size) => take(input, *size).map(drop),
            Step::Capture { slot, read } => {
                // A null (a union's null branch, as optional fields are written) is no
                // value: the mapping reads null as absent, and not keeping it keeps an
                // event's many optional fields out of the captures.
                match scalar(read, input)? {
                    Captured::Null => {}
                    value => captures.set(*slot, value),
                }
                Ok(())
            }
            _ => self.run(step, input, captures, depth),
        }
    }

    /// The steps that nest: records, unions, maps, and skipping those.
    fn run<'a>(
        &'a self,
        step: &'a Step,
        input: &mut &'a [u8],
        captures: &mut Captures<'a>,
        depth: u32,
    ) -> Result<(), Bad> {
        match step {
            Step::Skip(ty) => self.skip(*ty, input, depth),
            Step::Other { slot, ty } => {
                self.skip_one(*ty, input, depth)?;
                captures.set(*slot, Captured::Other);
                Ok(())
            }
            Step::Record { slot, fields } => {
                let depth = deeper(depth)?;
                if let Some(slot) = slot {
                    captures.set(*slot, Captured::Other);
                }
                for field in fields {
                    self.step(field, input, captures, depth)?;
                }
                Ok(())
            }
            Step::Union { branches } => {
                let branch = branch(branches, input)?;
                self.step(branch, input, captures, depth)
            }
            Step::Map { slot, keys, values } => {
                let depth = deeper(depth)?;
                if let Some(slot) = slot {
                    captures.set(*slot, Captured::Other);
                }
                while let Some(count) = block(input, false)? {
                    for _ in 0..count {
                        let key = bytes(input)?;
                        match keys.iter().find(|(name, _)| name.as_bytes() == key) {
                            Some((_, step)) => self.step(step, input, captures, depth)?,
                            None => self.skip_one(*values, input, depth)?,
                        }
                    }
                }
                Ok(())
            }
            // The leaf steps, when not inlined by `leaf`.
            Step::SkipVarint | Step::SkipLen | Step::SkipFixed(_) | Step::Capture { .. } => {
                self.leaf(step, input, captures, depth)
            }
        }
    }

    /// Skips a value: scalars inline, the rest through [`Self::skip`].
    #[inline(always)]
    fn skip_one(&self, ty: TyId, input: &mut &[u8], depth: u32) -> Result<(), Bad> {
        match &self.types[ty as usize] {
            Ty::Varint => skip_varint(input),
            Ty::Len => bytes(input).map(drop),
            Ty::Fixed(size) => take(input, *size).map(drop),
            _ => self.skip(ty, input, depth),
        }
    }

    /// Skips a record, union, array or map.
    fn skip(&self, ty: TyId, input: &mut &[u8], depth: u32) -> Result<(), Bad> {
        match &self.types[ty as usize] {
            Ty::Varint | Ty::Len | Ty::Fixed(_) => self.skip_one(ty, input, depth),
            Ty::Record(fields) => {
                let depth = deeper(depth)?;
                fields
                    .iter()
                    .try_for_each(|field| self.skip_one(*field, input, depth))
            }
            Ty::Union(branches) => {
                let branch = branch(branches, input)?;
                self.skip_one(*branch, input, depth)
            }
            Ty::Array(items) => {
                let depth = deeper(depth)?;
                let zero_sized = self.zero_sized[*items as usize];
                while let Some(count) = block(input, zero_sized)? {
                    for _ in 0..count {
                        self.skip_one(*items, input, depth)?;
                    }
                }
                Ok(())
            }
            Ty::Map(values) => {
                let depth = deeper(depth)?;
                while let Some(count) = block(input, false)? {
                    for _ in 0..count {
                        bytes(input)?;
                        self.skip_one(*values, input, depth)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// One level deeper, or [`Bad::Deep`] past [`MAX_DEPTH`].
#[inline]
fn deeper(depth: u32) -> Result<u32, Bad> {
    if depth < MAX_DEPTH {
        Ok(depth + 1)
    } else {
        Err(Bad::Deep)
    }
}

/// The branch a union's index selects.
#[inline]
fn branch<'p, T>(branches: &'p [T], input: &mut &[u8]) -> Result<&'p T, Bad> {
    let index = long(input)?;
    usize::try_from(index)
        .ok()
        .and_then(|index| branches.get(index))
        .ok_or(Bad::UnionIndex)
}

/// The next block of an array or map: how many items to walk, or `None` at the end.
/// Items that take no bytes (`zero_sized`) are not walked at all; otherwise every item takes
/// at least one byte, so a count beyond the bytes left is refused: a hostile count cannot
/// spin the loop.
fn block(input: &mut &[u8], zero_sized: bool) -> Result<Option<u64>, Bad> {
    loop {
        let count = long(input)?;
        if count == 0 {
            return Ok(None);
        }
        if count < 0 {
            // Negative: the byte size follows; the items are still read one by one.
            let _size = long(input)?;
        }
        if zero_sized {
            // Nothing to read per item, however many there are.
            continue;
        }
        let count = count.unsigned_abs();
        if count > input.len() as u64 {
            return Err(Bad::BlockCount);
        }
        return Ok(Some(count));
    }
}

/// A zig-zag varint of at most 10 bytes (Avro's long; int is the same encoding). Most
/// are one byte (lengths, small numbers): that case inline, the rest in [`long_slow`].
#[inline(always)]
fn long(input: &mut &[u8]) -> Result<i64, Bad> {
    if let Some((&first, rest)) = input.split_first() {
        if first < 0x80 {
            *input = rest;
            return Ok(i64::from(first >> 1) ^ -i64::from(first & 1));
        }
    }
    long_slow(input)
}

#[inline(never)]
fn long_slow(input: &mut &[u8]) -> Result<i64, Bad> {
    let mut value: u64 = 0;
    let mut i = 0;
    while i < 10 {
        let Some(&byte) = input.get(i) else {
            return Err(Bad::Truncated);
        };
        value |= u64::from(byte & 0x7f) << (7 * i);
        i += 1;
        if byte < 0x80 {
            *input = input.get(i..).unwrap_or_default();
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(Bad::VarintTooLong)
}

/// An Avro int: a long that must fit 32 bits (as `apache-avro` requires).
#[inline]
fn int(input: &mut &[u8]) -> Result<i32, Bad> {
    i32::try_from(long(input)?).map_err(|_| Bad::IntRange)
}

/// Skips a varint: only the continuation bits matter.
#[inline(always)]
fn skip_varint(input: &mut &[u8]) -> Result<(), Bad> {
    if let Some((&first, rest)) = input.split_first() {
        if first < 0x80 {
            *input = rest;
            return Ok(());
        }
    }
    skip_varint_slow(input)
}

#[inline(never)]
fn skip_varint_slow(input: &mut &[u8]) -> Result<(), Bad> {
    // Eight bytes at once: the varint ends at the first byte without its high bit.
    if let Some(word) = input.first_chunk::<8>() {
        let ends = !u64::from_le_bytes(*word) & 0x8080_8080_8080_8080;
        if ends != 0 {
            let len = (ends.trailing_zeros() / 8 + 1) as usize;
            *input = input.get(len..).unwrap_or_default();
            return Ok(());
        }
    }
    let mut i = 0;
    while i < 10 {
        let Some(&byte) = input.get(i) else {
            return Err(Bad::Truncated);
        };
        i += 1;
        if byte < 0x80 {
            *input = input.get(i..).unwrap_or_default();
            return Ok(());
        }
    }
    Err(Bad::VarintTooLong)
}

#[inline(always)]
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Bad> {
    let (head, rest) = input.split_at_checked(n).ok_or(Bad::Truncated)?;
    *input = rest;
    Ok(head)
}

/// A string's or bytes' content: a long length, then that many bytes.
#[inline(always)]
fn bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], Bad> {
    let len = usize::try_from(long(input)?).map_err(|_| Bad::NegativeLength)?;
    take(input, len)
}

/// A string's bytes as text: checked, as a capture is `str`. Short strings (most of an
/// event's) through `utf8_chunks`, which walks them byte by byte and measured ~12
/// instructions cheaper per string than `from_utf8` (which first aligns for its
/// word-at-a-time loop); longer ones through `from_utf8`'s word-at-a-time loop.
#[inline]
fn utf8(bytes: &[u8]) -> Result<&str, Bad> {
    if bytes.len() > 32 {
        return std::str::from_utf8(bytes).map_err(|_| Bad::Utf8);
    }
    match bytes.utf8_chunks().next() {
        None => Ok(""),
        // A chunk stops at the first invalid sequence: none, so it is all of the bytes.
        Some(chunk) if chunk.invalid().is_empty() => Ok(chunk.valid()),
        Some(_) => Err(Bad::Utf8),
    }
}

#[inline(always)]
fn scalar<'a>(read: &'a Read, input: &mut &'a [u8]) -> Result<Captured<'a>, Bad> {
    Ok(match read {
        Read::Null => Captured::Null,
        Read::Bool => match take(input, 1)? {
            [0] => Captured::Bool(false),
            [1] => Captured::Bool(true),
            _ => return Err(Bad::Boolean),
        },
        Read::Int => Captured::Int(i64::from(int(input)?)),
        Read::Long => Captured::Int(long(input)?),
        Read::Float => {
            let mut le = [0; 4];
            le.copy_from_slice(take(input, 4)?);
            Captured::Float(f64::from(f32::from_le_bytes(le)))
        }
        Read::Double => {
            let mut le = [0; 8];
            le.copy_from_slice(take(input, 8)?);
            Captured::Float(f64::from_le_bytes(le))
        }
        Read::Str => Captured::Str(Cow::Borrowed(utf8(bytes(input)?)?)),
        Read::Enum(symbols) => {
            let symbol = usize::try_from(int(input)?)
                .ok()
                .and_then(|index| symbols.get(index))
                .ok_or(Bad::EnumIndex)?;
            Captured::Str(Cow::Borrowed(&**symbol))
        }
        Read::TimestampMillis => Captured::Millis(long(input)?),
        Read::TimestampMicros => Captured::Millis(long(input)?.div_euclid(1000)),
        Read::Date => {
            let millis = i64::from(int(input)?)
                .checked_mul(86_400_000)
                .ok_or(Bad::Date)?;
            Captured::Millis(millis)
        }
    })
}
