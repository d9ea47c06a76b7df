//! Delivery's queue: its domain types ([`types`]), how they are kept in the local store
//! ([`stored`]), and the one interface the destination workers use, [`DeliveryQueue`],
//! with its two implementations:
//! - [`local::LocalQueue`] (`store = "local"`): the outbox in the store is dispatched into
//!   per-destination queues in the same store, and outcomes are written there;
//! - [`topic::TopicQueue`] (`store = "kafka"`): deliveries come from the opportunities
//!   topic, and retries and dead letters are parked on their topics (see
//!   [`crate::kafka`]); the local store is only a cache of what this instance holds.

pub mod local;
mod outbox;
pub mod stored;
pub mod topic;
pub mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, Weak};

use radar_store::Store;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

pub use stored::{DeliveryStore, StoredError};
pub use types::{Delivery, FailedDelivery, QueueKey, QueueSummary, Recent, Settlement};

use crate::clock::Clock;
use crate::error::TopicError;
use crate::observe::Observer;
use crate::settings::DeliverySettings;

/// A future a [`DeliveryQueue`] returns: boxed, so the trait is object-safe.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Recording outcomes failed; the worker tries again (the implementation has reported
/// it, logged and counted).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoredError),
    #[error(transparent)]
    Park(#[from] crate::kafka::ParkError),
}

/// What a queue's feeder needs from the service that runs it.
pub struct Feeding {
    pub settings: Arc<DeliverySettings>,
    pub observer: Arc<dyn Observer>,
    pub clock: Clock,
    /// One per destination, in the settings' order: notified when it has new deliveries.
    pub wakers: Vec<Arc<Notify>>,
    /// Notified after the source writes to the outbox (`store = "local"`).
    pub outbox_waker: Arc<Notify>,
    pub stop: watch::Receiver<bool>,
    /// How many destination workers are still running.
    pub running: Arc<AtomicUsize>,
    /// Stops the service when the feeder cannot go on (weak: the feeder must not keep
    /// open the channel that stops it).
    pub halt: Weak<watch::Sender<bool>>,
    /// Why the feeder could not go on.
    pub failed: Arc<Mutex<Option<TopicError>>>,
}

impl std::fmt::Debug for Feeding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeding").finish_non_exhaustive()
    }
}

/// Where deliveries wait and where their outcomes are recorded: everything a
/// destination worker does that depends on where the queue is.
pub trait DeliveryQueue: Send + Sync + std::fmt::Debug {
    /// The store the queues are in (a cache, with `store = "kafka"`).
    fn store(&self) -> &Arc<Store>;

    /// Readies the queues before delivery starts.
    fn open(&self) -> QueueFuture<'_, Result<(), StoredError>>;

    /// Starts what fills the queues (and keeps them durable), as tasks in `tasks`.
    fn feed(self: Arc<Self>, feeding: Feeding, tasks: &mut JoinSet<()>);

    /// Up to `limit` deliveries of `destination` due at `now_ms`, earliest first.
    fn due(
        &self,
        destination: &str,
        now_ms: u64,
        limit: usize,
    ) -> QueueFuture<'_, Result<Vec<Delivery>, StoredError>> {
        let (store, destination) = (self.store().clone(), destination.to_owned());
        Box::pin(blocking(move || {
            store.due_deliveries(&destination, now_ms, limit)
        }))
    }

    /// The deliveries `keys` of `destination` are about to be sent: the sequences of
    /// those that may go. Where another instance may take them over (`store = "kafka"`),
    /// that they are in flight is known beyond this one first, and a delivery whose
    /// partition moved away does not go. Nothing is sent while this fails (the
    /// implementation reports it).
    fn starting<'a>(
        &'a self,
        _destination: &'a str,
        keys: Vec<QueueKey>,
    ) -> QueueFuture<'a, Result<Vec<u64>, RecordError>> {
        Box::pin(async move { Ok(keys.into_iter().map(|(_, _, seq)| seq).collect()) })
    }

    /// Why a receiver disabled `destination` before this run, if one did and it lasts.
    fn disabled_before(
        &self,
        destination: &str,
    ) -> QueueFuture<'_, Result<Option<String>, StoredError>>;

    /// A receiver disabled `destination` now (`again`: it was already): says how long
    /// for, and notes it where it lasts.
    fn disable(
        &self,
        destination: &str,
        reason: &str,
        again: bool,
    ) -> QueueFuture<'_, Result<(), StoredError>>;

    /// Records `settlements` of `destination`'s deliveries, once; an outcome counts once
    /// it is recorded. A failure is reported here and returned for the caller to try
    /// again.
    fn record<'a>(
        &'a self,
        destination: &'a str,
        settlements: &'a Arc<Vec<Settlement>>,
    ) -> QueueFuture<'a, Result<(), RecordError>>;
}

/// Runs a store call off the async threads: writes wait for fsync.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Logs a failed store call that will be tried again.
pub(crate) fn report_store_error(context: &str, e: &dyn std::fmt::Display) {
    tracing::warn!(error = %e, "delivery: {context} (will try again)");
}
