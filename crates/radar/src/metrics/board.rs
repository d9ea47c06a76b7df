//! What `GET /v1/destinations` shows: each destination's kind, how it authenticates,
//! whether its credentials work (with the vendor's reason while they do not), its
//! breaker, its queue and a CRM's API allocation, as delivery last reported them. Kept beside the metrics
//! because the same reports feed both; the reason is text, which no metric can carry.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use radar_delivery::breaker::BreakerState;
use radar_delivery::{Destination, Target};
use serde::Serialize;

use super::Metrics;

/// One destination as `GET /v1/destinations` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationStatus {
    pub name: String,
    /// webhook, slack, hubspot or salesforce.
    pub kind: &'static str,
    /// A CRM's `auth`: token, jwt_bearer, client_credentials or refresh_token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<&'static str>,
    /// `ok`, or `degraded` while the vendor refuses the credentials or its token endpoint
    /// does not answer (the queue is held).
    pub credentials: &'static str,
    /// What the vendor said, while degraded; never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    pub queue_depth: u64,
    pub oldest_age_seconds: f64,
    /// The CRM's daily API allocation as its last answer reported: used and limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_usage: Option<[u64; 2]>,
    /// Calls are paced: the allocation is past `slow_down_at`.
    pub paced: bool,
}

/// Every configured destination's status.
#[derive(Debug, Default)]
pub struct DestinationBoard {
    entries: Mutex<BTreeMap<String, DestinationStatus>>,
}

impl DestinationBoard {
    /// Lists a configured destination, before anything happens to it.
    pub fn add(&self, name: &str, kind: &'static str, auth: Option<&'static str>) {
        self.update(name, |status| {
            status.kind = kind;
            status.auth = auth;
        });
    }

    pub fn snapshot(&self) -> Vec<DestinationStatus> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.values().cloned().collect()
    }

    pub(super) fn credentials(&self, name: &str, degraded: Option<&str>) {
        self.update(name, |status| {
            status.credentials = if degraded.is_some() { "degraded" } else { "ok" };
            status.reason = degraded.map(str::to_owned);
        });
    }

    pub(super) fn breaker(&self, name: &str, state: BreakerState) {
        self.update(name, |status| {
            status.breaker = match state {
                BreakerState::Closed => "closed",
                BreakerState::Open => "open",
                BreakerState::HalfOpen => "half_open",
            };
        });
    }

    pub(super) fn queue(&self, name: &str, depth: u64, oldest_age: Duration) {
        self.update(name, |status| {
            status.queue_depth = depth;
            status.oldest_age_seconds = oldest_age.as_secs_f64();
        });
    }

    pub(super) fn api_usage(&self, name: &str, used: u64, limit: u64) {
        self.update(name, |status| status.api_usage = Some([used, limit]));
    }

    pub(super) fn paced(&self, name: &str, paced: bool) {
        self.update(name, |status| status.paced = paced);
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut DestinationStatus)) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let status = entries
            .entry(name.to_owned())
            .or_insert_with(|| DestinationStatus {
                name: name.to_owned(),
                kind: "unknown",
                auth: None,
                credentials: "ok",
                reason: None,
                breaker: "closed",
                queue_depth: 0,
                oldest_age_seconds: 0.0,
                api_usage: None,
                paced: false,
            });
        change(status);
    }
}

impl Metrics {
    /// The configured destinations, listed from the start on `GET /v1/destinations`.
    pub fn destinations(&self, destinations: &[Destination]) {
        for destination in destinations {
            let auth = match &destination.target {
                Target::HubSpot { auth, .. } | Target::Salesforce { auth, .. } => {
                    Some(auth.grant.name())
                }
                Target::Webhook { .. } | Target::Slack => None,
            };
            self.board
                .add(&destination.name, destination.target.kind(), auth);
            self.dead_lettered.with_label_values(&[&destination.name]);
        }
    }

    /// Each destination's status, for `GET /v1/destinations`.
    pub fn destination_statuses(&self) -> Vec<DestinationStatus> {
        self.board.snapshot()
    }
}
