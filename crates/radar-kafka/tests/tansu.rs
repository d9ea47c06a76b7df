//! The source against a Kafka-protocol broker process: tansu, an Apache-Kafka-compatible
//! broker (`scripts/install-tansu.sh` installs it; `.ci/run` does so). Each test starts
//! its own broker on a free loopback port, with its own topics and consumer group.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use radar_store::Store;
use radar_testkit::broker::start_broker;
use support::{Until, config, events, outbox_ids, produce, replayed, run_source};

#[test]
fn events_in_give_replays_opportunities_out_and_survive_a_crash() {
    let broker = start_broker();
    let topic = format!("events-{}", std::process::id());
    let lines = events(2_000, 21, 0.01);
    produce(&broker.address, &topic, &lines);
    let expected = replayed(&lines);
    assert!(expected.len() > 10);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let group = format!("radar-{}", std::process::id());
    let source = || config(&broker.address, &topic, &group);
    let crashed_after = run_source(source(), &store, Until::Consumed(1_000), true);
    assert!(crashed_after >= 1_000);
    let partial = outbox_ids(&store);
    assert!(
        partial.len() < expected.len(),
        "the crash came before the end"
    );

    // The same group resumes from the checkpoints; the rest of the records come in.
    let resumed = run_source(source(), &store, Until::Committed(2_000), false);
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
