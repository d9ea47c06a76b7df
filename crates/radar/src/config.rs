//! Configuration loading: the built-in `config/radar.toml`, then the file given with
//! `--config`, then `RADAR__SECTION__KEY` environment variables, through the `config`
//! crate; then `radar_core::settings::build` (and, for `radar run`, the pipeline checks
//! here) report every bad key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, File, FileFormat};
use radar_core::settings::{
    self, RawEngine, RawGates, RawOpportunities, RawPlaybook, RawPriority, RawScoring, RawSettings,
    Settings, SettingsError,
};
use radar_delivery::settings::Env;
use radar_delivery::{DeliverySettings, KafkaDeliveryConfig, RawDelivery};
use radar_kafka::{ChangelogConfig, CheckpointPolicy, SourceConfig};

use crate::access::Access;
use serde::Deserialize;

/// The default configuration, compiled in so `radar` runs from any directory.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/radar.toml");

/// Why a configuration cannot be used: one or more problems, each naming its key.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<Vec<SettingsError>> for ConfigError {
    fn from(errors: Vec<SettingsError>) -> Self {
        ConfigError {
            problems: errors.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The whole file: the engine's sections, checked by `radar-core`, and the pipeline's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub engine: RawEngine,
    pub opportunities: RawOpportunities,
    pub gates: RawGates,
    pub scoring: RawScoring,
    pub priority: RawPriority,
    #[serde(default)]
    pub playbooks: Vec<RawPlaybook>,
    pub kafka: RawKafka,
    pub checkpoint: RawCheckpoint,
    pub state: RawState,
    pub admin: RawAdmin,
    pub shutdown: RawShutdown,
    #[serde(default)]
    pub delivery: RawDelivery,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
    /// Where the other instances reach this one's admin server; empty: `listen`, or if
    /// that is 0.0.0.0 / [::], this host as the broker sees it at `listen`'s port.
    pub advertise: String,
    /// The environment variable holding the bearer token that mutating admin endpoints
    /// (`POST /v1/reload`) require; empty: see `token_file`.
    pub token_env: String,
    /// A file holding that token; with neither, mutating endpoints refuse everyone.
    pub token_file: String,
    /// The environment variable holding the bearer token the read endpoints
    /// (`/v1/accounts`, `/v1/playbooks`, `/v1/shadow`) require; empty: see
    /// `read_token_file`.
    pub read_token_env: String,
    /// A file holding the read token; with neither, the read endpoints are open.
    pub read_token_file: String,
    /// Whether a `listen` off loopback without a read token is refused at startup.
    pub read_token_required: bool,
    /// The token instances of a group prove to each other they know when one asks
    /// another for an account; empty (and no `peer_token_file`): the admin token.
    pub peer_token_env: String,
    pub peer_token_file: String,
    /// Internal networks (CIDRs) peers may be asked at, e.g. the pod network; other
    /// internal addresses (loopback, private, link-local, metadata) are refused.
    pub peer_networks: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub timeout: String,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub dead_letter_topic: String,
    /// Also produce each opportunity here (JSON, key = account id); empty: don't.
    pub opportunities_topic: String,
    pub poll_timeout: String,
    pub max_batch: usize,
    /// librdkafka settings, passed through; `_` in a key stands for `.`, so they can be
    /// set from the environment too (`RADAR__KAFKA__CLIENT__SESSION_TIMEOUT_MS`).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// Secret librdkafka settings read from files (e.g. `sasl_password =
    /// "/run/secrets/kafka"`): secrets are never written in a config file.
    #[serde(default)]
    pub secret_files: BTreeMap<String, PathBuf>,
}

/// Where partition state lives.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `local` or `kafka`.
    pub store: String,
    /// Empty: `<kafka.group_id>-state`.
    pub changelog_topic: String,
    pub changelog_replication: i32,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    pub path: String,
    pub every_events: u64,
    pub every: String,
}

impl RawConfig {
    /// The engine's sections: what a hot reload may change.
    pub fn engine(&self) -> RawSettings {
        RawSettings {
            engine: self.engine.clone(),
            opportunities: self.opportunities.clone(),
            gates: self.gates.clone(),
            scoring: self.scoring.clone(),
            priority: self.priority.clone(),
            playbooks: self.playbooks.clone(),
        }
    }
}

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
}

/// Reads the layers into the raw config; a syntax error names its file, line and column,
/// a type error its key.
pub fn load_raw(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
    let one = |problem: String| ConfigError {
        problems: vec![problem],
    };
    let mut builder =
        Config::builder().add_source(File::from_str(DEFAULT_CONFIG, FileFormat::Toml));
    if let Some(path) = path {
        if !path.is_file() {
            return Err(one(format!("--config {}: no such file", path.display())));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| one(format!("--config {}: {e}", path.display())))?;
        let table = parse_toml(&text).map_err(|e| one(format!("{}: {e}", path.display())))?;
        refuse_written_secrets(&table)?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }
    for (key, value) in env_layer(std::env::vars_os()) {
        builder = builder
            .set_override(&key, value)
            .map_err(|e| one(format!("environment variable for {key}: {e}")))?;
    }
    builder
        .build()
        .map_err(|e| one(e.to_string()))?
        .try_deserialize()
        .map_err(|e| one(e.to_string()))
}

/// Parses TOML, with an error that says where and what is wrong but never echoes the
/// offending line: a misplaced quote would otherwise print a secret written on it.
fn parse_toml(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| {
                let line_start = before.rfind('\n').map_or(0, |at| at + 1);
                format!(
                    " at line {}, column {}",
                    before.matches('\n').count() + 1,
                    before[line_start..].chars().count() + 1
                )
            })
            .unwrap_or_default();
        format!(
            "TOML syntax error{at}: {} (the line is not shown: it may hold a secret)",
            e.message().trim_end()
        )
    })
}

/// Prefix of the environment variables that set config keys: `RADAR__SECTION__KEY`.
const ENV_PREFIX: &str = "radar__";

/// The `RADAR__…` variables as (dotted key, value) overrides. Values stay the text they
/// are: each key is then read by the type the config declares for it, so a group id
/// `007` stays `007`, a password `00123` stays `00123`, and `1.50` stays `1.50`. Keys
/// whose default is a list (`kafka.topics`, …) take comma-separated items.
fn env_layer(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<(String, config::Value)> {
    let lists = list_keys();
    vars.into_iter()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?.to_lowercase();
            let key = name.strip_prefix(ENV_PREFIX)?.replace("__", ".");
            let value = value.into_string().ok()?;
            let value = if lists.contains(&key) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect();
                config::Value::from(items)
            } else {
                config::Value::from(value)
            };
            Some((key, value))
        })
        .collect()
}

/// The dotted keys whose default is a list of plain values.
fn list_keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let key = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&key, inner, out),
                toml::Value::Array(items) if !items.iter().any(toml::Value::is_table) => {
                    out.push(key)
                }
                _ => {}
            }
        }
    }
    let mut keys = Vec::new();
    if let Ok(defaults) = parse_toml(DEFAULT_CONFIG) {
        walk("", &defaults, &mut keys);
    }
    keys
}

/// Secret librdkafka settings (passwords, keys) may come from the environment or from
/// `kafka.secret_files`, never from a config file, which ends up in version control.
fn refuse_written_secrets(file: &toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(client)) = file.get("kafka").and_then(|kafka| kafka.get("client"))
    else {
        return Ok(());
    };
    let problems: Vec<String> = client
        .keys()
        .filter(|key| radar_kafka::is_secret(&key.replace('_', ".")))
        .map(|key| {
            format!(
                "kafka.client.{key}: a secret may not be written in a config file; set RADAR__KAFKA__CLIENT__{} in the environment, or name a file with kafka.secret_files.{key}",
                key.to_uppercase()
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError { problems })
    }
}

/// Loads and validates the engine settings.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    Ok(settings::build(load_raw(path)?.engine())?)
}

/// Loads and validates everything the pipeline needs, reporting every problem; secrets
/// come from the process environment.
pub fn load_pipeline(path: Option<&Path>) -> Result<PipelineConfig, ConfigError> {
    let mut config = pipeline_from_raw(&load_raw(path)?, &|name| std::env::var(name).ok())?;
    config.config_path = path.map(Path::to_path_buf);
    Ok(config)
}

/// The version of a configuration's engine sections: the first 12 hex digits of a hash
/// of them, so the same rules always have the same version, whatever the file's layout.
pub fn version(raw: &RawConfig) -> String {
    let bytes = serde_json::to_vec(&raw.engine()).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))[..12].to_owned()
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
        .map_err(|errors| problems.extend(errors))
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
        .map_err(|errors| problems.extend(errors))
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
            },
            store_path: PathBuf::from(&raw.checkpoint.path),
            delivery,
            admin,
            shutdown_timeout,
            raw: raw.clone(),
            access,
            config_path: None,
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

/// Where `radar dlq` finds the dead letters.
#[derive(Debug)]
pub enum DeadLetters {
    /// In the state store of a stopped radar (`state.store = "local"`).
    Store(PathBuf),
    /// On the delivery dead-letter topic (`state.store = "kafka"`).
    Topic(KafkaDeliveryConfig),
}

/// Where the dead letters are, by the config layers; with `state.store = "kafka"` the
/// whole config is checked, since reaching Kafka needs its client settings and secrets.
pub fn dead_letters(path: Option<&Path>) -> Result<DeadLetters, ConfigError> {
    let raw = load_raw(path)?;
    if raw.state.store != "kafka" {
        return Ok(DeadLetters::Store(PathBuf::from(raw.checkpoint.path)));
    }
    let pipeline = pipeline_from_raw(&raw, &|name| std::env::var(name).ok())?;
    pipeline
        .kafka_delivery
        .map(DeadLetters::Topic)
        .ok_or_else(|| ConfigError {
            problems: vec!["state.store: \"kafka\" without delivery over Kafka".into()],
        })
}

/// Builds the delivery settings, secrets read through `env` (and from the files the
/// config names); every problem as "key: message".
pub fn load_delivery(raw: &RawDelivery, env: Env<'_>) -> Result<DeliverySettings, Vec<String>> {
    radar_delivery::settings::build(raw, env).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        let settings = load(None).unwrap();
        assert_eq!(settings.model.components.len(), 11);
        assert_eq!(settings.model.max_score(), 140.0);
        assert_eq!(settings.playbooks.len(), 6);
        let pipeline = load_pipeline(None).unwrap();
        assert_eq!(pipeline.source.topics, ["product-events"]);
        assert!(
            pipeline
                .source
                .client
                .contains(&("auto.offset.reset".into(), "earliest".into()))
        );
    }

    #[test]
    fn secret_files_feed_librdkafka_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("kafka-password");
        std::fs::write(&secret, "hunter2\n").unwrap();
        let config = dir.path().join("radar.toml");
        std::fs::write(
            &config,
            format!(
                "[kafka.secret_files]\nsasl_password = {:?}\n",
                secret.display().to_string()
            ),
        )
        .unwrap();
        let pipeline = load_pipeline(Some(&config)).unwrap();
        assert!(
            pipeline
                .source
                .client
                .contains(&("sasl.password".into(), "hunter2".into()))
        );
        assert!(!format!("{pipeline:?}").contains("hunter2"));
    }

    /// DESIGN.md's anchors for the default priority tables: $5,000 of estimated expansion
    /// ARR scores 80 on potential, 60 days to renewal scores 90 on timing.
    #[test]
    fn the_default_priority_tables_hit_the_design_anchors() {
        let priority = load(None).unwrap().priority;
        assert_eq!(priority.tables[0].eval(5_000.0), 80.0);
        assert_eq!(priority.tables[2].eval(60.0), 90.0);
        assert_eq!(priority.weights, [0.40, 0.30, 0.20, 0.10]);
        assert_eq!(priority.neutral, 50.0);
    }
}
