//! `deploy/` against the real binary: every metric the Grafana dashboard and the alert
//! rules query exists in a live `/metrics` scrape of `radar demo` (checked by
//! `scripts/check-deploy --metrics-only`, with `promtool check metrics` on the same
//! scrape), and every config under `deploy/` passes `radar validate`.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use radar_testkit::Eventually;
use radar_testkit::http::{get, listening};
use radar_testkit::process::{KillOnDrop, free_port};

use crate::root;

/// A demo signing secret (it decodes to "compose-demo-secret-not-for-prod"), the one
/// `deploy/compose.yaml` defaults to.
const SECRET: &str = "whsec_Y29tcG9zZS1kZW1vLXNlY3JldC1ub3QtZm9yLXByb2Q=";

/// A demo read token for the configs whose admin port is off loopback.
const READ_TOKEN: &str = "demo-read-token-not-for-prod";

/// Whether this is CI, where a missing tool is a failure rather than a reason to skip.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether `program` runs at all.
pub(crate) fn available(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A webhook endpoint that refuses every delivery with 400: radar dead-letters each one
/// at once, so the series that only exist after a failure (failed attempts, dead letters)
/// are in the scrape too.
fn refusing_receiver(runtime: &tokio::runtime::Runtime) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/refuse", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::BAD_REQUEST });
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The value of the first sample whose line starts with `prefix` (name and labels).
fn sample(scrape: &str, prefix: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// What must be in the scrape before it is checked: opportunities delivered, a delivery
/// dead-lettered, a CRM record written, consumer lag from librdkafka's statistics (every
/// 5 s), a checkpoint.
fn complete(scrape: &str) -> bool {
    sample(
        scrape,
        "radar_delivery_attempts_total{destination=\"demo-receiver\",outcome=\"success\"}",
    )
    .is_some_and(|n| n > 0.0)
        && sample(
            scrape,
            "radar_delivery_dead_lettered_total{destination=\"your-webhook\"}",
        )
        .is_some_and(|n| n > 0.0)
        && sample(scrape, "radar_crm_records_total{").is_some()
        && sample(scrape, "radar_kafka_consumer_lag_messages{").is_some()
        && sample(scrape, "radar_checkpoints_total{").is_some()
}

#[test]
fn every_metric_the_dashboard_and_alerts_query_is_in_a_live_scrape() {
    let (promtool, python) = (
        available("promtool", "--version"),
        available("python3", "--version"),
    );
    if !(in_ci() || promtool && python) {
        // Not a silent pass: say what was not checked and how to get it checked.
        eprintln!(
            "note: deploy metric check skipped: {} not installed (scripts/check-deploy installs \
             them; with CI=true a missing tool fails this test)",
            [
                (!promtool).then_some("promtool"),
                (!python).then_some("python3")
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ")
        );
        return;
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refusing = refusing_receiver(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    // stdout (one line per delivered opportunity) is not read: discarded, so a full pipe
    // cannot stall the demo; stderr kept for the failure message.
    let stderr_path = dir.path().join("demo.stderr");
    let mut demo = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_radar"))
            .args(["demo", "--duration", "30s", "--admin"])
            .arg(format!("127.0.0.1:{admin}"))
            .args(["--webhook", &refusing, "--webhook-secret", SECRET])
            .args(["--crm", "hubspot"])
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    ));

    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let scrape = Eventually::within(Duration::from_secs(60))
        .every(Duration::from_millis(200))
        .until(
            "radar demo's /metrics has deliveries, a dead letter, a CRM record, lag and a checkpoint",
            || {
                if listening(admin) {
                    let (status, body) = get(admin, "/metrics");
                    if status == 200 && complete(&body) {
                        return Ok(body);
                    }
                }
                if let Some(status) = demo.child().try_wait().unwrap() {
                    panic!(
                        "radar demo exited ({status}) before /metrics had deliveries, a dead letter, a CRM record, lag and a checkpoint; its stderr:\n{}",
                        stderr()
                    );
                }
                Err(format!("an incomplete scrape; its stderr:\n{}", stderr()))
            },
        );
    drop(demo);

    let scrape_path = dir.path().join("radar.metrics");
    std::fs::write(&scrape_path, &scrape).unwrap();
    let checked = Command::new(root().join("scripts/check-deploy"))
        .arg("--metrics-only")
        .arg(&scrape_path)
        .current_dir(root())
        .output()
        .expect("scripts/check-deploy runs");
    assert!(
        checked.status.success(),
        "scripts/check-deploy --metrics-only failed:\n{}\n{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn every_config_under_deploy_passes_radar_validate() {
    let root = root();
    // (config, extra environment): each as the deploy/ file that uses it runs radar.
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "deploy/container/radar.toml",
            vec![("RADAR_READ_TOKEN", READ_TOKEN)],
        ),
        (
            "deploy/compose/radar.toml",
            vec![("RADAR_WEBHOOK_SECRET", SECRET)],
        ),
        (
            "deploy/kubernetes/base/radar.toml",
            vec![
                ("RADAR_WEBHOOK_SECRET", SECRET),
                ("RADAR_READ_TOKEN", READ_TOKEN),
            ],
        ),
        // overlays/kafka-state: the base's file with state.store = "kafka" and the peer
        // token.
        (
            "deploy/kubernetes/base/radar.toml",
            vec![
                ("RADAR_WEBHOOK_SECRET", SECRET),
                ("RADAR_READ_TOKEN", READ_TOKEN),
                ("RADAR__STATE__STORE", "kafka"),
                ("RADAR__ADMIN__PEER_TOKEN_ENV", "RADAR_PEER_TOKEN"),
                ("RADAR_PEER_TOKEN", "demo-peer-token-not-for-prod"),
            ],
        ),
    ];
    for (config, env) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_radar"))
            .args(["validate", "--config"])
            .arg(root.join(config))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{config} with {env:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The manifests as `kubectl kustomize` renders them: no deprecation warning (the
/// overlay once used `bases:`), and deploy/check/kubernetes.py's checks pass: among them
/// a NetworkPolicy that lets only the group's pods and Prometheus in, a read token for
/// the admin port on the pod network, and the replicas spread over nodes.
#[test]
fn the_kubernetes_manifests_render_without_warnings_and_pass_their_checks() {
    let (kubectl, python) = (
        available("kubectl", "version"),
        available("python3", "--version"),
    );
    if !(in_ci() || kubectl && python) {
        eprintln!(
            "note: kustomize check skipped: kubectl or python3 not installed (scripts/check-deploy \
             installs them; with CI=true a missing tool fails this test)"
        );
        return;
    }
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    for (kustomization, extra) in [
        ("deploy/kubernetes/base", vec![]),
        (
            "deploy/kubernetes/overlays/kafka-state",
            vec!["--expect-env", "RADAR__STATE__STORE=kafka"],
        ),
    ] {
        let rendered = Command::new("kubectl")
            .args(["kustomize", kustomization])
            .current_dir(&root)
            .output()
            .unwrap();
        let warned = String::from_utf8_lossy(&rendered.stderr);
        assert!(
            rendered.status.success() && warned.trim().is_empty(),
            "{kustomization}: {warned}"
        );
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &rendered.stdout).unwrap();
        let checked = Command::new("python3")
            .arg(root.join("deploy/check/kubernetes.py"))
            .arg(&file)
            .args(&extra)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{kustomization}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
