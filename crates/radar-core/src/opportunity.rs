//! Expansion opportunities: the payload CS and sales receive, and its stable id.

use compact_str::{CompactString, format_compact};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::priority::ExpansionScore;
use crate::scoring::{BreakdownItem, Tier};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SeatExpansion,
    TierUpgrade,
    FeatureUpgrade,
    HorizontalExpansion,
    RenewalExpansion,
    TierRise,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::SeatExpansion,
        Kind::TierUpgrade,
        Kind::FeatureUpgrade,
        Kind::HorizontalExpansion,
        Kind::RenewalExpansion,
        Kind::TierRise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SeatExpansion => "seat_expansion",
            Kind::TierUpgrade => "tier_upgrade",
            Kind::FeatureUpgrade => "feature_upgrade",
            Kind::HorizontalExpansion => "horizontal_expansion",
            Kind::RenewalExpansion => "renewal_expansion",
            Kind::TierRise => "tier_rise",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Who should act on the opportunity: sales for accounts at or above the configured ARR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Cs,
    Sales,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Cs => "cs",
            Owner::Sales => "sales",
        }
    }
}

/// The payload, with the field names of docs/design.md#opportunities. Short strings are stored inline
/// (`CompactString`), so building one allocates only its lists and its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    pub opportunity_id: CompactString,
    pub account_id: CompactString,
    pub kind: Kind,
    /// The playbook name, or `tier:<tier>` for a tier rise.
    pub playbook: CompactString,
    pub score: f64,
    pub tier: Tier,
    pub breakdown: Vec<BreakdownItem>,
    pub triggered_by: Vec<CompactString>,
    pub owner: Owner,
    /// The triggering event's time, RFC 3339.
    pub occurred_at: CompactString,
    pub expansion_score: ExpansionScore,
    /// From a playbook in shadow mode: counted and listed, delivered nowhere. Absent
    /// from the JSON when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// The version of the configuration that produced it (`radar run`); absent in
    /// replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<CompactString>,
}

/// The idempotency key: a stable 128-bit hash (XXH3) of account, playbook and triggering
/// event, as 32 hex digits. The same event always yields the same id, in replay, after a
/// crash or on another instance; fields are length-prefixed so no two triples collide by
/// concatenation.
pub fn opportunity_id(account_id: &str, playbook: &str, event_id: &str) -> CompactString {
    let mut key = Vec::with_capacity(account_id.len() + playbook.len() + event_id.len() + 24);
    for part in [account_id, playbook, event_id] {
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    format_compact!("{:032x}", xxh3_128(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_unambiguous() {
        let id = opportunity_id("acme", "seat_expansion", "e1");
        assert_eq!(id.len(), 32);
        assert_eq!(id, opportunity_id("acme", "seat_expansion", "e1"));
        assert_ne!(id, opportunity_id("acme", "seat_expansio", "ne1"));
        assert_ne!(id, opportunity_id("acme", "seat_expansion", "e2"));
    }

    /// Ids are idempotency keys that CRMs keep: they must never change between releases.
    /// The expected value was computed independently with Python's `xxhash` package:
    /// `xxh3_128_hexdigest` of the length-prefixed (u64 little-endian) parts.
    #[test]
    fn ids_are_stable_across_releases() {
        assert_eq!(
            opportunity_id("acme", "seat_expansion", "evt_1"),
            "a20f7fb67498eb5773731d30d2baf5b3",
            "the opportunity id function changed: opportunities would be delivered twice"
        );
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
    }
}
