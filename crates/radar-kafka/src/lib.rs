//! Radar's Kafka side, around the pure core.
//!
//! Modules:
//! - [`dead_letter`]: what a rejected record's dead letter holds, sized to always fit;
//! - [`partition`]: one partition's engine, offsets and checkpoints; the at-least-once
//!   rule (commit an offset only once a checkpoint covering it is durable) lives here;
//! - [`source`]: the rdkafka consumer group that drives the partition workers, with the
//!   dead-letter producer.

pub mod dead_letter;
pub mod partition;
pub mod source;

pub use dead_letter::LetterCounts;
pub use partition::{CheckpointPolicy, DeadLetter, KafkaRecord, PartitionWorker, Restored};
pub use source::{
    CheckpointTimes, Inspector, OpportunitySink, OutboxSink, Progress, SinkError, Source,
    SourceConfig, SourceError, Stop, is_secret,
};
