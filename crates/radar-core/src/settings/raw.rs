//! Settings as written in `config/radar.toml`'s engine sections, deserialized but not
//! yet checked: [`super::build`] turns them into [`super::Settings`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The config file's sections the engine reads, [`RawSettings`]'s fields; the others
/// (Kafka, delivery, admin…) are the service's.
pub const ENGINE_SECTIONS: [&str; 6] = [
    "engine",
    "opportunities",
    "gates",
    "scoring",
    "priority",
    "playbooks",
];

/// Settings as written in the config file's engine sections.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub engine: RawEngine,
    pub opportunities: RawOpportunities,
    pub gates: RawGates,
    pub scoring: RawScoring,
    pub priority: RawPriority,
    #[serde(default)]
    pub playbooks: Vec<RawPlaybook>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub bucket: String,
    pub allowed_lateness: String,
    pub max_future_skew: String,
    #[serde(default)]
    pub custom_types: Vec<String>,
    /// `"off"`, or how long an account may send nothing before its state is dropped.
    pub idle_ttl: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpportunities {
    pub cooldown: String,
    pub sales_arr_threshold: f64,
    /// `"off"` or the lowest tier whose reaching is an opportunity.
    pub tier_rise_min: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGates {
    pub min_health_score: f64,
    pub churn_risk: bool,
    pub min_account_age: String,
    pub open_payment_failure: String,
    pub recent_expansion: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScoring {
    pub tiers: RawTiers,
    pub components: Vec<RawComponent>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTiers {
    pub warm: f64,
    pub hot: f64,
    pub critical: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub name: String,
    pub metric: Option<String>,
    /// A window count: the event type counted (with `window`), instead of `metric`.
    pub count: Option<String>,
    pub window: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub cap: f64,
    #[serde(default)]
    pub missing: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPriority {
    pub neutral: f64,
    pub weights: BTreeMap<String, f64>,
    pub tables: BTreeMap<String, Vec<(f64, f64)>>,
    pub uplift: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    pub name: String,
    pub kind: String,
    pub cooldown: Option<String>,
    /// `live` (default) or `shadow`: evaluated exactly like the others (cooldowns, gates,
    /// ids) but delivered nowhere, to watch a new rule on real traffic first.
    pub mode: Option<String>,
    #[serde(default)]
    pub all: Vec<RawCondition>,
    #[serde(default)]
    pub any: Vec<RawCondition>,
}

/// One condition: exactly one of `event`, `metric`, `count` (with `window`) or `min_tier`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub event: Option<String>,
    pub metric: Option<String>,
    pub count: Option<String>,
    pub window: Option<String>,
    pub op: Option<String>,
    pub value: Option<f64>,
    pub min_tier: Option<String>,
}
