//! What this instance holds of the opportunities and retry topics: which records still
//! have deliveries to settle, and so how far each partition may be committed.
//!
//! A partition's committed offset never passes a record with an unsettled delivery: a
//! delivery settles once it is delivered, or once its retry or dead letter is
//! acknowledged on its topic. So whichever instance reads a partition next (after a
//! crash, a rebalance) gets every record whose fate is not yet in Kafka. What was settled
//! above the commit it skips by the settlement ledger's marks, which each partition keeps
//! here per destination ([`super::marks`]), with the latest opportunity ids it read (a
//! copy the source produced again is not delivered twice).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::ledger::LedgerEntry;
use super::marks::{Inherited, Mark, PartitionMarks};
use super::takeover::RECENT_IDS;

/// What [`InHand::starting`] says of deliveries about to be sent.
#[derive(Debug, Default)]
pub struct Starting {
    /// Those that may go once `entries` are acknowledged.
    pub going: Vec<u64>,
    /// Those whose record is no longer held (their partition moved away): their queue
    /// entries are the new owner's to send. Those of a partition being revoked are in
    /// neither list: they stay queued until the revocation takes them.
    pub gone: Vec<u64>,
    pub entries: Vec<LedgerEntry>,
}

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
    /// Being revoked: nothing more of it starts.
    revoking: bool,
    /// What each destination settled beyond the commit, for the ledger.
    marks: PartitionMarks,
    /// The latest opportunity ids read (and read back from below the commit).
    recent: RecentIds,
}

/// The last [`RECENT_IDS`] opportunity ids of a partition.
#[derive(Debug, Default)]
struct RecentIds {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl RecentIds {
    /// Remembers `id`; false if it is remembered already.
    fn first(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == RECENT_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
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
        for (destination, _, _) in &deliveries {
            partition.marks.read(destination, offset);
        }
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
        if let Some(partition) = self.partitions.get_mut(&record.at) {
            partition.marks.settled(destination, record.offset);
        }
        if record.unsettled.is_empty() {
            let record = self.records.remove(&seq).expect("present above");
            if let Some(partition) = self.partitions.get_mut(&record.at) {
                partition.open.remove(&record.offset);
                partition.settled_to = partition.settled_to.max(Some(record.offset));
            }
        }
        found
    }

    /// The marks the partition's earlier owners left on the ledger, taken on before
    /// anything of it is read.
    pub fn inherit(&mut self, at: &TopicPartition, marks: Vec<(String, Mark)>) {
        if let Some(partition) = self.partitions.get_mut(at) {
            partition.marks.inherit(marks);
        }
    }

    /// Remembers the opportunity ids of `at` read before it was assigned here, oldest
    /// first.
    pub fn remember_ids(&mut self, at: &TopicPartition, ids: Vec<String>) {
        if let Some(partition) = self.partitions.get_mut(at) {
            for id in ids {
                partition.recent.first(&id);
            }
        }
    }

    /// Whether the opportunity `id` read from `at` is the first with it among the
    /// partition's latest: a later one is a copy the source produced again.
    /// True, remembering nothing, if `at` is no longer assigned under `epoch`.
    pub fn first_of(&mut self, at: &TopicPartition, epoch: u64, id: &str) -> bool {
        match self.partitions.get_mut(at) {
            Some(partition) if partition.epoch == epoch => partition.recent.first(id),
            _ => true,
        }
    }

    /// What the earlier owners' marks say of the record at `offset` of `at` for
    /// `destination`.
    pub fn inherited(&self, at: &TopicPartition, offset: i64, destination: &str) -> Inherited {
        self.partitions
            .get(at)
            .map_or(Inherited::Open, |p| p.marks.inherited(destination, offset))
    }

    /// The deliveries `seqs` of `destination` are about to be sent: the marks the
    /// ledger must have first (with them in flight, and any change of the destination's
    /// not acknowledged yet); see [`Starting`].
    pub fn starting(&mut self, destination: &str, seqs: &[u64]) -> Starting {
        let mut starting = Starting::default();
        for seq in seqs {
            let Some(record) = self.records.get(seq) else {
                starting.gone.push(*seq);
                continue;
            };
            if let Some(partition) = self.partitions.get_mut(&record.at)
                && !partition.revoking
            {
                partition.marks.started(destination, record.offset);
                starting.going.push(*seq);
            }
        }
        starting.entries = self.unpublished(destination);
        starting
    }

    /// Of `seqs`, started and their marks written, those that may still go: a partition
    /// revoked meanwhile (or being revoked) keeps its own, and they are no longer in
    /// flight.
    pub fn confirm(&mut self, destination: &str, seqs: Vec<u64>) -> Vec<u64> {
        let (going, held): (Vec<u64>, Vec<u64>) = seqs.into_iter().partition(|seq| {
            self.records
                .get(seq)
                .and_then(|record| self.partitions.get(&record.at))
                .is_some_and(|partition| !partition.revoking)
        });
        self.unstart(destination, &held);
        going
    }

    /// The deliveries `seqs` of `destination` did not start after all.
    pub fn unstart(&mut self, destination: &str, seqs: &[u64]) {
        for seq in seqs {
            if let Some(record) = self.records.get(seq)
                && let Some(partition) = self.partitions.get_mut(&record.at)
            {
                partition.marks.unstarted(destination, record.offset);
            }
        }
    }

    /// The marks of `destination` the ledger has not acknowledged.
    pub fn unpublished(&mut self, destination: &str) -> Vec<LedgerEntry> {
        let mut entries: Vec<LedgerEntry> = self
            .partitions
            .iter_mut()
            .filter_map(|(at, partition)| {
                let (mark, version) = partition
                    .marks
                    .unpublished(destination, partition.read_to)?;
                Some(LedgerEntry {
                    at: at.clone(),
                    epoch: partition.epoch,
                    destination: destination.to_owned(),
                    mark,
                    version,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.at.cmp(&b.at));
        entries
    }

    /// The ledger acknowledged `entries` (those of an earlier assignment of their
    /// partition count for nothing: its versions started again).
    pub fn published(&mut self, entries: &[LedgerEntry]) {
        for entry in entries {
            if let Some(partition) = self.partitions.get_mut(&entry.at)
                && partition.epoch == entry.epoch
            {
                partition.marks.published(&entry.destination, entry.version);
            }
        }
    }

    /// `at` is about to be revoked: none of its deliveries starts any more.
    pub fn revoking(&mut self, at: &TopicPartition) {
        if let Some(partition) = self.partitions.get_mut(at) {
            partition.revoking = true;
        }
    }

    /// Whether any of `partitions` has a delivery in flight.
    pub fn in_flight(&self, partitions: &[TopicPartition]) -> bool {
        partitions
            .iter()
            .filter_map(|at| self.partitions.get(at))
            .any(|partition| partition.marks.in_flight())
    }

    /// The marks of `partitions`, of every destination, the ledger has not acknowledged.
    pub fn unpublished_of(&mut self, partitions: &[TopicPartition]) -> Vec<LedgerEntry> {
        let destinations: BTreeSet<String> = partitions
            .iter()
            .filter_map(|at| self.partitions.get(at))
            .flat_map(|partition| partition.marks.destinations().map(str::to_owned))
            .collect();
        destinations
            .iter()
            .flat_map(|destination| self.unpublished(destination))
            .filter(|entry| partitions.contains(&entry.at))
            .collect()
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
mod tests;
