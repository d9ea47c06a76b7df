//! With `store = "local"`: the outbox moved into the destinations' queues, and
//! delivery's writes made durable while it works.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use radar_core::Opportunity;
use radar_store::{Delivery, Recent, Store};
use tokio::sync::{Notify, watch};

use super::{OUTBOX_BATCH, blocking, report_store_error};
use crate::http::now_ms;
use crate::settings::DeliverySettings;

/// How often delivery's non-durable writes are made durable while it works.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Makes delivery's writes durable at least every [`SYNC_EVERY`], so an idle source
/// (whose commits would otherwise carry them) does not leave them in memory for long.
pub(super) async fn sync_periodically(
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

/// Moves outbox entries into the queues of the destinations whose filter wants them.
pub(super) async fn dispatch(
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    outbox_waker: Arc<Notify>,
    wakers: Vec<Arc<Notify>>,
    unsynced: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let batch = {
            let store = store.clone();
            blocking(move || store.outbox_after(None, OUTBOX_BATCH)).await
        };
        let batch = match batch {
            Ok(batch) if !batch.is_empty() => batch,
            other => {
                if let Err(e) = other {
                    report_store_error("reading the outbox", &e);
                }
                tokio::select! {
                    _ = outbox_waker.notified() => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        let now = now_ms();
        let mut deliveries = Vec::new();
        let mut recent = Vec::with_capacity(batch.len());
        let mut woken = vec![false; wakers.len()];
        for (seq, json) in &batch {
            // An entry that does not decode still goes everywhere: building its request
            // fails, and it lands in the dead-letter store with the reason, not lost.
            let opportunity = serde_json::from_slice::<Opportunity>(json).ok();
            if let Some(o) = &opportunity {
                recent.push(Recent {
                    account_id: o.account_id.to_string(),
                    seq: *seq,
                    opportunity: json.clone(),
                });
            }
            for (index, destination) in settings.destinations.iter().enumerate() {
                if opportunity
                    .as_ref()
                    .is_none_or(|o| destination.filter.wants(o))
                {
                    woken[index] = true;
                    deliveries.push(Delivery {
                        destination: destination.name.clone(),
                        seq: *seq,
                        due_ms: now,
                        attempts: 0,
                        created_ms: now,
                        last_error: None,
                        opportunity: json.clone(),
                    });
                }
            }
        }
        let through = batch.last().map_or(0, |(seq, _)| *seq);
        let written = {
            let store = store.clone();
            blocking(move || store.dispatch_outbox(through, &deliveries, &recent)).await
        };
        match written {
            Ok(()) => {
                unsynced.store(true, Ordering::SeqCst);
                for (waker, woken) in wakers.iter().zip(woken) {
                    if woken {
                        waker.notify_one();
                    }
                }
            }
            Err(e) => {
                report_store_error("dispatching the outbox", &e);
                tokio::time::sleep(settings.poll_interval).await;
            }
        }
    }
}
