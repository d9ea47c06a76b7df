//! The `radar` binary as a user runs it: arguments, files, exit codes, messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::root;

fn radar(args: &[&str]) -> Output {
    radar_with(args, &[], None)
}

fn radar_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_radar"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("radar starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let bytes = stdin.unwrap_or_default().to_vec();
    // Fed from another thread: radar writes while it reads, and a full stdout pipe
    // would otherwise block both sides.
    let feeder = std::thread::spawn(move || input.write_all(&bytes));
    let output = child.wait_with_output().expect("radar finishes");
    feeder
        .join()
        .expect("feeder thread")
        .expect("stdin accepts the events");
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("radar-it-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn generate_is_deterministic_and_replay_reads_it() {
    let dir = temp_dir("generate");
    let file = dir.join("events.jsonl");
    let args = [
        "generate",
        "--accounts",
        "200",
        "--events",
        "5000",
        "--seed",
        "9",
        "--days",
        "10",
        "--invalid-ratio",
        "0.05",
    ];
    let first = radar(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = radar(&args);
    assert_eq!(
        first.stdout, second.stdout,
        "same arguments must give the same bytes"
    );
    assert_eq!(text(&first.stdout).lines().count(), 5000);
    let mut with_output = args.to_vec();
    with_output.extend(["--output", path(&file)]);
    assert!(radar(&with_output).status.success());
    assert_eq!(std::fs::read(&file).unwrap(), first.stdout);

    let replay = radar(&["replay", path(&file)]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let summary = text(&replay.stderr);
    assert!(summary.contains("events: read=5000"), "{summary}");
    for reason in [
        "invalid_json",
        "missing_field",
        "wrong_type",
        "field_too_long",
        "bad_timestamp",
        "too_far_in_future",
        "out_of_range",
    ] {
        assert!(
            summary.contains(&format!("{reason}=")),
            "no {reason} in {summary}"
        );
    }
    let opportunities = text(&replay.stdout);
    assert!(opportunities.lines().count() > 0, "{summary}");
    for line in opportunities.lines() {
        let o: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        for field in [
            "opportunity_id",
            "account_id",
            "kind",
            "playbook",
            "score",
            "tier",
            "breakdown",
            "triggered_by",
            "owner",
            "occurred_at",
            "expansion_score",
        ] {
            assert!(o.get(field).is_some(), "{field} missing from {line}");
        }
    }

    let stdin = radar_with(&["replay", "-"], &[], Some(&first.stdout));
    assert!(stdin.status.success());
    assert_eq!(
        stdin.stdout, replay.stdout,
        "stdin and file give the same output"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn explain_prints_an_accounts_state_and_breakdown() {
    let events = std::fs::read(root().join("tests/golden/seat_expansion_event.jsonl")).unwrap();
    let account = text(&events)
        .lines()
        .next()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["account_id"].as_str().map(str::to_owned))
        .unwrap();
    let out = radar_with(&["replay", "--explain", &account, "-"], &[], Some(&events));
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    let json_start = stderr.find('{').expect("an explanation object");
    let explanation: serde_json::Value =
        serde_json::from_str(&stderr[json_start..]).expect("the explanation is JSON");
    assert_eq!(explanation["account_id"], account.as_str());
    assert_eq!(explanation["breakdown"].as_array().map(Vec::len), Some(11));
    assert!(explanation["score"].is_number());

    let missing = radar_with(&["replay", "--explain", "nobody", "-"], &[], Some(&events));
    assert!(missing.status.success());
    assert!(text(&missing.stderr).contains("\"nobody\" has no accepted events"));
}

#[test]
fn validate_reports_every_problem_with_its_key() {
    let dir = temp_dir("validate");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[engine]
bucket = "forever"

[opportunities]
tier_rise_min = "lukewarm"

[[playbooks]]
name = "big_teams"
kind = "seat_expansion"
all = [{ count = "team_invite_sent", window = "90m", op = ">=", value = 5.0 }, { metric = "happiness", op = ">", value = 1.0 }]

[[playbooks]]
name = "big_teams"
kind = "upsell"
any = [{ event = "page_viewed" }]
"#,
    )
    .unwrap();
    let out = radar(&["validate", "--config", path(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stderr);
    for needle in [
        "engine.bucket",
        "opportunities.tier_rise_min",
        "playbooks[0] (big_teams).all[1].metric",
        "unknown metric \"happiness\"",
        "playbooks[1] (big_teams).name",
        "playbooks[1] (big_teams).kind",
        "playbooks[1] (big_teams).any[0].event",
    ] {
        assert!(report.contains(needle), "{needle:?} not in:\n{report}");
    }

    let good = radar(&[
        "validate",
        "--config",
        path(&root().join("config/radar.toml")),
    ]);
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert!(text(&good.stdout).contains("6 playbooks, 11 score components, max score 140"));

    let unknown_key = dir.join("typo.toml");
    std::fs::write(&unknown_key, "[gates]\nmin_health = 50\n").unwrap();
    let out = radar(&["validate", "--config", path(&unknown_key)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("min_health"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `radar validate` makes every check `radar run` makes short of connecting: a file `run`
/// refuses never validates "ok".
#[test]
fn validate_makes_the_checks_run_makes() {
    let dir = temp_dir("validate-pipeline");
    let bad = dir.join("pipeline.toml");
    std::fs::write(
        &bad,
        r#"
[kafka]
max_batch = 0
poll_timeout = "briefly"

[kafka.client]
session_timeout_ms = "soon"
no_such_setting = "1"

[checkpoint]
every = "soon"
every_events = 0

[state]
store = "cloud"

[admin]
listen = "everywhere"

[shutdown]
timeout = "eventually"

[delivery]
schedule = ["5s", "often"]

[[delivery.destinations]]
name = "crm"
kind = "webhook"
"#,
    )
    .unwrap();
    let needles = [
        "kafka.max_batch",
        "kafka.poll_timeout",
        "kafka.client.session_timeout_ms",
        "kafka.client.no_such_setting",
        "checkpoint.every:",
        "checkpoint.every_events",
        "state.store",
        "admin.listen",
        "shutdown.timeout",
        "delivery.schedule[1]",
        "delivery.destinations[0] (crm).url",
    ];
    let problems = |out: &Output| -> Vec<String> {
        text(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("  - ").map(str::to_owned))
            .collect()
    };
    let validated = radar(&["validate", "--config", path(&bad)]);
    let run = radar(&["run", "--config", path(&bad)]);
    assert_eq!(validated.status.code(), Some(1));
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(problems(&validated), problems(&run));
    let report = text(&validated.stderr);
    for needle in needles {
        assert!(report.contains(needle), "{needle:?} not in:\n{report}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Environment values are text, read by the type of their key: nothing is re-typed on
/// the way (a group id `007` once ran as group `7`).
#[test]
fn environment_values_keep_their_text() {
    let config = root().join("config/radar.toml");
    let out = radar_with(
        &["validate", "--config", path(&config)],
        &[
            ("RADAR__KAFKA__GROUP_ID", "007"),
            ("RADAR__KAFKA__TOPICS", "events-a, 0042"),
            ("RADAR__KAFKA__MAX_BATCH", "0500"),
            ("RADAR__GATES__MIN_HEALTH_SCORE", "1.50"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains(r#"consuming events-a, 0042 as group "007""#),
        "{said}"
    );

    let out = radar_with(
        &["validate", "--config", path(&config)],
        &[("RADAR__KAFKA__MAX_BATCH", "lots")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kafka.max_batch"),
        "{}",
        text(&out.stderr)
    );
}

/// A TOML syntax error says where, never what the line holds: it may be a secret.
#[test]
fn a_toml_syntax_error_does_not_echo_the_line() {
    let dir = temp_dir("toml-syntax");
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "[kafka]\ngroup_id = \"radar\"\nbootstrap_servers = \"hunter2-s3cr3t\n",
    )
    .unwrap();
    for command in ["validate", "run", "replay"] {
        let args: &[&str] = if command == "replay" {
            &["replay", "--config", path(&broken), "-"]
        } else {
            &[command, "--config", path(&broken)]
        };
        let out = radar(args);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("line 3"), "{command}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{command}: {stderr}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn environment_variables_override_the_file_and_are_checked_too() {
    let config = root().join("config/radar.toml");
    let out = radar_with(
        &["validate", "--config", path(&config)],
        &[("RADAR__OPPORTUNITIES__TIER_RISE_MIN", "tepid")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("opportunities.tier_rise_min"),
        "{}",
        text(&out.stderr)
    );

    // With the health gate off, the low-health golden case emits its opportunity.
    let events = std::fs::read(root().join("tests/golden/gate_low_health.jsonl")).unwrap();
    let gated = radar_with(&["replay", "-"], &[], Some(&events));
    let open = radar_with(
        &["replay", "-"],
        &[("RADAR__GATES__MIN_HEALTH_SCORE", "0")],
        Some(&events),
    );
    assert!(gated.status.success() && open.status.success());
    assert!(
        text(&gated.stdout).contains(r#""triggered_by":["a5"]"#),
        "{}",
        text(&gated.stdout)
    );
    assert!(
        text(&open.stdout).contains(r#""triggered_by":["a3"]"#),
        "{}",
        text(&open.stdout)
    );
}

#[test]
fn radar_owned_kafka_settings_cannot_be_overridden() {
    let dir = temp_dir("reserved");
    let file = dir.join("reserved.toml");
    std::fs::write(&file, "[kafka.client]\nenable_auto_commit = \"true\"\n").unwrap();
    let out = radar_with(&["run", "--config", path(&file)], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("kafka.client.enable_auto_commit"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unusable_input_fails_with_a_clear_message() {
    let missing = radar(&["replay", "/nonexistent/events.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("opening /nonexistent/events.jsonl"));

    let no_config = radar(&["replay", "--config", "/nonexistent/radar.toml", "-"]);
    assert_eq!(no_config.status.code(), Some(1));
    assert!(text(&no_config.stderr).contains("/nonexistent/radar.toml"));

    let bad_args = radar(&["generate", "--invalid-ratio", "2"]);
    assert!(!bad_args.status.success());
    assert!(text(&bad_args.stderr).contains("--invalid-ratio"));
}

/// The user's own endpoint for `radar demo --webhook`: checks every signature with the
/// independent `standardwebhooks` crate and records the ids it accepted.
fn verifying_receiver(
    runtime: &tokio::runtime::Runtime,
    secret: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::{Arc, Mutex};
    let ids = Arc::new(Mutex::new(Vec::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hooks/radar", listener.local_addr().unwrap());
    let seen = ids.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let verifier = standardwebhooks::Webhook::new(secret).unwrap();
                if verifier.verify(&body, &headers).is_err() {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                seen.lock().unwrap().push(id);
                axum::http::StatusCode::OK
            }
        },
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ids)
}

#[test]
fn demo_runs_the_whole_loop_and_delivers_every_opportunity_to_both_receivers() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, accepted) = verifying_receiver(&runtime, SECRET);
    let output = radar(&[
        "demo",
        "--duration",
        "6s",
        "--rate",
        "800",
        "--admin",
        "127.0.0.1:0",
        "--webhook",
        &url,
        "--webhook-secret",
        SECRET,
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("/metrics"),
        "the demo says where metrics are: {stderr}"
    );
    let emitted: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("opportunities: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the summary counts opportunities");
    assert!(emitted > 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the local receiver got {emitted} signed opportunities"
        )),
        "every opportunity reached the local receiver: {stderr}"
    );
    let timed = stderr
        .lines()
        .find(|l| l.contains("event → webhook"))
        .expect("the demo reports end-to-end latency");
    assert!(
        timed.contains(&format!("({emitted});")),
        "every opportunity was timed from its event's produce call: {timed}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("receiver: "))
            .count(),
        emitted
    );
    let ids: std::collections::BTreeSet<String> =
        accepted.lock().unwrap().iter().cloned().collect();
    assert_eq!(
        ids.len(),
        emitted,
        "and every one reached --webhook, correctly signed"
    );
}

#[test]
fn demo_with_a_crm_fills_its_pipeline_with_a_deal_per_opportunity() {
    let output = radar(&[
        "demo",
        "--duration",
        "6s",
        "--rate",
        "800",
        "--admin",
        "127.0.0.1:0",
        "--crm",
        "hubspot",
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let emitted: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("opportunities: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the summary counts opportunities");
    assert!(emitted > 0, "{stderr}");
    assert!(
        stderr.contains(&format!("the HubSpot stand-in holds {emitted} deals")),
        "{stderr}"
    );
    let deals: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("crm: deal new"))
        .collect();
    // A printer that fell behind says how many it skipped.
    let unprinted: usize = stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("crm: unprinted ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(deals.len() + unprinted, emitted, "{stdout}");
    // Each on its account's company pipeline, with an amount, a stage, a close date and
    // an owner from the routing the demo configures.
    for deal in deals {
        assert!(
            deal.contains("stage appointmentscheduled close 20"),
            "{deal}"
        );
        assert!(
            ["owner 1001", "owner 1002", "owner 1003"]
                .iter()
                .any(|o| deal.ends_with(o)),
            "{deal}"
        );
    }
}

#[test]
fn demo_with_salesforce_logs_in_with_the_jwt_bearer_flow() {
    let output = radar(&[
        "demo",
        "--duration",
        "5s",
        "--rate",
        "400",
        "--admin",
        "127.0.0.1:0",
        "--crm",
        "salesforce",
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("token renewed") && l.contains("jwt_bearer")),
        "the destination logged in with its connected app's key: {stderr}"
    );
    let emitted: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("opportunities: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the summary counts opportunities");
    assert!(emitted > 0, "{stderr}");
    assert!(
        stderr.contains(&format!("the Salesforce stand-in holds {emitted} deals")),
        "{stderr}"
    );
    assert!(stdout.contains("crm: opportunity new"), "{stdout}");
    assert!(!stderr.contains("degraded"), "{stderr}");
}

#[test]
fn dlq_lists_and_replays_dead_letters_by_destination_and_id() {
    use radar_delivery::DeliveryStore;
    let dir = temp_dir("dlq");
    let state = dir.join("state.redb");
    {
        let store = radar_store::Store::open(&state).unwrap();
        let letter = |destination: &str, seq: u64, id: &str| radar_delivery::FailedDelivery {
            destination: destination.into(),
            seq,
            attempts: 8,
            created_ms: 1,
            failed_ms: 2,
            reason: "HTTP 503; gave up after 8 attempts".into(),
            opportunity: format!(r#"{{"opportunity_id":"{id}"}}"#).into_bytes(),
        };
        store
            .settle(&[
                radar_delivery::queue::Settlement::DeadLettered {
                    previous_due_ms: 0,
                    dead: letter("crm", 0, "aaa"),
                },
                radar_delivery::queue::Settlement::DeadLettered {
                    previous_due_ms: 0,
                    dead: letter("crm", 1, "bbb"),
                },
                radar_delivery::queue::Settlement::DeadLettered {
                    previous_due_ms: 0,
                    dead: letter("slack", 0, "aaa"),
                },
            ])
            .unwrap();
    }
    let env = [("RADAR__CHECKPOINT__PATH", path(&state))];
    let listed = radar_with(&["dlq", "list", "--destination", "crm"], &env, None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let lines: Vec<serde_json::Value> = text(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["opportunity_id"], "aaa");
    assert_eq!(lines[0]["attempts"], 8);
    assert!(lines[0]["reason"].as_str().unwrap().contains("503"));

    let replayed = radar_with(&["dlq", "replay", "--id", "aaa"], &env, None);
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    assert!(
        text(&replayed.stderr).starts_with("2 dead letters queued"),
        "{}",
        text(&replayed.stderr)
    );
    let store = radar_store::Store::open(&state).unwrap();
    assert_eq!(store.dead_letters().unwrap().len(), 1, "bbb stays");
    assert_eq!(store.queue_summary("crm").unwrap().depth, 1);
    assert_eq!(store.queue_summary("slack").unwrap().depth, 1);
}

#[test]
fn delivery_config_errors_name_their_keys_and_secrets_never_come_from_the_file() {
    let dir = temp_dir("delivery-config");
    let config = dir.join("radar.toml");
    std::fs::write(
        &config,
        "[delivery]\nschedule = [\"5s\", \"often\"]\n\n[[delivery.destinations]]\nname = \"crm\"\nkind = \"hubspot\"\nurl = \"https://api.hubapi.com\"\nsecret_env = \"RADAR_TEST_UNSET_TOKEN\"\n\n[[delivery.destinations]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://example.com\"\nsecret = \"whsec_inline\"\n",
    )
    .unwrap();
    let output = radar(&["run", "--config", path(&config)]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("secret"),
        "an inline secret is an unknown key: {stderr}"
    );
    std::fs::write(
        &config,
        "[delivery]\nschedule = [\"5s\", \"often\"]\n\n[[delivery.destinations]]\nname = \"crm\"\nkind = \"hubspot\"\nurl = \"https://api.hubapi.com\"\nsecret_env = \"RADAR_TEST_UNSET_TOKEN\"\n",
    )
    .unwrap();
    let output = radar(&["run", "--config", path(&config)]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("delivery.schedule[1]"), "{stderr}");
    assert!(
        stderr.contains("delivery.destinations[0] (crm).secret_env: environment variable RADAR_TEST_UNSET_TOKEN is not set"),
        "{stderr}"
    );
}

#[test]
fn kafka_secrets_come_from_the_environment_or_files_never_from_the_config_file() {
    let dir = temp_dir("kafka-secrets");
    let written = dir.join("written.toml");
    std::fs::write(
        &written,
        "[kafka.client]\nsasl_username = \"radar\"\nsasl_password = \"hunter2\"\n",
    )
    .unwrap();
    let out = radar(&["run", "--config", path(&written)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("kafka.client.sasl_password: a secret may not be written in a config file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RADAR__KAFKA__CLIENT__SASL_PASSWORD"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let from_file = dir.join("from-file.toml");
    std::fs::write(
        &from_file,
        "[kafka.secret_files]\nsasl_password = \"/nonexistent/kafka-password\"\n",
    )
    .unwrap();
    let out = radar(&["run", "--config", path(&from_file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("kafka.secret_files.sasl_password: reading /nonexistent/kafka-password"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();
}
