//! A tansu broker process for tests: Apache-Kafka-compatible, written in Rust, storing
//! in memory, started on a free loopback port. `scripts/install-tansu.sh` installs it
//! under `target/tools/`; `RADAR_TANSU` names another binary.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::eventually;
use crate::process::free_port;

/// How long tansu gets to listen: it starts in well under a second.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A tansu broker process, stopped when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    /// `host:port` to bootstrap from.
    pub address: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tansu binary: `RADAR_TANSU`, or the one `scripts/install-tansu.sh` installs.
pub fn tansu() -> PathBuf {
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

/// Starts a broker on a free loopback port; returns once it accepts connections.
pub fn start_broker() -> Broker {
    let address = format!("127.0.0.1:{}", free_port());
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
    eventually::Eventually::within(START_DEADLINE)
        .every(Duration::from_millis(20))
        .until("tansu listens", || {
            // tansu exits (with status 0) when its port is taken: make sure it is ours.
            let exited = broker.child.try_wait().unwrap();
            assert!(exited.is_none(), "tansu exited: {exited:?}");
            TcpStream::connect(&broker.address)
                .map(drop)
                .map_err(|e| format!("{}: {e}", broker.address))
        });
    broker
}
