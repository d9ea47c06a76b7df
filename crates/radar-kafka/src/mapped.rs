//! Topics whose records are not Radar's envelope: read through a source's mapping
//! (radar-ingest, docs/events.md#sources), with the writer schemas it knows so far.
//!
//! A record whose schema id is new has its schema settled before its round is
//! processed: from the registry, retried with backoff for as long as the registry does
//! not answer (the loop waits; a valid record is never dead-lettered because the
//! registry blinked), or settled as missing when the registry says the id does not
//! exist (its records are then dead letters, `unknown_schema`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radar_ingest::{Schema, Schemas, Source};

use crate::progress::Stop;
use crate::throttle::Throttle;

/// Whether a round's schemas are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Ready,
    /// A stop came while the registry did not answer: the round must not be processed.
    Stopped,
    /// The registry did not answer within the limit: the consumer must poll again before
    /// librdkafka's `max.poll.interval.ms` ends its membership, so the source stops (and
    /// its restart resumes from the last checkpoint) rather than wait on.
    GaveUp(String),
}

/// How long a round may wait for the registry: half of `max.poll.interval.ms` (librdkafka's
/// default 300 s), so the consumer polls again well before the group drops it.
pub fn wait_limit(client: &rdkafka::ClientConfig) -> Duration {
    let interval = client
        .get("max.poll.interval.ms")
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(300_000);
    Duration::from_millis(interval / 2)
}

/// What a registry answers for a schema id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaAnswer {
    /// The writer schema's text.
    Found(String),
    /// The registry says the id does not exist.
    Missing,
}

/// Asks a registry for a schema id; `Err` when it could not answer now.
pub type FetchSchema = dyn Fn(u32) -> Result<SchemaAnswer, String> + Send + Sync;

/// One source's topics as the engine reads them.
pub struct MappedSource {
    pub source: Arc<Source>,
    /// The schemas known so far; each round reads a snapshot.
    schemas: Mutex<Arc<Schemas>>,
    fetch: Option<Box<FetchSchema>>,
    /// Failed registry requests, for `radar_ingest_registry_errors_total`.
    pub registry_errors: AtomicU64,
    throttle: Mutex<Throttle>,
}

impl std::fmt::Debug for MappedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedSource")
            .field("source", &self.source.name())
            .finish()
    }
}

/// The first wait after a registry failure, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl MappedSource {
    pub fn new(source: Arc<Source>, schemas: Schemas, fetch: Option<Box<FetchSchema>>) -> Self {
        MappedSource {
            source,
            schemas: Mutex::new(Arc::new(schemas)),
            fetch,
            registry_errors: AtomicU64::new(0),
            throttle: Mutex::new(Throttle::new(Duration::from_secs(10))),
        }
    }

    /// The schemas known now.
    pub fn schemas(&self) -> Arc<Schemas> {
        self.schemas
            .lock()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |s| s.clone())
    }

    /// Settles the schema of every value that needs one not known yet: each new id is
    /// asked once, however many records carry it, and the set is replaced once.
    pub fn settle<'v>(
        &self,
        values: impl IntoIterator<Item = &'v [u8]>,
        stop: &Stop,
        limit: Duration,
    ) -> Settled {
        let known = self.schemas();
        let mut new: Vec<u32> = Vec::new();
        for value in values {
            if let Some(id) = self.source.schema_id(value)
                && !known.knows(id)
                && !new.contains(&id)
            {
                new.push(id);
            }
        }
        if new.is_empty() {
            return Settled::Ready;
        }
        let mut updated = (*known).clone();
        for id in new {
            match self.ask(id, stop, limit) {
                Ok(schema) => updated.insert(id, schema),
                Err(unsettled) => return unsettled,
            }
        }
        if let Ok(mut shared) = self.schemas.lock() {
            *shared = Arc::new(updated);
        }
        Settled::Ready
    }

    /// The schema of `id`, asked until the registry answers, a stop, or `limit`.
    fn ask(&self, id: u32, stop: &Stop, limit: Duration) -> Result<Schema, Settled> {
        let Some(fetch) = &self.fetch else {
            // Without a registry, the schema directory is all there is.
            return Ok(Schema::Missing);
        };
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let failure = match fetch(id) {
                Ok(SchemaAnswer::Missing) => {
                    tracing::warn!(
                        source = self.source.name(),
                        schema_id = id,
                        "schema id unknown to the registry"
                    );
                    return Ok(Schema::Missing);
                }
                Ok(SchemaAnswer::Found(text)) => match self.source.compile_schema(&text) {
                    Ok(schema) => {
                        tracing::info!(
                            source = self.source.name(),
                            schema_id = id,
                            "schema fetched"
                        );
                        return Ok(schema);
                    }
                    // A schema this source cannot read: its records cannot be mapped.
                    Err(e) => {
                        tracing::warn!(source = self.source.name(), schema_id = id, error = %e, "schema unusable");
                        return Ok(Schema::Missing);
                    }
                },
                Err(failure) => failure,
            };
            self.registry_errors.fetch_add(1, Ordering::Relaxed);
            let admitted = self
                .throttle
                .lock()
                .ok()
                .and_then(|mut t| t.admit(Instant::now()));
            if let Some(held_back) = admitted {
                tracing::warn!(source = self.source.name(), schema_id = id, error = %failure, held_back, "schema registry not answering; waiting");
            }
            if started.elapsed() >= limit {
                return Err(Settled::GaveUp(format!(
                    "source {}: the schema registry did not answer for schema id {id} within {} s ({failure})",
                    self.source.name(),
                    limit.as_secs()
                )));
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if stop.is_graceful() || stop.is_abrupt() {
                    return Err(Settled::Stopped);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Settles the schemas a round's records need, source by source (see
/// [`MappedSource::settle`]); `false` when a stop came first.
pub(crate) fn settle_round(
    mapped: &[(String, Arc<MappedSource>)],
    batch: &[rdkafka::message::BorrowedMessage<'_>],
    stop: &Stop,
    limit: Duration,
) -> Result<bool, crate::SourceError> {
    use rdkafka::message::Message;
    for (topic, source) in mapped {
        let values = batch
            .iter()
            .filter(|m| m.topic() == topic)
            .map(|m| m.payload().unwrap_or_default());
        match source.settle(values, stop, limit) {
            Settled::Ready => {}
            Settled::Stopped => return Ok(false),
            Settled::GaveUp(why) => return Err(crate::SourceError::Registry(why)),
        }
    }
    Ok(true)
}

/// A record's headers, as a mapped source reads them (a header without a value reads
/// as empty).
pub(crate) fn headers<'m>(
    message: &'m rdkafka::message::BorrowedMessage<'_>,
) -> Vec<(&'m str, &'m [u8])> {
    use rdkafka::message::{Headers, Message};
    message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|header| (header.key, header.value.unwrap_or_default()))
            .collect()
    })
}
