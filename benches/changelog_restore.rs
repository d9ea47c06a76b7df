//! Restoring a partition's state from its changelog (`state.store = "kafka"`), as an
//! instance on a new machine does: 1M accounts in ≤ 5 s (docs/design.md#budgets).
//!
//! Runs `RADAR_BENCH_EVENTS` generated events (default 3M) over `RADAR_BENCH_ACCOUNTS`
//! Zipf-skewed accounts (default 1M; 8M accounts and 6M events track 1.28M) through one
//! partition worker, checkpoints it into a changelog topic, then times a restore into a
//! worker with an empty local store. The broker is `RADAR_BENCH_BROKER` (e.g. a tansu
//! started by hand, as for the pipeline bench); without it, librdkafka's mock cluster,
//! which keeps only the newest part of a long partition, so the restore then reads less
//! than was written (the bench says so).
//!
//! Run: `RADAR_BENCH_BROKER=127.0.0.1:9092 cargo bench --bench changelog_restore`

use std::sync::Arc;
use std::time::{Duration, Instant};

use radar_kafka::changelog::Changelog;
use radar_kafka::{ChangelogConfig, KafkaRecord, PartitionWorker};
use radar_store::Store;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() {
    let events: u64 = std::env::var("RADAR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let accounts: u64 = std::env::var("RADAR_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let settings = Arc::new(radar::config::load(None).expect("the default config is valid"));
    let lines: Vec<String> = radar_gen::Generator::new(radar_gen::Options {
        accounts,
        events,
        seed: 1,
        ..Default::default()
    })
    .expect("valid options")
    .collect();

    let run = std::process::id();
    let (source, state) = (format!("events-{run}"), format!("radar-state-{run}"));
    let mock;
    let servers = match std::env::var("RADAR_BENCH_BROKER") {
        Ok(servers) => {
            // A broker that creates topics as they are written to: the source topic
            // exists once it has a record.
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &servers)
                .create()
                .expect("a producer");
            producer
                .send(BaseRecord::to(&source).key("warm-up").payload("{}"))
                .map_err(|(e, _)| e)
                .expect("a record");
            producer
                .flush(Duration::from_secs(30))
                .expect("the record is written");
            servers
        }
        Err(_) => {
            mock = MockCluster::new(1).expect("a mock cluster");
            mock.create_topic(&source, 1, 1).expect("the source topic");
            mock.create_topic(&state, 1, 1)
                .expect("the changelog topic");
            mock.create_topic(&format!("{state}.dead-letter"), 1, 1)
                .expect("the quarantine topic");
            mock.bootstrap_servers()
        }
    };
    // The events are in the source topic too, as they would be: a restore checks that
    // the completion record it resumes from is within the source partition.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("linger.ms", "50")
        .create()
        .expect("a producer");
    for line in &lines {
        let mut record = BaseRecord::<[u8], [u8]>::to(&source)
            .partition(0)
            .payload(line.as_bytes());
        while let Err((_, back)) = producer.send(record) {
            record = back;
            producer.poll(Duration::from_millis(10));
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("the events are written");
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &servers);
    let config = ChangelogConfig {
        topic: state,
        replication: -1,
    };
    let changelog = Changelog::open(&client, &config, &source).expect("the changelog opens");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let now = Instant::now();

    let written = Store::open(&dir.path().join("written.redb")).expect("a store");
    let (mut worker, _) = PartitionWorker::restore(
        settings.clone(),
        &written,
        Some(&changelog),
        &source,
        0,
        now,
    )
    .expect("a worker");
    let records: Vec<KafkaRecord<'_>> = lines
        .iter()
        .enumerate()
        .map(|(offset, line)| KafkaRecord {
            offset: offset as i64,
            payload: line.as_bytes(),
            timestamp: None,
            key: radar_gen::account_key(line),
            headers: &[],
        })
        .collect();
    for chunk in records.chunks(10_000) {
        worker.process(chunk, &mut Vec::new(), &mut Vec::new());
    }
    let accounts = worker.engine().tracked_accounts();
    let started = Instant::now();
    worker
        .checkpoint(&written, Some(&changelog), now)
        .expect("a checkpoint");
    println!(
        "changelog_restore: {events} events, {accounts} accounts checkpointed to the changelog (and the local store) in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    drop(worker);

    let empty = Store::open(&dir.path().join("empty.redb")).expect("a store");
    let started = Instant::now();
    let (restored, how) =
        PartitionWorker::restore(settings, &empty, Some(&changelog), &source, 0, now)
            .expect("a restore");
    println!(
        "changelog_restore: restored {} accounts from {} changelog records in {:.2} s, resuming at offset {:?}",
        restored.engine().tracked_accounts(),
        how.from_changelog.unwrap_or(0),
        started.elapsed().as_secs_f64(),
        how.resume_at
    );
    if restored.engine().tracked_accounts() != accounts {
        println!(
            "changelog_restore: the broker kept {} of the {accounts} accounts written (the mock cluster keeps only a partition's newest records): give RADAR_BENCH_BROKER",
            restored.engine().tracked_accounts()
        );
    }
}
