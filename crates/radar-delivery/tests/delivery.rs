//! Delivery against real HTTP servers on 127.0.0.1, scripted to fail the ways receivers
//! do. The retry schedule is compressed to milliseconds through the same settings users
//! write, so every test runs the production path in a fraction of a second.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use radar_delivery::DeliveryStore;
use radar_delivery::breaker::BreakerState;
use radar_delivery::settings::RawDestination;
use radar_delivery::{Observer, RawDelivery};
use serde_json::json;
use tokio::net::TcpListener;

mod support;

use support::{Running, SECRET, run_entries, run_observed, serve, settings, until};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    headers: HeaderMap,
    body: Bytes,
    /// On tokio's clock, which paused time advances.
    at: tokio::time::Instant,
}

/// What the receiver answers to the n-th request (0-based) for a webhook id.
type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone)]
enum Reply {
    Status(u16),
    StatusWith(u16, &'static str, String),
    Hang,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script, Arc::new(Mutex::new(Vec::new())))
    }

    fn serve(listener: TcpListener, script: Script, log: Arc<Mutex<Vec<Received>>>) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let state = (script, log.clone());
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (script, log) = state.clone();
                async move {
                    // Webhooks carry their id in a header; other kinds are told apart by path.
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                        .unwrap_or_else(|| uri.path().to_owned());
                    let n = {
                        let mut log = log.lock().unwrap();
                        let n = log.iter().filter(|r| r.id == id).count();
                        log.push(Received {
                            id,
                            headers,
                            body,
                            at: tokio::time::Instant::now(),
                        });
                        n
                    };
                    match script(n) {
                        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
                        Reply::StatusWith(code, name, value) => {
                            let mut response: Response =
                                StatusCode::from_u16(code).unwrap().into_response();
                            response.headers_mut().insert(name, value.parse().unwrap());
                            response
                        }
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            StatusCode::OK.into_response()
                        }
                    }
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, log }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    fn attempts_by_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.received() {
            *counts.entry(r.id).or_default() += 1;
        }
        counts
    }
}

fn always(code: u16) -> Script {
    Arc::new(move |_| Reply::Status(code))
}

fn opportunity(i: usize) -> Vec<u8> {
    opportunity_in(i, "hot")
}

/// Opportunity `i`, in `tier`.
fn opportunity_in(i: usize, tier: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "opportunity_id": format!("{i:032x}"),
        "account_id": format!("acct-{i}"),
        "kind": "seat_expansion",
        "playbook": "seat_expansion",
        "score": 70.0,
        "tier": tier,
        "breakdown": [{"component": "seats_used_pct", "value": 0.95, "points": 25.0}],
        "triggered_by": [format!("evt-{i}")],
        "owner": "sales",
        "occurred_at": "2026-03-02T10:00:00.000Z",
        "expansion_score": {"value": 61.0, "estimated_arr": null, "parts": []}
    }))
    .unwrap()
}

/// A store with `count` opportunities in its outbox, and delivery running over it.
async fn run(raw: RawDelivery, count: usize) -> Running {
    run_entries(raw, (0..count).map(opportunity).collect()).await
}

fn webhook(name: &str, url: String) -> RawDestination {
    RawDestination {
        name: name.into(),
        kind: "webhook".into(),
        url: Some(url),
        secret_env: Some("TEST_SECRET".into()),
        timeout: Some("300ms".into()),
        ..RawDestination::default()
    }
}

fn verify_signature(received: &Received) {
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(&received.body, &received.headers)
        .expect("the independent Standard Webhooks library accepts the signature");
}

#[tokio::test(start_paused = true)]
async fn a_500_then_200_is_delivered_on_the_second_attempt_under_the_same_id() {
    let receiver =
        Receiver::start(Arc::new(|n| Reply::Status(if n == 0 { 500 } else { 200 }))).await;
    let running = run(settings(vec![webhook("hook", receiver.url())], true), 5).await;
    until("each opportunity got its second attempt", || {
        let counts = receiver.attempts_by_id();
        counts.len() == 5 && counts.values().all(|&n| n == 2)
    })
    .await;
    let store = running.finish().await;
    assert_eq!(store.queue_summary("hook").unwrap().depth, 0);
    assert!(store.dead_letters().unwrap().is_empty());
    let received = receiver.received();
    assert_eq!(received.len(), 10, "exactly two attempts each");
    for r in &received {
        verify_signature(r);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body["data"]["opportunity_id"],
            r.id.as_str(),
            "webhook-id is the opportunity id"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_retry_after_is_honoured() {
    let receiver = Receiver::start(Arc::new(|n| {
        if n == 0 {
            Reply::StatusWith(429, "retry-after", "1".into())
        } else {
            Reply::Status(204)
        }
    }))
    .await;
    let running = run(settings(vec![webhook("hook", receiver.url())], true), 1).await;
    until("the retry arrived", || receiver.received().len() == 2).await;
    let store = running.finish().await;
    let received = receiver.received();
    let waited = received[1].at - received[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, before Retry-After"
    );
    assert_eq!(received[0].id, received[1].id);
    assert_eq!(store.queue_summary("hook").unwrap().depth, 0);
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_hangs_times_out_and_is_retried() {
    let receiver = Receiver::start(Arc::new(|n| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    }))
    .await;
    let running = run(settings(vec![webhook("hook", receiver.url())], true), 2).await;
    until("both delivered on the second attempt", || {
        let counts = receiver.attempts_by_id();
        counts.len() == 2 && counts.values().all(|&n| n == 2)
    })
    .await;
    // Once both are settled nothing is left to send: a third attempt would have come
    // before.
    until("both are settled", || {
        running.store.queue_summary("hook").unwrap().depth == 0
    })
    .await;
    let store = running.finish().await;
    assert_eq!(receiver.received().len(), 4);
    assert_eq!(store.queue_summary("hook").unwrap().depth, 0);
    assert!(store.dead_letters().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_410_disables_the_destination_across_restarts_until_a_replay() {
    let receiver = Receiver::start(always(410)).await;
    let mut raw = webhook("gone", receiver.url());
    raw.max_in_flight = Some(1);
    let running = run(settings(vec![raw], true), 4).await;
    until("everything is in the dead-letter store", || {
        running.store.dead_letters().unwrap().len() == 4
    })
    .await;
    let store = running.finish().await;
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing is sent after the 410"
    );
    let dead = store.dead_letters().unwrap();
    assert!(dead[0].reason.contains("410"), "{}", dead[0].reason);
    assert!(
        dead.iter()
            .skip(1)
            .all(|d| d.attempts == 0 && d.reason.contains("not attempted"))
    );

    assert!(
        store
            .disabled_reason("gone")
            .unwrap()
            .unwrap()
            .contains("410")
    );

    // The 410 outlives a restart: the next run sends nothing, and dead-letters what comes.
    store.append_outbox([opportunity(4).as_slice()]).unwrap();
    let again = serve(store, settings(vec![webhook("gone", receiver.url())], true)).await;
    until("the new one is dead-lettered too", || {
        again.store.dead_letters().unwrap().len() == 5
    })
    .await;
    let store = again.finish().await;
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing sent after a restart either"
    );

    // Replayed once the receiver is fixed: queued again, and the destination enabled.
    let replayed = store
        .replay_dead_letters(0, |d| d.destination == "gone")
        .unwrap();
    assert_eq!(replayed, 5);
    assert_eq!(store.queue_summary("gone").unwrap().depth, 5);
    assert_eq!(store.disabled_reason("gone").unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let internal = Receiver::start(always(200)).await;
    let location = format!(
        "http://169.254.169.254/latest/meta-data?via={}",
        internal.url()
    );
    let receiver = Receiver::start(Arc::new(move |_| {
        Reply::StatusWith(302, "location", location.clone())
    }))
    .await;
    let running = run(settings(vec![webhook("hook", receiver.url())], true), 1).await;
    until("dead-lettered", || {
        running.store.dead_letters().unwrap().len() == 1
    })
    .await;
    let store = running.finish().await;
    assert_eq!(
        receiver.received().len(),
        1,
        "a 3xx is permanent: one attempt"
    );
    assert!(internal.received().is_empty());
    let dead = store.dead_letters().unwrap();
    assert!(
        dead[0].reason.contains("302") && dead[0].reason.contains("redirect"),
        "{}",
        dead[0].reason
    );
}

#[tokio::test(start_paused = true)]
async fn loopback_is_refused_unless_allow_listed() {
    let receiver = Receiver::start(always(200)).await;
    let by_name = webhook(
        "by-name",
        format!("http://localhost:{}/hook", receiver.addr.port()),
    );
    let by_address = webhook("by-address", receiver.url());
    let running = run(settings(vec![by_name, by_address], false), 1).await;
    until("both dead-lettered", || {
        running.store.dead_letters().unwrap().len() == 2
    })
    .await;
    running.finish().await;
    assert!(
        receiver.received().is_empty(),
        "no request reached the internal address"
    );
}

#[tokio::test(start_paused = true)]
async fn a_receiver_down_for_a_while_gets_everything_when_it_comes_back() {
    // Take a port, and keep it closed for a while: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut raw = settings(vec![webhook("flaky", format!("http://{addr}/hook"))], true);
    raw.schedule = Some(
        [
            "50ms", "100ms", "200ms", "300ms", "300ms", "300ms", "300ms", "300ms",
        ]
        .map(String::from)
        .to_vec(),
    );
    let tally = Arc::new(Tally::default());
    let running = run_observed(raw, (0..20).map(opportunity).collect(), tally.clone()).await;
    until("the receiver refused 20 connections", || {
        tally.count("connection") >= 20
    })
    .await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let receiver = Receiver::serve(listener, always(200), Arc::new(Mutex::new(Vec::new())));
    until("all 20 delivered", || receiver.attempts_by_id().len() == 20).await;
    let store = running.finish().await;
    assert!(
        store.dead_letters().unwrap().is_empty(),
        "{:?}",
        store.dead_letters().unwrap()
    );
    assert_eq!(store.queue_summary("flaky").unwrap().depth, 0);
    assert!(
        receiver.attempts_by_id().values().all(|&n| n == 1),
        "each delivered once after the outage"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_destination_does_not_delay_the_others() {
    let slow = Receiver::start(Arc::new(|_| Reply::Hang)).await;
    let fast = Receiver::start(always(200)).await;
    let mut stuck = webhook("slow", slow.url());
    stuck.timeout = Some("10s".into());
    stuck.max_in_flight = Some(1);
    let running = run(settings(vec![stuck, webhook("fast", fast.url())], true), 50).await;
    until("the fast destination has all 50", || {
        fast.attempts_by_id().len() == 50
    })
    .await;
    assert_eq!(
        slow.received().len(),
        1,
        "the slow one is still on its first request"
    );
    let store = running.store.clone();
    assert_eq!(
        store.queue_summary("slow").unwrap().depth,
        50,
        "and its deliveries wait, queued"
    );
    running.stop.send(true).unwrap();
    // Stopping does not wait for the hung request beyond the drain bound.
    tokio::time::timeout(Duration::from_secs(8), running.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.queue_summary("slow").unwrap().depth,
        50,
        "nothing lost on stop"
    );
}

#[tokio::test(start_paused = true)]
async fn filters_route_opportunities_to_the_destinations_that_want_them() {
    let hot = Receiver::start(always(200)).await;
    let critical = Receiver::start(always(200)).await;
    let mut only_critical = webhook("critical", critical.url());
    only_critical.min_tier = Some("critical".into());
    only_critical.max_in_flight = Some(1);
    // Three hot ones, then a critical one: the critical destination sends its queue in
    // order, so once it has the critical one, it would have had any hot one before.
    let mut entries: Vec<Vec<u8>> = (0..3).map(opportunity).collect();
    entries.push(opportunity_in(3, "critical"));
    let running = run_entries(
        settings(vec![webhook("hot", hot.url()), only_critical], true),
        entries,
    )
    .await;
    until("the unfiltered destination has all 4", || {
        hot.attempts_by_id().len() == 4
    })
    .await;
    until("the critical destination has the critical one", || {
        !critical.received().is_empty()
    })
    .await;
    running.finish().await;
    assert_eq!(
        critical.received().len(),
        1,
        "hot opportunities are below its min_tier"
    );
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_always_fails_gets_the_whole_schedule_then_the_dead_letter_store() {
    let receiver = Receiver::start(always(503)).await;
    let mut raw = settings(vec![webhook("down", receiver.url())], true);
    raw.breaker_failures = Some(100);
    let running = run(raw, 2).await;
    until("both dead-lettered", || {
        running.store.dead_letters().unwrap().len() == 2
    })
    .await;
    let store = running.finish().await;
    // One attempt, then one per schedule entry (four), under the same id each time.
    assert!(
        receiver.attempts_by_id().values().all(|&n| n == 5),
        "{:?}",
        receiver.attempts_by_id()
    );
    for letter in store.dead_letters().unwrap() {
        assert_eq!(letter.attempts, 5);
        assert!(
            letter.reason.contains("HTTP 503; gave up after 5 attempts"),
            "{}",
            letter.reason
        );
    }
    assert_eq!(store.queue_summary("down").unwrap().depth, 0);
}

#[tokio::test(start_paused = true)]
async fn slack_gets_a_block_kit_message_without_credentials() {
    let slack = Receiver::start(always(200)).await;
    let running = run(
        settings(
            vec![RawDestination {
                name: "slack".into(),
                kind: "slack".into(),
                url: Some(slack.url()),
                ..RawDestination::default()
            }],
            true,
        ),
        2,
    )
    .await;
    until("slack has both", || slack.received().len() == 2).await;
    let store = running.finish().await;
    assert!(store.dead_letters().unwrap().is_empty());
    assert_eq!(store.queue_summary("slack").unwrap().depth, 0);
    let message: serde_json::Value = serde_json::from_slice(&slack.received()[0].body).unwrap();
    assert_eq!(message["blocks"][0]["type"], "header");
    assert!(slack.received()[0].headers.get("authorization").is_none());
}

/// How many attempts delivery reported, by outcome.
#[derive(Default)]
struct Tally {
    attempts: Mutex<HashMap<&'static str, usize>>,
}

impl Observer for Tally {
    fn attempt(&self, _: &str, result: &'static str) {
        *self.attempts.lock().unwrap().entry(result).or_default() += 1;
    }
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, _: &str) {}
    fn queue(&self, _: &str, _: u64, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, _: &'static str, _: &'static str) {}
}

impl Tally {
    fn count(&self, result: &str) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .get(result)
            .copied()
            .unwrap_or(0)
    }
}

/// What delivery reported of its queues, by destination.
#[derive(Default)]
struct Queues {
    known: Mutex<Vec<String>>,
    depth: Mutex<HashMap<String, u64>>,
    overdue: Mutex<HashMap<String, Duration>>,
}

impl Observer for Queues {
    fn attempt(&self, _: &str, _: &'static str) {}
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, _: &str) {}
    fn queue(&self, destination: &str, depth: u64, _: Duration) {
        self.depth.lock().unwrap().insert(destination.into(), depth);
    }
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, _: &'static str, _: &'static str) {}
    fn known(&self, destination: &str) {
        self.known.lock().unwrap().push(destination.into());
    }
    fn overdue(&self, destination: &str, waited: Duration) {
        self.overdue
            .lock()
            .unwrap()
            .insert(destination.into(), waited);
    }
}

/// A delivery that is due and not settled shows in how long the destination has left it
/// so, reported beside its worker, whatever that worker is waiting on.
#[tokio::test(start_paused = true)]
async fn a_delivery_that_hangs_shows_its_destination_overdue() {
    let receiver = Receiver::start(Arc::new(|_| Reply::Hang)).await;
    let mut slow = webhook("slow", receiver.url());
    slow.timeout = Some("20s".into());
    let queues = Arc::new(Queues::default());
    let raw = settings(vec![slow], true);
    let running = run_observed(raw, vec![opportunity(0)], queues.clone()).await;
    until(
        "the hanging delivery is reported overdue by a second",
        || {
            queues
                .overdue
                .lock()
                .unwrap()
                .get("slow")
                .is_some_and(|waited| *waited >= Duration::from_secs(1))
        },
    )
    .await;
    assert_eq!(queues.depth.lock().unwrap().get("slow"), Some(&1));
    assert_eq!(*queues.known.lock().unwrap(), ["slow"]);
    running.finish().await;
}
