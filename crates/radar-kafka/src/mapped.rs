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
    /// Failed registry requests, for `radar_registry_errors_total`.
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

    /// Settles the schema of every value that needs one not known yet. Returns `false`
    /// when `stop` came while the registry did not answer: the round must not be
    /// processed then.
    pub fn settle<'v>(&self, values: impl IntoIterator<Item = &'v [u8]>, stop: &Stop) -> bool {
        let mut known = self.schemas();
        for value in values {
            let Some(id) = self.source.schema_id(value) else {
                continue;
            };
            if known.knows(id) {
                continue;
            }
            let Some(schema) = self.ask(id, stop) else {
                return false;
            };
            let mut updated = (*known).clone();
            updated.insert(id, schema);
            known = Arc::new(updated);
            if let Ok(mut shared) = self.schemas.lock() {
                *shared = known.clone();
            }
        }
        true
    }

    /// The schema of `id`, asked until the registry answers; `None` at a stop.
    fn ask(&self, id: u32, stop: &Stop) -> Option<Schema> {
        let Some(fetch) = &self.fetch else {
            // Without a registry, the schema directory is all there is.
            return Some(Schema::Missing);
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            let failure = match fetch(id) {
                Ok(SchemaAnswer::Missing) => {
                    tracing::warn!(
                        source = self.source.name(),
                        schema_id = id,
                        "schema id unknown to the registry"
                    );
                    return Some(Schema::Missing);
                }
                Ok(SchemaAnswer::Found(text)) => match self.source.compile_schema(&text) {
                    Ok(schema) => {
                        tracing::info!(
                            source = self.source.name(),
                            schema_id = id,
                            "schema fetched"
                        );
                        return Some(schema);
                    }
                    // A schema this source cannot read: its records cannot be mapped.
                    Err(e) => {
                        tracing::warn!(source = self.source.name(), schema_id = id, error = %e, "schema unusable");
                        return Some(Schema::Missing);
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
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if stop.is_graceful() || stop.is_abrupt() {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
