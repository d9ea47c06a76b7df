//! The envelope scanner against serde_json, on written and generated lines.

use super::*;

#[test]
fn a_usual_envelope_is_read_borrowed_with_its_properties_raw() {
    let line = r#" {"event_id":"e1","type":"usage_snapshot","account_id":"acme","timestamp":"2026-03-01T00:00:00Z","user_id":"u_1","properties":{"seats_used":9,"x":[1,-2.5e3,{"y":null}],"ok":true},"extra":{"a":[]}} "#;
    let envelope = scan(line).unwrap();
    assert_eq!(envelope.event_id, Some("e1"));
    assert_eq!(envelope.event_type, Some("usage_snapshot"));
    assert_eq!(envelope.account_id, Some("acme"));
    assert_eq!(envelope.timestamp, Some("2026-03-01T00:00:00Z"));
    assert_eq!(envelope.user_id, Some("u_1"));
    assert_eq!(envelope.received_at, None);
    assert_eq!(
        envelope.properties,
        Some(r#"{"seats_used":9,"x":[1,-2.5e3,{"y":null}],"ok":true}"#)
    );
    // Located on the way, so the properties are not scanned twice.
    assert!(envelope.known.is_some());

    // A repeated known property is serde's to judge, but the envelope is scanned.
    let line = r#"{"event_id":"e1","properties":{"seats_used":null,"seats_used":-1}}"#;
    let envelope = scan(line).unwrap();
    assert_eq!(envelope.event_id, Some("e1"));
    assert!(envelope.known.is_none());
    assert_eq!(
        envelope.properties,
        Some(r#"{"seats_used":null,"seats_used":-1}"#)
    );
}

/// Lines in DESIGN's order take the fast path, with or without the optional fields.
#[test]
fn the_documented_order_is_read_without_looking_keys_up() {
    let head = r#"{"event_id":"e1","type":"user_login","account_id":"acme","timestamp":"2026-03-01T00:00:00Z""#;
    for tail in [
        "}",
        r#","user_id":"u_1"}"#,
        r#","received_at":"2026-03-01T00:00:01Z"}"#,
        r#","properties":{}}"#,
        r#","user_id":"u_1","received_at":"2026-03-01T00:00:01Z","properties":{"seats_used":9,"x":[1]}} "#,
    ] {
        let line = format!("{head}{tail}");
        assert!(documented_order(&line).is_some(), "{line}");
        assert_eq!(documented_order(&line), any_order(&line), "{line}");
    }
    for tail in [
        r#","properties":{},"user_id":"u_1"}"#,
        r#","properties":[]}"#,
        r#", "user_id":"u_1"}"#,
        r#","user_id":"u_1","user_id":"u_2"}"#,
        "",
    ] {
        let line = format!("{head}{tail}");
        assert_eq!(documented_order(&line), None, "{line}");
    }
}

mod documented_order_property {
    use super::super::*;
    use proptest::prelude::*;

    /// A field's value: a plain string mostly, else an escaped string, a number,
    /// `null` or an object.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "\"[a-z0-9_:.-]{0,12}\"",
            1 => "\"[a-z]{0,3}\\\\[\"n][a-z]{0,3}\"",
            1 => "-?[0-9]{1,3}",
            1 => Just("null".to_owned()),
            1 => Just("{}".to_owned()),
        ]
    }

    /// A properties value: an object of known and other keys mostly.
    fn properties() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("seats_used"),
            Just("seat_limit"),
            Just("plan"),
            Just("arr"),
            Just("churn_risk"),
            Just("other"),
        ];
        let member = (
            key,
            prop_oneof![
                value(),
                Just("true".to_owned()),
                Just("[1,{\"a\":2.5}]".to_owned())
            ],
        );
        prop_oneof![
            6 => proptest::collection::vec(member, 0..5).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
            1 => value(),
        ]
    }

    /// Fields in DESIGN's order, each optional field present or not, now and then a
    /// space, a repeated or extra member, a cut or junk after the object.
    fn line() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(value(), 4),
            proptest::option::of(value()),
            proptest::option::of(value()),
            proptest::option::of(properties()),
            prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just(",\"type\":\"x\""), 1 => Just(",\"extra\":1")],
            prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("x"), 1 => Just("}")],
            0usize..40,
        )
            .prop_map(|(required, user, received, properties, extra, tail, cut)| {
                let mut members: Vec<String> = ["event_id", "type", "account_id", "timestamp"]
                    .iter()
                    .zip(&required)
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                let optional = [("user_id", user), ("received_at", received), ("properties", properties)];
                for (k, v) in optional {
                    if let Some(v) = v {
                        members.push(format!("\"{k}\":{v}"));
                    }
                }
                let mut text = format!("{{{}{extra}}}{tail}", members.join(","));
                if cut < text.len() && cut % 4 == 0 && text.is_char_boundary(cut) {
                    text.insert(cut, ' ');
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the fast path accepts, it reads as the general scanner does.
        #[test]
        fn the_fast_path_agrees_with_the_general_scanner(line in line()) {
            if let Some(fast) = documented_order(&line) {
                prop_assert_eq!(Some(fast), any_order(&line));
            }
        }
    }
}

#[test]
fn special_bytes_are_found_wherever_they_are() {
    for len in 0..40 {
        for at in 0..len {
            for c in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let mut s = vec![b'a'; len];
                // Bytes that must not be taken for special ones, around it.
                if at > 0 {
                    s[at - 1] = 0xc3;
                }
                s[at] = c;
                if at + 1 < len {
                    s[at + 1] = 0x7f;
                }
                assert_eq!(special(&s), Some(at), "{len} {at} {c}");
            }
        }
        let mut plain = vec![b'a'; len];
        plain.iter_mut().step_by(3).for_each(|c| *c = 0xe9);
        assert_eq!(special(&plain), None);
    }
}

#[test]
fn anything_unusual_is_left_to_serde() {
    for line in [
        r#"{"event_id":"e\"1"}"#,
        r#"{"event_id":"e1","event_id":"e2"}"#,
        r#"{"event_id":7}"#,
        r#"{"event_id":null}"#,
        r#"{"properties":[1]}"#,
        r#"{"properties":{"a":01}}"#,
        r#"{"properties":{"a":1.}}"#,
        r#"{"properties":{"a":tru}}"#,
        r#"{"a":1,}"#,
        r#"{"a":1} x"#,
        "{\"a\":\"tab\there\"}",
        r#"[1]"#,
        "",
        r#"{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
    ] {
        assert_eq!(scan(line), None, "{line}");
    }
    assert_eq!(scan("{}"), Some(Envelope::default()));
}
