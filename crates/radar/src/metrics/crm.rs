//! The metrics of a CRM destination's credentials and API allocation: whether its
//! credentials are degraded, its token requests, and the allocation its answers report.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::register;

/// See the module doc.
#[derive(Debug, Clone)]
pub(super) struct CrmMetrics {
    auth_degraded: IntGaugeVec,
    token_requests: IntCounterVec,
    api_used: IntGaugeVec,
    api_limit: IntGaugeVec,
    api_burst: IntGaugeVec,
    api_paced: IntGaugeVec,
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric =
        IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    register(registry, metric)
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl CrmMetrics {
    pub(super) fn new(r: &Registry) -> CrmMetrics {
        let token_requests = IntCounterVec::new(
            Opts::new(
                "radar_delivery_token_requests_total",
                "OAuth token requests by outcome: issued, refused (the credentials), unavailable (the endpoint).",
            ),
            &["destination", "outcome"],
        )
        .unwrap_or_else(|e| panic!("token requests: {e}"));
        CrmMetrics {
            auth_degraded: gauge_vec(
                r,
                "radar_delivery_auth_degraded",
                "1 while the destination's credentials are refused and it holds its queue, trying them again with backoff (the reason is in the log and GET /v1/destinations); 0 when they work.",
                &["destination"],
            ),
            token_requests: register(r, token_requests),
            api_used: gauge_vec(
                r,
                "radar_crm_api_used",
                "Requests of the CRM's daily API allocation used, as its last answer reported (Sforce-Limit-Info, X-HubSpot-RateLimit-Daily-Remaining).",
                &["destination"],
            ),
            api_limit: gauge_vec(
                r,
                "radar_crm_api_limit",
                "The CRM's daily API allocation, as its last answer reported.",
                &["destination"],
            ),
            api_burst: gauge_vec(
                r,
                "radar_crm_api_burst_remaining",
                "HubSpot's ten-second window: calls left in it, as the last answer reported (X-HubSpot-RateLimit-Remaining, of X-HubSpot-RateLimit-Max).",
                &["destination"],
            ),
            api_paced: gauge_vec(
                r,
                "radar_crm_api_paced",
                "1 while calls to the CRM are paced because its allocation is past slow_down_at.",
                &["destination"],
            ),
        }
    }

    /// A configured destination: its credentials' series at 0 from the start.
    pub(super) fn known(&self, destination: &str) {
        self.auth_degraded.with_label_values(&[destination]);
    }

    pub(super) fn credentials(&self, destination: &str, degraded: bool) {
        self.auth_degraded
            .with_label_values(&[destination])
            .set(i64::from(degraded));
    }

    pub(super) fn token_request(&self, destination: &str, outcome: &str) {
        self.token_requests
            .with_label_values(&[destination, outcome])
            .inc();
    }

    pub(super) fn usage(&self, destination: &str, used: u64, limit: u64) {
        self.api_used
            .with_label_values(&[destination])
            .set(gauge(used));
        self.api_limit
            .with_label_values(&[destination])
            .set(gauge(limit));
    }

    pub(super) fn burst(&self, destination: &str, remaining: u64) {
        self.api_burst
            .with_label_values(&[destination])
            .set(gauge(remaining));
    }

    pub(super) fn paced(&self, destination: &str, paced: bool) {
        self.api_paced
            .with_label_values(&[destination])
            .set(i64::from(paced));
    }
}
