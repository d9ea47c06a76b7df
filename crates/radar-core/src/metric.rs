//! Account metrics: the numbers playbook conditions and score components read.
//!
//! A metric is evaluated for one account at one event ("now" is the event's time and
//! bucket). `None` means unknown (e.g. a ratio without its limit): a condition on an
//! unknown metric is false, and a score component gives its `missing` points.

use crate::state::AccountState;
use crate::time::{Millis, days_between};
use crate::types::TypeId;
use crate::windows::SeriesKey;

/// Metric names accepted in config, for error messages.
pub const NAMES: &[&str] = &[
    "seat_utilization",
    "api_utilization",
    "dau_mau",
    "features_adopted",
    "seats_used",
    "seat_limit",
    "health_score",
    "nps",
    "arr",
    "days_since_login",
    "days_since_qbr",
    "days_to_contract_end",
    "account_age_days",
    "days_since_payment_failure",
    "days_since_expansion",
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// seats_used / seat_limit.
    SeatUtilization,
    /// API calls this period / api_limit.
    ApiUtilization,
    /// active_users_1d / active_users_30d.
    DauMau,
    FeaturesAdopted,
    SeatsUsed,
    SeatLimit,
    HealthScore,
    Nps,
    Arr,
    DaysSinceLogin,
    DaysSinceQbr,
    /// Negative once the contract has ended.
    DaysToContractEnd,
    AccountAgeDays,
    DaysSincePaymentFailure,
    DaysSinceExpansion,
    /// Events of one counted type in the last `buckets` buckets.
    Count {
        event: TypeId,
        key: SeriesKey,
        buckets: u32,
    },
}

/// The distinct metrics a configuration reads. They are evaluated once per event into a
/// slice of values that the score components and the playbook conditions index, so a
/// metric both read (say, seat utilisation) costs one evaluation, not two.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSet {
    metrics: Vec<Metric>,
}

/// A metric's place in its [`MetricSet`] and in the values evaluated from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricRef(usize);

impl MetricSet {
    /// The reference of `metric`, added if new.
    pub fn add(&mut self, metric: Metric) -> MetricRef {
        match self.metrics.iter().position(|m| *m == metric) {
            Some(i) => MetricRef(i),
            None => {
                self.metrics.push(metric);
                MetricRef(self.metrics.len() - 1)
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Metric> + '_ {
        self.metrics.iter().copied()
    }

    /// Replaces `values` with every metric's value at `at`.
    pub fn eval(&self, at: At<'_>, values: &mut Vec<Option<f64>>) {
        values.resize(self.metrics.len(), None);
        for (value, metric) in values.iter_mut().zip(&self.metrics) {
            *value = metric.value(at);
        }
    }
}

impl MetricRef {
    /// This metric's value among `values` evaluated from its set.
    pub fn of(self, values: &[Option<f64>]) -> Option<f64> {
        values[self.0]
    }
}

/// Where a metric is evaluated: an account at an event.
#[derive(Clone, Copy, Debug)]
pub struct At<'s> {
    pub state: &'s AccountState,
    pub now: Millis,
    pub bucket: u32,
}

fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    }
}

impl Metric {
    /// A simple (non-count) metric by its config name.
    pub fn named(name: &str) -> Option<Metric> {
        Some(match name {
            "seat_utilization" => Metric::SeatUtilization,
            "api_utilization" => Metric::ApiUtilization,
            "dau_mau" => Metric::DauMau,
            "features_adopted" => Metric::FeaturesAdopted,
            "seats_used" => Metric::SeatsUsed,
            "seat_limit" => Metric::SeatLimit,
            "health_score" => Metric::HealthScore,
            "nps" => Metric::Nps,
            "arr" => Metric::Arr,
            "days_since_login" => Metric::DaysSinceLogin,
            "days_since_qbr" => Metric::DaysSinceQbr,
            "days_to_contract_end" => Metric::DaysToContractEnd,
            "account_age_days" => Metric::AccountAgeDays,
            "days_since_payment_failure" => Metric::DaysSincePaymentFailure,
            "days_since_expansion" => Metric::DaysSinceExpansion,
            _ => return None,
        })
    }

    #[inline]
    pub fn value(self, at: At<'_>) -> Option<f64> {
        let s = at.state;
        let since = |t: Option<Millis>| t.map(|t| days_between(t, at.now));
        match self {
            Metric::SeatUtilization => ratio(
                s.usage.seats_used.value().map(f64::from),
                s.entitlement.seat_limit.value().map(f64::from),
            ),
            Metric::ApiUtilization => ratio(
                s.usage.api_calls.value().map(|c| c as f64),
                s.entitlement.api_limit.value().map(|l| l as f64),
            ),
            Metric::DauMau => ratio(
                s.usage.active_users_1d.value().map(f64::from),
                s.usage.active_users_30d.value().map(f64::from),
            ),
            Metric::FeaturesAdopted => s.usage.features_adopted.value().map(f64::from),
            Metric::SeatsUsed => s.usage.seats_used.value().map(f64::from),
            Metric::SeatLimit => s.entitlement.seat_limit.value().map(f64::from),
            Metric::HealthScore => s.health.score.value(),
            Metric::Nps => s.health.nps.value(),
            Metric::Arr => s.entitlement.arr.value(),
            Metric::DaysSinceLogin => since(s.dates.last_login),
            Metric::DaysSinceQbr => since(s.dates.last_qbr),
            Metric::DaysToContractEnd => s
                .entitlement
                .contract_end
                .value()
                .map(|end| days_between(at.now, end)),
            Metric::AccountAgeDays => Some(days_between(s.customer_since(), at.now)),
            Metric::DaysSincePaymentFailure => since(s.dates.last_payment_failure),
            Metric::DaysSinceExpansion => since(s.dates.last_expansion),
            Metric::Count { key, buckets, .. } => {
                Some(f64::from(s.windows.count(key, at.bucket, buckets)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DAY;

    #[test]
    fn every_listed_name_resolves() {
        for name in NAMES {
            assert!(Metric::named(name).is_some(), "{name}");
        }
    }

    #[test]
    fn ratios_need_a_positive_denominator() {
        let mut s = AccountState::new(0);
        fn at(state: &AccountState) -> At<'_> {
            At {
                state,
                now: 10 * DAY,
                bucket: 0,
            }
        }
        assert_eq!(Metric::SeatUtilization.value(at(&s)), None);
        s.usage.seats_used.offer(Some(9), 0);
        s.entitlement.seat_limit.offer(Some(0), 0);
        assert_eq!(Metric::SeatUtilization.value(at(&s)), None);
        s.entitlement.seat_limit.offer(Some(10), 0);
        assert_eq!(Metric::SeatUtilization.value(at(&s)), Some(0.9));
        assert_eq!(Metric::AccountAgeDays.value(at(&s)), Some(10.0));
        s.entitlement.contract_end.offer(Some(4 * DAY), 0);
        assert_eq!(Metric::DaysToContractEnd.value(at(&s)), Some(-6.0));
    }
}
