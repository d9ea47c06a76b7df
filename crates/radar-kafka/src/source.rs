//! The Kafka source: a consumer group over the event topics, one
//! [`PartitionWorker`](crate::PartitionWorker) per assigned partition, rejected records to
//! the dead-letter topic, opportunities to a sink, offsets committed only after the
//! checkpoint that covers them (the rule is stated once, in `commit`).
//!
//! One loop owns the partitions and does everything to them, in this order, round after
//! round (`Source::consume`):
//! 1. act on the rebalances librdkafka announced during the last poll
//!    (`rebalance`): restore assigned partitions (in parallel) and assign them at
//!    their checkpoints, checkpoint revoked ones and unassign them;
//! 2. process round N on rayon's pool while this thread polls round N+1, so librdkafka's
//!    queue is drained while the partitions compute;
//! 3. checkpoint the partitions whose policy says so, and publish progress.
//!
//! Nothing else touches a partition between rounds, so a checkpoint always covers exactly
//! what was handed on, by the order of the code rather than by locks and flags.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use radar_core::{Opportunity, Settings, Stats};
use radar_store::Store;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::changelog::Changelog;
use crate::commit::{Committer, Retire};
use crate::config::SourceConfig;
use crate::error::SourceError;
use crate::inspector::Inspector;
use crate::partition::KafkaRecord;
use crate::partitions::{Key, Partitions};
use crate::producer::Producer;
use crate::progress::{Progress, Stop};
use crate::rebalance::{self, Context, Lag, Rebalance};
use crate::sink::OpportunitySink;
pub use crate::switch::SettingsSwitch;
use crate::throttle::Throttle;

/// One partition's share of a round: its worker, its records, and the source mapping
/// them with a snapshot of its schemas (none: Radar's envelope).
type Job<'w, 'm> = (
    &'w mut crate::PartitionWorker,
    Vec<&'m BorrowedMessage<'m>>,
    Option<(&'w Arc<crate::MappedSource>, Arc<radar_ingest::Schemas>)>,
);

/// How often a consumer error that repeats (on every poll while a broker is away) is
/// logged; each one is counted.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The running source.
pub struct Source {
    /// The rebalances librdkafka announced, for the loop to carry out (behind a lock only
    /// because the loop's processing half runs on another thread). Declared before the
    /// consumer so that it goes first however the source is dropped (a panic unwinding
    /// included): the consumer's close then finds no one listening, and the callback
    /// gives the partitions up itself.
    rebalances: Mutex<Receiver<Rebalance>>,
    consumer: BaseConsumer<Context>,
    /// Owned by the loop; shared only with the admin API's [`Inspector`].
    partitions: Arc<Mutex<Partitions>>,
    switch: SettingsSwitch,
    store: Arc<Store>,
    /// Produces dead letters.
    producer: Producer,
    /// Where partition state lives when `store = "kafka"`.
    changelog: Option<Changelog>,
    lag: Lag,
    commits_refused: Arc<AtomicU64>,
    config: SourceConfig,
    /// The consumer's client id when it advertises an admin address ([`crate::peers`]).
    client_id: Option<String>,
    /// Consumer errors so far, and how often they are logged.
    errors: AtomicU64,
    throttle: Mutex<Throttle>,
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
        let client = config.client_config();
        let changelog = match (&config.changelog, config.topics.as_slice()) {
            (None, _) => None,
            (Some(changelog), [source]) => Some(Changelog::open(&client, changelog, source)?),
            (Some(_), _) => {
                return Err(SourceError::Changelog(
                    "a changelog serves exactly one source topic".into(),
                ));
            }
        };
        let producer = Producer::new(&client, &config.dead_letter_topic, changelog.is_some())?;
        let mut consumer_config = client.clone();
        let client_id = config.advertise.as_deref().map(crate::peers::client_id);
        if let Some(id) = &client_id {
            consumer_config.set("client.id", id);
        }
        consumer_config
            .set("group.id", &config.group_id)
            // At-least-once by construction: offsets move only after checkpoints.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        // Defaults a user may override under [kafka.client]:
        for (key, value) in [
            // Eager rebalancing: a rebalance stops every partition, but settles fastest.
            // `cooperative-sticky` moves only the partitions that must move (the others
            // carry on); with `group.instance.id` (static membership) a restart within the
            // session timeout moves nothing.
            ("partition.assignment.strategy", "range,roundrobin"),
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
        let (announce, rebalances) = mpsc::channel();
        let (lag, commits_refused) = (Lag::default(), Arc::new(AtomicU64::new(0)));
        let consumer: BaseConsumer<Context> = consumer_config.create_with_context(Context {
            rebalances: announce,
            lag: lag.clone(),
            commits_refused: commits_refused.clone(),
        })?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Source {
            consumer,
            rebalances: Mutex::new(rebalances),
            partitions: Arc::new(Mutex::new(Partitions::new(settings.clone()))),
            switch: SettingsSwitch::new(settings),
            store,
            producer,
            changelog,
            lag,
            commits_refused,
            config,
            client_id,
            errors: AtomicU64::new(0),
            throttle: Mutex::new(Throttle::new(ERROR_LOG_EVERY)),
        })
    }

    /// Consumes until `stop` says so; opportunities go to `sink` in each partition's order.
    /// Returns the counts of every partition this source processed. On an error, or an
    /// abrupt stop, nothing more is checkpointed or committed: the restart redoes the work
    /// from the last checkpoint.
    pub fn run(
        self,
        stop: &Stop,
        progress: &Progress,
        sink: &mut impl OpportunitySink,
    ) -> Result<Stats, SourceError> {
        let consumed = self.consume(stop, progress, sink);
        let stats = self.partitions()?.stats();
        // Revocations the loop did not carry out (it stopped, or failed, first) are given
        // up unwritten: librdkafka cannot close until they are.
        let pending: Vec<Rebalance> = self
            .rebalances
            .lock()
            .map_err(|_| SourceError::Poisoned)?
            .try_iter()
            .collect();
        for rebalance in pending {
            if let Rebalance::Revoke { partitions, .. } = rebalance
                && let Err(e) = rebalance::unassign(&self.consumer, &rebalance::list(&partitions))
            {
                tracing::warn!(error = %e, "giving up partitions after the source stopped");
            }
        }
        // The loop stops listening before the consumer closes: closing revokes every
        // partition, and the callback then gives them up itself, unwritten
        // ([`crate::rebalance`]).
        let Source {
            consumer,
            rebalances,
            ..
        } = self;
        drop(rebalances);
        drop(consumer);
        consumed.map(|()| stats)
    }

    /// The loop (see the module's documentation). Returns at a stop, or at the first error.
    fn consume(
        &self,
        stop: &Stop,
        progress: &Progress,
        sink: &mut impl OpportunitySink,
    ) -> Result<(), SourceError> {
        let mut batch = self.poll_round(self.config.poll_timeout)?;
        loop {
            if stop.is_abrupt() {
                return Ok(());
            }
            self.rebalance(sink, progress, stop)?;
            // A stop while the registry does not answer leaves the round unprocessed:
            // its records are read again after the restart. Rebalances announced while it
            // waited are carried out before the round, so no revoked partition's records
            // are processed.
            let settled = self.settle_schemas(&batch, stop)?;
            if settled {
                self.rebalance(sink, progress, stop)?;
            }
            if stop.is_graceful() || !settled {
                if settled {
                    self.process_round(&batch, sink, progress)?;
                }
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
        let all: Vec<Key> = self.partitions()?.workers.keys().cloned().collect();
        self.checkpoint(&all, sink, progress, CommitMode::Sync)?;
        self.publish(progress)
    }

    /// Carries out the rebalances announced since the last call, in order, one at a time
    /// (one that fails leaves the others announced, for [`Source::run`] to give up). When
    /// stopping, assignments are left to the consumer's close, which undoes them: no use
    /// restoring partitions to let them go.
    fn rebalance(
        &self,
        sink: &mut impl OpportunitySink,
        progress: &Progress,
        stop: &Stop,
    ) -> Result<(), SourceError> {
        loop {
            let next = self
                .rebalances
                .lock()
                .map_err(|_| SourceError::Poisoned)?
                .try_recv();
            let Ok(rebalance) = next else {
                return Ok(());
            };
            let mut partitions = self.partitions()?;
            match rebalance {
                Rebalance::Assign(_) if stop.is_graceful() || stop.is_abrupt() => {}
                Rebalance::Assign(keys) => {
                    let resume = partitions.restore(&keys, &self.store, self.changelog.as_ref())?;
                    let mut positioned = TopicPartitionList::with_capacity(resume.len());
                    for ((topic, partition), at) in resume {
                        // Without a checkpoint there is no state: rebuild it from the
                        // start of the partition, not from the group's committed offset.
                        let offset = at.map_or(Offset::Beginning, Offset::Offset);
                        positioned.add_partition_offset(&topic, partition, offset)?;
                    }
                    rebalance::assign(&self.consumer, &positioned)?;
                }
                Rebalance::Revoke {
                    partitions: keys,
                    lost,
                } => {
                    // Lost, not handed over: another member owns them now. Nothing more
                    // is written or committed for them; records already fetched for them
                    // find no worker, and their state, which may be behind the new
                    // owner's, goes.
                    let checkpointed = if lost {
                        Ok(())
                    } else {
                        self.committer(progress).checkpoint(
                            &mut partitions,
                            &keys,
                            sink,
                            CommitMode::Sync,
                            Retire::Yes,
                        )
                    };
                    // Whatever the checkpoint did, the partitions go: librdkafka cannot
                    // move on (nor close) until they do.
                    for key in &keys {
                        partitions.retire(key);
                    }
                    rebalance::unassign(&self.consumer, &rebalance::list(&keys))?;
                    checkpointed?;
                }
            }
        }
    }

    /// A round of records: waits up to `timeout` for one, then takes what is already
    /// fetched, up to `max_batch`.
    fn poll_round(&self, timeout: Duration) -> Result<Vec<BorrowedMessage<'_>>, SourceError> {
        let max_batch = self.config.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch);
        let mut timeout = timeout;
        while batch.len() < max_batch {
            match self.consumer.poll(timeout) {
                Some(Ok(message)) => batch.push(message),
                // Consumer errors (a topic not created yet, a broker away) are reported
                // and retried by librdkafka; stopping on them would only restart into
                // them.
                Some(Err(e)) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    let admitted = self
                        .throttle
                        .lock()
                        .map_err(|_| SourceError::Poisoned)?
                        .admit(Instant::now());
                    if let Some(held_back) = admitted {
                        tracing::warn!(error = %e, held_back, "consuming");
                    }
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

    /// The source mapping `topic`'s records, if one does.
    fn mapped(&self, topic: &str) -> Option<&Arc<crate::MappedSource>> {
        self.config
            .mapped
            .iter()
            .find(|(mapped, _)| mapped == topic)
            .map(|(_, source)| source)
    }

    /// Settles the writer schemas the round's mapped records need (see
    /// [`crate::mapped`]); `false` when a stop came first.
    fn settle_schemas(
        &self,
        batch: &[BorrowedMessage<'_>],
        stop: &Stop,
    ) -> Result<bool, SourceError> {
        let limit = crate::mapped::wait_limit(&self.config.client_config());
        crate::mapped::settle_round(&self.config.mapped, batch, stop, limit)
    }

    /// Copies the counts watchers read into `progress`.
    fn publish(&self, progress: &Progress) -> Result<(), SourceError> {
        let mut partitions = self.partitions()?;
        progress
            .partitions
            .store(partitions.workers.len() as u64, Ordering::Relaxed);
        progress
            .tracked_accounts
            .store(partitions.tracked_accounts() as u64, Ordering::Relaxed);
        *progress.stats.lock().map_err(|_| SourceError::Poisoned)? = partitions.stats();
        let written = partitions.take_written();
        drop(partitions);
        let lag = self.lag.lock().map_err(|_| SourceError::Poisoned)?.clone();
        *progress.lag.lock().map_err(|_| SourceError::Poisoned)? = lag;
        progress
            .consumer_errors
            .store(self.errors.load(Ordering::Relaxed), Ordering::Relaxed);
        progress.commits_refused.store(
            self.commits_refused.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let letters = self.producer.letters();
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
        if let Some(changelog) = &self.changelog {
            progress.quarantined.copy_from(changelog.quarantined());
        }
        let mut checkpoints = progress
            .checkpoints
            .lock()
            .map_err(|_| SourceError::Poisoned)?;
        let room = Progress::KEPT.saturating_sub(checkpoints.written.len());
        checkpoints.written.extend(written.into_iter().take(room));
        Ok(())
    }

    /// Runs a round through the partition workers: each partition's records in offset
    /// order, different partitions in parallel (rayon's pool, one thread per core), since
    /// each owns its state; opportunities are serialised there too. Dead letters are then
    /// produced and opportunities handed to the sink partition by partition, and the sink
    /// flushed.
    fn process_round(
        &self,
        batch: &[BorrowedMessage<'_>],
        sink: &mut impl OpportunitySink,
        progress: &Progress,
    ) -> Result<(), SourceError> {
        let mut partitions = self.partitions()?;
        if let Some(settings) = self.switch.take_pending() {
            partitions.switch(settings);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        // With one subscribed topic (not a `^` pattern) every record is of it, and its name
        // is not read from each record (a call into librdkafka and a UTF-8 check).
        let only_topic = match self.config.topics.as_slice() {
            [topic] if !topic.starts_with('^') => Some(topic.as_str()),
            _ => None,
        };
        let mut by_partition = crate::round::group_runs(batch, |message| {
            (
                only_topic.unwrap_or_else(|| message.topic()),
                message.partition(),
            )
        });
        // A partition revoked since its records were fetched belongs to its new owner: its
        // records find no worker and are left alone.
        let mut jobs = Vec::with_capacity(by_partition.len());
        for ((topic, partition), worker) in partitions.workers.iter_mut() {
            let group = by_partition
                .iter_mut()
                .find(|(key, _)| *key == (topic.as_str(), *partition));
            if let Some((_, messages)) = group {
                let messages = std::mem::take(messages);
                let mapped = self.mapped(topic).map(|source| (source, source.schemas()));
                jobs.push((worker, messages, mapped));
            }
        }
        let run = |(worker, messages, mapped): &mut Job<'_, '_>| {
            let reads_headers = mapped
                .as_ref()
                .is_some_and(|(source, _)| source.source.reads_headers());
            let headers: Vec<Vec<(&str, &[u8])>> = messages
                .iter()
                .map(|m| {
                    if reads_headers {
                        crate::mapped::headers(m)
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            let records: Vec<KafkaRecord<'_>> = messages
                .iter()
                .zip(&headers)
                .map(|(m, headers)| KafkaRecord {
                    offset: m.offset(),
                    payload: m.payload().unwrap_or_default(),
                    timestamp: m.timestamp().to_millis(),
                    key: m.key().unwrap_or_default(),
                    headers,
                })
                .collect();
            let (mut opportunities, mut dead) = (Vec::new(), Vec::new());
            let mapped = mapped
                .as_ref()
                .map(|(source, schemas)| (&*source.source, &**schemas));
            worker.process_mapped(&records, mapped, &mut opportunities, &mut dead);
            let serialised: Vec<(Opportunity, Vec<u8>)> = opportunities
                .into_iter()
                .map(|o| {
                    let json = o.to_json();
                    (o, json)
                })
                .collect();
            (serialised, dead)
        };
        let outputs: Vec<_> = if jobs.len() > 1 {
            use rayon::prelude::*;
            jobs.par_iter_mut().map(run).collect()
        } else {
            jobs.iter_mut().map(run).collect()
        };
        for ((_, messages, _), (opportunities, dead)) in jobs.iter().zip(outputs) {
            for letter in &dead {
                if let Some(message) = messages.iter().find(|m| m.offset() == letter.offset) {
                    self.producer.dead_letter(*message, letter)?;
                }
            }
            for (opportunity, json) in opportunities {
                sink.accept(opportunity, json).map_err(SourceError::Sink)?;
            }
        }
        sink.flush().map_err(SourceError::Sink)?;
        drop(jobs);
        drop(partitions);
        Progress::note(&progress.rounds, started.elapsed());
        progress
            .consumed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Checkpoints the partitions whose policy says so, then commits their offsets.
    fn checkpoint_due(
        &self,
        sink: &mut impl OpportunitySink,
        progress: &Progress,
    ) -> Result<(), SourceError> {
        let now = Instant::now();
        let due: Vec<Key> = self
            .partitions()?
            .workers
            .iter()
            .filter(|(_, w)| w.checkpoint_due(now, &self.config.checkpoint))
            .map(|(k, _)| k.clone())
            .collect();
        self.checkpoint(&due, sink, progress, CommitMode::Async)
    }

    /// Checkpoints the partitions `keys`, which stay, and notes how long it took.
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
        self.committer(progress).checkpoint(
            &mut *self.partitions()?,
            keys,
            sink,
            commit,
            Retire::No,
        )?;
        let mut times = progress
            .checkpoints
            .lock()
            .map_err(|_| SourceError::Poisoned)?;
        times.durations.push(started.elapsed());
        times.last = Some(Instant::now());
        Ok(())
    }

    fn committer<'a>(&'a self, progress: &'a Progress) -> Committer<'a> {
        Committer {
            progress,
            consumer: &self.consumer,
            producer: &self.producer,
            store: &self.store,
            changelog: self.changelog.as_ref(),
        }
    }

    fn partitions(&self) -> Result<MutexGuard<'_, Partitions>, SourceError> {
        self.partitions.lock().map_err(|_| SourceError::Poisoned)
    }

    /// The handle that switches the engine settings of the running source.
    pub fn settings_switch(&self) -> SettingsSwitch {
        self.switch.clone()
    }

    /// A handle for looking at account state from other threads (the admin API).
    pub fn inspector(&self) -> Inspector {
        Inspector {
            partitions: self.partitions.clone(),
        }
    }

    /// The group's other members, to ask for accounts this source does not hold; `None`
    /// if this instance advertises no admin address.
    pub fn peers(&self) -> Result<Option<crate::Peers>, SourceError> {
        let Some(this) = &self.client_id else {
            return Ok(None);
        };
        crate::Peers::new(&self.config.client_config(), &self.config.group_id, this).map(Some)
    }

    /// Accounts tracked by the partitions this source holds now.
    pub fn tracked_accounts(&self) -> Result<usize, SourceError> {
        Ok(self.partitions()?.tracked_accounts())
    }
}
