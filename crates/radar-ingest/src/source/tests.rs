use super::*;

fn cloudevents() -> Source {
    let spec: SourceSpec = serde_json::from_value(serde_json::json!({
        "name": "ce",
        "topics": ["t"],
        "envelope": "cloudevents",
        "types": {"com.example.seat": "seat_threshold_90pct"},
    }))
    .unwrap();
    Source::compile(spec, |_| true).unwrap()
}

#[test]
fn a_binary_mode_cloudevent_reads_its_attributes_from_headers_and_data_from_the_value() {
    let source = cloudevents();
    let headers: &[(&str, &[u8])] = &[
        ("ce_specversion", b"1.0"),
        ("ce_id", b"e1"),
        ("ce_type", b"com.example.seat"),
        ("ce_time", b"2026-03-10T10:00:00Z"),
        ("ce_accountid", b"acme"),
        ("content-type", b"application/json"),
    ];
    let record = RawRecord {
        value: br#"{"user_id":"u1","seats_used":9}"#,
        key: Some(b"acme"),
        headers,
        time: None,
    };
    let schemas = Schemas::default();
    let event = source.decode(&schemas, &record, 0).unwrap();
    assert_eq!(event.event_id, "e1");
    assert_eq!(event.event_type, "seat_threshold_90pct");
    assert_eq!(event.properties().unwrap().seats_used, Some(9));
    let (parts, _) = source.map(&schemas, &record).unwrap();
    assert_eq!(parts.user_id.as_deref(), Some("u1"));

    let elsewhere = RawRecord {
        key: Some(b"globex"),
        ..record
    };
    let refused = source.decode(&schemas, &elsewhere, 0).unwrap_err();
    assert_eq!(refused.reason, RejectReason::KeyMismatch);
}

#[test]
fn records_not_in_the_sources_format_are_bad_format() {
    let source = cloudevents();
    let schemas = Schemas::default();
    for value in [&b"\xff"[..], b"[1]", b"{\"id\":"] {
        let record = RawRecord {
            value,
            ..RawRecord::default()
        };
        let refused = source.decode(&schemas, &record, 0).unwrap_err();
        assert_eq!(refused.reason, RejectReason::BadFormat, "{value:?}");
    }
}

#[test]
fn avro_and_protobuf_need_the_registry_framing_and_a_schema_source() {
    let spec = |format: &str, framing: &str| -> SourceSpec {
        serde_json::from_value(serde_json::json!({
            "name": "s", "topics": ["t"], "format": format, "framing": framing, "envelope": "radar",
        }))
        .unwrap()
    };
    let error = Source::compile(spec("avro", "none"), |_| true).unwrap_err();
    assert_eq!(error.key, "sources.s.framing");
    let error = Source::compile(spec("protobuf", "confluent"), |_| true).unwrap_err();
    assert_eq!(error.key, "sources.s.schema_dir");
}
