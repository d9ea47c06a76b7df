//! The consumer's callbacks. librdkafka calls them from inside `poll`, on the poll loop's
//! thread. The rebalance callback does no work of its own: it hands the loop a
//! [`Rebalance`] message and returns, and the loop acts on it once its round is over
//! ([`crate::source`]): it restores assigned partitions and then assigns them at their
//! checkpoints' offsets, or checkpoints revoked ones and then unassigns them. librdkafka
//! holds the group's rebalance until the loop's (incremental) assign or unassign call,
//! which is the acknowledgement; the loop makes it within a round, well inside
//! `max.poll.interval.ms`.
//!
//! Once the loop has returned (the consumer closing as the source stops, or after an
//! error) the messages have nowhere to go: the callback then gives up the revoked
//! partitions itself, checkpointing nothing, since a stopped loop has checkpointed
//! whatever it was going to (see [`crate::commit`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SendError, Sender};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::partitions::Key;

/// A change of this member's assignment, for the poll loop to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rebalance {
    /// Partitions given to this member: restore each, then assign it at its checkpoint.
    Assign(Vec<Key>),
    /// Partitions taken from this member. `lost`: taken without a handover (a session
    /// timeout, a network cut), so another member may own them already.
    Revoke { partitions: Vec<Key>, lost: bool },
}

/// Consumer lag by partition, from librdkafka's periodic statistics.
pub(crate) type Lag = Arc<Mutex<BTreeMap<Key, i64>>>;

pub(crate) struct Context {
    pub(crate) rebalances: Sender<Rebalance>,
    pub(crate) lag: Lag,
    /// Offset commits the group refused, periodic (asynchronous) ones included.
    pub(crate) commits_refused: Arc<AtomicU64>,
}

impl ClientContext for Context {
    /// Keeps each partition's consumer lag from librdkafka's periodic statistics.
    fn stats(&self, statistics: Statistics) {
        let Ok(mut lag) = self.lag.lock() else {
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
    /// Counts and logs a refused commit. Harmless: the checkpoint is the truth, and the
    /// next commit, or the next owner restoring it, moves on from there.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let refused = match result {
            Err(e) if e.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset) => Some(e),
            Err(_) => None,
            Ok(()) => offsets.elements().iter().find_map(|p| p.error().err()),
        };
        if let Some(error) = refused {
            let refused = self.commits_refused.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(%error, refused, "commit refused; the checkpoints stand");
        }
    }

    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let partitions = keys(list);
        let message = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke {
                partitions,
                lost: consumer.assignment_lost(),
            },
            other => {
                tracing::warn!(error = %RDKafkaErrorCode::from(other), "rebalancing");
                return;
            }
        };
        if let Err(SendError(Rebalance::Revoke { .. })) = self.rebalances.send(message)
            && let Err(e) = unassign(consumer, list)
        {
            tracing::warn!(error = %e, "giving up partitions after the source stopped");
        }
    }
}

/// Gives partitions back to librdkafka: with the cooperative protocol only `list`, with
/// the eager one the whole assignment (which `list` then is).
pub(crate) fn unassign(
    consumer: &BaseConsumer<Context>,
    list: &TopicPartitionList,
) -> Result<(), rdkafka::error::KafkaError> {
    if cooperative(consumer) {
        consumer.incremental_unassign(list)
    } else {
        consumer.unassign()
    }
}

/// Takes partitions at the given offsets: incrementally with the cooperative protocol
/// (`cooperative-sticky`: only the partitions that move are touched), as the whole
/// assignment with the eager one.
pub(crate) fn assign(
    consumer: &BaseConsumer<Context>,
    positioned: &TopicPartitionList,
) -> Result<(), rdkafka::error::KafkaError> {
    if cooperative(consumer) {
        consumer.incremental_assign(positioned)
    } else {
        consumer.assign(positioned)
    }
}

fn cooperative(consumer: &BaseConsumer<Context>) -> bool {
    matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    )
}

/// The partitions of `list`.
pub(crate) fn keys(list: &TopicPartitionList) -> Vec<Key> {
    list.elements()
        .iter()
        .map(|element| (element.topic().to_owned(), element.partition()))
        .collect()
}

/// `partitions` as a list librdkafka takes.
pub(crate) fn list(partitions: &[Key]) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    list
}
