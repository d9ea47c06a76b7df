//! Re-parking long retries. A partition of the retry topic is committed only up to its
//! first unsettled record, so a retry due in hours would hold the commit at itself for
//! all that time, and every restart meanwhile would read, send and dead-letter again
//! everything that settled behind it. A retry held for a quarter of its wait (at least
//! `repark_after`, at most 16 times it), not due for `repark_after` yet, and with settled
//! records behind it is produced anew to the retry topic
//! (the same due time and attempts, acknowledged) and its old record counts as settled:
//! the commit moves past it, and the new record waits at the end of the partition.

use std::time::Duration;

use radar_kafka::throttle::Throttle;
use radar_store::Store;

use super::KafkaDelivery;
use crate::observe::Observer;
use crate::queue::{DeliveryStore, Settlement};
use crate::settings::DeliverySettings;

/// Re-parks the retries that hold the retry topic's commit back (see the module
/// documentation); whatever fails is left as it is and tried at the next call, the
/// failure counted and logged at most once per `warnings`' period.
pub(super) fn repark(
    kafka: &KafkaDelivery,
    store: &Store,
    settings: &DeliverySettings,
    observer: &dyn Observer,
    warnings: &mut Throttle,
) {
    let held = u64::try_from(settings.repark_after.as_millis()).unwrap_or(u64::MAX);
    let keys =
        kafka
            .in_hand()
            .blocking(&kafka.config.retry_topic, kafka.clock.now_ms(), held, held);
    if keys.is_empty() {
        return;
    }
    // Not due for a while yet: no worker takes them meanwhile.
    let retries = match store.queued(&keys) {
        Ok(retries) => retries,
        Err(e) => {
            tracing::warn!(error = %e, "delivery: reading long retries to park them again");
            return;
        }
    };
    let settlements: Vec<Settlement> = retries
        .into_iter()
        .map(|retry| Settlement::Retry {
            previous_due_ms: retry.due_ms,
            next: retry,
        })
        .collect();
    let parked = tokio::runtime::Handle::current().block_on(async {
        tokio::time::timeout(Duration::from_secs(30), kafka.park(&settlements)).await
    });
    let landings = match parked {
        Ok(Ok(landings)) => landings,
        failed => {
            for settlement in &settlements {
                if let Settlement::Retry { next, .. } = settlement {
                    observer.park_failed(&next.destination);
                }
            }
            if let Some(held_back) = warnings.admit(kafka.clock.instant()) {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no acknowledgement within 30 s".to_owned(),
                };
                tracing::warn!(%error, held_back, "delivery: parking long retries again");
            }
            return;
        }
    };
    super::observe_landings(observer, &settlements, &landings);
    tracing::debug!(
        retries = settlements.len(),
        "delivery: parked long retries again"
    );
    let keys: Vec<_> = settlements.iter().map(Settlement::queue_key).collect();
    if let Err(e) = store.remove_queued(&keys) {
        tracing::warn!(error = %e, "delivery: taking re-parked retries out of the local queue");
    }
    kafka.settled(&settlements);
}
