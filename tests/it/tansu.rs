//! `radar run` against a real Kafka-protocol broker process (tansu): events in, webhooks
//! out, rejected events on the dead-letter topic with their reasons, a `kill -9` of radar
//! mid-stream and a restart that loses nothing, and a SIGTERM that exits 0 with every
//! offset committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use crate::run::{
    KillOnDrop, committed, events, field, free_port, get, produce, receiver, replayed,
};

#[path = "../../crates/radar-kafka/tests/support/broker.rs"]
mod broker;

fn start_radar(config: &Path, admin: u16, env: &[(&str, &str)]) -> KillOnDrop {
    let child: Child = Command::new(env!("CARGO_BIN_EXE_radar"))
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("TEST_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    KillOnDrop(Some(child))
}

/// Every record of `topic` (all partitions), read from the start: at least `count`, then
/// whatever more comes within a second.
fn read_all(servers: &str, topic: &str, count: usize) -> Vec<(String, String)> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", format!("reader-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    reader.subscribe(&[topic]).unwrap();
    let mut records = Vec::new();
    let (started, mut last) = (Instant::now(), Instant::now());
    while (records.len() < count || last.elapsed() < Duration::from_secs(1))
        && started.elapsed() < Duration::from_secs(60)
    {
        if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let header = |name: &str| {
                message
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == name))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            records.push((header("radar.reason"), header("radar.source")));
        }
    }
    records
}

#[test]
fn radar_run_survives_kill_9_delivers_every_opportunity_and_dead_letters_bad_events() {
    let broker = broker::start_broker();
    let servers = broker.address.clone();
    let topic = format!("events-it-{}", std::process::id());
    let dead_letter_topic = format!("{topic}.dead-letter");
    let lines = events(60, 3_000, 11);
    produce(&servers, &topic, &lines);
    let (opportunities, engine) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    let mut rejected: BTreeMap<String, u64> = radar_core::event::RejectReason::ALL
        .into_iter()
        .map(|r| (r.as_str().to_owned(), engine.stats().rejected(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(expected.len() > 20 && !rejected.is_empty());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let unique = || {
        received
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    let group = format!("radar-it-{}", std::process::id());
    std::fs::write(
        &config,
        format!(
            r#"[kafka]
bootstrap_servers = "{servers}"
group_id = "{group}"
topics = ["{topic}"]
dead_letter_topic = "{dead_letter_topic}"
max_batch = 100

[kafka.client]
session_timeout_ms = "6000"

[checkpoint]
path = "{state}"
every_events = 100
every = "200ms"

[delivery]
allow_networks = ["127.0.0.0/8"]

[[delivery.destinations]]
name = "hook"
kind = "webhook"
url = "{url}"
secret_env = "TEST_HOOK_SECRET"
"#,
            state = dir.path().join("state.redb").display()
        ),
    )
    .unwrap();

    // First run: killed with SIGKILL once part of the stream is through.
    let admin = free_port();
    let mut first = start_radar(&config, admin, &[]);
    let started = Instant::now();
    while unique().len() < expected.len() / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.0.as_mut().unwrap().kill().unwrap();
    first.0.as_mut().unwrap().wait().unwrap();
    let before_restart = unique();
    assert!(before_restart.len() < expected.len(), "killed mid-stream");

    // Where the checkpoints say to resume.
    let resume_at: i64 = {
        let store = radar_store::Store::open(&dir.path().join("state.redb")).unwrap();
        (0..4)
            .map(|p| {
                store
                    .load_checkpoint(&topic, p)
                    .unwrap()
                    .checkpoint
                    .map_or(0, |c| c.offset)
            })
            .sum()
    };
    assert!(resume_at > 0, "the first run checkpointed");

    // Second run: resumes from the checkpoints and delivers the rest. It checkpoints (and
    // so commits) only when it stops, to show that SIGTERM commits.
    let admin = free_port();
    let second = start_radar(
        &config,
        admin,
        &[
            ("RADAR__CHECKPOINT__EVERY", "1h"),
            ("RADAR__CHECKPOINT__EVERY_EVENTS", "1000000"),
        ],
    );
    let started = Instant::now();
    while unique().len() < expected.len() && started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        unique(),
        expected,
        "exactly replay's opportunities, none lost, after kill -9"
    );
    // Exactly the records after the checkpoints are consumed again.
    let consumed = || -> i64 {
        get(admin, "/metrics")
            .1
            .lines()
            .find_map(|l| l.strip_prefix("radar_events_consumed_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let started = Instant::now();
    while consumed() < 3_000 - resume_at {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "consumed {} of {}",
            consumed(),
            3_000 - resume_at
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        consumed(),
        3_000 - resume_at,
        "resumed from the checkpoints, not from the start"
    );

    // SIGTERM: a clean exit, and every offset committed.
    let child = second.take();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", &group)
        .create()
        .unwrap();
    let metadata = reader
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        partitions.add_partition(&topic, p.id());
    }
    let per_partition = reader
        .committed_offsets(partitions.clone(), Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        committed(&reader, &partitions),
        3_000,
        "every offset committed on SIGTERM: {per_partition:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // One dead letter per rejected event, each with its reason and source. "Too far in
    // the future" is judged against the record's Kafka timestamp in the pipeline (the
    // producer's clock), against the stream in a replay of a file: the generator's
    // far-future events are in the past of today's clock, so only replay rejects them.
    rejected.remove("too_far_in_future");
    let expected_dead: u64 = rejected.values().sum();
    let dead = read_all(&servers, &dead_letter_topic, expected_dead as usize);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for (reason, source) in &dead {
        assert!(source.starts_with(&format!("{topic}/")), "{source}");
        *by_reason.entry(reason.clone()).or_default() += 1;
    }
    // A record processed twice around the kill may be dead-lettered twice (at least once).
    for (reason, count) in &rejected {
        assert!(
            by_reason.get(reason).copied().unwrap_or(0) >= *count,
            "{reason}: {by_reason:?} vs {rejected:?}"
        );
    }
    assert_eq!(
        by_reason.keys().collect::<Vec<_>>(),
        rejected.keys().collect::<Vec<_>>()
    );
}
