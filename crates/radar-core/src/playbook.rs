//! Playbooks: named, declarative trigger conditions over the current event and the
//! account's metrics, each producing one kind of opportunity.

use crate::metric::{At, Metric};
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
        metric: Metric,
        cmp: Cmp,
        value: f64,
    },
    /// The account's tier after this event is at least this one.
    TierAtLeast(Tier),
}

/// What a condition is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'s> {
    pub at: At<'s>,
    pub event_type: TypeId,
    pub tier: Tier,
}

impl Condition {
    pub fn holds(&self, facts: &Facts<'_>) -> bool {
        match self {
            Condition::EventIs(t) => facts.event_type == *t,
            Condition::Metric { metric, cmp, value } => {
                metric.value(facts.at).is_some_and(|v| cmp.holds(v, *value))
            }
            Condition::TierAtLeast(tier) => facts.tier >= *tier,
        }
    }
}

/// Fires when every `all` condition holds and, if `any` is not empty, one of `any` does.
#[derive(Clone, Debug, PartialEq)]
pub struct Playbook {
    pub name: compact_str::CompactString,
    pub kind: Kind,
    pub all: Vec<Condition>,
    pub any: Vec<Condition>,
    pub cooldown: Millis,
}

impl Playbook {
    pub fn fires(&self, facts: &Facts<'_>) -> bool {
        self.all.iter().all(|c| c.holds(facts))
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(facts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AccountState;

    #[test]
    fn all_and_any_combine() {
        let mut state = AccountState::new(0);
        state.usage.seats_used.offer(Some(9), 0);
        state.entitlement.seat_limit.offer(Some(10), 0);
        let seats = Condition::Metric {
            metric: Metric::SeatUtilization,
            cmp: Cmp::Ge,
            value: 0.9,
        };
        let book = Playbook {
            name: "seat_expansion".into(),
            kind: Kind::SeatExpansion,
            all: vec![Condition::TierAtLeast(Tier::Warm)],
            any: vec![Condition::EventIs(TypeId(0)), seats],
            cooldown: 0,
        };
        let facts = |tier, event| Facts {
            at: At {
                state: &state,
                now: 0,
                bucket: 0,
            },
            event_type: TypeId(event),
            tier,
        };
        assert!(book.fires(&facts(Tier::Warm, 3)));
        assert!(!book.fires(&facts(Tier::Cold, 0)));
        state.usage.seats_used.offer(Some(8), 0);
        let facts = |event| Facts {
            at: At {
                state: &state,
                now: 0,
                bucket: 0,
            },
            event_type: TypeId(event),
            tier: Tier::Hot,
        };
        assert!(!book.fires(&facts(3)));
        assert!(book.fires(&facts(0)));
    }

    #[test]
    fn unknown_metrics_never_hold() {
        let state = AccountState::new(0);
        let facts = Facts {
            at: At {
                state: &state,
                now: 0,
                bucket: 0,
            },
            event_type: TypeId(0),
            tier: Tier::Cold,
        };
        for cmp in [Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge, Cmp::Eq] {
            let c = Condition::Metric {
                metric: Metric::Nps,
                cmp,
                value: 0.0,
            };
            assert!(!c.holds(&facts));
        }
    }
}
