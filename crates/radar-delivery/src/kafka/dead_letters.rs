//! The dead-letter topic of `store = "kafka"`, for `radar dlq`: reading the letters
//! (the latest record per key that is not a tombstone), and replaying some onto the
//! retry topic with a fresh retry budget, each followed by its tombstone.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use radar_kafka::topics::{self, block_on};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaDeliveryConfig;
use super::parked::{self, Parked};
use crate::error::TopicError;
use crate::queue::Delivery;

/// How long reading or writing the topic may go without progress.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A dead letter on the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The record key, as bytes: radar writes `destination/opportunity id/failed at`, but
    /// whatever a key holds, its tombstone must name exactly it.
    pub key: Vec<u8>,
    pub letter: Parked,
}

/// A key as text that shows every byte: printable ASCII as it is, `\` doubled, and
/// anything else as `\xNN`, so two keys that differ print differently.
pub fn escape_key(key: &[u8]) -> String {
    let mut text = String::with_capacity(key.len());
    for &byte in key {
        match byte {
            b'\\' => text.push_str("\\\\"),
            b' '..=b'~' => text.push(char::from(byte)),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    text
}

/// Every dead letter, by key.
pub fn read_all(config: &KafkaDeliveryConfig) -> Result<Vec<Letter>, TopicError> {
    let topic = &config.dead_letter_topic;
    let client = config.client();
    let partitions = topics::partitions(&client, topic)?;
    // Assigned, never subscribed: the group id is librdkafka's requirement only.
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", "radar-dlq")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        if high > low {
            ends.insert(partition, (high, false));
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    let mut letters: BTreeMap<Vec<u8>, Option<Parked>> = BTreeMap::new();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let mut progressed = Instant::now();
    // To the end of each partition: past the high watermark taken before, and until the
    // consumer says it reached the end (some brokers report a watermark short of a
    // batch's last record, so reaching the watermark is not the end).
    while ends.values().any(|(_, done)| !done) {
        if progressed.elapsed() > TIMEOUT {
            return Err(TopicError::Stalled {
                topic: topic.clone(),
                seconds: TIMEOUT.as_secs(),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                progressed = Instant::now();
                let key = message.key().unwrap_or_default().to_vec();
                // A tombstone has no headers, and some brokers hand its value back as
                // empty rather than none; a letter always has radar's headers, even with
                // an empty value (an opportunity record that was empty, or a letter sent
                // as its coordinates only).
                let tombstone =
                    message.payload().is_none_or(<[u8]>::is_empty) && !parked::is_parked(&message);
                let letter = match tombstone {
                    true => None,
                    false => match parked::read(&message) {
                        Ok(letter) => Some(letter),
                        Err(why) => {
                            tracing::warn!(
                                topic = message.topic(),
                                partition = message.partition(),
                                offset = message.offset(),
                                reason = %why,
                                "skipping a record radar did not write"
                            );
                            continue;
                        }
                    },
                };
                letters.insert(key, letter);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if let Some((high, done)) = ends.get_mut(&partition) {
                    let position = consumer
                        .position()?
                        .find_partition(topic, partition)
                        .and_then(|p| p.offset().to_raw())
                        .unwrap_or(0);
                    *done |= position >= *high;
                }
            }
            Some(Err(e)) => tracing::warn!(%topic, error = %e, "reading the dead-letter topic"),
            None => {}
        }
    }
    Ok(letters
        .into_iter()
        .filter_map(|(key, letter)| letter.map(|letter| Letter { key, letter }))
        .collect())
}

/// Puts `letters` back on the retry topic, due at `now_ms` with a fresh retry budget,
/// then writes their tombstones; waits for every acknowledgement. A crash in between
/// leaves a letter both retried and listed: replaying it again sends it again, under the
/// same `webhook-id`. Returns how many were put back.
///
/// A letter whose opportunity was cut to fit, or left out (`cut`), is not: it would only
/// fail again as undecodable, under a new letter pointing at the retry record, and its
/// tombstone would delete the one pointer to the whole record (`source`). It stays
/// listed, and a warning names it.
pub fn replay(
    config: &KafkaDeliveryConfig,
    letters: &[Letter],
    now_ms: u64,
) -> Result<usize, TopicError> {
    let (cut, letters): (Vec<&Letter>, Vec<&Letter>) = letters
        .iter()
        .partition(|letter| letter.letter.cut.is_some());
    for Letter { key, letter } in cut {
        tracing::warn!(
            key = %escape_key(key),
            source = letter.source.as_deref().unwrap_or("-"),
            cut = letter.cut.as_deref().unwrap_or("-"),
            "not replayed: the letter does not hold the whole opportunity; the record is at its source"
        );
    }
    let producer: FutureProducer = config.client().set("enable.idempotence", "true").create()?;
    // Every retry acknowledged before any tombstone is written.
    let mut acks = Vec::new();
    for Letter { letter, .. } in &letters {
        let retry = Delivery {
            destination: letter.destination.clone(),
            seq: 0,
            due_ms: now_ms,
            attempts: 0,
            created_ms: letter.created_ms,
            last_error: letter.reason.clone(),
            opportunity: letter.opportunity.clone(),
        };
        let retry_key = parked::key(&letter.destination, &letter.opportunity, 0);
        let record = FutureRecord::to(&config.retry_topic)
            .key(retry_key.as_bytes())
            .payload(letter.opportunity.as_slice())
            .headers(parked::retry_headers(&retry));
        acks.push(enqueue(&producer, record)?);
    }
    acknowledged(acks)?;
    let mut tombstones = Vec::new();
    for Letter { key, .. } in &letters {
        let tombstone =
            FutureRecord::<[u8], [u8]>::to(&config.dead_letter_topic).key(key.as_slice());
        tombstones.push(enqueue(&producer, tombstone)?);
    }
    acknowledged(tombstones)?;
    Ok(letters.len())
}

/// Hands a record to the producer, waiting for room while its queue is full. Outside any
/// async runtime (`radar dlq` is a plain command), hence not `FutureProducer::send`.
fn enqueue<'a>(
    producer: &FutureProducer,
    mut record: FutureRecord<'a, [u8], [u8]>,
) -> Result<DeliveryFuture, TopicError> {
    loop {
        match producer.send_result(record) {
            Ok(ack) => return Ok(ack),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                std::thread::sleep(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Waits for every acknowledgement; the first refusal is the error.
fn acknowledged(acks: Vec<DeliveryFuture>) -> Result<(), TopicError> {
    for ack in acks {
        match block_on(ack) {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e.into()),
            Err(_) => {
                return Err(TopicError::ProducerGone);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_print_differently() {
        assert_eq!(escape_key(b"hook/abc/17"), "hook/abc/17");
        assert_eq!(escape_key(b"\xff\x01"), "\\xff\\x01");
        assert_eq!(escape_key(b"\xfe\x01"), "\\xfe\\x01");
        // A backslash is doubled, so a key spelling an escape stays apart from the byte.
        assert_eq!(escape_key(b"\\xff"), "\\\\xff");
        assert_eq!(escape_key("é\n".as_bytes()), "\\xc3\\xa9\\x0a");
    }
}
