//! What the delivery tests share: settings with a compressed schedule, delivery running
//! over a store in a scratch directory, and waiting for a condition with a deadline.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test binary uses a part

use std::sync::Arc;
use std::time::{Duration, Instant};

use radar_delivery::settings::{RawDestination, build};
use radar_delivery::{Clock, DeliveryService, Observer, RawDelivery, Unobserved};
use radar_store::Store;
use tokio::sync::watch;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Opportunity `i` of `account`, for `team` (`cs` or `sales`), with an estimated ARR: what
/// the CRM tests deliver.
pub fn crm_opportunity(i: usize, account: &str, team: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "opportunity_id": format!("{i:032x}"),
        "account_id": account,
        "kind": "seat_expansion",
        "playbook": "seat_expansion",
        "score": 72.5,
        "tier": "hot",
        "breakdown": [{"component": "seats_used_pct", "value": 0.95, "points": 25.0}],
        "triggered_by": [format!("evt-{i}")],
        "owner": team,
        "occurred_at": "2026-03-02T10:00:00.000Z",
        "expansion_score": {"value": 61.0, "estimated_arr": 24000.0, "parts": []}
    }))
    .unwrap()
}

pub fn settings(destinations: Vec<RawDestination>, allow_loopback: bool) -> RawDelivery {
    RawDelivery {
        schedule: Some(["20ms", "40ms", "80ms", "80ms"].map(String::from).to_vec()),
        breaker_cooldown: Some("100ms".into()),
        poll_interval: Some("10ms".into()),
        allow_networks: if allow_loopback {
            vec!["127.0.0.0/8".into()]
        } else {
            vec![]
        },
        destinations,
        ..RawDelivery::default()
    }
}

pub struct Running {
    pub store: Arc<Store>,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

/// A store with `entries` in its outbox, and delivery running over it.
pub async fn run_entries(raw: RawDelivery, entries: Vec<Vec<u8>>) -> Running {
    run_observed(raw, entries, Arc::new(Unobserved)).await
}

/// [`run_entries`], reporting to `observer`.
pub async fn run_observed(
    raw: RawDelivery,
    entries: Vec<Vec<u8>>,
    observer: Arc<dyn Observer>,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    store
        .append_outbox(entries.iter().map(Vec::as_slice))
        .unwrap();
    let mut running = serve_observed(store, raw, observer).await;
    running._dir = Some(dir);
    running
}

/// Delivery over an existing store, as a restarted radar would run it.
pub async fn serve(store: Arc<Store>, raw: RawDelivery) -> Running {
    serve_observed(store, raw, Arc::new(Unobserved)).await
}

/// [`serve`], reporting to `observer`.
pub async fn serve_observed(
    store: Arc<Store>,
    raw: RawDelivery,
    observer: Arc<dyn Observer>,
) -> Running {
    let env = |name: &str| match name {
        "TEST_SECRET" => Some(SECRET.to_owned()),
        "TEST_TOKEN" => Some("test-token".to_owned()),
        _ => None,
    };
    let settings = build(&raw, &env).unwrap();
    // The tests' clock follows tokio's, so a test on paused time never waits out a
    // backoff, a cooldown or a `Retry-After`.
    let service = DeliveryService::new(store.clone(), settings, observer)
        .unwrap()
        .with_clock(Clock::tokio());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { service.run(stopped).await.unwrap() });
    Running {
        store,
        stop,
        task,
        _dir: None,
    }
}

impl Running {
    pub async fn finish(self) -> Arc<Store> {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        self.store
    }
}

/// Waits until `done`, polling every 10 ms of tokio's time (which a paused runtime skips
/// through); fails with `what` after 20 s of real time.
pub async fn until(what: &str, done: impl FnMut() -> bool) {
    until_within(what, Duration::from_secs(20), done).await;
}

/// [`until`], failing after `limit` of real time.
pub async fn until_within(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
