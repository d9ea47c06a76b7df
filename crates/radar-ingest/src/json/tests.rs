use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn trie(paths: &[&str]) -> PathTrie {
    let mut trie = PathTrie::default();
    for path in paths {
        trie.insert(path).unwrap();
    }
    trie
}

fn captured<'a>(text: &'a str, trie: &PathTrie) -> Result<Vec<Option<Captured<'a>>>, Malformed> {
    let mut captures = Captures::new(trie.len());
    capture(text, trie, PathTrie::ROOT, &mut captures)?;
    Ok((0..trie.len())
        .map(|slot| captures.get(slot as u16).cloned())
        .collect())
}

/// The reference: the same paths looked up in serde_json's `Value`.
fn reference(value: &Value, trie: &PathTrie) -> Vec<Option<Captured<'static>>> {
    let mut captures = Captures::new(trie.len());
    capture_value(value, trie, PathTrie::ROOT, &mut captures);
    (0..trie.len())
        .map(|slot| captures.get(slot as u16).cloned())
        .collect()
}

#[test]
fn a_segment_track_call_gives_its_mapped_paths_and_skips_the_rest() {
    let text = r#"{"anonymousId":null,"context":{"groupId":"acme","library":{"name":"analytics-python","version":"2.3.3"},"ip":"10.0.0.1"},"event":"Seat Limit Near","messageId":"m1","properties":{"seatCount":46,"seatLimit":"50","ratio":0.92,"tags":["a","b"]},"timestamp":"2026-03-10T10:00:00.120+00:00","type":"track","userId":"u42"}"#;
    let trie = trie(&[
        "messageId",
        "event",
        "context.groupId",
        "groupId",
        "anonymousId",
        "properties.seatCount",
        "properties.seatLimit",
        "properties.ratio",
        "properties.tags",
        "context",
    ]);
    let got = captured(text, &trie).unwrap();
    assert_eq!(
        got,
        vec![
            Some(Captured::Str("m1".into())),
            Some(Captured::Str("Seat Limit Near".into())),
            Some(Captured::Str("acme".into())),
            None,
            Some(Captured::Null),
            Some(Captured::Int(46)),
            Some(Captured::Str("50".into())),
            Some(Captured::Float(0.92)),
            Some(Captured::Other),
            Some(Captured::Other),
        ]
    );
    // Strings were borrowed from the record, not copied.
    assert!(matches!(&got[0], Some(Captured::Str(Cow::Borrowed(_)))));
}

#[test]
fn escapes_and_exponents_are_read_through_serde_json() {
    let text = r#"{"a":"caf\u00e9 \"x\"","b":{"c":1e3},"d":-0}"#;
    let trie = trie(&["a", "b.c", "d"]);
    assert_eq!(
        captured(text, &trie).unwrap(),
        vec![
            Some(Captured::Str("café \"x\"".into())),
            Some(Captured::Float(1000.0)),
            Some(Captured::Float(-0.0)),
        ]
    );
}

#[test]
fn what_is_not_a_json_object_is_malformed() {
    let trie = trie(&["a"]);
    for text in [
        "",
        "[1]",
        "\"a\"",
        "{\"a\":1",
        "{\"a\":1} x",
        "{\"b\":tru}",
        "\u{1}",
        // Long enough for a key to be recognised by its bytes: still a quote first.
        "{x\"a\":1,\"padding\":\"................\"}",
        "{\"a\":1,x\"a\":1,\"padding\":\"................\"}",
    ] {
        assert!(captured(text, &trie).is_err(), "{text:?} was accepted");
    }
    // A syntax error in a member no path reads is still an error.
    assert!(captured(r#"{"a":1,"b":[1,}"#, &trie).is_err());
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z é\"\\\\\n]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[abc]{1,2}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[abc]{1,2}", json_value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #[test]
    fn the_walk_captures_what_serde_json_values_hold(value in object(), pretty in any::<bool>()) {
        let trie = trie(&["a", "b", "a.b", "a.c", "b.a.c", "c.c", "ab", "ab.a"]);
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        // As serde_json reads the text back (floats of 16+ digits may differ from
        // `value`'s in the last place).
        let read: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(captured(&text, &trie).unwrap(), reference(&read, &trie));
    }

    #[test]
    fn any_text_is_captured_as_serde_json_reads_it_or_refused_where_no_path_reads(text in "[{}\\[\\]\":,a-c0-9 .e\\\\-]{0,40}") {
        let trie = trie(&["a", "a.b", "b"]);
        let walked = captured(&text, &trie);
        // The same walk, checking token by token every member it skips.
        let checked = {
            let mut captures = Captures::new(trie.len());
            let skip = |b: &[u8], at: usize| scan::value(b, at, 0);
            capture_skipping(&text, &trie, PathTrie::ROOT, &mut captures, skip).is_ok()
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(value) if value.is_object() => {
                prop_assert!(checked);
                prop_assert_eq!(walked.unwrap(), reference(&value, &trie));
            }
            _ => {
                // Checked, every refusal is serde_json's; skipped by structure, only a
                // member no path reads may hide one.
                prop_assert!(!checked);
                if walked.is_ok() {
                    prop_assert!(skipped_a_refusal(&text, &trie));
                }
            }
        }
    }
}

/// Whether the walk accepts `text` and skips, by structure, a member whose value
/// radar-core's checking scanner refuses (or reads to another end).
fn skipped_a_refusal(text: &str, trie: &PathTrie) -> bool {
    use std::cell::Cell;
    let found = Cell::new(false);
    let skip = |b: &[u8], at: usize| {
        let end = skip::value(b, at)?;
        if scan::value(b, at, 0) != Some(end) {
            found.set(true);
        }
        Some(end)
    };
    let mut captures = Captures::new(trie.len());
    capture_skipping(text, trie, PathTrie::ROOT, &mut captures, skip).is_ok() && found.get()
}

#[test]
fn members_no_path_reads_are_skipped_by_their_structure() {
    let trie = trie(&["a", "c.d"]);
    // Accepted: inside a member no path reads, what is not a string or a bracket.
    for text in [
        r#"{"a":1,"b":[1 2]}"#,
        r#"{"a":1,"b":{"x" 1,,}}"#,
        r#"{"a":1,"b":[tru, nul]}"#,
        "{\"a\":1,\"b\":{\"s\":\"\\q\",\"t\":\"\u{1}\"}}",
        r#"{"a":1,"c":{"d":2,"e":[-]}}"#,
        "{\"a\":1,\"b\":\"\\q\u{1}\"}",
    ] {
        assert!(captured(text, &trie).is_ok(), "{text:?} was refused");
        assert!(serde_json::from_str::<Value>(text).is_err());
    }
    // Refused: whatever a path reads; everywhere, a string left open (an escaped quote
    // does not close it) or a bracket missing or not matching; a skipped scalar.
    for text in [
        r#"{"a":tru}"#,
        r#"{"a":1,"b":"x}"#,
        r#"{"a":1,"b":"x\"}"#,
        r#"{"a":1,"b":[1,}"#,
        r#"{"a":1,"b":{"x":[}]}"#,
        r#"{"a":1,"b":[[1]}"#,
        r#"{"a":1,"b":-}"#,
        r#"{"a":1,"b":tru}"#,
        r#"{"a":1 "b":2}"#,
        r#"{"a":1,"c":{"d":2 "e":3}}"#,
        r#"{"a":1,"c":{"d":[1 2]}}"#,
    ] {
        assert!(captured(text, &trie).is_err(), "{text:?} was accepted");
    }
}
