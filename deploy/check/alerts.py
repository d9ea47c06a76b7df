#!/usr/bin/env python3
"""Checks deploy/prometheus/alerts.yaml beyond what promtool does: every alert has a
severity, a summary, a description and a runbook_url whose anchor is a section of
deploy/RUNBOOK.md; every alert has a unit test where it fires and one where it must not
(deploy/prometheus/alerts.test.yaml); every alert section of the runbook has its alert.

Usage: alerts.py [REPO_ROOT]        Needs PyYAML.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

SEVERITIES = {"critical", "warning", "info"}
RUNBOOK_URL = re.compile(r"^https://github\.com/[^/]+/[^/]+/blob/[^/]+/deploy/RUNBOOK\.md#([a-z0-9-]+)$")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    rules_path = root / "deploy/prometheus/alerts.yaml"
    tests_path = root / "deploy/prometheus/alerts.test.yaml"
    runbook = (root / "deploy/RUNBOOK.md").read_text()
    anchors = {
        github_anchor(m.group(2)): m.group(2)
        for m in re.finditer(r"^(#{1,6})\s+(.+?)\s*$", runbook, re.MULTILINE)
    }
    problems: list[str] = []

    alerts = [
        rule
        for group in yaml.safe_load(rules_path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    names = [a["alert"] for a in alerts]
    if len(set(names)) != len(names):
        problems.append("alert names repeat")
    for alert in alerts:
        name = alert["alert"]
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{name}: labels.severity should be one of {sorted(SEVERITIES)}")
        for key in ["summary", "description", "runbook_url"]:
            if not annotations.get(key):
                problems.append(f"{name}: no annotations.{key}")
        m = RUNBOOK_URL.match(annotations.get("runbook_url", ""))
        if not m:
            problems.append(f"{name}: runbook_url should point at deploy/RUNBOOK.md#<section>")
        elif m.group(1) not in anchors:
            problems.append(f"{name}: RUNBOOK.md has no section #{m.group(1)}")
        elif m.group(1) != github_anchor(name):
            problems.append(f"{name}: runbook_url should point at #{github_anchor(name)}, its own section")

    fires: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for test in yaml.safe_load(tests_path.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            bucket = fires if case.get("exp_alerts") else quiet
            bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    for name in names:
        if not fires.get(name):
            problems.append(f"{name}: no test case where it fires")
        if not quiet.get(name):
            problems.append(f"{name}: no test case where it must not fire")
    for tested in sorted((set(fires) | set(quiet)) - set(names)):
        problems.append(f"alerts.test.yaml tests {tested}, which alerts.yaml does not define")

    for anchor, heading in anchors.items():
        if heading.startswith("Radar") and " " not in heading and heading not in names:
            problems.append(f"RUNBOOK.md has a section {heading!r} for no alert")

    for problem in problems:
        print(f"alerts: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"alerts: ok ({len(names)} alerts, each with severity, summary, description and a runbook "
        f"section; {sum(fires.values())} firing and {sum(quiet.values())} quiet test cases)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
