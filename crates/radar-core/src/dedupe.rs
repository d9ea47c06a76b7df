//! Duplicate `event_id`s within the lateness horizon.
//!
//! Keeps a 64-bit hash of each recent event id (not the id itself: 16 bytes an entry
//! whatever the id's length) with its event time, and forgets ids older than the horizon
//! in amortised batches. Two different ids colliding in 64 bits within one account's
//! 24 hours is a chance of about n²/2⁶⁵, far below any other source of loss.

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Below this many remembered ids, no pruning pass runs.
const MIN_PRUNE_AT: usize = 4;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenEvents {
    by_hash: HashMap<u64, Millis>,
    prune_at: usize,
}

impl SeenEvents {
    /// Remembers `id_hash` seen at `time`; false when it was already remembered.
    /// `horizon` is the oldest event time still accepted (stream time − lateness).
    pub fn insert(&mut self, id_hash: u64, time: Millis, horizon: Millis) -> bool {
        if self.by_hash.len() >= self.prune_at.max(MIN_PRUNE_AT) {
            self.by_hash.retain(|_, seen| *seen >= horizon);
            // Give memory back only when far too big: a busy account at a steady rate
            // would otherwise shrink and regrow its table at every pass.
            if self.by_hash.capacity() > 8 * self.by_hash.len().max(MIN_PRUNE_AT) {
                self.by_hash.shrink_to_fit();
            }
            self.prune_at = 2 * self.by_hash.len();
        }
        self.by_hash.insert(id_hash, time).is_none()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        let buckets = if self.by_hash.capacity() == 0 {
            0
        } else {
            (self.by_hash.capacity() * 8 / 7).next_power_of_two()
        };
        buckets * (std::mem::size_of::<(u64, Millis)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_horizon_and_forgets_after() {
        let mut seen = SeenEvents::default();
        assert!(seen.insert(1, 100, 0));
        assert!(!seen.insert(1, 100, 0));
        for id in 2..10 {
            assert!(seen.insert(id, 100 + id as Millis, 0));
        }
        // A pass with the horizon past every remembered time empties the set.
        for id in 10..40 {
            seen.insert(id, 10_000, 5_000);
        }
        assert!(seen.len() < 40);
        assert!(
            seen.insert(1, 10_000, 5_000),
            "id 1 fell out of the horizon"
        );
    }
}
