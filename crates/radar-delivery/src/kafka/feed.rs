//! The delivery consumer: reads the opportunities and retry topics as the delivery group,
//! queues what it reads for the destination workers, and commits each partition as far
//! as its deliveries are settled (see [`super::in_hand`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use radar_core::Opportunity;
use radar_store::Store;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Notify, watch};

use super::in_hand::{QueueKey, TopicPartition};
use super::marks::Inherited;
use super::{KafkaDelivery, parked};
use crate::error::TopicError;
use crate::observe::Observer;
use crate::queue::{Delivery, DeliveryStore, Recent};
use crate::settings::DeliverySettings;
use radar_kafka::throttle::Throttle;

/// How long one poll waits when the topics are idle.
const POLL: Duration = Duration::from_millis(100);
/// Records taken per round (one store transaction).
const BATCH: usize = 512;
/// How often settled progress is committed.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Records held with unsettled deliveries beyond which the retry topic is no longer read
/// (a receiver that is down shows as lag there, not as an ever-growing local queue, while
/// new opportunities still reach the healthy destinations); at twice as many, nothing is.
const MAX_HELD: usize = 50_000;
/// How long a partition revoked from a live instance waits for its deliveries in flight
/// (a webhook's timeout is 10 s by default): past it, the next owner sends them again.
const SETTLE_ON_REVOKE: Duration = Duration::from_secs(10);
/// How long the final commit waits for the destination workers to record what they had
/// in flight (they drain for up to 5 s).
const DRAIN: Duration = Duration::from_secs(6);

/// The rebalance side: a partition that goes is committed as far as it is settled
/// (unless it was lost: another member owns it now), and its queued deliveries leave the
/// local queues, for the new owner reads them again.
struct FeedContext {
    kafka: Arc<KafkaDelivery>,
    store: Arc<Store>,
    observer: Arc<dyn Observer>,
}

impl ClientContext for FeedContext {}

/// The topics and partitions of `list`.
fn partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl FeedContext {
    /// Lets the deliveries of the partitions in `revoked` that are in flight finish, for
    /// up to [`SETTLE_ON_REVOKE`], starting no more, then writes their marks: so the next
    /// owner skips them instead of sending them again.
    fn settle_in_flight(&self, revoked: &TopicPartitionList) {
        let revoked = partitions(revoked);
        {
            let mut hand = self.kafka.in_hand();
            for at in &revoked {
                hand.revoking(at);
            }
        }
        let since = self.kafka.clock.instant();
        while self.kafka.in_hand().in_flight(&revoked) && since.elapsed() < SETTLE_ON_REVOKE {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Including what the destinations' workers did not write (reparked retries,
        // orphans' dead letters, a write that failed).
        let entries = self.kafka.in_hand().unpublished_of(&revoked);
        let published = tokio::runtime::Handle::try_current()
            .map_err(|e| e.to_string())
            .and_then(|runtime| {
                runtime
                    .block_on(self.kafka.publish(entries))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = published {
            self.observer.ledger_failed();
            tracing::warn!(error = %e, "delivery: writing the settlement marks of revoked partitions; their next owner will send some settled deliveries again");
        }
    }
}

impl ConsumerContext for FeedContext {
    /// New partitions are held under a new epoch (see [`super::in_hand::InHand::read`]),
    /// with the marks their earlier owners left on the ledger, read before any of their
    /// records is.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(list) = rebalance else {
            return;
        };
        let assigned = partitions(list);
        {
            let mut hand = self.kafka.in_hand();
            for at in &assigned {
                hand.assign(at);
            }
        }
        let failed = super::takeover::on_assign(&self.kafka, consumer, &assigned);
        for _ in 0..failed {
            self.observer.ledger_failed();
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let lost = consumer.assignment_lost();
        if !lost {
            self.settle_in_flight(list);
        }
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
            tracing::warn!(error = %e, "delivery: committing revoked partitions");
        }
        if let Err(e) = self.store.remove_queued(&dropped) {
            tracing::warn!(
                deliveries = dropped.len(),
                error = %e,
                "delivery: dropping the deliveries of revoked partitions from the local queue"
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
    /// The partition's assignment when the record was read.
    epoch: u64,
    offset: i64,
    opportunity: Vec<u8>,
    account_id: Option<String>,
    /// Set for a record of the opportunities topic that decodes.
    opportunity_id: Option<String>,
    wanted: Vec<Wanted>,
}

/// Reads until `stop`; runs on a thread of its own (it blocks in `poll`). Once stopping,
/// it keeps its partitions until `workers` have all ended, or [`DRAIN`] passed, so that
/// what they had in flight is committed. An error if it cannot consume at all.
pub(crate) fn feed(
    kafka: Arc<KafkaDelivery>,
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    wakers: Vec<Arc<Notify>>,
    observer: Arc<dyn Observer>,
    stop: watch::Receiver<bool>,
    workers: Arc<AtomicUsize>,
) -> Result<(), TopicError> {
    let consumer = subscribe(&kafka, &store, &observer).map_err(|source| TopicError::Consume {
        topic: kafka.config.opportunities_topic.clone(),
        source,
    })?;
    let index: HashMap<&str, usize> = settings
        .destinations
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let mut committed = kafka.clock.instant();
    let mut paused = Paused::default();
    let mut throttle = Throttle::new(Duration::from_secs(10));
    let mut reparks = Throttle::new(Duration::from_secs(10));
    // A closed channel stops it too: the service that spawned this thread is gone (its
    // runtime shutting down), and nothing else would ever tell it to stop.
    while !*stop.borrow() && stop.has_changed().is_ok() {
        paused.apply(&kafka, &consumer);
        let mut batch = Vec::new();
        let mut next = consumer.poll(POLL);
        while let Some(result) = next {
            match result {
                Ok(message) => batch.extend(read(&kafka, &settings, &message)),
                Err(e) => {
                    if let Some(held_back) = throttle.admit(kafka.clock.instant()) {
                        tracing::warn!(error = %e, held_back, "delivery: consuming");
                    }
                }
            }
            next = if batch.len() < BATCH {
                consumer.poll(Duration::ZERO)
            } else {
                None
            };
        }
        queue(
            &kafka,
            &store,
            &index,
            &wakers,
            batch,
            observer.as_ref(),
            &stop,
        );
        if committed.elapsed() >= COMMIT_EVERY {
            committed = kafka.clock.instant();
            super::repark::repark(&kafka, &store, &settings, observer.as_ref(), &mut reparks);
            commit(&kafka, &consumer, CommitMode::Async);
        }
    }
    // Polled (for the group's sake) but not read: nothing new is held any more.
    let stopping = kafka.clock.instant();
    while workers.load(Ordering::SeqCst) > 0 && stopping.elapsed() < DRAIN {
        consumer.poll(POLL);
    }
    commit(&kafka, &consumer, CommitMode::Sync);
    Ok(())
}

/// Which of the assigned partitions are paused for [`MAX_HELD`].
#[derive(Debug, Default, PartialEq, Eq)]
struct Paused {
    retry: bool,
    all: bool,
    /// The assignment it was applied to (partitions assigned since are not paused yet).
    assignment: Vec<(String, i32)>,
}

impl Paused {
    fn apply(&mut self, kafka: &KafkaDelivery, consumer: &BaseConsumer<FeedContext>) {
        let held = kafka.in_hand().len();
        let (retry, all) = (held >= MAX_HELD, held >= 2 * MAX_HELD);
        let Ok(assigned) = consumer.assignment() else {
            return;
        };
        let assignment: Vec<(String, i32)> = assigned
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        if (retry, all) == (self.retry, self.all) && assignment == self.assignment {
            return;
        }
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        for (topic, partition) in &assignment {
            let stop = all || (retry && *topic == kafka.config.retry_topic);
            let list = if stop { &mut pause } else { &mut resume };
            list.add_partition(topic, *partition);
        }
        let paused = (pause.count() == 0 || consumer.pause(&pause).is_ok())
            && (resume.count() == 0 || consumer.resume(&resume).is_ok());
        if paused {
            *self = Paused {
                retry,
                all,
                assignment,
            };
        }
    }
}

fn subscribe(
    kafka: &Arc<KafkaDelivery>,
    store: &Arc<Store>,
    observer: &Arc<dyn Observer>,
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
        observer: observer.clone(),
    })?;
    consumer.subscribe(&[&kafka.config.opportunities_topic, &kafka.config.retry_topic])?;
    Ok(consumer)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a record of the opportunities topic (fanned out to the destinations that want
/// it) or of the retry topic (for its own destination) becomes.
fn read(
    kafka: &KafkaDelivery,
    settings: &DeliverySettings,
    message: &BorrowedMessage<'_>,
) -> Option<Read> {
    let at = (message.topic().to_owned(), message.partition());
    // Under the assignment in force now: a rebalance later in this round revokes it.
    let epoch = kafka.in_hand().epoch(&at)?;
    let mut record = Read {
        at,
        epoch,
        offset: message.offset(),
        opportunity: Vec::new(),
        account_id: None,
        opportunity_id: None,
        wanted: Vec::new(),
    };
    let now = kafka.clock.now_ms();
    if message.topic() == kafka.config.retry_topic {
        match parked::read(message) {
            Ok(retry) => {
                record.opportunity = retry.opportunity;
                record.wanted.push(Wanted {
                    destination: retry.destination,
                    // No retry waits longer than the schedule allows from now, whatever
                    // its record says (a crafted `radar.due_ms` of year 9999 included).
                    due_ms: retry
                        .due_ms
                        .min(now.saturating_add(millis(settings.policy.longest_wait()))),
                    attempts: retry.attempts,
                    created_ms: retry.created_ms,
                    last_error: retry.reason,
                });
            }
            Err(why) => tracing::warn!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                reason = %why,
                "delivery: skipping a record of the retry topic, which radar did not write"
            ),
        }
        return Some(record);
    }
    record.opportunity = message.payload().unwrap_or_default().to_vec();
    // A record that does not decode still goes everywhere: building its request fails,
    // and it lands on the dead-letter topic with the reason, not lost.
    let opportunity = serde_json::from_slice::<Opportunity>(&record.opportunity).ok();
    record.account_id = opportunity.as_ref().map(|o| o.account_id.to_string());
    record.opportunity_id = opportunity.as_ref().map(|o| o.opportunity_id.to_string());
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
    Some(record)
}

/// Gives each record its sequence, holds it, and queues its deliveries; a retry for a
/// destination no longer configured goes to the dead-letter topic.
fn queue(
    kafka: &KafkaDelivery,
    store: &Store,
    index: &HashMap<&str, usize>,
    wakers: &[Arc<Notify>],
    batch: Vec<Read>,
    observer: &dyn Observer,
    stop: &watch::Receiver<bool>,
) {
    if batch.is_empty() {
        return;
    }
    let now = kafka.clock.now_ms();
    let (mut deliveries, mut recent, mut orphans) = (Vec::new(), Vec::new(), Vec::new());
    let mut woken = vec![false; wakers.len()];
    {
        let mut hand = kafka.in_hand();
        for mut record in batch {
            // A copy the source produced again after a failover goes nowhere: the first
            // is delivered (or was).
            let copy = record
                .opportunity_id
                .as_ref()
                .is_some_and(|id| !hand.first_of(&record.at, record.epoch, id));
            if copy {
                record.wanted.clear();
            }
            // What an earlier owner settled is not sent again; what it had in flight is,
            // as a repeat.
            let (mut skipped, mut repeats) = (Vec::new(), Vec::new());
            record.wanted.retain(|w| {
                match hand.inherited(&record.at, record.offset, &w.destination) {
                    Inherited::Settled => {
                        skipped.push(w.destination.clone());
                        false
                    }
                    Inherited::InFlight => {
                        repeats.push(w.destination.clone());
                        true
                    }
                    Inherited::Open => true,
                }
            });
            let seq = hand.next_seq();
            let keys: Vec<QueueKey> = record
                .wanted
                .iter()
                .map(|w| (w.destination.clone(), w.due_ms, seq))
                .collect();
            if !hand.read(&record.at, record.epoch, record.offset, now, keys) {
                continue;
            }
            if copy {
                observer.duplicate_opportunity();
            }
            skipped.iter().for_each(|d| observer.skipped_settled(d));
            repeats.iter().for_each(|d| observer.repeat(d));
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
        tracing::warn!(error = %e, "delivery: queueing what was read (will try again)");
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
        park_orphans(kafka, orphans, observer, stop);
    }
}

/// Retries whose destination was removed from the configuration: nothing will send them,
/// so they become dead letters (which `radar dlq replay` can bring back once it is again).
fn park_orphans(
    kafka: &KafkaDelivery,
    orphans: Vec<Delivery>,
    observer: &dyn Observer,
    stop: &watch::Receiver<bool>,
) {
    let now = kafka.clock.now_ms();
    let settlements: Vec<crate::queue::Settlement> = orphans
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
    let mut throttle = Throttle::new(Duration::from_secs(10));
    let landings = loop {
        match runtime.block_on(kafka.park(&settlements)) {
            Ok(landings) => break landings,
            Err(e) => {
                if let Some(held_back) = throttle.admit(kafka.clock.instant()) {
                    tracing::warn!(error = %e, held_back, "delivery: parking orphaned retries (will try again)");
                }
                if *stop.borrow() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    super::observe_landings(observer, &settlements, &landings);
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
        tracing::warn!(error = %e, "delivery: committing");
    }
}
