//! The group's members as `/v1/accounts` asks them: anything that joins the consumer
//! group can advertise an address in its client id, so a crafted member must neither
//! steer radar's requests where it likes (SSRF) nor have its answer relayed as an
//! account's state. Two `radar run` instances and a crafted member on a tansu broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use radar_testkit::Eventually;
use radar_testkit::broker::start_broker;
use radar_testkit::http::{get, listening};
use radar_testkit::kafka::produce;
use radar_testkit::process::{KillOnDrop, free_port};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support::{events, radar_run};

const PEER_TOKEN: &str = "peer-token-of-the-test-group";

/// A server that answers every request as an instance holding the account would, and
/// records each request's headers.
fn impostor(runtime: &tokio::runtime::Runtime) -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(format!("{headers:?}"));
            axum::Json(serde_json::json!({"stream_time": "2026-01-01T00:00:00Z", "score": 999.0}))
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

#[test]
fn a_crafted_group_member_is_neither_reached_off_the_allow_list_nor_believed() {
    let broker = start_broker();
    let topic = format!("peers-{}", std::process::id());
    let group = format!("radar-peers-{}", std::process::id());
    let client = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .clone();
    radar_kafka::topics::ensure(&client, &topic, 1, 1, radar_kafka::topics::Cleanup::Delete)
        .unwrap();
    // tansu lists a group once it has committed offsets: a few events to commit.
    produce(&broker.address, &topic, &events(5, 50, 1));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (impostor_port, asked) = impostor(&runtime);

    // Two radars of the group: `closed` allows no internal network to peers, `open` the
    // loopback one these tests run on. Both know the peer token.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"{group}\"\ntopics = [\"{topic}\"]\n\
             dead_letter_topic = \"{topic}.dead-letter\"\n\n[kafka.client]\nsession_timeout_ms = \"6000\"\n\
             heartbeat_interval_ms = \"500\"\n\n[state]\nstore = \"kafka\"\n\n\
             [admin]\npeer_token_env = \"TEST_PEER_TOKEN\"\n",
            broker.address
        ),
    )
    .unwrap();
    let start = |name: &str, networks: &str| {
        let admin = free_port();
        let state = dir.path().join(format!("{name}.redb"));
        let child = radar_run(
            &config,
            admin,
            &[
                ("TEST_PEER_TOKEN", PEER_TOKEN),
                ("RADAR__ADMIN__PEER_NETWORKS", networks),
                ("RADAR__CHECKPOINT__PATH", state.to_str().unwrap()),
            ],
        )
        .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap();
        (admin, KillOnDrop(Some(child)))
    };
    let (closed, _closed) = start("closed", "");
    let (open, _open) = start("open", "127.0.0.0/8");

    // The crafted member: advertises the impostor by name, and stays in the group.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("group.id", &group)
        .set("client.id", format!("radar@localhost:{impostor_port}#x"))
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    member.subscribe(&[&topic]).unwrap();
    let member = Arc::new(member);
    let stop = Arc::new(AtomicBool::new(false));
    let polling = {
        let (member, stop) = (member.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = member.poll(Duration::from_millis(100));
            }
        })
    };
    // On the allow-list: once the group lists the crafted member, the open instance
    // asks it with a signed request that does not carry the token, and refuses its
    // unproven answer, every time.
    Eventually::within(Duration::from_secs(60))
        .every(Duration::from_millis(200))
        .until("the open instance asked the impostor", || {
            if !listening(open) {
                return Err("the open instance's admin server is not up".to_owned());
            }
            if !asked.lock().unwrap().is_empty() {
                return Ok(());
            }
            let (status, body) = get(open, "/v1/accounts/acct_nobody");
            assert_eq!(status, 404, "the impostor's answer was relayed: {body}");
            Err(format!(
                "not asked; its log:\n{}",
                std::fs::read_to_string(dir.path().join("open.log")).unwrap_or_default()
            ))
        });
    let (status, body) = get(open, "/v1/accounts/acct_nobody");
    assert_eq!(status, 404, "the impostor's answer was relayed: {body}");
    let requests = asked.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|r| r.contains("radar-peer") && !r.contains(PEER_TOKEN)),
        "{requests:?}"
    );

    // Off the allow-list: the impostor's name resolves to loopback, so the closed
    // instance, which sees the same members, does not ask it (every peer has been asked,
    // or not, by the time the answer comes).
    let before = requests.len();
    let (status, body) = get(closed, "/v1/accounts/acct_nobody");
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        asked.lock().unwrap().len(),
        before,
        "the closed instance asked the impostor"
    );
    stop.store(true, Ordering::Relaxed);
    polling.join().unwrap();
}
