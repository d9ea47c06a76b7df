//! Several `radar run` instances with `state.store = "kafka"` in one consumer group,
//! against a tansu broker process, each scenario compared with `radar replay` of the same
//! events: every opportunity delivered (none lost, none that replay does not give; a
//! repeat only ever under the same `webhook-id`), and every account's final state, as
//! the instance holding it shows it, equal to replay's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use radar_testkit::broker::{Broker, start_broker};
use radar_testkit::http::{get, metric};
use radar_testkit::kafka::produce;
use radar_testkit::process::{KillOnDrop, free_port};
use radar_testkit::{Eventually, eventually};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tempfile::TempDir;

use crate::support::{HOOK_SECRET, field, radar_run, replayed, unique, well_formed};

/// The token the instances prove to each other they know (`admin.peer_token_env`).
const PEER_TOKEN: &str = "scale-out-peer-token";

/// Partitions of each scenario's event topic.
const PARTITIONS: usize = 4;

/// A webhook receiver on 127.0.0.1 that answers `status`: 204 records the delivery's
/// `webhook-id`, anything else records nothing.
fn receiver(
    runtime: &tokio::runtime::Runtime,
) -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicU16>) {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(204));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (seen, answer) = (ids.clone(), status.clone());
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let (seen, answer) = (seen.clone(), answer.clone());
        async move {
            let status = answer.load(Ordering::SeqCst);
            if status == 204 {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                seen.lock().unwrap().push(id);
            }
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ids, status)
}

/// One scenario: a broker, an event topic, a consumer group, a receiver.
struct Scenario {
    broker: Broker,
    topic: String,
    group: String,
    url: String,
    received: Arc<Mutex<Vec<String>>>,
    /// What the receiver answers.
    status: Arc<AtomicU16>,
    _runtime: tokio::runtime::Runtime,
}

impl Scenario {
    fn new(name: &str) -> Scenario {
        let broker = start_broker();
        let topic = format!("{name}-{}", std::process::id());
        let client = ClientConfig::new()
            .set("bootstrap.servers", &broker.address)
            .clone();
        radar_kafka::topics::ensure(
            &client,
            &topic,
            PARTITIONS,
            1,
            radar_kafka::topics::Cleanup::Delete,
        )
        .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (url, received, status) = receiver(&runtime);
        Scenario {
            broker,
            group: format!("radar-{name}-{}", std::process::id()),
            topic,
            url,
            received,
            status,
            _runtime: runtime,
        }
    }

    fn delivered(&self) -> BTreeSet<String> {
        unique(&self.received)
    }

    /// Waits until every id of `expected` is delivered; the set delivered then.
    fn wait_for(
        &self,
        expected: &BTreeSet<String>,
        within: Duration,
        what: &str,
    ) -> BTreeSet<String> {
        eventually(within, &format!("{what} is delivered"), || {
            let delivered = self.delivered();
            if delivered.is_superset(expected) {
                Ok(delivered)
            } else {
                Err(format!(
                    "{} of {} delivered",
                    delivered.intersection(expected).count(),
                    expected.len()
                ))
            }
        })
    }

    /// Starts an instance on a new machine: an empty state directory.
    fn start(&self) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let config = self.write_config(dir.path());
        let admin = free_port();
        let radar = start_radar(&config, admin);
        Instance {
            _dir: dir,
            config,
            admin,
            radar,
        }
    }

    fn write_config(&self, dir: &Path) -> PathBuf {
        let config = dir.join("radar.toml");
        std::fs::write(
            &config,
            format!(
                r#"[kafka]
bootstrap_servers = "{servers}"
group_id = "{group}"
topics = ["{topic}"]
dead_letter_topic = "{topic}.dead-letter"
max_batch = 100

[kafka.client]
session_timeout_ms = "6000"
heartbeat_interval_ms = "500"
fetch_wait_max_ms = "10"

[state]
store = "kafka"

[checkpoint]
path = "{state}"
every_events = 100
every = "200ms"

[admin]
peer_token_env = "TEST_PEER_TOKEN"
peer_networks = ["127.0.0.0/8"]

[delivery]
allow_networks = ["127.0.0.0/8"]
schedule = ["500ms", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"]
breaker_failures = 1000
breaker_cooldown = "1s"

[[delivery.destinations]]
name = "hook"
kind = "webhook"
url = "{url}"
secret_env = "TEST_HOOK_SECRET"
"#,
                servers = self.broker.address,
                group = self.group,
                topic = self.topic,
                url = self.url,
                state = dir.join("state.redb").display()
            ),
        )
        .unwrap();
        config
    }

    /// Records parked on the retry topic so far.
    fn retries_parked(&self) -> i64 {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.broker.address)
            .create()
            .unwrap();
        let topic = format!("{}-opportunities.retry", self.group);
        (0..PARTITIONS as i32)
            .filter_map(|p| {
                reader
                    .fetch_watermarks(&topic, p, Duration::from_secs(5))
                    .ok()
            })
            .map(|(low, high)| high - low)
            .sum()
    }
}

fn start_radar(config: &Path, admin: u16) -> KillOnDrop {
    let child = radar_run(config, admin, &[("TEST_PEER_TOKEN", PEER_TOKEN)])
        // Its log, beside its state, for a look while a failing test is debugged.
        .stderr(std::fs::File::create(config.with_file_name("radar.log")).unwrap())
        .spawn()
        .unwrap();
    KillOnDrop(Some(child))
}

/// A running `radar run`, with its own state directory.
struct Instance {
    _dir: TempDir,
    config: PathBuf,
    admin: u16,
    radar: KillOnDrop,
}

impl Instance {
    fn kill_9(self) {
        let mut child = self.radar.take();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn partitions(&self) -> u64 {
        metric(self.admin, "radar_kafka_partitions_assigned").unwrap_or(0)
    }
}

/// The opportunity ids `radar replay` gives for `lines`.
fn expected(lines: &[String]) -> BTreeSet<String> {
    field(&replayed(lines).0, "opportunity_id")
}

/// Every account's state equal to replay's, all asked of one instance, which answers for
/// those another instance holds through it (while partitions move, none may hold an
/// account for a moment: asked again until a deadline).
fn assert_states_equal(lines: &[String], asked: &Instance) {
    let (_, engine) = replayed(lines);
    let accounts: BTreeSet<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(radar_gen::account_key(l)).into_owned())
        .collect();
    let shown = |account: &str| {
        {
            let (status, body) = get(asked.admin, &format!("/v1/accounts/{account}"));
            let serde_json::Value::Object(mut map) = serde_json::from_str(&body).ok()? else {
                return None;
            };
            // The explanation of held state; an account only seen in recent opportunities
            // has none.
            if status != 200 || !map.contains_key("stream_time") {
                return None;
            }
            map.remove("recent_opportunities");
            Some(serde_json::Value::Object(map))
        }
    };
    let mut pending: Vec<String> = accounts.into_iter().collect();
    Eventually::within(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .until("every account's state shown equals replay's", || {
            pending.retain(|account| shown(account) != engine.explain(account));
            match pending.first() {
                None => Ok(()),
                Some(account) => Err(format!(
                    "account {account}, one of {} that differ, shown as {:?}, replay's {:?}",
                    pending.len(),
                    shown(account),
                    engine.explain(account)
                )),
            }
        });
}

/// Three `kill -9`s of one of two instances, each once it has made progress on its share
/// of a new fifth of the stream, the killed one restarted on a new machine each time.
#[test]
fn two_instances_lose_nothing_when_one_is_killed_three_times() {
    let scenario = Scenario::new("scale-kill");
    let lines = well_formed(80, 5_000, 23);
    let fifths: Vec<&[String]> = lines.chunks(lines.len() / 5).collect();
    let a = scenario.start();
    let mut b = scenario.start();
    let mut delivered_before = 0;
    for (i, fifth) in fifths.iter().enumerate() {
        produce(&scenario.broker.address, &scenario.topic, fifth);
        let so_far = &lines[..lines.len() * (i + 1) / 5];
        let expected_so_far = expected(so_far);
        if i < 3 {
            // Both members hold partitions, and part of the new fifth is through.
            let progress = delivered_before + (expected_so_far.len() - delivered_before) / 5;
            Eventually::within(Duration::from_secs(60))
                .every(Duration::from_millis(20))
                .until(
                    &format!("both hold partitions and fifth {i} is under way"),
                    || {
                        let (held_a, held_b) = (a.partitions(), b.partitions());
                        let delivered = scenario.delivered().len();
                        if held_a > 0 && held_b > 0 && delivered >= progress {
                            Ok(())
                        } else {
                            Err(format!(
                                "partitions {held_a} and {held_b}, delivered {delivered} of {progress}"
                            ))
                        }
                    },
                );
            b.kill_9();
            b = scenario.start();
        }
        delivered_before = scenario
            .wait_for(
                &expected_so_far,
                Duration::from_secs(90),
                &format!("fifth {i}"),
            )
            .len();
    }
    let all = expected(&lines);
    let delivered = scenario.wait_for(&all, Duration::from_secs(30), "everything");
    assert_eq!(
        delivered.difference(&all).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "delivered what replay does not give"
    );
    assert_states_equal(&lines, &b);
}

/// The repeats a `kill -9` may cause: the killed instance's deliveries in flight, at most
/// `max_in_flight` (4 by default) for the one destination. What it had settled is on the
/// settlement ledger, and the instance that takes its partitions over skips it.
const MAX_IN_FLIGHT: usize = 4;

/// One `kill -9` of the instance that is 40% through 20,000 events: every opportunity
/// delivered, and repeats at most what the killed instance had in flight, each counted
/// in `radar_delivery_repeats_total` by the instance that sent it again.
#[test]
fn a_kill_repeats_at_most_the_deliveries_in_flight() {
    let scenario = Scenario::new("scale-repeats");
    let lines = well_formed(1_000, 20_000, 31);
    let all = expected(&lines);
    let a = scenario.start();
    let b = scenario.start();
    eventually(Duration::from_secs(60), "both members are assigned", || {
        a.partitions() > 0 && b.partitions() > 0
    });
    produce(&scenario.broker.address, &scenario.topic, &lines);
    eventually(Duration::from_secs(120), "40% is delivered", || {
        let delivered = scenario.delivered().len();
        if delivered * 10 >= all.len() * 4 {
            Ok(())
        } else {
            Err(format!("{delivered} of {} delivered", all.len()))
        }
    });
    b.kill_9();
    let delivered = scenario.wait_for(&all, Duration::from_secs(120), "everything");
    assert_eq!(
        delivered.difference(&all).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "delivered what replay does not give"
    );
    let received = scenario.received.lock().unwrap().len();
    let repeats = received - delivered.len();
    let series = "radar_delivery_repeats_total{destination=\"hook\"}";
    let counted = metric(a.admin, series).expect("the survivor shows its repeats");
    let skipped = metric(
        a.admin,
        "radar_delivery_skipped_settled_total{destination=\"hook\"}",
    )
    .unwrap_or(0);
    let duplicates = metric(a.admin, "radar_delivery_duplicate_opportunities_total").unwrap_or(0);
    eprintln!(
        "{} opportunities, {received} deliveries received, {repeats} repeats, {counted} counted, {skipped} skipped as settled, {duplicates} produced twice and delivered once",
        all.len()
    );
    assert!(
        repeats <= MAX_IN_FLIGHT,
        "{repeats} repeats of {} opportunities; at most {MAX_IN_FLIGHT} were in flight",
        all.len()
    );
    assert!(
        repeats as u64 <= counted,
        "{repeats} repeats received, {counted} counted"
    );
}

/// The receiver is down, the instance holding the retries is killed, the receiver comes
/// back: the retries it held were parked on the retry topic, and the surviving instance
/// (and the killed one's replacement) deliver every opportunity.
#[test]
fn retries_survive_the_instance_that_held_them() {
    let scenario = Scenario::new("scale-retry");
    let lines = well_formed(40, 2_000, 29);
    let all = expected(&lines);
    assert!(all.len() > 20);
    scenario.status.store(503, Ordering::SeqCst);
    let a = scenario.start();
    let b = scenario.start();
    produce(&scenario.broker.address, &scenario.topic, &lines);
    // Both instances attempted and parked retries.
    eventually(
        Duration::from_secs(60),
        "both hold partitions and every opportunity's retry is parked",
        || {
            let (held_a, held_b) = (a.partitions(), b.partitions());
            let parked = scenario.retries_parked();
            if held_a > 0 && held_b > 0 && parked >= all.len() as i64 {
                Ok(())
            } else {
                Err(format!(
                    "partitions {held_a} and {held_b}, {parked} of {} retries parked",
                    all.len()
                ))
            }
        },
    );
    b.kill_9();
    // The killed one's replacement, on a new machine, runs until the end.
    let _replacement = scenario.start();
    scenario.status.store(204, Ordering::SeqCst);
    let delivered = scenario.wait_for(
        &all,
        Duration::from_secs(90),
        "after the receiver came back",
    );
    assert_eq!(
        delivered.difference(&all).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    assert_states_equal(&lines, &a);
}

/// An instance frozen (SIGSTOP) past its session timeout while its partitions have work,
/// then thawed: the other takes its partitions over, and the frozen one, on waking, must
/// not commit, write state or deliver for the partitions it lost, or the states restored
/// when partitions come back to it would be behind.
#[test]
fn an_instance_frozen_past_its_session_timeout_loses_its_partitions_cleanly() {
    let scenario = Scenario::new("scale-freeze");
    let lines = well_formed(60, 4_000, 31);
    let (first, second) = lines.split_at(lines.len() / 2);
    let a = scenario.start();
    let b = scenario.start();
    produce(&scenario.broker.address, &scenario.topic, first);
    eventually(Duration::from_secs(60), "both members are assigned", || {
        a.partitions() > 0 && b.partitions() > 0
    });
    scenario.wait_for(&expected(first), Duration::from_secs(60), "the first half");
    let frozen = b.radar.0.as_ref().unwrap().id().to_string();
    produce(&scenario.broker.address, &scenario.topic, second);
    signal("-STOP", &frozen);
    // The survivor holds every partition once the frozen member's session expires.
    eventually(
        Duration::from_secs(60),
        "A took the partitions over",
        || {
            let held = a.partitions();
            if held >= PARTITIONS as u64 {
                Ok(())
            } else {
                Err(format!("A holds {held}"))
            }
        },
    );
    let all = expected(&lines);
    scenario.wait_for(&all, Duration::from_secs(60), "everything, by the survivor");
    signal("-CONT", &frozen);
    // The thawed member rejoins and gets partitions back, restored from the changelog.
    eventually(Duration::from_secs(60), "B rejoined", || {
        let (held_a, held_b) = (a.partitions(), b.partitions());
        if held_b > 0 && held_a < PARTITIONS as u64 {
            Ok(())
        } else {
            Err(format!("partitions {held_a} and {held_b}"))
        }
    });
    let delivered = scenario.wait_for(&all, Duration::from_secs(10), "everything");
    assert_eq!(
        delivered.difference(&all).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    assert_states_equal(&lines, &b);
}

/// A member added, then one removed (SIGTERM: it leaves the group) and another added,
/// while events keep arriving.
#[test]
fn instances_added_and_removed_while_events_flow() {
    let scenario = Scenario::new("scale-churn");
    let lines = well_formed(60, 4_000, 37);
    let twentieths: Vec<&[String]> = lines.chunks(lines.len() / 20).collect();
    let a = scenario.start();
    let mut b = None;
    let mut c = None;
    for (i, chunk) in twentieths.iter().enumerate() {
        produce(&scenario.broker.address, &scenario.topic, chunk);
        match i {
            5 => b = Some(scenario.start()),
            12 => c = Some(scenario.start()),
            _ => {}
        }
        // Part of the scenario, not a wait: events keep arriving, a twentieth every
        // 300 ms, while members join (and rebalances run) in between.
        std::thread::sleep(Duration::from_millis(300));
    }
    // A leaves once the others hold partitions, while the last events are processed.
    let (b, c) = (b.unwrap(), c.unwrap());
    eventually(Duration::from_secs(60), "B and C are assigned", || {
        b.partitions() > 0 && c.partitions() > 0
    });
    let leaving = a.radar.take();
    signal("-TERM", &leaving.id().to_string());
    let left = leaving.wait_with_output().unwrap();
    assert!(left.status.success(), "A stopped cleanly");
    let all = expected(&lines);
    let delivered = scenario.wait_for(&all, Duration::from_secs(60), "everything");
    assert_eq!(
        delivered.difference(&all).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    assert_states_equal(&lines, &c);
}

fn signal(signal: &str, pid: &str) {
    assert!(
        Command::new("kill")
            .args([signal, pid])
            .status()
            .unwrap()
            .success()
    );
}

/// `radar dlq` with `state.store = "kafka"`: what a receiver refused for good is on the
/// dead-letter topic, listed while radar runs; replayed, it goes back on the retry topic,
/// is delivered, and leaves the list.
#[test]
fn dead_letters_on_the_topic_are_listed_and_replayed_while_radar_runs() {
    let scenario = Scenario::new("scale-dlq");
    let lines = well_formed(30, 1_000, 41);
    let all = expected(&lines);
    assert!(all.len() > 10);
    scenario.status.store(400, Ordering::SeqCst);
    let a = scenario.start();
    produce(&scenario.broker.address, &scenario.topic, &lines);
    let dlq = |action: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_radar"))
            .args(["dlq", action, "--config"])
            .arg(&a.config)
            .env("TEST_HOOK_SECRET", HOOK_SECRET)
            .env("TEST_PEER_TOKEN", PEER_TOKEN)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let listed = |out: &str| -> BTreeSet<String> {
        out.lines()
            .map(|l| {
                let letter: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(letter["destination"], "hook");
                assert!(
                    letter["reason"].as_str().unwrap().contains("400"),
                    "{letter}"
                );
                letter["opportunity_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    // Each poll runs `radar dlq list`: five a second at most.
    Eventually::within(Duration::from_secs(60))
        .every(Duration::from_millis(200))
        .until("every opportunity is dead-lettered", || {
            let letters = listed(&dlq("list"));
            if letters == all {
                Ok(())
            } else {
                Err(format!("{} of {} dead-lettered", letters.len(), all.len()))
            }
        });
    assert!(scenario.delivered().is_empty());
    scenario.status.store(204, Ordering::SeqCst);
    dlq("replay");
    let delivered = scenario.wait_for(&all, Duration::from_secs(60), "the replayed letters");
    assert_eq!(delivered, all);
    assert_eq!(
        listed(&dlq("list")),
        BTreeSet::new(),
        "replayed letters leave the list"
    );
}
