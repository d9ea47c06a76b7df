//! The Kafka source: a consumer group over the event topics, one [`PartitionWorker`] per
//! assigned partition, rejected records to the dead-letter topic, offsets committed only
//! after the checkpoint that covers them (the rule is stated once, in [`crate::shared`]).
//!
//! Round N of records is processed on rayon's pool while this thread polls round N+1
//! (see [`Source::consume`]); the rebalance callbacks ([`crate::rebalance`]) run inside
//! that poll.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radar_core::{Opportunity, Settings, Stats};
use radar_store::{Content, Store};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};

use crate::changelog::Changelog;
use crate::config::SourceConfig;
use crate::error::SourceError;
use crate::inspector::Inspector;
use crate::partition::{KafkaRecord, PartitionWorker};
use crate::producer::Producer;
use crate::progress::{Progress, Stop};
use crate::rebalance::Context;
use crate::shared::{Key, Retire, Shared};
use crate::sink::OpportunitySink;
use crate::throttle::Throttle;

/// How often a consumer error that repeats (on every poll while a broker is away) is
/// logged; each one is counted.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The running source.
pub struct Source {
    consumer: BaseConsumer<Context>,
    shared: Arc<Shared>,
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
        let mut client = ClientConfig::new();
        for (key, value) in &config.client {
            client.set(key, value);
        }
        client.set("bootstrap.servers", &config.bootstrap_servers);
        let shared = Arc::new(Shared {
            settings: Mutex::new(settings),
            pending: Mutex::new(None),
            store,
            producer: Producer::new(
                &client,
                &config.dead_letter_topic,
                config.changelog.is_some(),
            )?,
            changelog: match (&config.changelog, config.topics.as_slice()) {
                (None, _) => None,
                (Some(changelog), [source]) => Some(Changelog::open(&client, changelog, source)?),
                (Some(_), _) => {
                    return Err(SourceError::Changelog(
                        "a changelog serves exactly one source topic".into(),
                    ));
                }
            },
            workers: Mutex::new(HashMap::new()),
            lag: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Stats::default()),
            written: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            abandoned: AtomicBool::new(false),
        });
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
        let consumer: BaseConsumer<Context> = consumer_config.create_with_context(Context {
            shared: shared.clone(),
        })?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Source {
            consumer,
            shared,
            config,
            client_id,
            errors: AtomicU64::new(0),
            throttle: Mutex::new(Throttle::new(ERROR_LOG_EVERY)),
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
        if result.is_err() || stop.is_abrupt() {
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
            if stop.is_abrupt() {
                return Ok(());
            }
            if stop.is_graceful() {
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
        progress
            .consumer_errors
            .store(self.errors.load(Ordering::Relaxed), Ordering::Relaxed);
        let letters = self.shared.producer.letters();
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
        if let Some(changelog) = &self.shared.changelog {
            progress.quarantined.copy_from(changelog.quarantined());
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
        if self.shared.has_pending() {
            self.shared.switch_pending(&mut *self.shared.workers()?);
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
        let mut workers = self.shared.workers()?;
        // A partition revoked since its records were fetched belongs to its new owner: its
        // records find no worker and are left alone.
        let mut jobs = Vec::with_capacity(by_partition.len());
        for ((topic, partition), worker) in workers.iter_mut() {
            let group = by_partition
                .iter_mut()
                .find(|(key, _)| *key == (topic.as_str(), *partition));
            if let Some((_, messages)) = group {
                let messages = std::mem::take(messages);
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
        let handed_on = (|| {
            for ((_, _, messages), (opportunities, dead)) in jobs.iter().zip(outputs) {
                for letter in &dead {
                    if let Some(message) = messages.iter().find(|m| m.offset() == letter.offset) {
                        self.shared.producer.dead_letter(*message, letter)?;
                    }
                }
                for (opportunity, json) in opportunities {
                    if opportunity.shadow {
                        if let Ok(mut log) = progress.shadow.lock() {
                            log.record(&opportunity.playbook, json);
                        }
                        continue;
                    }
                    if let Some(topic) = &self.config.opportunities_topic {
                        self.shared
                            .producer
                            .opportunity(topic, &opportunity.account_id, &json)?;
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
        let mut workers = self.shared.workers()?;
        self.shared
            .checkpoint(&self.consumer, &mut workers, keys, commit, Retire::No)?;
        drop(workers);
        let mut times = progress
            .checkpoints
            .lock()
            .map_err(|_| SourceError::Poisoned)?;
        times.durations.push(started.elapsed());
        times.last = Some(Instant::now());
        Ok(())
    }

    /// The handle that switches the engine settings of the running source.
    pub fn settings_switch(&self) -> SettingsSwitch {
        SettingsSwitch {
            shared: self.shared.clone(),
        }
    }

    /// A handle for looking at account state from other threads (the admin API).
    pub fn inspector(&self) -> Inspector {
        Inspector {
            shared: self.shared.clone(),
        }
    }

    /// The group's other members, to ask for accounts this source does not hold; `None`
    /// if this instance advertises no admin address.
    pub fn peers(&self) -> Result<Option<crate::Peers>, SourceError> {
        let Some(this) = &self.client_id else {
            return Ok(None);
        };
        let mut client = ClientConfig::new();
        for (key, value) in &self.config.client {
            client.set(key, value);
        }
        client.set("bootstrap.servers", &self.config.bootstrap_servers);
        crate::Peers::new(&client, &self.config.group_id, this).map(Some)
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

/// Switches a running source to new engine settings between two poll rounds, every
/// account's state kept (hot reload). What may change live is for the caller to check
/// ([`radar_core::settings::live_change`]).
#[derive(Clone)]
pub struct SettingsSwitch {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SettingsSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsSwitch").finish_non_exhaustive()
    }
}

impl SettingsSwitch {
    /// The settings in force, or about to be: the last ones switched to.
    pub fn current(&self) -> Arc<Settings> {
        let pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        pending.unwrap_or_else(|| self.shared.settings())
    }

    /// Puts `settings` in force from the next round on.
    pub fn switch(&self, settings: Arc<Settings>) {
        *self
            .shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(settings);
    }
}
