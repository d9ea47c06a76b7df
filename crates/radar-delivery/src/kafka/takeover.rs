//! What an instance reads when it is assigned partitions of the opportunities or retry
//! topic, before it reads any of their records: the marks their earlier owners left on
//! the settlement ledger ([`super::ledger`]), and the opportunity ids just below their
//! committed offsets, so that an opportunity the source produced twice is delivered once.
//!
//! The source produces an opportunity twice when an instance dies after producing it and
//! before its state's next checkpoint: the instance that takes the events over processes
//! them again and produces the same opportunity (same id, same account, so the same
//! partition) a little further on. The copy is at most [`RECENT_IDS`] records after the
//! original in practice (one checkpoint interval's opportunities of one partition); a
//! copy further on is delivered again, under the same id.
//!
//! Either read failing costs repeats (under the same ids), never a delivery: it is
//! logged and counted, and the partition is read as if it had no past.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use radar_core::Opportunity;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::in_hand::TopicPartition;
use super::{KafkaDelivery, KafkaDeliveryConfig, ledger};
use crate::error::TopicError;

/// How long reading a partition may go without progress.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading a partition may take in all: it runs in the rebalance callback, and
/// a ledger the broker has not compacted may be long. Stopping costs repeats only.
const TOTAL: Duration = Duration::from_secs(120);

/// How many of a partition's latest opportunity ids are remembered, and read back from
/// below the committed offset on assignment.
pub const RECENT_IDS: usize = 2_000;

/// Reads what the partitions `assigned` (just assigned to `consumer`, the delivery
/// group's) need before their first record: see the module doc. Says how many reads
/// failed.
pub(crate) fn on_assign<C: ConsumerContext>(
    kafka: &KafkaDelivery,
    consumer: &BaseConsumer<C>,
    assigned: &[TopicPartition],
) -> usize {
    let config = &kafka.config;
    let mut failed = read_back(kafka, consumer, assigned);
    let ledger_partitions: BTreeSet<i32> = assigned
        .iter()
        .map(|at| ledger::ledger_partition(at.1, kafka.ledger_partitions))
        .collect();
    let mut marks = HashMap::new();
    for partition in ledger_partitions {
        match ledger::read(config, partition) {
            Ok(read) => marks.extend(read),
            Err(e) => {
                failed += 1;
                tracing::warn!(
                    partition,
                    error = %e,
                    "delivery: reading the settlement ledger; what the earlier owners of its partitions settled beyond the commit will be sent again"
                );
            }
        }
    }
    let mut hand = kafka.in_hand();
    for at in assigned {
        if let Some(inherited) = marks.remove(at) {
            hand.inherit(at, inherited);
        }
    }
    failed
}

/// Remembers the opportunity ids just below the committed offsets of the opportunities
/// topic's partitions among `assigned`; says how many reads failed.
fn read_back<C: ConsumerContext>(
    kafka: &KafkaDelivery,
    consumer: &BaseConsumer<C>,
    assigned: &[TopicPartition],
) -> usize {
    let topic = &kafka.config.opportunities_topic;
    let mut ours = TopicPartitionList::new();
    for at in assigned.iter().filter(|at| at.0 == *topic) {
        ours.add_partition(topic, at.1);
    }
    if ours.count() == 0 {
        return 0;
    }
    let committed = match consumer.committed_offsets(ours, TIMEOUT) {
        Ok(committed) => committed,
        Err(e) => {
            tracing::warn!(error = %e, "delivery: reading the committed offsets of partitions taken over; an opportunity the source produced twice may be delivered twice");
            return 1;
        }
    };
    let mut failed = 0;
    for element in committed.elements() {
        let Offset::Offset(offset) = element.offset() else {
            continue;
        };
        let at = (topic.clone(), element.partition());
        match ids_below(&kafka.config, at.1, offset) {
            Ok(ids) => kafka.in_hand().remember_ids(&at, ids),
            Err(e) => {
                failed += 1;
                tracing::warn!(
                    partition = at.1,
                    error = %e,
                    "delivery: reading back a partition taken over; an opportunity the source produced twice may be delivered twice"
                );
            }
        }
    }
    failed
}

/// The ids of the opportunities in the [`RECENT_IDS`] records of `partition` of the
/// opportunities topic below `committed`, oldest first: only of records that decode, as
/// the delivery consumer remembers them.
fn ids_below(
    config: &KafkaDeliveryConfig,
    partition: i32,
    committed: i64,
) -> Result<Vec<String>, TopicError> {
    let mut ids = Vec::new();
    let from = committed.saturating_sub(RECENT_IDS as i64);
    read_partition(
        config,
        &config.opportunities_topic,
        partition,
        Some((from, committed)),
        |message| {
            let opportunity = message
                .payload()
                .and_then(|json| serde_json::from_slice::<Opportunity>(json).ok());
            if let Some(opportunity) = opportunity {
                ids.push(opportunity.opportunity_id.to_string());
            }
        },
    )?;
    Ok(ids)
}

/// Reads `partition` of `topic` from the start, or from `range.0`, to its end, or to
/// `range.1`, handing `each` every record.
pub(crate) fn read_partition(
    config: &KafkaDeliveryConfig,
    topic: &str,
    partition: i32,
    range: Option<(i64, i64)>,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), TopicError> {
    // Assigned, never subscribed: the group id is librdkafka's requirement only (and
    // no static membership: `group.instance.id` is for the group's own consumer).
    let consumer: BaseConsumer = config
        .client()
        .set("group.id", format!("{}-takeover", config.group_id))
        .remove("group.instance.id")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
    // Not bounded by the high watermark: some brokers (tansu) report one short of the
    // records they hold.
    let (from, to) = match range {
        Some((from, to)) => (from.max(low), to),
        None => (low, high),
    };
    if to <= from {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let mut progressed = started;
    // To `to`: a record there or past it, or the end of the partition with the
    // consumer's position past `to` (a compacted topic has gaps, and some brokers report
    // a watermark short of a batch's last record).
    loop {
        if progressed.elapsed() > TIMEOUT {
            return Err(TopicError::Stalled {
                topic: topic.to_owned(),
                seconds: TIMEOUT.as_secs(),
            });
        }
        if started.elapsed() > TOTAL {
            return Err(TopicError::TooLong {
                topic: topic.to_owned(),
                seconds: TOTAL.as_secs(),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                progressed = Instant::now();
                if range.is_some() && message.offset() >= to {
                    return Ok(());
                }
                each(&message);
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                let position = consumer
                    .position()?
                    .find_partition(topic, partition)
                    .and_then(|p| p.offset().to_raw())
                    .unwrap_or(0);
                if position >= to {
                    return Ok(());
                }
            }
            None => {}
            Some(Err(e)) => {
                tracing::warn!(%topic, partition, error = %e, "delivery: reading a partition taken over");
            }
        }
    }
}
