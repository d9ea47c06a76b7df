//! `radar dlq list` and `radar dlq replay`: the deliveries that were given up on, read
//! from (and put back into) the store of a stopped radar.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use radar_store::{DeadLetter, Store};
use serde_json::json;

/// Opens the store; while radar runs, it holds the file's lock.
fn open(path: &Path) -> Result<Store> {
    let store = Store::open(path).with_context(|| {
        format!(
            "opening {} (the dead-letter store is read while radar is stopped: it holds the file while it runs)",
            path.display()
        )
    })?;
    if let Some(aside) = store.moved_aside() {
        eprintln!(
            "radar: the store {} is {}; moved it to {}: its dead letters are not readable",
            path.display(),
            store.moved_aside_because().unwrap_or("unusable"),
            aside.display()
        );
    }
    Ok(store)
}

fn matches(letter: &DeadLetter, destination: Option<&str>, id: Option<&str>) -> bool {
    destination.is_none_or(|d| letter.destination == d)
        && id.is_none_or(|id| opportunity_id(letter) == id)
}

fn opportunity_id(letter: &DeadLetter) -> String {
    serde_json::from_slice::<serde_json::Value>(&letter.opportunity)
        .ok()
        .and_then(|v| v["opportunity_id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Writes one JSON line per dead letter matching the filters; returns how many.
pub fn list(
    path: &Path,
    destination: Option<&str>,
    id: Option<&str>,
    out: &mut impl Write,
) -> Result<usize> {
    let store = open(path)?;
    let mut count = 0;
    for letter in store.dead_letters()? {
        if !matches(&letter, destination, id) {
            continue;
        }
        let opportunity: serde_json::Value =
            serde_json::from_slice(&letter.opportunity).unwrap_or(serde_json::Value::Null);
        let line = json!({
            "destination": letter.destination,
            "opportunity_id": opportunity_id(&letter),
            "attempts": letter.attempts,
            "reason": letter.reason,
            "failed_at_ms": letter.failed_ms,
            "opportunity": opportunity,
        });
        writeln!(out, "{line}")?;
        count += 1;
    }
    Ok(count)
}

/// Puts the matching dead letters back in their destination's queue, due now with a
/// fresh retry budget; the next `radar run` delivers them. Returns how many.
pub fn replay(path: &Path, destination: Option<&str>, id: Option<&str>) -> Result<usize> {
    let store = open(path)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(store.replay_dead_letters(now, |letter| matches(letter, destination, id))?)
}
