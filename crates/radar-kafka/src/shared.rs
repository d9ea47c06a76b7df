//! What the poll loop and the rebalance callbacks share: the partition workers and the
//! producer, and the rule that ties them together.
//!
//! **What may be committed when.** An offset is committed only once everything the
//! records before it caused is durable: their opportunities in the sink (flushed) and on
//! the opportunities topic, and their dead letters, acknowledged by the broker
//! ([`Producer::flush`]), and the outbox synced to disk when a changelog follows; then the
//! partition's checkpoint covering them, written ([`PartitionWorker::checkpoint`]: to the
//! changelog, then the local store). Periodic checkpoints ([`crate::Source`]) and
//! revocations ([`crate::rebalance`]) both go through [`Shared::checkpoint`], in that
//! order. After a failure half-way, or an abrupt stop, the source is *abandoned*: nothing
//! more is checkpointed or committed, and the next owner redoes the work from the last
//! checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use radar_core::{Settings, Stats};
use radar_store::{Content, Store};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::changelog::Changelog;
use crate::error::SourceError;
use crate::partition::PartitionWorker;
use crate::producer::Producer;
use crate::progress::Progress;
use crate::rebalance::Context;

/// A partition: (topic, partition).
pub(crate) type Key = (String, i32);

/// Whether checkpointed partitions leave (revoked) or stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retire {
    Yes,
    No,
}

/// Partition workers and what they share, reached from the poll loop and from the
/// rebalance callbacks.
pub(crate) struct Shared {
    /// The engine settings in force: what a partition assigned from now on starts with.
    pub(crate) settings: Mutex<Arc<Settings>>,
    /// Settings to switch to at the start of the next round ([`crate::SettingsSwitch`]).
    pub(crate) pending: Mutex<Option<Arc<Settings>>>,
    pub(crate) store: Arc<Store>,
    /// Produces dead letters and, when configured, opportunities.
    pub(crate) producer: Producer,
    /// Where partition state lives when `store = "kafka"`.
    pub(crate) changelog: Option<Changelog>,
    pub(crate) workers: Mutex<HashMap<Key, PartitionWorker>>,
    /// Consumer lag by partition, from the statistics callback.
    pub(crate) lag: Mutex<BTreeMap<Key, i64>>,
    /// Stats of partitions that were revoked, so nothing counted is lost.
    pub(crate) retired: Mutex<Stats>,
    /// What partition checkpoints wrote, from the poll loop and from revocations, until
    /// the source next publishes its progress ([`Progress`]).
    pub(crate) written: Mutex<Vec<(Content, usize)>>,
    /// A failure inside a callback, reported by the poll loop.
    pub(crate) failure: Mutex<Option<SourceError>>,
    /// Set by an abrupt stop: from then on nothing is checkpointed or committed, not even
    /// by the revocation that closing the consumer triggers (a crash would not either).
    pub(crate) abandoned: AtomicBool,
}

impl Shared {
    /// The engine settings in force.
    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Switches every partition to the pending settings, if any, under the partitions'
    /// lock held as `workers`: between two rounds, so each round runs on one version.
    pub(crate) fn switch_pending(&self, workers: &mut HashMap<Key, PartitionWorker>) {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(settings) = pending {
            for worker in workers.values_mut() {
                worker.set_settings(settings.clone());
            }
            tracing::info!(
                version = settings.version.as_deref().unwrap_or("-"),
                partitions = workers.len(),
                "new settings in force"
            );
            *self
                .settings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = settings;
        }
    }

    pub(crate) fn workers(
        &self,
    ) -> Result<MutexGuard<'_, HashMap<Key, PartitionWorker>>, SourceError> {
        self.workers.lock().map_err(|_| SourceError::Poisoned)
    }

    /// Keeps the counts of a worker that leaves.
    pub(crate) fn retire(&self, worker: &PartitionWorker) {
        if let Ok(mut retired) = self.retired.lock() {
            retired.merge(worker.stats());
        }
    }

    /// Notes what a worker's checkpoint just wrote.
    pub(crate) fn note_written(&self, worker: &mut PartitionWorker) {
        if let Some(written) = worker.take_written()
            && let Ok(mut list) = self.written.lock()
            && list.len() < Progress::KEPT
        {
            list.push(written);
        }
    }

    pub(crate) fn fail(&self, error: SourceError) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
    }

    /// Checkpoints the partitions `keys` and commits their offsets, in the order stated
    /// at the top of this module: the producer's records acknowledged first (the sink is
    /// the caller's to flush), then each checkpoint written, then the offsets committed.
    /// Retired partitions leave `workers`, their counts kept.
    pub(crate) fn checkpoint(
        &self,
        consumer: &BaseConsumer<Context>,
        workers: &mut HashMap<Key, PartitionWorker>,
        keys: &[Key],
        mode: CommitMode,
        retire: Retire,
    ) -> Result<(), SourceError> {
        let _checkpointing = tracing::debug_span!("checkpoint", partitions = keys.len()).entered();
        // A process that lost its partitions (a session timeout, a network cut) writes
        // and commits nothing more for them: their new owner holds them now.
        if self.changelog.is_some() && consumer.assignment_lost() {
            return Ok(());
        }
        self.producer.flush()?;
        // The changelog's completion records move the partitions past what the outbox
        // holds, so the outbox must be on disk first (the local checkpoint that would make
        // it durable comes after the changelog's).
        if self.changelog.is_some() {
            self.store.sync()?;
        }
        let mut offsets = TopicPartitionList::new();
        for key in keys {
            let Some(worker) = workers.get_mut(key) else {
                continue;
            };
            match worker.checkpoint(&self.store, self.changelog.as_ref(), Instant::now()) {
                Ok(Some(offset)) => {
                    offsets.add_partition_offset(&key.0, key.1, Offset::Offset(offset))?;
                }
                Ok(None) => {}
                // Another instance holds the partition now (this one was frozen or cut
                // off past its session timeout, and librdkafka has not said so yet):
                // it goes, unwritten and uncommitted; its records find no worker, and
                // the rebalance librdkafka starts once it notices restores it if it
                // comes back.
                Err(SourceError::Fenced(partition)) => {
                    tracing::warn!(
                        topic = %key.0,
                        partition,
                        "another instance has written this partition's changelog since: it holds the partition now; dropping it unwritten"
                    );
                    if let Some(worker) = workers.remove(key) {
                        self.retire(&worker);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.note_written(worker);
            if retire == Retire::Yes
                && let Some(worker) = workers.remove(key)
            {
                self.retire(&worker);
            }
        }
        self.commit(consumer, &offsets, mode);
        Ok(())
    }

    /// Commits offsets whose checkpoints are durable. A refused commit (a rebalance in
    /// progress, a lost assignment) is not fatal: the checkpoint is the truth, and the next
    /// commit, or the next owner restoring it, moves on from there. For the same reason
    /// the periodic commits need not wait for the broker (`CommitMode::Async`); those on
    /// revocation and at stop do.
    pub(crate) fn commit(
        &self,
        consumer: &BaseConsumer<Context>,
        offsets: &TopicPartitionList,
        mode: CommitMode,
    ) {
        if offsets.count() == 0 || consumer.assignment_lost() {
            return;
        }
        if let Err(e) = consumer.commit(offsets, mode) {
            tracing::warn!(error = %e, "committing offsets failed (the checkpoints stand)");
        }
    }
}
