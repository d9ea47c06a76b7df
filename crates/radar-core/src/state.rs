//! Per-account state: entitlements, usage, health, engagement dates, window counters,
//! recent event ids and playbook cooldowns.
//!
//! Every latest-value field keeps the event time of the value it holds and takes a new
//! value only from an event at least as recent ([`Latest`]); dates keep their maximum. So a
//! late event (within the lateness bound) never overwrites newer information, and the state
//! does not depend on the order of arrival within that bound (events with the very same
//! timestamp are the one exception: the later arrival wins).

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::dedupe::SeenEvents;
use crate::event::Properties;
use crate::scoring::Tier;
use crate::time::Millis;
use crate::types::Builtin;
use crate::windows::Windows;

/// A value and the event time it was reported at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latest<T> {
    value: Option<T>,
    at: Millis,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Latest {
            value: None,
            at: Millis::MIN,
        }
    }
}

impl<T> Latest<T> {
    /// Takes `value` (when there is one) if it is at least as recent as the one held.
    pub fn offer(&mut self, value: Option<T>, at: Millis) {
        if let Some(v) = value
            && at >= self.at
        {
            self.value = Some(v);
            self.at = at;
        }
    }

    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

impl<T: Copy> Latest<T> {
    pub fn value(&self) -> Option<T> {
        self.value
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entitlement {
    pub plan: Latest<compact_str::CompactString>,
    pub seat_limit: Latest<u32>,
    pub api_limit: Latest<u64>,
    pub arr: Latest<f64>,
    pub contract_end: Latest<Millis>,
    pub customer_since: Latest<Millis>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub seats_used: Latest<u32>,
    pub active_users_1d: Latest<u32>,
    pub active_users_30d: Latest<u32>,
    pub api_calls: Latest<u64>,
    pub features_adopted: Latest<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub score: Latest<f64>,
    pub churn_risk: Latest<bool>,
    pub nps: Latest<f64>,
}

/// The latest time of each dated occurrence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dates {
    pub last_login: Option<Millis>,
    pub last_qbr: Option<Millis>,
    pub last_payment_failure: Option<Millis>,
    pub last_payment_recovery: Option<Millis>,
    pub last_expansion: Option<Millis>,
}

/// When a playbook (or a tier rise) last produced an opportunity for this account, and
/// when a gate last held one back. Both follow the cooldown: one opportunity, and one
/// suppression, per (account, trigger) per cooldown; a suppression does not delay the next
/// opportunity once the gate lifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooldown {
    /// [`trigger_key`] of the playbook's name (or `tier:<tier>`).
    pub trigger: u32,
    /// [`NEVER`] until the first opportunity.
    pub fired_at: Millis,
    /// [`NEVER`] until the first suppression.
    pub suppressed_at: Millis,
}

/// A time before any event: "never" for cooldowns, so checks need no `Option`.
pub const NEVER: Millis = Millis::MIN;

/// The stable key of a trigger: a hash of its name, so cooldowns saved with an account
/// stay attached to their playbook whatever the order of the config.
pub fn trigger_key(name: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub first_seen: Millis,
    /// The latest event time seen: this account's stream time.
    pub stream_time: Millis,
    pub entitlement: Entitlement,
    pub usage: Usage,
    pub health: Health,
    pub dates: Dates,
    /// The tier of the score after the last accepted event.
    pub tier: Tier,
    pub windows: Windows,
    pub seen: SeenEvents,
    /// Inline for the first two triggers: checked on every firing, so worth no cache miss.
    pub cooldowns: SmallVec<[Cooldown; 2]>,
    /// Whether an event reached the account since the engine last handed its changes on
    /// (see [`crate::Engine::take_changes`]).
    #[serde(skip)]
    pub(crate) changed: Changed,
}

/// Bookkeeping for incremental checkpoints, not state: never saved, and never makes two
/// states differ.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Changed(pub bool);

impl PartialEq for Changed {
    fn eq(&self, _: &Changed) -> bool {
        true
    }
}

/// Keeps in `slot` the latest of its time and `time`.
pub(crate) fn latest(slot: &mut Option<Millis>, time: Millis) {
    *slot = Some(slot.map_or(time, |t| t.max(time)));
}

impl AccountState {
    pub fn new(first_seen: Millis) -> Self {
        AccountState {
            first_seen,
            stream_time: first_seen,
            entitlement: Entitlement::default(),
            usage: Usage::default(),
            health: Health::default(),
            dates: Dates::default(),
            tier: Tier::Cold,
            windows: Windows::default(),
            seen: SeenEvents::default(),
            cooldowns: SmallVec::new(),
            changed: Changed(false),
        }
    }

    /// Applies the state part of an event of a built-in type at event time `t`.
    pub fn apply(&mut self, kind: Builtin, t: Millis, props: &Properties) {
        let (e, u, h) = (&mut self.entitlement, &mut self.usage, &mut self.health);
        match kind {
            Builtin::SeatThreshold90Pct => {
                u.seats_used.offer(props.seats_used, t);
                e.seat_limit.offer(props.seat_limit, t);
            }
            Builtin::ApiTierExceeded => {
                u.api_calls.offer(props.api_calls, t);
                e.api_limit.offer(props.api_limit, t);
            }
            Builtin::EntitlementUpdated => {
                e.plan.offer(props.plan.clone(), t);
                e.seat_limit.offer(props.seat_limit, t);
                e.api_limit.offer(props.api_limit, t);
                e.arr.offer(props.arr, t);
                e.contract_end.offer(props.contract_end, t);
                e.customer_since.offer(props.customer_since, t);
            }
            Builtin::UsageSnapshot => {
                u.seats_used.offer(props.seats_used, t);
                u.active_users_1d.offer(props.active_users_1d, t);
                u.active_users_30d.offer(props.active_users_30d, t);
                u.api_calls.offer(props.api_calls_period, t);
                u.features_adopted.offer(props.features_adopted, t);
            }
            Builtin::HealthUpdated => {
                h.score.offer(props.health_score, t);
                h.churn_risk.offer(props.churn_risk, t);
            }
            Builtin::NpsSubmitted => h.nps.offer(props.score, t),
            Builtin::UserLogin => latest(&mut self.dates.last_login, t),
            Builtin::QbrCompleted => latest(&mut self.dates.last_qbr, t),
            Builtin::PaymentFailed => latest(&mut self.dates.last_payment_failure, t),
            Builtin::PaymentRecovered => latest(&mut self.dates.last_payment_recovery, t),
            // The new ARR arrives with the next entitlement_updated from billing.
            Builtin::ExpansionClosed => latest(&mut self.dates.last_expansion, t),
            Builtin::FeatureLimitHit
            | Builtin::TeamInviteSent
            | Builtin::PremiumFeatureAttempted => {}
        }
    }

    /// Account age is counted from `customer_since`, else from the first event seen.
    pub fn customer_since(&self) -> Millis {
        self.entitlement
            .customer_since
            .value()
            .unwrap_or(self.first_seen)
    }

    pub fn churn_risk(&self) -> bool {
        self.health.churn_risk.value().unwrap_or(false)
    }

    /// A payment failure is open when no recovery came after it and it is younger than
    /// `open_for`.
    pub fn open_payment_failure(&self, now: Millis, open_for: Millis) -> bool {
        match self.dates.last_payment_failure {
            Some(failed) => {
                self.dates.last_payment_recovery.is_none_or(|r| r < failed)
                    && now.saturating_sub(failed) < open_for
            }
            None => false,
        }
    }

    fn memo(&mut self, trigger: u32) -> &mut Cooldown {
        match self.cooldowns.iter().position(|c| c.trigger == trigger) {
            Some(i) => &mut self.cooldowns[i],
            None => {
                self.cooldowns.push(Cooldown {
                    trigger,
                    fired_at: NEVER,
                    suppressed_at: NEVER,
                });
                let last = self.cooldowns.len() - 1;
                &mut self.cooldowns[last]
            }
        }
    }

    fn within(since: Millis, now: Millis, cooldown: Millis) -> bool {
        now < since.saturating_add(cooldown)
    }

    /// Whether `trigger` produced an opportunity less than `cooldown` before `now`.
    pub fn in_cooldown(&self, trigger: u32, now: Millis, cooldown: Millis) -> bool {
        self.cooldowns
            .iter()
            .find(|c| c.trigger == trigger)
            .is_some_and(|c| Self::within(c.fired_at, now, cooldown))
    }

    pub fn start_cooldown(&mut self, trigger: u32, fired_at: Millis) {
        let memo = self.memo(trigger);
        memo.fired_at = memo.fired_at.max(fired_at);
    }

    /// Records a gate holding back `trigger` at `now`; true when this is the first time
    /// within the cooldown (so it is counted once, like an opportunity would be).
    pub fn note_suppressed(&mut self, trigger: u32, now: Millis, cooldown: Millis) -> bool {
        let memo = self.memo(trigger);
        if Self::within(memo.suppressed_at, now, cooldown) {
            return false;
        }
        memo.suppressed_at = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(n: u32) -> Properties {
        Properties {
            seats_used: Some(n),
            ..Properties::default()
        }
    }

    #[test]
    fn a_late_value_does_not_overwrite_a_newer_one() {
        let mut s = AccountState::new(0);
        s.apply(Builtin::UsageSnapshot, 200, &seats(9));
        s.apply(Builtin::UsageSnapshot, 100, &seats(5));
        assert_eq!(s.usage.seats_used.value(), Some(9));
        s.apply(Builtin::UsageSnapshot, 300, &seats(7));
        assert_eq!(s.usage.seats_used.value(), Some(7));
    }

    #[test]
    fn fields_are_versioned_one_by_one() {
        // A newer event that does not carry api_calls must not shield it from an older
        // event that does.
        let mut s = AccountState::new(0);
        let api = Properties {
            api_calls: Some(500),
            ..Properties::default()
        };
        s.apply(Builtin::UsageSnapshot, 200, &seats(9));
        s.apply(Builtin::ApiTierExceeded, 150, &api);
        assert_eq!(s.usage.api_calls.value(), Some(500));
        assert_eq!(s.usage.seats_used.value(), Some(9));
    }

    #[test]
    fn payment_failures_close_on_recovery_or_age() {
        let mut s = AccountState::new(0);
        let none = Properties::default();
        assert!(!s.open_payment_failure(10, 100));
        s.apply(Builtin::PaymentFailed, 10, &none);
        assert!(s.open_payment_failure(50, 100));
        assert!(!s.open_payment_failure(110, 100));
        s.apply(Builtin::PaymentRecovered, 20, &none);
        assert!(!s.open_payment_failure(50, 100));
        s.apply(Builtin::PaymentFailed, 30, &none);
        assert!(s.open_payment_failure(50, 100));
    }

    #[test]
    fn suppressions_are_counted_once_per_cooldown_and_do_not_delay_opportunities() {
        let mut s = AccountState::new(0);
        assert!(s.note_suppressed(1, 10, 100));
        assert!(!s.note_suppressed(1, 50, 100));
        assert!(!s.in_cooldown(1, 60, 100));
        s.start_cooldown(1, 60);
        assert!(s.in_cooldown(1, 159, 100));
        assert!(!s.in_cooldown(1, 160, 100));
        assert!(s.note_suppressed(1, 110, 100));
        assert!(!s.in_cooldown(2, 60, 100));
    }
}
