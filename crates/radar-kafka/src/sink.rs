//! Where the source hands opportunities: the [`OpportunitySink`] contract, and the sinks
//! the pipeline puts together from it: [`OutboxSink`] (the local outbox), [`TopicSink`]
//! (the opportunities topic, the outbox with `store = "kafka"`), [`ShadowLogged`] (shadow
//! playbooks' opportunities kept aside for the admin API) and a pair of sinks, both fed.
//! The source hands every opportunity on and decides nothing about where it goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use radar_core::Opportunity;
use radar_store::Store;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::config::SourceConfig;
use crate::producer::send_waiting;
use crate::progress::Progress;

/// Where opportunities go, each with its JSON (serialised once, on the partition's
/// thread). The source calls `flush` at the end of every round, to hand on everything
/// accepted so far, and `sync` before every checkpoint (`commit`): by the time
/// it returns, everything handed on must be durable, so no offset is ever committed ahead
/// of the opportunities it produced. [`OutboxSink`] writes to the store that holds the
/// checkpoints, whose durable commit covers what it wrote, so its `sync` is a `flush`;
/// [`TopicSink`] waits for the broker's acknowledgements only in `sync`. `sync` has no
/// default, so that a wrapper cannot forget to pass it on.
pub trait OpportunitySink: Send {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError>;
    fn flush(&mut self) -> Result<(), SinkError>;
    fn sync(&mut self) -> Result<(), SinkError>;
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

    /// What `flush` wrote is made durable by the checkpoint's commit of the same store.
    fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// Opportunities produced to a topic as JSON, keyed by account id. The producer is
/// idempotent, so a retried produce is never written twice nor out of order, and `sync`
/// returns only once the broker has acknowledged everything accepted (an error if it
/// refused any): with `store = "kafka"` this topic is the outbox that delivery reads.
pub struct TopicSink {
    producer: BaseProducer<Refusals>,
    topic: String,
}

/// Counts the opportunities the broker refused, and keeps the last reason, for `sync` to
/// report once.
#[derive(Default)]
struct Refusals {
    count: AtomicU64,
    last: std::sync::Mutex<Option<String>>,
}

impl rdkafka::ClientContext for Refusals {}

impl ProducerContext for Refusals {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        if let Err((error, _)) = result {
            self.count.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut last) = self.last.lock() {
                *last = Some(error.to_string());
            }
        }
    }
}

impl std::fmt::Debug for TopicSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl TopicSink {
    /// A sink producing to `topic` on the source's brokers, with its client settings.
    pub fn new(source: &SourceConfig, topic: &str) -> Result<TopicSink, SinkError> {
        let mut client: ClientConfig = source.client_config();
        client.set("enable.idempotence", "true");
        Ok(TopicSink {
            producer: client.create_with_context(Refusals::default())?,
            topic: topic.to_owned(),
        })
    }
}

impl OpportunitySink for TopicSink {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError> {
        let record = BaseRecord::to(&self.topic)
            .key(opportunity.account_id.as_bytes())
            .payload(&json[..]);
        send_waiting(&self.producer, record).map_err(|refused| Box::new(refused.0) as SinkError)?;
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Serves the delivery reports that have come in; the records are on their way.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.producer.flush(Duration::from_secs(30))?;
        let refusals = self.producer.context();
        match refusals.count.load(Ordering::SeqCst) {
            0 => Ok(()),
            refused => {
                let last = refusals.last.lock().ok().and_then(|last| last.clone());
                Err(format!(
                    "{refused} opportunities refused by the broker (last: {}); not committing past them",
                    last.as_deref().unwrap_or("-")
                )
                .into())
            }
        }
    }
}

/// Keeps the opportunities of shadow-mode playbooks aside, in the progress's shadow log
/// (the admin API shows them), and hands the live ones to `live`.
#[derive(Debug)]
pub struct ShadowLogged<S> {
    progress: Arc<Progress>,
    live: S,
}

impl<S: OpportunitySink> ShadowLogged<S> {
    pub fn new(progress: Arc<Progress>, live: S) -> ShadowLogged<S> {
        ShadowLogged { progress, live }
    }
}

impl<S: OpportunitySink> OpportunitySink for ShadowLogged<S> {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError> {
        if !opportunity.shadow {
            return self.live.accept(opportunity, json);
        }
        if let Ok(mut log) = self.progress.shadow.lock() {
            log.record(&opportunity.playbook, json);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.live.flush()
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.live.sync()
    }
}

/// Both sinks get every opportunity; a flush flushes both.
impl<A: OpportunitySink, B: OpportunitySink> OpportunitySink for (A, B) {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError> {
        self.0.accept(opportunity.clone(), json.clone())?;
        self.1.accept(opportunity, json)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.0.flush()?;
        self.1.flush()
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.0.sync()?;
        self.1.sync()
    }
}

/// An optional sink: `None` hands nothing on.
impl<S: OpportunitySink> OpportunitySink for Option<S> {
    fn accept(&mut self, opportunity: Opportunity, json: Vec<u8>) -> Result<(), SinkError> {
        match self {
            Some(sink) => sink.accept(opportunity, json),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.as_mut().map_or(Ok(()), OpportunitySink::flush)
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.as_mut().map_or(Ok(()), OpportunitySink::sync)
    }
}
