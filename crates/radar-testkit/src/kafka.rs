//! Kafka topics as tests fill and check them: events produced keyed by their account,
//! as product code keys them; a topic read back to its end; a group's committed offsets.
//! Written for tansu and librdkafka's mock cluster alike (tansu's watermarks count
//! batches, not records: nothing here relies on them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::eventually::Eventually;

/// How long a topic may take to be written or read in a test.
const DEADLINE: Duration = Duration::from_secs(60);

/// A record read back: its headers by name (values as lossy UTF-8), and its payload.
pub type Record = (BTreeMap<String, String>, Vec<u8>);

/// The `account_id` of a JSON event line, or "" when it has none (as product code keys
/// a record it cannot attribute).
pub fn account_id(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["account_id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Produces each line keyed by its account id, as product code would; see
/// [`produce_keyed`].
pub fn produce(servers: &str, topic: &str, lines: &[String]) {
    produce_keyed(servers, topic, lines, |line| account_id(line).into_bytes());
}

/// Produces each line keyed by `key_of` it, waiting for room when the producer's queue
/// is full (so any number of lines fits); returns once all are acknowledged.
pub fn produce_keyed(
    servers: &str,
    topic: &str,
    lines: &[String],
    key_of: impl Fn(&str) -> Vec<u8>,
) {
    let records = lines
        .iter()
        .map(|line| (key_of(line), line.as_bytes().to_vec()));
    produce_records(servers, topic, records);
}

/// Produces (key, value) records, as [`produce_keyed`] does lines.
pub fn produce_records(
    servers: &str,
    topic: &str,
    records: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for (key, value) in records {
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The header of the end markers [`read_all`] appends, its value the marker's nonce.
pub const END_MARKER: &str = "radar-testkit.end";

/// A consumer of `servers` that commits nothing (it only reads).
fn reader(servers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// The headers of `message` by name, values as lossy UTF-8.
pub fn headers<C: FromIterator<(String, String)>>(message: &impl Message) -> C {
    message
        .headers()
        .into_iter()
        .flat_map(|h| h.iter())
        .map(|h| {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default());
            (h.key.to_owned(), value.into_owned())
        })
        .collect()
}

/// Every record of `topic` (all partitions) from the start, as (headers, payload): once
/// it holds at least `count`, everything written to it by then, and nothing else.
/// Panics, naming the topic, if it does not reach `count` within a minute.
///
/// "By then" is a positive signal, not a quiet second: it appends an end marker (an empty
/// record with an [`END_MARKER`] header) to every partition and reads each up to its
/// marker, since tansu's high watermarks do not count records. Markers are never
/// returned, this read's or an earlier one's; only read a topic this way once nothing
/// else will consume it (dead letters, or a topic whose readers have stopped).
pub fn read_all(servers: &str, topic: &str, count: usize) -> Vec<Record> {
    read_all_as(servers, topic, count, |message| record(message))
}

/// A record with where it was: (partition, key, payload).
pub type Placed = (i32, Vec<u8>, Vec<u8>);

/// [`read_to_end`], each record with its partition and key.
pub fn read_to_end_placed(servers: &str, topic: &str) -> Vec<Placed> {
    read_all_as(servers, topic, 0, |m| {
        (
            m.partition(),
            m.key().unwrap_or_default().to_vec(),
            m.payload().unwrap_or_default().to_vec(),
        )
    })
}

/// [`read_all`], each record as `take` makes it.
fn read_all_as<T>(
    servers: &str,
    topic: &str,
    count: usize,
    take: impl Fn(&rdkafka::message::BorrowedMessage<'_>) -> T,
) -> Vec<T> {
    let reader = reader(servers, &format!("reader-{topic}"));
    let partitions = Eventually::within(DEADLINE).until(&format!("{topic} exists"), || {
        let metadata = reader
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| p.id())
            .collect();
        if partitions.is_empty() {
            Err("no partitions".to_owned())
        } else {
            Ok(partitions)
        }
    });
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&assignment).unwrap();
    let mut records = Vec::new();
    // Polls block up to 100 ms themselves: no pause between them.
    let poll = Eventually::within(DEADLINE).every(Duration::ZERO);
    poll.until(&format!("{topic} holds at least {count} records"), || {
        if let Some(message) = reader.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            if !is_marker(&message) {
                records.push(take(&message));
            }
        }
        if records.len() >= count {
            Ok(())
        } else {
            Err(format!("{} records", records.len()))
        }
    });
    let nonce = mark_ends(servers, topic, &partitions);
    let mut ended = BTreeSet::new();
    poll.until(&format!("{topic} is read to its end markers"), || {
        if let Some(message) = reader.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let marker: Option<String> = headers::<BTreeMap<_, _>>(&message).remove(END_MARKER);
            match marker {
                Some(seen) if seen == nonce => {
                    ended.insert(message.partition());
                }
                Some(_) => {}
                None => records.push(take(&message)),
            }
        }
        if ended.len() == partitions.len() {
            Ok(())
        } else {
            Err(format!(
                "the ends of partitions {ended:?} of {partitions:?}"
            ))
        }
    });
    records
}

/// Every record of `topic` from the start to where each partition ends when asked; see
/// [`read_all`].
pub fn read_to_end(servers: &str, topic: &str) -> Vec<Record> {
    read_all(servers, topic, 0)
}

fn is_marker(message: &impl Message) -> bool {
    message
        .headers()
        .is_some_and(|h| h.iter().any(|h| h.key == END_MARKER))
}

fn record(message: &impl Message) -> Record {
    (
        headers(message),
        message.payload().unwrap_or_default().to_vec(),
    )
}

/// Appends an end marker to each of `partitions` of `topic`; returns its nonce.
fn mark_ends(servers: &str, topic: &str, partitions: &[i32]) -> String {
    static READS: AtomicU64 = AtomicU64::new(0);
    let nonce = format!(
        "{}-{}-{:?}",
        std::process::id(),
        READS.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    );
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for &partition in partitions {
        let marker = OwnedHeaders::new().insert(Header {
            key: END_MARKER,
            value: Some(&nonce),
        });
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(partition)
                    .payload(&[])
                    .headers(marker),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    nonce
}

/// The sum of the group's committed offsets over `partitions` (0 while it cannot say).
pub fn committed(reader: &BaseConsumer, partitions: &TopicPartitionList) -> i64 {
    reader
        .committed_offsets(partitions.clone(), Duration::from_secs(5))
        .map(|list| {
            list.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .sum()
        })
        .unwrap_or(0)
}
