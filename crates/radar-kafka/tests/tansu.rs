//! The source against a Kafka-protocol broker process: tansu, an Apache-Kafka-compatible
//! broker (`scripts/install-tansu.sh` installs it; `.ci/run` does so). Each test starts
//! its own broker on a free loopback port, with its own topics and consumer group.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use radar_kafka::{CheckpointPolicy, OutboxSink, Progress, Source, SourceConfig, Stop};
use radar_store::Store;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// A tansu broker process, stopped when dropped.
struct Broker {
    child: Child,
    address: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu() -> PathBuf {
    if let Ok(path) = std::env::var("RADAR_TANSU") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/tansu");
    assert!(
        path.exists(),
        "tansu is not installed: run scripts/install-tansu.sh (or set RADAR_TANSU)"
    );
    path
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("tcp://{address}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut broker = Broker { child, address };
    let started = Instant::now();
    while TcpStream::connect(&broker.address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tansu did not listen"
        );
        // tansu exits (with status 0) when its port is taken: make sure it is ours.
        assert!(broker.child.try_wait().unwrap().is_none(), "tansu exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

fn lines() -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: 50,
        events: 2_000,
        seed: 21,
        invalid_ratio: 0.01,
        ..Default::default()
    };
    radar_gen::Generator::new(opts).unwrap().collect()
}

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
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn replayed(lines: &[String]) -> BTreeSet<String> {
    let mut out = Vec::new();
    let settings = Arc::new(radar::config::load(None).unwrap());
    radar::replay::run(settings, lines.join("\n").as_bytes(), &mut out).unwrap();
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

fn outbox_ids(store: &Store) -> BTreeSet<String> {
    store
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, json)| {
            serde_json::from_slice::<serde_json::Value>(&json).unwrap()["opportunity_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Runs a source until it has consumed `records`, or (with `None`) until records came and
/// then none for two seconds, or 60 s passed; then stops it.
fn run_until(
    servers: &str,
    topic: &str,
    group: &str,
    store: &Arc<Store>,
    records: Option<u64>,
    abrupt: bool,
) -> u64 {
    let config = SourceConfig {
        bootstrap_servers: servers.to_owned(),
        group_id: group.to_owned(),
        topics: vec![topic.to_owned()],
        dead_letter_topic: format!("{topic}.dead-letter"),
        client: vec![("session.timeout.ms".into(), "6000".into())],
        checkpoint: CheckpointPolicy {
            every_events: 100,
            every: Duration::from_millis(500),
        },
        poll_timeout: Duration::from_millis(100),
        max_batch: 100,
    };
    let settings = Arc::new(radar::config::load(None).unwrap());
    let source = Source::new(config, settings, store.clone()).unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = OutboxSink::new(store.clone());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            let (mut last, mut since) = (0, Instant::now());
            while started.elapsed() < Duration::from_secs(60) {
                let consumed = progress.consumed.load(Ordering::Relaxed);
                if consumed != last {
                    (last, since) = (consumed, Instant::now());
                }
                let done = match records {
                    Some(n) => consumed >= n,
                    None => consumed > 0 && since.elapsed() >= Duration::from_secs(2),
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
    progress.consumed.load(Ordering::Relaxed)
}

#[test]
fn events_in_give_replays_opportunities_out_and_survive_a_crash() {
    let broker = start_broker();
    let topic = format!("events-{}", std::process::id());
    let lines = lines();
    produce(&broker.address, &topic, &lines);
    let expected = replayed(&lines);
    assert!(expected.len() > 10);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let group = format!("radar-{}", std::process::id());
    let crashed_after = run_until(&broker.address, &topic, &group, &store, Some(1_000), true);
    assert!(crashed_after >= 1_000);
    let partial = outbox_ids(&store);
    assert!(
        partial.len() < expected.len(),
        "the crash came before the end"
    );

    // The same group resumes from the checkpoints; the rest of the records come in.
    let resumed = run_until(&broker.address, &topic, &group, &store, None, false);
    assert!(
        (2_000 - crashed_after..2_000).contains(&resumed),
        "resumed from the checkpoints, not from the start: {resumed} records after a crash at {crashed_after}"
    );
    assert_eq!(
        outbox_ids(&store),
        expected,
        "every opportunity of the replay, and no other"
    );
}
