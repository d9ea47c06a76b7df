//! The Kafka source: a consumer group over the event topics, one [`PartitionWorker`] per
//! assigned partition, rejected records to the dead-letter topic, offsets committed only
//! after the checkpoint that covers them.
//!
//! rdkafka calls the rebalance callbacks from inside `poll`, on the thread that polls,
//! while the previous round is processed on rayon's pool (see [`Source::consume`]), so the
//! workers live behind a mutex: processing holds it for a round, a callback waits for it.
//! On assignment each partition is restored from its checkpoint and assigned at the
//! checkpoint's offset (the checkpoint, not the group's committed offset, is the truth: a
//! crash between the two must not apply events twice); on revocation each is
//! checkpointed and its offset committed before it goes. Opportunities and dead letters
//! are made durable before any offset is committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use radar_core::{Opportunity, Settings, Stats};
use radar_store::{Content, Store, StoreError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::dead_letter::{self, LetterCounts, Origin};
use crate::partition::{CheckpointPolicy, DeadLetter, KafkaRecord, PartitionWorker, Restored};

/// Where and how to consume. Its `Debug` output redacts secret client settings, so it
/// can be logged.
#[derive(Clone)]
pub struct SourceConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub dead_letter_topic: String,
    /// Where opportunities are also produced (JSON, key = account id), if anywhere.
    pub opportunities_topic: Option<String>,
    /// librdkafka settings passed through as they are (TLS, SASL, timeouts…).
    pub client: Vec<(String, String)>,
    pub checkpoint: CheckpointPolicy,
    pub poll_timeout: Duration,
    /// Records taken per poll round: enough to spread the per-round costs (one outbox
    /// transaction, one parallel step), small enough to keep each round short.
    pub max_batch: usize,
}

/// Whether a librdkafka setting holds a secret (SASL and TLS passwords, client secrets,
/// inline keys). Such settings are never printed, and never read from a config file.
pub fn is_secret(key: &str) -> bool {
    ["password", "secret", "pem", "jaas", "oauthbearer.config"]
        .iter()
        .any(|word| key.contains(word))
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client: Vec<(&str, &str)> = self
            .client
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "[redacted]"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("SourceConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("client", &client)
            .field("checkpoint", &self.checkpoint)
            .field("poll_timeout", &self.poll_timeout)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

/// Where opportunities go, each with its JSON (serialised once, on the partition's
/// thread). `flush` hands on everything accepted so far, and what it hands on must be
/// durable by the time the next checkpoint is: [`OutboxSink`] writes to the store that
/// holds the checkpoints, whose durable commit covers it; a sink writing anywhere else
/// must make its writes durable in `flush` itself. The source flushes at the end of every
/// round, under the partitions' lock that rebalance callbacks take, and before every
/// checkpoint, so no offset is ever committed ahead of the opportunities it produced.
pub trait OpportunitySink: Send {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError>;
    fn flush(&mut self) -> Result<(), SinkError>;
}

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// The sink of the pipeline: opportunities as JSON in the store's outbox, written in one
/// transaction per flush. That transaction is not synced to disk on its own: the outbox
/// lives in the store that holds the checkpoints, and a checkpoint's durable commit makes
/// every earlier write durable, so the fsync is paid once per checkpoint, not per round.
pub struct OutboxSink {
    store: Arc<Store>,
    pending: Vec<Vec<u8>>,
    written: Option<Box<dyn Fn() + Send>>,
}

impl std::fmt::Debug for OutboxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSink")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl OutboxSink {
    pub fn new(store: Arc<Store>) -> OutboxSink {
        OutboxSink {
            store,
            pending: Vec::new(),
            written: None,
        }
    }

    /// Calls `written` after each flush that wrote something, so delivery can pick the
    /// new entries up at once instead of at its next poll.
    pub fn on_written(mut self, written: impl Fn() + Send + 'static) -> OutboxSink {
        self.written = Some(Box::new(written));
        self
    }
}

impl OpportunitySink for OutboxSink {
    fn accept(&mut self, _: Opportunity, json: Vec<u8>) -> Result<(), SinkError> {
        self.pending.push(json);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if !self.pending.is_empty() {
            self.store
                .append_outbox(self.pending.iter().map(Vec::as_slice))?;
            self.pending.clear();
            if let Some(written) = &self.written {
                written();
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("writing opportunities: {0}")]
    Sink(SinkError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("partition state lock poisoned by an earlier panic")]
    Poisoned,
    #[error(
        "{0} records (dead letters or opportunities) were refused by the broker; not committing past them"
    )]
    Refused(u64),
}

/// What the source shows whoever watches it (tests, metrics, readiness), refreshed
/// after every poll round: atomics and short-held locks, never touched per event.
#[derive(Debug, Default)]
pub struct Progress {
    pub consumed: AtomicU64,
    /// Partitions assigned and restored, ready to process.
    pub partitions: AtomicU64,
    pub tracked_accounts: AtomicU64,
    /// Every partition's counts so far (including partitions since revoked).
    pub stats: Mutex<Stats>,
    /// Consumer lag by (topic, partition), from librdkafka's statistics.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    pub checkpoints: Mutex<CheckpointTimes>,
    /// Dead letters that could not be sent whole.
    pub dead_letters: LetterCounts,
    /// How long each poll round's processing took (decode → state → rules → score →
    /// opportunities, dead letters handed on), not yet taken by a metrics reader; at most
    /// [`Progress::KEPT`] are kept.
    pub rounds: Mutex<Vec<Duration>>,
}

impl Progress {
    /// Timings kept for a reader that has not come yet.
    pub const KEPT: usize = 65_536;

    fn note(list: &Mutex<Vec<Duration>>, took: Duration) {
        if let Ok(mut list) = list.lock()
            && list.len() < Progress::KEPT
        {
            list.push(took);
        }
    }
}

/// When the last checkpoint was written and how long checkpoints take.
#[derive(Debug, Default, Clone)]
pub struct CheckpointTimes {
    /// Durations of checkpoints not yet taken by a metrics reader.
    pub durations: Vec<Duration>,
    /// What each partition checkpoint wrote (a snapshot or changes) and its size in
    /// bytes, not yet taken by a metrics reader.
    pub written: Vec<(Content, usize)>,
    /// When the last one completed.
    pub last: Option<Instant>,
}

/// How the source was asked to stop.
#[derive(Debug, Default)]
pub struct Stop {
    graceful: AtomicBool,
    abrupt: AtomicBool,
}

impl Stop {
    /// Finish in-flight work, checkpoint every partition, commit, return.
    pub fn graceful(&self) {
        self.graceful.store(true, Ordering::SeqCst);
    }

    /// Return at once, as a crash would: nothing more is checkpointed or committed.
    pub fn abrupt(&self) {
        self.abrupt.store(true, Ordering::SeqCst);
    }
}

type Key = (String, i32);

/// What a produced record was, for its delivery report.
enum Produced {
    Opportunity,
    /// A rejected record's dead letter, with its bytes.
    Letter(Origin),
    /// A dead letter without the record's bytes, sent when the broker refused the whole
    /// one.
    Coordinates(Origin),
}

/// Tracks what the producer could not deliver. A refused opportunity, or a dead letter
/// refused for anything but the record itself (the broker away, a missing topic, no
/// authorisation), stops the source before any offset moves past it; a dead letter
/// refused for its size is sent again as its coordinates (see [`crate::dead_letter`]).
#[derive(Default)]
struct DeliveryContext {
    failed: AtomicU64,
    /// Dead letters refused for what they hold, to send again as coordinates.
    refused: Mutex<Vec<(Origin, String)>>,
    letters: LetterCounts,
}

impl DeliveryContext {
    fn refused(&self, produced: Produced, error: &KafkaError) {
        match produced {
            Produced::Letter(origin) if refused_for_itself(error) => self
                .refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((origin, error.to_string())),
            Produced::Coordinates(origin) if refused_for_itself(error) => {
                self.letters.lost.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "radar: error: the dead letter of {} ({}) was refused even without the record's bytes ({error}); the record stays in Kafka there, moving on",
                    origin.source(),
                    origin.reason
                );
            }
            _ => {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Whether the broker (or the producer) refused a record for what it holds: its size or
/// its form, which sending it again would not change.
fn refused_for_itself(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Produced>;

    fn delivery(&self, result: &DeliveryResult<'_>, produced: Box<Produced>) {
        if let Err((error, _)) = result {
            self.refused(*produced, error);
        }
    }
}

/// Reads account state held by a running source's partitions. It takes the workers'
/// lock for the length of one lookup, so it may wait for the round being processed.
#[derive(Clone)]
pub struct Inspector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").finish_non_exhaustive()
    }
}

impl Inspector {
    /// The account's state, score and breakdown ([`radar_core::Engine::explain`]), from
    /// whichever partition holds it; `None` if none of this process's partitions does.
    pub fn explain(&self, account_id: &str) -> Result<Option<serde_json::Value>, SourceError> {
        Ok(self
            .shared
            .workers()?
            .values()
            .find_map(|worker| worker.engine().explain(account_id)))
    }
}

/// Partition workers and what they share, reached from the poll loop and from the
/// rebalance callbacks.
struct Shared {
    settings: Arc<Settings>,
    store: Arc<Store>,
    /// Produces dead letters and, when configured, opportunities; an offset is committed
    /// only after everything it caused was acknowledged.
    producer: BaseProducer<DeliveryContext>,
    dead_letter_topic: String,
    /// The producer's `message.max.bytes`, which every dead letter fits.
    letter_limit: usize,
    workers: Mutex<HashMap<Key, PartitionWorker>>,
    /// Consumer lag by partition, from the statistics callback.
    lag: Mutex<BTreeMap<Key, i64>>,
    /// Stats of partitions that were revoked, so nothing counted is lost.
    retired: Mutex<Stats>,
    /// What partition checkpoints wrote, from the poll loop and from revocations, until
    /// the next [`Source::publish`] hands it to [`Progress`].
    written: Mutex<Vec<(Content, usize)>>,
    /// A failure inside a callback, reported by the poll loop.
    failure: Mutex<Option<SourceError>>,
    /// Set by an abrupt stop: from then on nothing is checkpointed or committed, not even
    /// by the revocation that closing the consumer triggers (a crash would not either).
    abandoned: AtomicBool,
}

impl Shared {
    fn workers(&self) -> Result<MutexGuard<'_, HashMap<Key, PartitionWorker>>, SourceError> {
        self.workers.lock().map_err(|_| SourceError::Poisoned)
    }

    /// Notes what a worker's checkpoint just wrote.
    fn note_written(&self, worker: &mut PartitionWorker) {
        if let Some(written) = worker.take_written()
            && let Ok(mut list) = self.written.lock()
            && list.len() < Progress::KEPT
        {
            list.push(written);
        }
    }

    fn fail(&self, error: SourceError) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
    }

    /// Waits until every record produced is acknowledged; dead letters refused for their
    /// size go again as their coordinates (and are waited for too). An error if anything
    /// else was refused.
    fn flush_produced(&self) -> Result<(), SourceError> {
        let context = self.producer.context();
        loop {
            self.producer.flush(Duration::from_secs(30))?;
            let refused = std::mem::take(
                &mut *context
                    .refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if refused.is_empty() {
                break;
            }
            for (origin, why) in refused {
                context
                    .letters
                    .payload_dropped
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "radar: warning: the broker refused the dead letter of {} ({}): {why}; sending its coordinates and reason without the record's bytes",
                    origin.source(),
                    origin.reason
                );
                let headers = owned_headers(&dead_letter::coordinates_only(&origin, &why));
                let key = origin.key.clone();
                let record = BaseRecord::with_opaque_to(
                    &self.dead_letter_topic,
                    Box::new(Produced::Coordinates(origin)),
                )
                .key(&key[..])
                .payload(&[][..])
                .headers(headers);
                self.produce(record)?;
            }
        }
        match context.failed.load(Ordering::SeqCst) {
            0 => Ok(()),
            failed => Err(SourceError::Refused(failed)),
        }
    }

    /// Hands a record to the producer, waiting for room when its queue is full. A record
    /// the producer refuses at once for its size is reported as the broker's refusal
    /// would be.
    fn produce(
        &self,
        mut record: BaseRecord<'_, [u8], [u8], Box<Produced>>,
    ) -> Result<(), SourceError> {
        let producer = &self.producer;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: let deliveries drain, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(100));
                }
                Err((error, back)) if refused_for_itself(&error) => {
                    producer.context().refused(*back.delivery_opaque, &error);
                    break;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Commits offsets whose checkpoints are durable. A refused commit (a rebalance in
    /// progress, a lost assignment) is not fatal: the checkpoint is the truth, and the next
    /// commit, or the next owner restoring it, moves on from there. For the same reason
    /// the periodic commits need not wait for the broker (`CommitMode::Async`); those on
    /// revocation and at stop do.
    fn commit(
        &self,
        consumer: &BaseConsumer<Context>,
        offsets: &TopicPartitionList,
        mode: CommitMode,
    ) {
        if offsets.count() == 0 || consumer.assignment_lost() {
            return;
        }
        if let Err(e) = consumer.commit(offsets, mode) {
            eprintln!("radar: warning: committing offsets failed (the checkpoints stand): {e}");
        }
    }
}

struct Context {
    shared: Arc<Shared>,
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance
            && !self.shared.abandoned.load(Ordering::SeqCst)
            && let Err(e) = revoke(&self.shared, consumer, list)
        {
            self.shared.fail(e);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance
            && let Err(e) = assign(&self.shared, consumer, list)
        {
            self.shared.fail(e);
        }
    }
}

/// Restores each newly assigned partition and re-assigns it at its checkpoint's offset.
fn assign(
    shared: &Shared,
    consumer: &BaseConsumer<Context>,
    list: &TopicPartitionList,
) -> Result<(), SourceError> {
    let mut workers = shared.workers()?;
    let mut positioned = TopicPartitionList::new();
    for element in list.elements() {
        let key = (element.topic().to_owned(), element.partition());
        let resume_at = match workers.get(&key) {
            Some(worker) => worker.resume_offset(),
            None => {
                let (worker, restored) = PartitionWorker::restore(
                    shared.settings.clone(),
                    &shared.store,
                    &key.0,
                    key.1,
                    Instant::now(),
                )?;
                workers.insert(key.clone(), worker);
                report_restore(&key, &restored);
                restored.resume_at
            }
        };
        // Without a checkpoint there is no state: rebuild it from the start of the
        // partition, not from the group's committed offset.
        let offset = resume_at.map_or(Offset::Beginning, Offset::Offset);
        positioned.add_partition_offset(&key.0, key.1, offset)?;
    }
    consumer.assign(&positioned)?;
    Ok(())
}

/// Says what a partition was restored from, and warns when checkpoints were left out.
fn report_restore((topic, partition): &Key, restored: &Restored) {
    match restored.resume_at {
        Some(offset) => eprintln!(
            "radar: partition {topic}/{partition}: {} accounts restored, resuming at offset {offset}",
            restored.accounts
        ),
        None => eprintln!(
            "radar: partition {topic}/{partition}: no checkpoint, building the state from the start"
        ),
    }
    if restored.skipped > 0 {
        eprintln!(
            "radar: warning: partition {topic}/{partition}: {} newer checkpoints left out (damaged or unreadable); the events after them are processed again",
            restored.skipped
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
    shared.flush_produced()?;
    let mut offsets = TopicPartitionList::new();
    for element in list.elements() {
        let key = (element.topic().to_owned(), element.partition());
        if let Some(mut worker) = workers.remove(&key) {
            if let Some(offset) = worker.checkpoint(&shared.store, Instant::now())? {
                offsets.add_partition_offset(&key.0, key.1, Offset::Offset(offset))?;
            }
            shared.note_written(&mut worker);
            if let Ok(mut retired) = shared.retired.lock() {
                retired.merge(worker.stats());
            }
        }
    }
    shared.commit(consumer, &offsets, CommitMode::Sync);
    Ok(())
}

/// The running source.
pub struct Source {
    consumer: BaseConsumer<Context>,
    shared: Arc<Shared>,
    config: SourceConfig,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("config", &self.config)
            .finish()
    }
}

impl Source {
    pub fn new(
        config: SourceConfig,
        settings: Arc<Settings>,
        store: Arc<Store>,
    ) -> Result<Source, SourceError> {
        let mut client = ClientConfig::new();
        for (key, value) in &config.client {
            client.set(key, value);
        }
        client.set("bootstrap.servers", &config.bootstrap_servers);
        let producer: BaseProducer<DeliveryContext> =
            client.create_with_context(DeliveryContext::default())?;
        let letter_limit = client
            .get("message.max.bytes")
            .and_then(|limit| limit.parse().ok())
            .unwrap_or(dead_letter::DEFAULT_MESSAGE_MAX_BYTES);
        let shared = Arc::new(Shared {
            settings,
            store,
            producer,
            dead_letter_topic: config.dead_letter_topic.clone(),
            letter_limit,
            workers: Mutex::new(HashMap::new()),
            lag: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Stats::default()),
            written: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            abandoned: AtomicBool::new(false),
        });
        let mut consumer_config = client.clone();
        consumer_config
            .set("group.id", &config.group_id)
            // At-least-once by construction: offsets move only after checkpoints.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("partition.assignment.strategy", "range,roundrobin");
        // Defaults a user may override under [kafka.client]:
        for (key, value) in [
            // Statistics carry the per-partition consumer lag that /metrics shows.
            ("statistics.interval.ms", "5000"),
            // The bound on records fetched ahead of processing: a slow stage shows as
            // consumer lag, never as memory growth.
            ("queued.max.messages.kbytes", "65536"),
            // When that queue is full librdkafka pauses fetching for this long (1 s by
            // default). Radar drains the queue in rounds, so a short pause keeps the fetcher
            // busy: measured on tansu, 230k → 690k events/s (`cargo bench --bench pipeline`).
            ("fetch.queue.backoff.ms", "10"),
        ] {
            if consumer_config.get(key).is_none() {
                consumer_config.set(key, value);
            }
        }
        let consumer: BaseConsumer<Context> = consumer_config.create_with_context(Context {
            shared: shared.clone(),
        })?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Source {
            consumer,
            shared,
            config,
        })
    }

    /// Consumes until `stop` says so; opportunities go to `sink` in each partition's order.
    /// Returns the counts of every partition this source processed. On an error nothing
    /// more is checkpointed or committed (not even by the revocation that dropping the
    /// consumer triggers): the restart redoes the work from the last checkpoint.
    pub fn run(
        &self,
        stop: &Stop,
        progress: &Progress,
        sink: &mut impl OpportunitySink,
    ) -> Result<Stats, SourceError> {
        let result = self.consume(stop, progress, sink);
        if result.is_err() || stop.abrupt.load(Ordering::SeqCst) {
            self.shared.abandoned.store(true, Ordering::SeqCst);
        }
        result?;
        self.stats()
    }

    /// Round N is processed on rayon's pool while this thread polls round N+1, so
    /// librdkafka's queue is drained while the partitions compute. Rebalance callbacks
    /// run inside that poll, on this thread; they take the partitions' lock, which the
    /// processing side holds until its round's dead letters are produced and its
    /// opportunities are in the sink, so a revocation checkpoints a partition with all it
    /// has processed handed on. A round that fails half-way marks the source abandoned
    /// before it lets go of the lock, and a revocation then checkpoints nothing.
    fn consume(
        &self,
        stop: &Stop,
        progress: &Progress,
        sink: &mut impl OpportunitySink,
    ) -> Result<(), SourceError> {
        let mut batch = self.poll_round(self.config.poll_timeout)?;
        loop {
            if stop.abrupt.load(Ordering::SeqCst) {
                return Ok(());
            }
            if stop.graceful.load(Ordering::SeqCst) {
                self.process_round(&batch, sink, progress)?;
                break;
            }
            let mut processed = Ok(());
            let polled = rayon::in_place_scope(|scope| {
                scope.spawn(|_| processed = self.process_round(&batch, sink, progress));
                self.poll_round(self.config.poll_timeout)
            });
            processed?;
            batch = polled?;
            self.checkpoint_due(sink, progress)?;
            self.publish(progress)?;
        }
        self.checkpoint_all(sink, progress)?;
        self.publish(progress)
    }

    /// A round of records: waits up to `timeout` for one, then takes what is already
    /// fetched, up to `max_batch`.
    fn poll_round(&self, timeout: Duration) -> Result<Vec<BorrowedMessage<'_>>, SourceError> {
        let max_batch = self.config.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch);
        let mut timeout = timeout;
        while batch.len() < max_batch {
            let polled = self.consumer.poll(timeout);
            self.take_failure()?;
            match polled {
                Some(Ok(message)) => batch.push(message),
                // Consumer errors (a topic not created yet, a broker away) are reported
                // and retried by librdkafka; stopping on them would only restart into
                // them.
                Some(Err(e)) => {
                    eprintln!("radar: warning: consuming: {e}");
                    if batch.is_empty() {
                        std::thread::sleep(self.config.poll_timeout);
                    }
                    break;
                }
                None => break,
            }
            timeout = Duration::ZERO;
        }
        Ok(batch)
    }

    /// Copies the counts watchers read into `progress`.
    fn publish(&self, progress: &Progress) -> Result<(), SourceError> {
        let stats = self.stats()?;
        let workers = self.shared.workers()?;
        progress
            .partitions
            .store(workers.len() as u64, Ordering::Relaxed);
        let tracked: usize = workers
            .values()
            .map(|w| w.engine().tracked_accounts())
            .sum();
        drop(workers);
        progress
            .tracked_accounts
            .store(tracked as u64, Ordering::Relaxed);
        *progress.stats.lock().map_err(|_| SourceError::Poisoned)? = stats;
        let lag = self
            .shared
            .lag
            .lock()
            .map_err(|_| SourceError::Poisoned)?
            .clone();
        *progress.lag.lock().map_err(|_| SourceError::Poisoned)? = lag;
        let letters = &self.shared.producer.context().letters;
        for (from, to) in [
            (&letters.truncated, &progress.dead_letters.truncated),
            (
                &letters.payload_dropped,
                &progress.dead_letters.payload_dropped,
            ),
            (&letters.lost, &progress.dead_letters.lost),
        ] {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let written: Vec<(Content, usize)> = self
            .shared
            .written
            .lock()
            .map_err(|_| SourceError::Poisoned)?
            .drain(..)
            .collect();
        let mut checkpoints = progress
            .checkpoints
            .lock()
            .map_err(|_| SourceError::Poisoned)?;
        let room = Progress::KEPT.saturating_sub(checkpoints.written.len());
        checkpoints.written.extend(written.into_iter().take(room));
        Ok(())
    }

    /// A failure a rebalance callback left for the poll loop.
    fn take_failure(&self) -> Result<(), SourceError> {
        match self
            .shared
            .failure
            .lock()
            .map_err(|_| SourceError::Poisoned)?
            .take()
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Runs a round through the partition workers: each partition's records in offset
    /// order, different partitions in parallel (rayon's pool, one thread per core), since
    /// each owns its state; opportunities are serialised there too. Dead letters and
    /// opportunities are then handed on partition by partition, and the sink flushed,
    /// all under the partitions' lock (see [`Source::consume`]).
    fn process_round(
        &self,
        batch: &[BorrowedMessage<'_>],
        sink: &mut impl OpportunitySink,
        progress: &Progress,
    ) -> Result<(), SourceError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut by_partition: HashMap<(&str, i32), Vec<&BorrowedMessage<'_>>> = HashMap::new();
        for message in batch {
            by_partition
                .entry((message.topic(), message.partition()))
                .or_default()
                .push(message);
        }
        let mut workers = self.shared.workers()?;
        // A partition revoked since its records were fetched belongs to its new owner: its
        // records find no worker and are left alone.
        let mut jobs = Vec::with_capacity(by_partition.len());
        for ((topic, partition), worker) in workers.iter_mut() {
            if let Some(messages) = by_partition.remove(&(topic.as_str(), *partition)) {
                let records: Vec<KafkaRecord<'_>> = messages
                    .iter()
                    .map(|m| KafkaRecord {
                        offset: m.offset(),
                        payload: m.payload().unwrap_or_default(),
                        timestamp: m.timestamp().to_millis(),
                        key: m.key().unwrap_or_default(),
                    })
                    .collect();
                jobs.push((worker, records, messages));
            }
        }
        let run = |(worker, records, _): &mut (&mut PartitionWorker, Vec<KafkaRecord<'_>>, _)| {
            let (mut opportunities, mut dead) = (Vec::new(), Vec::new());
            worker.process(records, &mut opportunities, &mut dead);
            let serialised: Result<Vec<(Opportunity, Vec<u8>)>, serde_json::Error> = opportunities
                .into_iter()
                .map(|o| serde_json::to_vec(&o).map(|json| (o, json)))
                .collect();
            (serialised, dead)
        };
        let outputs: Vec<_> = if jobs.len() > 1 {
            use rayon::prelude::*;
            jobs.par_iter_mut().map(run).collect()
        } else {
            jobs.iter_mut().map(run).collect()
        };
        let handed_on = (|| {
            for ((_, _, messages), (opportunities, dead)) in jobs.iter().zip(outputs) {
                for letter in &dead {
                    if let Some(message) = messages.iter().find(|m| m.offset() == letter.offset) {
                        self.dead_letter(*message, letter)?;
                    }
                }
                for (opportunity, json) in
                    opportunities.map_err(|e| SourceError::Sink(Box::new(e)))?
                {
                    if let Some(topic) = &self.config.opportunities_topic {
                        self.publish_opportunity(topic, &opportunity.account_id, &json)?;
                    }
                    sink.accept(opportunity, json).map_err(SourceError::Sink)?;
                }
            }
            sink.flush().map_err(SourceError::Sink)
        })();
        if handed_on.is_err() {
            // The state has moved past what was handed on: no revocation waiting for the
            // lock may checkpoint it (see `revoke`).
            self.shared.abandoned.store(true, Ordering::SeqCst);
        }
        handed_on?;
        drop(jobs);
        drop(workers);
        Progress::note(&progress.rounds, started.elapsed());
        progress
            .consumed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Produces a rejected record's dead letter (see [`crate::dead_letter`]): its key and
    /// bytes, cut to fit if they must, and headers saying why and where from.
    fn dead_letter(&self, message: &impl Message, letter: &DeadLetter) -> Result<(), SourceError> {
        let key = message.key();
        let origin = Origin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: letter.offset,
            key: dead_letter::cut_key(key.unwrap_or_default()).to_vec(),
            reason: letter.reason.as_str(),
            detail: letter.detail.clone(),
        };
        let built = dead_letter::letter(
            &origin,
            key,
            message.payload().unwrap_or_default(),
            self.shared.letter_limit,
        );
        if built.truncated {
            let counts = &self.shared.producer.context().letters;
            counts.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let mut record = BaseRecord::with_opaque_to(
            &self.shared.dead_letter_topic,
            Box::new(Produced::Letter(origin)),
        )
        .payload(built.payload)
        .headers(owned_headers(&built.headers));
        if let Some(key) = built.key {
            record = record.key(key);
        }
        self.shared.produce(record)
    }

    /// Produces an opportunity's JSON to the opportunities topic, keyed by account.
    fn publish_opportunity(
        &self,
        topic: &str,
        account_id: &str,
        json: &[u8],
    ) -> Result<(), SourceError> {
        self.shared.produce(
            BaseRecord::with_opaque_to(topic, Box::new(Produced::Opportunity))
                .key(account_id.as_bytes())
                .payload(json),
        )
    }

    /// Checkpoints the partitions whose policy says so, then commits their offsets. Dead
    /// letters are flushed first: an offset is committed only once all it caused is safe.
    fn checkpoint_due(
        &self,
        sink: &mut impl OpportunitySink,
        progress: &Progress,
    ) -> Result<(), SourceError> {
        let now = Instant::now();
        let due: Vec<Key> = self
            .shared
            .workers()?
            .iter()
            .filter(|(_, w)| w.checkpoint_due(now, &self.config.checkpoint))
            .map(|(k, _)| k.clone())
            .collect();
        self.checkpoint(&due, sink, progress, CommitMode::Async)
    }

    fn checkpoint_all(
        &self,
        sink: &mut impl OpportunitySink,
        progress: &Progress,
    ) -> Result<(), SourceError> {
        let all: Vec<Key> = self.shared.workers()?.keys().cloned().collect();
        self.checkpoint(&all, sink, progress, CommitMode::Sync)
    }

    fn checkpoint(
        &self,
        keys: &[Key],
        sink: &mut impl OpportunitySink,
        progress: &Progress,
        commit: CommitMode,
    ) -> Result<(), SourceError> {
        if keys.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        sink.flush().map_err(SourceError::Sink)?;
        self.shared.flush_produced()?;
        let mut offsets = TopicPartitionList::new();
        {
            let mut workers = self.shared.workers()?;
            for key in keys {
                if let Some(worker) = workers.get_mut(key) {
                    if let Some(offset) = worker.checkpoint(&self.shared.store, Instant::now())? {
                        offsets.add_partition_offset(&key.0, key.1, Offset::Offset(offset))?;
                    }
                    self.shared.note_written(worker);
                }
            }
        }
        self.shared.commit(&self.consumer, &offsets, commit);
        let mut times = progress
            .checkpoints
            .lock()
            .map_err(|_| SourceError::Poisoned)?;
        times.durations.push(started.elapsed());
        times.last = Some(Instant::now());
        Ok(())
    }

    /// A handle for looking at account state from other threads (the admin API).
    pub fn inspector(&self) -> Inspector {
        Inspector {
            shared: self.shared.clone(),
        }
    }

    /// Accounts tracked by the partitions this source holds now.
    pub fn tracked_accounts(&self) -> Result<usize, SourceError> {
        Ok(self
            .shared
            .workers()?
            .values()
            .map(|w| w.engine().tracked_accounts())
            .sum())
    }

    fn stats(&self) -> Result<Stats, SourceError> {
        let mut stats = self
            .shared
            .retired
            .lock()
            .map_err(|_| SourceError::Poisoned)?
            .clone();
        for worker in self.shared.workers()?.values() {
            stats.merge(worker.stats());
        }
        Ok(stats)
    }
}

/// Kafka record headers from (name, value) pairs.
fn owned_headers(headers: &[(&str, String)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |all, (key, value)| {
            all.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = SourceConfig {
            bootstrap_servers: "broker:9093".into(),
            group_id: "radar".into(),
            topics: vec!["events".into()],
            dead_letter_topic: "events.dlq".into(),
            opportunities_topic: None,
            client: vec![
                ("sasl.password".into(), "hunter2".into()),
                ("ssl.key.pem".into(), "-----BEGIN PRIVATE KEY-----".into()),
                ("sasl.oauthbearer.client.secret".into(), "s3cr3t".into()),
                ("security.protocol".into(), "SASL_SSL".into()),
            ],
            checkpoint: CheckpointPolicy {
                every_events: 1,
                every: Duration::from_secs(1),
            },
            poll_timeout: Duration::from_millis(100),
            max_batch: 1,
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "BEGIN PRIVATE KEY", "s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("SASL_SSL") && shown.contains("[redacted]"));
    }
}
