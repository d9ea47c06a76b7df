//! The expansion score: how CS and sales rank opportunities, 0–100.
//!
//! `potential × w₁ + health × w₂ + timing × w₃ + relationship × w₄`, each part 0–100 from a
//! table: potential from the estimated expansion ARR (account ARR × the kind's uplift),
//! health from the health score, timing from days to contract end, relationship from the
//! latest NPS. An unknown input gives its part the neutral value.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::opportunity::Kind;
use crate::scoring::round2;
use crate::state::AccountState;
use crate::table::Table;
use crate::time::{Millis, days_between};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Potential,
    Health,
    Timing,
    Relationship,
}

impl Part {
    pub const ALL: [Part; 4] = [
        Part::Potential,
        Part::Health,
        Part::Timing,
        Part::Relationship,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Potential => "potential",
            Part::Health => "health",
            Part::Timing => "timing",
            Part::Relationship => "relationship",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PriorityModel {
    /// Weights and tables in [`Part::ALL`] order.
    pub weights: [f64; 4],
    pub tables: [Table; 4],
    pub neutral: f64,
    /// Estimated expansion ARR as a fraction of account ARR, by [`Kind::ALL`] order.
    pub uplift: [f64; 6],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartScore {
    pub part: CompactString,
    /// The part's input (dollars, health score, days, NPS); `null` when unknown.
    pub input: Option<f64>,
    pub score: f64,
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExpansionScore {
    pub value: f64,
    pub estimated_arr: Option<f64>,
    pub parts: Vec<PartScore>,
}

impl PriorityModel {
    /// Weighted sum of part scores, each given as `(part score, weight)`.
    pub fn combine(parts: &[(f64, f64)]) -> f64 {
        round2(parts.iter().map(|(score, weight)| score * weight).sum())
    }

    pub fn evaluate(&self, kind: Kind, state: &AccountState, now: Millis) -> ExpansionScore {
        let estimated_arr = state
            .entitlement
            .arr
            .value()
            .map(|arr| round2(arr * self.uplift[kind.index()]));
        let inputs = [
            estimated_arr,
            state.health.score.value(),
            state
                .entitlement
                .contract_end
                .value()
                .map(|end| days_between(now, end).floor()),
            state.health.nps.value(),
        ];
        let parts: Vec<PartScore> = Part::ALL
            .iter()
            .zip(inputs)
            .zip(self.tables.iter().zip(self.weights))
            .map(|((part, input), (table, weight))| PartScore {
                part: CompactString::const_new(part.as_str()),
                input,
                score: round2(input.map_or(self.neutral, |x| table.eval(x))),
                weight,
            })
            .collect();
        let weighted: Vec<(f64, f64)> = parts.iter().map(|p| (p.score, p.weight)).collect();
        ExpansionScore {
            value: Self::combine(&weighted),
            estimated_arr,
            parts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_worked_example_gives_83() {
        let parts = [(80.0, 0.40), (85.0, 0.30), (90.0, 0.20), (75.0, 0.10)];
        assert_eq!(PriorityModel::combine(&parts), 83.0);
    }

    #[test]
    fn unknown_inputs_are_neutral() {
        let flat = || Table::new(vec![(0.0, 100.0)]).unwrap();
        let model = PriorityModel {
            weights: [0.4, 0.3, 0.2, 0.1],
            tables: [flat(), flat(), flat(), flat()],
            neutral: 50.0,
            uplift: [0.2; 6],
        };
        let mut state = AccountState::new(0);
        let score = model.evaluate(Kind::SeatExpansion, &state, 0);
        assert_eq!(score.value, 50.0);
        assert_eq!(score.estimated_arr, None);
        state.entitlement.arr.offer(Some(25_000.0), 0);
        let score = model.evaluate(Kind::SeatExpansion, &state, 0);
        assert_eq!(score.estimated_arr, Some(5_000.0));
        assert_eq!(score.parts[0].score, 100.0);
        assert_eq!(score.value, 70.0);
    }
}
