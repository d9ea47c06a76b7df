//! The PQL score: configured components summed, then mapped to a tier.
//!
//! Both read metric values evaluated once per event (see [`crate::metric::MetricSet`]).
//! On the hot path only the total is computed ([`ScoreModel::score`]); the breakdown is
//! built when an opportunity or an explanation needs it, from the same function, so the two
//! can never disagree.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::metric::MetricRef;
use crate::table::Table;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Cold,
    Warm,
    Hot,
    Critical,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Cold, Tier::Warm, Tier::Hot, Tier::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Cold => "cold",
            Tier::Warm => "warm",
            Tier::Hot => "hot",
            Tier::Critical => "critical",
        }
    }

    pub fn parse(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One component: a metric through a table, capped.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub name: CompactString,
    pub metric: MetricRef,
    pub table: Table,
    pub cap: f64,
    /// Points when the metric is unknown.
    pub missing: f64,
}

impl Component {
    fn centi_points(&self, value: Option<f64>) -> u64 {
        let raw = value.map_or(self.missing, |v| self.table.eval(v));
        centi(raw.min(self.cap))
    }
}

/// One line of a score's breakdown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakdownItem {
    pub component: CompactString,
    /// The metric's value, `null` when unknown.
    pub value: Option<f64>,
    pub points: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScoreModel {
    pub components: Vec<Component>,
    /// Minimum score of warm, hot and critical.
    pub tier_floors: [f64; 3],
}

/// Two decimals are plenty for points and keep float noise out of payloads.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Points in hundredths, rounded half up. Points are never negative nor above 10⁹
/// (settings refuse negative tables and caps, and caps above that); integer hundredths
/// make the score exactly the sum of its breakdown, and avoid the libm call `f64::round`
/// costs on baseline x86-64. Converted through `i64`, one instruction on x86-64 where
/// `as u64` takes a dozen, and exact in that range.
fn centi(points: f64) -> u64 {
    debug_assert!((0.0..=crate::settings::MAX_CAP).contains(&points));
    (points * 100.0 + 0.5) as i64 as u64
}

fn from_centi(centi: u64) -> f64 {
    centi as f64 / 100.0
}

impl ScoreModel {
    pub fn score(&self, values: &[Option<f64>]) -> f64 {
        let total: u64 = self
            .components
            .iter()
            .map(|c| c.centi_points(c.metric.of(values)))
            .sum();
        from_centi(total)
    }

    pub fn breakdown(&self, values: &[Option<f64>]) -> Vec<BreakdownItem> {
        self.components
            .iter()
            .map(|c| {
                let value = c.metric.of(values);
                BreakdownItem {
                    component: c.name.clone(),
                    value: value.map(|v| (v * 10_000.0).round() / 10_000.0),
                    points: from_centi(c.centi_points(value)),
                }
            })
            .collect()
    }

    pub fn tier(&self, score: f64) -> Tier {
        let [warm, hot, critical] = self.tier_floors;
        if score >= critical {
            Tier::Critical
        } else if score >= hot {
            Tier::Hot
        } else if score >= warm {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }

    /// The highest score the model can give.
    pub fn max_score(&self) -> f64 {
        self.components
            .iter()
            .map(|c| c.cap.min(c.table.max_y().max(c.missing)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{At, Metric, MetricSet};
    use crate::state::AccountState;
    use crate::table::Table;

    fn model(metrics: &mut MetricSet) -> ScoreModel {
        ScoreModel {
            components: vec![
                Component {
                    name: "health".into(),
                    metric: metrics.add(Metric::HealthScore),
                    table: Table::new(vec![(0.0, 0.0), (100.0, 20.0)]).unwrap(),
                    cap: 15.0,
                    missing: 3.0,
                },
                Component {
                    name: "nps".into(),
                    metric: metrics.add(Metric::Nps),
                    table: Table::new(vec![(0.0, 0.0), (10.0, 10.0)]).unwrap(),
                    cap: 10.0,
                    missing: 0.0,
                },
            ],
            tier_floors: [5.0, 10.0, 20.0],
        }
    }

    fn values(metrics: &MetricSet, state: &AccountState) -> Vec<Option<f64>> {
        let mut values = Vec::new();
        metrics.eval(
            At {
                state,
                now: 0,
                bucket: 0,
            },
            &mut values,
        );
        values
    }

    #[test]
    fn score_is_the_sum_of_capped_points_and_matches_its_breakdown() {
        let mut metrics = MetricSet::default();
        let m = model(&mut metrics);
        let mut state = AccountState::new(0);
        assert_eq!(m.score(&values(&metrics, &state)), 3.0);
        state.health.score.offer(Some(90.0), 0);
        state.health.nps.offer(Some(7.5), 0);
        let v = values(&metrics, &state);
        assert_eq!(m.score(&v), 22.5);
        let breakdown = m.breakdown(&v);
        assert_eq!(breakdown[0].points, 15.0);
        assert_eq!(breakdown[0].value, Some(90.0));
        assert_eq!(breakdown.iter().map(|b| b.points).sum::<f64>(), 22.5);
        assert_eq!(m.max_score(), 25.0);
    }

    #[test]
    fn tiers_start_at_their_floor() {
        let m = model(&mut MetricSet::default());
        assert_eq!(m.tier(4.99), Tier::Cold);
        assert_eq!(m.tier(5.0), Tier::Warm);
        assert_eq!(m.tier(10.0), Tier::Hot);
        assert_eq!(m.tier(140.0), Tier::Critical);
    }
}
