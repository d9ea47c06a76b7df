//! Delivery with `store = "kafka"`, where no instance's disk holds anything that must
//! survive it.
//!
//! - The **opportunities topic is the outbox**: the source produces every opportunity
//!   there (idempotent producer) and the broker acknowledges it before the offset that
//!   caused it is committed.
//! - **Delivery is its own consumer group** (`<kafka.group_id>-delivery`) over that topic
//!   and the retry topic, so any instance running delivery takes over a dead one's
//!   partitions. What an instance reads goes into its local queues, which are only a
//!   cache: they are emptied at start, and a partition that moves away takes its entries
//!   with it. A partition's offset is committed up to its first record with a delivery
//!   not yet settled ([`in_hand`]).
//! - **Retries wait on a topic** (`<opportunities topic>.retry`): a failed attempt that
//!   will be retried is produced there with its due time and attempt count in headers and
//!   acknowledged before its record counts as settled; whichever instance reads it holds
//!   it in its queue until it is due. This is the non-blocking retry pattern with one
//!   retry topic instead of one per delay: the due time travels with the record, so
//!   exponential backoff with jitter and `Retry-After` keep their exact times, and a
//!   retry due later never holds up another's sending (only the commit of its partition).
//! - **Dead letters go to a compacted topic** (`<opportunities topic>.dead-letter`), keyed
//!   by destination, opportunity id and failure time, which `radar dlq list` reads and
//!   `radar dlq replay` puts back on the retry topic (writing the letter's tombstone).
//!   Each fits the producer's `message.max.bytes`, its opportunity cut if need be, so no
//!   record can leave its delivery unsettled and its destination waiting behind it
//!   (`park`).
//! - **A long retry does not hold its partition's commit**: a due time read back is held
//!   to the schedule's longest wait, and a retry waiting with settled records behind it
//!   is parked anew at the end of the retry topic (`repark`).
//!
//! - **What is settled beyond the commit is on a ledger** (`<opportunities topic>.settled`,
//!   compacted): each destination's [`marks`] per partition, written before it sends
//!   (with what it sends in flight) and after it records outcomes. An instance that takes
//!   a partition over reads them first, skips what is settled, and sends again only what
//!   was in flight, counting each as a repeat; it also reads back the opportunity ids just
//!   below the commit, so an opportunity the source produced twice is delivered once
//!   (`takeover`).
//!
//! Files: `feed` (the delivery consumer: reads the topics, queues what it reads, commits
//! what is settled), [`in_hand`] (what a partition may commit), [`marks`], `ledger` and
//! `takeover` (what is settled beyond the commit), [`parked`] (a retry or dead letter as
//! it is parked), `park` and `repark` (parking them), [`dead_letters`] (`radar dlq` over
//! the dead-letter topic).
//!
//! A crash sends again at most what was in flight (`max_in_flight` calls per
//! destination), under the same `webhook-id`, which receivers deduplicate on; so does a
//! partition that moves while a delivery of it is in flight.

pub mod dead_letters;
mod feed;
pub mod in_hand;
mod ledger;
pub mod marks;
mod park;
pub mod parked;
mod repark;
mod takeover;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use radar_kafka::dead_letter::DEFAULT_MESSAGE_MAX_BYTES;
use radar_kafka::topics::{self, Cleanup};
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;

use crate::clock::Clock;
use crate::error::TopicError;
use crate::queue::Settlement;

pub(crate) use feed::feed;
use in_hand::InHand;
pub(crate) use park::observe as observe_landings;
pub use park::{Landing, LetterForm, ParkError};

/// Where delivery's topics are, and the client settings to reach them.
#[derive(Clone)]
pub struct KafkaDeliveryConfig {
    /// librdkafka settings with `bootstrap.servers` (TLS, SASL, timeouts…).
    pub client: Vec<(String, String)>,
    /// The delivery consumer group.
    pub group_id: String,
    pub opportunities_topic: String,
    pub retry_topic: String,
    pub dead_letter_topic: String,
    /// The settlement ledger (see [`ledger`]).
    pub ledger_topic: String,
    /// Replication factor of the topics radar creates; -1: the broker's default.
    pub replication: i32,
}

impl std::fmt::Debug for KafkaDeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDeliveryConfig")
            .field("group_id", &self.group_id)
            .field("opportunities_topic", &self.opportunities_topic)
            .field("retry_topic", &self.retry_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("ledger_topic", &self.ledger_topic)
            .finish_non_exhaustive()
    }
}

impl KafkaDeliveryConfig {
    /// The names derived from the group and the opportunities topic.
    pub fn new(
        client: Vec<(String, String)>,
        group_id: &str,
        opportunities_topic: &str,
        replication: i32,
    ) -> KafkaDeliveryConfig {
        KafkaDeliveryConfig {
            client,
            group_id: format!("{group_id}-delivery"),
            opportunities_topic: opportunities_topic.to_owned(),
            retry_topic: format!("{opportunities_topic}.retry"),
            dead_letter_topic: format!("{opportunities_topic}.dead-letter"),
            ledger_topic: format!("{opportunities_topic}.settled"),
            replication,
        }
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        for (key, value) in &self.client {
            client.set(key, value);
        }
        client
    }
}

/// Delivery's Kafka side: its topics, the producer that parks retries and dead letters,
/// and what this instance holds.
pub struct KafkaDelivery {
    pub(crate) config: KafkaDeliveryConfig,
    producer: FutureProducer,
    /// The producer's `message.max.bytes`, which every dead letter fits.
    letter_limit: usize,
    /// The settlement ledger's partitions (an existing topic keeps its count).
    ledger_partitions: i32,
    in_hand: Mutex<InHand>,
    /// The clock delivery's Kafka side reads (the system's).
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for KafkaDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDelivery")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaDelivery {
    /// Creates the opportunities and retry topics (with as many partitions as
    /// `source_topic`) and the compacted dead-letter and ledger topics when missing.
    pub fn open(
        config: KafkaDeliveryConfig,
        source_topic: &str,
        first_seq: u64,
    ) -> Result<Arc<KafkaDelivery>, TopicError> {
        let client = config.client();
        let partitions = topics::partitions(&client, source_topic)?;
        if partitions == 0 {
            return Err(TopicError::NoSourceTopic(source_topic.to_owned()));
        }
        // Marks of a topic deleted since would skip the new topic's records.
        for topic in [&config.opportunities_topic, &config.retry_topic] {
            if topics::partitions(&client, topic)? == 0 && ledger::holds_marks(&config)? {
                return Err(TopicError::StaleLedger {
                    topic: topic.clone(),
                    ledger: config.ledger_topic.clone(),
                });
            }
        }
        for (topic, cleanup) in [
            (&config.opportunities_topic, Cleanup::Delete),
            (&config.retry_topic, Cleanup::Delete),
            (&config.dead_letter_topic, Cleanup::Compact),
        ] {
            topics::ensure(&client, topic, partitions, config.replication, cleanup)?;
        }
        let ledger_partitions = topics::ensure(
            &client,
            &config.ledger_topic,
            partitions,
            config.replication,
            Cleanup::Compact,
        )?;
        let producer = client.clone().set("enable.idempotence", "true").create()?;
        let letter_limit = client
            .get("message.max.bytes")
            .and_then(|limit| limit.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        Ok(Arc::new(KafkaDelivery {
            config,
            producer,
            letter_limit,
            ledger_partitions: i32::try_from(ledger_partitions).unwrap_or(i32::MAX),
            in_hand: Mutex::new(InHand::new(first_seq)),
            clock: Clock::system(),
        }))
    }

    pub(crate) fn in_hand(&self) -> MutexGuard<'_, InHand> {
        self.in_hand.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `settlements` are recorded (parked if need be, out of the local queue): their
    /// records may be committed past.
    pub(crate) fn settled(&self, settlements: &[Settlement]) {
        let mut hand = self.in_hand();
        for settlement in settlements {
            let (destination, seq) = settlement.delivery();
            hand.settled(seq, destination);
        }
    }
}
