//! Re-keying (the Kafka Streams pattern, docs/design.md#re-keying): a source whose
//! records are keyed by user (RudderStack keys by `userId`) spreads one account's events
//! over partitions, out of order. Its records are read by a consumer group of their own,
//! mapped, and produced in Radar's envelope to the repartition topic keyed by account,
//! which the engine consumes like any envelope topic. So the engine sees exactly what
//! `radar replay` of the mapped events sees.
//!
//! At-least-once, by the same rule as the engine's source: a raw offset is committed
//! only after the re-keyed records before it (and the dead letters of those that could
//! not be mapped) are acknowledged, by an idempotent producer. A restart re-reads what
//! was not committed; the copies it produces again carry the same `event_id`, which the
//! engine drops as duplicates.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use radar_core::RejectReason;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::error::SourceError;
use crate::mapped::MappedSource;
use crate::partition::RejectedRecord;
use crate::producer::{Producer, send_waiting};
use crate::progress::Stop;
use crate::topics::{self, Cleanup};

/// Records taken per poll round.
const MAX_BATCH: usize = 512;

/// Where a re-keyed source's records come from and go.
#[derive(Clone, Debug)]
pub struct RekeyConfig {
    /// The pipeline's client settings (brokers, TLS, SASL…).
    pub client: ClientConfig,
    /// The engine's group id: this loop's group is `<group_id>-rekey`.
    pub group_id: String,
    pub repartition_topic: String,
    pub dead_letter_topic: String,
    /// The repartition topic's replication factor, when radar creates it.
    pub replication: i32,
    pub poll_timeout: Duration,
    /// How often offsets are committed (after the records before them are acknowledged).
    pub commit_every: Duration,
    /// The engine's `max_future_skew`: a mapped record is checked as the engine will
    /// check it, so what it would refuse is dead-lettered here with its original bytes.
    pub max_future_skew: radar_core::time::Millis,
}

impl RekeyConfig {
    /// `<group_id>-repartition`, the topic re-keyed records go to.
    pub fn repartition_topic(group_id: &str) -> String {
        format!("{group_id}-repartition")
    }
}

/// What the loop did, for metrics.
#[derive(Debug, Default)]
pub struct RekeyCounts {
    pub rekeyed: AtomicU64,
    /// Consumer errors and refused commits (a rebalance in progress), each retried.
    pub errors: AtomicU64,
    /// By [`RejectReason::ALL`] order.
    pub dead_lettered: [AtomicU64; RejectReason::ALL.len()],
}

/// Counts the re-keyed records the broker refused.
#[derive(Default)]
struct Acks {
    failed: AtomicU64,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    /// Counted only: the next commit fails on the count, saying how many.
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The running loop.
pub struct Rekeyer {
    consumer: BaseConsumer,
    producer: BaseProducer<Acks>,
    dead: Producer,
    mapped: Arc<MappedSource>,
    config: RekeyConfig,
    throttle: std::sync::Mutex<crate::throttle::Throttle>,
}

impl std::fmt::Debug for Rekeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekeyer")
            .field("source", &self.mapped.source.name())
            .field("repartition_topic", &self.config.repartition_topic)
            .finish()
    }
}

impl Rekeyer {
    /// Creates the repartition topic if it is missing, with as many partitions as the
    /// source's first topic, and subscribes to the source's topics.
    pub fn new(config: RekeyConfig, mapped: Arc<MappedSource>) -> Result<Rekeyer, SourceError> {
        let topics = &mapped.source.spec().topics;
        let partitions = match topics.first() {
            Some(first) => topics::partitions(&config.client, first)?.max(1),
            None => 1,
        };
        topics::ensure(
            &config.client,
            &config.repartition_topic,
            partitions,
            config.replication,
            Cleanup::Delete,
        )?;
        let mut consumer_config = config.client.clone();
        // Static membership is the engine's consumer's: a second member with its
        // instance id would be fenced.
        consumer_config.remove("group.instance.id");
        consumer_config
            .set("group.id", format!("{}-rekey", config.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = consumer_config.create()?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let mut producer_config = config.client.clone();
        producer_config.set("enable.idempotence", "true");
        let producer = producer_config.create_with_context(Acks::default())?;
        let dead = Producer::new(&config.client, &config.dead_letter_topic, true)?;
        Ok(Rekeyer {
            consumer,
            producer,
            dead,
            mapped,
            config,
            throttle: std::sync::Mutex::new(crate::throttle::Throttle::new(Duration::from_secs(
                10,
            ))),
        })
    }

    /// Re-keys until `stop`; a graceful stop commits what was acknowledged first.
    pub fn run(self, stop: &Stop, counts: &RekeyCounts) -> Result<(), SourceError> {
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        let mut committed_at = Instant::now();
        loop {
            if stop.is_abrupt() {
                return Ok(());
            }
            let batch = self.poll_round(counts);
            let values = batch.iter().map(|m| m.payload().unwrap_or_default());
            let limit = crate::mapped::wait_limit(&self.config.client);
            match self.mapped.settle(values, stop, limit) {
                crate::mapped::Settled::Ready => {}
                crate::mapped::Settled::Stopped => break,
                crate::mapped::Settled::GaveUp(why) => return Err(SourceError::Registry(why)),
            }
            let schemas = self.mapped.schemas();
            for message in &batch {
                self.rekey(message, &schemas, counts)?;
                next.insert(
                    (message.topic().to_owned(), message.partition()),
                    message.offset() + 1,
                );
            }
            if stop.is_graceful() {
                break;
            }
            if committed_at.elapsed() >= self.config.commit_every {
                self.commit(&mut next, counts)?;
                committed_at = Instant::now();
            }
        }
        self.commit(&mut next, counts)
    }

    /// A consumer error or a refused commit: retried, counted, logged at most every 10 s.
    fn note(&self, what: &str, error: &dyn std::fmt::Display, counts: &RekeyCounts) {
        counts.errors.fetch_add(1, Ordering::Relaxed);
        let admitted = self
            .throttle
            .lock()
            .ok()
            .and_then(|mut t| t.admit(Instant::now()));
        if let Some(held_back) = admitted {
            tracing::warn!(source = self.mapped.source.name(), error = %error, held_back, "{}", what);
        }
    }

    /// Maps one record: produced re-keyed, or dead-lettered with its reason.
    fn rekey(
        &self,
        message: &BorrowedMessage<'_>,
        schemas: &radar_ingest::Schemas,
        counts: &RekeyCounts,
    ) -> Result<(), SourceError> {
        let headers = if self.mapped.source.reads_headers() {
            crate::mapped::headers(message)
        } else {
            Vec::new()
        };
        let record = radar_ingest::RawRecord {
            value: message.payload().unwrap_or_default(),
            key: message.key(),
            headers: &headers,
            time: message.timestamp().to_millis(),
        };
        // Checked as the engine will check it, so that what it would refuse is
        // dead-lettered here, with the original bytes.
        let mapped = self
            .mapped
            .source
            .map(schemas, &record)
            .and_then(|(parts, _)| {
                radar_core::event::assemble(parts.clone(), record.time, self.config.max_future_skew)
                    .map(|_| parts)
            });
        match mapped {
            Ok(parts) => {
                let json = radar_ingest::envelope::to_json(&parts);
                let mut out = BaseRecord::to(&self.config.repartition_topic)
                    .key(parts.account_id.as_bytes())
                    .payload(&json[..]);
                // The original time, so that `too_far_in_future` judges the event
                // against when it was produced, not when it was re-keyed.
                if let Some(time) = record.time {
                    out = out.timestamp(time);
                }
                send_waiting(&self.producer, out)
                    .map_err(|refused| SourceError::from(refused.0))?;
                self.producer.poll(Duration::ZERO);
                counts.rekeyed.fetch_add(1, Ordering::Relaxed);
            }
            Err(rejection) => {
                let letter = RejectedRecord {
                    offset: message.offset(),
                    reason: rejection.reason,
                    detail: rejection.detail.to_string(),
                };
                self.dead.dead_letter(message, &letter)?;
                if let Some(count) = counts.dead_lettered.get(
                    RejectReason::ALL
                        .iter()
                        .position(|r| *r == letter.reason)
                        .unwrap_or(0),
                ) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn poll_round(&self, counts: &RekeyCounts) -> Vec<BorrowedMessage<'_>> {
        let mut batch = Vec::new();
        let mut timeout = self.config.poll_timeout;
        while batch.len() < MAX_BATCH {
            match self.consumer.poll(timeout) {
                Some(Ok(message)) => batch.push(message),
                // A broker away, a topic not there yet: librdkafka retries.
                Some(Err(e)) => {
                    self.note("re-keying: consuming", &e, counts);
                    break;
                }
                None => break,
            }
            timeout = Duration::ZERO;
        }
        batch
    }

    /// Waits until everything produced is acknowledged, then commits the offsets after
    /// it (the commit rule, as in `commit`), for the partitions still assigned: a revoked
    /// one's new owner commits its own. A refused commit (a rebalance in progress) is
    /// counted and tried again at the next one; what it covered may be re-keyed again,
    /// and the engine drops the copies by their `event_id`.
    fn commit(
        &self,
        next: &mut HashMap<(String, i32), i64>,
        counts: &RekeyCounts,
    ) -> Result<(), SourceError> {
        if let Ok(assigned) = self.consumer.assignment() {
            next.retain(|(topic, partition), _| {
                assigned.find_partition(topic, *partition).is_some()
            });
        }
        if next.is_empty() {
            return Ok(());
        }
        self.producer.flush(Duration::from_secs(30))?;
        self.dead.flush()?;
        let failed = self.producer.context().failed.load(Ordering::SeqCst);
        if failed > 0 {
            return Err(SourceError::RekeyRefused(failed));
        }
        let mut offsets = TopicPartitionList::with_capacity(next.len());
        for ((topic, partition), offset) in next.iter() {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        match self.consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => next.clear(),
            Err(e) => self.note("re-keying: committing", &e, counts),
        }
        Ok(())
    }
}
