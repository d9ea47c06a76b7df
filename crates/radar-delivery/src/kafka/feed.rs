//! The delivery consumer: reads the opportunities and retry topics as the delivery group,
//! queues what it reads for the destination workers, and commits each partition as far
//! as its deliveries are settled (see [`super::in_hand`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use radar_core::Opportunity;
use radar_store::{Delivery, Recent, Store};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Notify, watch};

use super::in_hand::{QueueKey, TopicPartition};
use super::{KafkaDelivery, parked};
use crate::settings::DeliverySettings;

/// How long one poll waits when the topics are idle.
const POLL: Duration = Duration::from_millis(100);
/// Records taken per round (one store transaction).
const BATCH: usize = 512;
/// How often settled progress is committed.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Records held with unsettled deliveries beyond which reading pauses: a receiver that is
/// down shows as consumer lag, not as an ever-growing local queue.
const MAX_HELD: usize = 50_000;

/// The rebalance side: a partition that goes is committed as far as it is settled
/// (unless it was lost: another member owns it now), and its queued deliveries leave the
/// local queues, for the new owner reads them again.
struct FeedContext {
    kafka: Arc<KafkaDelivery>,
    store: Arc<Store>,
}

impl ClientContext for FeedContext {}

impl ConsumerContext for FeedContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let lost = consumer.assignment_lost();
        let mut commit = TopicPartitionList::new();
        let mut dropped = Vec::new();
        {
            let mut hand = self.kafka.in_hand();
            for element in list.elements() {
                let at = (element.topic().to_owned(), element.partition());
                if !lost && let Some(offset) = hand.committable(&at) {
                    let _ = commit.add_partition_offset(&at.0, at.1, Offset::Offset(offset));
                }
                dropped.extend(hand.revoke(&at));
            }
        }
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            eprintln!("radar: delivery: committing revoked partitions: {e}");
        }
        if let Err(e) = self.store.remove_queued(&dropped) {
            eprintln!(
                "radar: delivery: dropping {} deliveries of revoked partitions from the local queue: {e}",
                dropped.len()
            );
        }
    }
}

/// A delivery a record asks for.
struct Wanted {
    destination: String,
    due_ms: u64,
    attempts: u32,
    created_ms: u64,
    last_error: Option<String>,
}

/// What one record becomes: deliveries of its opportunity, which is remembered under its
/// account if it decodes.
struct Read {
    at: TopicPartition,
    offset: i64,
    opportunity: Vec<u8>,
    account_id: Option<String>,
    wanted: Vec<Wanted>,
}

/// Reads until `stop`; runs on a thread of its own (it blocks in `poll`).
pub(crate) fn feed(
    kafka: Arc<KafkaDelivery>,
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    wakers: Vec<Arc<Notify>>,
    stop: watch::Receiver<bool>,
) {
    let consumer = match subscribe(&kafka, &store) {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("radar: delivery: cannot consume the opportunities topic: {e}");
            return;
        }
    };
    let index: HashMap<&str, usize> = settings
        .destinations
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut committed = Instant::now();
    let mut paused = false;
    while !*stop.borrow() {
        let held = kafka.in_hand().len();
        if held >= MAX_HELD && !paused {
            paused = consumer
                .assignment()
                .and_then(|assigned| consumer.pause(&assigned))
                .is_ok();
        } else if held < MAX_HELD / 2 && paused {
            paused = consumer
                .assignment()
                .and_then(|assigned| consumer.resume(&assigned))
                .is_err();
        }
        let mut batch = Vec::new();
        let mut next = consumer.poll(POLL);
        while let Some(result) = next {
            match result {
                Ok(message) => batch.push(read(&kafka, &settings, &message)),
                Err(e) => eprintln!("radar: delivery: consuming: {e}"),
            }
            next = if batch.len() < BATCH {
                consumer.poll(Duration::ZERO)
            } else {
                None
            };
        }
        queue(&kafka, &store, &index, &wakers, batch, &stop);
        if committed.elapsed() >= COMMIT_EVERY {
            committed = Instant::now();
            commit(&kafka, &consumer, CommitMode::Async);
        }
    }
    commit(&kafka, &consumer, CommitMode::Sync);
}

fn subscribe(
    kafka: &Arc<KafkaDelivery>,
    store: &Arc<Store>,
) -> Result<BaseConsumer<FeedContext>, rdkafka::error::KafkaError> {
    let mut client = kafka.config.client();
    client
        .set("group.id", &kafka.config.group_id)
        .set("enable.auto.commit", "false")
        // A new delivery group starts at the beginning of the opportunities topic: the
        // source may have produced there before delivery first joined.
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<FeedContext> = client.create_with_context(FeedContext {
        kafka: kafka.clone(),
        store: store.clone(),
    })?;
    consumer.subscribe(&[&kafka.config.opportunities_topic, &kafka.config.retry_topic])?;
    Ok(consumer)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a record of the opportunities topic (fanned out to the destinations that want
/// it) or of the retry topic (for its own destination) becomes.
fn read(kafka: &KafkaDelivery, settings: &DeliverySettings, message: &BorrowedMessage<'_>) -> Read {
    let mut record = Read {
        at: (message.topic().to_owned(), message.partition()),
        offset: message.offset(),
        opportunity: Vec::new(),
        account_id: None,
        wanted: Vec::new(),
    };
    if message.topic() == kafka.config.retry_topic {
        match parked::read(message) {
            Ok(retry) => {
                record.opportunity = retry.opportunity;
                record.wanted.push(Wanted {
                    destination: retry.destination,
                    due_ms: retry.due_ms,
                    attempts: retry.attempts,
                    created_ms: retry.created_ms,
                    last_error: retry.reason,
                });
            }
            Err(why) => eprintln!(
                "radar: delivery: skipping record {}/{}/{} of the retry topic, which radar did not write: {why}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
        }
        return record;
    }
    let now = now_ms();
    record.opportunity = message.payload().unwrap_or_default().to_vec();
    // A record that does not decode still goes everywhere: building its request fails,
    // and it lands on the dead-letter topic with the reason, not lost.
    let opportunity = serde_json::from_slice::<Opportunity>(&record.opportunity).ok();
    record.account_id = opportunity.as_ref().map(|o| o.account_id.to_string());
    // Latency counts from when the source produced it.
    let created_ms = message
        .timestamp()
        .to_millis()
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(now);
    for destination in &settings.destinations {
        if opportunity
            .as_ref()
            .is_none_or(|o| destination.filter.wants(o))
        {
            record.wanted.push(Wanted {
                destination: destination.name.clone(),
                due_ms: now,
                attempts: 0,
                created_ms,
                last_error: None,
            });
        }
    }
    record
}

/// Gives each record its sequence, holds it, and queues its deliveries; a retry for a
/// destination no longer configured goes to the dead-letter topic.
fn queue(
    kafka: &KafkaDelivery,
    store: &Store,
    index: &HashMap<&str, usize>,
    wakers: &[Arc<Notify>],
    batch: Vec<Read>,
    stop: &watch::Receiver<bool>,
) {
    if batch.is_empty() {
        return;
    }
    let (mut deliveries, mut recent, mut orphans) = (Vec::new(), Vec::new(), Vec::new());
    let mut woken = vec![false; wakers.len()];
    {
        let mut hand = kafka.in_hand();
        for record in batch {
            let seq = hand.next_seq();
            let keys: Vec<QueueKey> = record
                .wanted
                .iter()
                .map(|w| (w.destination.clone(), w.due_ms, seq))
                .collect();
            hand.read(&record.at, record.offset, keys);
            for wanted in record.wanted {
                let delivery = Delivery {
                    destination: wanted.destination,
                    seq,
                    due_ms: wanted.due_ms,
                    attempts: wanted.attempts,
                    created_ms: wanted.created_ms,
                    last_error: wanted.last_error,
                    opportunity: record.opportunity.clone(),
                };
                match index.get(delivery.destination.as_str()) {
                    Some(&i) => {
                        woken[i] = true;
                        deliveries.push(delivery);
                    }
                    None => orphans.push(delivery),
                }
            }
            if let Some(account_id) = record.account_id {
                recent.push(Recent {
                    account_id,
                    seq,
                    opportunity: record.opportunity,
                });
            }
        }
    }
    // The store is the only way to the workers: keep trying while radar runs (a full
    // disk, say), holding the records, which stay uncommitted meanwhile.
    while let Err(e) = store.enqueue(&deliveries, &recent) {
        eprintln!("radar: delivery: queueing what was read: {e} (will try again)");
        if *stop.borrow() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for (waker, woken) in wakers.iter().zip(woken) {
        if woken {
            waker.notify_one();
        }
    }
    if !orphans.is_empty() {
        park_orphans(kafka, orphans, stop);
    }
}

/// Retries whose destination was removed from the configuration: nothing will send them,
/// so they become dead letters (which `radar dlq replay` can bring back once it is again).
fn park_orphans(kafka: &KafkaDelivery, orphans: Vec<Delivery>, stop: &watch::Receiver<bool>) {
    let now = now_ms();
    let settlements: Vec<radar_store::Settlement> = orphans
        .into_iter()
        .map(|delivery| {
            crate::outcome::dead(
                delivery,
                now,
                "its destination is no longer configured".into(),
            )
        })
        .collect();
    let runtime = tokio::runtime::Handle::current();
    loop {
        match runtime.block_on(kafka.park(&settlements)) {
            Ok(()) => break,
            Err(e) => {
                eprintln!("radar: delivery: {e} (will try again)");
                if *stop.borrow() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    kafka.settled(&settlements);
}

/// Commits every partition whose settled progress moved.
fn commit(kafka: &KafkaDelivery, consumer: &BaseConsumer<FeedContext>, mode: CommitMode) {
    let moved = kafka.in_hand().to_commit();
    if moved.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in moved {
        let _ = list.add_partition_offset(&topic, partition, Offset::Offset(offset));
    }
    if let Err(e) = consumer.commit(&list, mode) {
        eprintln!("radar: delivery: committing: {e}");
    }
}
