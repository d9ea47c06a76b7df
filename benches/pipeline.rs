//! End-to-end throughput: Radar's Kafka source against a bare rdkafka consumer on the
//! same broker and messages.
//!
//! Produces `RADAR_BENCH_EVENTS` generated events (default 50k, 10k accounts) to a
//! 3-partition topic, then in the same run measures (a) a bare `BaseConsumer` reading
//! them all and (b) Radar consuming, processing, checkpointing and writing the outbox, and
//! prints both rates and their ratio. Budget (DESIGN.md): Radar ≥ 0.8× the bare consumer.
//! The broker is librdkafka's in-process mock cluster, or the broker at
//! `RADAR_BENCH_BOOTSTRAP` (e.g. a tansu started by hand; topics are created on produce).
//!
//! Run: `cargo bench --bench pipeline`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use radar_kafka::{CheckpointPolicy, OutboxSink, Progress, Source, SourceConfig, Stop};
use radar_store::Store;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() {
    let events: u64 = std::env::var("RADAR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let (_cluster, servers, broker) = match std::env::var("RADAR_BENCH_BOOTSTRAP") {
        Ok(servers) => (None, servers.clone(), servers),
        Err(_) => {
            let cluster = MockCluster::new(1).unwrap();
            cluster.create_topic("events", 3, 1).unwrap();
            cluster.create_topic("events.dead-letter", 1, 1).unwrap();
            let servers = cluster.bootstrap_servers();
            (Some(cluster), servers, "mock cluster".to_owned())
        }
    };

    let opts = radar_gen::Options {
        accounts: 10_000,
        events,
        seed: 1,
        ..Default::default()
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for line in radar_gen::Generator::new(opts).unwrap() {
        let key = line
            .split("\"account_id\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        loop {
            match producer.send(BaseRecord::to("events").key(&key).payload(&line)) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let bare = bare_consumer(&servers, events);
    let radar = radar_source(&servers, events);
    let (bare_rate, radar_rate) = (events as f64 / bare, events as f64 / radar);
    println!("pipeline: {events} events ({broker})");
    println!("pipeline: bare rdkafka consumer {bare_rate:.0} events/s ({bare:.2} s)");
    println!("pipeline: radar source          {radar_rate:.0} events/s ({radar:.2} s)");
    println!(
        "pipeline: ratio {:.2} (budget ≥ 0.80)",
        radar_rate / bare_rate
    );
}

/// Seconds for a bare consumer to read every message, from its first message on (the
/// group's assignment delay is not the consumer's speed).
fn bare_consumer(servers: &str, events: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", "bare")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["events"]).unwrap();
    let mut read = 0;
    let mut first = None;
    let mut bytes = 0usize;
    while read < events {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += rdkafka::Message::payload(&message).map_or(0, <[u8]>::len);
            read += 1;
        }
    }
    std::hint::black_box(bytes);
    first.map_or(0.0, |f| f.elapsed().as_secs_f64())
}

/// Seconds for Radar's source to consume and process every message, from the first on.
fn radar_source(servers: &str, events: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let settings = Arc::new(radar::config::load(None).unwrap());
    let config = SourceConfig {
        bootstrap_servers: servers.to_owned(),
        group_id: "radar".into(),
        topics: vec!["events".into()],
        dead_letter_topic: "events.dead-letter".into(),
        client: vec![
            ("session.timeout.ms".into(), "6000".into()),
            ("auto.offset.reset".into(), "earliest".into()),
        ],
        checkpoint: CheckpointPolicy {
            every_events: 50_000,
            every: Duration::from_secs(5),
        },
        poll_timeout: Duration::from_millis(100),
        max_batch: 10_000,
    };
    let source = Source::new(config, settings, store.clone()).unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = OutboxSink::new(store);
    let mut elapsed = 0.0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while progress.consumed.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let first = Instant::now();
            while progress.consumed.load(Ordering::Relaxed) < events {
                std::thread::sleep(Duration::from_millis(1));
            }
            elapsed = first.elapsed().as_secs_f64();
            stop.graceful();
        });
        source.run(&stop, &progress, &mut sink).unwrap();
    });
    elapsed
}
