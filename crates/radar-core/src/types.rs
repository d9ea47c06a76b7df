//! Event types: the built-in ones of docs/design.md#event-model and those an operator declares.
//!
//! Each known type gets a small [`TypeId`]; the types that some window counts get a
//! [`SeriesKey`]. Unknown types are counted and skipped by the engine, never rejected.

use crate::windows::SeriesKey;

/// Two counted types whose names hash to the same series key (32-bit hashes of names: a
/// chance in billions); `other` is the one counted first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{other:?} has the same series key")]
pub struct KeyCollision {
    pub other: String,
}

/// Index of a known event type in a [`TypeRegistry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u16);

/// What applying an event of a built-in type does to account state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    SeatThreshold90Pct,
    FeatureLimitHit,
    TeamInviteSent,
    ApiTierExceeded,
    PremiumFeatureAttempted,
    EntitlementUpdated,
    UsageSnapshot,
    HealthUpdated,
    UserLogin,
    QbrCompleted,
    PaymentFailed,
    PaymentRecovered,
    ExpansionClosed,
    NpsSubmitted,
}

impl Builtin {
    pub const ALL: [Builtin; 14] = [
        Builtin::SeatThreshold90Pct,
        Builtin::FeatureLimitHit,
        Builtin::TeamInviteSent,
        Builtin::ApiTierExceeded,
        Builtin::PremiumFeatureAttempted,
        Builtin::EntitlementUpdated,
        Builtin::UsageSnapshot,
        Builtin::HealthUpdated,
        Builtin::UserLogin,
        Builtin::QbrCompleted,
        Builtin::PaymentFailed,
        Builtin::PaymentRecovered,
        Builtin::ExpansionClosed,
        Builtin::NpsSubmitted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::SeatThreshold90Pct => "seat_threshold_90pct",
            Builtin::FeatureLimitHit => "feature_limit_hit",
            Builtin::TeamInviteSent => "team_invite_sent",
            Builtin::ApiTierExceeded => "api_tier_exceeded",
            Builtin::PremiumFeatureAttempted => "premium_feature_attempted",
            Builtin::EntitlementUpdated => "entitlement_updated",
            Builtin::UsageSnapshot => "usage_snapshot",
            Builtin::HealthUpdated => "health_updated",
            Builtin::UserLogin => "user_login",
            Builtin::QbrCompleted => "qbr_completed",
            Builtin::PaymentFailed => "payment_failed",
            Builtin::PaymentRecovered => "payment_recovered",
            Builtin::ExpansionClosed => "expansion_closed",
            Builtin::NpsSubmitted => "nps_submitted",
        }
    }

    /// Whether applying this type reads its properties (the others' are never parsed).
    pub fn reads_properties(self) -> bool {
        matches!(
            self,
            Builtin::SeatThreshold90Pct
                | Builtin::ApiTierExceeded
                | Builtin::EntitlementUpdated
                | Builtin::UsageSnapshot
                | Builtin::HealthUpdated
                | Builtin::NpsSubmitted
        )
    }

    fn from_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "seat_threshold_90pct" => Builtin::SeatThreshold90Pct,
            "feature_limit_hit" => Builtin::FeatureLimitHit,
            "team_invite_sent" => Builtin::TeamInviteSent,
            "api_tier_exceeded" => Builtin::ApiTierExceeded,
            "premium_feature_attempted" => Builtin::PremiumFeatureAttempted,
            "entitlement_updated" => Builtin::EntitlementUpdated,
            "usage_snapshot" => Builtin::UsageSnapshot,
            "health_updated" => Builtin::HealthUpdated,
            "user_login" => Builtin::UserLogin,
            "qbr_completed" => Builtin::QbrCompleted,
            "payment_failed" => Builtin::PaymentFailed,
            "payment_recovered" => Builtin::PaymentRecovered,
            "expansion_closed" => Builtin::ExpansionClosed,
            "nps_submitted" => Builtin::NpsSubmitted,
            _ => return None,
        })
    }
}

/// The known event types and which of them have window counters.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeRegistry {
    custom: Vec<Box<str>>,
    keys: Vec<Option<SeriesKey>>,
    counted: Vec<TypeId>,
}

impl TypeRegistry {
    /// The built-in types plus `custom` ones (operator-declared signals), none counted yet.
    pub fn new(custom: Vec<Box<str>>) -> Self {
        let len = Builtin::ALL.len() + custom.len();
        TypeRegistry {
            custom,
            keys: vec![None; len],
            counted: Vec::new(),
        }
    }

    /// How many types there are: the built-in ones and the custom ones.
    pub fn len(&self) -> usize {
        Builtin::ALL.len() + self.custom.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every type's id, built-in ones first.
    pub fn ids(&self) -> impl Iterator<Item = TypeId> + use<> {
        (0..self.len() as u16).map(TypeId)
    }

    pub fn lookup(&self, name: &str) -> Option<TypeId> {
        if let Some(builtin) = Builtin::from_name(name) {
            return Some(TypeId(builtin as u16));
        }
        self.custom
            .iter()
            .position(|c| &**c == name)
            .map(|i| TypeId((Builtin::ALL.len() + i) as u16))
    }

    pub fn builtin(&self, id: TypeId) -> Option<Builtin> {
        Builtin::ALL.get(usize::from(id.0)).copied()
    }

    pub fn name(&self, id: TypeId) -> &str {
        match self.builtin(id) {
            Some(b) => b.name(),
            None => &self.custom[usize::from(id.0) - Builtin::ALL.len()],
        }
    }

    /// Counts `id` in windows (idempotent) and returns its series key, or the name of a
    /// counted type whose key collides (32-bit hashes of names: a chance in billions).
    pub fn count(&mut self, id: TypeId) -> Result<SeriesKey, KeyCollision> {
        if let Some(key) = self.keys[usize::from(id.0)] {
            return Ok(key);
        }
        let key = SeriesKey::of(self.name(id));
        if let Some(other) = self
            .counted
            .iter()
            .find(|t| self.keys[usize::from(t.0)] == Some(key))
        {
            return Err(KeyCollision {
                other: self.name(*other).to_owned(),
            });
        }
        self.keys[usize::from(id.0)] = Some(key);
        self.counted.push(id);
        Ok(key)
    }

    /// The series key of `id`, if some window counts it.
    pub fn key(&self, id: TypeId) -> Option<SeriesKey> {
        self.keys[usize::from(id.0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_custom_types_resolve() {
        let mut types = TypeRegistry::new(vec!["report_exported".into()]);
        for b in Builtin::ALL {
            let id = types.lookup(b.name()).unwrap();
            assert_eq!(types.builtin(id), Some(b));
            assert_eq!(types.name(id), b.name());
        }
        let custom = types.lookup("report_exported").unwrap();
        assert_eq!(types.builtin(custom), None);
        assert_eq!(types.name(custom), "report_exported");
        assert_eq!(types.lookup("page_viewed"), None);

        assert_eq!(types.key(custom), None);
        let key = types.count(custom).unwrap();
        assert_eq!(key, SeriesKey::of("report_exported"));
        assert_eq!(types.count(custom), Ok(key));
        assert_eq!(types.key(custom), Some(key));
        let login = types.lookup("user_login").unwrap();
        assert_eq!(types.count(login), Ok(SeriesKey::of("user_login")));
    }
}
