//! `radar run` with `state.store = "kafka"` against tansu, given what used to take the
//! whole group down: changelog records it cannot use, and one account busy enough that
//! its state outgrew a Kafka record.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use radar_testkit::broker::start_broker;
use radar_testkit::eventually;
use radar_testkit::http::{get, metric};
use radar_testkit::kafka::produce_keyed;
use radar_testkit::process::{KillOnDrop, free_port};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::support::{field, receiver, replayed, start_radar, unique, well_formed, write_config};

/// Produces `lines` keyed by account (taken as the generator writes it: quicker than
/// parsing 200,000 lines).
fn produce_all(servers: &str, topic: &str, lines: &[String]) {
    produce_keyed(servers, topic, lines, |line| {
        radar_gen::account_key(line).to_vec()
    });
}

/// Runs `radar run` with `config` until it holds `partitions` partitions, restored, and
/// has consumed `records`, then stops it with SIGTERM: it must exit 0. Returns its stderr
/// and `/metrics` as they were just before.
fn run_until(config: &Path, partitions: u64, records: u64) -> (String, String) {
    let admin = free_port();
    let mut radar: KillOnDrop = start_radar(config, admin, &[]);
    eventually(
        Duration::from_secs(120),
        "radar holds every partition, restored, and consumed the records",
        || {
            if let Ok(Some(status)) = radar.child().try_wait() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(radar.child().stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                panic!("radar exited with {status}: {stderr}");
            }
            let held = metric(admin, "radar_kafka_partitions_assigned");
            let consumed = metric(admin, "radar_events_consumed_total");
            if held >= Some(partitions) && consumed >= Some(records) {
                Ok(())
            } else {
                Err(format!(
                    "{held:?} partitions of {partitions}, consumed {consumed:?} of {records}"
                ))
            }
        },
    );
    let metrics = get(admin, "/metrics").1;
    let child = radar.take();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (stderr, metrics)
}

/// Waits up to 20 s for the receiver to hold exactly `expected`; fails naming the gap.
fn wait_for_exactly(
    received: &std::sync::Mutex<Vec<String>>,
    expected: &std::collections::BTreeSet<String>,
) {
    eventually(
        Duration::from_secs(20),
        "the receiver holds exactly replay's opportunities",
        || {
            let got = unique(received);
            if got == *expected {
                Ok(())
            } else {
                Err(format!(
                    "missing {:?}, extra {:?}",
                    expected.difference(&got).collect::<Vec<_>>(),
                    got.difference(expected).collect::<Vec<_>>()
                ))
            }
        },
    );
}

/// A config for `radar run` in `dir` with `store` ("kafka" or "local").
fn config_with_store(
    dir: &Path,
    servers: &str,
    group: &str,
    topic: &str,
    url: &str,
    store: &str,
) -> std::path::PathBuf {
    let config = write_config(dir, servers, group, topic, url);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[state]\nstore = \"{store}\"\n"));
    std::fs::write(&config, text).unwrap();
    config
}

/// Garbage in the changelog (an account's state that does not decode, a key that is no
/// account id, completion records at -1 and 2^62, in every partition) used to make every
/// instance given the partition exit 1, on every start, on any machine. Now the next
/// instance sets them aside, counts them, rebuilds the account from the source, and
/// delivers exactly what `radar replay` gives; the one after finds them superseded.
#[test]
fn unusable_changelog_records_are_set_aside_and_the_group_carries_on() {
    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("quarantine-{}", std::process::id());
    let group = format!("radar-quarantine-{}", std::process::id());
    let lines = well_formed(40, 2_000, 23);
    let (first_half, second_half) = lines.split_at(1_000);
    produce_all(&servers, &topic, first_half);
    let (opportunities, _) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &servers);
    let partitions = radar_kafka::topics::partitions(&client, &topic).unwrap();
    let on_a_new_machine = |records: u64| {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with_store(dir.path(), &servers, &group, &topic, &url, "kafka");
        run_until(&config, partitions as u64, records)
    };

    on_a_new_machine(1_000);
    let victim = radar_gen::account_key(&first_half[0]).to_vec();
    let changelog = format!("{group}-state");
    let completion_at = |offset: i64| {
        let mut value = vec![1];
        value.extend_from_slice(&offset.to_le_bytes());
        value
    };
    let garbage: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (victim, b"\x01not a state".to_vec()),
        (vec![0xff, 0xfe], b"{}".to_vec()),
        (Vec::new(), completion_at(-1)),
        (Vec::new(), completion_at(1 << 62)),
    ];
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .unwrap();
    assert_eq!(
        radar_kafka::topics::partitions(&client, &changelog).unwrap(),
        partitions,
        "radar made {changelog}"
    );
    for partition in 0..i32::try_from(partitions).unwrap() {
        for (key, value) in &garbage {
            producer
                .send(
                    BaseRecord::to(&changelog)
                        .partition(partition)
                        .key(key.as_slice())
                        .payload(value.as_slice()),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    produce_all(&servers, &topic, second_half);

    // Every partition is read from its start to rebuild the account (its records only
    // up to where the others' state stands), so all 2,000 are read.
    let (stderr, metrics) = on_a_new_machine(2_000);
    assert!(
        stderr.contains("unusable changelog record set aside"),
        "{stderr}"
    );
    for reason in [
        "unreadable_state",
        "key_not_utf8",
        "unreadable_completion",
        "completion_beyond_source",
    ] {
        let line = format!("radar_changelog_quarantined_total{{reason=\"{reason}\"}} {partitions}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    wait_for_exactly(&received, &expected);

    // Once it holds every partition, restored, nothing was set aside.
    let (stderr, _) = on_a_new_machine(0);
    assert!(
        !stderr.contains("unusable changelog record set aside"),
        "superseded, yet set aside again: {stderr}"
    );
}

/// One account sending 200,000 events a day (its state used to remember a 16-byte hash
/// of each, and its changelog record passed Kafka's 1 MB between 55,000 and 65,000
/// events: every checkpoint failed and radar exited 1). In both store modes radar now
/// takes the day, stops cleanly and delivers exactly what `radar replay` gives.
#[test]
fn a_busy_account_is_checkpointed_in_both_store_modes() {
    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("busy-{}", std::process::id());
    let lines: Vec<String> = radar_gen::Generator::new(radar_gen::Options {
        accounts: 1,
        events: 200_000,
        days: 1,
        seed: 29,
        ..Default::default()
    })
    .unwrap()
    .collect();
    produce_all(&servers, &topic, &lines);
    let (opportunities, engine) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    let state = engine.accounts().next().map(|(_, state)| state).unwrap();
    let bytes = radar_core::snapshot::encode_account(state).len();
    assert!(bytes < 300_000, "the account's state is {bytes} bytes");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for store in ["kafka", "local"] {
        let (url, received) = receiver(&runtime);
        let group = format!("radar-busy-{store}-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let config = config_with_store(dir.path(), &servers, &group, &topic, &url, store);
        // Checkpoints as often as by default, not every 100 records as the other tests'.
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace("every_events = 100\n", "every_events = 100000\n");
        std::fs::write(&config, text.replace("every = \"200ms\"", "every = \"1s\"")).unwrap();
        run_until(&config, 1, lines.len() as u64);
        wait_for_exactly(&received, &expected);
    }
}
