use super::*;

/// The engine sections of the default configuration, as a TOML table.
fn default_engine() -> toml::Table {
    let mut table: toml::Table =
        toml::from_str(include_str!("../../../../config/radar.toml")).unwrap();
    table.retain(|key, _| ENGINE_SECTIONS.contains(&key));
    table
}

fn build_from(table: toml::Table) -> Result<Settings, Vec<SettingsError>> {
    build(toml::Value::Table(table).try_into().unwrap())
}

#[test]
fn a_cap_beyond_the_score_arithmetic_is_refused_by_its_key() {
    assert!(build_from(default_engine()).is_ok());
    for (cap, accepted) in [(1e9, true), (1.5e9, false), (-1.0, false)] {
        let mut table = default_engine();
        let components = table["scoring"]["components"].as_array_mut();
        let first = components.unwrap()[0].as_table_mut().unwrap();
        first.insert("cap".into(), toml::Value::Float(cap));
        match build_from(table) {
            Ok(_) => assert!(accepted, "{cap} accepted"),
            Err(errors) => {
                assert!(!accepted, "{cap} refused: {errors:?}");
                assert_eq!(errors.len(), 1, "{errors:?}");
                assert_eq!(errors[0].key, "scoring.components[0].cap");
            }
        }
    }
}

/// A refused custom type name is reported once, by its key, with the reason; a
/// playbook counting it points there instead of asking to declare what was declared.
#[test]
fn a_refused_custom_type_says_why_and_playbooks_counting_it_point_there() {
    let long = "x".repeat(1 << 20);
    for name in ["", "invalid", "unknown", long.as_str()] {
        let mut table = default_engine();
        table["engine"].as_table_mut().unwrap().insert(
            "custom_types".into(),
            toml::Value::Array(vec![toml::Value::String(name.into())]),
        );
        let playbook: toml::Table = toml::from_str(&format!(
            "name = \"p\"\nkind = \"seat_expansion\"\nall = [{{ count = {name:?}, window = \"1d\", op = \">=\", value = 1.0 }}]"
        ))
        .unwrap();
        table.insert(
            "playbooks".into(),
            toml::Value::Array(vec![toml::Value::Table(playbook)]),
        );
        let errors = build_from(table).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            said.iter()
                .all(|e| !e.contains("declare it") && e.len() < 400),
            "{said:?}"
        );
        assert!(
            said.iter().any(|e| e.starts_with("engine.custom_types[0]:")
                && (e.contains("bytes") || e.contains("reserved"))),
            "{said:?}"
        );
        assert!(
            said.iter().any(|e| e.starts_with("playbooks[0]")
                && e.contains("engine.custom_types[0] refused that name")),
            "{said:?}"
        );
    }
}
