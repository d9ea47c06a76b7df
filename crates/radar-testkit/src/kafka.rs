//! Kafka topics as tests fill and check them: events produced keyed by their account,
//! as product code keys them; a topic read back to its end; a group's committed offsets.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::eventually::Eventually;

/// How long a topic may take to be written or read in a test.
const DEADLINE: Duration = Duration::from_secs(60);

/// A record read back: its headers by name (values as lossy UTF-8), and its payload.
pub type Record = (BTreeMap<String, String>, Vec<u8>);

/// The `account_id` of a JSON event line, or "" when it has none (as product code keys
/// a record it cannot attribute).
fn account_id(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["account_id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Produces each line keyed by its account id, waiting for room when the producer's
/// queue is full (so any number of lines fits); returns once all are acknowledged.
pub fn produce(servers: &str, topic: &str, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for line in lines {
        let key = account_id(line);
        let mut record = BaseRecord::to(topic).key(&key).payload(line);
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

/// A consumer of `servers` that commits nothing (it only reads).
fn reader(servers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// The (partition, low, high) watermarks of every partition of `topic`.
fn watermarks(reader: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64, i64)>, KafkaError> {
    let metadata = reader.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
        .unwrap_or_default();
    partitions
        .into_iter()
        .map(|p| {
            let (low, high) = reader.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            Ok((p, low, high))
        })
        .collect()
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
/// it holds at least `count`, everything written to it by then. Panics, naming the
/// topic, if it does not reach `count` within a minute. Extra records are read too (a
/// test that stopped the writers first sees everything they wrote).
pub fn read_all(servers: &str, topic: &str, count: usize) -> Vec<Record> {
    let reader = reader(servers, &format!("reader-{topic}"));
    let ends = Eventually::within(DEADLINE).until(
        &format!("{topic} holds at least {count} records"),
        || {
            let ends = watermarks(&reader, topic).map_err(|e| e.to_string())?;
            let held: i64 = ends.iter().map(|(_, low, high)| high - low).sum();
            if held >= count as i64 {
                Ok(ends)
            } else {
                Err(format!("{held} records"))
            }
        },
    );
    read_until(&reader, topic, &ends)
}

/// Every record of `topic` (all partitions) from the start up to where each partition
/// ends when asked, as (headers, payload).
pub fn read_to_end(servers: &str, topic: &str) -> Vec<Record> {
    let reader = reader(servers, &format!("reader-{topic}"));
    let ends = watermarks(&reader, topic).unwrap();
    read_until(&reader, topic, &ends)
}

/// Reads each partition of `ends` from its low to its high watermark.
fn read_until(reader: &BaseConsumer, topic: &str, ends: &[(i32, i64, i64)]) -> Vec<Record> {
    let mut assignment = TopicPartitionList::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for &(partition, low, high) in ends {
        if high > low {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .unwrap();
            next.insert(partition, low);
        }
    }
    reader.assign(&assignment).unwrap();
    let wanted: BTreeMap<i32, i64> = ends.iter().map(|&(p, _, high)| (p, high)).collect();
    let mut records = Vec::new();
    Eventually::within(DEADLINE).every(Duration::ZERO).until(
        &format!("{topic} is read to its end"),
        || {
            if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
                next.insert(message.partition(), message.offset() + 1);
                records.push((
                    headers(&message),
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            let done = next.iter().all(|(p, at)| *at >= wanted[p]);
            if done {
                Ok(())
            } else {
                Err(format!("at {next:?} of {wanted:?}"))
            }
        },
    );
    records
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
