//! The consumer's rebalance callbacks. rdkafka calls them from inside `poll`, on the thread
//! that polls, while the previous round may be processed on rayon's pool, so they take
//! the workers' lock, which processing holds for a round. On assignment each partition is
//! restored from its checkpoint and assigned at the checkpoint's offset (the checkpoint,
//! not the group's committed offset, is the truth: a crash between the two must not apply
//! events twice); on revocation each is checkpointed and its offset committed before it
//! goes (see [`crate::shared`] for what may be committed when).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::SourceError;
use crate::partition::{PartitionWorker, Restored};
use crate::shared::{Key, Retire, Shared};

pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
}

impl ClientContext for Context {
    /// Keeps each partition's consumer lag from librdkafka's periodic statistics.
    fn stats(&self, statistics: Statistics) {
        let Ok(mut lag) = self.shared.lag.lock() else {
            return;
        };
        for (topic, stats) in statistics.topics {
            for (partition, p) in stats.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert((topic.clone(), partition), p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    /// Each assignment takes the partitions at their checkpoints' offsets, each revocation
    /// checkpoints them first; with the cooperative protocol (`cooperative-sticky`) only
    /// the partitions that move are touched (incremental assign and unassign), the others
    /// carry on.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned = positions(&self.shared, list).and_then(|positioned| {
                    let done = if cooperative {
                        consumer.incremental_assign(&positioned)
                    } else {
                        consumer.assign(&positioned)
                    };
                    done.map_err(SourceError::from)
                });
                if let Err(e) = assigned {
                    self.shared.fail(e);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if !self.shared.abandoned.load(Ordering::SeqCst)
                    && let Err(e) = revoke(&self.shared, consumer, list)
                {
                    self.shared.fail(e);
                }
                let unassigned = if cooperative {
                    consumer.incremental_unassign(list)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    self.shared.fail(e.into());
                }
            }
            other => tracing::warn!(error = %RDKafkaErrorCode::from(other), "rebalancing"),
        }
    }
}

/// Restores each newly assigned partition; returns them at their checkpoints' offsets.
fn positions(
    shared: &Shared,
    list: &TopicPartitionList,
) -> Result<TopicPartitionList, SourceError> {
    let mut workers = shared.workers()?;
    let mut positioned = TopicPartitionList::new();
    for element in list.elements() {
        let key = (element.topic().to_owned(), element.partition());
        let resume_at = match workers.get(&key) {
            Some(worker) => worker.resume_offset(),
            None => {
                let _restoring =
                    tracing::info_span!("restore", topic = %key.0, partition = key.1).entered();
                let (worker, restored) = PartitionWorker::restore(
                    shared.settings(),
                    &shared.store,
                    shared.changelog.as_ref(),
                    &key.0,
                    key.1,
                    Instant::now(),
                )?;
                workers.insert(key.clone(), worker);
                report_restore(&restored);
                restored.resume_at
            }
        };
        // Without a checkpoint there is no state: rebuild it from the start of the
        // partition, not from the group's committed offset.
        let offset = resume_at.map_or(Offset::Beginning, Offset::Offset);
        positioned.add_partition_offset(&key.0, key.1, offset)?;
    }
    Ok(positioned)
}

/// Says what a partition was restored from, and warns when checkpoints were left out;
/// inside the `restore` span, which names the partition.
fn report_restore(restored: &Restored) {
    match restored.resume_at {
        Some(offset) => tracing::info!(
            accounts = restored.accounts,
            offset,
            "partition restored, resuming at its checkpoint's offset"
        ),
        None if restored.rebuilding > 0 => tracing::info!(
            accounts = restored.accounts,
            "partition restored, reading it from the start to rebuild the accounts whose state could not be read"
        ),
        None if restored.accounts > 0 => tracing::info!(
            accounts = restored.accounts,
            "partition restored from a changelog with no completed checkpoint, reading it from the start"
        ),
        None => tracing::info!("no checkpoint, building the partition's state from the start"),
    }
    if let Some(records) = restored.from_changelog.filter(|records| *records > 0) {
        tracing::info!(
            records,
            "changelog records read (the local store was missing or behind)"
        );
    }
    if restored.quarantined > 0 {
        tracing::warn!(
            records = restored.quarantined,
            "unusable changelog records set aside; restore went on without them"
        );
    }
    if restored.ahead > 0 {
        tracing::info!(
            accounts = restored.ahead,
            "accounts ahead of the resume offset (a checkpoint cut short): their records before it are read, not applied"
        );
    }
    if restored.rebuilding > 0 {
        tracing::warn!(
            accounts = restored.rebuilding,
            "accounts whose changelog state could not be read are rebuilt from the start of the partition"
        );
    }
    if restored.skipped > 0 {
        tracing::warn!(
            skipped = restored.skipped,
            "newer checkpoints left out (damaged or unreadable); the events after them are processed again"
        );
    }
}

/// Checkpoints and commits each revoked partition, then drops its worker.
fn revoke(
    shared: &Shared,
    consumer: &BaseConsumer<Context>,
    list: &TopicPartitionList,
) -> Result<(), SourceError> {
    // The lock first: a round being processed on another thread holds it until its
    // dead letters are produced and its opportunities handed to the sink. Then everything
    // the revoked partitions caused must be acknowledged before their checkpoints move
    // past it: restore resumes from the checkpoint.
    let mut workers = shared.workers()?;
    // A round that failed half-way handed on only part of what it processed: its state
    // must not be checkpointed.
    if shared.abandoned.load(Ordering::SeqCst) {
        return Ok(());
    }
    let revoked: Vec<Key> = list
        .elements()
        .iter()
        .map(|element| (element.topic().to_owned(), element.partition()))
        .collect();
    // Lost, not handed over (a session timeout, a network cut): another member owns them
    // now. Nothing more is written or committed for them, records already fetched for them
    // find no worker, and their state, which may be behind the new owner's, goes.
    if consumer.assignment_lost() {
        for key in &revoked {
            if let Some(worker) = workers.remove(key) {
                shared.retire(&worker);
            }
        }
        return Ok(());
    }
    shared.checkpoint(
        consumer,
        &mut workers,
        &revoked,
        CommitMode::Sync,
        Retire::Yes,
    )
}
