//! The configuration file as written: every section, deserialized but not yet checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use radar_core::settings::{
    RawEngine, RawGates, RawOpportunities, RawPlaybook, RawPriority, RawScoring, RawSettings,
};
use radar_delivery::RawDelivery;
use serde::Deserialize;

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
    /// Where events come from when they are not Radar's envelope on `kafka.topics`
    /// (docs/events.md#sources).
    #[serde(default)]
    pub sources: Vec<radar_ingest::SourceSpec>,
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
