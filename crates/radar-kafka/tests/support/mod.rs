//! What the broker tests share: generated events produced keyed by account, the replay's
//! opportunities to compare with, and a source run until told to stop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use radar_kafka::{CheckpointPolicy, OutboxSink, Progress, Source, SourceConfig, Stop, TopicSink};
use radar_store::Store;
pub use radar_testkit::kafka::{self, produce};
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The engine settings of the default configuration (`config/radar.toml`).
pub fn settings() -> Arc<radar_core::Settings> {
    let mut table: toml::Table =
        toml::from_str(include_str!("../../../../config/radar.toml")).unwrap();
    table.retain(|key, _| radar_core::settings::ENGINE_SECTIONS.contains(&key));
    let raw = toml::Value::Table(table).try_into().unwrap();
    Arc::new(radar_core::settings::build(raw).unwrap())
}

pub fn events(events: u64, seed: u64, invalid_ratio: f64) -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: 60,
        events,
        seed,
        invalid_ratio,
        ..Default::default()
    };
    radar_gen::Generator::new(opts).unwrap().collect()
}

fn opportunity_id(json: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(json).unwrap();
    value["opportunity_id"].as_str().unwrap().to_owned()
}

/// The opportunity ids one engine gives over the same lines in order, as `radar replay`
/// does.
pub fn replayed(lines: &[String]) -> BTreeSet<String> {
    let mut engine = radar_core::Engine::new(settings());
    let (mut opportunities, mut outcomes) = (Vec::new(), Vec::new());
    let records = lines.iter().map(|line| radar_core::EventRecord {
        bytes: line.as_bytes(),
        time: None,
        key: None,
    });
    engine.process_batch(records, &mut opportunities, &mut outcomes);
    opportunities
        .iter()
        .map(|o| o.opportunity_id.to_string())
        .collect()
}

/// The opportunity ids in the store's outbox.
pub fn outbox_ids(store: &Store) -> BTreeSet<String> {
    store
        .outbox_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, json)| opportunity_id(&json))
        .collect()
}

/// A source over `topic` for consumer group `group`, checkpointing every 100 records or
/// 500 ms, in poll rounds of 100 so a crash can land mid-stream.
pub fn config(servers: &str, topic: &str, group: &str) -> SourceConfig {
    SourceConfig {
        bootstrap_servers: servers.to_owned(),
        group_id: group.to_owned(),
        topics: vec![topic.to_owned()],
        dead_letter_topic: format!("{topic}.dead-letter"),
        opportunities_topic: None,
        client: vec![("session.timeout.ms".into(), "6000".into())],
        checkpoint: CheckpointPolicy {
            every_events: 100,
            every: Duration::from_millis(500),
        },
        poll_timeout: Duration::from_millis(50),
        max_batch: 100,
        changelog: None,
        advertise: None,
        mapped: Vec::new(),
    }
}

/// When a test stops its source.
pub enum Until {
    /// Once this many records were consumed.
    Consumed(u64),
    /// Once the group's committed offsets over the topic add up to this many records:
    /// every record produced was processed and checkpointed.
    Committed(i64),
}

/// How long a source may take to get there.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs a source until told, then stops it gracefully or abruptly (as a crash would);
/// returns how many records it consumed. Opportunities go to the store's outbox, as in
/// the pipeline. Fails if it does not get there within a minute.
pub fn run_source(config: SourceConfig, store: &Arc<Store>, until: Until, abrupt: bool) -> u64 {
    run_source_progress(config, store, until, abrupt)
        .consumed
        .load(Ordering::Relaxed)
}

/// The group's committed offsets over every partition of `topic`, added up.
fn committed_over(servers: &str, group: &str, topic: &str) -> impl Fn() -> i64 + use<> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = reader
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        partitions.add_partition(topic, partition.id());
    }
    move || kafka::committed(&reader, &partitions)
}

/// [`run_source`], returning all the source reported. With an opportunities topic in the
/// config, opportunities also go there, as in the pipeline.
pub fn run_source_progress(
    config: SourceConfig,
    store: &Arc<Store>,
    until: Until,
    abrupt: bool,
) -> Progress {
    let on_topic = config
        .opportunities_topic
        .as_ref()
        .map(|topic| TopicSink::new(&config, topic).unwrap());
    let committed = committed_over(
        &config.bootstrap_servers,
        &config.group_id,
        &config.topics[0],
    );
    let source = Source::new(config, settings(), store.clone()).unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = (on_topic, OutboxSink::new(store.clone()));
    let (mut seen, mut reached) = (String::new(), false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            while !reached && started.elapsed() < DEADLINE {
                let consumed = progress.consumed.load(Ordering::Relaxed);
                (reached, seen) = match until {
                    Until::Consumed(n) => (consumed >= n, format!("{consumed} consumed")),
                    Until::Committed(n) => {
                        let at = committed();
                        (at >= n, format!("{at} committed"))
                    }
                };
                std::thread::sleep(Duration::from_millis(20));
            }
            // Stopped whatever happened, so that the source returns and the test can fail
            // with its message.
            if abrupt {
                stop.abrupt()
            } else {
                stop.graceful()
            }
        });
        source.run(&stop, &progress, &mut sink).unwrap();
    });
    let wanted = match until {
        Until::Consumed(n) => format!("{n} consumed"),
        Until::Committed(n) => format!("{n} committed"),
    };
    assert!(
        reached,
        "timed out after {DEADLINE:?} waiting for {wanted}; last seen: {seen}"
    );
    progress
}
