//! The delivery runtime: a dispatcher that moves the outbox into per-destination queues,
//! and one task per destination that sends what is due, so a slow or dead receiver only
//! ever delays itself. Every outcome is written back to the store before it counts:
//! delivered entries leave the queue, retries wait there with a due time, and the rest
//! go to the dead-letter store. A crash at any point re-sends at most what was in
//! flight, under the same `webhook-id`.
//!
//! Beside it: `outbox` (the dispatcher, and syncing the store), `record` (writing
//! outcomes to the store or to Kafka, counted once written) and `report` (the queues'
//! metrics, from a task of their own).

mod outbox;
mod record;
mod report;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use radar_core::Opportunity;
use radar_kafka::throttle::Throttle;
use radar_store::{Delivery, Settlement, Store, StoreError};
use reqwest::Client;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::breaker::{Breaker, BreakerState};
use crate::crm::CrmClient;
use crate::guard::GuardedResolver;
use crate::http::{self, now_ms, wall_clock};
use crate::kafka::KafkaDelivery;
use crate::observe::Observer;
use crate::outcome::{DestinationState, after_call, dead};
use crate::payload;
use crate::rate::TokenBucket;
use crate::redact::Redactor;
use crate::retry::AttemptResult;
use crate::settings::{DeliverySettings, Destination};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("clearing the local delivery queues: {0}")]
    Store(StoreError),
    #[error("delivery from Kafka: {0}")]
    Feed(String),
}

/// The delivery service over a store.
pub struct DeliveryService {
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    observer: Arc<dyn Observer>,
    outbox_waker: Arc<Notify>,
    client: Client,
    /// With `store = "kafka"`: deliveries come from the opportunities topic, and retries
    /// and dead letters are parked on topics (see [`crate::kafka`]).
    kafka: Option<Arc<KafkaDelivery>>,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How long a destination lets its in-flight requests finish when asked to stop.
const DRAIN: Duration = Duration::from_secs(5);
const OUTBOX_BATCH: usize = 512;
/// How often the breaker's state is reported.
const REPORT_EVERY_MS: u64 = 1_000;

impl DeliveryService {
    /// The service, with its HTTP client built (a failure shows at startup).
    pub fn new(
        store: Arc<Store>,
        settings: DeliverySettings,
        observer: Arc<dyn Observer>,
    ) -> Result<DeliveryService, DeliveryError> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver(Arc::new(settings.guard.clone()))))
            .no_proxy()
            .user_agent(concat!("radar/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(DeliveryService {
            store,
            settings: Arc::new(settings),
            observer,
            outbox_waker: Arc::new(Notify::new()),
            client,
            kafka: None,
        })
    }

    /// Delivers from the opportunities topic instead of the outbox, as a member of the
    /// delivery consumer group, parking retries and dead letters on their topics.
    pub fn over_kafka(mut self, kafka: Arc<KafkaDelivery>) -> DeliveryService {
        self.kafka = Some(kafka);
        self
    }

    /// Notify it after writing to the outbox to have the entries dispatched at once
    /// rather than at the next poll.
    pub fn outbox_waker(&self) -> Arc<Notify> {
        self.outbox_waker.clone()
    }

    /// Delivers until `stop` turns true, then lets in-flight requests finish (for up to
    /// a few seconds) and records their outcome.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), DeliveryError> {
        let unsynced = Arc::new(AtomicBool::new(false));
        let store = self.store.clone();
        if self.kafka.is_some() {
            // The local queues are a cache of what this instance holds of the topics, and
            // it holds nothing before its partitions are assigned. (Deliveries queued by a
            // run with `store = "local"` go too: README says to let them drain first.)
            blocking(move || store.clear_queues())
                .await
                .map_err(DeliveryError::Store)?;
        }
        let store = self.store.clone();
        if let Ok(queued) = blocking(move || store.queued_destinations()).await {
            for name in queued {
                if !self.settings.destinations.iter().any(|d| d.name == name) {
                    tracing::warn!(
                        destination = %name,
                        "deliveries are queued for a destination no longer configured; they wait until it is again"
                    );
                }
            }
        }
        let wakers: Vec<Arc<Notify>> = self
            .settings
            .destinations
            .iter()
            .map(|_| Arc::new(Notify::new()))
            .collect();
        // Everything stops on `stop`, or when delivery from Kafka cannot go on.
        let (halt, halted) = watch::channel(false);
        let halt = Arc::new(halt);
        let failed: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        {
            let (mut stop, mut halting, halt) = (stop.clone(), halted.clone(), halt.clone());
            tasks.spawn(async move {
                while !*stop.borrow() && !*halting.borrow() {
                    tokio::select! {
                        changed = stop.changed() => if changed.is_err() { break },
                        _ = halting.changed() => {}
                    }
                }
                let _ = halt.send(true);
            });
        }
        let stop = halted;
        let running = Arc::new(AtomicUsize::new(wakers.len()));
        for (index, waker) in wakers.iter().enumerate() {
            let crm = CrmClient::new(
                &self.settings.destinations[index],
                self.client.clone(),
                self.settings.guard.clone(),
                self.observer.clone(),
            )
            .map(Arc::new);
            let worker = DestinationWorker {
                crm,
                redactor: Redactor::for_destination(&self.settings.destinations[index]),
                store: self.store.clone(),
                settings: self.settings.clone(),
                index,
                client: self.client.clone(),
                observer: self.observer.clone(),
                waker: waker.clone(),
                unsynced: unsynced.clone(),
                stop: stop.clone(),
                kafka: self.kafka.clone(),
                park_warnings: Mutex::new(Throttle::new(record::WARN_EVERY)),
            };
            let running = running.clone();
            tasks.spawn(async move {
                worker.run().await;
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        match &self.kafka {
            Some(kafka) => {
                let (kafka, store) = (kafka.clone(), self.store.clone());
                let (settings, stop) = (self.settings.clone(), stop.clone());
                // Weak: the feed's thread must not keep the channel that stops it open
                // once the service is gone (see `kafka::feed`).
                let (halt, failed) = (Arc::downgrade(&halt), failed.clone());
                let observer = self.observer.clone();
                tasks.spawn_blocking(move || {
                    if let Err(e) =
                        crate::kafka::feed(kafka, store, settings, wakers, observer, stop, running)
                    {
                        *failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        if let Some(halt) = halt.upgrade() {
                            let _ = halt.send(true);
                        }
                    }
                });
            }
            None => {
                tasks.spawn(outbox::dispatch(
                    self.store.clone(),
                    self.settings.clone(),
                    self.outbox_waker.clone(),
                    wakers,
                    unsynced.clone(),
                    stop.clone(),
                ));
            }
        }
        tasks.spawn(report::report_queues(
            self.store.clone(),
            self.observer.clone(),
            self.settings
                .destinations
                .iter()
                .map(|d| d.name.clone())
                .collect(),
            stop.clone(),
        ));
        tasks.spawn(outbox::sync_periodically(
            self.store.clone(),
            unsynced,
            stop,
        ));
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        // Outcomes are committed without fsync; make the last ones durable, so a clean
        // stop sends nothing twice.
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.sync()).await {
            report_store_error("syncing delivery outcomes", &e);
        }
        let failed = failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        failed.map_or(Ok(()), |e| Err(DeliveryError::Feed(e)))
    }
}

/// Runs a store call off the async threads: writes wait for fsync.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn report_store_error(context: &str, e: &StoreError) {
    tracing::warn!(error = %e, "delivery: {context} (will try again)");
}

struct DestinationWorker {
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    index: usize,
    client: Client,
    observer: Arc<dyn Observer>,
    waker: Arc<Notify>,
    /// Set when the store has delivery writes that are not durable yet.
    unsynced: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
    kafka: Option<Arc<KafkaDelivery>>,
    /// Set for a CRM destination: its deliveries are sent in batches by this client.
    crm: Option<Arc<CrmClient>>,
    /// Takes the destination's secrets out of every reason before it is stored or logged.
    redactor: Redactor,
    /// Failures to record outcomes on Kafka, logged at most every [`record::WARN_EVERY`].
    park_warnings: Mutex<Throttle>,
}

type Attempted = (Delivery, AttemptResult);

/// What a destination's loop keeps between rounds.
struct Sending {
    /// The breaker and the pause, which [`after_call`] decides on.
    state: DestinationState,
    bucket: Option<TokenBucket>,
    /// Each task attempts one delivery, or a batch of them for a CRM.
    in_flight: JoinSet<Vec<Attempted>>,
    /// The outbox sequences each running task is for, so a task that dies still
    /// releases its deliveries.
    seqs: HashMap<tokio::task::Id, Vec<u64>>,
    /// Set by a 410, now or before a restart (the store keeps it): every delivery goes to
    /// the dead-letter store unattempted, until `radar dlq replay` enables it again.
    disabled: Option<String>,
}

impl DestinationWorker {
    fn destination(&self) -> &Destination {
        &self.settings.destinations[self.index]
    }

    async fn run(self) {
        let destination = self.destination().clone();
        let mut stop = self.stop.clone();
        let mut sending = Sending {
            state: DestinationState {
                breaker: Breaker::new(
                    self.settings.breaker_failures,
                    self.settings.breaker_cooldown,
                ),
                paused_until_ms: 0,
            },
            bucket: destination
                .rate_limit
                .map(|rate| TokenBucket::new(rate, now_ms())),
            in_flight: JoinSet::new(),
            seqs: HashMap::new(),
            disabled: self.disabled_before().await,
        };
        let mut reported_ms = 0;
        self.observer.known(&destination.name);
        while !*stop.borrow() {
            let now = now_ms();
            if now.saturating_sub(reported_ms) >= REPORT_EVERY_MS {
                reported_ms = now;
                self.observer
                    .breaker(&destination.name, sending.state.breaker.state(now));
            }
            let wait = self.start_due(&destination, &mut sending, now).await;
            tokio::select! {
                Some(joined) = sending.in_flight.join_next_with_id(), if !sending.in_flight.is_empty() => {
                    let mut done = vec![joined];
                    while let Some(more) = sending.in_flight.try_join_next_with_id() {
                        done.push(more);
                    }
                    let done = self.collect(done, &mut sending);
                    self.settle(done, &mut sending).await;
                }
                _ = self.waker.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        // Stopping: let what is in flight finish, within bounds, and record it. Anything
        // cut off stays queued and is sent again at the next start.
        let mut done = Vec::new();
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(joined) = sending.in_flight.join_next_with_id().await {
                done.push(joined);
            }
        })
        .await;
        let done = self.collect(done, &mut sending);
        self.settle(done, &mut sending).await;
        self.observer
            .breaker(&destination.name, sending.state.breaker.state(now_ms()));
    }

    /// Starts the attempts that are due and allowed (breaker, pause, rate limit, in-flight
    /// bound); returns how long to wait at most before looking again.
    async fn start_due(
        &self,
        destination: &Destination,
        sending: &mut Sending,
        now: u64,
    ) -> Duration {
        let mut wait = self.settings.poll_interval;
        if now < sending.state.paused_until_ms {
            return wait.min(Duration::from_millis(sending.state.paused_until_ms - now));
        }
        let free = destination
            .max_in_flight
            .saturating_sub(sending.in_flight.len());
        if free == 0 {
            return wait;
        }
        // A probe (half-open breaker) risks one delivery, not a batch.
        let batch = match self.crm.as_ref() {
            Some(crm) if sending.state.breaker.state(now) == BreakerState::Closed => {
                crm.batch_size()
            }
            _ => 1,
        };
        let due = {
            let (store, name) = (self.store.clone(), destination.name.clone());
            let running: usize = sending.seqs.values().map(Vec::len).sum();
            let limit = destination.max_in_flight * batch + running;
            blocking(move || store.due_deliveries(&name, now, limit)).await
        };
        let due: Vec<Delivery> = match due {
            Ok(due) => {
                let running: HashSet<u64> = sending.seqs.values().flatten().copied().collect();
                due.into_iter()
                    .filter(|d| !running.contains(&d.seq))
                    .take(free * batch)
                    .collect()
            }
            Err(e) => {
                report_store_error("reading the queue", &e);
                Vec::new()
            }
        };
        if let Some(reason) = sending.disabled.clone() {
            self.dead_letter_all(due, &reason).await;
            return wait;
        }
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            if sending.state.breaker.admit(now, 1) == 0 {
                break;
            }
            if let Some(bucket) = &mut sending.bucket
                && let Err(ms) = bucket.take(now)
            {
                sending.state.breaker.release_probe();
                wait = wait.min(Duration::from_millis(ms));
                break;
            }
            let deliveries: Vec<Delivery> = due.by_ref().take(batch).collect();
            let seqs = deliveries.iter().map(|d| d.seq).collect();
            let span = tracing::debug_span!(
                "attempt",
                destination = %destination.name,
                attempt = deliveries.first().map_or(0, |d| d.attempts + 1),
                deliveries = deliveries.len(),
            );
            let task = match &self.crm {
                Some(crm) => {
                    let crm = crm.clone();
                    sending.in_flight.spawn(
                        async move {
                            let done = crm.deliver(deliveries).await;
                            for (_, result) in &done {
                                tracing::debug!(result = result.label(), "attempted");
                            }
                            done
                        }
                        .instrument(span),
                    )
                }
                None => {
                    let (client, target) = (self.client.clone(), destination.clone());
                    let guard = self.settings.guard.clone();
                    sending.in_flight.spawn(
                        async move {
                            let mut done = Vec::with_capacity(deliveries.len());
                            for delivery in deliveries {
                                let result = attempt(&client, &target, &guard, &delivery).await;
                                tracing::debug!(result = result.label(), "attempted");
                                done.push((delivery, result));
                            }
                            done
                        }
                        .instrument(span),
                    )
                }
            };
            sending.seqs.insert(task.id(), seqs);
        }
        wait
    }

    /// The finished calls, each with its deliveries' results; a task that died (it should
    /// not) frees its deliveries, which stay queued and are tried again.
    fn collect(
        &self,
        joined: Vec<Result<(tokio::task::Id, Vec<Attempted>), tokio::task::JoinError>>,
        sending: &mut Sending,
    ) -> Vec<Vec<Attempted>> {
        let mut done = Vec::with_capacity(joined.len());
        for result in joined {
            match result {
                Ok((id, attempted)) => {
                    sending.seqs.remove(&id);
                    done.push(attempted);
                }
                Err(e) => {
                    sending.seqs.remove(&e.id());
                    sending.state.breaker.release_probe();
                    tracing::error!(
                        destination = %self.destination().name,
                        error = %e,
                        "a delivery attempt ended abnormally; it stays queued"
                    );
                }
            }
        }
        done
    }

    /// Whether a receiver disabled this destination before this run.
    async fn disabled_before(&self) -> Option<String> {
        // With `store = "kafka"` a 410 disables the destination for this process only:
        // the local store is a cache another instance does not share.
        if self.kafka.is_some() {
            return None;
        }
        let (store, name) = (self.store.clone(), self.destination().name.clone());
        match blocking(move || store.disabled_reason(&name)).await {
            Ok(Some(reason)) => {
                // Noted by an earlier version, perhaps before reasons were redacted.
                let reason = self.redactor.redact(&reason);
                tracing::warn!(
                    destination = %self.destination().name,
                    %reason,
                    "destination stays disabled; `radar dlq replay --destination <it>` enables it again"
                );
                Some(reason)
            }
            Ok(None) => None,
            Err(e) => {
                report_store_error("reading disabled destinations", &e);
                None
            }
        }
    }

    async fn dead_letter_all(&self, due: Vec<Delivery>, reason: &str) {
        let now = now_ms();
        let settlements: Vec<Settlement> = due
            .into_iter()
            .map(|delivery| dead(delivery, now, format!("not attempted: {reason}")))
            .collect();
        self.write(settlements).await;
    }

    async fn settle(&self, done: Vec<Vec<Attempted>>, sending: &mut Sending) {
        if done.is_empty() {
            return;
        }
        let name = &self.destination().name;
        let now = now_ms();
        let mut outcomes = Vec::new();
        for call in done {
            for (_, result) in &call {
                if !matches!(result, AttemptResult::Deferred(_)) {
                    self.observer.attempt(name, result.label());
                }
            }
            outcomes.extend(after_call(
                &self.settings.policy,
                &mut sending.state,
                call,
                now,
                &mut rand::random::<f64>,
            ));
        }
        let mut settlements = Vec::with_capacity(outcomes.len());
        for mut outcome in outcomes {
            self.redactor.outcome(&mut outcome);
            if let Settlement::Delivered(delivery) = &outcome.settlement {
                self.observer.delivered(
                    name,
                    Duration::from_millis(now.saturating_sub(delivery.created_ms)),
                );
            }
            if let Some(reason) = outcome.disable {
                if self.kafka.is_some() {
                    tracing::warn!(
                        destination = %name,
                        %reason,
                        "destination disabled until this instance restarts; then `radar dlq replay --destination <it>` sends its dead letters again"
                    );
                } else {
                    tracing::warn!(
                        destination = %name,
                        %reason,
                        "destination disabled; `radar dlq replay --destination <it>` enables it again"
                    );
                }
                if sending.disabled.is_none() && self.kafka.is_none() {
                    let (store, name, why) = (self.store.clone(), name.clone(), reason.clone());
                    if let Err(e) = blocking(move || store.disable_destination(&name, &why)).await {
                        report_store_error("noting the destination disabled", &e);
                    }
                }
                sending.disabled = Some(reason);
            }
            settlements.push(outcome.settlement);
        }
        self.write(settlements).await;
    }
}

/// One HTTP attempt of a single-request destination, classified.
async fn attempt(
    client: &Client,
    destination: &Destination,
    guard: &crate::guard::Guard,
    delivery: &Delivery,
) -> AttemptResult {
    let opportunity: Opportunity = match serde_json::from_slice(&delivery.opportunity) {
        Ok(o) => o,
        Err(e) => {
            return AttemptResult::Unsendable(format!(
                "the stored opportunity does not decode: {e}"
            ));
        }
    };
    let request = match payload::build(
        destination,
        &opportunity,
        &delivery.opportunity,
        wall_clock(),
    ) {
        Ok(request) => request,
        Err(e) => return AttemptResult::Unsendable(e),
    };
    match http::send(client, guard, destination.timeout, request, false).await {
        Ok(answer) => answer.result(),
        Err(result) => result,
    }
}
