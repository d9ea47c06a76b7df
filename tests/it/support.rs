//! What the tests of this binary share beyond `radar-testkit`: generated events and
//! what `radar replay` makes of them, a webhook receiver, and `radar run` started on a
//! config of a broker's topic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use radar_testkit::process::KillOnDrop;

use crate::default_settings;

/// Generated events over `accounts` accounts, 2% of them malformed.
pub fn events(accounts: u64, events: u64, seed: u64) -> Vec<String> {
    let opts = radar_gen::Options {
        accounts,
        events,
        seed,
        invalid_ratio: 0.02,
        ..Default::default()
    };
    radar_gen::Generator::new(opts).unwrap().collect()
}

/// Well-formed events only: a line meant to be too far in the future is judged against
/// its `received_at` in a replay but against the record's time live, so tests comparing
/// a live run with `radar replay` use these.
pub fn well_formed(accounts: u64, events: u64, seed: u64) -> Vec<String> {
    radar_gen::Generator::new(radar_gen::Options {
        accounts,
        events,
        seed,
        ..Default::default()
    })
    .unwrap()
    .collect()
}

/// What `radar replay` makes of the same lines: its opportunities, and the engine.
pub fn replayed(lines: &[String]) -> (Vec<serde_json::Value>, radar_core::Engine) {
    let mut out = Vec::new();
    let engine =
        radar::replay::run(default_settings(), lines.join("\n").as_bytes(), &mut out).unwrap();
    let opportunities = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (opportunities, engine)
}

/// The values of `field` across `opportunities`.
pub fn field(opportunities: &[serde_json::Value], field: &str) -> BTreeSet<String> {
    opportunities
        .iter()
        .map(|o| o[field].as_str().unwrap().to_owned())
        .collect()
}

/// A webhook receiver on 127.0.0.1 that records each delivery's `webhook-id`.
pub fn receiver(runtime: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<String>>>) {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = ids.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let seen = seen.clone();
        async move {
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            seen.lock().unwrap().push(id);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ids)
}

/// The distinct webhook ids a [`receiver`] has recorded.
pub fn unique(ids: &Mutex<Vec<String>>) -> BTreeSet<String> {
    ids.lock().unwrap().iter().cloned().collect()
}

/// The webhook secret the configs of these tests name (`secret_env = "TEST_HOOK_SECRET"`).
pub const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `radar run` with `config`, the admin server on `admin`, the hook secret set; stdout
/// discarded, stderr left to the caller.
pub fn radar_run(config: &Path, admin: u16, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_radar"));
    command
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("TEST_HOOK_SECRET", HOOK_SECRET)
        .env("RADAR__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null());
    command
}

pub fn start_radar(config: &Path, admin: u16, env: &[(&str, &str)]) -> KillOnDrop {
    let child: Child = radar_run(config, admin, env)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    KillOnDrop(Some(child))
}

/// A `radar run` config in `dir`: `topic` as `group`, dead letters to
/// `<topic>.dead-letter`, checkpoints every 100 records or 200 ms, webhooks to `url`.
pub fn write_config(dir: &Path, servers: &str, group: &str, topic: &str, url: &str) -> PathBuf {
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

[checkpoint]
path = "{state}"
every_events = 100
every = "200ms"

[delivery]
allow_networks = ["127.0.0.0/8"]

[[delivery.destinations]]
name = "hook"
kind = "webhook"
url = "{url}"
secret_env = "TEST_HOOK_SECRET"
"#,
            state = dir.join("state.redb").display()
        ),
    )
    .unwrap();
    config
}
