//! `radar dlq list` and `radar dlq replay`: the deliveries that were given up on, read
//! from (and put back into) the store of a stopped radar, or with `state.store = "kafka"`
//! the delivery dead-letter topic, while radar runs.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use radar_delivery::kafka::dead_letters::{self, Letter};
use radar_delivery::{DeliveryStore, FailedDelivery};
use radar_store::Store;
use serde_json::json;

use crate::config::DeadLetters;

/// Opens the store; while radar runs, it holds the file's lock.
fn open(path: &Path) -> Result<Store> {
    if let Some(problem) = crate::config::store_directory_problem(path) {
        anyhow::bail!(problem);
    }
    let store = Store::open(path).with_context(|| {
        format!(
            "opening {} (the dead-letter store is read while radar is stopped: it holds the file while it runs)",
            path.display()
        )
    })?;
    if let Some(aside) = store.moved_aside() {
        tracing::error!(
            store = %path.display(),
            reason = store.moved_aside_because().unwrap_or("unusable"),
            moved_to = %aside.display(),
            "the store was unusable and is moved aside: its dead letters are not readable"
        );
    }
    Ok(store)
}

/// What a listed letter shows, wherever it is kept.
struct Shown<'a> {
    destination: &'a str,
    attempts: u32,
    reason: &'a str,
    failed_ms: u64,
    opportunity: &'a [u8],
    /// On the topic: the record key, every byte shown (see [`dead_letters::escape_key`]),
    /// where the record it came from is, and whether the opportunity was cut or left out.
    key: Option<String>,
    source: Option<&'a str>,
    cut: Option<&'a str>,
}

impl Shown<'_> {
    fn opportunity_id(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(self.opportunity)
            .ok()
            .and_then(|v| v["opportunity_id"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn matches(&self, destination: Option<&str>, id: Option<&str>) -> bool {
        destination.is_none_or(|d| self.destination == d)
            && id.is_none_or(|id| self.opportunity_id() == id)
    }

    fn line(&self) -> serde_json::Value {
        let opportunity: serde_json::Value =
            serde_json::from_slice(self.opportunity).unwrap_or(serde_json::Value::Null);
        let mut line = json!({
            "destination": self.destination,
            "opportunity_id": self.opportunity_id(),
            "attempts": self.attempts,
            "reason": self.reason,
            "failed_at_ms": self.failed_ms,
            "opportunity": opportunity,
        });
        for (name, value) in [
            ("key", self.key.as_deref()),
            ("source", self.source),
            ("opportunity_cut", self.cut),
        ] {
            if let Some(value) = value {
                line[name] = json!(value);
            }
        }
        line
    }
}

impl<'a> From<&'a FailedDelivery> for Shown<'a> {
    fn from(letter: &'a FailedDelivery) -> Shown<'a> {
        Shown {
            destination: &letter.destination,
            attempts: letter.attempts,
            reason: &letter.reason,
            failed_ms: letter.failed_ms,
            opportunity: &letter.opportunity,
            key: None,
            source: None,
            cut: None,
        }
    }
}

impl<'a> From<&'a Letter> for Shown<'a> {
    fn from(Letter { key, letter }: &'a Letter) -> Shown<'a> {
        Shown {
            destination: &letter.destination,
            attempts: letter.attempts,
            reason: letter.reason.as_deref().unwrap_or_default(),
            failed_ms: letter.due_ms,
            opportunity: &letter.opportunity,
            key: Some(dead_letters::escape_key(key)),
            source: letter.source.as_deref(),
            cut: letter.cut.as_deref(),
        }
    }
}

/// Writes one JSON line per dead letter matching the filters; returns how many.
pub fn list(
    letters: &DeadLetters,
    destination: Option<&str>,
    id: Option<&str>,
    out: &mut impl Write,
) -> Result<usize> {
    let mut count = 0;
    let mut show = |shown: Shown<'_>| -> Result<()> {
        if shown.matches(destination, id) {
            writeln!(out, "{}", shown.line())?;
            count += 1;
        }
        Ok(())
    };
    match letters {
        DeadLetters::Store(path) => {
            for letter in open(path)?.dead_letters()? {
                show(Shown::from(&letter))?;
            }
        }
        DeadLetters::Topic(config) => {
            let topic = &config.dead_letter_topic;
            for letter in dead_letters::read_all(config)
                .with_context(|| format!("reading the dead-letter topic {topic}"))?
            {
                show(Shown::from(&letter))?;
            }
        }
    }
    Ok(count)
}

/// Puts the matching dead letters back for delivery, due now with a fresh retry budget:
/// in the store's queues (the next `radar run` delivers them) or on the retry topic (the
/// running instances deliver them). Returns how many.
pub fn replay(letters: &DeadLetters, destination: Option<&str>, id: Option<&str>) -> Result<usize> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match letters {
        DeadLetters::Store(path) => Ok(open(path)?
            .replay_dead_letters(now, |letter| Shown::from(letter).matches(destination, id))?),
        DeadLetters::Topic(config) => {
            let topic = &config.dead_letter_topic;
            let picked: Vec<Letter> = dead_letters::read_all(config)
                .with_context(|| format!("reading the dead-letter topic {topic}"))?
                .into_iter()
                .filter(|letter| Shown::from(letter).matches(destination, id))
                .collect();
            dead_letters::replay(config, &picked, now)
                .with_context(|| format!("replaying onto {}", config.retry_topic))
        }
    }
}
