//! Producing test events to a broker, keyed as product code would key them. Shared by the
//! source's tests here and the `radar` binary's in `tests/it`.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Produces each line keyed by its account id, as product code would.
pub fn produce(servers: &str, topic: &str, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for line in lines {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["account_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(line))
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}
