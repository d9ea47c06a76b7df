//! The topic queue (`store = "kafka"`): deliveries come from the opportunities and retry
//! topics ([`crate::kafka::feed`]) into the local store, which is only a cache of what
//! this instance holds; retries and dead letters are parked on their topics, and a
//! delivery counts as settled once the broker has its outcome. A 410 disables its
//! destination for this process only: another instance does not share the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use radar_kafka::throttle::Throttle;
use radar_store::Store;
use tokio::task::JoinSet;

use super::{
    DeliveryQueue, DeliveryStore, Feeding, QueueFuture, QueueKey, RecordError, Settlement,
    StoredError, blocking, report_store_error,
};
use crate::kafka::KafkaDelivery;
use crate::observe::Observer;

/// How often a failure to park outcomes that repeats is logged, per destination.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// See the module doc.
pub struct TopicQueue {
    store: Arc<Store>,
    kafka: Arc<KafkaDelivery>,
    observer: Arc<dyn Observer>,
    /// Failures to park outcomes, logged at most every [`WARN_EVERY`] per destination.
    park_warnings: Mutex<HashMap<String, Throttle>>,
}

impl std::fmt::Debug for TopicQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicQueue")
            .field("kafka", &self.kafka)
            .finish_non_exhaustive()
    }
}

impl TopicQueue {
    pub fn new(
        store: Arc<Store>,
        kafka: Arc<KafkaDelivery>,
        observer: Arc<dyn Observer>,
    ) -> TopicQueue {
        TopicQueue {
            store,
            kafka,
            observer,
            park_warnings: Mutex::default(),
        }
    }
}

impl DeliveryQueue for TopicQueue {
    fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The local queues are a cache of what this instance holds of the topics, and it
    /// holds nothing before its partitions are assigned. (Deliveries queued by a run with
    /// `store = "local"` go too: docs/operations.md#scaling-out says to let them drain
    /// first.)
    fn open(&self) -> QueueFuture<'_, Result<(), StoredError>> {
        let store = self.store.clone();
        Box::pin(async move { Ok(blocking(move || store.clear_queues()).await?) })
    }

    fn feed(self: Arc<Self>, feeding: Feeding, tasks: &mut JoinSet<()>) {
        let (kafka, store) = (self.kafka.clone(), self.store.clone());
        tasks.spawn_blocking(move || {
            let Feeding {
                settings,
                observer,
                wakers,
                stop,
                running,
                halt,
                failed,
                ..
            } = feeding;
            if let Err(e) =
                crate::kafka::feed(kafka, store, settings, wakers, observer, stop, running)
            {
                *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                if let Some(halt) = halt.upgrade() {
                    let _ = halt.send(true);
                }
            }
        });
    }

    fn disabled_before(&self, _: &str) -> QueueFuture<'_, Result<Option<String>, StoredError>> {
        Box::pin(async { Ok(None) })
    }

    fn disable(
        &self,
        destination: &str,
        reason: &str,
        _again: bool,
    ) -> QueueFuture<'_, Result<(), StoredError>> {
        tracing::warn!(
            destination,
            reason,
            "destination disabled until this instance restarts; then `radar dlq replay --destination <it>` sends its dead letters again"
        );
        Box::pin(async { Ok(()) })
    }

    /// Parks the retries and dead letters on their topics (an outcome counts once the
    /// broker has it), then takes the deliveries out of the local queue and lets their
    /// records be committed. While a park is refused, the destination's unacknowledged
    /// outcomes show in `radar_delivery_unacknowledged`.
    fn record<'a>(
        &'a self,
        destination: &'a str,
        settlements: &'a Arc<Vec<Settlement>>,
    ) -> QueueFuture<'a, Result<(), RecordError>> {
        Box::pin(async move {
            self.observer
                .unacknowledged(destination, settlements.len() as u64);
            let landings = match self.kafka.park(settlements).await {
                Ok(landings) => landings,
                Err(e) => {
                    self.park_failed(destination, &e);
                    return Err(e.into());
                }
            };
            self.observer.unacknowledged(destination, 0);
            crate::kafka::observe_landings(self.observer.as_ref(), settlements, &landings);
            let keys: Vec<_> = settlements.iter().map(Settlement::queue_key).collect();
            let store = self.store.clone();
            if let Err(e) = blocking(move || store.remove_queued(&keys)).await {
                // Parked already: were the entries to stay, they would be sent again.
                report_store_error("taking settled deliveries out of the local queue", &e);
            }
            self.kafka.settled(settlements);
            // The ledger learns what settled now, so that another owner does not send it
            // again; if it cannot, `starting` tries before anything more is sent.
            let entries = self.kafka.in_hand().unpublished(destination);
            if let Err(e) = self.kafka.publish(entries).await {
                self.park_failed(destination, &e);
            }
            Ok(())
        })
    }

    /// Writes the destination's marks with the deliveries that may go in flight, and any
    /// change not written yet, to the settlement ledger (see [`crate::kafka::marks`]);
    /// the queue entries of deliveries whose partition moved away leave the local queue.
    fn starting<'a>(
        &'a self,
        destination: &'a str,
        keys: Vec<QueueKey>,
    ) -> QueueFuture<'a, Result<Vec<u64>, RecordError>> {
        Box::pin(async move {
            let seqs: Vec<u64> = keys.iter().map(|(_, _, seq)| *seq).collect();
            let starting = self.kafka.in_hand().starting(destination, &seqs);
            if !starting.gone.is_empty() {
                let gone: Vec<QueueKey> = keys
                    .into_iter()
                    .filter(|(_, _, seq)| starting.gone.contains(seq))
                    .collect();
                let store = self.store.clone();
                if let Err(e) = blocking(move || store.remove_queued(&gone)).await {
                    report_store_error("dropping deliveries of partitions moved away", &e);
                }
            }
            if let Err(e) = self.kafka.publish(starting.entries).await {
                self.kafka.in_hand().unstart(destination, &starting.going);
                self.park_failed(destination, &e);
                return Err(RecordError::Park(e));
            }
            Ok(self.kafka.in_hand().confirm(destination, starting.going))
        })
    }
}

impl TopicQueue {
    /// Counts a failure to write to Kafka, and logs it at most every [`WARN_EVERY`].
    fn park_failed(&self, destination: &str, e: &crate::kafka::ParkError) {
        self.observer.park_failed(destination);
        let admitted = self
            .park_warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(destination.to_owned())
            .or_insert_with(|| Throttle::new(WARN_EVERY))
            .admit(self.kafka.clock.instant());
        if let Some(held_back) = admitted {
            tracing::warn!(destination, error = %e, held_back, "delivery: writing outcomes or settlement marks to Kafka (will try again)");
        }
    }
}
