//! Synthetic outcomes for a generated stream: which accounts really expanded, when, and
//! by how much — drawn from a hidden propensity that depends on each account's signals,
//! with noise and a base rate, so a backtest of the default playbooks shows meaningful
//! precision and lift (and a playbook that ignores the signals shows none).
//!
//! The propensity is a logistic model of what the stream shows about the account: seat
//! utilisation, how many expansion signals it sent (limit hits, premium attempts,
//! invites, API overages, seat thresholds), its health and churn risk, and whether its
//! renewal is near. An account that
//! expands does so some days after its last signal. Drawn from its own random stream,
//! so asking for outcomes never changes the events' bytes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const DAY_MS: i64 = 24 * 3_600_000;

/// What the stream showed of one account, as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSignals {
    pub account_id: String,
    /// Seats used over the seat limit, at the end of the stream.
    pub seat_utilization: f64,
    /// Expansion signals sent: limit hits, premium attempts, invites, API overages, seat
    /// thresholds.
    pub signals: u32,
    pub health: f64,
    pub churn_risk: bool,
    /// Its ARR when the stream began.
    pub arr: f64,
    /// When it sent its last signal (or, with none, its first event).
    pub last_signal_ms: i64,
    /// When its contract ends: a renewal near is a moment to expand.
    pub contract_end_ms: i64,
}

/// One real expansion: a row of the outcomes file.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    pub account_id: String,
    pub expanded_at_ms: i64,
    pub arr_delta: f64,
}

/// The model's log-odds of an account expanding.
pub fn log_odds(account: &AccountSignals) -> f64 {
    -3.4 + 5.0 * (account.seat_utilization - 0.75)
        + 0.6 * f64::from(account.signals).ln_1p()
        + 0.03 * (account.health - 70.0)
        - if account.churn_risk { 1.5 } else { 0.0 }
        + if (0..=120 * DAY_MS).contains(&(account.contract_end_ms - account.last_signal_ms)) {
            1.0
        } else {
            0.0
        }
}

/// The outcomes of `accounts`, deterministic for `seed`.
pub fn draw(accounts: &[AccountSignals], seed: u64) -> Vec<Expansion> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6f75_7463_6f6d_6573);
    let Ok(noise) = Normal::new(0.0, 0.8) else {
        return Vec::new();
    };
    let mut outcomes = Vec::new();
    for account in accounts {
        let z = log_odds(account) + noise.sample(&mut rng);
        let p = 1.0 / (1.0 + (-z).exp());
        if rng.random_bool(p.clamp(0.0, 1.0)) {
            let lag = rng.random_range(2 * DAY_MS..60 * DAY_MS);
            outcomes.push(Expansion {
                account_id: account.account_id.clone(),
                expanded_at_ms: account.last_signal_ms + lag,
                arr_delta: (account.arr * rng.random_range(0.1..0.5)).round(),
            });
        }
    }
    outcomes.sort_by_key(|o| o.expanded_at_ms);
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, utilization: f64, signals: u32) -> AccountSignals {
        AccountSignals {
            account_id: id.into(),
            seat_utilization: utilization,
            signals,
            health: 70.0,
            churn_risk: false,
            arr: 10_000.0,
            last_signal_ms: 0,
            contract_end_ms: 365 * DAY_MS,
        }
    }

    #[test]
    fn signals_raise_the_odds_and_churn_risk_lowers_them() {
        let quiet = account("a", 0.5, 0);
        let busy = account("b", 0.95, 20);
        assert!(log_odds(&busy) > log_odds(&quiet) + 2.0);
        let risky = AccountSignals {
            churn_risk: true,
            ..busy.clone()
        };
        assert!(log_odds(&risky) < log_odds(&busy));
    }

    #[test]
    fn busy_accounts_expand_more_often_after_their_signals_and_draws_repeat() {
        let accounts: Vec<AccountSignals> = (0..2_000)
            .map(|i| {
                if i % 2 == 0 {
                    account(&format!("busy{i}"), 0.95, 20)
                } else {
                    account(&format!("quiet{i}"), 0.4, 0)
                }
            })
            .collect();
        let outcomes = draw(&accounts, 7);
        assert_eq!(outcomes, draw(&accounts, 7));
        let busy = outcomes
            .iter()
            .filter(|o| o.account_id.starts_with("busy"))
            .count();
        let quiet = outcomes.len() - busy;
        assert!(busy > 3 * quiet, "busy {busy}, quiet {quiet}");
        assert!(quiet > 0, "a base rate, not zero");
        assert!(
            outcomes
                .iter()
                .all(|o| (2 * DAY_MS..60 * DAY_MS).contains(&o.expanded_at_ms))
        );
    }
}
