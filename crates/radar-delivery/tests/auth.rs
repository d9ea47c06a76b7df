//! CRM credentials against the stand-ins' token endpoints (`radar-standin`, written from
//! the vendors' documentation): tokens renewed on expiry with one request however many
//! calls meet it, credentials that fail making the destination degraded — its queue
//! held, nothing dead-lettered — and healing by themselves, a rotated refresh token
//! stored, and a static token replaced in its file picked up without a restart.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use radar_delivery::breaker::BreakerState;
use radar_delivery::settings::RawDestination;
use radar_delivery::{DeliveryStore, Observer};
use radar_standin::hubspot::{HubSpot, OAuthApp};
use radar_standin::salesforce::{ConnectedApp, KeyPair, Salesforce};
use support::{Running, run_observed, settings, until, until_within};

/// What delivery reported: each attempt's outcome and each change of the credentials.
#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<&'static str>>,
    /// `Some(reason)` when the credentials became degraded, `None` when they healed.
    auth: Mutex<Vec<Option<String>>>,
}

impl Observer for Seen {
    fn attempt(&self, _: &str, result: &'static str) {
        self.attempts.lock().unwrap().push(result);
    }
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, _: &str) {}
    fn queue(&self, _: &str, _: u64, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, _: &'static str, _: &'static str) {}
    fn auth(&self, _: &str, degraded: Option<&str>) {
        self.auth.lock().unwrap().push(degraded.map(str::to_owned));
    }
}

impl Seen {
    fn delivered(&self) -> usize {
        let attempts = self.attempts.lock().unwrap();
        attempts.iter().filter(|a| **a == "success").count()
    }

    fn degraded(&self) -> Option<String> {
        self.auth.lock().unwrap().last().cloned().flatten()
    }

    fn healed(&self) -> bool {
        let auth = self.auth.lock().unwrap();
        auth.iter().any(Option::is_some) && auth.last().is_some_and(Option::is_none)
    }
}

fn opportunity(i: usize, account: &str) -> Vec<u8> {
    support::crm_opportunity(i, account, "cs")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(destination: RawDestination, entries: Vec<Vec<u8>>) -> (Running, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let running = run_observed(settings(vec![destination], true), entries, seen.clone()).await;
    (running, seen)
}

fn dead_letters(running: &Running) -> Vec<String> {
    let dead = running.store.dead_letters().unwrap();
    dead.into_iter().map(|d| d.reason).collect()
}

/// A Salesforce org with the Account `acme` and a connected app for the JWT bearer
/// flow whose tokens live an hour (they end when the test expires them); the
/// destination that logs in to it with the app's private key.
async fn salesforce_with_jwt(dir: &Path) -> (Salesforce, RawDestination) {
    let salesforce = Salesforce::start("static-token-unused").await.unwrap();
    salesforce.add_account("Radar_Account_Id__c", "acme", None);
    let keys = KeyPair::generate().unwrap();
    salesforce.connect_app(ConnectedApp {
        client_id: "3MVG9-radar".into(),
        client_secret: None,
        username: "integration@acme.test".into(),
        public_key_pem: Some(keys.public_pem),
        refresh_token: None,
        token_lifetime: Duration::from_secs(3_600),
    });
    let destination = RawDestination {
        name: "sf".into(),
        kind: "salesforce".into(),
        url: Some(salesforce.url()),
        timeout: Some("5s".into()),
        auth: Some("jwt_bearer".into()),
        client_id: Some("3MVG9-radar".into()),
        username: Some("integration@acme.test".into()),
        login_url: Some(salesforce.url()),
        private_key_file: Some(write(dir, "radar.key", &keys.private_pem)),
        ..RawDestination::default()
    };
    (salesforce, destination)
}

// On real time: the expiries follow the upserts as they land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_opportunities_across_five_token_expiries_take_six_token_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (salesforce, destination) = salesforce_with_jwt(dir.path()).await;
    // Collections of 50: twenty calls, four in flight at a time.
    let destination = RawDestination {
        batch_size: Some(50),
        ..destination
    };
    let entries = (0..1_000).map(|i| opportunity(i, "acme")).collect();
    let (running, seen) = start(destination, entries).await;
    // Every 150 upserts, every token issued so far expires.
    let expiring = salesforce.clone();
    let expiries = tokio::spawn(async move {
        let mut expired = 0;
        while expired < 5 {
            if expiring.opportunities().len() >= 150 * (expired + 1) {
                expiring.expire_token();
                expired += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let limit = Duration::from_secs(120);
    until_within("the 1,000 are delivered", limit, || {
        seen.delivered() == 1_000
    })
    .await;
    expiries.await.unwrap();
    assert_eq!(salesforce.opportunities().len(), 1_000);
    assert!(
        dead_letters(&running).is_empty(),
        "{:?}",
        dead_letters(&running)
    );
    let requests = salesforce.token_requests();
    assert!(
        requests <= 6,
        "one token request at the start and one per expiry, not {requests}"
    );
    let refused = salesforce
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert!(refused >= 5, "each expiry was met: {refused} refusals");
    assert!(seen.auth.lock().unwrap().is_empty(), "never degraded");
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn fifty_calls_that_meet_an_expired_token_cause_one_token_request() {
    let dir = tempfile::tempdir().unwrap();
    let (salesforce, destination) = salesforce_with_jwt(dir.path()).await;
    // Tasks go one per call: 50 calls at once.
    let destination = RawDestination {
        object: Some("task".into()),
        max_in_flight: Some(50),
        ..destination
    };
    let (running, seen) = start(destination, vec![opportunity(0, "acme")]).await;
    until("the first is delivered", || seen.delivered() == 1).await;
    assert_eq!(salesforce.token_requests(), 1);
    salesforce.expire_token();
    let more: Vec<Vec<u8>> = (1..=50).map(|i| opportunity(i, "acme")).collect();
    running
        .store
        .append_outbox(more.iter().map(Vec::as_slice))
        .unwrap();
    until("the 50 are delivered", || seen.delivered() == 51).await;
    let refused = salesforce
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert!(
        refused > 1,
        "several calls met the expired token: {refused}"
    );
    assert_eq!(
        salesforce.token_requests(),
        2,
        "one renewal for all of them"
    );
    assert!(dead_letters(&running).is_empty());
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn fifty_calls_that_meet_a_refused_grant_cause_one_token_request_until_the_next_try() {
    let dir = tempfile::tempdir().unwrap();
    let (salesforce, destination) = salesforce_with_jwt(dir.path()).await;
    let destination = RawDestination {
        object: Some("task".into()),
        max_in_flight: Some(50),
        ..destination
    };
    salesforce.refuse_grants(true);
    let entries = (0..50).map(|i| opportunity(i, "acme")).collect();
    let (running, seen) = start(destination, entries).await;
    until("the destination is degraded", || seen.degraded().is_some()).await;
    assert_eq!(
        salesforce.token_requests(),
        1,
        "the calls that waited for the refused grant did not ask again"
    );
    salesforce.refuse_grants(false);
    until("the fifty are delivered", || seen.delivered() == 50).await;
    assert!(seen.healed());
    assert!(dead_letters(&running).is_empty());
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_grant_degrades_the_destination_which_holds_its_queue_and_heals_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let hubspot = HubSpot::start("static-token-unused").await.unwrap();
    hubspot.add_company("radar_account_id", "acme", None);
    hubspot.connect_app(OAuthApp {
        client_id: "radar-app".into(),
        client_secret: "app-secret".into(),
        refresh_token: "na1-first".into(),
        token_lifetime: Duration::from_secs(1_800),
        rotate_refresh_tokens: true,
    });
    let refresh_file = write(dir.path(), "refresh", "na1-first\n");
    let destination = RawDestination {
        name: "hs".into(),
        kind: "hubspot".into(),
        url: Some(hubspot.url()),
        timeout: Some("5s".into()),
        auth: Some("refresh_token".into()),
        client_id: Some("radar-app".into()),
        client_secret_file: Some(write(dir.path(), "secret", "app-secret")),
        refresh_token_file: Some(refresh_file.clone()),
        ..RawDestination::default()
    };
    let entries = (0..3).map(|i| opportunity(i, "acme")).collect();
    let (running, seen) = start(destination, entries).await;
    until("the first three are delivered", || seen.delivered() == 3).await;
    // HubSpot rotated the refresh token: the new one is in the file for the next start.
    let rotated = hubspot.refresh_token().unwrap();
    assert_ne!(rotated, "na1-first");
    assert_eq!(
        std::fs::read_to_string(&refresh_file).unwrap().trim(),
        rotated
    );

    // The app's access is revoked and its tokens expire: for a minute, every grant is
    // refused.
    hubspot.refuse_grants(true);
    hubspot.expire_token();
    let more: Vec<Vec<u8>> = (3..8).map(|i| opportunity(i, "acme")).collect();
    running
        .store
        .append_outbox(more.iter().map(Vec::as_slice))
        .unwrap();
    until("the destination is degraded", || seen.degraded().is_some()).await;
    let reason = seen.degraded().unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");
    assert!(
        !reason.contains("app-secret") && !reason.contains(&rotated),
        "{reason}"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(dead_letters(&running).is_empty(), "held, not dead-lettered");
    assert_eq!(hubspot.deals().len(), 3);
    assert_eq!(
        running.store.queue_summary("hs").unwrap().depth,
        5,
        "the five wait in the queue"
    );
    let tried = hubspot.token_requests();
    assert!(
        (3..=8).contains(&tried),
        "the grant was tried again with backoff, not in a loop: {tried} requests"
    );

    hubspot.refuse_grants(false);
    until("everything held is delivered", || seen.delivered() == 8).await;
    assert!(seen.healed(), "{:?}", seen.auth.lock().unwrap());
    assert_eq!(hubspot.deals().len(), 8);
    assert!(dead_letters(&running).is_empty());
    let attempts = seen.attempts.lock().unwrap().clone();
    assert!(
        attempts.iter().all(|a| *a == "success"),
        "the held deliveries spent no attempt: {attempts:?}"
    );
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_static_token_replaced_in_its_file_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hubspot = HubSpot::start("first-token").await.unwrap();
    hubspot.add_company("radar_account_id", "acme", None);
    let token_file = write(dir.path(), "token", "first-token\n");
    hubspot.expire_token();
    let destination = RawDestination {
        name: "hs".into(),
        kind: "hubspot".into(),
        url: Some(hubspot.url()),
        timeout: Some("5s".into()),
        secret_file: Some(token_file.clone()),
        ..RawDestination::default()
    };
    let entries = (0..5).map(|i| opportunity(i, "acme")).collect();
    let (running, seen) = start(destination, entries).await;
    until("the destination is degraded", || seen.degraded().is_some()).await;
    let reason = seen.degraded().unwrap();
    assert!(reason.contains("HubSpot answered 401"), "{reason}");
    assert!(dead_letters(&running).is_empty(), "held, not dead-lettered");

    // Someone rotates the token and writes the new one to the file.
    hubspot.set_token("second-token");
    std::fs::write(&token_file, "second-token\n").unwrap();
    until("the five are delivered", || seen.delivered() == 5).await;
    assert!(seen.healed());
    assert_eq!(hubspot.deals().len(), 5);
    assert!(dead_letters(&running).is_empty());
    running.finish().await;
}
