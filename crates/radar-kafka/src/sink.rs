//! Where the source hands opportunities: the [`OpportunitySink`] contract, the
//! pipeline's [`OutboxSink`], and [`OnTopic`] for when the opportunities topic is the
//! outbox.

use std::sync::Arc;

use radar_core::Opportunity;
use radar_store::Store;

/// Where opportunities go, each with its JSON (serialised once, on the partition's
/// thread). `flush` hands on everything accepted so far, and what it hands on must be
/// durable by the time the next checkpoint is: [`OutboxSink`] writes to the store that
/// holds the checkpoints, whose durable commit covers it; a sink writing anywhere else
/// must make its writes durable in `flush` itself. The source flushes at the end of every
/// round, under the partitions' lock that rebalance callbacks take, and before every
/// checkpoint, so no offset is ever committed ahead of the opportunities it produced.
pub trait OpportunitySink: Send {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError>;
    fn flush(&mut self) -> Result<(), SinkError>;
}

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// The sink of the pipeline: opportunities as JSON in the store's outbox, written in one
/// transaction per flush. That transaction is not synced to disk on its own: the outbox
/// lives in the store that holds the checkpoints, and a checkpoint's durable commit makes
/// every earlier write durable, so the fsync is paid once per checkpoint, not per round.
pub struct OutboxSink {
    store: Arc<Store>,
    pending: Vec<Vec<u8>>,
    written: Option<Box<dyn Fn() + Send>>,
}

impl std::fmt::Debug for OutboxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSink")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl OutboxSink {
    pub fn new(store: Arc<Store>) -> OutboxSink {
        OutboxSink {
            store,
            pending: Vec::new(),
            written: None,
        }
    }

    /// Calls `written` after each flush that wrote something, so delivery can pick the
    /// new entries up at once instead of at its next poll.
    pub fn on_written(mut self, written: impl Fn() + Send + 'static) -> OutboxSink {
        self.written = Some(Box::new(written));
        self
    }
}

impl OpportunitySink for OutboxSink {
    fn accept(&mut self, _: Opportunity, json: Vec<u8>) -> Result<(), SinkError> {
        self.pending.push(json);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if !self.pending.is_empty() {
            self.store
                .append_outbox(self.pending.iter().map(Vec::as_slice))?;
            self.pending.clear();
            if let Some(written) = &self.written {
                written();
            }
        }
        Ok(())
    }
}

/// The sink with `store = "kafka"`, where the opportunities topic is the outbox: the
/// source's producer has already written every opportunity there, and a checkpoint waits
/// for the broker's acknowledgements before it commits, so there is nothing left to hand
/// on.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnTopic;

impl OpportunitySink for OnTopic {
    fn accept(&mut self, _: Opportunity, _: Vec<u8>) -> Result<(), SinkError> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
