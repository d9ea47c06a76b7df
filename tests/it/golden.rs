//! Golden tests: `tests/golden/<case>.jsonl` through the replay code path must give
//! exactly the opportunities (in order) and the counters in `<case>.expected.json`.

use std::fs;
use std::io::BufReader;

use radar_core::event::RejectReason;
use radar_core::gates::Gate;
use serde_json::{Value, json};

use crate::{default_settings, root};

/// Opportunity fields the expectation files list (plus `score` when they give one).
const FIELDS: [&str; 7] = [
    "account_id",
    "kind",
    "playbook",
    "tier",
    "owner",
    "triggered_by",
    "occurred_at",
];

fn check_case(name: &str) -> Result<(), String> {
    let dir = root().join("tests/golden");
    let events = fs::File::open(dir.join(format!("{name}.jsonl"))).map_err(|e| e.to_string())?;
    let expected: Value = serde_json::from_str(
        &fs::read_to_string(dir.join(format!("{name}.expected.json")))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{name}.expected.json: {e}"))?;

    let mut out = Vec::new();
    let engine = radar::replay::run(default_settings(), BufReader::new(events), &mut out)
        .map_err(|e| e.to_string())?;
    let actual: Vec<Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("replay writes JSON lines"))
        .collect();

    for o in &actual {
        let field = |f: &str| o[f].as_str().unwrap_or_default().to_owned();
        let trigger = o["triggered_by"][0].as_str().unwrap_or_default();
        let id = radar_core::opportunity::opportunity_id(
            &field("account_id"),
            &field("playbook"),
            trigger,
        );
        if o["opportunity_id"] != id.as_str() {
            return Err(format!(
                "{name}: opportunity_id of {o} is not derived from its trigger"
            ));
        }
        let points: f64 = o["breakdown"]
            .as_array()
            .map(|b| b.iter().filter_map(|i| i["points"].as_f64()).sum())
            .unwrap_or_default();
        if o["score"]
            .as_f64()
            .is_none_or(|score| (score - points).abs() > 1e-6)
        {
            return Err(format!(
                "{name}: score of {o} is not the sum of its breakdown"
            ));
        }
    }
    let wanted = expected["opportunities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let project = |o: &Value, with_score: bool| {
        let mut p = serde_json::Map::new();
        for f in FIELDS {
            p.insert(f.into(), o[f].clone());
        }
        if with_score {
            p.insert("score".into(), o["score"].clone());
        }
        Value::Object(p)
    };
    let got: Vec<Value> = actual
        .iter()
        .zip(
            wanted
                .iter()
                .map(|w| w.get("score").is_some())
                .chain(std::iter::repeat(false)),
        )
        .map(|(o, with_score)| project(o, with_score))
        .collect();
    let want: Vec<Value> = wanted
        .iter()
        .map(|w| project(w, w.get("score").is_some()))
        .collect();
    if got != want {
        return Err(format!(
            "{name}: opportunities differ\n  expected: {}\n  actual:   {}",
            serde_json::to_string_pretty(&want).unwrap_or_default(),
            serde_json::to_string_pretty(&got).unwrap_or_default()
        ));
    }

    let stats = engine.stats();
    let mut counters = json!({
        "read": stats.read,
        "processed": stats.processed,
        "late": stats.late,
        "duplicate": stats.duplicate,
        "unknown_type": stats.unknown_type,
        "cooldown": stats.cooldown,
        "rejected": {},
        "suppressed": {},
    });
    for r in RejectReason::ALL {
        counters["rejected"][r.as_str()] = json!(stats.rejected(r));
    }
    for g in Gate::ALL {
        counters["suppressed"][g.as_str()] = json!(stats.suppressed(g));
    }
    let empty = serde_json::Map::new();
    for (key, value) in expected["stats"].as_object().unwrap_or(&empty) {
        let mismatch = match value {
            Value::Object(inner) => inner
                .iter()
                .filter(|(k, v)| counters[key][k.as_str()] != **v)
                .map(|(k, v)| format!("{key}.{k}: expected {v}, got {}", counters[key][k.as_str()]))
                .collect::<Vec<_>>(),
            v if counters[key] != *v => vec![format!("{key}: expected {v}, got {}", counters[key])],
            _ => vec![],
        };
        if !mismatch.is_empty() {
            return Err(format!("{name}: {}", mismatch.join("; ")));
        }
    }
    Ok(())
}

#[test]
fn every_golden_case_gives_its_expected_output() {
    let dir = root().join("tests/golden");
    let mut cases: Vec<String> = fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the golden cases, found {cases:?}"
    );
    let failures: Vec<String> = cases.iter().filter_map(|c| check_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
