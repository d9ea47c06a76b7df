//! Recording what became of attempted deliveries: in the store, or with
//! `store = "kafka"` on the retry and dead-letter topics. A dead letter counts once it is
//! recorded, not when it is decided; a failure to record is tried again, logged at most
//! every [`WARN_EVERY`] and counted each time, and while it lasts the destination's
//! unacknowledged outcomes show in `radar_delivery_unacknowledged`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use radar_store::Settlement;

use super::{DestinationWorker, blocking, report_store_error};
use crate::kafka::KafkaDelivery;

/// How often a failure to record outcomes that repeats is logged.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(10);

impl DestinationWorker {
    /// Records settlements, retrying the write while radar runs: an outcome that is not
    /// recorded is sent again, never lost. Once stopping, it gives up after a few tries
    /// and leaves the deliveries queued for the next start.
    pub(super) async fn write(&self, settlements: Vec<Settlement>) {
        if settlements.is_empty() {
            return;
        }
        if let Some(kafka) = &self.kafka {
            return self.write_over_kafka(kafka, settlements).await;
        }
        let settlements = Arc::new(settlements);
        let mut failures = 0;
        loop {
            let (store, batch) = (self.store.clone(), settlements.clone());
            match blocking(move || store.settle(&batch)).await {
                Ok(()) => {
                    self.unsynced.store(true, Ordering::SeqCst);
                    let name = &self.destination().name;
                    for settlement in settlements.iter() {
                        if matches!(settlement, Settlement::DeadLettered { .. }) {
                            self.observer.dead_lettered(name);
                        }
                    }
                    return;
                }
                Err(e) => {
                    report_store_error("recording delivery outcomes", &e);
                    failures += 1;
                    if *self.stop.borrow() && failures >= 3 {
                        return;
                    }
                    tokio::time::sleep(self.settings.poll_interval).await;
                }
            }
        }
    }

    /// With `store = "kafka"`: parks the retries and dead letters on their topics (an
    /// outcome counts once the broker has it), then takes the deliveries out of the local
    /// queue and lets their records be committed. While radar runs a refused park is
    /// tried again; once stopping, after a few tries the deliveries are left unsettled,
    /// and their records are read again by the next owner of their partition.
    async fn write_over_kafka(&self, kafka: &Arc<KafkaDelivery>, settlements: Vec<Settlement>) {
        let name = &self.destination().name;
        self.observer.unacknowledged(name, settlements.len() as u64);
        let mut failures = 0;
        let landings = loop {
            match kafka.park(&settlements).await {
                Ok(landings) => break landings,
                Err(e) => {
                    failures += 1;
                    self.observer.park_failed(name);
                    let admitted = self
                        .park_warnings
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .admit(Instant::now());
                    if let Some(held_back) = admitted {
                        tracing::warn!(destination = %name, error = %e, held_back, "delivery: parking outcomes on Kafka (will try again)");
                    }
                    if *self.stop.borrow() && failures >= 3 {
                        return;
                    }
                    tokio::time::sleep(self.settings.poll_interval).await;
                }
            }
        };
        self.observer.unacknowledged(name, 0);
        crate::kafka::observe_landings(self.observer.as_ref(), &settlements, &landings);
        let keys: Vec<_> = settlements.iter().map(crate::kafka::queue_key).collect();
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.remove_queued(&keys)).await {
            // Parked already: were the entries to stay, they would be sent again.
            report_store_error("taking settled deliveries out of the local queue", &e);
        }
        kafka.settled(&settlements);
    }
}
