#!/usr/bin/env python3
"""Checks Radar's rendered Kubernetes objects (`kubectl kustomize` output) for what a
schema cannot know: that they agree with the radar.toml they carry, and that they are
safe to run.

Usage: kubernetes.py RENDERED.yaml [--expect-env NAME=VALUE]...

Asserts:
- the kinds: one each of Deployment, Service, ConfigMap, PodDisruptionBudget,
  ServiceMonitor, NetworkPolicy; no Secret (secrets are referenced, never shipped);
- the ConfigMap's radar.toml: admin.listen on all interfaces (probes and Prometheus come
  from outside the pod), so a read token (admin.read_token_env, given to the container
  from a secretKeyRef); no secret values (radar refuses them too);
- the NetworkPolicy: selects the pods, lets in only the admin port, and only from the
  group's own pods and from pods picked by a namespace and a pod selector (Prometheus);
- with more than one replica, topologySpreadConstraints spread the pods over nodes;
- the radar container: --config points into the mounted ConfigMap; its containerPort is
  admin.listen's port; liveness GET /healthz and readiness GET /readyz on that port;
  checkpoint.path on a writable volume; resources set; every env var whose name says
  SECRET, PASSWORD or TOKEN comes from a secretKeyRef, never an inline value;
- security: runAsNonRoot, readOnlyRootFilesystem, no privilege escalation;
- terminationGracePeriodSeconds longer than shutdown.timeout;
- the Service, PodDisruptionBudget and ServiceMonitor select the pods and the admin port;
- with --expect-env, the container sets each NAME to VALUE (an overlay's change).

Needs PyYAML (python3-yaml or `pip install pyyaml`); Python 3.11+ for tomllib.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import PurePosixPath

import yaml

SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN", re.IGNORECASE)
# Keys in radar.toml that name where a secret is, not the secret itself.
SECRET_POINTER = re.compile(r"_(env|file)$")


class Problems(list):
    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.append(message)
        return ok


def duration_seconds(text: str) -> float:
    """Seconds in a duration as radar writes them ("30s", "1m30s", "500ms", "2h")."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def secret_values_in(table: dict, path: str = "") -> list[str]:
    """Keys of a parsed radar.toml that look like secrets written out."""
    found = []
    for key, value in table.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            if key != "secret_files":  # file paths, by design
                found += secret_values_in(value, where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    found += secret_values_in(item, f"{where}[{i}]")
        elif SECRET_NAME.search(key) and not SECRET_POINTER.search(key):
            found.append(where)
    return found


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    rendered = argv[0]
    expected_env: dict[str, str] = {}
    args = argv[1:]
    while args:
        flag = args.pop(0)
        if flag == "--expect-env" and args:
            name, _, value = args.pop(0).partition("=")
            expected_env[name] = value
        else:
            print(f"kubernetes.py: unknown argument {flag}", file=sys.stderr)
            return 2

    with open(rendered) as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    p = Problems()
    by_kind: dict[str, list[dict]] = {}
    for o in objects:
        by_kind.setdefault(o.get("kind", "?"), []).append(o)

    for kind in ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"]:
        p.check(len(by_kind.get(kind, [])) == 1, f"expected one {kind}, found {len(by_kind.get(kind, []))}")
    p.check("Secret" not in by_kind, "a Secret is rendered: secrets must be referenced, not shipped")
    if p:
        return report(rendered, p)

    deployment = by_kind["Deployment"][0]
    service = by_kind["Service"][0]
    config_map = by_kind["ConfigMap"][0]
    pdb = by_kind["PodDisruptionBudget"][0]
    monitor = by_kind["ServiceMonitor"][0]
    policy = by_kind["NetworkPolicy"][0]

    # The config the pods run with.
    toml_text = (config_map.get("data") or {}).get("radar.toml")
    if not p.check(toml_text is not None, "the ConfigMap has no radar.toml"):
        return report(rendered, p)
    config = tomllib.loads(toml_text)
    listen = config.get("admin", {}).get("listen", "127.0.0.1:9464")
    host, _, port_text = listen.rpartition(":")
    admin_port = int(port_text)
    p.check(
        host.strip("[]") in ("0.0.0.0", "::"),
        f"admin.listen = {listen!r}: probes and Prometheus reach the pod from outside; listen on 0.0.0.0",
    )
    shutdown = duration_seconds(config.get("shutdown", {}).get("timeout", "30s"))
    for key in secret_values_in(config):
        p.append(f"radar.toml writes a secret-looking key {key}; pass it from a Secret instead")

    pod = deployment["spec"]["template"]
    pod_spec = pod["spec"]
    pod_labels = pod["metadata"].get("labels", {})
    p.check(
        selects(deployment["spec"]["selector"].get("matchLabels", {}), pod_labels),
        "the Deployment's selector does not match its pod labels",
    )
    p.check(deployment["spec"].get("replicas", 1) >= 1, "replicas must be at least 1")
    containers = [c for c in pod_spec["containers"] if c["name"] == "radar"]
    if not p.check(len(containers) == 1, "no container named radar"):
        return report(rendered, p)
    radar = containers[0]

    # Ports and probes.
    ports = {port.get("name"): port["containerPort"] for port in radar.get("ports", [])}
    p.check(admin_port in ports.values(), f"no containerPort {admin_port} (admin.listen {listen})")

    def port_of(ref: object) -> int | None:
        return ports.get(ref) if isinstance(ref, str) else ref  # type: ignore[return-value]

    for probe_key, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        probe = radar.get(probe_key, {}).get("httpGet")
        if p.check(probe is not None, f"{probe_key}: missing or not an httpGet"):
            p.check(probe.get("path") == path, f"{probe_key}: path {probe.get('path')!r}, want {path}")
            p.check(
                port_of(probe.get("port")) == admin_port,
                f"{probe_key}: port {probe.get('port')!r} is not the admin port {admin_port}",
            )

    # Config and state volumes.
    args = radar.get("args", []) or radar.get("command", [])
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts = radar.get("volumeMounts", [])

    def mount_for(path: str) -> dict | None:
        best = None
        for m in mounts:
            if PurePosixPath(path).is_relative_to(m["mountPath"]):
                if best is None or len(m["mountPath"]) > len(best["mountPath"]):
                    best = m
        return best

    if p.check(config_path is not None, "the container is not given --config FILE"):
        m = mount_for(config_path)
        volume = volumes.get(m["name"], {}) if m else {}
        p.check(
            volume.get("configMap", {}).get("name") == config_map["metadata"]["name"],
            f"--config {config_path} is not in the mounted ConfigMap {config_map['metadata']['name']}",
        )
    state_path = config.get("checkpoint", {}).get("path", "radar-state.redb")
    p.check(state_path.startswith("/"), f"checkpoint.path {state_path!r} should be absolute in a pod")
    m = mount_for(state_path)
    if p.check(m is not None, f"checkpoint.path {state_path} is on no volume (the root filesystem is read-only)"):
        volume = volumes.get(m["name"], {})
        p.check(not m.get("readOnly"), f"the volume holding checkpoint.path ({m['name']}) is mounted read-only")
        p.check(
            "emptyDir" in volume or "persistentVolumeClaim" in volume or "ephemeral" in volume,
            f"the volume holding checkpoint.path ({m['name']}) is not an emptyDir or a claim",
        )

    # Secrets only by reference (a RADAR__…_ENV or _FILE variable names where one is).
    for env in radar.get("env", []):
        if SECRET_NAME.search(env["name"]) and not SECRET_POINTER.search(env["name"].lower()):
            p.check("value" not in env, f"env {env['name']} has an inline value; use valueFrom.secretKeyRef")
            p.check(
                "secretKeyRef" in (env.get("valueFrom") or {}),
                f"env {env['name']} does not come from a secretKeyRef",
            )
    for source in radar.get("envFrom", []):
        p.check("secretRef" in source or "configMapRef" in source, f"envFrom {source}: unexpected source")
    for name, value in expected_env.items():
        found = [e for e in radar.get("env", []) if e["name"] == name]
        p.check(
            len(found) == 1 and found[0].get("value") == value,
            f"env {name} should be {value!r}, found {found or 'nothing'}",
        )

    # Security.
    pod_security = pod_spec.get("securityContext", {})
    security = radar.get("securityContext", {})
    p.check(
        security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True,
        "runAsNonRoot is not set",
    )
    p.check(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not set")
    p.check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    resources = radar.get("resources", {})
    p.check(bool(resources.get("requests")), "no resource requests")
    p.check("memory" in resources.get("limits", {}), "no memory limit")

    grace = pod_spec.get("terminationGracePeriodSeconds", 30)
    p.check(
        grace > shutdown,
        f"terminationGracePeriodSeconds {grace} must be longer than shutdown.timeout ({shutdown:g} s)",
    )

    # Off loopback, the read endpoints need a token, given from a Secret.
    read_token_env = config.get("admin", {}).get("read_token_env", "")
    if p.check(bool(read_token_env), "admin.read_token_env is not set: /v1/accounts would be open on the pod network"):
        given = [e for e in radar.get("env", []) if e["name"] == read_token_env]
        p.check(
            len(given) == 1 and "secretKeyRef" in (given[0].get("valueFrom") or {}),
            f"admin.read_token_env names {read_token_env}, which the container does not get from a secretKeyRef",
        )

    # Replicas spread over nodes.
    if deployment["spec"].get("replicas", 1) > 1:
        spread = pod_spec.get("topologySpreadConstraints", [])
        p.check(
            any(
                c.get("topologyKey") == "kubernetes.io/hostname"
                and selects(c.get("labelSelector", {}).get("matchLabels", {}), pod_labels)
                for c in spread
            ),
            "several replicas but no topologySpreadConstraints over kubernetes.io/hostname for the pods",
        )

    # The NetworkPolicy: the admin port, from the group's pods and Prometheus only.
    policy_spec = policy.get("spec", {})
    p.check(
        selects(policy_spec.get("podSelector", {}).get("matchLabels", {}), pod_labels),
        "the NetworkPolicy does not select the pods",
    )
    p.check("Ingress" in policy_spec.get("policyTypes", []), "the NetworkPolicy does not restrict Ingress")
    rules = policy_spec.get("ingress", [])
    p.check(bool(rules), "the NetworkPolicy lets nothing in (not even the group's pods)")
    peers = []
    for rule in rules:
        sources = rule.get("from") or []
        p.check(bool(sources), "a NetworkPolicy ingress rule without `from` lets everyone in")
        opened = rule.get("ports") or []
        p.check(
            bool(opened) and all(port_of(port.get("port")) == admin_port for port in opened),
            f"a NetworkPolicy ingress rule opens ports other than the admin port {admin_port}: {opened}",
        )
        peers += sources
    for peer in peers:
        p.check("ipBlock" not in peer, f"the NetworkPolicy lets in an ipBlock: {peer}")
        if "namespaceSelector" in peer:
            p.check(
                bool(peer["namespaceSelector"].get("matchLabels")) and bool(peer.get("podSelector", {}).get("matchLabels")),
                f"the NetworkPolicy lets in whole namespaces, not Prometheus's pods: {peer}",
            )
        else:
            p.check(
                peer.get("podSelector", {}).get("matchLabels") == pod_labels,
                f"the NetworkPolicy lets in pods other than the group's: {peer}",
            )
    p.check(
        any("namespaceSelector" not in peer for peer in peers),
        "the NetworkPolicy does not let the group's pods reach each other",
    )

    # Service, PDB, ServiceMonitor.
    p.check(selects(service["spec"].get("selector", {}), pod_labels), "the Service does not select the pods")
    service_ports = service["spec"].get("ports", [])
    admin_service_ports = [
        sp for sp in service_ports if port_of(sp.get("targetPort", sp.get("port"))) == admin_port
    ]
    p.check(bool(admin_service_ports), f"no Service port targets the admin port {admin_port}")
    p.check(
        selects(pdb["spec"].get("selector", {}).get("matchLabels", {}), pod_labels),
        "the PodDisruptionBudget does not select the pods",
    )
    p.check(
        selects(monitor["spec"].get("selector", {}).get("matchLabels", {}), service["metadata"].get("labels", {})),
        "the ServiceMonitor does not select the Service",
    )
    endpoints = monitor["spec"].get("endpoints", [])
    names = {sp.get("name") for sp in admin_service_ports}
    p.check(
        any(e.get("port") in names and e.get("path", "/metrics") == "/metrics" for e in endpoints),
        "the ServiceMonitor does not scrape /metrics on the Service's admin port",
    )

    if not p:
        print(
            f"kubernetes: {rendered}: ok ({len(objects)} objects; admin port {admin_port}; "
            f"grace {grace} s > shutdown.timeout {shutdown:g} s; "
            f"{deployment['spec'].get('replicas', 1)} replicas)"
        )
    return report(rendered, p)


def report(rendered: str, problems: Problems) -> int:
    for problem in problems:
        print(f"kubernetes: {rendered}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
