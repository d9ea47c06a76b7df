//! Delivery's errors, one enum per thing that can fail, so a caller can tell a request
//! that cannot be built (the delivery is unsendable: it goes to the dead-letter store
//! with the reason) from an answer that does not decode, a parked record that is
//! malformed, or Kafka that cannot be reached.

use std::time::Duration;

/// Why a request for a delivery could not be built: the delivery is unsendable.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the {0} URL cannot take a path")]
    UrlCannotTakePath(&'static str),
    #[error("the stored opportunity does not decode: {0}")]
    Opportunity(serde_json::Error),
    #[error("no company to put the task on")]
    NoCompany,
    #[error("a CRM destination's requests are built by the crm module")]
    CrmDestination,
    #[error(transparent)]
    CloseDate(#[from] CloseDateError),
}

/// Why an opportunity's expected close date cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum CloseDateError {
    #[error("occurred_at {occurred_at:?} is not an RFC 3339 time: {source}")]
    OccurredAt {
        occurred_at: String,
        source: chrono::ParseError,
    },
    #[error("close_in is too long")]
    TooLong(Duration),
    #[error("the close date is out of range")]
    OutOfRange,
}

/// A CRM's answer that does not say what it should.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct AnswerError {
    /// Which answer, and what it was expected to be.
    pub what: &'static str,
    pub source: serde_json::Error,
}

/// A record on the retry topic that is not a parked delivery.
#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("header {name}: {source}")]
    Number {
        name: &'static str,
        source: std::num::ParseIntError,
    },
    #[error("{name}: {source}")]
    OutOfRange {
        name: &'static str,
        source: std::num::TryFromIntError,
    },
}

/// Delivery's topics could not be set up, read or written.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Creating or inspecting a topic (radar-kafka's topic administration).
    #[error(transparent)]
    Admin(#[from] radar_kafka::SourceError),
    #[error(
        "the source topic {0} does not exist yet: create it before radar runs with state.store = \"kafka\" (delivery's topics take its partition count)"
    )]
    NoSourceTopic(String),
    #[error(
        "the topic {topic} does not exist but the settlement ledger {ledger} holds marks of an earlier one, which would skip the new topic's records: delete {ledger}, then start radar again"
    )]
    StaleLedger { topic: String, ledger: String },
    #[error("reading {topic}: no progress within {seconds} s")]
    Stalled { topic: String, seconds: u64 },
    #[error("reading {topic}: not done within {seconds} s")]
    TooLong { topic: String, seconds: u64 },
    #[error("the producer went away before acknowledging")]
    ProducerGone,
    #[error("consuming {topic}: {source}")]
    Consume {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
}
