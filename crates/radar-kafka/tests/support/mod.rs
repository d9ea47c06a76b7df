//! What the broker tests share: generated events produced keyed by account, the replay's
//! opportunities to compare with, and a source run until told to stop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use radar_kafka::{CheckpointPolicy, OutboxSink, Progress, Source, SourceConfig, Stop, TopicSink};
use radar_store::Store;

mod produce;

pub use produce::produce;

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
    let records = lines.iter().map(|line| radar_core::Record {
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
    }
}

/// When a test stops its source.
pub enum Until {
    /// Once this many records were consumed.
    Consumed(u64),
    /// Once records came and then none for this long.
    Quiet(Duration),
}

/// Runs a source until told (or 60 s pass), then stops it gracefully or abruptly (as a
/// crash would); returns how many records it consumed. Opportunities go to the store's
/// outbox, as in the pipeline.
pub fn run_source(config: SourceConfig, store: &Arc<Store>, until: Until, abrupt: bool) -> u64 {
    run_source_progress(config, store, until, abrupt)
        .consumed
        .load(Ordering::Relaxed)
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
    let source = Source::new(config, settings(), store.clone()).unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = (on_topic, OutboxSink::new(store.clone()));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = Instant::now();
            let (mut last, mut since) = (0, Instant::now());
            while started.elapsed() < Duration::from_secs(60) {
                let consumed = progress.consumed.load(Ordering::Relaxed);
                if consumed != last {
                    (last, since) = (consumed, Instant::now());
                }
                let done = match until {
                    Until::Consumed(n) => consumed >= n,
                    Until::Quiet(quiet) => consumed > 0 && since.elapsed() >= quiet,
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
    progress
}
