//! The source against librdkafka's in-process mock cluster: a real Kafka protocol peer,
//! fast enough for every test run. (`tansu.rs` runs against a broker process.)
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use radar_kafka::ChangelogConfig;
use radar_store::Store;
use radar_testkit::kafka::read_all;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::{
    Until, config, events, outbox_ids, produce, replayed, run_source, run_source_progress,
};

#[test]
fn live_output_over_partitions_equals_replay_and_survives_a_crash() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 3, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(4_000, 11, 0.0);
    produce(&servers, "events", &lines);
    let expected = replayed(&lines);
    assert!(
        expected.len() > 20,
        "the stream should produce opportunities"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());

    // First run: crash half-way.
    let source = || config(&servers, "events", "radar");
    let crashed_after = run_source(source(), &store, Until::Consumed(2_000), true);
    let first = outbox_ids(&store);
    // Second run, same group and store: resumes from the checkpoints and finishes.
    let resumed = run_source(source(), &store, Until::Committed(4_000), false);

    // The outbox holds every opportunity of the replay, and no other; those made after
    // the last checkpoint before the crash may be there twice, with the same id.
    let all = outbox_ids(&store);
    assert_eq!(
        all, expected,
        "every opportunity of the replay, and no other"
    );
    assert!(
        first.len() < expected.len(),
        "the crash came before the end"
    );
    // The restart resumed from the checkpoints (every 100 records or 500 ms), not from
    // the beginning: it redid at most what followed the last checkpoint.
    assert!(
        (4_000 - crashed_after..4_000).contains(&resumed),
        "the restart consumed {resumed} of 4,000 records after a crash at {crashed_after}"
    );
}

/// With the state in a changelog (`store = "kafka"`), a crashed instance is replaced by
/// one on a new machine, with an empty local store: it restores the partitions from the
/// changelog and resumes after their last completion records, not from the start, and
/// between them every opportunity of the replay is written.
#[test]
fn with_a_changelog_a_new_machine_carries_on_where_a_crashed_one_stopped() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 3, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    // The mock cluster answers no topic creation (tansu's tests see radar create it).
    cluster.create_topic("radar-state", 3, 1).unwrap();
    cluster
        .create_topic("radar-state.dead-letter", 3, 1)
        .unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(4_000, 31, 0.0);
    produce(&servers, "events", &lines);
    let expected = replayed(&lines);
    let source = || {
        let mut config = config(&servers, "events", "radar");
        config.changelog = Some(ChangelogConfig {
            topic: "radar-state".into(),
            replication: 1,
        });
        config
    };

    let first_machine = tempfile::tempdir().unwrap();
    let first = Arc::new(Store::open(&first_machine.path().join("state.redb")).unwrap());
    let crashed_after = run_source(source(), &first, Until::Consumed(2_000), true);

    let second_machine = tempfile::tempdir().unwrap();
    let second = Arc::new(Store::open(&second_machine.path().join("state.redb")).unwrap());
    let resumed = run_source(source(), &second, Until::Committed(4_000), false);

    let mut all = outbox_ids(&first);
    all.extend(outbox_ids(&second));
    assert_eq!(
        all, expected,
        "every opportunity of the replay, and no other"
    );
    assert!(
        (4_000 - crashed_after..4_000).contains(&resumed),
        "the new machine consumed {resumed} of 4,000 records after a crash at {crashed_after}"
    );
}

#[test]
fn rejected_events_go_to_the_dead_letter_topic_with_their_reason() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 2, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(1_000, 11, 0.05);
    produce(&servers, "events", &lines);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    run_source(
        config(&servers, "events", "radar"),
        &store,
        Until::Consumed(1_000),
        false,
    );

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

    // Every record written to the topic by now: the source has stopped.
    let letters = read_all(&servers, "events.dead-letter", rejected);
    assert_eq!(
        letters.len(),
        rejected,
        "one dead letter per rejected record"
    );
    let mut reasons = BTreeSet::new();
    for (headers, payload) in &letters {
        reasons.insert(headers["radar.reason"].clone());
        let payload = String::from_utf8_lossy(payload).into_owned();
        assert!(lines.contains(&payload), "the original bytes");
        assert!(headers.contains_key("radar.source"));
    }
    for reason in [
        "invalid_json",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
    ] {
        assert!(reasons.contains(reason), "{reason} not in {reasons:?}");
    }
}

/// A dead letter the broker refuses (here: its first produce request answered "message
/// size too large", as a topic with a lower `max.message.bytes` would) does not stop the
/// source: the letter goes again with the record's coordinates and reason only, it is
/// counted, and everything after it is processed and committed.
#[test]
fn a_dead_letter_the_broker_refuses_is_sent_as_its_coordinates_and_the_source_moves_on() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 2, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(1_000, 29, 0.05);
    produce(&servers, "events", &lines);
    let expected = replayed(&lines);
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let progress = run_source_progress(
        config(&servers, "events", "radar"),
        &store,
        Until::Committed(1_000),
        false,
    );
    assert_eq!(progress.consumed.load(Ordering::Relaxed), 1_000);
    assert_eq!(
        outbox_ids(&store),
        expected,
        "everything after it processed"
    );
    let dropped = progress
        .dead_letters
        .payload_dropped
        .load(Ordering::Relaxed);
    assert!(dropped >= 1, "the refused letters are counted");
    assert_eq!(progress.dead_letters.lost.load(Ordering::Relaxed), 0);

    let rejected = progress.stats.lock().unwrap().rejected_total() as usize;
    let letters = read_all(&servers, "events.dead-letter", rejected);
    assert_eq!(letters.len(), rejected, "one letter per rejected record");
    let coordinates: Vec<_> = letters
        .iter()
        .filter(|(headers, _)| headers.contains_key("radar.payload_dropped"))
        .collect();
    assert_eq!(coordinates.len() as u64, dropped);
    for (headers, payload) in coordinates {
        assert!(payload.is_empty());
        assert!(
            headers["radar.source"].starts_with("events/"),
            "{headers:?}"
        );
        assert!(!headers["radar.reason"].is_empty());
        assert!(
            headers["radar.payload_dropped"].contains("too large"),
            "{headers:?}"
        );
    }
}

#[test]
fn opportunities_are_also_produced_to_the_opportunities_topic_keyed_by_account() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 2, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    cluster.create_topic("opportunities", 2, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(1_500, 17, 0.0);
    produce(&servers, "events", &lines);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let mut source = config(&servers, "events", "radar");
    source.opportunities_topic = Some("opportunities".into());
    run_source(source, &store, Until::Consumed(1_500), false);
    let expected = outbox_ids(&store);
    assert!(!expected.is_empty());

    let mut produced = BTreeSet::new();
    for (_, payload) in read_all(&servers, "opportunities", expected.len()) {
        let opportunity: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let id = opportunity["opportunity_id"].as_str().unwrap().to_owned();
        assert!(produced.insert(id), "each opportunity once");
    }
    assert_eq!(produced, expected, "the same opportunities as the outbox");
}

/// A second instance joins the group while the first is mid-stream: the first revokes
/// its partitions while it may have a round polled and another being processed. Both
/// share one store (as instances sharing a state store would) and checkpoint only on
/// revocation and stop, so each revoked partition must be checkpointed by the first and
/// restored by whichever instance gets it next. Every event is then applied exactly
/// once, and the outbox holds each opportunity of the replay exactly once.
#[test]
fn a_rebalance_mid_stream_hands_state_over_without_loss_or_repeat() {
    rebalance_mid_stream("range,roundrobin");
}

/// The same with incremental rebalancing: the first instance keeps the partitions it is
/// not asked to give up, and checkpoints only those it hands over.
#[test]
fn a_cooperative_rebalance_mid_stream_hands_state_over_without_loss_or_repeat() {
    rebalance_mid_stream("cooperative-sticky");
}

fn rebalance_mid_stream(strategy: &str) {
    use radar_kafka::{CheckpointPolicy, OutboxSink, Progress, Source, Stop};

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("events", 4, 1).unwrap();
    cluster.create_topic("events.dead-letter", 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(8_000, 23, 0.0);
    let expected = replayed(&lines);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let settings = support::settings();
    let new_source = || {
        let mut config = config(&servers, "events", "radar");
        config
            .client
            .push(("partition.assignment.strategy".into(), strategy.into()));
        // Only revocation (and the final stop) checkpoints: the handover rests on it.
        config.checkpoint = CheckpointPolicy {
            every_events: u64::MAX,
            every: Duration::from_secs(3_600),
        };
        Source::new(config, settings.clone(), store.clone()).unwrap()
    };
    let first = new_source();
    let (stop, first_progress, second_progress) =
        (Stop::default(), Progress::default(), Progress::default());
    let read = |progress: &Progress| progress.stats.lock().unwrap().read;
    std::thread::scope(|scope| {
        // Events keep arriving over about 8 s, so the second instance joins mid-stream.
        scope.spawn(|| {
            for chunk in lines.chunks(100) {
                produce(&servers, "events", chunk);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        scope.spawn(|| {
            first
                .run(&stop, &first_progress, &mut OutboxSink::new(store.clone()))
                .unwrap()
        });
        until_or_stop(&stop, 30, "the first instance read 1,000 events", || {
            read(&first_progress) >= 1_000
        });
        // Created only now: a consumer joins its group when it is created.
        let second = new_source();
        let (stop_ref, progress_ref) = (&stop, &second_progress);
        let mut sink = OutboxSink::new(store.clone());
        scope.spawn(move || second.run(stop_ref, progress_ref, &mut sink).unwrap());
        until_or_stop(&stop, 60, "the two instances read all 8,000 events", || {
            read(&first_progress) + read(&second_progress) >= 8_000
        });
        stop.graceful();
    });

    let (first_read, second_read) = (read(&first_progress), read(&second_progress));
    assert!(
        first_read < 8_000 && second_read > 0,
        "the second instance took partitions over: {first_read} + {second_read}"
    );
    assert_eq!(
        first_read + second_read,
        8_000,
        "every event applied exactly once across the handover"
    );
    let outbox: Vec<String> = store
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, json)| {
            serde_json::from_slice::<serde_json::Value>(&json).unwrap()["opportunity_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let unique: BTreeSet<String> = outbox.iter().cloned().collect();
    assert_eq!(unique.len(), outbox.len(), "no opportunity written twice");
    assert_eq!(
        unique, expected,
        "every opportunity of the replay, and no other"
    );
}

/// Waits up to `seconds` until `check`; on a timeout it stops the sources first, so that
/// the scope they run in ends and the test fails with its message instead of hanging.
fn until_or_stop(stop: &radar_kafka::Stop, seconds: u64, what: &str, check: impl FnMut() -> bool) {
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        radar_testkit::eventually(Duration::from_secs(seconds), what, check)
    }));
    if let Err(panic) = waited {
        stop.graceful();
        std::panic::resume_unwind(panic);
    }
}
