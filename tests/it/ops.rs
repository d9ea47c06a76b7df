//! Operating `radar run` as a log pipeline, a dashboard and an operator see it: with
//! `--log-format json` every line on stderr is one JSON object, the summary included; a
//! fresh instance's `/metrics` already has the series dashboards plot, at 0; with a read
//! token, the endpoints that describe accounts and rules need it, probes and metrics not,
//! and off loopback there is no starting without one; a store directory that is not
//! there is said to be missing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use radar_testkit::Eventually;
use radar_testkit::http::{get, get_as, listening, metric};
use radar_testkit::kafka::produce;
use radar_testkit::process::{KillOnDrop, free_port};
use rdkafka::mocking::MockCluster;

use crate::root;
use crate::support::{events, receiver};

/// `radar args…` with `env` added: its output.
fn radar(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_radar"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

const READ_TOKEN: &str = "a-read-token-for-the-test";

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
fn json_logs_series_from_the_start_and_a_read_token_as_an_operator_sees_them() {
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
            .env("RADAR__ADMIN__READ_TOKEN_ENV", "TEST_READ_TOKEN")
            .env("TEST_READ_TOKEN", READ_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // The first scrape that answers: the dashboards' series are there before anything
    // was reloaded or dead-lettered.
    let started = Instant::now();
    let scrape = Eventually::within(Duration::from_secs(30))
        .every(Duration::from_millis(20))
        .until("the admin server is up", || {
            listening(admin).then(|| get(admin, "/metrics").1)
        });
    for series in [
        "radar_config_reloads_total{result=\"applied\"} 0",
        "radar_config_reloads_total{result=\"refused\"} 0",
        "radar_config_reloads_total{result=\"unchanged\"} 0",
        "radar_delivery_dead_lettered_total{destination=\"hook\"} 0",
    ] {
        assert!(scrape.contains(series), "{series} not in:\n{scrape}");
    }
    // One minute from the start for both waits.
    Eventually::within(Duration::from_secs(60).saturating_sub(started.elapsed())).until(
        "radar consumed the 300 events",
        || {
            let consumed = metric(admin, "radar_events_consumed_total").unwrap_or(0);
            if consumed >= 300 {
                Ok(())
            } else {
                Err(format!("{consumed} consumed"))
            }
        },
    );
    let (opportunities, _) = crate::support::replayed(&lines);
    let account = opportunities[0]["account_id"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/accounts/{account}"),
        "/v1/playbooks".into(),
        "/v1/shadow".into(),
        "/v1/destinations".into(),
    ] {
        assert_eq!(get_as(admin, &path, None).0, 401, "{path} without a token");
        assert_eq!(
            get_as(admin, &path, Some("not-the-read-token-at-all")).0,
            401,
            "{path} with another token"
        );
        let (status, body) = get_as(admin, &path, Some(READ_TOKEN));
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, destinations) = get_as(admin, "/v1/destinations", Some(READ_TOKEN));
    let destinations: serde_json::Value = serde_json::from_str(&destinations).unwrap();
    let hook = &destinations["destinations"][0];
    assert_eq!(
        (hook["name"].as_str(), hook["kind"].as_str()),
        (Some("hook"), Some("webhook")),
        "{destinations}"
    );
    assert_eq!(hook["credentials"], "ok", "{destinations}");
    assert!(hook["queue_depth"].is_u64(), "{destinations}");
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get_as(admin, path, None).0, 200, "{path} needs no token");
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

/// A `checkpoint.path` in a directory that does not exist is named as such, by its key,
/// by `run` and `dlq`, not guessed to be another radar's file.
#[test]
fn a_checkpoint_path_in_a_missing_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let missing = dir.join("no-such-dir").join("state.redb");
    let env = [("RADAR__CHECKPOINT__PATH", path(&missing))];
    let config = root().join("config/radar.toml");
    for command in [&["run", "--config"][..], &["dlq", "list", "--config"]] {
        let args = [command, &[path(&config)]].concat();
        let out = radar(&args, &env);
        let command = command.join(" ");
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {said}");
        assert!(
            said.contains("checkpoint.path:") && said.contains("no-such-dir does not exist"),
            "{command}: {said}"
        );
        assert!(!said.contains("another radar"), "{command}: {said}");
    }
}

/// An admin server off loopback without a read token would serve every account's state
/// to whoever reaches the port: refused at startup, naming the key, unless opted out.
#[test]
fn an_admin_address_off_loopback_needs_a_read_token() {
    let config = root().join("config/radar.toml");
    let anywhere = [("RADAR__ADMIN__LISTEN", "0.0.0.0:9464")];
    for command in ["validate", "run"] {
        let out = radar(&[command, "--config", path(&config)], &anywhere);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {said}");
        assert!(
            said.contains("admin.read_token_env: admin.listen 0.0.0.0:9464 is not loopback"),
            "{command}: {said}"
        );
    }
    let opted_out = [
        ("RADAR__ADMIN__LISTEN", "0.0.0.0:9464"),
        ("RADAR__ADMIN__READ_TOKEN_REQUIRED", "false"),
    ];
    let out = radar(&["validate", "--config", path(&config)], &opted_out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let with_token = [
        ("RADAR__ADMIN__LISTEN", "0.0.0.0:9464"),
        ("RADAR__ADMIN__READ_TOKEN_ENV", "TEST_READ"),
        ("TEST_READ", "a-read-token-of-some-length"),
    ];
    let out = radar(&["validate", "--config", path(&config)], &with_token);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("a-read-token"), "never printed");
}
