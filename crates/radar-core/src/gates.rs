//! Gates: expansion is never pushed on unhealthy or too-young accounts.

use crate::state::AccountState;
use crate::time::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gate {
    LowHealth,
    ChurnRisk,
    AccountTooYoung,
    OpenPaymentFailure,
    RecentExpansion,
}

impl Gate {
    pub const ALL: [Gate; 5] = [
        Gate::LowHealth,
        Gate::ChurnRisk,
        Gate::AccountTooYoung,
        Gate::OpenPaymentFailure,
        Gate::RecentExpansion,
    ];

    /// The label of `radar_opportunities_suppressed_total{gate}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::LowHealth => "low_health",
            Gate::ChurnRisk => "churn_risk",
            Gate::AccountTooYoung => "account_too_young",
            Gate::OpenPaymentFailure => "open_payment_failure",
            Gate::RecentExpansion => "recent_expansion",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Each gate is off when its setting is `None` (or `false`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gates {
    /// Suppress when the health score is known and below this.
    pub min_health_score: Option<f64>,
    pub churn_risk: bool,
    pub min_account_age: Option<Millis>,
    /// Suppress while a payment failure younger than this has no recovery after it.
    pub open_payment_failure: Option<Millis>,
    /// Suppress when an expansion closed less than this ago.
    pub recent_expansion: Option<Millis>,
}

impl Gates {
    /// The first gate, in [`Gate::ALL`] order, that suppresses opportunities now.
    pub fn blocking(&self, state: &AccountState, now: Millis) -> Option<Gate> {
        let closed =
            |at: Option<Millis>, within: Millis| at.is_some_and(|t| now.saturating_sub(t) < within);
        if let (Some(min), Some(score)) = (self.min_health_score, state.health.score.value())
            && score < min
        {
            return Some(Gate::LowHealth);
        }
        if self.churn_risk && state.churn_risk() {
            return Some(Gate::ChurnRisk);
        }
        if let Some(min_age) = self.min_account_age
            && now.saturating_sub(state.customer_since()) < min_age
        {
            return Some(Gate::AccountTooYoung);
        }
        if let Some(open_for) = self.open_payment_failure
            && state.open_payment_failure(now, open_for)
        {
            return Some(Gate::OpenPaymentFailure);
        }
        if let Some(within) = self.recent_expansion
            && closed(state.dates.last_expansion, within)
        {
            return Some(Gate::RecentExpansion);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DAY;

    fn gates() -> Gates {
        Gates {
            min_health_score: Some(60.0),
            churn_risk: true,
            min_account_age: Some(60 * DAY),
            open_payment_failure: Some(30 * DAY),
            recent_expansion: Some(90 * DAY),
        }
    }

    #[test]
    fn each_gate_blocks_on_its_own() {
        let now = 400 * DAY;
        let healthy = || {
            let mut s = AccountState::new(0);
            s.health.score.offer(Some(80.0), 0);
            s
        };
        assert_eq!(gates().blocking(&healthy(), now), None);

        let mut s = healthy();
        s.health.score.offer(Some(59.9), 0);
        assert_eq!(gates().blocking(&s, now), Some(Gate::LowHealth));

        let mut s = healthy();
        s.health.churn_risk.offer(Some(true), 0);
        assert_eq!(gates().blocking(&s, now), Some(Gate::ChurnRisk));

        let mut s = healthy();
        s.entitlement.customer_since.offer(Some(now - 59 * DAY), 0);
        assert_eq!(gates().blocking(&s, now), Some(Gate::AccountTooYoung));

        let mut s = healthy();
        s.dates.last_payment_failure = Some(now - DAY);
        assert_eq!(gates().blocking(&s, now), Some(Gate::OpenPaymentFailure));

        let mut s = healthy();
        s.dates.last_expansion = Some(now - 89 * DAY);
        assert_eq!(gates().blocking(&s, now), Some(Gate::RecentExpansion));
        s.dates.last_expansion = Some(now - 90 * DAY);
        assert_eq!(gates().blocking(&s, now), None);
    }

    #[test]
    fn unknown_health_does_not_block_and_disabled_gates_never_do() {
        let mut s = AccountState::new(0);
        assert_eq!(gates().blocking(&s, 400 * DAY), None);
        s.health.churn_risk.offer(Some(true), 0);
        let off = Gates {
            min_health_score: None,
            churn_risk: false,
            min_account_age: None,
            open_payment_failure: None,
            recent_expansion: None,
        };
        assert_eq!(off.blocking(&s, DAY), None);
    }
}
