//! The values of members no path reads, skipped by their structure only: strings to
//! their closing quote (escapes honoured), brackets balanced and matching. A number or
//! literal outside a container is still checked by [`radar_core::scan`]; inside a
//! skipped container, what is not a string or a bracket is passed over byte by byte.
//! See the module doc of [`crate::json`] for why, and for what is still refused.

use radar_core::scan;

/// Nesting deeper than this in a skipped value is serde_json's to judge. With the walk's
/// own limit (32), well under the 128 serde_json refuses past.
const MAX_DEPTH: u32 = 64;

/// The index after the value at `at`, or `None` when it is not one (or is too deep).
#[inline(always)]
pub(super) fn value(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at)? {
        b'"' => string(b, at),
        b'{' | b'[' => container(b, at),
        _ => scan::value_inline(b, at),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` below `n` (the lowest one flagged is always right).
#[inline(always)]
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
}

/// The high bit of each byte of `x` that is `"`, `\`, or (with `control`) below 0x20.
#[inline(always)]
fn specials(x: u64, control: bool) -> u64 {
    let quote = below(x ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(x ^ (ONES * u64::from(b'\\')), 1);
    if control {
        quote | backslash | below(x, 0x20)
    } else {
        quote | backslash
    }
}

/// A string at `at` (its opening quote) with no escape and no control character: the
/// index after its closing quote, or `None` (then serde_json decides), as radar-core's
/// `scan::text_at` reads it. (A first word checked here before that sixteen-byte scan
/// measured ~300 instructions a record more, not less.)
#[inline(always)]
pub(super) fn plain_string(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    scan::value_inline(b, at)
}

/// A string at `at` (its opening quote), by its structure: the index after its closing
/// quote, escapes honoured.
#[inline(always)]
fn string(b: &[u8], at: usize) -> Option<usize> {
    scan::value_inline(b, at).or_else(|| escaped_string(b, at))
}

/// A string with an escape or a control character: the first `"` or `\` found eight
/// bytes at a time; a `\` skips the byte after it.
#[cold]
fn escaped_string(b: &[u8], at: usize) -> Option<usize> {
    let mut at = at + 1;
    loop {
        let found = match b.get(at..at + 8).and_then(|s| s.first_chunk::<8>()) {
            Some(word) => {
                let hits = specials(u64::from_le_bytes(*word), false);
                if hits == 0 {
                    at += 8;
                    continue;
                }
                at + (hits.trailing_zeros() / 8) as usize
            }
            None => at + b.get(at..)?.iter().position(|&c| c == b'"' || c == b'\\')?,
        };
        if b[found] == b'"' {
            return Some(found + 1);
        }
        at = found + 2;
    }
}

/// An object or array at `at`: the index after its closing bracket. Which brackets are
/// open is kept as bits (1 for an object), so a `]` closing a `{` is refused.
fn container(b: &[u8], at: usize) -> Option<usize> {
    let mut open: u64 = 0;
    let mut depth = 0u32;
    let mut at = at;
    loop {
        match *b.get(at)? {
            b'"' => {
                at = string(b, at)?;
                continue;
            }
            c @ (b'{' | b'[') => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                open = (open << 1) | u64::from(c == b'{');
                depth += 1;
            }
            c @ (b'}' | b']') => {
                if (open & 1 == 1) != (c == b'}') {
                    return None;
                }
                open >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
}
