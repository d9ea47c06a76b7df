//! The local queue's feeder: outbox entries moved into the queues of the destinations
//! whose filter wants them, each entry's JSON parsed once for all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use radar_core::Opportunity;
use radar_store::Store;
use tokio::sync::{Notify, watch};

use super::{Delivery, DeliveryStore, Recent, blocking, report_store_error};
use crate::clock::Clock;
use crate::settings::DeliverySettings;

/// Outbox entries dispatched per transaction.
const OUTBOX_BATCH: usize = 512;

/// What a batch of outbox entries becomes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct FannedOut {
    pub deliveries: Vec<Delivery>,
    pub recent: Vec<Recent>,
    /// Per destination (in the settings' order): whether it got a delivery.
    pub woken: Vec<bool>,
}

/// Fans outbox entries (sequence, opportunity JSON) out to the destinations that want
/// them, due at `now_ms`. An entry that does not decode still goes everywhere: building
/// its request fails, and it lands in the dead-letter store with the reason, not lost.
pub(super) fn fan_out(
    settings: &DeliverySettings,
    entries: &[(u64, Vec<u8>)],
    now_ms: u64,
) -> FannedOut {
    let mut out = FannedOut {
        woken: vec![false; settings.destinations.len()],
        recent: Vec::with_capacity(entries.len()),
        ..FannedOut::default()
    };
    for (seq, json) in entries {
        let opportunity = serde_json::from_slice::<Opportunity>(json).ok();
        if let Some(o) = &opportunity {
            out.recent.push(Recent {
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
                out.woken[index] = true;
                out.deliveries.push(Delivery {
                    destination: destination.name.clone(),
                    seq: *seq,
                    due_ms: now_ms,
                    attempts: 0,
                    created_ms: now_ms,
                    last_error: None,
                    opportunity: json.clone(),
                });
            }
        }
    }
    out
}

/// Moves outbox entries into the queues of the destinations whose filter wants them.
pub(super) async fn dispatch(
    store: Arc<Store>,
    settings: Arc<DeliverySettings>,
    clock: Clock,
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
        let FannedOut {
            deliveries,
            recent,
            woken,
        } = fan_out(&settings, &batch, clock.now_ms());
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::{RawDelivery, RawDestination, build};

    fn settings() -> DeliverySettings {
        let destination = |name: &str, min_tier: Option<&str>| RawDestination {
            name: name.into(),
            kind: "slack".into(),
            url: Some("https://hooks.slack.com/services/T0/B0/XYZ".into()),
            min_tier: min_tier.map(str::to_owned),
            ..RawDestination::default()
        };
        let raw = RawDelivery {
            destinations: vec![destination("all", None), destination("hot", Some("hot"))],
            ..RawDelivery::default()
        };
        build(&raw, &|_| None).unwrap()
    }

    fn opportunity(account: &str, tier: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "opportunity_id": format!("{account:0>32}"),
            "account_id": account,
            "kind": "seat_expansion",
            "playbook": "seat_expansion",
            "score": 70.0,
            "tier": tier,
            "breakdown": [],
            "triggered_by": [],
            "owner": "sales",
            "occurred_at": "2026-03-02T10:00:00.000Z",
            "expansion_score": {"value": 61.0, "estimated_arr": null, "parts": []}
        }))
        .unwrap()
    }

    #[test]
    fn entries_go_to_the_destinations_whose_filter_wants_them() {
        let entries = vec![
            (7, opportunity("acme", "warm")),
            (8, opportunity("beta", "hot")),
            (9, b"not json".to_vec()),
        ];
        let out = fan_out(&settings(), &entries, 1_000);
        let went: Vec<(&str, u64)> = out
            .deliveries
            .iter()
            .map(|d| (d.destination.as_str(), d.seq))
            .collect();
        // One that does not decode goes everywhere, to be dead-lettered with its reason.
        assert_eq!(
            went,
            [("all", 7), ("all", 8), ("hot", 8), ("all", 9), ("hot", 9)]
        );
        assert!(
            out.deliveries
                .iter()
                .all(|d| d.due_ms == 1_000 && d.created_ms == 1_000 && d.attempts == 0)
        );
        let accounts: Vec<&str> = out.recent.iter().map(|r| r.account_id.as_str()).collect();
        assert_eq!(accounts, ["acme", "beta"]);
        assert_eq!(out.woken, [true, true]);
    }

    #[test]
    fn a_destination_that_wants_nothing_is_not_woken() {
        let out = fan_out(&settings(), &[(1, opportunity("acme", "cold"))], 5);
        assert_eq!(out.woken, [true, false]);
        assert_eq!(out.deliveries.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_outbox_moves_into_the_queues_and_wakes_their_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let entry = opportunity("acme", "warm");
        store.append_outbox([entry.as_slice()]).unwrap();
        let (woken, unsynced) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(dispatch(
            store.clone(),
            Arc::new(settings()),
            Clock::tokio(),
            Arc::new(Notify::new()),
            vec![woken.clone(), Arc::new(Notify::new())],
            unsynced.clone(),
            stopped,
        ));
        woken.notified().await;
        assert_eq!(store.outbox_len().unwrap(), 0);
        let queued = store.due_deliveries("all", u64::MAX, 10).unwrap();
        assert_eq!((queued.len(), &queued[0].opportunity), (1, &entry));
        assert!(
            store
                .due_deliveries("hot", u64::MAX, 10)
                .unwrap()
                .is_empty()
        );
        assert!(unsynced.load(Ordering::SeqCst), "written without an fsync");
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
