//! `radar run` reading the events teams already have, against tansu: a Segment topic
//! keyed by user (re-keyed by account through the repartition topic), and an Avro topic
//! whose schemas come from a schema registry that goes away for 10 s in the middle of
//! the run. Each must deliver exactly the opportunities `radar replay` finds in the same
//! events written in Radar's envelope; nothing may be dead-lettered.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use radar_gen::formats::{self, Format};
use radar_testkit::Eventually;
use radar_testkit::broker::start_broker;
use radar_testkit::http::metric;
use radar_testkit::kafka::{produce_records, read_to_end};
use radar_testkit::process::free_port;
use rdkafka::config::ClientConfig;

use crate::support::{field, receiver, replayed, start_radar, unique, well_formed, write_config};

/// Waits until the webhook receiver has seen every expected opportunity id.
fn delivered(received: &std::sync::Mutex<Vec<String>>, expected: &BTreeSet<String>, what: &str) {
    Eventually::within(Duration::from_secs(120))
        .every(Duration::from_millis(50))
        .until(what, || {
            let got = unique(received);
            if &got == expected {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} delivered, {} not expected",
                    got.intersection(expected).count(),
                    expected.len(),
                    got.difference(expected).count()
                ))
            }
        });
}

/// One partition, so that the order replay sees is the order the engine sees.
fn one_partition_topic(servers: &str, topic: &str) {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", servers);
    radar_kafka::topics::ensure(&client, topic, 1, 1, radar_kafka::topics::Cleanup::Delete)
        .unwrap();
}

fn append(config: &Path, text: &str) {
    let mut written = std::fs::read_to_string(config).unwrap();
    written.push('\n');
    written.push_str(text);
    std::fs::write(config, written).unwrap();
}

#[test]
fn a_user_keyed_segment_topic_gives_the_opportunities_of_replay() {
    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("segment-it-{}", std::process::id());
    one_partition_topic(&servers, &topic);
    one_partition_topic(&servers, &format!("{topic}.dead-letter"));
    let lines = well_formed(40, 1_500, 5);
    let (opportunities, _) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    assert!(
        expected.len() > 10,
        "too few opportunities to mean anything"
    );
    // As RudderStack's Kafka destination keys them: by user, not by account.
    let records = lines.iter().map(|line| {
        let call = formats::segment(line).unwrap();
        let user: serde_json::Value = serde_json::from_str(&call).unwrap();
        let key = user["userId"].as_str().unwrap().as_bytes().to_vec();
        (key, call.into_bytes())
    });
    produce_records(&servers, &topic, records);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = receiver(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let group = format!("radar-segment-{}", std::process::id());
    let config = write_config(dir.path(), &servers, &group, &topic, &url);
    append(&config, &formats::source_toml(Format::Segment, &topic, "."));
    let _radar = start_radar(&config, free_port(), &[]);
    delivered(
        &received,
        &expected,
        "every opportunity of the replay, re-keyed",
    );
    let letters = read_to_end(&servers, &format!("{topic}.dead-letter"));
    assert!(letters.is_empty(), "{} dead letters", letters.len());
}

/// A schema registry's `GET /schemas/ids/{id}`, serving the generator's Avro schema
/// under ids 1 and 2, that can be taken down and brought back on the same address.
struct Registry {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Registry {
    fn start(
        runtime: &tokio::runtime::Runtime,
        address: SocketAddr,
        asked: Arc<AtomicU64>,
    ) -> Registry {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(address))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let counter = asked.clone();
        let app = axum::Router::new().route(
            "/schemas/ids/{id}",
            axum::routing::get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if id == 1 || id == 2 {
                        let body = serde_json::json!({"schema": formats::AVRO_SCHEMA});
                        (axum::http::StatusCode::OK, body.to_string())
                    } else {
                        let body =
                            serde_json::json!({"error_code": 40403, "message": "Schema not found"});
                        (axum::http::StatusCode::NOT_FOUND, body.to_string())
                    }
                }
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Registry {
            address,
            stop: Some(stop),
        }
    }

    fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Avro records of the generator's schema, framed with `schema_id`, keyed by account.
fn avro_records(lines: &[String], schema_id: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let schema = apache_avro::Schema::parse_str(formats::AVRO_SCHEMA).unwrap();
    lines
        .iter()
        .map(|line| {
            let mut value = formats::avro(&schema, line).unwrap();
            value[1..5].copy_from_slice(&schema_id.to_be_bytes());
            let key = radar_testkit::kafka::account_id(line).into_bytes();
            (key, value)
        })
        .collect()
}

#[test]
fn an_avro_topic_loses_nothing_while_its_registry_is_down_for_ten_seconds() {
    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("avro-it-{}", std::process::id());
    one_partition_topic(&servers, &topic);
    one_partition_topic(&servers, &format!("{topic}.dead-letter"));
    let lines = well_formed(40, 1_500, 9);
    let (opportunities, _) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    let half = lines.len() / 2;
    // The first half under schema id 1: fetched while the registry is up.
    produce_records(&servers, &topic, avro_records(&lines[..half], 1));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let asked = Arc::new(AtomicU64::new(0));
    let mut registry = Registry::start(&runtime, "127.0.0.1:0".parse().unwrap(), asked.clone());
    let (url, received) = receiver(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let group = format!("radar-avro-{}", std::process::id());
    let config = write_config(dir.path(), &servers, &group, &topic, &url);
    let mut source = formats::source_toml(Format::Avro, &topic, "schemas");
    source = source.replace(
        "schema_dir = \"schemas\"\n",
        &format!("registry_url = \"http://{}\"\n", registry.address),
    );
    append(&config, &source);
    let admin = free_port();
    let _radar = start_radar(&config, admin, &[]);
    let first: BTreeSet<String> = field(&replayed(&lines[..half]).0, "opportunity_id");
    Eventually::within(Duration::from_secs(120))
        .every(Duration::from_millis(50))
        .until("the first half's opportunities are delivered", || {
            let got = unique(&received);
            if first.is_subset(&got) {
                Ok(())
            } else {
                Err(format!(
                    "{} of {}",
                    got.intersection(&first).count(),
                    first.len()
                ))
            }
        });

    // The registry goes away; the second half needs schema id 2, not fetched yet.
    registry.down();
    produce_records(&servers, &topic, avro_records(&lines[half..], 2));
    let failures = "radar_ingest_registry_errors_total{source=\"avro\"}";
    Eventually::within(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .until(
            "radar asks the registry that is down, and counts it",
            || match metric(admin, failures) {
                Some(n) if n > 0 => Ok(()),
                other => Err(format!("{failures} = {other:?}")),
            },
        );
    std::thread::sleep(Duration::from_secs(10));
    let _back = Registry::start(&runtime, registry.address, asked.clone());
    delivered(
        &received,
        &expected,
        "every opportunity, once the registry is back",
    );
    let letters = read_to_end(&servers, &format!("{topic}.dead-letter"));
    assert!(letters.is_empty(), "{} dead letters", letters.len());
    // The fetched schemas were cached on disk, for the next start.
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("schemas"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("2.avsc"))
        .collect();
    assert!(
        cached.len() == 1 && cached[0].is_file() && cached[0].to_string_lossy().contains("/avro-"),
        "{cached:?}"
    );
}

fn radar(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_radar"))
        .args(args)
        .output()
        .unwrap()
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ingest")
}

#[test]
fn radar_map_shows_what_each_segment_call_becomes_and_what_did_not_map() {
    let dir = fixtures();
    let output = radar(&[
        "map".as_ref(),
        "--config".as_ref(),
        dir.join("segment.toml").as_os_str(),
        "--records".as_ref(),
        "records".as_ref(),
        dir.join("segment.records.jsonl").as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12, "one line per record");
    let count = |key: &str| lines.iter().filter(|l| l.get(key).is_some()).count();
    assert_eq!(
        (count("event"), count("rejected"), count("unmapped_type")),
        (10, 2, 1)
    );
    assert_eq!(lines[0]["event"]["type"], "seat_threshold_90pct");
    assert_eq!(lines[0]["event"]["properties"]["seat_limit"], 50);
    let rejected: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["rejected"].as_str())
        .collect();
    assert_eq!(rejected, ["no_account", "no_account"]);
    let summary = String::from_utf8(output.stderr).unwrap();
    assert!(summary.contains("\"Page Viewed\" 1"), "{summary}");
    assert!(summary.contains("\"no_account\" 2"), "{summary}");
    assert!(summary.contains("mapped paths no record had"), "{summary}");
}

#[test]
fn replay_of_a_sources_records_equals_replay_of_the_same_events_in_radars_envelope() {
    let lines = well_formed(30, 1_000, 3);
    let (opportunities, _) = replayed(&lines);
    let expected = field(&opportunities, "opportunity_id");
    assert!(expected.len() > 5);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("schemas")).unwrap();
    std::fs::write(dir.path().join("schemas/1.avsc"), formats::AVRO_SCHEMA).unwrap();
    let schema = apache_avro::Schema::parse_str(formats::AVRO_SCHEMA).unwrap();
    use base64::Engine as _;
    for format in [Format::Segment, Format::Cloudevents, Format::Avro] {
        let written: Vec<String> = lines
            .iter()
            .map(|line| match format {
                Format::Segment => formats::segment(line).unwrap(),
                Format::Cloudevents => formats::cloudevents(line).unwrap(),
                Format::Avro => base64::engine::general_purpose::STANDARD
                    .encode(formats::avro(&schema, line).unwrap()),
            })
            .collect();
        let input = dir.path().join("records");
        std::fs::write(&input, written.join("\n")).unwrap();
        let config = dir.path().join("radar.toml");
        std::fs::write(&config, formats::source_toml(format, "t", "schemas")).unwrap();
        let output = radar(&[
            "replay".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--source".as_ref(),
            "-".as_ref(),
            input.as_os_str(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let got: Vec<serde_json::Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(field(&got, "opportunity_id"), expected, "{format:?}");
        assert_eq!(
            got, opportunities,
            "{format:?}: the same opportunities, whole"
        );
    }
}

#[test]
fn a_mapping_that_names_an_unknown_field_fails_validation_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    std::fs::write(
        &config,
        "[[sources]]\nname = \"web\"\ntopics = [\"t\"]\nenvelope = \"segment\"\n[sources.fields]\nacount_id = \"context.groupId\"\n[sources.types]\n\"Seat Added\" = \"seat_added\"\n",
    )
    .unwrap();
    let output = radar(&["validate".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sources.web.fields.acount_id"), "{stderr}");
}

/// Segment calls keyed by user over three partitions, and a `kill -9` of radar while it
/// re-keys them: after the restart every event is on the repartition topic (copies
/// allowed, none lost), keyed by its account, each account on one partition, and the
/// re-keying group has committed every raw record.
#[test]
fn a_user_keyed_topic_of_three_partitions_is_rekeyed_by_account_through_a_kill_9() {
    use std::collections::BTreeMap;

    let broker = start_broker();
    let servers = broker.address.clone();
    let topic = format!("segment3-it-{}", std::process::id());
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &servers);
    radar_kafka::topics::ensure(&client, &topic, 3, 1, radar_kafka::topics::Cleanup::Delete)
        .unwrap();
    one_partition_topic(&servers, &format!("{topic}.dead-letter"));
    let lines = well_formed(40, 3_000, 17);
    let mut expected: BTreeMap<String, (String, String)> = BTreeMap::new();
    let records: Vec<(Vec<u8>, Vec<u8>)> = lines
        .iter()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |f: &str| event[f].as_str().unwrap().to_owned();
            // The one name the Segment mapping does not map back: it stays theirs.
            let kind = match text("type").as_str() {
                "page_viewed" => "Page Viewed".to_owned(),
                kind => kind.to_owned(),
            };
            expected.insert(text("event_id"), (kind, text("account_id")));
            let call = formats::segment(line).unwrap();
            let user: serde_json::Value = serde_json::from_str(&call).unwrap();
            (
                user["userId"].as_str().unwrap().as_bytes().to_vec(),
                call.into_bytes(),
            )
        })
        .collect();
    produce_records(&servers, &topic, records);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, _received) = receiver(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let group = format!("radar-segment3-{}", std::process::id());
    let config = write_config(dir.path(), &servers, &group, &topic, &url);
    append(&config, &formats::source_toml(Format::Segment, &topic, "."));
    let rekeyed = "radar_ingest_rekeyed_total{source=\"segment\"}";

    let admin = free_port();
    let mut first = start_radar(&config, admin, &[]);
    Eventually::within(Duration::from_secs(120))
        .every(Duration::from_millis(20))
        .until("a third of the calls re-keyed, to kill radar", || {
            // A radar that exited says why, instead of a metric that never comes.
            let child = first.0.as_mut().unwrap();
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("radar exited ({status}) before re-keying: {stderr}");
            }
            match metric(admin, rekeyed) {
                Some(n) if n as usize >= lines.len() / 3 => Ok(()),
                other => Err(format!("{rekeyed} = {other:?}")),
            }
        });
    first.0.as_mut().unwrap().kill().unwrap();
    first.0.as_mut().unwrap().wait().unwrap();

    let second = start_radar(&config, free_port(), &[]);
    let reader: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", format!("{group}-rekey"))
        .create()
        .unwrap();
    let mut partitions = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition(&topic, p);
    }
    Eventually::within(Duration::from_secs(90))
        .every(Duration::from_millis(100))
        .until("the re-keying group commits every raw record", || {
            let done = radar_testkit::kafka::committed(&reader, &partitions);
            if done as usize == lines.len() {
                Ok(())
            } else {
                Err(format!("{done} of {}", lines.len()))
            }
        });
    drop(second);

    let repartition = radar_kafka::RekeyConfig::repartition_topic(&group);
    let placed = radar_testkit::kafka::read_to_end_placed(&servers, &repartition);
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut partition_of: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for (partition, key, payload) in &placed {
        let event: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let text = |f: &str| event[f].as_str().unwrap().to_owned();
        assert_eq!(
            key,
            text("account_id").as_bytes(),
            "keyed by account: {event}"
        );
        let first_partition = *partition_of.entry(key.clone()).or_insert(*partition);
        assert_eq!(first_partition, *partition, "one partition per account");
        seen.insert(text("event_id"), (text("type"), text("account_id")));
    }
    assert_eq!(
        seen, expected,
        "every event re-keyed, as the envelope it was"
    );
    assert!(placed.len() >= lines.len(), "copies allowed, nothing lost");
    let letters = read_to_end(&servers, &format!("{topic}.dead-letter"));
    assert!(letters.is_empty(), "{} dead letters", letters.len());
}
