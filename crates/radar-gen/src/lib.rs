//! A deterministic synthetic product-event stream, for `radar generate`, the demo, the
//! tests and the benchmarks.
//!
//! Accounts are drawn Zipf-skewed (a few big accounts send most events, as in real B2B
//! products). Each account has a profile (plan, seat and API limits, ARR, contract dates,
//! health) and announces it with an `entitlement_updated` as its first event; after that it
//! sends every event type of docs/design.md#event-model, plus an unknown `page_viewed`. Timestamps increase
//! over the configured span with some events jittered back by up to two hours (well within
//! the default 24 h lateness), a few are sent twice (as at-least-once producers do), and a
//! requested share of lines is malformed, cycling through every rejection kind.
//! The same options always give the same bytes: the only randomness is a ChaCha8 stream
//! seeded from `seed`.
//!
//! Modules: [`outcomes`]: which accounts expanded, when and by how much, for
//! `radar backtest` (`radar generate --outcomes`); [`formats`]: the events as Segment
//! calls, CloudEvents and Avro records, for `radar demo --source` and the ingest benchmarks.

pub mod formats;
pub mod outcomes;

use chrono::{DateTime, SecondsFormat};
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use serde_json::{Map, Value, json};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Options {
    pub accounts: u64,
    pub events: u64,
    pub seed: u64,
    /// Span of event time, in days.
    pub days: u32,
    /// Share of malformed lines, 0–1.
    pub invalid_ratio: f64,
    /// Zipf exponent of account popularity.
    pub zipf_exponent: f64,
    /// Event time of the first event, milliseconds since the epoch.
    pub start_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accounts: 1_000,
            events: 100_000,
            seed: 42,
            days: 30,
            invalid_ratio: 0.0,
            zipf_exponent: 1.0,
            // 2026-01-01T00:00:00Z
            start_ms: 1_767_225_600_000,
        }
    }
}

/// Why the options cannot generate a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionsError(pub String);

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionsError {}

#[derive(Clone, Copy)]
enum Plan {
    Starter,
    Growth,
    Enterprise,
}

impl Plan {
    fn name(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Growth => "growth",
            Plan::Enterprise => "enterprise",
        }
    }

    fn limits(self) -> (u32, u64, f64) {
        match self {
            Plan::Starter => (10, 10_000, 6_000.0),
            Plan::Growth => (50, 100_000, 30_000.0),
            Plan::Enterprise => (200, 1_000_000, 120_000.0),
        }
    }
}

struct Profile {
    id: String,
    plan: Plan,
    seat_limit: u32,
    seats_used: u32,
    api_limit: u64,
    arr: f64,
    customer_since_ms: i64,
    contract_end_ms: i64,
    health: f64,
    churn_risk: bool,
    users: u32,
    /// Expansion signals sent, and when the last was (for [`Generator::outcomes`]).
    signals: u32,
    /// The ARR it started with (`arr` compounds with every `expansion_closed`).
    first_arr: f64,
    last_signal_ms: i64,
}

/// Event types with their weights; `page_viewed` is not a Radar type (counted as unknown).
const TYPES: [(&str, u32); 15] = [
    ("user_login", 280),
    ("usage_snapshot", 140),
    ("team_invite_sent", 90),
    ("feature_limit_hit", 80),
    ("health_updated", 60),
    ("premium_feature_attempted", 60),
    ("page_viewed", 30),
    ("seat_threshold_90pct", 20),
    ("api_tier_exceeded", 20),
    ("entitlement_updated", 20),
    ("nps_submitted", 20),
    ("qbr_completed", 10),
    ("payment_failed", 10),
    ("payment_recovered", 10),
    ("expansion_closed", 5),
];

const FEATURES: [&str; 6] = [
    "sso",
    "audit_log",
    "advanced_reports",
    "api_access",
    "sandbox",
    "custom_roles",
];

/// The malformed variants, one per rejection reason, in the order they are cycled.
const MALFORMED: [&str; 7] = [
    "invalid_json",
    "missing_field",
    "wrong_type",
    "field_too_long",
    "bad_timestamp",
    "too_far_in_future",
    "out_of_range",
];

#[derive(Serialize)]
struct Envelope<'a> {
    event_id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    account_id: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    properties: Map<String, Value>,
}

/// The stream: an iterator of JSON lines (without the newline).
pub struct Generator {
    opts: Options,
    rng: ChaCha8Rng,
    zipf: Zipf<f64>,
    types: WeightedIndex<u32>,
    profiles: Vec<Option<Profile>>,
    emitted: u64,
    malformed: u64,
    recent: Vec<String>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("opts", &self.opts)
            .field("emitted", &self.emitted)
            .finish()
    }
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl Generator {
    pub fn new(opts: Options) -> Result<Self, OptionsError> {
        if opts.accounts == 0 || opts.accounts > 10_000_000 {
            return Err(OptionsError("--accounts must be within 1–10000000".into()));
        }
        if opts.days == 0 {
            return Err(OptionsError("--days must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&opts.invalid_ratio) {
            return Err(OptionsError("--invalid-ratio must be within 0–1".into()));
        }
        let zipf = Zipf::new(opts.accounts as f64, opts.zipf_exponent)
            .map_err(|e| OptionsError(format!("zipf exponent: {e}")))?;
        let types = WeightedIndex::new(TYPES.iter().map(|t| t.1))
            .map_err(|e| OptionsError(e.to_string()))?;
        let profiles = std::iter::repeat_with(|| None)
            .take(opts.accounts as usize)
            .collect();
        Ok(Generator {
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            opts,
            zipf,
            types,
            profiles,
            emitted: 0,
            malformed: 0,
            recent: Vec::new(),
        })
    }

    /// Picks an account: Zipf rank, scattered over ids so the busiest are not all first.
    fn account(&mut self) -> usize {
        let rank = self.zipf.sample(&mut self.rng) as u64 - 1;
        let n = self.opts.accounts;
        (rank.wrapping_mul(2_654_435_761) % n) as usize
    }

    fn profile(&mut self, index: usize, now: i64) -> (bool, &mut Profile) {
        let fresh = self.profiles[index].is_none();
        if fresh {
            let rng = &mut self.rng;
            let plan = match rng.random_range(0..100) {
                0..50 => Plan::Starter,
                50..85 => Plan::Growth,
                _ => Plan::Enterprise,
            };
            let (seat_limit, api_limit, arr) = plan.limits();
            let seats_used = (f64::from(seat_limit) * rng.random_range(0.3..0.95)) as u32;
            self.profiles[index] = Some(Profile {
                id: format!("acct_{index:06}"),
                plan,
                seat_limit,
                seats_used,
                api_limit,
                arr: (arr * rng.random_range(0.7..1.3)).round(),
                first_arr: 0.0,
                customer_since_ms: now - rng.random_range(0..720) * DAY_MS,
                contract_end_ms: now + rng.random_range(-10..365) * DAY_MS,
                health: rng.random_range(40.0..100.0),
                churn_risk: rng.random_bool(0.05),
                users: 0,
                signals: 0,
                last_signal_ms: now,
            });
            if let Some(p) = self.profiles[index].as_mut() {
                p.first_arr = p.arr;
            }
        }
        match &mut self.profiles[index] {
            Some(p) => (fresh, p),
            None => unreachable!("profile was just created"),
        }
    }

    fn valid_event(&mut self, seq: u64, time: i64) -> String {
        let index = self.account();
        let (fresh, _) = self.profile(index, time);
        let event_type = if fresh {
            "entitlement_updated"
        } else {
            TYPES[self.types.sample(&mut self.rng)].0
        };
        let rng = &mut self.rng;
        let Some(p) = self.profiles[index].as_mut() else {
            unreachable!("profile was just created")
        };
        p.users = p.users.max(1);
        let user = rng.random_range(0..p.users.max(p.seats_used).max(1));
        let props = properties(rng, p, event_type, time);
        if matches!(
            event_type,
            "seat_threshold_90pct"
                | "api_tier_exceeded"
                | "feature_limit_hit"
                | "premium_feature_attempted"
                | "team_invite_sent"
        ) {
            p.signals += 1;
            p.last_signal_ms = p.last_signal_ms.max(time);
        }
        let envelope = Envelope {
            event_id: format!("evt_{:016x}_{seq}", self.opts.seed),
            event_type,
            account_id: &p.id,
            timestamp: rfc3339(time),
            user_id: Some(format!("u_{user}")),
            received_at: None,
            properties: props,
        };
        serde_json::to_string(&envelope).unwrap_or_default()
    }

    fn malformed_event(&mut self, seq: u64, time: i64) -> String {
        let kind = MALFORMED[(self.malformed % MALFORMED.len() as u64) as usize];
        self.malformed += 1;
        let account = format!("acct_{:06}", self.account());
        let id = format!("bad_{:016x}_{seq}", self.opts.seed);
        let line = |event: Value| event.to_string();
        let base = |ts: Value| json!({"event_id": id, "type": "user_login", "account_id": account, "timestamp": ts});
        match kind {
            "invalid_json" => {
                let full = line(base(json!(rfc3339(time))));
                full[..full.len() / 2].to_owned()
            }
            "missing_field" => {
                line(json!({"event_id": id, "type": "user_login", "timestamp": rfc3339(time)}))
            }
            "wrong_type" => line(base(json!(time))),
            "field_too_long" => line(
                json!({"event_id": id, "type": "user_login", "account_id": "a".repeat(200), "timestamp": rfc3339(time)}),
            ),
            "bad_timestamp" => line(base(json!("yesterday at noon"))),
            "too_far_in_future" => {
                let mut event = base(json!(rfc3339(time + 3 * HOUR_MS)));
                event["received_at"] = json!(rfc3339(time));
                line(event)
            }
            _ => line(
                json!({"event_id": id, "type": "health_updated", "account_id": account, "timestamp": rfc3339(time), "properties": {"health_score": 150}}),
            ),
        }
    }
}

fn properties(
    rng: &mut ChaCha8Rng,
    p: &mut Profile,
    event_type: &str,
    time: i64,
) -> Map<String, Value> {
    let mut props = Map::new();
    let mut put = |k: &str, v: Value| {
        props.insert(k.to_owned(), v);
    };
    match event_type {
        "entitlement_updated" => {
            put("plan", json!(p.plan.name()));
            put("seat_limit", json!(p.seat_limit));
            put("api_limit", json!(p.api_limit));
            put("arr", json!(p.arr));
            put("contract_end", json!(rfc3339(p.contract_end_ms)));
            put("customer_since", json!(rfc3339(p.customer_since_ms)));
        }
        "usage_snapshot" => {
            // Seats drift upward: growing teams are what expansion is about.
            let step = rng.random_range(0..=2);
            p.seats_used = (p.seats_used + step).min(p.seat_limit);
            let mau = p.seats_used.max(1);
            put("seats_used", json!(p.seats_used));
            put("active_users_30d", json!(mau));
            put(
                "active_users_1d",
                json!((f64::from(mau) * rng.random_range(0.05..0.6)) as u32),
            );
            put(
                "api_calls_period",
                json!((p.api_limit as f64 * rng.random_range(0.1..1.0)) as u64),
            );
            put("features_adopted", json!(rng.random_range(1..15)));
        }
        "seat_threshold_90pct" => {
            p.seats_used = p.seats_used.max(p.seat_limit * 9 / 10);
            put("seats_used", json!(p.seats_used));
            put("seat_limit", json!(p.seat_limit));
        }
        "api_tier_exceeded" => {
            put(
                "api_calls",
                json!((p.api_limit as f64 * rng.random_range(1.0..1.5)) as u64),
            );
            put("api_limit", json!(p.api_limit));
            put("tier", json!(p.plan.name()));
        }
        "feature_limit_hit" => {
            put(
                "feature",
                json!(FEATURES[rng.random_range(0..FEATURES.len())]),
            );
            put("limit", json!(rng.random_range(1..20)));
        }
        "premium_feature_attempted" => put(
            "feature",
            json!(FEATURES[rng.random_range(0..FEATURES.len())]),
        ),
        "team_invite_sent" => {
            p.users += 1;
            put("invites", json!(1));
        }
        "health_updated" => {
            let score = (p.health + rng.random_range(-15.0..15.0))
                .clamp(0.0, 100.0)
                .round();
            put("health_score", json!(score));
            put("churn_risk", json!(p.churn_risk));
        }
        "nps_submitted" => put("score", json!(rng.random_range(0..=10))),
        "expansion_closed" => {
            let delta = (p.arr * 0.2).round();
            p.arr += delta;
            put("arr_delta", json!(delta));
        }
        "page_viewed" => put("path", json!(format!("/app/{}", time % 7))),
        _ => {}
    }
    props
}

impl Generator {
    /// What the stream so far showed of each account that sent an event, for the
    /// outcome model.
    pub fn account_signals(&self) -> Vec<outcomes::AccountSignals> {
        self.profiles
            .iter()
            .flatten()
            .map(|p| outcomes::AccountSignals {
                account_id: p.id.clone(),
                seat_utilization: f64::from(p.seats_used) / f64::from(p.seat_limit.max(1)),
                signals: p.signals,
                health: p.health,
                churn_risk: p.churn_risk,
                arr: p.first_arr,
                last_signal_ms: p.last_signal_ms,
                contract_end_ms: p.contract_end_ms,
            })
            .collect()
    }

    /// The real expansions of the accounts generated so far (call it after the last
    /// line): drawn from their signals by [`outcomes::draw`], the same for the same
    /// options.
    pub fn outcomes(&self) -> Vec<outcomes::Expansion> {
        outcomes::draw(&self.account_signals(), self.opts.seed)
    }
}

/// An outcome as a row of the outcomes file (`account_id,expanded_at,arr_delta`).
pub fn outcome_row(outcome: &outcomes::Expansion) -> String {
    format!(
        "{},{},{}",
        outcome.account_id,
        rfc3339(outcome.expanded_at_ms),
        outcome.arr_delta
    )
}

/// The `account_id` written in a generated line, borrowed from it, as a producer keys
/// the line's Kafka record (empty when the line has none: some malformed ones). Generated
/// ids need no JSON unescaping.
pub fn account_key(line: &str) -> &[u8] {
    const FIELD: &str = "\"account_id\":\"";
    line.find(FIELD)
        .and_then(|at| line[at + FIELD.len()..].split('"').next())
        .unwrap_or_default()
        .as_bytes()
}

impl Iterator for Generator {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.emitted >= self.opts.events {
            return None;
        }
        let seq = self.emitted;
        self.emitted += 1;
        let span = i64::from(self.opts.days) * DAY_MS;
        let mut time =
            self.opts.start_ms + (span as f64 * seq as f64 / self.opts.events as f64) as i64;
        if self.rng.random_bool(0.1) {
            time -= self.rng.random_range(0..2 * HOUR_MS);
        }
        let roll: f64 = self.rng.random();
        if roll < self.opts.invalid_ratio {
            return Some(self.malformed_event(seq, time));
        }
        if roll < self.opts.invalid_ratio + 0.005 && !self.recent.is_empty() {
            return Some(self.recent[self.rng.random_range(0..self.recent.len())].clone());
        }
        let line = self.valid_event(seq, time);
        // Recent valid lines, for the duplicates an at-least-once producer sends.
        if self.recent.len() < 64 {
            self.recent.push(line.clone());
        } else {
            self.recent[(seq % 64) as usize] = line.clone();
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(opts: Options) -> Vec<String> {
        Generator::new(opts).unwrap().collect()
    }

    #[test]
    fn same_options_same_bytes() {
        let opts = Options {
            accounts: 50,
            events: 2_000,
            invalid_ratio: 0.05,
            ..Options::default()
        };
        assert_eq!(lines(opts.clone()), lines(opts.clone()));
        let other = Options {
            seed: 7,
            ..opts.clone()
        };
        assert_ne!(lines(opts), lines(other));
    }

    #[test]
    fn every_line_is_json_unless_it_is_meant_not_to_be() {
        let all = lines(Options {
            accounts: 20,
            events: 5_000,
            invalid_ratio: 0.1,
            ..Options::default()
        });
        assert_eq!(all.len(), 5_000);
        let broken = all
            .iter()
            .filter(|l| serde_json::from_str::<Value>(l).is_err())
            .count();
        assert!(broken > 0 && broken < 200, "{broken} unparsable lines");
        let types: std::collections::BTreeSet<String> = all
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["type"].as_str().map(str::to_owned))
            .collect();
        for (name, _) in TYPES {
            assert!(types.contains(name), "no {name}");
        }
    }

    #[test]
    fn accounts_are_skewed() {
        let all = lines(Options {
            accounts: 1_000,
            events: 20_000,
            ..Options::default()
        });
        let mut counts = std::collections::HashMap::new();
        for l in &all {
            let v: Value = serde_json::from_str(l).unwrap();
            *counts
                .entry(v["account_id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        let max = counts.values().max().copied().unwrap();
        assert!(max > 20_000 / 20, "busiest account has only {max} events");
    }
}
