//! The state changelog (`[state] store = "kafka"`): each partition's account states in a
//! compacted topic, so state follows its partition to whichever instance of the group
//! gets it, and the local store file is only a cache (the Kafka Streams model).
//!
//! Changelog partition p holds source partition p's accounts. A checkpoint writes a record
//! per account that changed since the last one (key = account id, value = its state), a
//! tombstone per account evicted, and then a *completion* record (empty key, value = the
//! source offset the state is complete up to), and waits for the broker's
//! acknowledgements before the source offset is committed. Restoring reads the partition
//! from the start (or from where the local cache stops) to its end: the last state of
//! each account, and the source offset of the last completion record to resume from.
//!
//! **A crash between some account records and the completion record** leaves accounts in
//! the changelog ahead of the offset the partition resumes from. That gives exactly the
//! uninterrupted output: every account record was written after the opportunities and
//! dead letters of the events it reflects were acknowledged, so nothing they caused is
//! lost; and each account record carries the source offset its state is complete up to
//! (header `radar.complete_to`), so a restore knows which accounts are ahead and by how
//! much, and re-applies none of their records before that offset (see
//! `partition::CatchUp`; records written before the header existed fall back on the
//! event-id dedupe, within its cap). None is applied twice or emits anything again. Accounts whose records were not written are restored as of the
//! previous completion and re-read their events as the first time, emitting the same
//! opportunities with the same ids. Compaction may drop an account's older records, which
//! is why records after the last completion are applied, never discarded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use radar_core::{AccountRecords, Engine};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::dead_letter;
use crate::error::SourceError;
use crate::producer::{owned_headers, send_waiting};
use crate::quarantine::{self, QuarantineCounts, Quarantined, Unusable};
use crate::topics::{self, Cleanup, TIMEOUT, block_on};

/// Accounts found ahead of the resume offset, and how far.
mod ahead;
/// Reading a changelog partition back.
mod read;

use ahead::Ahead;

/// Where the changelog is, and how to create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangelogConfig {
    pub topic: String,
    /// Replication factor when radar creates the topic; -1: the broker's default.
    pub replication: i32,
}

/// Version of the completion record's value: a byte, then the source offset (i64 LE).
const COMPLETION_VERSION: u8 = 1;

/// The header of an account record holding the source offset its state is complete up
/// to, in decimal.
const COMPLETE_TO: &str = "radar.complete_to";

/// How long reading the source may take to say whether it reaches a completion's offset.
const SOURCE_PROBE: Duration = Duration::from_secs(10);
/// Completions past the watermark checked by reading the source, per restore.
const MAX_SOURCE_PROBES: u32 = 3;

/// The quarantine topic of changelog `topic`.
fn quarantine_topic(topic: &str) -> String {
    format!("{topic}.dead-letter")
}

/// A completion record's value for source offset `offset`.
fn completion_value(offset: i64) -> Vec<u8> {
    let mut value = vec![COMPLETION_VERSION];
    value.extend_from_slice(&offset.to_le_bytes());
    value
}

/// Delivery opaques: an account record or tombstone, or a completion record.
const ACCOUNT: usize = 0;
const COMPLETION: usize = 1;

/// The changelog producer's delivery reports: failures, and where each partition's last
/// completion record landed.
#[derive(Default)]
struct Reports {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    completions: Mutex<Vec<(i32, i64)>>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        match result {
            Ok(message) if kind == COMPLETION => self
                .completions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((message.partition(), message.offset())),
            Ok(_) => {}
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                self.first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// The changelog of one source topic's partitions.
pub struct Changelog {
    topic: String,
    /// Idempotent: retries neither duplicate nor reorder a partition's records.
    producer: BaseProducer<Reports>,
    /// The client settings (brokers, TLS, SASL) for the consumers that restore.
    client: ClientConfig,
    /// The source topic, whose partitions' ends bound the completion records.
    source_topic: String,
    /// The producer's `message.max.bytes`, which every quarantined record's letter fits.
    letter_limit: usize,
    quarantined: QuarantineCounts,
    /// Held by each write and each quarantine from its first send to its last
    /// acknowledgement: they share the producer's failure count, so two restores in
    /// parallel must not read each other's failures.
    writing: Mutex<()>,
}

impl std::fmt::Debug for Changelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changelog")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Changelog {
    /// Opens the changelog of `source_topic`, creating it (compacted, with as many
    /// partitions as the source) if missing; an existing one with another partition
    /// count is refused, since partition p must hold source partition p's accounts.
    pub fn open(
        client: &ClientConfig,
        config: &ChangelogConfig,
        source_topic: &str,
    ) -> Result<Changelog, SourceError> {
        let setup = |message: String| SourceError::Changelog(message);
        let source = topics::partitions(client, source_topic)?;
        if source == 0 {
            return Err(setup(format!(
                "the source topic {source_topic} does not exist yet: create it before radar runs with state.store = \"kafka\" (the changelog needs its partition count)"
            )));
        }
        if topics::partitions(client, &config.topic)? > 0 {
            // An existing topic must be compacted: with deletion by age, accounts quiet
            // for longer than its retention would silently be missing from a restore.
            // A broker that will not say (no DESCRIBE_CONFIGS right, or no such API, as
            // librdkafka's mock cluster) is warned about, not refused.
            let admin: AdminClient<DefaultClientContext> = client.create()?;
            let topic = ResourceSpecifier::Topic(&config.topic);
            let asked = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
            let policy = match block_on(admin.describe_configs([&topic], &asked)) {
                Ok(resources) => resources.into_iter().flatten().find_map(|resource| {
                    resource
                        .get("cleanup.policy")
                        .and_then(|entry| entry.value.clone())
                }),
                Err(e) => {
                    tracing::warn!(
                        topic = %config.topic,
                        error = %e,
                        "could not read the changelog topic's cleanup.policy; it must be compact"
                    );
                    None
                }
            };
            if let Some(policy) = policy
                && !policy.split(',').any(|p| p.trim() == "compact")
            {
                return Err(setup(format!(
                    "the changelog topic {} has cleanup.policy={policy}: it must be compacted (cleanup.policy=compact), or accounts quiet for longer than its retention go missing from restores",
                    config.topic
                )));
            }
        }
        let changelog = topics::ensure(
            client,
            &config.topic,
            source,
            config.replication,
            Cleanup::Compact,
        )?;
        if changelog != source {
            return Err(setup(format!(
                "the changelog topic {} has {changelog} partitions, the source topic {source_topic} {source}: they must match (partition p holds source partition p's accounts); delete it or name another with state.changelog_topic",
                config.topic
            )));
        }
        // Where a restore sets aside the records it cannot use: made now, so that a broker
        // refusing it is a start-up error rather than a restore failing on every start.
        topics::ensure(
            client,
            &quarantine_topic(&config.topic),
            source,
            config.replication,
            Cleanup::Compact,
        )?;
        let mut producer_config = client.clone();
        producer_config.set("enable.idempotence", "true");
        let letter_limit = client
            .get("message.max.bytes")
            .and_then(|limit| limit.parse().ok())
            .unwrap_or(dead_letter::DEFAULT_MESSAGE_MAX_BYTES);
        Ok(Changelog {
            topic: config.topic.clone(),
            producer: producer_config.create_with_context(Reports::default())?,
            client: client.clone(),
            source_topic: source_topic.to_owned(),
            letter_limit,
            quarantined: QuarantineCounts::default(),
            writing: Mutex::new(()),
        })
    }

    /// Where unusable changelog records are set aside.
    pub fn quarantine_topic(&self) -> String {
        quarantine_topic(&self.topic)
    }

    /// Changelog records set aside since start.
    pub fn quarantined(&self) -> &QuarantineCounts {
        &self.quarantined
    }

    /// Writes a checkpoint of source partition `partition`: its account records, then the
    /// completion record saying the state is complete up to source offset `offset`; waits
    /// for every acknowledgement. Returns the changelog position after the completion.
    ///
    /// `seen` is where this instance's view of the partition ends (its last write, or
    /// what it restored). If the changelog goes further, another instance has written
    /// there since: it holds the partition now, and this one is a zombie that librdkafka
    /// has not told yet (a process frozen or cut off past its session timeout). Writing
    /// would put older account states after the new owner's, which the next restore
    /// would take; so nothing is written and the answer is [`SourceError::Fenced`]. A new
    /// owner claims a partition as it restores it (a completion record of what it
    /// restored, written through this check too), so a holder waking at any time after
    /// finds the changelog moved past its view. The check and the write are not atomic:
    /// a holder waking within the milliseconds between another's check and write could
    /// still write once.
    ///
    /// `foreign` are keys that are no account id, whose records a restore set aside: a
    /// tombstone each supersedes them.
    pub(crate) fn write(
        &self,
        partition: i32,
        records: &AccountRecords<'_>,
        foreign: &[&[u8]],
        offset: i64,
        seen: i64,
    ) -> Result<i64, SourceError> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if self.end(partition)? > seen {
            return Err(SourceError::Fenced(partition));
        }
        let evicted = records
            .evicted
            .iter()
            .map(|account_id| account_id.as_bytes());
        for key in foreign.iter().copied().chain(evicted) {
            self.send(
                BaseRecord::<[u8], [u8], usize>::with_opaque_to(&self.topic, ACCOUNT)
                    .partition(partition)
                    .key(key),
            )?;
        }
        // Each account record says the source offset its state is complete up to: should
        // the completion record not follow (a crash), a restore knows which records that
        // account's state already holds (see `read::Replayed::ahead`).
        let complete_to = offset.to_string();
        for (account_id, state) in &records.updated {
            self.send(
                BaseRecord::with_opaque_to(&self.topic, ACCOUNT)
                    .partition(partition)
                    .key(account_id.as_bytes())
                    .payload(state.as_slice())
                    .headers(OwnedHeaders::new().insert(Header {
                        key: COMPLETE_TO,
                        value: Some(&complete_to),
                    })),
            )?;
        }
        // The completion only once every account record is acknowledged: a record lost
        // for good behind a completion would restore its account older than the offset.
        self.acknowledged(partition)?;
        let completion = completion_value(offset);
        self.send(
            BaseRecord::with_opaque_to(&self.topic, COMPLETION)
                .partition(partition)
                .key(&[][..])
                .payload(completion.as_slice()),
        )?;
        self.acknowledged(partition)?;
        let reports = self.producer.context();
        let mut completions = reports
            .completions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let position = completions
            .iter()
            .rev()
            .find(|(p, _)| *p == partition)
            .map(|(_, at)| at + 1);
        completions.retain(|(p, _)| *p != partition);
        position.ok_or_else(|| {
            SourceError::Changelog(format!(
                "partition {partition} of {}: no acknowledgement of the completion record",
                self.topic
            ))
        })
    }

    /// Waits for every record sent to be acknowledged; an error if one was refused.
    fn acknowledged(&self, partition: i32) -> Result<(), SourceError> {
        self.producer.flush(TIMEOUT)?;
        let reports = self.producer.context();
        if reports.failed.swap(0, Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let error = reports
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        Err(SourceError::Changelog(format!(
            "writing partition {partition} of {}: {error}",
            self.topic
        )))
    }

    /// Hands a record to the producer, waiting for room when its queue is full.
    fn send(&self, record: BaseRecord<'_, [u8], [u8], usize>) -> Result<(), SourceError> {
        send_waiting(&self.producer, record).map_err(|refused| refused.0.into())
    }

    /// Copies `records`, read from `partition` and found unusable, to the quarantine
    /// topic, each sized to fit and acknowledged; one the broker refuses is sent again as
    /// its coordinates and reason only, and one refused even so is counted as lost and
    /// logged, and the restore goes on. Each is counted and logged.
    pub(crate) fn quarantine(&self, partition: i32, records: &[Quarantined]) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let topic = self.quarantine_topic();
        for record in records {
            let origin = record.origin(&self.topic, partition);
            let built = quarantine::letter(record, &origin, self.letter_limit);
            let whole = BaseRecord::with_opaque_to(&topic, ACCOUNT)
                .key(&origin.key[..])
                .payload(built.payload)
                .headers(owned_headers(&built.headers));
            if let Err(refused) = self.send(whole).and_then(|()| self.acknowledged(partition)) {
                let headers = dead_letter::coordinates_only(&origin, &refused.to_string());
                let coordinates = BaseRecord::with_opaque_to(&topic, ACCOUNT)
                    .key(&origin.key[..])
                    .payload(&[][..])
                    .headers(owned_headers(&headers));
                if let Err(e) = self
                    .send(coordinates)
                    .and_then(|()| self.acknowledged(partition))
                {
                    self.quarantined.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        source = %origin.source(),
                        reason = record.why.as_str(),
                        error = %e,
                        "an unusable changelog record could not be quarantined; restore goes on without it"
                    );
                }
            }
            self.quarantined.add(record.why);
            tracing::warn!(
                source = %origin.source(),
                reason = record.why.as_str(),
                detail = %origin.detail,
                quarantined = self.quarantined.get(record.why),
                %topic,
                "unusable changelog record set aside"
            );
        }
    }
}

#[cfg(test)]
mod tests;
