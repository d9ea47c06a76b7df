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
//! lost; and an account restored ahead sees each re-read event of its own either as a
//! duplicate (its id is remembered: event ids are kept for the lateness horizon) or as
//! late (older than its stream time less the lateness), so none is applied twice or
//! emits anything again. Accounts whose records were not written are restored as of the
//! previous completion and re-read their events as the first time, emitting the same
//! opportunities with the same ids. Compaction may drop an account's older records, which
//! is why records after the last completion are applied, never discarded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use radar_core::{AccountRecords, Engine};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::SourceError;
use crate::producer::send_waiting;
use crate::topics::{self, Cleanup, TIMEOUT, block_on};

/// Where the changelog is, and how to create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangelogConfig {
    pub topic: String,
    /// Replication factor when radar creates the topic; -1: the broker's default.
    pub replication: i32,
}

/// Version of the completion record's value: a byte, then the source offset (i64 LE).
const COMPLETION_VERSION: u8 = 1;

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
}

impl std::fmt::Debug for Changelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changelog")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// What reading a changelog partition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// The source offset of the last completion record read, if any.
    pub resume_at: Option<i64>,
    pub records: u64,
    /// The changelog offset after the last record read: where this instance's view of
    /// the partition ends (see [`Changelog::write`]).
    pub end: i64,
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
        let mut producer_config = client.clone();
        producer_config.set("enable.idempotence", "true");
        Ok(Changelog {
            topic: config.topic.clone(),
            producer: producer_config.create_with_context(Reports::default())?,
            client: client.clone(),
        })
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
    pub(crate) fn write(
        &self,
        partition: i32,
        records: &AccountRecords<'_>,
        offset: i64,
        seen: i64,
    ) -> Result<i64, SourceError> {
        if self.end(partition)? > seen {
            return Err(SourceError::Fenced(partition));
        }
        for account_id in &records.evicted {
            self.send(
                BaseRecord::<[u8], [u8], usize>::with_opaque_to(&self.topic, ACCOUNT)
                    .partition(partition)
                    .key(account_id.as_bytes()),
            )?;
        }
        for (account_id, state) in &records.updated {
            self.send(
                BaseRecord::with_opaque_to(&self.topic, ACCOUNT)
                    .partition(partition)
                    .key(account_id.as_bytes())
                    .payload(state.as_slice()),
            )?;
        }
        // The completion only once every account record is acknowledged: a record lost
        // for good behind a completion would restore its account older than the offset.
        self.acknowledged(partition)?;
        let mut completion = vec![COMPLETION_VERSION];
        completion.extend_from_slice(&offset.to_le_bytes());
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

    /// The changelog offset after the last record of `partition`.
    pub(crate) fn end(&self, partition: i32) -> Result<i64, SourceError> {
        let (_, high) = self
            .producer
            .client()
            .fetch_watermarks(&self.topic, partition, TIMEOUT)?;
        Ok(high)
    }

    /// Reads `partition` from changelog offset `from` to its end into `engine`: account
    /// states replace what the engine holds, tombstones remove accounts.
    pub(crate) fn replay(
        &self,
        partition: i32,
        from: i64,
        engine: &mut Engine,
    ) -> Result<Replayed, SourceError> {
        // Assigned, never subscribed: the group id is librdkafka's requirement only, and
        // nothing is committed under it.
        let consumer: BaseConsumer = self
            .client
            .clone()
            .set("group.id", "radar-changelog-restore")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Restore reads one partition flat out: fetch in large slices, and wait neither
            // on a fetch nor after a full queue (on tansu, 435k accounts took 3.2-3.4 s
            // with librdkafka's 500 ms and 1 s defaults, 1.3-1.5 s with these).
            .set("max.partition.fetch.bytes", "16777216")
            .set("queued.max.messages.kbytes", "262144")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10")
            .create()?;
        let (low, high) = consumer.fetch_watermarks(&self.topic, partition, TIMEOUT)?;
        let mut replayed = Replayed {
            resume_at: None,
            records: 0,
            end: from.max(high),
        };
        let mut next = from.max(low);
        let mut last_error = None;
        if next >= high {
            return Ok(replayed);
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topic, partition, Offset::Offset(next))?;
        consumer.assign(&assignment)?;
        let corrupt = |offset: i64, why: &str| {
            SourceError::Changelog(format!(
                "partition {partition} of {} at offset {offset}: {why}",
                self.topic
            ))
        };
        // To the end of the partition: past the high watermark taken before, and until
        // the consumer says it reached the end (some brokers report a watermark short of
        // a batch's last record).
        loop {
            let message = match consumer.poll(TIMEOUT) {
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(_))) if next >= high => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                // A broker away or a leader moving: librdkafka retries; so does this loop,
                // until a whole timeout passes without a record.
                Some(Err(e)) => {
                    last_error = Some(e);
                    continue;
                }
                None => {
                    let why = last_error.map_or_else(String::new, |e| format!(" (last: {e})"));
                    return Err(corrupt(
                        next,
                        &format!("no record within 30 s, though the log goes further{why}"),
                    ));
                }
            };
            next = message.offset() + 1;
            replayed.end = replayed.end.max(next);
            replayed.records += 1;
            let key = message.key().unwrap_or_default();
            match (key, message.payload()) {
                ([], Some(value)) => {
                    let offset = value
                        .split_first()
                        .filter(|(version, _)| **version == COMPLETION_VERSION)
                        .and_then(|(_, offset)| <[u8; 8]>::try_from(offset).ok())
                        .ok_or_else(|| corrupt(message.offset(), "unreadable completion record"))?;
                    replayed.resume_at = Some(i64::from_le_bytes(offset));
                }
                ([], None) => return Err(corrupt(message.offset(), "a record with no key")),
                (account, value) => {
                    let account = std::str::from_utf8(account)
                        .map_err(|_| corrupt(message.offset(), "an account id not UTF-8"))?;
                    match value {
                        None => engine.remove_account(account),
                        Some(state) => engine
                            .restore_account(account, state)
                            .map_err(|e| corrupt(message.offset(), &e.to_string()))?,
                    }
                }
            }
        }
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Instant;

    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::BaseProducer;

    use super::*;
    use crate::partition::{KafkaRecord, PartitionWorker, Restored};

    fn settings() -> Arc<radar_core::Settings> {
        Arc::new(radar::config::load(None).expect("the default config is valid"))
    }

    fn lines() -> Vec<String> {
        let opts = radar_gen::Options {
            accounts: 200,
            events: 3_000,
            seed: 9,
            ..Default::default()
        };
        radar_gen::Generator::new(opts)
            .expect("valid options")
            .collect()
    }

    /// The records of `lines` from `first`, keyed by their accounts as producers key them.
    fn records(lines: &[String], first: usize) -> Vec<KafkaRecord<'_>> {
        lines[first..]
            .iter()
            .enumerate()
            .map(|(i, line)| KafkaRecord {
                offset: (first + i) as i64,
                payload: line.as_bytes(),
                timestamp: None,
                key: radar_gen::account_key(line),
            })
            .collect()
    }

    /// Partition 0 of `events` restored from `store` and the changelog.
    fn restore(store: &radar_store::Store, changelog: &Changelog) -> (PartitionWorker, Restored) {
        PartitionWorker::restore(
            settings(),
            store,
            Some(changelog),
            "events",
            0,
            Instant::now(),
        )
        .expect("the partition restores")
    }

    /// Whether two engines hold the same accounts in the same states (snapshot bytes
    /// may differ in the order of hashed sets).
    fn same_state(a: &Engine, b: &Engine) -> bool {
        a.tracked_accounts() == b.tracked_accounts()
            && a.accounts().all(|(id, state)| b.account(id) == Some(state))
    }

    fn ids(opportunities: &[radar_core::Opportunity]) -> Vec<String> {
        opportunities
            .iter()
            .map(|o| o.opportunity_id.to_string())
            .collect()
    }

    /// The mock cluster answers no topic creation: the changelog topic is made here (the
    /// tansu tests see radar create it).
    fn open(cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>) -> Changelog {
        cluster
            .create_topic("radar-state", 1, 1)
            .expect("the changelog topic");
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", cluster.bootstrap_servers());
        let config = ChangelogConfig {
            topic: "radar-state".into(),
            replication: 1,
        };
        Changelog::open(&client, &config, "events").expect("the changelog opens")
    }

    /// An instance crashes after writing some account records of a checkpoint but not its
    /// completion record; another, on a new machine (an empty local store), restores the
    /// partition from the changelog and carries on. Together they emit every opportunity
    /// of an uninterrupted run, and again only some whose accounts' records were not
    /// written (the same ids: at-least-once with its idempotency key).
    #[test]
    fn a_crash_before_the_completion_record_loses_nothing_and_repeats_only_what_was_not_written() {
        let cluster = MockCluster::new(1).expect("a mock cluster");
        cluster
            .create_topic("events", 1, 1)
            .expect("the source topic");
        let changelog = open(&cluster);
        let lines = lines();
        let now = Instant::now();

        let dir = tempfile::tempdir().expect("a temporary directory");
        let whole_store = radar_store::Store::open(&dir.path().join("whole.redb")).unwrap();
        let (mut whole, _) =
            PartitionWorker::restore(settings(), &whole_store, None, "whole", 0, now).unwrap();
        let mut expected = Vec::new();
        whole.process(&records(&lines, 0), &mut expected, &mut Vec::new());

        // The first machine: a checkpoint at 1,000, 700 more records, then half of the
        // changed accounts' records written, and a crash.
        let first_store = radar_store::Store::open(&dir.path().join("first.redb")).unwrap();
        let (mut first, restored) = restore(&first_store, &changelog);
        assert_eq!(restored.resume_at, None);
        let mut emitted = Vec::new();
        first.process(&records(&lines[..1_000], 0), &mut emitted, &mut Vec::new());
        assert_eq!(
            first
                .checkpoint(&first_store, Some(&changelog), now)
                .unwrap(),
            Some(1_000)
        );
        let before_crash = emitted.len();
        first.process(
            &records(&lines[..1_700], 1_000),
            &mut emitted,
            &mut Vec::new(),
        );
        let repeatable: BTreeSet<String> = ids(&emitted[before_crash..]).into_iter().collect();
        let pending = first.engine().changed_account_records();
        let written: Vec<&(&str, Vec<u8>)> = pending.updated.iter().step_by(2).collect();
        assert!(written.len() > 10);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for (account_id, state) in &written {
            producer
                .send(
                    BaseRecord::to("radar-state")
                        .partition(0)
                        .key(account_id.as_bytes())
                        .payload(state.as_slice()),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(TIMEOUT).unwrap();
        drop(first);

        // A new machine: nothing local, everything from the changelog.
        let second_store = radar_store::Store::open(&dir.path().join("second.redb")).unwrap();
        let (mut second, restored) = restore(&second_store, &changelog);
        assert_eq!(restored.resume_at, Some(1_000), "from the last completion");
        assert!(restored.from_changelog.is_some_and(|n| n > 0));
        let mut again = Vec::new();
        second.process(&records(&lines, 1_000), &mut again, &mut Vec::new());
        emitted.extend(again);

        let all: BTreeSet<String> = ids(&emitted).into_iter().collect();
        assert_eq!(all, ids(&expected).into_iter().collect::<BTreeSet<_>>());
        let repeated = emitted.len() - all.len();
        assert!(
            repeated < repeatable.len(),
            "{repeated} repeated of {} that could be",
            repeatable.len()
        );
        let mut seen = BTreeSet::new();
        for id in ids(&emitted) {
            assert!(seen.insert(id.clone()) || repeatable.contains(&id), "{id}");
        }
        assert!(
            same_state(second.engine(), whole.engine()),
            "the same state as an uninterrupted run"
        );
    }

    /// A local store as new as the changelog is used as it is; one behind reads only the
    /// changelog's tail; either way the state is the changelog's.
    #[test]
    fn the_local_store_is_a_cache_of_the_changelog() {
        let cluster = MockCluster::new(1).expect("a mock cluster");
        cluster
            .create_topic("events", 1, 1)
            .expect("the source topic");
        let changelog = open(&cluster);
        let lines = lines();
        let now = Instant::now();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cache = radar_store::Store::open(&dir.path().join("cache.redb")).unwrap();
        let elsewhere = radar_store::Store::open(&dir.path().join("elsewhere.redb")).unwrap();

        let (mut worker, _) = restore(&cache, &changelog);
        worker.process(
            &records(&lines[..1_500], 0),
            &mut Vec::new(),
            &mut Vec::new(),
        );
        worker.checkpoint(&cache, Some(&changelog), now).unwrap();
        let at_1500 = worker;

        let (worker, restored) = restore(&cache, &changelog);
        assert_eq!(
            (restored.resume_at, restored.from_changelog),
            (Some(1_500), None)
        );
        assert!(same_state(worker.engine(), at_1500.engine()));
        drop(worker);

        // Another instance owns the partition for a while and checkpoints there.
        let (mut other, _) = restore(&elsewhere, &changelog);
        other.process(&records(&lines, 1_500), &mut Vec::new(), &mut Vec::new());
        other.checkpoint(&elsewhere, Some(&changelog), now).unwrap();

        let (back, restored) = restore(&cache, &changelog);
        assert_eq!(restored.resume_at, Some(3_000));
        let tail = restored.from_changelog.expect("the tail was read");
        // The other's claim when it restored, its account records, its completion.
        assert!(
            tail <= other.engine().tracked_accounts() as u64 + 2,
            "only the tail: {tail} records"
        );
        assert!(same_state(back.engine(), other.engine()));

        // The first instance, frozen all along, wakes up and checkpoints what it had:
        // refused, since the new owner wrote since, and nothing of it is written.
        let mut zombie = at_1500;
        zombie.process(
            &records(&lines[..2_000], 1_500),
            &mut Vec::new(),
            &mut Vec::new(),
        );
        let end = changelog.end(0).unwrap();
        assert!(matches!(
            zombie.checkpoint(&cache, Some(&changelog), now),
            Err(SourceError::Fenced(0))
        ));
        assert_eq!(changelog.end(0).unwrap(), end);
        let (again, _) = restore(&elsewhere, &changelog);
        assert!(same_state(again.engine(), other.engine()));
    }

    /// A new owner claims the partition as it restores it, before its first checkpoint:
    /// the old owner, frozen until then, can write nothing after it.
    #[test]
    fn a_new_owner_fences_the_old_one_as_it_restores() {
        let cluster = MockCluster::new(1).expect("a mock cluster");
        cluster
            .create_topic("events", 1, 1)
            .expect("the source topic");
        let changelog = open(&cluster);
        let lines = lines();
        let now = Instant::now();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = |name: &str| radar_store::Store::open(&dir.path().join(name)).unwrap();
        let (old_cache, new_cache, later_cache) = (store("old"), store("new"), store("later"));

        let (mut old, _) = restore(&old_cache, &changelog);
        old.process(
            &records(&lines[..1_500], 0),
            &mut Vec::new(),
            &mut Vec::new(),
        );
        old.checkpoint(&old_cache, Some(&changelog), now).unwrap();

        let (new, restored) = restore(&new_cache, &changelog);
        assert_eq!(restored.resume_at, Some(1_500));
        old.process(
            &records(&lines[..2_000], 1_500),
            &mut Vec::new(),
            &mut Vec::new(),
        );
        assert!(matches!(
            old.checkpoint(&old_cache, Some(&changelog), now),
            Err(SourceError::Fenced(0))
        ));
        let (later, restored) = restore(&later_cache, &changelog);
        assert_eq!(restored.resume_at, Some(1_500));
        assert!(same_state(later.engine(), new.engine()));
    }
}
