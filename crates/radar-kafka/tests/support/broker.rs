//! A tansu broker process for tests: Apache-Kafka-compatible, written in Rust, started on
//! a free loopback port (`scripts/install-tansu.sh` installs it; `.ci/run` does so).
//! Shared by the source's tests here and the `radar` binary's in `tests/it`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tansu broker process, stopped when dropped.
pub struct Broker {
    child: Child,
    pub address: String,
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

pub fn start_broker() -> Broker {
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
