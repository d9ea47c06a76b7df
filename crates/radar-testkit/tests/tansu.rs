//! The Kafka helpers against a tansu broker process: what is produced is read back,
//! all of it and nothing else.

#![allow(clippy::unwrap_used)] // tests: a failure is the test failing

use radar_testkit::broker::start_broker;
use radar_testkit::kafka::{produce, read_all, read_to_end};

#[test]
fn what_is_produced_is_read_back_whole() {
    let broker = start_broker();
    let lines: Vec<String> = (0..25)
        .map(|i| format!(r#"{{"account_id":"acct_{}","n":{i}}}"#, i % 4))
        .collect();
    produce(&broker.address, "read-back", &lines);
    let mut read: Vec<String> = read_all(&broker.address, "read-back", 10)
        .into_iter()
        .map(|(_, payload)| String::from_utf8(payload).unwrap())
        .collect();
    read.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(read, want);
    assert_eq!(read_to_end(&broker.address, "read-back").len(), 25);
}
