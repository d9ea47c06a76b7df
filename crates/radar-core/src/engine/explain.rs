//! What the engine knows of one account, as JSON: for `radar replay --explain` and the
//! admin API. Not on the hot path.

use serde_json::json;

use super::Engine;
use crate::metric::{At, Metric};
use crate::time::{Millis, format_rfc3339};

impl Engine {
    /// An account's state, score and breakdown as of its latest event, for `--explain`
    /// and the admin API.
    pub fn explain(&self, account_id: &str) -> Option<serde_json::Value> {
        let settings = &*self.settings;
        let state = self.accounts.get(account_id)?;
        let now = state.stream_time;
        let bucket = u32::try_from(now / settings.bucket).unwrap_or(u32::MAX);
        let at = At { state, now, bucket };
        let mut values = Vec::new();
        settings.metrics.eval(at, &mut values);
        let score = settings.model.score(&values);
        let date = |t: Option<Millis>| t.map(format_rfc3339);
        let windows: Vec<serde_json::Value> = settings
            .metrics
            .iter()
            .filter_map(|metric| match metric {
                Metric::Count {
                    event,
                    key,
                    buckets,
                } => Some(json!({
                    "event": settings.types.name(event),
                    "window_hours": i64::from(buckets) * settings.bucket / crate::time::HOUR,
                    "count": state.windows.count(key, bucket, buckets),
                })),
                _ => None,
            })
            .collect();
        Some(json!({
            "account_id": account_id,
            "stream_time": format_rfc3339(now),
            "first_seen": format_rfc3339(state.first_seen),
            "score": score,
            "tier": settings.model.tier(score),
            "blocked_by": settings.gates.blocking(state, now).map(|g| g.as_str()),
            "breakdown": settings.model.breakdown(&values),
            "windows": windows,
            "entitlement": {
                "plan": state.entitlement.plan.get(),
                "seat_limit": state.entitlement.seat_limit.value(),
                "api_limit": state.entitlement.api_limit.value(),
                "arr": state.entitlement.arr.value(),
                "contract_end": date(state.entitlement.contract_end.value()),
                "customer_since": date(state.entitlement.customer_since.value()),
            },
            "usage": {
                "seats_used": state.usage.seats_used.value(),
                "active_users_1d": state.usage.active_users_1d.value(),
                "active_users_30d": state.usage.active_users_30d.value(),
                "api_calls": state.usage.api_calls.value(),
                "features_adopted": state.usage.features_adopted.value(),
            },
            "health": {
                "health_score": state.health.score.value(),
                "churn_risk": state.health.churn_risk.value(),
                "nps": state.health.nps.value(),
            },
            "dates": {
                "last_login": date(state.dates.last_login),
                "last_qbr": date(state.dates.last_qbr),
                "last_payment_failure": date(state.dates.last_payment_failure),
                "last_payment_recovery": date(state.dates.last_payment_recovery),
                "last_expansion": date(state.dates.last_expansion),
            },
        }))
    }
}
