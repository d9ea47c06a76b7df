//! Operating `radar run` as a log pipeline and a dashboard see it: with `--log-format
//! json` every line on stderr is one JSON object, the summary included; a fresh
//! instance's `/metrics` already has the series dashboards plot, at 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;

use crate::run::{KillOnDrop, events, free_port, get, produce, receiver};

/// Every line of `stderr` as JSON; panics naming the first that is not.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stderr}"))
        })
        .collect()
}

#[test]
fn with_json_logs_every_stderr_line_of_run_and_replay_is_json() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("product-events", 2, 1).unwrap();
    cluster
        .create_topic("product-events.dead-letter", 1, 1)
        .unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(20, 300, 3);
    produce(&servers, "product-events", &lines);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, _) = receiver(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nallow_networks = [\"127.0.0.0/8\"]\n\n[[delivery.destinations]]\n\
             name = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"TEST_HOOK_SECRET\"\n"
        ),
    )
    .unwrap();
    let admin = free_port();
    let child = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_radar"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("TEST_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
            .env("RADAR__KAFKA__BOOTSTRAP_SERVERS", &servers)
            .env("RADAR__CHECKPOINT__PATH", dir.path().join("state.redb"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // The first scrape that answers: the dashboards' series are there before anything
    // was reloaded or dead-lettered.
    let started = Instant::now();
    let scrape = loop {
        if std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok() {
            break get(admin, "/metrics").1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "admin never up"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for series in [
        "radar_config_reloads_total{result=\"applied\"} 0",
        "radar_config_reloads_total{result=\"refused\"} 0",
        "radar_config_reloads_total{result=\"unchanged\"} 0",
        "radar_delivery_dead_lettered_total{destination=\"hook\"} 0",
    ] {
        assert!(scrape.contains(series), "{series} not in:\n{scrape}");
    }
    while crate::run::metric(admin, "radar_events_consumed_total").unwrap_or(0) < 300 {
        assert!(started.elapsed() < Duration::from_secs(60), "not consumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let child = child.take();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary: Vec<serde_json::Value> = json_lines(&stderr)
        .into_iter()
        .filter(|l| l["message"] == "summary")
        .collect();
    assert_eq!(summary.len(), 1, "{stderr}");
    assert_eq!(summary[0]["events_read"], 300, "{stderr}");
    assert!(summary[0]["tracked_accounts"].as_u64().unwrap() > 0);

    // replay, with its explanation of an account.
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (opportunities, _) = crate::run::replayed(&lines);
    let account = opportunities[0]["account_id"].as_str().unwrap().to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_radar"))
        .args(["--log-format", "json", "replay", "--explain", &account])
        .arg(&file)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let said = json_lines(&stderr);
    assert!(
        said.iter()
            .any(|l| l["message"] == "summary" && l["events_read"] == 300),
        "{stderr}"
    );
    let explained = said.iter().find(|l| l["message"] == "explain").unwrap();
    let explanation: serde_json::Value =
        serde_json::from_str(explained["explanation"].as_str().unwrap()).unwrap();
    assert!(explanation["score"].is_number(), "{stderr}");
}
