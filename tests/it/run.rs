//! `radar run` as ops run it: a process consuming from a broker (librdkafka's mock
//! cluster, a real Kafka-protocol peer on a loopback port), delivering to a webhook
//! receiver on a loopback port, stopped with SIGTERM.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use radar_delivery::DeliveryStore;
use radar_store::Store;
use radar_testkit::Eventually;
use radar_testkit::http::{get, listening};
use radar_testkit::kafka::{committed, produce};
use radar_testkit::process::{KillOnDrop, free_port};
use rdkafka::TopicPartitionList;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::mocking::MockCluster;

use crate::support::{events, field, receiver, replayed, unique};

#[test]
fn radar_run_delivers_every_opportunity_to_a_webhook_and_stops_cleanly_on_sigterm() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("product-events", 2, 1).unwrap();
    cluster
        .create_topic("product-events.dead-letter", 1, 1)
        .unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(40, 1_500, 5);
    produce(&servers, "product-events", &lines);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let config = dir.path().join("radar.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nallow_networks = [\"127.0.0.0/8\"]\n\n[[delivery.destinations]]\n\
             name = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"TEST_HOOK_SECRET\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_radar"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("TEST_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("RADAR__KAFKA__BOOTSTRAP_SERVERS", &servers)
        .env("RADAR__KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000")
        .env("RADAR__CHECKPOINT__PATH", &state)
        .env("RADAR__CHECKPOINT__EVERY_EVENTS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop(Some(child));
    // Wait until the group has committed every offset (commits follow checkpoints).
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", "radar")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition("product-events", 0);
    partitions.add_partition("product-events", 1);
    // One minute for both waits.
    let waited = Instant::now();
    let budget = || Duration::from_secs(60).saturating_sub(waited.elapsed());
    Eventually::within(budget())
        .every(Duration::from_millis(100))
        .until("the group committed every offset", || {
            let offsets = committed(&reader, &partitions);
            if offsets >= 1_500 {
                Ok(())
            } else {
                Err(format!("{offsets} of 1500 committed"))
            }
        });
    // The replay's opportunities over the same events: what the receiver must get.
    let (opportunities, _) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    let expected_accounts = field(&opportunities, "account_id");
    assert!(!expected.is_empty());
    Eventually::within(budget())
        .every(Duration::from_millis(100))
        .until(
            "the receiver got as many opportunities as replay gives",
            || {
                let got = unique(&received).len();
                if got >= expected.len() {
                    Ok(())
                } else {
                    Err(format!("{got} of {}", expected.len()))
                }
            },
        );
    // The admin server explains accounts and counts what happened.
    let account = expected_accounts.iter().next().unwrap();
    let (status, body) = get(admin, &format!("/v1/accounts/{account}"));
    assert_eq!(status, 200, "{body}");
    let explained: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(explained["account_id"], account.as_str());
    assert!(explained["score"].is_number(), "{body}");
    assert!(
        !explained["breakdown"].as_array().unwrap().is_empty(),
        "{body}"
    );
    let recent = explained["recent_opportunities"].as_array().unwrap();
    assert!(
        !recent.is_empty() && recent.iter().all(|o| o["account_id"] == account.as_str()),
        "{body}"
    );
    assert_eq!(get(admin, "/v1/accounts/no-such-account").0, 404);
    assert_eq!(get(admin, "/readyz").0, 200);
    let (_, metrics) = get(admin, "/metrics");
    assert!(
        metrics.contains("radar_events_consumed_total 1500"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "radar_delivery_attempts_total{{destination=\"hook\",outcome=\"success\"}} {}",
            expected.len()
        )),
        "{metrics}"
    );

    let started = Instant::now();
    let child = child.take();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", child.id()))
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "radar run exits 0 on SIGTERM: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "and promptly");
    assert!(stderr.contains("events: read=1500"), "{stderr}");

    // Every opportunity `radar replay` finds over the same events reached the receiver,
    // and the outbox and the delivery queue are empty.
    assert_eq!(unique(&received), expected);
    let store = Store::open(&state).unwrap();
    assert_eq!(store.outbox_len().unwrap(), 0);
    assert_eq!(store.queue_summary("hook").unwrap().depth, 0);
    assert!(store.dead_letters().unwrap().is_empty());
    // And the partitions were checkpointed at their ends.
    let checkpointed: i64 = (0..2)
        .map(|p| {
            store
                .load_checkpoint("product-events", p)
                .unwrap()
                .checkpoint
                .map_or(0, |c| c.offset)
        })
        .sum();
    assert_eq!(checkpointed, 1_500);
}

/// A playbook in shadow mode is evaluated live like the others but delivered nowhere:
/// the receiver gets exactly replay's live opportunities, while the shadow ones are
/// counted in `/metrics` and listed by `/v1/shadow`, exactly as replay marks them.
#[test]
fn a_shadow_playbook_is_counted_and_listed_but_never_delivered() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("product-events", 2, 1).unwrap();
    cluster
        .create_topic("product-events.dead-letter", 1, 1)
        .unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(40, 1_500, 9);
    produce(&servers, "product-events", &lines);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    std::fs::write(
        &config,
        format!(
            "[[playbooks]]\nname = \"premium_interest\"\nkind = \"feature_upgrade\"\n\
             all = [{{ count = \"premium_feature_attempted\", window = \"14d\", op = \">=\", value = 2.0 }}]\n\n\
             [[playbooks]]\nname = \"invites_watch\"\nkind = \"horizontal_expansion\"\nmode = \"shadow\"\n\
             all = [{{ count = \"team_invite_sent\", window = \"30d\", op = \">=\", value = 2.0 }}]\n\n\
             [delivery]\nallow_networks = [\"127.0.0.0/8\"]\n\n[[delivery.destinations]]\n\
             name = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"TEST_HOOK_SECRET\"\n"
        ),
    )
    .unwrap();
    let mut out = Vec::new();
    let settings = std::sync::Arc::new(radar::config::load(Some(&config)).unwrap());
    radar::replay::run(settings, lines.join("\n").as_bytes(), &mut out).unwrap();
    let replayed: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (shadow, live): (Vec<_>, Vec<_>) = replayed.into_iter().partition(|o| o["shadow"] == true);
    assert!(!shadow.is_empty() && !live.is_empty());
    assert!(shadow.iter().all(|o| o["playbook"] == "invites_watch"));
    assert!(
        live.iter().all(|o| o.get("shadow").is_none()),
        "absent when live"
    );

    let child = Command::new(env!("CARGO_BIN_EXE_radar"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("TEST_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("RADAR__KAFKA__BOOTSTRAP_SERVERS", &servers)
        .env("RADAR__KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000")
        .env("RADAR__CHECKPOINT__PATH", dir.path().join("state.redb"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(Some(child));
    let expected = field(&live, "opportunity_id");
    let metric = format!(
        "radar_opportunities_shadow_total{{playbook=\"invites_watch\"}} {}",
        shadow.len()
    );
    Eventually::within(Duration::from_secs(60))
        .every(Duration::from_millis(100))
        .until(
            "the receiver got the live opportunities and /metrics counts the shadow ones",
            || {
                let got = unique(&received).len();
                if got < expected.len() {
                    Err(format!("{got} of {} delivered", expected.len()))
                } else if !listening(admin) {
                    Err("the admin server is not up".to_owned())
                } else if !get(admin, "/metrics").1.contains(&metric) {
                    Err(format!("no `{metric}` in /metrics"))
                } else {
                    Ok(())
                }
            },
        );
    assert_eq!(
        unique(&received),
        expected,
        "only the live playbook's reach the receiver"
    );
    assert!(get(admin, "/metrics").1.contains(&metric), "{metric}");
    let (status, body) = get(admin, "/v1/shadow?playbook=invites_watch");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["counts"]["invites_watch"], shadow.len());
    let recent = listed["recent"].as_array().unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|o| o["opportunity_id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        field(&shadow, "opportunity_id"),
        "the same ids replay gives"
    );
    assert!(recent.iter().all(|o| o["shadow"] == true));
    assert!(
        !get(admin, "/v1/shadow?playbook=premium_interest")
            .1
            .contains("opportunity_id"),
        "filtered by playbook"
    );
}

/// Clients that send half a request and wait (a slow-loris, or a broken scraper) cannot
/// take the admin server over: it holds at most `Limits::connections` connections, the
/// newest first, closes each stalled one after the header-read timeout, and `/healthz`
/// answers at once however many there are; radar's descriptors stay bounded.
#[test]
fn the_admin_server_outlasts_clients_that_never_finish_a_request() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("product-events", 1, 1).unwrap();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_radar"))
        .arg("run")
        .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env(
            "RADAR__KAFKA__BOOTSTRAP_SERVERS",
            cluster.bootstrap_servers(),
        )
        .env("RADAR__CHECKPOINT__PATH", dir.path().join("state.redb"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(Some(child));
    let pid = child.0.as_ref().unwrap().id();
    Eventually::within(Duration::from_secs(30))
        .every(Duration::from_millis(20))
        .until("the admin server is up", || listening(admin));
    // Radar's open sockets (librdkafka's among them).
    let sockets = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    };
    let before = sockets();
    let limit = radar::admin::Limits::default();
    let slack = 16;

    let mut stalled: Vec<TcpStream> = (0..2 * limit.connections + 100)
        .map(|_| {
            let mut client = TcpStream::connect(("127.0.0.1", admin)).unwrap();
            client
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: ra")
                .unwrap();
            client
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            client
        })
        .collect();

    // A probe is answered at once, within less than one header-read timeout.
    let mut probe = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    probe.set_read_timeout(Some(limit.header_read)).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: radar\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    probe
        .read_to_string(&mut answer)
        .expect("/healthz answered within the header-read timeout");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let held = sockets().saturating_sub(before);
    assert!(held <= limit.connections + slack, "{held} sockets held");

    // Every stalled client is closed by radar: each read ends (EOF) rather than timing
    // out, the oldest at once, the rest after the header-read timeout.
    // Each poll waits up to 20 ms on every client's read: no pause between polls.
    Eventually::within(limit.header_read * 3)
        .every(Duration::ZERO)
        .until("radar closed every stalled client", || {
            stalled.retain_mut(|client| {
                let mut byte = [0u8; 256];
                match client.read(&mut byte) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                }
            });
            let held = sockets().saturating_sub(before);
            assert!(held <= limit.connections + slack, "{held} sockets held");
            if stalled.is_empty() {
                Ok(())
            } else {
                Err(format!("{} clients still held", stalled.len()))
            }
        });
}
