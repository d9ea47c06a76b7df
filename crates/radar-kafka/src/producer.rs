//! The source's producer of dead letters. Every record it sends is acknowledged before
//! the offsets that caused it are committed
//! ([`Producer::flush`]); a dead letter refused for its size goes again as its
//! coordinates ([`crate::dead_letter`]); anything else refused stops the source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::dead_letter::{self, LetterCounts, Origin};
use crate::error::SourceError;
use crate::partition::RejectedRecord;

/// What a produced record was, for its delivery report.
enum Produced {
    /// A rejected record's dead letter, with its bytes.
    Letter(Origin),
    /// A dead letter without the record's bytes, sent when the broker refused the whole
    /// one.
    Coordinates(Origin),
}

/// Tracks what the producer could not deliver. A dead letter refused for anything but the record itself (the broker away, a missing topic, no
/// authorisation), stops the source before any offset moves past it; a dead letter
/// refused for its size is sent again as its coordinates (see [`crate::dead_letter`]).
#[derive(Default)]
struct DeliveryContext {
    failed: AtomicU64,
    /// Dead letters refused for what they hold, to send again as coordinates.
    refused: Mutex<Vec<(Origin, String)>>,
    letters: LetterCounts,
}

impl DeliveryContext {
    /// Notes a record the producer could not deliver.
    fn note_failure(&self, produced: Produced, error: &KafkaError) {
        match produced {
            Produced::Letter(origin) if refused_for_itself(error) => self
                .refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((origin, error.to_string())),
            Produced::Coordinates(origin) if refused_for_itself(error) => {
                self.letters.lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    source = %origin.source(),
                    reason = %origin.reason,
                    %error,
                    "a dead letter was refused even without the record's bytes; the record stays in Kafka there, moving on"
                );
            }
            _ => {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Whether the broker (or the producer) refused a record for what it holds: its size or
/// its form, which sending it again would not change.
fn refused_for_itself(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Produced>;

    fn delivery(&self, result: &DeliveryResult<'_>, produced: Box<Produced>) {
        if let Err((error, _)) = result {
            self.note_failure(*produced, error);
        }
    }
}

/// The producer, with where dead letters go and the size they must fit.
pub(crate) struct Producer {
    producer: BaseProducer<DeliveryContext>,
    dead_letter_topic: String,
    /// The producer's `message.max.bytes`, which every dead letter fits.
    letter_limit: usize,
}

impl Producer {
    /// `idempotent` with `store = "kafka"`: a retried produce is then never written twice,
    /// nor out of order.
    pub(crate) fn new(
        client: &ClientConfig,
        dead_letter_topic: &str,
        idempotent: bool,
    ) -> Result<Producer, SourceError> {
        let mut client = client.clone();
        if idempotent {
            client.set("enable.idempotence", "true");
        }
        let letter_limit = client
            .get("message.max.bytes")
            .and_then(|limit| limit.parse().ok())
            .unwrap_or(dead_letter::DEFAULT_MESSAGE_MAX_BYTES);
        Ok(Producer {
            producer: client.create_with_context(DeliveryContext::default())?,
            dead_letter_topic: dead_letter_topic.to_owned(),
            letter_limit,
        })
    }

    /// Dead letters that could not be sent whole, so far.
    pub(crate) fn letters(&self) -> &LetterCounts {
        &self.producer.context().letters
    }

    /// Waits until every record produced is acknowledged; dead letters refused for their
    /// size go again as their coordinates (and are waited for too). An error if anything
    /// else was refused.
    pub(crate) fn flush(&self) -> Result<(), SourceError> {
        let context = self.producer.context();
        loop {
            self.producer.flush(Duration::from_secs(30))?;
            let refused = std::mem::take(
                &mut *context
                    .refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if refused.is_empty() {
                break;
            }
            for (origin, why) in refused {
                context
                    .letters
                    .payload_dropped
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    source = %origin.source(),
                    reason = %origin.reason,
                    error = %why,
                    "the broker refused a dead letter; sending its coordinates and reason without the record's bytes"
                );
                let headers = owned_headers(&dead_letter::coordinates_only(&origin, &why));
                let key = origin.key.clone();
                let record = BaseRecord::with_opaque_to(
                    &self.dead_letter_topic,
                    Box::new(Produced::Coordinates(origin)),
                )
                .key(&key[..])
                .payload(&[][..])
                .headers(headers);
                self.produce(record)?;
            }
        }
        match context.failed.load(Ordering::SeqCst) {
            0 => Ok(()),
            failed => Err(SourceError::Refused(failed)),
        }
    }

    /// Hands a record to the producer, waiting for room when its queue is full. A record
    /// the producer refuses at once for its size is reported as the broker's refusal
    /// would be.
    fn produce(
        &self,
        record: BaseRecord<'_, [u8], [u8], Box<Produced>>,
    ) -> Result<(), SourceError> {
        let producer = &self.producer;
        if let Err(refused) = send_waiting(producer, record) {
            let (error, back) = *refused;
            if !refused_for_itself(&error) {
                return Err(error.into());
            }
            producer
                .context()
                .note_failure(*back.delivery_opaque, &error);
        }
        producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Produces a rejected record's dead letter (see [`crate::dead_letter`]): its key and
    /// bytes, cut to fit if they must, and headers saying why and where from.
    pub(crate) fn dead_letter(
        &self,
        message: &impl Message,
        letter: &RejectedRecord,
    ) -> Result<(), SourceError> {
        let key = message.key();
        let origin = Origin {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: letter.offset,
            key: dead_letter::cut_key(key.unwrap_or_default()).to_vec(),
            reason: letter.reason.as_str(),
            detail: letter.detail.clone(),
        };
        let built = dead_letter::letter(
            &origin,
            key,
            message.payload().unwrap_or_default(),
            self.letter_limit,
        );
        if built.truncated {
            let counts = &self.producer.context().letters;
            counts.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let mut record =
            BaseRecord::with_opaque_to(&self.dead_letter_topic, Box::new(Produced::Letter(origin)))
                .payload(built.payload)
                .headers(owned_headers(&built.headers));
        if let Some(key) = built.key {
            record = record.key(key);
        }
        self.produce(record)
    }
}

/// A record refused by the producer, with the error (boxed: rare, and large).
pub(crate) type Refused<'a, C> = Box<(
    KafkaError,
    BaseRecord<'a, [u8], [u8], <C as ProducerContext>::DeliveryOpaque>,
)>;

/// Hands a record to `producer`, waiting for room while its local queue is full (the
/// deliveries it polls meanwhile drain it); any other refusal comes back with the record.
pub(crate) fn send_waiting<'a, C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), Refused<'a, C>> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(100));
            }
            Err(refused) => return Err(Box::new(refused)),
        }
    }
}

/// Kafka record headers from (name, value) pairs.
pub(crate) fn owned_headers(headers: &[(&str, String)]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |all, (key, value)| {
            all.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        },
    )
}
