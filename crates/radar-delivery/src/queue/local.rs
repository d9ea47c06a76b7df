//! The local queue (`store = "local"`): the outbox in the store is dispatched into
//! per-destination queues in the same store ([`super::outbox`]), retries wait there with
//! their due time, and the rest go to the dead-letter store. Writes commit without an
//! fsync and are made durable at least every [`SYNC_EVERY`], or with the source's next
//! checkpoint. A receiver that answers 410 disables its destination across restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use radar_store::Store;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{
    DeliveryQueue, DeliveryStore, Feeding, QueueFuture, RecordError, Settlement, StoredError,
    blocking, report_store_error,
};
use crate::observe::Observer;

/// How often delivery's non-durable writes are made durable while it works.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// See the module doc.
pub struct LocalQueue {
    store: Arc<Store>,
    /// Set when the store has delivery writes that are not durable yet.
    unsynced: Arc<AtomicBool>,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue").finish_non_exhaustive()
    }
}

impl LocalQueue {
    pub fn new(store: Arc<Store>, observer: Arc<dyn Observer>) -> LocalQueue {
        LocalQueue {
            store,
            unsynced: Arc::new(AtomicBool::new(false)),
            observer,
        }
    }
}

impl DeliveryQueue for LocalQueue {
    fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn open(&self) -> QueueFuture<'_, Result<(), StoredError>> {
        Box::pin(async { Ok(()) })
    }

    fn feed(self: Arc<Self>, feeding: Feeding, tasks: &mut JoinSet<()>) {
        tasks.spawn(super::outbox::dispatch(
            self.store.clone(),
            feeding.settings,
            feeding.clock,
            feeding.outbox_waker,
            feeding.wakers,
            self.unsynced.clone(),
            feeding.stop.clone(),
        ));
        tasks.spawn(sync_periodically(
            self.store.clone(),
            self.unsynced.clone(),
            feeding.stop,
        ));
    }

    fn disabled_before(
        &self,
        destination: &str,
    ) -> QueueFuture<'_, Result<Option<String>, StoredError>> {
        let (store, name) = (self.store.clone(), destination.to_owned());
        Box::pin(async move { Ok(blocking(move || store.disabled_reason(&name)).await?) })
    }

    fn disable(
        &self,
        destination: &str,
        reason: &str,
        again: bool,
    ) -> QueueFuture<'_, Result<(), StoredError>> {
        tracing::warn!(
            destination,
            reason,
            "destination disabled; `radar dlq replay --destination <it>` enables it again"
        );
        let (store, name, why) = (
            self.store.clone(),
            destination.to_owned(),
            reason.to_owned(),
        );
        Box::pin(async move {
            if !again {
                blocking(move || store.disable_destination(&name, &why)).await?;
            }
            Ok(())
        })
    }

    fn record<'a>(
        &'a self,
        destination: &'a str,
        settlements: &'a Arc<Vec<Settlement>>,
    ) -> QueueFuture<'a, Result<(), RecordError>> {
        Box::pin(async move {
            let (store, batch) = (self.store.clone(), settlements.clone());
            match blocking(move || store.settle(&batch)).await {
                Ok(()) => {
                    self.unsynced.store(true, Ordering::SeqCst);
                    for settlement in settlements.iter() {
                        if matches!(settlement, Settlement::DeadLettered { .. }) {
                            self.observer.dead_lettered(destination);
                        }
                    }
                    Ok(())
                }
                Err(e) => {
                    report_store_error("recording delivery outcomes", &e);
                    Err(e.into())
                }
            }
        })
    }
}

/// Makes delivery's writes durable at least every [`SYNC_EVERY`], so an idle source
/// (whose commits would otherwise carry them) does not leave them in memory for long.
async fn sync_periodically(
    store: Arc<Store>,
    unsynced: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(SYNC_EVERY) => {}
            _ = stop.changed() => {}
        }
        if unsynced.swap(false, Ordering::SeqCst) {
            let store = store.clone();
            if let Err(e) = blocking(move || store.sync()).await {
                unsynced.store(true, Ordering::SeqCst);
                report_store_error("syncing delivery outcomes", &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Unobserved;
    use crate::queue::Delivery;

    #[tokio::test]
    async fn outcomes_are_recorded_in_the_store_and_a_disabling_lasts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let delivery = Delivery {
            destination: "d".into(),
            seq: 3,
            due_ms: 10,
            attempts: 0,
            created_ms: 1,
            last_error: None,
            opportunity: b"{}".to_vec(),
        };
        store.enqueue(std::slice::from_ref(&delivery), &[]).unwrap();
        let queue = LocalQueue::new(store.clone(), Arc::new(Unobserved));
        assert!(queue.due("d", 9, 10).await.unwrap().is_empty());
        assert_eq!(
            queue.due("d", 10, 10).await.unwrap(),
            std::slice::from_ref(&delivery)
        );
        let failed = crate::outcome::dead(delivery, 11, "HTTP 410".into());
        queue.record("d", &Arc::new(vec![failed])).await.unwrap();
        assert!(queue.due("d", u64::MAX, 10).await.unwrap().is_empty());
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        assert!(queue.unsynced.load(Ordering::SeqCst));
        assert_eq!(queue.disabled_before("d").await.unwrap(), None);
        queue.disable("d", "HTTP 410", false).await.unwrap();
        assert_eq!(
            queue.disabled_before("d").await.unwrap().as_deref(),
            Some("HTTP 410")
        );
    }
}
