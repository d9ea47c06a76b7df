//! **What may be committed when**, stated once, in [`Committer::checkpoint`], which every
//! checkpoint goes through: periodic ones, those of revoked partitions and the last ones
//! at a graceful stop, all made by the poll loop between rounds ([`crate::source`]).
//!
//! An offset is committed only once everything the records before it caused is durable,
//! in this order:
//! 1. their opportunities durable: the sink synced (the outbox written, or the
//!    opportunities topic acknowledged; see [`crate::sink`]);
//! 2. their dead letters acknowledged by the broker ([`Producer::flush`]);
//! 3. with a changelog, the store synced to disk, since the changelog's completion
//!    records move the partitions past what it holds (in `radar run` the local outbox
//!    is then unused: the opportunities topic, synced in 1, is the outbox);
//! 4. the partition's checkpoint covering them written ([`PartitionWorker::checkpoint`]:
//!    to the changelog, then the local store);
//! 5. the offsets committed.
//!
//! A loop that fails, or stops abruptly, returns without another checkpoint: nothing more
//! is committed, and the next owner redoes the work from the last checkpoint.
//!
//! [`PartitionWorker::checkpoint`]: crate::partition::PartitionWorker::checkpoint

use std::sync::atomic::Ordering;
use std::time::Instant;

use radar_store::Store;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::changelog::Changelog;
use crate::error::SourceError;
use crate::partitions::{Key, Partitions};
use crate::producer::Producer;
use crate::progress::Progress;
use crate::rebalance::Context;
use crate::sink::OpportunitySink;

/// Whether checkpointed partitions leave (revoked) or stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retire {
    Yes,
    No,
}

/// What a checkpoint makes durable, in the order above.
pub(crate) struct Committer<'a> {
    pub(crate) consumer: &'a BaseConsumer<Context>,
    pub(crate) producer: &'a Producer,
    pub(crate) store: &'a Store,
    pub(crate) changelog: Option<&'a Changelog>,
    /// Where fenced partitions are counted.
    pub(crate) progress: &'a Progress,
}

impl Committer<'_> {
    /// Checkpoints the partitions `keys` and commits their offsets, in the order stated
    /// at the top of this module. Retired partitions leave, their counts kept.
    pub(crate) fn checkpoint(
        &self,
        partitions: &mut Partitions,
        keys: &[Key],
        sink: &mut impl OpportunitySink,
        mode: CommitMode,
        retire: Retire,
    ) -> Result<(), SourceError> {
        let _checkpointing = tracing::debug_span!("checkpoint", partitions = keys.len()).entered();
        // A process that lost its partitions (a session timeout, a network cut) writes
        // and commits nothing more for them: their new owner holds them now.
        if self.changelog.is_some() && self.consumer.assignment_lost() {
            return Ok(());
        }
        sink.sync().map_err(SourceError::Sink)?;
        self.producer.flush()?;
        if self.changelog.is_some() {
            self.store.sync()?;
        }
        let mut offsets = TopicPartitionList::new();
        for key in keys {
            let Some(worker) = partitions.workers.get_mut(key) else {
                continue;
            };
            match worker.checkpoint(self.store, self.changelog, Instant::now()) {
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
                    self.progress.fenced.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        topic = %key.0,
                        partition,
                        "partition fenced: another instance wrote its changelog since; dropped unwritten"
                    );
                    partitions.retire(key);
                    continue;
                }
                Err(e) => return Err(e),
            }
            partitions.note_written(key);
            if retire == Retire::Yes {
                partitions.retire(key);
            }
        }
        self.commit(&offsets, mode);
        Ok(())
    }

    /// Commits offsets whose checkpoints are durable. A refused commit (a rebalance in
    /// progress, a lost assignment) is not fatal: the checkpoint is the truth. For the
    /// same reason the periodic commits need not wait for the broker
    /// (`CommitMode::Async`); those on revocation and at stop do.
    fn commit(&self, offsets: &TopicPartitionList, mode: CommitMode) {
        if offsets.count() == 0 || self.consumer.assignment_lost() {
            return;
        }
        if let Err(e) = self.consumer.commit(offsets, mode) {
            self.progress
                .commits_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "commit refused; the checkpoints stand");
        }
    }
}
