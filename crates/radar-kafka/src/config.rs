//! Where and how the source consumes: [`SourceConfig`], whose `Debug` output never shows
//! a secret librdkafka setting.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::changelog::ChangelogConfig;
use crate::partition::CheckpointPolicy;

/// Where and how to consume. Its `Debug` output redacts secret client settings, so it
/// can be logged.
#[derive(Clone)]
pub struct SourceConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub dead_letter_topic: String,
    /// Where opportunities are also produced (JSON, key = account id), if anywhere: by a
    /// [`TopicSink`](crate::TopicSink) the caller hands the source, not by the source.
    pub opportunities_topic: Option<String>,
    /// librdkafka settings passed through as they are (TLS, SASL, timeouts…).
    pub client: Vec<(String, String)>,
    pub checkpoint: CheckpointPolicy,
    pub poll_timeout: Duration,
    /// Where partition state lives besides the local store: a changelog topic
    /// (`store = "kafka"`), or nowhere (`None`, `store = "local"`).
    pub changelog: Option<ChangelogConfig>,
    /// The admin address this instance advertises to the group's other members in its
    /// client id ([`crate::peers`]); `None`: none.
    pub advertise: Option<String>,
    /// Records taken per poll round: enough to spread the per-round costs (one outbox
    /// transaction, one parallel step), small enough to keep each round short.
    pub max_batch: usize,
    /// Topics read through a source's mapping (radar-ingest), by topic; any other topic
    /// is Radar's envelope.
    pub mapped: Vec<(String, std::sync::Arc<crate::MappedSource>)>,
}

impl SourceConfig {
    /// The librdkafka settings every client of this source starts from: the brokers and
    /// the pass-through settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        for (key, value) in &self.client {
            client.set(key, value);
        }
        client.set("bootstrap.servers", &self.bootstrap_servers);
        client
    }
}

/// Whether a librdkafka setting holds a secret (SASL and TLS passwords, client secrets,
/// inline keys). Such settings are never printed, and never read from a config file.
pub fn is_secret(key: &str) -> bool {
    ["password", "secret", "pem", "jaas", "oauthbearer.config"]
        .iter()
        .any(|word| key.contains(word))
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client: Vec<(&str, &str)> = self
            .client
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "[redacted]"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("SourceConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("client", &client)
            .field("checkpoint", &self.checkpoint)
            .field("poll_timeout", &self.poll_timeout)
            .field("max_batch", &self.max_batch)
            .field("advertise", &self.advertise)
            .field("mapped", &self.mapped)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = SourceConfig {
            bootstrap_servers: "broker:9093".into(),
            group_id: "radar".into(),
            topics: vec!["events".into()],
            dead_letter_topic: "events.dlq".into(),
            opportunities_topic: None,
            client: vec![
                ("sasl.password".into(), "hunter2".into()),
                ("ssl.key.pem".into(), "-----BEGIN PRIVATE KEY-----".into()),
                ("sasl.oauthbearer.client.secret".into(), "s3cr3t".into()),
                ("security.protocol".into(), "SASL_SSL".into()),
            ],
            checkpoint: CheckpointPolicy {
                every_events: 1,
                every: Duration::from_secs(1),
            },
            poll_timeout: Duration::from_millis(100),
            max_batch: 1,
            changelog: None,
            advertise: None,
            mapped: Vec::new(),
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "BEGIN PRIVATE KEY", "s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("SASL_SSL") && shown.contains("[redacted]"));
    }
}
