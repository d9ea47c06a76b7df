//! Reading a topic back as the tests check it: every record's headers and payload.
//! Shared by the source's tests here and the `radar` binary's in `tests/it`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

/// Every record of `topic` (all partitions) from the start, as (headers, payload): at
/// least `count`, then whatever more comes within a second (60 s at most in all).
pub fn read_all(
    servers: &str,
    topic: &str,
    count: usize,
) -> Vec<(BTreeMap<String, String>, Vec<u8>)> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    reader.subscribe(&[topic]).unwrap();
    let mut records = Vec::new();
    let (started, mut last) = (Instant::now(), Instant::now());
    while (records.len() < count || last.elapsed() < Duration::from_secs(1))
        && started.elapsed() < Duration::from_secs(60)
    {
        let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push((headers, message.payload().unwrap_or_default().to_vec()));
    }
    records
}
