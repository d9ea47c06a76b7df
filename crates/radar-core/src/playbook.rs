//! Playbooks: named, declarative trigger conditions over the current event and the
//! account's metrics, each producing one kind of opportunity.

use crate::metric::MetricRef;
use crate::opportunity::Kind;
use crate::scoring::Tier;
use crate::time::Millis;
use crate::types::TypeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Cmp {
    pub fn parse(op: &str) -> Option<Cmp> {
        Some(match op {
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            "==" => Cmp::Eq,
            _ => return None,
        })
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
            Cmp::Eq => left == right,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// The current event is of this type.
    EventIs(TypeId),
    /// A metric compared to a constant; false when the metric is unknown.
    Metric {
        metric: MetricRef,
        cmp: Cmp,
        value: f64,
    },
    /// The account's tier after this event is at least this one.
    TierAtLeast(Tier),
}

/// What a condition is checked against: the event's type, the metric values evaluated for
/// it, and the tier of the score after it.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'s> {
    pub values: &'s [Option<f64>],
    pub event_type: TypeId,
    pub tier: Tier,
}

impl Condition {
    pub fn holds(&self, facts: &Facts<'_>) -> bool {
        match self {
            Condition::EventIs(t) => facts.event_type == *t,
            Condition::Metric { metric, cmp, value } => metric
                .of(facts.values)
                .is_some_and(|v| cmp.holds(v, *value)),
            Condition::TierAtLeast(tier) => facts.tier >= *tier,
        }
    }
}

/// Fires when every `all` condition holds and, if `any` is not empty, one of `any` does.
#[derive(Clone, Debug, PartialEq)]
pub struct Playbook {
    pub name: compact_str::CompactString,
    /// [`crate::state::trigger_key`] of the name: what its cooldowns are saved under.
    pub key: u32,
    pub kind: Kind,
    pub all: Vec<Condition>,
    pub any: Vec<Condition>,
    pub cooldown: Millis,
    /// Evaluated like the others, its opportunities marked and delivered nowhere.
    pub shadow: bool,
}

impl Playbook {
    #[inline]
    pub fn fires(&self, facts: &Facts<'_>) -> bool {
        self.all.iter().all(|c| c.holds(facts))
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(facts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{At, Metric, MetricSet};
    use crate::state::AccountState;

    fn facts(values: &[Option<f64>], tier: Tier, event: u16) -> Facts<'_> {
        Facts {
            values,
            event_type: TypeId(event),
            tier,
        }
    }

    #[test]
    fn all_and_any_combine() {
        let mut metrics = MetricSet::default();
        let seats = Condition::Metric {
            metric: metrics.add(Metric::SeatUtilization),
            cmp: Cmp::Ge,
            value: 0.9,
        };
        let book = Playbook {
            name: "seat_expansion".into(),
            key: 1,
            kind: Kind::SeatExpansion,
            all: vec![Condition::TierAtLeast(Tier::Warm)],
            any: vec![Condition::EventIs(TypeId(0)), seats],
            cooldown: 0,
            shadow: false,
        };
        let mut state = AccountState::new(0);
        state.usage.seats_used.offer(Some(9), 0);
        state.entitlement.seat_limit.offer(Some(10), 0);
        let mut values = Vec::new();
        metrics.eval(
            At {
                state: &state,
                now: 0,
                bucket: 0,
            },
            &mut values,
        );
        assert!(book.fires(&facts(&values, Tier::Warm, 3)));
        assert!(!book.fires(&facts(&values, Tier::Cold, 0)));

        state.usage.seats_used.offer(Some(8), 1);
        metrics.eval(
            At {
                state: &state,
                now: 0,
                bucket: 0,
            },
            &mut values,
        );
        assert!(!book.fires(&facts(&values, Tier::Hot, 3)));
        assert!(book.fires(&facts(&values, Tier::Hot, 0)));
    }

    #[test]
    fn unknown_metrics_never_hold() {
        let mut metrics = MetricSet::default();
        let nps = metrics.add(Metric::Nps);
        let mut values = Vec::new();
        let state = AccountState::new(0);
        metrics.eval(
            At {
                state: &state,
                now: 0,
                bucket: 0,
            },
            &mut values,
        );
        for cmp in [Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge, Cmp::Eq] {
            let c = Condition::Metric {
                metric: nps,
                cmp,
                value: 0.0,
            };
            assert!(!c.holds(&facts(&values, Tier::Cold, 0)));
        }
    }
}
