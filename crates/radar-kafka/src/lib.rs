//! Radar's Kafka side, around the pure core.
//!
//! Modules:
//! - [`source`]: the consumer group's poll loop that drives the partition workers;
//! - [`shared`]: what the loop and the rebalance callbacks share, and the rule of what may
//!   be committed when, stated once;
//! - [`rebalance`]: restoring partitions on assignment, checkpointing them on revocation;
//! - [`partition`]: one partition's engine, offsets and checkpoints;
//! - [`producer`]: dead letters and opportunities produced, acknowledged before commits;
//! - [`changelog`]: partition state in a compacted topic (`store = "kafka"`);
//! - [`quarantine`]: changelog records a restore cannot use, set aside instead of stopping;
//! - [`dead_letter`]: what a rejected record's dead letter holds, sized to always fit;
//! - [`sink`]: where opportunities are handed (the outbox);
//! - [`round`]: a poll round's records grouped by partition;
//! - [`topics`]: the topics radar creates for itself;
//! - [`peers`]: the group's other members and their admin addresses;
//! - [`throttle`]: a repeated error logged once in a while, with a count;
//! - [`config`], [`progress`], [`inspector`], [`error`]: the source's settings, what it
//!   shows watchers and how it is stopped, account lookups for the admin API, its errors.

pub mod changelog;
pub mod config;
pub mod dead_letter;
pub mod error;
pub mod inspector;
pub mod partition;
pub mod peers;
mod producer;
pub mod progress;
pub mod quarantine;
mod rebalance;
mod round;
mod shared;
pub mod sink;
pub mod source;
pub mod throttle;
pub mod topics;

pub use changelog::ChangelogConfig;
pub use config::{SourceConfig, is_secret};
pub use dead_letter::LetterCounts;
pub use error::SourceError;
pub use inspector::Inspector;
pub use partition::{CheckpointPolicy, DeadLetter, KafkaRecord, PartitionWorker, Restored};
pub use peers::Peers;
pub use progress::{CheckpointTimes, Progress, ShadowLog, Stop};
pub use sink::{OnTopic, OpportunitySink, OutboxSink, SinkError};
pub use source::{SettingsSwitch, Source};
