//! A mapped event written in Radar's own envelope (docs/events.md#the-envelope): what
//! the repartition topic carries and what `radar map` prints. Reading it back with
//! radar-core's decoder gives the same event, so `radar replay` over these lines equals
//! the live pipeline (a test holds them equal).

use radar_core::event::{Parts, Properties};
use radar_core::time::format_rfc3339;
use serde::Serialize;

#[derive(Serialize)]
struct Envelope<'p> {
    event_id: &'p str,
    #[serde(rename = "type")]
    event_type: &'p str,
    account_id: &'p str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Written<'p>>,
}

/// The properties that are there; dates as RFC 3339.
#[derive(Serialize)]
struct Written<'p> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seats_used: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_calls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contract_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_users_1d: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_users_30d: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_calls_period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    features_adopted: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    churn_risk: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

impl<'p> From<&'p Properties> for Written<'p> {
    fn from(p: &'p Properties) -> Self {
        Written {
            seats_used: p.seats_used,
            seat_limit: p.seat_limit,
            api_calls: p.api_calls,
            api_limit: p.api_limit,
            plan: p.plan.as_deref(),
            arr: p.arr,
            contract_end: p.contract_end.map(format_rfc3339),
            customer_since: p.customer_since.map(format_rfc3339),
            active_users_1d: p.active_users_1d,
            active_users_30d: p.active_users_30d,
            api_calls_period: p.api_calls_period,
            features_adopted: p.features_adopted,
            health_score: p.health_score,
            churn_risk: p.churn_risk,
            score: p.score,
        }
    }
}

/// `parts` as one line of Radar's envelope (no newline).
pub fn to_json(parts: &Parts<'_>) -> Vec<u8> {
    let envelope = Envelope {
        event_id: &parts.event_id,
        event_type: &parts.event_type,
        account_id: &parts.account_id,
        timestamp: format_rfc3339(parts.timestamp),
        user_id: parts.user_id.as_deref(),
        received_at: parts.received_at.map(format_rfc3339),
        properties: parts.properties.as_ref().map(Written::from),
    };
    // Serialising strings and numbers into a `Vec` cannot fail; non-finite floats were
    // refused by the mapping.
    serde_json::to_vec(&envelope).unwrap_or_default()
}
