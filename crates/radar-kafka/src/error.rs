//! What stops the source.

use radar_store::StoreError;
use rdkafka::error::KafkaError;

use crate::sink::SinkError;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("writing opportunities: {0}")]
    Sink(SinkError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state changelog: {0}")]
    Changelog(String),
    #[error("{0}")]
    Topic(String),
    #[error("partition {0}: another instance has taken it over (fenced)")]
    Fenced(i32),
    #[error("partition state lock poisoned by an earlier panic")]
    Poisoned,
    #[error("{0} dead letters were refused by the broker; not committing past them")]
    Refused(u64),
    #[error("{0} re-keyed records were refused by the broker; not committing past them")]
    RekeyRefused(u64),
    #[error("{0}; stopping: a restart resumes from the last checkpoint")]
    Registry(String),
}
