//! Hot reload: on SIGHUP or `POST /v1/reload`, radar reads its configuration again,
//! validates all of it (the same checks and errors as `radar validate`), and either puts
//! the new engine settings in force between two poll rounds, every account's state kept,
//! or keeps the old ones and says why. Only the engine's sections apply live (playbooks,
//! scoring, gates, priority, opportunities); a change anywhere else (Kafka, checkpoints,
//! state, admin, shutdown, delivery, sources) takes a restart, and so does a change the accounts'
//! state cannot follow ([`radar_core::settings::live_change`]): such a reload is refused
//! whole, with the reasons. Each configuration in force has a version (a hash of its
//! engine sections), shown by `/v1/playbooks`, logged with what changed, exported as
//! `radar_config_info{version}` and stamped on every opportunity.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use radar_core::settings::live_change;
use radar_kafka::SettingsSwitch;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{self, RawConfig};
use crate::metrics::Metrics;

/// The sections only a restart applies.
const RESTART_SECTIONS: [&str; 7] = [
    "kafka",
    "checkpoint",
    "state",
    "admin",
    "shutdown",
    "delivery",
    "sources",
];

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reloaded {
    /// The new settings are in force from the next poll round.
    Applied {
        version: String,
        previous: String,
        changes: Vec<String>,
    },
    /// The file says what is already in force.
    Unchanged { version: String },
    /// The old settings stay in force, for these reasons.
    Refused {
        version: String,
        reasons: Vec<String>,
    },
}

/// The configuration in force, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct InForce {
    pub version: String,
    pub playbooks: Value,
}

/// Reloads the configuration of a running pipeline.
pub struct Reloader {
    path: Option<PathBuf>,
    switch: SettingsSwitch,
    metrics: Metrics,
    /// The raw configuration in force (what a reload compares against).
    raw: Mutex<RawConfig>,
    in_force: Arc<RwLock<InForce>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of the pipeline started from `raw`, read from `path`.
    pub fn new(
        path: Option<PathBuf>,
        raw: RawConfig,
        switch: SettingsSwitch,
        metrics: Metrics,
    ) -> Reloader {
        let version = config::version(&raw);
        metrics.config_version(&version);
        let in_force = InForce {
            version,
            playbooks: serde_json::to_value(&raw.playbooks).unwrap_or_default(),
        };
        Reloader {
            path,
            switch,
            metrics,
            raw: Mutex::new(raw),
            in_force: Arc::new(RwLock::new(in_force)),
        }
    }

    /// What the admin API shows of the configuration in force.
    pub fn in_force(&self) -> Arc<RwLock<InForce>> {
        self.in_force.clone()
    }

    /// Reads the configuration again and applies it if it can; logs and counts the
    /// outcome. Serialised: two reloads at once would race for the same switch.
    pub fn reload(&self) -> Reloaded {
        let mut current = self.raw.lock().unwrap_or_else(PoisonError::into_inner);
        let version = config::version(&current);
        let (outcome, read) = self.decide(&current, version);
        match &outcome {
            Reloaded::Applied {
                version,
                previous,
                changes,
            } => {
                tracing::info!(version, previous, changes = %changes.join("; "), "configuration reloaded");
                self.metrics.config_version(version);
            }
            Reloaded::Unchanged { version } => {
                tracing::info!(version, "configuration reloaded: nothing changed")
            }
            Reloaded::Refused { version, reasons } => {
                tracing::warn!(version, reasons = %reasons.join("; "), "configuration reload refused; the one in force stays")
            }
        }
        self.metrics.reload(match outcome {
            Reloaded::Applied { .. } => "applied",
            Reloaded::Unchanged { .. } => "unchanged",
            Reloaded::Refused { .. } => "refused",
        });
        if let (Reloaded::Applied { version, .. }, Some(raw)) = (&outcome, read) {
            let mut in_force = self
                .in_force
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            in_force.version = version.clone();
            in_force.playbooks = serde_json::to_value(&raw.playbooks).unwrap_or_default();
            *current = raw;
        }
        outcome
    }

    /// The outcome, and the configuration read when it is to be in force.
    fn decide(&self, current: &RawConfig, version: String) -> (Reloaded, Option<RawConfig>) {
        let refused = |reasons: Vec<String>| {
            (
                Reloaded::Refused {
                    version: version.clone(),
                    reasons,
                },
                None,
            )
        };
        let raw = match config::load_raw(self.path.as_deref()) {
            Ok(raw) => raw,
            Err(e) => return refused(e.problems),
        };
        // Every check `radar validate` makes, secrets included.
        let pipeline = match config::pipeline_from_raw(&raw, &|name| std::env::var(name).ok()) {
            Ok(pipeline) => pipeline,
            Err(e) => return refused(e.problems),
        };
        let restart: Vec<String> = RESTART_SECTIONS
            .iter()
            .filter(|section| section_value(current, section) != section_value(&raw, section))
            .map(|section| format!("[{section}] changed: it takes effect only at a restart"))
            .collect();
        let old = self.switch.current();
        let mut reasons = restart;
        reasons.extend(live_change(&old, &pipeline.engine));
        if !reasons.is_empty() {
            return refused(reasons);
        }
        let new_version = config::version(&raw);
        if new_version == version {
            return (Reloaded::Unchanged { version }, None);
        }
        let changes = changes(current, &raw);
        self.switch.switch(Arc::new(pipeline.engine));
        (
            Reloaded::Applied {
                version: new_version,
                previous: version,
                changes,
            },
            Some(raw),
        )
    }
}

/// A section of the raw configuration as JSON, for comparing two of them.
fn section_value(raw: &RawConfig, section: &str) -> Value {
    let value = match section {
        "kafka" => serde_json::to_value(&raw.kafka),
        "checkpoint" => serde_json::to_value(&raw.checkpoint),
        "state" => serde_json::to_value(&raw.state),
        "admin" => serde_json::to_value(&raw.admin),
        "shutdown" => serde_json::to_value(&raw.shutdown),
        "delivery" => serde_json::to_value(&raw.delivery),
        "sources" => serde_json::to_value(&raw.sources),
        _ => Ok(Value::Null),
    };
    value.unwrap_or(Value::Null)
}

/// What changed in the engine's sections, for the log and the answer: playbooks added,
/// removed or changed (a mode change named), and the other sections that changed.
fn changes(old: &RawConfig, new: &RawConfig) -> Vec<String> {
    let mut changes = Vec::new();
    let by_name = |raw: &RawConfig| -> Vec<(String, Value)> {
        raw.playbooks
            .iter()
            .map(|p| (p.name.clone(), serde_json::to_value(p).unwrap_or_default()))
            .collect()
    };
    let (before, after) = (by_name(old), by_name(new));
    for (name, playbook) in &after {
        match before.iter().find(|(n, _)| n == name) {
            None => changes.push(format!("playbook {name} added")),
            Some((_, was)) if was != playbook => {
                let mode = |v: &Value| v["mode"].as_str().unwrap_or("live").to_owned();
                if mode(was) != mode(playbook) {
                    changes.push(format!(
                        "playbook {name}: {} → {}",
                        mode(was),
                        mode(playbook)
                    ));
                } else {
                    changes.push(format!("playbook {name} changed"));
                }
            }
            Some(_) => {}
        }
    }
    for (name, _) in &before {
        if !after.iter().any(|(n, _)| n == name) {
            changes.push(format!("playbook {name} removed"));
        }
    }
    let (old_engine, new_engine) = (json!(old.engine()), json!(new.engine()));
    for section in ["engine", "opportunities", "gates", "scoring", "priority"] {
        if old_engine[section] != new_engine[section] {
            changes.push(format!("[{section}] changed"));
        }
    }
    changes
}
