//! One pass over a JSON record that captures the mapped paths and skips the rest.
//!
//! A Segment call is ~850 bytes of which a mapping reads a tenth; building it (serde into
//! a borrowed struct measured ~14,300 instructions, `sonic-rs` ~14,200) costs more than
//! everything Radar then does with the event. The walk descends only into members some
//! path goes through and skips the others with radar-core's checking scanner
//! ([`radar_core::scan`]), which validates what it skips without building anything.
//! Whatever that scanner leaves to serde_json (an escape in a string, deep nesting, a
//! number it cannot read exactly) makes the walk start over on serde_json's `Value`:
//! the same captures, so a property test holds the two equal, and every syntax error is
//! serde_json's.

use std::borrow::Cow;

use radar_core::scan;
use serde_json::Value;

use crate::Malformed;
use crate::path::{Captured, Captures, NodeId, PathTrie};

/// Captures the paths below `node` of the JSON object `text`.
pub fn capture<'a>(
    text: &'a str,
    trie: &PathTrie,
    node: NodeId,
    captures: &mut Captures<'a>,
) -> Result<(), Malformed> {
    let b = text.as_bytes();
    let start = scan::skip_ws(b, 0);
    let walked = walk_object(text, start, trie, node, captures, 0)
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
/// serde_json to decide.
fn walk_object<'a>(
    text: &'a str,
    at: usize,
    trie: &PathTrie,
    node: NodeId,
    captures: &mut Captures<'a>,
    depth: u32,
) -> Option<usize> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let b = text.as_bytes();
    scan::object(text, at, |key, at| {
        let Some(child) = trie.child(node, key) else {
            return scan::value_inline(b, at);
        };
        if trie.has_children(child) && b.get(at) == Some(&b'{') {
            if let Some(slot) = trie.slot(child) {
                captures.set(slot, Captured::Other);
            }
            return walk_object(text, at, trie, child, captures, depth + 1);
        }
        let (value, end) = scalar(text, at, depth)?;
        if let Some(slot) = trie.slot(child) {
            captures.set(slot, value);
        }
        Some(end)
    })
}

/// The value at `at` as a capture (objects and arrays are [`Captured::Other`], checked
/// but not read), and the index after it.
fn scalar(text: &str, at: usize, depth: u32) -> Option<(Captured<'_>, usize)> {
    let b = text.as_bytes();
    Some(match *b.get(at)? {
        b'"' => {
            let (value, end) = scan::text_at(text, at)?;
            (Captured::Str(Cow::Borrowed(value)), end)
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

#[cfg(test)]
mod tests;
