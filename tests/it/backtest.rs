//! `radar backtest` as RevOps runs it: generated events and outcomes, the numbers it
//! prints, the comparison of two configurations, bad outcome rows, and the HTML report
//! as a person sees it — loaded by headless Chromium, its charts measured in the page.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::deploy::{available, in_ci};

fn radar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radar"))
        .args(args)
        .output()
        .expect("radar runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Generated events and their outcomes in `dir`.
fn generate(dir: &Path, accounts: u64, events: u64) -> (PathBuf, PathBuf) {
    let (events_path, outcomes_path) = (dir.join("events.jsonl"), dir.join("outcomes.csv"));
    let output = radar(&[
        "generate",
        "--accounts",
        &accounts.to_string(),
        "--events",
        &events.to_string(),
        "--seed",
        "11",
        "-o",
        events_path.to_str().unwrap(),
        "--outcomes",
        outcomes_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    (events_path, outcomes_path)
}

fn group<'a>(report: &'a Value, group: &str, name: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group && g["name"] == name)
        .unwrap_or_else(|| panic!("no {group} {name} in {report:#}"))
}

#[test]
fn generated_outcomes_reward_the_default_playbooks_and_not_a_useless_one() {
    let dir = tempfile::tempdir().unwrap();
    let (events, outcomes) = generate(dir.path(), 1_000, 100_000);
    // Fires for any account that logged in that day: blind to the signals.
    let useless = dir.path().join("useless.toml");
    std::fs::write(
        &useless,
        "[[playbooks]]\nname = \"logged_in\"\nkind = \"seat_expansion\"\nall = [{ count = \"user_login\", window = \"1d\", op = \">=\", value = 1.0 }]\n",
    )
    .unwrap();
    let output = radar(&[
        "backtest",
        "--events",
        events.to_str().unwrap(),
        "--outcomes",
        outcomes.to_str().unwrap(),
        "--compare",
        useless.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let comparison: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (baseline, candidate) = (&comparison["baseline"], &comparison["candidate"]);
    let base_rate = baseline["base_rate"].as_f64().unwrap();
    assert!((0.1..0.6).contains(&base_rate), "{base_rate}");
    for playbook in [
        "seat_expansion",
        "usage_upgrade",
        "feature_upgrade",
        "premium_interest",
        "horizontal_expansion",
        "renewal_expansion",
    ] {
        let g = group(baseline, "playbook", playbook);
        let lift = g["lift"].as_f64().unwrap();
        assert!(lift > 1.1, "{playbook}: lift {lift}: {g:#}");
        assert!(g["lead_days_median"].as_f64().unwrap() > 0.0, "{g:#}");
    }
    let useless = group(candidate, "playbook", "logged_in");
    let lift = useless["lift"].as_f64().unwrap();
    assert!(
        (0.9..1.1).contains(&lift),
        "a blind playbook's lift is near 1: {useless:#}"
    );
    // The difference per playbook: the useless one is new in B, the defaults gone.
    let difference = comparison["difference"].as_array().unwrap();
    let seat = difference
        .iter()
        .find(|d| d["name"] == "seat_expansion")
        .unwrap();
    assert_eq!(
        seat["opportunities"].as_i64().unwrap(),
        -group(baseline, "playbook", "seat_expansion")["opportunities"]
            .as_i64()
            .unwrap()
    );

    // The same engine as replay: exactly replay's opportunities.
    let replayed = radar(&["replay", events.to_str().unwrap()]);
    assert!(replayed.status.success());
    let lines = text(&replayed.stdout).lines().count() as u64;
    assert_eq!(
        group(baseline, "all", "all")["opportunities"].as_u64(),
        Some(lines)
    );
}

#[test]
fn bad_outcome_rows_are_reported_by_line_and_skipped_and_a_table_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = generate(dir.path(), 50, 5_000);
    let outcomes = dir.path().join("bad.csv");
    std::fs::write(
        &outcomes,
        "account_id,expanded_at,arr_delta\nacct_000001,2026-01-20,1000\nacct_000002,soon,5\nacct_000003,2026-01-21,\n",
    )
    .unwrap();
    let output = radar(&[
        "backtest",
        "--events",
        events.to_str().unwrap(),
        "--outcomes",
        outcomes.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("bad.csv: line 3: expanded_at \"soon\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.csv: line 4: arr_delta is missing"),
        "{stderr}"
    );
    assert!(stdout.contains("2 outcome rows skipped"), "{stdout}");
    // The table: a row per default playbook, and thresholds up to the model's maximum.
    assert!(
        stdout.lines().any(|l| l.starts_with("seat_expansion ")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("130 ")),
        "{stdout}"
    );

    std::fs::write(&outcomes, "acct_000001,2026-01-20,1000\n").unwrap();
    let output = radar(&[
        "backtest",
        "--events",
        events.to_str().unwrap(),
        "--outcomes",
        outcomes.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("account_id,expanded_at,arr_delta"),
        "{}",
        text(&output.stderr)
    );
}

/// Loads the report in an iframe and measures each chart in the rendered page.
const MEASURE: &str = r#"<!doctype html><html><body>
<iframe id="report" src="report.html" width="1400" height="2400"></iframe>
<script>
document.getElementById('report').addEventListener('load', () => {
  const page = document.getElementById('report').contentDocument;
  const charts = [...page.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('rect.bar, polyline.line')]
      .filter(m => { const b = m.getBBox(); return b.width > 0 && b.height > 0; }).length;
    return { chart: svg.dataset.chart, width: box.width, height: box.height, marks };
  });
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify(charts);
  document.body.appendChild(out);
});
</script></body></html>"#;

fn chromium(args: &[&str]) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .output()
        .expect("chromium runs")
}

#[test]
fn the_html_report_renders_its_charts_in_a_browser() {
    if !available("chromium", "--version") {
        assert!(!in_ci(), "CI needs chromium (scripts/test installs it)");
        eprintln!(
            "note: HTML report check skipped: chromium is not installed (scripts/test installs it)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (events, outcomes) = generate(dir.path(), 300, 30_000);
    let report = dir.path().join("report.html");
    let output = radar(&[
        "backtest",
        "--events",
        events.to_str().unwrap(),
        "--outcomes",
        outcomes.to_str().unwrap(),
        "--html",
        report.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "self-contained: no network, no script"
    );

    let url = format!("file://{}", report.display());
    let direct = chromium(&["--dump-dom", &url]);
    assert!(direct.status.success(), "{}", text(&direct.stderr));
    let console: Vec<String> = text(&direct.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_owned)
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    let measure = dir.path().join("measure.html");
    std::fs::write(&measure, MEASURE).unwrap();
    let measured = chromium(&["--dump-dom", &format!("file://{}", measure.display())]);
    assert!(measured.status.success(), "{}", text(&measured.stderr));
    let errors: Vec<String> = text(&measured.stderr)
        .lines()
        .filter(|l| l.contains("Uncaught") || (l.contains("CONSOLE") && l.contains("ERROR")))
        .map(str::to_owned)
        .collect();
    assert!(
        errors.is_empty(),
        "errors measuring the report: {errors:#?}"
    );
    let dom = text(&measured.stdout);
    let json = dom
        .split("<pre id=\"measured\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the page measured nothing: {dom}"));
    let charts: Vec<Value> = serde_json::from_str(json).unwrap();
    let names: Vec<&str> = charts
        .iter()
        .map(|c| c["chart"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["score-distribution", "precision-recall", "lead-times"]
    );
    for chart in &charts {
        assert!(chart["width"].as_f64().unwrap() > 100.0, "{chart}");
        assert!(chart["height"].as_f64().unwrap() > 100.0, "{chart}");
        assert!(chart["marks"].as_u64().unwrap() > 0, "drawn: {chart}");
    }

    // A screenshot, kept for a person to look at (CI keeps target/ci-artifacts).
    let artifacts = crate::root().join("target/ci-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("backtest-report.png");
    let _ = std::fs::remove_file(&shot);
    let output = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,1600",
        &url,
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "a screenshot with something on it: {size} bytes"
    );
}

/// `radar backtest` with `args`, `stdin` fed to it.
fn radar_fed(args: &[&str], stdin: Vec<u8>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_radar"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A reader that stops early (both `-`) closes the pipe: that write may fail.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    output
}

/// `-` reads the events or the outcomes from stdin (the events even with `--compare`,
/// which reads them twice), with the figures the files give; not both at once.
#[test]
fn events_or_outcomes_from_stdin_give_the_figures_of_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (events, outcomes) = generate(dir.path(), 100, 10_000);
    let config = crate::root().join("config/radar.toml");
    let config = config.to_str().unwrap();
    let (events, outcomes) = (events.to_str().unwrap(), outcomes.to_str().unwrap());
    let args = |events: &'static str, outcomes: &'static str| {
        vec![
            "backtest",
            "--json",
            "--compare",
            config,
            "--events",
            events,
            "--outcomes",
            outcomes,
        ]
    };
    let from_files = radar(&[
        "backtest",
        "--json",
        "--compare",
        config,
        "--events",
        events,
        "--outcomes",
        outcomes,
    ]);
    assert!(from_files.status.success(), "{}", text(&from_files.stderr));
    let expected: Value = serde_json::from_slice(&from_files.stdout).unwrap();
    assert!(expected["baseline"]["expansions"].as_u64().unwrap() > 0);

    let mut piped_events = args("-", "");
    piped_events[7] = outcomes;
    let output = radar_fed(&piped_events, std::fs::read(events).unwrap());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&output.stdout).unwrap(),
        expected
    );

    let mut piped_outcomes = args("", "-");
    piped_outcomes[5] = events;
    let output = radar_fed(&piped_outcomes, std::fs::read(outcomes).unwrap());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&output.stdout).unwrap(),
        expected
    );

    let output = radar_fed(&args("-", "-"), Vec::new());
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("--events and --outcomes cannot both be -"),
        "{}",
        text(&output.stderr)
    );
}
