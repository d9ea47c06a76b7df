//! The settlement ledger (`<opportunities topic>.settled`): a compacted topic whose
//! latest record per key is one destination's [`Mark`] of one partition of the
//! opportunities or retry topic. The key is the JSON array `[delivery group, topic,
//! partition, destination]`, so two groups reading one opportunities topic never take
//! each other's marks. Marks of partition `p` of either topic are on ledger partition
//! `p` modulo the ledger's partitions, so an instance assigned `p` reads one ledger
//! partition to learn what the earlier owners settled.

use std::collections::HashMap;
use std::time::Duration;

use radar_kafka::topics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

use super::in_hand::TopicPartition;
use super::marks::Mark;
use super::{KafkaDelivery, KafkaDeliveryConfig, ParkError};
use crate::error::TopicError;

/// How long asking the broker may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long writing marks may take before the write counts as failed (and nothing is
/// sent meanwhile): a broker away shows as a failure, not as a destination that hangs.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A destination's mark of a partition, to be written, with the assignment of the
/// partition and the version it shows.
#[derive(Debug)]
pub struct LedgerEntry {
    pub at: TopicPartition,
    pub epoch: u64,
    pub destination: String,
    pub mark: Mark,
    pub version: u64,
}

/// The ledger partition that holds the marks of partition `partition`.
pub(crate) fn ledger_partition(partition: i32, ledger_partitions: i32) -> i32 {
    partition.rem_euclid(ledger_partitions.max(1))
}

/// The record key of `destination`'s marks of `at`, written by `group`.
fn key(group: &str, at: &TopicPartition, destination: &str) -> Vec<u8> {
    serde_json::to_vec(&(group, &at.0, at.1, destination)).expect("strings serialize")
}

fn parse_key(key: &[u8]) -> Option<(String, TopicPartition, String)> {
    let (group, topic, partition, destination) = serde_json::from_slice(key).ok()?;
    Some((group, (topic, partition), destination))
}

/// Whether the ledger topic exists and holds any record.
pub(crate) fn holds_marks(config: &KafkaDeliveryConfig) -> Result<bool, TopicError> {
    let client = config.client();
    let partitions = topics::partitions(&client, &config.ledger_topic)?;
    if partitions == 0 {
        return Ok(false);
    }
    let consumer: BaseConsumer = client
        .clone()
        .set("group.id", format!("{}-ledger", config.group_id))
        .remove("group.instance.id")
        .create()?;
    for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
        let (low, high) = consumer.fetch_watermarks(&config.ledger_topic, partition, TIMEOUT)?;
        if high > low {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The latest marks `config`'s group left on ledger partition `partition`, per
/// partition of the topics and destination; records radar did not write are skipped.
pub(crate) fn read(
    config: &KafkaDeliveryConfig,
    partition: i32,
) -> Result<HashMap<TopicPartition, Vec<(String, Mark)>>, TopicError> {
    let mut latest: HashMap<(TopicPartition, String), Mark> = HashMap::new();
    let topic = &config.ledger_topic;
    super::takeover::read_partition(config, topic, partition, None, |message| {
        let Some((group, at, destination)) = message.key().and_then(parse_key) else {
            return;
        };
        if group != config.group_id {
            return;
        }
        match message.payload().map(serde_json::from_slice::<Mark>) {
            Some(Ok(mark)) => {
                latest.insert((at, destination), mark);
            }
            _ => tracing::warn!(
                topic = %topic,
                partition,
                offset = message.offset(),
                "delivery: skipping a ledger record radar did not write"
            ),
        }
    })?;
    let mut marks: HashMap<TopicPartition, Vec<(String, Mark)>> = HashMap::new();
    for ((at, destination), mark) in latest {
        marks.entry(at).or_default().push((destination, mark));
    }
    Ok(marks)
}

impl KafkaDelivery {
    /// Writes `entries` to the ledger and waits for every acknowledgement, then notes
    /// them published.
    pub(crate) async fn publish(&self, entries: Vec<LedgerEntry>) -> Result<(), ParkError> {
        if entries.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(PUBLISH_TIMEOUT, self.write(&entries))
            .await
            .map_err(|_| {
                ParkError::Kafka(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                ))
            })??;
        self.in_hand().published(&entries);
        Ok(())
    }

    async fn write(&self, entries: &[LedgerEntry]) -> Result<(), ParkError> {
        let mut acks = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = key(&self.config.group_id, &entry.at, &entry.destination);
            let value = serde_json::to_vec(&entry.mark).expect("a mark serializes");
            let mut record = FutureRecord::to(&self.config.ledger_topic)
                .partition(ledger_partition(entry.at.1, self.ledger_partitions))
                .key(key.as_slice())
                .payload(value.as_slice());
            let ack = loop {
                match self.producer.send_result(record) {
                    Ok(ack) => break ack,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            };
            acks.push(ack);
        }
        for ack in acks {
            match ack.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e.into()),
                Err(_) => return Err(ParkError::Gone),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_the_group_the_partition_and_the_destination_whatever_their_names() {
        let at = ("radar-opportunities.retry".to_owned(), 3);
        let key = key("radar/eu-delivery", &at, "crm/eu");
        assert_eq!(
            String::from_utf8_lossy(&key),
            r#"["radar/eu-delivery","radar-opportunities.retry",3,"crm/eu"]"#
        );
        assert_eq!(
            parse_key(&key),
            Some(("radar/eu-delivery".to_owned(), at, "crm/eu".to_owned()))
        );
        assert_eq!(parse_key(b"topic/3/hook"), None);
        assert_eq!(parse_key(br#"["g","t","x","hook"]"#), None);
    }

    #[test]
    fn marks_of_a_partition_beyond_the_ledger_s_go_round() {
        assert_eq!(ledger_partition(2, 4), 2);
        assert_eq!(ledger_partition(6, 4), 2);
        assert_eq!(ledger_partition(6, 0), 0);
    }
}
