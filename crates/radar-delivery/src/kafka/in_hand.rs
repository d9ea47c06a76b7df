//! What this instance holds of the opportunities and retry topics: which records still
//! have deliveries to settle, and so how far each partition may be committed.
//!
//! A partition's committed offset never passes a record with an unsettled delivery: a
//! delivery settles once it is delivered, or once its retry or dead letter is
//! acknowledged on its topic. So whichever instance reads a partition next (after a
//! crash, a rebalance) gets every record whose fate is not yet in Kafka, and at worst
//! sends again what was delivered but not yet committed, under the same `webhook-id`.

use std::collections::{BTreeMap, HashMap};

/// A topic and partition.
pub type TopicPartition = (String, i32);

pub use crate::queue::QueueKey;

/// A record read from the opportunities or retry topic, held until its deliveries settle.
#[derive(Debug)]
struct HeldRecord {
    at: TopicPartition,
    offset: i64,
    /// When it was read (Unix ms).
    read_ms: u64,
    /// The record's deliveries not settled yet.
    unsettled: Vec<QueueKey>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Which assignment of the partition this is: a record read under an earlier one
    /// (fetched before a rebalance took the partition away) is not held.
    epoch: u64,
    /// Records with unsettled deliveries: offset → sequence.
    open: BTreeMap<i64, u64>,
    /// The offset after the last record read.
    read_to: i64,
    /// The last offset whose record is settled, if any is.
    settled_to: Option<i64>,
    /// What was last handed out to commit.
    committed: Option<i64>,
}

impl Partition {
    /// How far it may be committed: its first record with an unsettled delivery, or past
    /// everything read; `None` before anything is read.
    fn committable(&self) -> Option<i64> {
        (self.read_to > 0).then(|| self.open.keys().next().copied().unwrap_or(self.read_to))
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct InHand {
    next_seq: u64,
    /// The last epoch handed out.
    epochs: u64,
    records: HashMap<u64, HeldRecord>,
    partitions: HashMap<TopicPartition, Partition>,
}

impl InHand {
    /// Sequences start at `first_seq`: queue entries and recent opportunities of an
    /// earlier run of this instance may still be in the local store, so a run starts past
    /// them (the caller passes the wall clock in microseconds).
    pub fn new(first_seq: u64) -> InHand {
        InHand {
            next_seq: first_seq,
            epochs: 0,
            records: HashMap::new(),
            partitions: HashMap::new(),
        }
    }

    /// The sequence for the next record read: its deliveries' queue keys carry it.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The partition is assigned to this instance (again): records read from now on are
    /// held under a new epoch.
    pub fn assign(&mut self, at: &TopicPartition) {
        self.epochs += 1;
        self.partitions.insert(
            at.clone(),
            Partition {
                epoch: self.epochs,
                ..Partition::default()
            },
        );
    }

    /// The epoch a record of `at` read now belongs to; `None` if `at` is not assigned.
    pub fn epoch(&self, at: &TopicPartition) -> Option<u64> {
        self.partitions.get(at).map(|p| p.epoch)
    }

    /// A record read at `offset` of `at` under `epoch` at `read_ms`, with the deliveries it
    /// was queued as (all with sequence [`InHand::next_seq`]); none means nothing to send, and the
    /// record is settled at once. False, holding nothing, if the partition was revoked
    /// (or revoked and assigned again) since the record was read: its new owner, or this
    /// instance's next read of it, gets it.
    pub fn read(
        &mut self,
        at: &TopicPartition,
        epoch: u64,
        offset: i64,
        read_ms: u64,
        deliveries: Vec<QueueKey>,
    ) -> bool {
        let Some(partition) = self.partitions.get_mut(at).filter(|p| p.epoch == epoch) else {
            return false;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        partition.read_to = partition.read_to.max(offset + 1);
        if deliveries.is_empty() {
            partition.settled_to = partition.settled_to.max(Some(offset));
            return true;
        }
        partition.open.insert(offset, seq);
        self.records.insert(
            seq,
            HeldRecord {
                at: at.clone(),
                offset,
                read_ms,
                unsettled: deliveries,
            },
        );
        true
    }

    /// The delivery of record `seq` to `destination` is settled. False if this instance
    /// no longer holds it (its partition moved away meanwhile).
    pub fn settled(&mut self, seq: u64, destination: &str) -> bool {
        let Some(record) = self.records.get_mut(&seq) else {
            return false;
        };
        let before = record.unsettled.len();
        record.unsettled.retain(|(d, _, _)| d != destination);
        let found = record.unsettled.len() < before;
        if record.unsettled.is_empty() {
            let record = self.records.remove(&seq).expect("present above");
            if let Some(partition) = self.partitions.get_mut(&record.at) {
                partition.open.remove(&record.offset);
                partition.settled_to = partition.settled_to.max(Some(record.offset));
            }
        }
        found
    }

    /// The partition moved away: forgets it, and returns the queue entries of its
    /// unsettled deliveries, which the new owner reads again.
    pub fn revoke(&mut self, at: &TopicPartition) -> Vec<QueueKey> {
        let Some(partition) = self.partitions.remove(at) else {
            return Vec::new();
        };
        partition
            .open
            .values()
            .filter_map(|seq| self.records.remove(seq))
            .flat_map(|record| record.unsettled)
            .collect()
    }

    /// How far `at` may be committed: its first record with an unsettled delivery, or
    /// past everything read.
    pub fn committable(&self, at: &TopicPartition) -> Option<i64> {
        self.partitions.get(at)?.committable()
    }

    /// The partitions whose committable offset moved since last asked, with it.
    pub fn to_commit(&mut self) -> Vec<(TopicPartition, i64)> {
        let mut moved = Vec::new();
        for (at, partition) in &mut self.partitions {
            let Some(offset) = partition.committable() else {
                continue;
            };
            if partition.committed != Some(offset) {
                partition.committed = Some(offset);
                moved.push((at.clone(), offset));
            }
        }
        moved.sort();
        moved
    }

    /// Where record `seq` is: its topic, partition and offset, which Kafka holds as long
    /// as its retention allows.
    pub fn source(&self, seq: u64) -> Option<(&TopicPartition, i64)> {
        self.records.get(&seq).map(|r| (&r.at, r.offset))
    }

    /// The retries of `topic` that hold its commit back for long: records read at least a
    /// quarter of the wait they had (within `held` and 16 × `held`) before `now_ms`, not
    /// due for another `margin`, and with a settled record after them. Parked again at the end of their partition, they let the commit pass
    /// what settled behind them, so a restart repeats none of it.
    pub fn blocking(&self, topic: &str, now_ms: u64, held: u64, margin: u64) -> Vec<QueueKey> {
        let mut blocking = Vec::new();
        for (at, partition) in &self.partitions {
            let Some(settled_to) = partition.settled_to.filter(|_| at.0 == topic) else {
                continue;
            };
            for seq in partition.open.range(..settled_to).map(|(_, seq)| seq) {
                let Some(record) = self.records.get(seq) else {
                    continue;
                };
                // Held for a quarter of the wait it had when read, between `held` and
                // 16 times `held`: a retry due in hours is parked again every 16 minutes
                // or so (by default), not every minute, as each time produces the whole
                // opportunity again.
                let wait = record
                    .unsettled
                    .iter()
                    .map(|(_, due, _)| due.saturating_sub(record.read_ms))
                    .min()
                    .unwrap_or(0);
                let held_for = (wait / 4).min(held.saturating_mul(16)).max(held);
                let long = record.read_ms.saturating_add(held_for) <= now_ms
                    && record
                        .unsettled
                        .iter()
                        .all(|(_, due, _)| *due > now_ms.saturating_add(margin));
                if long {
                    blocking.extend(record.unsettled.iter().cloned());
                }
            }
        }
        blocking.sort();
        blocking
    }

    /// Records with deliveries not settled yet.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(p: i32) -> TopicPartition {
        ("opportunities".into(), p)
    }

    fn assigned(hand: &mut InHand, partition: i32) -> u64 {
        hand.assign(&at(partition));
        hand.epoch(&at(partition)).unwrap()
    }

    fn keys(seq: u64, destinations: &[&str]) -> Vec<QueueKey> {
        destinations
            .iter()
            .map(|d| ((*d).to_owned(), 0, seq))
            .collect()
    }

    #[test]
    fn a_partition_commits_up_to_its_first_unsettled_record() {
        let mut hand = InHand::new(100);
        let epoch = assigned(&mut hand, 0);
        assert_eq!(hand.to_commit(), vec![], "nothing read yet");
        for offset in 0..3 {
            let seq = hand.next_seq();
            assert!(hand.read(&at(0), epoch, offset, 0, keys(seq, &["crm", "slack"])));
        }
        assert_eq!(hand.to_commit(), vec![(at(0), 0)]);
        // The second record settles first: the commit cannot pass the first.
        assert!(hand.settled(101, "crm"));
        assert!(hand.settled(101, "slack"));
        assert_eq!(hand.to_commit(), vec![]);
        assert!(hand.settled(100, "crm"));
        assert_eq!(
            hand.committable(&at(0)),
            Some(0),
            "slack is still unsettled"
        );
        assert!(hand.settled(100, "slack"));
        assert_eq!(hand.to_commit(), vec![(at(0), 2)]);
        assert!(hand.settled(102, "crm") && hand.settled(102, "slack"));
        assert_eq!(hand.to_commit(), vec![(at(0), 3)]);
        assert!(hand.is_empty());
    }

    #[test]
    fn a_record_no_destination_wants_is_settled_at_once() {
        let mut hand = InHand::new(0);
        let epoch = assigned(&mut hand, 1);
        assert!(hand.read(&at(1), epoch, 41, 0, Vec::new()));
        assert_eq!(hand.committable(&at(1)), Some(42));
        assert!(hand.is_empty());
    }

    #[test]
    fn a_revoked_partition_hands_back_its_unsettled_deliveries_and_forgets_them() {
        let mut hand = InHand::new(7);
        let (zero, one) = (assigned(&mut hand, 0), assigned(&mut hand, 1));
        assert!(hand.read(&at(0), zero, 5, 0, keys(7, &["crm", "slack"])));
        assert!(hand.read(&at(1), one, 9, 0, keys(8, &["crm"])));
        assert!(hand.settled(7, "crm"));
        assert_eq!(hand.revoke(&at(0)), keys(7, &["slack"]));
        assert_eq!(hand.committable(&at(0)), None);
        // Its delivery finishing late changes nothing.
        assert!(!hand.settled(7, "slack"));
        assert_eq!(hand.committable(&at(1)), Some(9));
        assert_eq!(hand.len(), 1);
    }

    /// Records fetched before a rebalance took their partition away, handed on after it:
    /// holding them would let the commit pass records the new owner has not settled.
    #[test]
    fn a_record_read_before_its_partition_was_revoked_is_not_held() {
        let mut hand = InHand::new(0);
        let before = assigned(&mut hand, 0);
        hand.revoke(&at(0));
        assert!(!hand.read(&at(0), before, 90, 0, keys(0, &["crm"])));
        assert_eq!(hand.committable(&at(0)), None);
        // Revoked and assigned again in one rebalance: the stale read is still refused,
        // and the partition commits only what is read under its new assignment.
        let after = assigned(&mut hand, 0);
        assert!(!hand.read(&at(0), before, 90, 0, Vec::new()));
        assert_eq!(hand.committable(&at(0)), None);
        let seq = hand.next_seq();
        assert!(hand.read(&at(0), after, 40, 0, keys(seq, &["crm"])));
        assert_eq!(hand.committable(&at(0)), Some(40));
    }

    /// A retry due in hours holds the commit of its partition only until it has been
    /// held for a while with settled records behind it.
    #[test]
    fn a_long_retry_with_settled_records_behind_it_is_blocking() {
        const HOUR: u64 = 3_600_000;
        let mut hand = InHand::new(0);
        let epoch = assigned(&mut hand, 0);
        let far = |seq| vec![("crm".to_owned(), 10 * HOUR, seq)];
        let near = |seq| vec![("crm".to_owned(), 1_000, seq)];
        // Offsets: 0 far, 1 due soon, 2 far, 3 settled later.
        for (offset, wanted) in [(0, far(0)), (1, near(1)), (2, far(2)), (3, near(3))] {
            assert!(hand.read(&at(0), epoch, offset, 100, wanted));
        }
        let blocking = |hand: &InHand, now| hand.blocking("opportunities", now, 500, 5_000);
        assert_eq!(
            blocking(&hand, 1_000),
            vec![],
            "nothing settled behind them yet"
        );
        assert!(hand.settled(3, "crm"));
        // Read at 100, due in 10 h: held a quarter of that, at most 16 × 500 ms.
        assert_eq!(blocking(&hand, 8_099), vec![], "not held long enough");
        // The one due soon is left to be sent; both far ones block.
        assert_eq!(blocking(&hand, 8_100), [far(0), far(2)].concat());
        assert_eq!(hand.blocking("other", 8_100, 500, 5_000), vec![]);
        assert!(hand.settled(0, "crm"));
        assert_eq!(hand.committable(&at(0)), Some(1));
        assert_eq!(hand.source(2), Some((&at(0), 2)));
    }

    proptest! {
        /// Whatever the order deliveries settle in, the committed offset never passes a
        /// record with an unsettled delivery, and reaches the end once all are settled.
        #[test]
        fn the_commit_never_passes_an_unsettled_record(
            wanted in prop::collection::vec(0usize..3, 1..40),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
        ) {
            let destinations = ["a", "b", "c"];
            let mut hand = InHand::new(0);
            let epoch = assigned(&mut hand, 0);
            let mut unsettled: Vec<(u64, i64, &str)> = Vec::new();
            for (offset, n) in wanted.iter().enumerate() {
                let seq = hand.next_seq();
                let offset = offset as i64;
                prop_assert!(hand.read(&at(0), epoch, offset, 0, keys(seq, &destinations[..*n])));
                unsettled.extend(destinations[..*n].iter().map(|d| (seq, offset, *d)));
            }
            for pick in order {
                if unsettled.is_empty() {
                    break;
                }
                let (seq, _, destination) = unsettled.remove(pick.index(unsettled.len()));
                prop_assert!(hand.settled(seq, destination));
                let committable = hand.committable(&at(0)).unwrap();
                let first_open = unsettled.iter().map(|(_, o, _)| *o).min();
                prop_assert_eq!(committable, first_open.unwrap_or(wanted.len() as i64));
            }
            for (seq, _, destination) in unsettled {
                prop_assert!(hand.settled(seq, destination));
            }
            prop_assert_eq!(hand.committable(&at(0)), Some(wanted.len() as i64));
        }
    }
}
