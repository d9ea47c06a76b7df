//! Engine settings: raw config structs as written in `config/radar.toml`, and the one pure
//! function that turns them into typed [`Settings`] or reports *every* problem with its key.
//!
//! Loading files and environment variables is the binary's job; this module only sees
//! the deserialized values, so `radar validate`, `radar replay` and the pipeline all check
//! a config the same way.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gates::Gates;
use crate::metric::{self, Metric, MetricSet};
use crate::opportunity::Kind;
use crate::playbook::{Cmp, Condition, Playbook};
use crate::priority::{Part, PriorityModel};
use crate::scoring::{Component, ScoreModel, Tier};
use crate::state::trigger_key;
use crate::table::Table;
use crate::time::{Millis, SECOND};
use crate::types::TypeRegistry;

/// The largest `cap` of a score component: points then fit the integer arithmetic the
/// score is summed in (see `crate::scoring`) with room to spare.
pub(crate) const MAX_CAP: f64 = 1e9;

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

/// Why `new` cannot replace `old` under a running engine without losing or misreading
/// state; empty when it can. Playbooks, the score model, tiers, gates, priority, the
/// owner threshold, cooldowns, the idle TTL and the future skew apply live. What the
/// accounts' state is built on cannot change under it: the bucket, the lateness, the
/// event types, which types are counted and how much history is kept. A longer window
/// or a newly counted type would count from nothing as if it counted everything; a
/// shorter history or a type no longer counted would leave gaps in the state that
/// checkpoints carry to other instances and to restarts under the old configuration.
pub fn live_change(old: &Settings, new: &Settings) -> Vec<String> {
    let mut refused = Vec::new();
    let hours = |ms: Millis| ms as f64 / crate::time::HOUR as f64;
    if new.bucket != old.bucket {
        refused.push(format!(
            "engine.bucket changes from {}h to {}h: every window's buckets would change meaning",
            hours(old.bucket),
            hours(new.bucket)
        ));
    }
    if new.allowed_lateness != old.allowed_lateness {
        refused.push(format!(
            "engine.allowed_lateness changes from {}h to {}h: the state and the duplicate filter keep what the old lateness needs",
            hours(old.allowed_lateness),
            hours(new.allowed_lateness)
        ));
    }
    let names = |s: &Settings| -> Vec<String> {
        s.types
            .ids()
            .map(|id| s.types.name(id).to_owned())
            .collect()
    };
    if names(new) != names(old) {
        refused.push(
            "the declared event types change: type ids and their counters are fixed while radar runs"
                .into(),
        );
    } else {
        for id in new.types.ids() {
            match (old.types.key(id).is_some(), new.types.key(id).is_some()) {
                (false, true) => refused.push(format!(
                    "a window counts {:?}, which the state has not counted so far: its history is not there",
                    new.types.name(id)
                )),
                (true, false) => refused.push(format!(
                    "no window counts {:?} any more: the state would stop keeping its history, which checkpoints carry to other instances and restarts",
                    new.types.name(id)
                )),
                _ => {}
            }
        }
    }
    if new.horizon_buckets != old.horizon_buckets && new.bucket == old.bucket {
        refused.push(format!(
            "the longest window plus the lateness changes from {}h to {}h: the state keeps (and checkpoints carry) {}h of history",
            hours(Millis::from(old.horizon_buckets) * old.bucket),
            hours(Millis::from(new.horizon_buckets) * new.bucket),
            hours(Millis::from(old.horizon_buckets) * old.bucket)
        ));
    }
    refused
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
        Table::new(points).map_err(|e| self.push(key, e)).ok()
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

/// Checks windows against the bucket size and remembers the longest.
struct WindowCheck {
    bucket: Option<Millis>,
    longest: Millis,
    /// The metrics seen so far.
    metrics: MetricSet,
}

impl WindowCheck {
    fn buckets(&mut self, errs: &mut Errors, key: &str, text: &str) -> Option<u32> {
        let window = errs.duration(key, text)?;
        let bucket = self.bucket?;
        if window == 0 || window % bucket != 0 {
            errs.push(
                key,
                format!("{text:?} must be a positive multiple of engine.bucket"),
            );
            return None;
        }
        self.longest = self.longest.max(window);
        match u32::try_from(window / bucket) {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(key, "spans too many buckets");
                None
            }
        }
    }
}

/// Resolves a metric given as `metric = "name"` or `count = "type"` + `window`.
fn metric_spec(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    key: &str,
    metric: Option<&str>,
    count: Option<&str>,
    window: Option<&str>,
) -> Option<Metric> {
    match (metric, count, window) {
        (Some(name), None, None) => {
            let m = Metric::named(name);
            if m.is_none() {
                let known = metric::NAMES.join(", ");
                errs.push(
                    format!("{key}.metric"),
                    format!("unknown metric {name:?}; known: {known}"),
                );
            }
            m
        }
        (None, Some(event), Some(window)) => {
            let counted = match types.lookup(event) {
                Some(id) => {
                    match types.count(id) {
                        Ok(series) => Some((id, series)),
                        Err(other) => {
                            errs.push(
                            format!("{key}.count"),
                            format!("{event:?} and {other:?} hash to the same series key; rename one"),
                        );
                            None
                        }
                    }
                }
                None => {
                    let message = match errs.refused_types.iter().find(|(_, n)| n == event) {
                        Some((declared, _)) => format!(
                            "{} is not counted: {declared} refused that name (see its problem)",
                            shown(event)
                        ),
                        None => format!(
                            "unknown event type {}; declare it in engine.custom_types",
                            shown(event)
                        ),
                    };
                    errs.push(format!("{key}.count"), message);
                    None
                }
            };
            let buckets = windows.buckets(errs, &format!("{key}.window"), window);
            let (event, key) = counted?;
            Some(Metric::Count {
                event,
                key,
                buckets: buckets?,
            })
        }
        (None, Some(_), None) => {
            errs.push(
                format!("{key}.window"),
                "a count needs a window, e.g. \"7d\"",
            );
            None
        }
        _ => {
            errs.push(key, "needs either `metric` or `count` with `window`");
            None
        }
    }
}

fn score_model(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    raw: RawScoring,
) -> Option<ScoreModel> {
    let RawTiers {
        warm,
        hot,
        critical,
    } = raw.tiers;
    if !(0.0 < warm && warm < hot && hot < critical) {
        errs.push(
            "scoring.tiers",
            "floors must satisfy 0 < warm < hot < critical",
        );
    }
    let mut names = HashSet::new();
    let mut components = Vec::new();
    let count = raw.components.len();
    for (i, c) in raw.components.into_iter().enumerate() {
        let key = format!("scoring.components[{i}]");
        if c.name.is_empty() || !names.insert(c.name.clone()) {
            errs.push(
                format!("{key}.name"),
                format!("{:?} is empty or used twice", c.name),
            );
        }
        let metric = metric_spec(
            errs,
            types,
            windows,
            &key,
            c.metric.as_deref(),
            c.count.as_deref(),
            c.window.as_deref(),
        );
        let table = errs.table(&format!("{key}.points"), c.points);
        if !(c.cap.is_finite() && (0.0..=MAX_CAP).contains(&c.cap)) {
            errs.push(
                format!("{key}.cap"),
                "must be a number from 0 to 1,000,000,000",
            );
        }
        if !(c.missing.is_finite() && c.missing >= 0.0) {
            errs.push(format!("{key}.missing"), "must be a number ≥ 0");
        }
        if table.as_ref().is_some_and(|t| t.min_y() < 0.0) {
            errs.push(format!("{key}.points"), "points must be ≥ 0");
        }
        if let (Some(metric), Some(table)) = (metric, table) {
            components.push(Component {
                name: c.name.into(),
                metric: windows.metrics.add(metric),
                table,
                cap: c.cap,
                missing: c.missing,
            });
        }
    }
    if count == 0 {
        errs.push("scoring.components", "needs at least one component");
    }
    (components.len() == count).then_some(ScoreModel {
        components,
        tier_floors: [warm, hot, critical],
    })
}

fn priority_model(errs: &mut Errors, mut raw: RawPriority) -> Option<PriorityModel> {
    if !(0.0..=100.0).contains(&raw.neutral) {
        errs.push("priority.neutral", "must be within 0–100");
    }
    let part_names: Vec<&str> = Part::ALL.iter().map(|p| p.as_str()).collect();
    let kind_names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    for (section, known) in [
        ("weights", &part_names),
        ("tables", &part_names),
        ("uplift", &kind_names),
    ] {
        let keys: Vec<String> = match section {
            "weights" => raw.weights.keys().cloned().collect(),
            "tables" => raw.tables.keys().cloned().collect(),
            _ => raw.uplift.keys().cloned().collect(),
        };
        for key in keys.iter().filter(|k| !known.contains(&k.as_str())) {
            errs.push(
                format!("priority.{section}.{key}"),
                format!("unknown; expected one of {}", known.join(", ")),
            );
        }
    }
    let mut weights = [0.0; 4];
    let mut tables = Vec::new();
    for (i, part) in part_names.iter().enumerate() {
        match raw.weights.get(*part) {
            Some(w) if w.is_finite() && *w >= 0.0 => weights[i] = *w,
            Some(_) => errs.push(format!("priority.weights.{part}"), "must be a number ≥ 0"),
            None => errs.push(format!("priority.weights.{part}"), "is missing"),
        }
        let key = format!("priority.tables.{part}");
        match raw.tables.remove(*part) {
            Some(points) => {
                if let Some(t) = errs.table(&key, points) {
                    if t.min_y() < 0.0 || t.max_y() > 100.0 {
                        errs.push(&key, "scores must be within 0–100");
                    }
                    tables.push(t);
                }
            }
            None => errs.push(key, "is missing"),
        }
    }
    if (weights.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
        errs.push("priority.weights", "must add up to 1");
    }
    let mut uplift = [0.0; 6];
    for (i, kind) in kind_names.iter().enumerate() {
        match raw.uplift.get(*kind) {
            Some(u) if u.is_finite() && *u >= 0.0 => uplift[i] = *u,
            Some(_) => errs.push(format!("priority.uplift.{kind}"), "must be a number ≥ 0"),
            None => errs.push(format!("priority.uplift.{kind}"), "is missing"),
        }
    }
    let tables: [Table; 4] = tables.try_into().ok()?;
    Some(PriorityModel {
        weights,
        tables,
        neutral: raw.neutral,
        uplift,
    })
}

fn playbooks(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    default_cooldown: Option<Millis>,
    raw: Vec<RawPlaybook>,
) -> Option<Vec<Playbook>> {
    let mut names = HashSet::new();
    let mut built = Vec::new();
    let count = raw.len();
    for (i, p) in raw.into_iter().enumerate() {
        let key = format!("playbooks[{i}] ({})", p.name);
        if p.name.is_empty() || p.name.starts_with("tier:") || !names.insert(p.name.clone()) {
            errs.push(
                format!("{key}.name"),
                "must be unique, not empty and not start with \"tier:\"",
            );
        }
        let kind = match Kind::parse(&p.kind) {
            Some(Kind::TierRise) | None => {
                let kinds: Vec<&str> = Kind::ALL[..5].iter().map(|k| k.as_str()).collect();
                errs.push(
                    format!("{key}.kind"),
                    format!("{:?} is not one of {}", p.kind, kinds.join(", ")),
                );
                None
            }
            kind => kind,
        };
        let cooldown = match &p.cooldown {
            Some(text) => errs.duration(&format!("{key}.cooldown"), text),
            None => default_cooldown,
        };
        let shadow = match p.mode.as_deref() {
            None | Some("live") => false,
            Some("shadow") => true,
            Some(other) => {
                errs.push(
                    format!("{key}.mode"),
                    format!("{other:?} is not live or shadow"),
                );
                false
            }
        };
        if p.all.is_empty() && p.any.is_empty() {
            errs.push(&key, "needs at least one condition in `all` or `any`");
        }
        let mut conditions = |list: &str, raw: Vec<RawCondition>| -> Vec<Option<Condition>> {
            raw.into_iter()
                .enumerate()
                .map(|(j, c)| condition(errs, types, windows, &format!("{key}.{list}[{j}]"), c))
                .collect()
        };
        let all = conditions("all", p.all);
        let any = conditions("any", p.any);
        let all: Option<Vec<Condition>> = all.into_iter().collect();
        let any: Option<Vec<Condition>> = any.into_iter().collect();
        if let (Some(kind), Some(cooldown), Some(all), Some(any)) = (kind, cooldown, all, any) {
            // A shadow playbook's cooldowns are its own: when it goes live, the accounts
            // it fired for in shadow are not muted for a cooldown.
            let key = if shadow {
                trigger_key(&format!("shadow:{}", p.name))
            } else {
                trigger_key(&p.name)
            };
            built.push(Playbook {
                key,
                name: p.name.into(),
                kind,
                all,
                any,
                cooldown,
                shadow,
            });
        }
    }
    let mut keys: Vec<(u32, String)> = Tier::ALL
        .iter()
        .map(|t| format!("tier:{}", t.as_str()))
        .map(|name| (trigger_key(&name), name))
        .collect();
    for p in &built {
        if let Some((_, other)) = keys.iter().find(|(k, _)| *k == p.key) {
            errs.push(
                format!("playbooks ({})", p.name),
                format!("its name hashes to the same cooldown key as {other:?}; rename it"),
            );
        }
        keys.push((p.key, p.name.to_string()));
    }
    (built.len() == count).then_some(built)
}

fn condition(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    key: &str,
    c: RawCondition,
) -> Option<Condition> {
    let forms = [
        c.event.is_some(),
        c.metric.is_some() || c.count.is_some(),
        c.min_tier.is_some(),
    ];
    let extra = c.op.is_some() || c.value.is_some() || c.window.is_some();
    if (c.event.is_some() || c.min_tier.is_some()) && extra {
        errs.push(
            key,
            "`event` and `min_tier` conditions take no `op`, `value` or `window`",
        );
        return None;
    }
    if forms.iter().filter(|f| **f).count() != 1 {
        errs.push(
            key,
            "needs exactly one of `event`, `metric`, `count` or `min_tier`",
        );
        return None;
    }
    if let Some(event) = &c.event {
        let id = types.lookup(event);
        if id.is_none() {
            errs.push(
                format!("{key}.event"),
                format!("unknown event type {event:?}"),
            );
        }
        return id.map(Condition::EventIs);
    }
    if let Some(tier) = &c.min_tier {
        let t = Tier::parse(tier);
        if t.is_none() {
            errs.push(
                format!("{key}.min_tier"),
                format!("{tier:?} is not cold, warm, hot or critical"),
            );
        }
        return t.map(Condition::TierAtLeast);
    }
    let metric = metric_spec(
        errs,
        types,
        windows,
        key,
        c.metric.as_deref(),
        c.count.as_deref(),
        c.window.as_deref(),
    );
    let cmp = match c.op.as_deref() {
        Some(op) => {
            let cmp = Cmp::parse(op);
            if cmp.is_none() {
                errs.push(
                    format!("{key}.op"),
                    format!("{op:?} is not one of <, <=, >, >=, =="),
                );
            }
            cmp
        }
        None => {
            errs.push(format!("{key}.op"), "is missing");
            None
        }
    };
    let value = c.value.filter(|v| v.is_finite());
    if value.is_none() {
        errs.push(format!("{key}.value"), "is missing or not a finite number");
    }
    Some(Condition::Metric {
        metric: windows.metrics.add(metric?),
        cmp: cmp?,
        value: value?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine sections of the default configuration, as a TOML table.
    fn default_engine() -> toml::Table {
        let mut table: toml::Table =
            toml::from_str(include_str!("../../../config/radar.toml")).unwrap();
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
}
