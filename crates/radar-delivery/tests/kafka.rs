//! Delivery with `store = "kafka"` against a tansu broker process: what a record on the
//! opportunities or retry topic can do to delivery, and what the dead-letter topic keeps
//! of it — an opportunity too big to dead-letter whole, an empty one, a retry due in
//! year 9999, dead letters whose keys are not UTF-8.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use radar_delivery::breaker::BreakerState;
use radar_delivery::kafka::dead_letters::{self, Letter};
use radar_delivery::kafka::parked;
use radar_delivery::queue::{Delivery, FailedDelivery};
use radar_delivery::settings::{RawDestination, build};
use radar_delivery::{DeliveryService, KafkaDelivery, KafkaDeliveryConfig, Observer};
use radar_store::Store;
use radar_testkit::broker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use support::{SECRET, settings, until};
use tokio::sync::watch;

/// What delivery reported, by destination.
#[derive(Default)]
struct Seen {
    dead_lettered: Mutex<HashMap<String, u64>>,
    degraded: Mutex<Vec<(String, &'static str)>>,
}

impl Observer for Seen {
    fn attempt(&self, _: &str, _: &'static str) {}
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, destination: &str) {
        *self
            .dead_lettered
            .lock()
            .unwrap()
            .entry(destination.to_owned())
            .or_default() += 1;
    }
    fn queue(&self, _: &str, _: u64, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, _: &'static str, _: &'static str) {}
    fn dead_letter_degraded(&self, destination: &str, outcome: &'static str) {
        self.degraded
            .lock()
            .unwrap()
            .push((destination.to_owned(), outcome));
    }
}

impl Seen {
    fn dead_letters(&self) -> u64 {
        self.dead_lettered.lock().unwrap().values().sum()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Opportunity `i` as the source writes it.
fn opportunity(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "opportunity_id": format!("{i:032x}"),
        "account_id": "acme",
        "kind": "seat_expansion",
        "playbook": "seat_expansion",
        "score": 72.5,
        "tier": "hot",
        "breakdown": [],
        "triggered_by": [format!("evt-{i}")],
        "owner": "cs",
        "occurred_at": "2026-03-02T10:00:00.000Z",
        "expansion_score": {"value": 61.0, "estimated_arr": 24000.0, "parts": []}
    }))
    .unwrap()
}

/// A webhook receiver on 127.0.0.1 answering 204 and recording each `webhook-id`.
async fn receiver() -> (String, Arc<Mutex<BTreeSet<String>>>) {
    let ids = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = ids.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let seen = seen.clone();
        async move {
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            seen.lock().unwrap().insert(id);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ids)
}

/// A broker and delivery's topics (one partition each), created as radar creates them.
struct Topics {
    broker: broker::Broker,
    config: KafkaDeliveryConfig,
    kafka: Arc<KafkaDelivery>,
}

/// The producer's `message.max.bytes` in these tests: tansu takes no request much over
/// a megabyte, so the limit librdkafka defaults to is halved here.
const MESSAGE_MAX_BYTES: usize = 500_000;

impl Topics {
    fn new(name: &str) -> Topics {
        let broker = broker::start_broker();
        let client = vec![
            ("bootstrap.servers".to_owned(), broker.address.clone()),
            ("session.timeout.ms".to_owned(), "6000".to_owned()),
            (
                "message.max.bytes".to_owned(),
                MESSAGE_MAX_BYTES.to_string(),
            ),
        ];
        let events = format!("{name}-events");
        let mut admin = rdkafka::ClientConfig::new();
        admin.set("bootstrap.servers", &broker.address);
        radar_kafka::topics::ensure(&admin, &events, 1, 1, radar_kafka::topics::Cleanup::Delete)
            .unwrap();
        let config = KafkaDeliveryConfig::new(client, name, &format!("{name}-opportunities"), 1);
        let kafka = KafkaDelivery::open(config.clone(), &events, now_ms() * 1_000).unwrap();
        Topics {
            broker,
            config,
            kafka,
        }
    }

    fn producer(&self) -> FutureProducer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.broker.address)
            .set("message.max.bytes", MESSAGE_MAX_BYTES.to_string())
            .set("message.timeout.ms", "10000")
            .create()
            .unwrap()
    }

    async fn produce(&self, topic: &str, key: &[u8], value: &[u8], headers: Option<OwnedHeaders>) {
        let mut record = FutureRecord::to(topic).key(key).payload(value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        self.producer()
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .unwrap();
    }

    /// The delivery group's committed offset of partition 0 of `topic`.
    fn committed(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.broker.address)
            .set("group.id", &self.config.group_id)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, 0);
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        match committed.elements()[0].offset() {
            Offset::Offset(offset) => offset,
            _ => -1,
        }
    }

    /// Every record of partition 0 of `topic` from `from`, as (headers by name, value).
    fn read(&self, topic: &str, from: i64) -> Vec<(HashMap<String, String>, Vec<u8>)> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.broker.address)
            .set("group.id", "test-reader")
            .create()
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(10))
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Offset(from))
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while (records.len() as i64) < high - from {
            assert!(std::time::Instant::now() < deadline, "reading {topic}");
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                                (h.key.to_owned(), value.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push((headers, message.payload().unwrap_or_default().to_vec()));
            }
        }
        records
    }
}

/// Delivery running over Kafka.
struct Delivering {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Delivering {
    /// Stops it and waits until it has committed what it settled.
    async fn finish(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

/// Delivery over Kafka to a webhook at `url`, reporting to `seen`.
async fn deliver(
    topics: &Topics,
    url: &str,
    seen: Arc<Seen>,
    repark_after: Duration,
) -> Delivering {
    let hook = RawDestination {
        name: "hook".into(),
        kind: "webhook".into(),
        url: Some(url.to_owned()),
        secret_env: Some("TEST_SECRET".into()),
        ..RawDestination::default()
    };
    let env = |name: &str| (name == "TEST_SECRET").then(|| SECRET.to_owned());
    let mut settings = build(&settings(vec![hook], true), &env).unwrap();
    settings.repark_after = repark_after;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let service = DeliveryService::new(store, settings, seen)
        .unwrap()
        .over_kafka(topics.kafka.clone());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { service.run(stopped).await.unwrap() });
    Delivering {
        stop,
        task,
        _dir: dir,
    }
}

/// An opportunity record just under `message.max.bytes` does not decode, so it is
/// dead-lettered; its letter, with headers and key, is over the limit. It is cut to fit and says
/// where the whole record is, and the destination goes on with what follows.
#[test]
fn an_opportunity_too_big_to_dead_letter_whole_is_cut_and_its_destination_goes_on() {
    let topics = Topics::new("big");
    // Dropped after the runtime: delivery stops (and commits) while the broker is up.
    runtime().block_on(async {
        let opportunities = topics.config.opportunities_topic.clone();
        // Within the limit alone, over it with a letter's headers.
        let big = format!(
            r#"{{"opportunity_id":"big","pad":"{}"}}"#,
            "x".repeat(MESSAGE_MAX_BYTES - 133)
        );
        assert_eq!(big.len(), MESSAGE_MAX_BYTES - 100);
        topics
            .produce(&opportunities, b"acme", big.as_bytes(), None)
            .await;
        for i in 0..8 {
            topics
                .produce(&opportunities, b"acme", &opportunity(i), None)
                .await;
        }
        let (url, received) = receiver().await;
        let seen = Arc::new(Seen::default());
        let delivering = deliver(&topics, &url, seen.clone(), Duration::from_secs(60)).await;
        until("the 8 opportunities behind it are delivered", || {
            received.lock().unwrap().len() == 8
        })
        .await;
        until("its dead letter is acknowledged", || {
            seen.dead_letters() == 1
        })
        .await;
        assert_eq!(
            *seen.degraded.lock().unwrap(),
            [("hook".to_owned(), "truncated")]
        );
        let letters = dead_letters::read_all(&topics.config).unwrap();
        assert_eq!(letters.len(), 1, "{letters:?}");
        let letter = &letters[0].letter;
        assert_eq!(letter.source, Some(format!("{opportunities}/0/0")));
        assert!(
            letter
                .reason
                .as_deref()
                .unwrap()
                .contains("does not decode"),
            "{letter:?}"
        );
        assert!(
            letter.opportunity.len() < big.len() && big.as_bytes().starts_with(&letter.opportunity)
        );
        assert_eq!(
            letter.cut.as_deref(),
            Some(format!("payload cut to fit (payload={})", big.len()).as_str())
        );
        // Replaying it would only dead-letter the cut bytes again and drop the pointer to
        // the whole record: it stays listed.
        assert_eq!(
            dead_letters::replay(&topics.config, &letters, now_ms()).unwrap(),
            0
        );
        assert_eq!(dead_letters::read_all(&topics.config).unwrap(), letters);
        // The group commits past both.
        until("the opportunities topic is committed to its end", || {
            topics.committed(&opportunities) == 9
        })
        .await;
        delivering.finish().await;
    });
}

/// A record radar did not write may claim any due time: one in year 9999 waits no longer
/// than the schedule allows, and, once records behind it have settled, is parked anew at
/// the end of the retry topic so the commit passes them (a restart repeats none).
#[test]
fn a_retry_due_in_year_9999_lets_the_commit_pass_what_settled_behind_it() {
    let topics = Topics::new("far");
    // Dropped after the runtime: delivery stops (and commits) while the broker is up.
    runtime().block_on(async {
        let retries = topics.config.retry_topic.clone();
        let retry = |i: usize, due_ms: u64| Delivery {
            destination: "hook".into(),
            seq: 0,
            due_ms,
            attempts: 1,
            created_ms: now_ms(),
            last_error: Some("HTTP 503".into()),
            opportunity: opportunity(i),
        };
        let far = retry(0, u64::MAX);
        topics
            .produce(
                &retries,
                b"hook/far",
                &far.opportunity,
                Some(parked::retry_headers(&far)),
            )
            .await;
        for i in 1..=3 {
            let now = retry(i, now_ms());
            topics
                .produce(
                    &retries,
                    b"hook/now",
                    &now.opportunity,
                    Some(parked::retry_headers(&now)),
                )
                .await;
        }
        let (url, received) = receiver().await;
        let started = now_ms();
        let delivering = deliver(&topics, &url, Arc::default(), Duration::from_millis(300)).await;
        until("the three due now are delivered", || {
            received.lock().unwrap().len() == 3
        })
        .await;
        until("the retry topic is committed past them", || {
            topics.committed(&retries) >= 4
        })
        .await;
        // Parked again behind them, due no later than the longest wait allowed (here the
        // `Retry-After` cap, an hour) from when it was read.
        let reparked = topics.read(&retries, 4);
        assert_eq!(reparked.len(), 1);
        let (headers, value) = &reparked[0];
        assert_eq!(value, &far.opportunity);
        let due: u64 = headers["radar.due_ms"].parse().unwrap();
        assert!(
            due >= started + 3_600_000 && due <= now_ms() + 3_600_000,
            "due at {due}, read at about {started}"
        );
        assert_eq!(headers["radar.attempts"], "1");
        assert!(!received.lock().unwrap().contains(&format!("{:032x}", 0)));
        delivering.finish().await;
    });
}

/// An opportunity record with an empty value is dead-lettered with an empty value, which
/// must not read as a tombstone.
#[test]
fn an_empty_opportunity_record_is_dead_lettered_and_listed() {
    let topics = Topics::new("empty");
    // Dropped after the runtime: delivery stops (and commits) while the broker is up.
    runtime().block_on(async {
        let opportunities = topics.config.opportunities_topic.clone();
        topics.produce(&opportunities, b"acme", b"", None).await;
        let (url, _) = receiver().await;
        let seen = Arc::new(Seen::default());
        let delivering = deliver(&topics, &url, seen.clone(), Duration::from_secs(60)).await;
        until("its dead letter is acknowledged", || {
            seen.dead_letters() == 1
        })
        .await;
        let letters = dead_letters::read_all(&topics.config).unwrap();
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert!(letters[0].letter.opportunity.is_empty());
        assert!(
            letters[0]
                .letter
                .reason
                .as_deref()
                .unwrap()
                .contains("does not decode")
        );
        delivering.finish().await;
    });
}

/// Two letters whose keys are not UTF-8 and differ only there are two letters, and
/// replaying them writes the tombstone of each exact key.
#[test]
fn dead_letters_with_binary_keys_are_listed_apart_and_replayed_exactly() {
    let topics = Topics::new("keys");
    // Dropped after the runtime: delivery stops (and commits) while the broker is up.
    runtime().block_on(async {
        let topic = topics.config.dead_letter_topic.clone();
        let keys: [&[u8]; 2] = [b"\xff\x01", b"\xfe\x01"];
        for (i, key) in keys.iter().enumerate() {
            let dead = FailedDelivery {
                destination: "hook".into(),
                seq: i as u64,
                attempts: 1,
                created_ms: 1,
                failed_ms: 2,
                reason: "HTTP 400".into(),
                opportunity: opportunity(i),
            };
            let letter = parked::dead_letter(&dead, None, MESSAGE_MAX_BYTES);
            topics
                .produce(&topic, key, &letter.value, Some(letter.owned_headers()))
                .await;
        }
        let letters = dead_letters::read_all(&topics.config).unwrap();
        let listed: Vec<&[u8]> = letters.iter().map(|l| l.key.as_slice()).collect();
        assert_eq!(listed, [b"\xfe\x01", b"\xff\x01"]);
        let escaped: Vec<String> = letters
            .iter()
            .map(|Letter { key, .. }| dead_letters::escape_key(key))
            .collect();
        assert_eq!(escaped, ["\\xfe\\x01", "\\xff\\x01"]);
        assert_eq!(
            dead_letters::replay(&topics.config, &letters, now_ms()).unwrap(),
            2
        );
        assert_eq!(dead_letters::read_all(&topics.config).unwrap(), vec![]);
        // A header without a value reads as none, not as a crash.
        let odd = OwnedHeaders::new().insert(Header::<&str> {
            key: "radar.destination",
            value: None,
        });
        topics.produce(&topic, b"odd", b"", Some(odd)).await;
        assert!(dead_letters::read_all(&topics.config).is_ok());
    });
}

/// An opportunities topic deleted while its settlement ledger was kept: the ledger's
/// marks would skip the new topic's first records, so delivery refuses to start and
/// names the topic to delete.
#[test]
fn a_ledger_left_from_a_deleted_opportunities_topic_stops_delivery_at_start() {
    let topics = Topics::new("stale-ledger");
    let gone = KafkaDeliveryConfig::new(
        topics.config.client.clone(),
        "stale-ledger",
        "stale-ledger-deleted",
        1,
    );
    let mut admin = rdkafka::ClientConfig::new();
    admin.set("bootstrap.servers", &topics.broker.address);
    radar_kafka::topics::ensure(
        &admin,
        &gone.ledger_topic,
        1,
        1,
        radar_kafka::topics::Cleanup::Compact,
    )
    .unwrap();
    runtime().block_on(async {
        topics
            .producer()
            .send(
                FutureRecord::to(&gone.ledger_topic)
                    .key(r#"["stale-ledger-delivery","stale-ledger-deleted",0,"hook"]"#)
                    .payload(r#"{"below":40}"#),
                Timeout::Never,
            )
            .await
            .unwrap();
    });
    let events = "stale-ledger-events";
    let refused = KafkaDelivery::open(gone.clone(), events, now_ms() * 1_000).unwrap_err();
    let said = refused.to_string();
    assert!(
        said.contains("stale-ledger-deleted.settled") && said.contains("delete"),
        "{said}"
    );
    // An opportunities topic that exists starts with its ledger, whatever it holds.
    assert!(KafkaDelivery::open(topics.config.clone(), events, now_ms() * 1_000).is_ok());
}
