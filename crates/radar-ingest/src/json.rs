//! One pass over a JSON record that captures the mapped paths and skips the rest.
//!
//! A Segment call is ~750 bytes of which a mapping reads a tenth; building it (serde into
//! a borrowed struct measured ~14,300 instructions, `sonic-rs` ~14,200) costs more than
//! everything Radar then does with the event. The walk descends only into members some
//! path goes through, and reads those with radar-core's checking scanner
//! ([`radar_core::scan`]); a key is recognised by its bytes at its opening quote
//! ([`PathTrie::recognise`]) rather than scanned and looked up.
//!
//! Validation. The objects the walk goes through, and every value a path reads, are
//! checked token by token. The value of a member no path reads is skipped by its
//! structure only ([`skip`]): strings run to their closing quote with escapes honoured,
//! brackets must balance and match, and a number or literal outside a container is still
//! checked; what is not a string or a bracket inside a skipped container (`[1 2]`,
//! `{"a" 1,}`, `tru`), and a bad escape or a raw control character in a skipped string,
//! is not looked at. Why:
//! checking those token by token cost ~90 instructions a member, most of the budget
//! of ~4,000 a Segment call (`benches/ingest_instructions.rs`) on parts nothing reads
//! (`context.page`, `context.library`, `integrations`, ...). What is still refused: any
//! syntax error in what is read, in the objects walked, or in the shape of what is
//! skipped (a string left open, a bracket missing or not matching, trailing text), so
//! where one member ends and the next begins is never in doubt. The property tests hold
//! the captures of any valid object equal to serde_json's, and show that a text serde_json
//! refuses is accepted only where a member no path reads hides the refusal.
//!
//! Whatever the walk leaves to serde_json (an escape in a key or in a read string, deep
//! nesting, a number it cannot read exactly) makes it start over on serde_json's
//! `Value`: the same captures, and then every syntax error is serde_json's.

use std::borrow::Cow;

use radar_core::scan;
use serde_json::Value;

use crate::Malformed;
use crate::path::{Captured, Captures, NodeId, PathTrie, Recognised};

/// Captures the paths below `node` of the JSON object `text`.
pub fn capture<'a>(
    text: &'a str,
    trie: &PathTrie,
    node: NodeId,
    captures: &mut Captures<'a>,
) -> Result<(), Malformed> {
    capture_skipping(text, trie, node, captures, skip::value)
}

/// [`capture`], skipping the values of members no path reads with `skip` (the tests
/// also walk with radar-core's checking scanner, to show where a refusal lies).
fn capture_skipping<'a>(
    text: &'a str,
    trie: &PathTrie,
    node: NodeId,
    captures: &mut Captures<'a>,
    skip: impl Fn(&[u8], usize) -> Option<usize> + Copy,
) -> Result<(), Malformed> {
    let b = text.as_bytes();
    let start = scan::skip_ws(b, 0);
    let walked = walk_object(text, start, trie, node, captures, 0, skip)
        .filter(|end| scan::skip_ws(b, *end) == b.len());
    if walked.is_some() {
        return Ok(());
    }
    captures.clear();
    let value: Value = serde_json::from_str(text).map_err(|e| Malformed(e.to_string().into()))?;
    if !value.is_object() {
        return Err(Malformed::new("not a JSON object"));
    }
    capture_value(&value, trie, node, captures);
    Ok(())
}

/// Deeper than this, serde_json decides (it refuses past 128).
const MAX_DEPTH: u32 = 32;

/// The object at `at`, its mapped members captured: the index after it, or `None` for
/// serde_json to decide. Its own loop rather than [`scan::object`]'s so that a key is
/// looked up by its place in `text` ([`PathTrie::child_in`]), never sliced as a `str`.
fn walk_object<'a>(
    text: &'a str,
    at: usize,
    trie: &PathTrie,
    node: NodeId,
    captures: &mut Captures<'a>,
    depth: u32,
    skip: impl Fn(&[u8], usize) -> Option<usize> + Copy,
) -> Option<usize> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let b = text.as_bytes();
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut at = scan::skip_ws(b, at + 1);
    if b.get(at) == Some(&b'}') {
        return Some(at + 1);
    }
    loop {
        if b.get(at) != Some(&b'"') {
            return None;
        }
        // A key with an escape is serde_json's to read (`skip::plain_string` refuses it).
        let (child, key_end) = match trie.recognise(node, b, at) {
            Recognised::Child(child, end) => (Some(child), end),
            Recognised::NoChild => (None, key(b, at)?),
            Recognised::Unsure => {
                let end = key(b, at)?;
                (trie.child_in(node, b, at + 1, end - at - 2), end)
            }
        };
        let value_at = match b.get(key_end..key_end + 2) {
            Some([b':', c]) if *c > b' ' => key_end + 1,
            _ => scan::skip_ws(b, after(b, key_end, b':')?),
        };
        at = match child {
            None => skip(b, value_at)?,
            Some(child) => member(text, value_at, trie, child, captures, depth, skip)?,
        };
        // Compact JSON has no whitespace: the byte expected is looked at first.
        let (c, next) = match b.get(at) {
            Some(&c) if c == b',' || c == b'}' => (c, at + 1),
            _ => {
                let at = scan::skip_ws(b, at);
                match b.get(at) {
                    Some(&c) if c == b',' || c == b'}' => (c, at + 1),
                    _ => return None,
                }
            }
        };
        if c == b'}' {
            return Some(next);
        }
        at = match b.get(next) {
            Some(b'"') => next,
            _ => scan::skip_ws(b, next),
        };
    }
}

/// The index after the key whose opening quote is at `at`: a string with no escape.
#[inline(always)]
fn key(b: &[u8], at: usize) -> Option<usize> {
    skip::plain_string(b, at)
}

/// The index after `byte`, expected at `at` or after whitespace.
#[inline(always)]
fn after(b: &[u8], at: usize, byte: u8) -> Option<usize> {
    if b.get(at) == Some(&byte) {
        return Some(at + 1);
    }
    let at = scan::skip_ws(b, at);
    (b.get(at) == Some(&byte)).then_some(at + 1)
}

/// The value at `at` of a member some path reads (`child`): walked into, or captured.
#[inline(always)]
fn member<'a>(
    text: &'a str,
    at: usize,
    trie: &PathTrie,
    child: NodeId,
    captures: &mut Captures<'a>,
    depth: u32,
    skip: impl Fn(&[u8], usize) -> Option<usize> + Copy,
) -> Option<usize> {
    let b = text.as_bytes();
    if trie.has_children(child) && b.get(at) == Some(&b'{') {
        if let Some(slot) = trie.slot(child) {
            captures.set(slot, Captured::Other);
        }
        return walk_object(text, at, trie, child, captures, depth + 1, skip);
    }
    let (value, end) = scalar(text, at, depth)?;
    if let Some(slot) = trie.slot(child) {
        captures.set(slot, value);
    }
    Some(end)
}

/// The value at `at` as a capture (objects and arrays are [`Captured::Other`], checked
/// but not read), and the index after it.
fn scalar(text: &str, at: usize, depth: u32) -> Option<(Captured<'_>, usize)> {
    let b = text.as_bytes();
    Some(match *b.get(at)? {
        b'"' => {
            let end = skip::plain_string(b, at)?;
            (
                Captured::Str(Cow::Borrowed(text.get(at + 1..end - 1)?)),
                end,
            )
        }
        b'-' | b'0'..=b'9' => number(b, at)?,
        b't' => (Captured::Bool(true), scan::literal(b, at, b"true")?),
        b'f' => (Captured::Bool(false), scan::literal(b, at, b"false")?),
        b'n' => (Captured::Null, scan::literal(b, at, b"null")?),
        _ => (Captured::Other, scan::value(b, at, depth)?),
    })
}

/// A number as serde_json's `Value` holds it: an integer that fits `i64` is an `Int`,
/// any other an exactly read `Float`.
fn number(b: &[u8], at: usize) -> Option<(Captured<'static>, usize)> {
    let negative = b.get(at) == Some(&b'-');
    if let Some((magnitude, end)) = scan::unsigned(b, at + usize::from(negative)) {
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        // `-0` is the float -0.0 to serde_json.
        if let Some(value) = value.filter(|v| !(negative && *v == 0)) {
            return Some((Captured::Int(value), end));
        }
    }
    let (value, end) = scan::decimal(b, at)?;
    Some((Captured::Float(value), end))
}

/// [`walk_object`] over serde_json's `Value`.
fn capture_value<'a>(value: &Value, trie: &PathTrie, node: NodeId, captures: &mut Captures<'a>) {
    let Value::Object(members) = value else {
        return;
    };
    for (name, child) in trie.children(node) {
        let Some(member) = members.get(name) else {
            continue;
        };
        if let Some(slot) = trie.slot(child) {
            captures.set(slot, owned(member));
        }
        if trie.has_children(child) {
            capture_value(member, trie, child, captures);
        }
    }
}

/// A `Value` as a capture (owned: the `Value` goes when the walk ends).
pub(crate) fn owned(value: &Value) -> Captured<'static> {
    match value {
        Value::Null => Captured::Null,
        Value::Bool(b) => Captured::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Captured::Int(i),
            None => Captured::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Captured::Str(Cow::Owned(s.clone())),
        Value::Array(_) | Value::Object(_) => Captured::Other,
    }
}

mod skip;

#[cfg(test)]
mod tests;
