//! The fast path of event decoding: a scanner for the envelope as nearly every producer
//! writes it — one flat object whose strings have no escapes — that reads the fields
//! Radar needs in one pass, borrowing them from the line, and checks the rest is valid
//! JSON without building anything. Whatever it does not recognise (an escape, a
//! duplicate field, a field of the wrong type, a syntax error, deep nesting) makes it
//! answer `None`, and serde_json decodes the line instead: so every rejection, with its
//! reason and message, still comes from serde_json, and a line the scanner accepts gives
//! exactly what serde_json gives (a property test compares them on generated lines; the
//! `decode` fuzz target runs the scanner on arbitrary bytes).

/// The envelope's fields, as [`scan`] found them: borrowed string values, and the
/// properties object's raw text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub event_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub received_at: Option<&'a str>,
    pub properties: Option<&'a str>,
    /// Where the known properties are in `properties`, found while checking it (see
    /// `crate::event::locate_properties`).
    pub known: Option<crate::event::Known>,
}

/// Nesting deeper than this goes to serde_json (which refuses past 128).
const MAX_DEPTH: u32 = 32;

/// Scans `text` (valid UTF-8, a whole line); `None` when serde_json is to decide.
#[inline]
pub(crate) fn scan(text: &str) -> Option<Envelope<'_>> {
    documented_order(text).or_else(|| any_order(text))
}

/// The envelope as docs/design.md#event-model lists its fields and as a producer serialising a struct
/// declared that way writes it: compact, `event_id`, `type`, `account_id` and `timestamp`
/// in that order, then `user_id`, `received_at` and `properties` in that order when
/// present. Each key is then compared as a constant where [`any_order`] scans it and
/// looks it up (~45 instructions less a member). Anything else answers `None` at its
/// first difference, and [`any_order`] reads the line; whatever this accepts, it reads as
/// [`any_order`] does (a property test compares them).
#[inline]
fn documented_order<'a>(text: &'a str) -> Option<Envelope<'a>> {
    let b = text.as_bytes();
    let mut envelope = Envelope::default();
    let mut at = literal(b, 0, b"{\"event_id\":")?;
    let string = |slot: &mut Option<&'a str>, at: usize| {
        let (value, end) = text_at(text, at)?;
        *slot = Some(value);
        Some(end)
    };
    at = string(&mut envelope.event_id, at)?;
    at = string(&mut envelope.event_type, literal(b, at, b",\"type\":")?)?;
    at = string(
        &mut envelope.account_id,
        literal(b, at, b",\"account_id\":")?,
    )?;
    at = string(&mut envelope.timestamp, literal(b, at, b",\"timestamp\":")?)?;
    if let Some(value) = literal(b, at, b",\"user_id\":") {
        at = string(&mut envelope.user_id, value)?;
    }
    if let Some(value) = literal(b, at, b",\"received_at\":") {
        at = string(&mut envelope.received_at, value)?;
    }
    if let Some(value) = literal(b, at, b",\"properties\":{") {
        let value = value - 1;
        let (known, end) = crate::event::locate_properties(text, value)?;
        envelope.known = Some(known);
        envelope.properties = Some(text.get(value..end)?);
        at = end;
    }
    at = literal(b, at, b"}")?;
    (skip_ws(b, at) == b.len()).then_some(envelope)
}

/// The envelope with its members in any order, whitespace anywhere JSON allows it.
fn any_order(text: &str) -> Option<Envelope<'_>> {
    let b = text.as_bytes();
    let mut envelope = Envelope::default();
    let end = object(text, skip_ws(b, 0), |key, at| {
        let slot = match key {
            "event_id" => &mut envelope.event_id,
            "type" => &mut envelope.event_type,
            "account_id" => &mut envelope.account_id,
            "timestamp" => &mut envelope.timestamp,
            "user_id" => &mut envelope.user_id,
            "received_at" => &mut envelope.received_at,
            "properties" => {
                if envelope.properties.is_some() || b.get(at) != Some(&b'{') {
                    return None;
                }
                let end = match crate::event::locate_properties(text, at) {
                    Some((known, end)) => {
                        envelope.known = Some(known);
                        end
                    }
                    None => value(b, at, 0)?,
                };
                envelope.properties = Some(text.get(at..end)?);
                return Some(end);
            }
            _ => return value_inline(b, at),
        };
        // A string, once; `null`, a number or a repeat is serde's to judge.
        if slot.is_some() {
            return None;
        }
        let (value, end) = text_at(text, at)?;
        *slot = Some(value);
        Some(end)
    })?;
    (skip_ws(b, end) == b.len()).then_some(envelope)
}

/// An object starting at `at` (its `{`): `member` is given each key (with no escape)
/// and where its value starts, and answers where the value ends, or `None` to give up.
/// The index after the closing `}`.
pub fn object<'a>(
    text: &'a str,
    at: usize,
    mut member: impl FnMut(&'a str, usize) -> Option<usize>,
) -> Option<usize> {
    let unrecognised = |_: &[u8], _: usize| None::<(std::convert::Infallible, usize)>;
    object_recognising(text, at, unrecognised, |key, at| match key {
        Key::Text(key) => member(key, at),
        Key::Known(never) => match never {},
    })
}

/// A member's key, as [`object_recognising`] gives it.
pub(crate) enum Key<'a, K> {
    /// Recognised where it starts, without being scanned.
    Known(K),
    /// Scanned: its text (with no escape).
    Text(&'a str),
}

/// [`object`], where each key is first offered to `recognise` at its opening quote: it
/// may know it by its bytes there (answering what it is and the index after its colon),
/// which saves scanning the key for its end and looking the text up; a key it does not
/// know is scanned and given as text.
#[inline]
pub(crate) fn object_recognising<'a, K>(
    text: &'a str,
    at: usize,
    mut recognise: impl FnMut(&[u8], usize) -> Option<(K, usize)>,
    mut member: impl FnMut(Key<'a, K>, usize) -> Option<usize>,
) -> Option<usize> {
    let b = text.as_bytes();
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut at = skip_ws(b, at + 1);
    if b.get(at) == Some(&b'}') {
        return Some(at + 1);
    }
    // Whitespace is looked for where the byte expected is not: compact JSON has none.
    loop {
        let (key, value_at) = match recognise(b, at) {
            Some((known, value_at)) => (Key::Known(known), value_at),
            None => {
                let (key, next) = text_at(text, at)?;
                (Key::Text(key), after(b, next, b':')?)
            }
        };
        at = member(key, skip_ws(b, value_at))?;
        match closing(b, at, b'}')? {
            (b',', next) => at = skip_ws(b, next),
            (_, end) => return Some(end),
        }
    }
}

/// The `,` or `close` after a member or an item, at `at` or after whitespace, and the
/// index after it.
#[inline(always)]
fn closing(b: &[u8], at: usize, close: u8) -> Option<(u8, usize)> {
    match b.get(at) {
        Some(&c) if c == b',' || c == close => Some((c, at + 1)),
        _ => {
            let at = skip_ws(b, at);
            b.get(at)
                .filter(|&&c| c == b',' || c == close)
                .map(|&c| (c, at + 1))
        }
    }
}

/// The index after `byte`, expected at `at` or after whitespace.
#[inline(always)]
fn after(b: &[u8], at: usize, byte: u8) -> Option<usize> {
    if b.get(at) == Some(&byte) {
        return Some(at + 1);
    }
    let at = skip_ws(b, at);
    (b.get(at) == Some(&byte)).then_some(at + 1)
}

/// A string with no escape at `at`, borrowed from `text`, and the index after it.
#[inline(always)]
pub fn text_at(text: &str, at: usize) -> Option<(&str, usize)> {
    let (contents, end) = string(text.as_bytes(), at)?;
    Some((text.get(at + 1..at + 1 + contents.len())?, end))
}

/// A non-negative integer at `at` written as JSON writes one (no sign, no fraction, no
/// exponent, no leading zero), and the index after it; `None` for anything else,
/// including a value past `u64`.
pub fn unsigned(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    let mut end = at;
    while let Some(d) = b.get(end).map(|c| c.wrapping_sub(b'0')).filter(|d| *d < 10) {
        value = value.checked_mul(10)?.checked_add(u64::from(d))?;
        end += 1;
    }
    if end == at
        || (end > at + 1 && b[at] == b'0')
        || matches!(b.get(end), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    Some((value, end))
}

/// Powers of ten up to 10¹⁵, all exactly representable as `f64`.
const POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A number at `at` whose value serde_json computes exactly as this does — at most 15
/// digits, no exponent: the digits as an integer, divided once by an exactly
/// representable power of ten — and the index after it; `None` for any other.
pub fn decimal(b: &[u8], at: usize) -> Option<(f64, usize)> {
    let negative = b.get(at) == Some(&b'-');
    let start = at + usize::from(negative);
    let (whole_value, whole_end) = digits_onto(0, b, start);
    let whole = whole_end - start;
    // JSON's grammar: at least one digit, no leading zero.
    if whole == 0 || (whole > 1 && b[start] == b'0') {
        return None;
    }
    let point = b.get(whole_end) == Some(&b'.');
    let (significand, end) = if point {
        digits_onto(whole_value, b, whole_end + 1)
    } else {
        (whole_value, whole_end)
    };
    let fraction = end - whole_end - usize::from(point);
    if (point && fraction == 0) || matches!(b.get(end), Some(b'e' | b'E')) || whole + fraction > 15
    {
        return None;
    }
    // `-0` is left to serde_json (which reads it as the float -0.0): rare, not worth a case.
    if negative && fraction == 0 && significand == 0 {
        return None;
    }
    let value = significand as f64 / POWERS_OF_TEN[fraction];
    Some((if negative { -value } else { value }, end))
}

/// The ASCII digits from `at` appended to `value` (wrapping past `u64`: callers refuse
/// that many digits), and the index after them.
#[inline(always)]
fn digits_onto(mut value: u64, b: &[u8], mut at: usize) -> (u64, usize) {
    while let Some(digit) = b.get(at).map(|c| c.wrapping_sub(b'0')).filter(|d| *d < 10) {
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        at += 1;
    }
    (value, at)
}

/// The index after the ASCII digits from `at`.
#[inline(always)]
fn digits_end(b: &[u8], mut at: usize) -> usize {
    while b.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

#[inline(always)]
pub fn skip_ws(b: &[u8], mut at: usize) -> usize {
    // Compact JSON has no whitespace: one comparison settles the usual case.
    while let Some(&c) = b.get(at) {
        if c > b' ' || !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        at += 1;
    }
    at
}

/// A string starting at `at` (its opening quote) with no escape and no control
/// character: its contents and the index after its closing quote.
#[inline(always)]
fn string(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let rest = b.get(start..)?;
    let len = special(rest)?;
    (rest[len] == b'"').then(|| (&rest[..len], start + len + 1))
}

/// The index of the first `"`, `\` or control character in `s`: sixteen bytes at a
/// time with SSE2 (baseline on x86-64), then eight at a time with the classic "has a zero
/// byte" bit trick (the lowest flagged byte is always right), then one by one.
#[inline(always)]
pub(crate) fn special(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let mut at = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = s.get(at..).and_then(|rest| rest.first_chunk::<16>()) {
        // SAFETY: compiled only where SSE2 is enabled for the target (the x86-64
        // baseline), so the CPU has it.
        #[allow(unsafe_code)]
        if let Some(i) = unsafe { special16(block) } {
            return Some(at + i);
        }
        at += 16;
    }
    while let Some(&word) = s.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        let x = u64::from_le_bytes(word);
        let found = below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | below(x, 0x20);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s.get(at..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// [`special`] within one block of sixteen bytes, in SSE2 registers.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
#[inline]
fn special16(block: &[u8; 16]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let (low, high) = block.split_at(8);
    let half = |h: &[u8]| i64::from_le_bytes(h.try_into().unwrap_or_default());
    let x = _mm_set_epi64x(half(high), half(low));
    let byte = |c: u8| _mm_set1_epi8(c as i8);
    let quote = _mm_cmpeq_epi8(x, byte(b'"'));
    let backslash = _mm_cmpeq_epi8(x, byte(b'\\'));
    // Unsigned `x <= 0x1f`: the larger of the two is 0x1f.
    let control = _mm_cmpeq_epi8(_mm_max_epu8(x, byte(0x1f)), byte(0x1f));
    let mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control));
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// [`value`], with strings and numbers, the usual values, checked in line rather than
/// through a call.
#[inline(always)]
pub fn value_inline(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at)? {
        b'"' => string(b, at).map(|(_, end)| end),
        b'-' | b'0'..=b'9' => number(b, at),
        _ => value(b, at, 0),
    }
}

/// Any JSON value starting at `at`, checked: the index after it.
pub fn value(b: &[u8], at: usize, depth: u32) -> Option<usize> {
    match *b.get(at)? {
        b'"' => string(b, at).map(|(_, end)| end),
        b'{' => container(b, at, depth, b'}', true),
        b'[' => container(b, at, depth, b']', false),
        b't' => literal(b, at, b"true"),
        b'f' => literal(b, at, b"false"),
        b'n' => literal(b, at, b"null"),
        b'-' | b'0'..=b'9' => number(b, at),
        _ => None,
    }
}

pub fn literal(b: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    (b.get(at..at + word.len())? == word).then_some(at + word.len())
}

/// An object (`keyed`) or array from `at`, its members checked: the index after it.
fn container(b: &[u8], at: usize, depth: u32, close: u8, keyed: bool) -> Option<usize> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let mut at = skip_ws(b, at + 1);
    if b.get(at) == Some(&close) {
        return Some(at + 1);
    }
    loop {
        if keyed {
            at = skip_ws(b, after(b, string(b, at)?.1, b':')?);
        }
        at = value(b, at, depth + 1)?;
        match closing(b, at, close)? {
            (b',', next) => at = skip_ws(b, next),
            (_, end) => return Some(end),
        }
    }
}

/// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number(b: &[u8], mut at: usize) -> Option<usize> {
    if b.get(at) == Some(&b'-') {
        at += 1;
    }
    match b.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits_end(b, at),
        _ => return None,
    }
    if b.get(at) == Some(&b'.') {
        let end = digits_end(b, at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if let Some(b'e' | b'E') = b.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = b.get(at) {
            at += 1;
        }
        let end = digits_end(b, at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

#[cfg(test)]
mod tests;
