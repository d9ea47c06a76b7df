//! End-to-end throughput: Radar's Kafka source against a bare rdkafka consumer on the
//! same broker and messages.
//!
//! Produces `RADAR_BENCH_EVENTS` generated events (default 50k, over
//! `RADAR_BENCH_ACCOUNTS` accounts, default 10k) to a
//! 3-partition topic, then in the same run measures (a) a bare `BaseConsumer` reading
//! them all and (b) Radar consuming, processing, checkpointing and writing the outbox, and
//! prints both rates and their ratio. Budget (DESIGN.md): Radar ≥ 0.8× the bare consumer.
//! Then it produces at a fixed rate (`RADAR_BENCH_RATE` events/s, default 10,000, for 5 s)
//! while Radar consumes, and prints the event → outbox latency (from the produce call to
//! the opportunity being in the outbox, where delivery reads it; it is on disk by the
//! next checkpoint) at p50, p99 and max.
//! The broker is librdkafka's in-process mock cluster (which keeps about 5 MB per
//! partition, so stay near the default size), or the broker at `RADAR_BENCH_BOOTSTRAP`
//! (e.g. a tansu started by hand; topics are created on produce). `RADAR_BENCH_CLIENT`
//! adds librdkafka settings to Radar's consumer, e.g. `fetch.wait.max.ms=10` for the mock
//! cluster, which does not answer a waiting fetch when records arrive.
//!
//! Run: `cargo bench --bench pipeline`
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radar_kafka::{
    CheckpointPolicy, OpportunitySink, OutboxSink, Progress, SinkError, Source, SourceConfig, Stop,
};
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
            cluster.create_topic("latency", 3, 1).unwrap();
            cluster.create_topic("latency.dead-letter", 1, 1).unwrap();
            let servers = cluster.bootstrap_servers();
            (Some(cluster), servers, "mock cluster".to_owned())
        }
    };

    let accounts: u64 = std::env::var("RADAR_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let opts = radar_gen::Options {
        accounts,
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
    let metadata = producer
        .client()
        .fetch_metadata(Some("events"), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    println!(
        "pipeline: {events} events over {accounts} accounts, {partitions} partitions ({broker})"
    );
    println!("pipeline: bare rdkafka consumer {bare_rate:.0} events/s ({bare:.2} s)");
    println!("pipeline: radar source          {radar_rate:.0} events/s ({radar:.2} s)");
    println!(
        "pipeline: ratio {:.2} (budget ≥ 0.80)",
        radar_rate / bare_rate
    );

    let rate: u64 = std::env::var("RADAR_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut latencies = fixed_rate_latencies(&servers, rate, Duration::from_secs(5));
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "pipeline: event → outbox at {rate} events/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} opportunities)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        latencies.len()
    );
}

/// An outbox sink that notes, when each flush has written opportunities to the outbox,
/// how long ago their triggering event was produced.
struct TimingSink {
    inner: OutboxSink,
    produced: Arc<Mutex<HashMap<String, Instant>>>,
    pending: Vec<String>,
    latencies: Vec<Duration>,
}

impl OpportunitySink for TimingSink {
    fn accept(
        &mut self,
        opportunity: radar_core::Opportunity,
        json: Vec<u8>,
    ) -> Result<(), SinkError> {
        if let Some(event) = opportunity.triggered_by.first() {
            self.pending.push(event.to_string());
        }
        self.inner.accept(opportunity, json)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()?;
        let now = Instant::now();
        let produced = self.produced.lock().unwrap();
        for event in self.pending.drain(..) {
            if let Some(at) = produced.get(&event) {
                self.latencies.push(now - *at);
            }
        }
        Ok(())
    }
}

/// Produces generated events at `rate` per second for `span` while a Radar source
/// consumes them; returns each opportunity's event → outbox latency.
fn fixed_rate_latencies(servers: &str, rate: u64, span: Duration) -> Vec<Duration> {
    let produced = Arc::new(Mutex::new(HashMap::new()));
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "1")
        .create()
        .unwrap();
    // Brokers that create topics on produce (tansu) need the topic before the consumer
    // subscribes; this record is rejected (dead-lettered) and timed by no one.
    producer
        .send(BaseRecord::to("latency").key("warm-up").payload("{}"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let mut config = source_config(servers, "latency", "radar-latency");
    config.max_batch = 10_000;
    let source = Source::new(
        config,
        Arc::new(radar::config::load(None).unwrap()),
        store.clone(),
    )
    .unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = TimingSink {
        inner: OutboxSink::new(store),
        produced: produced.clone(),
        pending: Vec::new(),
        latencies: Vec::new(),
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let lines = radar_gen::Generator::new(radar_gen::Options {
                accounts: 10_000,
                events: rate * span.as_secs(),
                seed: 2,
                ..Default::default()
            })
            .unwrap();
            // Wait for the source's partitions: latency, not the group join, is measured.
            while progress.partitions.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            let started = Instant::now();
            for (sent, line) in lines.enumerate() {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let field = |name: &str| {
                    line.split(&format!("\"{name}\":\""))
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap_or_default()
                        .to_owned()
                };
                produced
                    .lock()
                    .unwrap()
                    .insert(field("event_id"), Instant::now());
                while producer
                    .send(
                        BaseRecord::to("latency")
                            .key(&field("account_id"))
                            .payload(&line),
                    )
                    .is_err()
                {
                    producer.poll(Duration::from_millis(1));
                }
                producer.poll(Duration::ZERO);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            std::thread::sleep(Duration::from_secs(1));
            stop.graceful();
        });
        source.run(&stop, &progress, &mut sink).unwrap();
    });
    sink.latencies
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

/// Radar's source config for the bench; `RADAR_BENCH_CLIENT="key=value,..."` adds
/// librdkafka settings (e.g. `fetch.wait.max.ms=10`).
fn source_config(servers: &str, topic: &str, group: &str) -> SourceConfig {
    let extra: Vec<(String, String)> = std::env::var("RADAR_BENCH_CLIENT")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    SourceConfig {
        bootstrap_servers: servers.to_owned(),
        group_id: group.into(),
        topics: vec![topic.into()],
        dead_letter_topic: format!("{topic}.dead-letter"),
        opportunities_topic: None,
        client: [
            ("session.timeout.ms".into(), "6000".into()),
            ("auto.offset.reset".into(), "earliest".into()),
        ]
        .into_iter()
        .chain(extra)
        .collect(),
        checkpoint: CheckpointPolicy {
            every_events: 100_000,
            every: Duration::from_secs(5),
        },
        poll_timeout: Duration::from_millis(100),
        max_batch: 10_000,
        advertise: None,
        changelog: None,
    }
}

/// Seconds for Radar's source to consume and process every message, from the first on.
fn radar_source(servers: &str, events: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let settings = Arc::new(radar::config::load(None).unwrap());
    let config = source_config(servers, "events", "radar");
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
