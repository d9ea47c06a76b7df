//! Parking settlements on their topics: retries on the retry topic, dead letters on the
//! dead-letter topic, each acknowledged before it counts.
//!
//! A record the producer or the broker refuses for its size is never tried again as it
//! is: that would hold its delivery unsettled, and every later delivery to its
//! destination behind it, forever. It steps down instead: a retry too large to park is
//! dead-lettered; a dead letter is cut to fit `message.max.bytes` from the start (see
//! [`super::parked::dead_letter`]), and one the broker still refuses (a topic whose
//! `max.message.bytes` is lower) goes as its coordinates and reason only; refused even
//! so, it is lost, said in an error log and counted. Any other refusal (a broker away)
//! is an error: the caller tries the whole park again.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaDelivery;
use super::parked::{self, FRAMING, Outgoing};
use crate::observe::Observer;
use crate::queue::{FailedDelivery, Settlement};

/// What became of one settlement on Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Delivered: nothing to park.
    Delivered,
    /// On the retry topic.
    Retry,
    /// On the dead-letter topic, in the form said.
    DeadLetter(LetterForm),
    /// Refused even as its coordinates: only the log names it.
    Lost,
}

/// How much of its opportunity a dead letter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LetterForm {
    Whole,
    /// Cut to fit the producer's `message.max.bytes`.
    Truncated,
    /// Without it: the broker refused the letter that held it.
    PayloadDropped,
}

impl Landing {
    /// The label of `radar_delivery_dead_letters_degraded_total` it counts under, if any.
    pub fn degraded(self) -> Option<&'static str> {
        match self {
            Landing::DeadLetter(LetterForm::Truncated) => Some("truncated"),
            Landing::DeadLetter(LetterForm::PayloadDropped) => Some("payload_dropped"),
            Landing::Lost => Some("lost"),
            _ => None,
        }
    }
}

/// Reports what `settlements` landed as: each dead letter that landed, and each that
/// could not be kept whole.
pub(crate) fn observe(observer: &dyn Observer, settlements: &[Settlement], landings: &[Landing]) {
    for (settlement, landing) in settlements.iter().zip(landings) {
        let (destination, _) = settlement.delivery();
        if let Landing::DeadLetter(_) = landing {
            observer.dead_lettered(destination);
        }
        if let Some(outcome) = landing.degraded() {
            observer.dead_letter_degraded(destination, outcome);
        }
    }
}

/// Parking failed for a reason other than a record's size: try again later.
#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    #[error("parking a delivery: {0}")]
    Kafka(#[from] KafkaError),
    #[error("parking a delivery: the producer went away")]
    Gone,
}

/// Whether the producer or the broker refused a record for itself (its size), which
/// sending it again cannot change.
fn refused_for_size(error: &KafkaError) -> bool {
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

/// One record on its way, and what it lands as.
struct Attempt {
    /// Index of its settlement.
    index: usize,
    record: Outgoing,
    landing: Landing,
    /// The dead letter it is, or becomes if it steps down.
    letter: FailedDelivery,
}

impl KafkaDelivery {
    /// Produces the retries and dead letters among `settlements` to their topics and
    /// waits for every acknowledgement; says what each settlement landed as.
    pub(crate) async fn park(&self, settlements: &[Settlement]) -> Result<Vec<Landing>, ParkError> {
        let now = self.clock.now_ms();
        let mut landings = vec![Landing::Delivered; settlements.len()];
        let mut pending = Vec::new();
        for (index, settlement) in settlements.iter().enumerate() {
            match settlement {
                Settlement::Delivered(_) => {}
                Settlement::Retry { next, .. } => {
                    let letter = crate::outcome::dead_letter(
                        next.clone(),
                        now,
                        format!(
                            "{}; too large to park as a retry within kafka.client.message_max_bytes ({})",
                            next.last_error.as_deref().unwrap_or("not delivered"),
                            self.letter_limit
                        ),
                    );
                    let record = parked::retry(next);
                    if record.size() + FRAMING > self.letter_limit {
                        pending.push(self.letter(index, letter));
                    } else {
                        pending.push(Attempt {
                            index,
                            record,
                            landing: Landing::Retry,
                            letter,
                        });
                    }
                }
                Settlement::DeadLettered { dead, .. } => {
                    pending.push(self.letter(index, dead.clone()));
                }
            }
        }
        // All handed to the producer first, then waited for: one round trip per step, not
        // one per record.
        while !pending.is_empty() {
            let mut acks = Vec::with_capacity(pending.len());
            for attempt in pending {
                let ack = self.send(&attempt).await;
                acks.push((attempt, ack));
            }
            pending = Vec::new();
            for (attempt, ack) in acks {
                let refused = match ack {
                    Ok(ack) => match ack.await {
                        Ok(Ok(_)) => None,
                        Ok(Err((e, _))) => Some(e),
                        Err(_) => return Err(ParkError::Gone),
                    },
                    Err(e) => Some(e),
                };
                match refused {
                    None => landings[attempt.index] = attempt.landing,
                    Some(e) if refused_for_size(&e) => match self.step_down(attempt, &e) {
                        Ok(next) => pending.push(next),
                        Err(index) => landings[index] = Landing::Lost,
                    },
                    Some(e) => return Err(e.into()),
                }
            }
        }
        Ok(landings)
    }

    /// The dead letter `letter` as a record, sized to fit.
    fn letter(&self, index: usize, letter: FailedDelivery) -> Attempt {
        let source = self.source(letter.seq);
        let record = parked::dead_letter(&letter, source.as_deref(), self.letter_limit);
        let form = if record.value.len() < letter.opportunity.len() {
            LetterForm::Truncated
        } else {
            LetterForm::Whole
        };
        Attempt {
            index,
            record,
            landing: Landing::DeadLetter(form),
            letter,
        }
    }

    /// `topic/partition/offset` of the record delivery `seq` came from.
    fn source(&self, seq: u64) -> Option<String> {
        self.in_hand()
            .source(seq)
            .map(|((topic, partition), offset)| format!("{topic}/{partition}/{offset}"))
    }

    /// What a record refused for its size is sent as instead; `Err` with its index when
    /// nothing smaller is left to send.
    fn step_down(&self, attempt: Attempt, refused: &KafkaError) -> Result<Attempt, usize> {
        let source = self.source(attempt.letter.seq);
        match attempt.landing {
            Landing::Retry => Ok(self.letter(attempt.index, attempt.letter)),
            Landing::DeadLetter(LetterForm::Whole | LetterForm::Truncated) => {
                tracing::warn!(
                    destination = %attempt.letter.destination,
                    source = source.as_deref().unwrap_or("unknown"),
                    error = %refused,
                    "the broker refused a dead letter; sending its coordinates and reason without the opportunity"
                );
                let record = parked::coordinates_only(
                    &attempt.letter,
                    source.as_deref(),
                    &refused.to_string(),
                );
                Ok(Attempt {
                    record,
                    landing: Landing::DeadLetter(LetterForm::PayloadDropped),
                    ..attempt
                })
            }
            _ => {
                tracing::error!(
                    destination = %attempt.letter.destination,
                    source = source.as_deref().unwrap_or("unknown"),
                    reason = %attempt.letter.reason,
                    error = %refused,
                    "the broker refused a dead letter even without the opportunity; it is lost"
                );
                Err(attempt.index)
            }
        }
    }

    /// Hands a record to the producer, waiting for room while its queue is full.
    async fn send(&self, attempt: &Attempt) -> Result<DeliveryFuture, KafkaError> {
        let topic = match attempt.landing {
            Landing::Retry => &self.config.retry_topic,
            _ => &self.config.dead_letter_topic,
        };
        let mut record = FutureRecord::to(topic)
            .key(attempt.record.key.as_bytes())
            .payload(attempt.record.value.as_slice())
            .headers(attempt.record.owned_headers());
        loop {
            match self.producer.send_result(record) {
                Ok(ack) => return Ok(ack),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}
