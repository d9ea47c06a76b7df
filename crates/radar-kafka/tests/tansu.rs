//! The source against a Kafka-protocol broker process: tansu, an Apache-Kafka-compatible
//! broker (`scripts/install-tansu.sh` installs it; `.ci/run` does so). Each test starts
//! its own broker on a free loopback port, with its own topics and consumer group.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use radar_store::Store;
use support::{Until, config, events, outbox_ids, produce, replayed, run_source};

/// A tansu broker process, stopped when dropped.
struct Broker {
    child: Child,
    address: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu() -> PathBuf {
    if let Ok(path) = std::env::var("RADAR_TANSU") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/tansu");
    assert!(
        path.exists(),
        "tansu is not installed: run scripts/install-tansu.sh (or set RADAR_TANSU)"
    );
    path
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("tcp://{address}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut broker = Broker { child, address };
    let started = Instant::now();
    while TcpStream::connect(&broker.address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tansu did not listen"
        );
        // tansu exits (with status 0) when its port is taken: make sure it is ours.
        assert!(broker.child.try_wait().unwrap().is_none(), "tansu exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

#[test]
fn events_in_give_replays_opportunities_out_and_survive_a_crash() {
    let broker = start_broker();
    let topic = format!("events-{}", std::process::id());
    let lines = events(2_000, 21, 0.01);
    produce(&broker.address, &topic, &lines);
    let expected = replayed(&lines);
    assert!(expected.len() > 10);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let group = format!("radar-{}", std::process::id());
    let source = || config(&broker.address, &topic, &group);
    let crashed_after = run_source(source(), &store, Until::Consumed(1_000), true);
    assert!(crashed_after >= 1_000);
    let partial = outbox_ids(&store);
    assert!(
        partial.len() < expected.len(),
        "the crash came before the end"
    );

    // The same group resumes from the checkpoints; the rest of the records come in.
    let resumed = run_source(
        source(),
        &store,
        Until::Quiet(Duration::from_secs(2)),
        false,
    );
    assert!(
        (2_000 - crashed_after..2_000).contains(&resumed),
        "resumed from the checkpoints, not from the start: {resumed} records after a crash at {crashed_after}"
    );
    assert_eq!(
        outbox_ids(&store),
        expected,
        "every opportunity of the replay, and no other"
    );
}
