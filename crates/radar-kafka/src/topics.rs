//! Topics radar creates for itself (the state changelog, and with `store = "kafka"` the
//! opportunities, retry and delivery dead-letter topics): how many partitions a topic
//! has, and creating one that is missing.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::SourceError;

/// How long a metadata request or a topic creation may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// How a topic radar creates is cleaned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Records go by age (the broker's retention): queues whose records are read once.
    Delete,
    /// The latest record per key stays: state, read from the start on every restore.
    Compact,
}

/// The partition count of `topic`; 0 if it does not exist. A consumer's metadata
/// requests never create topics by themselves.
pub fn partitions(client: &ClientConfig, topic: &str) -> Result<usize, SourceError> {
    let probe: BaseConsumer = client.create()?;
    let metadata = probe.fetch_metadata(Some(topic), TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// Creates `topic` with `count` partitions if it does not exist (another instance
/// creating it at the same moment is fine); returns its partition count, which for an
/// existing topic may differ from `count`: the caller decides whether that matters.
pub fn ensure(
    client: &ClientConfig,
    topic: &str,
    count: usize,
    replication: i32,
    cleanup: Cleanup,
) -> Result<usize, SourceError> {
    let existing = partitions(client, topic)?;
    if existing > 0 {
        return Ok(existing);
    }
    let failed = |message: String| SourceError::Topic(message);
    let count =
        i32::try_from(count).map_err(|_| failed(format!("{topic}: too many partitions")))?;
    let mut new = NewTopic::new(topic, count, TopicReplication::Fixed(replication));
    if cleanup == Cleanup::Compact {
        new = new.set("cleanup.policy", "compact");
    }
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for result in block_on(admin.create_topics([&new], &options))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(failed(format!("creating the topic {name}: {code}"))),
        }
    }
    partitions(client, topic)
}

/// Runs a future to completion on this thread. rdkafka's admin and delivery futures are
/// completed by its own background threads, so no runtime is needed to drive them (for
/// the command-line tools that read and write topics outside `radar run`).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
