#!/usr/bin/env python3
"""Checks the rendered compose file (`docker-compose -f deploy/compose.yaml config`) for
what `config` itself does not: that the pieces agree with each other.

- every bind-mounted file or directory exists (compose only checks that at `up`);
- radar's mounted config: admin.listen's port is the published one and the one
  Prometheus scrapes; stop_grace_period outlasts shutdown.timeout; every webhook
  destination's host is a compose service, on a network delivery.allow_networks allows;
  each secret_env is set on radar;
- radar and the receiver share the webhook secret (or the receiver refuses every delivery);
- Prometheus loads the alert rules; Grafana gets the provisioning and the dashboard.

Usage: compose.py RENDERED.yaml     Needs PyYAML; Python 3.11+ (tomllib).
"""

from __future__ import annotations

import ipaddress
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import yaml


def seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", str(text))
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of a service's bind mounts, short or long syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            if parts[0].startswith(("/", ".")):
                out.append((parts[0], parts[1]))
        elif volume.get("type") == "bind":
            out.append((volume["source"], volume["target"]))
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    compose = yaml.safe_load(Path(sys.argv[1]).read_text())
    services = compose["services"]
    problems: list[str] = []

    for name in ["kafka", "topics", "generator", "producer", "radar", "receiver", "prometheus", "grafana"]:
        if name not in services:
            problems.append(f"no service {name}")
    if problems:
        return report(problems)

    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        mounts[name] = {}
        for host, container in bind_mounts(service):
            mounts[name][container] = host
            if not Path(host).exists():
                problems.append(f"{name}: bind mount {host} does not exist")

    radar = services["radar"]
    config_path = mounts["radar"].get("/etc/radar/radar.toml")
    if not config_path:
        return report(problems + ["radar: no config mounted at /etc/radar/radar.toml"])
    config = tomllib.loads(Path(config_path).read_text())
    port = int(config.get("admin", {}).get("listen", "127.0.0.1:9464").rpartition(":")[2])
    published = [str(p).split(":")[-1].split("/")[0] for p in radar.get("ports", [])]
    if str(port) not in published:
        problems.append(f"radar: admin.listen's port {port} is not published ({published})")
    grace = seconds(radar.get("stop_grace_period", "10s"))
    timeout = seconds(config.get("shutdown", {}).get("timeout", "30s"))
    if grace <= timeout:
        problems.append(f"radar: stop_grace_period {grace:g} s must outlast shutdown.timeout {timeout:g} s")

    radar_env = radar.get("environment", {}) or {}
    networks = compose.get("networks", {})
    subnets = [
        ipaddress.ip_network(c["subnet"])
        for network in networks.values()
        for c in ((network or {}).get("ipam", {}) or {}).get("config", [])
        if "subnet" in c
    ]
    allowed = [ipaddress.ip_network(n) for n in config.get("delivery", {}).get("allow_networks", [])]
    for destination in config.get("delivery", {}).get("destinations", []):
        name = destination.get("name")
        host = urlparse(destination.get("url", "")).hostname
        if host in services:
            if not any(subnet.subnet_of(a) for subnet in subnets for a in allowed if subnet.version == a.version):
                problems.append(
                    f"destination {name}: {host} is a compose service, but delivery.allow_networks "
                    f"{[str(a) for a in allowed]} does not cover the compose subnet {[str(s) for s in subnets]}"
                )
        if destination.get("secret_env") and destination["secret_env"] not in radar_env:
            problems.append(f"destination {name}: radar has no {destination['secret_env']} in its environment")
        if destination.get("secret_env") and host == "receiver":
            theirs = (services["receiver"].get("environment") or {}).get("RADAR_WEBHOOK_SECRET")
            if theirs != radar_env.get(destination["secret_env"]):
                problems.append(f"destination {name}: the receiver's RADAR_WEBHOOK_SECRET differs from radar's")

    prometheus_config = mounts["prometheus"].get("/etc/prometheus/prometheus.yml")
    if prometheus_config:
        scrape = yaml.safe_load(Path(prometheus_config).read_text())
        targets = [
            t
            for job in scrape.get("scrape_configs", [])
            if job.get("job_name") == "radar"
            for sc in job.get("static_configs", [])
            for t in sc.get("targets", [])
        ]
        if f"radar:{port}" not in targets:
            problems.append(f"prometheus: job radar does not scrape radar:{port} ({targets})")
        for rule_file in scrape.get("rule_files", []):
            if f"/etc/prometheus/{rule_file}" not in mounts["prometheus"]:
                problems.append(f"prometheus: rule file {rule_file} is not mounted beside prometheus.yml")
    else:
        problems.append("prometheus: no prometheus.yml mounted")
    grafana = mounts["grafana"]
    if "/etc/grafana/provisioning" not in grafana:
        problems.append("grafana: provisioning directory not mounted")
    if not any(c.startswith("/var/lib/grafana/dashboards/") for c in grafana):
        problems.append("grafana: no dashboard mounted under /var/lib/grafana/dashboards")

    if not problems:
        print(
            f"compose: ok ({len(services)} services; radar admin on {port}, grace {grace:g} s > "
            f"shutdown.timeout {timeout:g} s; every bind mount exists)"
        )
    return report(problems)


def report(problems: list[str]) -> int:
    for problem in problems:
        print(f"compose: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
