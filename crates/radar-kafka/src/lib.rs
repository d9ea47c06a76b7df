//! Radar's Kafka side, around the pure core.
//!
//! Modules:
//! - [`partition`]: one partition's engine, offsets and checkpoints; the at-least-once
//!   rule (commit an offset only once a checkpoint covering it is durable) lives here.
//!
//! The rdkafka consumer group, the dead-letter producer and the outbox that drive it come
//! next (issue 3).

pub mod partition;

pub use partition::{CheckpointPolicy, DeadLetter, KafkaRecord, PartitionWorker, Restored};
