//! [`DeliveryService`]: supervision. It starts the queue's feeder, one worker per
//! destination (so a slow or dead receiver only ever delays itself) and the queue
//! reporter, and stops them together: on `stop`, or when the feeder cannot go on.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use radar_store::Store;
use reqwest::Client;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::destination::DestinationWorker;
use super::report;
use crate::clock::Clock;
use crate::crm::CrmClient;
use crate::error::TopicError;
use crate::guard::GuardedResolver;
use crate::kafka::KafkaDelivery;
use crate::observe::Observer;
use crate::queue::local::LocalQueue;
use crate::queue::topic::TopicQueue;
use crate::queue::{DeliveryQueue, Feeding, blocking, report_store_error};
use crate::redact::Redactor;
use crate::settings::DeliverySettings;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("clearing the local delivery queues: {0}")]
    Store(crate::queue::StoredError),
    #[error("delivery from Kafka: {0}")]
    Feed(#[from] TopicError),
}

/// The delivery service over a store.
pub struct DeliveryService {
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    observer: Arc<dyn Observer>,
    outbox_waker: Arc<Notify>,
    client: Client,
    queue: Arc<dyn DeliveryQueue>,
    clock: Clock,
}

impl std::fmt::Debug for DeliveryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl DeliveryService {
    /// The service over the local queue, with its HTTP client built (a failure shows at
    /// startup).
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
            queue: Arc::new(LocalQueue::new(store.clone(), observer.clone())),
            store,
            settings: Arc::new(settings),
            observer,
            outbox_waker: Arc::new(Notify::new()),
            client,
            clock: Clock::system(),
        })
    }

    /// Delivers from the opportunities topic instead of the outbox, as a member of the
    /// delivery consumer group, parking retries and dead letters on their topics.
    pub fn over_kafka(mut self, kafka: Arc<KafkaDelivery>) -> DeliveryService {
        self.queue = Arc::new(TopicQueue::new(
            self.store.clone(),
            kafka,
            self.observer.clone(),
        ));
        self
    }

    /// Reads the time from `clock` (tests pass [`Clock::tokio`] to run on paused time).
    pub fn with_clock(mut self, clock: Clock) -> DeliveryService {
        self.clock = clock;
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
        self.queue.open().await.map_err(DeliveryError::Store)?;
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
        // Everything stops on `stop`, or when the feeder cannot go on.
        let (halt, halted) = watch::channel(false);
        let halt = Arc::new(halt);
        let failed: Arc<Mutex<Option<TopicError>>> = Arc::default();
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
            let destination = &self.settings.destinations[index];
            let worker = DestinationWorker {
                crm: CrmClient::new(
                    destination,
                    self.client.clone(),
                    self.settings.guard.clone(),
                    self.observer.clone(),
                    self.clock,
                )
                .map(Arc::new),
                redactor: Redactor::for_destination(destination),
                settings: self.settings.clone(),
                index,
                client: self.client.clone(),
                observer: self.observer.clone(),
                waker: waker.clone(),
                stop: stop.clone(),
                queue: self.queue.clone(),
                clock: self.clock,
            };
            let running = running.clone();
            tasks.spawn(async move {
                worker.run().await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        self.queue.clone().feed(
            Feeding {
                settings: self.settings.clone(),
                observer: self.observer.clone(),
                clock: self.clock,
                wakers,
                outbox_waker: self.outbox_waker.clone(),
                stop: stop.clone(),
                running,
                halt: Arc::downgrade(&halt),
                failed: failed.clone(),
            },
            &mut tasks,
        );
        tasks.spawn(report::report_queues(
            self.store.clone(),
            self.observer.clone(),
            self.clock,
            self.settings
                .destinations
                .iter()
                .map(|d| d.name.clone())
                .collect(),
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
        let failed = failed.lock().unwrap_or_else(PoisonError::into_inner).take();
        failed.map_or(Ok(()), |e| Err(DeliveryError::Feed(e)))
    }
}
