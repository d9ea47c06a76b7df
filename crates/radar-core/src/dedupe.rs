//! Duplicate `event_id`s within the lateness horizon.
//!
//! Keeps a 64-bit hash of each recent event id (not the id itself: 16 bytes an entry
//! whatever the id's length) with its event time, and forgets ids older than the horizon
//! in amortised batches. Two different ids colliding in 64 bits within one account's
//! 24 hours is a chance of about n²/2⁶⁵, far below any other source of loss.
//!
//! Most accounts send a few events a day: their ids live inline in the account state and
//! are scanned linearly, which spares them an allocation and, on the hot path, a cache
//! miss. A busier account moves to a hash map, and back inline when a pruning pass finds
//! it has quieted down.

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::time::Millis;

/// Ids kept inline before moving to a map.
const INLINE: usize = 4;
/// A map that shrinks to this many ids goes back inline.
const BACK_INLINE: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Ids {
    Few(SmallVec<[(u64, Millis); INLINE]>),
    Many {
        by_hash: HashMap<u64, Millis>,
        /// Size at which the next pruning pass runs (twice the size after the last).
        prune_at: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenEvents {
    ids: Ids,
}

impl Default for SeenEvents {
    fn default() -> Self {
        SeenEvents {
            ids: Ids::Few(SmallVec::new()),
        }
    }
}

/// An id remembered from before the horizon is not a duplicate (a true duplicate of it
/// would be late): it is remembered anew.
fn refresh(seen: &mut Millis, time: Millis, horizon: Millis) -> bool {
    if *seen >= horizon {
        return false;
    }
    *seen = time;
    true
}

impl SeenEvents {
    /// Remembers `id_hash` seen at `time`; false when it was already remembered.
    /// `horizon` is the oldest event time still accepted (stream time − lateness).
    pub fn insert(&mut self, id_hash: u64, time: Millis, horizon: Millis) -> bool {
        match &mut self.ids {
            Ids::Few(few) => {
                if let Some(entry) = few.iter_mut().find(|(h, _)| *h == id_hash) {
                    return refresh(&mut entry.1, time, horizon);
                }
                if few.len() == INLINE {
                    few.retain(|(_, seen)| *seen >= horizon);
                }
                if few.len() < INLINE {
                    few.push((id_hash, time));
                    return true;
                }
                let mut by_hash: HashMap<u64, Millis> = few.drain(..).collect();
                by_hash.insert(id_hash, time);
                let prune_at = 2 * by_hash.len();
                self.ids = Ids::Many { by_hash, prune_at };
                true
            }
            Ids::Many { by_hash, prune_at } => {
                if by_hash.len() >= *prune_at {
                    by_hash.retain(|_, seen| *seen >= horizon);
                    if by_hash.len() <= BACK_INLINE {
                        let few = by_hash.drain().collect();
                        self.ids = Ids::Few(few);
                        return self.insert(id_hash, time, horizon);
                    }
                    // Give memory back only when far too big: a busy account at a steady
                    // rate would otherwise shrink and regrow its table at every pass.
                    if by_hash.capacity() > 8 * by_hash.len() {
                        by_hash.shrink_to_fit();
                    }
                    *prune_at = 2 * by_hash.len();
                }
                match by_hash.entry(id_hash) {
                    Entry::Occupied(mut seen) => refresh(seen.get_mut(), time, horizon),
                    Entry::Vacant(slot) => {
                        slot.insert(time);
                        true
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn len(seen: &SeenEvents) -> usize {
        match &seen.ids {
            Ids::Few(few) => few.len(),
            Ids::Many { by_hash, .. } => by_hash.len(),
        }
    }

    #[test]
    fn remembers_within_the_horizon_and_forgets_after() {
        let mut seen = SeenEvents::default();
        assert!(seen.insert(1, 100, 0));
        assert!(!seen.insert(1, 100, 0));
        for id in 2..10 {
            assert!(seen.insert(id, 100 + id as Millis, 0));
            assert!(!seen.insert(id, 100 + id as Millis, 0));
        }
        assert!(matches!(seen.ids, Ids::Many { .. }));
        // A pass with the horizon past every remembered time forgets them all.
        for id in 10..40 {
            assert!(seen.insert(id, 10_000, 5_000));
        }
        assert_eq!(len(&seen), 30);
        assert!(
            seen.insert(1, 10_000, 5_000),
            "id 1 fell out of the horizon"
        );
        // A busy account that quiets down goes back inline.
        let mut quiet = SeenEvents::default();
        for id in 0..20 {
            quiet.insert(id, 0, 0);
        }
        assert!(matches!(quiet.ids, Ids::Many { .. }));
        for k in 0..40 {
            quiet.insert(1_000 + k, 1_000 + k as Millis, 1_000 + k as Millis);
        }
        assert!(matches!(quiet.ids, Ids::Few(_)), "{:?}", quiet.ids);
    }

    proptest! {
        /// Against a model that remembers everything: within the horizon, the answers agree,
        /// with events arriving out of order (as the engine sees them, up to the horizon).
        #[test]
        fn agrees_with_a_model_within_the_horizon(ids in prop::collection::vec((0u64..40, -20i64..6), 1..400)) {
            let horizon_len = 50;
            let mut seen = SeenEvents::default();
            let mut model: std::collections::HashMap<u64, Millis> = Default::default();
            let mut latest = 0;
            for (id, step) in ids {
                // Times wander back and forth; the engine drops anything older than the horizon.
                let time = (latest + step).max(latest - horizon_len);
                latest = latest.max(time);
                let horizon = latest - horizon_len;
                let fresh = model.get(&id).is_none_or(|t| *t < horizon);
                prop_assert_eq!(seen.insert(id, time, horizon), fresh);
                // An ignored duplicate changes nothing.
                if fresh {
                    model.insert(id, time);
                }
            }
        }
    }
}
