//! `radar run` against a real Kafka-protocol broker process (tansu): events in, webhooks
//! out, rejected events on the dead-letter topic with their reasons, a `kill -9` of radar
//! mid-stream and a restart that loses nothing, and a SIGTERM that exits 0 with every
//! offset committed.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use radar_testkit::broker::start_broker;
use radar_testkit::http::{get, listening, metric};
use radar_testkit::kafka::{committed, produce, read_all};
use radar_testkit::process::free_port;
use radar_testkit::{Eventually, eventually};
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support::{
    events, field, receiver, replayed, start_radar, unique, well_formed, write_config,
};

#[test]
fn radar_run_survives_kill_9_delivers_every_opportunity_and_dead_letters_bad_events() {
    let broker = start_broker();
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
    let unique = || unique(&received);
    let dir = tempfile::tempdir().unwrap();
    let group = format!("radar-it-{}", std::process::id());
    let config = write_config(dir.path(), &servers, &group, &topic, &url);

    // First run: killed with SIGKILL once part of the stream is through.
    let admin = free_port();
    let mut first = start_radar(&config, admin, &[]);
    Eventually::within(Duration::from_secs(60))
        .every(Duration::from_millis(20))
        .until(
            "a third of the opportunities are delivered, to kill radar",
            || {
                let got = unique().len();
                if got >= expected.len() / 3 {
                    Ok(())
                } else {
                    Err(format!("{got} of {}", expected.len()))
                }
            },
        );
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
    eventually(
        Duration::from_secs(90),
        "the restarted radar delivered as many opportunities as replay gives",
        || {
            let got = unique().len();
            if got >= expected.len() {
                Ok(())
            } else {
                Err(format!("{got} of {}", expected.len()))
            }
        },
    );
    assert_eq!(
        unique(),
        expected,
        "exactly replay's opportunities, none lost, after kill -9"
    );
    // The records after the checkpoints are consumed again (whether only those is told
    // below, once radar has stopped at the end of every partition).
    let again = 3_000 - resume_at;
    eventually(
        Duration::from_secs(30),
        "the records after the checkpoints are consumed",
        || {
            let consumed = metric(admin, "radar_events_consumed_total").map_or(0, |n| n as i64);
            if consumed >= again {
                Ok(())
            } else {
                Err(format!("consumed {consumed} of {again}"))
            }
        },
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
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        committed(&reader, &partitions),
        3_000,
        "every offset committed on SIGTERM: {per_partition:?}\n{stderr}"
    );
    // Committed to the end of every partition, so it consumed all it would ever have:
    // exactly the records after the checkpoints, none from before them again.
    assert!(
        stderr.contains(&format!("events: read={again} ")),
        "resumed from the checkpoints ({again} records to read), not from the start: {stderr}"
    );

    // One dead letter per rejected event, each with its reason and source. "Too far in
    // the future" is judged against the record's Kafka timestamp in the pipeline (the
    // producer's clock), against the stream in a replay of a file: the generator's
    // far-future events are in the past of today's clock, so only replay rejects them.
    rejected.remove("too_far_in_future");
    let expected_dead: u64 = rejected.values().sum();
    let dead = read_all(&servers, &dead_letter_topic, expected_dead as usize);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for (headers, _) in &dead {
        let source = &headers["radar.source"];
        assert!(source.starts_with(&format!("{topic}/")), "{source}");
        *by_reason
            .entry(headers["radar.reason"].clone())
            .or_default() += 1;
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

/// What an adversarial test of `radar run` sent, as one stream on a real broker: a record
/// a default producer accepts (100 KB key, 900 KB invalid value) whose dead letter once
/// outgrew the producer's limit and stopped radar at every start; a producer whose clock
/// says 2099 (event and record time), which once made every other account of its
/// partition look idle; and records keyed otherwise than by their account, or not at all.
/// Radar keeps running, dead-letters each bad record so it fits, and delivers exactly
/// what `radar replay` gives for the well-keyed events.
#[test]
fn radar_run_shrugs_off_a_hostile_producer() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("hostile-{}", std::process::id());
    let lines = events(60, 2_000, 13);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .unwrap();
    let send = |key: Option<&[u8]>, payload: &[u8], time: Option<i64>| {
        let mut record = BaseRecord::<[u8], [u8]>::to(&topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(time) = time {
            record = record.timestamp(time);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    };
    let account = |line: &str| -> String {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["account_id"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    // Key and value together just under the producer's 1,000,000 bytes, with room for
    // the record's framing: a dead letter adding headers to both whole is over it.
    let poison_key = vec![b'k'; 100_000];
    let poison = vec![b'{'; 899_900];
    let clock = r#"{"event_id":"clock","type":"user_login","account_id":"acct_clock","timestamp":"2099-01-01T00:00:00Z"}"#;
    let clock_ms = 4_070_908_800_000; // 2099-01-01T00:00:00Z
    let mut well_keyed = Vec::new();
    let mut mis_keyed = 0;
    for (i, line) in lines.iter().enumerate() {
        match i {
            100 => send(Some(&poison_key), &poison, None),
            1_000 => {
                send(Some(b"acct_clock"), clock.as_bytes(), Some(clock_ms));
                well_keyed.push(clock.to_owned());
            }
            _ => {}
        }
        let id = account(line);
        if i % 97 == 5 && !id.is_empty() {
            // Keyed by something else (every other time), or not keyed at all.
            let key = (mis_keyed % 2 == 0).then_some(&b"user_42"[..]);
            send(key, line.as_bytes(), None);
            mis_keyed += 1;
        } else {
            send(Some(id.as_bytes()), line.as_bytes(), None);
            well_keyed.push(line.clone());
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let records = lines.len() + 2;
    let (opportunities, _) = replayed(&well_keyed);
    let expected = field(&opportunities, "opportunity_id");
    assert!(expected.len() > 20 && mis_keyed > 10);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let delivered = || unique(&received);
    let dir = tempfile::tempdir().unwrap();
    let group = format!("radar-hostile-{}", std::process::id());
    let config = write_config(dir.path(), &servers, &group, &topic, &url);
    let admin = free_port();
    let radar = start_radar(&config, admin, &[]);
    let consumed =
        || -> usize { metric(admin, "radar_events_consumed_total").map_or(0, |n| n as usize) };
    let mut radar = radar;
    eventually(
        Duration::from_secs(90),
        "radar consumed every record and delivered as many opportunities as replay gives",
        || {
            if let Some(status) = radar.child().try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(radar.child().stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                panic!("radar stopped ({status}):\n{stderr}");
            }
            let (read, got) = (consumed(), delivered().len());
            if !listening(admin) {
                Err("the admin server is not up".to_owned())
            } else if read < records || got < expected.len() {
                Err(format!(
                    "consumed {read} of {records}, delivered {got} of {}",
                    expected.len()
                ))
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(consumed(), records, "radar consumed every record");
    assert_eq!(
        delivered(),
        expected,
        "exactly replay's opportunities for the well-keyed events"
    );
    let metrics = get(admin, "/metrics").1;
    assert!(
        metrics.contains(&format!(
            "radar_events_rejected_total{{reason=\"key_mismatch\"}} {mis_keyed}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("radar_dead_letters_degraded_total{outcome=\"truncated\"} 1"),
        "{metrics}"
    );

    let child = radar.take();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let letters = read_all(&servers, &format!("{topic}.dead-letter"), mis_keyed + 1);
    let of_reason = |reason: &str| {
        letters
            .iter()
            .filter(|(headers, _)| headers["radar.reason"] == reason)
            .collect::<Vec<_>>()
    };
    assert_eq!(of_reason("key_mismatch").len(), mis_keyed);
    let poisoned: Vec<_> = letters
        .iter()
        .filter(|(headers, _)| headers.contains_key("radar.truncated"))
        .collect();
    assert_eq!(poisoned.len(), 1, "{letters:?}");
    let (headers, payload) = poisoned[0];
    assert_eq!(headers["radar.reason"], "invalid_json");
    assert_eq!(headers["radar.truncated"], "key");
    assert_eq!(headers["radar.original_sizes"], "key=100000 payload=899900");
    assert_eq!(payload.len(), 899_900, "the value is kept whole");
}

/// `state.store = "kafka"` against a real broker: radar creates the compacted changelog
/// topic, and an instance started on a new machine (an empty state directory) after
/// another stopped takes the partitions' state from it and resumes where that one
/// stopped: it consumes only the new events and delivers exactly what `radar replay` gives
/// for all of them.
#[test]
fn radar_run_with_a_changelog_resumes_on_a_new_machine() {
    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("changelog-{}", std::process::id());
    let group = format!("radar-changelog-{}", std::process::id());
    let lines = well_formed(60, 3_000, 17);
    let (first_half, second_half) = lines.split_at(1_500);
    produce(&servers, &topic, first_half);
    let (opportunities, _) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let delivered = || unique(&received);
    let run_on_a_new_machine = |records: u64| {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &servers, &group, &topic, &url);
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("\n[state]\nstore = \"kafka\"\n");
        std::fs::write(&config, text).unwrap();
        let admin = free_port();
        let radar = start_radar(&config, admin, &[]);
        eventually(
            Duration::from_secs(60),
            "radar consumed the new records",
            || {
                let consumed = metric(admin, "radar_events_consumed_total");
                if consumed >= Some(records) {
                    Ok(())
                } else {
                    Err(format!("consumed {consumed:?} of {records}"))
                }
            },
        );
        let child = radar.take();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        stderr
    };

    let first = run_on_a_new_machine(1_500);
    assert!(!first.contains("changelog records read"), "{first}");
    produce(&servers, &topic, second_half);
    // The second instance consumes only the new half: were it to start from the
    // beginning, the summary would say read=3000.
    let second = run_on_a_new_machine(1_500);
    assert!(second.contains("changelog records read"), "{second}");
    assert!(second.contains("events: read=1500 "), "{second}");
    eventually(
        Duration::from_secs(10),
        "exactly replay's opportunities are delivered",
        || {
            let got = delivered();
            if got == expected {
                Ok(())
            } else {
                Err(format!(
                    "missing {:?}, extra {:?}\n{first}\n{second}",
                    expected.difference(&got).collect::<Vec<_>>(),
                    got.difference(&expected).collect::<Vec<_>>()
                ))
            }
        },
    );
}

/// A changelog topic that exists but deletes by age would lose quiet accounts from
/// restores: radar refuses it at start, saying why.
#[test]
fn radar_run_refuses_a_changelog_topic_that_is_not_compacted() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("uncompacted-{}", std::process::id());
    let group = format!("radar-uncompacted-{}", std::process::id());
    produce(&servers, &topic, &events(5, 10, 3));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .unwrap();
    let partitions = {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .unwrap();
        let metadata = reader
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        i32::try_from(metadata.topics()[0].partitions().len()).unwrap()
    };
    let state = format!("{group}-state");
    let new = NewTopic::new(&state, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "delete");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for created in runtime
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap()
    {
        created.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &servers, &group, &topic, "http://127.0.0.1:9/");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[state]\nstore = \"kafka\"\n");
    std::fs::write(&config, text).unwrap();
    let output = start_radar(&config, free_port(), &[])
        .take()
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cleanup.policy=delete") && stderr.contains(&state),
        "{stderr}"
    );
}
