//! Hot reload: which changes apply live and which are refused, and a reload under load
//! against `radar run` on a Kafka-protocol broker — no event lost or processed twice,
//! every opportunity stamped with the version that produced it, SIGHUP and `POST
//! /v1/reload` (which needs the admin token).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use radar_core::settings::live_change;
use radar_testkit::eventually;
use radar_testkit::http::{get, listening, metric};
use radar_testkit::kafka::produce;
use radar_testkit::process::{KillOnDrop, free_port};
use rdkafka::mocking::MockCluster;
use serde_json::Value;

use crate::support::events;

const TOKEN: &str = "reload-token-0123456789";

/// The default config's `[[playbooks]]`, to keep them in a config that adds one (a
/// config's list replaces the defaults whole).
fn default_playbooks() -> String {
    let text = std::fs::read_to_string(crate::root().join("config/radar.toml")).unwrap();
    let start = text.find("[[playbooks]]").unwrap();
    let end = start + text[start..].find("\n[kafka]").unwrap();
    // Drop the comment block that introduces [kafka].
    let block = &text[start..end];
    let cut = block.rfind("\n\n").map_or(block.len(), |at| at);
    format!("{}\n\n", &block[..cut])
}

/// Writes a config file.
fn write(path: &Path, extra: &str) {
    std::fs::write(path, extra).unwrap();
}

fn settings(dir: &Path, name: &str, text: &str) -> radar_core::Settings {
    let path = dir.join(name);
    write(&path, text);
    radar::config::load(Some(&path)).unwrap()
}

#[test]
fn rules_apply_live_and_what_the_state_cannot_follow_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let base = settings(dir.path(), "base.toml", "");
    let defaults = default_playbooks();
    let more = settings(
        dir.path(),
        "more.toml",
        &format!(
            "{defaults}[[playbooks]]\nname = \"invites\"\nkind = \"horizontal_expansion\"\nmode = \"shadow\"\nall = [{{ count = \"team_invite_sent\", window = \"14d\", op = \">=\", value = 3.0 }}]\n\n[gates]\nmin_health_score = 50.0\n"
        ),
    );
    assert_eq!(live_change(&base, &more), Vec::<String>::new());
    // The shadow rule goes live: allowed, and with cooldowns of its own.
    let live = settings(
        dir.path(),
        "live.toml",
        &format!(
            "{defaults}[[playbooks]]\nname = \"invites\"\nkind = \"horizontal_expansion\"\nall = [{{ count = \"team_invite_sent\", window = \"14d\", op = \">=\", value = 3.0 }}]\n"
        ),
    );
    assert_eq!(live_change(&more, &live), Vec::<String>::new());
    let key = |s: &radar_core::Settings| {
        s.playbooks
            .iter()
            .find(|p| p.name == "invites")
            .unwrap()
            .key
    };
    assert_ne!(key(&more), key(&live));
    // Playbooks that stop counting a type: refused, since checkpoints would carry the gap
    // to instances and restarts on the old config (the score's windows keep the history
    // length here).
    let fewer = settings(
        dir.path(),
        "fewer.toml",
        "[[playbooks]]\nname = \"seats\"\nkind = \"seat_expansion\"\nany = [{ event = \"seat_threshold_90pct\" }]\n",
    );
    let reasons = live_change(&base, &fewer);
    assert!(
        reasons.iter().any(|r| r.contains("no window counts")),
        "{reasons:?}"
    );
    let bucket = settings(dir.path(), "bucket.toml", "[engine]\nbucket = \"30m\"\n");
    let reasons = live_change(&base, &bucket);
    assert!(
        reasons.iter().any(|r| r.starts_with("engine.bucket")),
        "{reasons:?}"
    );
    let longer = settings(
        dir.path(),
        "longer.toml",
        "[[playbooks]]\nname = \"long\"\nkind = \"feature_upgrade\"\nall = [{ count = \"feature_limit_hit\", window = \"90d\", op = \">=\", value = 3.0 }]\n",
    );
    let reasons = live_change(&base, &longer);
    assert!(
        reasons.iter().any(|r| r.contains("longest window")),
        "{reasons:?}"
    );
    let uncounted = settings(
        dir.path(),
        "uncounted.toml",
        "[[playbooks]]\nname = \"nps\"\nkind = \"renewal_expansion\"\nall = [{ count = \"nps_submitted\", window = \"7d\", op = \">=\", value = 1.0 }]\n",
    );
    let reasons = live_change(&base, &uncounted);
    assert!(
        reasons.iter().any(|r| r.contains("\"nps_submitted\"")),
        "{reasons:?}"
    );
}

/// A receiver that keeps every delivered opportunity.
fn keeping_receiver(runtime: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<Value>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = kept.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let event: Value = serde_json::from_slice(&body).unwrap();
            seen.lock().unwrap().push(event["data"].clone());
            axum::http::StatusCode::NO_CONTENT
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, kept)
}

fn post_reload(port: u16, token: Option<&str>) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "POST /v1/reload HTTP/1.1\r\nHost: radar\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn a_reload_under_load_loses_nothing_and_stamps_each_opportunity_with_its_version() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("product-events", 2, 1).unwrap();
    cluster
        .create_topic("product-events.dead-letter", 1, 1)
        .unwrap();
    let servers = cluster.bootstrap_servers();
    let lines = events(60, 6_000, 13);
    let (first, second) = lines.split_at(3_000);
    produce(&servers, "product-events", first);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, kept) = keeping_receiver(&runtime);
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    let delivery = format!(
        "[delivery]\nallow_networks = [\"127.0.0.0/8\"]\n\n[[delivery.destinations]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"TEST_HOOK_SECRET\"\n"
    );
    let version_of = |text: &str| {
        let path = dir.path().join("probe.toml");
        write(&path, text);
        radar::config::version(&radar::config::load_raw(Some(&path)).unwrap())
    };
    let a = format!("[admin]\ntoken_env = \"TEST_ADMIN_TOKEN\"\n\n{delivery}");
    // B: the defaults plus a playbook on a type they count, within their longest window;
    // tier rises only from critical.
    let b = format!(
        "[opportunities]\ntier_rise_min = \"critical\"\n\n{}[[playbooks]]\nname = \"invites\"\nkind = \"horizontal_expansion\"\nall = [{{ count = \"team_invite_sent\", window = \"14d\", op = \">=\", value = 2.0 }}]\n\n{a}",
        default_playbooks()
    );
    let (version_a, version_b) = (version_of(&a), version_of(&b));
    assert_ne!(version_a, version_b);
    write(&config, &a);
    let child = Command::new(env!("CARGO_BIN_EXE_radar"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("TEST_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .env("TEST_ADMIN_TOKEN", TOKEN)
        .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .env("RADAR__KAFKA__BOOTSTRAP_SERVERS", &servers)
        .env("RADAR__KAFKA__CLIENT__SESSION_TIMEOUT_MS", "6000")
        .env("RADAR__KAFKA__MAX_BATCH", "200")
        .env("RADAR__CHECKPOINT__PATH", dir.path().join("state.redb"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop(Some(child));
    eventually(
        Duration::from_secs(60),
        "radar consumed some of the first half",
        || {
            let consumed = metric(admin, "radar_events_consumed_total");
            if listening(admin) && consumed.is_some_and(|n| n >= 500) {
                Ok(())
            } else {
                Err(format!("consumed {consumed:?} of 500"))
            }
        },
    );
    assert!(get(admin, "/v1/playbooks").1.contains(&version_a));

    // Under load: the second half is produced while the new config goes in force.
    let producing = {
        let (servers, second) = (servers.clone(), second.to_vec());
        std::thread::spawn(move || produce(&servers, "product-events", &second))
    };
    write(&config, &b);
    assert_eq!(post_reload(admin, None).0, 401, "no token, no reload");
    assert_eq!(post_reload(admin, Some("not-the-admin-token")).0, 401);
    let (status, answer) = post_reload(admin, Some(TOKEN));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "applied", "{answer}");
    assert_eq!(answer["version"], version_b.as_str());
    assert_eq!(answer["previous"], version_a.as_str());
    let changes = answer["changes"].to_string();
    assert!(changes.contains("playbook invites added"), "{changes}");
    assert!(changes.contains("[opportunities] changed"), "{changes}");
    producing.join().unwrap();

    // A change the state cannot follow is refused whole; the version in force stays.
    write(&config, &format!("[engine]\nbucket = \"30m\"\n\n{b}"));
    let (status, answer) = post_reload(admin, Some(TOKEN));
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["result"], "refused");
    assert_eq!(answer["version"], version_b.as_str());
    assert!(
        answer["reasons"].to_string().contains("engine.bucket"),
        "{answer}"
    );
    // So is a config that does not validate, with `radar validate`'s words.
    write(
        &config,
        &format!("[gates]\nmin_health_score = \"high\"\n\n{b}"),
    );
    let (status, answer) = post_reload(admin, Some(TOKEN));
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["reasons"]
            .to_string()
            .contains("gates.min_health_score"),
        "{answer}"
    );
    write(&config, &b);

    eventually(Duration::from_secs(60), "every event is consumed", || {
        let consumed = metric(admin, "radar_events_consumed_total");
        if consumed == Some(6_000) {
            Ok(())
        } else {
            Err(format!("consumed {consumed:?} of 6000"))
        }
    });
    let (_, playbooks) = get(admin, "/v1/playbooks");
    assert!(playbooks.contains(&version_b), "{playbooks}");
    let metrics = get(admin, "/metrics").1;
    assert!(
        metrics.contains(&format!("radar_config_info{{version=\"{version_b}\"}} 1")),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&format!("radar_config_info{{version=\"{version_a}\"}}")),
        "one version in force"
    );
    assert!(
        metrics.contains("radar_config_reloads_total{result=\"refused\"} 2"),
        "{metrics}"
    );

    // SIGHUP reloads too: tier rises from hot again.
    let c = b.replace("tier_rise_min = \"critical\"", "tier_rise_min = \"hot\"");
    let version_c = version_of(&c);
    write(&config, &c);
    let pid = child.0.as_ref().unwrap().id();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(20), "SIGHUP put C in force", || {
        get(admin, "/v1/playbooks").1.contains(&version_c)
    });

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
    // Every event read exactly once, and none taken for a duplicate that replay does not
    // take for one (its too_far_in_future lines pass here: the record time is now).
    let (_, engine) = crate::support::replayed(&lines);
    let stats = engine.stats();
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("events: read="))
        .unwrap_or_default();
    assert!(summary.starts_with("events: read=6000 "), "{stderr}");
    assert!(
        summary.ends_with(&format!(
            "unknown_type={} late={} duplicate={}",
            stats.unknown_type, stats.late, stats.duplicate
        )),
        "replay: {stats:?}; run: {summary}"
    );
    assert!(
        stderr.contains("configuration reloaded"),
        "logged: {stderr}"
    );

    // Each opportunity delivered once, stamped with the version that produced it: the
    // new playbook only under B, hot tier rises never under B; both versions seen.
    let delivered = kept.lock().unwrap().clone();
    let ids: BTreeSet<&str> = delivered
        .iter()
        .map(|o| o["opportunity_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), delivered.len(), "none delivered twice");
    let versions: BTreeSet<&str> = delivered
        .iter()
        .map(|o| o["config_version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        BTreeSet::from([version_a.as_str(), version_b.as_str()]),
        "{versions:?}"
    );
    for o in &delivered {
        let playbook = o["playbook"].as_str().unwrap();
        if playbook == "invites" {
            assert_eq!(o["config_version"], version_b.as_str(), "{o}");
        }
        if playbook == "tier:hot" {
            assert_ne!(
                o["config_version"],
                version_b.as_str(),
                "B has no hot rises: {o}"
            );
        }
    }
}
