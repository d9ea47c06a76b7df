//! The decoding of events: what is refused and why, the scanner agreeing with serde_json.

use super::known::{known_index, known_key};
use super::*;
use crate::time::HOUR;

/// The known properties' names.
const PROPERTY_NAMES: [&str; 15] = [
    "seats_used",
    "seat_limit",
    "api_calls",
    "api_limit",
    "plan",
    "arr",
    "contract_end",
    "customer_since",
    "active_users_1d",
    "active_users_30d",
    "api_calls_period",
    "features_adopted",
    "health_score",
    "churn_risk",
    "score",
];

/// The reason a line is refused, by the envelope check or by its properties.
fn reason(line: &str) -> RejectReason {
    match decode(line.as_bytes(), None, HOUR) {
        Err(rejection) => rejection.reason,
        Ok(event) => event.properties().unwrap_err().reason,
    }
}

const OK: &str = r#"{"event_id":"e1","type":"feature_limit_hit","account_id":"acme","timestamp":"2026-03-01T00:00:00Z","properties":{"feature":"sso","limit":3,"extra":{"x":[1]}}}"#;

#[test]
fn decodes_and_borrows() {
    let event = decode(OK.as_bytes(), None, HOUR).unwrap();
    assert_eq!(event.event_id, "e1");
    assert!(matches!(event.account_id, Cow::Borrowed(_)));
    assert_eq!(event.event_type, "feature_limit_hit");
    assert_eq!(
        event.timestamp,
        parse_rfc3339("2026-03-01T00:00:00Z").unwrap()
    );
}

#[test]
fn escaped_strings_are_decoded() {
    let line = r#"{"event_id":"e\"1","type":"user_login","account_id":"a\u00e9","timestamp":"2026-03-01T00:00:00Z"}"#;
    let event = decode(line.as_bytes(), None, HOUR).unwrap();
    assert_eq!(event.event_id, "e\"1");
    assert_eq!(event.account_id, "aé");
}

#[test]
fn every_rejection_has_its_reason() {
    assert_eq!(reason("{not json"), RejectReason::InvalidJson);
    assert_eq!(reason(""), RejectReason::InvalidJson);
    assert_eq!(
        reason(r#"{"type":"x"} trailing"#),
        RejectReason::InvalidJson
    );
    assert_eq!(
        reason(r#"{"type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#),
        RejectReason::MissingField
    );
    assert_eq!(
        reason(
            r#"{"event_id":"","type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#
        ),
        RejectReason::MissingField
    );
    assert_eq!(
        reason(
            r#"{"event_id":7,"type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#
        ),
        RejectReason::WrongType
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"usage_snapshot","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"seats_used":"9"}}"#
        ),
        RejectReason::WrongType
    );
    let long = "x".repeat(MAX_ID_LEN + 1);
    assert_eq!(
        reason(&format!(
            r#"{{"event_id":"e","type":"user_login","account_id":"{long}","timestamp":"2026-03-01T00:00:00Z"}}"#
        )),
        RejectReason::FieldTooLong
    );
    assert_eq!(
        reason(r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"March 1st"}"#),
        RejectReason::BadTimestamp
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"2026-03-01T02:00:01Z","received_at":"2026-03-01T01:00:00Z"}"#
        ),
        RejectReason::TooFarInFuture
    );
    assert_eq!(
        reason(
            r#"{"event_id":"e","type":"health_updated","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"health_score":101}}"#
        ),
        RejectReason::OutOfRange
    );
}

#[test]
fn invalid_utf8_is_refused_saying_where() {
    let mut bytes = OK.as_bytes().to_vec();
    let at = OK.find("acme").unwrap();
    bytes[at] = 0xff;
    let rejection = decode(&bytes, None, HOUR).unwrap_err();
    assert_eq!(rejection.reason, RejectReason::InvalidJson);
    assert!(
        rejection.detail.contains(&format!(
            "invalid utf-8 sequence of 1 bytes from index {at}"
        )),
        "{}",
        rejection.detail
    );
}

proptest::proptest! {
    /// Whatever the bytes, decoding answers (an event or a reason) and never panics.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = decode(&bytes, Some(0), HOUR);
    }

    /// Corrupting a valid event anywhere still gets an answer, never a panic.
    #[test]
    fn mutated_events_never_panic(at in 0usize..OK.len(), byte in proptest::prelude::any::<u8>(), cut in 0usize..OK.len()) {
        let mut bytes = OK.as_bytes().to_vec();
        bytes[at] = byte;
        let _ = decode(&bytes, None, HOUR);
        let _ = decode(&OK.as_bytes()[..cut], None, HOUR);
    }
}

#[test]
fn properties_are_judged_only_when_read() {
    // Envelope fine, properties of the wrong shape: decoding succeeds, reading fails.
    let line = r#"{"event_id":"e","type":"page_viewed","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"score":42,"plan":3}}"#;
    let event = decode(line.as_bytes(), None, HOUR).unwrap();
    assert_eq!(
        event.properties().unwrap_err().reason,
        RejectReason::WrongType
    );
    let negative = r#"{"event_id":"e","type":"usage_snapshot","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"seats_used":-1}}"#;
    assert_eq!(reason(negative), RejectReason::OutOfRange);
    let not_object = r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":[1]}"#;
    assert_eq!(reason(not_object), RejectReason::WrongType);
}

/// Every known name is recognised where it starts, as [`known_index`] places it, and
/// nothing else is: not a longer or shorter name, not one with a space before its colon.
#[test]
fn known_keys_are_recognised_as_known_index_places_them() {
    for name in PROPERTY_NAMES {
        let index = known_index(name).unwrap();
        let text = format!("\"{name}\":1");
        assert_eq!(known_key(text.as_bytes(), 0), Some((index, text.len() - 1)));
        for other in [format!("\"{name}s\":1"), format!("\"{name}\" :1")] {
            assert_eq!(known_key(other.as_bytes(), 0), None, "{other}");
        }
        let shorter = &name[..name.len() - 1];
        let text = format!("\"{shorter}\":1");
        assert_eq!(
            known_key(text.as_bytes(), 0),
            known_index(shorter).map(|i| (i, text.len() - 1))
        );
    }
    assert_eq!(
        (0..15)
            .map(|i| PROPERTY_NAMES
                .iter()
                .filter(|n| known_index(n) == Some(i))
                .count())
            .collect::<Vec<_>>(),
        vec![1; 15],
        "one name per place"
    );
}

#[test]
fn a_known_property_far_into_the_object_is_still_read() {
    // Beyond the 16-bit offsets of `Known`: serde_json reads it instead.
    let padding = "x".repeat(70_000);
    let line = format!(
        r#"{{"event_id":"e","type":"usage_snapshot","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{{"note":"{padding}","seats_used":9,"seat_limit":10}}}}"#
    );
    let event = decode(line.as_bytes(), None, HOUR).unwrap();
    assert!(matches!(event.properties, PropertiesFrom::Json(_, None)));
    let properties = event.properties().unwrap();
    assert_eq!(properties.seats_used, Some(9));
    assert_eq!(properties.seat_limit, Some(10));
}

#[test]
fn record_time_wins_over_received_at() {
    let line = r#"{"event_id":"e","type":"user_login","account_id":"a","timestamp":"2026-03-01T02:00:00Z","received_at":"2026-03-01T00:00:00Z"}"#;
    let record = parse_rfc3339("2026-03-01T01:30:00Z");
    assert!(decode(line.as_bytes(), record, HOUR).is_ok());
    assert_eq!(
        decode(line.as_bytes(), None, HOUR).unwrap_err().reason,
        RejectReason::TooFarInFuture
    );
}

#[test]
fn contract_dates_accept_plain_dates() {
    let line = r#"{"event_id":"e","type":"entitlement_updated","account_id":"a","timestamp":"2026-03-01T00:00:00Z","properties":{"contract_end":"2026-06-01","plan":"growth"}}"#;
    let event = decode(line.as_bytes(), None, HOUR).unwrap();
    assert_eq!(
        event.properties().unwrap().contract_end,
        parse_rfc3339("2026-06-01T00:00:00Z")
    );
    assert_eq!(event.properties().unwrap().plan.as_deref(), Some("growth"));
}

mod scanner {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    /// JSON-ish text: valid values mostly, with escapes, control characters, bad
    /// numbers and bad literals among them.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            12 => "\"[a-zé0-9 _:.-]{0,12}\"",
            1 => "\"[a-z]{0,3}(\\\\[\"nt/u]|\\\\u00e9|\t)?[a-z]{0,3}\"",
            6 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
            1 => "[-0-9.eE+]{1,5}",
            2 => Just("true".to_owned()),
            2 => Just("false".to_owned()),
            2 => Just("null".to_owned()),
            1 => Just("tru".to_owned()),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(("[a-z_]{1,6}", inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// A member: an envelope field with (mostly) a string, `properties` with (mostly) an
    /// object, or another key with any value; now and then an escaped key.
    fn member() -> impl Strategy<Value = (String, String)> {
        let known = prop_oneof![
            Just("event_id"),
            Just("type"),
            Just("account_id"),
            Just("timestamp"),
            Just("user_id"),
            Just("received_at"),
        ];
        let text = "\"[a-zA-Z0-9 _:.-]{0,16}\"";
        let object = proptest::collection::vec(("[a-z_]{1,6}", value()), 0..4).prop_map(|m| {
            let m: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", m.join(","))
        });
        prop_oneof![
            6 => (known.clone(), text).prop_map(|(k, v)| (k.to_owned(), v)),
            1 => (known, value()).prop_map(|(k, v)| (k.to_owned(), v)),
            3 => object.prop_map(|v| ("properties".to_owned(), v)),
            3 => properties_object().prop_map(|v| ("properties".to_owned(), v)),
            1 => value().prop_map(|v| ("properties".to_owned(), v)),
            4 => ("[a-z_]{1,8}", value()),
            1 => value().prop_map(|v| ("event\\u005fid".to_owned(), v)),
        ]
    }

    /// An envelope-like object, sometimes cut short or followed by junk.
    fn line() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec((member(), "[ \t]{0,2}"), 0..6),
            0usize..10,
            any::<prop::sample::Index>(),
            prop_oneof![8 => Just(String::new()), 1 => Just(" ".to_owned()), 1 => Just("x".to_owned())],
        )
            .prop_map(|(members, cut, at, tail)| {
                let members: Vec<String> = members
                    .iter()
                    .map(|((k, v), ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                    .collect();
                let mut text = format!("{{{}}}{tail}", members.join(","));
                if cut == 0 {
                    let at = at.index(text.len() + 1);
                    while !text.is_char_boundary(at.min(text.len())) {
                        text.pop();
                    }
                    text.truncate(at.min(text.len()));
                }
                text
            })
    }

    type Fields = Vec<Option<String>>;

    fn fields(raw: RawEvent<'_>) -> Fields {
        let text = |t: Option<Text<'_>>| t.map(|t| t.0.into_owned());
        vec![
            text(raw.event_id),
            text(raw.event_type),
            text(raw.account_id),
            text(raw.timestamp),
            text(raw.user_id),
            text(raw.received_at),
            raw.properties.map(|p| p.0.to_owned()),
        ]
    }

    /// Whatever the scanner accepts, serde_json accepts with the same fields: the fast
    /// path never changes what an event decodes to, or whether it is refused. Drawn
    /// by hand from the strategy so the test also checks that a good share of the
    /// lines reach the comparison.
    #[test]
    fn the_scanner_agrees_with_serde_json_whenever_it_answers() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = line();
        let (mut answered, mut read, draws) = (0, 0, 4_000);
        for _ in 0..draws {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            if let Some(mut envelope) = crate::scan::scan(&text) {
                answered += 1;
                let serde = serde_json::from_str::<RawEvent<'_>>(&text)
                    .unwrap_or_else(|e| panic!("serde refuses what the scanner took: {text}: {e}"));
                // Known properties read on the way are those serde reads from the
                // properties' text.
                if let (Some(known), Some(json)) = (envelope.known.take(), &serde.properties)
                    && let Some(fast) = read_known(json.0, &known)
                {
                    read += 1;
                    let by_serde = serde_json::from_str::<RawProperties<'_>>(json.0)
                        .unwrap_or_else(|e| panic!("serde refuses what was read: {text}: {e}"));
                    assert_eq!(properties(&fast), properties(&by_serde), "{text}");
                }
                assert_eq!(fields(RawEvent::from(envelope)), fields(serde), "{text}");
            }
        }
        assert!(
            answered * 5 > draws,
            "only {answered} of {draws} lines reached the comparison"
        );
        assert!(
            read * 20 > draws,
            "only {read} of {draws} lines had their known properties read"
        );
    }

    /// A properties object: known and other names, values of every kind and range.
    fn properties_object() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            6 => proptest::sample::select(PROPERTY_NAMES.to_vec()).prop_map(str::to_owned),
            1 => "[a-z_]{1,8}",
        ];
        let number = prop_oneof![
            4 => "(0|[1-9][0-9]{0,9})",
            1 => "[1-9][0-9]{10,21}",
            1 => "-(0|[1-9][0-9]{0,3})",
            3 => "-?(0|[1-9][0-9]{0,8})\\.[0-9]{1,8}",
            1 => "-?[1-9]\\.[0-9]{1,3}[eE][+-]?[0-9]{1,3}",
            1 => "[0-9]{16,18}\\.[0-9]{1,4}",
        ];
        let member_value = prop_oneof![
            6 => number,
            2 => "\"[a-z0-9:T-]{0,24}\"",
            1 => Just("\"2026-03-01T00:00:00Z\"".to_owned()),
            1 => Just("true".to_owned()),
            1 => Just("false".to_owned()),
            1 => Just("null".to_owned()),
            1 => value(),
        ];
        // Whitespace, sometimes, around each key, colon and value: a value is then
        // found after it and read back from where it starts.
        let space = || prop_oneof![3 => Just(String::new()), 1 => "[ \t\n\r]{1,2}"];
        let member = (space(), name, space(), space(), member_value, space());
        proptest::collection::vec(member, 0..6).prop_map(|members| {
            let members: Vec<String> = members
                .iter()
                .map(|(a, k, b, c, v, d)| format!("{a}\"{k}\"{b}:{c}{v}{d}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    }

    /// Whatever the properties scanner reads, serde_json reads the same: the same
    /// properties, or the same rejection; and most objects reach the comparison.
    #[test]
    fn the_properties_scanner_agrees_with_serde_json_whenever_it_answers() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = properties_object();
        let (mut answered, draws) = (0, 4_000);
        for _ in 0..draws {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            if let Some(scanned) = scan_properties(&text) {
                answered += 1;
                let serde = serde_json::from_str::<RawProperties<'_>>(&text)
                    .unwrap_or_else(|e| panic!("serde refuses what the scanner took: {text}: {e}"));
                assert_eq!(properties(&scanned), properties(&serde), "{text}");
            }
        }
        assert!(
            answered * 5 > draws,
            "only {answered} of {draws} objects reached the comparison"
        );
    }

    /// Generated lines, malformed ones included, all decode to the same as by serde.
    #[test]
    fn the_generated_stream_takes_the_fast_path_and_decodes_the_same() {
        let lines = [
            r#"{"event_id":"evt_1","type":"usage_snapshot","account_id":"acct_000001","timestamp":"2026-01-01T00:00:00Z","user_id":"u_3","properties":{"seats_used":9,"active_users_30d":9,"active_users_1d":2,"api_calls_period":5120,"features_adopted":4}}"#,
            r#"{"event_id":"evt_2","type":"user_login","account_id":"acct_000002","timestamp":"2026-01-01T00:00:01Z","user_id":"u_0"}"#,
        ];
        for line in lines {
            let envelope = crate::scan::scan(line).expect("the usual line is scanned");
            let serde = serde_json::from_str::<RawEvent<'_>>(line).unwrap();
            assert_eq!(fields(RawEvent::from(envelope)), fields(serde));
        }
    }
}
