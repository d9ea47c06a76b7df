//! Radar's Kafka side, around the pure core.
//!
//! Modules (the private ones in plain code font):
//! - [`source`]: the consumer group's poll loop, which owns the partitions: it carries out
//!   rebalances, processes rounds and checkpoints, in that order;
//! - `rebalance`: librdkafka's callbacks, which only announce rebalances to the loop;
//! - `commit`: the rule of what may be committed when, stated once;
//! - `partitions`: the partitions held (restored up to four at a time on assignment);
//! - [`partition`]: one partition's engine, offsets and checkpoints;
//! - [`mapped`]: topics a source maps onto Radar's events, and their writer schemas;
//! - `producer`: dead letters produced, acknowledged before commits;
//! - [`changelog`]: partition state in a compacted topic (`store = "kafka"`);
//! - [`quarantine`]: changelog records a restore cannot use, set aside instead of stopping;
//! - [`dead_letter`]: what a rejected record's dead letter holds, sized to always fit;
//! - [`sink`]: where opportunities are handed: the outbox, the opportunities topic, the
//!   shadow log;
//! - [`rekey`]: a source keyed by user, re-keyed by account through the repartition topic;
//! - `round`: a poll round's records grouped by partition;
//! - `switch`: new engine settings handed to the running source (hot reload);
//! - [`topics`]: the topics radar creates for itself;
//! - [`peers`]: the group's other members and their admin addresses;
//! - [`throttle`]: a repeated error logged once in a while, with a count;
//! - [`config`], [`progress`], [`inspector`], [`error`]: the source's settings, what it
//!   shows watchers and how it is stopped, account lookups for the admin API, its errors;
//! - `default_settings` (tests only): the default configuration's engine settings.

pub mod changelog;
mod commit;
pub mod config;
pub mod dead_letter;
#[cfg(test)]
mod default_settings;
pub mod error;
pub mod inspector;
pub mod mapped;
pub mod partition;
mod partitions;
pub mod peers;
mod producer;
pub mod progress;
pub mod quarantine;
mod rebalance;
pub mod rekey;
mod round;
pub mod sink;
pub mod source;
mod switch;
pub mod throttle;
pub mod topics;

pub use changelog::ChangelogConfig;
pub use config::{SourceConfig, is_secret};
pub use dead_letter::LetterCounts;
pub use error::SourceError;
pub use inspector::Inspector;
pub use mapped::{MappedSource, SchemaAnswer};
pub use partition::{CheckpointPolicy, KafkaRecord, PartitionWorker, RejectedRecord, Restored};
pub use peers::Peers;
pub use progress::{CheckpointTimes, Progress, ShadowLog, SourceCounts, Stop};
pub use rekey::{RekeyConfig, RekeyCounts, Rekeyer};
pub use sink::{OpportunitySink, OutboxSink, ShadowLogged, SinkError, TopicSink};
pub use source::{SettingsSwitch, Source};
