//! The pipeline's configuration: the engine settings and everything `radar run` needs
//! around them (Kafka, the store, delivery, admin, shutdown), each problem with its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use radar_core::settings::{self, Settings};
use radar_delivery::settings::Env;
use radar_delivery::{DeliverySettings, KafkaDeliveryConfig};
use radar_kafka::{ChangelogConfig, CheckpointPolicy, SourceConfig};

use super::{ConfigError, RawConfig, load_delivery, version};
use crate::access::Access;

/// librdkafka settings radar owns: at-least-once and per-partition state depend on them.
const RESERVED_CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "group.protocol",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "client.id",
];

/// Everything `radar run` needs.
#[derive(Debug)]
pub struct PipelineConfig {
    pub engine: Settings,
    pub source: SourceConfig,
    pub store_path: PathBuf,
    pub delivery: DeliverySettings,
    pub admin: SocketAddr,
    /// After SIGTERM, the longest radar takes to stop before it exits anyway.
    pub shutdown_timeout: Duration,
    /// The configuration as read, for hot reloads to compare against.
    pub raw: RawConfig,
    /// The admin server's tokens and where peers may be (`[admin]`).
    pub access: Access,
    /// Where the config was read from (none: the built-in defaults), to read again on a
    /// reload.
    pub config_path: Option<PathBuf>,
    /// With `state.store = "kafka"`: delivery from the opportunities topic, as its own
    /// consumer group, with retries and dead letters on topics.
    pub kafka_delivery: Option<KafkaDeliveryConfig>,
    /// The `[[sources]]`, compiled; none: `kafka.topics` are Radar's envelope.
    pub sources: Vec<std::sync::Arc<crate::ingest::Ingest>>,
}

/// Why the store file at `checkpoint.path` cannot be created: its directory is missing
/// or not a directory (the file is created at start, its directory never). Judged where
/// the store is opened, not by `radar validate`, which may check a config on another
/// machine than the one it runs on.
pub fn store_directory_problem(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())?;
    let why = if dir.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    Some(format!(
        "checkpoint.path: {} {why}; create it or name another",
        dir.display()
    ))
}

/// Validates a raw config into the pipeline's, reading secrets through `env`.
pub fn pipeline_from_raw(raw: &RawConfig, env: Env<'_>) -> Result<PipelineConfig, ConfigError> {
    let mut problems = Vec::new();
    let engine = settings::build(raw.engine())
        .map_err(|errors| problems.extend(errors.iter().map(ToString::to_string)))
        .ok()
        .map(|mut engine| {
            engine.version = Some(version(raw).into());
            engine
        });
    let mut duration = |key: &str, text: &str| match humantime::parse_duration(text) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!(
                "{key}: {text:?} is not a duration like \"5s\": {e}"
            ));
            None
        }
    };
    let poll_timeout = duration("kafka.poll_timeout", &raw.kafka.poll_timeout);
    let shutdown_timeout = duration("shutdown.timeout", &raw.shutdown.timeout);
    let every = duration("checkpoint.every", &raw.checkpoint.every);
    let kafka = &raw.kafka;
    for (key, value) in [
        ("kafka.bootstrap_servers", &kafka.bootstrap_servers),
        ("kafka.group_id", &kafka.group_id),
        ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
        ("checkpoint.path", &raw.checkpoint.path),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("{key}: must not be empty"));
        }
    }
    if kafka.topics.is_empty() || kafka.topics.iter().any(|t| t.trim().is_empty()) {
        problems.push("kafka.topics: needs at least one topic, none empty".into());
    }
    if kafka.topics.contains(&kafka.dead_letter_topic) {
        problems.push("kafka.dead_letter_topic: must not be one of kafka.topics".into());
    }
    if kafka.topics.contains(&kafka.opportunities_topic)
        || kafka.opportunities_topic == kafka.dead_letter_topic
    {
        problems.push(
            "kafka.opportunities_topic: must not be one of kafka.topics nor the dead-letter topic"
                .into(),
        );
    }
    for key in kafka.client.keys() {
        let setting = key.replace('_', ".");
        if RESERVED_CLIENT_KEYS.contains(&setting.as_str()) {
            let why = match setting.as_str() {
                "client.id" => "it tells the other instances where admin.advertise is",
                _ => "offsets move only after checkpoints",
            };
            problems.push(format!(
                "kafka.client.{key}: radar sets {setting} itself ({why})"
            ));
        }
    }
    // With the state in Kafka the opportunities topic is the outbox, so there always is one.
    let opportunities_topic = match (raw.state.store.as_str(), kafka.opportunities_topic.trim()) {
        ("kafka", "") => Some(format!("{}-opportunities", kafka.group_id)),
        (_, "") => None,
        (_, topic) => Some(topic.to_owned()),
    };
    let changelog = match raw.state.store.as_str() {
        "local" => None,
        "kafka" => {
            let topic = match raw.state.changelog_topic.trim() {
                "" => format!("{}-state", kafka.group_id),
                topic => topic.to_owned(),
            };
            if kafka.topics.len() != 1 {
                problems.push(
                    "state.store: \"kafka\" keeps one source topic's state: kafka.topics must name exactly one".into(),
                );
            }
            if kafka.topics.contains(&topic)
                || kafka.dead_letter_topic == topic
                || opportunities_topic.as_ref() == Some(&topic)
            {
                problems.push(format!(
                    "state.changelog_topic: {topic:?} is already used for events, dead letters or opportunities"
                ));
            }
            if raw.state.changelog_replication == 0 || raw.state.changelog_replication < -1 {
                problems.push(
                    "state.changelog_replication: must be at least 1, or -1 for the broker's default".into(),
                );
            }
            Some(ChangelogConfig {
                topic,
                replication: raw.state.changelog_replication,
            })
        }
        other => {
            problems.push(format!(
                "state.store: {other:?} is neither \"local\" nor \"kafka\""
            ));
            None
        }
    };
    if kafka.max_batch == 0 {
        problems.push("kafka.max_batch: must be at least 1".into());
    }
    if raw.checkpoint.every_events == 0 {
        problems.push("checkpoint.every_events: must be at least 1".into());
    }
    let secrets_from_files: Vec<(String, String)> = kafka
        .secret_files
        .iter()
        .filter_map(|(key, file)| match std::fs::read_to_string(file) {
            Ok(value) => Some((key.replace('_', "."), value.trim().to_owned())),
            Err(e) => {
                problems.push(format!(
                    "kafka.secret_files.{key}: reading {}: {e}",
                    file.display()
                ));
                None
            }
        })
        .collect();
    // What librdkafka itself would refuse when `run` creates its clients: unknown
    // settings and bad values.
    for (key, value) in &kafka.client {
        let setting = key.replace('_', ".");
        if let Err(e) = rdkafka::ClientConfig::new()
            .set(&setting, value)
            .create_native_config()
        {
            let said = e.to_string();
            let said = if radar_kafka::is_secret(&setting) && !value.is_empty() {
                said.replace(value.as_str(), "[redacted]")
            } else {
                said
            };
            problems.push(format!("kafka.client.{key}: {said}"));
        }
    }
    let delivery = load_delivery(&raw.delivery, env)
        .map_err(|refused| problems.extend(refused.problems))
        .ok();
    let admin = raw
        .admin
        .listen
        .parse::<SocketAddr>()
        .map_err(|_| {
            problems.push(format!(
                "admin.listen: {:?} is not an address like 127.0.0.1:9464",
                raw.admin.listen
            ))
        })
        .ok();
    let advertise = match (raw.admin.advertise.trim(), admin) {
        ("", Some(listen)) if listen.ip().is_unspecified() => Some(format!(":{}", listen.port())),
        ("", Some(listen)) => Some(listen.to_string()),
        ("", None) => None,
        (address, _) => match address.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Some(address.to_owned())
            }
            _ => {
                problems.push(format!(
                    "admin.advertise: {address:?} is not a host:port like radar-0.radar:9464"
                ));
                None
            }
        },
    };
    let access = Access::from_raw(&raw.admin, admin, env)
        .map_err(|errors| problems.extend(errors.iter().map(ToString::to_string)))
        .ok();
    let client: Vec<(String, String)> = kafka
        .client
        .iter()
        .map(|(k, v)| (k.replace('_', "."), v.clone()))
        .chain(secrets_from_files)
        .collect();
    match (
        engine,
        poll_timeout,
        every,
        delivery,
        (admin, access),
        shutdown_timeout,
    ) {
        (
            Some(engine),
            Some(poll_timeout),
            Some(every),
            Some(delivery),
            (Some(admin), Some(access)),
            Some(shutdown_timeout),
        ) if problems.is_empty() => Ok(PipelineConfig {
            engine,
            source: SourceConfig {
                bootstrap_servers: kafka.bootstrap_servers.clone(),
                group_id: kafka.group_id.clone(),
                topics: kafka.topics.clone(),
                dead_letter_topic: kafka.dead_letter_topic.clone(),
                opportunities_topic: opportunities_topic.clone(),
                client: client.clone(),
                checkpoint: CheckpointPolicy {
                    every_events: raw.checkpoint.every_events,
                    every,
                },
                poll_timeout,
                max_batch: kafka.max_batch,
                changelog: changelog.clone(),
                advertise,
                mapped: Vec::new(),
            },
            store_path: PathBuf::from(&raw.checkpoint.path),
            delivery,
            admin,
            shutdown_timeout,
            raw: raw.clone(),
            access,
            config_path: None,
            sources: Vec::new(),
            kafka_delivery: changelog.as_ref().zip(opportunities_topic.as_ref()).map(
                |(changelog, topic)| {
                    let mut client = client.clone();
                    client.push(("bootstrap.servers".into(), kafka.bootstrap_servers.clone()));
                    KafkaDeliveryConfig::new(client, &kafka.group_id, topic, changelog.replication)
                },
            ),
        }),
        _ => Err(ConfigError { problems }),
    }
}
