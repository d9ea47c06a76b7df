//! Each destination's queue reported from a task of its own: a worker busy, or stuck
//! recording outcomes while a broker is away, must not freeze the metrics that would
//! show it, and summarising a large backlog must not slow down sending it.

use std::sync::Arc;
use std::time::Duration;

use radar_store::Store;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::observe::Observer;
use crate::queue::{DeliveryStore, blocking};

/// How often queue depth, the oldest delivery's age and how long the earliest due one
/// has waited are reported.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Reports the queues of `destinations` every [`REPORT_EVERY`], and once more when
/// stopping.
pub(super) async fn report_queues(
    store: Arc<Store>,
    observer: Arc<dyn Observer>,
    clock: Clock,
    destinations: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = *stop.borrow();
        for name in &destinations {
            let summary = {
                let (store, name) = (store.clone(), name.clone());
                blocking(move || store.queue_summary(&name)).await
            };
            let Ok(summary) = summary else {
                continue;
            };
            let now = clock.now_ms();
            let since =
                |ms: Option<u64>| Duration::from_millis(ms.map_or(0, |ms| now.saturating_sub(ms)));
            observer.queue(name, summary.depth, since(summary.oldest_created_ms));
            observer.overdue(name, since(summary.earliest_due_ms));
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(REPORT_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
