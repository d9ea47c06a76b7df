use super::*;
use crate::spec::SourceSpec;

fn spec(toml_text: &str) -> SourceSpec {
    #[derive(serde::Deserialize)]
    struct File {
        sources: Vec<SourceSpec>,
    }
    toml::from_str::<File>(toml_text).unwrap().sources.remove(0)
}

fn compile(toml_text: &str) -> Result<(Mapping, PathTrie), MappingError> {
    let mut trie = PathTrie::default();
    let known = |name: &str| {
        radar_core::types::Builtin::ALL
            .iter()
            .any(|b| b.name() == name)
    };
    Mapping::compile(&spec(toml_text), &mut trie, known).map(|m| (m, trie))
}

const SEGMENT: &str = r#"
[[sources]]
name = "web"
topics = ["t"]
envelope = "segment"
[sources.properties]
seats_used = "properties.seatCount"
seat_limit = "properties.seatLimit"
[sources.convert]
seat_limit = "number_string"
[sources.types]
"Seat Limit Near" = "seat_threshold_90pct"
"#;

#[test]
fn a_segment_call_maps_through_the_preset_and_the_overrides() {
    let (mapping, trie) = compile(SEGMENT).unwrap();
    let text = r#"{"anonymousId":"a1","context":{"groupId":"acme"},"event":"Seat Limit Near","messageId":"m1","properties":{"seatCount":46,"seatLimit":"50","plan":"pro"},"timestamp":"2026-03-10T10:00:00.5+00:00","type":"track","userId":null}"#;
    let mut captures = Captures::new(trie.len());
    crate::json::capture(text, &trie, PathTrie::ROOT, &mut captures).unwrap();
    let (parts, from) = mapping.resolve(&captures).unwrap();
    assert_eq!(from, TypeFrom::Table);
    assert_eq!(parts.event_id, "m1");
    assert_eq!(parts.event_type, "seat_threshold_90pct");
    assert_eq!(parts.account_id, "acme");
    assert_eq!(
        parts.user_id.as_deref(),
        Some("a1"),
        "userId is null: anonymousId"
    );
    assert_eq!(parts.timestamp, 1_773_136_800_500);
    let properties = parts.properties.unwrap();
    assert_eq!(properties.seats_used, Some(46));
    assert_eq!(properties.seat_limit, Some(50));
    // The preset still reads the properties the config did not override.
    assert_eq!(properties.plan.as_deref(), Some("pro"));
}

#[test]
fn refusals_name_their_reason() {
    let (mapping, trie) = compile(SEGMENT).unwrap();
    let reason = |text: &str| {
        let mut captures = Captures::new(trie.len());
        crate::json::capture(text, &trie, PathTrie::ROOT, &mut captures).unwrap();
        mapping.resolve(&captures).map(|_| ()).unwrap_err().reason
    };
    let base = r#""messageId":"m","event":"Seat Limit Near","timestamp":"2026-03-10T10:00:00Z""#;
    assert_eq!(reason(&format!("{{{base}}}")), RejectReason::NoAccount);
    assert_eq!(
        reason(&format!(r#"{{{base},"groupId":""}}"#)),
        RejectReason::NoAccount
    );
    assert_eq!(
        reason(r#"{"groupId":"g","messageId":"m","event":"x","timestamp":"yesterday"}"#),
        RejectReason::BadTimestamp
    );
    assert_eq!(
        reason(&format!(
            r#"{{{base},"groupId":"g","properties":{{"seatCount":-1}}}}"#
        )),
        RejectReason::OutOfRange
    );
    assert_eq!(
        reason(&format!(
            r#"{{{base},"groupId":"g","properties":{{"seatCount":"4"}}}}"#
        )),
        RejectReason::WrongType
    );
    assert_eq!(
        reason(&format!(r#"{{{base},"groupId":{{"id":1}}}}"#)),
        RejectReason::WrongType
    );
}

#[test]
fn a_bad_mapping_fails_naming_its_key() {
    let message = |toml_text: &str| compile(toml_text).unwrap_err().to_string();
    let head = "[[sources]]\nname = \"s\"\ntopics = [\"t\"]\n";
    assert!(
        message(&format!("{head}[sources.fields]\nacount_id = \"a\"\n"))
            .starts_with("sources.s.fields.acount_id: not a Radar field")
    );
    assert!(
        message(&format!("{head}[sources.properties]\nseats = \"a\"\n"))
            .starts_with("sources.s.properties.seats:")
    );
    assert!(
        message(&format!("{head}[sources.convert]\ntimestamp = \"iso\"\n"))
            .starts_with("sources.s.convert.timestamp:")
    );
    assert!(
        message(&format!("{head}[sources.convert]\nplan = \"unix_s\"\n"))
            .starts_with("sources.s.convert.plan:")
    );
    assert!(
        message(&format!(
            "{head}[sources.types]\n\"Seat Added\" = \"seat_added\"\n"
        ))
        .contains("neither a built-in type nor in engine.custom_types")
    );
    assert!(
        message(&format!("{head}envelope = \"custom\"\n"))
            .starts_with("sources.s.fields.event_id: required")
    );
    assert!(
        message(&format!("{head}[sources.fields]\nevent_id = \"a..b\"\n"))
            .contains("not a dotted path")
    );
}

#[test]
fn converters_read_instants_and_numbers() {
    assert_eq!(
        instant(&Captured::Int(1_700_000_000), Some(Converter::UnixS), false),
        Some(1_700_000_000_000)
    );
    assert_eq!(
        instant(&Captured::Int(5), Some(Converter::UnixMs), false),
        Some(5)
    );
    assert_eq!(
        instant(&Captured::Float(1.5), Some(Converter::UnixS), false),
        Some(1500)
    );
    assert_eq!(instant(&Captured::Int(5), None, false), None);
    assert_eq!(
        instant(&Captured::Str("2026-01-02".into()), None, true),
        Some(1_767_312_000_000)
    );
    assert_eq!(
        instant(&Captured::Str("2026-01-02".into()), None, false),
        None
    );
    assert_eq!(instant(&Captured::Millis(-1), None, false), None);
    assert_eq!(integer(&Captured::Str(" 50 ".into()), true), Some(50));
    assert_eq!(integer(&Captured::Str("50".into()), false), None);
    assert_eq!(float(&Captured::Str("NaN".into()), true), None);
}

#[test]
fn properties_are_read_only_for_the_types_that_read_them() {
    let (mapping, trie) = compile(SEGMENT).unwrap();
    let resolve = |text: &str| {
        let mut captures = Captures::new(trie.len());
        crate::json::capture(text, &trie, PathTrie::ROOT, &mut captures).unwrap();
        mapping
            .resolve(&captures)
            .map(|(parts, _)| (parts.event_type.to_string(), parts.properties.is_some()))
    };
    // A lead score of 55 and a plan object on events that do not read them: no refusal.
    let page = r#"{"groupId":"g","messageId":"m","event":"Page Viewed","timestamp":"2026-03-10T10:00:00Z","properties":{"plan":{"id":3},"score":55}}"#;
    assert_eq!(resolve(page), Ok(("Page Viewed".to_owned(), false)));
    let invite = r#"{"groupId":"g","messageId":"m","event":"team_invite_sent","timestamp":"2026-03-10T10:00:00Z","traits":{"churn_risk":"true"}}"#;
    assert_eq!(resolve(invite), Ok(("team_invite_sent".to_owned(), false)));
    // The same on a type that reads them is refused.
    let seats = r#"{"groupId":"g","messageId":"m","event":"Seat Limit Near","timestamp":"2026-03-10T10:00:00Z","properties":{"seatCount":"x"}}"#;
    assert_eq!(resolve(seats).unwrap_err().reason, RejectReason::WrongType);
}
