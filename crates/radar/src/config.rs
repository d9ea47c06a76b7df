//! Configuration loading: the built-in `config/radar.toml`, then the file given with
//! `--config`, then `RADAR__SECTION__KEY` environment variables, through the `config`
//! crate; then `radar_core::settings::build` (and, for `radar run`, the pipeline checks
//! here) report every bad key.

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, File, FileFormat};
use radar_core::settings::{self, Settings, SettingsError};
use radar_delivery::settings::Env;
use radar_delivery::{DeliverySettings, KafkaDeliveryConfig, RawDelivery};

mod pipeline;
mod raw;

pub use pipeline::{PipelineConfig, pipeline_from_raw, store_directory_problem};
pub use raw::{RawAdmin, RawCheckpoint, RawConfig, RawKafka, RawShutdown, RawState};

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

/// A TOML syntax error: where (` at line L, column C`, when known) and what, never the
/// offending line itself, since a misplaced quote would otherwise print a secret written
/// on it.
#[derive(Debug, thiserror::Error)]
#[error("TOML syntax error{at}: {message} (the line is not shown: it may hold a secret)")]
struct TomlSyntaxError {
    at: String,
    message: String,
}

/// Parses TOML, with an error that says where and what is wrong but never echoes the
/// offending line.
fn parse_toml(text: &str) -> Result<toml::Table, TomlSyntaxError> {
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
        TomlSyntaxError {
            at,
            message: e.message().trim_end().to_owned(),
        }
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
    let raw = load_raw(path)?;
    let mut config = pipeline_from_raw(&raw, &|name| std::env::var(name).ok())?;
    config.config_path = path.map(Path::to_path_buf);
    let base = path
        .and_then(Path::parent)
        .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf);
    with_sources(&mut config, &raw, &base)?;
    Ok(config)
}

/// Compiles the `[[sources]]` of `raw` (their `schema_dir`s relative to `base`) into
/// `config`: the engine then consumes their topics (and the repartition topic) instead
/// of `kafka.topics`.
pub fn with_sources(
    config: &mut PipelineConfig,
    raw: &RawConfig,
    base: &Path,
) -> Result<(), ConfigError> {
    if !raw.sources.is_empty() {
        let sources = crate::ingest::compile(&raw.sources, &config.engine, base)
            .map_err(|problems| ConfigError { problems })?;
        config.source.topics = crate::ingest::engine_topics(&sources, &config.source.group_id);
        if config.source.changelog.is_some() && config.source.topics.len() != 1 {
            return Err(ConfigError {
                problems: vec![format!(
                    "state.store: \"kafka\" keeps one source topic's state, and the [[sources]] give the engine {} ({}): one source keyed by account with one topic, or sources keyed by user only (they share the repartition topic)",
                    config.source.topics.len(),
                    config.source.topics.join(", ")
                )],
            });
        }
        config.sources = sources;
    }
    Ok(())
}

/// The version of a configuration's engine sections: the first 12 hex digits of a hash
/// of them, so the same rules always have the same version, whatever the file's layout.
pub fn version(raw: &RawConfig) -> String {
    let bytes = serde_json::to_vec(&raw.engine()).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))[..12].to_owned()
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
pub fn load_delivery(raw: &RawDelivery, env: Env<'_>) -> Result<DeliverySettings, ConfigError> {
    radar_delivery::settings::build(raw, env).map_err(|errors| ConfigError {
        problems: errors
            .into_iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect(),
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

    /// The anchors for the default priority tables (docs/design.md#expansion-score): $5,000 of estimated expansion
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
