//! The request each kind of destination gets for an opportunity: pure, so every payload
//! is a unit test away from its documented shape. The attempt's time comes in as an
//! argument because Standard Webhooks signs a fresh timestamp on every attempt.

use chrono::{DateTime, Utc};
use radar_core::Opportunity;
use radar_core::opportunity::Owner;
use radar_core::scoring::Tier;
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::error::RequestError;
use crate::settings::{Destination, Target};
use crate::signing::sign;

/// An HTTP request, ready to send.
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if *name == "authorization" {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (*name, shown)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            // The host only: a Slack URL's path is its secret.
            .field("host", &self.url.host_str())
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// A webhook's Standard Webhooks body, `{"data":…,"timestamp":…,"type":…}`, with the
/// opportunity's JSON copied in as the engine wrote it: the caller decoded it already,
/// so it is not parsed (and written) a second and third time.
fn webhook_body(occurred_at: &str, json: &[u8]) -> Vec<u8> {
    // As a raw value, without the whitespace around it.
    let json = json.trim_ascii();
    let timestamp = Value::String(occurred_at.to_owned()).to_string();
    let mut body = Vec::with_capacity(json.len() + timestamp.len() + 64);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(json);
    body.extend_from_slice(b",\"timestamp\":");
    body.extend_from_slice(timestamp.as_bytes());
    body.extend_from_slice(b",\"type\":\"opportunity.created\"}");
    body
}

/// The request that delivers `opportunity` (decoded from `json`, which is so known to be
/// JSON) to `destination` at `now`.
pub fn build(
    destination: &Destination,
    opportunity: &Opportunity,
    json: &[u8],
    now: DateTime<Utc>,
) -> Result<HttpRequest, RequestError> {
    let content_type = ("content-type", "application/json".to_owned());
    match &destination.target {
        Target::Webhook { secrets } => {
            let body = webhook_body(&opportunity.occurred_at, json);
            let timestamp = now.timestamp();
            let id = opportunity.opportunity_id.as_str();
            Ok(HttpRequest {
                method: Method::POST,
                url: destination.url.clone(),
                headers: vec![
                    content_type,
                    ("webhook-id", id.to_owned()),
                    ("webhook-timestamp", timestamp.to_string()),
                    ("webhook-signature", sign(secrets, id, timestamp, &body)),
                ],
                body,
            })
        }
        Target::Slack => Ok(HttpRequest {
            method: Method::POST,
            url: destination.url.clone(),
            headers: vec![content_type],
            body: slack_message(opportunity).to_string().into_bytes(),
        }),
        Target::HubSpot { .. } | Target::Salesforce { .. } => Err(RequestError::CrmDestination),
    }
}

pub(crate) fn bearer(token: &secrecy::SecretString) -> (&'static str, String) {
    ("authorization", format!("Bearer {}", token.expose_secret()))
}

pub(crate) fn title(opportunity: &Opportunity) -> String {
    format!(
        "Expansion: {} — {} ({})",
        opportunity.account_id,
        opportunity.playbook,
        opportunity.kind.as_str()
    )
}

pub(crate) fn owner(owner: Owner) -> &'static str {
    match owner {
        Owner::Cs => "cs",
        Owner::Sales => "sales",
    }
}

/// The breakdown's three largest contributions, as "component (value): +points".
pub(crate) fn top_reasons(opportunity: &Opportunity) -> Vec<String> {
    let mut items: Vec<_> = opportunity
        .breakdown
        .iter()
        .filter(|item| item.points > 0.0)
        .collect();
    items.sort_by(|a, b| b.points.total_cmp(&a.points));
    items
        .into_iter()
        .take(3)
        .map(|item| match item.value {
            Some(value) => format!(
                "{} ({}): +{} pts",
                item.component,
                number(value),
                number(item.points)
            ),
            None => format!("{}: +{} pts", item.component, number(item.points)),
        })
        .collect()
}

pub(crate) fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

pub(crate) fn summary(opportunity: &Opportunity) -> String {
    let mut text = format!(
        "Score {} ({}), expansion score {}, owner {}.\nWhy:\n",
        number(opportunity.score),
        opportunity.tier.as_str(),
        number(opportunity.expansion_score.value),
        owner(opportunity.owner),
    );
    for reason in top_reasons(opportunity) {
        text.push_str("- ");
        text.push_str(&reason);
        text.push('\n');
    }
    text.push_str(&format!(
        "Triggered by {} at {}. Radar opportunity {}.",
        opportunity.triggered_by.join(", "),
        opportunity.occurred_at,
        opportunity.opportunity_id
    ));
    text
}

/// A Block Kit message: header, the facts as fields, the top reasons, and the id.
pub fn slack_message(opportunity: &Opportunity) -> Value {
    let field = |label: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")});
    let reasons: String = top_reasons(opportunity)
        .iter()
        .map(|r| format!("• {r}\n"))
        .collect();
    json!({
        "text": title(opportunity),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title(opportunity)}},
            {"type": "section", "fields": [
                field("Account", opportunity.account_id.to_string()),
                field("Playbook", opportunity.playbook.to_string()),
                field("Tier", opportunity.tier.as_str().to_owned()),
                field("Score", number(opportunity.score)),
                field("Expansion score", number(opportunity.expansion_score.value)),
                field("Owner", owner(opportunity.owner).to_owned()),
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*Top reasons*\n{reasons}")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "opportunity `{}` · {}", opportunity.opportunity_id, opportunity.occurred_at)}]},
        ]
    })
}

pub(crate) fn priority(tier: Tier) -> (&'static str, &'static str) {
    match tier {
        Tier::Critical | Tier::Hot => ("HIGH", "High"),
        Tier::Warm => ("MEDIUM", "Normal"),
        Tier::Cold => ("LOW", "Low"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::settings::Filter;
    use crate::signing::SigningSecret;
    use std::time::Duration;

    pub(crate) fn opportunity() -> Opportunity {
        serde_json::from_value(json!({
            "opportunity_id": "a20f7fb67498eb5773731d30d2baf5b3",
            "account_id": "acme",
            "kind": "seat_expansion",
            "playbook": "seat_expansion",
            "score": 72.5,
            "tier": "hot",
            "breakdown": [
                {"component": "seats_used_pct", "value": 0.95, "points": 25.0},
                {"component": "invites_30d", "value": 12.0, "points": 10.0},
                {"component": "payment_failed", "value": null, "points": 0.0},
                {"component": "premium_features", "value": 3.0, "points": 15.0},
                {"component": "logins", "value": 40.0, "points": 5.0}
            ],
            "triggered_by": ["evt_1"],
            "owner": "sales",
            "occurred_at": "2026-03-02T10:00:00.000Z",
            "expansion_score": {"value": 61.0, "estimated_arr": 24000.0, "parts": []}
        }))
        .unwrap()
    }

    fn destination(target: Target, url: &str) -> Destination {
        Destination {
            name: "d".into(),
            target,
            url: url.parse().unwrap(),
            url_is_secret: false,
            timeout: Duration::from_secs(15),
            max_in_flight: 1,
            rate_limit: None,
            filter: Filter::default(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn webhooks_wrap_the_opportunity_and_sign_id_timestamp_and_body() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let opportunity = opportunity();
        let json = serde_json::to_vec(&opportunity).unwrap();
        let request = build(
            &destination(
                Target::Webhook {
                    secrets: vec![secret.clone()],
                },
                "https://example.com/hook",
            ),
            &opportunity,
            &json,
            now(),
        )
        .unwrap();
        let header = |name| {
            request
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("webhook-id"), "a20f7fb67498eb5773731d30d2baf5b3");
        assert_eq!(header("webhook-timestamp"), "1800000000");
        assert_eq!(
            header("webhook-signature"),
            sign(
                &[secret],
                "a20f7fb67498eb5773731d30d2baf5b3",
                1_800_000_000,
                &request.body
            )
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["type"], "opportunity.created");
        assert_eq!(body["timestamp"], "2026-03-02T10:00:00.000Z");
        assert_eq!(
            body["data"],
            serde_json::from_slice::<Value>(&json).unwrap()
        );
    }

    #[test]
    fn the_webhook_body_carries_the_opportunity_json_as_it_is() {
        let json = b" {\"b\": [1, 2],  \"a\":\"x\\u00e9\"}\n";
        let body = webhook_body("2026-03-02T10:00:00.000Z\"", json);
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            json!({
                "type": "opportunity.created",
                "timestamp": "2026-03-02T10:00:00.000Z\"",
                "data": {"a": "x\u{e9}", "b": [1, 2]},
            })
        );
        assert!(
            body.starts_with(br#"{"data":{"b": [1, 2],  "a":"x\u00e9"},"#),
            "copied, not parsed and written again"
        );
    }

    #[test]
    fn slack_gets_block_kit_with_the_top_reasons() {
        let message = slack_message(&opportunity());
        assert_eq!(
            message["text"],
            "Expansion: acme — seat_expansion (seat_expansion)"
        );
        assert_eq!(message["blocks"][0]["type"], "header");
        let fields = message["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields[2]["text"], "*Tier*\nhot");
        assert_eq!(fields[5]["text"], "*Owner*\nsales");
        assert_eq!(
            message["blocks"][2]["text"]["text"],
            "*Top reasons*\n• seats_used_pct (0.95): +25 pts\n• premium_features (3): +15 pts\n• invites_30d (12): +10 pts\n"
        );
    }
}
