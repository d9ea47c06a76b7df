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
//!
//! **Bounded.** An account remembers at most [`MAX_REMEMBERED`] ids, whatever its traffic,
//! so its state always fits one changelog record (an account sending 60,000 events a day
//! used to outgrow Kafka's 1 MB message limit with 16 bytes an id) and a checkpoint of a
//! busy account stays small. When the map reaches the cap, a pruning pass keeps the
//! newest [`KEEP_AT_CAP`] ids by event time (ties broken by hash, so the choice depends
//! on the account's events in order alone, and replay and the live pipeline agree). The
//! precision this costs: a duplicate is recognised whenever fewer than [`KEEP_AT_CAP`]
//! ids of its account with a later event time were seen before it within the horizon;
//! otherwise (in order, after 10,752 newer events of the same account: about 77 minutes
//! of an account sending 200,000 events a day; sooner for an event that arrived late,
//! stamped older than those) it counts again. At-least-once producers resend within
//! seconds; records read again after a crash are told apart by offset, not by this
//! (`radar-kafka`'s changelog: each account record says the source offset it holds).

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::time::Millis;

/// Ids kept inline before moving to a map.
const INLINE: usize = 4;
/// A map that shrinks to this many ids goes back inline.
const BACK_INLINE: usize = 2;
/// The most ids an account remembers: a full hashbrown table of 16,384 buckets (7/8 of
/// them), 256 KiB in memory and about 230 KB in a changelog record.
pub const MAX_REMEMBERED: usize = 14_336;
/// What a pruning pass at the cap keeps: the newest three quarters, so the next pass at
/// the cap comes only after another quarter of the cap of new ids.
pub const KEEP_AT_CAP: usize = MAX_REMEMBERED / 4 * 3;

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
                // Capped here too: a state saved before the cap may hold a larger one.
                if by_hash.len() >= (*prune_at).min(MAX_REMEMBERED) {
                    by_hash.retain(|_, seen| *seen >= horizon);
                    if by_hash.len() <= BACK_INLINE {
                        let few = by_hash.drain().collect();
                        self.ids = Ids::Few(few);
                        return self.insert(id_hash, time, horizon);
                    }
                    if by_hash.len() > KEEP_AT_CAP {
                        forget_oldest(by_hash, KEEP_AT_CAP);
                    }
                    // Give memory back only when far too big: a busy account at a steady
                    // rate would otherwise shrink and regrow its table at every pass.
                    if by_hash.capacity() > 8 * by_hash.len() {
                        by_hash.shrink_to_fit();
                    }
                    *prune_at = (2 * by_hash.len()).min(MAX_REMEMBERED);
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

/// Keeps the `keep` newest ids of `by_hash` by (event time, hash): a total order, so
/// which ids go depends on the ids alone, not on the table's layout.
fn forget_oldest(by_hash: &mut HashMap<u64, Millis>, keep: usize) {
    if by_hash.len() <= keep {
        return;
    }
    let mut order: Vec<(Millis, u64)> = by_hash.iter().map(|(h, t)| (*t, *h)).collect();
    let first_kept = order.len() - keep;
    let oldest_kept = *order.select_nth_unstable(first_kept).1;
    by_hash.retain(|hash, time| (*time, *hash) >= oldest_kept);
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

    /// An account sending 200,000 events a day, all within one lateness horizon: it never
    /// remembers more than the cap, its encoded state stays far under Kafka's 1 MB, and
    /// its newest ids are still recognised while the oldest, forgotten, count again.
    #[test]
    fn a_busy_account_remembers_at_most_the_cap() {
        let mut seen = SeenEvents::default();
        let day: Millis = 86_400_000;
        let events: u64 = 200_000;
        let time = |i: u64| i as Millis * day / events as Millis;
        let hash = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        for i in 0..events {
            assert!(seen.insert(hash(i), time(i), time(i) - day));
            assert!(len(&seen) <= MAX_REMEMBERED);
        }
        let encoded = postcard::to_allocvec(&seen).expect("encodes");
        assert!(encoded.len() < 300_000, "{} bytes", encoded.len());
        let now = time(events - 1);
        for i in events - KEEP_AT_CAP as u64..events {
            assert!(
                !seen.insert(hash(i), time(i), now - day),
                "id {i} is recent"
            );
        }
        assert!(
            seen.insert(hash(0), time(0), now - day),
            "the first id was forgotten at the cap"
        );
    }

    /// A state saved and restored half-way (a checkpoint: the table comes back with
    /// another layout) forgets exactly the ids one that never stopped forgets.
    #[test]
    fn a_restored_state_forgets_the_same_ids_at_the_cap() {
        let ids: Vec<(u64, Millis)> = (0..2 * MAX_REMEMBERED as u64)
            .map(|i| (i.wrapping_mul(0x2545_F491_4F6C_DD1D), (i % 97) as Millis))
            .collect();
        let (first, second) = ids.split_at(MAX_REMEMBERED - 100);
        let mut whole = SeenEvents::default();
        let mut saved = SeenEvents::default();
        for (hash, time) in first {
            whole.insert(*hash, *time, 0);
            saved.insert(*hash, *time, 0);
        }
        let bytes = postcard::to_allocvec(&saved).expect("encodes");
        let mut restored: SeenEvents = postcard::from_bytes(&bytes).expect("decodes");
        for (hash, time) in second {
            assert_eq!(
                whole.insert(*hash, *time, 0),
                restored.insert(*hash, *time, 0)
            );
        }
        assert_eq!(whole, restored);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// With more ids than the cap: a new id is never taken for a duplicate, and a
        /// resent id with fewer than `KEEP_AT_CAP` ids remembered after it is always
        /// recognised (`model` lists the ids in the order they were remembered).
        #[test]
        fn past_the_cap_it_forgets_only_the_oldest(seed in any::<u64>(), resend_every in 2u64..50) {
            let mut seen = SeenEvents::default();
            let mut model: Vec<u64> = Vec::new();
            let mut state = seed | 1;
            for i in 0..(MAX_REMEMBERED as u64 * 2) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let time = i as Millis;
                if i % resend_every == 0 && !model.is_empty() {
                    let back = (state % model.len() as u64) as usize;
                    let id = model[model.len() - 1 - back];
                    let fresh = seen.insert(id, time, 0);
                    if back < KEEP_AT_CAP {
                        prop_assert!(!fresh, "id {} back was forgotten", back);
                    }
                    if fresh {
                        // Forgotten, so remembered anew as of now.
                        model.push(id);
                    }
                } else {
                    prop_assert!(seen.insert(state, time, 0));
                    model.push(state);
                }
                prop_assert!(len(&seen) <= MAX_REMEMBERED);
            }
        }

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
