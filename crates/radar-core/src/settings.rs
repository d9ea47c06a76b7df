//! Engine settings: raw config structs as written in `config/radar.toml`, and the one pure
//! function that turns them into typed [`Settings`] or reports *every* problem with its key.
//!
//! Loading files and environment variables is the binary's job; this module only sees
//! the deserialized values, so `radar validate`, `radar replay` and the pipeline all check
//! a config the same way.

use std::fmt;

use crate::gates::Gates;
use crate::metric::MetricSet;
use crate::playbook::Playbook;
use crate::priority::PriorityModel;
use crate::scoring::{ScoreModel, Tier};
use crate::state::trigger_key;
use crate::table::Table;
use crate::time::{Millis, SECOND};
use crate::types::TypeRegistry;

mod live;
mod models;
mod playbooks;
mod raw;

pub use live::live_change;
use models::{WindowCheck, priority_model, score_model};
use playbooks::playbooks;
pub use raw::*;

/// The largest `cap` of a score component: points then fit the integer arithmetic the
/// score is summed in (see `crate::scoring`) with room to spare.
pub(crate) const MAX_CAP: f64 = 1e9;

/// A problem in the config: the key it is at and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Raising to a tier at or above `min` is an opportunity, at most once per `cooldown`.
#[derive(Clone, Debug, PartialEq)]
pub struct TierRise {
    pub min: Tier,
    pub cooldown: Millis,
    /// Cooldown keys of `tier:<tier>`, by [`Tier::ALL`] order.
    pub keys: [u32; 4],
}

/// Typed, validated engine settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub bucket: Millis,
    pub allowed_lateness: Millis,
    pub max_future_skew: Millis,
    /// Accounts whose latest event is older than this (in event time, behind the newest
    /// event the engine has seen) are dropped at checkpoints; `None` keeps them forever.
    pub idle_ttl: Option<Millis>,
    pub types: TypeRegistry,
    /// Buckets kept behind an account's latest: the longest window plus the lateness.
    pub horizon_buckets: u32,
    /// Every metric the score and the playbooks read, evaluated once per event.
    pub metrics: MetricSet,
    pub model: ScoreModel,
    pub playbooks: Vec<Playbook>,
    pub tier_rise: Option<TierRise>,
    pub gates: Gates,
    pub priority: PriorityModel,
    pub sales_arr_threshold: f64,
    /// The version of the configuration these settings came from (a hash the binary
    /// computes), stamped on every opportunity; none in replay and tests.
    pub version: Option<compact_str::CompactString>,
}

/// Collects errors while building, so every problem is reported, not just the first.
#[derive(Default)]
struct Errors {
    errors: Vec<SettingsError>,
    /// Custom type names refused (with the key that declared them), so a playbook
    /// counting one is told why that name was refused rather than that it is undeclared.
    refused_types: Vec<(String, String)>,
}

/// A name as an error message shows it: quoted, and cut to 40 characters with its
/// length said (a 1 MB name must not make a 1 MB message).
fn shown(name: &str) -> String {
    const SHOWN: usize = 40;
    match name.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &name[..cut], name.len()),
        None => format!("{name:?}"),
    }
}

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SettingsError {
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, text: &str) -> Option<Millis> {
        match humantime::parse_duration(text) {
            Ok(d) => match Millis::try_from(d.as_millis()) {
                Ok(ms) => Some(ms),
                Err(_) => {
                    self.push(key, "is too long");
                    None
                }
            },
            Err(e) => {
                self.push(
                    key,
                    format!("{text:?} is not a duration like \"30d\" or \"1h\": {e}"),
                );
                None
            }
        }
    }

    fn table(&mut self, key: &str, points: Vec<(f64, f64)>) -> Option<Table> {
        Table::new(points)
            .map_err(|e| self.push(key, e.to_string()))
            .ok()
    }
}

/// Turns raw settings into [`Settings`], or every problem found.
pub fn build(raw: RawSettings) -> Result<Settings, Vec<SettingsError>> {
    let mut errs = Errors::default();

    let bucket = errs.duration("engine.bucket", &raw.engine.bucket);
    if bucket.is_some_and(|b| b < SECOND) {
        errs.push("engine.bucket", "must be at least 1s");
    }
    let allowed_lateness = errs.duration("engine.allowed_lateness", &raw.engine.allowed_lateness);
    let max_future_skew = errs.duration("engine.max_future_skew", &raw.engine.max_future_skew);
    let mut types = custom_types(&mut errs, raw.engine.custom_types);

    let cooldown = errs.duration("opportunities.cooldown", &raw.opportunities.cooldown);
    let sales_arr_threshold = raw.opportunities.sales_arr_threshold;
    if !(sales_arr_threshold.is_finite() && sales_arr_threshold >= 0.0) {
        errs.push("opportunities.sales_arr_threshold", "must be a number ≥ 0");
    }
    let tier_rise_min = match raw.opportunities.tier_rise_min.as_str() {
        "off" => None,
        name => match Tier::parse(name) {
            Some(Tier::Cold) | None => {
                errs.push(
                    "opportunities.tier_rise_min",
                    format!("{name:?} is not \"off\", \"warm\", \"hot\" or \"critical\""),
                );
                None
            }
            tier => tier,
        },
    };

    let gates = gates(&mut errs, &raw.gates);
    let bucket_ok = bucket.filter(|b| *b >= SECOND);
    let mut windows = WindowCheck {
        bucket: bucket_ok,
        longest: 0,
        metrics: MetricSet::default(),
    };
    let model = score_model(&mut errs, &mut types, &mut windows, raw.scoring);
    let priority = priority_model(&mut errs, raw.priority);
    let playbooks = playbooks(&mut errs, &mut types, &mut windows, cooldown, raw.playbooks);

    let idle_ttl = match raw.engine.idle_ttl.as_str() {
        "off" => Some(None),
        text => errs.duration("engine.idle_ttl", text).map(Some),
    };
    let (
        Some(bucket),
        Some(allowed_lateness),
        Some(max_future_skew),
        Some(cooldown),
        Some(idle_ttl),
    ) = (
        bucket_ok,
        allowed_lateness,
        max_future_skew,
        cooldown,
        idle_ttl,
    )
    else {
        return Err(errs.errors);
    };
    // An evicted account forgets its windows, cooldowns and gate dates: the TTL must
    // outlast everything the engine remembers about an idle account.
    if let Some(ttl) = idle_ttl {
        let remembered = [
            windows.longest.saturating_add(allowed_lateness),
            cooldown,
            gates.open_payment_failure.unwrap_or(0),
            gates.recent_expansion.unwrap_or(0),
        ]
        .into_iter()
        .chain(playbooks.iter().flatten().map(|p| p.cooldown))
        .max()
        .unwrap_or(0);
        if ttl < remembered {
            errs.push(
                "engine.idle_ttl",
                format!(
                    "must be at least {} (the longest window plus lateness, cooldown or gate period), or \"off\"",
                    humantime::format_duration(std::time::Duration::from_millis(remembered.max(0) as u64))
                ),
            );
        }
    }
    let horizon_buckets = windows
        .longest
        .checked_add(allowed_lateness)
        .and_then(|span| u32::try_from(span / bucket + 2).ok())
        .ok_or(());
    if horizon_buckets.is_err() {
        errs.push(
            "engine.allowed_lateness",
            "windows and lateness span more than 2³² buckets",
        );
    }
    match (
        errs.errors.is_empty(),
        model,
        priority,
        playbooks,
        horizon_buckets,
    ) {
        (true, Some(model), Some(priority), Some(playbooks), Ok(horizon_buckets)) => Ok(Settings {
            bucket,
            allowed_lateness,
            max_future_skew,
            idle_ttl,
            types,
            horizon_buckets,
            metrics: windows.metrics,
            model,
            playbooks,
            tier_rise: tier_rise_min.map(|min| TierRise {
                min,
                cooldown,
                keys: Tier::ALL.map(|t| trigger_key(&format!("tier:{}", t.as_str()))),
            }),
            gates,
            priority,
            sales_arr_threshold,
            version: None,
        }),
        _ => Err(errs.errors),
    }
}

fn custom_types(errs: &mut Errors, custom: Vec<String>) -> TypeRegistry {
    let mut names: Vec<Box<str>> = Vec::new();
    for (i, name) in custom.into_iter().enumerate() {
        let key = format!("engine.custom_types[{i}]");
        let refused = if name.is_empty() || name.len() > crate::event::MAX_TEXT_LEN {
            format!(
                "{} must be 1 to {} bytes",
                shown(&name),
                crate::event::MAX_TEXT_LEN
            )
        } else if matches!(name.as_str(), "unknown" | "invalid") {
            format!(
                "{name:?} is reserved: radar_events_by_type_total counts undeclared types as \"unknown\" and rejected events as \"invalid\""
            )
        } else {
            // A built-in or repeated name is still counted (as the type it names), so
            // nothing is refused for a playbook to trip on.
            if TypeRegistry::new(Vec::new()).lookup(&name).is_some() {
                errs.push(key, format!("{name:?} is a built-in type"));
            } else if names.iter().any(|n| **n == *name) {
                errs.push(key, format!("{name:?} is declared twice"));
            } else {
                names.push(name.into_boxed_str());
            }
            continue;
        };
        errs.push(key.clone(), refused);
        errs.refused_types.push((key, name));
    }
    TypeRegistry::new(names)
}

fn gates(errs: &mut Errors, raw: &RawGates) -> Gates {
    let mut optional = |key: &str, text: &str| errs.duration(key, text).filter(|d| *d > 0);
    let min_account_age = optional("gates.min_account_age", &raw.min_account_age);
    let open_payment_failure = optional("gates.open_payment_failure", &raw.open_payment_failure);
    let recent_expansion = optional("gates.recent_expansion", &raw.recent_expansion);
    if !(0.0..=100.0).contains(&raw.min_health_score) {
        errs.push(
            "gates.min_health_score",
            "must be within 0–100 (0 turns the gate off)",
        );
    }
    Gates {
        min_health_score: Some(raw.min_health_score).filter(|m| *m > 0.0),
        churn_risk: raw.churn_risk,
        min_account_age,
        open_payment_failure,
        recent_expansion,
    }
}

#[cfg(test)]
mod tests;
