//! The source against librdkafka's in-process mock cluster: a real Kafka protocol peer,
//! fast enough for every test run. (Tests against a broker process come with tansu.)
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use radar_kafka::{CheckpointPolicy, OutboxSink, Progress, Source, SourceConfig, Stop};
use radar_store::Store;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn settings() -> Arc<radar_core::Settings> {
    Arc::new(radar::config::load(None).unwrap())
}

fn events(n: u64, invalid_ratio: f64) -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: 60,
        events: n,
        seed: 11,
        invalid_ratio,
        ..Default::default()
    };
    radar_gen::Generator::new(opts).unwrap().collect()
}

/// Produces each line keyed by its account id (as product code would).
fn produce(servers: &str, topic: &str, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for line in lines {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["account_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(line))
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// The opportunity ids `radar replay` gives over the same lines.
fn replayed(lines: &[String]) -> BTreeSet<String> {
    let input = lines.join("\n");
    let mut out = Vec::new();
    radar::replay::run(settings(), input.as_bytes(), &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["opportunity_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn config(servers: &str) -> SourceConfig {
    SourceConfig {
        bootstrap_servers: servers.to_owned(),
        group_id: "radar".into(),
        topics: vec!["events".into()],
        dead_letter_topic: "events.dead-letter".into(),
        client: vec![
            ("session.timeout.ms".into(), "6000".into()),
            ("auto.offset.reset".into(), "earliest".into()),
        ],
        checkpoint: CheckpointPolicy {
            every_events: 200,
            every: Duration::from_millis(500),
        },
        poll_timeout: Duration::from_millis(50),
        max_batch: 100,
    }
}

/// When a test stops its source.
enum Until {
    /// Once this many records were consumed.
    Consumed(u64),
    /// Once records came and then none for this long.
    Quiet(Duration),
}

/// Runs a source until told (or 60 s pass), then stops it gracefully or abruptly (as a
/// crash would); returns how many records it consumed. Opportunities go to the store's
/// outbox, as in the pipeline.
fn run_source(servers: &str, store: &Arc<Store>, until: Until, abrupt: bool) -> u64 {
    let source = Source::new(config(servers), settings(), store.clone()).unwrap();
    let stop = Stop::default();
    let progress = Progress::default();
    let mut sink = OutboxSink::new(store.clone());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            let (mut last, mut since) = (0, Instant::now());
            while started.elapsed() < Duration::from_secs(60) {
                let consumed = progress.consumed.load(std::sync::atomic::Ordering::Relaxed);
                if consumed != last {
                    (last, since) = (consumed, Instant::now());
                }
                let done = match until {
                    Until::Consumed(n) => consumed >= n,
                    Until::Quiet(quiet) => consumed > 0 && since.elapsed() >= quiet,
                };
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if abrupt {
                stop.abrupt()
            } else {
                stop.graceful()
            }
        });
        source.run(&stop, &progress, &mut sink).unwrap();
    });
    progress.consumed.load(std::sync::atomic::Ordering::Relaxed)
}

/// The opportunity ids in the outbox, in order.
fn outbox_ids(store: &Store) -> Vec<String> {
    store
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, json)| {
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            value["opportunity_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn live_output_over_partitions_equals_replay_and_survives_a_crash() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 3, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(4_000, 0.0);
    produce(&servers, "events", &lines);
    let expected = replayed(&lines);
    assert!(
        expected.len() > 20,
        "the stream should produce opportunities"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());

    // First run: crash half-way.
    let crashed_after = run_source(&servers, &store, Until::Consumed(2_000), true);
    let first = outbox_ids(&store);
    // Second run, same group and store: resumes from the checkpoints and finishes.
    let resumed = run_source(
        &servers,
        &store,
        Until::Quiet(Duration::from_secs(2)),
        false,
    );

    // The outbox holds every opportunity of the replay, and no other; those made after
    // the last checkpoint before the crash may be there twice, with the same id.
    let all: BTreeSet<String> = outbox_ids(&store).into_iter().collect();
    assert_eq!(
        all, expected,
        "every opportunity of the replay, and no other"
    );
    assert!(
        first.len() < expected.len(),
        "the crash came before the end"
    );
    // The restart resumed from the checkpoints (every 200 records or 500 ms), not from
    // the beginning: it redid at most what followed the last checkpoint.
    assert!(
        (4_000 - crashed_after..4_000).contains(&resumed),
        "the restart consumed {resumed} of 4,000 records after a crash at {crashed_after}"
    );
}

#[test]
fn rejected_events_go_to_the_dead_letter_topic_with_their_reason() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 2, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(1_000, 0.05);
    produce(&servers, "events", &lines);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    run_source(&servers, &store, Until::Consumed(1_000), false);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["events.dead-letter"]).unwrap();
    // Live, the record time is the produce time (now): nothing is ahead of it.
    let record_time = Some(i64::MAX / 2);
    let rejected = lines
        .iter()
        .filter(|l| {
            radar_core::event::decode(l.as_bytes(), record_time, 3_600_000)
                .and_then(|e| e.properties())
                .is_err()
        })
        .count();
    assert!(rejected > 0);

    // Read until every expected dead letter is in (or 30 s pass), then a little longer to
    // catch any extra one.
    let mut reasons = BTreeSet::new();
    let mut count = 0;
    let started = Instant::now();
    let mut complete_at = None;
    while started.elapsed() < Duration::from_secs(30)
        && complete_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(1))
    {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        count += 1;
        if count == rejected {
            complete_at = Some(Instant::now());
        }
        let headers = message.headers().unwrap();
        let reason = headers.iter().find(|h| h.key == "radar.reason").unwrap();
        reasons.insert(String::from_utf8(reason.value.unwrap().to_vec()).unwrap());
        let payload = String::from_utf8_lossy(message.payload().unwrap()).into_owned();
        assert!(lines.contains(&payload), "the original bytes");
        assert!(headers.iter().any(|h| h.key == "radar.source"));
    }
    assert_eq!(count, rejected, "one dead letter per rejected record");
    for reason in [
        "invalid_json",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
    ] {
        assert!(reasons.contains(reason), "{reason} not in {reasons:?}");
    }
}
